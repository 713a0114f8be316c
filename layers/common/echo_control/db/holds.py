"""Holds: money reserved for a call in flight, settled with the call's real cost, released, or lapsed."""

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from echo_control.db.connection import Conn, Row, connection
from echo_control.db.ledger import CHARGE_CALL, LOCK_FUNDS, PRICE, run_until_seen, verdict

_HOLD_COLUMNS = "id, user_id, echo_app_id, api_key_id, amount, status, expires_at, created_at, closed_at"

# Reserves the amount when what is available covers it and the key's limit allows it: a hold is how a client asks
# before serving, so it always refuses when short.
_CREATE_HOLD = (
    "WITH"
    + LOCK_FUNDS
    + ","
    + verdict("%(amount)s")
    + """, hold AS (
    INSERT INTO holds (user_id, echo_app_id, api_key_id, amount, expires_at)
    SELECT %(user_id)s, %(echo_app_id)s, %(api_key_id)s, %(amount)s, now() + make_interval(secs => %(ttl_seconds)s)
    FROM verdict WHERE funded AND within_limit AND seen_all
    RETURNING id, user_id, echo_app_id, api_key_id, amount, status, expires_at, created_at, closed_at
), reserve AS (
    UPDATE balances b SET held = b.held + hold.amount, updated_at = now() FROM hold WHERE b.user_id = %(user_id)s
), key_reserve AS (
    UPDATE api_keys k SET held = k.held + hold.amount FROM hold WHERE k.id = %(api_key_id)s
)
SELECT verdict.funded, verdict.within_limit, verdict.seen_all, verdict.available AS available_before,
       verdict.available - %(amount)s AS available, hold.*
FROM verdict LEFT JOIN hold ON true
"""
)

# Settles an active hold that is not past its time with the call's real cost, recorded as a call that happened:
# the hold is released and the whole cost taken; what passes the hold is taken from what is available and the rest
# becomes debt (`shortfall`, "overrun": true).
_SETTLE_HOLD = (
    """WITH target AS (
    SELECT id, api_key_id, amount FROM holds
    WHERE id = %(hold_id)s AND user_id = %(user_id)s AND echo_app_id = %(echo_app_id)s
      AND status = 'active' AND expires_at > now()
    FOR UPDATE
),"""
    + LOCK_FUNDS
    + ", "
    + PRICE
    + """, charge AS (
    SELECT price.amount, price.markup, t.amount AS released, c.shortfall > 0 AS overrun, t.id AS hold_id,
           t.api_key_id AS key_id, least(price.amount, p.live) AS from_lots, c.shortfall,
           p.available + t.amount AS available
    FROM target t, purse p, price, LATERAL (
        SELECT price.amount - least(
            price.amount, greatest(p.available + t.amount, 0),
            greatest(coalesce((SELECT room FROM key_room) + t.amount, price.amount), 0)) AS shortfall
    ) c
    WHERE p.seen_all
),"""
    + CHARGE_CALL
    + """, closed AS (
    UPDATE holds h SET status = 'settled', closed_at = now(), transaction_id = tx.id
    FROM tx, target WHERE h.id = target.id
)
SELECT purse.seen_all, tx.id, tx.created_at, tx.cost, tx.markup_amount, tx.overrun, tx.shortfall, tx.earned_amount,
       debit.balance, charge.available - tx.cost AS available
FROM purse LEFT JOIN (tx CROSS JOIN debit CROSS JOIN charge) ON true
WHERE (SELECT count(*) FROM target) >= 0  -- a one-time filter: the hold is locked first, before the balance
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

# After a refund or a dispute took credits back: the user's active holds lose, newest first, what their lots no
# longer back (held beyond the live lots less debt), so that a later settle overruns instead of spending credits
# that are gone. The caller locked the holds (lock_active_holds), then the balance.
_SHRINK_HOLDS = """
WITH purse AS (
    SELECT b.held, greatest(coalesce((SELECT sum(remaining) FROM credit_lots
                                      WHERE user_id = b.user_id AND remaining > 0
                                        AND (expires_at IS NULL OR expires_at > now())), 0) - b.debt, 0) AS backed
    FROM balances b WHERE b.user_id = %(user_id)s
), active AS (
    SELECT id, api_key_id, amount, sum(amount) OVER (ORDER BY created_at DESC, id DESC) AS running
    FROM holds WHERE user_id = %(user_id)s AND status = 'active' AND amount > 0
), cut AS (
    SELECT a.id, a.api_key_id, least(a.amount, (p.held - p.backed) - (a.running - a.amount)) AS amount
    FROM active a, purse p WHERE p.held > p.backed AND a.running - a.amount < p.held - p.backed
), shrunk AS (
    UPDATE holds h SET amount = h.amount - cut.amount FROM cut WHERE h.id = cut.id
), by_key AS (
    SELECT api_key_id, sum(amount) AS amount FROM cut GROUP BY api_key_id
), key_unreserve AS (
    UPDATE api_keys k SET held = k.held - by_key.amount FROM by_key WHERE k.id = by_key.api_key_id
)
UPDATE balances b SET held = b.held - (SELECT coalesce(sum(amount), 0) FROM cut), updated_at = now()
WHERE b.user_id = %(user_id)s
"""

# A sweep runs alone (two sweeps could lock the same balance rows in different orders).
_SWEEP_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('echo_control.sweep_lapsed_holds')) AS locked"


def create_hold(conn: Conn, params: dict[str, Any]) -> Row | None:
    """The verdict (funded, within_limit) with the new hold when both allow it; None without any balance."""
    return run_until_seen(conn, _CREATE_HOLD, params)


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
    row = run_until_seen(conn, _SETTLE_HOLD, params)
    return row if row is not None and row["id"] is not None else None


def release_hold(conn: Conn, hold_id: UUID, user_id: UUID, echo_app_id: UUID) -> Row | None:
    """The hold's new status (released, or expired when it had passed its time); None when it was not active."""
    return conn.execute(_RELEASE_HOLD, {"hold_id": hold_id, "user_id": user_id, "echo_app_id": echo_app_id}).fetchone()


def lock_active_holds(conn: Conn, user_id: UUID) -> None:
    """Locks the user's active holds in id order (before their balance, as a settle or release does)."""
    conn.execute("SELECT id FROM holds WHERE user_id = %s AND status = 'active' ORDER BY id FOR UPDATE", [user_id])


def shrink_holds(conn: Conn, user_id: UUID) -> None:
    conn.execute(_SHRINK_HOLDS, {"user_id": user_id})


def sweep_lapsed_holds(conn: Conn, limit: int) -> int | None:
    """How many lapsed holds this run expired; None when another sweep is running."""
    locked = conn.execute(_SWEEP_LOCK).fetchone()
    if not locked or not locked["locked"]:
        return None
    return len(conn.execute(_SWEEP_LAPSED_HOLDS, {"limit": limit}).fetchall())
