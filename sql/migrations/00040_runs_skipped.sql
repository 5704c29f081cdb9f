-- The runs that left a channel out on purpose (--skip-channel, migration
-- 00028), by shard: every run's end reads the shard's orders still left
-- out on any date (ShardHealth, the metric settle_skipped_orders_open).
-- Without it that read was a scan of the shard's every run (one a date,
-- for years) to find the few, mostly none, that left something out; with
-- it, an index scan of those few. skipped_channels is written by a run's
-- channel check alone (RecordSkipped, Reextract), and the index's keys
-- never change, so the other updates of runs stay HOT.
--
-- Built in the migration's transaction (runs is one row a date and shard:
-- milliseconds). IF (NOT) EXISTS: a ledger whose version table was set
-- back by hand past it migrates again.

-- +goose Up
CREATE INDEX IF NOT EXISTS runs_skipped ON runs (shard_count, shard_index) WHERE skipped_channels <> '{}';

-- +goose Down
DROP INDEX IF EXISTS runs_skipped;
