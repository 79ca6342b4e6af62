"""The rows of station reports: lapsed users and at-risk users, per station.

One statement builds the lists of a whole batch of stations (``report_rows.sql``)
and stores who each report listed, which is how the next report finds who is
new. The rows hold personal data: they go into the report mail only, never
into logs or XCom.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from net119 import sqlfiles

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

ListName = Literal["undeliverable", "not_renewed", "at_risk"]


@dataclass(frozen=True)
class ReportRow:
    """One user in one station report, with their last reminder and bounce."""

    report_id: int
    station_id: str
    list: ListName
    is_new: bool
    user_id: int
    name: str
    status: str
    lapse_reason: str | None
    expires_at: dt.datetime
    lapsed_at: dt.datetime | None
    email: str
    phone: str
    fax: str
    postal_code: str
    postal_address: str
    last_reminder_at: dt.datetime | None
    last_reminder_kind: str | None
    last_reminder_offset: int | None
    last_reminder_outcome: str | None
    last_reminder_recipient: str | None
    last_reminder_failure: str | None
    bounced_at: dt.datetime | None
    bounce_category: str | None
    bounce_status_code: str | None
    bounce_diagnostic: str | None

    @property
    def is_lapsed(self) -> bool:
        return self.list != "at_risk"


def build_report_rows(
    conn: Connection,
    report_ids: list[int],
    station_ids: list[str],
    *,
    at_risk_until: dt.datetime,
) -> dict[int, list[ReportRow]]:
    """Build the rows of the given claimed reports and store their entries, then commit.

    ``report_ids`` and ``station_ids`` are parallel. Entries left by an earlier
    attempt at the same report are replaced. Returns the rows by report id;
    every given report has a key, with an empty list when no user is listed.
    """
    by_report: dict[int, list[ReportRow]] = defaultdict(list)
    for report_id in report_ids:
        by_report[report_id] = []
    if not report_ids:
        return dict(by_report)

    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM net119.station_report_entries WHERE report_id = ANY(%s)",
            (report_ids,),
        )
        cur.execute(
            sqlfiles.load("report_rows"),
            {
                "report_ids": report_ids,
                "station_ids": station_ids,
                "at_risk_until": at_risk_until,
            },
        )
        for record in cur.fetchall():
            row = ReportRow(*record)
            by_report[row.report_id].append(row)
    conn.commit()
    return dict(by_report)
