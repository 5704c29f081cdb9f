-- A ledger for timing the reads of a night's open work: the run's open
-- revenue shares paged by OpenEffectsAfter, and the failed ones counted by
-- FailedPayouts against the open carried entries (PERFORMANCE.md, "Open
-- revenue shares and failed payouts"). Run against a scratch database
-- migrated by `settle migrate` (schema settle):
--   psql -v ndates=200 -v per_date=500 -v open=50000 -v carried=25000 -f open.sql
-- It writes, from 2026-01-01: ndates earlier nights of per_date revenue
-- shares and per_date WeChat distributions each, all succeeded, analyzed;
-- then, after the statistics (as a night's own writes come after them),
-- the date after them in two shards: shard 0 with `open` planned revenue
-- shares, shard 1 with a tenth as many; a date before it whose run has
-- 2,000 revenue shares of which 300 failed (100 with an open entry of
-- their subject, 100 with entries they opened again, 100 owing nothing);
-- and `carried` open held entries over the earlier dates (plus as many
-- netted). Triggers are off for the load (session_replication_role).
\set ON_ERROR_STOP on
\timing on
SET search_path = settle;
SET session_replication_role = replica;

CREATE UNLOGGED TABLE gen_dates AS
SELECT d, DATE '2026-01-01' + (d - 1) AS bdate FROM generate_series(1, :ndates + 2) d;
INSERT INTO runs (business_date, shard_index, shard_count, state, stages_done, time_zone, rules_hash, config_hash)
SELECT bdate, s, CASE WHEN d = :ndates + 2 THEN 2 ELSE 1 END, CASE WHEN d >= :ndates + 1 THEN 'running' ELSE 'done' END,
       '{}', 'Asia/Shanghai', 'r', 'c'
FROM gen_dates, generate_series(0, 1) s WHERE s < CASE WHEN d = :ndates + 2 THEN 2 ELSE 1 END ORDER BY d, s;

INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state, provider_ref, sends, created_at, updated_at)
SELECT r.id, kind, subject, 1, key, 'USD', 9000, 'succeeded', 'ref', 1, ts, ts FROM (
  SELECT d, k, 0 AS o, 'revenue_share' AS kind, 'RS/' || to_char(bdate, 'YYYYMMDD') || '/S' || lpad(k::text, 6, '0') || '/USD' AS subject,
         'RS-' || to_char(bdate, 'YYYYMMDD') || '-S' || lpad(k::text, 6, '0') || '-1' AS key, bdate, bdate + interval '1 day 3 hours' AS ts
  FROM gen_dates, generate_series(0, :per_date - 1) k WHERE d <= :ndates
  UNION ALL
  SELECT d, k, 1, 'distribution', 'WX/' || to_char(bdate, 'YYYYMMDD') || '/O' || lpad(k::text, 6, '0'),
         'WXD' || to_char(bdate, 'YYYYMMDD') || lpad(k::text, 6, '0') || '1', bdate, bdate + interval '1 day 3 hours'
  FROM gen_dates, generate_series(0, :per_date - 1) k WHERE d <= :ndates
) e JOIN runs r ON r.business_date = e.bdate ORDER BY d, k, o;

-- netted held entries of the earlier nights (paid two days on)
INSERT INTO adjustments (seller_id, currency, kind, amount_minor, subject, reason, business_date, run_id, netted_into, netted_date)
SELECT 'S' || lpad((n % 100000)::text, 6, '0'), 'USD', 'held', 900,
       'RS/' || to_char(g.bdate, 'YYYYMMDD') || '/S' || lpad((n % 100000)::text, 6, '0') || '/USD', 'below the minimum payout', g.bdate, r.id,
       'RS/' || to_char(g.bdate + 2, 'YYYYMMDD') || '/S' || lpad((n % 100000)::text, 6, '0') || '/USD', g.bdate + 2
FROM generate_series(1, :carried) n JOIN gen_dates g ON g.d = 1 + n % (:ndates - 2) JOIN runs r ON r.business_date = g.bdate
ORDER BY g.d, n;
ANALYZE;

-- What comes after the statistics: the open entries (one a seller, over the earlier dates) ...
INSERT INTO adjustments (seller_id, currency, kind, amount_minor, subject, reason, business_date, run_id)
SELECT 'S' || lpad((100000 + n)::text, 6, '0'), 'USD', 'held', 900,
       'RS/' || to_char(g.bdate, 'YYYYMMDD') || '/S' || lpad((100000 + n)::text, 6, '0') || '/USD', 'below the minimum payout', g.bdate, r.id
FROM generate_series(1, :carried) n JOIN gen_dates g ON g.d = 1 + n % :ndates JOIN runs r ON r.business_date = g.bdate
ORDER BY g.d, n;

-- ... the date before the night: 2,000 revenue shares, 300 failed ...
INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state, provider_ref, sends)
SELECT r.id, 'revenue_share', 'RS/' || to_char(r.business_date, 'YYYYMMDD') || '/F' || lpad(k::text, 6, '0') || '/USD', 1,
       'RS-' || to_char(r.business_date, 'YYYYMMDD') || '-F' || lpad(k::text, 6, '0') || '-1', 'USD', 9000,
       CASE WHEN k < 300 THEN 'failed' ELSE 'succeeded' END, 'ref', 1
