-- Sellers, trade-detail files and bindings: what the Infinia Pay stages need.

-- +goose Up
-- The sellers a run settles, as the platform described them when the run
-- read its orders (provider identities included).
CREATE TABLE run_sellers (
    run_id             bigint NOT NULL REFERENCES runs (id),
    seller_id          text   NOT NULL,
    name               text   NOT NULL DEFAULT '',
    entity_type        text   NOT NULL DEFAULT '',
    country            text   NOT NULL DEFAULT '',
    infinia_seller_id  text   NOT NULL DEFAULT '',
    wechat_sub_mchid   text   NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, seller_id)
);

-- A seller's Infinia account binding, from the status query, the webhook or
-- the binding request.
CREATE TABLE seller_bindings (
    seller_id          text        PRIMARY KEY,
    infinia_seller_id  text        NOT NULL DEFAULT '',
    status             text        NOT NULL,
    request_no         text        NOT NULL DEFAULT '',
    source             text        NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Infinia webhook deliveries seen, for deduplication by requestNo.
CREATE TABLE webhook_events (
    request_no   text        PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now()
);

-- One trade-detail file per (date, seller, currency, attempt). The upload
-- itself is an effect (kind 'upload', key request_no); status is what
-- Infinia's upload-status API last said.
CREATE TABLE trade_files (
    id              bigserial PRIMARY KEY,
    run_id          bigint NOT NULL REFERENCES runs (id),
    business_date   date   NOT NULL,
    seller_id       text   NOT NULL,
    currency        text   NOT NULL,
    attempt         int    NOT NULL DEFAULT 1,
    request_no      text   NOT NULL UNIQUE,
    name            text   NOT NULL UNIQUE,
    sha256          text   NOT NULL,
    rows            int    NOT NULL,
    bytes           bigint NOT NULL,
    seller_minor    bigint NOT NULL,
    status          text   NOT NULL DEFAULT 'BUILT',
    error_file_url  text   NOT NULL DEFAULT '',
    reason          text   NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (business_date, seller_id, currency, attempt)
);

-- +goose Down
DROP TABLE trade_files;
DROP TABLE webhook_events;
DROP TABLE seller_bindings;
DROP TABLE run_sellers;
