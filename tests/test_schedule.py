"""Schedule arithmetic in Asia/Tokyo days: windows, catch-up, renewal."""

from __future__ import annotations

import datetime as dt

import pytest

from net119.schedule import (
    OFFSETS,
    TOKYO,
    add_one_year,
    due_window,
    latest_due_offset,
    offset_label,
    renewed_expiry,
    step_date,
    tokyo_date,
)

UTC = dt.timezone.utc


@pytest.mark.parametrize("offset", OFFSETS)
def test_step_due_on_its_date(offset: int) -> None:
    expires_at = dt.datetime(2027, 3, 10, 15, 0, tzinfo=TOKYO)
    run_date = step_date(expires_at, offset)

    assert latest_due_offset(expires_at, run_date) == offset
    window = due_window(offset, run_date)
    assert window.start <= expires_at < window.end


@pytest.mark.parametrize("offset", OFFSETS)
def test_step_not_due_the_day_before(offset: int) -> None:
    expires_at = dt.datetime(2027, 3, 10, 15, 0, tzinfo=TOKYO)
    run_date = step_date(expires_at, offset) - dt.timedelta(days=1)

    window = due_window(offset, run_date)
    assert not (window.start <= expires_at < window.end)


def test_windows_of_one_date_are_disjoint_and_contiguous() -> None:
    run_date = dt.date(2026, 12, 4)
    windows = sorted((due_window(o, run_date) for o in OFFSETS), key=lambda w: w.start)

    for earlier, later in zip(windows, windows[1:]):
        assert earlier.end == later.start


def test_late_step_due_until_next_step() -> None:
    expires_at = dt.datetime(2027, 3, 10, 9, 0, tzinfo=TOKYO)
    minus_90 = step_date(expires_at, -90)

    assert latest_due_offset(expires_at, minus_90 + dt.timedelta(days=29)) == -90
    assert latest_due_offset(expires_at, minus_90 + dt.timedelta(days=30)) == -60


def test_last_step_due_for_30_days() -> None:
    expires_at = dt.datetime(2026, 1, 10, 9, 0, tzinfo=TOKYO)
    plus_180 = step_date(expires_at, 180)

    assert latest_due_offset(expires_at, plus_180 + dt.timedelta(days=29)) == 180
    assert latest_due_offset(expires_at, plus_180 + dt.timedelta(days=30)) is None


def test_nothing_due_before_first_step() -> None:
    expires_at = dt.datetime(2027, 3, 10, 9, 0, tzinfo=TOKYO)

    assert latest_due_offset(expires_at, step_date(expires_at, -91)) is None


def test_expiry_at_0030_jst_counts_on_jst_date() -> None:
    # 00:30 JST on 4 March is still 3 March in UTC.
    expires_at = dt.datetime(2027, 3, 4, 0, 30, tzinfo=TOKYO)
    assert expires_at.astimezone(UTC).date() == dt.date(2027, 3, 3)

    assert tokyo_date(expires_at) == dt.date(2027, 3, 4)
    assert latest_due_offset(expires_at, dt.date(2027, 3, 4)) == 0
    assert latest_due_offset(expires_at, dt.date(2027, 3, 3)) == -10
    window = due_window(0, dt.date(2027, 3, 4))
    assert window.start <= expires_at < window.end


def test_run_at_0800_jst_uses_jst_date() -> None:
    # 08:00 JST on 4 December is 23:00 UTC on 3 December.
    run_time = dt.datetime(2026, 12, 3, 23, 0, tzinfo=UTC)

    assert tokyo_date(run_time) == dt.date(2026, 12, 4)


def test_expiry_at_midnight_belongs_to_new_day() -> None:
    expires_at = dt.datetime(2027, 3, 4, 0, 0, tzinfo=TOKYO)
    on_the_day = due_window(0, dt.date(2027, 3, 4))
    day_before = due_window(-10, dt.date(2027, 3, 3))

    assert on_the_day.start <= expires_at < on_the_day.end
    assert day_before.start <= expires_at < day_before.end
    assert due_window(0, dt.date(2027, 3, 3)).end == expires_at


def test_offset_labels() -> None:
    assert [offset_label(o) for o in (-90, -10, 0, 30, 180)] == [
        "90日前", "10日前", "当日", "30日後", "180日後",
    ]


def test_invalid_offset_rejected() -> None:
    with pytest.raises(ValueError, match="invalid offset 7"):
        due_window(7, dt.date(2026, 12, 4))


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        tokyo_date(dt.datetime(2026, 12, 4, 9, 0))


def test_leap_day_maps_to_28_february() -> None:
    leap = dt.datetime(2028, 2, 29, 10, 0, tzinfo=TOKYO)

    assert add_one_year(leap) == dt.datetime(2029, 2, 28, 10, 0, tzinfo=TOKYO)


def test_leap_day_expiry_schedule() -> None:
    leap = dt.datetime(2028, 2, 29, 10, 0, tzinfo=TOKYO)

    assert step_date(leap, -90) == dt.date(2027, 12, 1)
    assert step_date(leap, 0) == dt.date(2028, 2, 29)
    assert latest_due_offset(leap, dt.date(2028, 2, 29)) == 0


def test_renewal_before_expiry_extends_from_expiry() -> None:
    expires_at = dt.datetime(2027, 3, 10, 9, 0, tzinfo=TOKYO)
    renewed_at = dt.datetime(2027, 1, 5, 20, 15, tzinfo=TOKYO)

    assert renewed_expiry(expires_at, renewed_at) == dt.datetime(2028, 3, 10, 9, 0, tzinfo=TOKYO)


def test_renewal_after_expiry_extends_from_renewal() -> None:
    expires_at = dt.datetime(2026, 6, 1, 9, 0, tzinfo=TOKYO)
    renewed_at = dt.datetime(2026, 12, 4, 14, 30, tzinfo=TOKYO)

    assert renewed_expiry(expires_at, renewed_at) == dt.datetime(2027, 12, 4, 14, 30, tzinfo=TOKYO)


def test_renewal_on_leap_day_after_expiry() -> None:
    expires_at = dt.datetime(2028, 1, 1, 9, 0, tzinfo=TOKYO)
    renewed_at = dt.datetime(2028, 2, 29, 11, 0, tzinfo=TOKYO)

    assert renewed_expiry(expires_at, renewed_at) == dt.datetime(2029, 2, 28, 11, 0, tzinfo=TOKYO)
