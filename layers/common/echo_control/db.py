"""The one data-access module: the connection a warm Lambda reuses, transactions, and every SQL statement.

Statements are parameterised constants; nothing is string-formatted into SQL.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from echo_control import config
from echo_control.errors import ServiceUnavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
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


def apply_migrations(url: str | None = None) -> list[str]:
    """Applies pending migrations with yoyo under its lock; returns the ids applied."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(_yoyo_url(url or config.database_url()))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]


def _yoyo_url(url: str) -> str:
    # yoyo picks its driver from the scheme; a libpq key=value string is turned into a URL.
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "=" in url and "://" not in url:
        from urllib.parse import quote

        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
        auth = quote(str(parts.pop("user", "")), safe="")
        if password := parts.pop("password", None):
            auth += ":" + quote(str(password), safe="")
        host = str(parts.pop("host", ""))
        if host.startswith("/"):  # a socket directory travels as a query parameter
            parts["host"], host = host, ""
        port = parts.pop("port", None)
        dbname = parts.pop("dbname", "")
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in parts.items())
        netloc = f"{auth}@{host}" + (f":{port}" if port else "")
        return f"postgresql+psycopg://{netloc}/{dbname}" + (f"?{query}" if query else "")
    return url


def as_uuid(value: str | UUID | None) -> UUID | None:
    """A path or body id as a UUID, or None when it cannot be one (callers answer 404)."""
    if value is None or isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


# --- users -------------------------------------------------------------------------------------------

_USER_BY_CLERK_ID = """
WITH found AS (
    SELECT id, email, name, role FROM users WHERE clerk_id = %(clerk_id)s
), created AS (
    INSERT INTO users (email, clerk_id, name)
    SELECT %(email)s, %(clerk_id)s, %(name)s WHERE NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT DO NOTHING
    RETURNING id, email, name, role
), balance AS (
    INSERT INTO balances (user_id) SELECT id FROM created
)
SELECT * FROM found UNION ALL SELECT * FROM created
"""


def user_for_clerk_id(clerk_id: str, email: str, name: str | None) -> Row | None:
    """The user with this clerkId, created (with an empty balance) on first sight."""
    params = {"clerk_id": clerk_id, "email": email, "name": name}
    conn = connection()
    row = conn.execute(_USER_BY_CLERK_ID, params).fetchone()
    if row is None:  # lost a race with a concurrent first sight, or the email belongs to another user
        row = conn.execute("SELECT id, email, name, role FROM users WHERE clerk_id = %s", [clerk_id]).fetchone()
    return row


def user_by_email(email: str) -> Row | None:
    return (
        connection()
        .execute("SELECT id, email, clerk_id, role FROM users WHERE lower(email) = lower(%s)", [email])
        .fetchone()
    )


def set_user_clerk_id(user_id: UUID, clerk_id: str) -> None:
    with transaction() as conn:
        conn.execute("UPDATE users SET clerk_id = %s, updated_at = now() WHERE id = %s", [clerk_id, user_id])


def user_by_id(user_id: UUID) -> Row | None:
    return connection().execute("SELECT id, email, name, role FROM users WHERE id = %s", [user_id]).fetchone()


# --- echo apps ---------------------------------------------------------------------------------------

_APP_COLUMNS = "a.id, a.name, a.description, a.user_id, a.markup, a.is_active, a.created_at, a.updated_at"

_USAGE_TOTALS = """
    COALESCE(SUM(u.calls), 0) AS calls, COALESCE(SUM(u.input_tokens), 0) AS input_tokens,
    COALESCE(SUM(u.output_tokens), 0) AS output_tokens, COALESCE(SUM(u.total_tokens), 0) AS total_tokens,
    COALESCE(SUM(u.cost), 0) AS cost
"""


def insert_app(user_id: UUID, name: str, description: str | None, markup: Decimal) -> Row:
    with transaction() as conn:
        row = conn.execute(
            "INSERT INTO echo_apps AS a (user_id, name, description, markup) VALUES (%s, %s, %s, %s) "
            "RETURNING " + _APP_COLUMNS,
            [user_id, name, description, markup],
        ).fetchone()
    assert row is not None
    return row


_APPS_WITH_TOTALS = (
    f"SELECT {_APP_COLUMNS}, t.* FROM echo_apps a "
    f"CROSS JOIN LATERAL (SELECT {_USAGE_TOTALS} FROM usage_daily u WHERE u.echo_app_id = a.id) t "
    "WHERE a.user_id = %s ORDER BY a.created_at DESC, a.id DESC"
)


