"""The notice letter (案内書): an A4 PDF in Japanese for a user mail cannot reach.

The letter is ``notice_letter.html.j2`` rendered to PDF with WeasyPrint. It
asks the user to allow mail from the sender's domain (docomo and au
受信リスト設定, SoftBank 受信許可リスト), to tell the station, and to renew
from the link in the mail that the station then resends. It states that
emergency calls and practice calls keep working. A FAX reply form lets users
who cannot use the phone answer the station.

Fonts: the template uses IPAex Gothic alone (Debian ``fonts-ipaexfont-gothic``),
found through fontconfig, because every embedded font subset adds about
50-130 KB to each letter. Pango falls back to another installed font (Noto
Sans CJK from ``fonts-noto-cjk``) for a character IPAex lacks, such as 𠮷.
WeasyPrint draws text with Pango (Debian ``libpango-1.0-0`` and
``libpangoft2-1.0-0``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from net119.jpdate import format_date, format_datetime
from net119.reports.templates import environment

if TYPE_CHECKING:
    from weasyprint.text.fonts import FontConfiguration

LETTER_TEMPLATE = "notice_letter.html.j2"
# Characters that cannot stand in a file name on common systems.
_UNSAFE_FILENAME = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')


@dataclass(frozen=True)
class NoticeLetter:
    """Content of one notice letter, before it is rendered."""

    user_id: int
    user_name: str
    email: str
    postal_code: str
    postal_address: str
    status: str
    lapse_reason: str | None
    expires_at: dt.datetime
    station_name: str
    station_phone: str
    station_fax: str
    station_email: str
    station_address: str
    issued_on: dt.date
    # The domain users must allow, from the reminders' sender address.
    sender_domain: str


def letter_filename(letter: NoticeLetter) -> str:
    """Return ``案内書_<user id>_<name>.pdf`` with characters unsafe in file names removed."""
    name = _UNSAFE_FILENAME.sub("", letter.user_name).strip() or "利用者"
    return f"案内書_{letter.user_id}_{name}.pdf"


def render_letter_html(letter: NoticeLetter, template_dir: Path) -> str:
    """Render the letter's HTML from ``notice_letter.html.j2``."""
    template = environment(template_dir).get_template(LETTER_TEMPLATE)
    return template.render(
        letter=letter,
        lapsed=letter.status == "lapsed",
        undeliverable_lapse=letter.status == "lapsed"
        and letter.lapse_reason == "undeliverable",
        issued_on_text=format_date(letter.issued_on),
        expires_at_text=format_datetime(letter.expires_at),
    )


@lru_cache(maxsize=1)
def _font_configuration() -> FontConfiguration:
    # One configuration for every letter of a process: building it scans the
    # system fonts, which costs more than rendering a page.
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


def render_notice_letter(letter: NoticeLetter, template_dir: Path) -> bytes:
    """Render the letter as an A4 PDF and return its bytes."""
    from weasyprint import HTML

    html = render_letter_html(letter, template_dir)
    document = HTML(string=html, base_url=str(template_dir))
    pdf = document.write_pdf(font_config=_font_configuration())
    if pdf is None:
        raise RuntimeError(
            f"WeasyPrint returned no PDF for the notice letter of user {letter.user_id}"
        )
    return pdf
