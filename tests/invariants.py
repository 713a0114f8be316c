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

# What each call earned its app's owner (earned_amount, at most its markup: the markup on the part paid in cash, at
# once or when its debt was repaid in cash) is credited to that owner by earning entries summing to exactly it; the
# part its lots paid at once is call_lots' earned; a call that earned nothing has no earning entry.
MARKUP_NOT_EARNED = """
SELECT t.id, t.cost, t.markup_amount, t.earned_amount, a.user_id AS owner, e.user_id AS earner, e.amount AS earned,
       e.entries, l.earned AS lots_earned
FROM llm_transactions t
JOIN echo_apps a ON a.id = t.echo_app_id
LEFT JOIN (
    SELECT reference_id, min(user_id::text)::uuid AS user_id, max(user_id::text)::uuid AS last_user,
           sum(amount) AS amount, count(*) AS entries
    FROM earning_entries WHERE kind = 'markup' GROUP BY reference_id
) e ON e.reference_id = t.id
LEFT JOIN (SELECT transaction_id, sum(earned) AS earned FROM call_lots GROUP BY transaction_id) l
    ON l.transaction_id = t.id
WHERE t.earned_amount > t.markup_amount
   OR (t.earned_amount > 0 AND (e.user_id IS DISTINCT FROM a.user_id OR e.last_user IS DISTINCT FROM a.user_id
                                OR e.amount IS DISTINCT FROM t.earned_amount))
   OR (t.earned_amount = 0 AND e.entries IS NOT NULL)
   OR coalesce(l.earned, 0) > t.earned_amount
   OR (coalesce(l.earned, 0) <> t.earned_amount AND EXISTS (SELECT 1 FROM call_lots c WHERE c.transaction_id = t.id))
UNION ALL
SELECT e.reference_id, NULL, NULL, NULL, NULL, e.user_id, e.amount, 1, NULL FROM earning_entries e
WHERE e.kind = 'markup' AND NOT EXISTS (SELECT 1 FROM llm_transactions t WHERE t.id = e.reference_id)
"""

# Each owner's figures (the cached account with the entries not folded into it yet: db.earnings_account) against the
# entries and the payouts, computed independently: lifetime is the sum of the markups, reversed of the reversals,
# clearing what entries not cleared by their time hold, available the rest of the entries, pending and paid out what
# the payouts say; and lifetime = clearing + available + pending + paid out + reversed.
UNRECONCILED_EARNINGS = """
WITH entries AS (
    SELECT user_id, sum(amount) AS total,
           COALESCE(sum(amount) FILTER (WHERE kind = 'markup'), 0) AS lifetime,
           COALESCE(-sum(amount) FILTER (WHERE kind = 'reversal'), 0) AS reversed,
           COALESCE(sum(amount) FILTER (WHERE clears_at > now()), 0) AS clearing
    FROM earning_entries GROUP BY user_id
), paid AS (
    SELECT user_id, COALESCE(sum(amount) FILTER (WHERE status = 'pending'), 0) AS pending,
           COALESCE(sum(amount - amount_returned) FILTER (WHERE status IN ('paid', 'reversed')), 0) AS paid_out,
           COALESCE(sum(amount_returned) FILTER (WHERE status = 'pending'), 0) AS returned_while_pending
    FROM payouts GROUP BY user_id
), owners AS (
    SELECT user_id FROM earnings_accounts UNION SELECT user_id FROM entries
), shown AS (
    SELECT x.* FROM owners ow CROSS JOIN LATERAL (EXACT_READ) x
)
SELECT s.user_id, s.available, s.clearing, s.pending, s.paid_out, s.lifetime, s.reversed,
       e.total - e.clearing AS ledger_available, e.clearing AS ledger_clearing, e.lifetime AS ledger_lifetime,
       p.pending AS payouts_pending, p.paid_out AS payouts_paid_out
FROM shown s
LEFT JOIN entries e USING (user_id)
LEFT JOIN paid p USING (user_id)
WHERE s.available <> COALESCE(e.total - e.clearing, 0) OR s.clearing <> COALESCE(e.clearing, 0)
   OR s.lifetime <> COALESCE(e.lifetime, 0) OR s.reversed <> COALESCE(e.reversed, 0)
   OR s.pending <> COALESCE(p.pending, 0) OR s.paid_out <> COALESCE(p.paid_out, 0)
   OR s.lifetime <> s.clearing + s.available + s.pending + s.paid_out + s.reversed
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
    """Owners whose earnings figures differ from their earning entries and payouts (should be none), before and after
    housekeeping folds the entries into the cached accounts."""
    from echo_control.db.earnings import _EXACT_ACCOUNT

    exact = _EXACT_ACCOUNT.replace("(SELECT %(user_id)s::uuid AS user_id) o", "(SELECT ow.user_id) o")
    sql = UNRECONCILED_EARNINGS.replace("EXACT_READ", exact)
    before = db.connection().execute(sql).fetchall()
    if before:
        return before
    db.fold_earnings(1_000_000)
    return db.connection().execute(sql).fetchall()


def closed_earnings_mismatches() -> list[dict[str, Any]]:
    """Apps whose cached sum of closed days differs from their rollups through those days (should be none)."""
    return db.connection().execute(CLOSED_EARNINGS_MISMATCHES).fetchall()


# Per user: the cached balance = what is left of the lots (expired grants not swept yet included) - the debt; no lot
# has more left than it credited; a debt only when no live lot has anything left.
LOT_MISMATCHES = """
SELECT b.user_id, b.balance, b.debt, coalesce(l.total, 0) AS lots, coalesce(l.live, 0) AS live
FROM balances b
LEFT JOIN (SELECT user_id, sum(remaining) AS total,
                  sum(remaining) FILTER (WHERE expires_at IS NULL OR expires_at > now()) AS live
           FROM credit_lots GROUP BY user_id) l USING (user_id)
