"""Bounce handling: parse messages from the bounce mailbox and fetch them.

``parse_bounce`` turns one raw message into a ``BounceReport`` without any
database. ``net119.bounces.sources`` reads raw messages from a Maildir or an
IMAP mailbox. ``python -m net119.bounces.classify FILE...`` prints the
reports of files as JSON lines.
"""

from net119.bounces.model import (
    MAX_BOUNCE_BYTES,
    BounceKind,
    BounceQuarantined,
    BounceReport,
    BounceTooLarge,
    QuarantineReason,
    ReasonCategory,
    RecipientResult,
)
from net119.bounces.parse import parse_bounce

__all__ = [
    "MAX_BOUNCE_BYTES",
    "BounceKind",
    "BounceQuarantined",
    "BounceReport",
    "BounceTooLarge",
    "QuarantineReason",
    "ReasonCategory",
    "RecipientResult",
    "parse_bounce",
]
