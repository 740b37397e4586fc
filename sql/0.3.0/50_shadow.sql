-- Shadow scoring (docs/lifecycle.md, "Shadow scoring"): a candidate version scores a sampled
-- share of the production version's recommend() and recommend_scores() calls beside it; both
-- rankings go to recsys.shadow_log, the caller only ever gets production's. recsys.shadow_report
-- compares them, and once the next month has landed, scores both against what the customers
-- actually added.

-- The online path caches the shadow setting with the production version (src/pg/model_cache.cpp):
-- a change of the deployments invalidates every backend's cache, as a change of the registry does.
CREATE TRIGGER shadow_deployments_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON recsys.shadow_deployments
    FOR EACH STATEMENT EXECUTE FUNCTION recsys.registry_changed();

-- Starts (or changes) the shadow version of a model; version => NULL stops it. SECURITY DEFINER:
-- the deployments table is written only through here, with the checks below.
CREATE FUNCTION recsys.set_shadow(model_name text, version integer, sample double precision DEFAULT 0.1)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    spec            jsonb;
    registrant      name;
    current_version integer;
    previous        recsys.shadow_deployments;
BEGIN
    IF model_name IS NULL THEN
        RAISE EXCEPTION 'model name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- Lock every version of this model, as promote() and rollback() do: the production version
    -- checked below cannot change until this commits.
    PERFORM 1 FROM recsys.models m WHERE m.name = model_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = 'undefined_object';
    END IF;
    SELECT s.* INTO previous FROM recsys.shadow_deployments s WHERE s.name = model_name;

    IF set_shadow.version IS NULL THEN
        IF previous.name IS NULL THEN
            RAISE NOTICE 'model "%" has no shadow version', model_name;
            RETURN;
        END IF;
        DELETE FROM recsys.shadow_deployments s WHERE s.name = model_name;
        INSERT INTO recsys.model_events (name, version, action, by, reason)
        VALUES (model_name, previous.version, 'shadow_stop', recsys.acting_role(),
                format('stopped (sample %s)', previous.sample));
        RETURN;
    END IF;

    -- NaN compares greater than every number in PostgreSQL, so it fails "<= 1".
    IF sample IS NULL OR NOT (sample > 0 AND sample <= 1) THEN
        RAISE EXCEPTION 'shadow sample must be in (0, 1], not %', coalesce(sample::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'It is the share of production calls also scored with the shadow version; stop a shadow with version => NULL.';
    END IF;
    SELECT m.feature_spec, m.created_by INTO spec, registrant FROM recsys.models m
     WHERE m.name = model_name AND m.version = set_shadow.version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" version % does not exist', model_name, set_shadow.version
            USING ERRCODE = 'undefined_object';
    END IF;
    SELECT m.version INTO current_version FROM recsys.models m
     WHERE m.name = model_name AND m.status = 'production';
    IF current_version = set_shadow.version THEN
        RAISE EXCEPTION 'model "%" version % is the production version', model_name, set_shadow.version
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A shadow version is scored beside production: choose another version.';
    END IF;
    -- The log keeps the shadow's rankings of customers, which recsys_admin members read: the role
    -- setting the shadow, and the registrant, must be able to read every column the version reads
    -- (docs/security.md, rule 3).
    PERFORM recsys.require_model_readable(spec, recsys.acting_role(), 'shadow');
    PERFORM recsys.require_model_readable(spec, registrant, 'shadow');

    INSERT INTO recsys.shadow_deployments AS s (name, version, sample, started_at, started_by)
    VALUES (model_name, set_shadow.version, sample, now(), recsys.acting_role())
    ON CONFLICT (name) DO UPDATE
        SET version = EXCLUDED.version, sample = EXCLUDED.sample, started_at = EXCLUDED.started_at,
            started_by = EXCLUDED.started_by;
    IF previous.version IS DISTINCT FROM set_shadow.version AND previous.name IS NOT NULL THEN
        INSERT INTO recsys.model_events (name, version, action, by, reason)
        VALUES (model_name, previous.version, 'shadow_stop', recsys.acting_role(),
                format('replaced by version %s', set_shadow.version));
    END IF;
    INSERT INTO recsys.model_events (name, version, action, by, reason)
    VALUES (model_name, set_shadow.version, 'shadow_start', recsys.acting_role(),
            format('sample %s beside production version %s', sample, coalesce(current_version::text, '(none yet)')));
END
$$;
COMMENT ON FUNCTION recsys.set_shadow(text, integer, double precision) IS 'Scores a sampled share (0, 1] of the production version''s recommend() calls with another version too and logs both rankings in recsys.shadow_log (never returned to the caller); version => NULL stops it';

-- This session's shadow counts (backend-local: sampled calls, rows logged, writes skipped in
-- read-only transactions or on a hot standby, failures of the shadow scoring or its write).
CREATE FUNCTION recsys.shadow_counters(OUT sampled bigint, OUT logged bigint, OUT skipped_read_only bigint,
                                       OUT errors bigint)
