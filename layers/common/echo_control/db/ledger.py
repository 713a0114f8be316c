"""Balances, the append-only ledger and metered debits."""

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from echo_control.db.connection import Conn, Row, connection
from echo_control.db.earnings import EARN_MARKUP

# held counts only holds not yet past their time; expired: what grants past their expiresAt still hold until the
# sweep takes it out (they no longer count: the balance shown is without it).
_BALANCE = """
SELECT b.balance, b.total_paid, b.total_spent, b.debt,
       coalesce((SELECT sum(amount) FROM holds
                 WHERE user_id = b.user_id AND status = 'active' AND expires_at > now()), 0)::numeric(18, 6) AS held,
       coalesce((SELECT sum(remaining) FROM credit_lots
                 WHERE user_id = b.user_id AND remaining > 0 AND expires_at <= now()), 0)::numeric(18, 6) AS expired
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
# past their time, the balance row, the user's open lots (in the order calls take them), then the key's row when it
# has a limit. Locking the lapsed holds means a concurrent sweep or release is seen (its rows drop out) together
# with its change to the cached held. Lots are read after the balance's lock by depending on it (a scalar subquery
# runs first); a lot a concurrent credit committed while this statement waited for that lock is not in its snapshot,
# which `purse.seen_all` detects (balance = lots - debt, with the balance read under its lock): the statement then
# takes nothing and its caller runs it again (db/ledger.run_until_seen).
# purse.available = live lots - debt - active holds not yet lapsed (a grant past its expiresAt no longer counts);
# key_room = what the key may still spend or hold.
LOCK_FUNDS = (
    """
lapsed AS (
    SELECT id, api_key_id, amount FROM holds
    WHERE user_id = %(user_id)s AND status = 'active' AND expires_at <= now()
    FOR UPDATE
), funds AS (
    SELECT b.user_id, b.balance, b.debt, b.held - coalesce((SELECT sum(amount) FROM lapsed), 0) AS held
    FROM balances b WHERE b.user_id = %(user_id)s
    FOR UPDATE
), lots AS (
    SELECT l.id, l.cash, l.remaining, l.lot_order, l.expires_at, l.expires_at <= now() IS TRUE AS expired
    FROM credit_lots l
    WHERE l.user_id = (SELECT user_id FROM funds) AND l.remaining > 0
    ORDER BY l.lot_order, l.expires_at, l.id
    FOR UPDATE
), purse AS (
    SELECT f.balance, f.debt, f.held, l.live, l.live - f.debt - f.held AS available,
           l.total = f.balance + f.debt AS seen_all
    FROM funds f, (SELECT coalesce(sum(remaining) FILTER (WHERE NOT expired), 0) AS live,
                          coalesce(sum(remaining), 0) AS total FROM lots) l
), key_room AS (
    SELECT k.spend_limit - k.held + coalesce((SELECT sum(amount) FROM lapsed WHERE api_key_id = k.id), 0)
           - CASE WHEN k.spent_period_start = """
    + PERIOD_START
    + """ THEN k.spent_in_period ELSE 0 END AS room
    FROM api_keys k WHERE k.id = %(api_key_id)s AND k.spend_limit IS NOT NULL
    FOR UPDATE
)"""
)

# What the call costs: the priced cost, except that an owner's own calls to their own app carry no markup.
PRICE = """price AS (
    SELECT CASE WHEN o.own THEN %(cost)s::numeric - %(markup_amount)s::numeric ELSE %(cost)s::numeric END AS amount,
           CASE WHEN o.own THEN 0::numeric ELSE %(markup_amount)s::numeric END AS markup
    FROM (SELECT coalesce((SELECT user_id = %(user_id)s FROM echo_apps WHERE id = %(echo_app_id)s), false) AS own) o
)"""

# Records a call from the one-row CTE `charge` (amount, markup, released: the hold it settles, overrun, hold_id,
# key_id, from_lots: what the lots pay, shortfall: what neither what was available nor the key's limit covered),
# after LOCK_FUNDS: the lots it takes in their order (call_lots says what from which, with the markup earned on the
# cash part), the transaction, the balance (the part no lot paid becomes debt; the hold's release), the ledger
# entry with the balance after it, the day's rollup, the key's held and spend in its period, and the owner's
# earning (db/earnings.EARN_MARKUP).
CHARGE_CALL = (
    """
