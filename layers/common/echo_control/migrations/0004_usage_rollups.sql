-- depends: 0003_stripe_events
-- Daily usage per app, user, model and status, kept in the same transaction as each LLM call.

CREATE TABLE usage_daily (
    echo_app_id   uuid NOT NULL REFERENCES echo_apps (id),
    day           date NOT NULL,   -- UTC
    model         text NOT NULL,
    status        text NOT NULL,
    user_id       uuid NOT NULL REFERENCES users (id),
    calls         bigint NOT NULL,
    input_tokens  bigint NOT NULL,
    output_tokens bigint NOT NULL,
    total_tokens  bigint NOT NULL,
    cost          numeric(18, 6) NOT NULL,
    PRIMARY KEY (echo_app_id, day, model, status, user_id)
);
CREATE INDEX usage_daily_user_idx ON usage_daily (user_id, day);
