-- A read of a night's open work that cost more than what it returns
-- (PERFORMANCE.md, "Open revenue shares and failed payouts").
--
-- effects_run_kind replaces effects_run (its prefix): OpenEffectsAfter
-- pages through a run's open effects of a kind by id, 1,000 at a time,
-- once per distribute. With effects_run it read the run's effects in no
-- useful order and sorted them, or the planner took effects_one_open (all
-- open effects of the kind, every run's) or walked the primary key from
-- the cursor through every later effect of the ledger: each page cost the
-- run's open effects, or the history, not the page (50,000 open revenue
-- shares: 13-104 ms and up to 4,561 buffers a page). Ordered by (run, kind,
-- id) a page is the range after its cursor. Not a partial index on the
-- open states: a second one beside effects_one_open would give the
-- planner, where the statistics hold the open effects none (as a ledger
-- whose effects were all final when last analyzed does), two indexes it
-- takes for empty, and it may scan the one without the statement's key
-- (as MarkSent did, PERFORMANCE.md).
--
-- Built in the migration's transaction, not CONCURRENTLY (as 00025's,
-- for the same reasons): effects is held against writes, which only
-- settle's runs make, for the build (the whole table read once: some
-- seconds on a ledger of years). IF (NOT) EXISTS: a
-- ledger whose version table was set back by hand past it migrates again.

-- +goose Up
CREATE INDEX IF NOT EXISTS effects_run_kind ON effects (run_id, kind, id);
DROP INDEX IF EXISTS effects_run;

-- +goose Down
CREATE INDEX IF NOT EXISTS effects_run ON effects (run_id);
DROP INDEX IF EXISTS effects_run_kind;
