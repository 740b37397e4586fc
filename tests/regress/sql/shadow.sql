-- Shadow scoring: recsys.set_shadow makes a sampled share of production recommend() calls
-- score with another version too and log both rankings; the caller only gets production's.
-- Scores are never printed (BLAS kernels differ between CPUs): results are compared in SQL.
SET client_min_messages = warning;
CREATE SCHEMA sh;
-- Five months; the fifth is held back, to land after the calls (the realized outcome).
CREATE TABLE sh.all_months AS SELECT * FROM recsys.generate_santander(60, months => 5);
CREATE TABLE sh.snapshots AS SELECT * FROM sh.all_months WHERE fecha_dato < '2015-05-01';
ALTER TABLE sh.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
-- v1 production, v2 another seed, v3 the same weights as v1.
SELECT recsys.register_model('sh_model', recsys.untrained_model('sh.snapshots', window_months => 3, hidden => 4, seed => s))
  FROM unnest(ARRAY[1, 2, 1]) s;
SELECT recsys.promote('sh_model', 1, force => true, reason => 'test fixture');
RESET client_min_messages;
SET jit = off;

-- What production answers with no shadow set, for every customer of the first four months.
CREATE TEMP TABLE expected AS
SELECT id, recsys.recommend(id, model => 'sh_model') AS products FROM (SELECT DISTINCT ncodpers FROM sh.snapshots) s(id);
CREATE TEMP TABLE id_list AS SELECT array_agg(id ORDER BY id) AS ids FROM expected;
SELECT count(*) AS customers, count(*) FILTER (WHERE cardinality(products) = 7) AS with_7 FROM expected;
SELECT * FROM recsys.shadow_counters();

-- Sample 1.0: every production call is logged with both rankings; callers get production's.
SELECT recsys.set_shadow('sh_model', 2, 1.0);
SELECT name, version, sample, started_by FROM recsys.shadow_deployments;
SELECT count(*) FILTER (WHERE e.products = recsys.recommend(e.id, model => 'sh_model')) AS same_as_without_shadow
  FROM expected e;
SELECT * FROM recsys.shadow_counters();
SELECT count(*) AS rows, count(DISTINCT customer_id) AS customers,
       bool_and(l.production_version = 1 AND l.shadow_version = 2) AS versions,
       bool_and(l.month = '2015-04-01') AS latest_month,
       bool_and(l.production_products = e.products) AS production_ranking,
       bool_and(cardinality(l.production_scores) = 7 AND cardinality(l.shadow_scores) = 7) AS scores_logged,
       -- Calls pinning a version are not shadowed (the counters below do not move).
       bool_and(l.shadow_products = recsys.recommend(l.customer_id, model => 'sh_model', version => 2)) AS shadow_ranking,
       count(*) FILTER (WHERE l.shadow_products <> l.production_products) > 0 AS versions_differ
  FROM recsys.shadow_log l JOIN expected e ON e.id = l.customer_id
 WHERE l.name = 'sh_model';
-- recommend_scores() is shadowed too, and returns production's rows.
SELECT array_agg(product ORDER BY rank) = (SELECT products FROM expected WHERE id = 15890) AS scores_form_is_production
  FROM recsys.recommend_scores(15890, model => 'sh_model');
SELECT * FROM recsys.shadow_counters();
SELECT count(*) AS rows FROM recsys.shadow_log WHERE name = 'sh_model';

-- Sample 0.5: about half of 400 calls (binomial, sd 10; the band is 10 sd wide each way).
SELECT recsys.set_shadow('sh_model', 2, 0.5);
CREATE TEMP TABLE before_half AS SELECT count(*) AS n FROM recsys.shadow_log WHERE name = 'sh_model';
SELECT count(r) AS calls
  FROM (SELECT recsys.recommend(ids[1 + g % cardinality(ids)], model => 'sh_model') AS r FROM id_list, generate_series(1, 400) g) s;
SELECT (SELECT count(*) FROM recsys.shadow_log WHERE name = 'sh_model') - n BETWEEN 100 AND 300 AS about_half
  FROM before_half;
SELECT sampled - logged AS not_logged, skipped_read_only, errors FROM recsys.shadow_counters();

-- Stopped: nothing is logged.
SELECT recsys.set_shadow('sh_model', NULL);
SELECT recsys.set_shadow('sh_model', NULL);
CREATE TEMP TABLE before_stop AS SELECT count(*) AS n, (SELECT sampled FROM recsys.shadow_counters()) AS sampled
  FROM recsys.shadow_log WHERE name = 'sh_model';
