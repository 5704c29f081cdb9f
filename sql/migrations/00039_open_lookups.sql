-- Two reads of a night's open work that cost more than what they return
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
-- adjustments_open_subject serves FailedPayouts' look-up of a failed
-- revenue share's open carried entry by its subject, which read every
-- open entry (adjustments_open, whole) or every entry (a sequential
-- scan), once per reconcile or once per failed payout. Its predicate
-- names an open entry by netted_date IS NULL (the same entries as
-- netted_into = '': the table's CHECK), so that no statement asking for
-- netted_into = '' can take it for adjustments_open without its key.
--
-- Built in the migration's transaction, not CONCURRENTLY (as 00025's,
-- for the same reasons): effects is held against writes, which only
-- settle's runs make, for the build (the whole table read once: some
-- seconds on a ledger of years); adjustments for less. IF (NOT) EXISTS: a
-- ledger whose version table was set back by hand past it migrates again.

-- +goose Up
CREATE INDEX IF NOT EXISTS effects_run_kind ON effects (run_id, kind, id);
DROP INDEX IF EXISTS effects_run;
CREATE INDEX IF NOT EXISTS adjustments_open_subject ON adjustments (subject) WHERE netted_date IS NULL AND kind = 'held';

-- +goose Down
DROP INDEX IF EXISTS adjustments_open_subject;
CREATE INDEX IF NOT EXISTS effects_run ON effects (run_id);
DROP INDEX IF EXISTS effects_run_kind;
