"""Helpers for the station report tests: rows, SMTP sessions and mail parsing."""

from __future__ import annotations

import csv
import datetime as dt
import email
import io
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage

from factories import jst

UTC = dt.UTC


def session_factory(server):
    """Return an ``open_session`` callable for the test's aiosmtpd server."""

    @contextmanager
    def open_session() -> Iterator[smtplib.SMTP]:
        client = smtplib.SMTP(server.host, server.port, timeout=10)
        try:
            yield client
        finally:
            try:
                client.quit()
            except smtplib.SMTPServerDisconnected:
                pass

    return open_session


def set_station(conn, station_id: str, **columns) -> None:
    assignments = ", ".join(f"{name} = %({name})s" for name in columns)
    with conn.cursor() as cur:
        cur.execute(
            f"UPDATE net119.stations SET {assignments} WHERE id = %(station_id)s",
            {**columns, "station_id": station_id},
        )
    conn.commit()


def set_user(conn, user_id: int, **columns) -> None:
    assignments = ", ".join(f"{name} = %({name})s" for name in columns)
    with conn.cursor() as cur:
        cur.execute(
            f"UPDATE net119.users SET {assignments} WHERE id = %(user_id)s",
            {**columns, "user_id": user_id},
        )
    conn.commit()


def add_reminder(
    conn,
    user_id: int,
    *,
    outcome: str,
    sent_at: dt.datetime | None,
    offset_days: int | None = 0,
    kind: str = "auto",
    recipient: str | None = None,
    status_code: str | None = None,
    bounce_category: str | None = None,
    diagnostic: str | None = None,
    bounced_at: dt.datetime | None = None,
    failure_reason: str | None = None,
) -> int:
    """Insert a reminder of the user's current cycle; ``recipient`` defaults to their address."""
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO net119.reminders (
                user_id, cycle_expires_at, offset_days, kind, outcome, recipient,
                sent_at, outcome_at, status_code, bounce_category, diagnostic,
                bounced_at, failure_reason
            )
            SELECT u.id, u.expires_at, %(offset)s, %(kind)s, %(outcome)s,
                   COALESCE(%(recipient)s, u.email), %(sent_at)s,
                   COALESCE(%(bounced_at)s, %(sent_at)s, now()), %(status_code)s,
                   %(category)s, %(diagnostic)s, %(bounced_at)s, %(failure_reason)s
            FROM net119.users AS u WHERE u.id = %(user_id)s
            RETURNING id
            """,
            {
                "user_id": user_id,
                "offset": offset_days if kind == "auto" else None,
                "kind": kind,
                "outcome": outcome,
                "recipient": recipient,
                "sent_at": sent_at,
                "status_code": status_code,
                "category": bounce_category,
                "diagnostic": diagnostic,
                "bounced_at": bounced_at,
                "failure_reason": failure_reason,
            },
        )
        reminder_id = cur.fetchone()[0]
    conn.commit()
    return reminder_id


def bounce(
    conn,
    user_id: int,
    sent_at: dt.datetime,
    *,
    offset_days: int = 0,
    status_code: str = "5.1.1",
    category: str = "user_unknown",
    diagnostic: str = "550 5.1.1 User unknown",
) -> int:
    """Insert a reminder that bounced one hour after it was sent."""
    return add_reminder(
        conn,
        user_id,
        outcome="undeliverable",
        sent_at=sent_at,
        offset_days=offset_days,
        status_code=status_code,
        bounce_category=category,
        diagnostic=diagnostic,
        bounced_at=sent_at + dt.timedelta(hours=1),
    )


def parse(mail) -> EmailMessage:
    return email.message_from_bytes(mail.data, policy=policy.default)


def reports_to(server, address: str) -> list[EmailMessage]:
    return [parse(m) for m in server.messages if address in m.recipients]


def attachments(message: EmailMessage) -> dict[str, EmailMessage]:
    return {part.get_filename(): part for part in message.iter_attachments()}


def csv_attachment(message: EmailMessage) -> tuple[str, bytes]:
    [(name, part)] = [
        (name, part)
        for name, part in attachments(message).items()
        if name.endswith(".csv")
    ]
    return name, part.get_payload(decode=True)


def read_csv(data: bytes, encoding: str) -> list[dict[str, str]]:
    """Decode the CSV as Excel in Japanese does: BOM means UTF-8, else CP932."""
    text = data.decode(encoding)
    return list(csv.DictReader(io.StringIO(text, newline="")))


def report_time(day: dt.date) -> dt.datetime:
    """Return 09:00 Asia/Tokyo of ``day``, the reference time of a scheduled run."""
    return jst(day.year, day.month, day.day, 9)
