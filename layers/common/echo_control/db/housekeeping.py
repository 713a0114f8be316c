"""Housekeeping sweeps: each one statement that settles at most `limit` rows and says how many it did.

Each picks its rows with FOR UPDATE SKIP LOCKED: two runs at once take different rows (none is counted twice),
and a row a request is working on (a payment a webhook has locked) is left for a later run, never waited on."""

from datetime import timedelta

from echo_control.db.connection import connection

# A payout's key is kept as long as its payout: money leaves, so a late retry must find it, never pay again.
_PURGE_IDEMPOTENCY_KEYS = """
DELETE FROM idempotency_keys i
USING (
    SELECT scope_kind, scope_id, key FROM idempotency_keys
    WHERE created_at < now() - %(age)s AND operation <> 'request_payout'
    ORDER BY created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
) old
WHERE i.scope_kind = old.scope_kind AND i.scope_id = old.scope_id AND i.key = old.key
"""

# A pending payment with a payment intent is one Stripe completed with a delayed method (a bank debit): the
# money may still come (async_payment_succeeded), so it is not expired.
# The rows are picked once (MATERIALIZED): a plan that ran the pick again for each row it updates would, with SKIP
# LOCKED, pick new rows each time and pass the limit.
_EXPIRE_PENDING_PAYMENTS = """
WITH stale AS MATERIALIZED (
    SELECT id FROM payments
    WHERE status = 'pending' AND stripe_payment_id IS NULL AND created_at < now() - %(age)s
    ORDER BY created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE payments p SET status = 'expired', updated_at = now()
FROM stale
WHERE p.id = stale.id AND p.status = 'pending'
"""

_PURGE_PAGE_FLASHES = """
DELETE FROM page_flashes f
USING (
    SELECT id FROM page_flashes WHERE expires_at < now() ORDER BY expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
) old
WHERE f.id = old.id
"""

# A key's request counting purges its own past windows; a key that stopped calling leaves its last one behind.
_PURGE_RATE_LIMIT_WINDOWS = """
DELETE FROM rate_limit_windows w
USING (
    SELECT api_key_id, window_start FROM rate_limit_windows WHERE window_start < date_trunc('minute', now())
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED
) old
WHERE w.api_key_id = old.api_key_id AND w.window_start = old.window_start
"""


def purge_idempotency_keys(older_than: timedelta, limit: int) -> int:
    """Deletes up to `limit` Idempotency-Key records older than `older_than`, oldest first."""
    return connection().execute(_PURGE_IDEMPOTENCY_KEYS, {"age": older_than, "limit": limit}).rowcount


def expire_pending_payments(older_than: timedelta, limit: int) -> int:
    """Marks up to `limit` pending payments created before `older_than` ago (no checkout can pay them) expired."""
    return connection().execute(_EXPIRE_PENDING_PAYMENTS, {"age": older_than, "limit": limit}).rowcount


def purge_expired_flashes(limit: int) -> int:
    return connection().execute(_PURGE_PAGE_FLASHES, {"limit": limit}).rowcount


def purge_rate_limit_windows(limit: int) -> int:
    """Deletes up to `limit` finished one-minute windows (the current minute's are still counting)."""
    return connection().execute(_PURGE_RATE_LIMIT_WINDOWS, {"limit": limit}).rowcount
