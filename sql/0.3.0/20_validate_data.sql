-- Data validation (docs/lifecycle.md, "Data validation"): one month of snapshots checked
-- against a model's feature spec, or against the month before, before a model trains on it or
-- scores it. recsys.validate_data() reports every check and records the run in
-- recsys.data_validations; recsys.require_valid_data() raises when a check failed, unless a
-- member of recsys_override signs off with a reason.

---------------------------------------------------------------------------------------------
-- Recording: SECURITY DEFINER, so that callers need no privilege on recsys.data_validations.
-- The checks themselves run with the caller's rights (recsys.validate_data is SECURITY INVOKER).
---------------------------------------------------------------------------------------------
CREATE FUNCTION recsys.record_data_validation(relation text, month date, model_name text, model_version integer,
                                              results jsonb)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id bigint;
BEGIN
    IF relation IS NULL OR month IS NULL OR results IS NULL THEN
        RAISE EXCEPTION 'relation, month and results must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF jsonb_typeof(results) <> 'array' OR EXISTS (
           SELECT 1 FROM jsonb_array_elements(results) e(r)
            WHERE jsonb_typeof(e.r) <> 'object' OR e.r ->> 'check' IS NULL
               OR coalesce(e.r ->> 'severity', '') NOT IN ('ok', 'warn', 'fail')) THEN
        RAISE EXCEPTION 'data validation results must be an array of {"check", "column", "observed", "expected", "severity"} objects'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Every object needs "check" and a "severity" of ok, warn or fail.';
    END IF;
    -- Who checked is the acting role, and "passed" follows from the results: neither is an input.
    INSERT INTO recsys.data_validations AS d (relation, month, model_name, model_version, checked_by, passed, results)
    VALUES (relation, date_trunc('month', month::timestamp)::date, model_name, model_version, recsys.acting_role(),
            NOT jsonb_path_exists(results, '$[*] ? (@.severity == "fail")'), results)
    RETURNING d.id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION recsys.record_data_validation(text, date, text, integer, jsonb) IS 'Stores a data validation run in recsys.data_validations (checked_by: the acting role; passed: no "fail" result); used by recsys.validate_data()';

