-- Serving statistics (docs/monitoring.md, "Serving statistics"): per model, version and entry
-- point, calls, customers scored, errors by SQLSTATE and server-time percentiles; per model
-- version, loads, cache hits and misses, bytes of parsed models cached. Kept in shared memory
-- by every backend (src/pg/serving_stats.cpp), which needs shared_preload_libraries = 'recsys';
-- without it, reading them fails with 55000 and says so.

CREATE FUNCTION recsys.serving_stats(
    OUT model text, OUT version integer, OUT entry_point text,
    OUT calls bigint, OUT customers bigint, OUT errors bigint, OUT errors_by_sqlstate jsonb,
    OUT p50_ms double precision, OUT p95_ms double precision, OUT p99_ms double precision,
    OUT mean_ms double precision, OUT max_ms double precision,
    OUT model_loads bigint, OUT cache_hits bigint, OUT cache_misses bigint, OUT cached_bytes bigint,
    OUT since timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'recsys_serving_stats' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION recsys.serving_stats() IS 'The rows of the view recsys.serving_stats';

CREATE VIEW recsys.serving_stats AS
SELECT * FROM recsys.serving_stats() s ORDER BY s.model, s.version, s.entry_point;
COMMENT ON VIEW recsys.serving_stats IS 'Serving statistics of this database since the server started or recsys.serving_stats_reset(), aggregated over all sessions: per model, version and entry point, calls (failed ones included), customers scored and latency percentiles of the calls that succeeded (server time, within 6.25%), errors by SQLSTATE; per model version (repeated on each of its rows), parses, cache hits and misses, and bytes of parsed models cached in all backends now. version is NULL for calls that failed before a version was resolved. Needs shared_preload_libraries = ''recsys''';

CREATE FUNCTION recsys.serving_stats_reset() RETURNS void
AS 'MODULE_PATHNAME', 'recsys_serving_stats_reset' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION recsys.serving_stats_reset() IS 'Zeroes the serving statistics of every database (cached_bytes, a gauge, stays)';

-- The view holds no per-customer data: readers may see it; only admins reset it.
GRANT SELECT ON recsys.serving_stats TO recsys_reader;
GRANT EXECUTE ON FUNCTION recsys.serving_stats() TO recsys_reader;
GRANT EXECUTE ON FUNCTION recsys.serving_stats_reset() TO recsys_admin;
