"""Assemble the report mail of one station.

Structure (multipart/mixed):

- multipart/alternative: text/plain and text/html, both UTF-8;
- text/csv: the report, ``失効中利用者_<station>_<date>.csv``;
- application/pdf: one notice letter per listed user who gets one.

Attachment file names are Japanese and go out RFC 2231 encoded
(``filename*=utf-8''...``), which Outlook, Thunderbird and Gmail decode.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Sequence
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage

from net119.config import Settings
from net119.reports.csvfile import CsvFile

_UNSAFE_FILENAME = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')


def csv_filename(station_name: str, run_date: dt.date) -> str:
    """Return ``失効中利用者_<station name>_<YYYY-MM-DD>.csv``."""
    name = _UNSAFE_FILENAME.sub("", station_name).strip() or "消防本部"
    return f"失効中利用者_{name}_{run_date.isoformat()}.csv"


def report_envelope_from(settings: Settings) -> str:
    """Return the return path of station reports.

    Bounces of reports arrive in the bounce mailbox like those of reminders,
    but carry no reminder's VERP token, so they match no reminder.
    """
    return f"bounce@{settings.bounce_domain}"


def compose_report_mail(
    *,
    recipients: Sequence[str],
    message_id: str,
    subject: str,
    text: str,
    html: str,
    csv_file: CsvFile,
    csv_name: str,
    letters: Sequence[tuple[str, bytes]],
    settings: Settings,
    now: dt.datetime,
) -> EmailMessage:
    """Build the report as a MIME message; ``letters`` are (file name, PDF) pairs."""
    message = EmailMessage(policy=policy.SMTP)
    sender_name, sender_addr = email.utils.parseaddr(settings.mail_from)
    username, _, domain = sender_addr.rpartition("@")
    message["From"] = Address(
        display_name=sender_name, username=username, domain=domain
    )
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"

    message.set_content(text, charset="utf-8", cte="base64")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    message.add_attachment(
        csv_file.data,
        maintype="text",
        subtype="csv",
        filename=csv_name,
        params={"charset": csv_file.mime_charset},
    )
    for filename, pdf in letters:
        message.add_attachment(
            pdf, maintype="application", subtype="pdf", filename=filename
        )
    return message
