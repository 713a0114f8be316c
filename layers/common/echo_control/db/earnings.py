"""The owners' earnings: an append-only ledger of earning entries with a cached account per owner, the per-app
figures from the daily rollups, and payouts to the owner's Stripe Connect account.

Lock order, so that nothing deadlocks: a debit locks the payer's balance, then the owner's earnings account; a
new payout locks the account alone; completing, failing or reversing a payout locks the payout, then the account.
"""

from datetime import date
from decimal import Decimal
from uuid import UUID

from echo_control.db.connection import Conn, Row, connection, transaction

# The last CTE of the statements that record a call (db/ledger.CHARGE_CALL), after its `tx` CTE: the markup earned
# on the call's cash-paid part becomes an earning entry of the app's owner, clearing %(clearing_days)s days after the
# call. Appended only: no row shared with the app's other customers is locked or updated (housekeeping folds the
# entry into the owner's cached account; fold_earnings). A call that earned nothing writes nothing here.
EARN_MARKUP = """earning AS (
    INSERT INTO earning_entries
        (user_id, kind, amount, idempotency_key, reference_id, echo_app_id, clears_at, folded, cleared)
    SELECT a.user_id, 'markup', tx.earned_amount, 'markup:' || tx.id, tx.id, a.id,
           tx.created_at + make_interval(days => %(clearing_days)s), false, false
    FROM tx JOIN echo_apps a ON a.id = %(echo_app_id)s
    WHERE tx.earned_amount > 0
)"""

# A credit paid `amount` of the user's debt: the calls still owing are repaid oldest first, and when the credit was
# cash each earns its owner the markup on what it repaid (a call's markup is earned only on its cash-paid part).
# What is left after the calls' debts pays a disputed payment's debt, which earns nothing.
_REPAY_DEBT = """
WITH open AS (
    SELECT t.id, t.echo_app_id, t.cost, t.markup_amount, t.debt_repaid, t.debt_amount - t.debt_repaid AS owed,
           sum(t.debt_amount - t.debt_repaid) OVER (ORDER BY t.created_at, t.id) AS running
    FROM llm_transactions t
    WHERE t.user_id = %(user_id)s AND t.debt_repaid < t.debt_amount
), repay AS (
    SELECT open.*, least(owed, %(amount)s - (running - owed)) AS repaid,
           CASE WHEN %(cash)s AND cost > 0
                THEN trunc(markup_amount * least(owed, %(amount)s - (running - owed)) / cost, 6) ELSE 0 END AS earned
    FROM open WHERE running - owed < %(amount)s
), repaid AS (
    UPDATE llm_transactions t SET debt_repaid = t.debt_repaid + repay.repaid,
        earned_amount = t.earned_amount + repay.earned
    FROM repay WHERE t.id = repay.id
), paid_by AS (
    INSERT INTO call_lots (transaction_id, lot_id, amount, earned)
    SELECT repay.id, %(lot_id)s, repay.repaid, repay.earned FROM repay WHERE repay.repaid > 0
)
INSERT INTO earning_entries
    (user_id, kind, amount, idempotency_key, reference_id, echo_app_id, clears_at, folded, cleared)
SELECT a.user_id, 'markup', repay.earned, 'markup-repaid:' || repay.id || ':' || (repay.debt_repaid + repay.repaid),
       repay.id, a.id, now() + make_interval(days => %(clearing_days)s), false, false
FROM repay JOIN echo_apps a ON a.id = repay.echo_app_id
WHERE repay.earned > 0
"""


def repay_debt(conn: Conn, user_id: UUID, amount: Decimal, *, lot_id: int, cash: bool, clearing_days: int) -> None:
    """Marks `amount` of the user's debt repaid by lot `lot_id` (under the balance's lock), earning the calls' owners
    their deferred markup if it is `cash` (appended only, as a call's own earning)."""
    params = {"user_id": user_id, "amount": amount, "cash": cash, "lot_id": lot_id, "clearing_days": clearing_days}
    conn.execute(_REPAY_DEBT, params)


