-- The prediction log (recsys.log_sample_rate), prediction sets kept by refresh_recommendations,
-- and realized quality (recsys.update_realized_quality, recsys.realized_quality).
-- Scores are never printed (BLAS kernels differ between CPUs): results are compared in SQL.
SET client_min_messages = warning;
CREATE SCHEMA pl;
-- Six months; the last two land later (the realized outcomes).
CREATE TABLE pl.all_months AS SELECT * FROM recsys.generate_santander(300, months => 6);
CREATE TABLE pl.snapshots AS SELECT * FROM pl.all_months WHERE fecha_dato < '2015-05-01';
ALTER TABLE pl.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
-- v1 production, v2 another seed.
SELECT recsys.register_model('pl_model', recsys.untrained_model('pl.snapshots', window_months => 3, hidden => 4, seed => s))
  FROM unnest(ARRAY[1, 2]) s;
SELECT recsys.promote('pl_model', 1, force => true, reason => 'test fixture');
RESET client_min_messages;
SET jit = off;
CREATE TEMP TABLE ids AS SELECT DISTINCT ncodpers AS id FROM pl.snapshots;
-- Each customer's latest snapshot month: a call predicts the month after it.
CREATE TEMP TABLE latest AS
SELECT ncodpers AS id, (date_trunc('month', max(fecha_dato)) + interval '1 month')::date AS month
  FROM pl.snapshots GROUP BY ncodpers;

---------------------------------------------------------------------------------------------
-- The prediction log
---------------------------------------------------------------------------------------------

-- Off by default: nothing is drawn, nothing logged.
SHOW recsys.log_sample_rate;
SELECT count(recsys.recommend(id, model => 'pl_model')) AS calls FROM ids;
SELECT count(*) AS rows FROM recsys.recommend_scores(15889, model => 'pl_model');
SELECT * FROM recsys.prediction_log_counters();
SELECT count(*) AS logged FROM recsys.prediction_log WHERE model = 'pl_model';
-- The rate is a superuser's setting (PGC_SUSET), within [0, 1].
SET recsys.log_sample_rate = 1.5;
SET recsys.log_sample_rate = -0.1;

-- Rate 1: one row per call, with what the call returned.
SET recsys.log_sample_rate = 1.0;
CREATE TEMP TABLE returned AS SELECT id, recsys.recommend(id, model => 'pl_model') AS products FROM ids;
SELECT * FROM recsys.prediction_log_counters();
SELECT count(*) AS rows, count(DISTINCT l.customer_id) AS customers,
       bool_and(l.model = 'pl_model' AND l.version = 1 AND l.entry_point = 'recommend') AS labels,
       bool_and(l.products = r.products) AS products_returned,
       bool_and(cardinality(l.scores) = cardinality(l.products)) AS scores_logged,
       bool_and(l.scores[1] >= l.scores[2]) AS ranked,
       bool_and(l.month = t.month) AS month_after_latest_snapshot,
       bool_and(l.at <= now()) AS at_set
  FROM recsys.prediction_log l JOIN returned r ON r.id = l.customer_id JOIN latest t ON t.id = l.customer_id;
SELECT month, count(*) FROM recsys.prediction_log GROUP BY month ORDER BY month;
-- recommend_scores() is logged too, with its k; a pinned version is logged as that version;
-- score_customer() returns no ranking and is not logged.
SELECT array_agg(product ORDER BY rank) AS top3_returned
  INTO TEMP top3 FROM recsys.recommend_scores(15889, k => 3, model => 'pl_model');
SELECT cardinality(recsys.recommend(15889, model => 'pl_model', version => 2)) AS pinned_k;
SELECT cardinality(recsys.score_customer(15889, model => 'pl_model')) AS products;
SELECT l.entry_point, l.version, cardinality(l.products) AS k,
       l.entry_point <> 'recommend_scores' OR l.products = (SELECT top3_returned FROM top3) AS products_returned
  FROM recsys.prediction_log l WHERE l.customer_id = 15889 ORDER BY l.id;
