-- recsys.model_report() and recsys.model_report_svg() (docs/monitoring.md, "One place to look"):
-- the sections and what they say before any monitoring data, drift once a reference exists, a
-- crafted history of two versions (realized quality, a validation record, a promotion and a
-- rollback) printed from the report and read back from the SVG with XMLTABLE, escaping, errors
-- and privileges. Figures that come from the LSTM (prediction skew, serving latency) are
-- compared in SQL, not printed. tests/integration/test_monitoring.sh runs the whole story.
SET client_min_messages = warning;
SET jit = off;
CREATE SCHEMA mr;
-- Four months of snapshots: 2015-01 .. 2015-04.
CREATE TABLE mr.snapshots AS SELECT * FROM recsys.generate_santander(300, months => 4);
ALTER TABLE mr.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
SELECT recsys.register_model('mr_model', recsys.untrained_model('mr.snapshots', window_months => 3, hidden => 4, seed => s))
  FROM unnest(ARRAY[1, 2]) s;
SELECT recsys.promote('mr_model', 1, force => true, reason => 'test fixture');
RESET client_min_messages;
\set SHOW_CONTEXT never
-- The SVG's elements, as rows.
CREATE FUNCTION pg_temp.svg_elements(svg text, class text)
RETURNS TABLE (version text, month text, metric text, value text, action text, feature text, status text, product text,
               psi text)
LANGUAGE sql AS $$
    SELECT * FROM XMLTABLE(XMLNAMESPACES('http://www.w3.org/2000/svg' AS s),
                           ('//s:*[contains(concat(" ", @class, " "), " ' || class || ' ")]')
                           PASSING (svg::xml)
                           COLUMNS version text PATH '@data-version', month text PATH '@data-month',
                                   metric text PATH '@data-metric', value text PATH '@data-value',
                                   action text PATH '@data-action', feature text PATH '@data-feature',
                                   status text PATH '@data-status', product text PATH '@data-product',
                                   psi text PATH '@data-psi')
$$;

---------------------------------------------------------------------------------------------
-- 1. A model with no monitoring data yet
---------------------------------------------------------------------------------------------
-- Untrained models have no metrics and no feature reference; version 1 is production and has
-- predicted nothing: its promotion is placed at the month it predicts next (2015-05).
CREATE TEMP TABLE r1 AS SELECT row_number() OVER () AS n, * FROM recsys.model_report('mr_model');
SELECT section, item, to_char(month, 'YYYY-MM') AS month, version, value,
       regexp_replace(detail, '\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC', '<time>', 'g') AS detail
  FROM r1 WHERE section NOT IN ('skew', 'serving_skew', 'serving') ORDER BY n;
-- Skew from the untrained model: the latest month whose next month landed (2015-03), at most
-- ten cells or five overall rows. Serving: rows, "no calls" or "unavailable" (not preloaded).
SELECT count(*) BETWEEN 1 AND 10 AS skew_rows, bool_and(month = '2015-03-01' AND version = 1) AS skew_month,
       bool_and(detail LIKE '%observed in 2015-04%') AS adds_of_next_month
  FROM r1 WHERE section = 'skew';
SELECT count(*) >= 1 AS serving_rows FROM r1 WHERE section = 'serving';
SELECT array_agg(DISTINCT section ORDER BY section) AS sections FROM r1;

CREATE TEMP TABLE s1 AS SELECT recsys.model_report_svg('mr_model') AS svg;
SELECT xml_is_well_formed_document(svg) AS well_formed, svg LIKE '<svg xmlns="http://www.w3.org/2000/svg" %' AS svg_root,
       svg NOT LIKE '%<script%' AND svg NOT LIKE '%href%' AND svg NOT LIKE '%url(%' AS self_contained
  FROM s1;
-- Nothing realized: no point, the promotion marker in both charts, each chart saying why.
SELECT (SELECT count(*) FROM s1, pg_temp.svg_elements(svg, 'point')) AS points,
       (SELECT array_agg(version || ' ' || month || ' ' || action) FROM s1, pg_temp.svg_elements(svg, 'promotion')) AS promotions,
       (SELECT count(*) FROM s1, pg_temp.svg_elements(svg, 'cell')) AS heat_map_cells,
       (SELECT count(*) FROM s1, pg_temp.svg_elements(svg, 'product')) > 0 AS products_shown,
       (SELECT count(*) FROM s1, regexp_matches(svg, 'No realized MAP@7 yet:', 'g')) AS empty_charts,
       (SELECT svg LIKE '%No drift to show: version 1 has no feature reference%' FROM s1) AS says_no_reference
;

