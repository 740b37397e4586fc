-- recsys.train and recsys.evaluate on a small generated data set.
SET client_min_messages = warning;  -- per-epoch NOTICEs carry timings
CREATE SCHEMA train_test;
CREATE TABLE train_test.t AS SELECT * FROM recsys.generate_santander(3000);

-- Train: version 1, registered as a candidate with its description.
SELECT recsys.train('regress_lstm', 'train_test.t', train_months => 6, window_months => 6, hidden => 16,
                    epochs => 2, batch_size => 128, seed => 7) AS version;
SELECT name, version, status, description FROM recsys.models WHERE name = 'regress_lstm';

-- Metrics, hyper-parameters and training data are recorded.
SELECT ARRAY(SELECT jsonb_object_keys(metrics) ORDER BY 1) AS metric_keys
  FROM recsys.models WHERE name = 'regress_lstm' AND version = 1;
SELECT metrics ->> 'validation_month' AS validation_month,
       (metrics ->> 'map7')::float8 BETWEEN 0 AND 1 AS map7_in_range,
       (metrics ->> 'map7_adders')::float8 >= (metrics ->> 'map7')::float8 AS adders_map_at_least_map,
       (metrics ->> 'coverage')::float8 BETWEEN 0 AND 1 AS coverage_in_range,
       (metrics ->> 'epochs_run')::int BETWEEN 1 AND 2 AS epochs_run_ok,
       (metrics ->> 'train_loss')::float8 > 0 AS loss_positive
  FROM recsys.models WHERE name = 'regress_lstm' AND version = 1;
SELECT hyperparameters - 'learning_rate' - 'clip_norm' AS hyperparameters,
       round((hyperparameters ->> 'learning_rate')::numeric, 6) AS learning_rate
  FROM recsys.models WHERE name = 'regress_lstm' AND version = 1;
SELECT training_data ->> 'relation' AS relation, training_data -> 'train_months' AS train_months,
       training_data ->> 'validation_month' AS validation_month,
       (training_data ->> 'rows')::int > 0 AS rows_read, (training_data ->> 'customers')::int > 0 AS customers_read,
       (training_data ->> 'examples')::int > 0 AS examples_used,
       length(training_data ->> 'fingerprint') AS fingerprint_length
  FROM recsys.models WHERE name = 'regress_lstm' AND version = 1;

-- The same seed gives the same model, bit for bit.
SELECT recsys.train('regress_lstm', 'train_test.t', train_months => 6, window_months => 6, hidden => 16,
                    epochs => 2, batch_size => 128, seed => 7) AS version;
SELECT count(DISTINCT sha256) AS distinct_models, count(*) AS versions FROM recsys.models WHERE name = 'regress_lstm';
SELECT count(DISTINCT training_data ->> 'fingerprint') AS fingerprints FROM recsys.models WHERE name = 'regress_lstm';

-- The model scores customers like any registered model.
SELECT cardinality(recsys.recommend(15889 + 10, 7, 'regress_lstm', 1)) = 7 AS recommends_seven;

-- Evaluate: three methods on the same customers, stored in the model's metrics.
SELECT method, map7 BETWEEN 0 AND 1 AS map7_ok, map7_adders >= map7 AS adders_ok,
       precision7 BETWEEN 0 AND 1 AS precision_ok, recall7 BETWEEN 0 AND 1 AS recall_ok,
       coverage BETWEEN 0 AND 1 AS coverage_ok, customers > 1000 AS many_customers, adders > 0 AS some_adders
  FROM recsys.evaluate('regress_lstm', 1);
SELECT count(DISTINCT customers) AS same_customers, count(DISTINCT adders) AS same_adders
  FROM recsys.evaluate('regress_lstm', 1, '2016-04-28');
SELECT ARRAY(SELECT jsonb_object_keys(metrics -> 'evaluation') ORDER BY 1) AS evaluated_months,
       ARRAY(SELECT jsonb_object_keys(metrics -> 'evaluation' -> '2016-05') ORDER BY 1) AS methods
  FROM recsys.models WHERE name = 'regress_lstm' AND version = 1;