_ACCOUNT_COLUMNS = (
    "user_id, available, clearing, pending, paid_out, lifetime, reversed, stripe_account_id, payouts_enabled"
)

# The owner's figures, exact at this moment: the cached account plus the entries housekeeping has not folded in yet
# (into available once cleared, else clearing) and the folded ones whose clearing time came since the last sweep.
_EXACT_ACCOUNT = """
SELECT o.user_id, (coalesce(e.available, 0) + u.to_available + m.moving)::numeric(18, 6) AS available,
       (coalesce(e.clearing, 0) + u.to_clearing - m.moving)::numeric(18, 6) AS clearing,
       coalesce(e.pending, 0)::numeric(18, 6) AS pending, coalesce(e.paid_out, 0)::numeric(18, 6) AS paid_out,
       (coalesce(e.lifetime, 0) + u.earned)::numeric(18, 6) AS lifetime,
       (coalesce(e.reversed, 0) + u.reversed)::numeric(18, 6) AS reversed,
       e.stripe_account_id, coalesce(e.payouts_enabled, false) AS payouts_enabled, e.user_id IS NOT NULL AS opened
FROM (SELECT %(user_id)s::uuid AS user_id) o
LEFT JOIN earnings_accounts e ON e.user_id = o.user_id
CROSS JOIN LATERAL (
    SELECT coalesce(sum(amount) FILTER (WHERE clears_at <= now()), 0) AS to_available,
           coalesce(sum(amount) FILTER (WHERE clears_at > now()), 0) AS to_clearing,
           coalesce(sum(amount) FILTER (WHERE kind = 'markup'), 0) AS earned,
           coalesce(-sum(amount) FILTER (WHERE kind = 'reversal'), 0) AS reversed
    FROM earning_entries WHERE user_id = o.user_id AND NOT folded
) u
CROSS JOIN LATERAL (
    SELECT coalesce(sum(amount), 0) AS moving FROM earning_entries
    WHERE user_id = o.user_id AND folded AND NOT cleared AND clears_at <= now()
) m
"""


def earnings_account(user_id: UUID, conn: Conn | None = None) -> Row | None:
    """The owner's figures, exact (see _EXACT_ACCOUNT); None when they never earned nor onboarded."""
    row = (conn or connection()).execute(_EXACT_ACCOUNT, {"user_id": user_id}).fetchone()
    if row is None or (not row["opened"] and row["lifetime"] == 0):
        return None
    return row


# Folds entries appended since the last run into their owners' cached accounts: into clearing, or available when
# already cleared (reversals likewise, and into reversed), a bounded batch per run; the accounts are locked in
# user order, as everywhere that locks several.
_FOLD_EARNINGS = """
WITH due AS (
    SELECT id, user_id, kind, amount, clears_at <= now() AS cleared_now FROM earning_entries
    WHERE NOT folded ORDER BY id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), by_owner AS (
    SELECT user_id, coalesce(sum(amount) FILTER (WHERE kind = 'markup'), 0) AS earned,
           coalesce(-sum(amount) FILTER (WHERE kind = 'reversal'), 0) AS reversed,
           coalesce(sum(amount) FILTER (WHERE cleared_now), 0) AS to_available,
           coalesce(sum(amount) FILTER (WHERE NOT cleared_now), 0) AS to_clearing
    FROM due GROUP BY user_id
), folded AS (
    INSERT INTO earnings_accounts AS e (user_id, available, clearing, lifetime, reversed)
    SELECT user_id, to_available, to_clearing, earned, reversed FROM by_owner ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET available = e.available + excluded.available,
        clearing = e.clearing + excluded.clearing, lifetime = e.lifetime + excluded.lifetime,
        reversed = e.reversed + excluded.reversed, updated_at = now()
)
UPDATE earning_entries x SET folded = true, cleared = due.cleared_now FROM due WHERE x.id = due.id
RETURNING x.id
"""

