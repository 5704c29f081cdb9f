-- The seller of an Infinia id (a binding webhook's look-up) is the seller
-- of the latest run that gave the id: run_sellers_infinia found all of the
-- id's runs - one a night its seller sold, some 700 after two years of a
-- seller who sells daily - and the query sorted them for the first. With
-- the run in the key the latest is the index's last entry for the id.
-- It replaces run_sellers_infinia, its prefix.
--
-- Built in the migration's transaction, not CONCURRENTLY: a concurrent
-- build waits for every snapshot older than its own in the whole database,
-- and where the ledger shares the platform's database any platform query
-- running longer than the migration's lock wait failed it (exit 1, the
-- night retried, an invalid index left behind). A plain build holds
-- run_sellers against writes, which only settle's runs make, for the
-- build's seconds (2.8 s on two years of nights, 1.4 million rows) and
-- waits, as every migration, for a run's open transaction on the table.
-- IF (NOT) EXISTS: a ledger whose version table was set back by hand past
-- it (as a test of the upgrade path does) migrates again.

-- +goose Up
CREATE INDEX IF NOT EXISTS run_sellers_infinia_run ON run_sellers (infinia_seller_id, run_id) WHERE infinia_seller_id <> '';
DROP INDEX IF EXISTS run_sellers_infinia;

-- +goose Down
CREATE INDEX IF NOT EXISTS run_sellers_infinia ON run_sellers (infinia_seller_id) WHERE infinia_seller_id <> '';
DROP INDEX IF EXISTS run_sellers_infinia_run;