-- Marks a failed run as overridden: only a member of recsys_override (superusers are), with a reason.
CREATE FUNCTION recsys.override_data_validation(validation_id bigint, reason text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    was_passed     boolean;
    was_overridden name;
BEGIN
    IF validation_id IS NULL THEN
        RAISE EXCEPTION 'validation id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'overriding failed data checks needs a reason' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_has_role(recsys.acting_role(), 'recsys_override', 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied to override failed data checks'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role "%s" is not a member of recsys_override.', recsys.acting_role()),
                  HINT = 'Only members of recsys_override may sign off data that failed its checks.';
    END IF;
    SELECT d.passed, d.overridden_by INTO was_passed, was_overridden
      FROM recsys.data_validations d WHERE d.id = validation_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'data validation % does not exist', validation_id USING ERRCODE = 'undefined_object';
    END IF;
    IF was_passed THEN
        RAISE EXCEPTION 'data validation % passed: there is nothing to override', validation_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF was_overridden IS NOT NULL THEN
        RAISE EXCEPTION 'data validation % was already overridden by "%"', validation_id, was_overridden
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE recsys.data_validations d SET overridden_by = recsys.acting_role(), override_reason = reason
     WHERE d.id = validation_id;
END
$$;
COMMENT ON FUNCTION recsys.override_data_validation(bigint, text) IS 'Records that a failed data validation was signed off (overridden_by: the acting role, which must be a member of recsys_override; override_reason)';

---------------------------------------------------------------------------------------------
-- The checks
---------------------------------------------------------------------------------------------
-- Three aggregate queries read the month and the one before (whatever the number of columns):
--   1. per month: rows, non-NULL count per column, values outside the training range per
--      numeric feature, product flags other than 0/1 and holders per product;
--   2. per customer: rows in each month (customers that vanished or appeared, duplicates);
--   3. per categorical feature and value: rows in each month (unknown categories).
-- Plus catalog look-ups for the columns' types. Nothing from the caller's search_path is used:
-- the path is pinned, identifiers are quoted and the relation is named schema-qualified.
CREATE FUNCTION recsys.validate_data(
    relation     regclass,
    month        date,
    model        text    DEFAULT NULL,
    version      integer DEFAULT NULL,
    id_column    text    DEFAULT 'ncodpers',
    month_column text    DEFAULT 'fecha_dato')
RETURNS TABLE (validation_id bigint, check_name text, column_name text, observed text, expected text, severity text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- Thresholds, documented in docs/lifecycle.md ("Data validation"). Shares are fractions.
    row_count_warn   CONSTANT float8 := 0.10;   -- |rows / previous month's rows - 1| above: warn
    row_count_fail   CONSTANT float8 := 0.50;   -- at or above (and a month without rows): fail
    vanished_warn    CONSTANT float8 := 0.05;   -- share of the previous month's customers absent now
    vanished_fail    CONSTANT float8 := 0.20;
    appeared_warn    CONSTANT float8 := 0.10;   -- share of this month's customers absent the month before
    appeared_fail    CONSTANT float8 := 0.30;
    null_rate_warn   CONSTANT float8 := 0.05;   -- NULL share above the previous month's by more: warn
    null_rate_fail   CONSTANT float8 := 0.50;   -- by more than this, or entirely NULL and not before: fail
    range_warn       CONSTANT float8 := 0.005;  -- share of non-NULL values outside the training range
    range_fail       CONSTANT float8 := 0.05;
    range_stddevs    CONSTANT float8 := 5;      -- a side without a clip bound: mean +- this many stddevs
    unknown_warn     CONSTANT float8 := 0.001;  -- share of non-NULL values not in the vocabulary
    unknown_fail     CONSTANT float8 := 0.02;
    -- A product's holding rate p may move by the larger of an absolute change and a change
    -- relative to its rarer side, min(p, 1 - p): holders of a rare product, non-holders of one
    -- most customers hold.
    holding_warn_abs CONSTANT float8 := 0.005;
    holding_warn_rel CONSTANT float8 := 0.10;
    holding_fail_abs CONSTANT float8 := 0.02;
    holding_fail_rel CONSTANT float8 := 0.30;
    -- ... and, so that small relations do not flag sampling noise, be at least this many
    -- standard errors of the change were the rate still p, sqrt(p(1-p)(1/n_prev + 1/n_now))
    -- (negligible for a million customers; 0.03 for 2,000 customers and p = 0.1).
    holding_min_se   CONSTANT float8 := 3;
    -- Without a model: the Santander layout (src/core/santander_schema.h) and the default
    -- features with their clip bounds (src/core/santander_features.cpp).
    default_features CONSTANT jsonb := '[
        {"column": "age",                   "kind": "numeric", "clip_min": 0, "clip_max": 100},
        {"column": "renta",                 "kind": "numeric", "clip_min": 0, "clip_max": 100000000},
        {"column": "antiguedad",            "kind": "numeric", "clip_min": 0, "clip_max": 300},
        {"column": "ind_actividad_cliente", "kind": "numeric", "clip_min": 0, "clip_max": 1},
        {"column": "ind_nuevo",             "kind": "numeric", "clip_min": 0, "clip_max": 1},
        {"column": "sexo",                  "kind": "categorical"},
        {"column": "segmento",              "kind": "categorical"}]';
    default_products CONSTANT text[] := ARRAY[
        'ind_ahor_fin_ult1', 'ind_aval_fin_ult1', 'ind_cco_fin_ult1', 'ind_cder_fin_ult1', 'ind_cno_fin_ult1',
        'ind_ctju_fin_ult1', 'ind_ctma_fin_ult1', 'ind_ctop_fin_ult1', 'ind_ctpp_fin_ult1', 'ind_deco_fin_ult1',
        'ind_deme_fin_ult1', 'ind_dela_fin_ult1', 'ind_ecue_fin_ult1', 'ind_fond_fin_ult1', 'ind_hip_fin_ult1',
        'ind_plan_fin_ult1', 'ind_pres_fin_ult1', 'ind_reca_fin_ult1', 'ind_tjcr_fin_ult1', 'ind_valo_fin_ult1',
        'ind_viv_fin_ult1', 'ind_nomina_ult1', 'ind_nom_pens_ult1', 'ind_recibo_ult1'];

    rel_oid       oid := validate_data.relation;
    rel_name      text;          -- schema-qualified and quoted
    month_start   date;
    prev_start    date;
    next_start    date;
    month_label   text;
    prev_label    text;
    spec          jsonb;
    model_version integer;
    id_col        text;
    month_col     text;
    features      jsonb;
    products      text[];
    results       jsonb := '[]';
    new_id        bigint;

    -- The columns to check, in order: id, month, features, products.
    cols          text[] := '{}';
    roles         text[] := '{}';      -- id, month, numeric, categorical, product
    feature_of    integer[] := '{}';   -- index into features (0-based), else NULL
    expr          text[] := '{}';      -- the value as the checks read it; NULL: missing or wrong type
    n             integer;
    typ           oid;
    typ_name      text;
    base          oid;
    ok            boolean;
    want          text;
    month_base    oid;
    id_ok         boolean := false;
    month_ok      boolean := false;

    -- Query text and its parts.
    mq            text;              -- the month column, quoted
    cur_lit       text;
    prev_lit      text;
    next_lit      text;
    nonnull_sql   text[] := '{}';
    nonnull_col   integer[] := '{}';  -- position in cols of each non-NULL count
    outside_sql   text[] := '{}';
    numeric_col   integer[] := '{}';
    lo            float8[] := '{}';
    hi            float8[] := '{}';
    flag_sql      text[] := '{}';
    held_sql      text[] := '{}';
    product_col   integer[] := '{}';
    cat_sql       text[] := '{}';
    cat_values    text[] := '{}';
    cat_col       integer[] := '{}';
    vocabs        jsonb := '[]';
    cat_n_values       bigint[] := '{}';
    cat_unknown_values bigint[] := '{}';
    cat_unknown_rows   bigint[] := '{}';
    cat_example        text[] := '{}';
    q             text;
    rec           record;

    -- Aggregates.
    cur_rows      bigint := 0;
    prev_rows     bigint := 0;
    cur_nonnull   bigint[];
    prev_nonnull  bigint[];
    cur_outside   bigint[];
    cur_bad       bigint[];
    cur_held      bigint[];
    prev_held     bigint[];
    cur_customers  bigint;
    prev_customers bigint;
    appeared      bigint;
    vanished      bigint;
    extra_rows    bigint;
    dup_customers bigint;

    -- Per check.
    i             integer;
    k             integer;
    f             jsonb;
    c             text;
    x             float8;
    p             float8;
    share         float8;
    bound_warn    float8;
    bound_fail    float8;
    se_bound      float8;
    mean          float8;
    sd            float8;
    sev           text;
    obs           text;
    exp_text      text;
    has_prev      boolean;
BEGIN
    IF validate_data.relation IS NULL OR validate_data.month IS NULL THEN
        RAISE EXCEPTION 'relation and month must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF validate_data.model IS NULL AND validate_data.version IS NOT NULL THEN
        RAISE EXCEPTION 'a version needs a model name' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass model => ''name'' with version, or neither to compare with the previous month.';
    END IF;
    SELECT format('%I.%I', ns.nspname, cl.relname) INTO rel_name
      FROM pg_class cl JOIN pg_namespace ns ON ns.oid = cl.relnamespace WHERE cl.oid = rel_oid;
    IF rel_name IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', rel_oid USING ERRCODE = 'undefined_table';
    END IF;
    month_start := date_trunc('month', validate_data.month::timestamp)::date;
    prev_start := (month_start - interval '1 month')::date;
    next_start := (month_start + interval '1 month')::date;
    month_label := to_char(month_start::timestamp, 'YYYY-MM');
    prev_label := to_char(prev_start::timestamp, 'YYYY-MM');

    -- What to check: the model's spec, or the Santander layout.
    IF validate_data.model IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM recsys.models m WHERE m.name = validate_data.model) THEN
            RAISE EXCEPTION 'model "%" does not exist', validate_data.model USING ERRCODE = 'undefined_object';
        END IF;
        IF validate_data.version IS NULL THEN
            SELECT m.version, m.feature_spec INTO model_version, spec FROM recsys.models m
             WHERE m.name = validate_data.model AND m.status = 'production';
            IF NOT FOUND THEN
                RAISE EXCEPTION 'model "%" has no production version', validate_data.model
                    USING ERRCODE = 'undefined_object',
                          HINT = 'Pass the version to check against, or promote one with recsys.promote().';
            END IF;
        ELSE
            SELECT m.version, m.feature_spec INTO model_version, spec FROM recsys.models m
             WHERE m.name = validate_data.model AND m.version = validate_data.version;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'model "%" version % does not exist', validate_data.model, validate_data.version
                    USING ERRCODE = 'undefined_object';
            END IF;
        END IF;
        id_col := spec -> 'source' ->> 'id_column';
        month_col := spec -> 'source' ->> 'month_column';
        features := coalesce(spec -> 'features', '[]');
        products := ARRAY(SELECT jsonb_array_elements_text(coalesce(spec -> 'products', '[]')));
    ELSE
        IF validate_data.id_column IS NULL OR validate_data.month_column IS NULL THEN
            RAISE EXCEPTION 'id_column and month_column must not be NULL' USING ERRCODE = 'null_value_not_allowed';
        END IF;
        id_col := validate_data.id_column;
        month_col := validate_data.month_column;
        features := default_features;
        products := default_products;
    END IF;

    cols := ARRAY[id_col, month_col];
    roles := ARRAY['id', 'month'];
    feature_of := ARRAY[NULL, NULL]::integer[];
    FOR i IN 0 .. jsonb_array_length(features) - 1 LOOP
        cols := cols || (features -> i ->> 'column');
        roles := roles || CASE WHEN features -> i ->> 'kind' = 'categorical' THEN 'categorical' ELSE 'numeric' END;
        feature_of := feature_of || i;
    END LOOP;
    FOR i IN 1 .. coalesce(cardinality(products), 0) LOOP
        cols := cols || products[i];
        roles := roles || 'product'::text;
        feature_of := feature_of || NULL::integer;
    END LOOP;

    -- 1. Columns: present, and of a type recsys reads that way (src/pg/source_reader.cpp).
    FOR n IN 1 .. cardinality(cols) LOOP
        c := cols[n];
        typ := NULL;
        SELECT a.atttypid, format_type(a.atttypid, a.atttypmod) INTO typ, typ_name
          FROM pg_attribute a WHERE a.attrelid = rel_oid AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped;
        IF typ IS NULL THEN
            expr := expr || NULL::text;
            results := results || jsonb_build_object('check', 'missing_column', 'column', c, 'observed', 'missing',
                                                     'expected', 'present', 'severity', 'fail');
            CONTINUE;
        END IF;
        base := recsys.column_base_type(rel_oid, c);   -- a domain reads as its base type
        CASE roles[n]
            WHEN 'id' THEN
                want := 'an integer type';
                ok := base = ANY ('{int2,int4,int8,numeric}'::regtype[]::oid[]);
                expr := expr || quote_ident(c);
                id_ok := ok;
            WHEN 'month' THEN
                want := 'date or timestamp';
                ok := base = ANY ('{date,timestamp,timestamptz}'::regtype[]::oid[]);
                expr := expr || quote_ident(c);
                month_ok := ok;
                month_base := base;
            WHEN 'numeric' THEN
                want := 'a numeric or boolean type';
                ok := base = ANY ('{int2,int4,int8,float4,float8,numeric,bool}'::regtype[]::oid[]);
                expr := expr || CASE WHEN base = 'bool'::regtype THEN format('%I::pg_catalog.int4::pg_catalog.float8', c)
                                     ELSE format('%I::pg_catalog.float8', c) END;
            WHEN 'categorical' THEN
                want := 'a text, integer or boolean type';
                ok := base = ANY ('{text,varchar,bpchar,name,char,int2,int4,int8,float4,float8,numeric,bool}'::regtype[]::oid[]);
                expr := expr || format('%I::pg_catalog.text', c);
            ELSE
                want := 'an integer or boolean type holding 0 or 1';
                ok := base = ANY ('{int2,int4,int8,float4,float8,numeric,bool}'::regtype[]::oid[]);
                expr := expr || CASE WHEN base = 'bool'::regtype THEN format('%I::pg_catalog.int4', c)
                                     ELSE quote_ident(c) END;
        END CASE;
        IF NOT ok THEN
            expr[n] := NULL;
        END IF;
        results := results || jsonb_build_object('check', 'column_type', 'column', c, 'observed', typ_name,
                                                 'expected', want, 'severity', CASE WHEN ok THEN 'ok' ELSE 'fail' END);
    END LOOP;

    IF NOT (id_ok AND month_ok) THEN
        -- Without a customer id and a month, nothing else can be read.
        new_id := recsys.record_data_validation(rel_name, month_start, validate_data.model, model_version, results);
        RETURN QUERY SELECT new_id, e.r ->> 'check', e.r ->> 'column', e.r ->> 'observed', e.r ->> 'expected',
                            e.r ->> 'severity'
                       FROM jsonb_array_elements(results) WITH ORDINALITY e(r, o) ORDER BY e.o;
        RETURN;
    END IF;

    -- The month as a range [start, next start), compared in the column's own type (an index on
    -- it serves); a timestamptz month is read in UTC, like the rest of recsys.
    mq := quote_ident(month_col);
    IF month_base = 'timestamptz'::regtype THEN
        cur_lit := format('%L::pg_catalog.timestamptz', to_char(month_start::timestamp, 'YYYY-MM-DD') || ' 00:00:00+00');
        prev_lit := format('%L::pg_catalog.timestamptz', to_char(prev_start::timestamp, 'YYYY-MM-DD') || ' 00:00:00+00');
        next_lit := format('%L::pg_catalog.timestamptz', to_char(next_start::timestamp, 'YYYY-MM-DD') || ' 00:00:00+00');
    ELSIF month_base = 'timestamp'::regtype THEN
        cur_lit := format('%L::pg_catalog.timestamp', to_char(month_start::timestamp, 'YYYY-MM-DD'));
        prev_lit := format('%L::pg_catalog.timestamp', to_char(prev_start::timestamp, 'YYYY-MM-DD'));
        next_lit := format('%L::pg_catalog.timestamp', to_char(next_start::timestamp, 'YYYY-MM-DD'));
    ELSE
        cur_lit := format('%L::pg_catalog.date', to_char(month_start::timestamp, 'YYYY-MM-DD'));
        prev_lit := format('%L::pg_catalog.date', to_char(prev_start::timestamp, 'YYYY-MM-DD'));
        next_lit := format('%L::pg_catalog.date', to_char(next_start::timestamp, 'YYYY-MM-DD'));
    END IF;

    -- The parts of the per-month query, and the training range of each numeric feature.
    FOR n IN 1 .. cardinality(cols) LOOP
        CONTINUE WHEN expr[n] IS NULL OR roles[n] = 'month';
        nonnull_sql := nonnull_sql || format('count(%I)', cols[n]);
        nonnull_col := nonnull_col || n;
        IF roles[n] = 'numeric' THEN
            f := features -> feature_of[n];
            mean := (f ->> 'mean')::float8;
            sd := (f ->> 'stddev')::float8;
            -- A side without a clip bound (JSON null: infinite) uses mean +- k stddev, which the
            -- model computed after its transform; log1p is inverted to compare raw values.
            IF jsonb_typeof(f -> 'clip_min') = 'number' THEN
                x := (f ->> 'clip_min')::float8;
            ELSIF mean IS NULL OR sd IS NULL THEN
                x := '-Infinity';
            ELSIF f ->> 'transform' = 'log1p' THEN
                x := CASE WHEN mean - range_stddevs * sd <= 0 THEN '-Infinity'::float8
                          ELSE exp(least(mean - range_stddevs * sd, 700)) - 1 END;
            ELSE
                x := mean - range_stddevs * sd;
            END IF;
            lo := lo || x;
            IF jsonb_typeof(f -> 'clip_max') = 'number' THEN
                x := (f ->> 'clip_max')::float8;
            ELSIF mean IS NULL OR sd IS NULL THEN
                x := 'Infinity';
            ELSIF f ->> 'transform' = 'log1p' THEN
                x := CASE WHEN mean + range_stddevs * sd > 700 THEN 'Infinity'::float8
                          ELSE exp(mean + range_stddevs * sd) - 1 END;
            ELSE
                x := mean + range_stddevs * sd;
            END IF;
            hi := hi || x;
            numeric_col := numeric_col || n;
            k := cardinality(numeric_col);
            outside_sql := outside_sql || format('count(*) FILTER (WHERE %1$s < $1[%2$s] OR %1$s > $2[%2$s])', expr[n], k);
        ELSIF roles[n] = 'categorical' THEN
            cat_col := cat_col || n;
            k := cardinality(cat_col);
            cat_sql := cat_sql || format('%s AS v%s', expr[n], k);
            cat_values := cat_values || format('(%s, r.v%s)', k, k);
            vocabs := vocabs || jsonb_build_array(coalesce(features -> feature_of[n] -> 'vocabulary', '[]'));
        ELSIF roles[n] = 'product' THEN
            product_col := product_col || n;
            flag_sql := flag_sql || format('count(*) FILTER (WHERE %1$s <> 0 AND %1$s <> 1)', expr[n]);
            held_sql := held_sql || format('count(*) FILTER (WHERE %s = 1)', expr[n]);
        END IF;
    END LOOP;

    -- Query 1: per month.
    q := format('SELECT %1$s >= %2$s AS is_cur, count(*) AS n_rows, ARRAY[%3$s]::pg_catalog.int8[] AS nonnull, '
                'ARRAY[%4$s]::pg_catalog.int8[] AS outside, ARRAY[%5$s]::pg_catalog.int8[] AS bad, '
                'ARRAY[%6$s]::pg_catalog.int8[] AS held '
                'FROM %7$s WHERE %1$s >= %8$s AND %1$s < %9$s GROUP BY 1',
                mq, cur_lit, array_to_string(nonnull_sql, ', '), array_to_string(outside_sql, ', '),
                array_to_string(flag_sql, ', '), array_to_string(held_sql, ', '), rel_name, prev_lit, next_lit);
    FOR rec IN EXECUTE q USING lo, hi LOOP
        IF rec.is_cur THEN
            cur_rows := rec.n_rows;
            cur_nonnull := rec.nonnull;
            cur_outside := rec.outside;
            cur_bad := rec.bad;
            cur_held := rec.held;
        ELSE
            prev_rows := rec.n_rows;
            prev_nonnull := rec.nonnull;
            prev_held := rec.held;
        END IF;
    END LOOP;
    has_prev := prev_rows > 0;

    -- 2. Row count.
    IF cur_rows = 0 THEN
        -- Nothing else to check in an empty month.
        results := results || jsonb_build_object('check', 'row_count', 'column', NULL, 'observed', '0',
            'expected', CASE WHEN has_prev
                             THEN format('between %s and %s (%s: %s)', ceil(prev_rows * (1 - row_count_warn)),
                                         floor(prev_rows * (1 + row_count_warn)), prev_label, prev_rows)
                             ELSE 'at least 1 row' END,
            'severity', 'fail');
        new_id := recsys.record_data_validation(rel_name, month_start, validate_data.model, model_version, results);
        RETURN QUERY SELECT new_id, e.r ->> 'check', e.r ->> 'column', e.r ->> 'observed', e.r ->> 'expected',
                            e.r ->> 'severity'
                       FROM jsonb_array_elements(results) WITH ORDINALITY e(r, o) ORDER BY e.o;
        RETURN;
    END IF;
    IF has_prev THEN
        x := abs(cur_rows::float8 / prev_rows - 1);
        results := results || jsonb_build_object('check', 'row_count', 'column', NULL, 'observed', cur_rows::text,
            'expected', format('between %s and %s (%s: %s)', ceil(prev_rows * (1 - row_count_warn)),
                               floor(prev_rows * (1 + row_count_warn)), prev_label, prev_rows),
            'severity', CASE WHEN x >= row_count_fail THEN 'fail' WHEN x > row_count_warn THEN 'warn' ELSE 'ok' END);
    ELSE
        results := results || jsonb_build_object('check', 'row_count', 'column', NULL, 'observed', cur_rows::text,
            'expected', 'at least 1 row (no previous month)', 'severity', 'ok');
    END IF;

    -- Query 2: per customer (rows with a NULL id are left to the null_rate check).
    q := format('SELECT count(*) FILTER (WHERE s.c > 0) AS cur_customers, count(*) FILTER (WHERE s.p > 0) AS prev_customers, '
                'count(*) FILTER (WHERE s.c > 0 AND s.p = 0) AS appeared, count(*) FILTER (WHERE s.p > 0 AND s.c = 0) AS vanished, '
                'coalesce(sum(s.c - 1) FILTER (WHERE s.c > 1), 0)::pg_catalog.int8 AS extra_rows, '
                'count(*) FILTER (WHERE s.c > 1) AS dup_customers '
                'FROM (SELECT count(*) FILTER (WHERE %1$s >= %2$s) AS c, count(*) FILTER (WHERE %1$s < %2$s) AS p '
                'FROM %3$s WHERE %1$s >= %4$s AND %1$s < %5$s AND %6$I IS NOT NULL GROUP BY %6$I) s',
                mq, cur_lit, rel_name, CASE WHEN has_prev THEN prev_lit ELSE cur_lit END, next_lit, id_col);
    EXECUTE q INTO cur_customers, prev_customers, appeared, vanished, extra_rows, dup_customers;

    -- 3. Customers that vanished or appeared.
    IF has_prev AND prev_customers > 0 THEN
        share := vanished::float8 / prev_customers;
        results := results || jsonb_build_object('check', 'customers_vanished', 'column', id_col,
            'observed', format('%s (%s of %s)', round(share::numeric, 4), vanished, prev_customers),
            'expected', format('at most %s', round(vanished_warn::numeric, 4)),
            'severity', CASE WHEN share > vanished_fail THEN 'fail' WHEN share > vanished_warn THEN 'warn' ELSE 'ok' END);
        share := CASE WHEN cur_customers > 0 THEN appeared::float8 / cur_customers ELSE 0 END;
        results := results || jsonb_build_object('check', 'customers_appeared', 'column', id_col,
            'observed', format('%s (%s of %s)', round(share::numeric, 4), appeared, cur_customers),
            'expected', format('at most %s', round(appeared_warn::numeric, 4)),
            'severity', CASE WHEN share > appeared_fail THEN 'fail' WHEN share > appeared_warn THEN 'warn' ELSE 'ok' END);
    ELSE
        results := results || jsonb_build_object('check', 'customers_vanished', 'column', id_col,
            'observed', format('%s customers', cur_customers), 'expected', 'no previous month', 'severity', 'ok');
        results := results || jsonb_build_object('check', 'customers_appeared', 'column', id_col,
            'observed', format('%s customers', cur_customers), 'expected', 'no previous month', 'severity', 'ok');
    END IF;

    -- 4. Duplicate (customer, month) rows.
    results := results || jsonb_build_object('check', 'duplicate_rows', 'column', id_col,
        'observed', CASE WHEN dup_customers = 0 THEN 'none'
                         ELSE format('%s %s with %s extra %s', dup_customers,
                                     CASE WHEN dup_customers = 1 THEN 'customer' ELSE 'customers' END, extra_rows,
                                     CASE WHEN extra_rows = 1 THEN 'row' ELSE 'rows' END) END,
        'expected', 'none', 'severity', CASE WHEN dup_customers > 0 THEN 'fail' ELSE 'ok' END);

    -- 5. NULL share per column, against the previous month's.
    FOR i IN 1 .. cardinality(nonnull_col) LOOP
        c := cols[nonnull_col[i]];
        x := 1 - cur_nonnull[i]::float8 / cur_rows;
        IF has_prev THEN
            p := 1 - prev_nonnull[i]::float8 / prev_rows;
            sev := CASE WHEN (x = 1 AND p < 1) OR x > p + null_rate_fail THEN 'fail'
                        WHEN x > p + null_rate_warn THEN 'warn' ELSE 'ok' END;
            exp_text := CASE WHEN x = 1 AND p < 1 AND p + null_rate_warn >= 1
                             THEN format('not entirely NULL (%s: %s)', prev_label, round(p::numeric, 4))
                             ELSE format('at most %s (%s: %s)', round(least(p + null_rate_warn, 1)::numeric, 4),
                                         prev_label, round(p::numeric, 4)) END;
        ELSE
            sev := CASE WHEN x = 1 THEN 'warn' ELSE 'ok' END;
            exp_text := CASE WHEN x = 1 THEN 'not entirely NULL (no previous month)' ELSE 'no previous month' END;
        END IF;
        results := results || jsonb_build_object('check', 'null_rate', 'column', c,
            'observed', round(x::numeric, 4)::text, 'expected', exp_text, 'severity', sev);
    END LOOP;

    -- 6. Numeric features: values outside the training range.
    FOR i IN 1 .. cardinality(numeric_col) LOOP
        c := cols[numeric_col[i]];
        k := array_position(nonnull_col, numeric_col[i]);
        exp_text := format('at most %s outside [%s, %s]', round(range_warn::numeric, 4),
                           CASE WHEN lo[i] = '-Infinity' THEN '-Infinity' ELSE trim_scale(round(lo[i]::numeric, 4))::text END,
                           CASE WHEN hi[i] = 'Infinity' THEN 'Infinity' ELSE trim_scale(round(hi[i]::numeric, 4))::text END);
        IF cur_nonnull[k] = 0 THEN
            results := results || jsonb_build_object('check', 'value_range', 'column', c,
                'observed', 'no values', 'expected', exp_text, 'severity', 'ok');
            CONTINUE;
        END IF;
        share := cur_outside[i]::float8 / cur_nonnull[k];
        results := results || jsonb_build_object('check', 'value_range', 'column', c,
            'observed', round(share::numeric, 4)::text, 'expected', exp_text,
            'severity', CASE WHEN share > range_fail THEN 'fail' WHEN share > range_warn THEN 'warn' ELSE 'ok' END);
    END LOOP;

    -- 7. Categorical features: values not in the model's vocabulary, or (no model) not seen in
    -- the previous month. Query 3: per categorical feature and value.
    IF cardinality(cat_col) > 0 THEN
        q := format('WITH v AS ('
                    'SELECT u.i, u.val, count(*) FILTER (WHERE r.is_cur) AS cur_n, count(*) FILTER (WHERE NOT r.is_cur) AS prev_n '
                    'FROM (SELECT %1$s >= %2$s AS is_cur, %3$s FROM %4$s WHERE %1$s >= %5$s AND %1$s < %6$s) r '
                    'CROSS JOIN LATERAL (VALUES %7$s) u(i, val) WHERE u.val IS NOT NULL GROUP BY u.i, u.val) '
                    'SELECT v.i, count(*) FILTER (WHERE v.cur_n > 0) AS n_values, '
                    'count(*) FILTER (WHERE v.cur_n > 0 AND %8$s) AS unknown_values, '
                    'coalesce(sum(v.cur_n) FILTER (WHERE %8$s), 0)::pg_catalog.int8 AS unknown_rows, '
                    'min(v.val) FILTER (WHERE v.cur_n > 0 AND %8$s) AS example FROM v GROUP BY v.i',
                    mq, cur_lit, array_to_string(cat_sql, ', '), rel_name,
                    CASE WHEN has_prev THEN prev_lit ELSE cur_lit END, next_lit, array_to_string(cat_values, ', '),
                    CASE WHEN validate_data.model IS NOT NULL THEN 'NOT (($1 -> (v.i - 1)) ? v.val)'
                         ELSE 'v.prev_n = 0' END);
        FOR rec IN EXECUTE q USING vocabs LOOP
            cat_n_values[rec.i] := rec.n_values;
            cat_unknown_values[rec.i] := rec.unknown_values;
            cat_unknown_rows[rec.i] := rec.unknown_rows;
            cat_example[rec.i] := rec.example;
        END LOOP;
        FOR i IN 1 .. cardinality(cat_col) LOOP
            c := cols[cat_col[i]];
            k := array_position(nonnull_col, cat_col[i]);
            IF validate_data.model IS NULL AND NOT has_prev THEN
                results := results || jsonb_build_object('check', 'unknown_categories', 'column', c,
                    'observed', format('%s values', coalesce(cat_n_values[i], 0)), 'expected', 'no previous month',
                    'severity', 'ok');
                CONTINUE;
            END IF;
            exp_text := CASE WHEN validate_data.model IS NOT NULL
                             THEN format('at most %s outside the model''s %s values', round(unknown_warn::numeric, 4),
                                         jsonb_array_length(vocabs -> (i - 1)))
                             ELSE format('at most %s not seen in %s', round(unknown_warn::numeric, 4), prev_label) END;
            share := CASE WHEN cur_nonnull[k] > 0 THEN coalesce(cat_unknown_rows[i], 0)::float8 / cur_nonnull[k] ELSE 0 END;
            results := results || jsonb_build_object('check', 'unknown_categories', 'column', c,
                'observed', CASE WHEN coalesce(cat_unknown_values[i], 0) = 0 THEN round(share::numeric, 4)::text
                                 ELSE format('%s (%s %s, e.g. %s)', round(share::numeric, 4), cat_unknown_values[i],
                                             CASE WHEN cat_unknown_values[i] = 1 THEN 'value' ELSE 'values' END,
                                             quote_literal(left(cat_example[i], 40))) END,
                'expected', exp_text,
                'severity', CASE WHEN share > unknown_fail THEN 'fail' WHEN share > unknown_warn THEN 'warn' ELSE 'ok' END);
        END LOOP;
    END IF;

    -- 8. Product flags: 0 or 1 (or NULL, left to null_rate).
    FOR i IN 1 .. cardinality(product_col) LOOP
        results := results || jsonb_build_object('check', 'product_flag_values', 'column', cols[product_col[i]],
            'observed', CASE WHEN cur_bad[i] = 0 THEN 'none' ELSE format('%s rows not 0 or 1', cur_bad[i]) END,
            'expected', 'none', 'severity', CASE WHEN cur_bad[i] > 0 THEN 'fail' ELSE 'ok' END);
    END LOOP;

    -- 9. Holding rate per product against the previous month's.
    FOR i IN 1 .. cardinality(product_col) LOOP
        c := cols[product_col[i]];
        k := array_position(nonnull_col, product_col[i]);
        IF cur_nonnull[k] = 0 THEN
            results := results || jsonb_build_object('check', 'holding_rate', 'column', c,
                'observed', 'no values', 'expected', 'no holding rate to compare', 'severity', 'ok');
            CONTINUE;
        END IF;
        x := cur_held[i]::float8 / cur_nonnull[k];
        IF NOT has_prev OR prev_nonnull[k] = 0 THEN
            results := results || jsonb_build_object('check', 'holding_rate', 'column', c,
                'observed', round(x::numeric, 4)::text,
                'expected', CASE WHEN has_prev THEN 'no values in ' || prev_label ELSE 'no previous month' END,
                'severity', 'ok');
            CONTINUE;
        END IF;
        p := prev_held[i]::float8 / prev_nonnull[k];
        se_bound := holding_min_se * sqrt(p * (1 - p) * (1.0 / prev_nonnull[k] + 1.0 / cur_nonnull[k]));
        bound_warn := greatest(holding_warn_abs, holding_warn_rel * least(p, 1 - p), se_bound);
        bound_fail := greatest(holding_fail_abs, holding_fail_rel * least(p, 1 - p), se_bound);
        results := results || jsonb_build_object('check', 'holding_rate', 'column', c,
            'observed', round(x::numeric, 4)::text,
            'expected', format('between %s and %s (%s: %s)', round(greatest(p - bound_warn, 0)::numeric, 4),
                               round(least(p + bound_warn, 1)::numeric, 4), prev_label, round(p::numeric, 4)),
            'severity', CASE WHEN abs(x - p) > bound_fail THEN 'fail' WHEN abs(x - p) > bound_warn THEN 'warn'
                             ELSE 'ok' END);
    END LOOP;

    new_id := recsys.record_data_validation(rel_name, month_start, validate_data.model, model_version, results);
    RETURN QUERY SELECT new_id, e.r ->> 'check', e.r ->> 'column', e.r ->> 'observed', e.r ->> 'expected',
                        e.r ->> 'severity'
                   FROM jsonb_array_elements(results) WITH ORDINALITY e(r, o) ORDER BY e.o;
