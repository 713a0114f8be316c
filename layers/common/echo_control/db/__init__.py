"""The data-access package: the only place SQL lives, one module per aggregate.

Statements are parameterised constants; nothing is string-formatted into SQL. Callers use `db.<function>`;
the names below are the package's whole surface.
"""

from echo_control.db.analytics import usage_by_day, usage_by_model
from echo_control.db.apps import app_for_owner, apps_with_totals, insert_app, update_app
from echo_control.db.connection import Conn, Row, connection, discard_connection, transaction
from echo_control.db.customers import app_for_user, apps_used_by, customers_of_app, join_app
from echo_control.db.earnings import (
    EARN_MARKUP,
    account_for_stripe_id,
    app_earnings_by_day,
    app_earnings_by_model,
    app_lifetime_earnings,
    close_earnings_days,
    complete_payout,
    earnings_account,
    earnings_by_app,
    fail_payout,
    keep_stripe_account,
    lock_earnings_account,
    lock_payout,
    owner_earnings_by_day,
    payout_by_id,
    payout_by_key,
    payouts_for_user,
    return_payout,
    set_payouts_enabled,
    start_payout,
)
from echo_control.db.flashes import insert_flash, take_flash
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
    "EARN_MARKUP",
    "RECORD_DEBIT",
    "Conn",
    "Row",
    "account_for_stripe_id",
    "active_api_key",
    "adjustments_for_user",
    "adjustments_total",
    "api_keys_for_user",
    "app_earnings_by_day",
    "app_earnings_by_model",
    "app_for_owner",
    "app_for_user",
    "app_lifetime_earnings",
    "apply_entry",
    "apply_migrations",
    "apps_used_by",
    "apps_with_totals",
    "balance",
    "claim_idempotency_key",
    "close_earnings_days",
    "complete_payout",
    "connection",
    "customers_of_app",
    "discard_connection",
    "earnings_account",
    "earnings_by_app",
    "fail_payout",
    "insert_api_key",
    "insert_app",
    "insert_flash",
    "insert_payment",
    "join_app",
    "keep_stripe_account",
    "lock_balance",
    "lock_earnings_account",
    "lock_payment",
    "lock_payout",
    "owner_earnings_by_day",
    "payment_by_id",
    "payments_for_user",
    "payout_by_id",
    "payout_by_key",
    "payouts_for_user",
    "record_debit",
    "record_stripe_event",
    "return_payout",
    "revoke_api_key",
    "set_payment_session",
    "set_payouts_enabled",
    "set_user_clerk_id",
    "start_payout",
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
