-- recsys.compare_versions: two versions of a model evaluated on the same customers of one month,
-- compared customer by customer with a paired bootstrap, overall and per subpopulation.
-- Figures are compared in SQL or rounded: BLAS kernels differ between CPUs in the last bits.
SET client_min_messages = warning;
CREATE SCHEMA cv_test;
CREATE TABLE cv_test.t AS SELECT * FROM recsys.generate_santander(1500);
-- Version 1 is trained for one epoch, versions 2 and 3 are untrained (random weights).
SELECT recsys.train('regress_cv', 'cv_test.t', train_months => 2, window_months => 4, hidden => 8, epochs => 1,
                    batch_size => 128, max_customers => 600, seed => 5) AS trained;
SELECT recsys.register_model('regress_cv', recsys.untrained_model('cv_test.t', window_months => 4, hidden => 8, seed => 1))
       AS untrained;
SELECT recsys.register_model('regress_cv', recsys.untrained_model('cv_test.t', window_months => 3, hidden => 4, seed => 2))
       AS untrained;

-- The customers with snapshots in April and May 2016, and those who added a product in May.
SET jit = off;
CREATE TEMP TABLE expected AS
WITH flags AS (
    SELECT ncodpers AS id, fecha_dato AS month,
           ARRAY[ind_ahor_fin_ult1, ind_aval_fin_ult1, ind_cco_fin_ult1, ind_cder_fin_ult1, ind_cno_fin_ult1,
                 ind_ctju_fin_ult1, ind_ctma_fin_ult1, ind_ctop_fin_ult1, ind_ctpp_fin_ult1, ind_deco_fin_ult1,
                 ind_deme_fin_ult1, ind_dela_fin_ult1, ind_ecue_fin_ult1, ind_fond_fin_ult1, ind_hip_fin_ult1,
                 ind_plan_fin_ult1, ind_pres_fin_ult1, ind_reca_fin_ult1, ind_tjcr_fin_ult1, ind_valo_fin_ult1,
                 ind_viv_fin_ult1, ind_nomina_ult1, ind_nom_pens_ult1, ind_recibo_ult1] AS held
      FROM cv_test.t WHERE fecha_dato IN ('2016-04-28', '2016-05-28'))
SELECT count(*) AS customers,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM unnest(m.held, a.held) u(now, before) WHERE now = 1 AND before = 0))
           AS adders
  FROM flags a JOIN flags m ON m.id = a.id AND a.month = '2016-04-28' AND m.month = '2016-05-28';

-- Trained against untrained on the latest month.
CREATE TEMP TABLE c AS SELECT recsys.compare_versions('regress_cv', 1, 2, NULL) AS r;
SELECT ARRAY(SELECT jsonb_object_keys(r) ORDER BY 1) AS keys,
       ARRAY(SELECT jsonb_object_keys(r -> 'candidate') ORDER BY 1) AS version_keys,
       ARRAY(SELECT jsonb_object_keys(r -> 'difference') ORDER BY 1) AS difference_keys,
       ARRAY(SELECT jsonb_object_keys(r -> 'subpopulations' -> 0) ORDER BY 1) AS subpopulation_keys
  FROM c;
SELECT r ->> 'relation' AS relation, r ->> 'month' AS month, (r ->> 'customers')::bigint = e.customers AS customers_ok,
       (r ->> 'adders')::bigint = e.adders AS adders_ok, r -> 'resamples' AS resamples, r -> 'confidence' AS confidence,
       r -> 'seed' AS seed, r -> 'candidate' -> 'version' AS candidate, r -> 'baseline' -> 'version' AS baseline
  FROM c, expected e;
-- The fingerprint covers only the evaluated rows (ids, April's products, May's adds), which the
-- generator makes the same on every platform.
SELECT r ->> 'fingerprint' AS fingerprint FROM c;
-- The mean difference is candidate - baseline; the interval holds it.
SELECT abs((r -> 'difference' ->> 'mean')::float8
           - ((r -> 'candidate' ->> 'map7')::float8 - (r -> 'baseline' ->> 'map7')::float8)) < 1e-12 AS mean_is_difference,
       (r -> 'difference' ->> 'low')::float8 <= (r -> 'difference' ->> 'mean')::float8
       AND (r -> 'difference' ->> 'mean')::float8 <= (r -> 'difference' ->> 'high')::float8 AS interval_holds_mean,
       (r -> 'difference' ->> 'low')::float8 < (r -> 'difference' ->> 'high')::float8 AS interval_not_empty,
       abs((r -> 'candidate' ->> 'map7')::float8 * (r ->> 'customers')::float8
           - (r -> 'candidate' ->> 'map7_adders')::float8 * (r ->> 'adders')::float8) < 1e-9 AS one_ap_sum
  FROM c;
