"""The data-access package: the only place SQL lives, one module per aggregate.

Statements are parameterised constants; nothing is string-formatted into SQL. Callers use `db.<function>`;
the names below are the package's whole surface.
"""

from echo_control.db.analytics import usage_by_day, usage_by_model
from echo_control.db.apps import app_for_owner, apps_with_totals, insert_app, update_app
from echo_control.db.connection import Conn, Row, connection, discard_connection, forget_connections, transaction
from echo_control.db.flashes import insert_flash, take_flash
from echo_control.db.housekeeping import (
    expire_pending_payments,
    purge_expired_flashes,
    purge_idempotency_keys,
    purge_rate_limit_windows,
)
from echo_control.db.keys import active_api_key, api_keys_for_user, insert_api_key, revoke_api_key
from echo_control.db.ledger import (
    RECORD_DEBIT,
    adjustments_for_user,
    adjustments_total,
    apply_entry,
    balance,
    claim_idempotency_key,
    lock_balance,
    record_debit,
    store_idempotent_response,
)
from echo_control.db.migrations import apply_migrations
from echo_control.db.payments import (
    insert_payment,
    lock_payment,
    payment_by_id,
    payments_for_user,
    record_stripe_event,
    set_payment_session,
    update_payment,
)
from echo_control.db.transactions import transactions_page
from echo_control.db.users import set_user_clerk_id, user_by_email, user_by_id, user_for_clerk_id

__all__ = [
    "RECORD_DEBIT",
    "Conn",
    "Row",
    "active_api_key",
    "adjustments_for_user",
    "adjustments_total",
    "api_keys_for_user",
    "app_for_owner",
    "apply_entry",
    "apply_migrations",
    "apps_with_totals",
    "balance",
    "claim_idempotency_key",
    "connection",
    "discard_connection",
    "expire_pending_payments",
    "forget_connections",
    "insert_api_key",
    "insert_app",
    "insert_flash",
    "insert_payment",
    "lock_balance",
    "lock_payment",
    "payment_by_id",
    "payments_for_user",
    "purge_expired_flashes",
    "purge_idempotency_keys",
    "purge_rate_limit_windows",
    "record_debit",
    "record_stripe_event",
    "revoke_api_key",
    "set_payment_session",
    "set_user_clerk_id",
    "store_idempotent_response",
    "take_flash",
    "transaction",
    "transactions_page",
    "update_app",
    "update_payment",
    "usage_by_day",
    "usage_by_model",
    "user_by_email",
    "user_by_id",
    "user_for_clerk_id",
]
