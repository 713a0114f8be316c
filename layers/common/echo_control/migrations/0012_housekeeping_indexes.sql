-- depends: 0011_customers_earnings
-- What housekeeping sweeps finds its rows by: the oldest Idempotency-Key records, and pending payments by age
-- (a partial index: pending payments are few beside the rest).

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
CREATE INDEX payments_pending_created_idx ON payments (created_at) WHERE status = 'pending';
