"""The ``net119`` command: maintenance tasks that run outside Airflow.

Subcommands:

- ``net119 migrate [--database-url URL]`` brings the ``net119`` schema up to
  date, the same as the DAG's first task.
- ``net119 classify-bounces FILE...`` prints one JSON line per bounce file,
  without a database.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from net119.db import DATABASE_URL_ENV


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="net119", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="bring the net119 schema up to date")
    migrate.add_argument(
        "--database-url",
        help=f"libpq URL of the database (default: ${DATABASE_URL_ENV})",
    )
    migrate.set_defaults(handler=_migrate)

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
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
