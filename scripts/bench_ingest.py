"""Measure bounce ingestion end to end: Maildir → parse → correlate → record → ack.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_ingest.py [--users 20000] [--messages 2000]

The script starts a private PostgreSQL from the pgserver wheel in a
temporary folder, migrates it, and seeds ``--users`` users with one sent
reminder each. Half of them expired already, so lapse reasons are
re-evaluated. It then writes ``--messages`` bounces to a temporary Maildir:
60% DSNs with a VERP token, 10% with only the returned Message-ID, 10% with
only the recipient's address, 10% automatic replies, 5% delay notices and 5%
DSNs that match no reminder. Every message is a separate database
transaction, as in production.

It prints three rates: parsing alone (no database), a first ingestion that
records and applies every message, and a second ingestion of the same bytes
delivered again, which only finds and acknowledges them. PostgreSQL runs on
the same machine, so the rates include its CPU time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.utils
import logging
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())

import mailbox  # noqa: E402

from net119 import db, migrate, transitions  # noqa: E402
from net119.bounces import parse_bounce  # noqa: E402
from net119.bounces.ingest import IngestCounts, ingest  # noqa: E402
from net119.bounces.sources import MaildirConfig, MaildirSource  # noqa: E402
from net119.devtools import embedded_pg  # noqa: E402
from net119.schedule import TOKYO  # noqa: E402
from psycopg2.extensions import connection as Connection  # noqa: E402

NOW = dt.datetime(2026, 12, 4, 9, tzinfo=TOKYO)
SENT_AT = dt.datetime(2026, 12, 3, 9, tzinfo=TOKYO)
RECEIVED_AT = dt.datetime(2026, 12, 3, 12, tzinfo=TOKYO)
DOMAIN = "net119.example.jp"

_DSN = """\
Return-Path: <>
Received: from mx.example.org (mx.example.org [192.0.2.25])
\tby mail.{domain} (Postfix) with ESMTP id B{number}
\tfor <{to}>; {stamp}
Delivered-To: {to}
Date: {stamp}
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
To: {to}
Subject: {subject}
Message-Id: <bench.{number}@mx.example.org>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="=_b{number}"

--=_b{number}
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.org.

<{recipient}>: host mx.docomo.ne.jp said: {diagnostic}

--=_b{number}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
Arrival-Date: {stamp}

Final-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--=_b{number}
Content-Type: text/rfc822-headers

From: NET119 <noreply@{domain}>
To: {recipient}
Subject: =?utf-8?b?44CQTkVUMTE544CR5a6a5pyf5pu05paw5omL57aa44GN44Gu44GK6aGY44GE?=
{returned}Auto-Submitted: auto-generated

--=_b{number}--
"""

_AUTO_REPLY = """\
Return-Path: <>
Received: from mail.example.com (mail.example.com [192.0.2.55])
\tby mail.{domain} (Postfix) with ESMTP id A{number}
\tfor <{to}>; {stamp}
Delivered-To: {to}
From: {recipient}
To: {to}
Subject: Out of office
Date: {stamp}
Message-ID: <auto.{number}@mail.example.com>
In-Reply-To: <t{user}@{domain}>
Auto-Submitted: auto-replied (vacation)
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

I am out of the office until 14 December.
"""


def seed(conn: Connection, users: int) -> None:
    """Insert one station, ``users`` users and one sent reminder per user."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO net119.stations (id, name, report_emails) "
            "VALUES ('st-bench', 'ベンチ消防局', '{}')"
        )
        cur.execute(
            """
            INSERT INTO net119.users (id, station_id, name, email, expires_at)
            SELECT g, 'st-bench', '利用者' || g, 'user' || g || '@docomo.ne.jp',
                   CASE WHEN g %% 2 = 0 THEN %(expired)s ELSE %(valid)s END
            FROM generate_series(1, %(users)s) AS g
            """,
            {
                "users": users,
                "expired": dt.datetime(2026, 11, 3, 10, tzinfo=TOKYO),
                "valid": dt.datetime(2027, 2, 1, 10, tzinfo=TOKYO),
            },
        )
        cur.execute(
            """
            INSERT INTO net119.reminders (
                user_id, cycle_expires_at, offset_days, kind, outcome, recipient,
                message_id, verp_token, attempts, claimed_at, sent_at
            )
            SELECT id, expires_at, 30, 'auto', 'sent', email,
                   '<t' || id || '@' || %(domain)s || '>', 't' || id, 1,
                   %(sent_at)s, %(sent_at)s
            FROM net119.users
            """,
            {"domain": DOMAIN, "sent_at": SENT_AT},
        )
    conn.commit()
    transitions.apply_expiry_transitions(conn, now=NOW)


