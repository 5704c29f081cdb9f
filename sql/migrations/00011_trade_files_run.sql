-- A run's trade files were found by scanning every trade file of the
-- ledger: trade_files had no index on run_id (its keys are the request
-- number, the name, and date, seller, currency and attempt). Each wave of
-- upload-status questions read the run's files that way, and so did the
-- reconciliation's expected shares and the re-extract's checks: on a
-- ledger of a year, some 30 million rows for each.
--
-- trade_files_run finds a run's files; trade_files_run_open the files of
-- a run that Infinia has not decided yet, in the order they were recorded,
-- for the upload stage's keyset pages (it reads them 1,000 at a time, and
-- each wave of status questions walks only the files still open).

-- +goose Up
CREATE INDEX trade_files_run ON trade_files (run_id);
CREATE INDEX trade_files_run_open ON trade_files (run_id, id)
    WHERE status NOT IN ('SUCCESS', 'FAILED');

-- +goose Down
DROP INDEX trade_files_run_open;
DROP INDEX trade_files_run;
