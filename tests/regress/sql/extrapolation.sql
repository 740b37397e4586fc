-- A from-start model kept in production past its window: every batch path (recommend_many,
-- score_all alone and with a parallel worker, refresh_recommendations, full_states and
-- rebuild_states, advance_month, advance_customer) scores customers with more months since
-- the start month than the window, and gives what the online functions give (within 1e-5),
-- and what the same weights give in a model whose window holds the whole history.
SET client_min_messages = warning;
CREATE SCHEMA ext;
-- 2100 customers: enough ids for score_all to start a parallel worker (parallel_scoring.sql).
CREATE TABLE ext.all_months AS SELECT * FROM recsys.generate_santander(2100, months => 10);
CREATE TABLE ext.snapshots AS SELECT * FROM ext.all_months WHERE fecha_dato < '2015-07-01';
ALTER TABLE ext.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
-- Window 6 from January 2015: June is the window's last month. ext_long has the same weights
-- (same seed) and a window of 12, which holds every month of the data.
SELECT recsys.register_model('ext_model', recsys.untrained_model('ext.snapshots', window_months => 6, hidden => 8,
                             seed => 1, start_month => '2015-01-28'));
SELECT recsys.promote('ext_model', 1, force => true, reason => 'test fixture');
SELECT recsys.register_model('ext_long', recsys.untrained_model('ext.snapshots', window_months => 12, hidden => 8,
                             seed => 1, start_month => '2015-01-28'));
SELECT recsys.promote('ext_long', 1, force => true, reason => 'test fixture');
-- Too large for the smallest batch budget (below).
SELECT recsys.register_model('ext_big', recsys.untrained_model('ext.snapshots', window_months => 6, hidden => 512,
                             seed => 1, start_month => '2015-01-28'));
SELECT recsys.promote('ext_big', 1, force => true, reason => 'test fixture');
RESET client_min_messages;
SET jit = off;

-- January to June (the window): every state from scratch. Every month is advanced with k 24:
-- recsys.recommendations then holds every product not held, to compare scores below.
SELECT recsys.advance_month('ext_model', '2015-06-28', 24) = (SELECT count(DISTINCT ncodpers) FROM ext.snapshots) AS all_customers;
-- July for two thirds of the customers, August and September for one third: histories of
-- W, W + 1 and W + 3 months. Each month advances the stored states past the window.
INSERT INTO ext.snapshots SELECT * FROM ext.all_months WHERE fecha_dato = '2015-07-28' AND ncodpers % 3 <> 0;
SELECT recsys.advance_month('ext_model', '2015-07-28', 24) AS advanced_july;
INSERT INTO ext.snapshots SELECT * FROM ext.all_months WHERE fecha_dato IN ('2015-08-28', '2015-09-28') AND ncodpers % 3 = 2;
SELECT recsys.advance_month('ext_model', '2015-08-28', 24) AS advanced_august;
SELECT recsys.advance_month('ext_model', '2015-09-28', 24) AS advanced_september;
-- Months from the start month to each customer's latest snapshot (the generator's customers
-- also join late and leave early).
CREATE TEMP TABLE history_length AS
SELECT ncodpers AS customer_id,
       (extract(year FROM max(fecha_dato)) * 12 + extract(month FROM max(fecha_dato)) - (2015 * 12 + 1) + 1)::int AS months
  FROM ext.snapshots GROUP BY ncodpers;
SELECT months, count(*) AS customers FROM history_length GROUP BY months ORDER BY months;

-- The online functions' scores of every product not held, by ext_model and by ext_long.
CREATE TEMP TABLE online AS
SELECT h.customer_id, r.product, r.score FROM history_length h, recsys.recommend_scores(h.customer_id, 24, 'ext_model') r;
CREATE TEMP TABLE long_window AS
SELECT h.customer_id, r.product, r.score FROM history_length h, recsys.recommend_scores(h.customer_id, 24, 'ext_long') r;
CREATE TEMP TABLE online_count AS SELECT customer_id, count(*) AS products FROM online GROUP BY customer_id;
-- Online past the window equals the long window (online_state.sql): the reference holds.
SELECT count(*) AS scores, bool_and(o.score IS NOT NULL AND l.score IS NOT NULL) AS same_products,
       max(abs(o.score - l.score)) < 1e-5 AS online_same_as_long_window
  FROM online o FULL JOIN long_window l USING (customer_id, product);

-- Each batch path's rankings of every product not held (k 24).
CREATE TEMP TABLE batch (path text, customer_id bigint, products text[], scores real[]);
INSERT INTO batch SELECT 'advance_month', customer_id, products, scores FROM recsys.recommendations WHERE model_name = 'ext_model';
-- The states advance_month stored equal full_states, which runs every history in parts.
CREATE TEMP TABLE full_now AS SELECT * FROM recsys.full_states('ext_model', 24);
SELECT count(*) AS customers, bool_and(s.state_month = f.state_month) AS same_months,
       max((SELECT max(abs(a - b)) FROM unnest(s.state, f.state) u(a, b))) < 1e-5 AS same_states,
       bool_and(s.products = f.products) AS same_products
  FROM recsys.customer_states s JOIN full_now f USING (customer_id) WHERE s.model_name = 'ext_model';
