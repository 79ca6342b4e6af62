"""The reminder ledger: claims, retries and interrupted sends, without Airflow."""

from __future__ import annotations

import datetime as dt
import smtplib
from contextlib import contextmanager

import pytest

from factories import add_station, add_user, history, jst
from net119 import reminders
from net119.config import Settings
from net119.sending import SmtpUnavailable

RUN_DATE = dt.date(2026, 12, 4)
NOW = dt.datetime(2026, 12, 4, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))


def session_factory(server):
    @contextmanager
    def open_session():
        client = smtplib.SMTP(server.host, server.port, timeout=10)
        try:
            yield client
        finally:
            client.close()

    return open_session


def refused_session():
    @contextmanager
    def open_session():
        raise ConnectionRefusedError("connection refused")
        yield  # pragma: no cover

    return open_session


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(batch_size=2)


def send(db, open_session, settings, run_id="run-1"):
    return reminders.send_step(
        db, open_session, offset=-60, run_date=RUN_DATE, now=NOW, settings=settings, run_id=run_id
    )


def test_send_step_batches_over_keyset(db, smtp_server, settings) -> None:
    add_station(db)
    for user_id in range(1, 6):
        add_user(db, user_id, jst(2027, 2, 2, 10))

    counts = send(db, session_factory(smtp_server), settings)

    assert counts.sent == 5
    assert counts.batches == 3
    assert len(smtp_server.messages) == 5


def test_send_step_rerun_sends_nothing(db, smtp_server, settings) -> None:
    add_station(db)
    add_user(db, 1, jst(2027, 2, 2, 10))

    send(db, session_factory(smtp_server), settings)
    counts = send(db, session_factory(smtp_server), settings, run_id="run-2")

    assert counts.due == 0
    assert len(smtp_server.messages) == 1


def test_server_down_leaves_steps_failed(db, smtp_server, settings) -> None:
    add_station(db)
    add_user(db, 1, jst(2027, 2, 2, 10))
    add_user(db, 2, jst(2027, 2, 2, 10))

    with pytest.raises(SmtpUnavailable):
        send(db, refused_session(), settings)

    assert history(db, 1) == [(-90, "skipped"), (-60, "failed")]
    assert history(db, 2) == [(-90, "skipped"), (-60, "failed")]
    # The next attempt, once the server is back, sends both with the same Message-ID.
    with db.cursor() as cur:
        cur.execute("SELECT message_id FROM net119.reminders WHERE offset_days = -60 ORDER BY user_id")
        before = [row[0] for row in cur.fetchall()]
    counts = send(db, session_factory(smtp_server), settings, run_id="run-2")
    assert counts.sent == 2
    received = sorted(m.data.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode() for m in smtp_server.messages)
    assert received == sorted(before)


def _leave_claim(db, claimed_ago: str, run_id: str = "run-1") -> None:
    """Insert a 'sending' row for user 1's -60 step, as a crashed task leaves it."""
    with db.cursor() as cur:
        cur.execute(
            """
            INSERT INTO net119.reminders (user_id, cycle_expires_at, offset_days, kind, outcome,
                                          claimed_at, run_id, message_id, verp_token, recipient)
            SELECT id, expires_at, -60, 'auto', 'sending', now() - %s::interval, %s,
                   '<x1@e.jp>', 'x1', email
            FROM net119.users WHERE id = 1
            """,
            (claimed_ago, run_id),
        )
    db.commit()


def test_interrupted_claim_retried_by_same_run(db, smtp_server, settings) -> None:
    add_station(db)
    add_user(db, 1, jst(2027, 2, 2, 10))
    _leave_claim(db, "3 minutes")

    other_run = send(db, session_factory(smtp_server), settings, run_id="run-2")
    same_run = send(db, session_factory(smtp_server), settings, run_id="run-1")

    assert other_run.sent == 0
    assert same_run.sent == 1
    assert history(db, 1)[-1] == (-60, "sent")


def test_live_claim_of_same_run_not_taken(db, smtp_server, settings) -> None:
    add_station(db)
    add_user(db, 1, jst(2027, 2, 2, 10))
    # A claim made seconds ago may belong to a task attempt that still sends.
    _leave_claim(db, "5 seconds")

    counts = send(db, session_factory(smtp_server), settings, run_id="run-1")

    assert counts.sent == 0
    assert smtp_server.messages == []


def test_future_logical_time_not_taking_claims(db, smtp_server, settings) -> None:
    add_station(db)
    add_user(db, 1, jst(2027, 2, 2, 10))
    _leave_claim(db, "5 seconds", run_id="run-live")
    # A run whose logical time lies a day ahead of the database clock.
    far_now = NOW + dt.timedelta(days=1)

    counts = reminders.send_step(
        db, session_factory(smtp_server), offset=-60, run_date=RUN_DATE, now=far_now,
        settings=settings, run_id="run-ahead",
    )

    assert counts.sent == 0
    assert smtp_server.messages == []


def test_451_and_550_mid_batch(db, smtp_server) -> None:
    add_station(db)
    for user_id in range(1, 7):
        add_user(db, user_id, jst(2027, 2, 2, 10))
    smtp_server.handler.rcpt_replies["user3@docomo.ne.jp"] = "451 4.3.0 Temporary local problem"
    smtp_server.handler.rcpt_replies["user4@docomo.ne.jp"] = "550 5.1.1 <user4@docomo.ne.jp>: User unknown"

    counts = send(db, session_factory(smtp_server), Settings(batch_size=100))

    assert (counts.sent, counts.failed, counts.undeliverable) == (4, 1, 1)
    assert sorted(r for m in smtp_server.messages for r in m.recipients) == [
        "user1@docomo.ne.jp", "user2@docomo.ne.jp", "user5@docomo.ne.jp", "user6@docomo.ne.jp",
    ]
    with db.cursor() as cur:
        cur.execute(
            "SELECT user_id, outcome, smtp_code, status_code FROM net119.reminders "
            "WHERE offset_days = -60 AND user_id IN (3, 4) ORDER BY user_id"
        )
        assert cur.fetchall() == [(3, "failed", 451, "4.3.0"), (4, "undeliverable", 550, "5.1.1")]


def test_sender_refused_fails_step_visibly(db, smtp_server) -> None:
    add_station(db)
    for user_id in range(1, 4):
        add_user(db, user_id, jst(2027, 2, 2, 10))
    smtp_server.handler.mail_from_reply = "550 5.7.1 Sender address rejected: not permitted"

    with pytest.raises(SmtpUnavailable, match="refuses the sender address"):
        send(db, session_factory(smtp_server), Settings(batch_size=100))

    assert [history(db, uid)[-1] for uid in range(1, 4)] == [(-60, "failed")] * 3
    assert smtp_server.messages == []


def test_smtp_session_applies_timeout(smtp_server, monkeypatch) -> None:
    import asyncio
    import socket
    import time

    from net119 import runtime

    async def stall(server, session, envelope):
        await asyncio.sleep(5)
        return "250 OK"

    monkeypatch.setattr(smtp_server.handler, "handle_DATA", stall)
    monkeypatch.setenv("AIRFLOW_CONN_NET119_SMTP", smtp_server.airflow_conn())
    monkeypatch.setenv("NET119_SMTP_TIMEOUT", "1")

    started = time.monotonic()
    with pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)):
        with runtime.smtp_session() as client:
            client.sendmail("bounce+x@net119.example.jp", ["user@docomo.ne.jp"], b"Subject: t\r\n\r\nx\r\n")
    assert time.monotonic() - started < 4
