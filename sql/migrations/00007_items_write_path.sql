-- The day's COPY into items made cheaper (issue #14), in two ways.
--
-- A. The ledger's keys compared byte-wise: every column holding an order
-- number, a seller id, a currency, a refund number or an effect's subject
-- (and the carry entries' subjects that name one) uses the "C" collation
-- instead of the database's.
--
-- 1. Speed. Every day's COPY into items checks its primary key (order_no)
--    and builds (business_date, seller_id, currency) for each row; under a
--    libc collation other than C (C.UTF-8, en_US.UTF-8, the usual server
--    defaults) each comparison goes through strcoll and sorts get no
--    abbreviated keys. The gain is modest where the server's C.UTF-8 is
--    glibc's (which compares code points): PostgreSQL's CPU for a COPY of
--    250,000 items, median of five, 2.81 s with "C" against 3.04 s; into a
--    table with only the primary key, 1.01-1.32 s against 1.35-1.62 s.
--    A database created with the C locale (as the tests' are) already
--    compared its default collation byte-wise: nothing changes there.
-- 2. The same answer on every server: reports ordered by order number,
--    seller or subject list them in byte order (for ASCII keys the order
--    C.UTF-8 gave), whatever locale the database was created with.
-- 3. Index use in joins: a comparison takes the collation of its operands,
--    and an index serves it only in that collation, so every column joined
--    or compared with an altered one is altered with it (items with
--    late_refunds, adjustments, rejects, run_sellers, trade_files; the
--    WeChat and revenue-share subjects of effects with items and with the
--    carry entries netted into them). A column of the default collation
--    compared with one of "C" is compared in "C" (the default yields).
--
-- On an existing ledger the tables' rows are not rewritten (a change of
-- collation alone keeps every value's bytes: the tables keep their files),
-- but every index on an altered column is rebuilt, each table under an
-- ACCESS EXCLUSIVE lock while it is: on a ledger of 1,000,000 items (and
-- 1,000,000 snapshot rows) `settle migrate` took 5.5 s on the 2-core
-- development VM under a load of 9, about 5 s per million items. Run it
-- when no run is going.
--
-- B. No foreign-key trigger per item. items.carry_id (the carry entry an
-- item's seller share went into) referenced adjustments with a foreign key,
-- whose trigger PostgreSQL queues and fires for every row inserted, a NULL
-- carry_id included: every item of a day's COPY (which never carries) paid
-- for it: PostgreSQL's CPU for a COPY of 1,000,000 items, four rounds
-- alternating, 10.15-11.14 s (median 10.54) with the key, 8.31-10.18 s
-- (median 9.97) with the triggers below, less in every round (about 5%,
-- half a microsecond an item). The same rule is now
-- kept by two triggers that fire only where it can be broken: a carry_id
-- set (on insert or update) must name an adjustment, which stays locked
-- (FOR KEY SHARE, as the foreign key locked it) until the transaction
-- ends; an adjustment that items are carried into cannot be deleted,
-- renumbered or truncated.

-- +goose Up
ALTER TABLE items
    ALTER COLUMN order_no  TYPE text COLLATE "C",
    ALTER COLUMN seller_id TYPE text COLLATE "C",
    ALTER COLUMN currency  TYPE text COLLATE "C";
ALTER TABLE source_rows
    ALTER COLUMN order_no  TYPE text COLLATE "C",
    ALTER COLUMN seller_id TYPE text COLLATE "C",
    ALTER COLUMN currency  TYPE text COLLATE "C";
ALTER TABLE rejects
    ALTER COLUMN order_no  TYPE text COLLATE "C",
    ALTER COLUMN seller_id TYPE text COLLATE "C",
    ALTER COLUMN currency  TYPE text COLLATE "C";
ALTER TABLE run_sellers
    ALTER COLUMN seller_id TYPE text COLLATE "C";
ALTER TABLE seller_bindings
    ALTER COLUMN seller_id TYPE text COLLATE "C";
ALTER TABLE trade_files
    ALTER COLUMN seller_id TYPE text COLLATE "C",
    ALTER COLUMN currency  TYPE text COLLATE "C";
ALTER TABLE late_refunds
    ALTER COLUMN refund_no TYPE text COLLATE "C",
    ALTER COLUMN order_no  TYPE text COLLATE "C",
    ALTER COLUMN seller_id TYPE text COLLATE "C";
ALTER TABLE adjustments
    ALTER COLUMN seller_id   TYPE text COLLATE "C",
    ALTER COLUMN currency    TYPE text COLLATE "C",
    ALTER COLUMN order_no    TYPE text COLLATE "C",
    ALTER COLUMN refund_no   TYPE text COLLATE "C",
    ALTER COLUMN subject     TYPE text COLLATE "C",
    ALTER COLUMN netted_into TYPE text COLLATE "C";
ALTER TABLE mismatches
    ALTER COLUMN subject   TYPE text COLLATE "C",
    ALTER COLUMN order_no  TYPE text COLLATE "C",
    ALTER COLUMN seller_id TYPE text COLLATE "C",
    ALTER COLUMN currency  TYPE text COLLATE "C";
ALTER TABLE effects
    ALTER COLUMN subject  TYPE text COLLATE "C",
    ALTER COLUMN currency TYPE text COLLATE "C";

ALTER TABLE items DROP CONSTRAINT items_carry_id_fkey;
-- +goose StatementBegin
CREATE FUNCTION items_carry_exists() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM 1 FROM adjustments WHERE id = NEW.carry_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item % is carried into adjustment %, which does not exist', NEW.order_no, NEW.carry_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER items_carry_exists AFTER INSERT OR UPDATE OF carry_id ON items
    FOR EACH ROW WHEN (NEW.carry_id IS NOT NULL) EXECUTE FUNCTION items_carry_exists();
-- +goose StatementBegin
CREATE FUNCTION adjustments_keep_carried() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM items WHERE carry_id IS NOT NULL) THEN
            RAISE EXCEPTION 'adjustments carry items: TRUNCATE refused' USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM items WHERE carry_id = OLD.id) THEN
        RAISE EXCEPTION 'adjustment % carries items: % refused', OLD.id, TG_OP USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER adjustments_keep_carried BEFORE DELETE OR UPDATE OF id ON adjustments
    FOR EACH ROW EXECUTE FUNCTION adjustments_keep_carried();
CREATE TRIGGER adjustments_keep_carried_truncate BEFORE TRUNCATE ON adjustments
    FOR EACH STATEMENT EXECUTE FUNCTION adjustments_keep_carried();

-- +goose Down
DROP TRIGGER adjustments_keep_carried_truncate ON adjustments;
DROP TRIGGER adjustments_keep_carried ON adjustments;
DROP FUNCTION adjustments_keep_carried();
DROP TRIGGER items_carry_exists ON items;
DROP FUNCTION items_carry_exists();
ALTER TABLE items ADD FOREIGN KEY (carry_id) REFERENCES adjustments (id);

ALTER TABLE effects
    ALTER COLUMN subject  TYPE text COLLATE "default",
    ALTER COLUMN currency TYPE text COLLATE "default";
ALTER TABLE mismatches
    ALTER COLUMN subject   TYPE text COLLATE "default",
    ALTER COLUMN order_no  TYPE text COLLATE "default",
    ALTER COLUMN seller_id TYPE text COLLATE "default",
    ALTER COLUMN currency  TYPE text COLLATE "default";
ALTER TABLE adjustments
    ALTER COLUMN seller_id   TYPE text COLLATE "default",
    ALTER COLUMN currency    TYPE text COLLATE "default",
    ALTER COLUMN order_no    TYPE text COLLATE "default",
    ALTER COLUMN refund_no   TYPE text COLLATE "default",
    ALTER COLUMN subject     TYPE text COLLATE "default",
    ALTER COLUMN netted_into TYPE text COLLATE "default";
ALTER TABLE late_refunds
    ALTER COLUMN refund_no TYPE text COLLATE "default",
    ALTER COLUMN order_no  TYPE text COLLATE "default",
    ALTER COLUMN seller_id TYPE text COLLATE "default";
ALTER TABLE trade_files
    ALTER COLUMN seller_id TYPE text COLLATE "default",
    ALTER COLUMN currency  TYPE text COLLATE "default";
ALTER TABLE seller_bindings
    ALTER COLUMN seller_id TYPE text COLLATE "default";
ALTER TABLE run_sellers
    ALTER COLUMN seller_id TYPE text COLLATE "default";
ALTER TABLE rejects
    ALTER COLUMN order_no  TYPE text COLLATE "default",
    ALTER COLUMN seller_id TYPE text COLLATE "default",
    ALTER COLUMN currency  TYPE text COLLATE "default";
ALTER TABLE source_rows
    ALTER COLUMN order_no  TYPE text COLLATE "default",
    ALTER COLUMN seller_id TYPE text COLLATE "default",
    ALTER COLUMN currency  TYPE text COLLATE "default";
ALTER TABLE items
    ALTER COLUMN order_no  TYPE text COLLATE "default",
    ALTER COLUMN seller_id TYPE text COLLATE "default",
    ALTER COLUMN currency  TYPE text COLLATE "default";
