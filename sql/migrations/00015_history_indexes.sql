-- Reads of one date, one run or one seller that found their rows among the
-- ledger's whole history (issue #14: a night's reads cost that night's
-- rows). Found by going through every statement of a run against a
-- synthetic ledger of 100 dates; each index below turns a scan of every
-- date into a look-up:
--
-- adjustments_netted_date: the sellers report's balances carried in and
--   out of a date read the entries netted on or after it (with the open
--   ones, by adjustments_open); it scanned every entry ever recorded.
-- adjustments_clawback_date: the summary's clawbacks of a date.
-- adjustments_run: a re-extract's checks and removal of the run's held
--   entries.
-- late_refunds_date: the late refunds read on a date (the orders report,
--   the platform matcher's rejected ones, settle status).
-- run_sellers_infinia: the seller of an Infinia id, once per binding
--   webhook delivered (it scanned every run's sellers, some 20,000 rows a
--   day kept).
-- run_sellers_infinia_seller: a seller's latest Infinia id (the carried
--   balances, the payout candidates, the expected shares); for a seller
--   without one - not bound, its payouts carried - the look-up walked
--   every run of the seller, each night.

-- +goose Up
CREATE INDEX adjustments_netted_date ON adjustments (netted_date) WHERE netted_into <> '';
CREATE INDEX adjustments_clawback_date ON adjustments (business_date) WHERE kind = 'clawback';
CREATE INDEX adjustments_run ON adjustments (run_id);
CREATE INDEX late_refunds_date ON late_refunds (business_date);
CREATE INDEX run_sellers_infinia ON run_sellers (infinia_seller_id) WHERE infinia_seller_id <> '';
CREATE INDEX run_sellers_infinia_seller ON run_sellers (seller_id, run_id) WHERE infinia_seller_id <> '';

-- +goose Down
DROP INDEX run_sellers_infinia_seller;
DROP INDEX run_sellers_infinia;
DROP INDEX late_refunds_date;
DROP INDEX adjustments_run;
DROP INDEX adjustments_clawback_date;
DROP INDEX adjustments_netted_date;
