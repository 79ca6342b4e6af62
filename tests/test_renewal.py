"""renew_from_reminder under concurrent writers, on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
import time

from factories import add_station, add_user, jst
from net119 import db as net119_db
from net119.renewal import RenewalResult, renew_from_reminder


def add_reminder(conn, user_id: int) -> int:
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO net119.reminders (
                user_id, cycle_expires_at, offset_days, outcome, recipient, sent_at
            )
            SELECT id, expires_at, -60, 'sent', email, now() FROM net119.users WHERE id = %s
            RETURNING id
            """,
            (user_id,),
        )
        reminder_id = cur.fetchone()[0]
    conn.commit()
    return reminder_id


def wait_for_lock_waiters(conn, count: int, timeout: float = 20.0) -> None:
    """Wait until ``count`` sessions of this database wait for a row lock."""
    deadline = time.monotonic() + timeout
    while True:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            waiting = cur.fetchone()[0]
        conn.rollback()
        if waiting >= count:
            return
        assert time.monotonic() < deadline, "the renewal never waited for the lock"
        time.sleep(0.05)


def test_renew_from_reminder_lock_order_matches_bounces(db, db_url) -> None:
    """Regression: the renewal locked the user before the reminder.

    Bounce ingestion locks the reminder, then updates the user. A renewal that
    took the user's lock first and then waited for the reminder deadlocked
    with it, and PostgreSQL aborted one of the two.
    """
    add_station(db)
    add_user(db, 1, jst(2027, 2, 2, 10))
    reminder_id = add_reminder(db, 1)
    bounce = net119_db.connect(db_url)
    outcomes: dict[str, object] = {}

    def renew() -> None:
        conn = net119_db.connect(db_url)
        try:
            outcomes["result"] = renew_from_reminder(
                conn, reminder_id, at=dt.datetime.now(dt.UTC)
            )
        except Exception as exc:  # recorded for the assertion below
            outcomes["error"] = exc
        finally:
            conn.close()

    try:
        with bounce.cursor() as cur:
            cur.execute(
                "SELECT outcome FROM net119.reminders WHERE id = %s FOR UPDATE", (reminder_id,)
            )
        renewal = threading.Thread(target=renew)
        renewal.start()
        wait_for_lock_waiters(db, 1)
        # What a bounce does next: mark the reminder, then touch the user.
        with bounce.cursor() as cur:
            cur.execute(
                "UPDATE net119.reminders SET outcome = 'undeliverable' WHERE id = %s",
                (reminder_id,),
            )
            cur.execute("UPDATE net119.users SET updated_at = now() WHERE id = 1")
        bounce.commit()
        renewal.join(timeout=30)
    finally:
        bounce.close()

    assert "error" not in outcomes
    result = outcomes["result"]
    assert isinstance(result, RenewalResult)
    assert result.status == "renewed"
    with db.cursor() as cur:
        cur.execute("SELECT outcome FROM net119.reminders WHERE id = %s", (reminder_id,))
        assert cur.fetchone() == ("confirmed",)
        cur.execute("SELECT expires_at FROM net119.users WHERE id = 1")
        assert cur.fetchone() == (jst(2028, 2, 2, 10),)
    db.rollback()


def test_renew_from_reminder_second_call_changes_nothing(db) -> None:
    add_station(db)
    add_user(db, 1, jst(2027, 2, 2, 10))
    reminder_id = add_reminder(db, 1)
    at = dt.datetime.now(dt.UTC)

    first = renew_from_reminder(db, reminder_id, at=at)
    second = renew_from_reminder(db, reminder_id, at=at + dt.timedelta(seconds=1))

    assert first.status == "renewed"
    assert second.status == "already_renewed"
    assert second.new_expires_at == first.new_expires_at
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM net119.renewals")
        assert cur.fetchone() == (1,)
    db.rollback()


def test_renew_from_reminder_unknown_reminder(db) -> None:
    assert renew_from_reminder(db, 999, at=dt.datetime.now(dt.UTC)).status == "not_found"
