-- Drift and skew (docs/monitoring.md, "Drift and skew"): the feature reference recsys.train()
-- stores, recsys.feature_drift() against a straightforward SQL computation of the PSI on the
-- same bins, planted shifts, unseen categories, recsys.prediction_skew() against
-- recommend_scores() and counts in SQL, and recsys.training_serving_skew(). Figures that come
-- from the LSTM are compared in SQL, not printed (BLAS kernels differ between CPUs).
SET client_min_messages = warning;
SET jit = off;
CREATE SCHEMA drift_test;
CREATE TABLE drift_test.base AS SELECT * FROM recsys.generate_santander(3000);   -- 2015-01 .. 2016-05
CREATE INDEX ON drift_test.base (ncodpers, fecha_dato);
-- The model reads a view whose last month can be moved back: recommend_scores() scores a
-- customer's latest month, so with the cutoff in April it scores exactly what prediction_skew
-- scores for April (whose adds it compares with May).
CREATE TABLE drift_test.cutoff (upto date NOT NULL);
INSERT INTO drift_test.cutoff VALUES ('2016-05-28');
CREATE VIEW drift_test.snapshots AS
    SELECT b.* FROM drift_test.base b WHERE b.fecha_dato <= (SELECT c.upto FROM drift_test.cutoff c);

SELECT recsys.train('drift_lstm', 'drift_test.snapshots', train_months => 6, window_months => 6, hidden => 16,
                    epochs => 1, batch_size => 128, seed => 7) AS version;
SELECT recsys.promote('drift_lstm', 1, force => true, reason => 'test fixture');
RESET client_min_messages;
\set SHOW_CONTEXT never

---------------------------------------------------------------------------------------------
-- 1. The reference stored with the version: the training months, every feature and product.
---------------------------------------------------------------------------------------------
SELECT r.computed_from - 'model_sha256' AS computed_from,
       r.computed_from ->> 'model_sha256' = encode(m.sha256, 'hex') AS sha_matches,
       r.computed_from -> 'months' = m.training_data -> 'train_months' AS months_are_training_months,
       (r.computed_from ->> 'rows')::bigint = (SELECT count(*) FROM drift_test.base
                                                WHERE fecha_dato BETWEEN '2015-11-01' AND '2016-04-30') AS rows_counted,
       r.computed_by = current_user AS by_me
  FROM recsys.feature_references r JOIN recsys.models m USING (name, version)
 WHERE r.name = 'drift_lstm' AND r.version = 1;
CREATE TEMP TABLE ref AS SELECT reference FROM recsys.feature_references WHERE name = 'drift_lstm' AND version = 1;
-- Features in the spec's order; numeric ones with their quantile edges, categorical ones with
-- the spec's vocabulary; every feature's bins and NULLs add up to the rows.
SELECT f.o, f.f ->> 'column' AS feature, f.f ->> 'kind' AS kind, f.f -> 'edges' AS edges,
       f.f -> 'values' = s.f -> 'vocabulary' AS spec_vocabulary,
       (SELECT sum(c::bigint) FROM jsonb_array_elements_text(f.f -> 'counts') c)
         + (f.f ->> 'null_count')::bigint + coalesce((f.f ->> 'unknown_count')::bigint, 0) = (ref.reference ->> 'rows')::bigint
         AS adds_up
  FROM ref, jsonb_array_elements(ref.reference -> 'features') WITH ORDINALITY f(f, o),
       recsys.models m, jsonb_array_elements(m.feature_spec -> 'features') WITH ORDINALITY s(f, o)
 WHERE m.name = 'drift_lstm' AND m.version = 1 AND s.o = f.o
 ORDER BY f.o;

