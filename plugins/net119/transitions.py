"""Expiry transitions: who is lapsed (失効中), and why.

A user whose ``expires_at`` has passed without renewal becomes ``lapsed``.
The reason is ``undeliverable`` (不達) when the latest reminder that went to
the user's current address failed permanently: a rejection at send time, a
bounce, or an address that no SMTP server can take. It is ``not_renewed``
(未更新) otherwise. The reason is computed again whenever new delivery
information arrives. Every change is written to ``net119.status_events`` with
the run that made it. A change that has already happened is not found again,
so reruns record nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from net119 import sqlfiles

if TYPE_CHECKING:
    from collections.abc import Sequence

    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransitionCounts:
    lapsed_undeliverable: int = 0
    lapsed_not_renewed: int = 0
    reason_to_undeliverable: int = 0
    reason_to_not_renewed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "lapsed_undeliverable": self.lapsed_undeliverable,
            "lapsed_not_renewed": self.lapsed_not_renewed,
            "reason_to_undeliverable": self.reason_to_undeliverable,
            "reason_to_not_renewed": self.reason_to_not_renewed,
        }


def apply_expiry_transitions(
    conn: Connection, *, now: dt.datetime, run_id: str | None = None
) -> TransitionCounts:
    """Lapse the users whose validity ended by ``now`` and refresh lapse reasons."""
    with conn.cursor() as cur:
        cur.execute(sqlfiles.load("lapse_expired_users"), {"now": now, "run_id": run_id})
        lapsed = dict(cur.fetchall())
    conn.commit()
    changed = reevaluate_lapse_reasons(conn, now=now, run_id=run_id, cause="expiry run")
    counts = TransitionCounts(
        lapsed_undeliverable=lapsed.get("undeliverable", 0),
        lapsed_not_renewed=lapsed.get("not_renewed", 0),
        reason_to_undeliverable=changed.get("undeliverable", 0),
        reason_to_not_renewed=changed.get("not_renewed", 0),
    )
    log.info("Expiry transitions: %s", counts.as_dict())
    return counts


def reevaluate_lapse_reasons(
    conn: Connection,
    *,
    now: dt.datetime,
    run_id: str | None = None,
    user_ids: Sequence[int] | None = None,
    cause: str = "delivery information",
    commit: bool = True,
) -> dict[str, int]:
    """Recompute the lapse reason of lapsed users and record each change.

    Limited to ``user_ids`` when given (an empty list changes nothing). Returns
    the number of users whose reason became each value.
    """
    if user_ids is not None and not user_ids:
        return {}
    with conn.cursor() as cur:
        cur.execute(
            sqlfiles.load("reevaluate_lapse_reasons"),
            {
                "now": now,
                "run_id": run_id,
                "user_ids": list(user_ids) if user_ids is not None else None,
                "cause": cause,
            },
        )
        changed = dict(cur.fetchall())
    if commit:
        conn.commit()
    if changed:
        log.info("Lapse reasons changed (%s): %s", cause, changed)
    return changed