-- Subpopulations of the candidate's features (the default set has no canal_entrada), in
-- dimension order, then value order; each dimension splits all customers, and its customers'
-- MAP@7 average to the overall one.
SELECT s ->> 'dimension' AS dimension, count(*) AS subpopulation_values,
       sum((s ->> 'customers')::bigint) = (r ->> 'customers')::bigint AS covers_all,
       sum((s ->> 'adders')::bigint) = (r ->> 'adders')::bigint AS adders_add_up,
       abs(sum((s ->> 'candidate_map7')::float8 * (s ->> 'customers')::float8) / (r ->> 'customers')::float8
           - (r -> 'candidate' ->> 'map7')::float8) < 1e-12 AS candidate_map7_adds_up,
       abs(sum((s ->> 'baseline_map7')::float8 * (s ->> 'customers')::float8) / (r ->> 'customers')::float8
           - (r -> 'baseline' ->> 'map7')::float8) < 1e-12 AS baseline_map7_adds_up,
       bool_and((s ->> 'low')::float8 <= (s ->> 'difference')::float8
                AND (s ->> 'difference')::float8 <= (s ->> 'high')::float8) AS intervals_hold_means,
       min(n) AS first_position
  FROM c, jsonb_array_elements(r -> 'subpopulations') WITH ORDINALITY x(s, n)
 GROUP BY s ->> 'dimension', r ORDER BY min(n);
SELECT s ->> 'dimension' AS dimension, s ->> 'value' AS value, s -> 'customers' AS customers, s -> 'adders' AS adders
  FROM c, jsonb_array_elements(r -> 'subpopulations') WITH ORDINALITY x(s, n)
 WHERE s ->> 'dimension' IN ('segment', 'add_history') ORDER BY n;

-- The candidate's figures are recsys.evaluate()'s (one customer per batch: bit-identical scores).
BEGIN;
SET LOCAL recsys.batch_size = 1;
SELECT e.customers = (r ->> 'customers')::bigint AS same_customers, e.adders = (r ->> 'adders')::bigint AS same_adders,
       e.map7 = (r -> 'candidate' ->> 'map7')::float8 AS same_map7,
       e.map7_adders = (r -> 'candidate' ->> 'map7_adders')::float8 AS same_map7_adders,
       e.precision7 = (r -> 'candidate' ->> 'precision7')::float8 AS same_precision7,
       e.recall7 = (r -> 'candidate' ->> 'recall7')::float8 AS same_recall7,
       e.coverage = (r -> 'candidate' ->> 'coverage')::float8 AS same_coverage
  FROM (SELECT recsys.compare_versions('regress_cv', 1, 2, '2016-05-28') AS r) x,
       recsys.evaluate('regress_cv', 1, '2016-05-28') e WHERE e.method = 'lstm';
ROLLBACK;

-- Reproducible: the same call gives the same JSON.
SELECT recsys.compare_versions('regress_cv', 1, 2, NULL) = r AS same_json FROM c;
-- Another seed resamples differently: other bounds, the same means.
SELECT o -> 'difference' ->> 'mean' = r -> 'difference' ->> 'mean' AS same_mean,
       o -> 'candidate' = r -> 'candidate' AND o -> 'baseline' = r -> 'baseline' AS same_metrics,
       o ->> 'fingerprint' = r ->> 'fingerprint' AS same_fingerprint,
       (o -> 'difference' ->> 'low', o -> 'difference' ->> 'high')
           IS DISTINCT FROM (r -> 'difference' ->> 'low', r -> 'difference' ->> 'high') AS other_bounds,
       o -> 'seed' AS seed
  FROM c, LATERAL (SELECT recsys.compare_versions('regress_cv', 1, 2, NULL, seed => 43) AS o) x;
-- A wider confidence gives a wider interval.
SELECT (o -> 'difference' ->> 'low')::float8 <= (r -> 'difference' ->> 'low')::float8
       AND (o -> 'difference' ->> 'high')::float8 >= (r -> 'difference' ->> 'high')::float8 AS wider
  FROM c, LATERAL (SELECT recsys.compare_versions('regress_cv', 1, 2, NULL, confidence => 0.99) AS o) x;

-- A version against itself: no difference, an interval of [0, 0], everywhere.
SELECT r -> 'difference' AS difference, r -> 'candidate' = jsonb_set(r -> 'baseline', '{version}', '1') AS same_figures,
       (SELECT bool_and((s ->> 'difference')::float8 = 0 AND (s ->> 'low')::float8 = 0 AND (s ->> 'high')::float8 = 0)
          FROM jsonb_array_elements(r -> 'subpopulations') s) AS subpopulations_zero
  FROM (SELECT recsys.compare_versions('regress_cv', 1, 1, NULL, resamples => 200) AS r) x;

