"""Recognise automatic replies and vacation notices.

RFC 3834 marks an automatic reply with ``Auto-Submitted: auto-replied``.
Older responders use ``X-Autoreply``, ``X-Autorespond``, ``X-Vacation`` or
``Precedence: auto_reply``, and Outlook and Japanese mailers mark the subject
("Automatic reply:", 「自動応答:」, 「不在通知」). A subject word alone is not
enough unless it is a prefix that only responders write, because a person
may reply with 「不在」 in the subject. ``Auto-Submitted: auto-generated`` is
not an automatic reply: bounces and our own reminders carry it.
"""

from __future__ import annotations

import re
from email.message import Message

from net119.bounces.text import header_text

_RESPONDER_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Vacation", "X-Autoresponder")
_RESPONDER_PRECEDENCE = ("auto_reply", "auto-reply")
_HINT_PRECEDENCE = ("bulk", "junk", "list")

_RESPONDER_SUBJECT_RE = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response)|"
    r"out of (?:the )?office|autoreply|vacation|"
    r"自動応答|自動返信|自動返答|不在通知|不在のお知らせ|休暇のお知らせ)\s*[:：]?",
    re.IGNORECASE,
)
_HINT_SUBJECT_RE = re.compile(
    r"auto|vacation|out of office|不在|休暇|留守|自動", re.IGNORECASE
)

DAEMON_LOCAL_PARTS = frozenset(
    {
        "mailer-daemon",
        "postmaster",
        "mail-daemon",
        "maildaemon",
        "mailerdaemon",
        "daemon",
    }
)


def is_daemon_sender(address: str) -> bool:
    """Return whether ``address`` belongs to a mail system, not a person."""
    local_part = address.partition("@")[0].lower()
    return local_part in DAEMON_LOCAL_PARTS or local_part.startswith("mailer-daemon")


def is_auto_reply(msg: Message, subject: str) -> bool:
    """Return whether ``msg`` is an automatic reply or vacation notice.

    ``subject`` is the decoded Subject header.
    """
    auto_submitted = header_text(msg.get("Auto-Submitted")).lower()
    if auto_submitted.startswith("auto-replied"):
        return True
    if any(msg.get(name) is not None for name in _RESPONDER_HEADERS):
        return True
    precedence = header_text(msg.get("Precedence")).lower()
    if precedence in _RESPONDER_PRECEDENCE:
        return True
    if _RESPONDER_SUBJECT_RE.search(subject):
        return True

    generated = auto_submitted.startswith("auto-") or msg.get(
        "X-Auto-Response-Suppress"
    )
    if (generated or precedence in _HINT_PRECEDENCE) and _HINT_SUBJECT_RE.search(
        subject
    ):
        return True
    return False
