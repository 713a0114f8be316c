"""Holds: money reserved for a call in flight, settled with the call's real cost, released, or lapsed."""

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from echo_control.db.connection import Conn, Row, connection
from echo_control.db.ledger import CHARGE_CALL, LOCK_FUNDS, verdict

_HOLD_COLUMNS = "id, user_id, echo_app_id, api_key_id, amount, status, expires_at, created_at, closed_at"

# Reserves the amount when what is available covers it and the key's limit allows it.
_CREATE_HOLD = (
    "WITH"
    + LOCK_FUNDS
    + ","
    + verdict("amount")
    + """, hold AS (
    INSERT INTO holds (user_id, echo_app_id, api_key_id, amount, expires_at)
    SELECT %(user_id)s, %(echo_app_id)s, %(api_key_id)s, %(amount)s, now() + make_interval(secs => %(ttl_seconds)s)
    FROM verdict WHERE funded AND within_limit
    RETURNING id, user_id, echo_app_id, api_key_id, amount, status, expires_at, created_at, closed_at
), reserve AS (
    UPDATE balances b SET held = b.held + hold.amount, updated_at = now() FROM hold WHERE b.user_id = %(user_id)s
), key_reserve AS (
    UPDATE api_keys k SET held = k.held + hold.amount FROM hold WHERE k.id = %(api_key_id)s
)
SELECT verdict.funded, verdict.within_limit, verdict.available AS available_before,
       verdict.available - %(amount)s AS available, hold.*
FROM verdict LEFT JOIN hold ON true
"""
)

# Settles an active hold that is not past its time with the call's real cost: the hold is released and the cost
# taken, up to what is then available and the key's limit allows (more than that is an overrun: the call is
# recorded with what could be taken, the provider's cost first, and "overrun": true).
_SETTLE_HOLD = (
    """WITH target AS (
    SELECT id, api_key_id, amount FROM holds
    WHERE id = %(hold_id)s AND user_id = %(user_id)s AND echo_app_id = %(echo_app_id)s
      AND status = 'active' AND expires_at > now()
    FOR UPDATE
),"""
    + LOCK_FUNDS
    + """, charge AS (
    SELECT c.amount, greatest(c.amount - %(provider_cost)s, 0) AS markup, t.amount AS released,
           c.amount < %(cost)s AS overrun, t.id AS hold_id, t.api_key_id AS key_id, c.available
    FROM target t, funds, LATERAL (
        SELECT greatest(least(%(cost)s::numeric, funds.available + t.amount,
                              coalesce((SELECT room FROM key_room) + t.amount, %(cost)s)), 0) AS amount,
               funds.available + t.amount AS available
    ) c
),"""
    + CHARGE_CALL
    + """, closed AS (
    UPDATE holds h SET status = 'settled', closed_at = now(), transaction_id = tx.id
    FROM tx, target WHERE h.id = target.id
)
SELECT tx.id, tx.created_at, tx.cost, tx.markup_amount, tx.overrun, debit.balance,
       charge.available - tx.cost AS available
FROM tx, debit, charge
"""
)

# Releases an active hold; one already past its time is marked expired instead. Rows are locked in the order
# every writer uses (the hold, the balance, the key): the key's change waits on the balance's lock by depending on
# it, as the order in which a statement runs its CTEs is not the order they are written in.
_RELEASE_HOLD = """
WITH target AS (
    SELECT id, api_key_id, amount, expires_at <= now() AS lapsed FROM holds
    WHERE id = %(hold_id)s AND user_id = %(user_id)s AND echo_app_id = %(echo_app_id)s AND status = 'active'
    FOR UPDATE
), unreserve AS (
    UPDATE balances b SET held = b.held - target.amount, updated_at = now() FROM target
    WHERE b.user_id = %(user_id)s
    RETURNING b.user_id
), key_unreserve AS (
    UPDATE api_keys k SET held = k.held - target.amount FROM target, unreserve WHERE k.id = target.api_key_id
)
UPDATE holds h SET status = CASE WHEN target.lapsed THEN 'expired' ELSE 'released' END, closed_at = now()
FROM target WHERE h.id = target.id
RETURNING h.status
"""

# Marks holds past their time expired and takes them out of the cached sums, a bounded batch per run. The lapsed
# holds are locked first, then the balance and key rows in id order, as every other writer does; holds a
# concurrent settle or release has locked are left to it.
_SWEEP_LAPSED_HOLDS = """
WITH lapsed AS (
    SELECT id, user_id, api_key_id, amount FROM holds
    WHERE status = 'active' AND expires_at <= now()
    ORDER BY user_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), by_user AS (
    SELECT user_id, sum(amount) AS amount FROM lapsed GROUP BY user_id
), by_key AS (
    SELECT api_key_id, sum(amount) AS amount FROM lapsed GROUP BY api_key_id
), locked AS (
    SELECT b.user_id FROM balances b WHERE b.user_id IN (SELECT user_id FROM by_user) ORDER BY b.user_id
    FOR UPDATE
), unreserve AS (
    UPDATE balances b SET held = b.held - by_user.amount FROM by_user, locked
    WHERE b.user_id = by_user.user_id AND locked.user_id = by_user.user_id
    RETURNING b.user_id
), key_unreserve AS (
    UPDATE api_keys k SET held = k.held - by_key.amount FROM by_key
    WHERE k.id = by_key.api_key_id AND (SELECT count(*) FROM unreserve) >= 0
)
UPDATE holds h SET status = 'expired', closed_at = now() FROM lapsed WHERE h.id = lapsed.id
RETURNING h.id
"""

# A sweep runs alone (two sweeps could lock the same balance rows in different orders).
_SWEEP_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('echo_control.sweep_lapsed_holds')) AS locked"


def create_hold(conn: Conn, params: dict[str, Any]) -> Row | None:
    """The verdict (funded, within_limit) with the new hold when both allow it; None without any balance."""
    return conn.execute(_CREATE_HOLD, params).fetchone()


def hold(hold_id: UUID, user_id: UUID, echo_app_id: UUID, conn: Conn | None = None) -> Row | None:
    """The hold with whether it has passed its time (`lapsed`), when it is the user's for that app."""
    return (
        (conn or connection())
        .execute(
            f"SELECT {_HOLD_COLUMNS}, status = 'active' AND expires_at <= now() AS lapsed "
            "FROM holds WHERE id = %s AND user_id = %s AND echo_app_id = %s",
            [hold_id, user_id, echo_app_id],
        )
        .fetchone()
    )


def settle_hold(conn: Conn, params: dict[str, Any]) -> Row | None:
    """The recorded transaction, or None when the hold is no longer active (or has passed its time)."""
    if params.get("metadata") is not None:
        params = {**params, "metadata": Jsonb(params["metadata"])}
    return conn.execute(_SETTLE_HOLD, params).fetchone()


def release_hold(conn: Conn, hold_id: UUID, user_id: UUID, echo_app_id: UUID) -> Row | None:
    """The hold's new status (released, or expired when it had passed its time); None when it was not active."""
    return conn.execute(_RELEASE_HOLD, {"hold_id": hold_id, "user_id": user_id, "echo_app_id": echo_app_id}).fetchone()


def sweep_lapsed_holds(conn: Conn, limit: int) -> int | None:
    """How many lapsed holds this run expired; None when another sweep is running."""
    locked = conn.execute(_SWEEP_LOCK).fetchone()
    if not locked or not locked["locked"]:
        return None
    return len(conn.execute(_SWEEP_LAPSED_HOLDS, {"limit": limit}).fetchall())
