-- Continuous training (docs/lifecycle.md, "Continuous training"): recsys.retrain() runs one
-- cycle (data check of the newest month, a candidate trained with production's
-- hyper-parameters, validation against production on the held-out newest month, promotion only
-- through the gate) and records every step in recsys.training_runs. Scheduled with pg_cron:
--   SELECT cron.schedule('recsys-monthly-retrain', '0 3 2 * *',
--                        $$SELECT recsys.retrain('default', 'santander.snapshots')$$);

---------------------------------------------------------------------------------------------
-- Recording: SECURITY DEFINER, so that callers need no privilege on recsys.training_runs.
---------------------------------------------------------------------------------------------
-- run.id NULL: inserts a new run (status running, started by the acting role) and returns it.
-- Otherwise updates that run, which must still be running and have been started by the acting
-- role; finished_at and production_after are taken from the clock and the registry, not from
-- the caller, and a run can only be recorded as promoted when its candidate is in production.
CREATE FUNCTION recsys.record_training_run(run recsys.training_runs) RETURNS recsys.training_runs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stored     recsys.training_runs;
    production integer;
BEGIN
    IF run IS NULL OR run.name IS NULL OR run.relation IS NULL THEN
        RAISE EXCEPTION 'a training run needs a model name and a relation' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF run.id IS NULL THEN
        INSERT INTO recsys.training_runs AS r (name, relation, started_by, steps)
        VALUES (run.name, run.relation, recsys.acting_role(), coalesce(run.steps, '[]'))
        RETURNING r.* INTO stored;
        RETURN stored;
    END IF;
    SELECT r.* INTO stored FROM recsys.training_runs r WHERE r.id = run.id FOR UPDATE;
    IF NOT FOUND OR stored.status <> 'running' OR stored.started_by <> recsys.acting_role()
       OR stored.name <> run.name THEN
        RAISE EXCEPTION 'training run % is not a running cycle of role "%" for model "%"', run.id,
                        recsys.acting_role(), run.name
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF run.status IS NULL OR jsonb_typeof(run.steps) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'a training run needs a status and an array of steps' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT m.version INTO production FROM recsys.models m WHERE m.name = stored.name AND m.status = 'production';
    IF run.status = 'promoted' AND production IS DISTINCT FROM run.candidate_version THEN
        RAISE EXCEPTION 'training run % cannot be recorded as promoted: version % is not in production', run.id,
                        run.candidate_version USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE recsys.training_runs r
       SET finished_at = CASE WHEN run.status <> 'running' THEN clock_timestamp() END,
           status = run.status,
           data_validation_id = run.data_validation_id,
           candidate_version = run.candidate_version,
           validation_id = run.validation_id,
           production_before = run.production_before,
           production_after = CASE WHEN run.status <> 'running' THEN production END,
           steps = run.steps,
           error = run.error,
           error_sqlstate = run.error_sqlstate
     WHERE r.id = run.id
    RETURNING r.* INTO stored;
    RETURN stored;
END
$$;
COMMENT ON FUNCTION recsys.record_training_run(recsys.training_runs) IS 'Inserts (id NULL) or updates a running recsys.training_runs row of the acting role; used by recsys.retrain()';

-- One element of recsys.training_runs.steps.
CREATE FUNCTION recsys.training_run_step(step text, started_at timestamptz, outcome text, detail jsonb)
RETURNS jsonb
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
RETURN jsonb_build_object('step', step, 'started_at', started_at,
                          'seconds', round(extract(epoch FROM clock_timestamp() - started_at)::numeric, 3),
                          'outcome', outcome, 'detail', detail);
COMMENT ON FUNCTION recsys.training_run_step(text, timestamptz, text, jsonb) IS 'A step of a training run as recorded in recsys.training_runs.steps: {step, started_at, seconds (until now), outcome, detail}';

---------------------------------------------------------------------------------------------
-- The cycle
---------------------------------------------------------------------------------------------
-- SECURITY INVOKER: the data check and the training read the relation with the caller's rights,
-- and each step needs the caller's own privileges (recsys_admin; recsys.validate and
-- recsys.promote check theirs). Each step runs in a sub-block: an error there is caught, recorded
-- (step, message, SQLSTATE) and ends the cycle with status failed; what earlier steps did stays
-- (a trained candidate remains a candidate), production is only ever changed by recsys.promote
-- after a passing validation. The function then returns normally, so the run row commits with
-- the caller's transaction (and pg_cron reports the job as succeeded; the run row says how the
-- cycle ended). A cancel or statement_timeout is not caught: it aborts the whole cycle, run row
-- included, like any statement.
CREATE FUNCTION recsys.retrain(model_name text, relation regclass, data_override_reason text DEFAULT NULL)
RETURNS recsys.training_runs
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- What a hyper-parameter is when production's record lacks it: recsys.train()'s defaults.
    defaults     CONSTANT jsonb := '{"train_months": 12, "window_months": 16, "hidden": 128, "layers": 1,
                                     "epochs": 5, "batch_size": 256, "learning_rate": 0.003, "clip_norm": 5,
                                     "patience": 2, "seed": 1, "max_customers": null, "start_month": null}';
    run          recsys.training_runs;
    production   record;
    hp           jsonb;
    missing      text[];
    id_col       text;
    month_col    text;
    newest       date;
    eval_month   date;      -- the newest month: held out, judged by recsys.validate
    stop_month   date;      -- the month before it: early stopping
    start_month  date;
    months       date[];
    consecutive  integer;
    available    integer;
    requested    integer;
    used         integer;
    gate         record;
    failing      jsonb;
    warnings     jsonb;
    detail       jsonb;
    step_name    text;
    step_started timestamptz;
    err_message  text;
    err_state    text;
    err_detail   text;
    err_hint     text;
