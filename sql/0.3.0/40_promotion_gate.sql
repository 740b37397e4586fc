-- The promotion gate (docs/lifecycle.md): a candidate reaches production only with a passing
-- validation record against the current production version, made by recsys.validate() on
-- frozen, fingerprinted rows under the model's gate rule; or by a forced promotion with a
-- reason, by a member of recsys_override. Every promotion and rollback records who, when,
-- from which version to which, and why.

---------------------------------------------------------------------------------------------
-- Gate rules
---------------------------------------------------------------------------------------------

-- The rule that applies to a model: its row in recsys.gate_rules, else the defaults, which are
-- written down here and nowhere else.
CREATE FUNCTION recsys.gate_rule(model_name text) RETURNS recsys.gate_rules
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rule recsys.gate_rules;
BEGIN
    IF model_name IS NULL THEN
        RAISE EXCEPTION 'model name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT g.* INTO rule FROM recsys.gate_rules g WHERE g.name = model_name;
    IF NOT FOUND THEN
        rule.name := model_name;
        rule.min_map7 := 0;                      -- no floor of its own ...
        rule.max_drop_absolute := 0;             -- ... but not below production's MAP@7,
        rule.max_drop_relative := NULL;
        rule.allow_upper_below_zero := false;   -- nor clearly worse (interval below 0),
        rule.subpopulations_must_pass := true;  -- nor clearly worse in a subpopulation
        rule.min_subpopulation_customers := 200;
        -- 1 - 0.05 / 25: at most a 5% chance that an equally good candidate fails on one of
        -- up to 25 judged subpopulations by chance.
        rule.subpopulation_confidence := 0.998;
        rule.resamples := 1000;
        rule.confidence := 0.95;
        rule.seed := 42;
    END IF;
    RETURN rule;
END
$$;
COMMENT ON FUNCTION recsys.gate_rule(text) IS 'The promotion gate''s decision rule for a model (recsys.gate_rules, or the defaults)';

-- Changes some fields of a model's rule: set_gate_rule('default', '{"max_drop_relative": 0.02}').
-- A key with JSON null clears an optional limit (max_drop_absolute, max_drop_relative).
CREATE FUNCTION recsys.set_gate_rule(model_name text, changes jsonb) RETURNS recsys.gate_rules
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rule    recsys.gate_rules;
    unknown text;
BEGIN
    IF model_name IS NULL OR changes IS NULL THEN
        RAISE EXCEPTION 'model name and changes must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF jsonb_typeof(changes) <> 'object' THEN
        RAISE EXCEPTION 'gate rule changes must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT k INTO unknown FROM jsonb_object_keys(changes) k
     WHERE k NOT IN ('min_map7', 'max_drop_absolute', 'max_drop_relative', 'allow_upper_below_zero',
                     'subpopulations_must_pass', 'min_subpopulation_customers', 'subpopulation_confidence',
                     'resamples', 'confidence', 'seed')
     LIMIT 1;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown gate rule field "%"', unknown USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Fields: min_map7, max_drop_absolute, max_drop_relative, allow_upper_below_zero, '
                   'subpopulations_must_pass, min_subpopulation_customers, subpopulation_confidence, resamples, '
                   'confidence, seed.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM recsys.models m WHERE m.name = model_name) THEN
        RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = 'undefined_object';
    END IF;
    rule := jsonb_populate_record(recsys.gate_rule(model_name), changes);
    rule.updated_at := now();
    rule.updated_by := recsys.acting_role();
    -- The table's CHECK constraints refuse values out of range, with the constraint's name.
    INSERT INTO recsys.gate_rules VALUES (rule.*)
    ON CONFLICT (name) DO UPDATE SET
        min_map7 = EXCLUDED.min_map7, max_drop_absolute = EXCLUDED.max_drop_absolute,
        max_drop_relative = EXCLUDED.max_drop_relative, allow_upper_below_zero = EXCLUDED.allow_upper_below_zero,
        subpopulations_must_pass = EXCLUDED.subpopulations_must_pass,
        min_subpopulation_customers = EXCLUDED.min_subpopulation_customers,
        subpopulation_confidence = EXCLUDED.subpopulation_confidence, resamples = EXCLUDED.resamples,
        confidence = EXCLUDED.confidence, seed = EXCLUDED.seed, updated_at = EXCLUDED.updated_at,
        updated_by = EXCLUDED.updated_by;
    RETURN rule;
END
$$;
COMMENT ON FUNCTION recsys.set_gate_rule(text, jsonb) IS 'Changes fields of a model''s promotion gate rule; returns the rule now in force';

---------------------------------------------------------------------------------------------
-- Validation
---------------------------------------------------------------------------------------------

