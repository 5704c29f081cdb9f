-- A synthetic ledger of two years of nights, for timing the reads that
-- span its history (PERFORMANCE.md, "A ledger of two years"). Run against a
-- scratch database migrated by `settle migrate` (schema settle):
--   psql -v ndates=700 -v sellers=2000 -v per_seller=5 -f gen.sql
-- (-v start=YYYY-MM-DD moves the first date from 2025-01-01: a ledger whose
-- last date is yesterday, for a nightly `settle run` of today on it.)
-- (700 dates, 2,000 sellers a date of 20,000, 10,000 items a date: 7,000,000
-- items, 3,850,000 effects, 1,400,000 run_sellers, 6.3 GB; 30 minutes on the
-- 2-core VM under a load of 15-20.)
-- Triggers are off for the load (session_replication_role = replica): the
-- effects' history and share_totals are filled directly, not by trigger.
\set ON_ERROR_STOP on
\if :{?start}
\else
\set start 2025-01-01
\endif
\timing on
SET search_path = settle;
SET session_replication_role = replica;
SET maintenance_work_mem = '512MB';
SET work_mem = '256MB';

-- dates 1..ndates from :start; the last 300 run in 4 shards, the rest whole.
CREATE UNLOGGED TABLE gen_runs AS
SELECT d, DATE :'start' + (d - 1) AS bdate, s AS shard_index, CASE WHEN d > :ndates - 300 THEN 4 ELSE 1 END AS shard_count
FROM generate_series(1, :ndates) d, generate_series(0, 3) s
WHERE s < CASE WHEN d > :ndates - 300 THEN 4 ELSE 1 END;

INSERT INTO runs (business_date, shard_index, shard_count, state, stages_done, time_zone, rules_hash, config_hash, attempts,
                  last_error, started_at, updated_at, finished_at)
SELECT bdate, shard_index, shard_count, 'done', '{extract,transform,upload,distribute,reconcile}', 'Asia/Shanghai', 'r', 'c',
       1 + (d % 3), CASE WHEN d % 97 = 0 THEN 'needs a person: 1 payout' ELSE '' END,
       bdate + interval '1 day 2 hours', bdate + interval '1 day 3 hours', bdate + interval '1 day 3 hours'
FROM gen_runs ORDER BY d, shard_index;
ALTER TABLE gen_runs ADD COLUMN run_id bigint;
UPDATE gen_runs g SET run_id = r.id FROM runs r WHERE r.business_date = g.bdate AND r.shard_index = g.shard_index AND r.shard_count = g.shard_count;

-- the sellers of each date: :sellers of a population of 20,000, rotating.
CREATE UNLOGGED TABLE gen_sellers AS
SELECT d, bdate, k, sn, 'S' || lpad(sn::text, 5, '0') AS seller_id,
       CASE WHEN sn % 20 < 12 THEN 'infiniapay' WHEN sn % 20 < 17 THEN 'wechatpay' ELSE 'payprotocol' END AS channel,
       CASE WHEN sn % 10 < 7 THEN 'USD' WHEN sn % 10 < 9 THEN 'JPY' ELSE 'CNY' END AS currency
FROM (SELECT d, DATE :'start' + (d - 1) AS bdate, k, (d * 7919 + k) % 20000 AS sn
      FROM generate_series(1, :ndates) d, generate_series(0, :sellers - 1) k) x;
ALTER TABLE gen_sellers ADD COLUMN run_id bigint;
UPDATE gen_sellers s SET run_id = g.run_id FROM gen_runs g WHERE g.d = s.d AND g.shard_index = s.sn % g.shard_count;
CREATE INDEX ON gen_sellers (d, k);
ANALYZE gen_sellers;

INSERT INTO run_sellers (run_id, seller_id, name, entity_type, country, infinia_seller_id, wechat_sub_mchid)
SELECT run_id, seller_id, 'Seller ' || sn, 'company', 'CN',
       CASE WHEN channel = 'wechatpay' THEN '' WHEN sn % 50 = 0 AND d > :ndates / 2 THEN 'INFB' || sn ELSE 'INF' || sn END,
       CASE WHEN channel = 'wechatpay' THEN 'SM' || (sn / 10) ELSE '' END
FROM gen_sellers ORDER BY run_id, seller_id;

-- items' other indexes built after the load (faster than kept through it).
DROP INDEX items_carry;
DROP INDEX items_date_seller;
DROP INDEX items_provider_txn;
DROP INDEX items_run_order;
DROP INDEX items_run_payprotocol;
INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency, category, gross_minor,
                   refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, state, reason, payout_key,
                   provider_ref, txn_once)
