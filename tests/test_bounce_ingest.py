"""Bounce ingestion against a real PostgreSQL, real Maildir folders and Dovecot."""

from __future__ import annotations

import datetime as dt
import imaplib
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from bounce_mail import (
    DsnRecipient,
    build_auto_reply,
    build_dsn,
    fill_maildir,
    original_headers,
    pending_count,
    processed_count,
    verp_address,
)
from factories import add_station, add_user, jst, user_state
from net119 import transitions
from net119.bounces.configured import (
    MAILDIR_ENV,
    ingest_configured,
    open_configured_source,
)
from net119.bounces.ingest import IngestCounts, IngestSettings, arrival_time, ingest
from net119.bounces.sources import (
    BounceSource,
    ImapConfig,
    ImapSource,
    MaildirConfig,
    MaildirSource,
    RawMessage,
)
from net119.devtools.imap_server import DovecotServer
from net119.schedule import TOKYO
from net119.sending import result_from_reply

SAMPLES_DIR = Path(__file__).parent / "data" / "bounces"
NOW = jst(2026, 12, 4, 9)


def at(
    year: int, month: int, day: int, hour: int, minute: int, second: int
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=TOKYO)


@pytest.fixture
def conn(db):
    add_station(db)
    return db


def add_reminder(
    conn,
    user_id: int,
    *,
    sent_at: dt.datetime | None,
    offset: int = -30,
    outcome: str = "sent",
    recipient: str | None = None,
    token: str | None = None,
    message_id: str | None = None,
) -> int:
    """Insert one reminder of the user's current cycle and return its id."""
    token = token or secrets.token_hex(10)
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO net119.reminders (
                user_id, cycle_expires_at, offset_days, kind, outcome, recipient,
                message_id, verp_token, attempts, claimed_at, sent_at,
                confirmed_at
            )
            SELECT u.id, u.expires_at, %(offset)s, 'auto', %(outcome)s,
                   coalesce(%(recipient)s, u.email), %(message_id)s, %(token)s, 1,
                   %(sent_at)s, %(sent_at)s,
                   CASE WHEN %(outcome)s = 'confirmed' THEN %(sent_at)s END
            FROM net119.users AS u WHERE u.id = %(user_id)s
            RETURNING id
            """,
            {
                "user_id": user_id,
                "offset": offset,
                "outcome": outcome,
                "recipient": recipient,
                "token": token,
                "message_id": message_id or f"<{token}@net119.example.jp>",
                "sent_at": sent_at,
            },
        )
        reminder_id = cur.fetchone()[0]
    conn.commit()
    return reminder_id


def reminder(conn, reminder_id: int) -> dict[str, object]:
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT outcome, status_code, bounce_category, diagnostic, bounced_at,
                   smtp_code, verp_token, message_id, recipient, outcome_at
            FROM net119.reminders WHERE id = %s
            """,
            (reminder_id,),
        )
        names = [column.name for column in cur.description]
        return dict(zip(names, cur.fetchone(), strict=True))


