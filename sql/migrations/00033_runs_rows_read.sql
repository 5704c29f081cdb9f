-- How many source rows a run's extract stage recorded (of its shard's
-- sellers, not the other shards' keys): the snapshot's size, written with
-- it (WriteSnapshot). The reject gate and settle status read it at every
-- run; counted from source_rows, it cost a re-run of a finished
-- million-order day a scan of its million rows (found measuring #14's
-- re-run target). NULL for a run extracted before this migration: counted
-- as before.

-- +goose Up
ALTER TABLE runs ADD COLUMN IF NOT EXISTS rows_read bigint;

-- +goose Down
ALTER TABLE runs DROP COLUMN IF EXISTS rows_read;
