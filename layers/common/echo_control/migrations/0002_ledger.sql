-- depends: 0001_seed_models
-- The append-only ledger, the cached balance it keeps, and idempotent request records.

CREATE TABLE balances (
    user_id     uuid PRIMARY KEY REFERENCES users (id),
    balance     numeric(18, 6) NOT NULL DEFAULT 0 CHECK (balance >= 0),
    total_paid  numeric(18, 6) NOT NULL DEFAULT 0,
    total_spent numeric(18, 6) NOT NULL DEFAULT 0 CHECK (total_spent >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_entries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    kind            text NOT NULL CHECK (kind IN ('payment_credit', 'llm_debit', 'admin_adjustment', 'refund')),
    amount          numeric(18, 6) NOT NULL CHECK (amount <> 0),  -- signed USD
    idempotency_key text NOT NULL UNIQUE,
    reference_id    uuid,            -- the payment or LLM transaction behind the entry
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_user_idx ON ledger_entries (user_id, id);

CREATE FUNCTION ledger_entries_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER ledger_entries_no_update_or_delete BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_are_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_are_append_only();

-- Idempotency-Key records for POST /api/transactions: the first response is replayed.
CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL REFERENCES users (id),
    key          text NOT NULL,
    request_hash text NOT NULL,
    status_code  integer,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
