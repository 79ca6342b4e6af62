"""Send a batch of prepared mails over one SMTP session.

Every mail gets its own outcome, so one bad recipient never stops a batch:

- accepted (2xx) → ``sent``;
- rejected for that recipient with a 5xx reply, at RCPT or after DATA (docomo
  and au reject after DATA) → ``undeliverable``;
- a 4xx reply, a timeout or a dropped connection → ``failed``, which a later
  run retries while the step is due;
- an address that cannot be given to a server at all → ``failed`` with the
  reason, without contacting the server.

When the connection drops, the session is opened again once for the rest of
the batch. The rest of the batch fails when that reconnect fails too, or when
the server rejects our sender address with a 5xx reply, which no later mail
would get past. Those mails are then ``failed``, and ``SmtpUnavailable`` is
raised after every outcome is in the caller's ``results``.
"""

from __future__ import annotations

import logging
import re
import smtplib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from email import policy
from email.message import Message
from typing import Literal

from net119.bounces.categories import categorize
from net119.mail.addresses import address_problem

log = logging.getLogger(__name__)

Outcome = Literal["sent", "failed", "undeliverable"]
SmtpSessionFactory = Callable[[], AbstractContextManager[smtplib.SMTP]]

# SMTP needs CRLF line ends, and smtplib fixes them only in str messages.
_WIRE_POLICY = policy.compat32.clone(linesep="\r\n")
_ENHANCED_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
# Server replies are stored for operators; keep them to a readable size.
_MAX_DIAGNOSTIC = 500


@dataclass(frozen=True)
class OutgoingMail:
    reminder_id: int
    recipient: str
    envelope_from: str
    message: Message


@dataclass(frozen=True)
class SendResult:
    reminder_id: int
    outcome: Outcome
    smtp_code: int | None = None
    status_code: str | None = None
    diagnostic: str | None = None
    failure_reason: str | None = None
    # Reason category of a rejection (user_unknown, filtered, ...).
    category: str | None = None


class SmtpUnavailable(RuntimeError):
    """The SMTP server could not be reached for a whole batch or its rest."""


def _decode(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:_MAX_DIAGNOSTIC]


def result_from_reply(reminder_id: int, code: int, reply: bytes | str) -> SendResult:
    """Judge an SMTP error reply for one recipient."""
    diagnostic = _decode(reply)
    match = _ENHANCED_STATUS.search(diagnostic)
    status = match.group(1) if match else None
    if 500 <= code < 600:
        status = status or "5.0.0"
        return SendResult(
            reminder_id, "undeliverable", code, status, diagnostic,
            f"rejected by the SMTP server ({code})",
            category=categorize(status, diagnostic).value,
        )
    return SendResult(
        reminder_id, "failed", code, status, diagnostic,
        f"temporary SMTP failure ({code})",
    )


def _send_one(client: smtplib.SMTP, mail: OutgoingMail) -> SendResult:
    try:
        refused = client.sendmail(
            mail.envelope_from, [mail.recipient], mail.message.as_bytes(policy=_WIRE_POLICY)
        )
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = exc.recipients.get(mail.recipient, (550, b"recipient refused"))
        return result_from_reply(mail.reminder_id, code, reply)
    except smtplib.SMTPSenderRefused as exc:
        # Our return path was refused: not the recipient's fault, so retry later.
        return SendResult(
            mail.reminder_id, "failed", exc.smtp_code, None, _decode(exc.smtp_error),
            f"sender address refused by the SMTP server ({exc.smtp_code})",
        )
    except smtplib.SMTPResponseException as exc:
        return result_from_reply(mail.reminder_id, exc.smtp_code, exc.smtp_error)
    if refused:
        code, reply = refused[mail.recipient]
        return result_from_reply(mail.reminder_id, code, reply)
    return SendResult(mail.reminder_id, "sent")


def _sender_refused_for_good(result: SendResult) -> bool:
    return (result.smtp_code or 0) >= 500 and (result.failure_reason or "").startswith(
        "sender address refused"
    )


def _fail_rest(rest: list[OutgoingMail], cause: SendResult, results: list[SendResult]) -> None:
    """Record every mail in ``rest`` as failed for the same reason as ``cause``."""
    for mail in rest:
        results.append(
            SendResult(mail.reminder_id, "failed", cause.smtp_code, None, cause.diagnostic,
                       cause.failure_reason)
        )


def send_batch(
    open_session: SmtpSessionFactory,
    mails: Iterable[OutgoingMail],
    results: list[SendResult],
) -> None:
    """Send ``mails`` over one session, appending one result per mail to ``results``.

    Results are appended as they happen, so a caller that catches
    ``SmtpUnavailable`` still records every outcome.
    """
    pending = list(mails)
    sendable: list[OutgoingMail] = []
    for mail in pending:
        problem = address_problem(mail.recipient)
        if problem is None:
            sendable.append(mail)
        else:
            results.append(
                SendResult(mail.reminder_id, "failed", failure_reason=f"invalid address: {problem}")
            )
    if not sendable:
        return

    position = 0
    reconnected = False
    while position < len(sendable):
        try:
            with open_session() as client:
                while position < len(sendable):
                    mail = sendable[position]
                    try:
                        result = _send_one(client, mail)
                        results.append(result)
                    except (smtplib.SMTPServerDisconnected, OSError) as exc:
                        # The mail's fate is unknown; it keeps its Message-ID for the retry.
                        results.append(
                            SendResult(
                                mail.reminder_id, "failed",
                                failure_reason=f"connection lost during send: {type(exc).__name__}",
                            )
                        )
                        position += 1
                        raise
                    except UnicodeEncodeError:
                        results.append(
                            SendResult(
                                mail.reminder_id, "failed",
                                failure_reason="invalid address: cannot be encoded for SMTP",
                            )
                        )
                    else:
                        if _sender_refused_for_good(result):
                            _fail_rest(sendable[position + 1:], result, results)
                            raise SmtpUnavailable(
                                f"the SMTP server refuses the sender address for good "
                                f"({result.smtp_code}): {result.diagnostic}"
                            )
                    position += 1
        except (smtplib.SMTPException, OSError) as exc:
            if position >= len(sendable):
                # The batch is done and only closing the session failed.
                log.warning("Closing the SMTP session failed: %s", type(exc).__name__)
                return
            if reconnected:
                for mail in sendable[position:]:
                    results.append(
                        SendResult(
                            mail.reminder_id, "failed",
                            failure_reason=f"SMTP server unavailable: {type(exc).__name__}",
                        )
                    )
                raise SmtpUnavailable(
                    f"SMTP server unavailable after reconnecting ({exc}); "
                    f"{len(sendable) - position} mails left as failed"
                ) from exc
            log.warning(
                "SMTP session failed (%s); reconnecting for the remaining %d mails",
                type(exc).__name__, len(sendable) - position,
            )
            reconnected = True
