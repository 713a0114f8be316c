-- The seed's models: users, Echo apps, API keys, payments, LLM transactions.

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email       text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    name        text,
    clerk_id    text UNIQUE,
    role        text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE echo_apps (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description text CHECK (length(description) <= 1000),
    user_id     uuid NOT NULL REFERENCES users (id),
    -- a multiplier on provider prices: 1.25 charges 25% over cost
    markup      numeric(8, 4) NOT NULL DEFAULT 1 CHECK (markup >= 1 AND markup <= 100),
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX echo_apps_user_idx ON echo_apps (user_id, created_at DESC);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text CHECK (length(name) <= 100),
    -- only a SHA-256 of the key is kept; the key itself is shown once at creation
    key_hash     bytea NOT NULL UNIQUE,
    key_prefix   text NOT NULL,
    key_last4    text NOT NULL,
    user_id      uuid NOT NULL REFERENCES users (id),
    echo_app_id  uuid NOT NULL REFERENCES echo_apps (id),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at DESC);
CREATE INDEX api_keys_app_idx ON api_keys (echo_app_id, created_at DESC);

CREATE TABLE payments (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stripe_payment_id text UNIQUE,
    stripe_session_id text UNIQUE,
    amount            bigint NOT NULL CHECK (amount > 0),   -- cents
    amount_refunded   bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0 AND amount_refunded <= amount),
    currency          text NOT NULL DEFAULT 'usd',
    status            text NOT NULL CHECK (status IN ('pending', 'completed', 'failed', 'refunded')),
    user_id           uuid NOT NULL REFERENCES users (id),
    echo_app_id       uuid REFERENCES echo_apps (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_user_idx ON payments (user_id, created_at DESC);

CREATE TABLE llm_transactions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    model         text NOT NULL,
    input_tokens  integer NOT NULL CHECK (input_tokens >= 0),
    output_tokens integer NOT NULL CHECK (output_tokens >= 0),
    total_tokens  integer NOT NULL CHECK (total_tokens >= 0),
    cost          numeric(10, 6) NOT NULL CHECK (cost >= 0),     -- USD
    status        text NOT NULL CHECK (status IN ('success', 'error', 'timeout')),
    user_id       uuid NOT NULL REFERENCES users (id),
    echo_app_id   uuid NOT NULL REFERENCES echo_apps (id),
    api_key_id    uuid REFERENCES api_keys (id),
    metadata      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- history lists: newest first per user or per app, keyset cursor on (created_at, id)
CREATE INDEX llm_transactions_user_idx ON llm_transactions (user_id, created_at DESC, id DESC);
CREATE INDEX llm_transactions_app_idx ON llm_transactions (echo_app_id, created_at DESC, id DESC);
