-- The default late-refunds query. Parameters: $1 window start (inclusive)
-- and $2 window end (exclusive), both timestamptz. Columns, in this order:
--   refund_no, order_no, seller_id, amount_minor, created_at
-- A late refund is one recorded in the window for an order whose escrow was
-- released before the window: that order's day has closed, its refunds up
-- to then were netted by the source query, and this one was not.
-- A refund of an order number that more than one order row holds comes
-- once for each of them, so that settle sees rows that disagree (two
-- sellers, say) rather than the settled order's alone: it is then for a
-- person, never taken back from a seller whose order was not refunded.
SELECT r.refund_no,
       r.order_no,
       o.seller_id,
       r.amount_minor,
       r.created_at
FROM refunds r
JOIN orders o ON o.order_no = r.order_no
WHERE r.created_at >= $1 AND r.created_at < $2
  AND EXISTS (SELECT 1 FROM orders c WHERE c.order_no = r.order_no AND c.confirmed_at < $1)
