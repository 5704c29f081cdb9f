-- The payouts a run's planning found ready to send, waiting on the check
-- of their currency's platform balance (issue #12: memory flat whatever
-- the day). Infinia's distribute stage checks each seller and currency
-- first (binding, minimum payout, late refunds, ...) and the platform's
-- balance in a currency only once it knows every new payout in it: it
-- planned none of them if the balance fell short. It kept those payouts in
-- memory between the two, some 300 bytes for each seller and currency
-- (16 MB on a 1,000,000-order day of 20,000 sellers). They wait here now:
-- the stage sums a currency here, and reads its payouts back 1,000 at a
-- time to ask each seller's available share and plan the payout.
--
-- A planning's rows are scratch, not history: the stage clears the run's
-- rows of the kind before it plans and once it has planned them. A row
-- holds what the checks saw (the run's items, the carried balance): the
-- payout is planned only if the ledger still adds up to it (PlanPayout).

-- +goose Up
CREATE TABLE payout_candidates (
    run_id         bigint NOT NULL REFERENCES runs (id),
    kind           text   NOT NULL,            -- the payout's effect kind
    currency       text   COLLATE "C" NOT NULL,
    seller_id      text   COLLATE "C" NOT NULL,
    payable_minor  bigint NOT NULL,            -- the run's items no payout covers yet
    items          bigint NOT NULL,
    carried_minor  bigint NOT NULL,            -- the seller's open carried balance, signed
    account        text   NOT NULL,            -- the seller's account at the provider
    PRIMARY KEY (run_id, kind, currency, seller_id)
);

-- +goose Down
DROP TABLE payout_candidates;