def apps_with_totals(user_id: UUID) -> list[Row]:
    return connection().execute(_APPS_WITH_TOTALS, [user_id]).fetchall()


def app_for_owner(app_id: UUID, user_id: UUID) -> Row | None:
    return (
        connection()
        .execute(f"SELECT {_APP_COLUMNS} FROM echo_apps a WHERE a.id = %s AND a.user_id = %s", [app_id, user_id])
        .fetchone()
    )


_UPDATE_APP = (
    """
UPDATE echo_apps a SET
    name = CASE WHEN %(set_name)s THEN %(name)s ELSE a.name END,
    description = CASE WHEN %(set_description)s THEN %(description)s ELSE a.description END,
    markup = CASE WHEN %(set_markup)s THEN %(markup)s::numeric ELSE a.markup END,
    is_active = CASE WHEN %(set_is_active)s THEN %(is_active)s::boolean ELSE a.is_active END,
    updated_at = now()
WHERE a.id = %(id)s AND a.user_id = %(user_id)s
RETURNING """
    + _APP_COLUMNS
)


def update_app(app_id: UUID, user_id: UUID, changes: dict[str, Any]) -> Row | None:
    """Sets only the columns named in changes (name, description, markup, is_active)."""
    params: dict[str, Any] = {"id": app_id, "user_id": user_id}
    for column in ("name", "description", "markup", "is_active"):
        params["set_" + column] = column in changes
        params[column] = changes.get(column)
    with transaction() as conn:
        return conn.execute(_UPDATE_APP, params).fetchone()


# --- api keys ----------------------------------------------------------------------------------------

_KEY_COLUMNS = (
    "k.id, k.name, k.key_prefix, k.key_last4, k.user_id, k.echo_app_id, k.expires_at, k.revoked_at, "
    "k.last_used_at, k.created_at"
)


def insert_api_key(
    user_id: UUID,
    app_id: UUID,
    name: str | None,
    key_hash: bytes,
    prefix: str,
    last4: str,
    expires_at: datetime | None,
) -> Row:
    with transaction() as conn:
        row = conn.execute(
            "INSERT INTO api_keys AS k (user_id, echo_app_id, name, key_hash, key_prefix, key_last4, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING " + _KEY_COLUMNS,
            [user_id, app_id, name, key_hash, prefix, last4, expires_at],
        ).fetchone()
    assert row is not None
    return row


def api_keys_for_user(user_id: UUID, app_id: UUID | None = None) -> list[Row]:
    return (
        connection()
        .execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys k WHERE k.user_id = %s "
            "AND (%s::uuid IS NULL OR k.echo_app_id = %s) ORDER BY k.created_at DESC, k.id DESC",
            [user_id, app_id, app_id],
        )
        .fetchall()
    )


def revoke_api_key(key_id: UUID, user_id: UUID) -> Row | None:
    with transaction() as conn:
        return conn.execute(
            "UPDATE api_keys k SET revoked_at = COALESCE(k.revoked_at, now()) WHERE k.id = %s AND k.user_id = %s "
            "RETURNING " + _KEY_COLUMNS,
            [key_id, user_id],
        ).fetchone()


# Touching last_used_at at most once a minute keeps the hot path from writing the key row every call.
# The same round trip counts the request in the key's one-minute rate window (when asked to).
_ACTIVE_KEY_BY_HASH = """
WITH key AS (
    SELECT k.id, k.user_id, k.echo_app_id, k.last_used_at, u.email, u.role, a.markup
    FROM api_keys k JOIN users u ON u.id = k.user_id JOIN echo_apps a ON a.id = k.echo_app_id
    WHERE k.key_hash = %(hash)s AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
      AND a.is_active
), touched AS (
    UPDATE api_keys SET last_used_at = now()
    WHERE id = (SELECT id FROM key WHERE last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
), hit AS (
    INSERT INTO rate_limit_windows AS w (api_key_id, window_start, hits)
    SELECT id, date_trunc('minute', now()), 1 FROM key WHERE %(count_hit)s
    ON CONFLICT (api_key_id, window_start) DO UPDATE SET hits = w.hits + 1
    RETURNING hits
), purge AS (
    DELETE FROM rate_limit_windows
    WHERE %(count_hit)s AND api_key_id = (SELECT id FROM key) AND window_start < date_trunc('minute', now())
)
SELECT key.id, key.user_id, key.echo_app_id, key.email, key.role, key.markup, COALESCE(hit.hits, 0) AS hits,
       ceil(EXTRACT(EPOCH FROM date_trunc('minute', now()) + interval '1 minute' - now()))::int AS retry_after
FROM key LEFT JOIN hit ON true
"""