take AS (
    SELECT r.id, least(r.remaining, c.from_lots - (r.running - r.remaining)) AS amount,
           CASE WHEN r.cash AND c.amount > 0
                THEN trunc(c.markup * least(r.remaining, c.from_lots - (r.running - r.remaining)) / c.amount, 6)
                ELSE 0 END AS earned
    FROM (SELECT id, cash, remaining, sum(remaining) OVER (ORDER BY lot_order, expires_at, id) AS running
          FROM lots WHERE NOT expired) r, charge c
    WHERE r.running - r.remaining < c.from_lots
), taken AS (
    UPDATE credit_lots l SET remaining = l.remaining - take.amount FROM take WHERE l.id = take.id
), tx AS (
    INSERT INTO llm_transactions
        (model, input_tokens, output_tokens, total_tokens, cost, status, user_id, echo_app_id, api_key_id, metadata,
         markup_amount, provider, cache_read_tokens, cache_write_tokens, reasoning_tokens, hold_id, overrun,
         shortfall, debt_amount, earned_amount)
    SELECT %(model)s, %(input_tokens)s, %(output_tokens)s, %(total_tokens)s, charge.amount, %(status)s,
           %(user_id)s, %(echo_app_id)s, charge.key_id, %(metadata)s, charge.markup, %(provider)s,
           %(cache_read_tokens)s, %(cache_write_tokens)s, %(reasoning_tokens)s, charge.hold_id, charge.overrun,
           charge.shortfall, charge.amount - charge.from_lots, (SELECT coalesce(sum(earned), 0) FROM take)
    FROM charge
    RETURNING id, created_at, cost, markup_amount, overrun, shortfall, earned_amount
), spent AS (
    INSERT INTO call_lots (transaction_id, lot_id, amount, earned)
    SELECT tx.id, take.id, take.amount, take.earned FROM tx, take WHERE take.amount > 0
), debit AS (
    UPDATE balances b SET balance = b.balance - charge.amount, held = b.held - charge.released,
        debt = b.debt + charge.amount - charge.from_lots,
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


# What a key's limit leaves it to spend in its period (None: no limit), and when that period ends (UTC).
_KEY_ROOM = (
    """
SELECT k.limit_period, k.spend_limit - k.held + coalesce((SELECT sum(amount) FROM holds h WHERE h.api_key_id = k.id
        AND h.status = 'active' AND h.expires_at <= now()), 0)
       - CASE WHEN k.spent_period_start = """
    + PERIOD_START
    + """ THEN k.spent_in_period ELSE 0 END AS room,
       CASE k.limit_period
            WHEN 'day' THEN (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
            WHEN 'month' THEN (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
       END AS resets_at
FROM api_keys k WHERE k.id = %s AND k.spend_limit IS NOT NULL
"""
)


def key_room(key_id: UUID) -> Row | None:
    """The key's room left in its limit's period and when it resets; None for a key without a limit."""
    return connection().execute(_KEY_ROOM, [key_id]).fetchone()


def verdict(amount: str) -> str:
    """The CTE that says whether what is available covers `amount` (SQL: a parameter or a column of `price`)
    (funded) and the key's limit allows it (within_limit), after LOCK_FUNDS. Composes constant SQL only."""
    return f""" verdict AS (
    SELECT purse.available >= {amount} AS funded,
           coalesce((SELECT room FROM key_room) >= {amount}, true) AS within_limit, purse.available, purse.live,
           purse.seen_all, coalesce((SELECT room FROM key_room), {amount}) AS room
    FROM purse
)"""


# One statement meters a call that already happened: what is available (the live lots less debt and active holds)
# pays first, in the lots' order; the rest becomes debt (the balance goes below zero) and `shortfall` says what
# neither what was available nor the key's limit covered. With %(require_funds)s nothing is taken unless both cover
# it (the verdict says why). Atomic under autocommit, and one round trip on the metering hot path.
RECORD_DEBIT = (
    "WITH"
    + LOCK_FUNDS
    + ", "
    + PRICE
    + ","
    + verdict("(SELECT amount FROM price)")
    + """, charge AS (
    SELECT price.amount, price.markup, 0::numeric AS released, false AS overrun, NULL::uuid AS hold_id,
           %(api_key_id)s::uuid AS key_id, least(price.amount, verdict.live) AS from_lots,
           price.amount - least(price.amount, greatest(verdict.available, 0), greatest(verdict.room, 0)) AS shortfall
    FROM verdict, price
    WHERE verdict.seen_all AND (NOT %(require_funds)s OR (verdict.funded AND verdict.within_limit))
),"""
    + CHARGE_CALL
    + """
SELECT verdict.funded, verdict.within_limit, verdict.seen_all, verdict.available AS available_before,
       verdict.available - price.amount AS available,
       tx.id, tx.created_at, tx.cost, tx.markup_amount, tx.shortfall, tx.earned_amount, debit.balance
FROM verdict CROSS JOIN price LEFT JOIN (tx CROSS JOIN debit) ON true
"""
)

# How many times a statement that takes money runs again when a credit committed while it waited (rare: a payment
# landing in the same instant as a call of the same user).
SEEN_ALL_TRIES = 5


def run_until_seen(conn: Conn, sql: str, params: dict[str, Any]) -> Row | None:
    """Runs a statement built on LOCK_FUNDS until it saw all of the user's lots (each run is a new snapshot)."""
    for _ in range(SEEN_ALL_TRIES):
        row = conn.execute(sql, params).fetchone()
        if row is None or row["seen_all"] is not False:
            return row
    raise RuntimeError("the user's lots kept changing while a call was recorded")


def record_debit(conn: Conn, params: dict[str, Any]) -> Row | None:
    """The verdict (funded, within_limit) with, when both hold, the recorded transaction, the balance and what is
    available after it; None when the user has no balance at all."""
    if params.get("metadata") is not None:
        params = {**params, "metadata": Jsonb(params["metadata"])}
    return run_until_seen(conn, RECORD_DEBIT, {"require_funds": False, **params})


_ENSURE_BALANCE = "INSERT INTO balances (user_id) VALUES (%(user_id)s) ON CONFLICT DO NOTHING"

_LOCK_AVAILABLE = "WITH" + LOCK_FUNDS + " SELECT available, seen_all FROM purse"

# The statements below run under the balance row's lock (lock_funds, just before, in the same transaction), so the
# balance after each entry is exact and entries of one user are in id order. UPDATEs, not upserts: INSERT … ON
# CONFLICT checks the table's CHECKs against the proposed row.

# What the user owed before (prior) and the credit's statement entry with the balance after it (entry), once per
# idempotency key: the start of every credit statement below.
_CREDIT_ENTRY = """WITH prior AS (
    SELECT debt FROM balances WHERE user_id = %(user_id)s
), entry AS (
    INSERT INTO ledger_entries (user_id, kind, amount, idempotency_key, reference_id, reason, balance_after)
    SELECT %(user_id)s, %(kind)s, %(amount)s, %(idempotency_key)s, %(reference_id)s, %(reason)s,
           b.balance + %(amount)s
    FROM balances b WHERE b.user_id = %(user_id)s
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING amount
)"""

# A credit: its entry, its lot, and the debt paid first (a credit pays what the user owes before it can be spent).
_CREDIT = (
    _CREDIT_ENTRY
    + """, lot AS (
    INSERT INTO credit_lots (user_id, source, cash, amount, remaining, expires_at, payment_id)
    SELECT %(user_id)s, %(source)s, %(cash)s, entry.amount, entry.amount - least(prior.debt, entry.amount),
           %(expires_at)s, %(payment_id)s
    FROM entry, prior
    RETURNING id
)
UPDATE balances b SET balance = b.balance + entry.amount, debt = b.debt - least(prior.debt, entry.amount),
    total_paid = b.total_paid + %(paid)s, updated_at = now()
FROM entry, prior WHERE b.user_id = %(user_id)s
RETURNING b.balance, least(prior.debt, entry.amount) AS repaid, (SELECT id FROM lot) AS lot_id
"""
)

# A debit that takes the user's live lots in the order calls take them (an admin's decrement).
_DEBIT_LOTS = """
WITH entry AS (
    INSERT INTO ledger_entries (user_id, kind, amount, idempotency_key, reference_id, reason, balance_after)
    SELECT %(user_id)s, %(kind)s, %(amount)s, %(idempotency_key)s, %(reference_id)s, %(reason)s,
           b.balance + %(amount)s
    FROM balances b WHERE b.user_id = %(user_id)s
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING amount
), lots AS (
    SELECT id, remaining, sum(remaining) OVER (ORDER BY lot_order, expires_at, id) AS running
    FROM credit_lots
    WHERE user_id = %(user_id)s AND remaining > 0 AND (expires_at IS NULL OR expires_at > now())
), taken AS (
    UPDATE credit_lots l
    SET remaining = l.remaining - least(lots.remaining, -entry.amount - (lots.running - lots.remaining))
    FROM lots, entry WHERE l.id = lots.id AND lots.running - lots.remaining < -entry.amount
)
UPDATE balances b SET balance = b.balance + entry.amount, total_paid = b.total_paid + %(paid)s, updated_at = now()
FROM entry WHERE b.user_id = %(user_id)s
RETURNING b.balance, 0::numeric AS repaid, NULL::bigint AS lot_id
"""

# A debit of one lot (a refund or dispute of its payment, a grant's expiry); `debt_added` of it becomes debt (the
# part of a disputed payment that was already spent).
_DEBIT_LOT = """
WITH entry AS (
    INSERT INTO ledger_entries (user_id, kind, amount, idempotency_key, reference_id, reason, balance_after)
    SELECT %(user_id)s, %(kind)s, %(amount)s, %(idempotency_key)s, %(reference_id)s, %(reason)s,
           b.balance + %(amount)s
    FROM balances b WHERE b.user_id = %(user_id)s
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING amount
), taken AS (
    UPDATE credit_lots l SET remaining = l.remaining + entry.amount + %(debt_added)s
    FROM entry WHERE l.id = %(lot_id)s AND l.user_id = %(user_id)s
)
UPDATE balances b SET balance = b.balance + entry.amount, debt = b.debt + %(debt_added)s,
    total_paid = b.total_paid + %(paid)s, updated_at = now()
FROM entry WHERE b.user_id = %(user_id)s
RETURNING b.balance, 0::numeric AS repaid, %(lot_id)s::bigint AS lot_id
"""


def lock_funds(conn: Conn, user_id: UUID) -> Decimal:
    """Locks the user's balance (and lots) until the caller's transaction ends; what is available (live lots less
    debt and holds)."""
    conn.execute(_ENSURE_BALANCE, {"user_id": user_id})
    row = run_until_seen(conn, _LOCK_AVAILABLE, {"user_id": user_id, "api_key_id": None})
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
    source: str = "adjustment",
    cash: bool = False,
    expires_at: datetime | None = None,
    payment_id: UUID | None = None,
    lot_id: int | None = None,
    debt_added: Decimal = Decimal(0),
) -> Row | None:
    """Appends one entry and moves the cached balance and the lots with it, unless the key was applied before
    (None). A credit is a new lot of `source` (paying the debt first); a debit takes `lot_id` (of which `debt_added`
    becomes debt), or else the live lots in the order calls take them. Callers check what is available first."""
    lock_funds(conn, user_id)
    params = {
        "user_id": user_id,
        "kind": kind,
        "amount": amount,
        "idempotency_key": idempotency_key,
        "reference_id": reference_id,
        "reason": reason,
        "paid": paid,
        "source": source,
        "cash": cash or source == "payment",
        "expires_at": expires_at,
        "payment_id": payment_id,
        "lot_id": lot_id,
        "debt_added": debt_added,
    }
    sql = _CREDIT if amount > 0 else _DEBIT_LOT if lot_id is not None else _DEBIT_LOTS
    return conn.execute(sql, params).fetchone()


