-- Prediction log and realized quality (docs/monitoring.md, "Prediction log and realized
-- quality"). What was predicted is kept: a sampled share of the online calls in
-- recsys.prediction_log (recsys.log_sample_rate), every refresh's output as a prediction set.
-- Once the predicted month's snapshots land, recsys.update_realized_quality() joins the
-- predictions to what the customers actually added and stores MAP@7 and friends, with the
-- definitions of recsys.evaluate (src/core/metrics.h), per model, version, month and source;
-- recsys.realized_quality and recsys.realized_quality_by_product show them.

---------------------------------------------------------------------------------------------
-- Online: the prediction log
---------------------------------------------------------------------------------------------

-- Written by recommend() and recommend_scores() (src/pg/prediction_log.cpp) as the extension's
-- owner, through a fixed statement; the roles that score have no right on it.
CREATE TABLE recsys.prediction_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    model       text        NOT NULL,
    version     integer     NOT NULL,
    customer_id bigint      NOT NULL,
    -- The month the prediction is for: the first day of the month after the customer's latest
    -- snapshot (the ranking predicts that month's adds).
    month       date        NOT NULL,
    products    text[]      NOT NULL,
    scores      real[]      NOT NULL,
    entry_point text        NOT NULL
);
CREATE INDEX prediction_log_model_month ON recsys.prediction_log (model, month, version);
COMMENT ON TABLE recsys.prediction_log IS 'A sampled share (recsys.log_sample_rate) of the online calls of recommend() and recommend_scores(): the ranking returned, and the month it is for';

CREATE FUNCTION recsys.prediction_log_counters(OUT sampled bigint, OUT logged bigint, OUT skipped_read_only bigint,
                                               OUT errors bigint)
AS 'MODULE_PATHNAME', 'recsys_prediction_log_counters' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION recsys.prediction_log_counters() IS 'This session''s prediction-log counts: calls sampled, rows logged, writes skipped because the transaction was read-only (or on a hot standby), failures (which never failed the call)';

---------------------------------------------------------------------------------------------
-- Batch: prediction sets
---------------------------------------------------------------------------------------------

-- One row per refresh_recommendations(): which version predicted which month for how many
-- customers. The rankings themselves are kept in recsys.prediction_set_rows, because the next
-- refresh replaces recsys.recommendations before the predicted month's outcome is known.
CREATE TABLE recsys.prediction_sets (
    id           bigserial   PRIMARY KEY,
    model        text        NOT NULL,
    version      integer     NOT NULL,
    -- The month the predictions are for: the month after the latest snapshot month of the
    -- source relation when the set was scored (the refresh scores snapshots up to that month).
    month        date        NOT NULL,
    refreshed_at timestamptz NOT NULL,
    customers    bigint      NOT NULL,
    k            integer     NOT NULL
);
CREATE INDEX prediction_sets_model_month ON recsys.prediction_sets (model, month);
COMMENT ON TABLE recsys.prediction_sets IS 'Each refresh_recommendations() output, addressable for realized quality: model, version, the month predicted, when, how many customers, k';

-- Written in bulk by the refresh, one set after the other, and read a whole set at a time
-- (realized quality, retention): a BRIN index on set_id finds a set's blocks, and costs the copy
-- nothing, where a B-tree on (set_id, customer_id) doubled it (each (set_id, customer_id) is
-- unique by construction: recsys.recommendations' key). No foreign key to
-- recsys.prediction_sets for the same reason; recsys.drop_prediction_sets deletes both.
CREATE TABLE recsys.prediction_set_rows (
    set_id      bigint NOT NULL,
    customer_id bigint NOT NULL,
    products    text[] NOT NULL
);
CREATE INDEX prediction_set_rows_set ON recsys.prediction_set_rows USING brin (set_id);
COMMENT ON TABLE recsys.prediction_set_rows IS 'The rankings of each prediction set (recsys.prediction_sets), as refresh_recommendations() wrote them to recsys.recommendations';

---------------------------------------------------------------------------------------------
-- Realized quality: stored results and the views over them
---------------------------------------------------------------------------------------------

-- One row per (model, version, month, source) for the log, per prediction set for batch.
CREATE TABLE recsys.realized_quality_results (
    model       text             NOT NULL,
    version     integer          NOT NULL,
    month       date             NOT NULL,
    source      text             NOT NULL CHECK (source IN ('online', 'batch')),
    set_id      bigint,
    predicted   bigint           NOT NULL,
    customers   bigint           NOT NULL,
    adders      bigint           NOT NULL,
    map7        double precision,
    map7_adders double precision,
    precision7  double precision,
    recall7     double precision,
    coverage    double precision,
    computed_at timestamptz      NOT NULL DEFAULT now(),
    CHECK ((source = 'batch') = (set_id IS NOT NULL)),
    UNIQUE NULLS NOT DISTINCT (model, version, month, source, set_id)
);
COMMENT ON TABLE recsys.realized_quality_results IS 'Realized quality as computed by recsys.update_realized_quality(); read it through recsys.realized_quality';

CREATE TABLE recsys.realized_quality_product_results (
    model     text    NOT NULL,
    version   integer NOT NULL,
    month     date    NOT NULL,
    source    text    NOT NULL CHECK (source IN ('online', 'batch')),
    set_id    bigint,
    product   text    NOT NULL,
    customers bigint  NOT NULL,
    predicted bigint  NOT NULL,
    adds      bigint  NOT NULL,
    hits      bigint  NOT NULL,
    CHECK ((source = 'batch') = (set_id IS NOT NULL)),
    UNIQUE NULLS NOT DISTINCT (model, version, month, source, set_id, product)
);
COMMENT ON TABLE recsys.realized_quality_product_results IS 'Realized quality per product as computed by recsys.update_realized_quality(); read it through recsys.realized_quality_by_product';

CREATE VIEW recsys.realized_quality AS
SELECT r.model, r.version, r.month, r.source, r.set_id, r.map7, r.map7_adders, r.precision7, r.recall7, r.coverage,
       r.customers, r.adders, r.predicted, r.computed_at
  FROM recsys.realized_quality_results r;
COMMENT ON VIEW recsys.realized_quality IS 'Realized MAP@7 (Kaggle, all customers; and adders only), precision@7, recall@7 and coverage per model, version, predicted month and source (online: the prediction log; batch: one row per prediction set), over the predicted customers with snapshots in the month before and the month; definitions as recsys.evaluate';

CREATE VIEW recsys.realized_quality_by_product AS
SELECT p.model, p.version, p.month, p.source, p.set_id, p.product, p.customers,
       p.predicted, p.predicted::double precision / nullif(p.customers, 0) AS predicted_share,
       p.adds, p.adds::double precision / nullif(p.customers, 0) AS add_rate,
       p.hits, p.hits::double precision / nullif(p.predicted, 0) AS precision,
       p.hits::double precision / nullif(p.adds, 0) AS recall
  FROM recsys.realized_quality_product_results p;
COMMENT ON VIEW recsys.realized_quality_by_product IS 'Per product of recsys.realized_quality: share of customers with it in their top 7, share who added it, hits (both), precision and recall of its recommendations';

---------------------------------------------------------------------------------------------
-- The source relation of a model version, as the scoring functions read it
---------------------------------------------------------------------------------------------

-- The relation, columns and products a feature spec names, with the SQL that reads the month
-- as the scoring functions do (a timestamptz in UTC) and whether each product flag is boolean.
-- 42P01 when the relation does not exist (any more).
CREATE FUNCTION recsys.snapshot_source(spec jsonb, OUT relation regclass, OUT id_column text, OUT month_column text,
                                       OUT month_is_timestamptz boolean, OUT products text[],
                                       OUT product_is_boolean boolean[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    relation := to_regclass(spec -> 'source' ->> 'relation');
    IF relation IS NULL THEN
        RAISE EXCEPTION 'relation "%" read by the model does not exist', spec -> 'source' ->> 'relation'
            USING ERRCODE = 'undefined_table';
    END IF;
    id_column := spec -> 'source' ->> 'id_column';
    month_column := spec -> 'source' ->> 'month_column';
    SELECT a.atttypid = 'timestamptz'::regtype INTO month_is_timestamptz
      FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attname = month_column AND NOT a.attisdropped;
    SELECT array_agg(x.p ORDER BY x.i), array_agg(coalesce(a.atttypid = 'boolean'::regtype, false) ORDER BY x.i)
      INTO products, product_is_boolean
      FROM jsonb_array_elements_text(spec -> 'products') WITH ORDINALITY AS x(p, i)
      LEFT JOIN pg_attribute a ON a.attrelid = relation AND a.attname = x.p AND NOT a.attisdropped;
END
$$;
COMMENT ON FUNCTION recsys.snapshot_source(jsonb) IS 'The source relation, id and month columns and products of a feature spec (internal to realized quality)';

-- The SQL reading the snapshot month of `alias` as a date, as the scoring functions read it.
CREATE FUNCTION recsys.snapshot_month_sql(alias text, month_column text, month_is_timestamptz boolean) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN month_is_timestamptz
            THEN format('(pg_catalog.timezone(''UTC''::pg_catalog.text, %I.%I))::pg_catalog.date', alias, month_column)
            ELSE format('(%I.%I)::pg_catalog.date', alias, month_column) END;
COMMENT ON FUNCTION recsys.snapshot_month_sql(text, text, boolean) IS 'SQL reading a snapshot month as a date (UTC for timestamptz), as the scoring functions do (internal)';

-- The first day of the latest snapshot month of a spec's relation; NULL when it is empty.
-- max() over the column itself, so that an index on the month column answers it.
CREATE FUNCTION recsys.snapshot_latest_month(spec jsonb) RETURNS date
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    src    record;
    latest date;
BEGIN
    src := recsys.snapshot_source(spec);
    EXECUTE format('SELECT %s FROM %s AS s',
                   CASE WHEN src.month_is_timestamptz
                        THEN format('(pg_catalog.timezone(''UTC''::pg_catalog.text, pg_catalog.max(s.%I)))::pg_catalog.date', src.month_column)
                        ELSE format('(pg_catalog.max(s.%I))::pg_catalog.date', src.month_column) END,
                   src.relation)
      INTO latest;
    RETURN date_trunc('month', latest)::date;
END
$$;
COMMENT ON FUNCTION recsys.snapshot_latest_month(jsonb) IS 'First day of the latest snapshot month in a feature spec''s source relation (internal)';

---------------------------------------------------------------------------------------------
-- Computing realized quality
---------------------------------------------------------------------------------------------

-- Computes one (model, version, month, source[, set]) into the results tables. The products
-- added by a customer are those held (flag 1) in `month` and not held in the month before;
-- only predicted customers with a snapshot in both months count (as recsys.evaluate counts the
-- customers of a month). Per customer, the ranking's first 7 products are scored:
--   average precision   recsys.average_precision_at_7 (Kaggle's apk, 0 without adds);
--   hits                products of the first 7 that were added.
-- Over the customers (as RankingMetrics): map7 = sum(ap) / customers; map7_adders = sum(ap) /
-- adders; precision7 = mean over adders of hits / 7; recall7 = mean over adders of hits /
-- |added|; coverage = distinct products in some first 7 / the version's products; 0 where
-- recsys.evaluate gives 0 (no adders); NULL when no customer has both snapshots. Reads the
-- source relation with the caller's rights.
CREATE FUNCTION recsys.compute_realized_quality(model text, version integer, month date, source text, set_id bigint)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    spec    jsonb;
    src     record;
    added   text;
    pred    text;
BEGIN
    SELECT m.feature_spec INTO spec FROM recsys.models m
     WHERE m.name = compute_realized_quality.model AND m.version = compute_realized_quality.version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" version % does not exist', compute_realized_quality.model, compute_realized_quality.version
            USING ERRCODE = 'undefined_object';
    END IF;
    src := recsys.snapshot_source(spec);
    -- The added products, in the version's product order, from the rows cu (month - 1) and nx (month).
    SELECT 'pg_catalog.array_remove(ARRAY[' ||
           string_agg(CASE WHEN b
                           THEN format('CASE WHEN nx.%1$I IS TRUE AND cu.%1$I IS NOT TRUE THEN %2$L::pg_catalog.text END', p, p)
                           ELSE format('CASE WHEN (nx.%1$I)::pg_catalog.float8 = 1 AND (cu.%1$I)::pg_catalog.float8 IS DISTINCT FROM 1 THEN %2$L::pg_catalog.text END', p, p)
                      END, ', ' ORDER BY i) ||
           '], NULL)'
      INTO added
      FROM unnest(src.products, src.product_is_boolean) WITH ORDINALITY AS x(p, b, i);
    IF compute_realized_quality.source = 'batch' THEN
        pred := 'SELECT r.customer_id AS id, r.products[1:7] AS top FROM recsys.prediction_set_rows r WHERE r.set_id = $5';
    ELSE
        -- The latest logged call of each customer for the month.
        pred := 'SELECT DISTINCT ON (l.customer_id) l.customer_id AS id, l.products[1:7] AS top
                   FROM recsys.prediction_log l
                  WHERE l.model = $1 AND l.version = $2 AND l.month = $3
                  ORDER BY l.customer_id, l.id DESC';
    END IF;
    DELETE FROM recsys.realized_quality_results r
     WHERE r.model = compute_realized_quality.model AND r.version = compute_realized_quality.version
       AND r.month = compute_realized_quality.month AND r.source = compute_realized_quality.source
       AND r.set_id IS NOT DISTINCT FROM compute_realized_quality.set_id;
    DELETE FROM recsys.realized_quality_product_results r
     WHERE r.model = compute_realized_quality.model AND r.version = compute_realized_quality.version
       AND r.month = compute_realized_quality.month AND r.source = compute_realized_quality.source
       AND r.set_id IS NOT DISTINCT FROM compute_realized_quality.set_id;
    EXECUTE format(
        $q$
        WITH pred AS MATERIALIZED (%1$s),
        per AS MATERIALIZED (
            SELECT p.id, p.top, %2$s AS added
              FROM pred p
              JOIN %3$s AS cu ON cu.%4$I = p.id AND %5$s >= ($3 - '1 month'::pg_catalog.interval) AND %5$s < $3
              JOIN %3$s AS nx ON nx.%4$I = p.id AND %6$s >= $3 AND %6$s < ($3 + '1 month'::pg_catalog.interval)
        ),
        scored AS MATERIALIZED (
            -- Most customers add nothing: their ap and hits are 0 without looking.
            SELECT s.id, s.top, s.added, pg_catalog.cardinality(s.added) AS n_added,
                   CASE WHEN pg_catalog.cardinality(s.added) > 0
                        THEN recsys.average_precision_at_7(s.top, s.added) ELSE 0 END AS ap,
                   CASE WHEN pg_catalog.cardinality(s.added) > 0
                        THEN (SELECT pg_catalog.count(*) FROM unnest(s.top) AS t(p) WHERE t.p = ANY (s.added))
                        ELSE 0 END AS hits
              FROM per s
        ),
        overall AS (
            INSERT INTO recsys.realized_quality_results
                   (model, version, month, source, set_id, predicted, customers, adders, map7, map7_adders, precision7,
                    recall7, coverage)
            SELECT $1, $2, $3, $4, $5, (SELECT pg_catalog.count(*) FROM pred), pg_catalog.count(*),
                   pg_catalog.count(*) FILTER (WHERE s.n_added > 0),
                   CASE WHEN pg_catalog.count(*) > 0 THEN
                       coalesce(pg_catalog.sum(s.ap), 0) / pg_catalog.count(*) END,
                   CASE WHEN pg_catalog.count(*) > 0 THEN
                       coalesce(pg_catalog.sum(s.ap) FILTER (WHERE s.n_added > 0)
                                / nullif(pg_catalog.count(*) FILTER (WHERE s.n_added > 0), 0), 0) END,
                   CASE WHEN pg_catalog.count(*) > 0 THEN
                       coalesce(pg_catalog.avg(s.hits::pg_catalog.float8 / 7) FILTER (WHERE s.n_added > 0), 0) END,
                   CASE WHEN pg_catalog.count(*) > 0 THEN
                       coalesce(pg_catalog.avg(s.hits::pg_catalog.float8 / s.n_added) FILTER (WHERE s.n_added > 0), 0) END,
                   CASE WHEN pg_catalog.count(*) > 0 THEN
                       (SELECT pg_catalog.count(*) FROM (SELECT t.p FROM scored c, unnest(c.top) AS t(p)
                                                          GROUP BY t.p) d)::pg_catalog.float8
                       / pg_catalog.cardinality($6) END
              FROM scored s
        )
        INSERT INTO recsys.realized_quality_product_results
               (model, version, month, source, set_id, product, customers, predicted, adds, hits)
        SELECT $1, $2, $3, $4, $5, x.p, (SELECT pg_catalog.count(*) FROM scored),
               coalesce(pr.n, 0), coalesce(ad.n, 0), coalesce(h.n, 0)
          FROM unnest($6) AS x(p)
          LEFT JOIN (SELECT t.p, pg_catalog.count(*) AS n FROM scored s, unnest(s.top) AS t(p) GROUP BY t.p) pr
                 ON pr.p = x.p
          LEFT JOIN (SELECT a.p, pg_catalog.count(*) AS n FROM scored s, unnest(s.added) AS a(p)
                      WHERE s.n_added > 0 GROUP BY a.p) ad
                 ON ad.p = x.p
          LEFT JOIN (SELECT t.p, pg_catalog.count(*) AS n FROM scored s, unnest(s.top) AS t(p)
                      WHERE s.n_added > 0 AND t.p = ANY (s.added) GROUP BY t.p) h
                 ON h.p = x.p
        $q$,
        pred, added, src.relation, src.id_column,
        recsys.snapshot_month_sql('cu', src.month_column, src.month_is_timestamptz),
        recsys.snapshot_month_sql('nx', src.month_column, src.month_is_timestamptz))
    USING compute_realized_quality.model, compute_realized_quality.version, compute_realized_quality.month,
          compute_realized_quality.source, compute_realized_quality.set_id, src.products;
END
$$;
COMMENT ON FUNCTION recsys.compute_realized_quality(text, integer, date, text, bigint) IS 'Computes (or recomputes) the realized quality of one logged month or prediction set into the results tables (internal to recsys.update_realized_quality)';

-- The (source, set, version, month) groups of a model not computed yet (recompute: all of them):
-- every (version, month) of the prediction log, found by a loose scan of its index (one probe
-- per group, however many rows the log holds), and every prediction set.
CREATE FUNCTION recsys.realized_quality_pending(model text, recompute boolean DEFAULT false)
RETURNS TABLE (source text, set_id bigint, version integer, month date)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE logged AS (
        (SELECT l.month, l.version FROM recsys.prediction_log l
          WHERE l.model = realized_quality_pending.model ORDER BY l.month, l.version LIMIT 1)
        UNION ALL
        SELECT n.month, n.version
          FROM logged g,
               LATERAL (SELECT l.month, l.version FROM recsys.prediction_log l
                         WHERE l.model = realized_quality_pending.model AND (l.month, l.version) > (g.month, g.version)
                         ORDER BY l.month, l.version LIMIT 1) n
    ), groups AS (
        SELECT 'online' AS source, NULL::bigint AS set_id, g.version, g.month FROM logged g
        UNION ALL
        SELECT 'batch', s.id, s.version, s.month FROM recsys.prediction_sets s
         WHERE s.model = realized_quality_pending.model
    )
    SELECT g.source, g.set_id, g.version, g.month
      FROM groups g
     WHERE recompute OR NOT EXISTS (
               SELECT 1 FROM recsys.realized_quality_results r
                WHERE r.model = realized_quality_pending.model AND r.version = g.version AND r.month = g.month
                  AND r.source = g.source AND r.set_id IS NOT DISTINCT FROM g.set_id)
     ORDER BY g.month, g.version, g.source, g.set_id
$$;
COMMENT ON FUNCTION recsys.realized_quality_pending(text, boolean) IS 'The logged months and prediction sets of a model whose realized quality is not computed yet (recompute: all), whether or not their month has landed (internal)';

-- Computes the realized quality of every (version, month) of the model's prediction log and of
-- every prediction set whose predicted month's snapshots now exist in the version's source
-- relation and that is not computed yet (recompute => true: all of them again, e.g. after a
-- month landed in pieces). Returns how many it computed. SECURITY INVOKER: it reads the log,
-- the sets and the source relations with the caller's rights. Called by
-- refresh_recommendations() when a month has landed; schedulable on its own (pg_cron).
CREATE FUNCTION recsys.update_realized_quality(model text, recompute boolean DEFAULT false) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    g        record;
    spec     jsonb;
    relation text;
    latest   jsonb := '{}';
    last     date;
    computed integer := 0;
BEGIN
    IF update_realized_quality.model IS NULL OR recompute IS NULL THEN
        RAISE EXCEPTION 'model name and recompute must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM recsys.models m WHERE m.name = update_realized_quality.model) THEN
        RAISE EXCEPTION 'model "%" does not exist', update_realized_quality.model USING ERRCODE = 'undefined_object';
    END IF;
    -- One computation per model at a time: a second waits, then finds the work done.
    PERFORM pg_advisory_xact_lock(hashtext('recsys.realized_quality'), hashtext(update_realized_quality.model));
    FOR g IN SELECT * FROM recsys.realized_quality_pending(update_realized_quality.model, recompute)
    LOOP
        SELECT m.feature_spec INTO spec FROM recsys.models m
         WHERE m.name = update_realized_quality.model AND m.version = g.version;
        CONTINUE WHEN NOT FOUND;
        relation := spec -> 'source' ->> 'relation';
        -- The latest month of each relation, read once per call.
        IF NOT latest ? relation THEN
            BEGIN
                latest := latest || jsonb_build_object(relation, recsys.snapshot_latest_month(spec));
            EXCEPTION WHEN undefined_table OR undefined_column THEN
                -- A relation (or column) of an old version that is gone: nothing to compute.
                RAISE WARNING 'realized quality of model "%" version % skipped: %', update_realized_quality.model,
                              g.version, SQLERRM;
                latest := latest || jsonb_build_object(relation, NULL);
            END;
        END IF;
        last := (latest ->> relation)::date;
        CONTINUE WHEN last IS NULL OR last < g.month;
        PERFORM recsys.compute_realized_quality(update_realized_quality.model, g.version, g.month, g.source, g.set_id);
        computed := computed + 1;
    END LOOP;
    RETURN computed;
END
$$;
COMMENT ON FUNCTION recsys.update_realized_quality(text, boolean) IS 'Computes realized quality (recsys.realized_quality) for every logged month and prediction set of a model whose predicted month''s snapshots now exist and that is not computed yet (recompute => true: again); returns how many; called by refresh_recommendations()';

---------------------------------------------------------------------------------------------
-- refresh_recommendations keeps its output as a prediction set
---------------------------------------------------------------------------------------------

-- As in 0.2.0, plus: the source's latest month is read first, and the scoring reads snapshots
-- up to it, which makes the set's month exact even if a month lands during the refresh; the
-- realized quality of earlier predictions whose month has landed is computed before the scoring
-- (a failure there is a WARNING: it never stops a refresh); the rows written are copied to
-- recsys.prediction_set_rows in the same transaction.
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
    DELETE FROM recsys.recommendations r WHERE r.model_name = refresh_recommendations.model;
    INSERT INTO recsys.recommendations (model_name, customer_id, model_version, computed_at, products, scores)
    SELECT s.model_name, s.customer_id, s.model_version, s.computed_at, s.products, s.scores
      FROM recsys.score_all(refresh_recommendations.model, refresh_recommendations.k,
                            as_of => (latest + interval '1 month' - interval '1 day')::date) s;
    GET DIAGNOSTICS written = ROW_COUNT;
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
COMMENT ON FUNCTION recsys.refresh_recommendations(text, integer) IS 'Recomputes recsys.recommendations for one model from the snapshots up to the latest month and keeps them as a prediction set (recsys.prediction_sets) for realized quality, after updating the realized quality of earlier predictions; returns the number of customers';

-- Retention: drops the model's prediction sets refreshed before older_than, with their rows;
-- their realized quality, once computed, stays. Returns how many sets it dropped.
CREATE FUNCTION recsys.drop_prediction_sets(model text, older_than date) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dropped integer;
BEGIN
    IF drop_prediction_sets.model IS NULL OR older_than IS NULL THEN
        RAISE EXCEPTION 'model name and older_than must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    WITH gone AS (
        DELETE FROM recsys.prediction_sets s
         WHERE s.model = drop_prediction_sets.model AND s.refreshed_at < older_than
        RETURNING s.id
    ), rows_gone AS (
        DELETE FROM recsys.prediction_set_rows r WHERE r.set_id IN (SELECT g.id FROM gone g)
    )
    SELECT count(*) INTO dropped FROM gone;
    RETURN dropped;
END
$$;
COMMENT ON FUNCTION recsys.drop_prediction_sets(text, date) IS 'Retention: drops a model''s prediction sets refreshed before older_than, with their rows (computed realized quality stays); returns how many';

---------------------------------------------------------------------------------------------
-- Dumps and privileges
---------------------------------------------------------------------------------------------

-- What was predicted and what it scored are user data: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('recsys.prediction_log', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.prediction_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.prediction_sets', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.prediction_sets_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.prediction_set_rows', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.realized_quality_results', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.realized_quality_product_results', '');

-- Nothing to PUBLIC. The log and the sets hold per-customer rankings: recsys_admin's, which
-- prunes them; the log is written only as the extension's owner by the scoring functions, the
-- sets and results by the admin's refresh and update_realized_quality (the caller's rights).
-- Readers see the aggregates.
REVOKE ALL ON recsys.prediction_log, recsys.prediction_sets, recsys.prediction_set_rows,
              recsys.realized_quality_results, recsys.realized_quality_product_results,
              recsys.realized_quality, recsys.realized_quality_by_product FROM PUBLIC;
REVOKE ALL ON SEQUENCE recsys.prediction_log_id_seq, recsys.prediction_sets_id_seq FROM PUBLIC;
GRANT SELECT, DELETE ON recsys.prediction_log TO recsys_admin;
GRANT SELECT, INSERT, DELETE ON recsys.prediction_sets, recsys.prediction_set_rows, recsys.realized_quality_results,
                                recsys.realized_quality_product_results TO recsys_admin;
GRANT USAGE ON SEQUENCE recsys.prediction_sets_id_seq TO recsys_admin;
GRANT SELECT ON recsys.realized_quality, recsys.realized_quality_by_product TO recsys_reader;
GRANT EXECUTE ON FUNCTION recsys.prediction_log_counters() TO recsys_reader;
GRANT EXECUTE ON FUNCTION
    recsys.realized_quality_pending(text, boolean),
    recsys.snapshot_source(jsonb),
    recsys.snapshot_month_sql(text, text, boolean),
    recsys.snapshot_latest_month(jsonb),
    recsys.compute_realized_quality(text, integer, date, text, bigint),
    recsys.update_realized_quality(text, boolean),
    recsys.drop_prediction_sets(text, date)
TO recsys_admin;
