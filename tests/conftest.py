"""Shared fixtures: a real PostgreSQL, a real SMTP server and Airflow's metadata DB.

PostgreSQL is the embedded server from the ``pgserver`` wheel unless
``NET119_TEST_DATABASE_URL`` names a server (for example
``postgresql://postgres@127.0.0.1:5432/postgres``). Each test gets a fresh
database cloned from a migrated template. The SMTP server is aiosmtpd on
127.0.0.1 with per-recipient replies that a test can set.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="net119-airflow-"))

# Airflow reads its configuration when first imported: set it before any import.
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__PARALLELISM"] = "4"
# platformdirs (used by pgserver) wants a private runtime folder.
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="net119-runtime-"))
os.environ["NET119_TEMPLATE_DIR"] = str(ROOT / "include" / "templates")
sys.path.insert(0, str(ROOT / "plugins"))

import logging  # noqa: E402

import psycopg2  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402

from net119 import db as net119_db  # noqa: E402
from net119 import migrate  # noqa: E402
from net119.devtools.lenient_smtp import LenientSMTP  # noqa: E402

# pgserver logs from an atexit hook, after pytest has closed its streams.
logging.getLogger("pgserver").propagate = False

pytest_plugins = ["fixtures_imap"]

TEST_DATABASE_URL_ENV = "NET119_TEST_DATABASE_URL"
_TEMPLATE_DB = "net119_template"
_database_numbers = itertools.count(1)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Return a URL to a maintenance database on a real PostgreSQL server."""
    given = os.environ.get(TEST_DATABASE_URL_ENV)
    if given:
        yield given
        return

    from net119.devtools import embedded_pg

    data_dir = tmp_path_factory.mktemp("pgdata")
    url = embedded_pg.start(data_dir, database="postgres")
    try:
        yield url
    finally:
        embedded_pg.stop(data_dir)


def _admin_execute(admin_url: str, statement: str) -> None:
    conn = psycopg2.connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def template_db_url(pg_admin_url: str) -> str:
    """Create a database with the current schema, used as a template per test."""
    suffix = os.getpid()
    name = f"{_TEMPLATE_DB}_{suffix}"
    _admin_execute(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}"')
    _admin_execute(pg_admin_url, f'CREATE DATABASE "{name}"')
    url = _with_database(pg_admin_url, name)
    conn = net119_db.connect(url)
    try:
        migrate.migrate(conn)
    finally:
        conn.close()
    return url


@pytest.fixture
def db_url(pg_admin_url: str, template_db_url: str) -> Iterator[str]:
    """Return the URL of a fresh, migrated database for one test."""
    template = urlsplit(template_db_url).path.lstrip("/")
    name = f"net119_test_{os.getpid()}_{next(_database_numbers)}"
    # An autovacuum worker may be connected to the template for a moment, and
    # CREATE DATABASE then fails with "being accessed by other users".
    for attempt in range(40):
        try:
            _admin_execute(pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            break
        except psycopg2.errors.ObjectInUse:
            if attempt == 39:
                raise
            time.sleep(0.25)
    try:
        yield _with_database(pg_admin_url, name)
    finally:
        _admin_execute(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg2.extensions.connection]:
    conn = net119_db.connect(db_url)
    try:
        yield conn
    finally:
        conn.close()


@dataclass
class ReceivedMail:
    envelope_from: str
    recipients: list[str]
    data: bytes


@dataclass
class RecordingHandler:
    """aiosmtpd handler that stores messages and replies as a test sets it.

    ``rcpt_replies`` maps a recipient to the reply of its RCPT command, for
    example ``"451 4.7.1 Try again later"``. ``data_replies`` does the same for
    the reply after DATA, which is how docomo and au reject.
    ``mail_from_reply``, when set, is the reply to every MAIL command.
    """

    messages: list[ReceivedMail] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    mail_from_reply: str | None = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        if self.mail_from_reply:
            return self.mail_from_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        for recipient in envelope.rcpt_tos:
            reply = self.data_replies.get(recipient)
            if reply:
                return reply
        self.messages.append(
            ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 2.0.0 Message accepted"


class LenientController(Controller):
    def factory(self):
        return LenientSMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler

    @property
    def messages(self) -> list[ReceivedMail]:
        return self.handler.messages

    def airflow_conn(self) -> str:
        import json

        return json.dumps(
            {
                "conn_type": "smtp",
                "host": self.host,
                "port": self.port,
                "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0},
            }
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """Start an aiosmtpd server on 127.0.0.1 for one test."""
    handler = RecordingHandler()
    port = free_port()
    controller = LenientController(
        handler, hostname="127.0.0.1", port=port, data_size_limit=10 * 1024 * 1024
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, handler)
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def airflow_metadata_db() -> Path:
    """Create Airflow's SQLite metadata database in the session's AIRFLOW_HOME."""
    from airflow.utils import db as airflow_db

    airflow_db.resetdb()
    return _AIRFLOW_HOME


@pytest.fixture
def airflow_env(
    monkeypatch: pytest.MonkeyPatch, db_url: str, smtp_server: SmtpServer, airflow_metadata_db: Path
) -> SmtpServer:
    """Point the ``net119_db`` and ``net119_smtp`` connections at this test's servers."""
    from net119.devtools.embedded_pg import airflow_conn_uri

    monkeypatch.setenv("AIRFLOW_CONN_NET119_DB", airflow_conn_uri(db_url))
    monkeypatch.setenv("AIRFLOW_CONN_NET119_SMTP", smtp_server.airflow_conn())
    return smtp_server
