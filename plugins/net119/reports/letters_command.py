"""Write notice letters to a folder, for letters a report did not attach.

Used by ``net119 notice-letters``: either for the given user ids, or for every
lapsed 不達 user of one station.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from net119 import sqlfiles
from net119.config import Settings
from net119.mail.compose import sender_domain
from net119.reports.letter import NoticeLetter, letter_filename, render_notice_letter

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)


def load_letters(
    conn: Connection,
    *,
    user_ids: list[int] | None,
    station_id: str | None,
    issued_on: dt.date,
    settings: Settings,
) -> list[NoticeLetter]:
    """Return the letters of ``user_ids``, or of every lapsed 不達 user of ``station_id``.

    Raises ``ValueError`` when neither is given.
    """
    if not user_ids and not station_id:
        raise ValueError("no users selected: give user ids or a station id")
    with conn.cursor() as cur:
        cur.execute(
            sqlfiles.load("report_letter_users"),
            {"user_ids": user_ids or None, "station_id": station_id},
        )
        rows = cur.fetchall()
    conn.commit()
    domain = sender_domain(settings)
    return [
        NoticeLetter(
            user_id=row[0],
            user_name=row[1],
            email=row[2],
            postal_code=row[3],
            postal_address=row[4],
            status=row[5],
            lapse_reason=row[6],
            expires_at=row[7],
            station_name=row[8],
            station_phone=row[9],
            station_fax=row[10],
            station_email=row[11],
            station_address=row[12],
            issued_on=issued_on,
            sender_domain=domain,
        )
        for row in rows
    ]


def write_letters(
    letters: list[NoticeLetter], output_dir: Path, settings: Settings
) -> list[Path]:
    """Render each letter into ``output_dir`` and return the files written."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for letter in letters:
        path = output_dir / letter_filename(letter)
        path.write_bytes(render_notice_letter(letter, settings.template_dir))
        written.append(path)
        log.info("Wrote the notice letter of user %d", letter.user_id)
    return written