def results_of(conn) -> list[dict[str, object]]:
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT b.recipient, b.reminder_id, b.correlated_by, b.action,
                   b.status_code, b.category, b.is_final_failure, b.effect,
                   m.outcome AS message_outcome, m.kind
            FROM net119.bounce_results AS b
            JOIN net119.bounce_messages AS m ON m.id = b.bounce_message_id
            ORDER BY b.bounce_message_id, b.position
            """
        )
        names = [column.name for column in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def table_snapshot(conn) -> dict[str, list[tuple]]:
    """Return every row that ingestion may write, for before/after comparisons."""
    snapshot = {}
    queries = {
        "reminders": "SELECT * FROM net119.reminders ORDER BY id",
        "users": "SELECT * FROM net119.users ORDER BY id",
        "status_events": "SELECT * FROM net119.status_events ORDER BY id",
        "bounce_messages": (
            "SELECT id, source_key, outcome, duplicate_of FROM net119.bounce_messages "
            "ORDER BY id"
        ),
        "bounce_results": "SELECT * FROM net119.bounce_results ORDER BY id",
    }
    with conn.cursor() as cur:
        for name, query in queries.items():
            cur.execute(query)
            snapshot[name] = cur.fetchall()
    conn.commit()
    return snapshot


def run_ingest(
    conn, path: Path, *, settings: IngestSettings | None = None
) -> IngestCounts:
    with MaildirSource(MaildirConfig(path)) as source:
        return ingest(conn, source, now=NOW, run_id="test-run", settings=settings)


def user_failure_dsn(
    address: str,
    *,
    token: str | None,
    message_id: str | None,
    sent_at: dt.datetime | None,
    received_at: dt.datetime,
    recipient: DsnRecipient | None = None,
) -> bytes:
    return build_dsn(
        [recipient or DsnRecipient(address)],
        received_at=received_at,
        to=verp_address(token) if token else "bounce@net119.example.jp",
        returned_headers=(
            original_headers(to=address, message_id=message_id, date=sent_at)
            if message_id or sent_at
            else None
        ),
    )


# --- Correlation -------------------------------------------------------------


def test_ingest_correlates_by_verp(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    sent = jst(2026, 12, 3, 9, 5)
    reminder_id = add_reminder(conn, 1, sent_at=sent, token="v1token")
    received = jst(2026, 12, 3, 9, 30)
    raw = user_failure_dsn(
        "user1@docomo.ne.jp",
        token="v1token",
        message_id=None,
        sent_at=None,
        received_at=received,
    )

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    row = reminder(conn, reminder_id)
    assert row["outcome"] == "undeliverable"
    assert row["status_code"] == "5.1.1"
    assert row["bounce_category"] == "user_unknown"
    assert row["smtp_code"] == 550
    assert "User unknown" in row["diagnostic"]
    assert row["bounced_at"] == received
    [result] = results_of(conn)
    assert result["reminder_id"] == reminder_id
    assert result["correlated_by"] == "verp"
    assert result["effect"] == "marked_undeliverable"
    assert result["message_outcome"] == "matched"
    assert counts.matched_failure == 1
    assert counts.reminders_undeliverable == 1
    assert processed_count(tmp_path / "box") == 1


def test_ingest_correlates_by_message_id(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    reminder_id = add_reminder(
        conn, 1, sent_at=jst(2026, 12, 3, 9, 5), message_id="<m1@net119.example.jp>"
    )
    # Returned to the plain bounce address, so only the Message-ID is left.
    raw = user_failure_dsn(
        "user1@docomo.ne.jp",
        token=None,
        message_id="<m1@net119.example.jp>",
        sent_at=None,
        received_at=jst(2026, 12, 3, 10),
    )

    run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert reminder(conn, reminder_id)["outcome"] == "undeliverable"
    [result] = results_of(conn)
    assert result["correlated_by"] == "message_id"
    assert result["reminder_id"] == reminder_id


def test_ingest_unknown_token_uses_message_id(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    reminder_id = add_reminder(
        conn, 1, sent_at=jst(2026, 12, 3, 9, 5), message_id="<m2@net119.example.jp>"
    )
    raw = user_failure_dsn(
        "user1@docomo.ne.jp",
        token="notours",
        message_id="<m2@net119.example.jp>",
        sent_at=None,
        received_at=jst(2026, 12, 3, 10),
    )

    run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    [result] = results_of(conn)
    assert result["correlated_by"] == "message_id"
    assert result["reminder_id"] == reminder_id


def test_ingest_correlates_by_recipient_time(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10), email="Taro..Yamada.@docomo.ne.jp")
    older = add_reminder(conn, 1, sent_at=jst(2026, 11, 14, 9, 5), offset=-50)
    latest = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9, 5), offset=-30)
    # No VERP token and no returned headers; the server lower-cased the address.
    raw = user_failure_dsn(
        "taro..yamada.@docomo.ne.jp",
        token=None,
        message_id=None,
        sent_at=None,
        received_at=jst(2026, 12, 4, 7),
    )

    run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert reminder(conn, latest)["outcome"] == "undeliverable"
    assert reminder(conn, older)["outcome"] == "sent"
    [result] = results_of(conn)
    assert result["correlated_by"] == "recipient_time"
    assert result["reminder_id"] == latest


def test_ingest_recipient_time_uses_returned_date(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    older = add_reminder(conn, 1, sent_at=jst(2026, 11, 14, 9, 5), offset=-50)
    latest = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9, 5), offset=-30)
    # The original's Date names the older send, though the bounce came later.
    raw = user_failure_dsn(
        "user1@docomo.ne.jp",
        token=None,
        message_id="<unknown@example.org>",
        sent_at=jst(2026, 11, 14, 9, 4),
        received_at=jst(2026, 12, 4, 7),
    )

    run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert reminder(conn, older)["outcome"] == "undeliverable"
    assert reminder(conn, latest)["outcome"] == "sent"


def test_ingest_recipient_outside_window_unmatched(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    reminder_id = add_reminder(conn, 1, sent_at=jst(2026, 11, 1, 9, 5))
    raw = user_failure_dsn(
        "user1@docomo.ne.jp",
        token=None,
        message_id=None,
        sent_at=None,
        received_at=jst(2026, 12, 4, 7),
    )

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert reminder(conn, reminder_id)["outcome"] == "sent"
    assert counts.unmatched == 1
    wide = IngestSettings(match_window_days=40)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM net119.bounce_results")
        cur.execute("DELETE FROM net119.bounce_messages")
    conn.commit()
    fill_maildir(tmp_path / "box2", [raw])
    run_ingest(conn, tmp_path / "box2", settings=wide)
    assert reminder(conn, reminder_id)["outcome"] == "undeliverable"


def test_ingest_unknown_token_skips_recipient(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    reminder_id = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9, 5))
    # A forged DSN to the bounce address, naming the user's address.
    raw = user_failure_dsn(
        "user1@docomo.ne.jp",
        token="forgedtoken",
        message_id=None,
        sent_at=None,
        received_at=jst(2026, 12, 3, 10),
    )

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert reminder(conn, reminder_id)["outcome"] == "sent"
    [result] = results_of(conn)
    assert result["reminder_id"] is None
    assert result["correlated_by"] is None
    assert result["message_outcome"] == "unmatched"
    assert counts.unmatched == 1
    assert counts.reminders_undeliverable == 0


@pytest.mark.parametrize(("failures", "matched"), [(5, True), (6, False)])
def test_ingest_many_failures_cap_recipient_time(
    conn, tmp_path: Path, failures: int, matched: bool
) -> None:
    sent = jst(2026, 12, 3, 9, 5)
    reminder_ids = []
    for user_id in range(1, failures + 1):
        add_user(conn, user_id, jst(2027, 1, 3, 10))
        reminder_ids.append(add_reminder(conn, user_id, sent_at=sent))
    raw = build_dsn(
        [DsnRecipient(f"user{n}@docomo.ne.jp") for n in range(1, failures + 1)],
        received_at=jst(2026, 12, 3, 13),
    )

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    expected_outcome = "undeliverable" if matched else "sent"
    for reminder_id in reminder_ids:
        assert reminder(conn, reminder_id)["outcome"] == expected_outcome
    results = results_of(conn)
    expected_ids = reminder_ids if matched else [None] * failures
    assert [r["reminder_id"] for r in results] == expected_ids
    assert counts.reminders_undeliverable == (failures if matched else 0)
    assert counts.unmatched == (0 if matched else 1)


def test_ingest_forwarded_address_by_verp(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10), email="shiro@example.jp")
    reminder_id = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9, 5), token="fwd1")
    # The address forwards to a name we never mailed, which bounces.
    raw = user_failure_dsn(
        "shiro@example.jp",
        token="fwd1",
        message_id=None,
        sent_at=None,
        received_at=jst(2026, 12, 3, 9, 20),
        recipient=DsnRecipient("shiro.old@forward.example.net"),
    )

    run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert reminder(conn, reminder_id)["outcome"] == "undeliverable"
    [result] = results_of(conn)
    assert result["recipient"] == "shiro.old@forward.example.net"
    assert result["correlated_by"] == "verp"


def test_ingest_forwarded_by_original_recipient(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10), email="shiro@example.jp")
    reminder_id = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9, 5))
    raw = user_failure_dsn(
        "shiro@example.jp",
        token=None,
        message_id=None,
        sent_at=None,
        received_at=jst(2026, 12, 3, 9, 20),
        recipient=DsnRecipient(
            "shiro.old@forward.example.net", original="shiro@example.jp"
        ),
    )

    run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert reminder(conn, reminder_id)["outcome"] == "undeliverable"
    [result] = results_of(conn)
    assert result["correlated_by"] == "recipient_time"


def test_ingest_forwarded_sample_file(conn, tmp_path: Path) -> None:
    sample = (SAMPLES_DIR / "forwarded_final_recipient.eml").read_bytes()
    expected = json.loads(
        (SAMPLES_DIR / "forwarded_final_recipient.expected.json").read_text("utf-8")
    )
    add_user(conn, 1, jst(2027, 1, 3, 10), email="shiro@example.jp")
    reminder_id = add_reminder(
        conn,
        1,
        sent_at=jst(2026, 12, 2, 9, 16),
        token=expected["verp_token"],
        message_id=expected["message_id"],
    )

    run_ingest(conn, fill_maildir(tmp_path / "box", [sample]))

    row = reminder(conn, reminder_id)
    assert row["outcome"] == "undeliverable"
    assert row["bounce_category"] == "user_unknown"
    assert row["bounced_at"] == at(2026, 12, 2, 9, 16, 21)


def test_ingest_multi_recipient_mixed(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10), email="rokuro@example.org")
    add_user(conn, 2, jst(2027, 1, 3, 10), email="nana@slow.example.net")
    add_user(conn, 3, jst(2027, 1, 3, 10), email="hachi@example.org")
    sent = jst(2026, 12, 3, 9, 5)
    failed = add_reminder(conn, 1, sent_at=sent)
    delayed = add_reminder(conn, 2, sent_at=sent)
    delivered = add_reminder(conn, 3, sent_at=sent)
    raw = build_dsn(
        [
            DsnRecipient("rokuro@example.org"),
            DsnRecipient(
                "nana@slow.example.net",
                action="delayed",
                status="4.4.1",
                diagnostic="smtp; 451 4.4.1 reply: read error",
            ),
            DsnRecipient(
                "hachi@example.org",
                action="delivered",
                status="2.0.0",
                diagnostic=None,
            ),
        ],
        received_at=jst(2026, 12, 3, 13),
    )

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert reminder(conn, failed)["outcome"] == "undeliverable"
    assert reminder(conn, delayed)["outcome"] == "sent"
    assert reminder(conn, delivered)["outcome"] == "sent"
    results = results_of(conn)
    assert [r["reminder_id"] for r in results] == [failed, delayed, delivered]
    assert [r["correlated_by"] for r in results] == ["recipient_time"] * 3
    assert [r["action"] for r in results] == ["failed", "delayed", "delivered"]
    assert [r["effect"] for r in results] == ["marked_undeliverable", "none", "none"]
    assert [r["is_final_failure"] for r in results] == [True, False, False]
    assert counts.matched_failure == 1
    assert counts.reminders_undeliverable == 1


def test_ingest_delivery_to_own_address_wins(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10), email="jiro@example.jp")
    reminder_id = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9, 5), token="alias1")
    # The address is an alias: its own mailbox got the mail, a forward failed.
    raw = build_dsn(
        [
            DsnRecipient(
                "jiro@example.jp",
                action="delivered",
                status="2.0.0",
                diagnostic=None,
                original="jiro@example.jp",
            ),
            DsnRecipient("jiro.old@gone.example.net", original="jiro@example.jp"),
        ],
        received_at=jst(2026, 12, 3, 9, 30),
        to=verp_address("alias1"),
    )

    run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert reminder(conn, reminder_id)["outcome"] == "sent"
    assert [r["effect"] for r in results_of(conn)] == ["none", "kept_delivered"]


# --- Results that change nothing ----------------------------------------------


@pytest.mark.parametrize(
    ("sample", "bucket"),
    [
        ("autoreply_rfc3834", "auto_reply"),
        ("vacation_japanese", "auto_reply"),
        ("delayed_postfix", "delayed"),
    ],
)
def test_ingest_non_failure_samples_change_nothing(
    conn, tmp_path: Path, sample: str, bucket: str
) -> None:
    expected = json.loads((SAMPLES_DIR / f"{sample}.expected.json").read_text("utf-8"))
    add_user(conn, 1, jst(2026, 11, 1, 10))
    reminder_id = add_reminder(
        conn,
        1,
        sent_at=jst(2026, 12, 2, 9),
        offset=30,
        token=expected["verp_token"],
        message_id=expected["message_id"],
    )
    transitions.apply_expiry_transitions(conn, now=NOW)
    before = reminder(conn, reminder_id)
    raw = (SAMPLES_DIR / f"{sample}.eml").read_bytes()

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert reminder(conn, reminder_id) == before
    assert user_state(conn, 1) == ("lapsed", "not_renewed")
    assert getattr(counts, bucket) == 1
    assert counts.reminders_undeliverable == 0
    [result] = results_of(conn)
    assert result["reminder_id"] == reminder_id
    assert result["correlated_by"] == "verp"
    assert result["effect"] == "none"
    assert result["message_outcome"] == "matched"


def test_ingest_auto_reply_by_in_reply_to(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10), email="ken@example.com")
    reminder_id = add_reminder(
        conn, 1, sent_at=jst(2026, 12, 3, 9), message_id="<ar@net119.example.jp>"
    )
    raw = build_auto_reply(
        sender="ken@example.com",
        to="bounce@net119.example.jp",
        in_reply_to="<ar@net119.example.jp>",
        received_at=jst(2026, 12, 3, 9, 1),
    )

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert reminder(conn, reminder_id)["outcome"] == "sent"
    assert counts.auto_reply == 1
    [result] = results_of(conn)
    assert result["correlated_by"] == "message_id"


def test_ingest_unmatched_delay_is_ignored(conn, tmp_path: Path) -> None:
    raw = build_dsn(
        [DsnRecipient("nobody@slow.example.net", action="delayed", status="4.4.1")],
        received_at=jst(2026, 12, 3, 13),
    )

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert counts.delayed == 1
    with conn.cursor() as cur:
        cur.execute("SELECT outcome, raw IS NULL FROM net119.bounce_messages")
        assert cur.fetchall() == [("ignored", True)]
        cur.execute("SELECT count(*) FROM net119.unmatched_bounces")
        assert cur.fetchone()[0] == 0


def test_ingest_keeps_confirmed_reminder(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    reminder_id = add_reminder(
        conn, 1, sent_at=jst(2026, 12, 3, 9), outcome="confirmed", token="conf1"
    )
    raw = user_failure_dsn(
        "user1@docomo.ne.jp",
        token="conf1",
        message_id=None,
        sent_at=None,
        received_at=jst(2026, 12, 4, 8),
    )

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    row = reminder(conn, reminder_id)
    assert row["outcome"] == "confirmed"
    assert row["bounced_at"] is None
    [result] = results_of(conn)
    assert result["effect"] == "kept_confirmed"
    assert result["is_final_failure"] is True
    assert counts.reminders_undeliverable == 0


# --- Unmatched and quarantined --------------------------------------------------


def test_ingest_unmatched_kept_in_view(conn, tmp_path: Path) -> None:
    raw = user_failure_dsn(
        "stranger@example.org",
        token="unknowntoken",
        message_id="<nope@example.org>",
        sent_at=None,
        received_at=jst(2026, 12, 3, 13),
    )

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert counts.unmatched == 1
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT kind, outcome, verp_token, unmatched_recipients, categories,
                   unmatched_failures, raw_kept, raw_truncated
            FROM net119.unmatched_bounces
            """
        )
        assert cur.fetchall() == [
            (
                "dsn",
                "unmatched",
                "unknowntoken",
                ["stranger@example.org"],
                ["user_unknown"],
                1,
                True,
                False,
            ),
        ]
        cur.execute("SELECT raw FROM net119.bounce_messages")
        assert bytes(cur.fetchone()[0]) == raw
    assert processed_count(tmp_path / "box") == 1


