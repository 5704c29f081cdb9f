-- A run's totals by channel and currency (what `settle run` prints at its
-- end and `settle status` shows), recorded with its items in the transform
-- stage's transaction: a re-run of a finished day read them by summing
-- every item of the run (0.36 s of a million-order day's 0.5 s re-run of
-- `--until transform`), and so did every first run at its end. The items'
-- amounts never change once recorded, and whatever removes a run's items
-- (a re-extract) removes its totals with them; a transaction that adds items
-- to a run adds to its totals. A run recorded before this
-- migration has none here: its totals are summed from its items, as before.

-- +goose Up
CREATE TABLE run_totals (
    run_id            bigint  NOT NULL REFERENCES runs (id),
    channel           text    NOT NULL,
    currency          text    COLLATE "C" NOT NULL,
    orders            bigint  NOT NULL,
    gross_minor       numeric NOT NULL,
    refunded_minor    numeric NOT NULL,
    commission_minor  numeric NOT NULL,
    seller_minor      numeric NOT NULL,
    PRIMARY KEY (run_id, channel, currency)
);

-- +goose Down
DROP TABLE run_totals;
