-- What the look at the windows of dates already read finds (README, "Rows
-- written into a settled window afterwards"), kept: before, each order it
-- named was in the night's log alone (its exit 4 and metrics), gone with
-- the CronJob's pod. settle status shows them, status --order the order's,
-- and the date's mismatches.csv lists those still found (category
-- late_order) once its reports are written again.
--
-- late_order_looks: per date compared, the latest look that went through
-- (the comparison whole: a look that failed or was not made records
-- nothing), on the ledger's clock, and the run that made it.
--
-- late_orders: one row per order a look named and kind (written_late,
-- changed, gone), under the date whose window was compared. A look that
-- names it again updates the row (last_seen, last_run_id and what it found
-- then); first_seen stays. Its last_seen is its date's looked_at while the
-- latest look found it; older, that look (the platform's query given as
-- it was read, or an order no longer named) no longer did: cleared, kept
-- for the record. state is what the ledger held of the order then:
-- not_read (written late), settled (an item: settled_on, its seller,
-- currency and gross), rejected (read, no item, its date's transform
-- done) or unclassified (read, its transform not done yet); seller_id and
-- currency are its item's, else as given now, else as read ('' for NULL);
-- now_minor is amount_minor as given now when it is an integer; detail is
-- extract.Difference.Detail (a changed order's columns old -> new).
--
-- New tables, written by the look of every run (shard 0's) after its own
-- work: granted, as 00030 and 00034 did theirs, to the roles that may open
-- a run (INSERT on runs), and for reading to those that may read runs
-- (settle status, settle report). IF (NOT) EXISTS: a ledger whose version
-- table was set back by hand past it migrates again.

-- +goose Up
CREATE TABLE IF NOT EXISTS late_order_looks (
    business_date date PRIMARY KEY,
    looked_at     timestamptz NOT NULL,
    run_id        bigint REFERENCES runs (id)
);
CREATE TABLE IF NOT EXISTS late_orders (
    business_date date NOT NULL,
    order_no      text COLLATE "C" NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('written_late', 'changed', 'gone')),
    state         text NOT NULL CHECK (state IN ('not_read', 'settled', 'rejected', 'unclassified')),
    seller_id     text COLLATE "C" NOT NULL DEFAULT '',
    currency      text COLLATE "C" NOT NULL DEFAULT '',
    settled_on    date,
    settled_minor bigint,
    now_minor     bigint,
    detail        text NOT NULL DEFAULT '',
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    last_run_id   bigint REFERENCES runs (id),
    PRIMARY KEY (business_date, order_no, kind)
);
SELECT grant_like(t, 'SELECT, INSERT, UPDATE', 'runs', 'INSERT') FROM unnest(ARRAY['late_order_looks', 'late_orders']::regclass[]) t;
SELECT grant_like(t, 'SELECT', 'runs', 'SELECT') FROM unnest(ARRAY['late_order_looks', 'late_orders']::regclass[]) t;

-- +goose Down
DROP TABLE IF EXISTS late_orders;
DROP TABLE IF EXISTS late_order_looks;
