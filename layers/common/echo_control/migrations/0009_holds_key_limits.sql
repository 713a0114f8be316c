-- depends: 0008_cost_split
-- Holds (reserve, then settle), key spend limits, and the balance after each ledger entry (the statement).
--
-- balances.held and api_keys.held cache the sum of each one's holds in status 'active', kept in the same
-- statement as every hold's change under the balance row's lock. A hold past expires_at stops counting at once:
-- readers subtract the active holds already past their time (locked FOR UPDATE, so a concurrent sweep is seen),
-- until a sweep, a settle or a release marks them expired.

CREATE TABLE holds (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id),
    echo_app_id     uuid NOT NULL REFERENCES echo_apps (id),
    api_key_id      uuid NOT NULL REFERENCES api_keys (id),
    amount          numeric(10, 6) NOT NULL CHECK (amount > 0),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'settled', 'released', 'expired')),
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    closed_at       timestamptz,
    transaction_id  uuid REFERENCES llm_transactions (id),
    settle_hash     text,   -- the settle request's hash: the same body replays, another is refused
    settle_response jsonb,
    CHECK ((status = 'active') = (closed_at IS NULL))
);
CREATE INDEX holds_active_user_idx ON holds (user_id, expires_at) WHERE status = 'active';
CREATE INDEX holds_active_expiry_idx ON holds (expires_at) WHERE status = 'active';

ALTER TABLE balances
    ADD COLUMN held numeric(18, 6) NOT NULL DEFAULT 0 CHECK (held >= 0);

-- A key's limit on what it may spend in a UTC day, a UTC month, or in total. spent_in_period counts from
-- spent_period_start; a debit in a later period starts it again.
ALTER TABLE api_keys
    ADD COLUMN spend_limit        numeric(18, 6) CHECK (spend_limit >= 0),
    ADD COLUMN limit_period       text CHECK (limit_period IN ('day', 'month', 'total')),
    ADD COLUMN spent_in_period    numeric(18, 6) NOT NULL DEFAULT 0,
    ADD COLUMN spent_period_start date,
    ADD COLUMN held               numeric(18, 6) NOT NULL DEFAULT 0 CHECK (held >= 0),
    ADD CONSTRAINT api_keys_limit_has_period CHECK ((spend_limit IS NULL) = (limit_period IS NULL));

ALTER TABLE llm_transactions
    ADD COLUMN hold_id uuid,
    ADD COLUMN overrun boolean NOT NULL DEFAULT false;

-- The statement shows the balance after each entry. Entries of one user are written under the balance row's
-- lock, in id order, so a running sum gives it for the entries already there.
ALTER TABLE ledger_entries ADD COLUMN balance_after numeric(18, 6);
ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_update_or_delete;
UPDATE ledger_entries e SET balance_after = running.balance_after
FROM (SELECT id, sum(amount) OVER (PARTITION BY user_id ORDER BY id) AS balance_after FROM ledger_entries) running
WHERE running.id = e.id;
ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_no_update_or_delete;
ALTER TABLE ledger_entries ALTER COLUMN balance_after SET NOT NULL;