---------------------------------------------------------------------------------------------
-- 2. Drift once version 1 has a reference (2015-01 .. 2015-02): the months after it
---------------------------------------------------------------------------------------------
SELECT recsys.record_feature_reference('mr_model', 1, '2015-01-01', '2015-02-01') AS reference_rows;
-- The report's rows for 2015-03 and 2015-04 are feature_drift's: those above ok, and the five
-- highest PSIs of the latest month whatever their status.
SELECT r.item, to_char(r.month, 'YYYY-MM') AS month, round(r.value::numeric, 4) AS psi, split_part(r.detail, ':', 1) AS status,
       r.value = d.psi AS is_feature_drift
  FROM recsys.model_report('mr_model') r
  JOIN LATERAL recsys.feature_drift('mr_model', r.month, 1) d ON d.feature = r.item
 WHERE r.section = 'drift'
 ORDER BY r.month, r.value DESC, r.item;
SELECT count(*) FILTER (WHERE d.status <> 'ok') + 5 >= (SELECT count(*) FROM recsys.model_report('mr_model') WHERE section = 'drift')
       AS only_flagged_and_top_five
  FROM generate_series('2015-03-01'::date, '2015-04-01', interval '1 month') m, recsys.feature_drift('mr_model', m::date, 1) d;
-- The heat map: one cell per feature and month (products only when they passed 0.1).
SELECT e.month, count(*) AS cells, count(*) FILTER (WHERE e.status = d.status) AS status_matches,
       count(*) FILTER (WHERE e.psi::numeric = round(d.psi::numeric, 4)) AS psi_matches
  FROM pg_temp.svg_elements(recsys.model_report_svg('mr_model'), 'cell') e
  JOIN recsys.feature_drift('mr_model', (e.month || '-01')::date, 1) d ON d.feature = e.feature
 GROUP BY e.month ORDER BY e.month;
SELECT count(*) AS cells FROM pg_temp.svg_elements(recsys.model_report_svg('mr_model'), 'cell') e
 WHERE e.feature NOT IN (SELECT f ->> 'column' FROM recsys.models m, jsonb_array_elements(m.feature_spec -> 'features') f
                          WHERE m.name = 'mr_model' AND m.version = 1);

---------------------------------------------------------------------------------------------
-- 3. A history: v1 predicted 2015-02 .. 2015-05, v2 validated, promoted, predicted 2015-05 and
--    2015-06, then a rollback to v1. Realized quality and the validation record are written
--    directly (what update_realized_quality and validate write), so that every figure is known.
---------------------------------------------------------------------------------------------
INSERT INTO recsys.prediction_sets (model, version, month, refreshed_at, customers, k)
SELECT 'mr_model', 1, m::date, now(), 290, 7
  FROM generate_series('2015-02-01'::date, '2015-05-01', interval '1 month') m;
INSERT INTO recsys.realized_quality_results
       (model, version, month, source, set_id, predicted, customers, adders, map7, map7_adders, precision7, recall7, coverage)
SELECT 'mr_model', 1, s.month, 'batch', s.id, 290, 280, 10, x.map7, x.map7 * 28, 0.1, 0.9, 0.5
  FROM recsys.prediction_sets s
  JOIN (VALUES ('2015-02-01'::date, 0.021), ('2015-03-01', 0.019), ('2015-04-01', 0.016), ('2015-05-01', 0.012)) x(month, map7)
    ON x.month = s.month
 WHERE s.model = 'mr_model';
-- An online row beside the batch one of 2015-05 (the batch row is the point), and one for a
-- month without a batch row (2015-06, v1: the log is the point).
INSERT INTO recsys.realized_quality_results
       (model, version, month, source, set_id, predicted, customers, adders, map7, map7_adders, precision7, recall7, coverage)
VALUES ('mr_model', 1, '2015-05-01', 'online', NULL, 40, 38, 2, 0.03, 0.57, 0.07, 1, 0.3),
       ('mr_model', 1, '2015-06-01', 'online', NULL, 40, 38, 1, 0.01, 0.38, 0.05, 1, 0.3);
INSERT INTO recsys.model_validations (name, candidate_version, production_version, relation, month, customers, adders,
                                      fingerprint, candidate_map7, production_map7, difference, ci_low, ci_high, rule, figures,
                                      passed, reasons, validated_by)
VALUES ('mr_model', 2, 1, 'mr.snapshots', '2015-04-01', 280, 9, 'f', 0.0205, 0.0162, 0.0043, 0.001, 0.008, '{}', '{}',
        true, '{}', current_user);
SELECT recsys.promote('mr_model', 2, force => true, reason => 'drift <alert> & "retrained"') IS NULL AS promoted;
INSERT INTO recsys.prediction_sets (model, version, month, refreshed_at, customers, k)
SELECT 'mr_model', 2, m::date, now(), 290, 7 FROM generate_series('2015-05-01'::date, '2015-06-01', interval '1 month') m;
INSERT INTO recsys.realized_quality_results
       (model, version, month, source, set_id, predicted, customers, adders, map7, map7_adders, precision7, recall7, coverage)
