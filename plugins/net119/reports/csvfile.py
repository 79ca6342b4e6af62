"""Write a station report as a CSV file that Excel in Japanese opens correctly.

- Encoding: UTF-8 with a byte order mark (``utf-8-sig``) by default, because
  Excel reads a CSV without one in the system code page. ``cp932`` (Windows
  Shift_JIS) is an option per station for older tools.
- Lines end in CRLF and every cell is quoted when needed (RFC 4180).
- Dates and times are ISO 8601 in Asia/Tokyo (``2026-12-04T09:00:00+09:00``).
- A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return gets a leading apostrophe, so Excel shows it as text and never runs it
  as a formula. Names, addresses and bounce diagnostics come from outside.

For CP932, the few JIS X 0208 characters that Unicode and Windows map
differently (EM DASH, YEN SIGN, OVERLINE) are written as their Windows forms.
Any other character that CP932 lacks (``𠮷``, emoji) becomes 〓 (the geta
mark), and each cell where that happened is returned, so the HTML summary can
list the users and columns concerned.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from net119.reports import labels
from net119.reports.rows import ReportRow
from net119.schedule import TOKYO

GETA = "〓"
# Characters of JIS X 0208 that the cp932 codec has only in the Windows form.
_CP932_FORMS = str.maketrans(
    {"\u2014": "\u2015", "\u00a5": "\uffe5", "\u203e": "\uffe3"}
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SUPPORTED_ENCODINGS = ("utf-8-sig", "cp932")


def _iso(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(TOKYO).isoformat(timespec="seconds")


def _text(value: str | None) -> str:
    if not value:
        return ""
    if value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


# (header, cell) per column, in file order.
COLUMNS: tuple[tuple[str, Callable[[ReportRow], str]], ...] = (
    ("区分", lambda r: labels.LIST_LABELS[r.list]),
    ("新規", lambda r: "新規" if r.is_new else ""),
    ("利用者ID", lambda r: str(r.user_id)),
    ("氏名", lambda r: _text(r.name)),
    ("利用状況", lambda r: labels.STATUS_LABELS.get(r.status, r.status)),
    ("失効理由", lambda r: labels.REASON_LABELS.get(r.list, "")),
    ("有効期限日時", lambda r: _iso(r.expires_at)),
    ("失効日時", lambda r: _iso(r.lapsed_at) if r.is_lapsed else ""),
    ("電話番号", lambda r: _text(r.phone)),
    ("FAX番号", lambda r: _text(r.fax)),
    ("郵便番号", lambda r: _text(r.postal_code)),
    ("住所", lambda r: _text(r.postal_address)),
    ("メールアドレス", lambda r: _text(r.email)),
    ("最終リマインダー日時", lambda r: _iso(r.last_reminder_at)),
    (
        "最終リマインダー段階",
        lambda r: labels.step_text(r.last_reminder_kind, r.last_reminder_offset),
    ),
    (
        "最終リマインダー結果",
        lambda r: labels.OUTCOME_LABELS.get(r.last_reminder_outcome or "", ""),
    ),
    ("最終リマインダー送信先", lambda r: _text(r.last_reminder_recipient)),
    (
        "送信失敗理由",
        lambda r: labels.failure_text(r.last_reminder_outcome, r.last_reminder_failure),
    ),
    ("不達日時", lambda r: _iso(r.bounced_at)),
    ("不達分類", lambda r: labels.category_text(r.bounce_category)),
    ("ステータスコード", lambda r: _text(r.bounce_status_code)),
    ("診断メッセージ", lambda r: _text(r.bounce_diagnostic)),
)
HEADERS: tuple[str, ...] = tuple(header for header, _ in COLUMNS)


@dataclass(frozen=True)
class Replacement:
    """A CSV cell in which characters outside CP932 were written as 〓."""

    user_id: int
    column: str
    # The characters that were replaced, in order of appearance.
    characters: str


@dataclass(frozen=True)
class CsvFile:
    data: bytes
    encoding: str
    replacements: tuple[Replacement, ...]

    @property
    def mime_charset(self) -> str:
        """Return the IANA charset name for the attachment's Content-Type."""
        return "Windows-31J" if self.encoding == "cp932" else "utf-8"


def _fit_cp932(text: str) -> tuple[str, str]:
    """Return ``text`` as CP932 can write it, and the characters replaced by 〓."""
    text = text.translate(_CP932_FORMS)
    written: list[str] = []
    replaced: list[str] = []
    for ch in text:
        try:
            ch.encode("cp932")
        except UnicodeEncodeError:
            written.append(GETA)
            replaced.append(ch)
        else:
            written.append(ch)
    return "".join(written), "".join(replaced)


def write_report_csv(rows: Sequence[ReportRow], encoding: str = "utf-8-sig") -> CsvFile:
    """Write ``rows`` under Japanese headers in ``encoding`` (utf-8-sig or cp932).

    Raises ``ValueError`` for any other encoding.
    """
    if encoding not in SUPPORTED_ENCODINGS:
        raise ValueError(
            f"invalid CSV encoding {encoding!r}: expected one of {', '.join(SUPPORTED_ENCODINGS)}"
        )
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS)
    replacements: list[Replacement] = []
    for row in rows:
        cells = [cell(row) for _, cell in COLUMNS]
        if encoding == "cp932":
            for index, value in enumerate(cells):
                fitted, replaced = _fit_cp932(value)
                cells[index] = fitted
                if replaced:
                    replacements.append(
                        Replacement(row.user_id, HEADERS[index], replaced)
                    )
        writer.writerow(cells)
    # Every character is encodable by now, so a failure here is a bug.
    data = buffer.getvalue().encode(encoding)
    return CsvFile(data, encoding, tuple(replacements))
