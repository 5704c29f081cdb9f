-- The orders a provider rejected, by run: every run's end (a re-run of a
-- finished day too) lists them by reason (ProviderRejectsOfRun), and found
-- them by reading every item of the run, or of the ledger (a sequential
-- scan: 160 ms for a ledger of one million-order day, for none found; a
-- ledger of a year of such days would take minutes). They are few, and
-- the index holds only them: the day's COPY puts nothing in it.
--
-- On an existing ledger the index is built once (one read of items;
-- writes to items wait meanwhile).

-- +goose Up
CREATE INDEX items_run_rejected ON items (run_id) WHERE state = 'rejected';

-- +goose Down
DROP INDEX items_run_rejected;
