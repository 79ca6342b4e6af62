"""Render the subject, the plain-text part and the HTML part of a station report.

Templates: ``station_report.subject.j2``, ``station_report.txt.j2`` and
``station_report.html.j2``. Both bodies contain the same parts: counts by
reason, who is new since the previous report, what staff should do for 不達 users, the
attachments, and the CSV cells where characters outside CP932 were replaced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from net119.jpdate import format_date, format_datetime
from net119.reports import labels
from net119.reports.csvfile import CsvFile, Replacement
from net119.reports.period import ReportPeriod
from net119.reports.rows import ReportRow
from net119.reports.templates import environment

# New users listed by name in the mail body at most; the CSV has all of them.
MAX_NEW_ROWS_SHOWN = 100


@dataclass(frozen=True)
class ReportCounts:
    """Users per list of one report, and how many of them are new."""

    undeliverable: int = 0
    not_renewed: int = 0
    at_risk: int = 0
    new_undeliverable: int = 0
    new_not_renewed: int = 0
    new_at_risk: int = 0

    @property
    def lapsed(self) -> int:
        return self.undeliverable + self.not_renewed

    @property
    def new_lapsed(self) -> int:
        return self.new_undeliverable + self.new_not_renewed

    @property
    def new_total(self) -> int:
        return self.new_lapsed + self.new_at_risk


def count_rows(rows: Sequence[ReportRow]) -> ReportCounts:
    totals = {"undeliverable": 0, "not_renewed": 0, "at_risk": 0}
    new = {"undeliverable": 0, "not_renewed": 0, "at_risk": 0}
    for row in rows:
        totals[row.list] += 1
        if row.is_new:
            new[row.list] += 1
    return ReportCounts(
        undeliverable=totals["undeliverable"],
        not_renewed=totals["not_renewed"],
        at_risk=totals["at_risk"],
        new_undeliverable=new["undeliverable"],
        new_not_renewed=new["not_renewed"],
        new_at_risk=new["at_risk"],
    )


@dataclass(frozen=True)
class NewEntry:
    """A user shown by name in the summary's list of what is new."""

    user_id: int
    name: str
    list_label: str
    reason_label: str
    expires_at_text: str
    category_text: str


@dataclass(frozen=True)
class SummaryContent:
    """Everything the report's subject and bodies show, before rendering."""

    station_name: str
    station_id: str
    period: ReportPeriod
    as_of: dt.datetime
    previous_as_of: dt.datetime | None
    rows: Sequence[ReportRow]
    csv_file: CsvFile
    csv_filename: str
    letter_count: int
    letters_left_out: int
    sender_domain: str
    at_risk_days: int


def period_text(period: ReportPeriod) -> str:
    """Return the period as 令和8年（2026年）11月30日〜令和8年（2026年）12月6日."""
    if period.start == period.last_day:
        return format_date(period.start)
    return f"{format_date(period.start)}〜{format_date(period.last_day)}"


def _new_entries(rows: Sequence[ReportRow]) -> list[NewEntry]:
    return [
        NewEntry(
            user_id=row.user_id,
            name=row.name,
            list_label=labels.LIST_LABELS[row.list],
            reason_label=labels.REASON_LABELS.get(row.list, ""),
            expires_at_text=format_date(row.expires_at),
            category_text=labels.category_text(row.bounce_category),
        )
        for row in rows
        if row.is_new
    ]


def _context(content: SummaryContent) -> dict[str, object]:
    new_entries = _new_entries(content.rows)
    replacements: tuple[Replacement, ...] = content.csv_file.replacements
    return {
        "station_name": content.station_name,
        "station_id": content.station_id,
        "as_of_text": format_datetime(content.as_of),
        "as_of_date_text": format_date(content.as_of),
        "period_text": period_text(content.period),
        "cadence_label": {"daily": "毎日", "weekly": "毎週", "monthly": "毎月"}[
            content.period.cadence
        ],
        "previous_text": (
            format_datetime(content.previous_as_of) if content.previous_as_of else None
        ),
        "counts": count_rows(content.rows),
        "new_entries": new_entries[:MAX_NEW_ROWS_SHOWN],
        "new_entries_hidden": max(0, len(new_entries) - MAX_NEW_ROWS_SHOWN),
        "csv_filename": content.csv_filename,
        "csv_encoding_label": (
            "Shift_JIS（CP932）"
            if content.csv_file.encoding == "cp932"
            else "UTF-8、BOM付き"
        ),
        "replacements": replacements,
        "letter_count": content.letter_count,
        "letters_left_out": content.letters_left_out,
        "sender_domain": content.sender_domain,
        "at_risk_days": content.at_risk_days,
    }


def render_summary(content: SummaryContent, template_dir: Path) -> tuple[str, str, str]:
    """Return the subject, the plain-text body and the HTML body of a report."""
    env = environment(template_dir)
    context = _context(content)
    subject = env.get_template("station_report.subject.j2").render(context).strip()
    text = env.get_template("station_report.txt.j2").render(context)
    html = env.get_template("station_report.html.j2").render(context)
    return subject, text, html
