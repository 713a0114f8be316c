"""Events for developers' webhooks, written to the outbox in the transaction of the change each one reports.

`emit` is the one way in from Python: a change that commits has its event, a change that rolls back has none.
balance.low and key.limit_reached come from the database itself (triggers in migration 0017, in the debit's own
statement), so the metering hot path pays no extra round trip; a call refused for its key's limit reports it here.
Amounts and ids are strings in every payload (amounts as exact decimal strings)."""

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from echo_control import db
from echo_control.errors import PaymentRequired

PAYMENT_SUCCEEDED: Final = "payment.succeeded"
PAYMENT_REFUNDED: Final = "payment.refunded"
BALANCE_LOW: Final = "balance.low"
KEY_LIMIT_REACHED: Final = "key.limit_reached"
CUSTOMER_CREATED: Final = "customer.created"
PAYOUT_PAID: Final = "payout.paid"
PAYOUT_FAILED: Final = "payout.failed"
DISPUTE_CREATED: Final = "dispute.created"
AUTO_TOP_UP_FAILED: Final = "auto_top_up.failed"
TYPES: Final = (
    PAYMENT_SUCCEEDED,
    PAYMENT_REFUNDED,
    BALANCE_LOW,
    KEY_LIMIT_REACHED,
    CUSTOMER_CREATED,
    PAYOUT_PAID,
    PAYOUT_FAILED,
    DISPUTE_CREATED,
    AUTO_TOP_UP_FAILED,
)


def emit(conn: db.Conn, user_id: UUID, event_type: str, data: dict[str, Any]) -> UUID:
    """Records one event for `user_id` (and a delivery to each of their endpoints subscribed to its type) inside
    the caller's transaction; its id, which is the webhook-id of every delivery of it."""
    assert event_type in TYPES, event_type
    return db.emit_event(conn, user_id, event_type, {k: _plain(v) for k, v in data.items()})


def key_limit_reached(conn: db.Conn, api_key_id: UUID) -> None:
    """A call or hold was refused for the key's spend limit: key.limit_reached, once per key, period and limit."""
    db.emit_key_limit_reached(conn, api_key_id)


def _plain(value: Any) -> Any:
    """Ids and amounts as strings: a JSON number would lose an amount's exactness in many receivers."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, UUID):
        return str(value)
    return value


def usd(cents: int) -> str:
    """An amount Stripe counts in cents, as decimal dollars."""
    return format(Decimal(cents) / 100, ".2f")


@contextmanager
def reporting_key_limit(api_key_id: UUID | None) -> Iterator[None]:
    """Around a debit or a hold: when it is refused for the key's spend limit (402 key_limit_exceeded), reports
    key.limit_reached (after the refusal rolled back, in a transaction of its own) and lets the refusal through."""
    try:
        yield
    except PaymentRequired as exc:
        if exc.code == "key_limit_exceeded" and api_key_id is not None:
            with db.transaction() as conn:
                key_limit_reached(conn, api_key_id)
        raise