END
$$;
COMMENT ON FUNCTION recsys.validate_data(regclass, date, text, integer, text, text) IS 'Checks one month of snapshots (columns and types, row count, customers that vanished or appeared, duplicates, NULL shares, values outside the training range, unknown categories, product flags, holding rates) against a model''s feature spec (production unless a version is given) or the previous month; records the run in recsys.data_validations and returns one row per check with severity ok, warn or fail';

---------------------------------------------------------------------------------------------
-- The gate before training: recsys.train() calls this exact signature.
---------------------------------------------------------------------------------------------
-- id_column and month_column name the columns when no model is given (a model's own apply).
CREATE FUNCTION recsys.require_valid_data(relation regclass, month date, model text, version integer,
                                          override_reason text DEFAULT NULL, id_column text DEFAULT 'ncodpers',
                                          month_column text DEFAULT 'fecha_dato')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id      bigint;
    failures    jsonb;
    first_fail  jsonb;
    rel_name    text;
    month_label text;
    detail      text;
BEGIN
    IF override_reason IS NOT NULL AND btrim(override_reason) = '' THEN
        RAISE EXCEPTION 'override_reason must not be empty' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Say why the data may be used although it failed its checks, or pass NULL.';
    END IF;
    SELECT max(v.validation_id),
           jsonb_agg(jsonb_build_object('check', v.check_name, 'column', v.column_name, 'observed', v.observed,
                                        'expected', v.expected) ORDER BY v.ordinality) FILTER (WHERE v.severity = 'fail')
      INTO new_id, failures
      FROM recsys.validate_data(require_valid_data.relation, require_valid_data.month, require_valid_data.model,
                                require_valid_data.version, require_valid_data.id_column,
                                require_valid_data.month_column) WITH ORDINALITY v;
    IF failures IS NULL THEN
        RETURN new_id;
    END IF;

    SELECT format('%I.%I', ns.nspname, cl.relname) INTO rel_name
      FROM pg_class cl JOIN pg_namespace ns ON ns.oid = cl.relnamespace WHERE cl.oid = require_valid_data.relation;
    month_label := to_char(date_trunc('month', require_valid_data.month::timestamp), 'YYYY-MM');
    IF override_reason IS NULL THEN
        first_fail := failures -> 0;
        SELECT format('%s failed:', CASE WHEN count(*) = 1 THEN '1 check' ELSE count(*) || ' checks' END) || E'\n' ||
               string_agg(format('%s%s: observed %s, expected %s', e.r ->> 'check',
                                 CASE WHEN e.r ->> 'column' IS NULL THEN '' ELSE format(' (%s)', e.r ->> 'column') END,
                                 e.r ->> 'observed', e.r ->> 'expected'), E'\n' ORDER BY e.o)
          INTO detail
          FROM jsonb_array_elements(failures) WITH ORDINALITY e(r, o);
        RAISE EXCEPTION '%', format('data check "%s" failed for %s%s in %s: observed %s, expected %s',
                                    first_fail ->> 'check',
                                    CASE WHEN first_fail ->> 'column' IS NULL THEN ''
                                         ELSE format('column "%s" of ', first_fail ->> 'column') END,
                                    rel_name, month_label, first_fail ->> 'observed', first_fail ->> 'expected')
            USING ERRCODE = 'data_exception',
                  DETAIL = detail,
                  HINT = 'See every check with SELECT * FROM recsys.validate_data(...); a member of recsys_override may '
                         'proceed by passing override_reason.';
    END IF;

    IF NOT pg_has_role(recsys.acting_role(), 'recsys_override', 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied to override failed data checks of % in %', rel_name, month_label
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role "%s" is not a member of recsys_override.', recsys.acting_role()),
                  HINT = 'Only members of recsys_override may use data that failed its checks.';
    END IF;
    PERFORM recsys.override_data_validation(new_id, override_reason);
    RAISE WARNING 'data checks of % in % failed; proceeding on the override of "%"', rel_name, month_label,
                  recsys.acting_role()
        USING DETAIL = format('Reason: %s', override_reason);
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION recsys.require_valid_data(regclass, date, text, integer, text, text, text) IS 'Runs recsys.validate_data(); raises 22000 naming the first failing check, unless override_reason is given by a member of recsys_override (recorded as overridden_by and override_reason); returns the validation id';

REVOKE ALL ON FUNCTION recsys.record_data_validation(text, date, text, integer, jsonb),
                       recsys.override_data_validation(bigint, text),
                       recsys.validate_data(regclass, date, text, integer, text, text),
                       recsys.require_valid_data(regclass, date, text, integer, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION recsys.record_data_validation(text, date, text, integer, jsonb),
                          recsys.override_data_validation(bigint, text),
                          recsys.validate_data(regclass, date, text, integer, text, text),
                          recsys.require_valid_data(regclass, date, text, integer, text, text, text) TO recsys_admin;