-- Writes a validation record; only recsys.validate() calls it (callers need no INSERT right).
CREATE FUNCTION recsys.record_model_validation(model_name text, candidate_version integer, production_version integer,
                                               rule recsys.gate_rules, figures jsonb, passed boolean, reasons text[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id bigint;
BEGIN
    INSERT INTO recsys.model_validations (name, candidate_version, production_version, relation, month, customers, adders,
                                          fingerprint, candidate_map7, production_map7, difference, ci_low, ci_high,
                                          rule, figures, passed, reasons, validated_by)
    VALUES (model_name, candidate_version, production_version, figures ->> 'relation', (figures ->> 'month')::date,
            (figures ->> 'customers')::bigint, (figures ->> 'adders')::bigint, figures ->> 'fingerprint',
            (figures -> 'candidate' ->> 'map7')::double precision,
            (figures -> 'baseline' ->> 'map7')::double precision,
            (figures -> 'difference' ->> 'mean')::double precision,
            (figures -> 'difference' ->> 'low')::double precision,
            (figures -> 'difference' ->> 'high')::double precision,
            to_jsonb(rule) - 'updated_at' - 'updated_by' - 'name', figures, passed, reasons, recsys.acting_role())
    RETURNING model_validations.id INTO id;
    RETURN id;
END
$$;
COMMENT ON FUNCTION recsys.record_model_validation(text, integer, integer, recsys.gate_rules, jsonb, boolean, text[]) IS 'Stores a validation record (called by recsys.validate)';

-- 'YYYY-MM' of a month recorded in a model's training_data, or NULL.
CREATE FUNCTION recsys.last_training_month(training_data jsonb) RETURNS date
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN (SELECT max(to_date(m, 'YYYY-MM'))
          FROM (SELECT training_data ->> 'validation_month'
                UNION ALL SELECT training_data -> 'train_months' ->> 1) AS months(m)
         WHERE m ~ '^\d{4}-\d{2}$');
COMMENT ON FUNCTION recsys.last_training_month(jsonb) IS 'The latest month a model used for training or early stopping, from its training_data (NULL when not recorded)';

-- Champion/challenger validation. SECURITY DEFINER, because the record it writes is what lets
-- a candidate through the gate: no role may write one by other means. It therefore reads the
-- source as the extension's owner, after checking that the calling role may read every
-- column either model reads, and that no row-level security policy would hide rows from it.
CREATE FUNCTION recsys.validate(model_name text, candidate_version integer, month date DEFAULT NULL)
RETURNS TABLE (validation_id bigint, passed boolean, production_version integer, candidate_map7 double precision,
               production_map7 double precision, difference double precision, ci_low double precision,
               ci_high double precision, reasons text[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    candidate   record;
    production  record;
    rule        recsys.gate_rules;
    figures     jsonb;
    eval_month  date := date_trunc('month', validate.month)::date;
    last_month  date;
    failures    text[] := '{}';
    notes       text[] := '{}';
    c_map7      double precision;
    p_map7      double precision;
    sub         jsonb;
    dropped     double precision;
BEGIN
    IF model_name IS NULL OR candidate_version IS NULL THEN
        RAISE EXCEPTION 'model name and candidate version must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT m.version, m.status, m.training_data, m.feature_spec INTO candidate FROM recsys.models m
     WHERE m.name = model_name AND m.version = candidate_version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" version % does not exist', model_name, candidate_version
            USING ERRCODE = 'undefined_object';
    END IF;
    SELECT m.version, m.training_data, m.feature_spec INTO production FROM recsys.models m
     WHERE m.name = model_name AND m.status = 'production';
    PERFORM recsys.require_model_readable(candidate.feature_spec, recsys.acting_role(), 'validate');
    IF production.version IS NOT NULL THEN
        PERFORM recsys.require_model_readable(production.feature_spec, recsys.acting_role(), 'validate');
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_roles r ON r.rolname = recsys.acting_role()
                WHERE c.oid = to_regclass(candidate.feature_spec -> 'source' ->> 'relation')
                  AND c.relrowsecurity AND NOT r.rolsuper AND NOT r.rolbypassrls
                  AND NOT pg_has_role(r.oid, c.relowner, 'USAGE')) THEN
        RAISE EXCEPTION 'cannot validate model "%": row-level security hides rows of % from role "%"', model_name,
                        candidate.feature_spec -> 'source' ->> 'relation', recsys.acting_role()
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A validation judges a model on every customer of the month.';
    END IF;
    IF production.version = candidate_version THEN
        RAISE EXCEPTION 'model "%" version % is already the production version', model_name, candidate_version
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    rule := recsys.gate_rule(model_name);

    -- The month judged must be one the candidate never learned from, early stopping included.
    last_month := recsys.last_training_month(candidate.training_data);
    IF eval_month IS NULL THEN
        figures := recsys.compare_versions(model_name, candidate_version, production.version, NULL,
                                           rule.resamples, rule.confidence, rule.seed,
                                           rule.subpopulation_confidence);
        eval_month := date_trunc('month', (figures ->> 'month')::date)::date;
    END IF;
    IF last_month IS NOT NULL AND eval_month <= last_month THEN
        RAISE EXCEPTION 'cannot validate model "%" version % on %: it was trained or early-stopped on months up to %',
                        model_name, candidate_version, to_char(eval_month, 'YYYY-MM'), to_char(last_month, 'YYYY-MM')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Validate on a later month, or train the candidate with an earlier validation_month.';
    END IF;
    IF figures IS NULL THEN
        figures := recsys.compare_versions(model_name, candidate_version, production.version, eval_month,
                                           rule.resamples, rule.confidence, rule.seed,
                                           rule.subpopulation_confidence);
    END IF;
    IF last_month IS NULL THEN
        notes := notes || 'the candidate''s training months are not recorded: this month may not be held out'::text;
    END IF;
    IF recsys.last_training_month(production.training_data) >= eval_month THEN
        notes := notes || format('production version %s was trained on %s: its figures are optimistic',
                                 production.version, to_char(eval_month, 'YYYY-MM'));
    END IF;

    c_map7 := (figures -> 'candidate' ->> 'map7')::double precision;
    p_map7 := (figures -> 'baseline' ->> 'map7')::double precision;
    IF c_map7 < rule.min_map7 THEN
        failures := failures || format('MAP@7 %s is below the minimum %s', round(c_map7::numeric, 5), rule.min_map7);
    END IF;
    IF production.version IS NOT NULL THEN
        dropped := p_map7 - c_map7;
        IF rule.max_drop_absolute IS NOT NULL AND dropped > rule.max_drop_absolute THEN
            failures := failures || format('MAP@7 %s is %s below production''s %s (allowed drop %s)',
                                           round(c_map7::numeric, 5), round(dropped::numeric, 5),
                                           round(p_map7::numeric, 5), rule.max_drop_absolute);
        END IF;
        IF rule.max_drop_relative IS NOT NULL AND p_map7 > 0 AND dropped / p_map7 > rule.max_drop_relative THEN
            failures := failures || format('MAP@7 %s is %s%% below production''s %s (allowed %s%%)',
                                           round(c_map7::numeric, 5), round((100 * dropped / p_map7)::numeric, 2),
                                           round(p_map7::numeric, 5), round((100 * rule.max_drop_relative)::numeric, 2));
        END IF;
        IF NOT rule.allow_upper_below_zero AND (figures -> 'difference' ->> 'high')::double precision < 0 THEN
            failures := failures || format('clearly worse than production: MAP@7 difference %s, %s%% interval [%s, %s]',
                                           round((figures -> 'difference' ->> 'mean')::numeric, 5),
                                           round((100 * rule.confidence)::numeric, 1),
                                           round((figures -> 'difference' ->> 'low')::numeric, 5),
                                           round((figures -> 'difference' ->> 'high')::numeric, 5));
        END IF;
        IF rule.subpopulations_must_pass THEN
            FOR sub IN SELECT s FROM jsonb_array_elements(figures -> 'subpopulations') s
                        WHERE (s ->> 'customers')::bigint >= rule.min_subpopulation_customers
                          AND (s ->> 'high')::double precision < 0
                        ORDER BY (s ->> 'difference')::double precision LOOP
                failures := failures || format('clearly worse for %s = %s (%s customers): MAP@7 difference %s, %s%% interval [%s, %s]',
                                               sub ->> 'dimension', sub ->> 'value', sub ->> 'customers',
                                               round((sub ->> 'difference')::numeric, 5),
                                               round((100 * rule.subpopulation_confidence)::numeric, 1),
                                               round((sub ->> 'low')::numeric, 5), round((sub ->> 'high')::numeric, 5));
            END LOOP;
        END IF;
    END IF;

    passed := cardinality(failures) = 0;
    reasons := failures || notes;
    IF passed THEN
        reasons := array_prepend(CASE WHEN production.version IS NULL
                                      THEN format('passed: MAP@7 %s, no production version to compare with',
                                                  round(c_map7::numeric, 5))
                                      ELSE format('passed: MAP@7 %s against production''s %s, difference %s [%s, %s]',
                                                  round(c_map7::numeric, 5), round(p_map7::numeric, 5),
                                                  round((figures -> 'difference' ->> 'mean')::numeric, 5),
                                                  round((figures -> 'difference' ->> 'low')::numeric, 5),
                                                  round((figures -> 'difference' ->> 'high')::numeric, 5)) END,
                                 reasons);
    END IF;
    validation_id := recsys.record_model_validation(model_name, candidate_version, production.version, rule, figures,
                                                    passed, reasons);
    production_version := production.version;
    candidate_map7 := c_map7;
    production_map7 := p_map7;
    difference := (figures -> 'difference' ->> 'mean')::double precision;
    ci_low := (figures -> 'difference' ->> 'low')::double precision;
    ci_high := (figures -> 'difference' ->> 'high')::double precision;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION recsys.validate(text, integer, date) IS 'Evaluates a candidate and the production version on the same frozen rows of a held-out month (NULL: the latest), applies the model''s gate rule (paired bootstrap interval, subpopulations) and stores a validation record; returns the decision';

---------------------------------------------------------------------------------------------
-- Promotion and rollback, recorded with their reasons
---------------------------------------------------------------------------------------------

DROP FUNCTION recsys.promote_if_better(text, integer, date, double precision);
DROP FUNCTION recsys.promote(text, integer);
DROP FUNCTION recsys.rollback(text);

CREATE FUNCTION recsys.promote(model_name text, model_version integer, force boolean DEFAULT false,
                               reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    current_version integer;
    spec            jsonb;
    registrant      name;
    validation      bigint;
    forced          boolean := false;
BEGIN
    IF model_name IS NULL OR model_version IS NULL OR force IS NULL THEN
        RAISE EXCEPTION 'model name, version and force must not be NULL' USING ERRCODE = 'null_value_not_allowed';
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
    -- The gate: a passing validation against the production version of now.
    SELECT v.id INTO validation FROM recsys.model_validations v
     WHERE v.name = model_name AND v.candidate_version = model_version AND v.passed
       AND v.production_version IS NOT DISTINCT FROM current_version
     ORDER BY v.id DESC LIMIT 1;
    IF validation IS NULL THEN
        IF NOT force THEN
            RAISE EXCEPTION 'model "%" version % has no passing validation against %', model_name, model_version,
                            coalesce('production version ' || current_version, 'an empty production slot')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = format('Run recsys.validate(%L, %s) first; a member of recsys_override may promote '
                                    'without it: recsys.promote(%L, %s, force => true, reason => ''...'').',
                                    model_name, model_version, model_name, model_version);
        END IF;
        IF NOT pg_has_role(recsys.acting_role(), 'recsys_override', 'MEMBER') THEN
            RAISE EXCEPTION 'role "%" may not force a promotion', recsys.acting_role()
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'Promoting without a passing validation needs membership in recsys_override.';
        END IF;
        IF nullif(btrim(reason), '') IS NULL THEN
            RAISE EXCEPTION 'a forced promotion needs a reason' USING ERRCODE = 'null_value_not_allowed',
                HINT = 'Pass reason => ''why the gate is skipped''; it is kept in recsys.model_events.';
        END IF;
        forced := true;
    END IF;
    UPDATE recsys.models m SET status = 'archived' WHERE m.name = model_name AND m.status = 'production';
    UPDATE recsys.models m SET status = 'production' WHERE m.name = model_name AND m.version = model_version;
    -- Stored LSTM states belong to the version that computed them.
    DELETE FROM recsys.customer_states s WHERE s.model_name = promote.model_name;
    INSERT INTO recsys.model_events (name, version, action, previous_version, by, reason, forced, validation_id)
    VALUES (model_name, model_version, 'promote', current_version, recsys.acting_role(), reason, forced, validation);
    PERFORM recsys.store_model_card(model_name, model_version, 'promote');
END
$$;
COMMENT ON FUNCTION recsys.promote(text, integer, boolean, text) IS 'Makes a version the production version, atomically; needs a passing recsys.validate() record against the current production version, or force => true with a reason from a member of recsys_override';

CREATE FUNCTION recsys.rollback(model_name text, reason text DEFAULT NULL) RETURNS integer
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
    -- The version that was in production before the current one became production. Going
    -- back to it needs no validation: it served before, and the rollback is recorded.
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
    INSERT INTO recsys.model_events (name, version, action, previous_version, by, reason)
    VALUES (model_name, target_version, 'rollback', target_previous, recsys.acting_role(),
            coalesce(reason, format('rolled back from version %s', current_version)));
    RETURN target_version;
END
$$;
COMMENT ON FUNCTION recsys.rollback(text, text) IS 'Puts the previous production version back into production, recording why; returns it';

-- recsys.record_model_validation is granted to no one: only recsys.validate writes records.
GRANT EXECUTE ON FUNCTION
    recsys.gate_rule(text),
    recsys.last_training_month(jsonb)
TO recsys_reader;
GRANT EXECUTE ON FUNCTION
    recsys.set_gate_rule(text, jsonb),
    recsys.validate(text, integer, date),
    recsys.promote(text, integer, boolean, text),
    recsys.rollback(text, text)
TO recsys_admin;
