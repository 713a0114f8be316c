"""Automatic top-up (migration 0022): the Stripe Customer and card of each user, the settings, and the charges.

Locks are taken in one order everywhere: the payment row (a webhook's), the balance row (lock_funds, or the
statement that fired the trigger), the settings row, then the charge. A charge is taken for sending with a lease:
its next_attempt_at moves LEASE ahead in the statement that picks it, so two workers never send it at once."""

from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from echo_control.db.connection import Conn, Row, connection, transaction

LEASE = timedelta(seconds=120)
AUTO_TOP_UP_CHANNEL = "auto_top_ups"  # the trigger NOTIFYs it when it requests a charge

# --- the Stripe Customer and its card -------------------------------------------------------------------------


def billing_customer(user_id: UUID) -> Row | None:
    return connection().execute("SELECT * FROM billing_customers WHERE user_id = %s", [user_id]).fetchone()


def keep_billing_customer(user_id: UUID, stripe_customer_id: str) -> str:
    """Stores the user's Stripe Customer unless one is stored already; the one stored."""
    with transaction() as conn:
        row = conn.execute(
            "INSERT INTO billing_customers AS b (user_id, stripe_customer_id) VALUES (%s, %s) "
            "ON CONFLICT (user_id) DO UPDATE SET updated_at = b.updated_at RETURNING b.stripe_customer_id",
            [user_id, stripe_customer_id],
        ).fetchone()
    assert row is not None
    return str(row["stripe_customer_id"])


def insert_card_setup(session_id: str, user_id: UUID) -> None:
    with transaction() as conn:
        conn.execute("INSERT INTO card_setups (session_id, user_id) VALUES (%s, %s)", [session_id, user_id])


def card_setup(session_id: str) -> Row | None:
    return connection().execute("SELECT * FROM card_setups WHERE session_id = %s", [session_id]).fetchone()


def customer_for_stripe_id(conn: Conn, stripe_customer_id: str) -> Row | None:
    return conn.execute(
        "SELECT * FROM billing_customers WHERE stripe_customer_id = %s FOR UPDATE", [stripe_customer_id]
    ).fetchone()


def save_card(
    conn: Conn,
    user_id: UUID,
    *,
    payment_method_id: str,
    brand: str | None,
    last4: str | None,
    exp_month: int | None,
    exp_year: int | None,
    session_id: str | None,
) -> None:
    """The card later charges go to (replacing any before it), and the setup session that saved it completed."""
    conn.execute(
        "UPDATE billing_customers SET payment_method_id = %s, card_brand = %s, card_last4 = %s, card_exp_month = %s, "
        "card_exp_year = %s, card_saved_at = now(), updated_at = now() WHERE user_id = %s",
        [payment_method_id, brand, last4, exp_month, exp_year, user_id],
    )
    if session_id is not None:
        conn.execute(
            "UPDATE card_setups SET completed_at = coalesce(completed_at, now()) "
            "WHERE session_id = %s AND user_id = %s",
            [session_id, user_id],
        )


# --- settings -------------------------------------------------------------------------------------------------


def auto_top_up_settings(user_id: UUID) -> Row | None:
    """The settings with what this UTC month's charges credited; None when never set."""
    return (
        connection()
        .execute(
            "SELECT a.*, coalesce((SELECT sum(c.amount) FROM auto_top_up_charges c WHERE c.user_id = a.user_id "
            "AND c.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date AND c.status = 'succeeded'), 0)"
            "::numeric(18, 6) AS charged_this_month FROM auto_top_ups a WHERE a.user_id = %s",
            [user_id],
        )
        .fetchone()
    )


def lock_auto_top_up(conn: Conn, user_id: UUID) -> Row | None:
    """The settings row, locked; the caller holds the balance row's lock (the trigger's order)."""
    return conn.execute("SELECT * FROM auto_top_ups WHERE user_id = %s FOR UPDATE", [user_id]).fetchone()


