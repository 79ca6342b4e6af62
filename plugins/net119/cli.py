"""The ``net119`` command: maintenance tasks that run outside Airflow.

Subcommands:

- ``net119 migrate [--database-url URL]`` brings the ``net119`` schema up to
  date, the same as the DAG's first task.
- ``net119 classify-bounces FILE...`` prints one JSON line per bounce file,
  without a database.
- ``net119 notice-letters --output-dir DIR (--user-id N... | --station-id ID)``
  writes notice letter PDFs (案内書) for the given users, or for every lapsed
  不達 user of a station.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date

import psycopg2

from net119.db import DATABASE_URL_ENV


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid date {value!r}: expected YYYY-MM-DD"
        ) from None


def _migrate(args: argparse.Namespace) -> int:
    from net119 import db, migrate

    conn = db.connect(args.database_url)
    try:
        applied = migrate.migrate(conn)
    finally:
        conn.close()
    if applied:
        print("applied migrations: " + ", ".join(f"{v:04d}" for v in applied))
    else:
        print("schema net119 is up to date")
    return 0


def _notice_letters(args: argparse.Namespace) -> int:
    import datetime as dt
    from pathlib import Path

    from net119 import db
    from net119.config import Settings
    from net119.reports.letters_command import load_letters, write_letters
    from net119.schedule import TOKYO

    settings = Settings.from_env()
    issued_on = args.date or dt.datetime.now(TOKYO).date()
    conn = db.connect(args.database_url)
    try:
        letters = load_letters(
            conn,
            user_ids=args.user_id,
            station_id=args.station_id,
            issued_on=issued_on,
            settings=settings,
        )
    finally:
        conn.close()
    written = write_letters(letters, Path(args.output_dir), settings)
    print(f"wrote {len(written)} notice letters to {args.output_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="net119", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="bring the net119 schema up to date")
    migrate.add_argument(
        "--database-url",
        help=f"libpq URL of the database (default: ${DATABASE_URL_ENV})",
    )
    migrate.set_defaults(handler=_migrate)

    letters = commands.add_parser(
        "notice-letters",
        help="write notice letter PDFs for users whom mail cannot reach",
    )
    chosen = letters.add_mutually_exclusive_group(required=True)
    chosen.add_argument(
        "--user-id",
        type=int,
        action="append",
        help="write the letter of this user (repeat for several users)",
    )
    chosen.add_argument(
        "--station-id",
        help="write letters for every lapsed 不達 (undeliverable) user of this station",
    )
    letters.add_argument(
        "--output-dir", required=True, help="folder for the PDF files (created)"
    )
    letters.add_argument(
        "--date",
        type=_parse_date,
        help="issue date printed on the letters, YYYY-MM-DD (default: today, Asia/Tokyo)",
    )
    letters.add_argument(
        "--database-url",
        help=f"libpq URL of the database (default: ${DATABASE_URL_ENV})",
    )
    letters.set_defaults(handler=_notice_letters)

    commands.add_parser(
        "classify-bounces",
        help="classify bounce message files and print one JSON line per file",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if argv and argv[0] == "classify-bounces":
        from net119.bounces import classify

        return classify.main(argv[1:], prog="net119 classify-bounces")
    # WeasyPrint and fontTools log every font they load at INFO.
    for noisy in ("weasyprint", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (RuntimeError, psycopg2.Error) as exc:
        # Expected failures (no URL, server unreachable, invalid DSN) get one
        # line, without a traceback.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"net119 {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