SELECT count(r) AS calls
  FROM (SELECT recsys.recommend(ids[1 + g % cardinality(ids)], model => 'sh_model') AS r FROM id_list, generate_series(1, 100) g) s;
SELECT (SELECT count(*) FROM recsys.shadow_log WHERE name = 'sh_model') = n AS nothing_logged,
       (SELECT sampled FROM recsys.shadow_counters()) = sampled AS nothing_sampled
  FROM before_stop;

-- A read-only transaction works and logs nothing; the skip is counted.
SELECT recsys.set_shadow('sh_model', 2, 1.0);
CREATE TEMP TABLE before_ro AS SELECT count(*) AS n FROM recsys.shadow_log WHERE name = 'sh_model';
SELECT skipped_read_only FROM recsys.shadow_counters();
BEGIN;
SET TRANSACTION READ ONLY;
SELECT count(*) FILTER (WHERE e.products = recsys.recommend(e.id, model => 'sh_model')) AS read_only_calls
  FROM expected e WHERE e.id IN (SELECT unnest(ids[1:5]) FROM id_list);
COMMIT;
SET default_transaction_read_only = on;
SELECT recsys.recommend(15889, model => 'sh_model') = (SELECT products FROM expected WHERE id = 15889) AS read_only_default;
RESET default_transaction_read_only;
SELECT skipped_read_only FROM recsys.shadow_counters();
SELECT (SELECT count(*) FROM recsys.shadow_log WHERE name = 'sh_model') = n AS nothing_logged FROM before_ro;

-- A reader (recsys_reader, SELECT on the snapshots) is shadowed: the row is written as the
-- extension's owner; the reader can neither read the log nor set a shadow.
CREATE ROLE shadow_app;
GRANT recsys_reader TO shadow_app;
GRANT USAGE ON SCHEMA sh TO shadow_app;
GRANT SELECT ON sh.snapshots TO shadow_app;
GRANT SELECT ON expected TO shadow_app;
CREATE TEMP TABLE before_reader AS SELECT count(*) AS n FROM recsys.shadow_log WHERE name = 'sh_model';
SET ROLE shadow_app;
SELECT recsys.recommend(15889, model => 'sh_model') = (SELECT products FROM expected WHERE id = 15889) AS reader_gets_production;
SELECT count(*) FROM recsys.shadow_log;
SELECT recsys.set_shadow('sh_model', NULL);
RESET ROLE;
SELECT (SELECT count(*) FROM recsys.shadow_log WHERE name = 'sh_model') - n AS logged_for_reader FROM before_reader;

-- Another session sees a shadow start and stop when it commits (its cached setting is
-- invalidated with the registry), and never an uncommitted one.
SELECT recsys.set_shadow('sh_model', NULL);
SELECT dblink_connect('other', format('dbname=%s host=%s port=%s', current_database(),
                                      current_setting('unix_socket_directories'), current_setting('port')));