SELECT 'O' || to_char(bdate, 'YYYYMMDD') || '-' || lpad((k * :per_seller + j)::text, 6, '0'), run_id, bdate, seller_id, channel,
       'T' || to_char(bdate, 'YYYYMMDD') || lpad((k * :per_seller + j)::text, 6, '0'), currency, 'general',
       10000, 0, 1000, 9000, 'default', bdate - interval '3 days', bdate + interval '10 hours',
       CASE WHEN (k * :per_seller + j) % 500 = 7 THEN 'rejected' WHEN (k * :per_seller + j) % 400 = 3 THEN 'carried' ELSE 'paid' END,
       '', CASE WHEN channel = 'wechatpay' THEN 'WX' ELSE 'RS-' || to_char(bdate, 'YYYYMMDD') || '-' || seller_id || '-1' END, 'ref', true
FROM gen_sellers, generate_series(0, :per_seller - 1) j
ORDER BY d, k, j;
CREATE INDEX items_carry ON items USING btree (carry_id) WHERE (carry_id IS NOT NULL);
CREATE INDEX items_date_seller ON items USING btree (business_date, seller_id, currency);
CREATE UNIQUE INDEX items_provider_txn ON items USING btree (channel COLLATE "C", provider_txn_id COLLATE "C") WHERE (txn_once AND (provider_txn_id <> ''::text));
CREATE INDEX items_run_order ON items USING btree (run_id, order_no);
CREATE INDEX items_run_payprotocol ON items USING btree (run_id, order_no) WHERE (channel = 'payprotocol'::text);
ANALYZE items;


INSERT INTO trade_files (run_id, business_date, seller_id, currency, attempt, request_no, name, sha256, rows, bytes, seller_minor, status, updated_at)
SELECT run_id, bdate, seller_id, currency, 1, 'TD-' || to_char(bdate, 'YYYYMMDD') || '-' || seller_id,
       'TD_P_INF' || sn || '_' || currency || '_' || to_char(bdate, 'YYYYMMDD') || '_' || seller_id || '.csv', 'x', :per_seller, 1000,
       9000 * :per_seller, 'SUCCESS', bdate + interval '1 day 2 hours'
FROM gen_sellers WHERE channel <> 'wechatpay' ORDER BY d, k;

INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state, provider_ref, sends, created_at, updated_at)
SELECT run_id, kind, subject, 1, key, currency, amt, 'succeeded', 'ref', 1, ts, ts FROM (
  SELECT d, k, 0 AS o, run_id, 'upload' AS kind, 'TD/' || to_char(bdate, 'YYYYMMDD') || '/' || seller_id || '/' || currency AS subject,
         'TD-' || to_char(bdate, 'YYYYMMDD') || '-' || seller_id AS key, currency, 0::bigint AS amt, bdate + interval '1 day 2 hours' AS ts
  FROM gen_sellers WHERE channel <> 'wechatpay'
  UNION ALL
  SELECT d, k, 1, run_id, 'revenue_share', 'RS/' || to_char(bdate, 'YYYYMMDD') || '/' || seller_id || '/' || currency,
         'RS-' || to_char(bdate, 'YYYYMMDD') || '-' || seller_id || '-1', currency, 9000 * :per_seller, bdate + interval '1 day 3 hours'
  FROM gen_sellers WHERE channel <> 'wechatpay'
  UNION ALL
  SELECT d, k, 2 + j, run_id, 'distribution', 'WX/' || to_char(bdate, 'YYYYMMDD') || '/O' || to_char(bdate, 'YYYYMMDD') || '-' || lpad((k * :per_seller + j)::text, 6, '0'),
         'WXD' || to_char(bdate, 'YYYYMMDD') || lpad((k * :per_seller + j)::text, 6, '0') || '1', currency, 1000, bdate + interval '1 day 3 hours'
  FROM gen_sellers, generate_series(0, :per_seller - 1) j WHERE channel = 'wechatpay'
) e ORDER BY d, k, o;

INSERT INTO effect_events (effect_id, at, from_state, to_state, cause, sends, provider_ref)
SELECT id, updated_at, 'sent', 'succeeded', 'answer', 1, 'ref' FROM effects ORDER BY id;

-- late refunds: 2% of the items of channels paid by revenue share, read 5 days after their date;
-- clawed (each a clawback netted into its seller's revenue share 5 days on), a few pending, rejected or ignored.
CREATE UNLOGGED TABLE gen_lr AS
SELECT i.order_no, i.seller_id, i.currency, i.business_date + 5 AS rdate, g.run_id, g.d + 5 AS rd,
       CASE WHEN i.order_no LIKE '%0013' THEN 'pending' WHEN i.order_no LIKE '%0063' THEN 'rejected' ELSE 'clawed' END AS state
FROM items i JOIN gen_sellers s0 ON s0.run_id = i.run_id AND s0.seller_id = i.seller_id
JOIN LATERAL (SELECT gs.run_id, gs.d FROM gen_runs gs WHERE gs.d = s0.d + 5 AND gs.shard_index = 0) g ON true
WHERE i.channel <> 'wechatpay' AND right(i.order_no, 2) IN ('13', '63', '88');
INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, created_at, run_id, business_date, state, reason)
SELECT 'R' || order_no, order_no, seller_id, 500, rdate, run_id, rdate, state, '' FROM gen_lr ORDER BY rdate, order_no;
INSERT INTO adjustments (seller_id, currency, kind, amount_minor, order_no, refund_no, refund_minor, commission_back, reason,
                         business_date, run_id, netted_into, netted_date)
