"""Webhooks to developers: endpoints, the outbox of events (emit_webhook_event, migration 0017), deliveries and
their attempts, and low-balance alert settings.

A delivery is taken for sending with a lease: its next_attempt_at moves LEASE ahead in the statement that picks it,
so two senders never send it at once, and one that dies mid-send leaves it to be sent again when the lease ends (at
least once, with the same webhook-id)."""

from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from echo_control.db.connection import Conn, Row, connection, transaction
from echo_control.db.ledger import PERIOD_START

LEASE = timedelta(seconds=60)


def emit_event(conn: Conn, user_id: UUID, event_type: str, data: dict[str, Any]) -> UUID:
    """Records the event and its deliveries in the caller's transaction; its id."""
    row = conn.execute("SELECT emit_webhook_event(%s, %s, %s) AS id", [user_id, event_type, Jsonb(data)]).fetchone()
    assert row is not None and row["id"] is not None
    return UUID(str(row["id"]))


# A call refused for the key's limit: the same event (and dedupe key) the trigger writes when a recorded spend
# reaches the limit, with the period as it is now.
_KEY_LIMIT_REACHED = (
    "SELECT emit_key_limit_reached(k.id, k.user_id, k.echo_app_id, k.spend_limit, k.limit_period, "
    "CASE WHEN k.spent_period_start = "
    + PERIOD_START
    + " THEN k.spent_in_period ELSE 0 END, "
    + PERIOD_START
    + ") AS id FROM api_keys k WHERE k.id = %s AND k.spend_limit IS NOT NULL"
)


def emit_key_limit_reached(conn: Conn, key_id: UUID) -> None:
    conn.execute(_KEY_LIMIT_REACHED, [key_id])


# --- endpoints ---------------------------------------------------------------------------------------

_ENDPOINT_COLUMNS = "e.id, e.user_id, e.url, e.events, e.created_at, e.failing_since, e.disabled_at, e.disabled_reason"


def insert_endpoint(endpoint_id: UUID, user_id: UUID, url: str, events: list[str], secret_sealed: bytes) -> Row:
    with transaction() as conn:
        row = conn.execute(
            "INSERT INTO webhook_endpoints AS e (id, user_id, url, events, secret_sealed) VALUES (%s, %s, %s, %s, %s) "
            f"RETURNING {_ENDPOINT_COLUMNS}",
            [endpoint_id, user_id, url, events, secret_sealed],
        ).fetchone()
    assert row is not None
    return row


def endpoints_for_user(user_id: UUID) -> list[Row]:
    return (
        connection()
        .execute(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE e.user_id = %s "
            "ORDER BY e.created_at DESC, e.id DESC",
            [user_id],
        )
        .fetchall()
    )


def endpoint_for_owner(endpoint_id: UUID, user_id: UUID) -> Row | None:
    return (
        connection()
        .execute(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE e.id = %s AND e.user_id = %s",
            [endpoint_id, user_id],
        )
        .fetchone()
    )


def delete_endpoint(endpoint_id: UUID, user_id: UUID) -> Row | None:
    """Removes the endpoint with its deliveries; None when it is not the user's."""
    with transaction() as conn:
        return conn.execute(
            f"DELETE FROM webhook_endpoints e WHERE e.id = %s AND e.user_id = %s RETURNING {_ENDPOINT_COLUMNS}",
            [endpoint_id, user_id],
        ).fetchone()


# --- deliveries --------------------------------------------------------------------------------------

_DELIVERY_COLUMNS = (
    "d.id, d.event_id, d.endpoint_id, d.status, d.attempts, d.last_status_code, d.next_attempt_at, d.created_at, "
    "ev.type AS event_type"
)


def deliveries_for_endpoint(endpoint_id: UUID, limit: int) -> list[Row]:
    return (
        connection()
        .execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id "
            "WHERE d.endpoint_id = %s ORDER BY d.created_at DESC, d.id DESC LIMIT %s",
            [endpoint_id, limit],
        )
        .fetchall()
    )


def attempts_for_deliveries(delivery_ids: list[UUID]) -> list[Row]:
    return (
        connection()
        .execute(
            "SELECT delivery_id, attempted_at, status_code, error, response_body, duration_ms FROM webhook_attempts "
            "WHERE delivery_id = ANY(%s) ORDER BY id",
            [delivery_ids],
        )
        .fetchall()
    )


