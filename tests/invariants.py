"""Checks of the data's invariants that only tests and benchmarks run: they scan whole tables."""

from typing import Any

from echo_control import db

UNRECONCILED_BALANCES = """
SELECT b.user_id, b.balance, COALESCE(e.total, 0) AS ledger_total
FROM balances b
LEFT JOIN (SELECT user_id, SUM(amount) AS total FROM ledger_entries GROUP BY user_id) e USING (user_id)
WHERE b.balance <> COALESCE(e.total, 0)
"""

ROLLUP_MISMATCHES = """
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


def unreconciled_balances() -> list[dict[str, Any]]:
    """Users whose cached balance differs from the sum of their ledger entries (should be none)."""
    return db.connection().execute(UNRECONCILED_BALANCES).fetchall()


def rollup_mismatches() -> list[dict[str, Any]]:
    """Rollup rows that differ from the raw transactions they summarise (should be none)."""
    return db.connection().execute(ROLLUP_MISMATCHES).fetchall()


# The cached held of balances and keys is the sum of their holds in status 'active' (lapsed or not).
HELD_MISMATCHES = """
SELECT 'balance' AS kind, b.user_id AS id, b.held, coalesce(h.total, 0) AS holds
FROM balances b LEFT JOIN (SELECT user_id, sum(amount) AS total FROM holds WHERE status = 'active' GROUP BY user_id) h
    USING (user_id)
WHERE b.held <> coalesce(h.total, 0)
UNION ALL
SELECT 'key', k.id, k.held, coalesce(h.total, 0)
FROM api_keys k LEFT JOIN (SELECT api_key_id, sum(amount) AS total FROM holds WHERE status = 'active'
                           GROUP BY api_key_id) h ON h.api_key_id = k.id
WHERE k.held <> coalesce(h.total, 0)
"""

# Each entry's balance_after is the running sum of its user's entries in id order.
STATEMENT_MISMATCHES = """
SELECT id, user_id, balance_after, running FROM (
    SELECT id, user_id, balance_after, sum(amount) OVER (PARTITION BY user_id ORDER BY id) AS running
    FROM ledger_entries
) e WHERE balance_after <> running
"""


def held_mismatches() -> list[dict[str, Any]]:
    """Balances or keys whose cached held differs from the sum of their active holds (should be none)."""
    return db.connection().execute(HELD_MISMATCHES).fetchall()


def statement_mismatches() -> list[dict[str, Any]]:
    """Ledger entries whose balance_after is not the running sum of the user's entries (should be none)."""
    return db.connection().execute(STATEMENT_MISMATCHES).fetchall()