def store_auto_top_up(
    conn: Conn,
    user_id: UUID,
    *,
    enabled: bool,
    threshold: Decimal,
    amount: Decimal,
    monthly_limit: Decimal,
    clear_error: bool,
) -> None:
    """The settings, and the threshold beside the balance that the trigger's WHEN reads (NULL while off). Under the
    balance row's lock."""
    conn.execute(
        "INSERT INTO auto_top_ups AS a (user_id, enabled, threshold, amount, monthly_limit) "
        "VALUES (%(user_id)s, %(enabled)s, %(threshold)s, %(amount)s, %(monthly_limit)s) "
        "ON CONFLICT (user_id) DO UPDATE SET enabled = excluded.enabled, threshold = excluded.threshold, "
        "amount = excluded.amount, monthly_limit = excluded.monthly_limit, "
        "last_error = CASE WHEN %(clear_error)s THEN NULL ELSE a.last_error END, "
        "last_error_code = CASE WHEN %(clear_error)s THEN NULL ELSE a.last_error_code END, "
        "last_error_at = CASE WHEN %(clear_error)s THEN NULL ELSE a.last_error_at END, updated_at = now()",
        {
            "user_id": user_id,
            "enabled": enabled,
            "threshold": threshold,
            "amount": amount,
            "monthly_limit": monthly_limit,
            "clear_error": clear_error,
        },
    )
    conn.execute("UPDATE balances SET top_up_below = %s WHERE user_id = %s", [threshold if enabled else None, user_id])


def turn_off_auto_top_up(conn: Conn, user_id: UUID, code: str, message: str, *, only_if_enabled: bool = False) -> None:
    """Off, saying why (a decline, a required authentication, a dispute): the balance row first (its lock), then the
    settings; `only_if_enabled` leaves settings that are off as they are."""
    conn.execute("UPDATE balances SET top_up_below = NULL WHERE user_id = %s", [user_id])
    conn.execute(
        "UPDATE auto_top_ups SET enabled = false, last_error = %s, last_error_code = %s, last_error_at = now(), "
        "updated_at = now() WHERE user_id = %s AND (enabled OR NOT %s)",
        [message[:500], code[:100], user_id, only_if_enabled],
    )


def pause_auto_top_up(conn: Conn) -> None:
    """Until the caller's transaction ends, nothing it does requests a charge (a refund or dispute taking money back
    must not charge the card again)."""
    conn.execute("SELECT set_config('echo.auto_top_up_paused', 'on', true)")


# --- charges --------------------------------------------------------------------------------------------------

_CHARGE_COLUMNS = (
    "c.id, c.user_id, c.sequence, c.amount, c.month, c.status, c.payment_id, c.payment_intent, c.attempts, "
    "c.next_attempt_at, c.error_code, c.error, c.created_at, c.updated_at"
)


def charges_this_month(user_id: UUID, limit: int) -> list[Row]:
    """This UTC month's charges, and one still in flight from before, newest first."""
    return (
        connection()
        .execute(
            f"SELECT {_CHARGE_COLUMNS} FROM auto_top_up_charges c WHERE c.user_id = %s "
            "AND (c.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date "
            "OR c.status IN ('requested', 'processing')) "
            "ORDER BY c.sequence DESC LIMIT %s",
            [user_id, limit],
        )
        .fetchall()
    )


def cancel_unsent_charge(conn: Conn, user_id: UUID) -> None:
    """Auto top-up turned off: a charge no worker has taken yet (never sent to Stripe) is not made."""
    conn.execute(
        "UPDATE auto_top_up_charges SET status = 'failed', next_attempt_at = NULL, error_code = 'cancelled', "
        "error = 'Auto top-up was turned off before the charge was sent', updated_at = now() "
        "WHERE user_id = %s AND status = 'requested' AND attempts = 0",
        [user_id],
    )


# Due charges, oldest first, leased, each with the card it goes to.
_LEASE_DUE = f"""
WITH due AS (
    SELECT id FROM auto_top_up_charges
    WHERE status = 'requested' AND next_attempt_at <= now()
    ORDER BY next_attempt_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), c AS (
    UPDATE auto_top_up_charges c SET next_attempt_at = now() + %(lease)s, attempts = c.attempts + 1,
        updated_at = now()
    FROM due WHERE c.id = due.id
    RETURNING c.*
)
SELECT {_CHARGE_COLUMNS}, b.stripe_customer_id, b.payment_method_id
FROM c LEFT JOIN billing_customers b ON b.user_id = c.user_id
"""

