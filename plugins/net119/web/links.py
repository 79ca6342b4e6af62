"""Look up the reminder behind a renewal link by the SHA-256 of its token."""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from net119 import sqlfiles
from net119.mail.compose import hash_token

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

LinkState = Literal["open", "confirmed", "cycle_finished"]


@dataclass(frozen=True)
class RenewalLink:
    """A reminder reached through its link, with what the pages show of it."""

    reminder_id: int
    user_id: int
    outcome: str
    cycle_expires_at: dt.datetime
    user_name: str
    status: str
    expires_at: dt.datetime
    station_name: str
    station_phone: str
    station_fax: str
    station_email: str

    @property
    def state(self) -> LinkState:
        """Return whether the link can renew, already did, or belongs to an old cycle.

        This mirrors the checks of ``renew_from_reminder``, which repeats them
        under a lock when the form is posted.
        """
        if self.outcome == "confirmed":
            return "confirmed"
        if self.cycle_expires_at != self.expires_at:
            return "cycle_finished"
        return "open"


def find_link(conn: Connection, token: str) -> RenewalLink | None:
    """Return the reminder whose link token is ``token``, or None if there is none.

    Ends the read-only transaction it opened. The caller checks the token's
    format first.
    """
    token_hash = hash_token(token)
    with conn.cursor() as cur:
        cur.execute(sqlfiles.load("select_renewal_link"), {"token_hash": token_hash})
        row = cur.fetchone()
    conn.rollback()
    if row is None:
        return None
    stored_hash, *fields = row
    # The database matched the hash already. This constant-time comparison is
    # a second check that does not rely on it. Timing reveals nothing useful,
    # because a client cannot choose what the SHA-256 of its token looks like.
    if not hmac.compare_digest(bytes(stored_hash), token_hash):
        return None
    return RenewalLink(*fields)
