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
