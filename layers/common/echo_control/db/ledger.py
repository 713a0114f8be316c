"""Balances, the append-only ledger and metered debits."""

from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from echo_control.db.connection import Conn, Row, connection
from echo_control.db.earnings import EARN_MARKUP

# held counts only holds not yet past their time.
_BALANCE = """
SELECT b.balance, b.total_paid, b.total_spent,
       coalesce((SELECT sum(amount) FROM holds
                 WHERE user_id = b.user_id AND status = 'active' AND expires_at > now()), 0)::numeric(18, 6) AS held
FROM balances b WHERE b.user_id = %s
"""


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


# The start of a key's limit period (UTC) for the key row aliased k.
PERIOD_START = (
    "CASE k.limit_period WHEN 'day' THEN (now() AT TIME ZONE 'UTC')::date "
    "WHEN 'month' THEN date_trunc('month', now() AT TIME ZONE 'UTC')::date ELSE DATE '1970-01-01' END"
)

# What a debit or a hold may take, read under lock, and locked in one order everywhere: the user's holds already
# past their time, the balance row, then the key's row when it has a limit. Locking the lapsed holds means a
# concurrent sweep or release is seen (its rows drop out) together with its change to the cached held.
# funds.available = balance - active holds not yet lapsed; key_room = what the key may still spend or hold.
LOCK_FUNDS = (
    """
lapsed AS (
    SELECT id, api_key_id, amount FROM holds
    WHERE user_id = %(user_id)s AND status = 'active' AND expires_at <= now()
    FOR UPDATE
), funds AS (
    SELECT b.balance - b.held + coalesce((SELECT sum(amount) FROM lapsed), 0) AS available
    FROM balances b WHERE b.user_id = %(user_id)s
    FOR UPDATE
), key_room AS (
    SELECT k.spend_limit - k.held + coalesce((SELECT sum(amount) FROM lapsed WHERE api_key_id = k.id), 0)
           - CASE WHEN k.spent_period_start = """
    + PERIOD_START
    + """ THEN k.spent_in_period ELSE 0 END AS room
    FROM api_keys k WHERE k.id = %(api_key_id)s AND k.spend_limit IS NOT NULL
    FOR UPDATE
)"""
)

# Records a call from the one-row CTE `charge` (amount, markup, released: the hold it settles, overrun, hold_id,
# key_id): the transaction, the balance (and the hold's release), the ledger entry with the balance after it, the
# day's rollup, the key's held and spend in its period, and the markup as the app owner's earning
# (db/earnings.EARN_MARKUP; its account is locked after the payer's balance, as everywhere).
CHARGE_CALL = (
    """
tx AS (
    INSERT INTO llm_transactions
        (model, input_tokens, output_tokens, total_tokens, cost, status, user_id, echo_app_id, api_key_id, metadata,
         markup_amount, provider, cache_read_tokens, cache_write_tokens, reasoning_tokens, hold_id, overrun)
    SELECT %(model)s, %(input_tokens)s, %(output_tokens)s, %(total_tokens)s, charge.amount, %(status)s,
           %(user_id)s, %(echo_app_id)s, charge.key_id, %(metadata)s, charge.markup, %(provider)s,
           %(cache_read_tokens)s, %(cache_write_tokens)s, %(reasoning_tokens)s, charge.hold_id, charge.overrun
    FROM charge
    RETURNING id, created_at, cost, markup_amount, overrun
), debit AS (
    UPDATE balances b SET balance = b.balance - charge.amount, held = b.held - charge.released,
        total_spent = b.total_spent + charge.amount, updated_at = now()
    FROM charge WHERE b.user_id = %(user_id)s
    RETURNING b.balance
), entry AS (
    INSERT INTO ledger_entries (user_id, kind, amount, idempotency_key, reference_id, balance_after)
    SELECT %(user_id)s, 'llm_debit', -tx.cost, 'llm:' || tx.id, tx.id, debit.balance FROM tx, debit WHERE tx.cost > 0
), rollup AS (
    INSERT INTO usage_daily AS u
        (echo_app_id, day, model, status, user_id, calls, input_tokens, output_tokens, total_tokens, cost,
         markup_amount)
    SELECT %(echo_app_id)s, (tx.created_at AT TIME ZONE 'UTC')::date, %(model)s, %(status)s, %(user_id)s,
           1, %(input_tokens)s, %(output_tokens)s, %(total_tokens)s, tx.cost, tx.markup_amount
    FROM tx
    ON CONFLICT (echo_app_id, day, model, status, user_id) DO UPDATE SET
        calls = u.calls + 1, input_tokens = u.input_tokens + excluded.input_tokens,
        output_tokens = u.output_tokens + excluded.output_tokens,
        total_tokens = u.total_tokens + excluded.total_tokens, cost = u.cost + excluded.cost,
        markup_amount = u.markup_amount + excluded.markup_amount
), key_spend AS (
    UPDATE api_keys k SET held = k.held - charge.released,
        spent_in_period = CASE WHEN k.limit_period IS NULL THEN k.spent_in_period
            WHEN k.spent_period_start = """
    + PERIOD_START
    + """ THEN k.spent_in_period + charge.amount ELSE charge.amount END,
        spent_period_start = CASE WHEN k.limit_period IS NULL THEN k.spent_period_start ELSE """
    + PERIOD_START
    + """ END
    FROM charge WHERE k.id = charge.key_id AND (k.limit_period IS NOT NULL OR charge.released > 0)
), """
    + EARN_MARKUP
)


