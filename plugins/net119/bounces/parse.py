"""Parse a message that arrived at the bounce address into a ``BounceReport``.

``parse_bounce`` is pure: it reads bytes and touches no database, file or
network. It runs the detectors in order of trust and stops at the first
that recognises the message:

1. RFC 3464 DSN (``message/delivery-status`` part), see ``dsn``.
2. A notice in Japanese from a mail system; a carrier notice when the sender
   is a docomo, au or SoftBank domain, see ``carriers``.
3. An automatic reply or vacation notice from a person's address, see
   ``autoreply``.
4. flufl.bounce's detectors for bounces without DSN, see ``nonstandard``.

What none of them recognises is ``unrecognised`` and is kept for operators.
A message larger than the size limit raises ``BounceTooLarge``. Bytes that
are no mail message, or a message on which a detector fails unexpectedly,
give an ``unrecognised`` report whose ``quarantine_reason`` is
``unparseable``. Other input never raises.

Typical use by a caller that records bounces::

    try:
        report = parse_bounce(raw)
    except BounceTooLarge as exc:
        quarantine(key, exc.reason, str(exc))
    else:
        if report.quarantine_reason is not None:
            quarantine(key, report.quarantine_reason, "not a mail message")
        else:
            record(key, report)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from email import message_from_bytes
from email.message import Message

from net119.bounces.autoreply import is_auto_reply, is_daemon_sender
from net119.bounces.carriers import carrier_of, parse_japanese_notice
from net119.bounces.dsn import DsnResult, parse_dsn
from net119.bounces.headers import (
    DEFAULT_VERP_PREFIX,
    ReturnedHeaders,
    clean_message_id,
    find_returned_headers,
    find_verp_token,
    sender_address,
)
from net119.bounces.model import (
    MAX_BOUNCE_BYTES,
    BounceKind,
    BounceReport,
    BounceTooLarge,
    QuarantineReason,
    RecipientResult,
)
from net119.bounces.nonstandard import detect_nonstandard
from net119.bounces.text import PARSE_POLICY, codec_name, header_text, part_text

log = logging.getLogger(__name__)

# Header fields of which at least one appears in every mail message. Bytes
# whose parsed header contains none of them are not a message.
_MESSAGE_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Received",
    "Return-Path",
    "Delivered-To",
    "Content-Type",
    "MIME-Version",
)
_TAG_RE = re.compile(r"<[^>]*>")
_JAPANESE_RE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def parse_bounce(
    raw: bytes,
    *,
    max_bytes: int = MAX_BOUNCE_BYTES,
    verp_prefix: str = DEFAULT_VERP_PREFIX,
) -> BounceReport:
    """Parse one raw message from the bounce mailbox.

    ``verp_prefix`` is the local part before ``+TOKEN`` in the return path.
    Raises ``BounceTooLarge`` when ``raw`` is longer than ``max_bytes``.
    """
    if len(raw) > max_bytes:
        raise BounceTooLarge(len(raw), max_bytes)
    try:
        return _parse(raw, verp_prefix)
    except Exception:  # noqa: BLE001 - any failure on untrusted input is quarantined
        log.exception("bounce parser failed on a message of %d bytes", len(raw))
        return BounceReport(
            kind=BounceKind.UNRECOGNISED, quarantine_reason=QuarantineReason.UNPARSEABLE
        )


def _is_mail_message(msg: Message) -> bool:
    return any(msg.get(name) is not None for name in _MESSAGE_HEADERS)


def _repair_charset_labels(msg: Message) -> None:
    """Replace charset labels that name no codec by ``unknown-8bit``.

    ``Message.get_payload()`` of Python 3.11 raises UnicodeEncodeError or
    ValueError on a label with 8-bit bytes or a NUL when the body has 8-bit
    bytes. Such a body is decoded by detection (see ``text.decode_bytes``).
    """
    for part in msg.walk():
        charset = part.get_param("charset")
        if charset is None:
            continue
        if isinstance(charset, tuple) or codec_name(str(charset)) is None:
            part.set_param("charset", "unknown-8bit")


def _notification_parts(msg: Message) -> Iterator[Message]:
    """Yield the text parts of the bounce itself, not those of a returned message."""
    if msg.is_multipart():
        payload = msg.get_payload()
        if not isinstance(payload, list):
            return
        for part in payload:
            if not isinstance(part, Message):
                continue
            if part.get_content_maintype() == "message":
                continue
            yield from _notification_parts(part)
    elif msg.get_content_maintype() == "text":
        yield msg


def _notification_text(msg: Message) -> str:
    """Return the decoded text of the bounce's own text parts."""
    plain: list[str] = []
    html: list[str] = []
    for part in _notification_parts(msg):
        subtype = part.get_content_subtype()
        if subtype == "html":
            html.append(_TAG_RE.sub(" ", part_text(part)))
        elif subtype == "plain" or part is msg:
            plain.append(part_text(part))
    text = "\n\n".join(plain or html)
    return text.replace("\r\n", "\n")