SELECT * FROM recsys.prediction_log_counters();

-- Rate 0.5: about half of 400 calls (binomial, sd 10; the band is 10 sd wide each way).
SET recsys.log_sample_rate = 0.5;
CREATE TEMP TABLE before_half AS SELECT count(*) AS n FROM recsys.prediction_log;
SELECT count(r) AS calls
  FROM (SELECT recsys.recommend(i.id, model => 'pl_model') AS r FROM ids i, generate_series(1, 2) g
         WHERE i.id IN (SELECT id FROM ids ORDER BY id LIMIT 200)) s;
SELECT (SELECT count(*) FROM recsys.prediction_log) - n BETWEEN 100 AND 300 AS about_half FROM before_half;
SELECT sampled - logged AS not_logged, skipped_read_only, errors FROM recsys.prediction_log_counters();
SET recsys.log_sample_rate = 1.0;

-- A read-only transaction works and logs nothing; the skips are counted.
CREATE TEMP TABLE before_ro AS SELECT count(*) AS n, (SELECT skipped_read_only FROM recsys.prediction_log_counters()) AS s
  FROM recsys.prediction_log;
BEGIN;
SET TRANSACTION READ ONLY;
SELECT count(*) FILTER (WHERE r.products = recsys.recommend(r.id, model => 'pl_model')) AS read_only_calls
  FROM returned r WHERE r.id IN (SELECT id FROM ids ORDER BY id LIMIT 5);
COMMIT;
SET default_transaction_read_only = on;
SELECT recsys.recommend(15889, model => 'pl_model') = (SELECT products FROM returned WHERE id = 15889) AS read_only_default;
RESET default_transaction_read_only;
SELECT (SELECT count(*) FROM recsys.prediction_log) - n AS logged,
       (SELECT skipped_read_only FROM recsys.prediction_log_counters()) - s AS skipped_read_only
  FROM before_ro;

-- A failure to log never fails the call: one WARNING per session, the rest counted, the
-- caller's transaction goes on. (A constraint that refuses every row stands in for a failure.)
ALTER TABLE recsys.prediction_log ADD CONSTRAINT refuse_all CHECK (customer_id < 0) NOT VALID;
CREATE TEMP TABLE before_fail AS SELECT errors AS e FROM recsys.prediction_log_counters();
BEGIN;
SELECT recsys.recommend(15889, model => 'pl_model') = (SELECT products FROM returned WHERE id = 15889) AS result_despite_failure;
SELECT count(*) FILTER (WHERE r.products = recsys.recommend(r.id, model => 'pl_model')) AS results_despite_failures
  FROM returned r WHERE r.id IN (SELECT id FROM ids ORDER BY id LIMIT 5);
CREATE TEMP TABLE still_in_transaction AS SELECT 1 AS ok;
COMMIT;
SELECT ok AS transaction_committed FROM still_in_transaction;
SELECT errors - e AS errors FROM recsys.prediction_log_counters(), before_fail;
ALTER TABLE recsys.prediction_log DROP CONSTRAINT refuse_all;

-- A reader's call is logged (written as the extension's owner); the reader can neither read the
-- log nor change the rate.
CREATE ROLE pl_app;
GRANT recsys_reader TO pl_app;
GRANT USAGE ON SCHEMA pl TO pl_app;
GRANT SELECT ON pl.snapshots TO pl_app;
CREATE TEMP TABLE before_reader AS SELECT count(*) AS n FROM recsys.prediction_log;
SET ROLE pl_app;
SELECT cardinality(recsys.recommend(15889, model => 'pl_model')) AS reader_k;
SELECT count(*) FROM recsys.prediction_log;
SET recsys.log_sample_rate = 0;
SELECT logged > 0 AS counters_readable FROM recsys.prediction_log_counters();
RESET ROLE;
SELECT (SELECT count(*) FROM recsys.prediction_log) - n AS logged_for_reader FROM before_reader;
SELECT (SELECT customer_id FROM recsys.prediction_log ORDER BY id DESC LIMIT 1) AS last_logged;

