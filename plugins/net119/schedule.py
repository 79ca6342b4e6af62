"""The reminder schedule and the renewal arithmetic, in Asia/Tokyo days.

A cycle has 13 steps at fixed day offsets from the Asia/Tokyo calendar date of
``expires_at``. A step falls due on its date and stays due until the next
step's date; the last step stays due for 30 days. A run on date D handles, per
cycle, only the latest due step, so each step owns a window of expiry dates for
a given D. That window is what the due query scans.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")

OFFSETS: tuple[int, ...] = (-90, -60, -45, -30, -20, -10, 0, 30, 60, 90, 120, 150, 180)
# Days the last step stays due after its own date.
LAST_STEP_GRACE_DAYS = 30


def offset_label(offset: int) -> str:
    """Return the Japanese label of a step: 「90日前」, 「当日」 or 「30日後」."""
    if offset < 0:
        return f"{-offset}日前"
    if offset == 0:
        return "当日"
    return f"{offset}日後"


def tokyo_date(moment: dt.datetime) -> dt.date:
    """Return the Asia/Tokyo calendar date of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: a time zone is required")
    return moment.astimezone(TOKYO).date()


def tokyo_midnight(day: dt.date) -> dt.datetime:
    """Return 00:00 Asia/Tokyo at the start of ``day`` as an aware datetime."""
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=TOKYO)


def due_until(offset: int) -> int:
    """Return the day offset, exclusive, up to which step ``offset`` stays due."""
    index = OFFSETS.index(offset)
    if index + 1 < len(OFFSETS):
        return OFFSETS[index + 1]
    return offset + LAST_STEP_GRACE_DAYS


@dataclass(frozen=True)
class DueWindow:
    """Expiry instants whose step ``offset`` is the latest due one on ``run_date``.

    A user is in the window when ``start <= expires_at < end``.
    """

    offset: int
    run_date: dt.date
    start: dt.datetime
    end: dt.datetime


def due_window(offset: int, run_date: dt.date) -> DueWindow:
    """Compute the expiry window of step ``offset`` for a run on ``run_date``.

    Step k is the latest due step when ``E + k <= D < E + next(k)``, where E is
    the expiry date, which gives ``D - next(k) < E <= D - k``.
    """
    if offset not in OFFSETS:
        raise ValueError(f"invalid offset {offset}: expected one of {OFFSETS}")
    first_expiry_date = run_date - dt.timedelta(days=due_until(offset) - 1)
    last_expiry_date = run_date - dt.timedelta(days=offset)
    return DueWindow(
        offset=offset,
        run_date=run_date,
        start=tokyo_midnight(first_expiry_date),
        end=tokyo_midnight(last_expiry_date + dt.timedelta(days=1)),
    )


def step_date(expires_at: dt.datetime, offset: int) -> dt.date:
    """Return the Asia/Tokyo date on which step ``offset`` of a cycle falls due."""
    return tokyo_date(expires_at) + dt.timedelta(days=offset)


def latest_due_offset(expires_at: dt.datetime, run_date: dt.date) -> int | None:
    """Return the step that is the latest due one on ``run_date``, if any.

    Returns ``None`` before the first step and once the last step's 30 days
    have passed, when nothing is sent automatically.
    """
    days = (run_date - tokyo_date(expires_at)).days
    for offset in reversed(OFFSETS):
        if offset <= days < due_until(offset):
            return offset
    return None


def add_one_year(moment: dt.datetime) -> dt.datetime:
    """Return the same wall-clock time one calendar year later, in Asia/Tokyo.

    29 February maps to 28 February of the next year.
    """
    local = moment.astimezone(TOKYO)
    try:
        return local.replace(year=local.year + 1)
    except ValueError:
        return local.replace(year=local.year + 1, day=28)


def renewed_expiry(expires_at: dt.datetime, renewed_at: dt.datetime) -> dt.datetime:
    """Return the new ``expires_at`` of a renewal made at ``renewed_at``.

    The new validity ends one calendar year after the later of the current
    expiry and the moment of renewal, so renewing early loses no days and
    renewing late starts a full year from the renewal.
    """
    return add_one_year(max(expires_at, renewed_at))
