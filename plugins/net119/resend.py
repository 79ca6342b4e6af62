"""Resend the reminder to chosen users by hand (リマインダーメールの手動再送信).

Automatic mail stops after the last schedule step. A user whose mail did not
arrive (不達) is reached again only after the station has confirmed the address
by FAX or post. Staff then resend 「定期更新手続きのお願い」 to that user,
optionally to a corrected address. A resend works in every state and however
long after expiry. It is the same reminder as the automatic one: wording by
the run date against the expiry date, a fresh renewal link, its own VERP token
and Message-ID. The ledger records it as ``kind = 'manual'`` with no offset,
with who asked (``requested_by``) and why (``request_reason``).

Steps of ``resend``:

1. ``validate_request`` checks the whole request and raises
   ``RequestValidationError`` naming every bad value, having changed nothing;
2. lock the requested users in id order and decide per user. Two concurrent
   runs for the same user serialise on that lock, so the second one reads the
   first one's claim:

   - a resend that this run already claimed is never claimed anew, because
     the task was retried. A recorded outcome is reported as it is. A send
     interrupted while 'sending' is reported as interrupted and not repeated.
     A failed one is claimed again with the same Message-ID;
   - a manual resend claimed by another run within the window
     (``NET119_RESEND_WINDOW_MINUTES``, default 10) is refused unless forced;
   - a stored address that no SMTP server could take is refused;

3. write the corrected address with its audit row, claim a ledger row
   ('sending') per user to send, then commit. A dry run rolls back here and
   reports what it would have done;
4. mail the claimed rows with ``reminders.send_claimed``, the same path as
   the daily reminders: a fresh renewal-token hash per row, one SMTP session,
   and each outcome recorded with a re-evaluation of the lapse reasons.

Only user ids, counts and masked addresses are logged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple


from net119 import sqlfiles, staff_requests, transitions
from net119.config import Settings
from net119.mail.addresses import address_problem, mask_address
from net119.mail.compose import wording_for
from net119.reminders import send_claimed
from net119.sending import SendResult, SmtpSessionFactory

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

WINDOW_ENV = "NET119_RESEND_WINDOW_MINUTES"
DEFAULT_WINDOW_MINUTES = 10

Action = Literal["send", "reclaim", "refused", "already_handled", "interrupted"]


@dataclass(frozen=True)
class ResendRequest:
    """A validated manual-resend request. The corrected address stays out of repr."""

    user_ids: tuple[int, ...]
    reason: str
    corrected_email: str | None = field(default=None, repr=False)
    force: bool = False
    dry_run: bool = False
    # Ids entered more than once; each user gets one mail.
    duplicate_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Decision:
    """The action of one run for one user, decided under the user's row lock."""

    user_id: int
    action: Action
    reason: str | None = None
    # This run's existing ledger row, for a retried task.
    reminder_id: int | None = None
    outcome: str | None = None
    corrects_address: bool = False


@dataclass
class ResendSummary:
    """Result of one run, by user id. Safe to log and to store as XCom."""

    dry_run: bool
    requested: list[int]
    duplicates_ignored: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    undeliverable: list[dict[str, object]] = field(default_factory=list)
    failed: list[dict[str, object]] = field(default_factory=list)
    refused: list[dict[str, object]] = field(default_factory=list)
    already_handled: list[dict[str, object]] = field(default_factory=list)
    interrupted: list[int] = field(default_factory=list)
    address_corrected: list[int] = field(default_factory=list)
    # Filled by a dry run only.
    would_send: list[int] = field(default_factory=list)
    would_correct_address: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        lists: dict[str, list[object]] = {
            "sent": list(self.sent),
            "undeliverable": list(self.undeliverable),
            "failed": list(self.failed),
            "refused": list(self.refused),
            "already_handled": list(self.already_handled),
            "interrupted": list(self.interrupted),
            "address_corrected": list(self.address_corrected),
            "would_send": list(self.would_send),
            "would_correct_address": list(self.would_correct_address),
        }
        return {
            "dry_run": self.dry_run,
            "requested": list(self.requested),
            "duplicates_ignored": list(self.duplicates_ignored),
            **lists,
            "counts": {name: len(values) for name, values in lists.items()},
        }

    def raise_for_temporary_failures(self) -> None:
        """Raise ``TemporarySendFailure`` when a mail of this run failed and may pass.

        A 4xx reply, a timeout, a dropped connection or an unexpected error is
        retryable. A mail whose To header could not be written is not, and
        addresses that no server could take are refused before the claim.
        """
        retryable = [item for item in self.failed if item.get("retryable")]
        if retryable:
            ids = ", ".join(str(item["user_id"]) for item in retryable)
            raise TemporarySendFailure(
                f"{len(retryable)} of {len(self.requested)} manual resends failed "
                f"temporarily (user ids {ids}); a retry of this task sends only the "
                "failed ones, with the same Message-ID"
            )