def lots(user_id: UUID) -> list[Row]:
    """The user's lots with something left, in the order calls take them (expired grants not swept yet too)."""
    return (
        connection()
        .execute(
            "SELECT id, source, cash, amount, remaining, expires_at, payment_id, created_at, "
            "expires_at <= now() IS TRUE AS expired FROM credit_lots WHERE user_id = %s AND remaining > 0 "
            "ORDER BY lot_order, expires_at, id",
            [user_id],
        )
        .fetchall()
    )


def expired_grant_lots(limit: int) -> list[Row]:
    """Grants past their expiresAt with something left (they no longer count), oldest expiry first."""
    return (
        connection()
        .execute(
            "SELECT id, user_id, remaining FROM credit_lots WHERE remaining > 0 AND expires_at <= now() "
            "ORDER BY expires_at, id LIMIT %s",
            [limit],
        )
        .fetchall()
    )


def payment_lot(conn: Conn, payment_id: UUID) -> Row | None:
    """The lot a payment credited, locked (the caller holds its user's balance lock)."""
    return conn.execute(
        "SELECT id, user_id, amount, remaining, spent_refunded FROM credit_lots WHERE payment_id = %s FOR UPDATE",
        [payment_id],
    ).fetchone()


# A refund or a dispute took back `share` of what a lot had paid for calls (spent and not refunded before): the same
# share of what each of those calls earned from it is reversed, exactly (all of it when the share is the whole),
# with an entry per call that clears when its earning does (or at once when that one has cleared): it comes out of
# clearing while the earning is clearing, else out of available, which may go below zero.
_REVERSE_EARNINGS = """
WITH lot AS (
    UPDATE credit_lots SET spent_refunded = spent_refunded + %(spent)s WHERE id = %(lot_id)s
    RETURNING id
), due AS (
    SELECT c.transaction_id, c.lot_id,
           CASE WHEN %(whole)s THEN c.earned - c.reversed
                ELSE trunc((c.earned - c.reversed) * %(spent)s / %(outstanding)s, 6) END AS amount
    FROM call_lots c WHERE c.lot_id = %(lot_id)s AND c.earned > c.reversed AND (SELECT count(*) FROM lot) = 1
), marked AS (
    UPDATE call_lots c SET reversed = c.reversed + due.amount FROM due
    WHERE c.lot_id = due.lot_id AND c.transaction_id = due.transaction_id AND due.amount > 0
)
INSERT INTO earning_entries
    (user_id, kind, amount, idempotency_key, reference_id, echo_app_id, clears_at, folded, cleared)
SELECT a.user_id, 'reversal', -due.amount, 'reversal:' || %(key)s || ':' || due.transaction_id,
       due.transaction_id, a.id,
       greatest(now(), coalesce((SELECT max(e.clears_at) FROM earning_entries e
                                 WHERE e.reference_id = due.transaction_id AND e.kind = 'markup'), now())),
       false, false
FROM due JOIN llm_transactions t ON t.id = due.transaction_id JOIN echo_apps a ON a.id = t.echo_app_id
WHERE due.amount > 0
"""


