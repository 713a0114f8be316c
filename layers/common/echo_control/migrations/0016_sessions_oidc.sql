-- depends: 0012_housekeeping_indexes
-- Sessions we start (dev sign-in, OpenID Connect sign-in) are rows, so signing out ends them at once: a token is
-- accepted only while its row is neither revoked nor expired. A dev-mode token (a JWT) names its row by `sid`;
-- an OIDC sign-in's cookie is an opaque secret whose SHA-256 is `token_hash` (the table alone signs nobody in).

CREATE TABLE sessions (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id),
    token_hash bytea UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_expiry_idx ON sessions (expires_at);

-- An OpenID Connect sign-in in flight: what /sign-in sent to the provider (state, nonce, PKCE verifier) until
-- /auth/callback takes it, once, within minutes. Keyed by the SHA-256 of the state, which the browser's cookie
-- and the provider's redirect must both carry.
CREATE TABLE oidc_sign_ins (
    state_hash    bytea PRIMARY KEY,
    nonce         text NOT NULL,
    code_verifier text NOT NULL,
    next_path     text NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX oidc_sign_ins_expiry_idx ON oidc_sign_ins (expires_at);

-- People who sign in through an OpenID Connect provider are known by (issuer, subject), never by email alone.
ALTER TABLE users ADD COLUMN oidc_issuer text, ADD COLUMN oidc_subject text,
    ADD CONSTRAINT users_oidc_identity_key UNIQUE (oidc_issuer, oidc_subject),
    ADD CONSTRAINT users_oidc_identity_whole CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL));