SELECT 'mr_model', 2, s.month, 'batch', s.id, 290, 280, 10, x.map7, x.map7 * 28, 0.1, 0.9, 0.5
  FROM recsys.prediction_sets s
  JOIN (VALUES ('2015-05-01'::date, 0.020), ('2015-06-01', 0.022)) x(month, map7) ON x.month = s.month
 WHERE s.model = 'mr_model' AND s.version = 2;

-- The report (v2 is production).
SELECT section, item, to_char(month, 'YYYY-MM') AS month, version, round(value::numeric, 5) AS value,
       regexp_replace(regexp_replace(detail, '\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})? UTC', '<time>', 'g'),
                      '(validation record|prediction set) \d+', '\1 <id>', 'g') AS detail
  FROM recsys.model_report('mr_model')
 WHERE section IN ('model', 'versions', 'events', 'quality');

-- The picture: one point per month per version in each chart, the values of the report; the
-- promotion at the first month v2 predicted after it; v2's estimate at its validation month.
CREATE TEMP TABLE s3 AS SELECT recsys.model_report_svg('mr_model') AS svg;
SELECT xml_is_well_formed_document(svg) AS well_formed FROM s3;
SELECT e.metric, e.version, array_agg(e.month || '=' || e.value ORDER BY e.month) AS points
  FROM s3, pg_temp.svg_elements(svg, 'point') e GROUP BY 1, 2 ORDER BY 1, 2;
SELECT e.metric, array_agg(e.version ORDER BY e.version) AS series
  FROM s3, pg_temp.svg_elements(svg, 'series') e GROUP BY 1 ORDER BY 1;
SELECT e.version, e.month, e.action FROM s3, pg_temp.svg_elements(svg, 'promotion') e;   -- document order: left chart, right
SELECT e.version, e.month, e.value FROM s3, pg_temp.svg_elements(svg, 'estimate') e;

-- A rollback to v1: placed at the month v1 predicts next (it has predicted nothing since),
-- 2015-05, where v2's promotion is too (the labels are stacked); drawn in both charts.
SELECT recsys.rollback('mr_model', 'v2 <worse> for students') AS back_to;
SELECT e.version, e.month, e.action, count(*) AS charts
  FROM pg_temp.svg_elements(recsys.model_report_svg('mr_model'), 'rollback') e GROUP BY 1, 2, 3;
SELECT item, to_char(month, 'YYYY-MM') AS month, version,
       regexp_replace(regexp_replace(detail, '\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC', '<time>'),
                      'validation record \d+', 'validation record <id>') AS detail
  FROM recsys.model_report('mr_model') WHERE section = 'events';
-- Text from the registry is escaped in the SVG (the reasons are not drawn; the escaping is).
SELECT recsys.svg_escape(E'<a b="c">&\'x\'\x01</a>') AS escaped;
SELECT recsys.model_report_product_label('ind_tjcr_fin_ult1') AS tjcr, recsys.model_report_product_label('ind_nomina_ult1') AS nomina,
       recsys.model_report_product_label('my_flag') AS other;

---------------------------------------------------------------------------------------------
-- 4. Errors and privileges
---------------------------------------------------------------------------------------------
SELECT count(*) AS rows FROM recsys.model_report(NULL);
SELECT recsys.model_report_svg(NULL) IS NULL AS null_svg;
SELECT * FROM recsys.model_report('no_such_model');
SELECT recsys.model_report_svg('no_such_model');
-- recsys_admin only: the report reads feature references, prediction sets and the source.
SELECT r.rolname, has_function_privilege(r.rolname, 'recsys.model_report(text, integer)', 'EXECUTE') AS report,
       has_function_privilege(r.rolname, 'recsys.model_report_svg(text, integer)', 'EXECUTE') AS svg
  FROM pg_roles r WHERE r.rolname IN ('recsys_reader', 'recsys_admin') ORDER BY 1;
-- Nothing of the report is PUBLIC's.
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'recsys'::regnamespace AND (p.proname LIKE 'model_report%' OR p.proname LIKE 'svg_%')
   AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))
 ORDER BY 1;

SET client_min_messages = warning;
DROP SCHEMA mr CASCADE;
DELETE FROM recsys.realized_quality_results WHERE model = 'mr_model';
DELETE FROM recsys.prediction_sets WHERE model = 'mr_model';
DELETE FROM recsys.model_events WHERE name = 'mr_model';
DELETE FROM recsys.models WHERE name = 'mr_model';
RESET client_min_messages;
