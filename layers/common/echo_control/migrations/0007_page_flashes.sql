-- depends: 0006_payment_expired
-- One-time messages from a form post to the page it redirects to (post/redirect/get): a new API key is
-- shown exactly once. The message is encrypted with a key that only the browser's cookie holds, so this
-- table alone reveals nothing; reading a message deletes it, and unread ones expire within minutes.

CREATE TABLE page_flashes (
    id         uuid PRIMARY KEY,
    ciphertext bytea NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX page_flashes_expiry_idx ON page_flashes (expires_at);
