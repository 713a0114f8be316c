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
           sum(total_tokens) AS total_tokens, sum(cost) AS cost, sum(markup_amount) AS markup_amount
    FROM llm_transactions GROUP BY 1, 2, 3, 4, 5
)
SELECT * FROM raw FULL JOIN usage_daily u USING (echo_app_id, day, model, status, user_id)
WHERE raw.calls IS DISTINCT FROM u.calls OR raw.input_tokens IS DISTINCT FROM u.input_tokens
   OR raw.output_tokens IS DISTINCT FROM u.output_tokens OR raw.total_tokens IS DISTINCT FROM u.total_tokens
   OR raw.cost IS DISTINCT FROM u.cost OR raw.markup_amount IS DISTINCT FROM u.markup_amount
"""

# Every call's markup is credited exactly once, to its app's owner, with exactly the call's markup_amount, so that
# cost = providerCost + the owner's earnings from it; a call without markup has no earning entry.
MARKUP_NOT_EARNED = """
SELECT t.id, t.cost, t.markup_amount, a.user_id AS owner, e.user_id AS earner, e.amount AS earned, e.entries
FROM llm_transactions t
JOIN echo_apps a ON a.id = t.echo_app_id
LEFT JOIN (
    SELECT reference_id, min(user_id::text)::uuid AS user_id, sum(amount) AS amount, count(*) AS entries
    FROM earning_entries WHERE kind = 'markup' GROUP BY reference_id
) e ON e.reference_id = t.id
WHERE (t.markup_amount > 0 AND (e.entries IS DISTINCT FROM 1 OR e.user_id IS DISTINCT FROM a.user_id
                                OR t.cost IS DISTINCT FROM (t.cost - t.markup_amount) + e.amount))
   OR (t.markup_amount = 0 AND e.entries IS NOT NULL)
UNION ALL
SELECT e.reference_id, NULL, NULL, NULL, e.user_id, e.amount, 1 FROM earning_entries e
WHERE e.kind = 'markup' AND NOT EXISTS (SELECT 1 FROM llm_transactions t WHERE t.id = e.reference_id)
"""

# Each owner's cached account against the ledger and the payouts: available is the sum of the entries, lifetime the
# sum of the markups, pending and paid out what the payouts say, and lifetime = available + pending + paid out.
UNRECONCILED_EARNINGS = """
WITH entries AS (
    SELECT user_id, sum(amount) AS available, COALESCE(sum(amount) FILTER (WHERE kind = 'markup'), 0) AS lifetime
    FROM earning_entries GROUP BY user_id
), paid AS (
    SELECT user_id, COALESCE(sum(amount) FILTER (WHERE status = 'pending'), 0) AS pending,
           COALESCE(sum(amount - amount_returned) FILTER (WHERE status IN ('paid', 'reversed')), 0) AS paid_out,
           COALESCE(sum(amount_returned) FILTER (WHERE status = 'pending'), 0) AS returned_while_pending
    FROM payouts GROUP BY user_id
)
SELECT a.user_id, a.available, a.pending, a.paid_out, a.lifetime,
       e.available AS ledger_available, e.lifetime AS ledger_lifetime, p.pending AS payouts_pending,
       p.paid_out AS payouts_paid_out
FROM earnings_accounts a
FULL JOIN entries e USING (user_id)
LEFT JOIN paid p USING (user_id)
WHERE a.user_id IS NULL
   OR a.available <> COALESCE(e.available, 0) OR a.lifetime <> COALESCE(e.lifetime, 0)
   OR a.pending <> COALESCE(p.pending, 0) OR a.paid_out <> COALESCE(p.paid_out, 0)
   OR a.lifetime <> a.available + a.pending + a.paid_out
   OR COALESCE(p.returned_while_pending, 0) <> 0
"""


# Each app's closed days' sum equals its rollups through that day (days that no longer change).
CLOSED_EARNINGS_MISMATCHES = """
SELECT c.echo_app_id, c.through_day, c.amount, COALESCE(sum(u.markup_amount), 0) AS rollups
FROM app_earnings_closed c
LEFT JOIN usage_daily u ON u.echo_app_id = c.echo_app_id AND u.day <= c.through_day
GROUP BY c.echo_app_id, c.through_day, c.amount
HAVING c.amount <> COALESCE(sum(u.markup_amount), 0)
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


def markup_not_earned() -> list[dict[str, Any]]:
    """Calls whose markup did not become exactly one earning of their app's owner (should be none)."""
    return db.connection().execute(MARKUP_NOT_EARNED).fetchall()


def unreconciled_earnings() -> list[dict[str, Any]]:
    """Owners whose cached earnings differ from their earning entries and payouts (should be none)."""
    return db.connection().execute(UNRECONCILED_EARNINGS).fetchall()


def closed_earnings_mismatches() -> list[dict[str, Any]]:
    """Apps whose cached sum of closed days differs from their rollups through those days (should be none)."""
    return db.connection().execute(CLOSED_EARNINGS_MISMATCHES).fetchall()
