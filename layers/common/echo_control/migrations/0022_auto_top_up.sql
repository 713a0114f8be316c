-- depends: 0014_earnings_clearing_credit_codes 0017_webhooks
-- Automatic top-up: a card saved for off-session charges (a Stripe Customer per user), the user's settings, and the
-- charges it makes. A statement that lowers what a user can spend below their threshold requests a charge in that
-- same statement (the trigger below, as balance.low is written): the metering hot path pays no round trip and never
-- waits for Stripe; a worker (the runner's thread locally, a scheduled function in the cloud) sends it to Stripe.

-- One Stripe Customer per user, made on their first setup link; the card saved through it for off-session charges.
CREATE TABLE billing_customers (
    user_id            uuid PRIMARY KEY REFERENCES users (id),
    stripe_customer_id text NOT NULL UNIQUE,
    payment_method_id  text,
    card_brand         text,
    card_last4         text CHECK (length(card_last4) <= 4),
    card_exp_month     integer,
    card_exp_year      integer,
    card_saved_at      timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Checkout sessions in setup mode (Stripe's, or the local mock's): whose card a completed one saves.
CREATE TABLE card_setups (
    session_id   text PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX card_setups_user_idx ON card_setups (user_id, created_at DESC);

CREATE TABLE auto_top_ups (
    user_id         uuid PRIMARY KEY REFERENCES users (id),
    enabled         boolean NOT NULL DEFAULT false,
    threshold       numeric(18, 6) NOT NULL CHECK (threshold >= 0),
    amount          numeric(18, 6) NOT NULL CHECK (amount > 0 AND amount = round(amount, 2)),
    monthly_limit   numeric(18, 6) NOT NULL,
    -- the next charge's number: its Stripe Idempotency-Key is auto-top-up-<user>-<sequence>
    next_sequence   integer NOT NULL DEFAULT 1,
    -- why auto top-up turned itself off (a decline, a required authentication), until it is turned on again
    last_error      text CHECK (length(last_error) <= 500),
    last_error_code text CHECK (length(last_error_code) <= 100),
    last_error_at   timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (monthly_limit >= amount)
);

-- requested: for the worker to send to Stripe (again at next_attempt_at, with the same idempotency key, when no
-- answer came); processing: Stripe took it, its payment_intent.succeeded credits it; succeeded: credited; failed:
-- declined, authentication required, cancelled before it was sent, or Stripe never answered.
CREATE TABLE auto_top_up_charges (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id),
    sequence        integer NOT NULL,
    amount          numeric(18, 6) NOT NULL CHECK (amount > 0),
    month           date NOT NULL,  -- the UTC calendar month it counts in: when it was requested
    status          text NOT NULL DEFAULT 'requested'
                    CHECK (status IN ('requested', 'processing', 'succeeded', 'failed')),
    payment_id      uuid UNIQUE REFERENCES payments (id),
    payment_intent  text,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    error_code      text CHECK (length(error_code) <= 100),
    error           text CHECK (length(error) <= 500),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, sequence),
    CHECK ((status = 'requested') = (next_attempt_at IS NOT NULL))
);
-- Never two in flight for a user, whatever the code above it does.
CREATE UNIQUE INDEX auto_top_up_charges_in_flight_idx ON auto_top_up_charges (user_id)
    WHERE status IN ('requested', 'processing');
CREATE INDEX auto_top_up_charges_due_idx ON auto_top_up_charges (next_attempt_at) WHERE status = 'requested';
CREATE INDEX auto_top_up_charges_month_idx ON auto_top_up_charges (user_id, month);

-- The threshold while auto top-up is on (else NULL), beside the balance, so that the trigger's WHEN decides without
-- a lookup: a debit of a user without auto top-up, or above the threshold, does not even call the trigger.
ALTER TABLE balances ADD COLUMN top_up_below numeric(18, 6);

-- Requests one charge of the user's amount when a statement lowered what they can spend (live lots less debt and
-- holds not yet lapsed) below the threshold, unless one is in flight or the month's charges (succeeded and in
-- flight) would pass the monthly limit. Lock order: the balance row (the statement that fired this holds it), then
-- the settings row; each query here sees what committed before that lock was granted (a new snapshot per query), so
-- two debits crossing together request one charge. A refund or dispute sets echo.auto_top_up_paused for its
-- transaction: taking money back never charges the card again.
CREATE FUNCTION request_auto_top_up() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    setting auto_top_ups%ROWTYPE;
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    available numeric;
    committed numeric;
BEGIN
    IF current_setting('echo.auto_top_up_paused', true) = 'on' THEN
        RETURN NULL;
    END IF;
    SELECT * INTO setting FROM auto_top_ups WHERE user_id = NEW.user_id FOR UPDATE;
    IF NOT FOUND OR NOT setting.enabled THEN
        RETURN NULL;
    END IF;
    available := NEW.balance - NEW.held
        + coalesce((SELECT sum(amount) FROM holds
                    WHERE user_id = NEW.user_id AND status = 'active' AND expires_at <= now()), 0)
        - coalesce((SELECT sum(remaining) FROM credit_lots
                    WHERE user_id = NEW.user_id AND remaining > 0 AND expires_at <= now()), 0);
    IF available >= setting.threshold THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM auto_top_up_charges
               WHERE user_id = NEW.user_id AND status IN ('requested', 'processing')) THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(sum(amount), 0) INTO committed FROM auto_top_up_charges
    WHERE user_id = NEW.user_id AND month = this_month AND status <> 'failed';
    IF committed + setting.amount > setting.monthly_limit THEN
        RETURN NULL;
    END IF;
    INSERT INTO auto_top_up_charges (user_id, sequence, amount, month, next_attempt_at)
    VALUES (NEW.user_id, setting.next_sequence, setting.amount, this_month, now());
    UPDATE auto_top_ups SET next_sequence = next_sequence + 1 WHERE user_id = NEW.user_id;
    PERFORM pg_notify('auto_top_ups', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER balances_auto_top_up AFTER UPDATE OF balance, held ON balances
    FOR EACH ROW WHEN (NEW.top_up_below IS NOT NULL AND NEW.balance - NEW.held < NEW.top_up_below
                       AND NEW.balance - NEW.held < OLD.balance - OLD.held)
    EXECUTE FUNCTION request_auto_top_up();
