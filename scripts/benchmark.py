"""Benchmark the daily pipeline's phases against their raw limits.

Seeds N users into the embedded PostgreSQL, starts the SMTP sink in its own
process, and times, for one run date:

- due selection: the pipeline's keyset queries for all 13 steps, against a
  bare range scan of the same expiry windows (the raw SQL limit);
- sending: ``send_step`` for all 13 steps (claim, tokens, compose, SMTP,
  record), against a bare smtplib loop that sends as many prepared messages
  over one session to the same sink (the raw SMTP limit);
- transitions: ``apply_expiry_transitions``, against a bare ``UPDATE`` of
  the same rows in a transaction that is rolled back;
- a second, steady-state run on the next date, as the pipeline runs daily.

Peak memory is the maximum resident set size of this process, the
pipeline's side: seeding, PostgreSQL and the sink run in other processes.

    .venv/bin/python scripts/benchmark.py --users 100000
    .venv/bin/python scripts/benchmark.py --users 1000000 --stations 750
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from net119 import db, migrate, reminders, sqlfiles, transitions  # noqa: E402
from net119.config import Settings  # noqa: E402
from net119.devtools import embedded_pg  # noqa: E402
from net119.schedule import OFFSETS, TOKYO, due_window  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def sink_process(directory: Path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "net119.devtools.smtp_sink", "--dir", str(directory),
         "--port", str(port)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the SMTP sink did not start within 20 s") from None
            time.sleep(0.1)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def smtp_factory(port: int):
    @contextmanager
    def open_session():
        client = smtplib.SMTP("127.0.0.1", port, timeout=30)
        try:
            yield client
        finally:
            try:
                client.quit()
            except smtplib.SMTPException:
                client.close()

    return open_session


def time_due_selection(conn, run_date: dt.date, settings: Settings) -> tuple[float, float, int]:
    """Return (pipeline seconds, bare seconds, due users) for all 13 steps."""
    started = time.perf_counter()
    due = 0
    for offset in OFFSETS:
        window = due_window(offset, run_date)
        after_id = 0
        while True:
            with conn.cursor() as cur:
                cur.execute(
                    sqlfiles.load("select_due_users"),
                    {"window_start": window.start, "window_end": window.end,
                     "after_id": after_id, "offset": offset, "lease_minutes": settings.claim_lease_minutes,
                     "run_id": None, "batch_size": settings.batch_size},
                )
                ids = [row[0] for row in cur.fetchall()]
            if not ids:
                break
            due += len(ids)
            after_id = ids[-1]
    pipeline = time.perf_counter() - started
    conn.rollback()

    started = time.perf_counter()
    for offset in OFFSETS:
        window = due_window(offset, run_date)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id FROM net119.users WHERE expires_at >= %s AND expires_at < %s",
                (window.start, window.end),
            )
            cur.fetchall()
    bare = time.perf_counter() - started
    conn.rollback()
    return pipeline, bare, due


def time_sending(conn, port: int, run_date: dt.date, settings: Settings) -> tuple[float, dict]:
    now = dt.datetime.combine(run_date, dt.time(9, 0), tzinfo=TOKYO)
    totals = {"due": 0, "sent": 0, "skipped": 0, "failed": 0, "undeliverable": 0}
    started = time.perf_counter()
    for offset in OFFSETS:
        counts = reminders.send_step(
            conn, smtp_factory(port), offset=offset, run_date=run_date, now=now,
            settings=settings, run_id=f"benchmark-{run_date}",
        )
        for key in totals:
            totals[key] += getattr(counts, key)
    return time.perf_counter() - started, totals


def time_bare_smtp(port: int, count: int) -> float:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "bench@net119.example.jp"
    message["To"] = "user@docomo.ne.jp"
    message["Subject"] = "【NET119】定期更新手続きのお願い"
    message.set_content("本文" * 400, charset="utf-8", cte="base64")
    data = message.as_bytes()
    started = time.perf_counter()
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    for _ in range(count):
        client.sendmail("bounce+x@net119.example.jp", ["user@docomo.ne.jp"], data)
    client.quit()
    return time.perf_counter() - started


def time_transitions(conn, run_date: dt.date) -> tuple[float, float, dict]:
    now = dt.datetime.combine(run_date, dt.time(9, 0), tzinfo=TOKYO)
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE net119.users SET status = 'lapsed', lapse_reason = 'not_renewed' "
            "WHERE status = 'active' AND expires_at <= %s",
            (now,),
        )
    bare = time.perf_counter() - started
    conn.rollback()

    started = time.perf_counter()
    counts = transitions.apply_expiry_transitions(conn, now=now, run_id="benchmark")
    return time.perf_counter() - started, bare, counts.as_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000, help="users to seed (default 100000)")
    parser.add_argument("--stations", type=int, default=50, help="stations to seed (default 50)")
    parser.add_argument("--date", type=dt.date.fromisoformat, default=dt.date(2026, 12, 4),
                        help="run date in Asia/Tokyo (default 2026-12-04)")
    parser.add_argument("--batch-size", type=int, default=500,
                        help="reminders per SMTP session and transaction (default 500)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="net119-bench-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(workdir))
    settings = Settings(batch_size=args.batch_size)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"users: {args.users:,}, stations: {args.stations}, run date: {args.date}, "
          f"batch size: {args.batch_size}")

    url = embedded_pg.start(workdir / "pg")
    try:
        conn = db.connect(url)
        migrate.migrate(conn)
        started = time.perf_counter()
        # Seeded in a child process so the peak memory below is the pipeline's.
        subprocess.run(
            [sys.executable, "-m", "net119.devtools.seed", "--database-url", url,
             "--users", str(args.users), "--stations", str(args.stations),
             "--date", args.date.isoformat()],
            env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with conn.cursor() as cur:
            cur.execute("ANALYZE net119.users")
        conn.commit()
        print(f"seed: {time.perf_counter() - started:.1f} s")

        pipeline, bare, due = time_due_selection(conn, args.date, settings)
        print(f"due selection: {pipeline:.2f} s for {due:,} due users "
              f"(bare range scan {bare:.2f} s)")

        transition_s, bare_transition_s, transition_counts = time_transitions(conn, args.date)
        print(f"transitions: {transition_s:.2f} s {transition_counts} "
              f"(bare UPDATE {bare_transition_s:.2f} s)")

        with sink_process(workdir / "mail") as port:
            send_s, totals = time_sending(conn, port, args.date, settings)
            rate = totals["sent"] / send_s if send_s else 0.0
            print(f"sending, first run: {send_s:.1f} s, {totals}, {rate:.0f} mails/s")
            bare_count = max(totals["sent"], 1)
            bare_s = time_bare_smtp(port, bare_count)
            print(f"bare smtplib loop: {bare_count:,} mails in {bare_s:.1f} s, "
                  f"{bare_count / bare_s:.0f} mails/s")

            next_day = args.date + dt.timedelta(days=1)
            transition_s, _, transition_counts = time_transitions(conn, next_day)
            steady_s, steady = time_sending(conn, port, next_day, settings)
            print(f"steady state ({next_day}): transitions {transition_s:.2f} s, "
                  f"sending {steady_s:.1f} s, {steady}")
        print(f"peak memory of the pipeline process: {peak_rss_mib():.0f} MiB")
        conn.close()
    finally:
        embedded_pg.stop(workdir / "pg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
