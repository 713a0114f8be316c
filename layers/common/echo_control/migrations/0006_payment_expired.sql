-- depends: 0005_rate_limits
-- A checkout session that can no longer be paid leaves its payment expired (Stripe's event or housekeeping).

ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'refunded', 'expired'));