# The charge's own payment row, made on its first attempt: what Stripe's confirmation credits and refunds find.
_ATTACH_PAYMENT = """
WITH made AS (
    INSERT INTO payments (user_id, amount, status)
    SELECT user_id, (amount * 100)::integer, 'pending' FROM auto_top_up_charges
    WHERE id = %(id)s AND payment_id IS NULL
    RETURNING id
)
UPDATE auto_top_up_charges c SET payment_id = made.id FROM made WHERE c.id = %(id)s
"""


def lease_due_charges(limit: int) -> list[Row]:
    with transaction() as conn:
        return conn.execute(_LEASE_DUE, {"limit": limit, "lease": LEASE}).fetchall()


def attach_payment(charge_id: UUID) -> UUID:
    """The charge's payment, made if it has none yet."""
    with transaction() as conn:
        conn.execute(_ATTACH_PAYMENT, {"id": charge_id})
        row = conn.execute("SELECT payment_id FROM auto_top_up_charges WHERE id = %s", [charge_id]).fetchone()
    assert row is not None and row["payment_id"] is not None
    return UUID(str(row["payment_id"]))


def charge_sent(conn: Conn, charge_id: UUID, payment_intent: str) -> None:
    """Stripe took the charge (its payment intent): the webhook that confirms it credits it. A confirmation that came
    first has already settled it."""
    conn.execute(
        "UPDATE payments p SET stripe_payment_id = coalesce(p.stripe_payment_id, %(intent)s), updated_at = now() "
        "FROM auto_top_up_charges c WHERE c.id = %(id)s AND p.id = c.payment_id",
        {"id": charge_id, "intent": payment_intent},
    )
    conn.execute(
        "UPDATE auto_top_up_charges SET status = 'processing', payment_intent = %(intent)s, next_attempt_at = NULL, "
        "updated_at = now() WHERE id = %(id)s AND status = 'requested'",
        {"id": charge_id, "intent": payment_intent},
    )


def retry_charge(charge_id: UUID, wait: timedelta) -> None:
    """No answer from Stripe: the same charge (and idempotency key) is sent again after `wait`."""
    with transaction() as conn:
        conn.execute(
            "UPDATE auto_top_up_charges SET next_attempt_at = now() + %s, updated_at = now() "
            "WHERE id = %s AND status = 'requested'",
            [wait, charge_id],
        )


def charge_by_id(conn: Conn, charge_id: UUID) -> Row | None:
    return conn.execute(f"SELECT {_CHARGE_COLUMNS} FROM auto_top_up_charges c WHERE c.id = %s", [charge_id]).fetchone()


def charge_of_payment(conn: Conn, payment_id: UUID) -> Row | None:
    """The charge a payment was made for (none for a checkout's payment)."""
    return conn.execute(
        f"SELECT {_CHARGE_COLUMNS} FROM auto_top_up_charges c WHERE c.payment_id = %s", [payment_id]
    ).fetchone()


def settle_charge(conn: Conn, charge_id: UUID, *, succeeded: bool, code: str | None, error: str | None) -> None:
    conn.execute(
        "UPDATE auto_top_up_charges SET status = %s, error_code = %s, error = %s, next_attempt_at = NULL, "
        "updated_at = now() WHERE id = %s",
        ["succeeded" if succeeded else "failed", code and code[:100], error and error[:500], charge_id],
    )


def charges_waiting(older_than: timedelta) -> int:
    """Charges in flight for longer than `older_than`: Stripe has not answered, or its confirmation has not come."""
    row = (
        connection()
        .execute(
            "SELECT count(*) AS n FROM auto_top_up_charges WHERE status IN ('requested', 'processing') "
            "AND created_at < now() - %s",
            [older_than],
        )
        .fetchone()
    )
    return int(row["n"]) if row else 0
