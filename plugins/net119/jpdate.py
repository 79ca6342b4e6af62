"""Japanese date formatting for mails and printed documents.

Dates are written with the era and the Western year, as Japanese official
documents do: 令和8年（2026年）12月4日. The first year of an era is written 元年.
"""

from __future__ import annotations

import datetime as dt

from net119.schedule import TOKYO

# (first day of the era, name), newest first.
_ERAS: tuple[tuple[dt.date, str], ...] = (
    (dt.date(2019, 5, 1), "令和"),
    (dt.date(1989, 1, 8), "平成"),
    (dt.date(1926, 12, 25), "昭和"),
)


def format_date(day: dt.date | dt.datetime) -> str:
    """Format a date as 令和8年（2026年）12月4日.

    An aware datetime is first converted to Asia/Tokyo.
    """
    if isinstance(day, dt.datetime):
        day = day.astimezone(TOKYO).date()
    for start, name in _ERAS:
        if day >= start:
            year = day.year - start.year + 1
            era_year = "元" if year == 1 else str(year)
            return f"{name}{era_year}年（{day.year}年）{day.month}月{day.day}日"
    return f"{day.year}年{day.month}月{day.day}日"


def format_datetime(moment: dt.datetime) -> str:
    """Format an aware datetime as 令和8年（2026年）12月4日 9時00分 in Asia/Tokyo."""
    local = moment.astimezone(TOKYO)
    return f"{format_date(local.date())} {local.hour}時{local.minute:02d}分"
