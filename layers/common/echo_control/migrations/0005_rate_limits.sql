-- depends: 0004_usage_rollups
-- Per-API-key request counts in one-minute windows, shared by every Lambda instance.

CREATE TABLE rate_limit_windows (
    api_key_id   uuid NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL,
    PRIMARY KEY (api_key_id, window_start)
);
