-- Incremental scoring: a new month advances stored LSTM states by one step and gives what a
-- full recompute over the whole history gives (within 1e-5).
SET client_min_messages = warning;
CREATE SCHEMA inc;
CREATE TABLE inc.snapshots AS
SELECT * FROM recsys.generate_santander(400, months => 8) WHERE fecha_dato < '2015-07-01';
ALTER TABLE inc.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
SELECT recsys.register_model('inc_model', recsys.untrained_model('inc.snapshots', window_months => 12, hidden => 16,
                             seed => s, start_month => '2015-01-28'))
  FROM generate_series(1, 2) s;
SELECT recsys.promote('inc_model', 1, force => true, reason => 'test fixture');
SELECT recsys.register_model('inc_sliding', recsys.untrained_model('inc.snapshots', window_months => 4, hidden => 4));
SELECT recsys.promote('inc_sliding', 1, force => true, reason => 'test fixture');
RESET client_min_messages;

SELECT feature_spec -> 'history' AS history FROM recsys.models WHERE name = 'inc_model' AND version = 1;

-- Six months loaded: the first run computes every state from scratch.
SELECT recsys.advance_month('inc_model', '2015-06-28') = (SELECT count(DISTINCT ncodpers) FROM inc.snapshots) AS all_customers;
SELECT count(*) AS states, min(state_month) < max(state_month) AS some_left_early, max(state_month) AS latest,
       min(cardinality(state)) AS state_floats
  FROM recsys.customer_states WHERE model_name = 'inc_model';
-- Online scoring of a from-start model agrees with the stored recommendations.
SELECT bool_and(r.products = recsys.recommend(r.customer_id, 7, 'inc_model')) AS online_matches
  FROM recsys.recommendations r WHERE r.model_name = 'inc_model' AND r.customer_id % 20 = 0;

-- July lands: one step per customer.
INSERT INTO inc.snapshots SELECT * FROM recsys.generate_santander(400, months => 8) WHERE fecha_dato = '2015-07-28';
SELECT recsys.advance_month('inc_model', '2015-07-28') = (SELECT count(*) FROM inc.snapshots WHERE fecha_dato = '2015-07-28') AS advanced;
CREATE TEMP TABLE full_july AS SELECT * FROM recsys.full_states('inc_model', 7);
SELECT count(*) AS customers,
       bool_and(s.state_month = f.state_month) AS same_months,
       max((SELECT max(abs(a - b)) FROM unnest(s.state, f.state) u(a, b))) < 1e-5 AS same_states,
       bool_and(s.products = f.products) AS same_products
  FROM recsys.customer_states s JOIN full_july f USING (customer_id) WHERE s.model_name = 'inc_model';
SELECT bool_and(r.products = f.top_products) AS same_recommendations,
       max((SELECT max(abs(a - b)) FROM unnest(r.scores, f.scores) u(a, b))) < 1e-5 AS same_scores
  FROM recsys.recommendations r JOIN full_july f USING (customer_id) WHERE r.model_name = 'inc_model';

-- A month is advanced once.
SELECT recsys.advance_month('inc_model', '2015-07-28');

-- August for a few customers through a row trigger, one customer at a time.
CREATE TRIGGER advance AFTER INSERT ON inc.snapshots FOR EACH ROW EXECUTE FUNCTION recsys.advance_on_snapshot('inc_model');
INSERT INTO inc.snapshots
SELECT * FROM recsys.generate_santander(400, months => 8) WHERE fecha_dato = '2015-08-28' AND ncodpers % 50 = 0;
DROP TRIGGER advance ON inc.snapshots;
CREATE TEMP TABLE full_august AS SELECT * FROM recsys.full_states('inc_model', 7);
SELECT count(*) AS customers_in_august,
       bool_and(s.state_month = '2015-08-28') AS states_in_august,
       max((SELECT max(abs(a - b)) FROM unnest(s.state, f.state) u(a, b))) < 1e-5 AS same_states,
       bool_and(r.products = f.top_products) AS same_recommendations
  FROM recsys.customer_states s JOIN full_august f USING (customer_id)
  JOIN recsys.recommendations r ON r.model_name = s.model_name AND r.customer_id = s.customer_id
 WHERE s.model_name = 'inc_model' AND f.state_month = '2015-08-28';
SELECT recsys.advance_customer('inc_model', 15889 + 50) = (SELECT top_products FROM full_august WHERE customer_id = 15889 + 50) AS nothing_new_same_answer;

-- A promote clears the states of that model; the next advance recomputes them.
SELECT recsys.promote('inc_model', 2, force => true, reason => 'test fixture');
SELECT count(*) AS states_after_promote FROM recsys.customer_states WHERE model_name = 'inc_model';
SELECT recsys.advance_month('inc_model', '2015-08-28') = (SELECT count(DISTINCT ncodpers) FROM inc.snapshots) AS rebuilt_everyone;
SELECT DISTINCT model_version FROM recsys.customer_states WHERE model_name = 'inc_model';
SELECT DISTINCT model_version AS recommended_by FROM recsys.recommendations WHERE model_name = 'inc_model';

-- A customer with history but no state cannot be advanced silently.
INSERT INTO inc.snapshots SELECT * FROM recsys.generate_santander(400, months => 9) WHERE fecha_dato = '2015-09-28' AND ncodpers < 15889 + 10;
DELETE FROM recsys.customer_states WHERE model_name = 'inc_model' AND customer_id = 15889;
SELECT count(*) FROM recsys.advanced_states('inc_model', '2015-09-28');
-- Sliding-window models have no state to advance; a month before the start month is refused.
SELECT count(*) FROM recsys.full_states('inc_sliding');
SELECT count(*) FROM recsys.advanced_states('inc_model', '2014-12-28');
-- A month past the model's window is advanced like any other (extrapolation.sql); nobody has
-- a snapshot in this one.
SELECT count(*) FROM recsys.advanced_states('inc_model', '2016-02-28');
