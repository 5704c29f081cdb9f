-- Keys shared across shards are rejected whole, as an unsharded run rejects
-- them (found in session 25: a shard, --shard I/N, saw only its sellers'
-- rows, so an order number or a provider transaction that rows of two
-- shards' sellers shared was one row to each, and the shard that recorded
-- it first settled it).
--
-- Every shard reads the whole day from the source query and keeps its own
-- sellers' rows. Its snapshot now also keeps, for each row of another
-- shard's seller that names an order number or a provider transaction,
-- those keys (order_no, provider, provider_txn_id; every other column
-- NULL), marked other_shard: recorded with the snapshot, in its
-- transaction, so that a resumed transform sees the same rows of the other
-- shards as the first attempt did. The transform stage counts them with
-- its own rows when it looks for order numbers and transactions shared
-- (pipeline/ledger/items.go); nothing else reads them. An unsharded run
-- writes none.
--
-- A constant default: the column is added without rewriting the table.

-- +goose Up
ALTER TABLE source_rows ADD COLUMN other_shard boolean NOT NULL DEFAULT false;

-- +goose Down
DELETE FROM source_rows WHERE other_shard;
ALTER TABLE source_rows DROP COLUMN other_shard;
