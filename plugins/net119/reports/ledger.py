"""The station report ledger: which station's report of a period is sent.

Each report is claimed ('sending') before it is built and mailed, and marked
'sent', 'failed' or 'no_address' after, in ``net119.station_reports``. A
second claim of a sent report finds nothing, which is what keeps a retried or
repeated task from mailing a station twice in one period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from net119 import sqlfiles
from net119.reports.period import ReportPeriod

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

ReportStatus = Literal["sent", "failed", "no_address"]


@dataclass(frozen=True)
class StationClaim:
    """A claimed report and the settings of its station."""

    report_id: int
    station_id: str
    message_id: str
    station_name: str
    report_emails: tuple[str, ...]
    csv_encoding: str
    contact_phone: str
    contact_fax: str
    contact_email: str
    postal_address: str
    # Reference time of the station's previous sent report, if any.
    previous_as_of: dt.datetime | None


@dataclass(frozen=True)
class ReportOutcome:
    """Outcome of one claimed report, as stored in the ledger."""

    report_id: int
    status: ReportStatus
    recipients: tuple[str, ...] = ()
    refused_recipients: tuple[str, ...] = ()
    csv_encoding: str | None = None
    undeliverable_count: int | None = None
    not_renewed_count: int | None = None
    at_risk_count: int | None = None
    new_lapsed_count: int | None = None
    new_at_risk_count: int | None = None
    letter_count: int | None = None
    replaced_cell_count: int | None = None
    failure_reason: str | None = None


@dataclass(frozen=True)
class ReportProblem:
    """A station whose report operators must look at (ids and reasons only)."""

    station_id: str
    status: str
    failure_reason: str | None
    refused_count: int


def stations_without_sent_report(conn: Connection, period: ReportPeriod) -> list[str]:
    """Return the ids of the stations whose report of ``period`` is not sent yet."""
    with conn.cursor() as cur:
        cur.execute(sqlfiles.load("report_list_stations"), {"period_key": period.key})
        station_ids = [row[0] for row in cur.fetchall()]
    conn.commit()
    return station_ids


def claim_reports(
    conn: Connection,
    station_ids: list[str],
    *,
    period: ReportPeriod,
    run_date: dt.date,
    as_of: dt.datetime,
    run_id: str | None,
    message_id_domain: str,
    lease_minutes: int,
) -> list[StationClaim]:
    """Claim the report of ``period`` for each station that still needs one, then commit."""
    with conn.cursor() as cur:
        cur.execute(
            sqlfiles.load("report_claim"),
            {
                "station_ids": station_ids,
                "cadence": period.cadence,
                "period_key": period.key,
                "period_start": period.start,
                "period_end": period.end,
                "run_id": run_id,
                "run_date": run_date,
                "as_of": as_of,
                "domain": message_id_domain,
                "lease_minutes": lease_minutes,
            },
        )
        rows = cur.fetchall()
    conn.commit()
    return [
        StationClaim(
            report_id=row[0],
            station_id=row[1],
            message_id=row[2],
            station_name=row[3],
            report_emails=tuple(row[4] or ()),
            csv_encoding=row[5],
            contact_phone=row[6],
            contact_fax=row[7],
            contact_email=row[8],
            postal_address=row[9],
            previous_as_of=row[10],
        )
        for row in rows
    ]


def record_outcome(conn: Connection, outcome: ReportOutcome) -> None:
    """Store the outcome of a claimed report, then commit."""
    with conn.cursor() as cur:
        cur.execute(
            sqlfiles.load("report_record_outcome"),
            {
                "report_id": outcome.report_id,
                "status": outcome.status,
                "recipients": list(outcome.recipients),
                "refused_recipients": list(outcome.refused_recipients),
                "csv_encoding": outcome.csv_encoding,
                "undeliverable_count": outcome.undeliverable_count,
                "not_renewed_count": outcome.not_renewed_count,
                "at_risk_count": outcome.at_risk_count,
                "new_lapsed_count": outcome.new_lapsed_count,
                "new_at_risk_count": outcome.new_at_risk_count,
                "letter_count": outcome.letter_count,
                "replaced_cell_count": outcome.replaced_cell_count,
                "failure_reason": outcome.failure_reason,
            },
        )
    conn.commit()


def batch_problems(
    conn: Connection,
    station_ids: list[str],
    *,
    period: ReportPeriod,
    run_id: str | None,
) -> list[ReportProblem]:
    """Return the stations of a batch whose report of ``period`` needs operators."""
    with conn.cursor() as cur:
        cur.execute(
            sqlfiles.load("report_batch_problems"),
            {"period_key": period.key, "station_ids": station_ids, "run_id": run_id},
        )
        rows = cur.fetchall()
    conn.commit()
    return [ReportProblem(row[0], row[1], row[2], row[3]) for row in rows]
