-- depends: 0012_housekeeping_indexes
-- One record per Idempotency-Key for every money write, scoped by who may reuse it: an API key (calls, holds),
-- a user (their payouts), the user an admin adjusts (adjustments), a hold (its one settle). Before, keys were
-- scoped by user alone (two apps' keys of one user shared them), payouts kept theirs in a column that compared
-- only the amount, a settled hold kept a hash of its settle, and an admin's key was global.

ALTER TABLE idempotency_keys RENAME TO idempotency_keys_by_user;
ALTER INDEX idempotency_keys_created_idx RENAME TO idempotency_keys_by_user_created_idx;

CREATE TABLE idempotency_keys (
    scope_kind   text NOT NULL CHECK (scope_kind IN ('api_key', 'user', 'adjusted_user', 'hold')),
    scope_id     uuid NOT NULL,
    key          text NOT NULL,
    operation    text NOT NULL,  -- which write claimed it: the same key on another route is another request
    request_hash text NOT NULL,
    response     jsonb,          -- the first answer, stored in the transaction that made it
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope_kind, scope_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Records still replaying keep doing so, now under the API key that made them.
INSERT INTO idempotency_keys (scope_kind, scope_id, key, operation, request_hash, response, created_at)
SELECT 'api_key', t.api_key_id, o.key, 'record_transaction', o.request_hash, o.response, o.created_at
FROM idempotency_keys_by_user o
JOIN llm_transactions t ON t.id::text = o.response ->> 'id'
WHERE o.key NOT LIKE 'hold:%' AND o.response IS NOT NULL AND t.api_key_id IS NOT NULL
ON CONFLICT DO NOTHING;

INSERT INTO idempotency_keys (scope_kind, scope_id, key, operation, request_hash, response, created_at)
SELECT 'api_key', h.api_key_id, substr(o.key, 6), 'create_hold', o.request_hash, o.response, o.created_at
FROM idempotency_keys_by_user o
JOIN holds h ON h.id::text = o.response ->> 'id'
WHERE o.key LIKE 'hold:%' AND o.response IS NOT NULL
ON CONFLICT DO NOTHING;

INSERT INTO idempotency_keys (scope_kind, scope_id, key, operation, request_hash, response, created_at)
SELECT 'hold', id, 'settle', 'settle_hold', settle_hash, settle_response, closed_at
FROM holds WHERE status = 'settled' AND settle_hash IS NOT NULL AND settle_response IS NOT NULL;

-- A payout's request is its amount, hashed as echo_control.idempotency hashes it: {"amount":"10.5"}, money without trailing zeros.
INSERT INTO idempotency_keys (scope_kind, scope_id, key, operation, request_hash, response, created_at)
SELECT 'user', user_id, idempotency_key, 'request_payout',
       encode(sha256(convert_to('{"amount":"' || trim_scale(amount)::text || '"}', 'UTF8')), 'hex'),
       jsonb_build_object('id', id), created_at
FROM payouts;

DROP TABLE idempotency_keys_by_user;
ALTER TABLE holds DROP COLUMN settle_hash, DROP COLUMN settle_response;
ALTER TABLE payouts DROP COLUMN idempotency_key;
