"""Renewals (定期更新手続き): extend a user's validity by one calendar year.

A renewal sets ``expires_at`` to one calendar year after the later of the
current expiry and the moment of renewal, makes the user ``active`` whatever
the status was, and starts a new cycle whose reminders begin 90 days before
the new expiry. A renewal through a reminder's link also marks that reminder
``confirmed``, the only proof that the mail arrived.

Steps of ``renew_from_reminder``, under row locks on the reminder, then the
user (the order bounce ingestion and send recording use too, so they never
deadlock with a renewal):

1. find the reminder; a reminder already confirmed returns ``already_renewed``
   (a second click or a retried request changes nothing);
2. a reminder of a finished cycle (the user's expiry has moved on) returns
   ``cycle_finished``;
3. renew, record the renewal and the status event, mark the reminder.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from net119.schedule import renewed_expiry

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

Via = Literal["link", "phone", "fax", "post", "operator"]
RenewalStatus = Literal["renewed", "already_renewed", "cycle_finished", "not_found"]


@dataclass(frozen=True)
class RenewalResult:
    status: RenewalStatus
    user_id: int | None = None
    old_expires_at: dt.datetime | None = None
    new_expires_at: dt.datetime | None = None
    renewal_id: int | None = None


def renew_user(
    conn: Connection,
    user_id: int,
    *,
    at: dt.datetime,
    via: Via,
    reminder_id: int | None = None,
    recorded_by: str | None = None,
    note: str | None = None,
    run_id: str | None = None,
) -> RenewalResult:
    """Renew ``user_id`` at ``at`` in the caller's transaction; the caller commits.

    Returns ``not_found`` for an unknown user.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT expires_at, status, lapse_reason FROM net119.users WHERE id = %s FOR UPDATE",
            (user_id,),
        )
        row = cur.fetchone()
        if row is None:
            return RenewalResult("not_found", user_id)
        old_expires_at, old_status, old_reason = row
        new_expires_at = renewed_expiry(old_expires_at, at)

        cur.execute(
            """
            UPDATE net119.users
            SET expires_at = %s, status = 'active', lapse_reason = NULL,
                lapsed_at = NULL, updated_at = now()
            WHERE id = %s
            """,
            (new_expires_at, user_id),
        )
        cur.execute(
            """
            INSERT INTO net119.renewals (
                user_id, renewed_at, old_expires_at, new_expires_at, via,
                reminder_id, recorded_by, note
            )
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            RETURNING id
            """,
            (user_id, at, old_expires_at, new_expires_at, via, reminder_id, recorded_by, note),
        )
        renewal_id = cur.fetchone()[0]
        if old_status != "active":
            cur.execute(
                """
                INSERT INTO net119.status_events (
                    user_id, occurred_at, old_status, new_status, old_reason,
                    new_reason, cause, run_id
                )
                VALUES (%s, %s, %s, 'active', %s, NULL, %s, %s)
                """,
                (user_id, at, old_status, old_reason, f"renewed via {via}", run_id),
            )
    log.info("Renewed user %s via %s (renewal %s)", user_id, via, renewal_id)
    return RenewalResult("renewed", user_id, old_expires_at, new_expires_at, renewal_id)


def renew_from_reminder(
    conn: Connection, reminder_id: int, *, at: dt.datetime, via: Via = "link"
) -> RenewalResult:
    """Renew the user of ``reminder_id`` once, and mark the reminder confirmed.

    Commits on success; rolls back and returns a status otherwise.
    """
    try:
        with conn.cursor() as cur:
            # Two confirmations of the same link serialise on the reminder's
            # lock, and confirmations of two links of one user on the user's.
            cur.execute(
                "SELECT user_id, outcome, cycle_expires_at FROM net119.reminders "
                "WHERE id = %s FOR UPDATE",
                (reminder_id,),
            )
            row = cur.fetchone()
            if row is None:
                conn.rollback()
                return RenewalResult("not_found")
            user_id, outcome, cycle_expires_at = row
            cur.execute(
                "SELECT expires_at FROM net119.users WHERE id = %s FOR UPDATE", (user_id,)
            )
            current_expiry = cur.fetchone()[0]
            if outcome == "confirmed":
                conn.rollback()
                return RenewalResult("already_renewed", user_id, new_expires_at=current_expiry)
            if cycle_expires_at != current_expiry:
                conn.rollback()
                return RenewalResult("cycle_finished", user_id, new_expires_at=current_expiry)

            result = renew_user(conn, user_id, at=at, via=via, reminder_id=reminder_id)
            cur.execute(
                """
                UPDATE net119.reminders
                SET outcome = 'confirmed', confirmed_at = %s, outcome_at = now()
                WHERE id = %s
                """,
                (at, reminder_id),
            )
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    return result