-- Versions with other features (window, hidden size) are compared on the same rows.
SELECT o ->> 'fingerprint' = r ->> 'fingerprint' AS same_rows, o -> 'baseline' -> 'version' AS baseline
  FROM c, LATERAL (SELECT recsys.compare_versions('regress_cv', 1, 3, NULL) AS o) x;

-- The candidate alone: its figures, no baseline, no difference.
SELECT o -> 'baseline' AS baseline, o -> 'difference' AS difference, o -> 'candidate' = r -> 'candidate' AS same_candidate,
       o ->> 'fingerprint' = r ->> 'fingerprint' AS same_rows,
       jsonb_array_length(o -> 'subpopulations') = jsonb_array_length(r -> 'subpopulations') AS same_subpopulations,
       (SELECT bool_and(s -> 'baseline_map7' = 'null' AND s -> 'difference' = 'null' AND s -> 'low' = 'null'
                        AND s -> 'high' = 'null')
          FROM jsonb_array_elements(o -> 'subpopulations') s) AS subpopulation_nulls,
       (SELECT bool_and((s ->> 'candidate_map7')::float8 = (t ->> 'candidate_map7')::float8
                        AND s ->> 'value' = t ->> 'value' AND s -> 'customers' = t -> 'customers')
          FROM jsonb_array_elements(o -> 'subpopulations') WITH ORDINALITY a(s, i)
          JOIN jsonb_array_elements(r -> 'subpopulations') WITH ORDINALITY b(t, j) ON i = j) AS same_subpopulation_figures
  FROM c, LATERAL (SELECT recsys.compare_versions('regress_cv', 1, NULL, NULL) AS o) x;

-- An earlier month.
SELECT r ->> 'month' AS month, (r ->> 'customers')::bigint > 0 AS has_customers
  FROM (SELECT recsys.compare_versions('regress_cv', 2, 3, '2016-02-01', resamples => 100) AS r) x;

-- Bad inputs fail clearly.
\set VERBOSITY verbose
\set SHOW_CONTEXT never
SELECT recsys.compare_versions('regress_cv', 9, 1, NULL);
SELECT recsys.compare_versions('regress_cv', 1, 9, NULL);
SELECT recsys.compare_versions('no_such_model', 1, NULL, NULL);
SELECT recsys.compare_versions(NULL, 1, 2, NULL);
SELECT recsys.compare_versions('regress_cv', NULL, 2, NULL);
SELECT recsys.compare_versions('regress_cv', 0, 2, NULL);
SELECT recsys.compare_versions('regress_cv', 1, 2, '2015-01-28');
SELECT recsys.compare_versions('regress_cv', 1, 2, '2019-01-28');
SELECT recsys.compare_versions('regress_cv', 1, 2, NULL, resamples => 99);
SELECT recsys.compare_versions('regress_cv', 1, 2, NULL, resamples => 100001);
SELECT recsys.compare_versions('regress_cv', 1, 2, NULL, confidence => 0.5);
SELECT recsys.compare_versions('regress_cv', 1, 2, NULL, confidence => 1);
SELECT recsys.compare_versions('regress_cv', 1, 2, NULL, seed => NULL);
-- Versions that read different relations cannot be compared.
CREATE TABLE cv_test.copy AS SELECT * FROM cv_test.t;
SELECT recsys.register_model('regress_cv', recsys.untrained_model('cv_test.copy', window_months => 4, hidden => 8, seed => 1))
       AS other_relation;
SELECT recsys.compare_versions('regress_cv', 4, 1, NULL);
-- A month whose per-customer figures do not fit in recsys.max_batch_memory fails before scoring.
SET recsys.max_batch_memory = '128kB';
SELECT recsys.compare_versions('regress_cv', 1, 2, NULL);
RESET recsys.max_batch_memory;
\set VERBOSITY default
\set SHOW_CONTEXT errors

-- Privileges: not for PUBLIC; recsys_admin may call it.
SELECT has_function_privilege('public', 'recsys.compare_versions(text, integer, integer, date, integer, double precision, bigint, double precision)',
                              'EXECUTE') AS public_execute,
       has_function_privilege('recsys_admin', 'recsys.compare_versions(text, integer, integer, date, integer, double precision, bigint, double precision)',
                              'EXECUTE') AS admin_execute;

RESET jit;
DROP SCHEMA cv_test CASCADE;
DELETE FROM recsys.data_validations WHERE relation = 'cv_test.t';
DELETE FROM recsys.model_events WHERE name = 'regress_cv';
DELETE FROM recsys.models WHERE name = 'regress_cv';