def active_api_key(key_hash: bytes, *, count_hit: bool) -> Row | None:
    return connection().execute(_ACTIVE_KEY_BY_HASH, {"hash": key_hash, "count_hit": count_hit}).fetchone()


# --- ledger ------------------------------------------------------------------------------------------

_BALANCE = "SELECT balance, total_paid, total_spent FROM balances WHERE user_id = %s"


def balance(user_id: UUID) -> Row | None:
    return connection().execute(_BALANCE, [user_id]).fetchone()


# One statement records the call, debits it only if the balance covers it, writes the ledger entry and
# adds to the day's rollup: atomic under autocommit, and one round trip on the metering hot path.
RECORD_DEBIT = """
WITH debit AS (
    UPDATE balances SET balance = balance - %(cost)s, total_spent = total_spent + %(cost)s, updated_at = now()
    WHERE user_id = %(user_id)s AND balance >= %(cost)s
    RETURNING balance
), tx AS (
    INSERT INTO llm_transactions
        (model, input_tokens, output_tokens, total_tokens, cost, status, user_id, echo_app_id, api_key_id, metadata)
    SELECT %(model)s, %(input_tokens)s, %(output_tokens)s, %(total_tokens)s, %(cost)s, %(status)s,
           %(user_id)s, %(echo_app_id)s, %(api_key_id)s, %(metadata)s
    FROM debit
    RETURNING id, created_at
), entry AS (
    INSERT INTO ledger_entries (user_id, kind, amount, idempotency_key, reference_id)
    SELECT %(user_id)s, 'llm_debit', -%(cost)s::numeric, 'llm:' || tx.id, tx.id FROM tx WHERE %(cost)s > 0
), rollup AS (
    INSERT INTO usage_daily AS u
        (echo_app_id, day, model, status, user_id, calls, input_tokens, output_tokens, total_tokens, cost)
    SELECT %(echo_app_id)s, (tx.created_at AT TIME ZONE 'UTC')::date, %(model)s, %(status)s, %(user_id)s,
           1, %(input_tokens)s, %(output_tokens)s, %(total_tokens)s, %(cost)s
    FROM tx
    ON CONFLICT (echo_app_id, day, model, status, user_id) DO UPDATE SET
        calls = u.calls + 1, input_tokens = u.input_tokens + excluded.input_tokens,
        output_tokens = u.output_tokens + excluded.output_tokens,
        total_tokens = u.total_tokens + excluded.total_tokens, cost = u.cost + excluded.cost
)
SELECT tx.id, tx.created_at, debit.balance FROM tx, debit
"""


def record_debit(conn: Conn, params: dict[str, Any]) -> Row | None:
    """The recorded transaction with the balance after it, or None when the balance does not cover it."""
    if params.get("metadata") is not None:
        params = {**params, "metadata": Jsonb(params["metadata"])}
    return conn.execute(RECORD_DEBIT, params).fetchone()


def claim_idempotency_key(conn: Conn, user_id: UUID, key: str, request_hash: str) -> Row | None:
    """Claims the key inside the caller's transaction; a concurrent claimant waits here until it ends.

    Returns None when this transaction owns the key, else the earlier request's record."""
    claimed = conn.execute(
        "INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES (%s, %s, %s) "
        "ON CONFLICT DO NOTHING RETURNING key",
        [user_id, key, request_hash],
    ).fetchone()
    if claimed:
        return None
    return conn.execute(
        "SELECT request_hash, status_code, response FROM idempotency_keys WHERE user_id = %s AND key = %s",
        [user_id, key],
    ).fetchone()


def store_idempotent_response(conn: Conn, user_id: UUID, key: str, status_code: int, response: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE idempotency_keys SET status_code = %s, response = %s WHERE user_id = %s AND key = %s",
        [status_code, Jsonb(response), user_id, key],
    )


_ENSURE_BALANCE = "INSERT INTO balances (user_id) VALUES (%s) ON CONFLICT DO NOTHING"

