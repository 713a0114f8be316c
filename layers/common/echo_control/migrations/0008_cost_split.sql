-- depends: 0007_page_flashes
-- The cost split: what a call paid is its provider cost plus the app's markup, which is the owner's. Only the
-- markup is stored; providerCost is cost - markup_amount. Existing calls had no known markup: all provider cost.
-- Cache and reasoning token counts and the provider are kept as the caller reported them.

ALTER TABLE llm_transactions
    ADD COLUMN markup_amount      numeric(10, 6) NOT NULL DEFAULT 0,
    ADD COLUMN provider           text,
    ADD COLUMN cache_read_tokens  integer NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens integer NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens   integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT llm_transactions_markup_within_cost CHECK (markup_amount >= 0 AND markup_amount <= cost);

ALTER TABLE usage_daily ADD COLUMN markup_amount numeric(18, 6) NOT NULL DEFAULT 0;