class _RecentResend(NamedTuple):
    """A row of ``select_recent_manual_resends.sql``."""

    reminder_id: int
    user_id: int
    run_id: str | None
    outcome: str
    claimed_at: dt.datetime
    this_run: bool


class TemporarySendFailure(RuntimeError):
    """Some mails of a manual resend failed for a reason that may pass."""


def window_minutes_from_env(lookup: Callable[[str], str | None] | None = None) -> int:
    """Read ``NET119_RESEND_WINDOW_MINUTES``: minutes in which a resend is not repeated.

    Raises ``ValueError`` naming the variable when it is not a whole number of
    at least 1.
    """
    raw = (lookup or os.environ.get)(WINDOW_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_WINDOW_MINUTES
    try:
        minutes = int(raw)
    except ValueError:
        raise ValueError(
            f"invalid {WINDOW_ENV}={raw!r}: expected a whole number of minutes"
        ) from None
    if minutes < 1:
        raise ValueError(f"invalid {WINDOW_ENV}={raw!r}: must be at least 1")
    return minutes


def validate_request(conn: Connection, params: Mapping[str, object]) -> ResendRequest:
    """Check the form fields of a manual resend and return the request.

    Raises ``RequestValidationError`` naming every bad value. Reads the
    database only to find unknown user ids, and ends its transaction.
    """
    problems: list[str] = []
    user_ids, duplicates = staff_requests.parse_user_ids(
        params.get("user_ids"), problems
    )
    corrected = _parse_corrected_email(
        params.get("corrected_email"), user_ids, problems
    )
    reason = staff_requests.parse_text(
        params.get("reason"), "reason", "再送信の理由", problems
    )
    force = staff_requests.parse_flag(params.get("force"), "force", problems)
    dry_run = staff_requests.parse_flag(params.get("dry_run"), "dry_run", problems)

    staff_requests.raise_for_problems(conn, user_ids, problems, "Manual resend")

    return ResendRequest(
        user_ids=tuple(user_ids),
        reason=reason,
        corrected_email=corrected,
        force=force,
        dry_run=dry_run,
        duplicate_ids=tuple(duplicates),
    )


def _parse_corrected_email(
    value: object, user_ids: list[int], problems: list[str]
) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        problems.append("corrected_email (訂正後のメールアドレス) must be text")
        return None

    # Surrounding spaces come from copying; an address cannot contain them.
    address = value.strip()
    if len(user_ids) > 1:
        problems.append(
            "corrected_email (訂正後のメールアドレス) is given for "
            f"{len(user_ids)} users; a corrected address applies to exactly one "
            "user, so trigger one run per user"
        )
    problem = address_problem(address)
    if problem is not None:
        problems.append(
            f"corrected_email (訂正後のメールアドレス) {mask_address(address)} "
            f"is invalid: {problem}"
        )
        return None
    return address


def resend(
    conn: Connection,
    open_session: SmtpSessionFactory,
    request: ResendRequest,
    *,
    now: dt.datetime,
    run_date: dt.date,
    run_id: str,
    requested_by: str,
    settings: Settings,
    window_minutes: int = DEFAULT_WINDOW_MINUTES,
) -> ResendSummary:
    """Resend the reminder to the users of ``request`` and return the summary.

    ``now`` is the run's reference time (status events), ``run_date`` its
    Asia/Tokyo date (wording and ledger). ``run_id`` identifies the Airflow run
    and is what lets a retried task find its own rows. Raises ``SmtpUnavailable``
    after recording the outcomes if the server cannot be reached.
    """
    summary = ResendSummary(
        dry_run=request.dry_run,
        requested=list(request.user_ids),
        duplicates_ignored=list(request.duplicate_ids),
    )
    try:
        decisions = _lock_and_decide(conn, request, run_id, window_minutes)
        _report_decisions(decisions, summary)
        if request.dry_run:
            conn.rollback()
            summary.would_send = [
                d.user_id for d in decisions if d.action in ("send", "reclaim")
            ]
            summary.would_correct_address = [
                d.user_id for d in decisions if d.corrects_address
            ]
            _log_summary(run_id, summary)
            return summary

        corrected = _correct_addresses(
            conn, request, decisions, now, run_id, requested_by
        )
        claimed = _claim(
            conn, request, decisions, run_date, run_id, requested_by, settings
        )
    except Exception:
        conn.rollback()
        raise
    conn.commit()
    summary.address_corrected = corrected

    try:
        if claimed:
            _send_and_record(
                conn, open_session, claimed, summary, now, run_date, run_id, settings
            )
    finally:
        # Logged also when the SMTP server is unreachable, with what was recorded.
        _log_summary(run_id, summary)
    return summary


def _log_summary(run_id: str, summary: ResendSummary) -> None:
    kind = "dry run" if summary.dry_run else "run"
    log.info(
        "Manual resend %s %s summary: %s",
        kind,
        run_id,
        json.dumps(summary.as_dict(), ensure_ascii=False),
    )


def _lock_and_decide(
    conn: Connection, request: ResendRequest, run_id: str, window_minutes: int
) -> list[Decision]:
    user_ids = list(request.user_ids)
    with conn.cursor() as cur:
        cur.execute(sqlfiles.load("lock_users_for_resend"), {"user_ids": user_ids})
        stored_emails: dict[int, str] = dict(cur.fetchall())
        cur.execute(
            sqlfiles.load("select_recent_manual_resends"),
            {"user_ids": user_ids, "run_id": run_id, "window_minutes": window_minutes},
        )
        recent: dict[int, list[_RecentResend]] = {}
        for row in cur.fetchall():
            resend_row = _RecentResend(*row)
            recent.setdefault(resend_row.user_id, []).append(resend_row)

    decisions = []
    for user_id in sorted(stored_emails):
        decisions.append(
            _decide(
                user_id,
                stored_emails[user_id],
                recent.get(user_id, []),
                request,
                window_minutes,
            )
        )
    return decisions


def _decide(
    user_id: int,
    stored_email: str,
    recent: list[_RecentResend],
    request: ResendRequest,
    window_minutes: int,
) -> Decision:
    own = next((row for row in recent if row.this_run), None)
    if own is not None:
        if own.outcome == "failed":
            return Decision(user_id, "reclaim", reminder_id=own.reminder_id)
        if own.outcome == "sending":
            return Decision(
                user_id,
                "interrupted",
                reminder_id=own.reminder_id,
                reason="an earlier try of this run was interrupted during the send; "
                "whether the mail went out is unknown, so it is not sent again",
            )
        return Decision(
            user_id, "already_handled", reminder_id=own.reminder_id, outcome=own.outcome
        )

    if recent and not request.force:
        latest = recent[0]
        return Decision(
            user_id,
            "refused",
            reason="a manual resend was already claimed at "
            f"{latest.claimed_at.isoformat(timespec='seconds')} "
            f"by run {latest.run_id}, within the {window_minutes}-minute window; "
            "set force to send again",
        )

    if request.corrected_email is None:
        problem = address_problem(stored_email)
        if problem is not None:
            return Decision(
                user_id,
                "refused",
                reason=f"the stored address is invalid ({problem}); "
                "resend with corrected_email",
            )
        return Decision(user_id, "send")
    return Decision(
        user_id, "send", corrects_address=request.corrected_email != stored_email
    )


def _report_decisions(decisions: list[Decision], summary: ResendSummary) -> None:
    for decision in decisions:
        if decision.action == "refused":
            summary.refused.append(
                {"user_id": decision.user_id, "reason": decision.reason}
            )
            log.info(
                "Manual resend to user %s refused: %s",
                decision.user_id,
                decision.reason,
            )
        elif decision.action == "already_handled":
            summary.already_handled.append(
                {"user_id": decision.user_id, "outcome": decision.outcome}
            )
            log.info(
                "User %s was handled by an earlier try of this run (reminder %s, %s)",
                decision.user_id,
                decision.reminder_id,
                decision.outcome,
            )
        elif decision.action == "interrupted":
            summary.interrupted.append(decision.user_id)
            log.warning(
                "User %s: reminder %s was interrupted in an earlier try; not resent",
                decision.user_id,
                decision.reminder_id,
            )


def _correct_addresses(
    conn: Connection,
    request: ResendRequest,
    decisions: list[Decision],
    now: dt.datetime,
    run_id: str,
    requested_by: str,
) -> list[int]:
    corrected: list[int] = []
    with conn.cursor() as cur:
        for decision in decisions:
            if not decision.corrects_address:
                continue
            cur.execute(
                sqlfiles.load("correct_user_email"),
                {
                    "user_id": decision.user_id,
                    "new_email": request.corrected_email,
                    "changed_by": requested_by,
                    "reason": request.reason,
                    "run_id": run_id,
                },
            )
            if cur.fetchone() is not None:
                corrected.append(decision.user_id)
                log.info(
                    "Address of user %s corrected to %s",
                    decision.user_id,
                    mask_address(request.corrected_email or ""),
                )
    # The lapse reason follows the latest reminder to the current address,
    # which has none yet after a correction.
    transitions.reevaluate_lapse_reasons(
        conn,
        now=now,
        run_id=run_id,
        user_ids=corrected,
        cause="address corrected",
        commit=False,
    )
    return corrected


def _claim(
    conn: Connection,
    request: ResendRequest,
    decisions: list[Decision],
    run_date: dt.date,
    run_id: str,
    requested_by: str,
    settings: Settings,
) -> dict[int, int]:
    """Claim the ledger rows to send and return them as reminder id → user id."""
    new = [d.user_id for d in decisions if d.action == "send"]
    again = [d.reminder_id for d in decisions if d.action == "reclaim"]
    claimed: dict[int, int] = {}
    with conn.cursor() as cur:
        if new:
            cur.execute(
                sqlfiles.load("claim_manual_resends"),
                {
                    "user_ids": new,
                    "run_date": run_date,
                    "domain": settings.message_id_domain,
                    "run_id": run_id,
                    "requested_by": requested_by,
                    "reason": request.reason,
                },
            )
            claimed.update(cur.fetchall())
        if again:
            cur.execute(
                sqlfiles.load("reclaim_manual_resends"), {"reminder_ids": again}
            )
            claimed.update(cur.fetchall())
    return claimed


def _send_and_record(
    conn: Connection,
    open_session: SmtpSessionFactory,
    claimed: dict[int, int],
    summary: ResendSummary,
    now: dt.datetime,
    run_date: dt.date,
    run_id: str,
    settings: Settings,
) -> None:
    results = send_claimed(
        conn,
        open_session,
        list(claimed),
        choose_wording=lambda cycle: wording_for(cycle, run_date),
        now=now,
        run_id=run_id,
        settings=settings,
    )
    _report_results(results, claimed, summary)


def _report_results(
    results: list[SendResult],
    claimed: dict[int, int],
    summary: ResendSummary,
) -> None:
    for result in results:
        user_id = claimed[result.reminder_id]
        if result.outcome == "sent":
            summary.sent.append(user_id)
        elif result.outcome == "undeliverable":
            summary.undeliverable.append(
                {
                    "user_id": user_id,
                    "status_code": result.status_code,
                    "reason": result.failure_reason,
                }
            )
        else:
            summary.failed.append(
                {
                    "user_id": user_id,
                    "reason": result.failure_reason,
                    # A retry cannot fix an address that no server takes.
                    "retryable": not (result.failure_reason or "").startswith(
                        "invalid address"
                    ),
                }
            )
        log.info(
            "Manual resend to user %s (reminder %s): %s",
            user_id,
            result.reminder_id,
            result.outcome,
        )