# An UPDATE, not an upsert: INSERT … ON CONFLICT checks the balance CHECK against the proposed row.
_APPLY_ENTRY = """
WITH entry AS (
    INSERT INTO ledger_entries (user_id, kind, amount, idempotency_key, reference_id, reason)
    VALUES (%(user_id)s, %(kind)s, %(amount)s, %(idempotency_key)s, %(reference_id)s, %(reason)s)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING amount
)
UPDATE balances b SET balance = b.balance + entry.amount, total_paid = b.total_paid + %(paid)s, updated_at = now()
FROM entry WHERE b.user_id = %(user_id)s
RETURNING b.balance
"""


def apply_entry(
    conn: Conn,
    *,
    user_id: UUID,
    kind: str,
    amount: Decimal,
    idempotency_key: str,
    reference_id: UUID | None = None,
    reason: str | None = None,
    paid: Decimal = Decimal(0),
) -> Row | None:
    """Appends one entry and moves the cached balance with it, unless the key was applied before (None).

    A negative amount that would take the balance below zero raises CheckViolation (the CHECK guard)."""
    conn.execute(_ENSURE_BALANCE, [user_id])
    return conn.execute(
        _APPLY_ENTRY,
        {
            "user_id": user_id,
            "kind": kind,
            "amount": amount,
            "idempotency_key": idempotency_key,
            "reference_id": reference_id,
            "reason": reason,
            "paid": paid,
        },
    ).fetchone()


def lock_balance(conn: Conn, user_id: UUID) -> Decimal:
    row = conn.execute("SELECT balance FROM balances WHERE user_id = %s FOR UPDATE", [user_id]).fetchone()
    return row["balance"] if row else Decimal(0)


RECONCILIATION = """
SELECT b.user_id, b.balance, COALESCE(e.total, 0) AS ledger_total
FROM balances b
LEFT JOIN (SELECT user_id, SUM(amount) AS total FROM ledger_entries GROUP BY user_id) e USING (user_id)
WHERE b.balance <> COALESCE(e.total, 0)
"""


def unreconciled_balances() -> list[Row]:
    """Users whose cached balance differs from the sum of their ledger entries (should be none)."""
    return connection().execute(RECONCILIATION).fetchall()


# --- transactions history ----------------------------------------------------------------------------

_TX_COLUMNS = (
    "t.id, t.model, t.input_tokens, t.output_tokens, t.total_tokens, t.cost, t.status, t.user_id, "
    "t.echo_app_id, t.metadata, t.created_at"
)

# Keyset pagination, newest first; the filters are all optional (NULL matches everything).
_TX_FILTERS = """
      AND (%(echo_app_id)s::uuid IS NULL OR t.echo_app_id = %(echo_app_id)s)
      AND (%(model)s::text IS NULL OR t.model = %(model)s)
      AND (%(status)s::text IS NULL OR t.status = %(status)s)
      AND (%(since)s::timestamptz IS NULL OR t.created_at >= %(since)s)
      AND (%(until)s::timestamptz IS NULL OR t.created_at < %(until)s)
      AND (%(after_at)s::timestamptz IS NULL OR (t.created_at, t.id) < (%(after_at)s, %(after_id)s::uuid))
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT %(limit)s
"""
_TX_BY_USER = f"SELECT {_TX_COLUMNS} FROM llm_transactions t WHERE t.user_id = %(user_id)s {_TX_FILTERS}"
_TX_BY_APP = f"SELECT {_TX_COLUMNS} FROM llm_transactions t WHERE t.echo_app_id = %(app_scope)s {_TX_FILTERS}"


def transactions_page(filters: dict[str, Any]) -> list[Row]:
    """A page of history for a user (user_id) or for one app (app_scope); see _TX_FILTERS for the rest."""
    sql = _TX_BY_APP if filters.get("app_scope") else _TX_BY_USER
    return connection().execute(sql, filters).fetchall()


# --- payments ----------------------------------------------------------------------------------------

_PAYMENT_COLUMNS = (
    "p.id, p.stripe_payment_id, p.stripe_session_id, p.amount, p.amount_refunded, p.currency, p.status, "
    "p.user_id, p.echo_app_id, p.created_at, p.updated_at"
)


def insert_payment(user_id: UUID, amount_cents: int, echo_app_id: UUID | None) -> Row:
    with transaction() as conn:
        row = conn.execute(
            "INSERT INTO payments AS p (user_id, amount, echo_app_id, status) VALUES (%s, %s, %s, 'pending') "
            "RETURNING " + _PAYMENT_COLUMNS,
            [user_id, amount_cents, echo_app_id],
        ).fetchone()
    assert row is not None
    return row


