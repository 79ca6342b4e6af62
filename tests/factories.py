"""Rows for tests, inserted with only the columns the public schema requires."""

from __future__ import annotations

import datetime as dt

from net119.schedule import TOKYO


def jst(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=TOKYO)


def add_station(conn, station_id: str = "st-yokohama", name: str = "横浜市消防局",
                report_emails: tuple[str, ...] = ("report@yokohama.example.jp",)) -> str:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO net119.stations (id, name, report_emails) VALUES (%s, %s, %s)",
            (station_id, name, list(report_emails)),
        )
    conn.commit()
    return station_id


def add_user(conn, user_id: int, expires_at: dt.datetime, *, station_id: str = "st-yokohama",
             email: str | None = None, name: str | None = None) -> int:
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO net119.users (id, station_id, name, email, expires_at)
            VALUES (%s, %s, %s, %s, %s)
            """,
            (user_id, station_id, name or f"利用者{user_id}",
             email or f"user{user_id}@docomo.ne.jp", expires_at),
        )
    conn.commit()
    return user_id


def history(conn, user_id: int) -> list[tuple]:
    """Return (offset_days, outcome) of a user's reminders in step order."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT offset_days, outcome FROM net119.reminder_history
            WHERE user_id = %s ORDER BY cycle_expires_at, offset_days NULLS LAST, id
            """,
            (user_id,),
        )
        return cur.fetchall()


def user_state(conn, user_id: int) -> tuple[str, str | None]:
    with conn.cursor() as cur:
        cur.execute("SELECT status, lapse_reason FROM net119.users WHERE id = %s", (user_id,))
        return cur.fetchone()
