"""Station report settings read from ``NET119_REPORT_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast

from net119.reports.period import CADENCES, Cadence

# "off" sends no station reports at all.
CadenceSetting = Cadence | Literal["off"]

_DAY_NAMES = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


@dataclass(frozen=True)
class ReportSettings:
    # daily, weekly (ISO week, Monday to Sunday, Asia/Tokyo), monthly or off.
    cadence: CadenceSetting = "weekly"
    # ISO weekday (1 = Monday) from which a weekly report is due.
    weekday: int = 1
    # Stations per mapped task instance of the report step.
    batch_size: int = 50
    # Notice letters (PDF) attached to one report at most; 0 attaches none.
    max_letters: int = 50
    # An active user whose latest reminder bounced is at risk when the
    # validity ends within this many days of the run's reference time.
    at_risk_days: int = 30
    # A 'sending' claim older than this is taken as an interrupted send.
    claim_lease_minutes: int = 15

    @classmethod
    def from_env(
        cls, lookup: Callable[[str], str | None] | None = None
    ) -> ReportSettings:
        """Build settings from ``NET119_REPORT_*`` variables, or from ``lookup(name)``.

        Raises ``ValueError`` naming the variable when a value is not valid.
        """
        get = lookup or os.environ.get
        defaults = cls()

        cadence = (get("NET119_REPORT_CADENCE") or defaults.cadence).strip().lower()
        if cadence not in (*CADENCES, "off"):
            raise ValueError(
                f"invalid NET119_REPORT_CADENCE={cadence!r}: expected one of "
                f"{', '.join(CADENCES)} or off"
            )

        def whole(name: str, default: int, minimum: int) -> int:
            raw = get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(
                    f"invalid {name}={raw!r}: expected a whole number"
                ) from None
            if value < minimum:
                raise ValueError(f"invalid {name}={raw!r}: must be at least {minimum}")
            return value

        return cls(
            cadence=cast(CadenceSetting, cadence),
            weekday=_parse_weekday(get("NET119_REPORT_WEEKDAY"), defaults.weekday),
            batch_size=whole("NET119_REPORT_BATCH_SIZE", defaults.batch_size, 1),
            max_letters=whole("NET119_REPORT_MAX_LETTERS", defaults.max_letters, 0),
            at_risk_days=defaults.at_risk_days,
            claim_lease_minutes=whole(
                "NET119_REPORT_CLAIM_LEASE_MINUTES", defaults.claim_lease_minutes, 1
            ),
        )


def _parse_weekday(raw: str | None, default: int) -> int:
    """Parse an ISO weekday number (1-7) or an English day name (mon, Monday)."""
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip().lower()
    if text.isdigit() and 1 <= int(text) <= 7:
        return int(text)
    for number, name in enumerate(_DAY_NAMES, start=1):
        if text in (name, name[:3]):
            return number
    raise ValueError(
        f"invalid NET119_REPORT_WEEKDAY={raw!r}: expected 1 (Monday) to 7 (Sunday) or a day name"
    )