# Moves folded entries whose clearing time came from clearing to available.
_CLEAR_EARNINGS = """
WITH due AS (
    SELECT id, user_id, amount FROM earning_entries
    WHERE folded AND NOT cleared AND clears_at <= now() ORDER BY clears_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), by_owner AS (
    SELECT user_id, sum(amount) AS amount FROM due GROUP BY user_id
), locked AS (
    SELECT e.user_id FROM earnings_accounts e WHERE e.user_id IN (SELECT user_id FROM by_owner) ORDER BY e.user_id
    FOR UPDATE
), moved AS (
    UPDATE earnings_accounts e SET clearing = e.clearing - b.amount, available = e.available + b.amount,
        updated_at = now()
    FROM by_owner b WHERE e.user_id = b.user_id AND (SELECT count(*) FROM locked) >= 0
)
UPDATE earning_entries x SET cleared = true FROM due WHERE x.id = due.id
RETURNING x.id
"""


def fold_earnings(limit: int) -> int:
    """Folds a batch of new entries, then clears a batch of due ones; how many entries it settled."""
    with transaction() as conn:
        folded = len(conn.execute(_FOLD_EARNINGS, {"limit": limit}).fetchall())
    with transaction() as conn:
        cleared = len(conn.execute(_CLEAR_EARNINGS, {"limit": limit}).fetchall())
    return folded + cleared


# --- what each app earned, from the daily rollups ------------------------------------------------------

# An app's lifetime is its closed days' sum (app_earnings_closed) plus the rollups of the days after them; `stale`
# says the closed row is missing or behind %(closed)s, which close_earnings_days then catches up. A stale row gives
# the same figures, only from more rollup rows.
_LIFETIME = """
    COALESCE(c.amount, 0) + COALESCE((
        SELECT sum(u.markup_amount) FROM usage_daily u
        WHERE u.echo_app_id = a.id AND u.day > COALESCE(c.through_day, '-infinity'::date)
    ), 0)
"""
_EARNINGS_BY_APP = f"""
SELECT a.id AS echo_app_id, a.name, ({_LIFETIME})::numeric(18, 6) AS lifetime,
       COALESCE((SELECT sum(u.markup_amount) FROM usage_daily u
                 WHERE u.echo_app_id = a.id AND u.day >= %(since)s), 0)::numeric(18, 6) AS recent,
       c.through_day IS NULL OR c.through_day < %(closed)s AS stale
FROM echo_apps a LEFT JOIN app_earnings_closed c ON c.echo_app_id = a.id
WHERE a.user_id = %(user_id)s
ORDER BY a.created_at DESC, a.id DESC
"""
_APP_LIFETIME_EARNINGS = f"""
SELECT ({_LIFETIME})::numeric(18, 6) AS lifetime, c.through_day IS NULL OR c.through_day < %(closed)s AS stale
FROM echo_apps a LEFT JOIN app_earnings_closed c ON c.echo_app_id = a.id
WHERE a.id = %(app_id)s
"""


def earnings_by_app(user_id: UUID, since: date, closed: date) -> list[Row]:
    """Each of the owner's apps with its lifetime earnings, those since `since` (a UTC day), and whether its closed
    days' sum is behind `closed`."""
    params = {"user_id": user_id, "since": since, "closed": closed}
    return connection().execute(_EARNINGS_BY_APP, params).fetchall()


def app_lifetime_earnings(app_id: UUID, closed: date) -> Row | None:
    """The app's lifetime earnings, and whether its closed days' sum is behind `closed`."""
    return connection().execute(_APP_LIFETIME_EARNINGS, {"app_id": app_id, "closed": closed}).fetchone()