def test_ingest_partly_matched_failure_in_view(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10), email="rokuro@example.org")
    reminder_id = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9))
    raw = build_dsn(
        [DsnRecipient("rokuro@example.org"), DsnRecipient("stranger@example.org")],
        received_at=jst(2026, 12, 3, 13),
    )

    run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert reminder(conn, reminder_id)["outcome"] == "undeliverable"
    with conn.cursor() as cur:
        cur.execute(
            "SELECT outcome, unmatched_recipients, raw_kept "
            "FROM net119.unmatched_bounces"
        )
        assert cur.fetchall() == [("matched", ["stranger@example.org"], True)]


def test_ingest_quarantines_garbage(conn, tmp_path: Path) -> None:
    garbage = (SAMPLES_DIR / "garbage.eml").read_bytes()

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [garbage]))

    assert counts.quarantined == 1
    with conn.cursor() as cur:
        cur.execute(
            "SELECT quarantine_reason, size_bytes, raw_kept "
            "FROM net119.quarantined_bounces"
        )
        assert cur.fetchall() == [("unparseable", len(garbage), True)]
    assert processed_count(tmp_path / "box") == 1


def test_ingest_quarantines_oversized(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    reminder_id = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9), token="big1")
    raw = user_failure_dsn(
        "user1@docomo.ne.jp",
        token="big1",
        message_id=None,
        sent_at=None,
        received_at=jst(2026, 12, 3, 13),
    )
    settings = IngestSettings(max_bounce_bytes=len(raw) - 1, keep_raw_bytes=100)

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [raw]), settings=settings)

    assert counts.quarantined == 1
    assert reminder(conn, reminder_id)["outcome"] == "sent"
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT q.quarantine_reason, q.size_bytes, q.raw_truncated, m.raw, m.kind
            FROM net119.quarantined_bounces AS q
            JOIN net119.bounce_messages AS m ON m.id = q.bounce_message_id
            """
        )
        reason, size, truncated, kept, kind = cur.fetchone()
    assert reason == "oversized"
    assert size == len(raw)
    assert truncated is True
    assert bytes(kept) == raw[:100]
    assert kind is None


def test_ingest_stores_nul_in_diagnostic(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    reminder_id = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9), token="nul1")
    raw = build_dsn(
        [DsnRecipient("user1@docomo.ne.jp", diagnostic="smtp; 550 5.1.1 bad\x00user")],
        received_at=jst(2026, 12, 3, 13),
        to=verp_address("nul1"),
    )

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))

    assert counts.errors == 0
    assert reminder(conn, reminder_id)["diagnostic"] == "550 5.1.1 baduser"


def test_ingest_database_error_leaves_message(conn, tmp_path: Path, bounce_log) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10), email="poison@example.org")
    add_user(conn, 2, jst(2027, 1, 3, 10))
    poisoned = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9), token="poison1")
    healthy = add_reminder(conn, 2, sent_at=jst(2026, 12, 3, 9), token="healthy2")
    # A trigger makes PostgreSQL reject the results of one message.
    with conn.cursor() as cur:
        cur.execute(
            """
            CREATE FUNCTION net119.reject_poison() RETURNS trigger AS $$
            BEGIN
                IF NEW.recipient = 'poison@example.org' THEN
                    RAISE EXCEPTION 'rejected for the test'
                        USING DETAIL = 'recipient ' || NEW.recipient;
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER reject_poison BEFORE INSERT ON net119.bounce_results
                FOR EACH ROW EXECUTE FUNCTION net119.reject_poison();
            """
        )
    conn.commit()
    box = fill_maildir(
        tmp_path / "box",
        [
            user_failure_dsn(
                address,
                token=token,
                message_id=None,
                sent_at=None,
                received_at=jst(2026, 12, 3, 13),
            )
            for address, token in (
                ("poison@example.org", "poison1"),
                ("user2@docomo.ne.jp", "healthy2"),
            )
        ],
    )

    counts = run_ingest(conn, box)

    assert counts.errors == 1
    assert counts.matched_failure == 1
    assert reminder(conn, poisoned)["outcome"] == "sent"
    assert reminder(conn, healthy)["outcome"] == "undeliverable"
    assert pending_count(box) == 1
    assert processed_count(box) == 1
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM net119.bounce_messages")
        assert cur.fetchone()[0] == 1
    errors = messages_at(bounce_log, logging.ERROR)
    assert "rejected for the test" in errors
    assert "poison@example.org" not in errors


# --- Idempotency -------------------------------------------------------------------


def test_ingest_same_maildir_twice_changes_nothing(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2026, 11, 1, 10))
    add_user(conn, 2, jst(2027, 1, 3, 10))
    add_reminder(conn, 1, sent_at=jst(2026, 12, 2, 9), offset=30, token="twice1")
    add_reminder(conn, 2, sent_at=jst(2026, 12, 2, 9), token="twice2")
    transitions.apply_expiry_transitions(conn, now=NOW)
    messages = [
        user_failure_dsn(
            "user1@docomo.ne.jp",
            token="twice1",
            message_id=None,
            sent_at=None,
            received_at=jst(2026, 12, 3, 13),
        ),
        user_failure_dsn(
            "user2@docomo.ne.jp",
            token="twice2",
            message_id=None,
            sent_at=None,
            received_at=jst(2026, 12, 3, 13),
        ),
        build_auto_reply(
            sender="user2@docomo.ne.jp",
            to=verp_address("twice2"),
            in_reply_to=None,
            received_at=jst(2026, 12, 3, 14),
        ),
        (SAMPLES_DIR / "garbage.eml").read_bytes(),
    ]
    box = fill_maildir(tmp_path / "box", messages)

    first = run_ingest(conn, box)
    after_first = table_snapshot(conn)
    # The same bytes delivered again, as after a failed move.
    fill_maildir(box, messages)
    second = run_ingest(conn, box)

    assert first.matched_failure == 2
    assert first.auto_reply == 1
    assert first.quarantined == 1
    assert first.lapse_reasons_changed == 1
    assert user_state(conn, 1) == ("lapsed", "undeliverable")
    assert second.as_dict() == {**IngestCounts().as_dict(), "already_seen": 4}
    assert table_snapshot(conn) == after_first
    assert pending_count(box) == 0
    assert processed_count(box) == 8


class _CrashBeforeAck(BounceSource):
    """Yields the messages of a real source but loses every acknowledgement.

    It stands for a worker that dies between the commit and the acknowledgement.
    """

    def __init__(self, inner: BounceSource) -> None:
        self._inner = inner

    def messages(self) -> Iterator[RawMessage]:
        return self._inner.messages()

    def acknowledge(self, key: str) -> None:
        return None


def test_ingest_unacked_message_acked_next_run(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2026, 11, 1, 10))
    reminder_id = add_reminder(
        conn, 1, sent_at=jst(2026, 12, 2, 9), offset=30, token="crash1"
    )
    transitions.apply_expiry_transitions(conn, now=NOW)
    raw = user_failure_dsn(
        "user1@docomo.ne.jp",
        token="crash1",
        message_id=None,
        sent_at=None,
        received_at=jst(2026, 12, 3, 13),
    )
    box = fill_maildir(tmp_path / "box", [raw])

    with MaildirSource(MaildirConfig(box)) as real:
        crashed = ingest(conn, _CrashBeforeAck(real), now=NOW)
    assert crashed.matched_failure == 1
    assert pending_count(box) == 1
    after_crash = table_snapshot(conn)

    rerun = run_ingest(conn, box)

    assert rerun.already_seen == 1
    assert rerun.matched_failure == 0
    assert pending_count(box) == 0
    assert processed_count(box) == 1
    assert table_snapshot(conn) == after_crash
    assert reminder(conn, reminder_id)["outcome"] == "undeliverable"


def test_ingest_imap_copy_is_already_seen(
    conn, tmp_path: Path, imap_server: DovecotServer
) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9), token="copy1")
    raw = user_failure_dsn(
        "user1@docomo.ne.jp",
        token="copy1",
        message_id=None,
        sent_at=None,
        received_at=jst(2026, 12, 3, 13),
    )
    run_ingest(conn, fill_maildir(tmp_path / "box", [raw]))
    before = table_snapshot(conn)
    append_imap(imap_server, raw)

    with ImapSource(imap_config(imap_server)) as source:
        counts = ingest(conn, source, now=NOW)

    assert counts.already_seen == 1
    after = table_snapshot(conn)
    assert after["reminders"] == before["reminders"]
    assert after["bounce_results"] == before["bounce_results"]
    [original, copy] = after["bounce_messages"]
    assert copy[1].startswith("imap:")
    assert copy[2] == "ignored"
    assert copy[3] == original[0]
    assert unseen_imap(imap_server) == 0


def test_ingest_reused_imap_key_still_processed(
    conn, imap_server: DovecotServer
) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    reminder_id = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9), token="reuse1")
    append_imap(
        imap_server,
        user_failure_dsn(
            "user1@docomo.ne.jp",
            token="reuse1",
            message_id=None,
            sent_at=None,
            received_at=jst(2026, 12, 3, 13),
        ),
    )
    with ImapSource(imap_config(imap_server)) as source:
        [message] = list(source.messages())
    # An earlier mailbox with the same UIDVALIDITY held other content there.
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO net119.bounce_messages (
                source_key, content_sha256, received_at, kind, outcome, size_bytes
            )
            VALUES (%s, %s, %s, 'dsn', 'unmatched', 10)
            """,
            (message.key, b"other content", NOW),
        )
    conn.commit()

    with ImapSource(imap_config(imap_server)) as source:
        first = ingest(conn, source, now=NOW)
    append_imap(imap_server, message.raw)
    with ImapSource(imap_config(imap_server)) as source:
        second = ingest(conn, source, now=NOW)

    assert first.matched_failure == 1
    assert reminder(conn, reminder_id)["outcome"] == "undeliverable"
    assert second.already_seen == 1
    with conn.cursor() as cur:
        cur.execute("SELECT source_key FROM net119.bounce_messages ORDER BY id")
        keys = [row[0] for row in cur.fetchall()]
    assert keys[0] == message.key
    assert keys[1].startswith(message.key + "#")
    assert len(keys) == 3


