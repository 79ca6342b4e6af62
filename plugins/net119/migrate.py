"""Bring the ``net119`` schema up to date with versioned SQL migrations.

Migrations are the files ``migrations/NNNN_name.sql`` beside this module. Each
runs once, in its own transaction, and is recorded in
``net119.schema_migrations``. A PostgreSQL advisory lock serialises concurrent
callers (13 mapped tasks or two DAG runs starting together), so running the
migration any number of times is safe.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Arbitrary constant shared by every caller of migrate(); "N119" in ASCII.
_ADVISORY_LOCK_KEY = 0x4E313139


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def list_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Return the migrations in ``directory`` ordered by version.

    Raises ``ValueError`` for a file whose name does not follow ``NNNN_name.sql``
    or for two files with the same version, because either would make the order
    ambiguous.
    """
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if match is None:
            raise ValueError(f"invalid migration file name {path.name!r}: expected NNNN_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise ValueError(f"duplicate migration version {version}: {path.name}")
        migrations[version] = Migration(version, match.group(2), path)
    return [migrations[v] for v in sorted(migrations)]


def migrate(conn: Connection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply every pending migration in ``directory`` and return the versions applied.

    The connection is left in autocommit off mode with no open transaction.
    """
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        cur.execute("CREATE SCHEMA IF NOT EXISTS net119")
        cur.execute(
            """
            CREATE TABLE IF NOT EXISTS net119.schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        conn.commit()
    applied: list[int] = []
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version FROM net119.schema_migrations")
            done = {row[0] for row in cur.fetchall()}
        for migration in list_migrations(directory):
            if migration.version in done:
                continue
            log.info("Applying migration %04d_%s", migration.version, migration.name)
            with conn.cursor() as cur:
                cur.execute(migration.path.read_text(encoding="utf-8"))
                cur.execute(
                    "INSERT INTO net119.schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            conn.commit()
            applied.append(migration.version)
    except Exception:
        conn.rollback()
        raise
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
        conn.commit()
    if not applied:
        log.info("Schema net119 is up to date")
    return applied
