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
-- The items a ledger already holds are marked as their channel's spec
-- marks them today (the two channels that settle per transaction are
-- named here, once, for the items written before the spec said so), so
-- that a copy of an order settled before this migration cannot be paid
-- again under a new number; where two of them already share a
-- transaction (settled before the rule), neither is marked, and both are
-- listed in items_txn_shared_before for a person to look at. The migration
-- never fails on a ledger's data. It rewrites those channels' items once
-- and reads items twice, while reads and writes of items wait: on this
-- machine, a ledger of a million items, 600,000 of them of the two
-- channels, 14.3-14.6 s (about 4 minutes for each 16 million items of a
-- longer ledger: run `settle migrate` at the deploy, outside the nightly
-- run, on a ledger of years).

-- The column is left with no default as soon as it is added (as
-- migration 00023 leaves it on a ledger that applied this one before):
-- a binary from before this migration, a pod of a Job started before the
-- deploy say, writes items without it, and they took the default, false,
-- outside the rule. Left to 00023, the ledger was open to such writes
-- between this migration and that one, each in its own transaction, for
-- as long as the migrations in between waited (a minute, Ledger.Migrate)
-- and then gave up on a table that pod held: the next "settle migrate"
-- came too late for the items it wrote meanwhile (found by a review of
-- the upgrade path).

-- +goose Up
ALTER TABLE items ADD COLUMN txn_once boolean NOT NULL DEFAULT false;
ALTER TABLE items ALTER COLUMN txn_once DROP DEFAULT;
CREATE TABLE items_txn_shared_before (
    channel          text COLLATE "C" NOT NULL,
    provider_txn_id  text COLLATE "C" NOT NULL,
    order_no         text COLLATE "C" NOT NULL,
    PRIMARY KEY (channel, provider_txn_id, order_no)
);
INSERT INTO items_txn_shared_before (channel, provider_txn_id, order_no)
SELECT channel, provider_txn_id, order_no FROM (
    SELECT channel, provider_txn_id, order_no, count(*) OVER (PARTITION BY channel, provider_txn_id) AS n
    FROM items WHERE channel IN ('wechatpay', 'payprotocol') AND provider_txn_id <> '') i
WHERE n > 1;
UPDATE items SET txn_once = true
WHERE channel IN ('wechatpay', 'payprotocol') AND provider_txn_id <> ''
  AND NOT EXISTS (SELECT 1 FROM items_txn_shared_before s WHERE s.order_no = items.order_no);
CREATE UNIQUE INDEX items_provider_txn ON items (channel COLLATE "C", provider_txn_id COLLATE "C")
    WHERE txn_once AND provider_txn_id <> '';

-- +goose Down
DROP INDEX items_provider_txn;
DROP TABLE items_txn_shared_before;
ALTER TABLE items DROP COLUMN txn_once;
