-- Model cards (docs/lifecycle.md): a Markdown description of one model version, written from
-- the registry alone (recsys.models, recsys.model_validations, recsys.model_events): what it
-- is for, what it was trained on, how it encodes its inputs, how it scored, whether and how
-- it passed the promotion gate, where it came from and what it cannot do. The card reads no
-- clock and no source data, so the same registry gives the same card; a piece the registry
-- does not hold reads "not recorded". recsys.model_cards keeps the card as it was when the
-- version was registered and when it was promoted.

---------------------------------------------------------------------------------------------
-- Formatting helpers (internal: granted to no one, called by the SECURITY DEFINER card)
---------------------------------------------------------------------------------------------

-- A JSON number as double precision; anything else (a string, null, missing) as NULL, so a
-- hand-registered model with odd metrics gives "not recorded" rather than a cast error.
CREATE FUNCTION recsys.model_card_number(value jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN jsonb_typeof(value) = 'number' THEN (value #>> '{}')::double precision END;
COMMENT ON FUNCTION recsys.model_card_number(jsonb) IS 'A JSON number as double precision, else NULL (model cards)';

-- A figure with a fixed number of decimals (NULL stays NULL).
CREATE FUNCTION recsys.model_card_fixed(value double precision, decimals integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN round(value::numeric, decimals)::text;
COMMENT ON FUNCTION recsys.model_card_fixed(double precision, integer) IS 'A figure rounded to a fixed number of decimals (model cards)';

-- A count with thousands separators (a literal comma, not the locale's).
CREATE FUNCTION recsys.model_card_count(value double precision) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN to_char(round(value::numeric), 'FM999,999,999,999,999,990');
COMMENT ON FUNCTION recsys.model_card_count(double precision) IS 'A count with comma thousands separators (model cards)';

-- Any JSON value as a card shows it: integers whole, other numbers to 6 significant digits
-- (a learning rate stored from a float, 0.003000000026, reads 0.003), strings bare, null as
-- "not set", objects and arrays as compact JSON.
CREATE FUNCTION recsys.model_card_value(value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE jsonb_typeof(value)
           WHEN 'number' THEN
               CASE WHEN (value #>> '{}')::numeric = trunc((value #>> '{}')::numeric)
                    THEN trunc((value #>> '{}')::numeric)::text
                    ELSE trim_scale(round((value #>> '{}')::numeric,
                                          5 - floor(log(abs((value #>> '{}')::numeric)))::integer))::text
               END
           WHEN 'string' THEN value #>> '{}'
           WHEN 'null' THEN 'not set'
           ELSE value::text
       END;
COMMENT ON FUNCTION recsys.model_card_value(jsonb) IS 'A JSON value as text for a model card: numbers to 6 significant digits, strings bare';

-- Text from the registry inside a Markdown line or table cell: one line, no column breaks.
CREATE FUNCTION recsys.model_card_text(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN replace(regexp_replace(value, '\s*[\r\n]+\s*', ' ', 'g'), '|', '\|');
COMMENT ON FUNCTION recsys.model_card_text(text) IS 'Registry text made safe for one Markdown line or table cell';

-- A moment in UTC, so that the card does not depend on the session's TimeZone.
CREATE FUNCTION recsys.model_card_time(value timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"');
COMMENT ON FUNCTION recsys.model_card_time(timestamptz) IS 'A timestamp as YYYY-MM-DD HH:MI UTC (model cards)';

---------------------------------------------------------------------------------------------
-- The card
---------------------------------------------------------------------------------------------

-- SECURITY DEFINER because the card describes the model's features from feature_spec, a column
-- recsys_reader may not read (it holds vocabularies and income statistics). The card shows only
-- what a reader may know about a model: column names, kinds, transforms, clip ranges and
-- vocabulary sizes; never vocabulary values, fitted means and deviations, weights or model
-- bytes. Everything else it reads (metadata columns of recsys.models, recsys.model_events,
-- recsys.model_validations) recsys_reader may read already.
CREATE FUNCTION recsys.model_card(model_name text, version integer) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m             record;
    spec          jsonb;
    td            jsonb;
    hp            jsonb;
    mx            jsonb;
    v             record;
    validations   bigint;
    relation      text;
    window_months integer;
    start_month   date;
    confidence    text;
    unknown_slots text;
    small_subpops text;
    card          text[] := '{}';
BEGIN
    IF model_name IS NULL OR version IS NULL THEN
        RAISE EXCEPTION 'model name and version must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT r.status, r.created_at, r.created_by, r.sha256, r.feature_spec, r.hyperparameters, r.metrics,
           r.training_data, r.description
      INTO m FROM recsys.models r WHERE r.name = model_name AND r.version = model_card.version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" version % does not exist', model_name, version USING ERRCODE = 'undefined_object',
            HINT = format('See SELECT version, status FROM recsys.models WHERE name = %L.', model_name);
    END IF;
    spec := m.feature_spec;
    td := CASE WHEN jsonb_typeof(m.training_data) = 'object' THEN m.training_data ELSE '{}' END;
    hp := CASE WHEN jsonb_typeof(m.hyperparameters) = 'object' THEN m.hyperparameters ELSE '{}' END;
    mx := CASE WHEN jsonb_typeof(m.metrics) = 'object' THEN m.metrics ELSE '{}' END;
    relation := spec -> 'source' ->> 'relation';
    window_months := (spec ->> 'window_months')::integer;
    IF spec -> 'history' ->> 'mode' = 'from_start_month' THEN
        start_month := to_date(spec -> 'history' ->> 'start_month', 'YYYY-MM');
    END IF;

    card := card || format('# Model card: %s, version %s', model_name, version)
                 || ''::text
                 || format('- **Status:** %s', m.status)
                 || format('- **Registered:** %s by %s', recsys.model_card_time(m.created_at), m.created_by)
                 || format('- **SHA-256 of the model bytes:** %s', encode(m.sha256, 'hex'))
                 || format('- **Description:** %s', coalesce(recsys.model_card_text(m.description), 'not recorded'));

    ----------------------------------------------------------------------------------------
    card := card || ''::text || '## Intended use'::text || ''::text
        || format('- Predicts which products a customer is likely to add in the month after their latest '
                  'snapshot, from Santander-shaped monthly snapshots: one row per customer (`%s`) and month (`%s`) '
                  'in `%s`, with %s product-ownership flags and the attributes under Features.',
                  spec -> 'source' ->> 'id_column', spec -> 'source' ->> 'month_column', relation,
                  jsonb_array_length(spec -> 'products'))
        || ('- Output: the top k products (7 by default; trained and judged for MAP@7) among those the customer '
            'does not hold in their latest month, best first: `recsys.recommend`, `recsys.recommend_scores`, '
            '`recsys.recommend_many`, `recsys.score_all`.')::text
        || ('- Scores rank products for one customer; they are not calibrated probabilities (training keeps '
            'every example with an add but only a sample of the others).')::text
        || ('- Not intended for decisions about a customer''s eligibility, credit or pricing, nor for data of '
            'another shape or population without retraining and validation.')::text;

    ----------------------------------------------------------------------------------------
    card := card || ''::text || '## Model'::text || ''::text
        || format('- LSTM: %s %s of %s hidden units, %s parameters (model format %s).',
                  spec ->> 'layers', CASE WHEN spec ->> 'layers' = '1' THEN 'layer' ELSE 'layers' END, spec ->> 'hidden', recsys.model_card_count(recsys.model_card_number(spec -> 'parameter_count')),
                  spec ->> 'format_version')
        || CASE WHEN start_month IS NULL
                THEN format('- History: the %s months ending at the customer''s latest snapshot (sliding window).',
                            window_months)
                ELSE format('- History: every month from %s, %s months at most (to %s); incremental scoring possible.',
                            to_char(start_month, 'YYYY-MM'), window_months,
                            to_char(start_month + make_interval(months => window_months - 1), 'YYYY-MM'))
           END
        || format('- Inputs each month: the %s product flags%s%s; per customer: the static features (%s inputs in all).',
                  jsonb_array_length(spec -> 'products'),
                  CASE WHEN (spec ->> 'include_product_adds')::boolean
                       THEN format(', whether each was added that month (%s flags)', jsonb_array_length(spec -> 'products'))
                       ELSE '' END,
                  CASE WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(spec -> 'features') f WHERE f ->> 'role' = 'dynamic')
                       THEN ' and the dynamic features' ELSE '' END,
                  spec ->> 'static_width')
        || format('- Products ranked: %s.',
                  (SELECT string_agg('`' || p || '`', ', ' ORDER BY n) FROM jsonb_array_elements_text(spec -> 'products')
                                                                            WITH ORDINALITY AS x(p, n)));

    ----------------------------------------------------------------------------------------
    card := card || ''::text || '## Training data'::text || ''::text;
    IF td = '{}' THEN
        card := card || '- not recorded (registered without a description of its training data)'::text;
    ELSE
        card := card
            || format('- Relation: `%s`', coalesce(recsys.model_card_text(td ->> 'relation'), 'not recorded'))
            || format('- Target months: %s; early stopping on %s',
                      CASE WHEN jsonb_typeof(td -> 'train_months') = 'array' AND jsonb_array_length(td -> 'train_months') = 2
                           THEN format('%s to %s', td -> 'train_months' ->> 0, td -> 'train_months' ->> 1)
                           ELSE coalesce(recsys.model_card_value(td -> 'train_months'), 'not recorded') END,
                      coalesce(td ->> 'validation_month', 'not recorded'))
            || format('- Rows read: %s; customers: %s',
                      coalesce(recsys.model_card_count(recsys.model_card_number(td -> 'rows')), 'not recorded'),
                      coalesce(recsys.model_card_count(recsys.model_card_number(td -> 'customers')), 'not recorded'))
            || format('- Training examples: %s of %s candidate customer-months (every one with an add, a sample of the others)',
                      coalesce(recsys.model_card_count(recsys.model_card_number(td -> 'examples')), 'not recorded'),
                      coalesce(recsys.model_card_count(recsys.model_card_number(td -> 'candidate_examples')), 'not recorded'))
            || format('- Data fingerprint: %s', coalesce(recsys.model_card_text(td ->> 'fingerprint'), 'not recorded'))
            || format('- Data check: %s',
                      CASE WHEN td ->> 'data_override_reason' IS NOT NULL
                           THEN format('overridden: %s', recsys.model_card_text(td ->> 'data_override_reason'))
                           WHEN td ->> 'data_validation_id' IS NOT NULL
                           THEN format('recsys.data_validations record #%s', td ->> 'data_validation_id')
                           ELSE 'not recorded' END);
    END IF;

    ----------------------------------------------------------------------------------------
    card := card || ''::text || '## Features'::text || ''::text
        || '| column | kind | role | encoding |'::text
        || '|---|---|---|---|'::text
        || ARRAY(
            SELECT format('| `%s` | %s | %s | %s |', recsys.model_card_text(f ->> 'column'), f ->> 'kind', f ->> 'role',
                          CASE WHEN f ->> 'kind' = 'categorical'
                               THEN format('one-hot over the %s values seen in training; NULL and unseen values: "unknown"',
                                           jsonb_array_length(f -> 'vocabulary'))
                               ELSE concat_ws(', ',
                                              format('clipped to [%s, %s]', recsys.model_card_value(f -> 'clip_min'),
                                                     recsys.model_card_value(f -> 'clip_max')),
                                              CASE WHEN f ->> 'transform' <> 'identity' THEN f ->> 'transform' END,
                                              'standardised with the training mean and deviation',
                                              CASE WHEN (f ->> 'missing_indicator')::boolean
                                                   THEN 'NULL: 0 with a missing flag' ELSE 'NULL: 0' END)
                          END)
              FROM jsonb_array_elements(spec -> 'features') WITH ORDINALITY AS x(f, n) ORDER BY n);

    ----------------------------------------------------------------------------------------
    card := card || ''::text || '## Hyper-parameters'::text || ''::text;
    IF hp = '{}' THEN
        card := card || '- not recorded'::text;
    ELSE
        card := card || '| name | value |'::text || '|---|---|'::text
            || ARRAY(SELECT format('| %s | %s |', recsys.model_card_text(key), recsys.model_card_text(recsys.model_card_value(value)))
                       FROM jsonb_each(hp) ORDER BY key);
    END IF;

    ----------------------------------------------------------------------------------------
    card := card || ''::text || '## Training time'::text || ''::text;
    IF recsys.model_card_number(mx -> 'seconds') IS NULL THEN
        card := card || '- not recorded'::text;
    ELSE
        card := card
            || format('- %s s in all%s', recsys.model_card_fixed(recsys.model_card_number(mx -> 'seconds'), 1),
                      CASE WHEN recsys.model_card_number(mx -> 'seconds') >= 60
                           THEN format(' (%s min)', recsys.model_card_fixed(recsys.model_card_number(mx -> 'seconds') / 60, 1))
                           ELSE '' END)
            || format('- Epochs run: %s of %s; best epoch: %s; training loss at the best epoch: %s',
                      coalesce(mx ->> 'epochs_run', 'not recorded'), coalesce(hp ->> 'epochs', 'not recorded'),
                      coalesce(mx ->> 'best_epoch', 'not recorded'),
                      coalesce(recsys.model_card_fixed(recsys.model_card_number(mx -> 'train_loss'), 4), 'not recorded'))
            || format('- Training examples a second: %s',
                      coalesce(recsys.model_card_count(recsys.model_card_number(mx -> 'examples_per_second')), 'not recorded'));
    END IF;

    ----------------------------------------------------------------------------------------
    card := card || ''::text || '## Evaluation'::text || ''::text;
    IF recsys.model_card_number(mx -> 'map7') IS NULL THEN
        card := card || '- At training: not recorded'::text;
    ELSE
        card := card
            || format('- At training, on the early-stopping month %s (used to choose the epoch, so not held out): '
                      'MAP@7 %s, MAP@7 of customers who added %s, precision@7 %s, recall@7 %s, coverage %s; '
                      '%s customers, %s of whom added a product',
                      coalesce(mx ->> 'validation_month', 'not recorded'),
                      recsys.model_card_fixed(recsys.model_card_number(mx -> 'map7'), 5),
                      coalesce(recsys.model_card_fixed(recsys.model_card_number(mx -> 'map7_adders'), 4), 'not recorded'),
                      coalesce(recsys.model_card_fixed(recsys.model_card_number(mx -> 'precision7'), 4), 'not recorded'),
                      coalesce(recsys.model_card_fixed(recsys.model_card_number(mx -> 'recall7'), 4), 'not recorded'),
                      coalesce(recsys.model_card_fixed(recsys.model_card_number(mx -> 'coverage'), 4), 'not recorded'),
                      coalesce(recsys.model_card_count(recsys.model_card_number(mx -> 'validation_customers')), 'not recorded'),
                      coalesce(recsys.model_card_count(recsys.model_card_number(mx -> 'validation_adders')), 'not recorded'));
    END IF;
    IF jsonb_typeof(mx -> 'evaluation') = 'object' AND mx -> 'evaluation' <> '{}' THEN
        card := card || '- Recorded evaluations (recsys.evaluate_and_record), beside the popularity baselines:'::text
            || ''::text
            || '| month | method | MAP@7 | MAP@7, adders | precision@7 | recall@7 | coverage | customers | adders |'::text
            || '|---|---|---|---|---|---|---|---|---|'::text
            || ARRAY(
                SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s |', recsys.model_card_text(month),
                              recsys.model_card_text(method),
                              coalesce(recsys.model_card_fixed(recsys.model_card_number(r -> 'map7'), 5), '-'),
                              coalesce(recsys.model_card_fixed(recsys.model_card_number(r -> 'map7_adders'), 4), '-'),
                              coalesce(recsys.model_card_fixed(recsys.model_card_number(r -> 'precision7'), 4), '-'),
                              coalesce(recsys.model_card_fixed(recsys.model_card_number(r -> 'recall7'), 4), '-'),
                              coalesce(recsys.model_card_fixed(recsys.model_card_number(r -> 'coverage'), 4), '-'),
                              coalesce(recsys.model_card_count(recsys.model_card_number(r -> 'customers')), '-'),
                              coalesce(recsys.model_card_count(recsys.model_card_number(r -> 'adders')), '-'))
                  FROM jsonb_each(mx -> 'evaluation') AS e(month, results),
                       LATERAL jsonb_each(CASE WHEN jsonb_typeof(results) = 'object' THEN results ELSE '{}' END)
                               AS x(method, r)
                 ORDER BY month, method);
    ELSE
        card := card || '- Recorded evaluations: not recorded'::text;
    END IF;

    ----------------------------------------------------------------------------------------
    card := card || ''::text || '## Validation against production'::text || ''::text;
    SELECT count(*) INTO validations FROM recsys.model_validations r
     WHERE r.name = model_name AND r.candidate_version = model_card.version;
    SELECT r.* INTO v FROM recsys.model_validations r
     WHERE r.name = model_name AND r.candidate_version = model_card.version ORDER BY r.id DESC LIMIT 1;
    IF NOT FOUND THEN
        card := card || '- not recorded: no recsys.validate() record for this version'::text;
    ELSE
        confidence := coalesce(trim_scale(round((100 * recsys.model_card_number(v.rule -> 'confidence'))::numeric, 1))::text || '%',
                               'confidence not recorded');
        card := card
            || format('- Record #%s of %s, made %s by %s: %s customers of `%s` in %s, %s of whom added a product; '
                      'rows fingerprint %s', v.id, validations, recsys.model_card_time(v.validated_at), v.validated_by,
                      recsys.model_card_count(v.customers), recsys.model_card_text(v.relation),
                      to_char(v.month, 'YYYY-MM'), recsys.model_card_count(v.adders), recsys.model_card_text(v.fingerprint))
            || format('- Compared with: %s',
                      coalesce('production version ' || v.production_version, 'nothing (there was no production version)'))
            || format('- Gate rule: %s',
                      coalesce((SELECT string_agg(format('%s %s', key, recsys.model_card_value(value)), ', ' ORDER BY key)
                                  FROM jsonb_each(CASE WHEN jsonb_typeof(v.rule) = 'object' THEN v.rule ELSE '{}' END)),
                               'not recorded'))
            || format('- MAP@7: candidate %s, production %s',
                      recsys.model_card_fixed(v.candidate_map7, 5),
                      coalesce(recsys.model_card_fixed(v.production_map7, 5), 'none'))
            || CASE WHEN v.difference IS NULL THEN '- Difference: none (nothing to compare with)'::text
                    ELSE format('- Difference (candidate - production): %s, %s interval [%s, %s] (paired bootstrap)',
                                recsys.model_card_fixed(v.difference, 5), confidence,
                                coalesce(recsys.model_card_fixed(v.ci_low, 5), 'not recorded'),
                                coalesce(recsys.model_card_fixed(v.ci_high, 5), 'not recorded')) END
            || format('- Decision: %s', CASE WHEN v.passed THEN 'passed' ELSE 'failed' END)
            || ARRAY(SELECT format('  - %s', recsys.model_card_text(reason))
                       FROM unnest(v.reasons) WITH ORDINALITY AS x(reason, n) ORDER BY n);
        IF jsonb_typeof(v.figures -> 'subpopulations') = 'array' AND jsonb_array_length(v.figures -> 'subpopulations') > 0 THEN
            card := card || '- Subpopulations:'::text || ''::text
                || format('| dimension | value | customers | adders | candidate MAP@7 | production MAP@7 | difference | %s interval |',
                          confidence)
                || '|---|---|---|---|---|---|---|---|'::text
                || ARRAY(
                    SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s |',
                                  recsys.model_card_text(s ->> 'dimension'), recsys.model_card_text(s ->> 'value'),
                                  coalesce(recsys.model_card_count(recsys.model_card_number(s -> 'customers')), '-'),
                                  coalesce(recsys.model_card_count(recsys.model_card_number(s -> 'adders')), '-'),
                                  coalesce(recsys.model_card_fixed(recsys.model_card_number(s -> 'candidate_map7'), 5), '-'),
                                  coalesce(recsys.model_card_fixed(recsys.model_card_number(s -> 'baseline_map7'), 5), '-'),
                                  coalesce(recsys.model_card_fixed(recsys.model_card_number(s -> 'difference'), 5), '-'),
                                  CASE WHEN recsys.model_card_number(s -> 'low') IS NULL THEN '-'
                                       ELSE format('[%s, %s]', recsys.model_card_fixed(recsys.model_card_number(s -> 'low'), 5),
                                                   recsys.model_card_fixed(recsys.model_card_number(s -> 'high'), 5)) END)
                      FROM jsonb_array_elements(v.figures -> 'subpopulations') WITH ORDINALITY AS x(s, n) ORDER BY n);
        ELSE
            card := card || '- Subpopulations: not recorded'::text;
        END IF;
    END IF;

    ----------------------------------------------------------------------------------------
    card := card || ''::text || '## Lineage'::text || ''::text
        || ARRAY(
            SELECT CASE
                       WHEN e.action = 'register' THEN
                           format('- %s: registered by %s', recsys.model_card_time(e.at), e.by)
                       WHEN e.action = 'promote' AND e.version = model_card.version THEN
                           format('- %s: promoted to production by %s, %s%s%s', recsys.model_card_time(e.at), e.by,
                                  coalesce('replacing version ' || e.previous_version, 'with no production version before it'),
                                  CASE WHEN e.forced THEN '; forced without a passing validation'
                                       WHEN e.validation_id IS NOT NULL THEN format('; validation record #%s', e.validation_id)
                                       ELSE '' END,
                                  coalesce('; reason: ' || recsys.model_card_text(e.reason), ''))
                       WHEN e.action = 'promote' THEN
                           format('- %s: replaced in production by version %s, promoted by %s',
                                  recsys.model_card_time(e.at), e.version, e.by)
                       ELSE
                           format('- %s: put back into production by a rollback by %s%s', recsys.model_card_time(e.at),
                                  e.by, coalesce('; reason: ' || recsys.model_card_text(e.reason), ''))
                   END
              FROM recsys.model_events e
             WHERE e.name = model_name
               AND (e.version = model_card.version OR (e.action = 'promote' AND e.previous_version = model_card.version))
             ORDER BY e.id);
    IF NOT EXISTS (SELECT 1 FROM recsys.model_events e WHERE e.name = model_name AND e.version = model_card.version) THEN
        card := card || '- Events: not recorded'::text;
    END IF;

    ----------------------------------------------------------------------------------------
    card := card || ''::text || '## Known limitations'::text || ''::text
        || '- A customer with no snapshot at all cannot be scored (an error, P0002), never given a made-up answer.'::text
        || format('- A customer without a snapshot in the latest month of `%s` is scored as of their own latest '
                  'snapshot: the recommendations are for a month that has already passed. Evaluations and '
                  'validations count only customers with snapshots in the judged month and the month before.',
                  relation)
        || CASE WHEN start_month IS NULL
                THEN format('- A customer with fewer than %s months of snapshots is scored from the months there are '
                            '(missing months are empty steps), on less history than the model was built for.',
                            window_months)
                ELSE format('- The history runs from %s for at most %s months: customers whose latest snapshot is '
                            'after %s cannot be scored (an error, 22000; train a model with a later start month or a '
                            'longer window), and customers whose snapshots begin after %s are scored with empty months '
                            'before their first one.',
                            to_char(start_month, 'YYYY-MM'), window_months,
                            to_char(start_month + make_interval(months => window_months - 1), 'YYYY-MM'),
                            to_char(start_month, 'YYYY-MM'))
           END;
    SELECT string_agg(format('`%s` (%s values)', f ->> 'column', jsonb_array_length(f -> 'vocabulary')), ', ' ORDER BY n)
      INTO unknown_slots
      FROM jsonb_array_elements(spec -> 'features') WITH ORDINALITY AS x(f, n) WHERE f ->> 'kind' = 'categorical';
    IF unknown_slots IS NOT NULL THEN
        card := card || format('- Categorical values not seen in training, and NULLs, map to "unknown" for %s: a value '
                               'that first appears after training is scored like a missing one.', unknown_slots);
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(spec -> 'features') f WHERE f ->> 'kind' = 'numeric') THEN
        card := card || '- Numeric values outside their clip ranges (see Features) are clipped, so an extreme value is scored like the bound.'::text;
    END IF;
    IF v.id IS NULL THEN
        card := card || '- It has not been validated against production on held-out data (no recsys.validate() record).'::text;
    ELSE
        card := card || format('- It was validated only on `%s` in %s: not on other months or relations, nor on '
                               'customers without snapshots in both that month and the one before.',
                               recsys.model_card_text(v.relation), to_char(v.month, 'YYYY-MM'));
        IF jsonb_typeof(v.figures -> 'subpopulations') = 'array' THEN
            SELECT string_agg(format('%s = %s (%s)', s ->> 'dimension', s ->> 'value', s ->> 'customers'), ', ' ORDER BY n)
              INTO small_subpops
              FROM jsonb_array_elements(v.figures -> 'subpopulations') WITH ORDINALITY AS x(s, n)
             WHERE recsys.model_card_number(s -> 'customers') < recsys.model_card_number(v.rule -> 'min_subpopulation_customers');
            IF small_subpops IS NOT NULL THEN
                card := card || format('- Subpopulations smaller than %s customers were reported but could not fail '
                                       'the gate: %s.', v.rule ->> 'min_subpopulation_customers',
                                       recsys.model_card_text(small_subpops));
            END IF;
        END IF;
    END IF;

    RETURN array_to_string(card, E'\n') || E'\n';
END
$$;
COMMENT ON FUNCTION recsys.model_card(text, integer) IS 'A Markdown model card for one version, from the registry: intended use, training data, features, hyper-parameters, training time, evaluation, validation against production, lineage and known limitations (metadata only, no weights)';

-- Writes the card of a version into recsys.model_cards, replacing the one written earlier for
-- the same occasion. SECURITY DEFINER: the table is written by no role directly, so a stored
-- card is always the registry's own account. Called by recsys.register_model and
-- recsys.promote.
CREATE FUNCTION recsys.store_model_card(model_name text, version integer, occasion text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF model_name IS NULL OR version IS NULL OR occasion IS NULL THEN
        RAISE EXCEPTION 'model name, version and occasion must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF occasion NOT IN ('register', 'promote') THEN
        RAISE EXCEPTION 'invalid model card occasion "%"', occasion USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A card is stored on ''register'' or on ''promote''.';
    END IF;
    INSERT INTO recsys.model_cards AS c (name, version, occasion, written_at, card)
    VALUES (model_name, version, occasion, now(), recsys.model_card(model_name, version))
    -- The primary key by name: a column list here would clash with the parameters' names.
    ON CONFLICT ON CONSTRAINT model_cards_pkey DO UPDATE SET written_at = EXCLUDED.written_at, card = EXCLUDED.card;
END
$$;
COMMENT ON FUNCTION recsys.store_model_card(text, integer, text) IS 'Writes (or rewrites) the model card of a version for an occasion, ''register'' or ''promote'', into recsys.model_cards';

---------------------------------------------------------------------------------------------
-- Registration writes the version's first card
---------------------------------------------------------------------------------------------

-- The 0.2.0 body, with the card stored after the registration is recorded (so that the card's
-- lineage shows it).
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
    PERFORM recsys.store_model_card(model_name, next_version, 'register');
    RETURN next_version;
END
$$;

GRANT EXECUTE ON FUNCTION recsys.model_card(text, integer) TO recsys_reader;
GRANT EXECUTE ON FUNCTION recsys.store_model_card(text, integer, text) TO recsys_admin;
