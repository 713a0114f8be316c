"""The connection a warm Lambda container reuses, and transactions on it."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from echo_control import config
from echo_control.errors import ServiceUnavailable

# A connection idle longer than this is pinged before use: RDS Proxy or a restart may have dropped it.
IDLE_PING_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5

Row = dict[str, Any]
Conn = psycopg.Connection[Row]


class _ContainerState(threading.local):
    # One connection per Lambda container; the local runner serves each request on its own thread.
    connection: Conn | None = None
    last_used = 0.0


_state = _ContainerState()


def _connect() -> Conn:
    return psycopg.connect(
        config.database_url(),
        autocommit=True,  # every write is an explicit transaction(); nothing idles in a transaction
        prepare_threshold=None,  # server-side prepared statements would pin RDS Proxy connections
        row_factory=dict_row,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        application_name="echo-control",
    )


def connection() -> Conn:
    """The container's connection, made on first use and remade once if it was dropped while idle."""
    conn = _state.connection
    try:
        if conn is None or conn.closed or conn.broken:
            conn = _state.connection = _connect()
        elif time.monotonic() - _state.last_used > IDLE_PING_SECONDS:
            try:
                conn.execute("SELECT 1")
            except psycopg.OperationalError:
                conn.close()
                conn = _state.connection = _connect()
    except psycopg.OperationalError as exc:
        _state.connection = None
        raise ServiceUnavailable("The database is unavailable; retry shortly") from exc
    _state.last_used = time.monotonic()
    return conn


def discard_connection() -> None:
    """Forget a connection that failed mid-request, so the next request connects afresh."""
    if _state.connection is not None:
        _state.connection.close()
    _state.connection = None


@contextmanager
def transaction() -> Iterator[Conn]:
    conn = connection()
    with conn.transaction():
        yield conn
