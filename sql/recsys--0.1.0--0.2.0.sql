-- recsys 0.1.0 -> 0.2.0: least privilege (roles recsys_reader and recsys_admin, nothing for
-- PUBLIC), registration and promotion only by roles that can read every column a model reads,
-- one writer of a model's recommendations at a time, and recommendations and stored states
-- kept by pg_dump.
\echo Use "ALTER EXTENSION recsys UPDATE TO '0.2.0'" to load this file. \quit

-- The role the session acts as (SET ROLE, else the login role): unlike current_user it is not
-- changed by SECURITY DEFINER, so the registry's own functions can tell who called them.
CREATE FUNCTION recsys.acting_role() RETURNS name
    AS 'MODULE_PATHNAME', 'recsys_acting_role' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION recsys.acting_role() IS 'The role the session acts as (SET ROLE or login role), which SECURITY DEFINER does not change';

-- A model may only be registered, promoted or published by roles that can read every column
-- it reads: otherwise scores computed with a DBA's rights would disclose a column to a role
-- that may not see it (a confused deputy).
CREATE FUNCTION recsys.require_model_readable(spec jsonb, reader name, action text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    relation_name text := spec -> 'source' ->> 'relation';
    relation_oid  oid;
    column_name   text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = reader) THEN
        RAISE EXCEPTION 'cannot % a model for role "%", which does not exist', action, reader
            USING ERRCODE = 'undefined_object';
    END IF;
    IF relation_name IS NULL OR cardinality(parse_ident(relation_name)) <> 2 THEN
        RAISE EXCEPTION 'the model reads relation "%", which is not schema-qualified', relation_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A model names its source as schema.relation, so that search_path cannot change what it reads.';
    END IF;
    relation_oid := to_regclass(relation_name);
    IF relation_oid IS NULL THEN
        RAISE EXCEPTION 'relation "%" read by the model does not exist', relation_name USING ERRCODE = 'undefined_table',
            HINT = 'Create the source relation before registering a model that reads it.';
    END IF;
    FOR column_name IN
        SELECT c FROM (VALUES (spec -> 'source' ->> 'id_column'), (spec -> 'source' ->> 'month_column')) v(c)
        UNION ALL SELECT f ->> 'column' FROM jsonb_array_elements(spec -> 'features') f
        UNION ALL SELECT p FROM jsonb_array_elements_text(spec -> 'products') p
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = relation_oid AND a.attname = column_name
                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" of relation % read by the model does not exist', column_name, relation_oid::regclass
                USING ERRCODE = 'undefined_column';
        END IF;
        IF NOT has_column_privilege(reader, relation_oid, column_name, 'SELECT') THEN
            RAISE EXCEPTION 'role "%" cannot % a model that reads column "%" of %', reader, action, column_name,
                            relation_oid::regclass
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = format('Role "%s" has no SELECT privilege on that column.', reader),
                      HINT = 'A model may only be registered, promoted or published by roles that may read every column it reads.';
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION recsys.require_model_readable(jsonb, name, text) IS 'Raises 42501 unless the role may SELECT every column the model (its feature spec) reads';

-- Writers of one model's recommendations (refresh, rebuild, advance) run one at a time: a
-- second one fails at once instead of computing everything and then colliding on the key.
CREATE FUNCTION recsys.lock_recommendations(model text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    holder integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('recsys.recommendations'), hashtext(model)) THEN
        SELECT l.pid INTO holder FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid::integer = hashtext('recsys.recommendations') AND l.objid::integer = hashtext(model)
           AND l.objsubid = 2
         LIMIT 1;
        RAISE EXCEPTION 'recommendations of model "%" are being written by another session', model
            USING ERRCODE = 'lock_not_available',
                  DETAIL = format('The session with pid %s holds the lock until its transaction ends; refresh_recommendations, '
                                  'rebuild_states and advance_month of one model run one at a time.',
                                  coalesce(holder::text, '(unknown)')),
                  HINT = 'Wait until that transaction ends, then run it again if it is still needed.';
    END IF;
END
$$;
COMMENT ON FUNCTION recsys.lock_recommendations(text) IS 'Takes the per-model lock that serializes writers of recsys.recommendations until the transaction ends; 55P03 if another session holds it';

