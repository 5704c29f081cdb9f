-- The held items of a run, noted as the rejected ones are (migration
-- 00018), issue #14. Every run's reject gate counts the run's Pay Protocol
-- orders held for a failed payment (HeldOfRun); it read every Pay Protocol
-- item of the run to find those few (items_run_payprotocol: half of a
-- day's items). On the 2-core development VM, a day of a million orders:
-- 0.15 s of a 0.35 s re-run of the finished day, and 0.5-0.7 s right
-- after the day's COPY (the first read of fresh rows sets their hint
-- bits), at the end of the first run and in the benchmark's re-run. A
-- partial index on state would do it too, but would end the items' HOT
-- updates (00018): any index whose predicate names state does.
--
-- So the trigger that notes a rejected item now notes a held one as well,
-- in items_held, when an item becomes held: one trigger, one WHEN test
-- a row at the day's COPY, as before. A note is never taken back; it is
-- read joined to its item, which says whether it is still held, so a note
-- left by an item that moved on counts for nothing.
--
-- On an existing ledger: one read of items for the held ones, items
-- locked all the while (its trigger is replaced: ACCESS EXCLUSIVE until
-- the migration commits), so runs wait; on a ledger of years, minutes
-- (00018's read of items for its rejected ones took as long). Applied
-- again over itself (a ledger whose recorded version was set back, as a
-- test of settle's does), it changes nothing.

-- +goose Up
CREATE TABLE IF NOT EXISTS items_held (
    run_id    bigint NOT NULL,
    order_no  text COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, order_no)
);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION items_note_state() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.state = 'rejected' THEN
        INSERT INTO items_rejected (run_id, order_no) VALUES (NEW.run_id, NEW.order_no) ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO items_held (run_id, order_no) VALUES (NEW.run_id, NEW.order_no) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
DROP TRIGGER IF EXISTS items_note_rejected ON items;
DROP FUNCTION IF EXISTS items_note_rejected();
DROP TRIGGER IF EXISTS items_note_state ON items;
CREATE TRIGGER items_note_state AFTER INSERT OR UPDATE OF state, run_id, order_no ON items
    FOR EACH ROW WHEN (NEW.state IN ('rejected', 'held')) EXECUTE FUNCTION items_note_state();
INSERT INTO items_held (run_id, order_no) SELECT run_id, order_no FROM items WHERE state = 'held'
    ON CONFLICT DO NOTHING;

-- A run writes the notes through the trigger, reads them at its gate and
-- deletes them with its items when it reads its date again: the roles
-- that may open a run (INSERT on runs) get what a run does, as 00030 gave
-- them rules_files, or the first night after the deploy was exit 2. The
-- trigger writes a note as whoever changes the item: a role that may
-- insert or update items (a person's, for settle resolve) may insert
-- notes, held and rejected alike. grant_like does it, for the later
-- migrations too.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION grant_like(tbl regclass, privileges text, holders regclass, held text) RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = holders AND a.privilege_type = held AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON %s TO %s', privileges, tbl, grantee);
    END LOOP;
END
$$;
-- +goose StatementEnd
REVOKE EXECUTE ON FUNCTION grant_like(regclass, text, regclass, text) FROM PUBLIC;
SELECT grant_like('items_held', 'SELECT, INSERT, DELETE', 'runs', 'INSERT');
SELECT grant_like(t, 'INSERT', 'items', p) FROM unnest(ARRAY['items_held', 'items_rejected']::regclass[]) t, unnest(ARRAY['INSERT', 'UPDATE']) p;

-- +goose Down
-- +goose StatementBegin
CREATE FUNCTION items_note_rejected() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO items_rejected (run_id, order_no) VALUES (NEW.run_id, NEW.order_no) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
DROP TRIGGER items_note_state ON items;
DROP FUNCTION items_note_state();
CREATE TRIGGER items_note_rejected AFTER INSERT OR UPDATE OF state, run_id, order_no ON items
    FOR EACH ROW WHEN (NEW.state = 'rejected') EXECUTE FUNCTION items_note_rejected();
DROP TABLE items_held;
DROP FUNCTION grant_like(regclass, text, regclass, text);
