-- A page of a run's items costs what it returns (issue #14).
--
-- The stages read a day's items of one channel in keyset pages of 10,000
-- (WHERE run_id = $1 AND channel = ... AND order_no > $after ORDER BY
-- order_no LIMIT n): the WeChat distribute batches and matcher, the Pay
-- Protocol matcher, the items waiting in a state. With only items_run
-- (run_id) the planner read every item of the run for each page and sorted
-- them, once the ledger held more than one day (EXPLAIN ANALYZE, a ledger
-- of 20 days of 50,000 items: 50,000 rows read and sorted for each page of
-- 10,000; a day of 1,000,000 items read its million rows 100 times per
-- pass). (run_id, order_no) starts each page at its cursor and stops at
-- its limit, in order, and still serves every query naming only the run.
--
-- It replaces items_run rather than joining it: with both, the planner
-- keeps taking the smaller items_run. Its cost at the day's COPY: psql
-- \copy of 1,000,000 items into items with its other indexes, 7.7-7.9 s
-- against 7.0-7.3 s with items_run (an index of the four columns the pages
-- filter on, run, channel, state and order, cost 9.5-12.5 s, and every
-- change of an item's state would have moved its entry).
--
-- On an existing ledger the index is built once (1.6 s for a million
-- items, with other work on the machine); items is locked against writes
-- meanwhile.

-- +goose Up
CREATE INDEX items_run_order ON items (run_id, order_no);
DROP INDEX items_run;

-- +goose Down
CREATE INDEX items_run ON items (run_id);
DROP INDEX items_run_order;