def build_messages(count: int, users: int, rng: random.Random) -> list[bytes]:
    """Return ``count`` bounces in the mix described in the module documentation."""
    stamp = email.utils.format_datetime(RECEIVED_AT)
    chosen = rng.sample(range(1, users + 1), count)
    messages = []
    for number, user in enumerate(chosen):
        slot = number % 20
        recipient = f"user{user}@docomo.ne.jp"
        fields = {
            "domain": DOMAIN,
            "number": number,
            "stamp": stamp,
            "to": f"bounce+t{user}@{DOMAIN}",
            "recipient": recipient,
            "user": user,
            "subject": "Undelivered Mail Returned to Sender",
            "action": "failed",
            "status": "5.1.1",
            "diagnostic": "550 5.1.1 <" + recipient + ">: User unknown",
            "returned": f"Message-ID: <t{user}@{DOMAIN}>\n",
        }
        if slot in (12, 13):
            fields["to"] = f"bounce@{DOMAIN}"
        elif slot in (14, 15):
            fields["to"] = f"bounce@{DOMAIN}"
            fields["returned"] = ""
        elif slot in (16, 17):
            messages.append(_AUTO_REPLY.format(**fields).encode("ascii"))
            continue
        elif slot == 18:
            fields["action"] = "delayed"
            fields["status"] = "4.4.1"
            fields["diagnostic"] = "451 4.4.1 connection timed out"
        elif slot == 19:
            fields["to"] = f"bounce@{DOMAIN}"
            fields["recipient"] = f"stranger{user}@example.org"
            fields["returned"] = ""
        messages.append(_DSN.format(**fields).encode("ascii"))
    return messages


def fill(path: Path, messages: list[bytes]) -> None:
    box = mailbox.Maildir(path, factory=None, create=True)
    for raw in messages:
        box.add(raw)


def timed_ingest(conn: Connection, path: Path) -> tuple[IngestCounts, float]:
    started = time.perf_counter()
    with MaildirSource(MaildirConfig(path)) as source:
        counts = ingest(conn, source, now=NOW, run_id="bench")
    return counts, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20000, help="users to seed")
    parser.add_argument(
        "--messages", type=int, default=2000, help="bounce messages to ingest"
    )
    parser.add_argument("--seed", type=int, default=119, help="random seed")
    arguments = parser.parse_args()
    if not 0 < arguments.messages <= arguments.users:
        parser.error("--messages must be between 1 and --users")
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="net119-bench-ingest-") as folder:
        work = Path(folder)
        url = embedded_pg.start(work / "pgdata", database="bench")
        try:
            conn = db.connect(url)
            migrate.migrate(conn)
            seed(conn, arguments.users)
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                server_version = cur.fetchone()[0]
            conn.commit()

            messages = build_messages(
                arguments.messages, arguments.users, random.Random(arguments.seed)
            )
            started = time.perf_counter()
            for raw in messages:
                parse_bounce(raw)
            parse_seconds = time.perf_counter() - started

            box = work / "bounces"
            fill(box, messages)
            first, first_seconds = timed_ingest(conn, box)
            fill(box, messages)
            second, second_seconds = timed_ingest(conn, box)
            conn.close()
        finally:
            embedded_pg.stop(work / "pgdata")

    count = len(messages)
    print(
        f"python {platform.python_version()}, PostgreSQL {server_version} (pgserver), "
        f"{os.cpu_count()} CPUs, {platform.machine()}"
    )
    print(f"{arguments.users} users, {count} messages")
    print(f"parse only:       {count / parse_seconds:8.0f} messages/s")
    print(
        f"first ingestion:  {count / first_seconds:8.0f} messages/s "
        f"({first_seconds:.2f} s) {first.as_dict()}"
    )
    print(
        f"second ingestion: {count / second_seconds:8.0f} messages/s "
        f"({second_seconds:.2f} s) already_seen={second.already_seen}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