WHERE b.balance <> coalesce(l.total, 0) - b.debt OR (b.debt > 0 AND coalesce(l.live, 0) > 0)
"""


def lot_mismatches() -> list[dict[str, Any]]:
    """Users whose balance is not their lots less their debt, or who owe while credits are left (should be none)."""
    return db.connection().execute(LOT_MISMATCHES).fetchall()


# Earnings come only from cash: what a call earned from each lot is nothing for a grant or a non-cash adjustment, and
# never more than the markup's share of what that lot paid; what a reversal took back never more than that.
CASH_UNBACKED_EARNINGS = """
SELECT c.transaction_id, c.lot_id, l.source, l.cash, c.amount, c.earned, c.reversed, t.cost, t.markup_amount
FROM call_lots c JOIN credit_lots l ON l.id = c.lot_id JOIN llm_transactions t ON t.id = c.transaction_id
WHERE (NOT l.cash AND c.earned <> 0) OR c.earned > t.markup_amount * c.amount / nullif(t.cost, 0)
   OR c.reversed > c.earned
"""


def cash_unbacked_earnings() -> list[dict[str, Any]]:
    """What calls took from lots that earned more than cash paid for (should be none)."""
    return db.connection().execute(CASH_UNBACKED_EARNINGS).fetchall()


# Automatic top-up: the threshold beside the balance is the settings' while on (else NULL); never two charges in
# flight for a user; a charge that succeeded was credited exactly its amount, once, by its own payment (one of its
# user's, of its amount), and any other none; every sequence below the next one to be given.
AUTO_TOP_UP_MISMATCHES = """
SELECT 'threshold' AS problem, b.user_id, NULL::uuid AS charge_id
FROM balances b LEFT JOIN auto_top_ups a USING (user_id)
WHERE b.top_up_below IS DISTINCT FROM CASE WHEN a.enabled THEN a.threshold END
UNION ALL
SELECT 'two in flight', user_id, NULL FROM auto_top_up_charges
WHERE status IN ('requested', 'processing') GROUP BY user_id HAVING count(*) > 1
UNION ALL
SELECT 'credit', c.user_id, c.id FROM auto_top_up_charges c
LEFT JOIN (SELECT reference_id, sum(amount) AS credited, count(*) AS entries FROM ledger_entries
           WHERE kind = 'payment_credit' GROUP BY reference_id) e ON e.reference_id = c.payment_id
WHERE (c.status = 'succeeded' AND (e.entries IS DISTINCT FROM 1 OR e.credited <> c.amount))
   OR (c.status <> 'succeeded' AND e.entries IS NOT NULL)
UNION ALL
SELECT 'payment', c.user_id, c.id FROM auto_top_up_charges c JOIN payments p ON p.id = c.payment_id
WHERE p.user_id <> c.user_id OR p.amount <> (c.amount * 100)::integer
UNION ALL
SELECT 'sequence', c.user_id, c.id FROM auto_top_up_charges c JOIN auto_top_ups a USING (user_id)
WHERE c.sequence >= a.next_sequence
"""


def auto_top_up_mismatches() -> list[dict[str, Any]]:
    """Auto top-up's settings and charges that break its rules (should be none)."""
    return db.connection().execute(AUTO_TOP_UP_MISMATCHES).fetchall()
