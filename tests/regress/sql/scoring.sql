-- Scoring: recommend(), its row form, the raw scores, batches, score_all, materialization.
SET client_min_messages = warning;
CREATE SCHEMA sc;
CREATE TABLE sc.snapshots AS SELECT * FROM recsys.generate_santander(300, months => 8);
ALTER TABLE sc.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
SELECT recsys.register_model('sc_model', recsys.untrained_model('sc.snapshots', window_months => 6, hidden => 16, seed => 11));
SELECT recsys.register_model('sc_model', recsys.untrained_model('sc.snapshots', window_months => 6, hidden => 16, seed => 12));
SELECT recsys.promote('sc_model', 1, force => true, reason => 'test fixture');
RESET client_min_messages;
-- No JIT: the scoring functions' row estimates (ROWS 1000000) would make the small queries
-- below compile for longer than they run.
SET jit = off;

-- Seven products by default, never one the customer holds in the latest month.
SELECT cardinality(recsys.recommend(15889, model => 'sc_model')) AS k_default,
       cardinality(recsys.recommend(15889, 3, 'sc_model')) AS k_3;
-- Each customer's products held and not held in the latest month, read from the table for all
-- 24 product columns; k => 24 lists exactly the products not held, each once.
CREATE TEMP TABLE sc_held AS
SELECT l.ncodpers AS id,
       ARRAY(SELECT p FROM jsonb_array_elements_text(m.feature_spec -> 'products') p WHERE (l.j ->> p)::int = 1 ORDER BY p) AS held,
       ARRAY(SELECT p FROM jsonb_array_elements_text(m.feature_spec -> 'products') p WHERE (l.j ->> p)::int = 0 ORDER BY p) AS not_held
  FROM (SELECT DISTINCT ON (ncodpers) ncodpers, to_jsonb(s) AS j FROM sc.snapshots s ORDER BY ncodpers, fecha_dato DESC) l,
       recsys.models m
 WHERE m.name = 'sc_model' AND m.version = 1;
SELECT count(*) AS customers, count(*) FILTER (WHERE cardinality(held) > 0) > 0 AS some_hold_products,
       bool_and(ARRAY(SELECT unnest(recsys.recommend(id, 24, 'sc_model')) ORDER BY 1) = not_held) AS all_but_the_held
  FROM sc_held;

-- The ranked rows agree with the array and with the raw scores.
SELECT rank, product FROM recsys.recommend_scores(15890, 3, 'sc_model') ORDER BY rank;
SELECT array_agg(product ORDER BY rank) = recsys.recommend(15890, 5, 'sc_model') AS rows_match_array
  FROM recsys.recommend_scores(15890, 5, 'sc_model');
SELECT bool_and(abs(r.score - s.scores[array_position(m.products, r.product)]) < 1e-7) AS scores_match
  FROM recsys.recommend_scores(15890, 7, 'sc_model') r,
       (SELECT recsys.score_customer(15890, 'sc_model') AS scores) s,
       (SELECT ARRAY(SELECT jsonb_array_elements_text(feature_spec->'products')) AS products
          FROM recsys.models WHERE name = 'sc_model' AND version = 1) m;
SELECT bool_and(a.score >= b.score) AS descending
  FROM recsys.recommend_scores(15890, 7, 'sc_model') a
  JOIN recsys.recommend_scores(15890, 7, 'sc_model') b ON b.rank = a.rank + 1;
SELECT cardinality(recsys.score_customer(15890, 'sc_model')) AS all_products;

-- Pinning a version per call.
SELECT recsys.score_customer(15890, 'sc_model', 2) <> recsys.score_customer(15890, 'sc_model') AS v2_differs,
       recsys.score_customer(15890, 'sc_model', 1) = recsys.score_customer(15890, 'sc_model') AS v1_is_production;

-- A model whose output is known without running it: sc_model's bytes with the dense layer's
-- weights set to 0 and its bias to b = (p - 12) / 4 for the p-th product (from 0), checksum
-- recomputed (docs/model-format.md: the P x (H + S) dense weights and the P biases, floats in
-- little-endian order, come right before the SHA-256 of all earlier bytes). Every customer's
-- score for product p is then sigmoid(b), whatever the history, and the ranking is by p, highest
-- first, among the products not held: single-customer, row and batch scoring checked against that.
CREATE TEMP TABLE known AS
SELECT p.product, (p.n - 1)::int AS idx, ((p.n - 13) / 4.0)::real AS bias
  FROM recsys.models m, jsonb_array_elements_text(m.feature_spec -> 'products') WITH ORDINALITY p(product, n)
 WHERE m.name = 'sc_model' AND m.version = 1;
SELECT recsys.register_model('sc_known', body || sha256(body)) AS version
  FROM (SELECT substring(m.model FROM 1 FOR length(m.model) - 32 - 4 * d.p * (1 + d.h + d.s))
               || decode(repeat('00', 4 * d.p * (d.h + d.s)), 'hex')
               || (SELECT string_agg(substring(float4send(bias) FROM 4 FOR 1) || substring(float4send(bias) FROM 3 FOR 1) ||
                                     substring(float4send(bias) FROM 2 FOR 1) || substring(float4send(bias) FROM 1 FOR 1),
                                     ''::bytea ORDER BY idx) FROM known) AS body
          FROM recsys.models m,
               LATERAL (SELECT jsonb_array_length(m.feature_spec -> 'products') AS p, (m.feature_spec ->> 'hidden')::int AS h,
                               (m.feature_spec ->> 'static_width')::int AS s) d
         WHERE m.name = 'sc_model' AND m.version = 1) x;
