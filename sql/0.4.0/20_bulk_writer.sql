-- One writer of recsys.recommendations and recsys.customer_states (docs/benchmarks.md,
-- "A new month"): store_states (behind rebuild_states and advance_month), advance_customer and
-- refresh_recommendations all write through the same C++ writer (src/pg/recommendation_writer.h),
-- which buffers rows and writes each batch with one INSERT ... ON CONFLICT DO UPDATE per table.
-- Before, the refresh deleted and inserted, store_states upserted from a set-returning function
-- whose rows were materialized (and spilled to disk) twice, and advance_customer upserted a row
-- with statements of its own.

-- Computes and writes in one pass: the states never go through a tuplestore.
CREATE OR REPLACE FUNCTION recsys.store_states(model text, month date, k integer)
RETURNS bigint
AS 'MODULE_PATHNAME', 'recsys_store_states' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION recsys.store_states(text, date, integer) IS 'Computes and stores states and recommendations from scratch (month NULL) or advanced to month, written in batches as it goes; used by rebuild_states() and advance_month()';

CREATE FUNCTION recsys.store_recommendations(model text, k integer, as_of date)
RETURNS bigint
AS 'MODULE_PATHNAME', 'recsys_store_recommendations' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION recsys.store_recommendations(text, integer, date) IS 'Replaces a model''s rows in recsys.recommendations with recsys.score_all(model, k, as_of => as_of), written in batches; used by refresh_recommendations(), which takes the writer lock';
REVOKE ALL ON FUNCTION recsys.store_recommendations(text, integer, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION recsys.store_recommendations(text, integer, date) TO recsys_admin;

-- As in 0.3.0, except that the scored rows are written by recsys.store_recommendations().
CREATE OR REPLACE FUNCTION recsys.refresh_recommendations(model text DEFAULT 'default', k integer DEFAULT 7)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    written bigint;
    spec    jsonb;
    latest  date;
    scored  integer;
    new_set bigint;
    message text;
BEGIN
    PERFORM recsys.lock_recommendations(refresh_recommendations.model);
    IF refresh_recommendations.model IS NOT NULL THEN
        SELECT m.feature_spec INTO spec FROM recsys.models m
         WHERE m.name = refresh_recommendations.model AND m.status = 'production';
        IF FOUND THEN
            BEGIN
                latest := recsys.snapshot_latest_month(spec);
            EXCEPTION WHEN undefined_table OR undefined_column THEN
                latest := NULL;  -- score_all() below reports the missing relation or column
            END;
        END IF;
        -- Only when something predicted for a month up to the latest is not computed yet (a new
        -- month landed): otherwise the refresh would read the relation's months a second time.
        IF EXISTS (SELECT 1 FROM recsys.realized_quality_pending(refresh_recommendations.model) p
                    WHERE p.month <= latest) THEN
            BEGIN
                PERFORM recsys.update_realized_quality(refresh_recommendations.model);
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
                RAISE WARNING 'realized quality of model "%" was not updated: %', refresh_recommendations.model, message
                    USING HINT = 'The refresh went on; run recsys.update_realized_quality() to see the error.';
            END;
        END IF;
    END IF;
    -- One transaction: readers see the old recommendations until the new ones commit.
    written := recsys.store_recommendations(refresh_recommendations.model, refresh_recommendations.k,
                                            (latest + interval '1 month' - interval '1 day')::date);
    IF written > 0 AND latest IS NOT NULL THEN
        SELECT r.model_version INTO scored FROM recsys.recommendations r
         WHERE r.model_name = refresh_recommendations.model LIMIT 1;
        INSERT INTO recsys.prediction_sets (model, version, month, refreshed_at, customers, k)
        VALUES (refresh_recommendations.model, scored, (latest + interval '1 month')::date, now(), written,
                refresh_recommendations.k)
        RETURNING id INTO new_set;
        INSERT INTO recsys.prediction_set_rows (set_id, customer_id, products)
        SELECT new_set, r.customer_id, r.products
          FROM recsys.recommendations r
         WHERE r.model_name = refresh_recommendations.model;
    END IF;
    RETURN written;
END
$$;
