
-- One-step online scoring (src/pg/scoring_functions.cpp, stored_state_reader.cpp): recommend(),
-- recommend_scores() and score_customer() score a customer of a from-start model from its
-- state in recsys.customer_states when that state is usable, else from its full history.
-- recsys.serving_stats counts the customers scored each way, in two new columns at its end.
DROP VIEW recsys.serving_stats;
DROP FUNCTION recsys.serving_stats();
CREATE FUNCTION recsys.serving_stats(
    OUT model text, OUT version integer, OUT entry_point text,
    OUT calls bigint, OUT customers bigint, OUT errors bigint, OUT errors_by_sqlstate jsonb,
    OUT p50_ms double precision, OUT p95_ms double precision, OUT p99_ms double precision,
    OUT mean_ms double precision, OUT max_ms double precision,
    OUT model_loads bigint, OUT cache_hits bigint, OUT cache_misses bigint, OUT cached_bytes bigint,
    OUT since timestamptz, OUT from_stored_state bigint, OUT from_full_history bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'recsys_serving_stats' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION recsys.serving_stats() IS 'The rows of the view recsys.serving_stats';

CREATE VIEW recsys.serving_stats AS
SELECT * FROM recsys.serving_stats() s ORDER BY s.model, s.version, s.entry_point;
COMMENT ON VIEW recsys.serving_stats IS 'Serving statistics of this database since the server started or recsys.serving_stats_reset(), aggregated over all sessions: per model, version and entry point, calls (failed ones included), customers scored and latency percentiles of the calls that succeeded (server time, within 6.25%), errors by SQLSTATE; per model version (repeated on each of its rows), parses, cache hits and misses, and bytes of parsed models cached in all backends now; for from-start models, the customers that recommend(), recommend_scores() and score_customer() scored by continuing a stored state (from_stored_state) and by running the full history because no usable state was there (from_full_history). version is NULL for calls that failed before a version was resolved. Needs shared_preload_libraries = ''recsys''';

REVOKE ALL ON FUNCTION recsys.serving_stats() FROM PUBLIC;
GRANT SELECT ON recsys.serving_stats TO recsys_reader;
GRANT EXECUTE ON FUNCTION recsys.serving_stats() TO recsys_reader;