-- The training months, one row per snapshot as JSON, and the month after (May 2016).
CREATE TEMP TABLE training_rows AS
SELECT to_jsonb(b) AS r FROM drift_test.base b WHERE fecha_dato BETWEEN '2015-11-01' AND '2016-04-30';
-- The reference recomputed in SQL: percentile_disc edges (no sampling below 200,000 rows),
-- rows per width_bucket bin, per category and per product.
SELECT f.f ->> 'column' AS feature,
       f.f -> 'edges' = to_jsonb(ARRAY(SELECT DISTINCT e FROM unnest(q.edges) e ORDER BY 1)) AS edges_match,
       f.f -> 'counts' = (SELECT jsonb_agg(n ORDER BY b) FROM (
           SELECT b, (SELECT count(*) FROM training_rows t
                       WHERE width_bucket((t.r ->> (f.f ->> 'column'))::float8,
                                          ARRAY(SELECT e::float8 FROM jsonb_array_elements_text(f.f -> 'edges') e)) = b) AS n
             FROM generate_series(0, jsonb_array_length(f.f -> 'edges')) b) x) AS counts_match,
       (f.f ->> 'null_count')::bigint = (SELECT count(*) FROM training_rows t WHERE t.r ->> (f.f ->> 'column') IS NULL)
         AS nulls_match,
       (f.f ->> 'min')::float8 = (SELECT min((t.r ->> (f.f ->> 'column'))::float8) FROM training_rows t) AS min_matches
  FROM ref, jsonb_array_elements(ref.reference -> 'features') f(f),
       LATERAL (SELECT percentile_disc('{0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9}'::float8[])
                         WITHIN GROUP (ORDER BY (t.r ->> (f.f ->> 'column'))::float8) AS edges
                  FROM training_rows t) q
 WHERE f.f ->> 'kind' = 'numeric';
SELECT f.f ->> 'column' AS feature,
       f.f -> 'counts' = (SELECT jsonb_agg((SELECT count(*) FROM training_rows t WHERE t.r ->> (f.f ->> 'column') = v.v)
                                           ORDER BY v.o)
                            FROM jsonb_array_elements_text(f.f -> 'values') WITH ORDINALITY v(v, o)) AS counts_match,
       (f.f ->> 'unknown_count')::bigint = (SELECT count(*) FROM training_rows t
                                            WHERE NOT (f.f -> 'values') ? (t.r ->> (f.f ->> 'column'))) AS unknown_matches
  FROM ref, jsonb_array_elements(ref.reference -> 'features') f(f)
 WHERE f.f ->> 'kind' = 'categorical';
SELECT count(*) AS products,
       count(*) FILTER (WHERE (p ->> 'held_count')::bigint = (SELECT count(*) FROM training_rows t
                                                               WHERE (t.r ->> (p ->> 'column'))::int = 1)) AS held_match
  FROM ref, jsonb_array_elements(ref.reference -> 'products') p;

-- Only admins read references; nobody writes them but through the functions.
SELECT has_table_privilege('recsys_reader', 'recsys.feature_references', 'SELECT') AS reader_reads,
       has_table_privilege('recsys_admin', 'recsys.feature_references', 'SELECT') AS admin_reads,
       has_table_privilege('recsys_admin', 'recsys.feature_references', 'INSERT') AS admin_inserts,
       (SELECT confdeltype FROM pg_constraint WHERE conrelid = 'recsys.feature_references'::regclass AND contype = 'f')
         AS on_delete,
       (SELECT 'recsys.feature_references'::regclass::oid = ANY (extconfig) FROM pg_extension WHERE extname = 'recsys')
         AS dumped;
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute,
       has_function_privilege('recsys_reader', p.oid, 'EXECUTE') AS reader_execute,
       has_function_privilege('recsys_admin', p.oid, 'EXECUTE') AS admin_execute, p.prosecdef AS security_definer
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'recsys'
   AND p.proname IN ('store_feature_reference', 'drift_column_sql', 'drift_month_range_sql', 'feature_bin_counts',
                     'record_feature_reference', 'population_stability_index', 'feature_drift', 'prediction_skew',
                     'training_serving_skew')
 ORDER BY 1;

