-- Item updates made HOT (heap-only tuples, issue #14). Every later stage
-- moves each item through its states (recorded, uploaded, paid, held,
-- rejected), seller by seller: four writes to each of a day's items, the
-- database's largest cost in upload, distribute and reconcile. None was
-- HOT: `state` was in the predicates of two partial indexes (the open Pay
-- Protocol items, migration 00010; the rejected ones, 00017), and
-- PostgreSQL makes an update HOT only when no column an index uses
-- (key, INCLUDE, expression or predicate) changes and the new version
-- fits on the old one's page. So every write added an entry to each of the
-- indexes of items and left them to VACUUM.
--
-- Measured in psql on the 2-core development VM (PostgreSQL 15): a million
-- items of 20,000 sellers, each seller's four writes of a day, committing
-- after each, as the stages do: 92.4 s with the two indexes, 34.0 s with
-- them replaced as below, 28.8 s with fillfactor 90 as well; the VACUUM
-- after 1.09, 0.53 and 0.25 s. The day's COPY into the same tables took
-- 9.5, 9.7 and 9.9 s.
--
-- 1. The verification's pages walk a run's Pay Protocol items by order
--    number, all of them (channel never changes), and skip those it
--    settled already. A first run verifies every one of them anyway; a
--    re-run of a finished day reads them once to find none open (one
--    index walk of the run's Pay Protocol items, no writes).
-- 2. The orders a provider rejected, which every run's end lists, are
--    noted in items_rejected when an item becomes rejected (a trigger,
--    which fires only then: whatever code rejects an item, it is noted),
--    and read from there joined to items, which says whether each is still
--    rejected: a row is never taken back, so a note left by an item that
--    moved on, or was deleted, counts for nothing.
-- 3. fillfactor 90: a day's COPY leaves a tenth of each page free, room
--    for the items' next versions on their own pages. Pages written before
--    this migration stay full until VACUUM frees them.
--
-- On an existing ledger: one read of items for the rejected ones and one
-- for the new index; writes to items wait meanwhile.

-- +goose Up
CREATE TABLE items_rejected (
    run_id    bigint NOT NULL,
    order_no  text COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, order_no)
);
-- +goose StatementBegin
CREATE FUNCTION items_note_rejected() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO items_rejected (run_id, order_no) VALUES (NEW.run_id, NEW.order_no) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER items_note_rejected AFTER INSERT OR UPDATE OF state, run_id, order_no ON items
    FOR EACH ROW WHEN (NEW.state = 'rejected') EXECUTE FUNCTION items_note_rejected();
INSERT INTO items_rejected (run_id, order_no) SELECT run_id, order_no FROM items WHERE state = 'rejected';

CREATE INDEX items_run_payprotocol ON items (run_id, order_no) WHERE channel = 'payprotocol';
DROP INDEX items_run_payprotocol_open_order;
DROP INDEX items_run_rejected;
ALTER TABLE items SET (fillfactor = 90);

-- +goose Down
ALTER TABLE items RESET (fillfactor);
CREATE INDEX items_run_rejected ON items (run_id) WHERE state = 'rejected';
CREATE INDEX items_run_payprotocol_open_order ON items (run_id, order_no)
    WHERE channel = 'payprotocol' AND state IN ('unverified', 'held');
DROP INDEX items_run_payprotocol;
DROP TRIGGER items_note_rejected ON items;
DROP FUNCTION items_note_rejected();
DROP TABLE items_rejected;
