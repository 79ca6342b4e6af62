"""Steps of ``scripts/demo.sh`` that need Python: the database and the summary.

Each subcommand prints only what the script reads or shows, so the script
stays quiet. Library logs go to stderr, which the script sends to its log.

    python -m net119.devtools.demo reset-database --data-dir .demo/pg
    python -m net119.devtools.demo airflow-conn-uri URL
    python -m net119.devtools.demo summary --database-url URL --date 2026-12-04 \\
        --mail-dir .demo/mail
    python -m net119.devtools.demo stop-database --data-dir .demo/pg
"""

from __future__ import annotations

import argparse
import logging
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2
from psycopg2 import sql

from net119 import db, sqlfiles
from net119.devtools import embedded_pg
from net119.schedule import OFFSETS, offset_label

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

DEMO_DATABASE = "net119"
# Column order and Japanese headings of the summary table, by outcome.
OUTCOME_HEADINGS: dict[str, str] = {
    "sent": "送信",
    "undeliverable": "不達",
    "failed": "失敗",
    "skipped": "スキップ",
    "confirmed": "更新済み",
    "sending": "送信中",
}
# Outcomes shown even when no reminder has them.
ALWAYS_SHOWN = ("sent", "undeliverable", "failed", "skipped")
MANUAL_LABEL = "手動再送"


def reset_database(data_dir: Path, database: str = DEMO_DATABASE) -> str:
    """Start the embedded cluster in ``data_dir``, recreate ``database`` empty
    and return its libpq URL."""
    admin_url = embedded_pg.start(data_dir, database="postgres")
    conn = psycopg2.connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            # FORCE ends sessions left over from an interrupted run.
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(database)
                )
            )
    finally:
        conn.close()
    log.info("Dropped database %s", database)
    return embedded_pg.start(data_dir, database=database)


def stop_database(data_dir: Path, timeout: float = 30.0) -> None:
    """Stop the embedded cluster in ``data_dir`` if it runs.

    Raises ``TimeoutError`` if the server is still running after ``timeout``
    seconds.
    """
    embedded_pg.stop(data_dir, timeout=timeout)


def count_outcomes(
    conn: Connection, run_date: date
) -> dict[int | None, dict[str, int]]:
    """Return the number of reminders per offset and outcome for ``run_date``.

    Manual resends have the offset ``None``.
    """
    counts: dict[int | None, dict[str, int]] = defaultdict(dict)
    with conn.cursor() as cur:
        cur.execute(sqlfiles.load("demo_outcomes_by_offset"), {"run_date": run_date})
        for offset, outcome, number in cur.fetchall():
            counts[offset][outcome] = int(number)
    return dict(counts)


def display_width(text: str) -> int:
    """Return the number of terminal columns ``text`` takes; CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cell(text: str, width: int, align_right: bool) -> str:
    padding = " " * max(0, width - display_width(text))
    return padding + text if align_right else text + padding


def format_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Align ``rows`` in columns: the first column left, the others right."""
    widths = [max(display_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            _cell(value, widths[i], align_right=i > 0) for i, value in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def render_summary(
    counts: dict[int | None, dict[str, int]], run_date: date, mail_dir: Path
) -> str:
    """Return the Japanese summary of one run: a table by step, then the mail folder."""
    present = {outcome for by_outcome in counts.values() for outcome in by_outcome}
    outcomes = [
        outcome
        for outcome in OUTCOME_HEADINGS
        if outcome in ALWAYS_SHOWN or outcome in present
    ]
    # Outcomes the table does not know yet still get a column.
    outcomes += sorted(present - set(OUTCOME_HEADINGS))

    steps: list[int | None] = list(OFFSETS)
    # Offsets outside the schedule would come from an older schedule.
    steps += sorted(
        offset for offset in counts if offset is not None and offset not in OFFSETS
    )
    if None in counts:
        steps.append(None)

    rows = [["ステップ", *(OUTCOME_HEADINGS.get(o, o) for o in outcomes), "計"]]
    totals = dict.fromkeys(outcomes, 0)
    for offset in steps:
        by_outcome = counts.get(offset, {})
        label = MANUAL_LABEL if offset is None else offset_label(offset)
        row = [label]
        for outcome in outcomes:
            number = by_outcome.get(outcome, 0)
            totals[outcome] += number
            row.append(f"{number:,}")
        row.append(f"{sum(by_outcome.values()):,}")
        rows.append(row)
    grand_total = sum(totals.values())
    rows.append(["合計", *(f"{totals[o]:,}" for o in outcomes), f"{grand_total:,}"])

    messages = sorted(mail_dir.glob("*.eml")) if mail_dir.is_dir() else []
    lines = [f"{run_date.isoformat()} の実行で処理したリマインダー（net119.reminders）:", ""]
    lines += ["  " + line for line in format_table(rows)]
    lines += [
        "",
        f"SMTP シンクに届いたメール: {len(messages):,} 通（.eml ファイル）",
        f"  フォルダ: {mail_dir}",
    ]
    if messages:
        lines.append(f"  最初のメール: {messages[0]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m net119.devtools.demo")
    commands = parser.add_subparsers(dest="command", required=True)

    reset = commands.add_parser(
        "reset-database",
        help="start the embedded PostgreSQL, recreate the demo database, print its URL",
    )
    reset.add_argument("--data-dir", type=Path, required=True, help="cluster folder")
    reset.add_argument("--database", default=DEMO_DATABASE, help="database name")

    stop = commands.add_parser("stop-database", help="stop the embedded PostgreSQL")
    stop.add_argument("--data-dir", type=Path, required=True, help="cluster folder")

    uri = commands.add_parser(
        "airflow-conn-uri", help="print the Airflow connection URI of a libpq URL"
    )
    uri.add_argument("url", help="libpq URL as printed by reset-database")

    summary = commands.add_parser(
        "summary", help="print the reminders of one run date and the mail count"
    )
    summary.add_argument("--database-url", required=True, help="libpq URL")
    summary.add_argument(
        "--date", type=date.fromisoformat, required=True, help="run date YYYY-MM-DD"
    )
    summary.add_argument(
        "--mail-dir", type=Path, required=True, help="folder of the SMTP sink"
    )

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )

    if args.command == "reset-database":
        print(reset_database(args.data_dir, args.database))
    elif args.command == "stop-database":
        stop_database(args.data_dir)
        log.info("Stopped the embedded PostgreSQL in %s", args.data_dir)
    elif args.command == "airflow-conn-uri":
        print(embedded_pg.airflow_conn_uri(args.url))
    else:
        conn = db.connect(args.database_url)
        try:
            counts = count_outcomes(conn, args.date)
        finally:
            conn.close()
        print(render_summary(counts, args.date, args.mail_dir.resolve()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