---------------------------------------------------------------------------------------------
-- 2. The PSI, and feature_drift on a month that did not change
---------------------------------------------------------------------------------------------
-- sum (a - e) ln(a / e) over shares, each at least 1e-4.
SELECT recsys.population_stability_index('{1, 2, 3}', '{10, 20, 30}') AS same,
       round(recsys.population_stability_index('{5, 3, 2}', '{3, 3, 4}')::numeric, 12) AS psi,
       round((-0.2 * ln(0.6) + 0.2 * ln(2))::numeric, 12) AS by_hand,
       round(recsys.population_stability_index('{7, 0}', '{9, 1}')::numeric, 12) AS empty_bin,
       round(((0.9 - 1) * ln(0.9) + (0.1 - 1e-4) * ln(0.1 / 1e-4))::numeric, 12) AS empty_bin_by_hand;
SELECT recsys.population_stability_index('{1, 2}', '{1, 2, 3}');
SELECT recsys.population_stability_index('{0, 0}', '{1, 2}');
SELECT recsys.population_stability_index('{1, NULL}', '{1, 2}');

-- The PSI of every feature and product recomputed in SQL from the stored reference and the
-- month's rows: numeric features on width_bucket of the reference's edges, categorical ones
-- per vocabulary value and "other", products held / not held; NULL a bin of its own.
CREATE FUNCTION pg_temp.sql_drift(month date)
RETURNS TABLE (feature text, psi float8, unseen_share float8, holding_rate float8) LANGUAGE sql AS $$
WITH m AS (SELECT to_jsonb(b) AS r FROM drift_test.base b WHERE b.fecha_dato = month),
f AS (SELECT e.f FROM ref, jsonb_array_elements(ref.reference -> 'features') e(f)),
bins AS (
    SELECT f.f ->> 'column' AS feature, b::text AS bin, (f.f -> 'counts' ->> b)::float8 AS expected,
           (SELECT count(*) FROM m WHERE width_bucket((m.r ->> (f.f ->> 'column'))::float8,
                   ARRAY(SELECT e::float8 FROM jsonb_array_elements_text(f.f -> 'edges') e)) = b)::float8 AS actual
      FROM f, generate_series(0, jsonb_array_length(f.f -> 'edges')) b WHERE f.f ->> 'kind' = 'numeric'
    UNION ALL
    SELECT f.f ->> 'column', v.v, (f.f -> 'counts' ->> (v.o::int - 1))::float8,
           (SELECT count(*) FROM m WHERE m.r ->> (f.f ->> 'column') = v.v)::float8
      FROM f, jsonb_array_elements_text(f.f -> 'values') WITH ORDINALITY v(v, o) WHERE f.f ->> 'kind' = 'categorical'
    UNION ALL
    SELECT f.f ->> 'column', 'other', (f.f ->> 'unknown_count')::float8,
           (SELECT count(*) FROM m WHERE NOT (f.f -> 'values') ? (m.r ->> (f.f ->> 'column')))::float8
      FROM f WHERE f.f ->> 'kind' = 'categorical'
    UNION ALL
    SELECT f.f ->> 'column', 'null', (f.f ->> 'null_count')::float8,
           (SELECT count(*) FROM m WHERE m.r ->> (f.f ->> 'column') IS NULL)::float8
      FROM f
    UNION ALL
    SELECT p.p ->> 'column', x.bin,
           CASE x.bin WHEN 'held' THEN (p.p ->> 'held_count')::float8 WHEN 'null' THEN (p.p ->> 'null_count')::float8
                      ELSE (ref.reference ->> 'rows')::float8 - (p.p ->> 'held_count')::float8 - (p.p ->> 'null_count')::float8 END,
           (SELECT count(*) FROM m WHERE CASE x.bin WHEN 'held' THEN (m.r ->> (p.p ->> 'column'))::int = 1
                                                    WHEN 'null' THEN m.r ->> (p.p ->> 'column') IS NULL
                                                    ELSE (m.r ->> (p.p ->> 'column'))::int <> 1 END)::float8
      FROM ref, jsonb_array_elements(ref.reference -> 'products') p(p), unnest(ARRAY['held', 'not', 'null']) x(bin)
),
shares AS (
    SELECT b.feature, greatest(b.expected / sum(b.expected) OVER w, 1e-4) AS e, greatest(b.actual / sum(b.actual) OVER w, 1e-4) AS a
      FROM bins b WINDOW w AS (PARTITION BY b.feature)
)
SELECT s.feature, sum((s.a - s.e) * ln(s.a / s.e)),
       -- unseen: numeric outside the reference's [min, max], categorical outside its values, of non-NULL rows
       (SELECT count(*) FILTER (WHERE CASE WHEN f.f ->> 'kind' = 'numeric'
                                           THEN (m.r ->> s.feature)::float8 < (f.f ->> 'min')::float8
                                                OR (m.r ->> s.feature)::float8 > (f.f ->> 'max')::float8
                                           ELSE NOT (f.f -> 'values') ? (m.r ->> s.feature) END)::float8
               / nullif(count(m.r ->> s.feature), 0)
          FROM f, m WHERE f.f ->> 'column' = s.feature GROUP BY f.f),
       (SELECT count(*) FILTER (WHERE (m.r ->> s.feature)::int = 1)::float8 / nullif(count(m.r ->> s.feature), 0)
          FROM m WHERE s.feature LIKE 'ind\_%ult1')
  FROM shares s GROUP BY s.feature
