"""Recognise bounces that carry no DSN part, with flufl.bounce.

flufl.bounce 6.0 recognises the text formats of qmail (QSBMF), old Exim, Postfix
without DSN, Exchange, Yahoo, GroupWise and dozens of others, and returns the
failed addresses as temporary or permanent. It does not return the reason, so
the paragraph that names each address in the notification text is taken as
its diagnostic, and the status code, SMTP reply code and category are read
from that paragraph.
"""

from __future__ import annotations

import logging
from email.message import Message

from flufl.bounce import BounceDetector, all_failures

from net119.bounces.carriers import carrier_of
from net119.bounces.categories import categorize, find_smtp_code, find_status
from net119.bounces.model import RecipientResult
from net119.bounces.text import diagnostic_near

log = logging.getLogger(__name__)

# flufl.bounce's all_failures() stops at the first detector that raises, and
# some raise on malformed headers (Yale on a From without an address), so the
# detectors are run one by one from its internal, ordered list.
# NOTE: _DETECTORS is private in flufl.bounce 6.0.0 (pinned); without it the
# public all_failures() is used, which gives up on such messages.
FLUFL_DETECTORS: list[type[BounceDetector]] | None
try:
    from flufl.bounce._scan import _DETECTORS as FLUFL_DETECTORS
except ImportError:  # pragma: no cover - depends on the installed version
    FLUFL_DETECTORS = None
# all_failures() logs one INFO line per detector for every message scanned.
logging.getLogger("flufl.bounce").setLevel(logging.WARNING)

# Leaf parts that no flufl.bounce detector reads. Their payloads are dropped
# before scanning, so a returned attachment of megabytes costs nothing.
_SCANNED_TYPES = ("text/plain", "text/html", "message/delivery-status")
_MAX_SCANNED_CHARS = 256 * 1024


def _strip_unscanned_payloads(msg: Message) -> None:
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload()
        if not isinstance(payload, str):
            continue
        if part.get_content_type() not in _SCANNED_TYPES:
            part.set_payload("")
        elif len(payload) > _MAX_SCANNED_CHARS:
            part.set_payload(payload[:_MAX_SCANNED_CHARS])


def _decode_address(address: bytes) -> str:
    return address.decode("ascii", errors="replace")


def _run_detectors(msg: Message) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """Return the temporary and permanent failures of the first detector with any."""
    if FLUFL_DETECTORS is None:
        try:
            return all_failures(msg)
        except Exception:  # noqa: BLE001 - third-party heuristics on untrusted input
            log.warning(
                "flufl.bounce failed on a message; it stays unrecognised", exc_info=True
            )
            return frozenset(), frozenset()

    for detector_class in FLUFL_DETECTORS:
        detector: BounceDetector = detector_class()
        try:
            temporary, permanent = detector.process(msg)
        except Exception as exc:  # noqa: BLE001 - third-party heuristics on untrusted input
            log.info(
                "flufl.bounce detector %s failed on a message and was skipped: %r",
                detector_class.__name__,
                exc,
            )
            continue
        if temporary or permanent:
            return frozenset(temporary), frozenset(permanent)
    return frozenset(), frozenset()


def detect_nonstandard(msg: Message, notification: str) -> tuple[RecipientResult, ...]:
    """Return the recipients that flufl.bounce finds in a bounce without DSN.

    ``msg`` is modified: payloads that no detector reads are dropped first.
    ``notification`` is the decoded text of the bounce without the returned
    original. Returns no recipients when no detector recognises the message.
    A detector that raises on malformed input is skipped.
    """
    _strip_unscanned_payloads(msg)
    temporary, permanent = _run_detectors(msg)

    results: list[RecipientResult] = []
    for address_bytes, final in [(a, True) for a in sorted(permanent)] + [
        (a, False) for a in sorted(temporary - permanent)
    ]:
        address = _decode_address(address_bytes)
        diagnostic = diagnostic_near(notification, address)
        status = find_status(diagnostic)
        results.append(
            RecipientResult(
                recipient=address,
                action="failed" if final else "delayed",
                status=status,
                smtp_code=find_smtp_code(diagnostic),
                diagnostic=diagnostic or None,
                category=categorize(status, diagnostic),
                is_final_failure=final,
                carrier=carrier_of(address),
            )
        )
    return tuple(results)