-- From here on, the log holds one recommend() call of every customer (v1).
DELETE FROM recsys.prediction_log WHERE model = 'pl_model';
CREATE TEMP TABLE logged_calls AS SELECT id, recsys.recommend(id, model => 'pl_model') AS products FROM ids;
SET recsys.log_sample_rate = 0;
SELECT count(*) AS rows, count(DISTINCT customer_id) AS customers FROM recsys.prediction_log;

---------------------------------------------------------------------------------------------
-- Prediction sets
---------------------------------------------------------------------------------------------

-- A refresh keeps its output as a set: the month after the latest snapshot month, every
-- customer's ranking as written to recsys.recommendations.
SELECT recsys.refresh_recommendations('pl_model') AS refreshed;
SELECT model, version, month, customers, k, refreshed_at <= now() AS refreshed_at_set
  FROM recsys.prediction_sets WHERE model = 'pl_model';
SELECT count(*) AS set_rows,
       count(*) FILTER (WHERE r.products = s.products) AS same_as_recommendations
  FROM recsys.prediction_set_rows r
  JOIN recsys.recommendations s ON s.model_name = 'pl_model' AND s.customer_id = r.customer_id
 WHERE r.set_id = (SELECT max(id) FROM recsys.prediction_sets WHERE model = 'pl_model');
-- Nothing to compute yet: May has not landed.
SELECT recsys.update_realized_quality('pl_model') AS computed;
SELECT count(*) AS results FROM recsys.realized_quality WHERE model = 'pl_model' AND month >= '2015-05-01';

---------------------------------------------------------------------------------------------
-- Realized quality
---------------------------------------------------------------------------------------------

-- May lands. The next refresh first computes the realized quality of what was predicted for
-- May (the set, and the log's months whose snapshots exist), then keeps a set for June.
INSERT INTO pl.snapshots SELECT * FROM pl.all_months WHERE fecha_dato >= '2015-05-01' AND fecha_dato < '2015-06-01';
SELECT recsys.refresh_recommendations('pl_model') AS refreshed;
SELECT version, month, customers, k FROM recsys.prediction_sets WHERE model = 'pl_model' ORDER BY id;
-- Three customers' latest snapshots are older (they left): their calls predicted February to
-- April, months that have no snapshot of theirs (0 customers, no figures).
SELECT model, version, month, source, set_id IS NOT NULL AS has_set, customers, adders, predicted,
       map7 IS NOT NULL AS has_map7
  FROM recsys.realized_quality WHERE model = 'pl_model' ORDER BY month, source, set_id;
-- Computed once: a second call finds nothing new.
SELECT recsys.update_realized_quality('pl_model') AS computed;

-- The batch set's realized figures are recsys.evaluate's on the same version and month (same
-- customers: those with snapshots in April and May), and so are the log's (every customer was
-- logged, by recommend()).
CREATE TEMP TABLE evaluated AS SELECT * FROM recsys.evaluate('pl_model', 1, '2015-05-01') WHERE method = 'lstm';
SELECT q.source, q.customers = e.customers AS same_customers, q.adders = e.adders AS same_adders,
       abs(q.map7 - e.map7) < 1e-9 AS map7, abs(q.map7_adders - e.map7_adders) < 1e-9 AS map7_adders,
       abs(q.precision7 - e.precision7) < 1e-9 AS precision7, abs(q.recall7 - e.recall7) < 1e-9 AS recall7,
       abs(q.coverage - e.coverage) < 1e-9 AS coverage, e.adders > 0 AS some_adders
  FROM recsys.realized_quality q, evaluated e
 WHERE q.model = 'pl_model' AND q.version = 1 AND q.month = '2015-05-01'
 ORDER BY q.source;