# --- Backlog and lapse reasons -------------------------------------------------


def test_ingest_backlog_touches_only_own_reminder(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2026, 11, 1, 10))
    old = add_reminder(conn, 1, sent_at=jst(2026, 10, 22, 9), offset=-10, token="old1")
    latest = add_reminder(conn, 1, sent_at=jst(2026, 12, 1, 9), offset=30, token="new1")
    transitions.apply_expiry_transitions(conn, now=NOW)
    assert user_state(conn, 1) == ("lapsed", "not_renewed")
    # Two old bounces of the -10 reminder from a backlog: one with its VERP
    # token, one with nothing but the address and its date.
    by_token = user_failure_dsn(
        "user1@docomo.ne.jp",
        token="old1",
        message_id=None,
        sent_at=None,
        received_at=jst(2026, 10, 22, 10),
    )
    by_address = user_failure_dsn(
        "user1@docomo.ne.jp",
        token=None,
        message_id=None,
        sent_at=None,
        received_at=jst(2026, 10, 23, 10),
    )

    first = run_ingest(conn, fill_maildir(tmp_path / "box", [by_token]))
    second = run_ingest(conn, fill_maildir(tmp_path / "box", [by_address]))

    assert reminder(conn, old)["outcome"] == "undeliverable"
    assert reminder(conn, latest)["outcome"] == "sent"
    assert user_state(conn, 1) == ("lapsed", "not_renewed")
    assert first.lapse_reasons_changed == 0
    assert second.lapse_reasons_changed == 0
    results = results_of(conn)
    assert [r["reminder_id"] for r in results] == [old, old]
    assert [r["correlated_by"] for r in results] == ["verp", "recipient_time"]
    assert [r["effect"] for r in results] == [
        "marked_undeliverable",
        "already_undeliverable",
    ]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM net119.status_events WHERE cause = 'bounce'")
        assert cur.fetchone()[0] == 0


