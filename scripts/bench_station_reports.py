"""Measure the station report queries on a full-size population.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_station_reports.py [--users 1000000] [--stations 750]

The script starts a private PostgreSQL from the pgserver wheel in a temporary
folder, or uses ``--database-url``, which must point to an empty database. It
seeds the synthetic population of ``net119.devtools.seed``. It adds one
reminder per user whose expiry lies before the reference date or within 90
days after it, every tenth of them bounced, and lapses the expired users. It
then times,
for every batch of stations: the claim, the set-based lists with their
entries (``report_rows.sql``) and the CSV files. Nothing is mailed, and no
letter is rendered.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from net119 import db, migrate, transitions  # noqa: E402
from net119.devtools import seed as seeding  # noqa: E402
from net119.reports import ledger, service  # noqa: E402
from net119.reports.config import ReportSettings  # noqa: E402
from net119.reports.csvfile import write_report_csv  # noqa: E402
from net119.reports.rows import build_report_rows  # noqa: E402
from net119.schedule import TOKYO  # noqa: E402

REFERENCE_DATE = dt.date(2026, 12, 4)

# One reminder per user whose validity ended, or ends within 90 days; every
# tenth bounced. Sent 20 days before expiry, as the -20 step would be.
ADD_REMINDERS = """
INSERT INTO net119.reminders (
    user_id, cycle_expires_at, offset_days, kind, outcome, recipient, sent_at,
    outcome_at, status_code, bounce_category, diagnostic
)
SELECT u.id, u.expires_at, -20, 'auto',
       CASE WHEN u.id %% 10 = 0 THEN 'undeliverable' ELSE 'sent' END,
       u.email, u.expires_at - interval '20 days', u.expires_at - interval '20 days',
       CASE WHEN u.id %% 10 = 0 THEN '5.1.1' END,
       CASE WHEN u.id %% 10 = 0 THEN 'user_unknown' END,
       CASE WHEN u.id %% 10 = 0 THEN '550 5.1.1 User unknown' END
FROM net119.users AS u
WHERE u.expires_at < %(until)s
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="users to seed")
    parser.add_argument("--stations", type=int, default=750, help="stations to seed")
    parser.add_argument(
        "--database-url", help="empty database to use instead of a private server"
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print the query plan of the first batch's lists",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    data_dir: Path | None = None
    url = args.database_url
    if url is None:
        from net119.devtools import embedded_pg

        data_dir = Path(tempfile.mkdtemp(prefix="net119-bench-pg-"))
        url = embedded_pg.start(data_dir, database="postgres")
    try:
        run(url, args.users, args.stations, explain=args.explain)
    finally:
        if data_dir is not None:
            embedded_pg.stop(data_dir)
    return 0


def run(url: str, users: int, stations: int, *, explain: bool = False) -> None:
    conn = db.connect(url)
    migrate.migrate(conn)
    now = dt.datetime.combine(REFERENCE_DATE, dt.time(9, 0), tzinfo=TOKYO)

    started = time.perf_counter()
    seeding.seed(conn, users=users, stations=stations, reference_date=REFERENCE_DATE)
    with conn.cursor() as cur:
        cur.execute(ADD_REMINDERS, {"until": now + dt.timedelta(days=90)})
        reminders = cur.rowcount
        cur.execute("ANALYZE net119.reminders")
    conn.commit()
    transitions.apply_expiry_transitions(conn, now=now, run_id="bench")
    with conn.cursor() as cur:
        cur.execute("ANALYZE net119.users")
        cur.execute("SELECT count(*) FROM net119.users WHERE status = 'lapsed'")
        lapsed = cur.fetchone()[0]
    conn.commit()
    print(
        f"setup: {users} users, {stations} stations, {reminders} reminders, "
        f"{lapsed} lapsed, {time.perf_counter() - started:.1f} s"
    )

    settings = ReportSettings()
    t0 = time.perf_counter()
    batches = service.list_report_batches(
        conn, run_date=REFERENCE_DATE, report_settings=settings
    )
    print(
        f"list_report_batches: {len(batches)} batches in {time.perf_counter() - t0:.3f} s"
    )

    period = service.due_period(REFERENCE_DATE, settings)
    assert period is not None
    if explain:
        print_plan(conn, batches[0], period, now, settings)
    claim_s = rows_s = csv_s = 0.0
    slowest = 0.0
    total_rows = 0
    for batch in batches:
        t0 = time.perf_counter()
        claims = ledger.claim_reports(
            conn,
            batch,
            period=period,
            run_date=REFERENCE_DATE,
            as_of=now,
            run_id="bench",
            message_id_domain="net119.example.jp",
            lease_minutes=15,
        )
        t1 = time.perf_counter()
        rows = build_report_rows(
            conn,
            [c.report_id for c in claims],
            [c.station_id for c in claims],
            at_risk_until=now + dt.timedelta(days=settings.at_risk_days),
        )
        t2 = time.perf_counter()
        for claim in claims:
            write_report_csv(rows[claim.report_id], claim.csv_encoding)
        t3 = time.perf_counter()
        claim_s += t1 - t0
        rows_s += t2 - t1
        csv_s += t3 - t2
        slowest = max(slowest, t2 - t1)
        total_rows += sum(len(r) for r in rows.values())
    print(f"claims: {claim_s:.2f} s in total")
    print(
        f"lists (report_rows.sql): {rows_s:.2f} s in total, slowest batch {slowest:.2f} s, "
        f"{total_rows} rows"
    )
    print(f"CSV files: {csv_s:.2f} s in total")
    conn.close()


def print_plan(conn, batch, period, now, settings) -> None:
    """Print EXPLAIN ANALYZE of the lists of one batch, then roll everything back."""
    from net119 import sqlfiles

    claims = ledger.claim_reports(
        conn,
        batch,
        period=period,
        run_date=REFERENCE_DATE,
        as_of=now,
        run_id="explain",
        message_id_domain="net119.example.jp",
        lease_minutes=15,
    )
    with conn.cursor() as cur:
        cur.execute(
            "EXPLAIN (ANALYZE, BUFFERS) " + sqlfiles.load("report_rows"),
            {
                "report_ids": [c.report_id for c in claims],
                "station_ids": [c.station_id for c in claims],
                "at_risk_until": now + dt.timedelta(days=settings.at_risk_days),
            },
        )
        print("\n".join(row[0] for row in cur.fetchall()))
        cur.execute(
            "DELETE FROM net119.station_reports WHERE id = ANY(%s)",
            ([c.report_id for c in claims],),
        )
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("DELETE FROM net119.station_reports WHERE run_id = 'explain'")
    conn.commit()


if __name__ == "__main__":
    sys.exit(main())
