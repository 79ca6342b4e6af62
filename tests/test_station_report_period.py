"""Report periods and the NET119_REPORT_* settings."""

from __future__ import annotations

import datetime as dt

import pytest
from net119.reports.config import ReportSettings
from net119.reports.period import report_period

D = dt.date


@pytest.mark.parametrize(
    ("cadence", "run_date", "key", "start", "end"),
    [
        ("daily", D(2026, 12, 4), "2026-12-04", D(2026, 12, 4), D(2026, 12, 5)),
        ("weekly", D(2026, 12, 4), "2026-W49", D(2026, 11, 30), D(2026, 12, 7)),
        ("weekly", D(2026, 12, 7), "2026-W50", D(2026, 12, 7), D(2026, 12, 14)),
        ("weekly", D(2026, 12, 6), "2026-W49", D(2026, 11, 30), D(2026, 12, 7)),
        # 1 January 2027 is a Friday in the 53rd ISO week of 2026.
        ("weekly", D(2027, 1, 1), "2026-W53", D(2026, 12, 28), D(2027, 1, 4)),
        ("monthly", D(2026, 12, 31), "2026-12", D(2026, 12, 1), D(2027, 1, 1)),
        ("monthly", D(2028, 2, 29), "2028-02", D(2028, 2, 1), D(2028, 3, 1)),
    ],
)
def test_period_keys_and_bounds(cadence, run_date, key, start, end) -> None:
    period = report_period(cadence, run_date)

    assert (period.key, period.start, period.end) == (key, start, end)
    assert period.is_due(run_date)


def test_period_weekly_due_from_weekday() -> None:
    # Due from Thursday 3 December to Sunday 6 December.
    period = report_period("weekly", D(2026, 12, 1), weekday=4)

    assert period.due_from == D(2026, 12, 3)
    assert not period.is_due(D(2026, 12, 2))
    assert period.is_due(D(2026, 12, 3))
    assert period.is_due(D(2026, 12, 6))
    assert not period.is_due(D(2026, 12, 7))


def test_period_rejects_invalid_values() -> None:
    with pytest.raises(ValueError, match="invalid report cadence 'yearly'"):
        report_period("yearly", D(2026, 12, 4))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid report weekday 8"):
        report_period("weekly", D(2026, 12, 4), weekday=8)


def test_settings_defaults() -> None:
    settings = ReportSettings.from_env(lambda name: None)

    assert settings == ReportSettings(
        cadence="weekly", weekday=1, batch_size=50, max_letters=50
    )


def test_settings_from_environment() -> None:
    env = {
        "NET119_REPORT_CADENCE": "Monthly",
        "NET119_REPORT_WEEKDAY": "thu",
        "NET119_REPORT_BATCH_SIZE": "20",
        "NET119_REPORT_MAX_LETTERS": "0",
    }

    settings = ReportSettings.from_env(env.get)

    assert settings.cadence == "monthly"
    assert settings.weekday == 4
    assert settings.batch_size == 20
    assert settings.max_letters == 0


@pytest.mark.parametrize(
    ("raw", "weekday"), [("1", 1), ("7", 7), ("Sunday", 7), ("wed", 3)]
)
def test_settings_weekday_forms(raw, weekday) -> None:
    assert (
        ReportSettings.from_env({"NET119_REPORT_WEEKDAY": raw}.get).weekday == weekday
    )


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("NET119_REPORT_CADENCE", "yearly", "invalid NET119_REPORT_CADENCE='yearly'"),
        ("NET119_REPORT_WEEKDAY", "8", "invalid NET119_REPORT_WEEKDAY='8'"),
        ("NET119_REPORT_WEEKDAY", "someday", "invalid NET119_REPORT_WEEKDAY='someday'"),
        ("NET119_REPORT_BATCH_SIZE", "0", "must be at least 1"),
        ("NET119_REPORT_BATCH_SIZE", "ten", "expected a whole number"),
        ("NET119_REPORT_MAX_LETTERS", "-1", "must be at least 0"),
    ],
)
def test_settings_reject_invalid(name, raw, message) -> None:
    with pytest.raises(ValueError, match=message):
        ReportSettings.from_env({name: raw}.get)