$$;

-- May 2016, the month after training: nothing planted. antiguedad drifts nonetheless: the
-- generator's July 2015 cohort (as in the real data) is 4 to 9 months old in the reference
-- and 10 in May, across its lowest quantile edges (5, 7, 9); one month of ageing is real drift.
CREATE TEMP TABLE may_drift AS SELECT * FROM recsys.feature_drift('drift_lstm', '2016-05-28');
SELECT feature, kind, round(psi::numeric, 4) AS psi, round(null_share::numeric, 4) AS null_share,
       round(reference_null_share::numeric, 4) AS reference_null_share, round(unseen_share::numeric, 4) AS unseen_share,
       status
  FROM may_drift WHERE kind <> 'product';
SELECT count(*) AS products, count(*) FILTER (WHERE status = 'ok') AS ok,
       max(abs(holding_rate - reference_holding_rate)) < 0.01 AS rates_close
  FROM may_drift WHERE kind = 'product';
-- The same figures from SQL: PSI, unseen shares and holding rates.
SELECT count(*) AS rows,
       count(*) FILTER (WHERE abs(d.psi - s.psi) < 1e-12) AS psi_match,
       count(*) FILTER (WHERE d.unseen_share IS NOT DISTINCT FROM s.unseen_share) AS unseen_match,
       count(*) FILTER (WHERE d.holding_rate IS NOT DISTINCT FROM s.holding_rate) AS holding_match
  FROM may_drift d JOIN pg_temp.sql_drift('2016-05-28') s USING (feature);
-- Production is the default version; version 1 explicitly is the same.
SELECT count(*) AS same_rows FROM recsys.feature_drift('drift_lstm', '2016-05-01', 1) d JOIN may_drift m USING (feature)
 WHERE d.psi = m.psi AND d.status = m.status;

---------------------------------------------------------------------------------------------
-- 3. Planted shifts in May (rolled back): only the shifted feature moves
---------------------------------------------------------------------------------------------
-- Income tripled for everyone: renta alerts, every other row keeps its exact PSI.
BEGIN;
UPDATE drift_test.base SET renta = renta * 3 WHERE fecha_dato = '2016-05-28';
CREATE TEMP TABLE shifted ON COMMIT DROP AS SELECT * FROM recsys.feature_drift('drift_lstm', '2016-05-28');
SELECT s.feature, round(s.psi::numeric, 2) AS psi, s.status, round(s.unseen_share::numeric, 4) AS unseen_share
  FROM shifted s JOIN may_drift m USING (feature) WHERE s.psi <> m.psi OR s.status <> m.status;
