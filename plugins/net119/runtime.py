"""Glue between Airflow task contexts and the domain package.

Imports of Airflow live inside the functions, so the domain package stays
importable (and testable) without loading Airflow.
"""

from __future__ import annotations

import datetime as dt
import smtplib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from net119.config import Settings
from net119.schedule import tokyo_date

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

DB_CONN_ID = "net119_db"
SMTP_CONN_ID = "net119_smtp"


def reference_time(context: Mapping[str, Any]) -> dt.datetime:
    """Return the run's reference time: its logical date, else when it was triggered.

    Manual runs in Airflow 3 may have no logical date; ``run_after`` is then the
    moment the run was requested.
    """
    moment = context.get("logical_date")
    if moment is None:
        dag_run = context.get("dag_run")
        moment = getattr(dag_run, "run_after", None) or context.get("run_after")
    if moment is None:
        raise RuntimeError("the task context has neither logical_date nor run_after")
    return dt.datetime.fromisoformat(str(moment)) if isinstance(moment, str) else moment


def run_date(context: Mapping[str, Any]) -> dt.date:
    """Return the run's date D: the Asia/Tokyo date of its reference time."""
    return tokyo_date(reference_time(context))


def run_id(context: Mapping[str, Any]) -> str | None:
    dag_run = context.get("dag_run")
    return getattr(dag_run, "run_id", None) or context.get("run_id")


# libpq options that may be set in the connection's extra field.
_LIBPQ_EXTRAS = (
    "sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout",
    "target_session_attrs", "options", "keepalives", "keepalives_idle",
)


def database_connect_kwargs(conn_id: str = DB_CONN_ID) -> dict[str, Any]:
    """Return ``psycopg2.connect()`` keyword arguments for an Airflow connection.

    The postgres provider's own ``get_conn()`` returns a psycopg 3 connection
    whenever psycopg 3 is installed (provider 7.x with SQLAlchemy 2), while the
    domain code is written for psycopg2, so only the connection's settings are
    taken from the hook.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    settings = PostgresHook(postgres_conn_id=conn_id).get_connection(conn_id)
    extra = settings.extra_dejson
    return {
        "host": settings.host or None,
        "port": settings.port or None,
        "user": settings.login or None,
        "password": settings.password or None,
        "dbname": settings.schema or None,
        **{key: extra[key] for key in _LIBPQ_EXTRAS if key in extra},
    }


@contextmanager
def database(conn_id: str = DB_CONN_ID) -> Iterator[Connection]:
    """Open a psycopg2 connection from the ``net119_db`` Airflow connection."""
    import psycopg2

    conn = psycopg2.connect(
        application_name="net119-airflow", **database_connect_kwargs(conn_id)
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'Asia/Tokyo'")
        conn.commit()
        yield conn
    finally:
        conn.close()


@contextmanager
def smtp_session(conn_id: str = SMTP_CONN_ID) -> Iterator[smtplib.SMTP]:
    """Open one SMTP session through the ``net119_smtp`` Airflow connection.

    The hook handles SSL, STARTTLS, authentication and timeouts as configured
    on the connection.
    """
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=conn_id) as hook:
        # NOTE: apache-airflow-providers-smtp 3.2 has no public accessor for
        # the session's client. Its send_email_smtp() cannot serve here: it
        # builds HTML mails only, uses the header sender as envelope sender (no
        # VERP), and retries every exception, 5xx rejections included.
        client = hook._smtp_client
        if client is None:
            raise RuntimeError(f"SMTP connection {conn_id!r} did not open a session")
        # The hook applies the connection's own timeout to the connect only;
        # NET119_SMTP_TIMEOUT bounds every later command of the session.
        if client.sock is not None:
            client.sock.settimeout(Settings.from_env().smtp_timeout)
        yield client
