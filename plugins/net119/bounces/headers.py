"""Find the VERP token and the returned original's headers in a bounce.

Reminders go out with the envelope sender ``bounce+TOKEN@DOMAIN``, so a bounce
or automatic reply is addressed to that address. The receiving MTA records it
in Delivered-To or X-Original-To, and the bounce usually repeats it in To. A
bounce that returns the original also returns its Message-ID and Date, either
as a ``text/rfc822-headers`` or ``message/rfc822`` part or quoted in its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parsedate_to_datetime

from net119.bounces.text import PARSE_POLICY, header_text, part_text

DEFAULT_VERP_PREFIX = "bounce"

# Headers that carry the address a bounce was sent to, in order of trust:
# the ones the receiving MTA adds come before what the bounce's author wrote.
VERP_HEADERS = (
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "To",
    "Return-Path",
)

# The RFC 5321 limit on a local part is 64 octets, so a token is at most
# 64 - len("bounce+") characters long.
_TOKEN_CHARS = r"[A-Za-z0-9_=-]{1,57}"

_MESSAGE_ID_RE = re.compile(r"<([^<>\s@]+@[^<>\s]+)>")
_QUOTED_MESSAGE_ID_RE = re.compile(
    r"^[ \t>]*Message-Id:[ \t]*(<[^<>\s@]+@[^<>\s]+>)", re.IGNORECASE | re.MULTILINE
)
_QUOTED_DATE_RE = re.compile(r"^[ \t>]*Date:[ \t]*(.+)$", re.IGNORECASE | re.MULTILINE)
_QUOTED_TO_RE = re.compile(r"^[ \t>]*To:[ \t]*(.+)$", re.IGNORECASE | re.MULTILINE)
_QUOTED_RETURN_PATH_RE = re.compile(
    r"^[ \t>]*Return-Path:[ \t]*(.+)$", re.IGNORECASE | re.MULTILINE
)

_RETURNED_TYPES = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")


@dataclass(frozen=True, slots=True)
class ReturnedHeaders:
    """Headers of the original message as a bounce returned them."""

    message_id: str | None = None
    sent_at: datetime | None = None
    to: tuple[str, ...] = ()
    return_path: str | None = None


def verp_pattern(prefix: str = DEFAULT_VERP_PREFIX) -> re.Pattern[str]:
    """Compile the pattern of a VERP address with ``prefix`` as its local part."""
    return re.compile(
        rf"(?<![A-Za-z0-9.+_-]){re.escape(prefix)}\+({_TOKEN_CHARS})@[A-Za-z0-9.-]+",
        re.IGNORECASE,
    )


_DEFAULT_VERP_RE = verp_pattern()


def find_verp_token(
    msg: Message, returned: ReturnedHeaders, prefix: str = DEFAULT_VERP_PREFIX
) -> str | None:
    """Return the VERP token from the bounce's address headers, or ``None``.

    The returned original's Return-Path is the last resort, for bounces that
    were forwarded to the bounce mailbox and lost their envelope headers.
    """
    pattern = (
        _DEFAULT_VERP_RE if prefix == DEFAULT_VERP_PREFIX else verp_pattern(prefix)
    )
    for name in VERP_HEADERS:
        for value in msg.get_all(name, []):
            match = pattern.search(str(value))
            if match is not None:
                return match.group(1)
    if returned.return_path:
        match = pattern.search(returned.return_path)
        if match is not None:
            return match.group(1)
    return None


def parse_date(value: str | None) -> datetime | None:
    """Parse an RFC 5322 date into an aware datetime; ``None`` when invalid.

    A date without a zone (``-0000``) is read as UTC.
    """
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def clean_message_id(value: str | None) -> str | None:
    """Return the first ``<id@domain>`` in ``value``, or ``None``."""
    if not value:
        return None
    match = _MESSAGE_ID_RE.search(value)
    if match is None:
        return None
    return f"<{match.group(1)}>"


def _headers_from(original: Message) -> ReturnedHeaders:
    addresses = tuple(
        address
        for _name, address in getaddresses([str(v) for v in original.get_all("To", [])])
        if address
    )
    return ReturnedHeaders(
        message_id=clean_message_id(original.get("Message-ID")),
        sent_at=parse_date(original.get("Date")),
        to=addresses,
        return_path=str(original.get("Return-Path", "")) or None,
    )


def _returned_part_headers(part: Message) -> Message | None:
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        if isinstance(payload, str):
            return HeaderParser(policy=PARSE_POLICY).parsestr(payload)
        return None
    text = part_text(part, limit=64 * 1024)
    if not text:
        return None
    return HeaderParser(policy=PARSE_POLICY).parsestr(text)


def find_returned_headers(msg: Message, body_text: str) -> ReturnedHeaders:
    """Find the original's Message-ID, Date, To and Return-Path in a bounce.

    ``body_text`` is the decoded human-readable text of the bounce, searched
    for quoted headers when no part returns the original.
    """
    for part in msg.walk():
        if part is msg or part.get_content_type() not in _RETURNED_TYPES:
            continue
        original = _returned_part_headers(part)
        if original is not None and len(original) > 0:
            returned = _headers_from(original)
            if returned.message_id or returned.sent_at:
                return returned

    message_id_match = _QUOTED_MESSAGE_ID_RE.search(body_text)
    if message_id_match is None:
        return ReturnedHeaders()
    # Quoted headers follow the bounce's own text, so the Date and To that
    # belong to the original are the ones nearest to its Message-ID.
    quoted_block = _quoted_header_block(body_text, message_id_match.start())
    date_match = _QUOTED_DATE_RE.search(quoted_block)
    to_match = _QUOTED_TO_RE.search(quoted_block)
    return_path_match = _QUOTED_RETURN_PATH_RE.search(quoted_block)
    to_addresses: tuple[str, ...] = ()
    if to_match is not None:
        to_addresses = tuple(a for _n, a in getaddresses([to_match.group(1)]) if a)
    return ReturnedHeaders(
        message_id=clean_message_id(message_id_match.group(1)),
        sent_at=parse_date(date_match.group(1)) if date_match else None,
        to=to_addresses,
        return_path=return_path_match.group(1) if return_path_match else None,
    )


def _quoted_header_block(text: str, position: int) -> str:
    """Return the paragraph of quoted header lines around ``position``."""
    start = text.rfind("\n\n", 0, position) + 1
    end = text.find("\n\n", position)
    if end < 0:
        end = len(text)
    return text[start:end]


def sender_address(msg: Message) -> str:
    """Return the From address of a message in lower case, or ``""``."""
    addresses = getaddresses([header_text(msg.get("From"))])
    if not addresses:
        return ""
    return addresses[0][1].lower()