SELECT seller_id, currency, 'clawback', -450, order_no, 'R' || order_no, 500, 50, 'late refund', rdate, run_id,
       CASE WHEN rdate < DATE :'start' + :ndates - 10 THEN 'RS/' || to_char(rdate + 3, 'YYYYMMDD') || '/' || seller_id || '/' || currency ELSE '' END,
       CASE WHEN rdate < DATE :'start' + :ndates - 10 THEN rdate + 3 END
FROM gen_lr WHERE state = 'clawed' ORDER BY rdate, order_no;
-- held entries: the carried items (below the minimum, not bound), netted two days on, the last 10 dates' open.
INSERT INTO adjustments (seller_id, currency, kind, amount_minor, subject, reason, business_date, run_id, netted_into, netted_date)
SELECT seller_id, currency, 'held', 9000, 'RS/' || to_char(business_date, 'YYYYMMDD') || '/' || seller_id || '/' || currency,
       'below the minimum payout', business_date, run_id,
       CASE WHEN business_date < DATE :'start' + :ndates - 10 THEN 'RS/' || to_char(business_date + 2, 'YYYYMMDD') || '/' || seller_id || '/' || currency ELSE '' END,
       CASE WHEN business_date < DATE :'start' + :ndates - 10 THEN business_date + 2 END
FROM items WHERE state = 'carried' ORDER BY business_date, order_no;
UPDATE items i SET carry_id = a.id FROM adjustments a
WHERE a.kind = 'held' AND a.netted_into = '' AND i.state = 'carried' AND i.business_date = a.business_date AND i.seller_id = a.seller_id;

INSERT INTO rejects (run_id, seq, order_no, seller_id, provider, currency, amount, refunded, reason)
SELECT g.run_id, n, 'X' || to_char(g.bdate, 'YYYYMMDD') || '-' || n, 'S' || lpad(((g.d * 31 + n) % 20000)::text, 5, '0'), 'infiniapay', 'USD', '100', '0', 'bad row'
FROM gen_runs g, generate_series(1, 25) n ORDER BY g.run_id, n;

INSERT INTO mismatches (run_id, seq, provider, category, subject, expected, detail)
SELECT run_id, n, 'infiniapay', 'timing', 'RS/x/' || n, n % 3 <> 0, '' FROM gen_runs, generate_series(1, 6) n;

INSERT INTO run_totals (run_id, channel, currency, orders, gross_minor, refunded_minor, commission_minor, seller_minor)
SELECT run_id, channel, currency, count(*), sum(10000), 0, sum(1000), sum(9000) * :per_seller FROM gen_sellers GROUP BY 1, 2, 3;

INSERT INTO seller_bindings (seller_id, infinia_seller_id, status, request_no, source)
SELECT 'S' || lpad(sn::text, 5, '0'), CASE WHEN sn % 50 = 0 THEN 'INFB' || sn ELSE 'INF' || sn END,
       CASE WHEN sn % 100 = 1 THEN 'PENDING' ELSE 'ACTIVE' END, 'B-' || sn, 'query'
FROM generate_series(0, 19999) sn WHERE sn % 20 < 12 OR sn % 20 >= 17;

INSERT INTO share_totals (seller_id, currency, files, uploaded, shares, paid, in_flight, version)
SELECT seller_id, currency, count(*), sum(9000 * :per_seller), count(*), sum(9000 * :per_seller), 0, 2 * count(*)
FROM gen_sellers WHERE channel <> 'wechatpay' GROUP BY 1, 2;

INSERT INTO webhook_events (request_no, received_at)
SELECT 'WH-' || n, DATE :'start' + (n / 1000) FROM generate_series(1, :ndates * 1000) n;

INSERT INTO reconciled_final (matcher, key, recorded_at)
SELECT 'infinia', 'RS-' || n, now() - (n % 30) * interval '1 day' FROM generate_series(1, 50000) n;

DROP TABLE gen_lr, gen_sellers, gen_runs;
RESET session_replication_role;
ANALYZE;
SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE schemaname = 'settle' ORDER BY n_live_tup DESC;
SELECT pg_size_pretty(pg_database_size(current_database()));
