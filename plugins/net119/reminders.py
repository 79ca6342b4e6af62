"""Send the automatic reminders of one schedule step for one run date.

For step k and run date D, in keyset batches over the due users:

1. select the users whose step k is the latest due one on D and not yet
   handled in their current cycle (set-based, on the ``expires_at`` index);
2. claim a ledger row per user ('sending') and record the never-handled
   earlier steps of the cycle as skipped, then commit;
3. store a fresh renewal-token hash per claimed row, then commit, so the link
   works as soon as the mail arrives;
4. send the batch over one SMTP session;
5. record each outcome, re-evaluate the lapse reason of the users concerned,
   then commit.

A rerun finds no due user for the steps already handled, which is what makes
the task idempotent. Only ids and counts are logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from email.errors import HeaderParseError

from psycopg2.extras import execute_values

from net119 import sqlfiles, transitions
from net119.config import Settings
from net119.mail.addresses import address_problem
from net119.mail.compose import (
    ReminderContent,
    Wording,
    compose_reminder,
    new_renewal_token,
    renewal_url,
    verp_address,
    wording_for,
)
from net119.schedule import OFFSETS, due_window, offset_label
from net119.sending import OutgoingMail, SendResult, SmtpSessionFactory, send_batch

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)


@dataclass
class StepCounts:
    """Counts of one step's run, safe to show in the UI and to store as XCom."""

    offset: int
    label: str
    due: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    undeliverable: int = 0
    batches: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "offset": self.offset,
            "label": self.label,
            "due": self.due,
            "sent": self.sent,
            "skipped": self.skipped,
            "failed": self.failed,
            "undeliverable": self.undeliverable,
            "batches": self.batches,
            "failure_reasons": dict(self.failure_reasons),
        }


def send_step(
    conn: Connection,
    open_session: SmtpSessionFactory,
    *,
    offset: int,
    run_date: dt.date,
    now: dt.datetime,
    settings: Settings,
    run_id: str | None = None,
) -> StepCounts:
    """Send every reminder of step ``offset`` that is due on ``run_date``.

    ``now`` is the run's reference time: it dates status events, never
    the choice of who is due, which depends on ``run_date`` alone. Raises
    ``SmtpUnavailable`` after recording the batch if the server cannot be
    reached.
    """
    window = due_window(offset, run_date)
    counts = StepCounts(offset=offset, label=offset_label(offset))
    earlier = [o for o in OFFSETS if o < offset]
    after_id = 0

    while True:
        with conn.cursor() as cur:
            cur.execute(
                sqlfiles.load("select_due_users"),
                {
                    "window_start": window.start,
                    "window_end": window.end,
                    "after_id": after_id,
                    "offset": offset,
                    "lease_minutes": settings.claim_lease_minutes,
                    "run_id": run_id,
                    "batch_size": settings.batch_size,
                },
            )
            user_ids = [row[0] for row in cur.fetchall()]
        conn.commit()
        if not user_ids:
            break
        after_id = user_ids[-1]
        counts.due += len(user_ids)
        counts.batches += 1

        claimed = _claim(conn, user_ids, offset, earlier, run_date, run_id, settings, counts)
        if claimed:
            _send_and_record(conn, open_session, claimed, run_date, now, run_id, settings, counts)
        log.info(
            "Step %s batch %d: %d due, %d claimed, totals sent=%d failed=%d undeliverable=%d",
            counts.label, counts.batches, len(user_ids), len(claimed),
            counts.sent, counts.failed, counts.undeliverable,
        )
    return counts


def _claim(
    conn: Connection,
    user_ids: list[int],
    offset: int,
    earlier: list[int],
    run_date: dt.date,
    run_id: str | None,
    settings: Settings,
    counts: StepCounts,
) -> list[int]:
    with conn.cursor() as cur:
        cur.execute(
            sqlfiles.load("claim_reminders"),
            {
                "user_ids": user_ids,
                "offset": offset,
                "run_date": run_date,
                "domain": settings.message_id_domain,
                "run_id": run_id,
                "lease_minutes": settings.claim_lease_minutes,
            },
        )
        rows = cur.fetchall()
        if rows and earlier:
            cur.execute(
                sqlfiles.load("record_skipped_steps"),
                {
                    "user_ids": [row[1] for row in rows],
                    "cycles": [row[2] for row in rows],
                    "earlier_offsets": earlier,
                    "run_date": run_date,
                    "reason": f"superseded by the later step {offset_label(offset)}",
                    "run_id": run_id,
                },
            )
            counts.skipped += cur.rowcount
    conn.commit()
    return [row[0] for row in rows]