CREATE OR REPLACE FUNCTION recsys.register_model(
    model_name      text,
    model           bytea,
    hyperparameters jsonb DEFAULT '{}',
    metrics         jsonb DEFAULT '{}',
    training_data   jsonb DEFAULT '{}',
    description     text  DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    spec jsonb;
    next_version integer;
BEGIN
    IF model_name IS NULL OR model IS NULL THEN
        RAISE EXCEPTION 'model name and model bytes must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF model_name !~ '^[A-Za-z0-9_.-]{1,63}$' THEN
        RAISE EXCEPTION 'invalid model name "%"', model_name USING ERRCODE = 'invalid_name',
            DETAIL = 'A model name is 1 to 63 letters, digits, "_", "." or "-".';
    END IF;
    spec := recsys.model_spec(model);  -- refuses corrupt, truncated or inconsistent bytes
    PERFORM recsys.require_model_readable(spec, recsys.acting_role(), 'register');
    -- Serialise registrations of one name so that versions are dense and never reused.
    PERFORM pg_advisory_xact_lock(hashtext('recsys.models'), hashtext(model_name));
    SELECT coalesce(max(m.version), 0) + 1 INTO next_version FROM recsys.models m WHERE m.name = model_name;
    INSERT INTO recsys.models (name, version, created_by, model, sha256, feature_spec, hyperparameters, metrics,
                               training_data, description)
    VALUES (model_name, next_version, recsys.acting_role(), model, sha256(model), spec, coalesce(hyperparameters, '{}'),
            coalesce(metrics, '{}'), coalesce(training_data, '{}'), description);
    INSERT INTO recsys.model_events (name, version, action, by)
    VALUES (model_name, next_version, 'register', recsys.acting_role());
    RETURN next_version;
END
$$;
COMMENT ON FUNCTION recsys.register_model(text, bytea, jsonb, jsonb, jsonb, text) IS 'Registers model bytes as the next candidate version of a model; returns the version';

CREATE OR REPLACE FUNCTION recsys.promote(model_name text, model_version integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    current_version integer;
    spec            jsonb;
    registrant      name;
BEGIN
    IF model_name IS NULL OR model_version IS NULL THEN
        RAISE EXCEPTION 'model name and version must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- Lock every version of this model: concurrent promotions and rollbacks queue up.
    PERFORM 1 FROM recsys.models m WHERE m.name = model_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM recsys.models m WHERE m.name = model_name AND m.version = model_version) THEN
        RAISE EXCEPTION 'model "%" version % does not exist', model_name, model_version
            USING ERRCODE = 'undefined_object';
    END IF;
    SELECT m.feature_spec, m.created_by INTO spec, registrant FROM recsys.models m
     WHERE m.name = model_name AND m.version = model_version;
    -- Both the promoting role and the registrant must be able to read what the model reads.
    PERFORM recsys.require_model_readable(spec, recsys.acting_role(), 'promote');
    PERFORM recsys.require_model_readable(spec, registrant, 'promote');
    SELECT m.version INTO current_version FROM recsys.models m
     WHERE m.name = model_name AND m.status = 'production';
    IF current_version = model_version THEN
        RAISE NOTICE 'model "%" version % is already in production', model_name, model_version;
        RETURN;
    END IF;
    UPDATE recsys.models m SET status = 'archived' WHERE m.name = model_name AND m.status = 'production';
    UPDATE recsys.models m SET status = 'production' WHERE m.name = model_name AND m.version = model_version;
    -- Stored LSTM states belong to the version that computed them.
    DELETE FROM recsys.customer_states s WHERE s.model_name = promote.model_name;
    INSERT INTO recsys.model_events (name, version, action, previous_version, by)
    VALUES (model_name, model_version, 'promote', current_version, recsys.acting_role());
END
$$;
COMMENT ON FUNCTION recsys.promote(text, integer) IS 'Makes a version the production version, atomically and transactionally';

CREATE OR REPLACE FUNCTION recsys.rollback(model_name text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    current_version  integer;
    target_version   integer;
    target_previous  integer;
BEGIN
    IF model_name IS NULL THEN
        RAISE EXCEPTION 'model name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM 1 FROM recsys.models m WHERE m.name = model_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = 'undefined_object';
    END IF;
    SELECT m.version INTO current_version FROM recsys.models m
     WHERE m.name = model_name AND m.status = 'production';
    IF current_version IS NULL THEN
        RAISE EXCEPTION 'model "%" has no production version to roll back', model_name
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- The version that was in production before the current one became production.
    SELECT e.previous_version INTO target_version FROM recsys.model_events e
     WHERE e.name = model_name AND e.version = current_version AND e.action IN ('promote', 'rollback')
     ORDER BY e.id DESC LIMIT 1;
    IF target_version IS NULL THEN
        RAISE EXCEPTION 'model "%" version % has no earlier production version to roll back to',
            model_name, current_version USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- Where a second rollback should lead: what preceded the target when it was in production.
    SELECT e.previous_version INTO target_previous FROM recsys.model_events e
     WHERE e.name = model_name AND e.version = target_version AND e.action IN ('promote', 'rollback')
     ORDER BY e.id DESC LIMIT 1;
    UPDATE recsys.models m SET status = 'archived' WHERE m.name = model_name AND m.version = current_version;
    UPDATE recsys.models m SET status = 'production' WHERE m.name = model_name AND m.version = target_version;
    DELETE FROM recsys.customer_states s WHERE s.model_name = rollback.model_name;
    INSERT INTO recsys.model_events (name, version, action, previous_version, by)
    VALUES (model_name, target_version, 'rollback', target_previous, recsys.acting_role());
    RETURN target_version;
END
$$;
COMMENT ON FUNCTION recsys.rollback(text) IS 'Puts the previous production version back into production; returns it';

CREATE OR REPLACE FUNCTION recsys.refresh_recommendations(model text DEFAULT 'default', k integer DEFAULT 7)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    written bigint;
BEGIN
    PERFORM recsys.lock_recommendations(model);
    -- One transaction: readers see the old recommendations until the new ones commit.
    DELETE FROM recsys.recommendations r WHERE r.model_name = model;
    INSERT INTO recsys.recommendations (model_name, customer_id, model_version, computed_at, products, scores)
    SELECT s.model_name, s.customer_id, s.model_version, s.computed_at, s.products, s.scores
      FROM recsys.score_all(model, k) s;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;
COMMENT ON FUNCTION recsys.refresh_recommendations(text, integer) IS 'Recomputes recsys.recommendations for one model; returns the number of customers';

CREATE OR REPLACE FUNCTION recsys.rebuild_states(model text DEFAULT 'default', k integer DEFAULT 7)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM recsys.lock_recommendations(model);
    DELETE FROM recsys.customer_states s WHERE s.model_name = model;
    RETURN recsys.store_states(model, NULL, k);
END
$$;
COMMENT ON FUNCTION recsys.rebuild_states(text, integer) IS 'Recomputes every customer''s stored state and recommendations from its whole history; returns the number of customers';

CREATE OR REPLACE FUNCTION recsys.advance_month(model text, month date, k integer DEFAULT 7)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF model IS NULL OR month IS NULL THEN
        RAISE EXCEPTION 'model and month must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM recsys.lock_recommendations(model);
    -- No states yet (first run, or cleared by a promote): a full recompute creates them.
    IF NOT EXISTS (SELECT 1 FROM recsys.customer_states s WHERE s.model_name = model) THEN
        RETURN recsys.rebuild_states(model, k);
    END IF;
    RETURN recsys.store_states(model, month, k);
END
$$;
COMMENT ON FUNCTION recsys.advance_month(text, date, integer) IS 'When a new monthly snapshot has landed: advances the stored states of its customers by one step and refreshes their recommendations; returns the number of customers';

-- evaluate() no longer writes: its results gain the version and month evaluated, and
-- evaluate_and_record() is the explicit step that stores them.
DROP FUNCTION recsys.evaluate(text, integer, date);
CREATE FUNCTION recsys.evaluate(model_name text, version integer DEFAULT NULL, month date DEFAULT NULL)
RETURNS TABLE (method text, map7 double precision, map7_adders double precision, precision7 double precision,
               recall7 double precision, coverage double precision, customers bigint, adders bigint,
               model_version integer, evaluated_month date)
AS 'MODULE_PATHNAME', 'recsys_evaluate' LANGUAGE C STABLE ROWS 3;
COMMENT ON FUNCTION recsys.evaluate(text, integer, date) IS 'MAP@7, precision@7, recall@7 and coverage of a model version (NULL: production, else latest) on a month (NULL: the latest), for customers with snapshots in that month and the one before, next to global and per-segment popularity baselines; changes nothing (recsys.evaluate_and_record() stores them)';

-- evaluate() followed by the explicit step that stores its results in the model's metrics,
-- under "evaluation" -> "YYYY-MM" -> method.
CREATE FUNCTION recsys.evaluate_and_record(model_name text, version integer DEFAULT NULL, month date DEFAULT NULL)
RETURNS TABLE (method text, map7 double precision, map7_adders double precision, precision7 double precision,
               recall7 double precision, coverage double precision, customers bigint, adders bigint,
               model_version integer, evaluated_month date)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    results jsonb := '{}';
BEGIN
    FOR r IN SELECT * FROM recsys.evaluate(model_name, version, month) LOOP
        results := results || jsonb_build_object(r.method, jsonb_build_object(
            'map7', r.map7, 'map7_adders', r.map7_adders, 'precision7', r.precision7, 'recall7', r.recall7,
            'coverage', r.coverage, 'customers', r.customers, 'adders', r.adders));
        method := r.method; map7 := r.map7; map7_adders := r.map7_adders; precision7 := r.precision7;
        recall7 := r.recall7; coverage := r.coverage; customers := r.customers; adders := r.adders;
        model_version := r.model_version; evaluated_month := r.evaluated_month;
        RETURN NEXT;
    END LOOP;
    PERFORM recsys.record_evaluation(model_name, model_version,
                                     jsonb_build_object(to_char(evaluated_month, 'YYYY-MM'), results));
END
$$;
COMMENT ON FUNCTION recsys.evaluate_and_record(text, integer, date) IS 'recsys.evaluate(), then stores its results in the model version''s metrics under "evaluation"';

CREATE OR REPLACE FUNCTION recsys.promote_if_better(
    model_name text,
    candidate  integer,
    month      date             DEFAULT NULL,
    tolerance  double precision DEFAULT 0)
RETURNS TABLE (promoted boolean, candidate_map7 double precision, production_version integer,
               production_map7 double precision, reason text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    current_version integer;
    c_map7 double precision;
    p_map7 double precision;
BEGIN
    IF model_name IS NULL OR candidate IS NULL THEN
        RAISE EXCEPTION 'model name and candidate version must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT m.version INTO current_version FROM recsys.models m
     WHERE m.name = model_name AND m.status = 'production';
    SELECT e.map7 INTO c_map7 FROM recsys.evaluate_and_record(model_name, candidate, month) e WHERE e.method = 'lstm';
    IF current_version IS NULL THEN
        PERFORM recsys.promote(model_name, candidate);
        RETURN QUERY SELECT true, c_map7, NULL::integer, NULL::double precision,
                            'promoted: there was no production version'::text;
        RETURN;
    END IF;
    IF current_version = candidate THEN
        RETURN QUERY SELECT false, c_map7, current_version, c_map7, 'already the production version'::text;
        RETURN;
    END IF;
    SELECT e.map7 INTO p_map7 FROM recsys.evaluate_and_record(model_name, current_version, month) e WHERE e.method = 'lstm';
    IF c_map7 >= p_map7 - coalesce(tolerance, 0) THEN
        PERFORM recsys.promote(model_name, candidate);
        RETURN QUERY SELECT true, c_map7, current_version, p_map7,
                            format('promoted: MAP@7 %s is not below production''s %s',
                                   round(c_map7::numeric, 5), round(p_map7::numeric, 5));
    ELSE
        RETURN QUERY SELECT false, c_map7, current_version, p_map7,
                            format('kept version %s: candidate MAP@7 %s is below production''s %s',
                                   current_version, round(c_map7::numeric, 5), round(p_map7::numeric, 5));
    END IF;
END
$$;
COMMENT ON FUNCTION recsys.promote_if_better(text, integer, date, double precision) IS 'Evaluates a candidate and the production version on the same held-out month and promotes the candidate only if its MAP@7 is not worse (within tolerance)';
COMMENT ON FUNCTION recsys.record_evaluation(text, integer, jsonb) IS 'Merges evaluation results into a model version''s metrics under "evaluation"; used by recsys.evaluate_and_record()';

SELECT pg_catalog.pg_extension_config_dump('recsys.recommendations', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.customer_states', '');


---------------------------------------------------------------------------------------------
-- Privileges (docs/security.md)
---------------------------------------------------------------------------------------------
-- Least privilege: PUBLIC gets nothing. Two roles carry what a bank's teams need:
--   recsys_reader  score customers, read recommendations and model metadata (no weights);
--   recsys_admin   everything recsys_reader may, plus register, promote, roll back, train,
--                  evaluate, refresh, store states and read model bytes and feature specs.
-- Roles belong to the cluster, not to this database: CREATE EXTENSION creates them when they
-- are absent (NOLOGIN, no members), and leaves existing ones, and their members, alone.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'recsys_reader') THEN
        CREATE ROLE recsys_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'recsys_admin') THEN
        CREATE ROLE recsys_admin NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('recsys_admin', 'recsys_reader', 'MEMBER') THEN
        GRANT recsys_reader TO recsys_admin;
    END IF;
END
$roles$;

REVOKE ALL ON SCHEMA recsys FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA recsys FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA recsys FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA recsys FROM PUBLIC;
GRANT USAGE ON SCHEMA recsys TO recsys_reader, recsys_admin;

-- Reader: scoring runs with the caller's rights on the source relation; the model itself is
-- read by the scoring functions, never handed out.
GRANT EXECUTE ON FUNCTION
    recsys.recommend(bigint, integer, text, integer),
    recsys.recommend_scores(bigint, integer, text, integer),
    recsys.score_customer(bigint, text, integer),
    recsys.recommend_many(bigint[], integer, text, integer),
    recsys.score_all(text, integer, integer, date, integer, integer),
    recsys.model_spec(bytea),
    recsys.acting_role(),
    recsys.generate_santander(bigint, integer, bigint, bigint, date)
TO recsys_reader;
GRANT SELECT (name, version, status, created_at, created_by, sha256, hyperparameters, metrics, training_data,
              description) ON recsys.models TO recsys_reader;
GRANT SELECT ON recsys.model_events, recsys.recommendations, recsys.training_progress TO recsys_reader;

-- Admin: the registry, training, evaluation and the tables batch scoring writes.
GRANT EXECUTE ON FUNCTION
    recsys.register_model(text, bytea, jsonb, jsonb, jsonb, text),
    recsys.register_model_file(text, text, jsonb, jsonb, jsonb, text),
    recsys.promote(text, integer),
    recsys.rollback(text),
    recsys.require_model_readable(jsonb, name, text),
    recsys.untrained_model(text, integer, integer, integer, bigint, date, text, text, date),
    recsys.train(text, text, integer, date, integer, integer, integer, integer, integer, real, real, integer, bigint, integer, date),
    recsys.evaluate(text, integer, date),
    recsys.evaluate_and_record(text, integer, date),
    recsys.record_evaluation(text, integer, jsonb),
    recsys.promote_if_better(text, integer, date, double precision),
    recsys.lock_recommendations(text),
    recsys.refresh_recommendations(text, integer),
    recsys.full_states(text, integer),
    recsys.advanced_states(text, date, integer),
    recsys.store_states(text, date, integer),
    recsys.rebuild_states(text, integer),
    recsys.advance_month(text, date, integer),
    recsys.advance_customer(text, bigint, integer),
    recsys.advance_on_snapshot()
TO recsys_admin;
GRANT SELECT ON recsys.models TO recsys_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON recsys.recommendations, recsys.customer_states TO recsys_admin;

-- A file on the database server is read only with the privileges of pg_read_server_files.
GRANT EXECUTE ON FUNCTION recsys.read_model_file(text) TO pg_read_server_files;