SELECT count(*) FILTER (WHERE abs(d.psi - s.psi) < 1e-12 AND d.unseen_share IS NOT DISTINCT FROM s.unseen_share) AS sql_match,
       count(*) AS rows
  FROM shifted d JOIN pg_temp.sql_drift('2016-05-28') s USING (feature);
-- Serving encodes the tripled income: only renta's standardised value is flagged (ln 3 more on
-- the rows with an income, in units of the fitted stddev).
SELECT input, flagged, round(standardized_difference::numeric, 2) AS standardized_difference
  FROM recsys.training_serving_skew('drift_lstm', '2016-05-28') WHERE flagged OR input LIKE 'renta%';
ROLLBACK;

-- The students 20 years older: age alerts, nothing else changes.
BEGIN;
UPDATE drift_test.base SET age = age + 20 WHERE fecha_dato = '2016-05-28' AND segmento = '03 - UNIVERSITARIO';
SELECT s.feature, round(s.psi::numeric, 2) AS psi, s.status
  FROM recsys.feature_drift('drift_lstm', '2016-05-28') s JOIN may_drift m USING (feature)
 WHERE s.psi <> m.psi OR s.status <> m.status;
ROLLBACK;

-- A sex code the model never saw, for one customer in ten: its share is the unseen share.
BEGIN;
UPDATE drift_test.base SET sexo = 'X' WHERE fecha_dato = '2016-05-28' AND ncodpers % 10 = 0;
SELECT s.feature, round(s.psi::numeric, 2) AS psi, s.status, round(s.unseen_share::numeric, 4) AS unseen_share,
       s.unseen_share = (SELECT count(*) FILTER (WHERE sexo = 'X')::float8 / count(sexo) FROM drift_test.base
                          WHERE fecha_dato = '2016-05-28') AS share_matches
  FROM recsys.feature_drift('drift_lstm', '2016-05-28') s JOIN may_drift m USING (feature)
 WHERE s.psi <> m.psi OR s.status <> m.status;
ROLLBACK;