# Sends again now (a manual resend): a failed or succeeded delivery becomes pending with its attempts kept.
_RESEND = f"""
WITH d AS (
    UPDATE webhook_deliveries d SET status = 'pending', next_attempt_at = now(), queued_at = NULL, updated_at = now()
    FROM webhook_endpoints e
    WHERE d.id = %(delivery_id)s AND d.endpoint_id = %(endpoint_id)s AND e.id = d.endpoint_id
      AND e.user_id = %(user_id)s
    RETURNING d.*
)
SELECT {_DELIVERY_COLUMNS}, pg_notify('webhook_deliveries', '') IS NULL AS woken
FROM d JOIN webhook_events ev ON ev.id = d.event_id
"""


def resend_delivery(delivery_id: UUID, endpoint_id: UUID, user_id: UUID) -> Row | None:
    with transaction() as conn:
        return conn.execute(
            _RESEND, {"delivery_id": delivery_id, "endpoint_id": endpoint_id, "user_id": user_id}
        ).fetchone()


_SENDABLE = """
SELECT d.id, d.event_id, d.attempts, e.id AS endpoint_id, e.url, e.secret_sealed, e.disabled_at, ev.type,
       ev.data, ev.created_at AS event_created_at
FROM leased d JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN webhook_events ev ON ev.id = d.event_id
"""

# Due deliveries, oldest first, leased. A delivery of a disabled endpoint is sent only when resent by hand.
_LEASE_DUE = (
    """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
    ORDER BY d.next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE webhook_deliveries d SET next_attempt_at = now() + %(lease)s, updated_at = now()
    FROM due WHERE d.id = due.id
    RETURNING d.*
)"""
    + _SENDABLE
)

# One delivery, when it is due (the cloud's queue names it); nothing when it is not pending, not due yet, or being
# sent by another sender right now.
_LEASE_ONE = (
    """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.id = %(delivery_id)s AND d.status = 'pending' AND d.next_attempt_at <= now()
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE webhook_deliveries d SET next_attempt_at = now() + %(lease)s, updated_at = now()
    FROM due WHERE d.id = due.id
    RETURNING d.*
)"""
    + _SENDABLE
)


def lease_due(limit: int) -> list[Row]:
    with transaction() as conn:
        return conn.execute(_LEASE_DUE, {"limit": limit, "lease": LEASE}).fetchall()


def lease_one(delivery_id: UUID) -> Row | None:
    with transaction() as conn:
        return conn.execute(_LEASE_ONE, {"delivery_id": delivery_id, "lease": LEASE}).fetchone()


def delivery_state(delivery_id: UUID) -> Row | None:
    return (
        connection()
        .execute(
            "SELECT status, next_attempt_at, GREATEST(EXTRACT(EPOCH FROM next_attempt_at - now()), 0) AS wait "
            "FROM webhook_deliveries WHERE id = %s",
            [delivery_id],
        )
        .fetchone()
    )


# One attempt's outcome: the attempt row, the delivery (succeeded; pending again after %(retry_in)s; or failed when
# retry_in is null), and the endpoint's run of failures (a success ends it and re-enables the endpoint; five days
# of it disable the endpoint and fail its other pending deliveries).
_RECORD_ATTEMPT = """
WITH attempt AS (
    INSERT INTO webhook_attempts (delivery_id, status_code, error, response_body, duration_ms)
    SELECT id, %(status_code)s, %(error)s, %(body)s, %(duration_ms)s FROM webhook_deliveries
    WHERE id = %(delivery_id)s
), delivery AS (
    UPDATE webhook_deliveries d SET attempts = d.attempts + 1, last_status_code = %(status_code)s,
        status = CASE WHEN %(ok)s THEN 'succeeded' WHEN %(retry_in)s::interval IS NULL THEN 'failed' ELSE 'pending' END,
        next_attempt_at = CASE WHEN %(ok)s OR %(retry_in)s::interval IS NULL THEN NULL
                               ELSE now() + %(retry_in)s::interval END,
        queued_at = NULL, updated_at = now()
    WHERE d.id = %(delivery_id)s
    RETURNING d.endpoint_id, d.status, d.attempts, d.next_attempt_at
), endpoint AS (
    UPDATE webhook_endpoints e SET
        failing_since = CASE WHEN %(ok)s THEN NULL ELSE coalesce(e.failing_since, now()) END,
        disabled_at = CASE WHEN %(ok)s THEN NULL
                           WHEN e.disabled_at IS NULL AND coalesce(e.failing_since, now()) <= now() - %(disable_after)s
                           THEN now() ELSE e.disabled_at END,
        disabled_reason = CASE WHEN %(ok)s THEN NULL
            WHEN e.disabled_at IS NULL AND coalesce(e.failing_since, now()) <= now() - %(disable_after)s
            THEN 'Every delivery failed since '
                 || to_char(coalesce(e.failing_since, now()) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
            ELSE e.disabled_reason END
    FROM delivery WHERE e.id = delivery.endpoint_id
    RETURNING e.id, e.disabled_at IS NOT NULL AND NOT %(ok)s AS disabled
), stopped AS (
    UPDATE webhook_deliveries d SET status = 'failed', next_attempt_at = NULL, updated_at = now()
    FROM endpoint WHERE endpoint.disabled AND d.endpoint_id = endpoint.id AND d.status = 'pending'
      AND d.id <> %(delivery_id)s
)
SELECT delivery.status, delivery.attempts, delivery.next_attempt_at, endpoint.disabled
FROM delivery JOIN endpoint ON true
"""