INSERT INTO batch SELECT 'full_states', customer_id, top_products, scores FROM full_now;
INSERT INTO batch SELECT 'recommend_many', customer_id, products, scores
  FROM recsys.recommend_many(ARRAY(SELECT customer_id FROM history_length), 24, 'ext_model');
SET recsys.parallel_workers = 0;
INSERT INTO batch SELECT 'score_all', customer_id, products, scores FROM recsys.score_all('ext_model', 24);
-- With a parallel worker beside this backend (no NOTICE: it started), and in the refresh.
SET recsys.parallel_workers = 1;
INSERT INTO batch SELECT 'score_all, parallel worker', customer_id, products, scores FROM recsys.score_all('ext_model', 24);
SELECT recsys.refresh_recommendations('ext_model', 24) = (SELECT count(*) FROM history_length) AS refreshed;
INSERT INTO batch SELECT 'refresh_recommendations', customer_id, products, scores
  FROM recsys.recommendations WHERE model_name = 'ext_model';
RESET recsys.parallel_workers;
SELECT recsys.rebuild_states('ext_model', 24) = (SELECT count(*) FROM history_length) AS rebuilt;
INSERT INTO batch SELECT 'rebuild_states', customer_id, products, scores
  FROM recsys.recommendations WHERE model_name = 'ext_model';
-- The smallest recsys.max_batch_memory: the batch buffers stay the window's size past it,
-- so the plan (in the DEBUG line) is what it was within the window: batches of a few
-- customers, a part of at most 6 months at a time; only the snapshot rows grow with the
-- history, and the stream that reads them counts rows (history_stream.h).
SET recsys.parallel_workers = 0;
SET recsys.max_batch_memory = '64kB';
SET client_min_messages = debug1;
INSERT INTO batch SELECT 'score_all, small batches', customer_id, products, scores FROM recsys.score_all('ext_model', 24);
RESET client_min_messages;
RESET recsys.max_batch_memory;
RESET recsys.parallel_workers;

-- Every path, every history length: every customer, the same products as online, and the
-- online scores and the long window's within 1e-5.
SELECT b.path, h.months, count(DISTINCT b.customer_id) AS customers,
       bool_and(cardinality(b.products) = c.products) AS same_count,
       bool_and(o.score IS NOT NULL) AS same_products,
       max(abs(u.score - o.score)) < 1e-5 AS same_as_online,
       max(abs(u.score - l.score)) < 1e-5 AS same_as_long_window
  FROM batch b JOIN history_length h USING (customer_id) JOIN online_count c USING (customer_id)
 CROSS JOIN LATERAL unnest(b.products, b.scores) u(product, score)
  LEFT JOIN online o ON o.customer_id = b.customer_id AND o.product = u.product
  LEFT JOIN long_window l ON l.customer_id = b.customer_id AND l.product = u.product
 WHERE h.months >= 6
 GROUP BY b.path, h.months ORDER BY b.path, h.months;
SELECT count(*) AS path_rows, count(DISTINCT (path, customer_id)) AS distinct_rows FROM batch;

-- October for a few customers, one at a time as a trigger would: W + 4 months, from the
-- stored state of September (one step), or without a stored state (one whose state is
-- deleted, and one who joins in October): the whole history, ten steps.
INSERT INTO ext.snapshots SELECT * FROM ext.all_months
 WHERE fecha_dato = '2015-10-28' AND ncodpers % 3 = 2 AND ncodpers % 50 IN (0, 1);
SELECT min(ncodpers) AS stateless FROM ext.snapshots WHERE fecha_dato = '2015-10-28' \gset
DELETE FROM recsys.customer_states WHERE model_name = 'ext_model' AND customer_id = :stateless;
CREATE TEMP TABLE october AS
SELECT ncodpers AS customer_id, recsys.advance_customer('ext_model', ncodpers, 24) AS products
  FROM ext.snapshots WHERE fecha_dato = '2015-10-28';
SELECT count(*) AS customers,
       bool_and(s.state_month = '2015-10-28') AS states_in_october,
       bool_and(r.products = o.products) AS stored_as_returned,
       max((SELECT max(abs(x.score - l.score))
              FROM unnest(r.products, r.scores) x(product, score)
              JOIN recsys.recommend_scores(o.customer_id, 24, 'ext_long') l USING (product))) < 1e-5 AS same_as_long_window
  FROM october o
  JOIN recsys.customer_states s ON s.model_name = 'ext_model' AND s.customer_id = o.customer_id
  JOIN recsys.recommendations r ON r.model_name = 'ext_model' AND r.customer_id = o.customer_id;

-- A budget too small for one customer is refused as before, naming the figures.
SET recsys.max_batch_memory = '64kB';
SELECT count(*) FROM recsys.score_all('ext_big');
RESET recsys.max_batch_memory;
-- A month before the start month is still outside the model's history.
SELECT count(*) FROM recsys.advanced_states('ext_model', '2014-12-28');
