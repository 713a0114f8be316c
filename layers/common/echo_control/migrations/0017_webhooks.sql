-- depends: 0012_housekeeping_indexes
-- Webhooks to developers (Standard Webhooks): endpoints, an outbox of events written in the same transaction as
-- the change each reports, one delivery per (event, subscribed endpoint) with its attempts, and low-balance alerts.
--
-- Every event enters through emit_webhook_event(), called by the layer (echo_control.events.emit) and by the two
-- triggers below, so an event exists exactly when the change it reports commits. NOTIFY is transactional too: the
-- local deliverer wakes on commit, never for a rolled-back change.

CREATE TABLE webhook_endpoints (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id),
    url             text NOT NULL CHECK (length(url) <= 2048),
    events          text[] NOT NULL CHECK (cardinality(events) > 0),
    -- AES-GCM (nonce || ciphertext, the endpoint's id as associated data): signing needs the secret itself
    secret_sealed   bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- the first failure of the current unbroken run of failures; five days of them disable the endpoint
    failing_since   timestamptz,
    disabled_at     timestamptz,
    disabled_reason text
);
CREATE INDEX webhook_endpoints_user_idx ON webhook_endpoints (user_id, created_at DESC);

-- The outbox. dedupe_key makes an event that may be reported from two places (a key's limit reached by a recorded
-- call, or found when a call is refused) exist once.
CREATE TABLE webhook_events (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id),
    type       text NOT NULL,
    data       jsonb NOT NULL,
    dedupe_key text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_user_idx ON webhook_events (user_id, created_at DESC);
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id         uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- pending: to be sent at next_attempt_at; succeeded: a 2xx came back; failed: 24 hours of attempts failed
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_status_code integer,
    -- when the cloud's relay last put it on the queue (the local deliverer reads the table directly)
    queued_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC);

CREATE TABLE webhook_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id   uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at  timestamptz NOT NULL DEFAULT now(),
    status_code   integer,
    error         text CHECK (length(error) <= 500),
    response_body text CHECK (octet_length(response_body) <= 1024),  -- never more than 1 KB of what came back
    duration_ms   integer NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

CREATE TABLE balance_alerts (
    user_id               uuid PRIMARY KEY REFERENCES users (id),
    low_balance_threshold numeric(18, 6) NOT NULL CHECK (low_balance_threshold >= 0),
    -- true: the next time spendable goes below the threshold sends balance.low (then false until it rises above)
    low_balance_armed     boolean NOT NULL DEFAULT true,
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Records one event and its deliveries to the user's enabled endpoints subscribed to its type; returns the
-- event's id, or NULL when an event with the same dedupe_key exists already.
CREATE FUNCTION emit_webhook_event(p_user_id uuid, p_type text, p_data jsonb, p_dedupe_key text DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    new_id uuid;
BEGIN
    INSERT INTO webhook_events (user_id, type, data, dedupe_key) VALUES (p_user_id, p_type, p_data, p_dedupe_key)
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (event_id, endpoint_id, next_attempt_at)
    SELECT new_id, e.id, now() FROM webhook_endpoints e
    WHERE e.user_id = p_user_id AND e.disabled_at IS NULL AND p_type = ANY (e.events);
    IF FOUND THEN
        PERFORM pg_notify('webhook_deliveries', '');
    END IF;
    RETURN new_id;
END
$$;

-- balance.low, in the transaction of whatever moved the balance or what it holds (a debit's single statement
-- included, without a round trip): spendable = max(balance - active holds not yet lapsed, 0). Crossing below the
-- threshold while armed sends it once; rising above the threshold re-arms it. A user without an alert costs one
-- primary-key lookup. Lock order: the balance row (the statement that fired this holds it), then the alert row.
CREATE FUNCTION balance_low_alert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    alert balance_alerts%ROWTYPE;
    spendable numeric;
BEGIN
    SELECT * INTO alert FROM balance_alerts WHERE user_id = NEW.user_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    spendable := greatest(NEW.balance - NEW.held + coalesce(
        (SELECT sum(amount) FROM holds WHERE user_id = NEW.user_id AND status = 'active' AND expires_at <= now()),
        0), 0);
    IF alert.low_balance_armed AND spendable < alert.low_balance_threshold THEN
        UPDATE balance_alerts SET low_balance_armed = false, updated_at = now() WHERE user_id = NEW.user_id;
        PERFORM emit_webhook_event(NEW.user_id, 'balance.low', jsonb_build_object(
            'userId', NEW.user_id::text,
            'spendable', spendable::numeric(18, 6)::text,
            'balance', NEW.balance::text,
            'threshold', alert.low_balance_threshold::text));
    ELSIF NOT alert.low_balance_armed AND spendable > alert.low_balance_threshold THEN
        UPDATE balance_alerts SET low_balance_armed = true, updated_at = now() WHERE user_id = NEW.user_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER balances_low_balance_alert AFTER UPDATE OF balance, held ON balances
    FOR EACH ROW WHEN (NEW.balance - NEW.held IS DISTINCT FROM OLD.balance - OLD.held)
    EXECUTE FUNCTION balance_low_alert();

-- key.limit_reached for a key whose spend in its period reached its limit: once per (key, period, limit), whether
-- the spend that reached it was recorded (this trigger) or a call was refused for it (the layer calls it too).
CREATE FUNCTION emit_key_limit_reached(
    p_key_id uuid, p_user_id uuid, p_app_id uuid, p_limit numeric, p_period text, p_spent numeric, p_start date
) RETURNS uuid LANGUAGE sql AS $$
    SELECT emit_webhook_event(p_user_id, 'key.limit_reached', jsonb_build_object(
        'apiKeyId', p_key_id::text,
        'echoAppId', p_app_id::text,
        'spendLimit', p_limit::text,
        'limitPeriod', p_period,
        'spentInPeriod', p_spent::text,
        'periodStart', p_start::text),
        'key.limit_reached:' || p_key_id || ':' || coalesce(p_start::text, '') || ':' || p_limit)
$$;

CREATE FUNCTION key_limit_reached_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM emit_key_limit_reached(NEW.id, NEW.user_id, NEW.echo_app_id, NEW.spend_limit, NEW.limit_period,
                                   NEW.spent_in_period, NEW.spent_period_start);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_limit_reached AFTER UPDATE OF spent_in_period ON api_keys
    FOR EACH ROW WHEN (NEW.spend_limit IS NOT NULL AND NEW.spent_in_period >= NEW.spend_limit
                       AND NEW.spent_in_period IS DISTINCT FROM OLD.spent_in_period)
    EXECUTE FUNCTION key_limit_reached_alert();
