-- Serving statistics (recsys.serving_stats): a known number of calls of every entry point, and
-- of failing ones, counted exactly in shared memory (the test cluster preloads recsys), seen
-- from a second session too. Times are never printed, only checked for consistency.
SET client_min_messages = warning;
CREATE SCHEMA ss;
CREATE TABLE ss.snapshots AS SELECT * FROM recsys.generate_santander(40, months => 4);
ALTER TABLE ss.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
-- v1 production, v2 pinned by some calls.
SELECT recsys.register_model('ss_model', recsys.untrained_model('ss.snapshots', window_months => 3, hidden => 4, seed => s))
  FROM generate_series(1, 2) s;
SELECT recsys.promote('ss_model', 1, force => true, reason => 'test fixture');
-- A from-start model, for advance_month and advance_customer.
SELECT recsys.register_model('ss_inc', recsys.untrained_model('ss.snapshots', window_months => 6, hidden => 4,
                                                              start_month => '2015-01-28'));
SELECT recsys.promote('ss_inc', 1, force => true, reason => 'test fixture');
-- A model whose source is slow when ss.sleep is on (50 ms a row): for a call cancelled by
-- statement_timeout.
CREATE FUNCTION ss.maybe_sleep() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('ss.sleep', true) = 'on' THEN PERFORM pg_sleep(0.05); END IF;
    RETURN true;
