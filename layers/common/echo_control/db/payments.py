"""Payments (credit purchases) and the Stripe events already applied."""

from decimal import Decimal
from uuid import UUID

from echo_control.db.connection import Conn, Row, connection, transaction

_PAYMENT_COLUMNS = (
    "p.id, p.stripe_payment_id, p.stripe_session_id, p.amount, p.amount_refunded, p.currency, p.status, "
    "p.user_id, p.echo_app_id, p.created_at, p.updated_at, p.status_before_dispute, p.amount_disputed, "
    "p.dispute_unspent, p.dispute_debt"
)


def insert_payment(user_id: UUID, amount_cents: int, echo_app_id: UUID | None) -> Row:
    with transaction() as conn:
        row = conn.execute(
            "INSERT INTO payments AS p (user_id, amount, echo_app_id, status) VALUES (%s, %s, %s, 'pending') "
            "RETURNING " + _PAYMENT_COLUMNS,
            [user_id, amount_cents, echo_app_id],
        ).fetchone()
    assert row is not None
    return row


def set_payment_session(payment_id: UUID, session_id: str) -> None:
    with transaction() as conn:
        conn.execute(
            "UPDATE payments SET stripe_session_id = %s, updated_at = now() WHERE id = %s",
            [session_id, payment_id],
        )


def payments_for_user(user_id: UUID, limit: int) -> list[Row]:
    return (
        connection()
        .execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments p WHERE p.user_id = %s ORDER BY p.created_at DESC LIMIT %s",
            [user_id, limit],
        )
        .fetchall()
    )


def payment_by_id(payment_id: UUID) -> Row | None:
    return connection().execute(f"SELECT {_PAYMENT_COLUMNS} FROM payments p WHERE p.id = %s", [payment_id]).fetchone()


def record_stripe_event(conn: Conn, event_id: str, event_type: str) -> bool:
    """True when the event is new; False when it was applied before (a redelivery)."""
    row = conn.execute(
        "INSERT INTO stripe_events (id, type) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING id",
        [event_id, event_type],
    ).fetchone()
    return row is not None


def lock_payment(
    conn: Conn, *, payment_id: UUID | None, session_id: str | None, payment_intent: str | None
) -> Row | None:
    return conn.execute(
        f"SELECT {_PAYMENT_COLUMNS} FROM payments p WHERE p.id = %(id)s "
        "OR (%(session)s::text IS NOT NULL AND p.stripe_session_id = %(session)s) "
        "OR (%(intent)s::text IS NOT NULL AND p.stripe_payment_id = %(intent)s) "
        "ORDER BY p.created_at LIMIT 1 FOR UPDATE",
        {"id": payment_id, "session": session_id, "intent": payment_intent},
    ).fetchone()


def update_payment(
    conn: Conn,
    payment_id: UUID,
    *,
    status: str,
    stripe_payment_id: str | None,
    amount_refunded: int,
) -> None:
    conn.execute(
        "UPDATE payments SET status = %s, stripe_payment_id = COALESCE(stripe_payment_id, %s), "
        "amount_refunded = %s, updated_at = now() WHERE id = %s",
        [status, stripe_payment_id, amount_refunded, payment_id],
    )


def record_dispute(
    conn: Conn, payment_id: UUID, *, status: str, before: str | None, cents: int, unspent: Decimal, debt: Decimal
) -> None:
    """The payment's dispute: its status (`disputed`, or back to `before` when won), what it disputes and took."""
    conn.execute(
        "UPDATE payments SET status = %s, status_before_dispute = %s, amount_disputed = %s, dispute_unspent = %s, "
        "dispute_debt = %s, updated_at = now() WHERE id = %s",
        [status, before, cents, unspent, debt, payment_id],
    )
