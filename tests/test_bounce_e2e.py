"""Bounce ingestion end to end: the daily DAG sends, reads the bounces, applies them.

Day 1 sends reminders to the aiosmtpd server. DSNs and automatic replies are
built from the mails it captured (their real envelope sender and
Message-ID) and delivered to a real Maildir or to the real Dovecot. Day 2
runs the DAG again with the mailbox configured, and the reminder history,
the users' lapse reasons and the capabilities view show the result.
"""

from __future__ import annotations

import datetime as dt
import email
import imaplib
import json
from email import policy
from pathlib import Path

import pytest
from bounce_mail import (
    DsnRecipient,
    build_auto_reply,
    build_dsn,
    fill_maildir,
    pending_count,
    processed_count,
)
from factories import add_station, add_user, jst, user_state
from net119 import db as net119_db
from net119.devtools.imap_server import DovecotServer

UTC = dt.UTC
DAY_1 = dt.date(2026, 12, 4)
DAY_2 = dt.date(2026, 12, 5)
BOUNCE_RECEIVED = jst(2026, 12, 4, 12)

# Users and the step that day 1 sends them.
LAPSED_BOUNCED = 1  # expired 4 Nov: lapsed on day 1, then 30日後 bounces
ACTIVE_BOUNCED = 2  # 60日前, bounces without VERP (Message-ID only)
AUTO_REPLIED = 3  # 60日前, a vacation notice comes back
DELAYED = 4  # 60日前, only a delay notice comes back
QUIET = 5  # 60日前, nothing comes back
LAPSED_FILTERED = 6  # expired 4 Nov, rejected by the carrier's reject settings


def run_dag(day: dt.date):
    """Run the DAG for Asia/Tokyo date ``day`` at its scheduled 09:00 JST."""
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder="dags/net119_daily_reminders.py")
    dag = dagbag.get_dag("net119_daily_reminders")
    logical = dt.datetime.combine(day, dt.time(0, 0), tzinfo=UTC)
    dag_run = dag.test(logical_date=logical)
    assert dag_run.state == "success", f"run for {day} ended {dag_run.state}"
    return dag_run


def return_value(dag_run, task_id: str) -> object:
    """Return the XCom return value of one task of ``dag_run``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        )
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture
def conn(airflow_env, db_url, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NET119_BOUNCES", raising=False)
    monkeypatch.delenv("NET119_BOUNCE_MAILDIR", raising=False)
    connection = net119_db.connect(db_url)
    add_station(connection)
    add_user(connection, LAPSED_BOUNCED, jst(2026, 11, 4, 8))
    add_user(connection, ACTIVE_BOUNCED, jst(2027, 2, 2, 10))
    add_user(connection, AUTO_REPLIED, jst(2027, 2, 2, 10), email="sanae@example.com")
    add_user(connection, DELAYED, jst(2027, 2, 2, 10), email="shiro@slow.example.net")
    add_user(connection, QUIET, jst(2027, 2, 2, 10))
    add_user(connection, LAPSED_FILTERED, jst(2026, 11, 4, 8))
    yield connection
    connection.close()


def address(user_id: int) -> str:
    return {
        AUTO_REPLIED: "sanae@example.com",
        DELAYED: "shiro@slow.example.net",
    }.get(user_id, f"user{user_id}@docomo.ne.jp")


def captured(smtp, user_id: int) -> tuple[str, str, str]:
    """Return (envelope sender, Message-ID, header block) of the mail to a user."""
    [mail] = [m for m in smtp.messages if address(user_id) in m.recipients]
    parsed = email.message_from_bytes(mail.data, policy=policy.compat32)
    header_block = mail.data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return mail.envelope_from, str(parsed["Message-ID"]), header_block.decode("ascii")


def bounces_for_day_1(smtp) -> list[bytes]:
    """Build the messages that come back for day 1's mails."""
    messages = []
    sender, _message_id, headers = captured(smtp, LAPSED_BOUNCED)
    messages.append(
        build_dsn(
            [DsnRecipient(address(LAPSED_BOUNCED))],
            received_at=BOUNCE_RECEIVED,
            to=sender,
            returned_headers=headers,
        )
    )

    # Lost its VERP address on the way back; the returned headers remain.
    _sender, _message_id, headers = captured(smtp, ACTIVE_BOUNCED)
    messages.append(
        build_dsn(
            [
                DsnRecipient(
                    address(ACTIVE_BOUNCED),
                    status="5.2.2",
                    diagnostic="smtp; 552 5.2.2 Mailbox full",
                )
            ],
            received_at=BOUNCE_RECEIVED,
            returned_headers=headers,
        )
    )

    sender, message_id, _headers = captured(smtp, AUTO_REPLIED)
    messages.append(
        build_auto_reply(
            sender=address(AUTO_REPLIED),
            to=sender,
            in_reply_to=message_id,
            received_at=BOUNCE_RECEIVED,
        )
    )

    sender, _message_id, headers = captured(smtp, DELAYED)
    messages.append(
        build_dsn(
            [
                DsnRecipient(
                    address(DELAYED),
                    action="delayed",
                    status="4.4.1",
                    diagnostic="smtp; 451 4.4.1 connection timed out",
                )
            ],
            received_at=BOUNCE_RECEIVED,
            to=sender,
            returned_headers=headers,
        )
    )

    sender, _message_id, headers = captured(smtp, LAPSED_FILTERED)
    messages.append(
        build_dsn(
            [
                DsnRecipient(
                    address(LAPSED_FILTERED),
                    diagnostic=(
                        "smtp; 550 5.7.1 Message rejected by the recipient's "
                        "reject settings"
                    ),
                    status="5.7.1",
                )
            ],
            received_at=BOUNCE_RECEIVED,
            to=sender,
            returned_headers=headers,
        )
    )

    return messages


