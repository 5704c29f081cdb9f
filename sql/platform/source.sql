-- The default source query. Parameters: $1 window start (inclusive) and $2
-- window end (exclusive), both timestamptz. Columns, in this order:
--   order_no, seller_id, provider, provider_txn_id, currency, amount_minor,
--   refunded_minor, category, paid_at, confirmed_at
-- Refunds are those recorded before the end of the window; one that arrives
-- later is a late refund, handled as an adjustment.
SELECT o.order_no,
       o.seller_id,
       o.provider,
       o.provider_txn_id,
       o.currency,
       o.amount_minor,
       COALESCE(r.refunded_minor, 0) AS refunded_minor,
       o.category,
       o.paid_at,
       o.confirmed_at
FROM orders o
LEFT JOIN (
    SELECT order_no, sum(amount_minor) AS refunded_minor
    FROM refunds
    WHERE created_at < $2
    GROUP BY order_no
) r ON r.order_no = o.order_no
WHERE o.confirmed_at >= $1 AND o.confirmed_at < $2