SELECT count(*) AS customers,
       max((SELECT max(abs(s.score - 1 / (1 + exp(-k.bias::float8))))
              FROM unnest(recsys.score_customer(h.id, 'sc_known', 1)) WITH ORDINALITY s(score, n)
              JOIN known k ON k.idx = s.n - 1)) < 1e-6 AS scores_are_sigmoid_of_bias,
       bool_and(recsys.recommend(h.id, 24, 'sc_known', 1) =
                ARRAY(SELECT k.product FROM known k WHERE k.product <> ALL (h.held) ORDER BY k.bias DESC)) AS ranked_by_bias,
       bool_and((SELECT bool_and(r.product = k.product AND abs(r.score - 1 / (1 + exp(-k.bias::float8))) < 1e-6)
                   FROM recsys.recommend_scores(h.id, 3, 'sc_known', 1) r
                   JOIN (SELECT k.product, k.bias, row_number() OVER (ORDER BY k.bias DESC) AS rank
                           FROM known k WHERE k.product <> ALL (h.held)) k USING (rank))) AS rows_agree
  FROM sc_held h;
SELECT count(*) AS customers,
       bool_and(a.products = ARRAY(SELECT k.product FROM known k WHERE k.product <> ALL (h.held) ORDER BY k.bias DESC LIMIT 5))
           AS batch_ranked_by_bias,
       max((SELECT max(abs(x.score - 1 / (1 + exp(-k.bias::float8)))) FROM unnest(a.products, a.scores) x(product, score)
              JOIN known k USING (product))) < 1e-6 AS batch_scores_are_sigmoid_of_bias
  FROM recsys.score_all('sc_known', 5, 1) a JOIN sc_held h ON h.id = a.customer_id;

-- NULL arguments give NULL (no rows for the set-returning forms), like a strict function.
SELECT recsys.recommend(NULL, model => 'sc_model') IS NULL AS null_id,
       recsys.recommend(15889, NULL, 'sc_model') IS NULL AS null_k,
       recsys.recommend(15889, 7, NULL) IS NULL AS null_model,
       recsys.score_customer(NULL, 'sc_model') IS NULL AS null_score;
SELECT count(*) AS null_rows FROM recsys.recommend_scores(NULL, 7, 'sc_model');
-- One NULL id in a BI query does not abort it.
SELECT count(*) AS rows, count(r) AS scored
  FROM (VALUES (15889::bigint), (NULL), (15890)) v(id), LATERAL (SELECT recsys.recommend(v.id, model => 'sc_model') r) x;

-- Customers with fewer months than the window are scored from the months they have.
SELECT count(*) FILTER (WHERE months < 6) > 0 AS some_short_histories,
       bool_and(cardinality(recsys.recommend(ncodpers, 7, 'sc_model')) > 0) AS all_scored
  FROM (SELECT ncodpers, count(*) AS months FROM sc.snapshots GROUP BY ncodpers) c;

-- Batches give what one-at-a-time scoring gives (GEMM and GEMV may sum in another order: 1e-6).
SELECT count(*) AS customers,
       bool_and(m.products = recsys.recommend(m.customer_id, 5, 'sc_model')) AS same_products,
       max(abs(m.scores[1] - (SELECT score FROM recsys.recommend_scores(m.customer_id, 1, 'sc_model')))) < 1e-6 AS same_scores
  FROM recsys.recommend_many(ARRAY(SELECT DISTINCT ncodpers FROM sc.snapshots ORDER BY 1 LIMIT 50), 5, 'sc_model') m;
SELECT count(*) AS deduplicated FROM recsys.recommend_many(ARRAY[15889, 15889, NULL, 15890]::bigint[], 3, 'sc_model');
SELECT count(*) AS empty FROM recsys.recommend_many(ARRAY[]::bigint[], 3, 'sc_model');

-- Small batches and small fetches must not change the result (customers span fetch boundaries);
-- BLAS may sum in another order for another batch size, hence the 1e-6.
SET recsys.batch_size = 7;
SET recsys.fetch_rows = 100;
CREATE TEMP TABLE small_batches AS SELECT * FROM recsys.score_all('sc_model', 7);
RESET recsys.batch_size;
RESET recsys.fetch_rows;
CREATE TEMP TABLE large_batches AS SELECT * FROM recsys.score_all('sc_model', 7);
SELECT count(*) AS customers, count(DISTINCT customer_id) AS distinct_customers,
       bool_and(s.products = l.products) AS same_products,
       max((SELECT max(abs(a - b)) FROM unnest(s.scores, l.scores) u(a, b))) < 1e-6 AS same_scores,
       bool_and(s.model_name = 'sc_model' AND s.model_version = 1) AS labelled
  FROM small_batches s JOIN large_batches l USING (customer_id);