AS 'MODULE_PATHNAME', 'recsys_shadow_counters' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION recsys.shadow_counters() IS 'This session''s shadow scoring counts: calls sampled, rows logged, writes skipped because the transaction was read-only, failures (which never failed the call)';

-- Average precision at 7 of one ranking, as the Kaggle competition scored it: over the first 7
-- products, the precision at each position holding an added product, summed, divided by
-- min(number of added products, 7); 0 when nothing was added.
CREATE FUNCTION recsys.average_precision_at_7(predicted text[], added text[]) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN (SELECT coalesce(sum(h.hits::double precision / h.i) FILTER (WHERE h.hit), 0)
               / greatest(least(coalesce(cardinality(added), 0), 7), 1)
          FROM (SELECT u.i, u.p = ANY (added) AS hit,
                       count(*) FILTER (WHERE u.p = ANY (added)) OVER (ORDER BY u.i) AS hits
                  FROM unnest(predicted[1:7]) WITH ORDINALITY AS u(p, i)) AS h);
COMMENT ON FUNCTION recsys.average_precision_at_7(text[], text[]) IS 'Kaggle''s average precision at 7 of a ranking against the products added (0 when none were added)';

-- Compares the logged rankings per (production version, shadow version, month):
--   calls, customers      logged calls and distinct customers;
--   overlap_at_7          mean |P ∩ S| / |P| over calls, P and S the first 7 (at most) products
--                         of the production and shadow rankings (k of the call when below 7);
--   top1_agreement        share of calls where both put the same product first;
--   realized_*            once the logged customers' snapshots of the next month exist in the
--                         production version's source relation: on the latest call of each
--                         customer in the month, MAP@7 (Kaggle definition, as recsys.evaluate):
--                         the mean over those customers of the average precision at 7 of each
--                         ranking, where the products added are those held (flag 1) in the next
--                         month and not held in the logged month; customers without adds,
--                         without a next-month snapshot included, count 0. NULL until then.
-- SECURITY INVOKER: it reads the log and the source relation with the caller's rights.
CREATE FUNCTION recsys.shadow_report(model_name text)
RETURNS TABLE (production_version integer, shadow_version integer, month date, calls bigint, customers bigint,
               overlap_at_7 double precision, top1_agreement double precision, realized_customers bigint,
               production_map7 double precision, shadow_map7 double precision)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    g            record;
    spec         jsonb;
    source       regclass;
    id_column    text;
    month_expr   text;
    flags        text;
    products     text[];
    has_next     boolean;