-- And a straightforward reference in SQL: added = flag 1 in May and not 1 in April; apk@7 as a
-- sum over positions; customers without adds count 0.
CREATE TEMP TABLE reference AS
WITH products AS (
    SELECT p, i FROM recsys.models m, jsonb_array_elements_text(m.feature_spec -> 'products') WITH ORDINALITY x(p, i)
     WHERE m.name = 'pl_model' AND m.version = 1
), predictions AS (
    SELECT 'batch' AS source, r.customer_id, r.products FROM recsys.prediction_set_rows r
     WHERE r.set_id = (SELECT min(id) FROM recsys.prediction_sets WHERE model = 'pl_model')
    UNION ALL
    SELECT 'online', l.customer_id, l.products FROM recsys.prediction_log l
     WHERE l.model = 'pl_model' AND l.month = '2015-05-01'
), adds AS (
    SELECT pr.source, pr.products[1:7] AS top,
           ARRAY(SELECT p FROM products WHERE (to_jsonb(nx) ->> p)::int = 1
                                          AND (to_jsonb(cu) ->> p)::int IS DISTINCT FROM 1 ORDER BY i) AS added
      FROM predictions pr
      JOIN pl.snapshots cu ON cu.ncodpers = pr.customer_id AND cu.fecha_dato = '2015-04-28'
      JOIN pl.snapshots nx ON nx.ncodpers = pr.customer_id AND nx.fecha_dato = '2015-05-28'
), per_customer AS (
    SELECT a.source, a.top, cardinality(a.added) AS n_added,
           (SELECT count(*) FROM unnest(a.top) t WHERE t = ANY (a.added)) AS hits,
           CASE WHEN cardinality(a.added) = 0 THEN 0 ELSE
               (SELECT coalesce(sum((SELECT count(*) FROM generate_series(1, i) j WHERE a.top[j] = ANY (a.added))::float8 / i), 0)
                  FROM generate_series(1, cardinality(a.top)) i
                 WHERE a.top[i] = ANY (a.added)) / least(cardinality(a.added), 7) END AS ap
      FROM adds a
)
SELECT source, count(*) AS customers, count(*) FILTER (WHERE n_added > 0) AS adders,
       avg(ap) AS map7, avg(ap) FILTER (WHERE n_added > 0) AS map7_adders,
       avg(hits / 7.0) FILTER (WHERE n_added > 0) AS precision7,
       avg(hits::float8 / n_added) FILTER (WHERE n_added > 0) AS recall7,
       (SELECT count(DISTINCT t) FROM per_customer c, unnest(c.top) t WHERE c.source = p.source) / 24.0 AS coverage
  FROM per_customer p GROUP BY source;
SELECT q.source, q.customers = r.customers AS customers, q.adders = r.adders AS adders,
       abs(q.map7 - r.map7) < 1e-9 AS map7, abs(q.map7_adders - r.map7_adders) < 1e-9 AS map7_adders,
       abs(q.precision7 - r.precision7) < 1e-9 AS precision7, abs(q.recall7 - r.recall7) < 1e-9 AS recall7,
       abs(q.coverage - r.coverage) < 1e-9 AS coverage
  FROM recsys.realized_quality q JOIN reference r ON r.source = q.source
 WHERE q.model = 'pl_model' AND q.month = '2015-05-01'
 ORDER BY q.source;

-- Per product: the counts add up to the overall figures.
SELECT b.source, count(*) AS products,
       sum(b.hits) = (SELECT round(q.precision7 * 7 * q.adders) FROM recsys.realized_quality q
                       WHERE q.source = b.source AND q.month = b.month AND q.model = b.model) AS hits_add_up,
       count(*) FILTER (WHERE b.predicted > 0)::float8 / count(*) = max(q.coverage) AS coverage_adds_up,
       bool_and(b.customers = q.customers) AS customers,
       bool_and(b.predicted_share BETWEEN 0 AND 1 AND b.add_rate BETWEEN 0 AND 1) AS shares_in_range,
       bool_and(b.precision IS NULL OR abs(b.precision - b.hits::float8 / b.predicted) < 1e-12) AS precision_ok
  FROM recsys.realized_quality_by_product b
  JOIN recsys.realized_quality q USING (model, version, month, source)
 WHERE b.model = 'pl_model' AND b.month = '2015-05-01'
 GROUP BY b.source, b.month, b.model ORDER BY b.source;
