-- A corrected rules file reprices a date already split (settle reprice;
-- DESIGN section 3, rule 6: "a fixed rule" becomes an adjustment line).
-- Before, a commission a rules file got wrong for a date whose money went
-- out was corrected by hand, outside settle.
--
-- reprices: one row per reprice of a date that changed something - its
-- rules (a file other than the one the date was split or last repriced
-- with) or a seller share. rules_file is the file, kept as the runs keep
-- theirs (rules_files, 00030); the date's rules are its latest reprice's
-- (a late refund of one of its orders splits under them), the history
-- kept. Append-only, as rules_files is.
--
-- adjustments of kind 'reprice': one per order whose seller share the
-- reprice changed, amount_minor the difference (positive: owed to the
-- seller; negative: a clawback), netted into the seller's next revenue
-- share as any entry. The platform's commission moves by the opposite:
-- commission_back = amount_minor (what the platform gives back of it),
-- no refund (refund_minor 0), so that refund = commission_back - amount
-- holds as it does for a clawback and every order still balances.

-- +goose Up
CREATE TABLE IF NOT EXISTS reprices (
    id            bigserial   PRIMARY KEY,
    business_date date        NOT NULL,
    rules_file    text        NOT NULL REFERENCES rules_files (file_hash),
    rules_hash    text        NOT NULL,
    orders        bigint      NOT NULL, -- the orders whose seller share it changed
    named         bigint      NOT NULL, -- the orders it names for a person (their channel's shares are not netted)
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS reprices_date ON reprices (business_date, id);

ALTER TABLE adjustments ADD COLUMN IF NOT EXISTS reprice_id bigint REFERENCES reprices (id);
ALTER TABLE adjustments DROP CONSTRAINT IF EXISTS adjustments_kind_check;
ALTER TABLE adjustments ADD CONSTRAINT adjustments_kind_check CHECK (kind IN ('held', 'clawback', 'reprice'));
-- Applied again over itself (a ledger set back to an earlier version, its
-- later migrations' objects left), as every migration is.
ALTER TABLE adjustments DROP CONSTRAINT IF EXISTS adjustments_reprice_check;
ALTER TABLE adjustments ADD CONSTRAINT adjustments_reprice_check
    CHECK ((kind = 'reprice') = (reprice_id IS NOT NULL)
           AND (kind <> 'reprice' OR (order_no <> '' AND refund_minor = 0 AND commission_back = amount_minor AND amount_minor <> 0)));
-- A reprice's entries by reprice (a date's: reprices_date, then this; read
-- by reprice_id alone), and an order's by order (kind = 'reprice' and the
-- order: a clawback's look at its order's reprices). Each query matches
-- one index's predicate alone: two partial indexes of one predicate were
-- taken one for the other, read whole, on statistics of before the first
-- reprice.
CREATE UNIQUE INDEX IF NOT EXISTS adjustments_reprice ON adjustments (reprice_id, order_no) WHERE reprice_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS adjustments_reprice_order ON adjustments (order_no) WHERE kind = 'reprice';

-- A run's late refunds read the date's rules: the roles that may open a
-- run may read the reprices (as 00030 grants rules_files).
SELECT grant_like('reprices', 'SELECT', 'runs', 'INSERT');

-- settle status (a date's reprices) and settle report (their entries in
-- orders.csv and summary.csv) read it for every date: the roles that may
-- read runs may read it, as 00037 grants them late_orders (found by a
-- review: under such a role both were "permission denied for table
-- reprices" once the ledger was migrated, a date repriced or not).
SELECT grant_like('reprices', 'SELECT', 'runs', 'SELECT');
-- And the rules files the reprices name (settle status lists each
-- reprice with its file's name, a join of rules_files): 00030 granted
-- rules_files to the roles that may open a run alone, and a role that
-- reads runs, granted its tables before 00030, was "permission denied
-- for table rules_files" on settle status of any date once migrated
-- (found by a review; before settle reprice, status --rules alone read it).
SELECT grant_like('rules_files', 'SELECT', 'runs', 'SELECT');

DROP TRIGGER IF EXISTS reprices_append_only ON reprices;
DROP TRIGGER IF EXISTS reprices_no_truncate ON reprices;
CREATE TRIGGER reprices_append_only BEFORE UPDATE OR DELETE ON reprices
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER reprices_no_truncate BEFORE TRUNCATE ON reprices
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- +goose Down
DROP INDEX IF EXISTS adjustments_reprice_order;
DROP INDEX IF EXISTS adjustments_reprice;
ALTER TABLE adjustments DROP CONSTRAINT IF EXISTS adjustments_reprice_check;
ALTER TABLE adjustments DROP CONSTRAINT IF EXISTS adjustments_kind_check;
ALTER TABLE adjustments ADD CONSTRAINT adjustments_kind_check CHECK (kind IN ('held', 'clawback'));
ALTER TABLE adjustments DROP COLUMN IF EXISTS reprice_id;
DROP TABLE IF EXISTS reprices;
