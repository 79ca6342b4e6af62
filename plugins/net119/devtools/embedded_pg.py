"""Run a private PostgreSQL cluster from the ``pgserver`` wheel.

``pgserver`` ships PostgreSQL binaries inside a PyPI wheel, so the demo and
the tests get a real server without installing one by hand. The cluster
listens only on a Unix socket inside its data folder's runtime directory.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import psycopg2

log = logging.getLogger(__name__)


def start(data_dir: Path, database: str = "net119") -> str:
    """Start (or reuse) the cluster in ``data_dir`` and return a libpq URL.

    The server keeps running after this process exits; call ``stop`` to end
    it. ``database`` is created when missing.
    """
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    admin_url = server.get_uri("postgres")
    conn = psycopg2.connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{database}"')
    finally:
        conn.close()
    url = server.get_uri(database)
    log.info("Embedded PostgreSQL is running with data in %s", data_dir)
    return url


def stop(data_dir: Path, timeout: float = 30.0) -> None:
    """Stop the cluster in ``data_dir`` if it runs; do nothing otherwise.

    SIGINT to the postmaster requests PostgreSQL's fast shutdown. ``pg_ctl``
    cannot be used because it refuses to run as root, while pgserver runs the
    server as its own user when started by root. Raises ``TimeoutError`` if the
    server is still running after ``timeout`` seconds.
    """
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_file.exists() and _running(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"PostgreSQL pid {pid} did not stop within {timeout} s")
        time.sleep(0.1)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def airflow_conn_uri(url: str) -> str:
    """Turn a libpq URL with ``?host=/socket/dir`` into an Airflow connection URI.

    Airflow reads the host from the URI's network location, so the socket
    folder goes there URL-encoded: ``postgresql://postgres@%2Ftmp%2Fx/net119``.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or ""])[0]
    user = parts.username or "postgres"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{quote(user, safe='')}@{quote(host, safe='')}{port}{parts.path}"