def reverse_earnings(conn: Conn, lot: Row, spent: Decimal, key: str) -> None:
    """Reverses the earnings of `spent` of what the lot paid for calls (refunded after being spent)."""
    outstanding = lot["amount"] - lot["remaining"] - lot["spent_refunded"]
    spent = min(spent, outstanding)
    if spent <= 0:
        return
    whole = spent == outstanding
    params = {"lot_id": lot["id"], "spent": spent, "outstanding": outstanding, "whole": whole, "key": key}
    conn.execute(_REVERSE_EARNINGS, params)


# Debt the user owes while credits are left (a dispute made it): those credits pay it, in the order calls take them.
_NET_DEBT = """
WITH owed AS (
    SELECT debt FROM balances WHERE user_id = %(user_id)s
), lots AS (
    SELECT id, remaining, sum(remaining) OVER (ORDER BY lot_order, expires_at, id) AS running
    FROM credit_lots
    WHERE user_id = %(user_id)s AND remaining > 0 AND (expires_at IS NULL OR expires_at > now())
), take AS (
    SELECT lots.id, least(lots.remaining, owed.debt - (lots.running - lots.remaining)) AS amount
    FROM lots, owed WHERE lots.running - lots.remaining < owed.debt
), taken AS (
    UPDATE credit_lots l SET remaining = l.remaining - take.amount FROM take WHERE l.id = take.id
)
UPDATE balances SET debt = debt - (SELECT coalesce(sum(amount), 0) FROM take) WHERE user_id = %(user_id)s
"""


