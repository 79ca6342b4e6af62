"""Tests of the synthetic population, seeded into a real PostgreSQL.

Each test gets a fresh, migrated database from the ``db_url`` and ``db``
fixtures of conftest.py.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from net119.devtools.seed import (
    EXPIRY_DAYS_AFTER,
    EXPIRY_DAYS_BEFORE,
    INVALID_ADDRESS_KINDS,
    LEGACY_DOMAINS,
    TOKYO,
    SeedError,
    _special_addresses,
    build_stations,
    generate_user_rows,
    seed,
)

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REFERENCE_DATE = date(2026, 12, 4)
USERS = 3_000
STATIONS = 8
# Carrier addresses issued before 2009 may contain ".." or end in "." before "@".
LEGACY_PATTERN = r"\.\.|\.@"
INVALID_CHECKS = {
    "missing_at": lambda email: "@" not in email and "\uff20" not in email,
    "space_inside": lambda email: " " in email,
    "non_ascii_local_part": lambda email: "@" in email
    and not email.split("@", 1)[0].isascii(),
    "fullwidth_at": lambda email: "\uff20" in email,
    "two_at_signs": lambda email: "@@" in email,
    "missing_domain": lambda email: email.endswith("@"),
}


def _emails(conn: Connection) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT email FROM net119.users ORDER BY id")
        return [row[0] for row in cur.fetchall()]


def _scalar(conn: Connection, query: str) -> object:
    with conn.cursor() as cur:
        cur.execute(query)
        row = cur.fetchone()
    assert row is not None
    return row[0]


def _user_rows_digest(conn: Connection) -> str:
    digest = _scalar(
        conn,
        "SELECT md5(string_agg(concat_ws('|', id, station_id, name, email,"
        " expires_at, phone, fax, postal_code, postal_address, registered_at),"
        " E'\\n' ORDER BY id)) FROM net119.users",
    )
    assert isinstance(digest, str)
    return digest


def test_seed_counts(db: Connection) -> None:
    summary = seed(db, users=USERS, stations=STATIONS, reference_date=REFERENCE_DATE)

    assert summary.users == USERS
    assert summary.stations == STATIONS
    assert _scalar(db, "SELECT count(*) FROM net119.users") == USERS
    assert _scalar(db, "SELECT count(*) FROM net119.stations") == STATIONS
    assert _scalar(db, "SELECT min(id) FROM net119.users") == 1
    assert _scalar(db, "SELECT max(id) FROM net119.users") == USERS
    inactive = "SELECT count(*) FROM net119.users WHERE status <> 'active'"
    assert _scalar(db, inactive) == 0


def test_seed_legacy_addresses_stored_exactly(db: Connection) -> None:
    summary = seed(db, users=USERS, stations=STATIONS, reference_date=REFERENCE_DATE)
    emails = _emails(db)
    legacy = [email for email in emails if re.search(LEGACY_PATTERN, email)]

    assert summary.legacy_addresses == USERS // 100
    assert len(legacy) == summary.legacy_addresses
    assert all(email.split("@")[1] in LEGACY_DOMAINS for email in legacy)
    assert any(".." in email for email in legacy)
    assert any(".@" in email for email in legacy)

    # The database returns every address exactly as the generator wrote it.
    user_rng = random.Random("0:users")
    special = _special_addresses(user_rng, USERS)
    stations = build_stations(random.Random(0), STATIONS)
    rows = generate_user_rows(user_rng, stations, USERS, REFERENCE_DATE, special)
    generated = [row[3] for row in rows]
    assert emails == generated


def test_seed_invalid_addresses_present(db: Connection) -> None:
    summary = seed(db, users=USERS, stations=STATIONS, reference_date=REFERENCE_DATE)
    emails = _emails(db)

    assert summary.invalid_addresses == len(INVALID_ADDRESS_KINDS)
    assert set(INVALID_CHECKS) == set(INVALID_ADDRESS_KINDS)
    for kind, check in INVALID_CHECKS.items():
        matching = [email for email in emails if check(email)]
        assert len(matching) == 1, kind
    well_formed = re.compile(r"^[A-Za-z0-9._+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")
    malformed = [email for email in emails if not well_formed.match(email)]
    assert len(malformed) == summary.invalid_addresses


def test_seed_invalid_kinds_with_few_users(db: Connection) -> None:
    summary = seed(db, users=4, stations=2, reference_date=REFERENCE_DATE)

    assert summary.users == 4
    assert summary.invalid_addresses == 4
    assert summary.legacy_addresses == 0


def test_seed_users_belong_to_existing_stations(db: Connection) -> None:
    seed(db, users=USERS, stations=STATIONS, reference_date=REFERENCE_DATE)

    orphans = _scalar(
        db,
        "SELECT count(*) FROM net119.users AS u"
        " LEFT JOIN net119.stations AS s ON s.id = u.station_id WHERE s.id IS NULL",
    )
    empty_stations = _scalar(
        db,
        "SELECT count(*) FROM net119.stations AS s WHERE NOT EXISTS"
        " (SELECT 1 FROM net119.users AS u WHERE u.station_id = s.id)",
    )
    assert orphans == 0
    assert empty_stations == 0


def test_seed_stations_look_real(db: Connection) -> None:
    seed(db, users=10, stations=STATIONS, reference_date=REFERENCE_DATE)
    with db.cursor() as cur:
        cur.execute(
            "SELECT id, name, report_emails, contact_phone, contact_fax,"
            " contact_email, postal_address, report_csv_encoding"
            " FROM net119.stations ORDER BY id"
        )
        rows = cur.fetchall()

    phone = re.compile(r"^0\d{2}-\d{3}-\d{4}$")
    assert [row[0] for row in rows] == [f"st{n:04d}" for n in range(1, STATIONS + 1)]
    assert len({row[1] for row in rows}) == STATIONS
    for _, name, reports, contact_phone, fax, contact, address, encoding in rows:
        assert re.fullmatch(r".+市消防本部", name), name
        assert reports, name
        assert all(email.endswith(".example.jp") for email in reports), name
        assert contact.endswith(".example.jp"), name
        assert phone.match(contact_phone), contact_phone
        assert phone.match(fax), fax
        assert re.match(r"^〒\d{3}-\d{4} ", address), address
        assert encoding in ("utf-8-sig", "cp932")
    assert "cp932" in {row[7] for row in rows}


def test_seed_many_stations_have_distinct_names() -> None:
    stations = build_stations(random.Random(0), 750)

    assert len({station.name for station in stations}) == 750
    assert len({station.contact_email for station in stations}) == 750
    with pytest.raises(ValueError, match="at most"):
        build_stations(random.Random(0), 5_000)


def test_seed_expiry_window(db: Connection) -> None:
    seed(db, users=USERS, stations=STATIONS, reference_date=REFERENCE_DATE)
    with db.cursor() as cur:
        cur.execute("SELECT expires_at, registered_at FROM net119.users")
        rows = cur.fetchall()
    midnight = datetime.combine(REFERENCE_DATE, datetime.min.time(), tzinfo=TOKYO)
    first = midnight - timedelta(days=EXPIRY_DAYS_BEFORE)
    end = midnight + timedelta(days=EXPIRY_DAYS_AFTER + 1)
    expiries = [row[0] for row in rows]

    assert min(expiries) >= first
    assert max(expiries) < end
    # Spread over the window: some users in each of its first and last 30 days.
    assert min(expiries) < first + timedelta(days=30)
    assert max(expiries) > end - timedelta(days=30)
    assert len({expiry.astimezone(TOKYO).hour for expiry in expiries}) == 24
    assert all(registered <= midnight + timedelta(hours=9) for _, registered in rows)
    assert all(registered < expiry for expiry, registered in rows)


def test_seed_contact_fields_mostly_filled(db: Connection) -> None:
    seed(db, users=USERS, stations=STATIONS, reference_date=REFERENCE_DATE)
    with db.cursor() as cur:
        cur.execute("SELECT phone, fax, postal_code, postal_address FROM net119.users")
        rows = cur.fetchall()
    phones = [row[0] for row in rows if row[0]]
    faxes = [row[1] for row in rows if row[1]]
    postal_codes = [row[2] for row in rows if row[2]]
    addresses = [row[3] for row in rows if row[3]]

    assert len(phones) > 0.75 * USERS
    assert len(faxes) > 0.6 * USERS
    assert len(postal_codes) > 0.85 * USERS
    assert len(addresses) == len(postal_codes)
    assert all(re.fullmatch(r"0[789]0-\d{4}-\d{4}", phone) for phone in phones)
    assert all(re.fullmatch(r"0\d{2}-\d{3}-\d{4}", fax) for fax in faxes)
    assert all(re.fullmatch(r"\d{3}-\d{4}", code) for code in postal_codes)
    assert all(re.search(r"\d+丁目\d+番\d+号", address) for address in addresses)


def test_seed_text_within_jis_x_0208(db: Connection) -> None:
    seed(db, users=USERS, stations=STATIONS, reference_date=REFERENCE_DATE)
    with db.cursor() as cur:
        cur.execute("SELECT name, postal_address FROM net119.users")
        users = cur.fetchall()
        cur.execute("SELECT name, postal_address FROM net119.stations")
        stations = cur.fetchall()

    # The iso2022_jp codec encodes exactly ASCII and JIS X 0208, and raises
    # UnicodeEncodeError on anything else.
    for name, address in users + stations:
        name.encode("iso2022_jp")
        address.encode("iso2022_jp")
    # Family and given name are separated by an ideographic space.
    assert all(re.fullmatch(r"\S+\u3000\S+", name) for name, _ in users)


def test_seed_deterministic(db: Connection) -> None:
    seed(db, users=USERS, stations=STATIONS, reference_date=REFERENCE_DATE, seed=7)
    first = _user_rows_digest(db)
    seed(
        db, users=USERS, stations=STATIONS, reference_date=REFERENCE_DATE, seed=7,
        replace=True,
    )
    second = _user_rows_digest(db)
    seed(
        db, users=USERS, stations=STATIONS, reference_date=REFERENCE_DATE, seed=8,
        replace=True,
    )
    other_seed = _user_rows_digest(db)

    assert first == second
    assert other_seed != first


def test_seed_rejects_populated_database(db: Connection) -> None:
    seed(db, users=100, stations=2, reference_date=REFERENCE_DATE)

    with pytest.raises(SeedError, match="--replace"):
        seed(db, users=100, stations=2, reference_date=REFERENCE_DATE)
    assert _scalar(db, "SELECT count(*) FROM net119.users") == 100


def test_seed_replace_empties_ledger(db: Connection) -> None:
    seed(db, users=100, stations=2, reference_date=REFERENCE_DATE)
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO net119.reminders (user_id, cycle_expires_at, offset_days,"
            " outcome) SELECT id, expires_at, -90, 'sent' FROM net119.users LIMIT 5"
        )
    db.commit()

    summary = seed(
        db, users=50, stations=3, reference_date=REFERENCE_DATE, replace=True
    )

    assert summary.users == 50
    assert _scalar(db, "SELECT count(*) FROM net119.reminders") == 0
    assert _scalar(db, "SELECT count(*) FROM net119.users") == 50
    assert _scalar(db, "SELECT count(*) FROM net119.stations") == 3
    assert _scalar(db, "SELECT count(*) FROM net119.schema_migrations") > 0


def test_seed_requires_migrated_schema(db: Connection) -> None:
    with db.cursor() as cur:
        cur.execute("DROP SCHEMA net119 CASCADE")
    db.commit()

    with pytest.raises(SeedError, match="net119 migrate"):
        seed(db, users=10, stations=1, reference_date=REFERENCE_DATE)


def test_seed_command_line(db_url: str) -> None:
    command = [
        sys.executable, "-m", "net119.devtools.seed", "--database-url", db_url,
        "--users", "200", "--stations", "3", "--date", "2026-12-04",
    ]
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "plugins")}

    first = subprocess.run(command, capture_output=True, text=True, env=environment)
    second = subprocess.run(command, capture_output=True, text=True, env=environment)
    replaced = subprocess.run(
        [*command, "--replace"], capture_output=True, text=True, env=environment
    )
    bad_date = subprocess.run(
        [*command[:-1], "2026-13-01"], capture_output=True, text=True, env=environment
    )

    assert first.returncode == 0, first.stderr
    assert "Seeded 3 stations and 200 users" in first.stderr
    assert second.returncode == 1
    assert "--replace" in second.stderr
    assert replaced.returncode == 0, replaced.stderr
    assert bad_date.returncode == 2
    assert "invalid date '2026-13-01'" in bad_date.stderr