def record_attempt(
    delivery_id: UUID,
    *,
    ok: bool,
    status_code: int | None,
    error: str | None,
    body: str | None,
    duration_ms: int,
    retry_in: timedelta | None,
    disable_after: timedelta,
) -> Row | None:
    with transaction() as conn:
        return conn.execute(
            _RECORD_ATTEMPT,
            {
                "delivery_id": delivery_id,
                "ok": ok,
                "status_code": status_code,
                "error": error,
                "body": body,
                "duration_ms": duration_ms,
                "retry_in": retry_in,
                "disable_after": disable_after,
            },
        ).fetchone()


# The cloud's relay: pending deliveries never put on the queue, or overdue by `stale` (their message was lost or
# went to the dead-letter queue), marked queued; the caller sends each to the queue with a delay until it is due.
_TO_QUEUE = """
WITH picked AS (
    SELECT id FROM webhook_deliveries
    WHERE status = 'pending' AND (queued_at IS NULL OR next_attempt_at < now() - %(stale)s)
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d SET queued_at = now()
FROM picked WHERE d.id = picked.id
RETURNING d.id, GREATEST(EXTRACT(EPOCH FROM d.next_attempt_at - now()), 0) AS wait
"""


def deliveries_to_queue(limit: int, stale: timedelta) -> list[Row]:
    with transaction() as conn:
        return conn.execute(_TO_QUEUE, {"limit": limit, "stale": stale}).fetchall()


def unqueue(delivery_ids: list[UUID]) -> None:
    """Deliveries the queue did not take: the next relay run picks them again."""
    with transaction() as conn:
        conn.execute("UPDATE webhook_deliveries SET queued_at = NULL WHERE id = ANY(%s)", [delivery_ids])


_PURGE_WEBHOOK_EVENTS = """
DELETE FROM webhook_events ev
USING (
    SELECT id FROM webhook_events e WHERE created_at < now() - %(age)s
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
    ORDER BY created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
) old
WHERE ev.id = old.id
"""


def purge_webhook_events(older_than: timedelta, limit: int) -> int:
    """Deletes up to `limit` events (with their deliveries and attempts) older than `older_than`, none pending."""
    return connection().execute(_PURGE_WEBHOOK_EVENTS, {"age": older_than, "limit": limit}).rowcount


# --- alerts ------------------------------------------------------------------------------------------


def set_low_balance_threshold(conn: Conn, user_id: UUID, threshold: Decimal | None) -> None:
    """Sets (armed) or removes the user's threshold; the caller holds the balance row's lock (the trigger's order)."""
    if threshold is None:
        conn.execute("DELETE FROM balance_alerts WHERE user_id = %s", [user_id])
        return
    conn.execute(
        "INSERT INTO balance_alerts AS a (user_id, low_balance_threshold) VALUES (%s, %s) "
        "ON CONFLICT (user_id) DO UPDATE SET low_balance_threshold = excluded.low_balance_threshold, "
        "low_balance_armed = true, updated_at = now()",
        [user_id, threshold],
    )


def low_balance_threshold(user_id: UUID) -> Row | None:
    return (
        connection()
        .execute("SELECT low_balance_threshold, low_balance_armed FROM balance_alerts WHERE user_id = %s", [user_id])
        .fetchone()
    )
