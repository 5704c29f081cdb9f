-- A provider transaction settles once, ever (found by a review of unusual
-- source data: two orders naming the same Pay Protocol payment were both
-- verified against it and both paid to the seller).
--
-- An item of a channel that settles per provider transaction (its spec's
-- TxnRequired: WeChat Pay distributes per transaction_id, Pay Protocol
-- verifies per out_trade_no) is marked txn_once, and two such items may not
-- name the same transaction of the same channel: the day's COPY into items
-- refuses the second, as the primary key refuses an order number seen
-- before, and the transform then rejects every order of the day naming a
-- shared transaction, and an order naming a transaction another date
-- already settled (pipeline/ledger/items.go). Other channels' transaction
-- ids are not held to it: an Infinia Pay payment may pay several orders of
-- one checkout. The keys compare byte-wise, as the other keys of items do
-- (migration 00007).
--
-- Its cost at the day's COPY (psql \copy of a million items into items with
-- its other indexes, this machine alone, the index over every item with a
-- transaction id): 9.2-9.3 backend CPU-s against 7.5-7.7 when the
-- transaction ids arrive in order, as the seeded days' and the providers'
-- time-ordered ids do; 12.6-13.0 against 7.5-7.8 when they arrive at
-- random. Over the items of the two channels alone (half of the
-- benchmark's day), about half of that.
--
-- Items recorded before this migration are not marked: the rule holds from
-- the first day settled after it (adding the column rewrites nothing, and
-- the index starts empty).

-- +goose Up
ALTER TABLE items ADD COLUMN txn_once boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX items_provider_txn ON items (channel COLLATE "C", provider_txn_id COLLATE "C")
    WHERE txn_once AND provider_txn_id <> '';

-- +goose Down
DROP INDEX items_provider_txn;
ALTER TABLE items DROP COLUMN txn_once;
