-- The seller of an Infinia id (a binding webhook's look-up) is the seller
-- of the latest run that gave the id: run_sellers_infinia found all of the
-- id's runs - one a night its seller sold, some 700 after two years of a
-- seller who sells daily - and the query sorted them for the first. With
-- the run in the key the latest is the index's last entry for the id.
-- It replaces run_sellers_infinia, its prefix.
--
-- Built CONCURRENTLY (so outside a transaction): run_sellers is written by
-- every run's extract, and a plain CREATE INDEX would hold those writes
-- for the whole build. A build that failed (lock_timeout while a run's
-- transaction was open, say) leaves an invalid index behind: the first
-- statement drops it, so the migration, run again, builds it anew.

-- +goose NO TRANSACTION
-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS run_sellers_infinia_run;
CREATE INDEX CONCURRENTLY run_sellers_infinia_run ON run_sellers (infinia_seller_id, run_id) WHERE infinia_seller_id <> '';
DROP INDEX CONCURRENTLY IF EXISTS run_sellers_infinia;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS run_sellers_infinia;
CREATE INDEX CONCURRENTLY run_sellers_infinia ON run_sellers (infinia_seller_id) WHERE infinia_seller_id <> '';
DROP INDEX CONCURRENTLY IF EXISTS run_sellers_infinia_run;