def _send_and_record(
    conn: Connection,
    open_session: SmtpSessionFactory,
    reminder_ids: list[int],
    run_date: dt.date,
    now: dt.datetime,
    run_id: str | None,
    settings: Settings,
    counts: StepCounts,
) -> None:
    # The wording follows the run date, not the step: a late 当日 step sent
    # after the expiry date must already speak of a lapsed user.
    results = send_claimed(
        conn, open_session, reminder_ids,
        choose_wording=lambda cycle: wording_for(cycle, run_date),
        now=now, run_id=run_id, settings=settings,
    )
    for result in results:
        setattr(counts, result.outcome, getattr(counts, result.outcome) + 1)
        if result.failure_reason:
            counts.failure_reasons[result.failure_reason] += 1


def send_claimed(
    conn: Connection,
    open_session: SmtpSessionFactory,
    reminder_ids: list[int],
    *,
    choose_wording: Callable[[dt.datetime], Wording],
    now: dt.datetime,
    run_id: str | None,
    settings: Settings,
) -> list[SendResult]:
    """Mail the claimed reminders ``reminder_ids`` and record one outcome each.

    Each mail gets a fresh renewal token, stored (as its hash) before the
    send. ``choose_wording`` picks the wording from the cycle's expiry. Every
    claimed row ends with an outcome, even when an unexpected error is raised.
    """
    results: list[SendResult] = []
    try:
        mails, token_rows = _compose_claimed(
            conn, reminder_ids, choose_wording, settings, results
        )
        with conn.cursor() as cur:
            execute_values(cur, sqlfiles.load("insert_renewal_tokens"), token_rows)
        conn.commit()
        send_batch(open_session, mails, results)
    finally:
        # Release every claimed row that got no result because of an unexpected
        # error, so the task's retry sends it instead of waiting for the lease.
        handled = {result.reminder_id for result in results}
        for reminder_id in reminder_ids:
            if reminder_id not in handled:
                results.append(
                    SendResult(reminder_id, "failed", failure_reason="interrupted by an error")
                )
        conn.rollback()
        record_results(conn, results, run_id=run_id, now=now)
    return results


def _compose_claimed(
    conn: Connection,
    reminder_ids: list[int],
    choose_wording: Callable[[dt.datetime], Wording],
    settings: Settings,
    results: list[SendResult],
) -> tuple[list[OutgoingMail], list[tuple[bytes, int]]]:
    """Build the mails of claimed rows and the hashes of their new link tokens.

    A row whose address cannot be sent to, or whose mail cannot be composed,
    gets a ``failed`` result in ``results`` and no mail.
    """
    with conn.cursor() as cur:
        cur.execute(sqlfiles.load("select_mail_content"), {"reminder_ids": reminder_ids})
        rows = cur.fetchall()

    mails: list[OutgoingMail] = []
    token_rows: list[tuple[bytes, int]] = []
    for (reminder_id, _user_id, cycle, recipient, message_id, verp_token,
         user_name, station_name, phone, fax, station_email) in rows:
        problem = address_problem(recipient)
        if problem is not None:
            results.append(
                SendResult(reminder_id, "failed", failure_reason=f"invalid address: {problem}")
            )
            continue
        token, token_hash = new_renewal_token()
        content = ReminderContent(
            recipient=recipient,
            user_name=user_name,
            station_name=station_name,
            station_phone=phone,
            station_fax=fax,
            station_email=station_email,
            expires_at=cycle,
            wording=choose_wording(cycle),
            renewal_url=renewal_url(settings, token),
            message_id=message_id,
            envelope_from=verp_address(settings, verp_token),
        )
        try:
            # The Date header is the moment the mail is built, not the run's time.
            message = compose_reminder(content, settings, dt.datetime.now(dt.UTC))
        except (ValueError, IndexError, HeaderParseError) as exc:
            # The address passed its check, so the content is at fault (for
            # example a name long enough to break the line limit).
            log.warning("Reminder %s cannot be composed: %s", reminder_id, exc)
            results.append(
                SendResult(reminder_id, "failed", failure_reason=f"mail cannot be composed: {exc}")
            )
            continue
        token_rows.append((token_hash, reminder_id))
        mails.append(OutgoingMail(reminder_id, recipient, content.envelope_from, message))
    return mails, token_rows


def record_results(
    conn: Connection, results: list[SendResult], *, run_id: str | None, now: dt.datetime
) -> None:
    """Store send outcomes and re-evaluate the lapse reason of the users concerned."""
    if not results:
        return
    with conn.cursor() as cur:
        execute_values(
            cur,
            sqlfiles.load("record_send_results"),
            [
                (r.reminder_id, r.outcome, r.smtp_code, r.status_code, r.diagnostic,
                 r.category, r.failure_reason)
                for r in results
            ],
            template="(%s::bigint, %s, %s::integer, %s, %s, %s, %s)",
        )
        cur.execute(
            "SELECT DISTINCT user_id FROM net119.reminders WHERE id = ANY(%s)",
            ([r.reminder_id for r in results],),
        )
        user_ids = [row[0] for row in cur.fetchall()]
    transitions.reevaluate_lapse_reasons(
        conn, now=now, run_id=run_id, user_ids=user_ids, cause="send result", commit=False
    )
    conn.commit()