def latest_reminder(conn, user_id: int) -> dict[str, object]:
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT offset_days, outcome, status_code, bounce_category, diagnostic
            FROM net119.reminder_history
            WHERE user_id = %s AND outcome <> 'skipped'
            ORDER BY id DESC LIMIT 1
            """,
            (user_id,),
        )
        names = [column.name for column in cur.description]
        row = cur.fetchone()
    conn.commit()
    return dict(zip(names, row, strict=True))


def capabilities(conn, user_id: int) -> tuple[bool, bool, bool, bool]:
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT emergency_call, practice_call, call_back, mail_management
            FROM net119.user_capabilities WHERE user_id = %s
            """,
            (user_id,),
        )
        row = cur.fetchone()
    conn.commit()
    return row


def snapshot(conn) -> dict[str, list[tuple]]:
    tables = (
        "reminders",
        "users",
        "status_events",
        "bounce_messages",
        "bounce_results",
    )
    rows = {}
    with conn.cursor() as cur:
        for table in tables:
            cur.execute(f"SELECT * FROM net119.{table} ORDER BY id")  # noqa: S608
            rows[table] = cur.fetchall()
    conn.commit()
    return rows


def imap_connection_json(server: DovecotServer) -> str:
    return json.dumps(
        {
            "conn_type": "imap",
            "host": server.host,
            "port": server.port,
            "login": server.user,
            "password": server.password,
            "extra": {"ssl": False, "processed_mailbox": "processed"},
        }
    )


def append_imap(server: DovecotServer, messages: list[bytes]) -> None:
    connection = imaplib.IMAP4(server.host, server.port, timeout=10)
    try:
        connection.login(server.user, server.password)
        for raw in messages:
            connection.append(
                "INBOX", None, None, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            )
    finally:
        connection.logout()


def unseen_imap(server: DovecotServer) -> int:
    connection = imaplib.IMAP4(server.host, server.port, timeout=10)
    try:
        connection.login(server.user, server.password)
        connection.select("INBOX")
        _status, data = connection.search(None, "UNSEEN")
        return len(data[0].split())
    finally:
        connection.logout()