_START_CLOSED = """
INSERT INTO app_earnings_closed (echo_app_id, through_day, amount)
SELECT id, '-infinity'::date, 0 FROM unnest(%(ids)s::uuid[]) AS id
ON CONFLICT DO NOTHING
"""
# Locked, so that two readers catching up at once add each day once: the second sees the first's through_day.
_CLOSE_DAYS = """
WITH stale AS (
    SELECT echo_app_id, through_day FROM app_earnings_closed
    WHERE echo_app_id = ANY(%(ids)s::uuid[]) AND through_day < %(closed)s
    FOR UPDATE
), added AS (
    SELECT s.echo_app_id, COALESCE(sum(u.markup_amount), 0) AS amount
    FROM stale s
    LEFT JOIN usage_daily u ON u.echo_app_id = s.echo_app_id AND u.day > s.through_day AND u.day <= %(closed)s
    GROUP BY s.echo_app_id
)
UPDATE app_earnings_closed c SET amount = c.amount + added.amount, through_day = %(closed)s
FROM added WHERE c.echo_app_id = added.echo_app_id
"""


def close_earnings_days(app_ids: list[UUID], closed: date) -> None:
    """Adds the apps' rollup days up to `closed` (days that no longer change) to their closed sums."""
    with transaction() as conn:
        conn.execute(_START_CLOSED, {"ids": app_ids})
        conn.execute(_CLOSE_DAYS, {"ids": app_ids, "closed": closed})


_APP_EARNINGS_BY_DAY = """
SELECT u.day, sum(u.markup_amount) AS amount, sum(u.calls) AS calls FROM usage_daily u
WHERE u.echo_app_id = %(app_id)s AND u.day BETWEEN %(since)s AND %(until)s
GROUP BY u.day ORDER BY u.day
"""
_APP_EARNINGS_BY_MODEL = """
SELECT u.model, sum(u.markup_amount) AS amount, sum(u.calls) AS calls FROM usage_daily u
WHERE u.echo_app_id = %(app_id)s AND u.day BETWEEN %(since)s AND %(until)s
GROUP BY u.model ORDER BY amount DESC, u.model
"""
# Every app of one owner, per day (the dashboard's earnings chart).
_OWNER_EARNINGS_BY_DAY = """
SELECT u.day, sum(u.markup_amount) AS amount, sum(u.calls) AS calls
FROM echo_apps a JOIN usage_daily u ON u.echo_app_id = a.id
WHERE a.user_id = %(user_id)s AND u.day BETWEEN %(since)s AND %(until)s
GROUP BY u.day ORDER BY u.day
"""


def app_earnings_by_day(app_id: UUID, since: date, until: date) -> list[Row]:
    return connection().execute(_APP_EARNINGS_BY_DAY, {"app_id": app_id, "since": since, "until": until}).fetchall()


def app_earnings_by_model(app_id: UUID, since: date, until: date) -> list[Row]:
    params = {"app_id": app_id, "since": since, "until": until}
    return connection().execute(_APP_EARNINGS_BY_MODEL, params).fetchall()


def owner_earnings_by_day(user_id: UUID, since: date, until: date) -> list[Row]:
    params = {"user_id": user_id, "since": since, "until": until}
    return connection().execute(_OWNER_EARNINGS_BY_DAY, params).fetchall()


# --- the connected account ------------------------------------------------------------------------------


def keep_stripe_account(user_id: UUID, account_id: str) -> str:
    """Records the owner's connected account unless one is recorded already; returns the one that stays.

    An UPDATE under the row's lock, not an upsert: two first onboardings at once would otherwise collide on the
    account id's unique index instead of the second one keeping the first's account."""
    with transaction() as conn:
        conn.execute("INSERT INTO earnings_accounts (user_id) VALUES (%s) ON CONFLICT DO NOTHING", [user_id])
        row = conn.execute(
            "UPDATE earnings_accounts SET stripe_account_id = COALESCE(stripe_account_id, %s), updated_at = now() "
            "WHERE user_id = %s RETURNING stripe_account_id",
            [account_id, user_id],
        ).fetchone()
    assert row is not None
    return str(row["stripe_account_id"])


