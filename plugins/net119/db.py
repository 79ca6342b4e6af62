"""Open connections to the system-of-record database.

Airflow tasks get their connection through the ``net119_db`` Airflow
connection (see ``net119.airflow``); command-line tools and tests pass a
libpq URL. Both end in a plain psycopg2 connection, which is all the domain
code needs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import psycopg2

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

DATABASE_URL_ENV = "NET119_DATABASE_URL"


def connect(url: str | None = None) -> Connection:
    """Open a connection to ``url``, or to ``$NET119_DATABASE_URL`` when omitted.

    Raises ``RuntimeError`` naming the variable when neither is given.
    """
    url = url or os.environ.get(DATABASE_URL_ENV)
    if not url:
        raise RuntimeError(
            f"no database URL: pass --database-url or set {DATABASE_URL_ENV} "
            "(for example postgresql://postgres@127.0.0.1:5432/net119)"
        )
    conn = psycopg2.connect(url, application_name="net119")
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'Asia/Tokyo'")
    conn.commit()
    return conn
