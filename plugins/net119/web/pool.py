"""A small pool of psycopg2 connections for the renewal pages.

The pool opens connections on first use, so creating the app (which Airflow's
plugin manager does in every component) touches no database. The connection
settings come from a libpq URL when one is given (``NET119_DATABASE_URL``),
otherwise from the ``net119_db`` Airflow connection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg2
from psycopg2 import pool as pg_pool

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

APPLICATION_NAME = "net119-web"


class PoolTimeout(Exception):
    """No database connection became free within the pool's timeout."""


def url_params(url: str) -> Callable[[], dict[str, Any]]:
    return lambda: {"dsn": url}


def airflow_params(conn_id: str = "net119_db") -> Callable[[], dict[str, Any]]:
    def params() -> dict[str, Any]:
        from net119 import runtime

        return runtime.database_connect_kwargs(conn_id)

    return params


class DatabasePool:
    """Thread-safe pool of at most ``max_connections`` connections.

    A request waits up to ``timeout_seconds`` for a free connection and then
    gets ``PoolTimeout``. Each connection uses the Asia/Tokyo time zone. A
    connection that failed is closed instead of returned to the pool.
    """

    def __init__(
        self,
        connect_params: Callable[[], dict[str, Any]],
        *,
        max_connections: int,
        timeout_seconds: float,
    ) -> None:
        self._connect_params = connect_params
        self._max_connections = max_connections
        self._timeout_seconds = timeout_seconds
        self._slots = threading.BoundedSemaphore(max_connections)
        self._pool: pg_pool.ThreadedConnectionPool | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> pg_pool.ThreadedConnectionPool:
        with self._lock:
            if self._pool is None:
                params = self._connect_params()
                self._pool = pg_pool.ThreadedConnectionPool(
                    0, self._max_connections, application_name=APPLICATION_NAME, **params
                )
                log.info("Opened the renewal page database pool (max %d connections)",
                         self._max_connections)
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Lend a connection with no open transaction; roll back what is left open."""
        if not self._slots.acquire(timeout=self._timeout_seconds):
            raise PoolTimeout(f"no database connection free within {self._timeout_seconds} s")
        try:
            pool = self._get_pool()
            conn = pool.getconn()
            broken = False
            try:
                if conn.closed:
                    pool.putconn(conn, close=True)
                    conn = pool.getconn()
                _prepare(conn)
                yield conn
                conn.rollback()
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                broken = True
                raise
            except BaseException:
                broken = conn.closed != 0
                if not broken:
                    conn.rollback()
                raise
            finally:
                pool.putconn(conn, close=broken or conn.closed != 0)
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None


def _prepare(conn: Connection) -> None:
    # The server reports TimeZone after every change, so this check makes no round trip.
    if conn.get_parameter_status("TimeZone") == "Asia/Tokyo":
        return
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'Asia/Tokyo'")
    conn.commit()