def set_payouts_enabled(conn: Conn, stripe_account_id: str, enabled: bool) -> Row | None:
    """Whether Stripe lets this connected account receive payouts; None for an account we never made."""
    return conn.execute(
        "UPDATE earnings_accounts SET payouts_enabled = %s, updated_at = now() WHERE stripe_account_id = %s "
        f"RETURNING {_ACCOUNT_COLUMNS}",
        [enabled, stripe_account_id],
    ).fetchone()


def account_for_stripe_id(stripe_account_id: str) -> Row | None:
    return (
        connection()
        .execute(f"SELECT {_ACCOUNT_COLUMNS} FROM earnings_accounts WHERE stripe_account_id = %s", [stripe_account_id])
        .fetchone()
    )


# --- payouts --------------------------------------------------------------------------------------------

_PAYOUT_COLUMNS = (
    "p.id, p.user_id, p.amount, p.status, p.amount_returned, p.stripe_account_id, p.stripe_transfer_id, "
    "p.failure_reason, p.created_at, p.updated_at"
)


def lock_earnings_account(conn: Conn, user_id: UUID) -> Row | None:
    """The owner's account, locked until the caller's transaction ends (payouts of one owner go one at a time), with
    its exact figures: entries not folded yet count too, so a payout never takes more than was earned and cleared."""
    if conn.execute("SELECT 1 FROM earnings_accounts WHERE user_id = %s FOR UPDATE", [user_id]).fetchone() is None:
        return None
    return conn.execute(_EXACT_ACCOUNT, {"user_id": user_id}).fetchone()


# Moves the amount from available to pending with its (negative) earning entry; the caller holds the account lock
# and has checked that available covers it (the CHECK constraint guards it as well).
_START_PAYOUT = f"""
WITH payout AS (
    INSERT INTO payouts AS p (id, user_id, amount, status, stripe_account_id)
    VALUES (%(id)s, %(user_id)s, %(amount)s, 'pending', %(stripe_account_id)s)
    RETURNING {_PAYOUT_COLUMNS}
), entry AS (
    INSERT INTO earning_entries (user_id, kind, amount, idempotency_key, reference_id)
    SELECT user_id, 'payout', -amount, 'payout:' || id, id FROM payout
), account AS (
    UPDATE earnings_accounts e SET available = e.available - payout.amount, pending = e.pending + payout.amount,
        updated_at = now()
    FROM payout WHERE e.user_id = payout.user_id
)
SELECT * FROM payout
"""


def start_payout(conn: Conn, *, payout_id: UUID, user_id: UUID, amount: Decimal, stripe_account_id: str) -> Row:
    params = {"id": payout_id, "user_id": user_id, "amount": amount, "stripe_account_id": stripe_account_id}
    row = conn.execute(_START_PAYOUT, params).fetchone()
    assert row is not None
    return row


def lock_payout(conn: Conn, *, payout_id: UUID | None, transfer_id: str | None) -> Row | None:
    return conn.execute(
        f"SELECT {_PAYOUT_COLUMNS} FROM payouts p WHERE p.id = %(id)s "
        "OR (%(transfer)s::text IS NOT NULL AND p.stripe_transfer_id = %(transfer)s) LIMIT 1 FOR UPDATE OF p",
        {"id": payout_id, "transfer": transfer_id},
    ).fetchone()


# A pending payout whose transfer Stripe made: pending becomes paid out. A second completion changes nothing.
_COMPLETE_PAYOUT = f"""
WITH paid AS (
    UPDATE payouts p SET status = 'paid', stripe_transfer_id = %(transfer)s, updated_at = now()
    WHERE p.id = %(id)s AND p.status = 'pending'
    RETURNING {_PAYOUT_COLUMNS}
), account AS (
    UPDATE earnings_accounts e SET pending = e.pending - paid.amount, paid_out = e.paid_out + paid.amount,
        updated_at = now()
    FROM paid WHERE e.user_id = paid.user_id
)
SELECT * FROM paid
"""

