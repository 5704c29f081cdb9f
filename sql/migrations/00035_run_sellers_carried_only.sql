-- A run records, with the sellers its day's rows name, those of its shard
-- with only a balance carried from an earlier date (pipeline.CarriedSellers),
-- with the accounts the platform gives them then: carried_only marks those.
-- A seller's account that a date held its orders for (one another seller
-- had too) is not paid its carried balance while the platform gives it
-- the same and no run pays its own orders there: the record of a date it
-- had only a carried balance says nothing of that, so the payout
-- candidates look past it, to the seller's latest record of a date its
-- rows were read (EachPayoutCandidate). Without the mark, they walked
-- back over every night the seller had only a carried balance (one a
-- night for as long as it stays carried: 3 s a run for 1,000 sellers
-- carried a year); with it, the seller's latest such record is the
-- index's last entry. false for every record made before: each was of a
-- seller the day's rows named.
--
-- Built in the migration's transaction, as 00025's: run_sellers is held
-- against writes, which only settle's runs make, for the build's seconds.
-- IF (NOT) EXISTS: a ledger whose version table was set back by hand past
-- it migrates again.

-- +goose Up
ALTER TABLE run_sellers ADD COLUMN IF NOT EXISTS carried_only boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS run_sellers_infinia_read ON run_sellers (seller_id, run_id)
    WHERE infinia_seller_id <> '' AND NOT carried_only;

-- +goose Down
DROP INDEX IF EXISTS run_sellers_infinia_read;
ALTER TABLE run_sellers DROP COLUMN IF EXISTS carried_only;
