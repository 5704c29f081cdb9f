-- A provider transaction settles once, ever (found by a review of unusual
-- source data: two orders naming the same Pay Protocol payment were both
-- verified against it and both paid to the seller).
--
-- Two items may not name the same transaction of the same channel: the
-- day's COPY into items refuses the second, as the primary key refuses an
-- order number seen before, and the transform then rejects every order of
-- the day naming a shared transaction, and an order naming a transaction
-- another date already settled (pipeline/ledger/items.go). An empty
-- provider_txn_id (an Infinia Pay order may have none) names nothing. The
-- keys compare byte-wise, as the other keys of items do (migration 00007).
--
-- Its cost at the day's COPY (psql \copy of a million items into items with
-- its other indexes, this machine alone): 9.2-9.3 backend CPU-s against
-- 7.5-7.7 when the transaction ids arrive in order, as the seeded days'
-- and the providers' time-ordered ids do; 12.6-13.0 against 7.5-7.8 when
-- they arrive at random.
--
-- A ledger whose items already share transactions (settled before this
-- rule) keeps them: those items are left out of the index by name, so the
-- migration never stops the job, and each such transaction is kept in
-- items_txn_shared_before for a person to look at. The index is built in
-- one read of items; writes to items wait meanwhile.

-- +goose Up
CREATE TABLE items_txn_shared_before (
    channel          text COLLATE "C" NOT NULL,
    provider_txn_id  text COLLATE "C" NOT NULL,
    order_no         text COLLATE "C" NOT NULL,
    PRIMARY KEY (channel, provider_txn_id, order_no)
);
INSERT INTO items_txn_shared_before (channel, provider_txn_id, order_no)
SELECT channel, provider_txn_id, order_no FROM (
    SELECT channel, provider_txn_id, order_no,
           count(*) OVER (PARTITION BY channel, provider_txn_id) AS n
    FROM items WHERE provider_txn_id <> '') i
WHERE n > 1;

-- +goose StatementBegin
DO $$
DECLARE
    exempt text;
BEGIN
    SELECT string_agg(quote_literal(order_no), ', ' ORDER BY order_no) INTO exempt FROM items_txn_shared_before;
    EXECUTE 'CREATE UNIQUE INDEX items_provider_txn ON items (channel COLLATE "C", provider_txn_id COLLATE "C") WHERE provider_txn_id <> '''''
        || CASE WHEN exempt IS NULL THEN '' ELSE ' AND order_no NOT IN (' || exempt || ')' END;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP INDEX items_provider_txn;
DROP TABLE items_txn_shared_before;