def verdict(amount: str) -> str:
    """The CTE that says whether what is available covers the amount in parameter `amount` (funded) and the key's
    limit allows it (within_limit), after LOCK_FUNDS. Composes constant SQL: `amount` names a parameter."""
    return f""" verdict AS (
    SELECT funds.available >= %({amount})s AS funded,
           coalesce((SELECT room FROM key_room) >= %({amount})s, true) AS within_limit, funds.available
    FROM funds
)"""


# One statement meters a call: it takes the cost only when what is available (the balance less active holds)
# covers it and the key's limit allows it, and writes everything the call changes; atomic under autocommit, and
# one round trip on the metering hot path. The verdict row says why nothing was taken.
RECORD_DEBIT = (
    "WITH"
    + LOCK_FUNDS
    + ","
    + verdict("cost")
    + """, charge AS (
    SELECT %(cost)s::numeric AS amount, %(markup_amount)s::numeric AS markup, 0::numeric AS released,
           false AS overrun, NULL::uuid AS hold_id, %(api_key_id)s::uuid AS key_id
    FROM verdict WHERE funded AND within_limit
),"""
    + CHARGE_CALL
    + """
SELECT verdict.funded, verdict.within_limit, verdict.available AS available_before,
       verdict.available - %(cost)s AS available,
       tx.id, tx.created_at, debit.balance
FROM verdict LEFT JOIN (tx CROSS JOIN debit) ON true
"""
)


def record_debit(conn: Conn, params: dict[str, Any]) -> Row | None:
    """The verdict (funded, within_limit) with, when both hold, the recorded transaction, the balance and what is
    available after it; None when the user has no balance at all."""
    if params.get("metadata") is not None:
        params = {**params, "metadata": Jsonb(params["metadata"])}
    return conn.execute(RECORD_DEBIT, params).fetchone()


_ENSURE_BALANCE = "INSERT INTO balances (user_id) VALUES (%(user_id)s) ON CONFLICT DO NOTHING"

_LOCK_AVAILABLE = "WITH" + LOCK_FUNDS + " SELECT available FROM funds"

# Under the balance row's lock (taken just before), so balance_after is exact and entries of one user are in id
# order. An UPDATE, not an upsert: INSERT … ON CONFLICT checks the balance CHECK against the proposed row.
_APPLY_ENTRY = """
WITH entry AS (
    INSERT INTO ledger_entries (user_id, kind, amount, idempotency_key, reference_id, reason, balance_after)
    SELECT %(user_id)s, %(kind)s, %(amount)s, %(idempotency_key)s, %(reference_id)s, %(reason)s,
           b.balance + %(amount)s
    FROM balances b WHERE b.user_id = %(user_id)s
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING amount
)
UPDATE balances b SET balance = b.balance + entry.amount, total_paid = b.total_paid + %(paid)s, updated_at = now()
FROM entry WHERE b.user_id = %(user_id)s
RETURNING b.balance
"""


def lock_funds(conn: Conn, user_id: UUID) -> Decimal:
    """Locks the user's balance until the caller's transaction ends; what is available (balance less holds)."""
    conn.execute(_ENSURE_BALANCE, {"user_id": user_id})
    row = conn.execute(_LOCK_AVAILABLE, {"user_id": user_id, "api_key_id": None}).fetchone()
    return row["available"] if row else Decimal(0)


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

    A negative amount that would take the balance below zero raises CheckViolation (the CHECK guard); callers
    that must keep held money check lock_funds first."""
    lock_funds(conn, user_id)
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


def ledger_page(user_id: UUID, before_id: int | None, limit: int) -> list[Row]:
    """The user's ledger entries, newest first, from before the cursor's entry."""
    return (
        connection()
        .execute(
            "SELECT id, kind, amount, balance_after, reason, reference_id, created_at FROM ledger_entries "
            "WHERE user_id = %s AND (%s::bigint IS NULL OR id < %s) ORDER BY id DESC LIMIT %s",
            [user_id, before_id, before_id, limit],
        )
        .fetchall()
    )
