-- The trade file each Infinia item was last listed in, by its requestNo
-- (found by an audit review: an item's provider_ref names its trade file
-- while it waits on it, then the revenue share that pays it, so `settle
-- status --subject` of an upload listed no order, and which orders a file
-- of years ago held was known only from the file itself). Set with
-- provider_ref when a file is recorded (RecordTradeFile), never cleared:
-- an item taken out of a failed file keeps it until a new file lists it.
-- No index: only the audit of one date's file reads it, within the date's
-- items. NULL for the other channels' items, and for those listed before
-- this migration.

-- +goose Up
ALTER TABLE items ADD COLUMN IF NOT EXISTS trade_file text COLLATE "C";

-- +goose Down
ALTER TABLE items DROP COLUMN IF EXISTS trade_file;
