-- One place to look (docs/monitoring.md, "One place to look"): recsys.model_report(name), the
-- history of one model as rows a DBA or analyst reads on one screen, and
-- recsys.model_report_svg(name), the same as a picture. Both are read-only and built from what
-- the other monitoring objects keep or compute: the registry and its events, the validation
-- records, recsys.realized_quality, recsys.feature_drift, recsys.prediction_skew,
-- recsys.training_serving_skew and recsys.serving_stats.
--
-- Which months: drift for every month after the production version's training reference that
-- has snapshots, the latest `months` (12) of them (one scan of each month); prediction skew and
-- training/serving skew for one month, the latest whose following month has landed (skew
-- scores every customer of that month, as score_all does). Nothing is stored: each call
-- computes again.
--
-- Privileges: recsys_admin. The functions are SECURITY INVOKER and read the feature
-- references, the prediction sets and log and the source relation (through feature_drift and
-- prediction_skew), none of which recsys_reader may read; what they return is aggregated (no
-- customer id, no ranking of a customer).

---------------------------------------------------------------------------------------------
-- Helpers (internal; granted to recsys_admin because the report runs with the caller's rights)
---------------------------------------------------------------------------------------------

-- The version the report is about: production, else the latest version.
CREATE FUNCTION recsys.model_report_subject(model_name text, OUT version integer, OUT status text, OUT spec jsonb,
                                            OUT latest_month date)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT m.version, m.status, m.feature_spec INTO version, status, spec FROM recsys.models m
     WHERE m.name = model_name
     ORDER BY (m.status = 'production') DESC, m.version DESC
     LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = 'undefined_object';
    END IF;
    -- A source that is gone leaves the month unknown; the report says so rather than failing.
    BEGIN
        latest_month := recsys.snapshot_latest_month(spec);
    EXCEPTION WHEN undefined_table OR undefined_column THEN
        latest_month := NULL;
    END;
END
$$;
COMMENT ON FUNCTION recsys.model_report_subject(text) IS 'The version a model report describes (production, else the latest), its feature spec and its source''s latest month; raises for an unknown model (internal)';

-- Realized quality, one row per (version, month): the latest prediction set (batch, every
-- customer) when there is one, else the prediction log (online, a sample); the online figures
-- beside it when both exist.
CREATE FUNCTION recsys.model_report_quality(model_name text)
RETURNS TABLE (version integer, month date, source text, set_id bigint, map7 double precision,
               map7_adders double precision, precision7 double precision, recall7 double precision,
               coverage double precision, customers bigint, adders bigint,
               online_map7 double precision, online_customers bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT ON (r.version, r.month)
           r.version, r.month, r.source, r.set_id, r.map7, r.map7_adders, r.precision7, r.recall7, r.coverage,
           r.customers, r.adders, o.map7, o.customers
      FROM recsys.realized_quality r
      LEFT JOIN recsys.realized_quality o
             ON r.source = 'batch' AND o.source = 'online' AND o.model = r.model AND o.version = r.version
            AND o.month = r.month
     WHERE r.model = model_name
     ORDER BY r.version, r.month, (r.source = 'batch') DESC, r.set_id DESC NULLS LAST
$$;
COMMENT ON FUNCTION recsys.model_report_quality(text) IS 'Realized quality of a model, one row per version and predicted month: the latest prediction set, else the prediction log (internal to the model report)';

-- What each version was expected to score: its latest validation record (the promotion
-- gate's held-out month), else its latest recorded evaluation, else the figure on its
-- early-stopping month (optimistic: training chose the epoch on it).
CREATE FUNCTION recsys.model_report_estimates(model_name text)
RETURNS TABLE (version integer, month date, map7 double precision, origin text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.version, e.month, e.map7, e.origin
      FROM recsys.models m,
           LATERAL (
               SELECT date_trunc('month', v.month)::date AS month, v.candidate_map7 AS map7,
                      format('validation record %s (promotion gate; %s customers)', v.id,
                             to_char(v.customers, 'FM999,999,999,990')) AS origin, 1 AS pref
                 FROM recsys.model_validations v
                WHERE v.name = m.name AND v.candidate_version = m.version
               UNION ALL
               SELECT to_date(x.month, 'YYYY-MM'), (x.results -> 'lstm' ->> 'map7')::double precision,
                      'recorded evaluation (recsys.evaluate_and_record)', 2
                 FROM jsonb_each(CASE WHEN jsonb_typeof(m.metrics -> 'evaluation') = 'object'
                                      THEN m.metrics -> 'evaluation' ELSE '{}' END) AS x(month, results)
                WHERE x.month ~ '^\d{4}-\d{2}$' AND jsonb_typeof(x.results -> 'lstm' -> 'map7') = 'number'
               UNION ALL
               SELECT to_date(m.metrics ->> 'validation_month', 'YYYY-MM'), (m.metrics ->> 'map7')::double precision,
                      'early-stopping month (optimistic)', 3
                WHERE (m.metrics ->> 'validation_month') ~ '^\d{4}-\d{2}$' AND jsonb_typeof(m.metrics -> 'map7') = 'number'
               ORDER BY pref, month DESC
               LIMIT 1) e
     WHERE m.name = model_name
     ORDER BY m.version
$$;
COMMENT ON FUNCTION recsys.model_report_estimates(text) IS 'Each version''s expected MAP@7 and the month it was measured on: latest validation record, else recorded evaluation, else early-stopping month (internal to the model report)';

-- Promotions and rollbacks, each placed on the month axis at the first month the version it
-- put into production predicted after it (a prediction set refreshed, or an online call logged,
-- after the event); the current production version, if it has predicted nothing since, at the
-- month after the latest snapshot month (what it predicts next); otherwise no month.
CREATE FUNCTION recsys.model_report_markers(model_name text, latest_month date)
RETURNS TABLE (event_id bigint, action text, version integer, previous_version integer, at timestamptz, by name,
               forced boolean, reason text, validation_id bigint, month date)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.id, e.action, e.version, e.previous_version, e.at, e.by, e.forced, e.reason, e.validation_id,
           coalesce(least((SELECT min(s.month) FROM recsys.prediction_sets s
                            WHERE s.model = e.name AND s.version = e.version AND s.refreshed_at >= e.at),
                          (SELECT l.month FROM recsys.prediction_log l
                            WHERE l.model = e.name AND l.version = e.version AND l.at >= e.at
                            ORDER BY l.month LIMIT 1)),
                    CASE WHEN m.status = 'production'
                          AND NOT EXISTS (SELECT 1 FROM recsys.model_events later
                                           WHERE later.name = e.name AND later.id > e.id
                                             AND later.action IN ('promote', 'rollback'))
                         THEN (latest_month + interval '1 month')::date END)
      FROM recsys.model_events e
      JOIN recsys.models m ON m.name = e.name AND m.version = e.version
     WHERE e.name = model_name AND e.action IN ('promote', 'rollback')
     ORDER BY e.id
$$;
COMMENT ON FUNCTION recsys.model_report_markers(text, date) IS 'Promotions and rollbacks of a model with the first month the version predicted after each (internal to the model report)';

-- Feature drift of `version` for every month after its reference's months that has snapshots
-- (the latest `months` of them, up to the latest snapshot month). A row with feature NULL says
-- why there is nothing (no reference, no month after it, the relation gone).
CREATE FUNCTION recsys.model_report_drift(model_name text, version integer, months integer DEFAULT 12)
RETURNS TABLE (month date, feature text, kind text, psi double precision, status text, null_share double precision,
               reference_null_share double precision, unseen_share double precision, note text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    spec     jsonb;
    ref_to   date;
    latest   date;
    first_month date;
    m        date;
    message  text;
BEGIN
    SELECT r.computed_from INTO spec FROM recsys.feature_references r
     WHERE r.name = model_report_drift.model_name AND r.version = model_report_drift.version;
    IF NOT FOUND THEN
        note := format('version %s has no feature reference (recsys.train() records one; '
                       'recsys.record_feature_reference() records one for a model registered otherwise)',
                       model_report_drift.version);
        RETURN NEXT;
        RETURN;
    END IF;
    ref_to := to_date(spec -> 'months' ->> 1, 'YYYY-MM');
    SELECT m2.feature_spec INTO spec FROM recsys.models m2
     WHERE m2.name = model_report_drift.model_name AND m2.version = model_report_drift.version;
    BEGIN
        latest := recsys.snapshot_latest_month(spec);
    EXCEPTION WHEN undefined_table OR undefined_column THEN
        GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
        note := message;
        RETURN NEXT;
        RETURN;
    END;
    IF latest IS NULL OR ref_to IS NULL OR latest <= ref_to THEN
        note := format('no snapshot month after the training reference (%s) yet',
                       coalesce(to_char(ref_to, 'YYYY-MM'), 'months not recorded'));
        RETURN NEXT;
        RETURN;
    END IF;
    first_month := greatest((ref_to + interval '1 month')::date,
                      (latest - make_interval(months => greatest(model_report_drift.months, 1) - 1))::date);
    FOR m IN SELECT g::date FROM generate_series(first_month, latest, interval '1 month') g LOOP
        BEGIN
            RETURN QUERY
                SELECT m, d.feature, d.kind, d.psi, d.status, d.null_share, d.reference_null_share, d.unseen_share,
                       NULL::text
                  FROM recsys.feature_drift(model_report_drift.model_name, m, model_report_drift.version) d;
        EXCEPTION WHEN no_data_found THEN
            NULL;   -- a month without snapshots (a gap): no column in the heat map
        END;
    END LOOP;
END
$$;
COMMENT ON FUNCTION recsys.model_report_drift(text, integer, integer) IS 'recsys.feature_drift of one version for each month after its training reference that has snapshots, the latest `months` of them; a row with feature NULL says why there is none (internal to the model report)';

-- Prediction skew of `version` on the latest month whose following month has snapshots. A row
-- with product NULL says why there is none.
CREATE FUNCTION recsys.model_report_skew(model_name text, version integer)
RETURNS TABLE (month date, product text, segment text, customers bigint, calibrated_predicted double precision,
               observed_add_rate double precision, observed_adds bigint, ratio double precision, status text,
               note text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    spec    jsonb;
    latest  date;
    message text;
BEGIN
    SELECT m2.feature_spec INTO spec FROM recsys.models m2
     WHERE m2.name = model_report_skew.model_name AND m2.version = model_report_skew.version;
    BEGIN
        latest := recsys.snapshot_latest_month(spec);
    EXCEPTION WHEN undefined_table OR undefined_column THEN
        GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
        note := message;
        RETURN NEXT;
        RETURN;
    END;
    IF latest IS NULL THEN
        note := 'the source relation has no snapshots';
        RETURN NEXT;
        RETURN;
    END IF;
    month := (latest - interval '1 month')::date;
    BEGIN
        RETURN QUERY
            SELECT (latest - interval '1 month')::date, s.product, s.segment, s.customers, s.calibrated_predicted,
                   s.observed_add_rate, s.observed_adds, s.ratio, s.status, NULL::text
              FROM recsys.prediction_skew(model_report_skew.model_name, (latest - interval '1 month')::date,
                                          model_report_skew.version) s;
    EXCEPTION WHEN no_data_found OR object_not_in_prerequisite_state OR data_exception THEN
        GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
        note := message;
        RETURN NEXT;
    END;
END
$$;
COMMENT ON FUNCTION recsys.model_report_skew(text, integer) IS 'recsys.prediction_skew of one version on the latest month whose following month has landed; a row with product NULL says why there is none (internal to the model report)';

-- How surprising a count of adds is under the predicted rate: the Poisson deviance
-- 2 (observed ln(observed / expected) - (observed - expected)). It grows with both the size of
-- the gap and the evidence for it, so the report ranks a clear gap in a large segment above a
-- wide ratio on a handful of customers.
CREATE FUNCTION recsys.model_report_skew_deviance(observed double precision, expected double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN expected > 0 AND observed >= 0
            THEN 2 * (CASE WHEN observed > 0 THEN observed * ln(observed / expected) ELSE 0 END - (observed - expected)) END;
COMMENT ON FUNCTION recsys.model_report_skew_deviance(double precision, double precision) IS 'Poisson deviance of an observed count against an expected one, to rank skewed products (internal to the model report)';

-- Text and attribute values inside SVG: the five XML special characters, and control
-- characters (not allowed in XML 1.0) as spaces.
CREATE FUNCTION recsys.svg_escape(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN replace(replace(replace(replace(replace(
           regexp_replace(value, '[\x01-\x08\x0b\x0c\x0e-\x1f]', ' ', 'g'),
           '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;');
COMMENT ON FUNCTION recsys.svg_escape(text) IS 'Text made safe for SVG (XML) text and attribute values';

-- A short product label for charts: the Santander column ind_tjcr_fin_ult1 reads tjcr; other
-- names stay as they are.
CREATE FUNCTION recsys.model_report_product_label(product text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN coalesce(substring(product FROM '^ind_(.+?)(?:_fin)?_ult1$'), product);
COMMENT ON FUNCTION recsys.model_report_product_label(text) IS 'Short label of a product column (ind_tjcr_fin_ult1 -> tjcr) for the model report';

---------------------------------------------------------------------------------------------
-- recsys.model_report(name): rows
---------------------------------------------------------------------------------------------
-- Sections, in this order (the rows come in it; ORDER BY section loses it):
--   model        the version described, the latest snapshot month
--   versions     one row per version: status, registration, training months; value = its
--                expected MAP@7 (see estimates)
--   events       promotions, rollbacks and shadow starts/stops; month = the first month the
--                version predicted after the event
--   retrain      the latest 5 retrain cycles
--   quality      per version: the validation estimate (item validation_map7), then per
--                predicted month realized MAP@7 (map7, Kaggle definition over all customers)
--                and MAP@7 over the customers who added (map7_adders)
--   drift        per month after training: features (and products' holding rates) at warn or
--                alert; for the latest month also the five highest PSIs whatever their status
--   skew         the most skewed products (status warn/alert, per segment, by how far the
--                ratio is from 1), else the five farthest overall
--   serving_skew encoded inputs flagged by recsys.training_serving_skew on the skew month
--   serving      per version and entry point: calls (value), errors by SQLSTATE, latency;
--                or why the statistics are unavailable
CREATE FUNCTION recsys.model_report(name text, months integer DEFAULT 12)
RETURNS TABLE (section text, item text, month date, version integer, value double precision, detail text)
LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    subject  record;
    spec     jsonb;
    latest   date;
    r        record;
    n        integer;
    message  text;
    hint     text;
    skew_m   date;
BEGIN
    subject := recsys.model_report_subject(model_report.name);
    spec := subject.spec;
    latest := subject.latest_month;

    -- model ---------------------------------------------------------------------------------
    section := 'model'; item := 'described_version'; month := latest; version := subject.version; value := NULL;
    detail := format('%s version %s; source %s, latest snapshot month %s',
                     CASE WHEN subject.status = 'production' THEN 'production' ELSE 'no production version; latest' END,
                     subject.version, spec -> 'source' ->> 'relation', coalesce(to_char(latest, 'YYYY-MM'), 'none'));
    RETURN NEXT;

    -- versions ------------------------------------------------------------------------------
    FOR r IN SELECT m.version AS v, m.status, m.created_at, m.created_by, m.training_data AS td, e.map7, e.month AS em,
                    e.origin
               FROM recsys.models m
               LEFT JOIN recsys.model_report_estimates(model_report.name) e ON e.version = m.version
              WHERE m.name = model_report.name ORDER BY m.version LOOP
        section := 'versions'; item := r.status; month := NULL; version := r.v; value := r.map7;
        detail := format('registered %s by %s; %s; expected MAP@7 %s',
                         to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'), r.created_by,
                         CASE WHEN jsonb_typeof(r.td -> 'train_months') = 'array'
                              THEN format('trained on %s..%s, early stopping %s', r.td -> 'train_months' ->> 0,
                                          r.td -> 'train_months' ->> 1, coalesce(r.td ->> 'validation_month', 'none'))
                              ELSE 'training data not recorded' END,
                         CASE WHEN r.map7 IS NULL THEN 'not recorded'
                              ELSE format('%s (%s, %s)', round(r.map7::numeric, 5), to_char(r.em, 'YYYY-MM'), r.origin) END);
        RETURN NEXT;
    END LOOP;

    -- events --------------------------------------------------------------------------------
    -- The version an event replaced: a promotion records it; a rollback records where a second
    -- rollback would lead, so its replaced version is the one the event before put in.
    FOR r IN SELECT e.id, e.action, e.version AS v, e.at, e.by AS actor, e.forced, e.reason, e.validation_id,
                    k.month AS km,
                    CASE WHEN e.action = 'promote' THEN e.previous_version
                         ELSE lag(e.version) OVER (PARTITION BY e.action IN ('promote', 'rollback') ORDER BY e.id) END
                        AS previous_version
               FROM recsys.model_events e
               LEFT JOIN recsys.model_report_markers(model_report.name, latest) k ON k.event_id = e.id
              WHERE e.name = model_report.name AND e.action <> 'register' ORDER BY e.id LOOP
        section := 'events'; item := r.action; month := r.km; version := r.v; value := NULL;
        detail := concat_ws('; ', to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"') || ' by ' || r.actor,
                            CASE WHEN r.action IN ('promote', 'rollback')
                                 THEN 'replaced ' || coalesce('version ' || r.previous_version, 'no production version') END,
                            CASE WHEN r.forced THEN 'forced' WHEN r.validation_id IS NOT NULL
                                 THEN 'validation record ' || r.validation_id END,
                            CASE WHEN r.reason IS NOT NULL THEN 'reason: ' || r.reason END,
                            CASE WHEN r.action IN ('promote', 'rollback') THEN
                                 coalesce('first predicted month after it: ' || to_char(r.km, 'YYYY-MM'),
                                          'predicted nothing after it') END);
        RETURN NEXT;
    END LOOP;

    -- retrain -------------------------------------------------------------------------------
    FOR r IN SELECT t.* FROM (SELECT t0.* FROM recsys.training_runs t0 WHERE t0.name = model_report.name
                              ORDER BY t0.id DESC LIMIT 5) t ORDER BY t.id LOOP
        section := 'retrain'; item := r.status; month := NULL; version := r.candidate_version; value := r.id;
        detail := concat_ws('; ', 'run ' || r.id || ' started ' || to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
                                  || ' by ' || r.started_by,
                            'production ' || coalesce(r.production_before::text, 'none') || ' -> '
                                  || coalesce(r.production_after::text, 'none'),
                            CASE WHEN r.error IS NOT NULL THEN 'error ' || coalesce(r.error_sqlstate, '') || ': ' || r.error END);
        RETURN NEXT;
    END LOOP;

    -- quality -------------------------------------------------------------------------------
    FOR r IN SELECT e.version AS v, e.month AS em, e.map7, e.origin FROM recsys.model_report_estimates(model_report.name) e
              ORDER BY e.version LOOP
        section := 'quality'; item := 'validation_map7'; month := r.em; version := r.v; value := r.map7;
        detail := 'expected MAP@7 from the ' || r.origin;
        RETURN NEXT;
    END LOOP;
    FOR r IN SELECT q.*, e.map7 AS expected FROM recsys.model_report_quality(model_report.name) q
               LEFT JOIN recsys.model_report_estimates(model_report.name) e ON e.version = q.version
              ORDER BY q.month, q.version LOOP
        section := 'quality'; item := 'map7'; month := r.month; version := r.version; value := r.map7;
        detail := format('%s: %s customers, %s added; precision@7 %s, recall@7 %s, coverage %s; %s%s',
                         CASE WHEN r.source = 'batch' THEN 'prediction set ' || r.set_id ELSE 'online (prediction log)' END,
                         to_char(r.customers, 'FM999,999,999,990'), to_char(r.adders, 'FM999,999,999,990'),
                         coalesce(round(r.precision7::numeric, 4)::text, '-'), coalesce(round(r.recall7::numeric, 4)::text, '-'),
                         coalesce(round(r.coverage::numeric, 3)::text, '-'),
                         CASE WHEN r.expected IS NULL OR r.map7 IS NULL THEN 'no validation estimate'
                              ELSE format('%s%% of the validation estimate %s',
                                          round((100 * r.map7 / nullif(r.expected, 0))::numeric, 1), round(r.expected::numeric, 5)) END,
                         CASE WHEN r.online_map7 IS NOT NULL
                              THEN format('; online log: %s over %s customers', round(r.online_map7::numeric, 5),
                                          to_char(r.online_customers, 'FM999,999,999,990')) ELSE '' END);
        RETURN NEXT;
        item := 'map7_adders'; value := r.map7_adders;
        detail := 'MAP@7 over the customers who added a product';
        RETURN NEXT;
    END LOOP;

    -- drift ---------------------------------------------------------------------------------
    FOR r IN SELECT d.*, max(d.month) OVER () AS last_month,
                    rank() OVER (PARTITION BY d.month ORDER BY d.psi DESC NULLS LAST, d.feature) AS rk
               FROM recsys.model_report_drift(model_report.name, subject.version, model_report.months) d
              ORDER BY d.month, d.psi DESC NULLS LAST, d.feature LOOP
        IF r.feature IS NULL THEN
            section := 'drift'; item := 'unavailable'; month := NULL; version := subject.version; value := NULL;
            detail := r.note;
            RETURN NEXT;
            CONTINUE;
        END IF;
        CONTINUE WHEN r.status = 'ok' AND NOT (r.month = r.last_month AND r.rk <= 5);
        section := 'drift'; item := r.feature; month := r.month; version := subject.version; value := r.psi;
        detail := format('%s: PSI %s against the training reference%s; NULL share %s%% (reference %s%%)%s',
                         r.status, round(r.psi::numeric, 4),
                         CASE WHEN r.kind = 'product' THEN ' (holding rate)' ELSE '' END,
                         round((100 * r.null_share)::numeric, 2), round((100 * r.reference_null_share)::numeric, 2),
                         CASE WHEN r.unseen_share IS NOT NULL
                              THEN format('; %s%% of values outside what training saw', round((100 * r.unseen_share)::numeric, 2))
                              ELSE '' END);
        RETURN NEXT;
    END LOOP;

    -- skew ----------------------------------------------------------------------------------
    n := 0;
    FOR r IN SELECT s.*, count(*) FILTER (WHERE s.status <> 'ok') OVER () AS flagged
               FROM recsys.model_report_skew(model_report.name, subject.version) s
              ORDER BY (s.product IS NULL) DESC, (s.status <> 'ok') DESC,
                       recsys.model_report_skew_deviance(s.observed_adds, s.calibrated_predicted * s.customers) DESC NULLS LAST,
                       s.product, s.segment
    LOOP
        skew_m := r.month;
        IF r.product IS NULL THEN
            section := 'skew'; item := 'unavailable'; month := r.month; version := subject.version; value := NULL;
            detail := r.note;
            RETURN NEXT;
            EXIT;
        END IF;
        -- Flagged cells, the most surprising first (at most 10); when none is flagged, the five
        -- most surprising overall rows.
        EXIT WHEN r.flagged > 0 AND (r.status = 'ok' OR n >= 10);
        CONTINUE WHEN r.flagged = 0 AND r.segment <> 'all';
        EXIT WHEN r.flagged = 0 AND n >= 5;
        section := 'skew'; item := r.product; month := r.month; version := subject.version; value := r.ratio;
        detail := format('%s, segment %s: predicted %s%% (calibrated) against %s%% observed in %s (%s adds of %s customers)',
                         r.status, r.segment, round((100 * r.calibrated_predicted)::numeric, 3),
                         round((100 * r.observed_add_rate)::numeric, 3),
                         to_char(r.month + interval '1 month', 'YYYY-MM'), r.observed_adds,
                         to_char(r.customers, 'FM999,999,999,990'));
        RETURN NEXT;
        n := n + 1;
    END LOOP;

    -- serving_skew --------------------------------------------------------------------------
    IF skew_m IS NOT NULL THEN
        BEGIN
            FOR r IN SELECT t.* FROM recsys.training_serving_skew(model_report.name, skew_m, subject.version) t
                      WHERE t.flagged ORDER BY abs(t.standardized_difference) DESC, t.input LOOP
                section := 'serving_skew'; item := r.input; month := skew_m; version := subject.version;
                value := r.standardized_difference;
                detail := format('feature %s: encoded mean %s at training, %s in serving; NULL rate %s%% -> %s%%', r.feature,
                                 round(r.training_mean::numeric, 4), round(r.serving_mean::numeric, 4),
                                 round((100 * r.training_null_rate)::numeric, 2), round((100 * r.serving_null_rate)::numeric, 2));
                RETURN NEXT;
            END LOOP;
        EXCEPTION WHEN no_data_found OR object_not_in_prerequisite_state OR data_exception THEN
            GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
            section := 'serving_skew'; item := 'unavailable'; month := skew_m; version := subject.version; value := NULL;
            detail := message;
            RETURN NEXT;
        END;
    END IF;

    -- serving -------------------------------------------------------------------------------
    BEGIN
        FOR r IN SELECT s.* FROM recsys.serving_stats s
                  WHERE s.model = model_report.name AND s.entry_point IS NOT NULL
                  ORDER BY s.version NULLS FIRST, s.entry_point LOOP
            section := 'serving'; item := r.entry_point; month := NULL; version := r.version; value := r.calls;
            detail := format('%s calls, %s errors%s, %s customers; %s; since %s',
                             r.calls, r.errors,
                             CASE WHEN r.errors > 0 THEN ' (' || (SELECT string_agg(k || ': ' || v, ', ' ORDER BY k)
                                                                 FROM jsonb_each_text(r.errors_by_sqlstate) x(k, v)) || ')'
                                  ELSE '' END,
                             r.customers,
                             CASE WHEN r.p50_ms IS NULL THEN 'no successful call'
                                  ELSE format('p50 %s ms, p95 %s ms, p99 %s ms, max %s ms', round(r.p50_ms::numeric, 3),
                                              round(r.p95_ms::numeric, 3), round(r.p99_ms::numeric, 3),
                                              round(r.max_ms::numeric, 3)) END,
                             to_char(r.since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'));
            RETURN NEXT;
        END LOOP;
        IF NOT FOUND THEN
            section := 'serving'; item := 'no calls'; month := NULL; version := NULL; value := 0;
            detail := 'no call of this model counted since the statistics were reset or the server started';
            RETURN NEXT;
        END IF;
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
        section := 'serving'; item := 'unavailable'; month := NULL; version := NULL; value := NULL;
        detail := message || CASE WHEN hint <> '' THEN ' (' || hint || ')' ELSE '' END;
        RETURN NEXT;
    END;
END
$$;
COMMENT ON FUNCTION recsys.model_report(text, integer) IS 'One model''s history on one screen, as rows (section, item, month, version, value, detail): versions, promotions and rollbacks, retrain cycles, validation estimate and realized MAP@7 per month, drifted features per month after training (the latest `months`), the most skewed products, flagged training/serving skew, serving calls, errors and latency';

---------------------------------------------------------------------------------------------
-- recsys.model_report_svg(name): the picture
---------------------------------------------------------------------------------------------
-- A self-contained SVG (no script, no external reference, every text escaped), 1200 px wide:
--   1. realized MAP@7 per predicted month, one line per version: all customers (Kaggle) on the
--      left with each version's validation estimate (a hollow diamond, dashed level), customers
--      who added on the right; promotions and rollbacks as vertical dashed markers;
--   2. PSI of each feature (and of each product's holding rate that passed 0.1) per month after
--      training, as a heat map whose legend marks the 0.1 (warn) and 0.25 (alert) thresholds;
--   3. predicted (calibrated) against observed add rate per product on the skew month, as
--      paired bars, with the segments prediction_skew flags;
--   4. serving calls, errors and latency per version and entry point.
-- Elements tests can count: g.series[data-version][data-metric], circle.point[data-version]
-- [data-month][data-metric][data-value], g.promotion[data-version][data-month][data-action],
-- path.estimate[data-version][data-month], rect.cell[data-feature][data-month][data-psi]
-- [data-status], g.product[data-product][data-status] with rect.bar.predicted / rect.bar.observed.

-- A coordinate or value for an attribute: at most 2 decimals, a '.' whatever the locale.
CREATE FUNCTION recsys.svg_number(value double precision, decimals integer DEFAULT 1) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN trim_scale(round(value::numeric, decimals))::text;
COMMENT ON FUNCTION recsys.svg_number(double precision, integer) IS 'A number for SVG coordinates and attributes (internal to the model report)';

-- A round axis step giving about `ticks` intervals up to `top`: 1, 2, 2.5 or 5 times a power of 10.
CREATE FUNCTION recsys.svg_axis_step(top double precision, ticks integer DEFAULT 5) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN (SELECT min(f * 10 ^ floor(log(greatest(top, 1e-12) / ticks)))
          FROM unnest(ARRAY[1, 2, 2.5, 5, 10]::double precision[]) f
         WHERE f * 10 ^ floor(log(greatest(top, 1e-12) / ticks)) * ticks >= top);
COMMENT ON FUNCTION recsys.svg_axis_step(double precision, integer) IS 'A round step for a chart axis (internal to the model report)';

-- The fill of a PSI cell: five classes, the warn (0.1) and alert (0.25) thresholds among them.
CREATE FUNCTION recsys.svg_psi_colour(psi double precision) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN psi IS NULL THEN '#eeeeee' WHEN psi < 0.05 THEN '#e3f2e1' WHEN psi <= 0.1 THEN '#a8d5a2'
            WHEN psi <= 0.25 THEN '#fdc776' WHEN psi < 1 THEN '#ec6a4c' ELSE '#a50f15' END;
COMMENT ON FUNCTION recsys.svg_psi_colour(double precision) IS 'Heat-map colour of a PSI: < 0.05, 0.05-0.1, 0.1-0.25 (warn), 0.25-1 (alert), >= 1 (internal to the model report)';

CREATE FUNCTION recsys.model_report_svg(name text, months integer DEFAULT 12) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    width    CONSTANT integer := 1200;
    palette  CONSTANT text[] := ARRAY['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
    body     text[] := '{}';
    y        double precision;
    subject  record;
    spec     jsonb;
    latest   date;
    quality  jsonb;
    estimates jsonb;
    markers  jsonb;
    axis     date[];
    versions integer[];
    n_months integer;
    metric   text;
    ci       integer;
    x0       double precision;
    pw       CONSTANT double precision := 470;
    ph       CONSTANT double precision := 240;
    top_y    double precision;
    ymin     double precision;
    ymax     double precision;
    step     double precision;
    t        double precision;
    k        integer;
    every    integer;
    v        integer;
    colour   text;
    pts      text;
    r        record;
    e        record;
    px       double precision;
    py       double precision;
    drift    jsonb;
    features text[];
    dmonths  date[];
    cw       double precision;
    ch       CONSTANT double precision := 22;
    gx       double precision;
    note     text;
    skew     jsonb;
    skew_m   date;
    shown    integer;
    hidden_n integer;
    bmax     double precision;
    bx0      CONSTANT double precision := 200;
    bw       CONSTANT double precision := 560;
    message  text;
    hint     text;
    serving  jsonb;
    label    text;
BEGIN
    subject := recsys.model_report_subject(model_report_svg.name);
    spec := subject.spec;
    latest := subject.latest_month;

    -- Header ---------------------------------------------------------------------------------
    body := body || format('<text x="30" y="38" font-size="22" font-weight="bold">%s</text>',
                           recsys.svg_escape('recsys model report: ' || model_report_svg.name));
    body := body || format('<text x="30" y="60" font-size="13" fill="#444">%s</text>', recsys.svg_escape(format(
        '%s version %s · source %s · latest snapshot month %s · %s versions, %s promotions, %s rollbacks',
        CASE WHEN subject.status = 'production' THEN 'production' ELSE 'no production version; latest' END,
        subject.version, spec -> 'source' ->> 'relation', coalesce(to_char(latest, 'YYYY-MM'), 'none'),
        (SELECT count(*) FROM recsys.models m WHERE m.name = model_report_svg.name),
        (SELECT count(*) FROM recsys.model_events ev WHERE ev.name = model_report_svg.name AND ev.action = 'promote'),
        (SELECT count(*) FROM recsys.model_events ev WHERE ev.name = model_report_svg.name AND ev.action = 'rollback'))));
    y := 80;

    -- 1. Realized MAP@7 ----------------------------------------------------------------------
    SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.version, q.month), '[]') INTO quality
      FROM recsys.model_report_quality(model_report_svg.name) q;
    SELECT coalesce(jsonb_agg(to_jsonb(es) ORDER BY es.version), '[]') INTO estimates
      FROM recsys.model_report_estimates(model_report_svg.name) es WHERE es.month IS NOT NULL AND es.map7 IS NOT NULL;
    SELECT coalesce(jsonb_agg(to_jsonb(mk) ORDER BY mk.event_id), '[]') INTO markers
      FROM recsys.model_report_markers(model_report_svg.name, latest) mk WHERE mk.month IS NOT NULL;
    -- The month axis: every month from the first to the last one anything is placed at (the
    -- latest 36 at most), so that distances are time.
    SELECT array_agg(g::date ORDER BY g) INTO axis
      FROM (SELECT min(x.mo) AS lo, max(x.mo) AS hi
              FROM (SELECT (j ->> 'month')::date AS mo FROM jsonb_array_elements(quality) j
                    UNION ALL SELECT (j ->> 'month')::date FROM jsonb_array_elements(estimates) j
                    UNION ALL SELECT (j ->> 'month')::date FROM jsonb_array_elements(markers) j) x) b,
           generate_series(greatest(b.lo, (b.hi - interval '35 months')::date), b.hi, interval '1 month') g
     WHERE b.lo IS NOT NULL;
    n_months := coalesce(cardinality(axis), 0);
    SELECT array_agg(DISTINCT x.v ORDER BY x.v) INTO versions
      FROM (SELECT (j ->> 'version')::integer AS v FROM jsonb_array_elements(quality) j
            UNION SELECT (j ->> 'version')::integer FROM jsonb_array_elements(estimates) j
            UNION SELECT (j ->> 'version')::integer FROM jsonb_array_elements(markers) j) x;
    body := body || format('<text x="30" y="%s" font-size="16" font-weight="bold">%s</text>', y + 22,
                           recsys.svg_escape('Realized MAP@7 per predicted month and version'));
    body := body || format('<text x="30" y="%s" font-size="12" fill="#555">%s</text>', y + 40, recsys.svg_escape(
        'Each point: a version''s predictions for that month (the latest prediction set, else the online log) '
        'scored against the adds that month''s snapshots show (recsys.realized_quality).'));
    top_y := y + 78;
    IF n_months = 0 THEN
        body := body || format('<text class="empty" x="60" y="%s" font-size="13" fill="#777">%s</text>', top_y + 30,
                               recsys.svg_escape(format(
            'Nothing to plot yet: no version has a validation estimate, realized quality or a promotion. Realized MAP@7 '
            'appears once a predicted month''s snapshots land and recsys.update_realized_quality() has run%s.',
            CASE WHEN latest IS NOT NULL THEN ' (next: ' || to_char(latest + interval '1 month', 'YYYY-MM') || ')' ELSE '' END)));
        y := top_y + 60;
    ELSE
        FOR ci IN 1 .. 2 LOOP
            metric := CASE ci WHEN 1 THEN 'map7' ELSE 'map7_adders' END;
            x0 := CASE ci WHEN 1 THEN 90 ELSE 690 END;
            body := body || format('<text x="%s" y="%s" font-size="13" font-weight="bold" text-anchor="middle">%s</text>',
                                   x0 + pw / 2, top_y - 14, recsys.svg_escape(CASE ci WHEN 1
                                       THEN 'MAP@7 over all customers (Kaggle definition)'
                                       ELSE 'MAP@7 over the customers who added a product' END));
            -- The y axis spans the values (and estimates) with a margin, not from 0: a drop of
            -- a few percent must be visible. Round steps; never below 0.
            SELECT min(x.val), max(x.val) INTO ymin, ymax
              FROM (SELECT (j ->> metric)::double precision AS val FROM jsonb_array_elements(quality) j
                     WHERE (j ->> 'month')::date >= axis[1]
                    UNION ALL
                    SELECT (j ->> 'map7')::double precision FROM jsonb_array_elements(estimates) j
                     WHERE ci = 1 AND (j ->> 'month')::date >= axis[1]) x;
            IF ymax IS NULL THEN
                ymin := 0;
                ymax := CASE ci WHEN 1 THEN 0.03 ELSE 1 END;
                step := ymax / 5;
            ELSE
                t := greatest(ymax - ymin, 0.2 * ymax, 1e-4);
                step := recsys.svg_axis_step(1.4 * t, 5);
                ymin := greatest(0, step * floor((ymin - 0.2 * t) / step));
                ymax := step * ceil((ymax + 0.2 * t) / step);
            END IF;
            -- Grid, y ticks and axes.
            t := ymin;
            WHILE t <= ymax + step / 2 LOOP
                py := top_y + ph - (t - ymin) / (ymax - ymin) * ph;
                body := body || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e4e4e4"/>', x0, recsys.svg_number(py),
                                       x0 + pw, recsys.svg_number(py));
                body := body || format('<text x="%s" y="%s" font-size="11" text-anchor="end" fill="#444">%s</text>', x0 - 6,
                                       recsys.svg_number(py + 4), trim_scale(round(t::numeric, 4))::text);
                t := t + step;
            END LOOP;
            body := body || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333"/>', x0, top_y, x0, top_y + ph);
            body := body || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333"/>', x0, top_y + ph, x0 + pw, top_y + ph);
            body := body || format('<text x="%s" y="%s" font-size="12" text-anchor="middle" transform="rotate(-90 %s %s)">%s</text>',
                                   x0 - 58, top_y + ph / 2, x0 - 58, top_y + ph / 2,
                                   recsys.svg_escape(CASE ci WHEN 1 THEN 'MAP@7 (all customers)' ELSE 'MAP@7 (adders only)' END));
            -- X ticks: every month, labelled every `every` months, slanted when crowded.
            every := greatest(1, ceil(n_months / 12.0)::integer);
            FOR k IN 1 .. n_months LOOP
                px := x0 + CASE WHEN n_months = 1 THEN pw / 2 ELSE 25 + (k - 1) * (pw - 50) / (n_months - 1) END;
                body := body || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333"/>', recsys.svg_number(px),
                                       top_y + ph, recsys.svg_number(px), top_y + ph + 4);
                IF (k - 1) % every = 0 THEN
                    body := body || CASE WHEN n_months > 6
                        THEN format('<text x="%s" y="%s" font-size="11" text-anchor="end" transform="rotate(-40 %s %s)">%s</text>',
                                    recsys.svg_number(px + 3), top_y + ph + 16, recsys.svg_number(px + 3), top_y + ph + 16,
                                    to_char(axis[k], 'YYYY-MM'))
                        ELSE format('<text x="%s" y="%s" font-size="11" text-anchor="middle">%s</text>', recsys.svg_number(px),
                                    top_y + ph + 18, to_char(axis[k], 'YYYY-MM')) END;
                END IF;
            END LOOP;
            body := body || format('<text x="%s" y="%s" font-size="12" text-anchor="middle">%s</text>', x0 + pw / 2,
                                   top_y + ph + 58, 'predicted month');
            -- Promotions and rollbacks: a dashed vertical line with the version; markers on the
            -- same month are stacked.
            FOR e IN SELECT (j ->> 'version')::integer AS mv, (j ->> 'month')::date AS mm, j ->> 'action' AS act,
                            row_number() OVER (PARTITION BY j ->> 'month' ORDER BY (j ->> 'event_id')::bigint) AS nth
                       FROM jsonb_array_elements(markers) j WHERE (j ->> 'month')::date >= axis[1]
                      ORDER BY (j ->> 'event_id')::bigint LOOP
                k := array_position(axis, e.mm);
                px := x0 + CASE WHEN n_months = 1 THEN pw / 2 ELSE 25 + (k - 1) * (pw - 50) / (n_months - 1) END;
                body := body || format('<g class="%s" data-version="%s" data-month="%s" data-action="%s">'
                                       '<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#555" stroke-width="1.2" stroke-dasharray="5,4"/>'
                                       '<text x="%s" y="%s" font-size="11" fill="#333" text-anchor="%s">%s</text><title>%s</title></g>',
                                       CASE WHEN e.act = 'promote' THEN 'promotion' ELSE 'rollback' END, e.mv,
                                       to_char(e.mm, 'YYYY-MM'), e.act,
                                       recsys.svg_number(px), top_y, recsys.svg_number(px), top_y + ph,
                                       -- The label on the side with room: right of the line in
                                       -- the left half of the chart, left of it in the right half.
                                       recsys.svg_number(CASE WHEN px > x0 + pw / 2 THEN px - 4 ELSE px + 4 END),
                                       top_y + 12 + 13 * (e.nth - 1), CASE WHEN px > x0 + pw / 2 THEN 'end' ELSE 'start' END,
                                       recsys.svg_escape(CASE WHEN e.act = 'promote' THEN format('v%s promoted', e.mv) ELSE format('rollback to v%s', e.mv) END),
                                       recsys.svg_escape(format('version %s %s; first month it predicted after: %s', e.mv,
                                                                CASE WHEN e.act = 'promote' THEN 'promoted' ELSE 'back in production (rollback)' END,
                                                                to_char(e.mm, 'YYYY-MM'))));
            END LOOP;
            -- Nothing realized yet: say when it will be.
            IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(quality) j
                            WHERE (j ->> 'month')::date >= axis[1] AND j ->> metric IS NOT NULL) THEN
                body := body || format('<text class="empty" x="%s" y="%s" font-size="12" fill="#777" text-anchor="middle">%s</text>',
                                       x0 + pw / 2, top_y + ph - 34, 'No realized MAP@7 yet:');
                body := body || format('<text class="empty" x="%s" y="%s" font-size="12" fill="#777" text-anchor="middle">%s</text>',
                                       x0 + pw / 2, top_y + ph - 18, recsys.svg_escape(
                                           CASE WHEN latest IS NULL THEN 'the source has no snapshots'
                                                ELSE format('predictions for %s count once its snapshots land',
                                                            to_char(latest + interval '1 month', 'YYYY-MM')) END));
            END IF;
            -- One series per version.
            FOREACH v IN ARRAY coalesce(versions, '{}') LOOP
                colour := palette[1 + (array_position(versions, v) - 1) % cardinality(palette)];
                pts := '';
                body := body || format('<g class="series" data-version="%s" data-metric="%s">', v, metric);
                -- The validation estimate: a dashed level across the months the version predicted,
                -- and a hollow diamond at the month it was measured on.
                IF ci = 1 THEN
                    FOR e IN SELECT (j ->> 'month')::date AS em, (j ->> 'map7')::double precision AS ev, j ->> 'origin' AS origin
                               FROM jsonb_array_elements(estimates) j
                              WHERE (j ->> 'version')::integer = v AND (j ->> 'month')::date >= axis[1] LOOP
                        k := array_position(axis, e.em);
                        px := x0 + CASE WHEN n_months = 1 THEN pw / 2 ELSE 25 + (k - 1) * (pw - 50) / (n_months - 1) END;
                        py := top_y + ph - (e.ev - ymin) / (ymax - ymin) * ph;
                        SELECT max((j ->> 'month')::date) INTO skew_m FROM jsonb_array_elements(quality) j
                         WHERE (j ->> 'version')::integer = v;
                        IF skew_m > e.em THEN
                            k := array_position(axis, skew_m);
                            body := body || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1" stroke-dasharray="2,3"/>',
                                                   recsys.svg_number(px), recsys.svg_number(py),
                                                   recsys.svg_number(x0 + 25 + (k - 1) * (pw - 50) / greatest(n_months - 1, 1)),
                                                   recsys.svg_number(py), colour);
                        END IF;
                        body := body || format('<path class="estimate" data-version="%s" data-month="%s" data-value="%s" '
                                               'd="M %s %s L %s %s L %s %s L %s %s Z" fill="#fff" stroke="%s" stroke-width="2">'
                                               '<title>%s</title></path>',
                                               v, to_char(e.em, 'YYYY-MM'), recsys.svg_number(e.ev, 6),
                                               recsys.svg_number(px), recsys.svg_number(py - 7), recsys.svg_number(px + 7), recsys.svg_number(py),
                                               recsys.svg_number(px), recsys.svg_number(py + 7), recsys.svg_number(px - 7), recsys.svg_number(py),
                                               colour, recsys.svg_escape(format('version %s expected MAP@7 %s on %s (%s)', v,
                                                   round(e.ev::numeric, 5), to_char(e.em, 'YYYY-MM'), e.origin)));
                    END LOOP;
                END IF;
                FOR e IN SELECT (j ->> 'month')::date AS qm, (j ->> metric)::double precision AS qv, j ->> 'source' AS src,
                                (j ->> 'customers')::bigint AS cust, (j ->> 'adders')::bigint AS add
                           FROM jsonb_array_elements(quality) j
                          WHERE (j ->> 'version')::integer = v AND (j ->> 'month')::date >= axis[1]
                            AND j ->> metric IS NOT NULL
                          ORDER BY (j ->> 'month')::date LOOP
                    k := array_position(axis, e.qm);
                    px := x0 + CASE WHEN n_months = 1 THEN pw / 2 ELSE 25 + (k - 1) * (pw - 50) / (n_months - 1) END;
                    py := top_y + ph - (e.qv - ymin) / (ymax - ymin) * ph;
                    pts := pts || recsys.svg_number(px) || ',' || recsys.svg_number(py) || ' ';
                    body := body || format('<circle class="point" data-version="%s" data-month="%s" data-metric="%s" data-value="%s" '
                                           'cx="%s" cy="%s" r="4" fill="%s"><title>%s</title></circle>',
                                           v, to_char(e.qm, 'YYYY-MM'), metric, recsys.svg_number(e.qv, 6),
                                           recsys.svg_number(px), recsys.svg_number(py), colour,
                                           recsys.svg_escape(format('version %s, %s: %s %s (%s; %s customers, %s added)', v,
                                               to_char(e.qm, 'YYYY-MM'), CASE ci WHEN 1 THEN 'MAP@7' ELSE 'MAP@7 of adders' END,
                                               round(e.qv::numeric, 5), e.src, e.cust, e.add)));
                END LOOP;
                IF pts <> '' THEN
                    body := body || format('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>', rtrim(pts), colour);
                END IF;
                body := body || '</g>'::text;
            END LOOP;
        END LOOP;
        -- Legend, under both charts.
        y := top_y + ph + 76;
        gx := 90;
        FOREACH v IN ARRAY coalesce(versions, '{}') LOOP
            colour := palette[1 + (array_position(versions, v) - 1) % cardinality(palette)];
            label := format('version %s%s', v, CASE WHEN v = subject.version AND subject.status = 'production'
                                                      THEN ' (production)' ELSE '' END);
            body := body || format('<g class="legend-version" data-version="%s"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"/>'
                                   '<circle cx="%s" cy="%s" r="4" fill="%s"/><text x="%s" y="%s" font-size="12">%s</text></g>',
                                   v, gx, y, gx + 24, y, colour, gx + 12, y, colour, gx + 30, y + 4, recsys.svg_escape(label));
            gx := gx + 48 + 7 * length(label);
            IF gx > width - 420 THEN
                gx := 90;
                y := y + 20;
            END IF;
        END LOOP;
        body := body || format('<path d="M %s %s L %s %s L %s %s L %s %s Z" fill="#fff" stroke="#333" stroke-width="2"/>'
                               '<text x="%s" y="%s" font-size="12">validation estimate (dotted: its level)</text>',
                               gx + 8, y - 6, gx + 14, y, gx + 8, y + 6, gx + 2, y, gx + 22, y + 4);
        gx := gx + 270;
        body := body || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#555" stroke-dasharray="5,4"/>'
                               '<text x="%s" y="%s" font-size="12">promotion / rollback</text>',
                               gx + 6, y - 8, gx + 6, y + 8, gx + 14, y + 4);
        y := y + 24;
    END IF;

    -- 2. PSI heat map ------------------------------------------------------------------------
    y := y + 16;
    body := body || format('<line x1="30" y1="%s" x2="%s" y2="%s" stroke="#ccc"/>', y, width - 30, y);
    SELECT coalesce(jsonb_agg(to_jsonb(d)), '[]') INTO drift
      FROM recsys.model_report_drift(model_report_svg.name, subject.version, model_report_svg.months) d;
    SELECT j ->> 'note' INTO note FROM jsonb_array_elements(drift) j WHERE j ->> 'feature' IS NULL LIMIT 1;
    -- Rows: the features in the reference's order, then the products whose holding rate passed
    -- warn in some month.
    SELECT array_agg(x.f ORDER BY x.o) INTO features
      FROM (SELECT j ->> 'feature' AS f, min(o) AS o
              FROM jsonb_array_elements(drift) WITH ORDINALITY AS a(j, o)
             WHERE j ->> 'feature' IS NOT NULL
             GROUP BY j ->> 'feature'
            HAVING bool_or(j ->> 'kind' <> 'product') OR max((j ->> 'psi')::double precision) > 0.1) x;
    SELECT array_agg(DISTINCT (j ->> 'month')::date ORDER BY (j ->> 'month')::date) INTO dmonths
      FROM jsonb_array_elements(drift) j WHERE j ->> 'feature' IS NOT NULL;
    body := body || format('<text x="30" y="%s" font-size="16" font-weight="bold">%s</text>', y + 28,
                           recsys.svg_escape(format('Feature drift: population stability index per month against version %s''s training reference',
                                                    subject.version)));
    body := body || format('<text x="30" y="%s" font-size="12" fill="#555">%s</text>', y + 46, recsys.svg_escape(
        'recsys.feature_drift: features, then products whose holding rate passed 0.1. Months after the training months, the latest '
        || model_report_svg.months || ' at most.'));
    y := y + 60;
    IF coalesce(cardinality(features), 0) = 0 OR coalesce(cardinality(dmonths), 0) = 0 THEN
        body := body || format('<text class="empty" x="60" y="%s" font-size="13" fill="#777">%s</text>', y + 24,
                               recsys.svg_escape('No drift to show: ' || coalesce(note, 'no month after training has snapshots yet')));
        y := y + 44;
    ELSE
        cw := least(90, (width - 240 - 260) / cardinality(dmonths));
        gx := 240;
        -- Month headers.
        FOR k IN 1 .. cardinality(dmonths) LOOP
            px := gx + (k - 1) * cw + cw / 2;
            body := body || CASE WHEN cw >= 62
                THEN format('<text x="%s" y="%s" font-size="11" text-anchor="middle">%s</text>', recsys.svg_number(px), y + 24,
                            to_char(dmonths[k], 'YYYY-MM'))
                ELSE format('<text x="%s" y="%s" font-size="11" transform="rotate(-50 %s %s)">%s</text>', recsys.svg_number(px - 3),
                            y + 30, recsys.svg_number(px - 3), y + 30, to_char(dmonths[k], 'YYYY-MM')) END;
        END LOOP;
        y := y + 34;
        FOR k IN 1 .. cardinality(features) LOOP
            body := body || format('<text x="%s" y="%s" font-size="12" text-anchor="end">%s</text>', gx - 8,
                                   recsys.svg_number(y + (k - 1) * ch + 15), recsys.svg_escape(features[k]));
        END LOOP;
        FOR e IN SELECT j ->> 'feature' AS f, (j ->> 'month')::date AS dm, (j ->> 'psi')::double precision AS psi,
                        j ->> 'status' AS st, j ->> 'kind' AS kind
                   FROM jsonb_array_elements(drift) j
                  WHERE j ->> 'feature' = ANY (features) LOOP
            px := gx + (array_position(dmonths, e.dm) - 1) * cw;
            py := y + (array_position(features, e.f) - 1) * ch;
            body := body || format('<rect class="cell" data-feature="%s" data-month="%s" data-psi="%s" data-status="%s" '
                                   'x="%s" y="%s" width="%s" height="%s" fill="%s" stroke="#fff"><title>%s</title></rect>',
                                   recsys.svg_escape(e.f), to_char(e.dm, 'YYYY-MM'), coalesce(recsys.svg_number(e.psi, 4), ''),
                                   recsys.svg_escape(coalesce(e.st, '')), recsys.svg_number(px), recsys.svg_number(py),
                                   recsys.svg_number(cw), ch, recsys.svg_psi_colour(e.psi),
                                   recsys.svg_escape(format('%s, %s: PSI %s (%s)', e.f, to_char(e.dm, 'YYYY-MM'),
                                                            coalesce(round(e.psi::numeric, 4)::text, 'n/a'), coalesce(e.st, 'n/a'))));
            IF cw >= 34 AND e.psi IS NOT NULL THEN
                body := body || format('<text x="%s" y="%s" font-size="10" text-anchor="middle" fill="%s">%s</text>',
                                       recsys.svg_number(px + cw / 2), recsys.svg_number(py + 15),
                                       CASE WHEN e.psi >= 0.25 THEN '#fff' ELSE '#222' END,
                                       CASE WHEN e.psi >= 10 THEN round(e.psi::numeric)::text
                                            ELSE to_char(e.psi, 'FM0.00') END);
            END IF;
        END LOOP;
        -- Legend: the classes, the warn and alert thresholds named.
        gx := gx + cardinality(dmonths) * cw + 40;
        body := body || format('<text x="%s" y="%s" font-size="12" font-weight="bold">PSI</text>', gx, y + 10);
        FOR k IN 1 .. 5 LOOP
            body := body || format('<rect x="%s" y="%s" width="22" height="16" fill="%s" stroke="#999"/>'
                                   '<text x="%s" y="%s" font-size="12">%s</text>',
                                   gx, y + 4 + k * 22, recsys.svg_psi_colour((ARRAY[0.01, 0.07, 0.2, 0.5, 2])[k]),
                                   gx + 30, y + 17 + k * 22,
                                   recsys.svg_escape((ARRAY['below 0.05', '0.05 to 0.1: ok', 'over 0.1: warn',
                                                            'over 0.25: alert', '1 and over: alert'])[k]));
        END LOOP;
        body := body || format('<text x="%s" y="%s" font-size="11" fill="#555">thresholds 0.1 (warn), 0.25 (alert)</text>',
                               gx, y + 4 + 6 * 22 + 10);
        y := y + greatest(cardinality(features) * ch, 6 * 22 + 20) + 16;
    END IF;

    -- 3. Predicted against observed add rate ------------------------------------------------
    body := body || format('<line x1="30" y1="%s" x2="%s" y2="%s" stroke="#ccc"/>', y, width - 30, y);
    SELECT coalesce(jsonb_agg(to_jsonb(s)), '[]') INTO skew FROM recsys.model_report_skew(model_report_svg.name, subject.version) s;
    SELECT (j ->> 'month')::date, j ->> 'note' INTO skew_m, note
      FROM jsonb_array_elements(skew) j ORDER BY (j ->> 'product') IS NULL DESC LIMIT 1;
    body := body || format('<text x="30" y="%s" font-size="16" font-weight="bold">%s</text>', y + 28, recsys.svg_escape(
        CASE WHEN skew_m IS NULL THEN 'Predicted against observed add rate per product'
             ELSE format('Predicted against observed add rate per product: inputs up to %s, adds in %s (version %s)',
                         to_char(skew_m, 'YYYY-MM'), to_char(skew_m + interval '1 month', 'YYYY-MM'), subject.version) END));
    body := body || format('<text x="30" y="%s" font-size="12" fill="#555">%s</text>', y + 46, recsys.svg_escape(
        'recsys.prediction_skew over all segments: mean predicted probability of an add (calibrated for training''s sampling) '
        'and the share of non-holders who added it;'));
    body := body || format('<text x="30" y="%s" font-size="12" fill="#555">%s</text>', y + 62, recsys.svg_escape(
        'right: the cells prediction_skew flags, overall and per segment, as predicted / observed (most surprising first).'));
    body := body || format('<text x="%s" y="%s" font-size="12" font-weight="bold">flagged (predicted / observed)</text>',
                           bx0 + bw + 70, y + 84);
    y := y + 90;
    SELECT count(*) FILTER (WHERE greatest((j ->> 'calibrated_predicted')::double precision, (j ->> 'observed_add_rate')::double precision) > 0),
           max(greatest((j ->> 'calibrated_predicted')::double precision, (j ->> 'observed_add_rate')::double precision))
      INTO shown, bmax
      FROM jsonb_array_elements(skew) j WHERE j ->> 'segment' = 'all';
    IF coalesce(shown, 0) = 0 THEN
        body := body || format('<text class="empty" x="60" y="%s" font-size="13" fill="#777">%s</text>', y + 24,
                               recsys.svg_escape('No prediction skew to show: ' || coalesce(note, 'no product was predicted or added')));
        y := y + 44;
    ELSE
        hidden_n := greatest(shown - 16, 0);
        shown := least(shown, 16);
        step := recsys.svg_axis_step(bmax * 1.05, 5);
        bmax := step * ceil(bmax * 1.05 / step);
        -- Axis: percent of non-holders.
        t := 0;
        WHILE t <= bmax + step / 2 LOOP
            px := bx0 + t / bmax * bw;
            body := body || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e4e4e4"/>'
                                   '<text x="%s" y="%s" font-size="11" text-anchor="middle" fill="#444">%s%%</text>',
                                   recsys.svg_number(px), y, recsys.svg_number(px), y + shown * 28,
                                   recsys.svg_number(px), y + shown * 28 + 16, trim_scale(round((100 * t)::numeric, 4))::text);
            t := t + step;
        END LOOP;
        k := 0;
        FOR e IN SELECT j ->> 'product' AS p, (j ->> 'calibrated_predicted')::double precision AS pred,
                        (j ->> 'observed_add_rate')::double precision AS obs, (j ->> 'observed_adds')::bigint AS adds,
                        (j ->> 'customers')::bigint AS cust, j ->> 'status' AS st,
                        (SELECT string_agg(format('%s %s %s', s2 ->> 'status', s2 ->> 'segment',
                                                  CASE WHEN s2 ->> 'ratio' IS NULL THEN '(none added)'
                                                       ELSE '×' || to_char((s2 ->> 'ratio')::double precision, 'FM990.00') END),
                                           '; ' ORDER BY recsys.model_report_skew_deviance((s2 ->> 'observed_adds')::double precision,
                                                             (s2 ->> 'calibrated_predicted')::double precision * (s2 ->> 'customers')::double precision) DESC)
                           FROM jsonb_array_elements(skew) s2
                          WHERE s2 ->> 'product' = j ->> 'product' AND s2 ->> 'status' <> 'ok') AS flags,
                        (SELECT max(CASE s2 ->> 'status' WHEN 'alert' THEN 2 WHEN 'warn' THEN 1 ELSE 0 END)
                           FROM jsonb_array_elements(skew) s2 WHERE s2 ->> 'product' = j ->> 'product') AS worst
                   FROM jsonb_array_elements(skew) j
                  WHERE j ->> 'segment' = 'all'
                    AND greatest((j ->> 'calibrated_predicted')::double precision, (j ->> 'observed_add_rate')::double precision) > 0
                  ORDER BY greatest((j ->> 'calibrated_predicted')::double precision, (j ->> 'observed_add_rate')::double precision) DESC,
                           j ->> 'product'
                  LIMIT 16 LOOP
            py := y + k * 28;
            body := body || format('<g class="product" data-product="%s" data-status="%s">', recsys.svg_escape(e.p),
                                   CASE e.worst WHEN 2 THEN 'alert' WHEN 1 THEN 'warn' ELSE 'ok' END);
            body := body || format('<text x="%s" y="%s" font-size="12" text-anchor="end" fill="%s">%s</text>', bx0 - 8,
                                   recsys.svg_number(py + 17), CASE WHEN e.worst > 0 THEN '#b71c1c' ELSE '#222' END,
                                   recsys.svg_escape(recsys.model_report_product_label(e.p)));
            body := body || format('<rect class="bar predicted" data-product="%s" data-value="%s" x="%s" y="%s" width="%s" height="10" fill="#4e79a7">'
                                   '<title>%s</title></rect>',
                                   recsys.svg_escape(e.p), recsys.svg_number(e.pred, 6), bx0, recsys.svg_number(py + 4),
                                   recsys.svg_number(greatest(e.pred / bmax * bw, 0.5)),
                                   recsys.svg_escape(format('%s predicted %s%%', e.p, round((100 * e.pred)::numeric, 3))));
            body := body || format('<rect class="bar observed" data-product="%s" data-value="%s" x="%s" y="%s" width="%s" height="10" fill="#f28e2b">'
                                   '<title>%s</title></rect>',
                                   recsys.svg_escape(e.p), recsys.svg_number(e.obs, 6), bx0, recsys.svg_number(py + 15),
                                   recsys.svg_number(greatest(e.obs / bmax * bw, 0.5)),
                                   recsys.svg_escape(format('%s observed %s%% (%s adds of %s customers)', e.p,
                                                            round((100 * e.obs)::numeric, 3), e.adds, e.cust)));
            body := body || format('<text x="%s" y="%s" font-size="10" fill="#4e79a7">%s%%</text>',
                                   recsys.svg_number(bx0 + e.pred / bmax * bw + 4), recsys.svg_number(py + 13),
                                   round((100 * e.pred)::numeric, 3));
            body := body || format('<text x="%s" y="%s" font-size="10" fill="#c26a1b">%s%%</text>',
                                   recsys.svg_number(bx0 + e.obs / bmax * bw + 4), recsys.svg_number(py + 24),
                                   round((100 * e.obs)::numeric, 3));
            IF e.flags IS NOT NULL THEN
                body := body || format('<text class="flag" x="%s" y="%s" font-size="11" fill="#b71c1c">%s</text>',
                                       bx0 + bw + 70, recsys.svg_number(py + 18),
                                       recsys.svg_escape(CASE WHEN length(e.flags) > 64 THEN left(e.flags, 62) || '…' ELSE e.flags END));
            END IF;
            body := body || '</g>'::text;
            k := k + 1;
        END LOOP;
        y := y + shown * 28 + 30;
        body := body || format('<rect x="%s" y="%s" width="14" height="10" fill="#4e79a7"/><text x="%s" y="%s" font-size="12">predicted (calibrated)</text>'
                               '<rect x="%s" y="%s" width="14" height="10" fill="#f28e2b"/><text x="%s" y="%s" font-size="12">observed</text>'
                               '<text x="%s" y="%s" font-size="12" fill="#444">%s</text>',
                               bx0, y, bx0 + 20, y + 10, bx0 + 180, y, bx0 + 200, y + 10, bx0 + 300, y + 10,
                               recsys.svg_escape(format('share of non-holders adding the product%s',
                                   CASE WHEN hidden_n > 0 THEN format('; %s more products with smaller rates not shown', hidden_n)
                                        ELSE '' END)));
        y := y + 24;
    END IF;

    -- 4. Serving -----------------------------------------------------------------------------
    body := body || format('<line x1="30" y1="%s" x2="%s" y2="%s" stroke="#ccc"/>', y, width - 30, y);
    BEGIN
        SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.version NULLS FIRST, s.entry_point), '[]'),
               ' since ' || to_char(min(s.since) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
          INTO serving, label
          FROM recsys.serving_stats s WHERE s.model = model_report_svg.name AND s.entry_point IS NOT NULL;
        note := NULL;
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
        serving := '[]';
        label := NULL;
        note := 'Unavailable: ' || message || CASE WHEN hint <> '' THEN ' (' || hint || ')' ELSE '' END;
    END;
    body := body || format('<text x="30" y="%s" font-size="16" font-weight="bold">%s</text>', y + 28,
                           recsys.svg_escape('Serving: calls, errors and server time per version and entry point (recsys.serving_stats'
                                             || coalesce(label, '') || ')'));
    y := y + 40;
    IF jsonb_array_length(serving) = 0 THEN
        body := body || format('<text class="empty" x="60" y="%s" font-size="13" fill="#777">%s</text>', y + 16,
                               recsys.svg_escape(coalesce(note, 'No call of this model counted since the statistics were reset or the server started.')));
        y := y + 34;
    ELSE
        k := 0;
        FOR e IN SELECT * FROM (VALUES (1, 'version', 60, 'start'), (2, 'entry point', 130, 'start'),
                                       (3, 'calls', 330, 'end'), (4, 'errors', 410, 'end'), (5, 'errors by SQLSTATE', 430, 'start'),
                                       (6, 'customers', 700, 'end'), (7, 'p50 ms', 790, 'end'), (8, 'p95 ms', 880, 'end'),
                                       (9, 'p99 ms', 970, 'end'), (10, 'max ms', 1060, 'end')) AS c(i, h, cx, anchor) LOOP
            body := body || format('<text x="%s" y="%s" font-size="12" font-weight="bold" text-anchor="%s">%s</text>',
                                   e.cx, y + 12, e.anchor, recsys.svg_escape(e.h));
        END LOOP;
        FOR e IN SELECT j ->> 'version' AS sv, j ->> 'entry_point' AS ep, j ->> 'calls' AS calls, j ->> 'errors' AS errs,
                        (SELECT string_agg(x.key || ': ' || x.value, ', ' ORDER BY x.key)
                           FROM jsonb_each_text(j -> 'errors_by_sqlstate') x) AS by_state,
                        j ->> 'customers' AS cust, (j ->> 'p50_ms')::double precision AS p50,
                        (j ->> 'p95_ms')::double precision AS p95, (j ->> 'p99_ms')::double precision AS p99,
                        (j ->> 'max_ms')::double precision AS mx
                   FROM jsonb_array_elements(serving) j LIMIT 12 LOOP
            k := k + 1;
            py := y + 12 + k * 18;
            body := body || format('<g class="serving" data-version="%s" data-entry-point="%s" data-calls="%s" data-errors="%s">'
                                   '<text x="60" y="%s" font-size="12">%s</text><text x="130" y="%s" font-size="12">%s</text>'
                                   '<text x="330" y="%s" font-size="12" text-anchor="end">%s</text>'
                                   '<text x="410" y="%s" font-size="12" text-anchor="end" fill="%s">%s</text>'
                                   '<text x="430" y="%s" font-size="12">%s</text>'
                                   '<text x="700" y="%s" font-size="12" text-anchor="end">%s</text>'
                                   '<text x="790" y="%s" font-size="12" text-anchor="end">%s</text>'
                                   '<text x="880" y="%s" font-size="12" text-anchor="end">%s</text>'
                                   '<text x="970" y="%s" font-size="12" text-anchor="end">%s</text>'
                                   '<text x="1060" y="%s" font-size="12" text-anchor="end">%s</text></g>',
                                   coalesce(e.sv, ''), recsys.svg_escape(e.ep), e.calls, e.errs,
                                   py, coalesce(e.sv, '-'), py, recsys.svg_escape(e.ep), py, e.calls,
                                   py, CASE WHEN e.errs::bigint > 0 THEN '#b71c1c' ELSE '#222' END, e.errs,
                                   py, recsys.svg_escape(coalesce(e.by_state, '')), py, e.cust,
                                   py, coalesce(round(e.p50::numeric, 3)::text, '-'), py, coalesce(round(e.p95::numeric, 3)::text, '-'),
                                   py, coalesce(round(e.p99::numeric, 3)::text, '-'), py, coalesce(round(e.mx::numeric, 3)::text, '-'));
        END LOOP;
        y := y + 30 + k * 18;
    END IF;

    y := y + 20;
    RETURN format('<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" '
                  'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif">', width, ceil(y), width, ceil(y))
        || E'\n<title>' || recsys.svg_escape('recsys model report: ' || model_report_svg.name) || '</title>'
        || format(E'\n<rect x="0" y="0" width="%s" height="%s" fill="#ffffff"/>', width, ceil(y))
        || E'\n' || array_to_string(body, E'\n') || E'\n</svg>\n';
END
$$;
COMMENT ON FUNCTION recsys.model_report_svg(text, integer) IS 'The model report as a self-contained SVG: realized MAP@7 per predicted month and version with validation estimates and promotions marked; PSI per feature per month as a heat map (0.1 warn, 0.25 alert); predicted against observed add rate per product with the flagged segments; serving calls, errors and latency';

---------------------------------------------------------------------------------------------
-- Privileges
---------------------------------------------------------------------------------------------
-- Nothing to PUBLIC (90_privileges.sql revokes every function's default). recsys_admin: the
-- report reads the feature references, the prediction sets and log, and the source relation
-- (feature_drift, prediction_skew), none of which recsys_reader may read; it returns only
-- aggregates. The helpers run with the caller's rights and are granted to the same role.
GRANT EXECUTE ON FUNCTION
    recsys.model_report(text, integer),
    recsys.model_report_svg(text, integer),
    recsys.model_report_subject(text),
    recsys.model_report_quality(text),
    recsys.model_report_estimates(text),
    recsys.model_report_markers(text, date),
    recsys.model_report_drift(text, integer, integer),
    recsys.model_report_skew(text, integer),
    recsys.model_report_skew_deviance(double precision, double precision),
    recsys.model_report_product_label(text),
    recsys.svg_escape(text),
    recsys.svg_number(double precision, integer),
    recsys.svg_axis_step(double precision, integer),
    recsys.svg_psi_colour(double precision)
TO recsys_admin;