def check_day_2(conn, ingest_counts: object) -> None:
    """Check what day 2's ingestion did to the reminders and the users."""
    assert ingest_counts == {
        "matched_failure": 3,
        "matched_not_failure": 0,
        "auto_reply": 1,
        "delayed": 1,
        "unmatched": 0,
        "ignored": 0,
        "quarantined": 0,
        "already_seen": 0,
        "reminders_undeliverable": 3,
        "lapse_reasons_changed": 2,
        "errors": 0,
        "ack_failures": 0,
        "source_errors": 0,
    }

    lapsed = latest_reminder(conn, LAPSED_BOUNCED)
    assert lapsed["offset_days"] == 30
    assert lapsed["outcome"] == "undeliverable"
    assert lapsed["status_code"] == "5.1.1"
    assert lapsed["bounce_category"] == "user_unknown"
    assert "User unknown" in lapsed["diagnostic"]
    assert user_state(conn, LAPSED_BOUNCED) == ("lapsed", "undeliverable")
    assert capabilities(conn, LAPSED_BOUNCED) == (True, True, False, False)

    filtered = latest_reminder(conn, LAPSED_FILTERED)
    assert filtered["outcome"] == "undeliverable"
    assert filtered["bounce_category"] == "filtered"
    assert user_state(conn, LAPSED_FILTERED) == ("lapsed", "undeliverable")

    active = latest_reminder(conn, ACTIVE_BOUNCED)
    assert active["offset_days"] == -60
    assert active["outcome"] == "undeliverable"
    assert active["bounce_category"] == "mailbox_full"
    # A bounce never lapses anyone: the user's validity has not ended.
    assert user_state(conn, ACTIVE_BOUNCED) == ("active", None)
    assert capabilities(conn, ACTIVE_BOUNCED) == (True, True, True, True)

    for user_id in (AUTO_REPLIED, DELAYED, QUIET):
        assert latest_reminder(conn, user_id)["outcome"] == "sent"
        assert user_state(conn, user_id) == ("active", None)

    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT user_id, old_reason, new_reason FROM net119.status_events
            WHERE cause = 'bounce' ORDER BY user_id
            """
        )
        assert cur.fetchall() == [
            (LAPSED_BOUNCED, "not_renewed", "undeliverable"),
            (LAPSED_FILTERED, "not_renewed", "undeliverable"),
        ]
        cur.execute(
            """
            SELECT r.user_id, b.correlated_by, b.effect
            FROM net119.bounce_results AS b
            JOIN net119.reminders AS r ON r.id = b.reminder_id
            ORDER BY r.user_id
            """
        )
        assert cur.fetchall() == [
            (LAPSED_BOUNCED, "verp", "marked_undeliverable"),
            (ACTIVE_BOUNCED, "message_id", "marked_undeliverable"),
            (AUTO_REPLIED, "verp", "none"),
            (DELAYED, "verp", "none"),
            (LAPSED_FILTERED, "verp", "marked_undeliverable"),
        ]
        cur.execute("SELECT count(*) FROM net119.unmatched_bounces")
        assert cur.fetchone()[0] == 0
    conn.commit()


def test_bounce_e2e_from_maildir(
    conn, airflow_env, tmp_path: Path, monkeypatch
) -> None:
    smtp = airflow_env
    day_1 = run_dag(DAY_1)
    assert return_value(day_1, "ingest_bounces")["source_errors"] == 0
    assert user_state(conn, LAPSED_BOUNCED) == ("lapsed", "not_renewed")
    box = fill_maildir(tmp_path / "bounces", bounces_for_day_1(smtp))
    monkeypatch.setenv("NET119_BOUNCE_MAILDIR", str(box))
    sent_on_day_1 = len(smtp.messages)

    day_2 = run_dag(DAY_2)

    check_day_2(conn, return_value(day_2, "ingest_bounces"))
    assert pending_count(box) == 0
    assert processed_count(box) == 5
    after_day_2 = snapshot(conn)

    rerun = run_dag(DAY_2)

    assert return_value(rerun, "ingest_bounces")["matched_failure"] == 0
    assert snapshot(conn) == after_day_2
    assert len(smtp.messages) == sent_on_day_1


def test_bounce_e2e_from_imap(
    conn, airflow_env, tmp_path: Path, monkeypatch, imap_server: DovecotServer
) -> None:
    smtp = airflow_env
    run_dag(DAY_1)
    append_imap(imap_server, bounces_for_day_1(smtp))
    monkeypatch.setenv("AIRFLOW_CONN_NET119_BOUNCES", imap_connection_json(imap_server))
    # The connection wins: this Maildir must stay unread.
    ignored_box = fill_maildir(tmp_path / "unused", bounces_for_day_1(smtp)[:1])
    monkeypatch.setenv("NET119_BOUNCE_MAILDIR", str(ignored_box))

    day_2 = run_dag(DAY_2)

    check_day_2(conn, return_value(day_2, "ingest_bounces"))
    assert unseen_imap(imap_server) == 0
    assert pending_count(ignored_box) == 1
    after_day_2 = snapshot(conn)

    rerun = run_dag(DAY_2)

    assert return_value(rerun, "ingest_bounces")["matched_failure"] == 0
    assert snapshot(conn) == after_day_2
