-- An older binary may not write items outside "a provider transaction
-- settles once" (found by a review of the upgrade path): a settle built
-- before migration 00019 does not know items.txn_once, so the rows it
-- writes took the column's default, false, and a WeChat Pay or Pay
-- Protocol item it wrote was outside items_provider_txn - a copy of its
-- order under another number could be paid again. That happens when a Job
-- started before the deploy, or an image rolled back past 00019, runs on
-- the migrated ledger.
--
-- Every writer since 00019 names txn_once (pipeline/ledger/items.go); with
-- no default, a writer that does not is refused by the column's NOT NULL,
-- and the older binary's day stops with an error (exit 1) instead of
-- paying. Binaries from this one on also refuse a ledger migrated past
-- what they know (Ledger.Migrate), so a later rule needs no such guard.
--
-- Dropping a default rewrites nothing: it takes items' lock for a moment,
-- waiting at most a minute for a run that holds it (Ledger.Migrate).

-- +goose Up
ALTER TABLE items ALTER COLUMN txn_once DROP DEFAULT;

-- +goose Down
ALTER TABLE items ALTER COLUMN txn_once SET DEFAULT false;
