"""The connection a warm Lambda container reuses, and transactions on it."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import psycopg._queries
from psycopg.rows import dict_row

from echo_control import config
from echo_control.errors import ServiceUnavailable

# A connection idle longer than this is pinged before use: RDS Proxy or a restart may have dropped it.
IDLE_PING_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5

# psycopg parses a statement's placeholders on every execution unless the statement is under 4 KB (its cache means
# to skip ORM-made SQL that never repeats); ours are constants, and the debit and settle statements are longer: each
# is parsed once per container instead of on every call (~0.1-0.4 ms of a debit's ~2 ms of Python).
# tests/test_benchmarks.py checks that the setting still exists.
STATEMENT_CACHE_LIMIT = 32_768
psycopg._queries.MAX_CACHED_STATEMENT_LENGTH = max(psycopg._queries.MAX_CACHED_STATEMENT_LENGTH, STATEMENT_CACHE_LIMIT)

Row = dict[str, Any]
Conn = psycopg.Connection[Row]


class _ContainerState(threading.local):
    # One connection per Lambda container; the local runner serves each request on its own thread.
    connection: Conn | None = None
    last_used = 0.0
    restores = 0  # how many snapshot restores this thread's connection has seen through


_state = _ContainerState()
_restores = 0  # SnapStart restores of this container (its Python process), counted by forget_connections()


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
    if _state.restores != _restores:  # made before a snapshot this container was restored from: never reuse it
        _state.restores = _restores
        discard_connection()
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
    conn, _state.connection = _state.connection, None
    if conn is not None:
        with suppress(Exception):  # a dead connection may fail to close; it is forgotten either way
            conn.close()


def forget_connections() -> None:
    """Lambda SnapStart's after-restore hook: every connection made before the snapshot is dropped.

    A snapshot may hold a connection (a function that queried while it initialised, or a container that served
    before its version was snapshotted); after a restore, possibly hours later and in many containers at once,
    its socket belongs to a session the database or RDS Proxy ended long ago, or to one several restored
    containers would share. Each thread connects afresh on its next query."""
    global _restores
    _restores += 1
    discard_connection()


try:  # Lambda's python runtime provides the hook registry; elsewhere nothing is ever restored from a snapshot
    from snapshot_restore_py import register_after_restore
except ImportError:
    pass
else:
    register_after_restore(forget_connections)


@contextmanager
def transaction() -> Iterator[Conn]:
    conn = connection()
    with conn.transaction():
        yield conn


@contextmanager
def pipelined_transaction() -> Iterator[Conn]:
    """A transaction whose statements travel together until a result is read: BEGIN goes with the first statement,
    and writes whose results are not read go with the COMMIT (a settle's two round trips instead of four)."""
    conn = connection()
    with conn.pipeline(), conn.transaction():
        yield conn
