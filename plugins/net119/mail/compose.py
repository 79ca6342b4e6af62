"""Render the reminder mail 「【NET119】定期更新手続きのお願い」.

The body is Japanese plain text from Jinja templates, one per part and
wording: ``reminder.before.txt.j2`` before the expiry date,
``reminder.due.txt.j2`` on it and ``reminder.after.txt.j2`` after it. Bodies go
out as UTF-8, or as ISO-2022-JP for recipient domains configured so. The
templates stay within JIS X 0208; a user's name that is not gets 〓 in place of
each character ISO-2022-JP cannot carry.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from functools import lru_cache
from pathlib import Path
from typing import Literal

import jinja2

from net119.config import Settings
from net119.jpdate import format_datetime
from net119.schedule import tokyo_date

Wording = Literal["before", "due", "after"]
SUBJECT_TEMPLATE = "reminder.subject.j2"
# RFC 5322 caps a line at 998 octets; stay well below it.
MAX_LINE_BYTES = 900
# The geta mark, the customary stand-in for a character a Japanese charset lacks.
_GETA = "〓"


@dataclass(frozen=True)
class ReminderContent:
    """Content of one reminder, before it is rendered."""

    recipient: str
    user_name: str
    station_name: str
    station_phone: str
    station_fax: str
    station_email: str
    expires_at: dt.datetime
    wording: Wording
    renewal_url: str
    message_id: str
    envelope_from: str


def wording_for(expires_at: dt.datetime, on_date: dt.date) -> Wording:
    """Choose the wording by the Asia/Tokyo date of a send against the expiry date."""
    expiry_date = tokyo_date(expires_at)
    if on_date < expiry_date:
        return "before"
    if on_date == expiry_date:
        return "due"
    return "after"


def new_renewal_token() -> tuple[str, bytes]:
    """Return a fresh renewal token and the SHA-256 digest that is stored."""
    token = secrets.token_urlsafe(24)
    return token, hash_token(token)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def renewal_url(settings: Settings, token: str) -> str:
    return f"{settings.renewal_base_url}/{token}"


def verp_address(settings: Settings, verp_token: str) -> str:
    """Return the envelope sender that carries a reminder's VERP token."""
    return f"bounce+{verp_token}@{settings.bounce_domain}"


def sender_domain(settings: Settings) -> str:
    _, addr = email.utils.parseaddr(settings.mail_from)
    return addr.rpartition("@")[2] or settings.bounce_domain


@lru_cache(maxsize=8)
def _environment(template_dir: Path) -> jinja2.Environment:
    if not template_dir.is_dir():
        raise FileNotFoundError(
            f"template folder {template_dir} not found: set NET119_TEMPLATE_DIR"
        )
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _fit_charset(text: str, charset: str) -> str:
    if charset == "utf-8":
        return text
    return "".join(
        ch if _encodable(ch, charset) else _GETA for ch in text
    )


def _encodable(ch: str, charset: str) -> bool:
    try:
        ch.encode(charset)
    except UnicodeEncodeError:
        return False
    return True


def charset_for(recipient: str, settings: Settings) -> str:
    domain = recipient.rpartition("@")[2].lower()
    if domain in settings.iso2022jp_domains:
        return "iso-2022-jp"
    return "utf-8"


def plain_text(value: str) -> str:
    """Return ``value`` as one line of printable text for a mail body.

    Line breaks and tabs become spaces. Other control and format characters
    (such as BEL, ESC or the right-to-left override U+202E) are dropped, so a
    stored name cannot add lines to a mail or reorder what a phone shows.
    """
    spaced = value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ").replace("\t", " ")
    return "".join(ch for ch in spaced if unicodedata.category(ch) not in ("Cc", "Cf"))


def render_body(content: ReminderContent, settings: Settings) -> str:
    """Render the body text of a reminder.

    Raises ``ValueError`` when a line would exceed ``MAX_LINE_BYTES``.
    """
    env = _environment(settings.template_dir)
    body = env.get_template(f"reminder.{content.wording}.txt.j2").render(
        user_name=plain_text(content.user_name),
        station_name=plain_text(content.station_name),
        station_phone=plain_text(content.station_phone),
        station_fax=plain_text(content.station_fax),
        station_email=plain_text(content.station_email),
        expires_at_text=format_datetime(content.expires_at),
        renewal_url=content.renewal_url,
        sender_domain=sender_domain(settings),
    )
    for number, line in enumerate(body.splitlines(), start=1):
        if len(line.encode("utf-8")) > MAX_LINE_BYTES:
            raise ValueError(
                f"line {number} of reminder.{content.wording}.txt.j2 is longer than "
                f"{MAX_LINE_BYTES} bytes"
            )
    return body


def render_subject(settings: Settings) -> str:
    env = _environment(settings.template_dir)
    return env.get_template(SUBJECT_TEMPLATE).render().strip()


def compose_reminder(
    content: ReminderContent, settings: Settings, now: dt.datetime
) -> Message:
    """Build the reminder as a MIME message ready for ``sendmail``.

    The envelope sender (the VERP return path) is not a header: pass
    ``content.envelope_from`` to the SMTP transaction. The message uses the
    ``compat32`` classes because the modern header parser took about 60 % of
    the send phase in the benchmark, and these headers need none of its work.
    """
    charset = charset_for(content.recipient, settings)
    body = _fit_charset(render_body(content, settings), charset)

    message = MIMEText(body, "plain", charset)
    # Old phones that need an ISO-2022-JP body also need it in the headers.
    message["From"] = _encoded_sender(settings.mail_from, charset)
    # Kept as text so pre-2009 carrier addresses go out exactly as stored.
    message["To"] = content.recipient
    message["Subject"] = Header(render_subject(settings), charset)
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = content.message_id
    message["Auto-Submitted"] = "auto-generated"
    # Asks Exchange and similar servers not to send out-of-office replies.
    message["X-Auto-Response-Suppress"] = "All"
    return message


@lru_cache(maxsize=8)
def _encoded_sender(mail_from: str, charset: str) -> str:
    name, address = email.utils.parseaddr(mail_from)
    return email.utils.formataddr((_fit_charset(name, charset), address), charset=charset)
