-- depends: 0002_ledger
-- Stripe event ids already applied: a redelivered event changes nothing.

CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    payment_id  uuid REFERENCES payments (id),
    received_at timestamptz NOT NULL DEFAULT now()
);