SELECT (e ->> 'map7')::float8 = (metrics ->> 'map7')::float8 AS evaluation_matches_validation
  FROM recsys.models, LATERAL (SELECT metrics -> 'evaluation' -> '2016-05' -> 'lstm') AS x(e)
 WHERE name = 'regress_lstm' AND version = 1;

-- The promotion gate: the first candidate goes to production; an untrained model of the
-- same shape is worse on the held-out month and is kept out; an identical model is not worse.
SELECT promoted, production_version, reason LIKE 'promoted: there was no production version' AS first
  FROM recsys.promote_if_better('regress_lstm', 1);
SELECT recsys.register_model('regress_lstm',
       recsys.untrained_model('train_test.t', window_months => 6, hidden => 16, seed => 3, until => '2016-04-28')) AS untrained;
SELECT promoted, production_version, candidate_map7 < production_map7 AS candidate_worse
  FROM recsys.promote_if_better('regress_lstm', 3);
SELECT promoted, production_version, candidate_map7 = production_map7 AS same_map7
  FROM recsys.promote_if_better('regress_lstm', 2);
SELECT version, status FROM recsys.models WHERE name = 'regress_lstm' ORDER BY version;

-- A model whose history runs from a start month trains too, and can then be scored
-- incrementally; its stored states match what recommend() computes from the history.
SELECT recsys.train('regress_from_start', 'train_test.t', train_months => 4, window_months => 17, hidden => 8,
                    epochs => 1, batch_size => 128, seed => 7, start_month => '2015-01-28') AS version;
SELECT feature_spec -> 'history' AS history, hyperparameters ->> 'start_month' AS start_month
  FROM recsys.models WHERE name = 'regress_from_start';
SELECT recsys.promote('regress_from_start', 1);
SELECT recsys.rebuild_states('regress_from_start') = (SELECT count(DISTINCT ncodpers) FROM train_test.t) AS states_built;
SELECT bool_and(r.products = recsys.recommend(r.customer_id, 7, 'regress_from_start')) AS online_matches_stored
  FROM recsys.recommendations r WHERE r.model_name = 'regress_from_start' AND r.customer_id % 100 = 0;
SELECT recsys.train('regress_bad', 'train_test.t', window_months => 8, start_month => '2015-01-28');

-- Bad inputs fail clearly, and nothing is registered.
\set VERBOSITY terse
SELECT recsys.train('regress_bad', 'train_test.t', epochs => 0);
SELECT recsys.train('regress_bad', 'train_test.no_such_table');
SELECT recsys.train('regress_bad', 'train_test.t', validation_month => '2019-01-28');
SELECT recsys.train('regress_bad', 'train_test.t', train_months => 16);
SELECT recsys.train('regress_bad', 'train_test.t', batch_size => 0);
SELECT * FROM recsys.evaluate('no_such_model');
SELECT * FROM recsys.evaluate('regress_lstm', 1, '2015-01-28');
-- A statement_timeout stops a long training promptly, and nothing is registered.
SET statement_timeout = '300ms';
SELECT recsys.train('regress_bad', 'train_test.t', train_months => 6, window_months => 6, hidden => 16, epochs => 1000);
RESET statement_timeout;
SELECT count(*) AS bad_models FROM recsys.models WHERE name = 'regress_bad';
\set VERBOSITY default

-- Privileges: training, evaluating and recording are not for PUBLIC; the progress view is.
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute, p.prosecdef AS security_definer
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'recsys' AND p.proname IN ('train', 'evaluate', 'record_evaluation') ORDER BY 1;
SELECT pid, query, started FROM recsys.training_progress WHERE pid = pg_backend_pid();

DROP SCHEMA train_test CASCADE;
DELETE FROM recsys.recommendations WHERE model_name = 'regress_from_start';
DELETE FROM recsys.customer_states WHERE model_name = 'regress_from_start';
DELETE FROM recsys.model_events WHERE name IN ('regress_lstm', 'regress_from_start');
DELETE FROM recsys.models WHERE name IN ('regress_lstm', 'regress_from_start');
