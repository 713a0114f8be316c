-- depends: 0010_app_prices
-- Customers, the owners' earnings and their payouts.
--
-- An app open to customers lets any signed-in user make a key for it; their first key makes them its customer.
-- Every debit credits the app owner's earnings with its markup in the same database transaction: an append-only
-- ledger of earning entries per owner and a cached account beside it, as balances keep ledger_entries. A payout
-- moves earnings from available to pending, then to paid out once Stripe made the transfer; a failed or reversed
-- transfer returns them to available. So, per owner: lifetime = available + pending + paid_out.

ALTER TABLE echo_apps ADD COLUMN accepts_customers boolean NOT NULL DEFAULT false;

CREATE TABLE app_customers (
    echo_app_id uuid NOT NULL REFERENCES echo_apps (id),
    user_id     uuid NOT NULL REFERENCES users (id),
    first_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (echo_app_id, user_id)
);
CREATE INDEX app_customers_user_idx ON app_customers (user_id, first_seen DESC);

CREATE TABLE earnings_accounts (
    user_id           uuid PRIMARY KEY REFERENCES users (id),
    available         numeric(18, 6) NOT NULL DEFAULT 0 CHECK (available >= 0),
    pending           numeric(18, 6) NOT NULL DEFAULT 0 CHECK (pending >= 0),
    paid_out          numeric(18, 6) NOT NULL DEFAULT 0 CHECK (paid_out >= 0),
    lifetime          numeric(18, 6) NOT NULL DEFAULT 0 CHECK (lifetime >= 0),
    -- the owner's Stripe Connect (Express) account, and whether Stripe lets it receive payouts
    stripe_account_id text UNIQUE,
    payouts_enabled   boolean NOT NULL DEFAULT false,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE earning_entries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    kind            text NOT NULL CHECK (kind IN ('markup', 'payout', 'payout_returned')),
    amount          numeric(18, 6) NOT NULL CHECK (amount <> 0),  -- signed USD, moves `available`
    idempotency_key text NOT NULL UNIQUE,
    reference_id    uuid,  -- the LLM transaction (markup) or the payout
    echo_app_id     uuid REFERENCES echo_apps (id),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX earning_entries_user_idx ON earning_entries (user_id, id);

CREATE TRIGGER earning_entries_no_update_or_delete BEFORE UPDATE OR DELETE ON earning_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_are_append_only();
CREATE TRIGGER earning_entries_no_truncate BEFORE TRUNCATE ON earning_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_are_append_only();

CREATE TABLE payouts (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            uuid NOT NULL REFERENCES users (id),
    amount             numeric(18, 6) NOT NULL CHECK (amount > 0 AND amount = round(amount, 2)),  -- whole cents
    -- pending: taken from available, the transfer not yet confirmed; paid: Stripe made the transfer;
    -- failed: Stripe refused it; reversed: the transfer was reversed in full (amount_returned = amount)
    status             text NOT NULL CHECK (status IN ('pending', 'paid', 'failed', 'reversed')),
    amount_returned    numeric(18, 6) NOT NULL DEFAULT 0 CHECK (amount_returned >= 0 AND amount_returned <= amount),
    stripe_account_id  text NOT NULL,
    stripe_transfer_id text UNIQUE,
    idempotency_key    text NOT NULL,
    failure_reason     text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX payouts_user_idx ON payouts (user_id, created_at DESC);

-- Each app's earnings on the rollup days that no longer change (through two days ago, UTC): summed once, then
-- extended as days close, so all-time figures read this row and the few open days, not an app's whole history.
-- Filled when read (echo_control.earnings); always amount = the rollups' markup through through_day.
CREATE TABLE app_earnings_closed (
    echo_app_id uuid PRIMARY KEY REFERENCES echo_apps (id),
    through_day date NOT NULL,
    amount      numeric(18, 6) NOT NULL CHECK (amount >= 0)
);

-- Calls recorded since the cost split (0008) already carry their markup: it becomes the owners' earnings now.
INSERT INTO earning_entries (user_id, kind, amount, idempotency_key, reference_id, echo_app_id, created_at)
SELECT a.user_id, 'markup', t.markup_amount, 'markup:' || t.id, t.id, t.echo_app_id, t.created_at
FROM llm_transactions t JOIN echo_apps a ON a.id = t.echo_app_id
WHERE t.markup_amount > 0;

INSERT INTO earnings_accounts (user_id, available, lifetime)
SELECT user_id, sum(amount), sum(amount) FROM earning_entries GROUP BY user_id;
