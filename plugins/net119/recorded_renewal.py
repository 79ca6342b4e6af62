"""Record renewals that a station confirmed by phone, FAX or post (定期更新の記録).

A user who cannot use the renewal link may tell the station by phone, FAX or
post that they continue. Staff record that renewal, and it counts like one
made through the link: one calendar year after the later of the current
expiry and now, the user ``active`` whatever the status was, a new reminder
cycle. ``net119.renewals`` keeps how it was confirmed (``via``), who recorded
it (``recorded_by``), the note and the Airflow run.

A renewal always adds a year, so recording the same confirmation twice would
extend the validity by two years. Steps of ``record_renewals``, in one
transaction:

1. ``validate_request`` checks the whole request and raises
   ``RequestValidationError`` naming every bad value, having changed nothing;
2. lock the users in id order, so concurrent runs for the same user serialise;
3. per user: a renewal that this run already recorded is reported and never
   repeated (a retried task). An active user with no reminder step due yet,
   whose validity ends more than 90 days after the run date, is refused unless
   forced: that user has just renewed, by link or by an earlier run;
4. renew with ``net119.renewal.renew_user``, stamp the run id on the renewal,
   then commit. A dry run rolls back instead.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from net119 import renewal, sqlfiles, staff_requests
from net119.schedule import OFFSETS, renewed_expiry, step_date, tokyo_date

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

# Channels through which a station can confirm a renewal, as offered in the form.
CONFIRMATION_CHANNELS: tuple[str, ...] = ("phone", "fax", "post")


@dataclass(frozen=True)
class RenewalRequest:
    """A validated request to record confirmed renewals."""

    user_ids: tuple[int, ...]
    via: str
    note: str
    force: bool = False
    dry_run: bool = False
    duplicate_ids: tuple[int, ...] = ()


@dataclass
class RenewalSummary:
    """Result of one run, by user id. Safe to log and to store as XCom."""

    dry_run: bool
    requested: list[int]
    duplicates_ignored: list[int] = field(default_factory=list)
    renewed: list[int] = field(default_factory=list)
    # Renewed users who were lapsed (失効中) and are active again.
    reactivated: list[int] = field(default_factory=list)
    refused: list[dict[str, object]] = field(default_factory=list)
    already_recorded: list[int] = field(default_factory=list)
    would_renew: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        lists: dict[str, list[object]] = {
            "renewed": list(self.renewed),
            "reactivated": list(self.reactivated),
            "refused": list(self.refused),
            "already_recorded": list(self.already_recorded),
            "would_renew": list(self.would_renew),
        }
        return {
            "dry_run": self.dry_run,
            "requested": list(self.requested),
            "duplicates_ignored": list(self.duplicates_ignored),
            **lists,
            "counts": {name: len(values) for name, values in lists.items()},
        }


def validate_request(conn: Connection, params: Mapping[str, object]) -> RenewalRequest:
    """Check the form fields of a recorded renewal and return the request.

    Raises ``RequestValidationError`` naming every bad value. Reads the
    database only to find unknown user ids, and ends its transaction.
    """
    problems: list[str] = []
    user_ids, duplicates = staff_requests.parse_user_ids(
        params.get("user_ids"), problems
    )
    via = params.get("renewal_via")
    if via not in CONFIRMATION_CHANNELS:
        shown = (
            repr(via)
            if isinstance(via, str) and via.isascii() and len(via) < 20
            else "none"
        )
        problems.append(
            "renewal_via (確認方法) must be one of "
            f"{', '.join(CONFIRMATION_CHANNELS)}, got {shown}"
        )
    note = staff_requests.parse_text(params.get("note"), "note", "確認の内容", problems)
    force = staff_requests.parse_flag(params.get("force"), "force", problems)
    dry_run = staff_requests.parse_flag(params.get("dry_run"), "dry_run", problems)

    staff_requests.raise_for_problems(conn, user_ids, problems, "Recorded renewal")

    return RenewalRequest(
        user_ids=tuple(user_ids),
        via=cast(str, via),
        note=note,
        force=force,
        dry_run=dry_run,
        duplicate_ids=tuple(duplicates),
    )


def record_renewals(
    conn: Connection,
    request: RenewalRequest,
    *,
    now: dt.datetime,
    run_id: str,
    recorded_by: str,
) -> RenewalSummary:
    """Renew the users of ``request`` as confirmed through ``request.via``.

    ``now`` is the moment of renewal (the run's reference time). Commits, or
    rolls back for a dry run or on error.
    """
    summary = RenewalSummary(
        dry_run=request.dry_run,
        requested=list(request.user_ids),
        duplicates_ignored=list(request.duplicate_ids),
    )
    try:
        _record(conn, request, summary, now, run_id, recorded_by)
    except Exception:
        conn.rollback()
        raise
    if request.dry_run:
        conn.rollback()
    else:
        conn.commit()
    log.info(
        "Recorded renewal %s %s summary: %s",
        "dry run" if request.dry_run else "run",
        run_id,
        json.dumps(summary.as_dict(), ensure_ascii=False),
    )
    return summary


def _record(
    conn: Connection,
    request: RenewalRequest,
    summary: RenewalSummary,
    now: dt.datetime,
    run_id: str,
    recorded_by: str,
) -> None:
    user_ids = list(request.user_ids)
    with conn.cursor() as cur:
        cur.execute(sqlfiles.load("lock_users_for_renewal"), {"user_ids": user_ids})
        users = cur.fetchall()
        cur.execute(
            sqlfiles.load("select_run_renewals"),
            {"user_ids": user_ids, "run_id": run_id},
        )
        recorded_by_this_run = {row[0] for row in cur.fetchall()}

    for user_id, status, expires_at in users:
        if user_id in recorded_by_this_run:
            summary.already_recorded.append(user_id)
            log.info("User %s was renewed by an earlier try of run %s", user_id, run_id)
            continue
        refusal = _not_due_reason(status, expires_at, now)
        if refusal is not None and not request.force:
            summary.refused.append({"user_id": user_id, "reason": refusal})
            log.info("Recorded renewal of user %s refused: %s", user_id, refusal)
            continue
        if request.dry_run:
            summary.would_renew.append(user_id)
            continue

        result = renewal.renew_user(
            conn,
            user_id,
            at=now,
            via=cast(renewal.Via, request.via),
            recorded_by=recorded_by,
            note=request.note,
            run_id=run_id,
        )
        with conn.cursor() as cur:
            cur.execute(
                sqlfiles.load("stamp_renewal_run"),
                {"renewal_id": result.renewal_id, "run_id": run_id},
            )
        summary.renewed.append(user_id)
        if status != "active":
            summary.reactivated.append(user_id)


def _not_due_reason(
    status: str, expires_at: dt.datetime, now: dt.datetime
) -> str | None:
    """Return why an active user is not due for renewal, or ``None`` when they are."""
    first_step = step_date(expires_at, OFFSETS[0])
    if status != "active" or tokyo_date(now) >= first_step:
        return None
    return (
        "no renewal is due: the validity ends on "
        f"{tokyo_date(expires_at).isoformat()}, more than {-OFFSETS[0]} days away, "
        "and a renewal now would extend it to "
        f"{tokyo_date(renewed_expiry(expires_at, now)).isoformat()}; "
        "set force to renew anyway"
    )
