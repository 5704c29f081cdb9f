-- The answers a reconciliation need not ask again are kept for a while,
-- not forever (migration 00006). Every run prunes those recorded longer
-- ago than settle keeps them (cmd/settle: finalAnswersKept, 35 days), a
-- page at a time; the index finds them without reading the table, which
-- grows by about one row per order a day. A pruned answer costs only a
-- question: a later reconciliation of its date asks the provider again.

-- +goose Up
CREATE INDEX reconciled_final_recorded ON reconciled_final (recorded_at);

-- +goose Down
DROP INDEX reconciled_final_recorded;