END $$;
CREATE VIEW ss.slow_snapshots AS SELECT * FROM ss.snapshots WHERE ss.maybe_sleep();
SELECT recsys.register_model('ss_slow', recsys.untrained_model('ss.slow_snapshots', window_months => 3, hidden => 4));
SELECT recsys.promote('ss_slow', 1, force => true, reason => 'test fixture');
-- The SQLSTATE a statement fails with (query_canceled too, which OTHERS does not catch).
CREATE FUNCTION ss.fails(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS OR query_canceled THEN
    RETURN SQLSTATE;
END $$;
CREATE VIEW ss.stats AS
SELECT model, version, entry_point, calls, customers, errors, errors_by_sqlstate
  FROM recsys.serving_stats WHERE model LIKE 'ss%' OR model IS NULL;
RESET client_min_messages;
SET jit = off;
-- A new session: its model cache is empty, so loads and misses below are exact.
\c
SET jit = off;

SELECT recsys.serving_stats_reset();
SELECT count(*) AS rows_with_calls FROM recsys.serving_stats WHERE calls > 0 AND model LIKE 'ss%';

-- Calls that succeed, with the production version (v1).
SELECT count(*) FILTER (WHERE cardinality(recsys.recommend(id, model => 'ss_model')) = 7) AS recommended
  FROM (VALUES (15889), (15890), (15891)) v(id);
SELECT recsys.recommend(NULL, model => 'ss_model') AS null_id_is_not_counted;
SELECT count(*) AS rows FROM recsys.recommend_scores(15889, model => 'ss_model');
SELECT count(*) AS rows FROM recsys.recommend_scores(15890, k => 3, model => 'ss_model');
SELECT cardinality(recsys.score_customer(15889, 'ss_model')) AS products;
SELECT count(*) AS customers FROM recsys.recommend_many(ARRAY(SELECT generate_series(15889::bigint, 15898)), model => 'ss_model');
SELECT count(*) AS customers FROM recsys.score_all('ss_model');
-- refresh_recommendations runs score_all: counted once, as a refresh.
SELECT recsys.refresh_recommendations('ss_model') AS customers;
-- A pinned version has its own rows.
SELECT count(recsys.recommend(15889, model => 'ss_model', version => 2)) AS pinned FROM generate_series(1, 2);
-- Incremental scoring: the first advance_month computes every state.
SELECT recsys.advance_month('ss_inc', '2015-04-28') AS customers;
SELECT cardinality(recsys.advance_customer('ss_inc', 15889)) AS products;

-- Calls that fail. Before a version is resolved (unknown version or model, k below 1): version
-- NULL; after it (k above the model's products, unknown customer): the version's rows.
SELECT ss.fails($$SELECT recsys.recommend(15889, model => 'ss_model', version => 99)$$) AS unknown_version,
       ss.fails($$SELECT recsys.recommend(15890, model => 'ss_model', version => 99)$$) AS unknown_version_again,
       ss.fails($$SELECT recsys.recommend(15889, 0, 'ss_model')$$) AS k_zero,
       ss.fails($$SELECT recsys.recommend(15889, 30, 'ss_model')$$) AS k_too_large,
       ss.fails($$SELECT recsys.recommend(1, model => 'ss_model')$$) AS unknown_customer,
       ss.fails($$SELECT recsys.recommend(15889, model => 'ss_nope')$$) AS unknown_model;
SELECT ss.fails($$SELECT * FROM recsys.recommend_many(ARRAY[15889, 1], model => 'ss_model')$$) AS many_unknown_customer,
       ss.fails($$SELECT * FROM recsys.recommend_scores(15889, 0, 'ss_model')$$) AS scores_k_zero,
       ss.fails($$SELECT * FROM recsys.score_all('ss_model', 0)$$) AS score_all_k_zero,
       ss.fails($$SELECT recsys.advance_month('ss_inc', NULL)$$) AS advance_null_month,
       -- The name from a column: not known when the PL/pgSQL function fails before scoring.
       ss.fails($$SELECT recsys.advance_month(m, NULL) FROM (SELECT 'ss_inc'::text OFFSET 0) v(m)$$) AS named_by_column;
SET client_min_messages = error;
SELECT ss.fails($$SELECT recsys.refresh_recommendations('ss_nope')$$) AS refresh_unknown_model;
RESET client_min_messages;
-- A cancel (statement_timeout) while score_all reads the slow source: 57014.
SET ss.sleep = on;
SET statement_timeout = '300ms';
SELECT ss.fails($$SELECT count(*) FROM recsys.score_all('ss_slow')$$) AS cancelled;
RESET statement_timeout;
RESET ss.sleep;

-- Every call above, exactly. A NULL model: the error came before recsys saw a model name.
SELECT * FROM ss.stats ORDER BY model, version, entry_point;

-- Latency: percentiles of the calls that succeeded, ordered, within (0, max]; none without one.
SELECT count(*) AS rows,
       bool_and(p50_ms > 0 AND p50_ms <= p95_ms AND p95_ms <= p99_ms AND p99_ms <= max_ms) AS ordered,
       bool_and(mean_ms > 0 AND mean_ms <= max_ms) AS mean_within,
       bool_and(since <= now()) AS since_past
  FROM recsys.serving_stats WHERE model LIKE 'ss%' AND calls > errors;
SELECT count(*) AS rows, bool_and(p50_ms IS NULL AND p95_ms IS NULL AND p99_ms IS NULL AND mean_ms IS NULL AND max_ms IS NULL) AS no_times
  FROM recsys.serving_stats WHERE (model LIKE 'ss%' OR model IS NULL) AND calls = errors;

-- The model cache, per model version (the same figures on each of its rows): one parse and one
-- miss per version in this session; the version-less rows have none.
SELECT model, version, count(*) AS rows, min(model_loads) AS loads, min(cache_misses) AS misses,
       count(DISTINCT (model_loads, cache_hits, cache_misses, cached_bytes)) AS same_on_every_row,
       min(cached_bytes) > 0 AS bytes_cached
  FROM recsys.serving_stats WHERE model LIKE 'ss%' GROUP BY model, version ORDER BY model, version;
-- Each call served from the cache is a hit.
CREATE TEMP TABLE hits_before AS SELECT DISTINCT cache_hits FROM recsys.serving_stats WHERE model = 'ss_model' AND version = 1;
SELECT count(recsys.recommend(15889 + g, model => 'ss_model')) AS calls FROM generate_series(1, 5) g;
SELECT s.cache_hits - b.cache_hits AS new_hits, s.cache_misses AS misses
  FROM recsys.serving_stats s, hits_before b WHERE s.model = 'ss_model' AND s.version = 1 AND s.entry_point = 'recommend';

-- Shared memory: a second session sees this one's calls, and its own add to the same rows; its
-- parsed model adds as many bytes as this session's to cached_bytes, until it disconnects.
CREATE TEMP TABLE bytes_alone AS
SELECT cached_bytes FROM recsys.serving_stats WHERE model = 'ss_model' AND version = 1 AND entry_point = 'recommend';
SELECT dblink_connect('other', format('dbname=%s host=%s port=%s', current_database(),
                                      current_setting('unix_socket_directories'), current_setting('port')));
SELECT calls AS seen_by_other FROM dblink('other',
  $q$SELECT calls FROM recsys.serving_stats WHERE model = 'ss_model' AND version = 1 AND entry_point = 'recommend'$q$) AS t(calls bigint);
SELECT * FROM dblink('other', $q$SELECT count(recsys.recommend(15889, model => 'ss_model')) FROM generate_series(1, 2)$q$) AS t(other_calls bigint);
SELECT s.calls, s.cache_misses AS misses, s.model_loads AS loads, s.cached_bytes = 2 * b.cached_bytes AS both_sessions_bytes
  FROM recsys.serving_stats s, bytes_alone b WHERE s.model = 'ss_model' AND s.version = 1 AND s.entry_point = 'recommend';
SELECT dblink_disconnect('other');
-- The other backend exits on its own time: wait (at most 10 s) for its bytes to go.
DO $$
BEGIN
    FOR i IN 1 .. 100 LOOP
        EXIT WHEN (SELECT s.cached_bytes = b.cached_bytes FROM recsys.serving_stats s, bytes_alone b
                    WHERE s.model = 'ss_model' AND s.version = 1 AND s.entry_point = 'recommend');
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT s.cached_bytes = b.cached_bytes AS back_to_this_session
  FROM recsys.serving_stats s, bytes_alone b WHERE s.model = 'ss_model' AND s.version = 1 AND s.entry_point = 'recommend';

-- recsys.serving_stats off: calls are not counted.
SET recsys.serving_stats = off;
SELECT count(recsys.recommend(15889, model => 'ss_model')) AS uncounted FROM generate_series(1, 3);
RESET recsys.serving_stats;
SELECT calls FROM recsys.serving_stats WHERE model = 'ss_model' AND version = 1 AND entry_point = 'recommend';

-- Readers may read the view (no per-customer data) but not reset it; PUBLIC gets nothing.
SELECT has_table_privilege('public', 'recsys.serving_stats', 'SELECT') AS public_reads,
       has_function_privilege('public', 'recsys.serving_stats()', 'EXECUTE') AS public_executes,
       has_function_privilege('public', 'recsys.serving_stats_reset()', 'EXECUTE') AS public_resets,
       has_function_privilege('recsys_admin', 'recsys.serving_stats_reset()', 'EXECUTE') AS admin_resets;
CREATE ROLE ss_reader;
GRANT recsys_reader TO ss_reader;
SET ROLE ss_reader;
SELECT count(*) > 0 AS reader_sees_rows FROM recsys.serving_stats WHERE model = 'ss_model';
SELECT recsys.serving_stats_reset();
RESET ROLE;

-- A reset clears the counters; the bytes this session still caches stay counted.
SELECT recsys.serving_stats_reset();
SELECT count(*) FILTER (WHERE calls > 0 OR errors > 0 OR model_loads > 0 OR cache_hits > 0 OR cache_misses > 0) AS rows_with_counts,
       count(*) FILTER (WHERE entry_point IS NOT NULL) AS entry_point_rows,
       bool_and(cached_bytes > 0) AS bytes_still_cached
  FROM recsys.serving_stats WHERE model LIKE 'ss%' OR model IS NULL;
SELECT count(recsys.recommend(15889, model => 'ss_model')) AS calls_after_reset FROM generate_series(1, 2);
SELECT * FROM ss.stats ORDER BY model, version, entry_point;

DROP ROLE ss_reader;
