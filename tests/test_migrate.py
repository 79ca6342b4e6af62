"""Schema migrations: order, idempotency and concurrent callers."""

from __future__ import annotations

import threading

import pytest

from net119 import db as net119_db
from net119 import migrate


def test_migrate_twice_applies_nothing(db) -> None:
    assert migrate.migrate(db) == []


def test_migrations_recorded_in_order(db) -> None:
    with db.cursor() as cur:
        cur.execute("SELECT version FROM net119.schema_migrations ORDER BY version")
        versions = [row[0] for row in cur.fetchall()]

    assert versions == [m.version for m in migrate.list_migrations()]
    assert versions[0] == 1


def test_fresh_database_concurrent_migrations(pg_admin_url, tmp_path) -> None:
    from urllib.parse import urlsplit, urlunsplit

    import psycopg2

    admin = psycopg2.connect(pg_admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS net119_migrate_race")
        cur.execute("CREATE DATABASE net119_migrate_race")
    url = urlunsplit(urlsplit(pg_admin_url)._replace(path="/net119_migrate_race"))
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        conn = net119_db.connect(url)
        try:
            results.append(migrate.migrate(conn))
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(len(r) for r in results) == [0, 0, 0, len(migrate.list_migrations())]
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE net119_migrate_race WITH (FORCE)")
    admin.close()


def test_invalid_migration_name_rejected(tmp_path) -> None:
    (tmp_path / "0001_core.sql").write_text("SELECT 1")
    (tmp_path / "2_bad.sql").write_text("SELECT 1")

    with pytest.raises(ValueError, match="invalid migration file name '2_bad.sql'"):
        migrate.list_migrations(tmp_path)


def test_duplicate_migration_version_rejected(tmp_path) -> None:
    (tmp_path / "0001_core.sql").write_text("SELECT 1")
    (tmp_path / "0001_other.sql").write_text("SELECT 1")

    with pytest.raises(ValueError, match="duplicate migration version 1"):
        migrate.list_migrations(tmp_path)


def test_failed_migration_rolled_back(db, tmp_path) -> None:
    for migration in migrate.list_migrations():
        (tmp_path / migration.path.name).write_text(migration.path.read_text())
    (tmp_path / "0999_broken.sql").write_text(
        "CREATE TABLE net119.half_done (id int); SELECT no_such_function();"
    )

    with pytest.raises(Exception, match="no_such_function"):
        migrate.migrate(db, tmp_path)

    with db.cursor() as cur:
        cur.execute("SELECT to_regclass('net119.half_done')")
        assert cur.fetchone()[0] is None
        cur.execute("SELECT count(*) FROM net119.schema_migrations WHERE version = 999")
        assert cur.fetchone()[0] == 0



@pytest.mark.parametrize("expires_at", ["infinity", "9999-12-31 23:00+00", "0100-01-01 BC"])
def test_out_of_range_expiry_rejected(db, expires_at: str) -> None:
    import psycopg2

    with db.cursor() as cur:
        cur.execute("INSERT INTO net119.stations (id, name, report_emails) VALUES ('s', 'x', '{}')")
        with pytest.raises(psycopg2.errors.CheckViolation, match="users_expires_at_range"):
            cur.execute(
                "INSERT INTO net119.users (id, station_id, name, email, expires_at) "
                "VALUES (1, 's', 'x', 'x@docomo.ne.jp', %s)",
                (expires_at,),
            )
    db.rollback()
