-- A run's summary counts the requests the providers refused
-- (Ledger.Sends: cause 'refused' in an effect's history), twice a run, over
-- every money effect of its date and shard. Looked up effect by effect in
-- effect_events_effect, that was a probe of four pages an effect: 13,000
-- probes, 26,000 buffers, twice the read without it (scripts/historyledger,
-- PERFORMANCE.md). This index holds the refusals only - rare: a request a
-- provider did not take - and Sends reads it whole and joins it to the
-- run's effects in one pass.
--
-- Built in the migration's transaction, not CONCURRENTLY (as 00025, for the
-- same reason: a concurrent build waits for every older snapshot of the
-- whole database). It holds effect_events, which only settle's runs write,
-- against writes for the build's scan of the table (seconds on two years of
-- nights). IF (NOT) EXISTS: a ledger whose version table was set back by
-- hand past it migrates again.

-- +goose Up
CREATE INDEX IF NOT EXISTS effect_events_refused ON effect_events (effect_id) WHERE cause = 'refused';

-- +goose Down
DROP INDEX IF EXISTS effect_events_refused;
