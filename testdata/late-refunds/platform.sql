-- The late-refunds scenario's platform rows, run after the reference platform
-- schema (sql/platform/schema.sql). Three sellers over 2026-11-20..22 (UTC);
-- R0 is refunded on its order's day, R1..R3 late.
INSERT INTO sellers (seller_id, name, infinia_seller_id) VALUES
  ('S00001', 'One', 'INF00000001'), ('S00002', 'Two', 'INF00000002'), ('S00003', 'Three', 'INF00000003');
INSERT INTO orders (order_no, seller_id, provider, provider_txn_id, currency, amount_minor, category, paid_at, confirmed_at) VALUES
  ('O1', 'S00001', 'infiniapay', 'T1', 'USD', 10000, 'toys', '2026-11-19 09:00Z', '2026-11-20 10:00Z'),
  ('O2', 'S00001', 'infiniapay', 'T2', 'USD',  5000, 'toys', '2026-11-19 09:00Z', '2026-11-20 11:00Z'),
  ('O3', 'S00002', 'infiniapay', 'T3', 'USD', 20000, 'toys', '2026-11-19 09:00Z', '2026-11-20 12:00Z'),
  ('O4', 'S00003', 'infiniapay', 'T4', 'USD',  3000, 'toys', '2026-11-19 09:00Z', '2026-11-20 13:00Z'),
  ('O5', 'S00001', 'infiniapay', 'T5', 'USD',  4000, 'toys', '2026-11-20 09:00Z', '2026-11-21 10:00Z'),
  ('O6', 'S00002', 'infiniapay', 'T6', 'USD',  2000, 'toys', '2026-11-20 09:00Z', '2026-11-21 11:00Z'),
  ('O7', 'S00003', 'infiniapay', 'T7', 'USD',  3000, 'toys', '2026-11-20 09:00Z', '2026-11-21 12:00Z'),
  ('O8', 'S00001', 'infiniapay', 'T8', 'USD', 20000, 'toys', '2026-11-21 09:00Z', '2026-11-22 10:00Z'),
  ('O9', 'S00003', 'infiniapay', 'T9', 'USD',  1000, 'toys', '2026-11-21 09:00Z', '2026-11-22 11:00Z');
INSERT INTO refunds (refund_no, order_no, amount_minor, created_at) VALUES
  ('R0', 'O2',  1000, '2026-11-20 15:00Z'),
  ('R1', 'O1', 10000, '2026-11-21 08:00Z'),
  ('R2', 'O2',  2000, '2026-11-22 08:00Z'),
  ('R3', 'O3', 20000, '2026-11-22 09:00Z');
