-- Resource limits: recsys.max_batch_memory bounds the buffers of every batch call whatever
-- recsys.batch_size says (batches are sized by the customers scored and the budget), a call
-- that cannot fit one customer fails with 54000, only a superuser may raise the budget, and
-- statement_timeout stops a long score_all of a large model.
SET client_min_messages = warning;
SET jit = off;  -- DEBUG1 below shows recsys's batch plans, not JIT's messages
CREATE SCHEMA rl;
CREATE TABLE rl.snapshots AS SELECT * FROM recsys.generate_santander(300, months => 6);
ALTER TABLE rl.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
-- The format's longest window (240 months) with 512 hidden units, a narrow model with the same
-- window, and a from-start one.
SELECT recsys.register_model('rl_big', recsys.untrained_model('rl.snapshots', window_months => 240, hidden => 512, seed => 1));
SELECT recsys.promote('rl_big', 1, force => true, reason => 'test fixture');
SELECT recsys.register_model('rl_narrow', recsys.untrained_model('rl.snapshots', window_months => 240, hidden => 16, seed => 2));
SELECT recsys.promote('rl_narrow', 1, force => true, reason => 'test fixture');
SELECT recsys.register_model('rl_inc', recsys.untrained_model('rl.snapshots', window_months => 240, hidden => 16, seed => 3,
                                                              start_month => '2015-01-28'));
SELECT recsys.promote('rl_inc', 1, force => true, reason => 'test fixture');
CREATE TEMP TABLE narrow_default AS SELECT customer_id, products, scores FROM recsys.score_all('rl_narrow');
CREATE TEMP TABLE big_default AS
SELECT * FROM recsys.recommend_many(ARRAY[15889, 15890, 15891], model => 'rl_big');
RESET client_min_messages;

-- The budget: 256MB by default, in kB, superuser-only.
SELECT name, setting, unit, context, min_val FROM pg_settings WHERE name = 'recsys.max_batch_memory';

-- recommend_many sizes its batch by the ids it got: 3 customers of the 240-month model take
-- well under 1MB (DEBUG1 shows the plan), and give the same recommendations.
SET recsys.max_batch_memory = '1MB';
SET client_min_messages = debug1;
SELECT customer_id, m.products = d.products AS same_products
  FROM recsys.recommend_many(ARRAY[15889, 15890, 15891], model => 'rl_big') m JOIN big_default d USING (customer_id)
 ORDER BY customer_id;
RESET client_min_messages;

-- score_all with the largest batch_size a role may set stays within the budget: its batches
-- are lowered to what 1MB holds, and the results equal those of the default settings.
SET recsys.batch_size = 65536;
SET client_min_messages = debug1;
SELECT count(*) AS customers,
       bool_and(a.products = d.products) AS same_products,
       max((SELECT max(abs(x - y)) FROM unnest(a.scores, d.scores) u(x, y))) < 1e-6 AS same_scores
  FROM recsys.score_all('rl_narrow') a JOIN narrow_default d USING (customer_id);
RESET client_min_messages;
-- The other batch calls too.
SELECT count(*) AS states FROM recsys.full_states('rl_inc', 7);
-- rebuild_states' writer keeps its batch of rows to write within a quarter of the budget, and
-- the scorer's batch is planned beside it.
SET client_min_messages = debug1;
SELECT recsys.rebuild_states('rl_inc') AS rebuilt;
RESET client_min_messages;
DELETE FROM recsys.recommendations WHERE model_name = 'rl_inc';
DELETE FROM recsys.customer_states WHERE model_name = 'rl_inc';
SELECT method, customers > 0 AS scored FROM recsys.evaluate('rl_narrow', 1) ORDER BY method;

-- When one customer's buffers do not fit, the call fails with 54000, saying how many bytes a
-- customer needs, the budget, and the setting to change.
\set VERBOSITY verbose
SET recsys.max_batch_memory = '192kB';
SELECT count(*) FROM recsys.recommend_many(ARRAY[15889, 15890, 15891], model => 'rl_big');
SELECT count(*) FROM recsys.score_all('rl_big');
-- train() checks its own batch_size (it is not lowered: it changes what is learned).
SET recsys.max_batch_memory = '4MB';
SELECT recsys.train('rl_trained', 'rl.snapshots', train_months => 2, window_months => 240, hidden => 64,
                    batch_size => 256);
\set VERBOSITY default
-- The single-customer path keeps its per-model buffers (a few hundred kB for this model).
SET recsys.max_batch_memory = '192kB';
SELECT cardinality(recsys.recommend(15889, model => 'rl_big')) AS recommended;

-- Only a superuser may change the budget: a scoring role may raise recsys.batch_size, not
-- recsys.max_batch_memory, and its calls stay within the budget a superuser set.
SET recsys.max_batch_memory = '1MB';
CREATE ROLE rl_scorer;
GRANT recsys_reader TO rl_scorer;
GRANT USAGE ON SCHEMA rl TO rl_scorer;
GRANT SELECT ON rl.snapshots TO rl_scorer;
SET ROLE rl_scorer;
SET recsys.max_batch_memory = '16GB';
RESET recsys.max_batch_memory;
SET recsys.batch_size = 65536;
SHOW recsys.max_batch_memory;
SET client_min_messages = debug1;
SELECT count(*) FROM recsys.recommend_many(ARRAY[15889, 15890, 15891], model => 'rl_big');
RESET client_min_messages;
RESET ROLE;

-- statement_timeout stops a long score_all (300 customers x 240 months x 512 hidden units,
-- seconds of work) within a GEMM piece, not at the end of a batch.
RESET recsys.max_batch_memory;
RESET recsys.batch_size;
SET statement_timeout = '200ms';
SELECT count(*) FROM recsys.score_all('rl_big');
RESET statement_timeout;
SELECT count(*) AS customers FROM recsys.recommend_many(ARRAY[15889], model => 'rl_big');

-- Building a model's weights is bounded too: the largest the format accepts is refused
-- before anything is allocated.
SELECT recsys.untrained_model('rl.snapshots', window_months => 2, hidden => 4096, layers => 8);

SET client_min_messages = warning;
DROP OWNED BY rl_scorer;
DROP ROLE rl_scorer;
DELETE FROM recsys.models WHERE name LIKE 'rl\_%';
DROP SCHEMA rl CASCADE;
RESET client_min_messages;
