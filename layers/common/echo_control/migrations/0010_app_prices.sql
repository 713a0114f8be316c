-- depends: 0009_holds_key_limits
-- An app's own prices: the models it allows (NULL: every model) and per-model prices that win over the
-- genai-prices data. Names are kept as the owner typed them for display; matching uses their key, the name
-- lower-cased without a provider prefix ("OpenAI/GPT-4o" → "gpt-4o"), as pricing matches a call's model.
-- prices_version counts the changes (0: never set): the key lookup reads it, so a debit can use the app's
-- prices as its function last loaded them, and loads them again only after a change.

ALTER TABLE echo_apps
    ADD COLUMN allowed_models     text[],
    ADD COLUMN allowed_model_keys text[],
    ADD COLUMN prices_version     bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT echo_apps_allowed_models_keyed CHECK (
        (allowed_models IS NULL) = (allowed_model_keys IS NULL)
        AND cardinality(allowed_models) = cardinality(allowed_model_keys)
        AND cardinality(allowed_models) <= 500
    );

CREATE TABLE app_model_prices (
    echo_app_id             uuid NOT NULL REFERENCES echo_apps (id) ON DELETE CASCADE,
    model_key               text NOT NULL CHECK (length(model_key) BETWEEN 1 AND 200),
    model                   text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
    -- USD per million tokens; a NULL cache price charges those tokens at the input price
    input_per_million       numeric(11, 6) NOT NULL CHECK (input_per_million BETWEEN 0 AND 10000),
    output_per_million      numeric(11, 6) NOT NULL CHECK (output_per_million BETWEEN 0 AND 10000),
    cache_read_per_million  numeric(11, 6) CHECK (cache_read_per_million BETWEEN 0 AND 10000),
    cache_write_per_million numeric(11, 6) CHECK (cache_write_per_million BETWEEN 0 AND 10000),
    PRIMARY KEY (echo_app_id, model_key)
);