-- Adds per product against the reference (batch and online saw the same customers).
SELECT count(*) FILTER (WHERE b.adds = x.adds) AS products_with_same_adds
  FROM recsys.realized_quality_by_product b
  JOIN (SELECT p, count(*) FILTER (WHERE (to_jsonb(nx) ->> p)::int = 1 AND (to_jsonb(cu) ->> p)::int IS DISTINCT FROM 1) AS adds
          FROM pl.snapshots cu
          JOIN pl.snapshots nx ON nx.ncodpers = cu.ncodpers AND nx.fecha_dato = '2015-05-28',
               recsys.models m, jsonb_array_elements_text(m.feature_spec -> 'products') p
         WHERE cu.fecha_dato = '2015-04-28' AND m.name = 'pl_model' AND m.version = 1
         GROUP BY p) x ON x.p = b.product
 WHERE b.model = 'pl_model' AND b.month = '2015-05-01' AND b.source = 'batch';

-- June lands; the June set is computed by a scheduled call (no refresh needed); recompute
-- does everything again and gives the same figures.
INSERT INTO pl.snapshots SELECT * FROM pl.all_months WHERE fecha_dato >= '2015-06-01';
SELECT recsys.update_realized_quality('pl_model') AS computed;
CREATE TEMP TABLE first_pass AS SELECT * FROM recsys.realized_quality WHERE model = 'pl_model';
SELECT recsys.update_realized_quality('pl_model', recompute => true) = (SELECT count(*) FROM first_pass) AS recomputed_all;
SELECT count(*) AS same_figures
  FROM first_pass f JOIN recsys.realized_quality q USING (model, version, month, source)
 WHERE f.set_id IS NOT DISTINCT FROM q.set_id AND f.customers = q.customers AND f.map7 IS NOT DISTINCT FROM q.map7;
SELECT q.month, q.source, q.customers = e.customers AND abs(q.map7 - e.map7) < 1e-9 AS equals_evaluate
  FROM recsys.realized_quality q, recsys.evaluate('pl_model', 1, '2015-06-01') e
 WHERE e.method = 'lstm' AND q.model = 'pl_model' AND q.month = '2015-06-01' AND q.source = 'batch';

---------------------------------------------------------------------------------------------
-- A small case checked by hand
---------------------------------------------------------------------------------------------

-- Four customers of a relation of their own, April and May. Products (of the 24, in order):
-- p1 = ind_ahor_fin_ult1, p2 = ind_aval_fin_ult1, p3 = ind_cco_fin_ult1, p4 = ind_cder_fin_ult1.
--   A adds p1 and p2, keeps p3      ranking p1, p4, p2       ap = (1/1 + 2/3) / 2 = 5/6, hits 2
--   B adds p3, drops p1             ranking p4, p3           ap = (1/2) / 1 = 1/2,    hits 1
--   C adds nothing                  ranking p1               ap = 0
--   D has no May snapshot           ranking p2               not counted
-- map7 = (5/6 + 1/2 + 0) / 3 = 4/9; over adders 2/3; precision@7 = (2/7 + 1/7) / 2 = 3/14;
-- recall@7 = (2/2 + 1/1) / 2 = 1; coverage: p1, p4, p2, p3 ranked for A, B, C: 4 of 24 products.
CREATE TABLE pl.tiny AS
SELECT * FROM pl.all_months
 WHERE ncodpers IN (SELECT ncodpers FROM pl.all_months WHERE fecha_dato IN ('2015-04-28', '2015-05-28')
                     GROUP BY ncodpers HAVING count(*) = 2 ORDER BY ncodpers LIMIT 4)
   AND fecha_dato IN ('2015-04-28', '2015-05-28');