def test_ingest_latest_bounce_sets_undeliverable(conn, tmp_path: Path) -> None:
    add_user(conn, 1, jst(2026, 11, 1, 10))
    add_user(conn, 2, jst(2027, 3, 1, 10))
    add_reminder(conn, 1, sent_at=jst(2026, 12, 1, 9), offset=30, token="lapse1")
    add_reminder(conn, 2, sent_at=jst(2026, 12, 1, 9), offset=-90, token="active2")
    transitions.apply_expiry_transitions(conn, now=NOW)
    messages = [
        user_failure_dsn(
            f"user{user_id}@docomo.ne.jp",
            token=token,
            message_id=None,
            sent_at=None,
            received_at=jst(2026, 12, 2, 10),
        )
        for user_id, token in ((1, "lapse1"), (2, "active2"))
    ]

    counts = run_ingest(conn, fill_maildir(tmp_path / "box", messages))

    assert user_state(conn, 1) == ("lapsed", "undeliverable")
    # Ingestion never lapses anyone: the active user stays active.
    assert user_state(conn, 2) == ("active", None)
    assert counts.lapse_reasons_changed == 1
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT user_id, old_reason, new_reason, cause, run_id, occurred_at
            FROM net119.status_events WHERE cause = 'bounce'
            """
        )
        assert cur.fetchall() == [
            (1, "not_renewed", "undeliverable", "bounce", "test-run", NOW)
        ]
        cur.execute(
            "SELECT call_back, mail_management, emergency_call "
            "FROM net119.user_capabilities WHERE user_id = 1"
        )
        assert cur.fetchone() == (False, False, True)


# --- Sources and settings ----------------------------------------------------------


def imap_config(server: DovecotServer, password: str | None = None) -> ImapConfig:
    return ImapConfig(
        host=server.host,
        port=server.port,
        user=server.user,
        password=password or server.password,
        ssl=False,
        processed_mailbox="processed",
    )


def append_imap(server: DovecotServer, raw: bytes) -> None:
    connection = imaplib.IMAP4(server.host, server.port, timeout=10)
    try:
        connection.login(server.user, server.password)
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


def test_ingest_imap_acks_after_commit(conn, imap_server: DovecotServer) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    reminder_id = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9), token="imap1")
    append_imap(
        imap_server,
        user_failure_dsn(
            "user1@docomo.ne.jp",
            token="imap1",
            message_id=None,
            sent_at=None,
            received_at=jst(2026, 12, 3, 13),
        ),
    )
    append_imap(imap_server, (SAMPLES_DIR / "garbage.eml").read_bytes())

    with ImapSource(imap_config(imap_server)) as source:
        first = ingest(conn, source, now=NOW)
    with ImapSource(imap_config(imap_server)) as source:
        second = ingest(conn, source, now=NOW)

    assert first.matched_failure == 1
    assert first.quarantined == 1
    assert second.as_dict() == IngestCounts().as_dict()
    assert reminder(conn, reminder_id)["outcome"] == "undeliverable"
    assert unseen_imap(imap_server) == 0
    with conn.cursor() as cur:
        cur.execute("SELECT source_key FROM net119.bounce_messages ORDER BY id")
        keys = [row[0] for row in cur.fetchall()]
    assert all(key.startswith("imap:") for key in keys)
    assert len(keys) == 2


def test_ingest_imap_login_failure_counted(conn, imap_server: DovecotServer) -> None:
    with ImapSource(imap_config(imap_server, password="wrong")) as source:
        counts = ingest(conn, source, now=NOW)

    assert counts.source_errors == 1
    assert counts.as_dict() == {**IngestCounts().as_dict(), "source_errors": 1}


@pytest.fixture
def bounce_log() -> Iterator[list[logging.LogRecord]]:
    """Collect the records of the ``net119.bounces`` loggers.

    Airflow replaces the root handlers once it is imported, so pytest's
    caplog does not see them.
    """
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.INFO)
    logger = logging.getLogger("net119.bounces")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def messages_at(records: list[logging.LogRecord], level: int) -> str:
    return "\n".join(r.getMessage() for r in records if r.levelno == level)


def test_ingest_configured_without_mailbox(conn, monkeypatch, bounce_log) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NET119_BOUNCES", raising=False)
    monkeypatch.delenv(MAILDIR_ENV, raising=False)

    counts = ingest_configured(conn, now=NOW)

    assert counts.as_dict() == IngestCounts().as_dict()
    assert "Bounce ingestion is not configured" in messages_at(
        bounce_log, logging.WARNING
    )


def test_ingest_configured_reads_env_maildir(conn, tmp_path: Path, monkeypatch) -> None:
    add_user(conn, 1, jst(2027, 1, 3, 10))
    reminder_id = add_reminder(conn, 1, sent_at=jst(2026, 12, 3, 9), token="env1")
    box = fill_maildir(
        tmp_path / "box",
        [
            user_failure_dsn(
                "user1@docomo.ne.jp",
                token="env1",
                message_id=None,
                sent_at=None,
                received_at=jst(2026, 12, 3, 13),
            )
        ],
    )
    monkeypatch.delenv("AIRFLOW_CONN_NET119_BOUNCES", raising=False)
    monkeypatch.setenv(MAILDIR_ENV, str(box))

    counts = ingest_configured(conn, now=NOW)

    assert counts.matched_failure == 1
    assert reminder(conn, reminder_id)["outcome"] == "undeliverable"


def test_ingest_configured_connection_wins(tmp_path: Path, monkeypatch) -> None:
    connection_box = fill_maildir(tmp_path / "from_connection", [])
    env_box = fill_maildir(tmp_path / "from_env", [])
    monkeypatch.setenv(
        "AIRFLOW_CONN_NET119_BOUNCES",
        json.dumps({"conn_type": "fs", "extra": {"path": str(connection_box)}}),
    )
    monkeypatch.setenv(MAILDIR_ENV, str(env_box))

    source = open_configured_source()

    assert isinstance(source, MaildirSource)
    assert source._root == connection_box


def test_ingest_configured_invalid_maildir_counted(
    conn, tmp_path: Path, monkeypatch, bounce_log
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NET119_BOUNCES", raising=False)
    monkeypatch.setenv(MAILDIR_ENV, str(tmp_path / "missing"))

    counts = ingest_configured(conn, now=NOW)

    assert counts.source_errors == 1
    assert "Bounce ingestion skipped" in messages_at(bounce_log, logging.ERROR)


def test_ingest_settings_from_env() -> None:
    values = {"NET119_BOUNCE_MATCH_DAYS": "10", "NET119_BOUNCE_KEEP_RAW_BYTES": "1024"}

    settings = IngestSettings.from_env(values.get)

    assert settings.match_window_days == 10
    assert settings.keep_raw_bytes == 1024
    with pytest.raises(ValueError, match="NET119_BOUNCE_MATCH_DAYS"):
        IngestSettings.from_env({"NET119_BOUNCE_MATCH_DAYS": "a week"}.get)
    with pytest.raises(ValueError, match="keep_raw_bytes"):
        IngestSettings(keep_raw_bytes=64 * 1024 * 1024)


def test_arrival_time_prefers_received_header() -> None:
    raw = (
        b"Received: from mx.example.org by mail.net119.example.jp;\n"
        b"\tWed,  2 Dec 2026 09:16:21 +0900 (JST)\n"
        b"Date: Tue, 1 Dec 2026 00:00:00 +0000\n\nbody\n"
    )

    assert arrival_time(raw, default=NOW) == at(2026, 12, 2, 9, 16, 21)
    assert arrival_time(b"Date: Tue, 1 Dec 2026 00:00:00 +0000\n\n", default=NOW) == (
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    )
    assert arrival_time(b"Subject: no date\n\n", default=NOW) == NOW


@pytest.mark.parametrize(
    ("code", "reply", "outcome", "category"),
    [
        (
            550,
            "5.1.1 <a@docomo.ne.jp>: Recipient address rejected: User unknown",
            "undeliverable",
            "user_unknown",
        ),
        (552, "5.2.2 Mailbox full", "undeliverable", "mailbox_full"),
        (
            550,
            "Message rejected by the recipient's reject settings",
            "undeliverable",
            "filtered",
        ),
        (554, "transaction failed", "undeliverable", "other"),
        (451, "4.3.0 Try again later", "failed", None),
    ],
)
def test_result_from_reply_sets_category(code, reply, outcome, category) -> None:
    result = result_from_reply(7, code, reply)

    assert result.outcome == outcome
    assert result.category == category