---------------------------------------------------------------------------------------------
-- 4. Training/serving skew
---------------------------------------------------------------------------------------------
CREATE TEMP TABLE skew AS SELECT * FROM recsys.training_serving_skew('drift_lstm', '2016-05-28');
-- Every encoded input, in the encoder's order; nothing flagged in the unchanged month.
SELECT input, feature, flagged FROM skew;
-- The training side from the reference: a category's share of the rows, a missing flag's NULL
-- share; the serving side from SQL: May's shares, and renta's standardised value as the encoder
-- computes it (clip, log1p, the spec's mean and stddev; NULL encoded as 0).
SELECT s.input,
       abs(s.training_mean - (SELECT count(*) FILTER (WHERE t.r ->> 'segmento' = '02 - PARTICULARES')::float8 / count(*)
                                FROM training_rows t)) < 1e-12 AS training_matches,
       abs(s.serving_mean - (SELECT count(*) FILTER (WHERE segmento = '02 - PARTICULARES')::float8 / count(*)
                               FROM drift_test.base WHERE fecha_dato = '2016-05-28')) < 1e-12 AS serving_matches
  FROM skew s WHERE s.input = 'segmento=02 - PARTICULARES';
SELECT s.input, abs(s.training_mean - s.training_null_rate) < 1e-12 AS training_is_null_rate,
       abs(s.serving_mean - s.serving_null_rate) < 1e-12 AS serving_is_null_rate,
       abs(s.training_null_rate - (SELECT count(*) FILTER (WHERE t.r ->> 'renta' IS NULL)::float8 / count(*)
                                     FROM training_rows t)) < 1e-12 AS reference_null_rate
  FROM skew s WHERE s.input = 'renta:missing';
SELECT abs(s.serving_mean - (
           SELECT avg(CASE WHEN b.renta IS NULL THEN 0
                           ELSE (ln(1 + least(greatest(b.renta, 0), 1e8)) - (f ->> 'mean')::float8) / (f ->> 'stddev')::float8 END)
             FROM drift_test.base b WHERE b.fecha_dato = '2016-05-28')) < 1e-5 AS renta_serving_matches
  FROM skew s, recsys.models m, jsonb_array_elements(m.feature_spec -> 'features') f
 WHERE s.input = 'renta' AND m.name = 'drift_lstm' AND m.version = 1 AND f ->> 'column' = 'renta';

---------------------------------------------------------------------------------------------
-- 5. Prediction skew: April's scores against May's adds
---------------------------------------------------------------------------------------------
CREATE TEMP TABLE pskew AS SELECT * FROM recsys.prediction_skew('drift_lstm', '2016-04-28');
-- The customers with snapshots in April and May, and per product whether they held it in April
-- and in May (the 24 flags in the model's product order).
CREATE TEMP TABLE outcome AS
WITH a AS MATERIALIZED (SELECT ncodpers AS id, coalesce(segmento, 'unknown') AS segment, to_jsonb(x) AS r
                          FROM drift_test.base x WHERE fecha_dato = '2016-04-28'),
     b AS MATERIALIZED (SELECT ncodpers AS id, to_jsonb(x) AS r FROM drift_test.base x WHERE fecha_dato = '2016-05-28')
SELECT a.id, a.segment, p.product, (a.r ->> p.product)::int = 1 AS held_april, (b.r ->> p.product)::int = 1 AS held_may
  FROM a JOIN b USING (id), recsys.models m, jsonb_array_elements_text(m.feature_spec -> 'products') p(product)
 WHERE m.name = 'drift_lstm' AND m.version = 1;
-- Customers and observed adds, overall and per segment, counted in SQL.
SELECT count(*) AS rows, count(DISTINCT p.product) AS products,
       count(*) FILTER (WHERE p.customers = o.customers AND p.observed_adds = o.adds) AS counts_match,
       count(*) FILTER (WHERE p.observed_add_rate = o.adds::float8 / o.customers) AS rates_match,
       count(*) FILTER (WHERE p.ratio IS NOT DISTINCT FROM (p.calibrated_predicted / nullif(p.observed_add_rate, 0)))
         AS ratios_match,
       count(*) FILTER (WHERE p.calibrated_predicted <= p.mean_predicted) AS calibrated_lower
  FROM pskew p
  JOIN (SELECT product, segment, count(*) AS customers, count(*) FILTER (WHERE held_may) AS adds
          FROM outcome WHERE NOT held_april GROUP BY GROUPING SETS ((product, segment), (product))) o
    ON o.product = p.product AND coalesce(o.segment, 'all') = p.segment;
SELECT segment, count(*) AS products FROM pskew GROUP BY 1 ORDER BY 1;
-- The mean predicted probability is the mean of recommend_scores(k => 24), which ranks every
-- product not held, over the same customers scored as of April (the view's cutoff moved back);
-- the calibrated one is the same scores times each customer's correction for the training's
-- 10% sample of examples without adds: with t = 1 - prod(1 - s), A = 0.1 t / (1 - t + 0.1 t),
-- the factor is A + 0.1 (1 - A).
UPDATE drift_test.cutoff SET upto = '2016-04-28';
CREATE TEMP TABLE april_scores AS
SELECT c.id, r.product, r.score::float8 AS score
  FROM (SELECT DISTINCT id FROM outcome) c, recsys.recommend_scores(c.id, 24, 'drift_lstm') r;
UPDATE drift_test.cutoff SET upto = '2016-05-28';
SELECT count(*) AS products,
       count(*) FILTER (WHERE abs(p.mean_predicted - s.mean) < 1e-6) AS mean_matches,
       count(*) FILTER (WHERE abs(p.calibrated_predicted - s.calibrated) < 1e-6) AS calibrated_matches,
       count(*) FILTER (WHERE p.customers = s.customers) AS customers_match
  FROM pskew p
  JOIN (SELECT a.product, avg(a.score) AS mean, avg(a.score * f.factor) AS calibrated, count(*) AS customers
          FROM april_scores a
          JOIN (SELECT id, q.a + 0.1 * (1 - q.a) AS factor
                  FROM (SELECT id, 0.1 * t / (1 - t + 0.1 * t) AS a
                          FROM (SELECT id, 1 - exp(sum(ln(1 - score))) AS t FROM april_scores GROUP BY id) x) q) f USING (id)
         GROUP BY a.product) s ON s.product = p.product
 WHERE p.segment = 'all';

---------------------------------------------------------------------------------------------
-- 6. A model registered from bytes: no reference until one is recorded
---------------------------------------------------------------------------------------------
SET client_min_messages = warning;
SELECT recsys.register_model('drift_bytes', recsys.untrained_model('drift_test.snapshots', window_months => 6, hidden => 8)) AS version;
RESET client_min_messages;
SELECT * FROM recsys.feature_drift('drift_bytes', '2016-05-28', 1);
SELECT * FROM recsys.training_serving_skew('drift_bytes', '2016-05-28', 1);
SELECT recsys.record_feature_reference('drift_bytes', 1, '2016-01-01', '2016-03-31') AS rows_counted;
SELECT reference -> 'features' -> 0 -> 'edges' AS untrained_age_edges, computed_from -> 'months' AS months
  FROM recsys.feature_references WHERE name = 'drift_bytes';
SELECT count(*) AS rows, count(*) FILTER (WHERE status IS NOT NULL) AS with_status
  FROM recsys.feature_drift('drift_bytes', '2016-05-28', 1);
-- A model registered without training has no no_add_sample_rate: nothing to calibrate.
SELECT count(*) FILTER (WHERE calibrated_predicted = mean_predicted) = count(*) AS uncalibrated
  FROM recsys.prediction_skew('drift_bytes', '2016-04-28', 1);
-- Recording again replaces it.
SELECT recsys.record_feature_reference('drift_bytes', 1, '2016-02-01', '2016-02-29') AS rows_counted;
SELECT count(*), min(computed_from ->> 'months') AS months FROM recsys.feature_references WHERE name = 'drift_bytes';

---------------------------------------------------------------------------------------------
-- 7. Errors
---------------------------------------------------------------------------------------------
SELECT * FROM recsys.feature_drift(NULL, '2016-05-28');
SELECT * FROM recsys.feature_drift('drift_lstm', NULL);
SELECT * FROM recsys.feature_drift('no_such_model', '2016-05-28');
SELECT * FROM recsys.feature_drift('drift_bytes', '2016-05-28');          -- no production version
SELECT * FROM recsys.feature_drift('drift_lstm', '2016-05-28', 9);
SELECT * FROM recsys.feature_drift('drift_lstm', '2010-01-01');
SELECT * FROM recsys.prediction_skew('drift_lstm', '2016-05-28');          -- no June to compare with
SELECT * FROM recsys.prediction_skew(NULL, '2016-05-28');
SELECT * FROM recsys.prediction_skew('drift_lstm', '2016-04-28', 0);
SELECT * FROM recsys.training_serving_skew('drift_lstm', '2010-01-01');
SELECT * FROM recsys.training_serving_skew('no_such_model', '2016-05-28');
SELECT recsys.record_feature_reference('drift_lstm', 1, '2016-03-01', '2016-01-01');
SELECT recsys.record_feature_reference('drift_lstm', 1, '2010-01-01', '2010-03-01');
SELECT recsys.record_feature_reference('drift_lstm', 7, '2016-01-01', '2016-03-01');
SELECT recsys.record_feature_reference('drift_lstm', NULL, '2016-01-01', '2016-03-01');
SELECT recsys.store_feature_reference('drift_lstm', 1, '[]', '{}');
-- A reader may not call them.
CREATE ROLE drift_reader IN ROLE recsys_reader;
SET ROLE drift_reader;
SELECT * FROM recsys.feature_drift('drift_lstm', '2016-05-28');
SELECT * FROM recsys.prediction_skew('drift_lstm', '2016-04-28');
SELECT round(recsys.population_stability_index('{1, 1}', '{1, 3}')::numeric, 6) AS reader_psi;
RESET ROLE;
DROP ROLE drift_reader;