UPDATE pl.tiny SET ind_ahor_fin_ult1 = 0, ind_aval_fin_ult1 = 0, ind_cco_fin_ult1 = 0, ind_cder_fin_ult1 = 0;
CREATE TEMP TABLE tiny_ids AS SELECT id, row_number() OVER (ORDER BY id) AS n FROM (SELECT DISTINCT ncodpers AS id FROM pl.tiny) s;
UPDATE pl.tiny t SET ind_cco_fin_ult1 = 1 FROM tiny_ids i WHERE i.id = t.ncodpers AND i.n = 1;
UPDATE pl.tiny t SET ind_ahor_fin_ult1 = 1, ind_aval_fin_ult1 = 1 FROM tiny_ids i
 WHERE i.id = t.ncodpers AND i.n = 1 AND t.fecha_dato = '2015-05-28';
UPDATE pl.tiny t SET ind_ahor_fin_ult1 = 1 FROM tiny_ids i WHERE i.id = t.ncodpers AND i.n = 2 AND t.fecha_dato = '2015-04-28';
UPDATE pl.tiny t SET ind_cco_fin_ult1 = 1 FROM tiny_ids i WHERE i.id = t.ncodpers AND i.n = 2 AND t.fecha_dato = '2015-05-28';
DELETE FROM pl.tiny t USING tiny_ids i WHERE i.id = t.ncodpers AND i.n = 4 AND t.fecha_dato = '2015-05-28';
SELECT recsys.register_model('pl_tiny', recsys.untrained_model('pl.tiny', window_months => 1, hidden => 2, seed => 1,
                                                               until => '2015-04-30')) AS tiny_version;
-- A prediction set written by hand (an admin may): the rankings above, for May.
INSERT INTO recsys.prediction_sets (model, version, month, refreshed_at, customers, k)
VALUES ('pl_tiny', 1, '2015-05-01', now(), 4, 7);
INSERT INTO recsys.prediction_set_rows (set_id, customer_id, products)
SELECT (SELECT max(id) FROM recsys.prediction_sets WHERE model = 'pl_tiny'), i.id,
       CASE i.n WHEN 1 THEN ARRAY['ind_ahor_fin_ult1', 'ind_cder_fin_ult1', 'ind_aval_fin_ult1']
                WHEN 2 THEN ARRAY['ind_cder_fin_ult1', 'ind_cco_fin_ult1']
                WHEN 3 THEN ARRAY['ind_ahor_fin_ult1']
                ELSE ARRAY['ind_aval_fin_ult1'] END
  FROM tiny_ids i;
SELECT recsys.update_realized_quality('pl_tiny') AS computed;
SELECT source, predicted, customers, adders, round(map7::numeric, 12) AS map7, round((4.0 / 9)::numeric, 12) AS four_ninths,
       round(map7_adders::numeric, 12) AS map7_adders, round(precision7::numeric, 12) AS precision7,
       round((3.0 / 14)::numeric, 12) AS three_fourteenths, recall7, coverage * 24 AS products_covered
  FROM recsys.realized_quality WHERE model = 'pl_tiny';
SELECT product, customers, predicted, adds, hits, round(precision::numeric, 6) AS precision, recall
  FROM recsys.realized_quality_by_product
 WHERE model = 'pl_tiny' AND (predicted > 0 OR adds > 0) ORDER BY product;

---------------------------------------------------------------------------------------------
-- Errors and privileges
---------------------------------------------------------------------------------------------

