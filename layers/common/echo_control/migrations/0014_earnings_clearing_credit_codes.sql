-- depends: 0013_lots_debt
-- Earnings that clear, without a row every customer's call must lock; reversals; credit codes.
--
-- A call appends its owner's earning entry (with clears_at: ECHO_EARNINGS_CLEARING_DAYS after the call) and touches
-- nothing shared with the app's other customers. Housekeeping folds new entries into the owner's cached account
-- (into clearing, or available once cleared: `folded`), and moves folded entries whose time came from clearing to
-- available (`cleared`); readers and payouts add what is not folded yet, so their figures are exact at any moment.
-- Per owner, always: lifetime = clearing + available + pending + paid_out + reversed.

ALTER TABLE earning_entries DROP CONSTRAINT earning_entries_kind_check;
ALTER TABLE earning_entries ADD CONSTRAINT earning_entries_kind_check
    CHECK (kind IN ('markup', 'payout', 'payout_returned', 'reversal'));
ALTER TABLE earning_entries
    ADD COLUMN clears_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN folded    boolean NOT NULL DEFAULT true,
    ADD COLUMN cleared   boolean NOT NULL DEFAULT true;
-- what is not folded, or folded and still clearing: few rows, found by owner and by time
CREATE INDEX earning_entries_unfolded_idx ON earning_entries (user_id, id) WHERE NOT folded;
CREATE INDEX earning_entries_clearing_idx ON earning_entries (clears_at) WHERE folded AND NOT cleared;

-- Entries stay append-only: only housekeeping's two markers may change, and only from false to true.
CREATE FUNCTION earning_entries_only_fold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.id, NEW.user_id, NEW.kind, NEW.amount, NEW.idempotency_key, NEW.reference_id,
                             NEW.echo_app_id, NEW.created_at, NEW.clears_at)
                            IS NOT DISTINCT FROM
                            (OLD.id, OLD.user_id, OLD.kind, OLD.amount, OLD.idempotency_key, OLD.reference_id,
                             OLD.echo_app_id, OLD.created_at, OLD.clears_at)
       AND (NEW.folded OR NOT OLD.folded) AND (NEW.cleared OR NOT OLD.cleared) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'earning entries are append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
DROP TRIGGER earning_entries_no_update_or_delete ON earning_entries;
CREATE TRIGGER earning_entries_no_update_or_delete BEFORE UPDATE OR DELETE ON earning_entries
    FOR EACH ROW EXECUTE FUNCTION earning_entries_only_fold();

-- A reversal may take an owner's available below zero (payouts wait until it is positive again).
ALTER TABLE earnings_accounts DROP CONSTRAINT earnings_accounts_available_check;
ALTER TABLE earnings_accounts DROP CONSTRAINT earnings_accounts_lifetime_check;
ALTER TABLE earnings_accounts
    ADD COLUMN clearing numeric(18, 6) NOT NULL DEFAULT 0,
    ADD COLUMN reversed numeric(18, 6) NOT NULL DEFAULT 0 CHECK (reversed >= 0);

-- What a refund or a dispute has already reversed of the earnings each call paid from a lot, and how much of a lot's
-- spent credits were refunded (the share of its earnings reversed so far).
ALTER TABLE call_lots ADD COLUMN reversed numeric(18, 6) NOT NULL DEFAULT 0 CHECK (reversed >= 0);
ALTER TABLE call_lots ADD CONSTRAINT call_lots_reversed_within_earned CHECK (reversed <= earned);
ALTER TABLE credit_lots ADD COLUMN spent_refunded numeric(18, 6) NOT NULL DEFAULT 0 CHECK (spent_refunded >= 0);
CREATE INDEX call_lots_transaction_idx ON call_lots (transaction_id);

-- Disputes: the payment's status while one is open or lost, and what it took.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'refunded', 'expired', 'disputed'));
ALTER TABLE payments
    ADD COLUMN status_before_dispute text,
    ADD COLUMN amount_disputed bigint NOT NULL DEFAULT 0 CHECK (amount_disputed >= 0),
    ADD COLUMN dispute_unspent numeric(18, 6) NOT NULL DEFAULT 0,
    ADD COLUMN dispute_debt numeric(18, 6) NOT NULL DEFAULT 0;

-- Credit codes: promotional grants, each redeemable once per user and at most max_uses times in all.
CREATE TABLE credit_codes (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code        text NOT NULL UNIQUE,
    amount      numeric(18, 6) NOT NULL CHECK (amount > 0),
    max_uses    integer NOT NULL CHECK (max_uses > 0),
    uses        integer NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    expires_at  timestamptz,
    credit_days integer CHECK (credit_days > 0),
    created_by  uuid NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE credit_code_redemptions (
    code_id     uuid NOT NULL REFERENCES credit_codes (id),
    user_id     uuid NOT NULL REFERENCES users (id),
    lot_id      bigint NOT NULL REFERENCES credit_lots (id),
    redeemed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (code_id, user_id)
);