BEGIN
    IF model_name IS NULL THEN
        RAISE EXCEPTION 'model name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM recsys.models m WHERE m.name = model_name) THEN
        RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = 'undefined_object';
    END IF;
    FOR g IN
        SELECT l.production_version AS pv, l.shadow_version AS sv, l.month AS mo, count(*) AS n,
               count(DISTINCT l.customer_id) AS c,
               avg((SELECT count(*) FROM unnest(l.production_products[1:7]) p WHERE p = ANY (l.shadow_products[1:7]))::double precision
                   / nullif(cardinality(l.production_products[1:7]), 0)) AS overlap,
               avg(CASE WHEN l.production_products[1] = l.shadow_products[1] THEN 1.0 ELSE 0.0 END::double precision)
                   FILTER (WHERE cardinality(l.production_products) > 0 AND cardinality(l.shadow_products) > 0) AS top1
          FROM recsys.shadow_log l
         WHERE l.name = model_name
         GROUP BY l.production_version, l.shadow_version, l.month
         ORDER BY l.month, l.production_version, l.shadow_version
    LOOP
        production_version := g.pv;
        shadow_version := g.sv;
        month := g.mo;
        calls := g.n;
        customers := g.c;
        overlap_at_7 := g.overlap;
        top1_agreement := g.top1;
        realized_customers := NULL;
        production_map7 := NULL;
        shadow_map7 := NULL;

        SELECT m.feature_spec INTO spec FROM recsys.models m WHERE m.name = model_name AND m.version = g.pv;
        source := to_regclass(spec -> 'source' ->> 'relation');
        IF source IS NOT NULL THEN
            id_column := spec -> 'source' ->> 'id_column';
            -- The month as the scoring functions read it: a timestamptz in UTC.
            SELECT CASE WHEN a.atttypid = 'timestamptz'::regtype
                        THEN format('(pg_catalog.timezone(''UTC''::pg_catalog.text, %I))::pg_catalog.date', a.attname)
                        ELSE format('(%I)::pg_catalog.date', a.attname) END
              INTO month_expr
              FROM pg_attribute a
             WHERE a.attrelid = source AND a.attname = spec -> 'source' ->> 'month_column' AND NOT a.attisdropped;
            SELECT array_agg(p ORDER BY i),
                   string_agg(CASE WHEN a.atttypid = 'boolean'::regtype
                                   THEN format('(%I)::pg_catalog.int4::pg_catalog.float8', p)
                                   ELSE format('(%I)::pg_catalog.float8', p) END, ', ' ORDER BY i)
              INTO products, flags
              FROM jsonb_array_elements_text(spec -> 'products') WITH ORDINALITY AS x(p, i)
              LEFT JOIN pg_attribute a ON a.attrelid = source AND a.attname = x.p AND NOT a.attisdropped;
            EXECUTE format(
                $q$
                WITH calls AS (
                    SELECT DISTINCT ON (l.customer_id) l.customer_id AS id, l.production_products AS pp,
                           l.shadow_products AS sp
                      FROM recsys.shadow_log l
                     WHERE l.name = $1 AND l.production_version = $2 AND l.shadow_version = $3 AND l.month = $4
                     ORDER BY l.customer_id, l.id DESC
                ), snaps AS (
                    SELECT (%1$I)::pg_catalog.int8 AS id, %2$s AS m, ARRAY[%3$s] AS f
                      FROM %4$s
                     WHERE %1$I = ANY (ARRAY(SELECT c.id FROM calls c)) AND %2$s >= $4 AND %2$s < $6
                ), outcome AS (
                    SELECT c.pp, c.sp, nx.id IS NOT NULL AS has_next,
                           ARRAY(SELECT x.p FROM unnest($7::text[]) WITH ORDINALITY AS x(p, i)
                                  WHERE nx.f[x.i] = 1 AND cu.f[x.i] IS DISTINCT FROM 1) AS added
                      FROM calls c
                      LEFT JOIN snaps cu ON cu.id = c.id AND cu.m < $5
                      LEFT JOIN snaps nx ON nx.id = c.id AND nx.m >= $5
                )
                SELECT coalesce(bool_or(o.has_next), false), count(*),
                       avg(recsys.average_precision_at_7(o.pp, o.added)),
                       avg(recsys.average_precision_at_7(o.sp, o.added))
                  FROM outcome o
                $q$, id_column, month_expr, flags, source)
              INTO has_next, realized_customers, production_map7, shadow_map7
              USING model_name, g.pv, g.sv, g.mo, (g.mo + interval '1 month')::date,
                    (g.mo + interval '2 months')::date, products;
            IF NOT has_next THEN
                realized_customers := NULL;
                production_map7 := NULL;
                shadow_map7 := NULL;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION recsys.shadow_report(text) IS 'Production against shadow per (production version, shadow version, month) of recsys.shadow_log: overlap@7, top-1 agreement and, once the next month''s snapshots exist, the realized MAP@7 of both rankings on the same customers';

GRANT EXECUTE ON FUNCTION
    recsys.shadow_counters(),
    recsys.average_precision_at_7(text[], text[])
TO recsys_reader;
GRANT EXECUTE ON FUNCTION
    recsys.set_shadow(text, integer, double precision),
    recsys.shadow_report(text)
TO recsys_admin;
