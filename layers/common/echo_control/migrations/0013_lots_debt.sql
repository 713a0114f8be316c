-- depends: 0012_housekeeping_indexes
-- Post-paid calls (debt) and credits with a source (lots).
--
-- A call that already happened is recorded even when what is available does not cover it: the part the user's
-- credits do not pay becomes balances.debt, and the balance goes below zero. Per user, always:
--     balance = sum(credit_lots.remaining) - debt
-- Every credit is a lot: a payment (cash), a grant (a credit code; may expire), or an admin adjustment (cash when
-- it is money received outside Stripe). A call takes lots in a fixed order (lot_order: grants by soonest expiry,
-- then non-cash adjustments, then cash, oldest first) and call_lots records what it took from each, with the
-- owner's markup earned on it (only cash earns): refunds and disputes reverse exactly that.

ALTER TABLE balances DROP CONSTRAINT balances_balance_check;
ALTER TABLE balances
    ADD COLUMN debt numeric(18, 6) NOT NULL DEFAULT 0 CHECK (debt >= 0),
    ADD CONSTRAINT balances_below_zero_only_by_debt CHECK (balance + debt >= 0);

-- A refund or a dispute may take credits a hold reserved: the hold loses that amount (a later settle overruns).
ALTER TABLE holds DROP CONSTRAINT holds_amount_check;
ALTER TABLE holds ADD CONSTRAINT holds_amount_check CHECK (amount >= 0);

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN (
    'payment_credit', 'llm_debit', 'admin_adjustment', 'refund', 'grant_credit', 'grant_expired', 'dispute',
    'dispute_won'));

CREATE TABLE credit_lots (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id),
    source     text NOT NULL CHECK (source IN ('payment', 'grant', 'adjustment')),
    cash       boolean NOT NULL,
    amount     numeric(18, 6) NOT NULL CHECK (amount > 0),
    remaining  numeric(18, 6) NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    expires_at timestamptz,
    payment_id uuid REFERENCES payments (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- the order calls take lots in: grants, then non-cash adjustments, then cash
    lot_order  smallint GENERATED ALWAYS AS (CASE WHEN source = 'grant' THEN 0 WHEN NOT cash THEN 1 ELSE 2 END) STORED,
    CHECK ((source = 'payment') = (payment_id IS NOT NULL)),
    CHECK (source = 'grant' OR expires_at IS NULL),
    CHECK (source <> 'payment' OR cash),
    CHECK (source <> 'grant' OR NOT cash)
);
CREATE INDEX credit_lots_open_idx ON credit_lots (user_id, lot_order, expires_at, id) WHERE remaining > 0;
CREATE INDEX credit_lots_payment_idx ON credit_lots (payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX credit_lots_expiring_idx ON credit_lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;

-- What each call took from each lot, and the markup earned on it (cash lots only).
CREATE TABLE call_lots (
    transaction_id uuid NOT NULL REFERENCES llm_transactions (id),
    lot_id         bigint NOT NULL REFERENCES credit_lots (id),
    amount         numeric(18, 6) NOT NULL CHECK (amount > 0),
    earned         numeric(18, 6) NOT NULL DEFAULT 0 CHECK (earned >= 0),
    PRIMARY KEY (lot_id, transaction_id)
);

-- shortfall: the part of the call neither what was available nor the key's limit covered; debt_amount: the part no
-- lot paid (the balance's debt); earned_amount: the owner's share that was credited (markup on the cash-paid part).
ALTER TABLE llm_transactions
    ADD COLUMN shortfall     numeric(18, 6) NOT NULL DEFAULT 0 CHECK (shortfall >= 0),
    ADD COLUMN debt_amount   numeric(18, 6) NOT NULL DEFAULT 0 CHECK (debt_amount >= 0),
    ADD COLUMN debt_repaid   numeric(18, 6) NOT NULL DEFAULT 0 CHECK (debt_repaid >= 0),
    ADD COLUMN earned_amount numeric(18, 6) NOT NULL DEFAULT 0 CHECK (earned_amount >= 0);
-- calls whose debt is not yet repaid, in the order payments repay them
CREATE INDEX llm_transactions_open_debt_idx ON llm_transactions (user_id, created_at, id) WHERE debt_repaid < debt_amount;

-- Existing calls earned their whole markup (they were all paid before being taken).
UPDATE llm_transactions SET earned_amount = markup_amount WHERE markup_amount > 0;

-- Existing balances become lots: as much as the user's completed payments (net of refunds) as cash lots, the newest
-- payments' first (under the new order the oldest cash was spent first), and the rest as one non-cash adjustment.
WITH paid AS (
    SELECT p.id, p.user_id, p.created_at, (p.amount - p.amount_refunded) / 100.0 AS net,
           sum((p.amount - p.amount_refunded) / 100.0) OVER (PARTITION BY p.user_id ORDER BY p.created_at DESC, p.id DESC)
               AS newer_and_this
    FROM payments p WHERE p.status IN ('completed', 'refunded') AND p.amount > p.amount_refunded
), allotted AS (
    SELECT paid.id, paid.user_id, paid.created_at,
           least(paid.net, greatest(b.balance - (paid.newer_and_this - paid.net), 0)) AS remaining, paid.net
    FROM paid JOIN balances b USING (user_id)
)
INSERT INTO credit_lots (user_id, source, cash, amount, remaining, payment_id, created_at)
SELECT user_id, 'payment', true, net, remaining, id, created_at FROM allotted;

INSERT INTO credit_lots (user_id, source, cash, amount, remaining)
SELECT b.user_id, 'adjustment', false, b.balance - coalesce(l.total, 0), b.balance - coalesce(l.total, 0)
FROM balances b LEFT JOIN (SELECT user_id, sum(remaining) AS total FROM credit_lots GROUP BY user_id) l USING (user_id)
WHERE b.balance > coalesce(l.total, 0);