BEGIN
    IF model_name IS NULL OR relation IS NULL THEN
        RAISE EXCEPTION 'model name and relation must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF data_override_reason IS NOT NULL AND btrim(data_override_reason) = '' THEN
        RAISE EXCEPTION 'data_override_reason must not be empty' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Say why the data may be used although it failed its checks, or pass NULL.';
    END IF;
    run.name := model_name;
    run.relation := relation::text;   -- schema-qualified: the search_path is pinned
    run := recsys.record_training_run(run);

    <<cycle>>
    LOOP
        -------------------------------------------------------------------------------------
        -- started: production, its hyper-parameters, the newest month of the relation
        -------------------------------------------------------------------------------------
        step_name := 'started';
        step_started := clock_timestamp();
        BEGIN
            -- One cycle per model at a time: a second one (a slow cycle overlapping the next
            -- schedule, a manual run) is recorded as failed instead of training twice.
            IF NOT pg_try_advisory_xact_lock(hashtext('recsys.retrain'), hashtext(model_name)) THEN
                RAISE EXCEPTION 'another retrain cycle of model "%" is running', model_name
                    USING ERRCODE = 'lock_not_available';
            END IF;
            SELECT m.version, m.hyperparameters, m.feature_spec INTO production
              FROM recsys.models m WHERE m.name = model_name AND m.status = 'production';
            IF NOT FOUND THEN
                IF NOT EXISTS (SELECT 1 FROM recsys.models m WHERE m.name = model_name) THEN
                    RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = 'undefined_object',
                        HINT = 'Train a first version with recsys.train() and promote it.';
                END IF;
                RAISE EXCEPTION 'model "%" has no production version: a retrain cycle takes its hyper-parameters from production and compares the candidate with it',
                                model_name
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          HINT = 'Promote a first version: recsys.validate(name, version), then recsys.promote(name, version).';
            END IF;
            run.production_before := production.version;
            -- The gate compares candidate and production on the same relation.
            IF to_regclass(production.feature_spec -> 'source' ->> 'relation') IS DISTINCT FROM relation THEN
                RAISE EXCEPTION 'relation % is not the relation production version % of model "%" reads (%)', relation,
                                production.version, model_name, production.feature_spec -> 'source' ->> 'relation'
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = 'A retrain cycle validates its candidate against production on the same relation.';
            END IF;
            hp := CASE WHEN jsonb_typeof(production.hyperparameters) = 'object' THEN production.hyperparameters
                       ELSE '{}' END;
            SELECT coalesce(array_agg(k ORDER BY k), '{}') INTO missing
              FROM jsonb_object_keys(defaults) k WHERE NOT hp ? k;
            hp := defaults || (hp - 'source' - 'validation_month');
            id_col := coalesce(production.feature_spec -> 'source' ->> 'id_column', 'ncodpers');
            month_col := coalesce(production.feature_spec -> 'source' ->> 'month_column', 'fecha_dato');
            EXECUTE format('SELECT max(%I)::date FROM %s', month_col, relation) INTO newest;
            IF newest IS NULL THEN
                RAISE EXCEPTION 'relation % has no snapshots', relation USING ERRCODE = 'no_data_found';
            END IF;
            eval_month := date_trunc('month', newest::timestamp)::date;
            stop_month := (eval_month - interval '1 month')::date;
            run.steps := run.steps || recsys.training_run_step(step_name, step_started, 'ok', jsonb_build_object(
                'production_version', production.version,
                'production_relation', production.feature_spec -> 'source' ->> 'relation',
                'newest_month', to_char(eval_month, 'YYYY-MM'),
                'hyperparameters', hp,
                'defaulted', to_jsonb(missing)));
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err_message = MESSAGE_TEXT, err_state = RETURNED_SQLSTATE,
                                    err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
            EXIT cycle;
        END;

        -------------------------------------------------------------------------------------
        -- data_check: the newest month against production's feature spec
        -------------------------------------------------------------------------------------
        step_name := 'data_check';
        step_started := clock_timestamp();
        BEGIN
            run.data_validation_id := recsys.require_valid_data(relation, eval_month, model_name, production.version,
                                                                data_override_reason, id_col, month_col);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err_message = MESSAGE_TEXT, err_state = RETURNED_SQLSTATE,
                                    err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
            -- The failed check's record went with the error: store the checks again, so that
            -- the run points at a record listing every failing check.
            IF err_state = '22000' THEN
                BEGIN
                    SELECT max(v.validation_id),
                           jsonb_agg(jsonb_build_object('check', v.check_name, 'column', v.column_name,
                                                        'observed', v.observed, 'expected', v.expected))
                               FILTER (WHERE v.severity = 'fail')
                      INTO run.data_validation_id, failing
                      FROM recsys.validate_data(relation, eval_month, model_name, production.version, id_col,
                                                month_col) v;
                EXCEPTION WHEN OTHERS THEN
                    NULL;   -- the first error is the one to report
                END;
            END IF;
            EXIT cycle;
        END;
        BEGIN
            SELECT jsonb_agg(jsonb_build_object('check', r ->> 'check', 'column', r ->> 'column',
                                                'observed', r ->> 'observed', 'expected', r ->> 'expected'))
              INTO warnings
              FROM recsys.data_validations d, jsonb_array_elements(d.results) r
             WHERE d.id = run.data_validation_id AND r ->> 'severity' = 'warn';
        EXCEPTION WHEN insufficient_privilege THEN
            warnings := NULL;
        END;
        run.steps := run.steps || recsys.training_run_step(step_name, step_started,
            CASE WHEN data_override_reason IS NULL THEN 'ok' ELSE 'ok (override)' END,
            jsonb_build_object('month', to_char(eval_month, 'YYYY-MM'), 'data_validation_id', run.data_validation_id,
                               'warnings', coalesce(warnings, '[]'), 'override_reason', data_override_reason));

        -------------------------------------------------------------------------------------
        -- training: production's hyper-parameters, early stopping on the month before the
        -- newest, so that the newest stays held out for the validation
        -------------------------------------------------------------------------------------
        step_name := 'training';
        step_started := clock_timestamp();
        BEGIN
            EXECUTE format('SELECT array_agg(DISTINCT date_trunc(''month'', %1$I::timestamp)::date) FROM %2$s WHERE %1$I < %3$L',
                           month_col, relation, eval_month)
               INTO months;
            IF months IS NULL OR NOT stop_month = ANY (months) THEN
                RAISE EXCEPTION 'relation % has no snapshots in %, the month before the newest (%)', relation,
                                to_char(stop_month, 'YYYY-MM'), to_char(eval_month, 'YYYY-MM')
                    USING ERRCODE = 'no_data_found',
                          DETAIL = 'A cycle early-stops on the month before the newest and validates on the newest.';
            END IF;
            -- Consecutive months before the early-stopping month; train_months target months
            -- need one more (each target's month before).
            consecutive := 0;
            WHILE ((stop_month - make_interval(months => consecutive + 1))::date) = ANY (months) LOOP
                consecutive := consecutive + 1;
            END LOOP;
            available := consecutive - 1;
            start_month := CASE WHEN hp ->> 'start_month' ~ '^\d{4}-\d{2}$' THEN to_date(hp ->> 'start_month', 'YYYY-MM')
                                ELSE (hp ->> 'start_month')::date END;
            IF start_month IS NOT NULL THEN
                -- A from-start model's inputs begin at its start month: the month before the
                -- first target month may not be earlier.
                available := least(available,
                                   (extract(year FROM stop_month) * 12 + extract(month FROM stop_month))::integer
                                   - (extract(year FROM start_month) * 12 + extract(month FROM start_month))::integer - 1);
            END IF;
            requested := (hp ->> 'train_months')::integer;
            used := least(requested, available);
            IF used < 1 THEN
                RAISE EXCEPTION 'relation % has too few months to train on: a target month before % needs its previous month too',
                                relation, to_char(stop_month, 'YYYY-MM')
                    USING ERRCODE = 'no_data_found',
                          DETAIL = format('Months present before %s: %s.', to_char(eval_month, 'YYYY-MM'),
                                          (SELECT string_agg(to_char(m, 'YYYY-MM'), ', ' ORDER BY m) FROM unnest(months) m));
            END IF;
            run.candidate_version := recsys.train(
                model_name, relation::text,
                train_months     => used,
                validation_month => stop_month,
                window_months    => (hp ->> 'window_months')::integer,
                hidden           => (hp ->> 'hidden')::integer,
                layers           => (hp ->> 'layers')::integer,
                epochs           => (hp ->> 'epochs')::integer,
                batch_size       => (hp ->> 'batch_size')::integer,
                learning_rate    => (hp ->> 'learning_rate')::real,
                clip_norm        => (hp ->> 'clip_norm')::real,
                patience         => (hp ->> 'patience')::integer,
                seed             => (hp ->> 'seed')::bigint,
                max_customers    => (hp ->> 'max_customers')::integer,
                start_month      => start_month,
                id_column        => id_col,
                month_column     => month_col,
                data_override_reason => data_override_reason);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err_message = MESSAGE_TEXT, err_state = RETURNED_SQLSTATE,
                                    err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
            EXIT cycle;
        END;
        run.steps := run.steps || recsys.training_run_step(step_name, step_started, 'ok', jsonb_build_object(
            'candidate_version', run.candidate_version,
            'train_months', used,
            'train_months_requested', requested,
            'target_months', jsonb_build_array(to_char(stop_month - make_interval(months => used), 'YYYY-MM'),
                                               to_char(stop_month - interval '1 month', 'YYYY-MM')),
            'validation_month', to_char(stop_month, 'YYYY-MM'),
            'note', CASE WHEN used < requested
                         THEN format('production trained on %s months; %s has only %s target months before %s',
                                     requested, relation, available, to_char(stop_month, 'YYYY-MM')) END));

        -------------------------------------------------------------------------------------
        -- validation: candidate against production on the held-out newest month
        -------------------------------------------------------------------------------------
        step_name := 'validation';
        step_started := clock_timestamp();
        BEGIN
            SELECT v.* INTO gate FROM recsys.validate(model_name, run.candidate_version, eval_month) v;
            run.validation_id := gate.validation_id;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err_message = MESSAGE_TEXT, err_state = RETURNED_SQLSTATE,
                                    err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
            EXIT cycle;
        END;
        run.steps := run.steps || recsys.training_run_step(step_name, step_started,
            CASE WHEN gate.passed THEN 'passed' ELSE 'refused' END,
            jsonb_build_object('validation_id', gate.validation_id, 'month', to_char(eval_month, 'YYYY-MM'),
                               'production_version', gate.production_version,
                               'candidate_map7', gate.candidate_map7, 'production_map7', gate.production_map7,
                               'difference', gate.difference, 'ci_low', gate.ci_low, 'ci_high', gate.ci_high,
                               'reasons', to_jsonb(gate.reasons)));

        -------------------------------------------------------------------------------------
        -- decision: promote through the gate, or keep production
        -------------------------------------------------------------------------------------
        step_name := 'decision';
        step_started := clock_timestamp();
        BEGIN
            IF gate.passed THEN
                PERFORM recsys.promote(model_name, run.candidate_version);
                run.status := 'promoted';
            ELSE
                run.status := 'kept';
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err_message = MESSAGE_TEXT, err_state = RETURNED_SQLSTATE,
                                    err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
            EXIT cycle;
        END;
        run.steps := run.steps || recsys.training_run_step(step_name, step_started, run.status, jsonb_build_object(
            'production_version', CASE WHEN run.status = 'promoted' THEN run.candidate_version
                                       ELSE run.production_before END,
            'reason', CASE WHEN run.status = 'promoted'
                           THEN format('version %s passed validation %s and replaced version %s',
                                       run.candidate_version, run.validation_id, run.production_before)
                           ELSE format('version %s did not pass validation %s: %s', run.candidate_version,
                                       run.validation_id, array_to_string(gate.reasons, '; ')) END));
        EXIT cycle;
    END LOOP;

    IF err_state IS NOT NULL THEN
        run.status := 'failed';
        run.error := err_message;
        run.error_sqlstate := err_state;
        run.steps := run.steps || recsys.training_run_step(step_name, step_started, 'failed', jsonb_strip_nulls(
            jsonb_build_object('error', err_message, 'sqlstate', err_state, 'detail', nullif(err_detail, ''),
                               'hint', nullif(err_hint, ''), 'failing_checks', failing,
                               'data_validation_id', CASE WHEN step_name = 'data_check' THEN run.data_validation_id END)));
    END IF;
    RETURN recsys.record_training_run(run);
END
$$;
COMMENT ON FUNCTION recsys.retrain(text, regclass, text) IS 'One continuous-training cycle: checks the newest month of the relation (recsys.require_valid_data), trains a candidate with production''s hyper-parameters on the months before it (early stopping on the month before the newest), validates it against production on the newest month (recsys.validate) and promotes it only if the gate passes; every step, its timing and any error are recorded in recsys.training_runs, whose row it returns';

GRANT EXECUTE ON FUNCTION
    recsys.retrain(text, regclass, text),
    recsys.record_training_run(recsys.training_runs),
    recsys.training_run_step(text, timestamptz, text, jsonb)
TO recsys_admin;