SELECT recsys.update_realized_quality(NULL);
SELECT recsys.update_realized_quality('no_such_model');
SELECT recsys.drop_prediction_sets('pl_model', NULL);
-- A version whose relation is gone is skipped with a WARNING: nothing to compute it from.
DELETE FROM recsys.realized_quality_results WHERE model = 'pl_tiny';
DROP TABLE pl.tiny;
SELECT recsys.update_realized_quality('pl_tiny') AS computed;
-- A reader sees the aggregates, not the per-customer predictions, and computes nothing.
SET ROLE pl_app;
SELECT count(*) > 0 AS reader_sees_quality FROM recsys.realized_quality;
SELECT count(*) > 0 AS reader_sees_by_product FROM recsys.realized_quality_by_product;
SELECT count(*) FROM recsys.prediction_sets;
SELECT count(*) FROM recsys.prediction_set_rows;
SELECT count(*) FROM recsys.realized_quality_results;
SELECT recsys.update_realized_quality('pl_model');
SELECT recsys.drop_prediction_sets('pl_model', '2000-01-01');
RESET ROLE;
-- An admin reads the source with its own rights: without SELECT on it, nothing is computed.
CREATE ROLE pl_admin;
GRANT recsys_admin TO pl_admin;
GRANT USAGE ON SCHEMA pl TO pl_admin;
SET ROLE pl_admin;
SELECT count(*) AS admin_reads_log FROM recsys.prediction_log;
INSERT INTO recsys.prediction_log (model, version, customer_id, month, products, scores, entry_point)
VALUES ('pl_model', 1, 1, '2015-05-01', '{}', '{}', 'recommend');
SELECT recsys.update_realized_quality('pl_model', recompute => true);
RESET ROLE;
GRANT SELECT ON pl.snapshots TO pl_admin;
SET ROLE pl_admin;
SELECT recsys.update_realized_quality('pl_model', recompute => true) > 0 AS admin_recomputes;
RESET ROLE;


---------------------------------------------------------------------------------------------
-- Retention
---------------------------------------------------------------------------------------------

SELECT recsys.drop_prediction_sets('pl_model', '2000-01-01') AS dropped_none;
SELECT recsys.drop_prediction_sets('pl_model', (now() + interval '1 day')::date) AS dropped;
SELECT count(*) AS sets_left, (SELECT count(*) FROM recsys.prediction_set_rows r
                                WHERE r.set_id NOT IN (SELECT id FROM recsys.prediction_sets)) AS orphan_rows
  FROM recsys.prediction_sets WHERE model = 'pl_model';
-- Their realized quality stays.
SELECT source, count(*) FROM recsys.realized_quality WHERE model = 'pl_model' GROUP BY source ORDER BY source;
-- The log is pruned with DELETE (recsys_admin).
WITH pruned AS (DELETE FROM recsys.prediction_log WHERE at < now() + interval '1 day' RETURNING 1)
SELECT count(*) AS pruned FROM pruned;

SET client_min_messages = warning;
DROP SCHEMA pl CASCADE;
DELETE FROM recsys.prediction_log WHERE model IN ('pl_model', 'pl_tiny');
DELETE FROM recsys.prediction_set_rows WHERE set_id IN (SELECT id FROM recsys.prediction_sets WHERE model IN ('pl_model', 'pl_tiny'));
DELETE FROM recsys.prediction_sets WHERE model IN ('pl_model', 'pl_tiny');
DELETE FROM recsys.realized_quality_results WHERE model IN ('pl_model', 'pl_tiny');
DELETE FROM recsys.realized_quality_product_results WHERE model IN ('pl_model', 'pl_tiny');
DELETE FROM recsys.recommendations WHERE model_name IN ('pl_model', 'pl_tiny');
DELETE FROM recsys.models WHERE name IN ('pl_model', 'pl_tiny');
DELETE FROM recsys.model_events WHERE name IN ('pl_model', 'pl_tiny');
DROP OWNED BY pl_app, pl_admin;
DROP ROLE pl_app;
DROP ROLE pl_admin;
RESET client_min_messages;
