-- The Pay Protocol verification reads the items it verifies in keyset pages
-- of 10,000 by order number (it held the whole day's before: 190,000 items
-- at 1,000,000 orders). The open Pay Protocol items of a run (unverified,
-- or held by an earlier verification) are indexed by (run_id, order_no)
-- instead of run_id alone, so that each page walks them from its cursor
-- and stops at its limit: with run_id alone it read every open item of the
-- run and sorted them, for every page.

-- +goose Up
CREATE INDEX items_run_payprotocol_open_order ON items (run_id, order_no)
    WHERE channel = 'payprotocol' AND state IN ('unverified', 'held');
DROP INDEX items_run_payprotocol_open;

-- +goose Down
CREATE INDEX items_run_payprotocol_open ON items (run_id)
    WHERE channel = 'payprotocol' AND state IN ('unverified', 'held');
DROP INDEX items_run_payprotocol_open_order;
