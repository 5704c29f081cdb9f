-- A pending late refund whose order the ledger never settled says why,
-- from the order's first reject: PendingLateRefunds looked for it among
-- every reject of the ledger, with no index on the order - one scan of
-- the rejects of every date for each pending late refund (on a ledger of
-- 100 days with 2,000 rejects a day, 16 ms each: 8 s for 500 pending
-- refunds; on a year of million-order days, minutes). rejects_order finds
-- an order's rejects at once. Rejects are few (a row the day could not
-- settle) and have an order number mostly: the index costs the day's
-- write nothing that shows.

-- +goose Up
CREATE INDEX rejects_order ON rejects (order_no) WHERE order_no <> '';

-- +goose Down
DROP INDEX rejects_order;