# A pending payout Stripe refused: the whole amount goes back to available, once (the entry's key is the payout's).
_FAIL_PAYOUT = f"""
WITH failed AS (
    UPDATE payouts p SET status = 'failed', amount_returned = p.amount, failure_reason = %(reason)s,
        updated_at = now()
    WHERE p.id = %(id)s AND p.status = 'pending'
    RETURNING {_PAYOUT_COLUMNS}
), entry AS (
    INSERT INTO earning_entries (user_id, kind, amount, idempotency_key, reference_id)
    SELECT user_id, 'payout_returned', amount, 'payout-failed:' || id, id FROM failed
), account AS (
    UPDATE earnings_accounts e SET pending = e.pending - failed.amount, available = e.available + failed.amount,
        updated_at = now()
    FROM failed WHERE e.user_id = failed.user_id
)
SELECT * FROM failed
"""

# A paid payout's transfer reversed, in part or in full (Stripe reports the cumulative amount reversed): what is
# newly reversed goes from paid out back to available. The entry's key carries the cumulative amount, so a
# redelivered event returns nothing twice.
_RETURN_PAYOUT = f"""
WITH entry AS (
    INSERT INTO earning_entries (user_id, kind, amount, idempotency_key, reference_id)
    SELECT p.user_id, 'payout_returned', %(returned)s, 'payout-reversed:' || p.id || ':' || %(total)s, p.id
    FROM payouts p WHERE p.id = %(id)s AND p.status = 'paid'
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING user_id, amount
), returned AS (
    UPDATE payouts p SET amount_returned = p.amount_returned + entry.amount,
        status = CASE WHEN p.amount_returned + entry.amount = p.amount THEN 'reversed' ELSE p.status END,
        updated_at = now()
    FROM entry WHERE p.id = %(id)s
    RETURNING {_PAYOUT_COLUMNS}
), account AS (
    UPDATE earnings_accounts e SET paid_out = e.paid_out - entry.amount, available = e.available + entry.amount,
        updated_at = now()
    FROM entry WHERE e.user_id = entry.user_id
)
SELECT * FROM returned
"""


def complete_payout(conn: Conn, payout_id: UUID, transfer_id: str) -> Row | None:
    """The payout, now paid; None when it was no longer pending (completed, or failed, before)."""
    return conn.execute(_COMPLETE_PAYOUT, {"id": payout_id, "transfer": transfer_id}).fetchone()


def fail_payout(conn: Conn, payout_id: UUID, reason: str) -> Row | None:
    """The payout, now failed with its money back in available; None when it was no longer pending."""
    return conn.execute(_FAIL_PAYOUT, {"id": payout_id, "reason": reason}).fetchone()


def return_payout(conn: Conn, payout_id: UUID, returned: Decimal, total_reversed: Decimal) -> Row | None:
    """Returns `returned` (> 0) of a paid payout to available; None when already returned or not paid."""
    params = {"id": payout_id, "returned": returned, "total": format(total_reversed, "f")}
    return conn.execute(_RETURN_PAYOUT, params).fetchone()


def payout_by_id(payout_id: UUID) -> Row | None:
    return connection().execute(f"SELECT {_PAYOUT_COLUMNS} FROM payouts p WHERE p.id = %s", [payout_id]).fetchone()


def payouts_for_user(user_id: UUID, limit: int) -> list[Row]:
    return (
        connection()
        .execute(
            f"SELECT {_PAYOUT_COLUMNS} FROM payouts p WHERE p.user_id = %s ORDER BY p.created_at DESC, p.id DESC "
            "LIMIT %s",
            [user_id, limit],
        )
        .fetchall()
    )


def stale_pending_payouts(older_than_seconds: int, limit: int) -> list[Row]:
    """Payouts still pending a while after they started (Stripe did not answer), oldest first."""
    return (
        connection()
        .execute(
            f"SELECT {_PAYOUT_COLUMNS} FROM payouts p WHERE p.status = 'pending' "
            "AND p.created_at < now() - make_interval(secs => %s) ORDER BY p.created_at LIMIT %s",
            [older_than_seconds, limit],
        )
        .fetchall()
    )
