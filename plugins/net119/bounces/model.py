"""Result types of the bounce parser.

The types are plain frozen dataclasses and string enums, so a caller can store
them, compare them in tests and turn them into JSON without the parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

#: Largest raw message, in bytes, that ``parse_bounce`` accepts by default.
MAX_BOUNCE_BYTES = 10 * 1024 * 1024


class BounceKind(StrEnum):
    """Format of a message that arrived at the bounce address."""

    #: RFC 3464 delivery status notification with at least one recipient that
    #: failed, or only delivered, relayed or expanded recipients.
    DSN = "dsn"
    #: A Japanese mobile carrier's own notice (docomo, au) without a DSN part.
    CARRIER_NOTICE = "carrier_notice"
    #: A bounce without a DSN part, recognised by a format-specific detector.
    NON_STANDARD_BOUNCE = "non_standard_bounce"
    #: An RFC 3834 automatic reply or a vacation notice.
    AUTO_REPLY = "auto_reply"
    #: A DSN or warning whose recipients are only delayed (delivery goes on).
    DELAYED = "delayed"
    #: Nothing recognisable: a human reply, spam, or bytes that are no message.
    UNRECOGNISED = "unrecognised"


class ReasonCategory(StrEnum):
    """Cause of a failed or delayed delivery, as station staff act on it."""

    USER_UNKNOWN = "user_unknown"
    HOST_UNKNOWN = "host_unknown"
    MAILBOX_FULL = "mailbox_full"
    #: Rejected by the recipient's filter or reject settings, or as spam.
    FILTERED = "filtered"
    #: The mailbox exists but is disabled or suspended.
    SUSPENDED = "suspended"
    #: The sending MTA gave up after retrying for its maximum queue time.
    EXPIRED = "expired"
    OTHER = "other"


class QuarantineReason(StrEnum):
    """Reason to set a message aside for operators instead of processing it."""

    OVERSIZED = "oversized"
    UNPARSEABLE = "unparseable"


class BounceQuarantined(Exception):
    """Base of the errors after which the caller quarantines the message.

    ``reason`` is the value to store with the quarantined message.
    """

    reason: QuarantineReason = QuarantineReason.UNPARSEABLE


class BounceTooLarge(BounceQuarantined):
    """Raised when a raw message is larger than the parser's size limit."""

    reason = QuarantineReason.OVERSIZED

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"bounce message is {size} bytes, larger than the limit of {limit} "
            "bytes; quarantine it and read it by hand"
        )
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """Outcome of delivery to one recipient, as a bounce reports it.

    ``recipient`` is the address the reporting MTA tried last (DSN
    Final-Recipient). ``original_recipient`` is the address as the sender gave
    it (DSN Original-Recipient) when the report names it; it differs from
    ``recipient`` after forwarding or aliasing. ``category`` is set for failed
    and delayed deliveries and is ``None`` for delivered, relayed and expanded
    ones and for automatic replies.
    """

    recipient: str | None
    original_recipient: str | None = None
    action: str | None = None
    status: str | None = None
    smtp_code: int | None = None
    diagnostic: str | None = None
    category: ReasonCategory | None = None
    is_final_failure: bool = False
    #: Mobile carrier of the recipient's domain ("docomo", "au", "softbank").
    #: docomo and au reply with 550 both for an unknown address and for the
    #: user's reject settings, so a report should mention both causes.
    carrier: str | None = None


@dataclass(frozen=True, slots=True)
class BounceReport:
    """Everything ``parse_bounce`` learned from one message.

    ``message_id`` is the Message-ID of the returned original message with
    its angle brackets (``<abc@example.jp>``). ``original_sent_at`` is the
    original's Date header, or the DSN Arrival-Date when the Date is not
    returned, always timezone-aware. ``quarantine_reason`` is set when the
    input is not a mail message at all, so the caller sets it aside.
    """

    kind: BounceKind
    verp_token: str | None = None
    message_id: str | None = None
    original_sent_at: datetime | None = None
    recipients: tuple[RecipientResult, ...] = ()
    reporting_mta: str | None = None
    quarantine_reason: QuarantineReason | None = None
    #: Names of the detectors that recognised the message, for debugging.
    detected_by: tuple[str, ...] = field(default=())

    @property
    def has_final_failure(self) -> bool:
        """True when at least one recipient failed permanently."""
        return any(result.is_final_failure for result in self.recipients)

    @property
    def final_failures(self) -> tuple[RecipientResult, ...]:
        """The recipients that failed permanently."""
        return tuple(result for result in self.recipients if result.is_final_failure)
