"""Read RFC 3464 delivery status notifications.

A DSN is a ``multipart/report`` whose ``message/delivery-status`` part holds
one block of per-message fields followed by one block per recipient. RFC 6533
``message/global-delivery-status`` parts (UTF-8 addresses) are read the same
way. Each recipient is judged on its own Action and Status:

* Action ``failed`` is a final failure whatever the status class, because an
  MTA that gives up after days of 4.x.x retries reports it so.
* Action ``delayed``, ``delivered``, ``relayed`` or ``expanded`` is no
  failure, even with a contradicting 5.x.x status.
* Without a known Action, a 5.x.x status is a final failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.parser import HeaderParser

from net119.bounces.carriers import carrier_of
from net119.bounces.categories import (
    STATUS_RE,
    categorize,
    find_smtp_code,
    find_status,
)
from net119.bounces.headers import clean_message_id, parse_date
from net119.bounces.model import BounceKind, ReasonCategory, RecipientResult
from net119.bounces.text import PARSE_POLICY, diagnostic_near, header_text

DSN_CONTENT_TYPES = ("message/delivery-status", "message/global-delivery-status")

_SUCCESS_ACTIONS = ("delivered", "relayed", "expanded")
_NOT_FAILED_ACTIONS = ("delayed", *_SUCCESS_ACTIONS)
# OpenSMTPD writes the non-standard "Action: error" for a failed recipient.
_FAILED_ACTIONS = ("failed", "error")
_MAX_DIAGNOSTIC_CHARS = 1000


@dataclass(frozen=True, slots=True)
class DsnResult:
    """Fields read from the delivery-status parts of one DSN."""

    kind: BounceKind
    recipients: tuple[RecipientResult, ...]
    reporting_mta: str | None
    arrival_date: datetime | None
    #: Gmail's per-message field X-Original-Message-ID, with angle brackets.
    original_message_id: str | None = None


def _typed_value(value: object) -> str:
    """Return the value of a typed DSN field (``rfc822; a@b``) without its type."""
    text = header_text(value)
    _type, separator, rest = text.partition(";")
    return (rest if separator else text).strip()


def _address(value: object) -> str | None:
    address = _typed_value(value).strip().strip("<>").strip()
    return address or None


def _blocks_of(part: Message) -> list[Message]:
    """Return the field blocks of a delivery-status part.

    The compat32 parser splits ``message/delivery-status`` into one Message
    per block. Other subtypes and damaged parts arrive as text and are split
    on blank lines here.
    """
    payload = part.get_payload()
    if part.get_content_subtype() == "delivery-status" and isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]

    if isinstance(payload, list):
        text = "\n".join(
            block.as_string() for block in payload if isinstance(block, Message)
        )
    else:
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else ""
    text = text.replace("\r\n", "\n")
    parser = HeaderParser(policy=PARSE_POLICY)
    return [parser.parsestr(chunk) for chunk in text.split("\n\n") if chunk.strip()]


def _is_final_failure(action: str | None, status: str | None) -> bool:
    if action is not None:
        if action.startswith(_FAILED_ACTIONS):
            return True
        if action.startswith(_NOT_FAILED_ACTIONS):
            return False
    return status is not None and status.startswith("5.")


def _recipient_result(block: Message, notification: str) -> RecipientResult | None:
    final_recipient = _address(block.get("Final-Recipient"))
    original_recipient = _address(block.get("Original-Recipient"))
    action_text = header_text(block.get("Action")).lower()
    action = action_text.split()[0] if action_text else None
    if final_recipient is None and original_recipient is None and action is None:
        return None

    recipient = final_recipient or original_recipient
    diagnostic = _typed_value(block.get("Diagnostic-Code"))[:_MAX_DIAGNOSTIC_CHARS]
    status = find_status(header_text(block.get("Status"))) or find_status(diagnostic)
    final = _is_final_failure(action, status)
    if not diagnostic and recipient and action not in _SUCCESS_ACTIONS:
        # Sendmail omits Diagnostic-Code when no remote server replied, but
        # its text part names the reason next to the address.
        diagnostic = diagnostic_near(notification, recipient)
        if status is None:
            status = find_status(diagnostic)
            final = _is_final_failure(action, status)

    category: ReasonCategory | None = None
    if final or action == "delayed" or (action is None and _is_problem(status)):
        category = _category_for(status, diagnostic, final)

    return RecipientResult(
        recipient=recipient,
        original_recipient=original_recipient,
        action=action,
        status=status,
        smtp_code=find_smtp_code(diagnostic),
        diagnostic=diagnostic or None,
        category=category,
        is_final_failure=final,
        carrier=carrier_of(recipient),
    )


def _is_problem(status: str | None) -> bool:
    return status is not None and status.startswith(("4.", "5."))


def _category_for(status: str | None, diagnostic: str, final: bool) -> ReasonCategory:
    # A generic status (5.0.0) is less specific than a code in the diagnostic.
    category_status = status
    diagnostic_status = find_status(diagnostic)
    if status is not None and diagnostic_status is not None:
        match = STATUS_RE.fullmatch(status)
        if match is not None and match.group(2) == "0":
            category_status = diagnostic_status
    category = categorize(category_status, diagnostic)
    # A failure with a transient status means the MTA ran out of retries.
    if (
        final
        and status is not None
        and status.startswith("4.")
        and category is ReasonCategory.OTHER
    ):
        return ReasonCategory.EXPIRED
    return category


def parse_dsn(msg: Message, notification: str) -> DsnResult | None:
    """Read every delivery-status part of ``msg``; ``None`` when it has none.

    ``notification`` is the decoded text of the bounce's human-readable part,
    read for a recipient's reason when its block has no Diagnostic-Code.
    """
    blocks: list[Message] = []
    reporting_mta: str | None = None
    arrival_date: datetime | None = None
    original_message_id: str | None = None
    for part in msg.walk():
        if part.get_content_type() not in DSN_CONTENT_TYPES:
            continue
        part_blocks = _blocks_of(part)
        if not part_blocks:
            continue
        per_message = part_blocks[0]
        if per_message.get("Reporting-MTA") and reporting_mta is None:
            reporting_mta = _typed_value(per_message.get("Reporting-MTA")) or None
        if per_message.get("Arrival-Date") and arrival_date is None:
            arrival_date = parse_date(header_text(per_message.get("Arrival-Date")))
        if per_message.get("X-Original-Message-ID") and original_message_id is None:
            original_message_id = clean_message_id(
                header_text(per_message.get("X-Original-Message-ID"))
            )
        # A per-message block has no recipient fields, but a DSN that omits it
        # starts directly with the first recipient block.
        if per_message.get("Final-Recipient") or per_message.get("Original-Recipient"):
            blocks.extend(part_blocks)
        else:
            blocks.extend(part_blocks[1:])

    if reporting_mta is None and not blocks:
        return None

    recipients = tuple(
        result
        for block in blocks
        if (result := _recipient_result(block, notification)) is not None
    )
    return DsnResult(
        kind=_kind_of(recipients),
        recipients=recipients,
        reporting_mta=reporting_mta,
        arrival_date=arrival_date,
        original_message_id=original_message_id,
    )


def _kind_of(recipients: tuple[RecipientResult, ...]) -> BounceKind:
    if any(result.is_final_failure for result in recipients):
        return BounceKind.DSN
    if any(_is_delay(result) for result in recipients):
        return BounceKind.DELAYED
    return BounceKind.DSN


def _is_delay(result: RecipientResult) -> bool:
    if result.action == "delayed":
        return True
    return (
        result.action is None
        and result.status is not None
        and result.status.startswith("4.")
    )