def _original_message_id(
    msg: Message, returned: ReturnedHeaders, dsn: DsnResult | None
) -> str | None:
    if returned.message_id is not None:
        return returned.message_id
    if dsn is not None and dsn.original_message_id is not None:
        return dsn.original_message_id
    # Automatic replies and some bounces name the original in In-Reply-To.
    return clean_message_id(header_text(msg.get("In-Reply-To")))


def _parse(raw: bytes, verp_prefix: str) -> BounceReport:
    msg = message_from_bytes(raw, policy=PARSE_POLICY)
    if not _is_mail_message(msg):
        return BounceReport(
            kind=BounceKind.UNRECOGNISED, quarantine_reason=QuarantineReason.UNPARSEABLE
        )
    _repair_charset_labels(msg)

    text = _notification_text(msg)
    returned = find_returned_headers(msg, text)
    verp_token = find_verp_token(msg, returned, verp_prefix)
    dsn = parse_dsn(msg, text)
    message_id = _original_message_id(msg, returned, dsn)
    sender = sender_address(msg)

    def report(
        kind: BounceKind,
        recipients: tuple[RecipientResult, ...],
        detector: str,
        reporting_mta: str | None = None,
    ) -> BounceReport:
        return BounceReport(
            kind=kind,
            verp_token=verp_token,
            message_id=message_id,
            original_sent_at=returned.sent_at,
            recipients=recipients,
            reporting_mta=reporting_mta,
            detected_by=(detector,),
        )

    # 1. RFC 3464 DSN.
    if dsn is not None and dsn.recipients:
        result = report(dsn.kind, dsn.recipients, "rfc3464", dsn.reporting_mta)
        if result.original_sent_at is None and dsn.arrival_date is not None:
            result = replace(result, original_sent_at=dsn.arrival_date)
        return result

    # 2. A notice in Japanese from a mail system.
    subject = header_text(msg.get("Subject"))
    sender_carrier = carrier_of(sender)
    from_mail_system = is_daemon_sender(sender) or sender_carrier is not None
    if from_mail_system and _JAPANESE_RE.search(text):
        excluded = frozenset(
            {sender, *(a.lower() for a in _bounce_addresses(msg, verp_prefix))}
        )
        recipients = parse_japanese_notice(text, excluded, returned.to)
        if recipients:
            kind = (
                BounceKind.CARRIER_NOTICE
                if sender_carrier is not None
                else BounceKind.NON_STANDARD_BOUNCE
            )
            return report(kind, recipients, "japanese_notice")

    # 3. Automatic reply from a person's address.
    if not is_daemon_sender(sender) and is_auto_reply(msg, subject):
        responder = RecipientResult(
            recipient=sender or None, carrier=carrier_of(sender)
        )
        return report(BounceKind.AUTO_REPLY, (responder,), "auto_reply")

    # 4. Bounces without DSN. The heuristics may pick up the bounce address
    # itself from quoted headers, which is never the failed recipient.
    own_prefix = verp_prefix.lower() + "+"
    recipients = tuple(
        result
        for result in detect_nonstandard(msg, text)
        if not (result.recipient or "").lower().startswith(own_prefix)
    )
    if recipients:
        if any(result.is_final_failure for result in recipients):
            return report(BounceKind.NON_STANDARD_BOUNCE, recipients, "flufl.bounce")
        return report(BounceKind.DELAYED, recipients, "flufl.bounce")

    if dsn is not None:
        # A delivery-status part without recipient blocks, e.g. truncated.
        return report(BounceKind.DSN, (), "rfc3464", dsn.reporting_mta)
    return report(BounceKind.UNRECOGNISED, (), "none")


def _bounce_addresses(msg: Message, verp_prefix: str) -> list[str]:
    """Return the addresses in To and Delivered-To that start with the VERP prefix."""
    addresses = []
    for name in ("To", "Delivered-To", "X-Original-To"):
        for value in msg.get_all(name, []):
            for word in re.findall(r"[^\s<>,\"]+@[^\s<>,\"]+", str(value)):
                if word.lower().startswith(verp_prefix.lower() + "+"):
                    addresses.append(word)
    return addresses
