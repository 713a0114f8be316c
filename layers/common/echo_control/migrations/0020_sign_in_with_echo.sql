-- depends: 0012_housekeeping_indexes
-- Sign in with Echo: OAuth 2.1 authorization code with PKCE for apps.
--
-- An app registers exact redirect URIs. A person's consent makes a grant: a chain of one authorization code, then
-- access and refresh tokens (all kept only as SHA-256 hashes). Each grant has its own api_keys row, never shown to
-- anyone (its hash is of a secret nobody holds): an access token resolves to it, so metering, holds, spend limits,
-- rate limits and the ledger treat the grant exactly as an API key of that app for that person. Revoking the grant
-- revokes that key, which stops every token of the grant at once.

ALTER TABLE echo_apps ADD COLUMN redirect_uris text[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(redirect_uris) <= 10);

CREATE TABLE oauth_grants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id),
    echo_app_id uuid NOT NULL REFERENCES echo_apps (id),
    api_key_id  uuid NOT NULL UNIQUE REFERENCES api_keys (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    -- why it ended: 'revoked' (RFC 7009), 'disconnected' (the person), 'code_reused', 'refresh_token_reused'
    revoked_reason text
);
CREATE INDEX oauth_grants_user_idx ON oauth_grants (user_id, echo_app_id) WHERE revoked_at IS NULL;

-- Single use: used_at is set by the exchange that wins; a second exchange finds it set and revokes the grant.
CREATE TABLE oauth_codes (
    code_hash      bytea PRIMARY KEY,
    grant_id       uuid NOT NULL UNIQUE REFERENCES oauth_grants (id),
    redirect_uri   text NOT NULL,
    code_challenge text NOT NULL,
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);

CREATE TABLE oauth_tokens (
    token_hash bytea PRIMARY KEY,
    grant_id   uuid NOT NULL REFERENCES oauth_grants (id),
    kind       text NOT NULL CHECK (kind IN ('access', 'refresh')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    -- a refresh token's rotation: the one exchange that may use it; presenting it again revokes the grant
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX oauth_tokens_grant_idx ON oauth_tokens (grant_id);
