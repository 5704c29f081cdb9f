-- The platform database a run read its day from, as the platform's server
-- names it ("platform (system 7312...)": its database name and the
-- cluster's system identifier, which a hot standby shares with its
-- primary); '' when that server would not say, or a run from before this
-- migration (not judged). A source URL pointing at another database (a
-- staging copy, another marketplace's, exported in a person's shell) had
-- the next date's orders read there and paid, and a resumed date's late
-- refunds read there and clawed back from the sellers by order number;
-- only the reconcile stage's look at the earlier windows, after the
-- sending, said so. OpenRun refuses a run whose platform database is
-- another than the one its date, or else the latest earlier date, read
-- from, but with --new-source.

-- +goose Up
ALTER TABLE runs ADD COLUMN IF NOT EXISTS source_db text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE runs DROP COLUMN IF EXISTS source_db;