FROM runs r, generate_series(0, 1999) k WHERE r.business_date = DATE '2026-01-01' + :ndates ORDER BY k;
-- its first 100 failed ones' items carried (an open entry of their subject) ...
INSERT INTO adjustments (seller_id, currency, kind, amount_minor, subject, reason, business_date, run_id)
SELECT 'F' || lpad(k::text, 6, '0'), 'USD', 'held', 9000, 'RS/' || to_char(r.business_date, 'YYYYMMDD') || '/F' || lpad(k::text, 6, '0') || '/USD',
       'revenue share failed', r.business_date, r.id
FROM runs r, generate_series(0, 99) k WHERE r.business_date = DATE '2026-01-01' + :ndates ORDER BY k;
-- ... the next 100 netted entries they opened again
INSERT INTO adjustments (seller_id, currency, kind, amount_minor, subject, reason, business_date, run_id, reopened_from)
SELECT 'F' || lpad(k::text, 6, '0'), 'USD', 'held', 900, 'RS/20260101/F' || lpad(k::text, 6, '0') || '/USD',
       'below the minimum payout', DATE '2026-01-01', (SELECT id FROM runs WHERE business_date = DATE '2026-01-01'),
       'RS/' || to_char(r.business_date, 'YYYYMMDD') || '/F' || lpad(k::text, 6, '0') || '/USD'
FROM runs r, generate_series(100, 199) k WHERE r.business_date = DATE '2026-01-01' + :ndates ORDER BY k;

-- ... and the night, in two shards: its open revenue shares, planned.
INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
SELECT r.id, 'revenue_share', 'RS/' || to_char(r.business_date, 'YYYYMMDD') || '/' || p || lpad(k::text, 6, '0') || '/USD', 1,
       'RS-' || to_char(r.business_date, 'YYYYMMDD') || '-' || p || lpad(k::text, 6, '0') || '-1', 'USD', 9000, 'planned'
FROM runs r, LATERAL (SELECT CASE r.shard_index WHEN 0 THEN 'S' ELSE 'T' END AS p) x,
     generate_series(0, CASE r.shard_index WHEN 0 THEN :open ELSE :open / 10 END - 1) k
WHERE r.business_date = DATE '2026-01-01' + :ndates + 1
ORDER BY k, r.shard_index;

DROP TABLE gen_dates;
RESET session_replication_role;
SELECT r.business_date, r.shard_index, r.shard_count, e.state, count(*) FROM effects e JOIN runs r ON r.id = e.run_id
WHERE r.business_date >= DATE '2026-01-01' + :ndates GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 4;
SELECT count(*) FILTER (WHERE netted_into = '') AS open, count(*) AS entries FROM adjustments;
