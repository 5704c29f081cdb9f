-- The roles that may read the ledger's runs (settle status, settle report
-- under a role of their own: README, "Roles") may read the reprices, as
-- 00037 grants them late_orders and late_order_looks. 00038 granted
-- SELECT on reprices to the roles that may open a run alone, and settle
-- status (a date's reprices) and settle report (their entries in
-- orders.csv and summary.csv) read it for every date: under such a role
-- both were "permission denied for table reprices" once the ledger was
-- migrated (found by a review). Applied again over itself, it changes
-- nothing.

-- +goose Up
SELECT grant_like('reprices', 'SELECT', 'runs', 'SELECT');

-- +goose Down
-- The grants are left: 00038's down drops the table, and them with it.
SELECT 1;
