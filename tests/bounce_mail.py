"""Build bounce messages for tests: RFC 3464 DSNs and RFC 3834 automatic replies.

The messages follow what Postfix writes: a ``multipart/report`` with a text
part, a ``message/delivery-status`` part and the returned original's headers
as ``text/rfc822-headers``. Every message gets its own Message-Id, so two
bounces never have the same bytes.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import itertools
import mailbox
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

BOUNCE_DOMAIN = "net119.example.jp"
_numbers = itertools.count(1)


@dataclass(frozen=True)
class DsnRecipient:
    """One recipient block of a DSN."""

    final: str
    action: str = "failed"
    status: str = "5.1.1"
    diagnostic: str | None = "smtp; 550 5.1.1 Recipient address rejected: User unknown"
    original: str | None = None


def verp_address(token: str) -> str:
    return f"bounce+{token}@{BOUNCE_DOMAIN}"


def original_headers(
    *,
    to: str,
    message_id: str | None,
    date: dt.datetime | None,
    return_path: str | None = None,
) -> str:
    """Return the header block of a returned reminder."""
    lines = []
    if return_path is not None:
        lines.append(f"Return-Path: <{return_path}>")
    lines.append("From: NET119 <noreply@net119.example.jp>")
    lines.append(f"To: {to}")
    # 【NET119】定期更新手続きのお願い, RFC 2047 encoded.
    subject = "44CQTkVUMTE544CR5a6a5pyf5pu05paw5omL57aa44GN44Gu44GK6aGY44GE"
    lines.append(f"Subject: =?utf-8?b?{subject}?=")
    if date is not None:
        lines.append(f"Date: {email.utils.format_datetime(date)}")
    if message_id is not None:
        lines.append(f"Message-ID: {message_id}")
    lines.append("Auto-Submitted: auto-generated")
    return "\n".join(lines) + "\n"


def build_dsn(
    recipients: Sequence[DsnRecipient],
    *,
    received_at: dt.datetime,
    to: str = f"bounce@{BOUNCE_DOMAIN}",
    returned_headers: str | None = None,
    reporting_mta: str = "mx.example.org",
) -> bytes:
    """Return a DSN addressed to ``to`` that arrived at ``received_at``.

    ``to`` is the VERP address of the bounced reminder, or the plain bounce
    address for a bounce that lost it. ``returned_headers`` is the header
    block of the original (see ``original_headers``), or ``None`` for a
    bounce that returns nothing.
    """
    number = next(_numbers)
    boundary = f"=_dsn_{number}"
    stamp = email.utils.format_datetime(received_at)
    text_lines = ["This is the mail system at host " + reporting_mta + ".", ""]
    blocks = [f"Reporting-MTA: dns; {reporting_mta}", f"Arrival-Date: {stamp}", ""]
    for recipient in recipients:
        text_lines.append(
            f"<{recipient.final}>: {recipient.diagnostic or recipient.action}"
        )
        blocks.append(f"Final-Recipient: rfc822; {recipient.final}")
        if recipient.original is not None:
            blocks.append(f"Original-Recipient: rfc822;{recipient.original}")
        blocks.append(f"Action: {recipient.action}")
        blocks.append(f"Status: {recipient.status}")
        if recipient.diagnostic is not None:
            blocks.append(f"Diagnostic-Code: {recipient.diagnostic}")
        blocks.append("")

    parts = [
        "Return-Path: <>",
        f"Received: from {reporting_mta} (localhost [127.0.0.1])",
        f"\tby mail.{BOUNCE_DOMAIN} (Postfix) with ESMTP id T{number}",
        f"\tfor <{to}>; {stamp}",
        f"Delivered-To: {to}",
        f"Date: {stamp}",
        f"From: MAILER-DAEMON@{reporting_mta} (Mail Delivery System)",
        f"To: {to}",
        "Subject: Undelivered Mail Returned to Sender",
        f"Message-Id: <dsn.{number}@{reporting_mta}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        *text_lines,
        "",
        f"--{boundary}",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
        *blocks,
    ]
    if returned_headers is not None:
        parts += [
            f"--{boundary}",
            "Content-Description: Undelivered Message Headers",
            "Content-Type: text/rfc822-headers",
            "",
            returned_headers.rstrip("\n").replace("\r\n", "\n"),
            "",
        ]
    parts.append(f"--{boundary}--")
    return ("\n".join(parts) + "\n").encode("ascii")


def build_auto_reply(
    *,
    sender: str,
    to: str,
    in_reply_to: str | None,
    received_at: dt.datetime,
) -> bytes:
    """Return an RFC 3834 vacation reply from ``sender`` to ``to``."""
    number = next(_numbers)
    stamp = email.utils.format_datetime(received_at)
    lines = [
        "Return-Path: <>",
        "Received: from mail.example.com (localhost [127.0.0.1])",
        f"\tby mail.{BOUNCE_DOMAIN} (Postfix) with ESMTP id A{number}",
        f"\tfor <{to}>; {stamp}",
        f"Delivered-To: {to}",
        f"From: {sender}",
        f"To: {to}",
        "Subject: Out of office",
        f"Date: {stamp}",
        f"Message-ID: <auto.{number}@mail.example.com>",
    ]
    if in_reply_to is not None:
        lines.append(f"In-Reply-To: {in_reply_to}")
    lines += [
        "Auto-Submitted: auto-replied (vacation)",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "I am out of the office until 14 December.",
    ]
    return ("\n".join(lines) + "\n").encode("ascii")


def fill_maildir(path: Path, messages: Iterable[bytes]) -> Path:
    """Create the Maildir ``path`` if needed and deliver ``messages`` to new/."""
    box = mailbox.Maildir(path, factory=None, create=True)
    for raw in messages:
        box.add(raw)
    return path


def processed_count(path: Path, folder: str = "processed") -> int:
    """Return the number of messages moved to the Maildir++ folder ``folder``."""
    cur = path / f".{folder}" / "cur"
    return len(list(cur.iterdir())) if cur.is_dir() else 0


def pending_count(path: Path) -> int:
    """Return the number of messages still in new/ and cur/."""
    return sum(len(list((path / sub).iterdir())) for sub in ("new", "cur"))