def net_debt(conn: Conn, user_id: UUID) -> None:
    """Pays the user's debt from their live lots (under the balance's lock); the balance does not change."""
    conn.execute(_NET_DEBT, {"user_id": user_id})


# Credits back to one lot (a dispute won): the entry, what the user owes paid first, the rest back into the lot.
_CREDIT_LOT = (
    _CREDIT_ENTRY
    + """, back AS (
    SELECT l.id, least(l.amount - l.remaining, entry.amount - least(prior.debt, entry.amount)) AS into_lot,
           entry.amount - least(prior.debt, entry.amount) AS owed_back
    FROM credit_lots l, entry, prior WHERE l.id = %(lot_id)s
), restored AS (
    UPDATE credit_lots l SET remaining = l.remaining + back.into_lot FROM back WHERE l.id = back.id
), overflow AS (  -- what the user's other credits paid of the dispute's debt comes back as cash of its own
    INSERT INTO credit_lots (user_id, source, cash, amount, remaining)
    SELECT %(user_id)s, 'adjustment', true, owed_back - into_lot, owed_back - into_lot FROM back
    WHERE owed_back > into_lot
)
UPDATE balances b SET balance = b.balance + entry.amount, debt = b.debt - least(prior.debt, entry.amount),
    total_paid = b.total_paid + %(paid)s, updated_at = now()
FROM entry, prior WHERE b.user_id = %(user_id)s
RETURNING b.balance
"""
)


def credit_lot(
    conn: Conn, *, user_id: UUID, lot_id: int, kind: str, amount: Decimal, key: str, reference_id: UUID
) -> Row | None:
    """Credits `amount` back to a lot (paying debt first), under the balance's lock; None if applied before."""
    lock_funds(conn, user_id)
    params = {
        "user_id": user_id,
        "lot_id": lot_id,
        "kind": kind,
        "amount": amount,
        "idempotency_key": key,
        "reference_id": reference_id,
        "reason": None,
        "paid": amount,
    }
    return conn.execute(_CREDIT_LOT, params).fetchone()


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
