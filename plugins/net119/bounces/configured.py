"""Ingest the bounce mailbox that the deployment configures, for the daily DAG.

The Airflow connection ``net119_bounces`` (IMAP or Maildir, see
``net119.bounces.sources``) comes first. Without it, the Maildir folder named
by the environment variable ``NET119_BOUNCE_MAILDIR`` is read. Without
either, bounce ingestion is not configured, which is logged, and nothing is
recorded. A mailbox that cannot be opened or read is logged as an error and
counted in ``source_errors`` without raising, so the reminders of the day
still go out. Its messages stay in the mailbox for the next run.

Airflow is imported inside the functions, so the module loads without it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from net119.bounces.ingest import IngestCounts, IngestSettings, ingest
from net119.bounces.sources import (
    DEFAULT_CONNECTION_ID,
    BounceSource,
    BounceSourceError,
    MaildirConfig,
    MaildirSource,
    source_from_airflow_connection,
)

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

MAILDIR_ENV = "NET119_BOUNCE_MAILDIR"


def _airflow_connection_defined(conn_id: str) -> bool:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def open_configured_source(
    conn_id: str = DEFAULT_CONNECTION_ID,
    environ: Mapping[str, str] | None = None,
) -> BounceSource | None:
    """Return the configured bounce source, or ``None`` when none is configured.

    Raises ``ValueError`` for an invalid connection and ``BounceSourceError``
    for a Maildir path that is no Maildir.
    """
    environ = os.environ if environ is None else environ
    if _airflow_connection_defined(conn_id):
        source = source_from_airflow_connection(conn_id)
        log.info(
            "Reading bounces through the Airflow connection %s (%s)",
            conn_id,
            type(source).__name__,
        )
        return source

    path = environ.get(MAILDIR_ENV, "").strip()
    if path:
        log.info("Reading bounces from the Maildir %s (%s)", path, MAILDIR_ENV)
        return MaildirSource(MaildirConfig(path=Path(path)))
    return None


def ingest_configured(
    conn: Connection,
    *,
    now: dt.datetime,
    run_id: str | None = None,
    conn_id: str = DEFAULT_CONNECTION_ID,
) -> IngestCounts:
    """Ingest the configured bounce mailbox; see the module documentation."""
    try:
        settings = IngestSettings.from_env()
        source = open_configured_source(conn_id)
    except (BounceSourceError, ValueError) as exc:
        log.error(
            "Bounce ingestion skipped: the bounce mailbox settings are invalid or "
            "the mailbox cannot be opened: %s. Fix the Airflow connection %s or %s.",
            exc,
            conn_id,
            MAILDIR_ENV,
        )
        return IngestCounts(source_errors=1)

    if source is None:
        log.warning(
            "Bounce ingestion is not configured: define the Airflow connection %s "
            "(IMAP or Maildir) or set %s to a Maildir folder. No bounces were read.",
            conn_id,
            MAILDIR_ENV,
        )
        return IngestCounts()

    with source:
        return ingest(conn, source, now=now, run_id=run_id, settings=settings)
