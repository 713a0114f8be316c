"""API keys: stored as hashes; the authorizer's lookup also counts the key's rate window."""

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from echo_control.db.connection import Conn, Row, connection, transaction
from echo_control.db.customers import join_app
from echo_control.db.ledger import PERIOD_START

_KEY_COLUMNS = (
    "k.id, k.name, k.key_prefix, k.key_last4, k.user_id, k.echo_app_id, k.expires_at, k.revoked_at, "
    "k.last_used_at, k.created_at, k.spend_limit, k.limit_period, "
    "CASE WHEN k.spent_period_start = " + PERIOD_START + " THEN k.spent_in_period ELSE 0 END AS spent_in_period"
)


def insert_api_key(
    user_id: UUID,
    app_id: UUID,
    name: str | None,
    key_hash: bytes,
    prefix: str,
    last4: str,
    expires_at: datetime | None,
    spend_limit: Decimal | None = None,
    limit_period: str | None = None,
    *,
    as_customer: bool = False,
) -> Row | None:
    """The new key's row; for a customer (`as_customer`) it also makes them the app's customer, in the same
    transaction, and is None (nothing written) when the app no longer accepts them."""
    with transaction() as conn:
        if as_customer and not join_app(conn, app_id, user_id):
            return None
        row = conn.execute(
            "INSERT INTO api_keys AS k (user_id, echo_app_id, name, key_hash, key_prefix, key_last4, expires_at, "
            "spend_limit, limit_period) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING " + _KEY_COLUMNS,
            [user_id, app_id, name, key_hash, prefix, last4, expires_at, spend_limit, limit_period],
        ).fetchone()
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


_LOCK_KEY = "SELECT id, name, spend_limit, limit_period FROM api_keys WHERE id = %s AND user_id = %s FOR UPDATE"

# Under the key's lock, after the limit changed: what the key spent in its (new) period, from its calls. A call
# being metered at this moment waits on the lock and then counts itself in.
_RECOUNT_SPEND = (
    "UPDATE api_keys k SET name = %(name)s, spend_limit = %(spend_limit)s, limit_period = %(limit_period)s, "
    "spent_period_start = CASE WHEN %(limit_period)s::text IS NULL THEN NULL ELSE "
    + PERIOD_START.replace("k.limit_period", "%(limit_period)s::text")
    + " END, spent_in_period = CASE WHEN %(limit_period)s::text IS NULL THEN 0 ELSE ("
    "SELECT coalesce(sum(t.cost), 0) FROM llm_transactions t WHERE t.user_id = k.user_id AND t.api_key_id = k.id "
    "AND t.created_at >= ("
    + PERIOD_START.replace("k.limit_period", "%(limit_period)s::text")
    + ")::timestamp AT TIME ZONE 'UTC') END "
    "WHERE k.id = %(key_id)s RETURNING " + _KEY_COLUMNS
)


def lock_api_key(conn: Conn, key_id: UUID, user_id: UUID) -> Row | None:
    return conn.execute(_LOCK_KEY, [key_id, user_id]).fetchone()


def update_api_key(
    conn: Conn, key_id: UUID, name: str | None, spend_limit: Decimal | None, limit_period: str | None
) -> Row:
    """Sets the key's name and limit (its row locked by lock_api_key) and recounts its spend in the period."""
    row = conn.execute(
        _RECOUNT_SPEND,
        {"key_id": key_id, "name": name, "spend_limit": spend_limit, "limit_period": limit_period},
    ).fetchone()
    assert row is not None
    return row


# Touching last_used_at at most once a minute keeps the hot path from writing the key row every call.
# The same round trip counts the request in the key's one-minute rate window (when asked to), and reads the version
# of the app's own prices (a debit looks them up only if the app has any, and only after they change).
_ACTIVE_KEY_BY_HASH = """
WITH key AS (
    SELECT k.id, k.user_id, k.echo_app_id, k.last_used_at, u.email, u.role, a.markup, a.prices_version
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
SELECT key.id, key.user_id, key.echo_app_id, key.email, key.role, key.markup, key.prices_version,
       COALESCE(hit.hits, 0) AS hits,
       ceil(EXTRACT(EPOCH FROM date_trunc('minute', now()) + interval '1 minute' - now()))::int AS retry_after
FROM key LEFT JOIN hit ON true
"""


def active_api_key(key_hash: bytes, *, count_hit: bool) -> Row | None:
    return connection().execute(_ACTIVE_KEY_BY_HASH, {"hash": key_hash, "count_hit": count_hit}).fetchone()


def key_owner_names(user_id: UUID, app_id: UUID) -> Row | None:
    """The key's user (email, name) and its app's name, for a proxy that caches who a key is for."""
    return (
        connection()
        .execute(
            "SELECT u.email, u.name AS user_name, a.name AS app_name FROM users u, echo_apps a "
            "WHERE u.id = %s AND a.id = %s",
            [user_id, app_id],
        )
        .fetchone()
    )