def set_payment_session(payment_id: UUID, session_id: str) -> None:
    with transaction() as conn:
        conn.execute(
            "UPDATE payments SET stripe_session_id = %s, updated_at = now() WHERE id = %s",
            [session_id, payment_id],
        )


def payments_for_user(user_id: UUID, limit: int) -> list[Row]:
    return (
        connection()
        .execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments p WHERE p.user_id = %s ORDER BY p.created_at DESC LIMIT %s",
            [user_id, limit],
        )
        .fetchall()
    )


def payment_by_id(payment_id: UUID) -> Row | None:
    return connection().execute(f"SELECT {_PAYMENT_COLUMNS} FROM payments p WHERE p.id = %s", [payment_id]).fetchone()


def record_stripe_event(conn: Conn, event_id: str, event_type: str) -> bool:
    """True when the event is new; False when it was applied before (a redelivery)."""
    row = conn.execute(
        "INSERT INTO stripe_events (id, type) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING id",
        [event_id, event_type],
    ).fetchone()
    return row is not None


def lock_payment(
    conn: Conn, *, payment_id: UUID | None, session_id: str | None, payment_intent: str | None
) -> Row | None:
    return conn.execute(
        f"SELECT {_PAYMENT_COLUMNS} FROM payments p WHERE p.id = %(id)s "
        "OR (%(session)s::text IS NOT NULL AND p.stripe_session_id = %(session)s) "
        "OR (%(intent)s::text IS NOT NULL AND p.stripe_payment_id = %(intent)s) "
        "ORDER BY p.created_at LIMIT 1 FOR UPDATE",
        {"id": payment_id, "session": session_id, "intent": payment_intent},
    ).fetchone()


def update_payment(
    conn: Conn,
    payment_id: UUID,
    *,
    status: str,
    stripe_payment_id: str | None,
    amount_refunded: int,
) -> None:
    conn.execute(
        "UPDATE payments SET status = %s, stripe_payment_id = COALESCE(stripe_payment_id, %s), "
        "amount_refunded = %s, updated_at = now() WHERE id = %s",
        [status, stripe_payment_id, amount_refunded, payment_id],
    )


# --- analytics ---------------------------------------------------------------------------------------

_USAGE_BY_MODEL = f"""
SELECT u.model, {_USAGE_TOTALS} FROM usage_daily u
WHERE u.echo_app_id = %(app_id)s AND u.day BETWEEN %(since)s AND %(until)s
GROUP BY u.model ORDER BY cost DESC, u.model
"""
_USAGE_BY_DAY = f"""
SELECT u.day, {_USAGE_TOTALS} FROM usage_daily u
WHERE u.echo_app_id = %(app_id)s AND u.day BETWEEN %(since)s AND %(until)s
GROUP BY u.day ORDER BY u.day
"""
_USAGE_BY_MODEL_ALL_TIME = f"""
SELECT u.model, {_USAGE_TOTALS} FROM usage_daily u WHERE u.echo_app_id = %(app_id)s
GROUP BY u.model ORDER BY cost DESC, u.model
"""


def usage_by_model(app_id: UUID, since: date | None = None, until: date | None = None) -> list[Row]:
    if since is None or until is None:
        return connection().execute(_USAGE_BY_MODEL_ALL_TIME, {"app_id": app_id}).fetchall()
    return connection().execute(_USAGE_BY_MODEL, {"app_id": app_id, "since": since, "until": until}).fetchall()


def usage_by_day(app_id: UUID, since: date, until: date) -> list[Row]:
    return connection().execute(_USAGE_BY_DAY, {"app_id": app_id, "since": since, "until": until}).fetchall()


_ROLLUP_MISMATCHES = """
WITH raw AS (
    SELECT echo_app_id, (created_at AT TIME ZONE 'UTC')::date AS day, model, status, user_id, count(*) AS calls,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(total_tokens) AS total_tokens, sum(cost) AS cost
    FROM llm_transactions GROUP BY 1, 2, 3, 4, 5
)
SELECT * FROM raw FULL JOIN usage_daily u USING (echo_app_id, day, model, status, user_id)
WHERE raw.calls IS DISTINCT FROM u.calls OR raw.input_tokens IS DISTINCT FROM u.input_tokens
   OR raw.output_tokens IS DISTINCT FROM u.output_tokens OR raw.total_tokens IS DISTINCT FROM u.total_tokens
   OR raw.cost IS DISTINCT FROM u.cost
"""


def rollup_mismatches() -> list[Row]:
    return connection().execute(_ROLLUP_MISMATCHES).fetchall()
