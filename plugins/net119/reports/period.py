"""Report periods: which period a run date belongs to, and whether it is due.

A station receives one report per period. Periods are Asia/Tokyo calendar
units:

- ``daily``: the run date itself, key ``2026-12-04``;
- ``weekly``: the ISO week, Monday to Sunday, key ``2026-W49``;
- ``monthly``: the calendar month, key ``2026-12``.

A weekly report falls due on the configured ISO weekday (1 = Monday) and stays
due for the rest of the week until it is sent, so a pipeline that was down on
that day sends the report on its next run in the same week. Daily and monthly
reports are due from the first day of their period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

Cadence = Literal["daily", "weekly", "monthly"]
CADENCES: tuple[Cadence, ...] = ("daily", "weekly", "monthly")


@dataclass(frozen=True)
class ReportPeriod:
    """One report period of one cadence; ``end`` is exclusive."""

    cadence: Cadence
    key: str
    start: dt.date
    end: dt.date
    # First date on which the period's report may be sent.
    due_from: dt.date

    def is_due(self, run_date: dt.date) -> bool:
        return self.due_from <= run_date < self.end

    @property
    def last_day(self) -> dt.date:
        return self.end - dt.timedelta(days=1)


def report_period(
    cadence: Cadence, run_date: dt.date, weekday: int = 1
) -> ReportPeriod:
    """Return the period of ``cadence`` that contains ``run_date``.

    ``weekday`` is the ISO weekday (1 = Monday … 7 = Sunday) on which a weekly
    report falls due; the other cadences ignore it. Raises ``ValueError`` for
    an unknown cadence or weekday.
    """
    if not 1 <= weekday <= 7:
        raise ValueError(
            f"invalid report weekday {weekday}: expected 1 (Monday) to 7 (Sunday)"
        )
    if cadence == "daily":
        return ReportPeriod(
            cadence,
            run_date.isoformat(),
            run_date,
            run_date + dt.timedelta(days=1),
            run_date,
        )
    if cadence == "weekly":
        year, week, day = run_date.isocalendar()
        monday = run_date - dt.timedelta(days=day - 1)
        return ReportPeriod(
            cadence,
            f"{year}-W{week:02d}",
            monday,
            monday + dt.timedelta(days=7),
            monday + dt.timedelta(days=weekday - 1),
        )
    if cadence == "monthly":
        first = run_date.replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
        return ReportPeriod(
            cadence, f"{run_date.year}-{run_date.month:02d}", first, following, first
        )
    raise ValueError(
        f"invalid report cadence {cadence!r}: expected one of {', '.join(CADENCES)}"
    )
