-- The job's own durable state (DESIGN section 3). Tables are unqualified: the
-- ledger applies this with search_path set to its schema (default "settle").

-- +goose Up
CREATE TABLE runs (
    id             bigserial PRIMARY KEY,
    business_date  date        NOT NULL,
    shard_index    int         NOT NULL,
    shard_count    int         NOT NULL,
    state          text        NOT NULL DEFAULT 'running'
                               CHECK (state IN ('running', 'failed', 'done')),
    stages_done    text[]      NOT NULL DEFAULT '{}',
    time_zone      text        NOT NULL,
    rules_hash     text        NOT NULL,
    config_hash    text        NOT NULL,
    attempts       int         NOT NULL DEFAULT 1,
    last_error     text        NOT NULL DEFAULT '',
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    UNIQUE (business_date, shard_index, shard_count),
    CHECK (shard_count >= 1 AND shard_index >= 0 AND shard_index < shard_count)
);

-- What the extract stage read, exactly as read (NULLs kept, amounts as text):
-- the transform stage works from this snapshot, so a resumed run sees the same
-- input however the platform's tables moved since.
CREATE TABLE source_rows (
    run_id           bigint NOT NULL REFERENCES runs (id),
    seq              bigint NOT NULL,
    order_no         text,
    seller_id        text,
    provider         text,
    provider_txn_id  text,
    currency         text,
    amount_minor     text,
    refunded_minor   text,
    category         text,
    paid_at          timestamptz,
    confirmed_at     timestamptz,
    PRIMARY KEY (run_id, seq)
);

-- One row per settled order. order_no is the key: an order settles once, ever.
CREATE TABLE items (
    order_no          text PRIMARY KEY,
    run_id            bigint      NOT NULL REFERENCES runs (id),
    business_date     date        NOT NULL,
    seller_id         text        NOT NULL,
    channel           text        NOT NULL,
    provider_txn_id   text        NOT NULL,
    currency          text        NOT NULL,
    category          text        NOT NULL,
    gross_minor       bigint      NOT NULL,
    refunded_minor    bigint      NOT NULL,
    commission_minor  bigint      NOT NULL,
    seller_minor      bigint      NOT NULL,
    rule              text        NOT NULL,
    paid_at           timestamptz NOT NULL,
    confirmed_at      timestamptz NOT NULL,
    state             text        NOT NULL DEFAULT 'recorded',
    reason            text        NOT NULL DEFAULT '',
    payout_key        text        NOT NULL DEFAULT '',
    provider_ref      text        NOT NULL DEFAULT '',
    CHECK (gross_minor = refunded_minor + commission_minor + seller_minor),
    CHECK (refunded_minor >= 0 AND commission_minor >= 0 AND seller_minor >= 0)
);
CREATE INDEX items_run ON items (run_id);
CREATE INDEX items_date_seller ON items (business_date, seller_id, currency);

-- Source rows that will not be settled, with the reason.
CREATE TABLE rejects (
    run_id     bigint NOT NULL REFERENCES runs (id),
    seq        bigint NOT NULL,
    order_no   text   NOT NULL DEFAULT '',
    seller_id  text   NOT NULL DEFAULT '',
    provider   text   NOT NULL DEFAULT '',
    currency   text   NOT NULL DEFAULT '',
    amount     text   NOT NULL DEFAULT '',
    refunded   text   NOT NULL DEFAULT '',
    reason     text   NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Every side effect (file upload, money request), intent first. A subject is
-- the logical thing being done (one payout, one file); each attempt at it has
-- its own deterministic idempotency key. The partial unique indexes are the
-- last line of defence: at most one attempt per subject can be in flight, and
-- at most one can ever succeed.
CREATE TABLE effects (
    id            bigserial PRIMARY KEY,
    run_id        bigint      NOT NULL REFERENCES runs (id),
    kind          text        NOT NULL,
    subject       text        NOT NULL,
    attempt       int         NOT NULL CHECK (attempt >= 1),
    idem_key      text        NOT NULL UNIQUE,
    currency      text        NOT NULL DEFAULT '',
    amount_minor  bigint      NOT NULL DEFAULT 0,
    state         text        NOT NULL DEFAULT 'planned'
                              CHECK (state IN ('planned', 'sent', 'unknown', 'succeeded', 'failed')),
    provider_ref  text        NOT NULL DEFAULT '',
    last_error    text        NOT NULL DEFAULT '',
    sends         int         NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, subject, attempt)
);
CREATE UNIQUE INDEX effects_one_open ON effects (kind, subject)
    WHERE state IN ('planned', 'sent', 'unknown');
CREATE UNIQUE INDEX effects_one_success ON effects (kind, subject)
    WHERE state = 'succeeded';
CREATE INDEX effects_run ON effects (run_id);

-- +goose Down
DROP TABLE effects;
DROP TABLE rejects;
DROP TABLE items;
DROP TABLE source_rows;
DROP TABLE runs;
