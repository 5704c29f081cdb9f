-- Answers a reconciliation need not ask again (issue 12, point 2;
-- pipeline.FinalAnswers). A matcher records the key of every per-order
-- answer it found final and in agreement with the ledger; a later
-- reconciliation of the same date (the re-run of a finished day, the
-- recheck of an earlier date) skips those keys. A key names what was asked
-- together with what the ledger said then (an effect's key, amount and
-- state; a payment and our refunded total), so a change in the ledger makes
-- another key and the provider is asked again: nothing here needs clearing
-- when the ledger changes. recorded_at is there for pruning old dates.

-- +goose Up
CREATE TABLE reconciled_final (
    matcher      text        NOT NULL,
    key          text        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (matcher, key)
);

-- +goose Down
DROP TABLE reconciled_final;