SELECT count(*) = (SELECT count(DISTINCT ncodpers) FROM sc.snapshots) AS every_customer FROM large_batches;
SELECT bool_and(l.products = recsys.recommend(l.customer_id, 7, 'sc_model')) AS matches_online
  FROM large_batches l WHERE l.customer_id % 10 = 0;

-- as_of: scoring as of an earlier month gives what scoring the table cut to the months up to
-- it gives (same customers, products and scores), and differs from scoring today.
CREATE TEMP TABLE as_of_march AS SELECT * FROM recsys.score_all('sc_model', 7, as_of => '2015-03-28');
BEGIN;
DELETE FROM sc.snapshots WHERE fecha_dato > '2015-03-28';
SELECT count(*) AS customers_then, count(*) FILTER (WHERE a.customer_id IS NULL OR t.customer_id IS NULL) AS unmatched,
       bool_and(a.products = t.products) AS same_products,
       max((SELECT max(abs(x - y)) FROM unnest(a.scores, t.scores) u(x, y))) < 1e-6 AS same_scores
  FROM as_of_march a FULL JOIN recsys.score_all('sc_model', 7) t USING (customer_id);
ROLLBACK;
SELECT count(*) FILTER (WHERE a.products <> l.products) > 0 AS differs_from_today
  FROM as_of_march a JOIN large_batches l USING (customer_id);

-- Shards partition the customers, so that connections can score them in parallel.
SELECT count(*) AS customers, count(DISTINCT customer_id) AS distinct_customers
  FROM (SELECT * FROM recsys.score_all('sc_model', 3, shard => 0, shards => 3)
        UNION ALL SELECT * FROM recsys.score_all('sc_model', 3, shard => 1, shards => 3)
        UNION ALL SELECT * FROM recsys.score_all('sc_model', 3, shard => 2, shards => 3)) s;
SELECT count(*) FROM recsys.score_all('sc_model', 3, shard => 3, shards => 3);

-- Pinned version in batch.
SELECT DISTINCT model_version FROM recsys.score_all('sc_model', 3, version => 2);

-- Materialization: the recommendations table and a materialized view.
SELECT recsys.refresh_recommendations('sc_model', 5) = (SELECT count(DISTINCT ncodpers) FROM sc.snapshots) AS refreshed;
SELECT count(*) AS rows, bool_and(cardinality(products) = 5) AS five_each, min(model_version) AS version
  FROM recsys.recommendations WHERE model_name = 'sc_model';
CREATE MATERIALIZED VIEW sc.next_products AS
SELECT customer_id, model_version, products, scores FROM recsys.score_all('sc_model', 7);
CREATE UNIQUE INDEX ON sc.next_products (customer_id);
SELECT count(*) AS materialized, min(model_version) AS version FROM sc.next_products;
SELECT recsys.promote('sc_model', 2, force => true, reason => 'test fixture');
REFRESH MATERIALIZED VIEW CONCURRENTLY sc.next_products;
SELECT count(*) AS refreshed_concurrently, min(model_version) AS version FROM sc.next_products;
REFRESH MATERIALIZED VIEW sc.next_products;
SELECT count(*) AS refreshed, min(model_version) AS version FROM sc.next_products;

-- A customer who already holds every product gets an empty list, not an error or a held product.
BEGIN;
UPDATE sc.snapshots SET ind_ahor_fin_ult1 = 1, ind_aval_fin_ult1 = 1, ind_cco_fin_ult1 = 1, ind_cder_fin_ult1 = 1,
       ind_cno_fin_ult1 = 1, ind_ctju_fin_ult1 = 1, ind_ctma_fin_ult1 = 1, ind_ctop_fin_ult1 = 1, ind_ctpp_fin_ult1 = 1,
       ind_deco_fin_ult1 = 1, ind_deme_fin_ult1 = 1, ind_dela_fin_ult1 = 1, ind_ecue_fin_ult1 = 1, ind_fond_fin_ult1 = 1,
       ind_hip_fin_ult1 = 1, ind_plan_fin_ult1 = 1, ind_pres_fin_ult1 = 1, ind_reca_fin_ult1 = 1, ind_tjcr_fin_ult1 = 1,
       ind_valo_fin_ult1 = 1, ind_viv_fin_ult1 = 1, ind_nomina_ult1 = 1, ind_nom_pens_ult1 = 1, ind_recibo_ult1 = 1
 WHERE ncodpers = 15889;
SELECT recsys.recommend(15889, model => 'sc_model') AS holds_everything,
       (SELECT count(*) FROM recsys.recommend_scores(15889, 7, 'sc_model')) AS rows;
SELECT products, scores, scores = '{}'::real[] AS empty_scores FROM recsys.score_all('sc_model') WHERE customer_id = 15889;
ROLLBACK;

-- Function markings a planner and a DBA rely on.
SELECT p.proname, p.provolatile, p.proparallel, p.proisstrict
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'recsys' AND p.proname IN ('recommend', 'recommend_scores', 'score_customer', 'recommend_many', 'score_all')
 ORDER BY 1;
