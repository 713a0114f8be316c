"""Balances, the append-only ledger, metered debits and idempotency keys."""

from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from echo_control.db.connection import Conn, Row, connection
from echo_control.db.earnings import EARN_MARKUP

_BALANCE = "SELECT balance, total_paid, total_spent FROM balances WHERE user_id = %s"


def balance(user_id: UUID) -> Row | None:
    return connection().execute(_BALANCE, [user_id]).fetchone()


def adjustments_for_user(user_id: UUID, limit: int) -> list[Row]:
    """Credits and debits an admin (or the demo's welcome credit) applied, newest first."""
    return (
        connection()
        .execute(
            "SELECT amount, reason, created_at FROM ledger_entries WHERE user_id = %s AND kind = 'admin_adjustment' "
            "ORDER BY id DESC LIMIT %s",
            [user_id, limit],
        )
        .fetchall()
    )


def adjustments_total(user_id: UUID) -> Decimal:
    row = (
        connection()
        .execute(
            "SELECT coalesce(sum(amount), 0) AS total FROM ledger_entries "
            "WHERE user_id = %s AND kind = 'admin_adjustment'",
            [user_id],
        )
        .fetchone()
    )
    return Decimal(row["total"]) if row else Decimal(0)


# One statement records the call, debits it only if the balance covers it, writes the ledger entry and
# adds to the day's rollup, and credits the markup to the app owner's earnings (db/earnings.EARN_MARKUP): atomic
# under autocommit, and one round trip on the metering hot path.
RECORD_DEBIT = f"""
WITH debit AS (
    UPDATE balances SET balance = balance - %(cost)s, total_spent = total_spent + %(cost)s, updated_at = now()
    WHERE user_id = %(user_id)s AND balance >= %(cost)s
    RETURNING balance
), tx AS (
    INSERT INTO llm_transactions
        (model, input_tokens, output_tokens, total_tokens, cost, status, user_id, echo_app_id, api_key_id, metadata,
         markup_amount, provider, cache_read_tokens, cache_write_tokens, reasoning_tokens)
    SELECT %(model)s, %(input_tokens)s, %(output_tokens)s, %(total_tokens)s, %(cost)s, %(status)s,
           %(user_id)s, %(echo_app_id)s, %(api_key_id)s, %(metadata)s,
           %(markup_amount)s, %(provider)s, %(cache_read_tokens)s, %(cache_write_tokens)s, %(reasoning_tokens)s
    FROM debit
    RETURNING id, created_at
), entry AS (
    INSERT INTO ledger_entries (user_id, kind, amount, idempotency_key, reference_id)
    SELECT %(user_id)s, 'llm_debit', -%(cost)s::numeric, 'llm:' || tx.id, tx.id FROM tx WHERE %(cost)s > 0
), rollup AS (
    INSERT INTO usage_daily AS u
        (echo_app_id, day, model, status, user_id, calls, input_tokens, output_tokens, total_tokens, cost,
         markup_amount)
    SELECT %(echo_app_id)s, (tx.created_at AT TIME ZONE 'UTC')::date, %(model)s, %(status)s, %(user_id)s,
           1, %(input_tokens)s, %(output_tokens)s, %(total_tokens)s, %(cost)s, %(markup_amount)s
    FROM tx
    ON CONFLICT (echo_app_id, day, model, status, user_id) DO UPDATE SET
        calls = u.calls + 1, input_tokens = u.input_tokens + excluded.input_tokens,
        output_tokens = u.output_tokens + excluded.output_tokens,
        total_tokens = u.total_tokens + excluded.total_tokens, cost = u.cost + excluded.cost,
        markup_amount = u.markup_amount + excluded.markup_amount
), {EARN_MARKUP}
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