-- How many rows one recommend() call of the other session logged (each statement of a
-- PL/pgSQL function takes a new snapshot, so the second count sees the other session's row).
CREATE FUNCTION sh.other_session_logs() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    before bigint;
BEGIN
    SELECT count(*) INTO before FROM recsys.shadow_log WHERE name = 'sh_model';
    PERFORM * FROM dblink('other', $q$SELECT recsys.recommend(15889, model => 'sh_model')::text$q$) AS t(r text);
    RETURN (SELECT count(*) FROM recsys.shadow_log WHERE name = 'sh_model') - before;
END
$$;
SELECT sh.other_session_logs() AS no_shadow;
BEGIN;
SELECT recsys.set_shadow('sh_model', 2, 1.0);
SELECT sh.other_session_logs() AS during_uncommitted_start;
COMMIT;
SELECT sh.other_session_logs() AS after_start;
SELECT recsys.set_shadow('sh_model', NULL);
SELECT sh.other_session_logs() AS after_stop;
SELECT dblink_disconnect('other');

-- A shadow version that fails (it reads a column its relation no longer has) never fails the
-- call: one WARNING per session, the rest counted; the caller's transaction goes on.
CREATE TABLE sh.copy AS SELECT * FROM sh.snapshots;
SELECT recsys.register_model('sh_model', recsys.untrained_model('sh.copy', window_months => 3, hidden => 4, seed => 4));
SELECT recsys.set_shadow('sh_model', 4, 1.0);
ALTER TABLE sh.copy DROP COLUMN renta;
SELECT errors FROM recsys.shadow_counters();
BEGIN;
SELECT recsys.recommend(15889, model => 'sh_model') = (SELECT products FROM expected WHERE id = 15889) AS production_despite_failure;
SELECT count(*) FILTER (WHERE e.products = recsys.recommend(e.id, model => 'sh_model')) AS production_despite_failures
  FROM expected e WHERE e.id IN (SELECT unnest(ids[1:5]) FROM id_list);
CREATE TEMP TABLE still_in_transaction AS SELECT 1 AS ok;
COMMIT;
SELECT ok AS transaction_committed FROM still_in_transaction;
SELECT errors FROM recsys.shadow_counters();
SELECT count(*) AS logged_for_failing_version FROM recsys.shadow_log WHERE name = 'sh_model' AND shadow_version = 4;

-- A shadow version promoted to production is no longer shadowed (nothing to compare).
SELECT recsys.set_shadow('sh_model', 2, 1.0);
SELECT recsys.promote('sh_model', 2, force => true, reason => 'test fixture');
CREATE TEMP TABLE before_promote AS SELECT sampled FROM recsys.shadow_counters();
SELECT cardinality(recsys.recommend(15889, model => 'sh_model')) AS k;
SELECT c.sampled = b.sampled AS not_shadowed FROM recsys.shadow_counters() c, before_promote b;
SELECT recsys.rollback('sh_model');
SELECT cardinality(recsys.recommend(15889, model => 'sh_model')) AS k;
SELECT c.sampled - b.sampled AS shadowed_again FROM recsys.shadow_counters() c, before_promote b;

-- The audit trail.
SELECT version, action, reason FROM recsys.model_events
 WHERE name = 'sh_model' AND action LIKE 'shadow%' ORDER BY id;

-- shadow_report. From here on the log holds: v2 and v3 (v1's weights) beside v1, each called
-- for every customer, v3 twice (the report's realized figures use the latest call).
TRUNCATE recsys.shadow_log;
SELECT count(r) AS calls FROM (SELECT recsys.recommend(id, model => 'sh_model') AS r FROM expected) s;
SELECT recsys.set_shadow('sh_model', 3, 1.0);
SELECT count(r) AS calls FROM (SELECT recsys.recommend(id, model => 'sh_model') AS r FROM expected, generate_series(1, 2) twice) s;
SELECT recsys.set_shadow('sh_model', NULL);
SELECT production_version, shadow_version, month, calls, customers,
       overlap_at_7 BETWEEN 0 AND 1 AS overlap_in_range, shadow_version <> 3 OR overlap_at_7 = 1 AS identical_overlap_1,
       top1_agreement BETWEEN 0 AND 1 AS top1_in_range, shadow_version <> 3 OR top1_agreement = 1 AS identical_top1_1,
       realized_customers, production_map7, shadow_map7
  FROM recsys.shadow_report('sh_model');
-- Overlap@7 and top-1 agreement against the log, computed here another way.
SELECT r.shadow_version,
       abs(r.overlap_at_7 - (SELECT avg(cardinality(ARRAY(SELECT unnest(l.production_products) INTERSECT
                                                          SELECT unnest(l.shadow_products))) / 7.0)
                               FROM recsys.shadow_log l WHERE l.shadow_version = r.shadow_version)) < 1e-12 AS overlap_ok,
       abs(r.top1_agreement - (SELECT avg((l.production_products[1] = l.shadow_products[1])::int)
                                 FROM recsys.shadow_log l WHERE l.shadow_version = r.shadow_version)) < 1e-12 AS top1_ok
  FROM recsys.shadow_report('sh_model') r ORDER BY 1;

-- The next month lands: the realized MAP@7 of each ranking on the logged customers.
INSERT INTO sh.snapshots SELECT * FROM sh.all_months WHERE fecha_dato >= '2015-05-01';
-- Reference: products added = flag 1 in May and not 1 in April; Kaggle apk@7 written as a
-- sum over positions; customers without adds count 0.
CREATE TEMP TABLE reference AS
WITH products AS (
    SELECT p FROM recsys.models m, jsonb_array_elements_text(m.feature_spec -> 'products') p
     WHERE m.name = 'sh_model' AND m.version = 1
), latest AS (
    SELECT DISTINCT ON (shadow_version, customer_id) shadow_version, customer_id, production_products, shadow_products
      FROM recsys.shadow_log ORDER BY shadow_version, customer_id, id DESC
), adds AS (
    SELECT l.*, ARRAY(SELECT p FROM products WHERE (to_jsonb(nx) ->> p)::int = 1
                                              AND (to_jsonb(cu) ->> p)::int IS DISTINCT FROM 1) AS added
      FROM latest l
      LEFT JOIN sh.snapshots cu ON cu.ncodpers = l.customer_id AND cu.fecha_dato = '2015-04-28'
      LEFT JOIN sh.snapshots nx ON nx.ncodpers = l.customer_id AND nx.fecha_dato = '2015-05-28'
), apk AS (
    SELECT a.shadow_version, cardinality(a.added) AS n_added,
           CASE WHEN cardinality(a.added) = 0 THEN 0 ELSE
               (SELECT coalesce(sum((SELECT count(*) FROM generate_series(1, i) j WHERE a.production_products[j] = ANY (a.added))::float8 / i), 0)
                  FROM generate_series(1, least(7, cardinality(a.production_products))) i
                 WHERE a.production_products[i] = ANY (a.added)) / least(cardinality(a.added), 7) END AS production_ap,
           CASE WHEN cardinality(a.added) = 0 THEN 0 ELSE
               (SELECT coalesce(sum((SELECT count(*) FROM generate_series(1, i) j WHERE a.shadow_products[j] = ANY (a.added))::float8 / i), 0)
                  FROM generate_series(1, least(7, cardinality(a.shadow_products))) i
                 WHERE a.shadow_products[i] = ANY (a.added)) / least(cardinality(a.added), 7) END AS shadow_ap
      FROM adds a
)
SELECT shadow_version, count(*) AS customers, count(*) FILTER (WHERE n_added > 0) AS adders,
       avg(production_ap) AS production_map7, avg(shadow_ap) AS shadow_map7
  FROM apk GROUP BY shadow_version;
SELECT shadow_version, customers, adders > 0 AS some_customers_added FROM reference ORDER BY 1;
SELECT r.shadow_version, r.realized_customers,
       abs(r.production_map7 - f.production_map7) < 1e-12 AS production_map7_ok,
       abs(r.shadow_map7 - f.shadow_map7) < 1e-12 AS shadow_map7_ok,
       r.shadow_version <> 3 OR r.production_map7 = r.shadow_map7 AS identical_versions_equal
  FROM recsys.shadow_report('sh_model') r JOIN reference f USING (shadow_version) ORDER BY 1;
SELECT recsys.average_precision_at_7('{a,b,c}', '{}') AS nothing_added,
       recsys.average_precision_at_7('{a,b,c}', '{b}') AS second,
       recsys.average_precision_at_7('{a,b,c}', '{a,c,x}') AS first_and_third;

-- Hand-checkable figures: model sh_hand over three customers A, B, C, April and May, no product
-- held in April but ind_ctop_fin_ult1 by A. In May A adds ind_cco_fin_ult1 and ind_recibo_ult1
-- (ind_ctop_fin_ult1 still held: not an add), B adds nothing, C has no May snapshot.
CREATE TABLE sh.hand AS
SELECT s.* FROM sh.snapshots s, id_list WHERE s.ncodpers = ANY (ids[1:3]) AND s.fecha_dato = '2015-04-28';
SELECT format('UPDATE sh.hand SET %s', string_agg(format('%I = 0', p), ', '))
  FROM recsys.models m, jsonb_array_elements_text(m.feature_spec -> 'products') p
 WHERE m.name = 'sh_model' AND m.version = 1 \gexec
UPDATE sh.hand SET ind_ctop_fin_ult1 = 1 WHERE ncodpers = (SELECT ids[1] FROM id_list);
SET client_min_messages = warning;
SELECT recsys.register_model('sh_hand', recsys.untrained_model('sh.hand', window_months => 1, hidden => 2));
SELECT recsys.promote('sh_hand', 1, force => true, reason => 'test fixture');
RESET client_min_messages;
-- Logged calls, in this order (shadow version 2 need not exist for the report): A, A again,
-- B, C; overlap@7 and top-1 agreement of each: 1 and 1, 2/3 and 0, 1 and 1, 0 and 0.
INSERT INTO recsys.shadow_log (name, customer_id, month, production_version, production_products, production_scores,
                               shadow_version, shadow_products, shadow_scores)
SELECT 'sh_hand', ids[c], '2015-04-01', 1, p, array_fill(0.5::real, ARRAY[cardinality(p)]), 2, s,
       array_fill(0.5::real, ARRAY[cardinality(s)])
  FROM id_list, (VALUES (1, 1, '{ind_deco_fin_ult1}'::text[], '{ind_deco_fin_ult1}'::text[]),
                        (2, 1, '{ind_cco_fin_ult1,ind_deco_fin_ult1,ind_recibo_ult1}', '{ind_recibo_ult1,ind_cco_fin_ult1}'),
                        (3, 2, '{ind_cco_fin_ult1,ind_deco_fin_ult1}', '{ind_cco_fin_ult1,ind_deco_fin_ult1}'),
                        (4, 3, '{ind_cco_fin_ult1}', '{ind_recibo_ult1}')) AS v(n, c, p, s)
 ORDER BY n;
SELECT production_version, shadow_version, month, calls, customers, round(overlap_at_7::numeric, 6) AS overlap_at_7,
       top1_agreement, realized_customers, production_map7, shadow_map7
  FROM recsys.shadow_report('sh_hand');
CREATE TEMP TABLE may AS SELECT h.* FROM sh.hand h, id_list WHERE h.ncodpers = ANY (ids[1:2]);
UPDATE may SET fecha_dato = '2015-05-28';
UPDATE may SET ind_cco_fin_ult1 = 1, ind_recibo_ult1 = 1 WHERE ncodpers = (SELECT ids[1] FROM id_list);
INSERT INTO sh.hand SELECT * FROM may;
-- A's latest call: production AP = (1/1 + 2/3) / 2 = 5/6, shadow AP = (1/1 + 2/2) / 2 = 1;
-- B and C count 0: production MAP@7 = 5/18 = 0.277778, shadow 1/3.
SELECT production_version, shadow_version, month, calls, customers, realized_customers,
       round(production_map7::numeric, 6) AS production_map7, round(shadow_map7::numeric, 6) AS shadow_map7
  FROM recsys.shadow_report('sh_hand');

-- Who may do what.
CREATE ROLE shadow_ops;
GRANT recsys_admin TO shadow_ops;
GRANT USAGE ON SCHEMA sh TO shadow_ops;
GRANT SELECT (ncodpers) ON sh.snapshots TO shadow_ops;
SET ROLE shadow_ops;
SELECT recsys.set_shadow('sh_model', 2, 0.1);
SELECT count(*) AS admin_reads_log FROM recsys.shadow_log;
-- The report reads the source with the caller's rights.
\set VERBOSITY terse
SELECT count(*) FROM recsys.shadow_report('sh_model');
\set VERBOSITY default
RESET ROLE;
GRANT SELECT ON sh.snapshots TO shadow_ops;
SET ROLE shadow_ops;
SELECT recsys.set_shadow('sh_model', 2, 0.1);
SELECT count(*) AS report_rows FROM recsys.shadow_report('sh_model');
SELECT recsys.set_shadow('sh_model', NULL);
RESET ROLE;

-- Bad arguments.
SELECT recsys.set_shadow(NULL, 2);
SELECT recsys.set_shadow('no_such_model', 2);
SELECT recsys.set_shadow('sh_model', 99);
SELECT recsys.set_shadow('sh_model', 1);
SELECT recsys.set_shadow('sh_model', 2, 0);
SELECT recsys.set_shadow('sh_model', 2, 1.5);
SELECT recsys.set_shadow('sh_model', 2, 'NaN');
SELECT recsys.set_shadow('sh_model', 2, NULL);
SELECT * FROM recsys.shadow_report(NULL);
SELECT * FROM recsys.shadow_report('no_such_model');

SET client_min_messages = warning;
DROP OWNED BY shadow_app, shadow_ops;
DROP ROLE shadow_app, shadow_ops;
DROP SCHEMA sh CASCADE;
DELETE FROM recsys.models WHERE name IN ('sh_model', 'sh_hand');
DELETE FROM recsys.model_events WHERE name IN ('sh_model', 'sh_hand');
DELETE FROM recsys.shadow_log WHERE name IN ('sh_model', 'sh_hand');
