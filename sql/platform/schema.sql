-- Reference platform schema: what settle's demo, tests and benchmarks read.
-- A real marketplace has its own tables; it points --source-query at a query
-- returning the same columns (see source.sql), or creates a view.
--
-- Amounts are numeric (not bigint) on purpose: platforms do store them that
-- way, and it lets the seed produce an amount that overflows int64, which the
-- job must reject rather than wrap.
CREATE TABLE IF NOT EXISTS sellers (
    seller_id          text PRIMARY KEY,
    name               text NOT NULL,
    entity_type        text NOT NULL DEFAULT 'Corporate',  -- Corporate | Individual
    country            text NOT NULL DEFAULT 'CHN',        -- ISO 3166 alpha-3
    infinia_seller_id  text,                               -- Infinia Pay identity
    wechat_sub_mchid   text,                               -- WeChat Pay sub-merchant id
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS orders (
    order_no         text,            -- not a key: a platform can have duplicates, the job must notice
    seller_id        text,
    provider         text,            -- infiniapay | wechatpay | payprotocol
    provider_txn_id  text,            -- WeChat transaction_id, Pay Protocol outTradeNo, Infinia trade id
    currency         text,
    amount_minor     numeric(30,0),
    category         text,
    buyer_country    text,
    paid_at          timestamptz,
    confirmed_at     timestamptz      -- escrow released: buyer confirmed receipt or auto-confirmed
);
CREATE INDEX IF NOT EXISTS orders_confirmed_at ON orders (confirmed_at);
CREATE INDEX IF NOT EXISTS orders_order_no ON orders (order_no);

CREATE TABLE IF NOT EXISTS refunds (
    refund_no     text PRIMARY KEY,
    order_no      text NOT NULL,
    amount_minor  numeric(30,0) NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_order_no ON refunds (order_no);
