-- Adjustments and reconciliation (issue #6): refunds that arrive after their
-- order settled, the balance each seller carries between revenue shares, and
-- what the reconcile stage found disagreeing with a provider.

-- +goose Up
-- Refunds the platform recorded after their order's day had closed, as the
-- late-refunds query returned them. refund_no is the key: a refund is
-- counted once, whichever run reads it. state: pending (its order is not
-- settled, or not yet paid or carried), clawed (an adjustment took it back
-- from the seller), ignored (nothing to take back; reason says why),
-- rejected (it cannot be right; reason says why, a person decides).
CREATE TABLE late_refunds (
    refund_no      text        PRIMARY KEY,
    order_no       text        NOT NULL,
    seller_id      text        NOT NULL,
    amount_minor   bigint      NOT NULL, -- 0 when the row's amount could not be read (rejected)
    created_at     timestamptz,          -- NULL only in a rejected row
    run_id         bigint      NOT NULL REFERENCES runs (id),
    business_date  date        NOT NULL,
    state          text        NOT NULL DEFAULT 'pending'
                               CHECK (state IN ('pending', 'clawed', 'ignored', 'rejected')),
    reason         text        NOT NULL DEFAULT '',
    CHECK (state = 'rejected' OR amount_minor > 0)
);
CREATE INDEX late_refunds_order ON late_refunds (order_no);

-- A seller's balance carried between Infinia revenue shares, per currency,
-- as a journal. amount_minor is signed: positive is owed to the seller (a
-- payout held: seller not bound, below the minimum payout, negative net,
-- failed), negative is owed by the seller (a clawback). An entry is open
-- while netted_into is empty; planning a revenue share nets every open
-- entry into it in the same transaction, and a revenue share that fails
-- opens them again.
CREATE TABLE adjustments (
    id                bigserial   PRIMARY KEY,
    seller_id         text        NOT NULL,
    currency          text        NOT NULL,
    kind              text        NOT NULL CHECK (kind IN ('held', 'clawback')),
    amount_minor      bigint      NOT NULL,
    -- clawbacks: the order, the refund, and the commission the platform
    -- gave back; refund = -amount + commission_back.
    order_no          text        NOT NULL DEFAULT '',
    refund_no         text        NOT NULL DEFAULT '',
    refund_minor      bigint      NOT NULL DEFAULT 0,
    commission_back   bigint      NOT NULL DEFAULT 0,
    subject           text        NOT NULL DEFAULT '', -- held: the revenue share whose items were carried
    reason            text        NOT NULL DEFAULT '',
    business_date     date        NOT NULL,            -- date of the run that recorded it
    run_id            bigint      NOT NULL REFERENCES runs (id),
    netted_into       text        NOT NULL DEFAULT '', -- revenue-share subject; '' while carried
    netted_date       date,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'clawback' OR (amount_minor <= 0 AND refund_minor = commission_back - amount_minor)),
    CHECK ((netted_into = '') = (netted_date IS NULL))
);
CREATE UNIQUE INDEX adjustments_refund ON adjustments (refund_no) WHERE kind = 'clawback';
CREATE INDEX adjustments_open ON adjustments (seller_id, currency) WHERE netted_into = '';
CREATE INDEX adjustments_netted ON adjustments (netted_into) WHERE netted_into <> '';

-- The carry entry an item's seller share went into, while it is carried.
ALTER TABLE items ADD COLUMN carry_id bigint REFERENCES adjustments (id);
CREATE INDEX items_carry ON items (carry_id) WHERE carry_id IS NOT NULL;

-- What the reconcile stage of a run found disagreeing with a provider,
-- replaced on every reconcile. expected marks known timing gaps.
CREATE TABLE mismatches (
    run_id        bigint  NOT NULL REFERENCES runs (id),
    seq           int     NOT NULL,
    provider      text    NOT NULL,
    category      text    NOT NULL,
    subject       text    NOT NULL,
    order_no      text    NOT NULL DEFAULT '',
    seller_id     text    NOT NULL DEFAULT '',
    currency      text    NOT NULL DEFAULT '',
    ours_minor    bigint,
    theirs_minor  bigint,
    ours_state    text    NOT NULL DEFAULT '',
    theirs_state  text    NOT NULL DEFAULT '',
    expected      boolean NOT NULL,
    detail        text    NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, seq)
);

-- +goose Down
DROP TABLE mismatches;
ALTER TABLE items DROP COLUMN carry_id;
DROP TABLE adjustments;
DROP TABLE late_refunds;
