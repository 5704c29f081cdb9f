-- The day's data path at the speed of PostgreSQL (issue #14).
--
-- 1. Every per-seller, per-file and per-payout query of the ledger costs in
--    proportion to what it returns. A run's items of one seller and
--    currency are found by (business_date, seller_id, currency), the index
--    items_date_seller that the reports already need (the queries name the
--    run's date): a third text index on items would cost every day's load
--    more than it saves. The open Pay Protocol items of a run, the
--    clawbacks of an order, the pending and rejected late refunds, a
--    seller's runs and a day's succeeded money requests each get a small
--    index.
-- 2. The bulk tables (source_rows, items, rejects) no longer check their
--    run_id row by row with a foreign key (an index probe and a trigger call
--    per row: a third of a 1,000,000-row COPY). Every bulk write holds its
--    one run with SELECT ... FOR KEY SHARE in its own transaction, which is
--    the check the foreign key made for each row, made once per statement,
--    and runs can no longer be deleted nor renumbered (runs_keep), so no row
--    can lose its run.

-- +goose Up
CREATE INDEX items_run_payprotocol_open ON items (run_id)
    WHERE channel = 'payprotocol' AND state IN ('unverified', 'held');
CREATE INDEX adjustments_order ON adjustments (order_no) WHERE kind = 'clawback';
CREATE INDEX late_refunds_open ON late_refunds (state, order_no) WHERE state IN ('pending', 'rejected');
CREATE INDEX run_sellers_seller ON run_sellers (seller_id, run_id);
CREATE INDEX effects_succeeded ON effects (kind, updated_at) WHERE state = 'succeeded';

ALTER TABLE source_rows DROP CONSTRAINT source_rows_run_id_fkey;
ALTER TABLE items DROP CONSTRAINT items_run_id_fkey;
ALTER TABLE rejects DROP CONSTRAINT rejects_run_id_fkey;

-- +goose StatementBegin
CREATE FUNCTION runs_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'run % is part of the ledger: runs are never deleted nor renumbered', OLD.id
        USING ERRCODE = 'restrict_violation';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER runs_keep BEFORE DELETE OR UPDATE OF id ON runs
    FOR EACH ROW EXECUTE FUNCTION runs_keep();

ANALYZE items;
ANALYZE source_rows;

-- +goose Down
DROP TRIGGER runs_keep ON runs;
DROP FUNCTION runs_keep();
ALTER TABLE rejects ADD FOREIGN KEY (run_id) REFERENCES runs (id);
ALTER TABLE items ADD FOREIGN KEY (run_id) REFERENCES runs (id);
ALTER TABLE source_rows ADD FOREIGN KEY (run_id) REFERENCES runs (id);
DROP INDEX effects_succeeded;
DROP INDEX run_sellers_seller;
DROP INDEX late_refunds_open;
DROP INDEX adjustments_order;
DROP INDEX items_run_payprotocol_open;
