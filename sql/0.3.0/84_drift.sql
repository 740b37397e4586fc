-- Drift and skew (docs/monitoring.md, "Drift and skew"): the reference distribution of every
-- feature and product over a model's training months, stored with the version; the
-- population stability index of a later month against it (recsys.feature_drift); the mean
-- predicted probability per product against the adds observed the month after
-- (recsys.prediction_skew); and the moments of the encoded inputs at training against what
-- serving encodes (recsys.training_serving_skew).

---------------------------------------------------------------------------------------------
-- The reference of each model version
---------------------------------------------------------------------------------------------
-- A table of its own rather than a key of recsys.models.training_data: it can be recorded (and
-- recorded again) for a version registered from outside (a PyTorch export) without updating the
-- registry row, whose every change invalidates the model caches of all backends and whose
-- training_data readers may see; and it holds quantile edges of income and category
-- frequencies, which are no more for recsys_reader than the feature spec's fitted statistics.
CREATE TABLE recsys.feature_references (
    name          text        NOT NULL,
    version       integer     NOT NULL,
    -- {"format": 1, "rows": N,
    --  "features": [{"column", "kind": "numeric", "null_count", "edges": [...], "counts": [...],
    --                "min", "max", "transformed_mean", "transformed_stddev"},
    --               {"column", "kind": "categorical", "null_count", "values": [...], "counts": [...],
    --                "unknown_count"}, ...],
    --  "products": [{"column", "held_count", "null_count"}, ...]}
    -- A numeric feature's counts are those of its bins: counts[0] below edges[0], counts[i]
    -- in [edges[i-1], edges[i]), the last at or above the last edge (width_bucket); NULLs apart.
    reference     jsonb       NOT NULL,
    -- {"relation", "month_column", "months": [from, to], "rows", "bins", "quantile_sample":
    --  {"every", "rows"}, "model_sha256"}
    computed_from jsonb       NOT NULL,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    computed_by   name        NOT NULL,
    PRIMARY KEY (name, version),
    FOREIGN KEY (name, version) REFERENCES recsys.models (name, version) ON DELETE CASCADE
);
COMMENT ON TABLE recsys.feature_references IS 'Reference distribution of each feature (quantile bins or category frequencies, NULL share) and each product''s holding rate over a model version''s training months, for recsys.feature_drift and recsys.training_serving_skew';
SELECT pg_catalog.pg_extension_config_dump('recsys.feature_references', '');
REVOKE ALL ON recsys.feature_references FROM PUBLIC;
GRANT SELECT ON recsys.feature_references TO recsys_admin;

-- Written only through this function (SECURITY DEFINER: callers need no privilege on the
-- table); computed_by is the acting role.
CREATE FUNCTION recsys.store_feature_reference(model_name text, version integer, reference jsonb, computed_from jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF model_name IS NULL OR version IS NULL OR reference IS NULL OR computed_from IS NULL THEN
        RAISE EXCEPTION 'model_name, version, reference and computed_from must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF jsonb_typeof(reference) <> 'object' OR jsonb_typeof(reference -> 'rows') IS DISTINCT FROM 'number'
       OR jsonb_typeof(reference -> 'features') IS DISTINCT FROM 'array'
       OR jsonb_typeof(reference -> 'products') IS DISTINCT FROM 'array'
       OR jsonb_typeof(computed_from) <> 'object' THEN
        RAISE EXCEPTION 'a feature reference must be an object with "rows", "features" and "products"'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM recsys.models m WHERE m.name = store_feature_reference.model_name
                                                  AND m.version = store_feature_reference.version) THEN
        RAISE EXCEPTION 'model "%" version % does not exist', model_name, version USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO recsys.feature_references AS r (name, version, reference, computed_from, computed_at, computed_by)
    VALUES (model_name, version, reference, computed_from, now(), recsys.acting_role())
    ON CONFLICT ON CONSTRAINT feature_references_pkey DO UPDATE
       SET reference = excluded.reference, computed_from = excluded.computed_from,
           computed_at = excluded.computed_at, computed_by = excluded.computed_by;
END
$$;
COMMENT ON FUNCTION recsys.store_feature_reference(text, integer, jsonb, jsonb) IS 'Stores (or replaces) the feature reference of a model version in recsys.feature_references (computed_by: the acting role); used by recsys.record_feature_reference()';

---------------------------------------------------------------------------------------------
-- Reading the source: the same expressions and month ranges everywhere
---------------------------------------------------------------------------------------------
-- The SQL expression of one column of relation as the drift functions read it, by kind:
--   numeric     -> float8 (a boolean as 0/1), as recsys.train() fits and the encoder reads it;
--   categorical -> text, as the vocabulary was fitted;
--   flag        -> the product flag compared with 1: true held, false not, NULL.
-- A missing column raises 42703, a column of another type 42804.
CREATE FUNCTION recsys.drift_column_sql(relation regclass, column_name text, kind text)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    base oid := recsys.column_base_type(relation, column_name);   -- a domain reads as its base type
BEGIN
    IF base IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', column_name, relation USING ERRCODE = 'undefined_column';
    END IF;
    IF kind = 'categorical' THEN
        IF base = ANY ('{text,varchar,bpchar,name,char,int2,int4,int8,float4,float8,numeric,bool}'::regtype[]::oid[]) THEN
            RETURN format('(%I)::pg_catalog.text', column_name);
        END IF;
    ELSIF kind IN ('numeric', 'flag') THEN
        IF base = 'bool'::regtype THEN
            RETURN format(CASE kind WHEN 'numeric' THEN '(%I)::pg_catalog.int4::pg_catalog.float8'
                                    ELSE '(%I)::pg_catalog.int4 OPERATOR(pg_catalog.=) 1' END, column_name);
        ELSIF base = ANY ('{int2,int4,int8,float4,float8,numeric}'::regtype[]::oid[]) THEN
            RETURN format(CASE kind WHEN 'numeric' THEN '(%I)::pg_catalog.float8'
                                    ELSE '(%I)::pg_catalog.float8 OPERATOR(pg_catalog.=) 1' END, column_name);
        END IF;
    ELSE
        RAISE EXCEPTION 'unknown column kind "%"', kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RAISE EXCEPTION 'column "%" of relation % has type %, which recsys cannot read as a % value', column_name, relation,
                    format_type(base, NULL), kind
        USING ERRCODE = 'datatype_mismatch';
END
$$;
COMMENT ON FUNCTION recsys.drift_column_sql(regclass, text, text) IS 'The SQL expression the drift functions read a column as (kind numeric, categorical or flag); raises for a missing column or an unusable type';

-- "month_column in [first day of months_from, first day of the month after months_to)",
-- compared in the column's own type (an index on it serves); a timestamptz month in UTC.
CREATE FUNCTION recsys.drift_month_range_sql(relation regclass, month_column text, months_from date, months_to date)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    typ    oid;
    lo     text := to_char(date_trunc('month', months_from::timestamp), 'YYYY-MM-DD');
    hi     text := to_char(date_trunc('month', months_to::timestamp) + interval '1 month', 'YYYY-MM-DD');
    suffix text;
BEGIN
    typ := recsys.column_base_type(relation, month_column);
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', month_column, relation USING ERRCODE = 'undefined_column';
    END IF;
    IF typ = 'timestamptz'::regtype THEN
        lo := lo || ' 00:00:00+00';
        hi := hi || ' 00:00:00+00';
        suffix := 'timestamptz';
    ELSIF typ = 'timestamp'::regtype THEN
        suffix := 'timestamp';
    ELSIF typ = 'date'::regtype THEN
        suffix := 'date';
    ELSE
        RAISE EXCEPTION 'month column "%" of relation % must be a date or timestamp, not %', month_column, relation,
                        format_type(typ, NULL)
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    RETURN format('%1$I OPERATOR(pg_catalog.>=) %2$L::pg_catalog.%4$s AND %1$I OPERATOR(pg_catalog.<) %3$L::pg_catalog.%4$s',
                  month_column, lo, hi, suffix);
END
$$;
COMMENT ON FUNCTION recsys.drift_month_range_sql(regclass, text, date, date) IS 'The WHERE condition of whole calendar months months_from .. months_to on a month column, in the column''s own type';

-- Rows per bin of every dimension, in one scan (GROUPING SETS: one hash table per dimension).
-- dimensions: [{"kind": "bins", "column", "edges": [...]}  -> width_bucket(value, edges)
--              {"kind": "outside", "column", "min", "max"} -> 1 outside [min, max], else 0
--              {"kind": "category", "column", "values": [...]} -> 1-based position, 0 for others
--              {"kind": "flag", "column"}                   -> 1 held, 0 not]
-- A NULL value is bin NULL. Returns (dimension, bin, rows), dimension 1-based.
CREATE FUNCTION recsys.feature_bin_counts(relation regclass, month_column text, months_from date, months_to date,
                                          dimensions jsonb)
RETURNS TABLE (dimension integer, bin integer, rows bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel_name text;
    exprs    text[] := '{}';
    sets     text[] := '{}';
    cases    text := '';
    bins     text := '';
    d        jsonb;
    v        text;
    n        integer := jsonb_array_length(dimensions);
    mask     bigint;
    i        integer;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF n > 31 THEN   -- GROUPING() takes at most 31 arguments: several scans of 31 dimensions
        RETURN QUERY SELECT c.dimension + 31 * (p.part - 1), c.bin, c.rows
                       FROM generate_series(1, (n + 30) / 31) p(part),
                            LATERAL recsys.feature_bin_counts(relation, month_column, months_from, months_to,
                                (SELECT jsonb_agg(e.d ORDER BY e.o) FROM jsonb_array_elements(dimensions) WITH ORDINALITY e(d, o)
                                  WHERE e.o > 31 * (p.part - 1) AND e.o <= 31 * p.part)) c;
        RETURN;
    END IF;
    SELECT format('%I.%I', ns.nspname, cl.relname) INTO rel_name
      FROM pg_class cl JOIN pg_namespace ns ON ns.oid = cl.relnamespace WHERE cl.oid = relation;
    FOR i IN 1 .. n LOOP
        d := dimensions -> (i - 1);
        CASE d ->> 'kind'
            WHEN 'bins' THEN
                v := recsys.drift_column_sql(relation, d ->> 'column', 'numeric');
                exprs := exprs || CASE WHEN jsonb_array_length(d -> 'edges') = 0
                                       THEN format('CASE WHEN %1$s IS NULL THEN NULL ELSE 0 END', v)
                                       ELSE format('pg_catalog.width_bucket(%s, %L::pg_catalog.float8[])', v,
                                                   ARRAY(SELECT e::float8 FROM jsonb_array_elements_text(d -> 'edges') e)) END;
            WHEN 'outside' THEN
                v := recsys.drift_column_sql(relation, d ->> 'column', 'numeric');
                exprs := exprs || format('CASE WHEN %1$s IS NULL THEN NULL WHEN %1$s OPERATOR(pg_catalog.<) %2$L::pg_catalog.float8 '
                                         'OR %1$s OPERATOR(pg_catalog.>) %3$L::pg_catalog.float8 THEN 1 ELSE 0 END',
                                         v, (d ->> 'min')::float8, (d ->> 'max')::float8);
            WHEN 'category' THEN
                v := recsys.drift_column_sql(relation, d ->> 'column', 'categorical');
                exprs := exprs || format('CASE WHEN %1$s IS NULL THEN NULL ELSE COALESCE('
                                         'pg_catalog.array_position(%2$L::pg_catalog.text[], %1$s), 0) END',
                                         v, ARRAY(SELECT jsonb_array_elements_text(d -> 'values')));
            WHEN 'flag' THEN
                v := recsys.drift_column_sql(relation, d ->> 'column', 'flag');
                exprs := exprs || format('(%s)::pg_catalog.int4', v);
            ELSE
                RAISE EXCEPTION 'unknown dimension kind "%"', d ->> 'kind' USING ERRCODE = 'invalid_parameter_value';
        END CASE;
        sets := sets || format('(d%s)', i);
        -- GROUPING(d1, .., dn) has a 1 bit for every dimension not grouped; d1 is the highest bit.
        mask := ((1::bigint << n) - 1) - (1::bigint << (n - i));
        cases := cases || format(' WHEN %s THEN %s', mask, i);
        bins := bins || format(' WHEN %s THEN s.d%s', mask, i);
    END LOOP;
    RETURN QUERY EXECUTE format(
        'SELECT (CASE GROUPING(%1$s)%2$s END)::pg_catalog.int4, (CASE GROUPING(%1$s)%3$s END)::pg_catalog.int4, '
        'pg_catalog.count(*) FROM (SELECT %4$s FROM %5$s WHERE %6$s) s GROUP BY GROUPING SETS (%7$s)',
        (SELECT string_agg(format('s.d%s', k), ', ' ORDER BY k) FROM generate_series(1, n) k), cases, bins,
        (SELECT string_agg(format('%s AS d%s', exprs[k], k), ', ' ORDER BY k) FROM generate_series(1, n) k),
        rel_name, recsys.drift_month_range_sql(relation, month_column, months_from, months_to),
        array_to_string(sets, ', '));
END
$$;
COMMENT ON FUNCTION recsys.feature_bin_counts(regclass, text, date, date, jsonb) IS 'Rows per bin of each dimension (quantile bins, outside a range, category, product flag) over whole months of a relation, in one scan; used by recsys.record_feature_reference and recsys.feature_drift';


---------------------------------------------------------------------------------------------
-- Recording a reference
---------------------------------------------------------------------------------------------
-- Three scans of the months, whatever the number of columns (docs/monitoring.md):
--   1. rows; per numeric feature its non-NULL count, minimum, maximum, and the mean and
--      population standard deviation after the encoder's clip and transform; per product the
--      rows holding it and its non-NULL count;
--   2. the quantile edges of numeric features: percentile_disc at 1/10 .. 9/10 over a sample of
--      customers (all rows up to 200,000; else the customers whose hashint8(id) is a multiple
--      of ceil(rows / 200,000), about 200,000 rows, the same ones every time);
--   3. rows per quantile bin (counted over every row, not the sample) and per vocabulary value
--      (recsys.feature_bin_counts).
-- recsys.train() calls it for every version it registers, over its training months; call it
-- for a version registered otherwise. Reads the source with the caller's rights.
CREATE FUNCTION recsys.record_feature_reference(model_name text, version integer, months_from date, months_to date)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bins          CONSTANT integer := 10;       -- kReferenceBins, src/core/drift_statistics.h
    sample_target CONSTANT bigint := 200000;
    spec          jsonb;
    sha           text;
    rel_oid       regclass;
    rel_name      text;
    id_col        text;
    month_col     text;
    range_sql     text;
    features      jsonb;
    products      text[];
    value_sql     text[] := '{}';               -- per numeric feature, in spec order
    transformed   text[] := '{}';
    flag_sql      text[] := '{}';               -- per product
    x             text;
    f             jsonb;
    i             integer;
    k             integer;
    d             integer;
    n_rows        bigint;
    mins          float8[];
    maxs          float8[];
    means         float8[];
    sds           float8[];
    held          bigint[];
    held_nonnull  bigint[];
    every         bigint;
    sample_rows   bigint;
    quantiles     jsonb;
    edges         jsonb;
    dims          jsonb := '[]';
    counts        jsonb;
    out_features  jsonb := '[]';
    out_products  jsonb := '[]';
BEGIN
    IF model_name IS NULL OR version IS NULL OR months_from IS NULL OR months_to IS NULL THEN
        RAISE EXCEPTION 'model_name, version, months_from and months_to must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF date_trunc('month', months_from::timestamp) > date_trunc('month', months_to::timestamp) THEN
        RAISE EXCEPTION 'months_from % is after months_to %', to_char(months_from, 'YYYY-MM'), to_char(months_to, 'YYYY-MM')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT m.feature_spec, encode(m.sha256, 'hex') INTO spec, sha FROM recsys.models m
     WHERE m.name = record_feature_reference.model_name AND m.version = record_feature_reference.version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" version % does not exist', model_name, version USING ERRCODE = 'undefined_object';
    END IF;
    -- The registry keeps the relation schema-qualified: the cast does not depend on search_path.
    rel_oid := (spec -> 'source' ->> 'relation')::regclass;
    SELECT format('%I.%I', ns.nspname, cl.relname) INTO rel_name
      FROM pg_class cl JOIN pg_namespace ns ON ns.oid = cl.relnamespace WHERE cl.oid = rel_oid;
    id_col := spec -> 'source' ->> 'id_column';
    month_col := spec -> 'source' ->> 'month_column';
    features := coalesce(spec -> 'features', '[]');
    products := ARRAY(SELECT jsonb_array_elements_text(coalesce(spec -> 'products', '[]')));
    range_sql := recsys.drift_month_range_sql(rel_oid, month_col, months_from, months_to);

    -- 1. Rows, numeric features and products.
    FOR i IN 0 .. jsonb_array_length(features) - 1 LOOP
        f := features -> i;
        IF f ->> 'kind' = 'categorical' THEN
            CONTINUE;
        END IF;
        value_sql := value_sql || recsys.drift_column_sql(rel_oid, f ->> 'column', 'numeric');
        -- The encoder's clip and transform (src/core/feature_encoder.cpp; the same SQL as
        -- src/pg/feature_fitting.cpp): clip to the spec's bounds, then log1p of max(x, 0).
        x := value_sql[cardinality(value_sql)];
        IF jsonb_typeof(f -> 'clip_min') = 'number' THEN
            x := format('GREATEST(%s, %L::pg_catalog.float8)', x, (f ->> 'clip_min')::float8);
        END IF;
        IF jsonb_typeof(f -> 'clip_max') = 'number' THEN
            x := format('LEAST(%s, %L::pg_catalog.float8)', x, (f ->> 'clip_max')::float8);
        END IF;
        IF f ->> 'transform' = 'log1p' THEN
            x := format('pg_catalog.ln(1::pg_catalog.float8 OPERATOR(pg_catalog.+) GREATEST(%s, 0::pg_catalog.float8))', x);
        END IF;
        -- GREATEST and LEAST skip NULLs: a NULL stays NULL (the encoder does not standardise it).
        transformed := transformed || format('CASE WHEN %s IS NULL THEN NULL ELSE %s END', value_sql[cardinality(value_sql)], x);
    END LOOP;
    FOR i IN 1 .. coalesce(cardinality(products), 0) LOOP
        flag_sql := flag_sql || recsys.drift_column_sql(rel_oid, products[i], 'flag');
    END LOOP;
    EXECUTE format('SELECT pg_catalog.count(*), ARRAY[%s]::pg_catalog.float8[], ARRAY[%s]::pg_catalog.float8[], '
                   'ARRAY[%s]::pg_catalog.float8[], ARRAY[%s]::pg_catalog.float8[], ARRAY[%s]::pg_catalog.int8[], '
                   'ARRAY[%s]::pg_catalog.int8[] FROM %s WHERE %s',
                   (SELECT coalesce(string_agg(format('pg_catalog.min(%s)', u.x), ', ' ORDER BY u.o), '')
                      FROM unnest(value_sql) WITH ORDINALITY u(x, o)),
                   (SELECT coalesce(string_agg(format('pg_catalog.max(%s)', u.x), ', ' ORDER BY u.o), '')
                      FROM unnest(value_sql) WITH ORDINALITY u(x, o)),
                   (SELECT coalesce(string_agg(format('pg_catalog.avg(%s)', u.x), ', ' ORDER BY u.o), '')
                      FROM unnest(transformed) WITH ORDINALITY u(x, o)),
                   (SELECT coalesce(string_agg(format('pg_catalog.stddev_pop(%s)', u.x), ', ' ORDER BY u.o), '')
                      FROM unnest(transformed) WITH ORDINALITY u(x, o)),
                   (SELECT coalesce(string_agg(format('pg_catalog.count(*) FILTER (WHERE %s)', u.x), ', ' ORDER BY u.o), '')
                      FROM unnest(flag_sql) WITH ORDINALITY u(x, o)),
                   (SELECT coalesce(string_agg(format('pg_catalog.count(%I)', u.x), ', ' ORDER BY u.o), '')
                      FROM unnest(products) WITH ORDINALITY u(x, o)),
                   rel_name, range_sql)
       INTO STRICT n_rows, mins, maxs, means, sds, held, held_nonnull;
    IF n_rows = 0 THEN
        RAISE EXCEPTION '% has no snapshots from % to %', rel_name, to_char(months_from, 'YYYY-MM'),
                        to_char(months_to, 'YYYY-MM')
            USING ERRCODE = 'no_data_found';
    END IF;

    -- 2. Quantile edges, on the sample.
    every := greatest(1, ceil(n_rows::numeric / sample_target))::bigint;
    sample_rows := n_rows;
    IF cardinality(value_sql) > 0 THEN
        EXECUTE format('SELECT pg_catalog.count(*), pg_catalog.jsonb_build_array(%s) FROM %s WHERE %s%s',
                       (SELECT string_agg(format('pg_catalog.percentile_disc($1) WITHIN GROUP (ORDER BY %s)', u.x), ', '
                                          ORDER BY u.o)
                          FROM unnest(value_sql) WITH ORDINALITY u(x, o)),
                       rel_name, range_sql,
                       CASE WHEN every > 1
                            THEN format(' AND pg_catalog.hashint8((%I)::pg_catalog.int8) OPERATOR(pg_catalog.%%) '
                                        '%s::pg_catalog.int4 OPERATOR(pg_catalog.=) 0', id_col, every)
                            ELSE '' END)
           INTO STRICT sample_rows, quantiles
          USING ARRAY(SELECT q::float8 / bins FROM generate_series(1, bins - 1) q);
    END IF;

    -- 3. Rows per bin and per category: one dimension per feature, in spec order.
    k := 0;
    FOR i IN 0 .. jsonb_array_length(features) - 1 LOOP
        f := features -> i;
        IF f ->> 'kind' = 'categorical' THEN
            dims := dims || jsonb_build_object('kind', 'category', 'column', f ->> 'column',
                                               'values', coalesce(f -> 'vocabulary', '[]'));
        ELSE
            k := k + 1;
            -- Distinct edges, ascending (a discrete feature has fewer than bins - 1).
            dims := dims || jsonb_build_object('kind', 'bins', 'column', f ->> 'column',
                'edges', to_jsonb(ARRAY(SELECT DISTINCT e.v::float8 FROM jsonb_array_elements_text(
                                            CASE WHEN jsonb_typeof(quantiles -> (k - 1)) = 'array'
                                                 THEN quantiles -> (k - 1) ELSE '[]' END) e(v) ORDER BY 1)));
        END IF;
    END LOOP;
    SELECT jsonb_object_agg(c.dimension || ':' || coalesce(c.bin::text, 'null'), c.rows) INTO counts
      FROM recsys.feature_bin_counts(rel_oid, month_col, months_from, months_to, dims) c;
    counts := coalesce(counts, '{}');

    k := 0;
    FOR i IN 0 .. jsonb_array_length(features) - 1 LOOP
        f := features -> i;
        d := i + 1;
        IF f ->> 'kind' = 'categorical' THEN
            out_features := out_features || jsonb_build_object(
                'column', f ->> 'column', 'kind', 'categorical',
                'null_count', coalesce((counts ->> format('%s:null', d))::bigint, 0),
                'values', coalesce(f -> 'vocabulary', '[]'),
                'counts', coalesce((SELECT jsonb_agg(coalesce((counts ->> format('%s:%s', d, b))::bigint, 0) ORDER BY b)
                                      FROM generate_series(1, jsonb_array_length(coalesce(f -> 'vocabulary', '[]'))) b), '[]'),
                'unknown_count', coalesce((counts ->> format('%s:0', d))::bigint, 0));
        ELSE
            k := k + 1;
            edges := dims -> i -> 'edges';
            out_features := out_features || jsonb_build_object(
                'column', f ->> 'column', 'kind', 'numeric',
                'null_count', coalesce((counts ->> format('%s:null', d))::bigint, 0),
                'edges', edges,
                'counts', (SELECT jsonb_agg(coalesce((counts ->> format('%s:%s', d, b))::bigint, 0) ORDER BY b)
                             FROM generate_series(0, jsonb_array_length(edges)) b),
                'min', mins[k], 'max', maxs[k], 'transformed_mean', means[k], 'transformed_stddev', sds[k]);
        END IF;
    END LOOP;
    FOR i IN 1 .. coalesce(cardinality(products), 0) LOOP
        out_products := out_products || jsonb_build_object('column', products[i], 'held_count', held[i],
                                                           'null_count', n_rows - held_nonnull[i]);
    END LOOP;

    PERFORM recsys.store_feature_reference(model_name, version,
        jsonb_build_object('format', 1, 'rows', n_rows, 'features', out_features, 'products', out_products),
        jsonb_build_object('relation', rel_name, 'month_column', month_col,
                           'months', jsonb_build_array(to_char(months_from, 'YYYY-MM'), to_char(months_to, 'YYYY-MM')),
                           'rows', n_rows, 'bins', bins,
                           'quantile_sample', jsonb_build_object('every', every, 'rows', sample_rows),
                           'model_sha256', sha));
    RETURN n_rows;
END
$$;
COMMENT ON FUNCTION recsys.record_feature_reference(text, integer, date, date) IS 'Computes and stores the reference distribution of a model version''s features (10 quantile bins of numeric ones, frequencies per vocabulary value of categorical ones, NULL shares) and products (holding rates) over the months months_from .. months_to of its source; recsys.train() calls it over its training months. Returns the rows counted';

---------------------------------------------------------------------------------------------
-- Comparing a month with the reference
---------------------------------------------------------------------------------------------
CREATE FUNCTION recsys.population_stability_index(expected double precision[], actual double precision[],
                                                  epsilon double precision DEFAULT 0.0001)
RETURNS double precision
AS 'MODULE_PATHNAME', 'recsys_population_stability_index' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION recsys.population_stability_index(double precision[], double precision[], double precision) IS 'PSI between two distributions over the same bins, given as counts or shares (each normalised by its sum): sum of (a - e) * ln(a / e), every share raised to at least epsilon';

-- One row per feature of the model, then one per product. The month is read by one GROUPING
-- SETS query per 31 dimensions (recsys.feature_bin_counts): two scans for the default model's
-- 36 (5 numeric features with bins and range, 2 categorical, 24 products).
CREATE FUNCTION recsys.feature_drift(model_name text, month date, version integer DEFAULT NULL)
RETURNS TABLE (feature text, kind text, psi double precision, null_share double precision,
               reference_null_share double precision, unseen_share double precision, holding_rate double precision,
               reference_holding_rate double precision, status text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp ROWS 40
AS $$
DECLARE
    -- docs/monitoring.md, "Drift and skew"; src/core/drift_statistics.h.
    psi_warn   CONSTANT float8 := 0.1;
    psi_alert  CONSTANT float8 := 0.25;
    v          integer;
    ref        jsonb;
    spec       jsonb;
    rel_oid    regclass;
    month_col  text;
    dims       jsonb := '[]';
    counts     jsonb;
    month_rows bigint;
    f          jsonb;
    p          jsonb;
    i          integer;
    d          integer := 0;
    nb         integer;
    ref_rows   float8;
    e_counts   float8[];
    a_counts   float8[];
    a_null     float8;
    a_nonnull  float8;
BEGIN
    IF model_name IS NULL OR month IS NULL THEN
        RAISE EXCEPTION 'model_name and month must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM recsys.models m WHERE m.name = feature_drift.model_name) THEN
        RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = 'undefined_object';
    END IF;
    IF feature_drift.version IS NULL THEN
        SELECT m.version INTO v FROM recsys.models m WHERE m.name = feature_drift.model_name AND m.status = 'production';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'model "%" has no production version', model_name
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Promote one with recsys.promote(name, version), or pass version => N.';
        END IF;
    ELSE
        v := feature_drift.version;
        IF NOT EXISTS (SELECT 1 FROM recsys.models m WHERE m.name = feature_drift.model_name AND m.version = v) THEN
            RAISE EXCEPTION 'model "%" version % does not exist', model_name, v USING ERRCODE = 'undefined_object';
        END IF;
    END IF;
    SELECT r.reference INTO ref FROM recsys.feature_references r WHERE r.name = feature_drift.model_name AND r.version = v;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" version % has no feature reference', model_name, v
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'recsys.train() records one for every model it trains; a model registered otherwise has none until one is recorded.',
                  HINT = format('Record one with SELECT recsys.record_feature_reference(%L, %s, months_from, months_to) over its training months.',
                                model_name, v);
    END IF;
    SELECT m.feature_spec INTO spec FROM recsys.models m WHERE m.name = feature_drift.model_name AND m.version = v;
    rel_oid := (spec -> 'source' ->> 'relation')::regclass;
    month_col := spec -> 'source' ->> 'month_column';
    ref_rows := (ref ->> 'rows')::float8;

    -- Dimensions: a numeric feature's bins, then whether it lies outside the reference's
    -- [min, max]; a categorical feature's values; a product's flag.
    FOR f IN SELECT e.f FROM jsonb_array_elements(ref -> 'features') WITH ORDINALITY e(f, o) ORDER BY e.o LOOP
        IF f ->> 'kind' = 'categorical' THEN
            dims := dims || jsonb_build_object('kind', 'category', 'column', f ->> 'column', 'values', f -> 'values');
        ELSE
            dims := dims || jsonb_build_object('kind', 'bins', 'column', f ->> 'column', 'edges', f -> 'edges')
                         || jsonb_build_object('kind', 'outside', 'column', f ->> 'column',
                                               'min', coalesce(f -> 'min', '0'), 'max', coalesce(f -> 'max', '0'));
        END IF;
    END LOOP;
    FOR p IN SELECT e.p FROM jsonb_array_elements(ref -> 'products') WITH ORDINALITY e(p, o) ORDER BY e.o LOOP
        dims := dims || jsonb_build_object('kind', 'flag', 'column', p ->> 'column');
    END LOOP;
    IF jsonb_array_length(dims) = 0 THEN
        RETURN;
    END IF;
    SELECT jsonb_object_agg(c.dimension || ':' || coalesce(c.bin::text, 'null'), c.rows),
           sum(c.rows) FILTER (WHERE c.dimension = 1)
      INTO counts, month_rows
      FROM recsys.feature_bin_counts(rel_oid, month_col, feature_drift.month, feature_drift.month, dims) c;
    IF coalesce(month_rows, 0) = 0 THEN
        RAISE EXCEPTION '% has no snapshots in %', rel_oid, to_char(feature_drift.month, 'YYYY-MM')
            USING ERRCODE = 'no_data_found';
    END IF;

    FOR f IN SELECT e.f FROM jsonb_array_elements(ref -> 'features') WITH ORDINALITY e(f, o) ORDER BY e.o LOOP
        d := d + 1;
        feature := f ->> 'column';
        kind := f ->> 'kind';
        a_null := coalesce((counts ->> format('%s:null', d))::float8, 0);
        a_nonnull := month_rows - a_null;
        null_share := a_null / month_rows;
        reference_null_share := (f ->> 'null_count')::float8 / ref_rows;
        holding_rate := NULL;
        reference_holding_rate := NULL;
        IF kind = 'categorical' THEN
            -- Bins: each vocabulary value, then other values, then NULL.
            nb := jsonb_array_length(f -> 'values');
            e_counts := ARRAY(SELECT c::float8 FROM jsonb_array_elements_text(f -> 'counts') c)
                        || (f ->> 'unknown_count')::float8 || (f ->> 'null_count')::float8;
            a_counts := ARRAY(SELECT coalesce((counts ->> format('%s:%s', d, b))::float8, 0) FROM generate_series(1, nb) b ORDER BY b)
                        || coalesce((counts ->> format('%s:0', d))::float8, 0) || a_null;
            unseen_share := CASE WHEN a_nonnull > 0 THEN coalesce((counts ->> format('%s:0', d))::float8, 0) / a_nonnull END;
        ELSE
            -- Bins: the reference's quantile bins, then NULL.
            nb := jsonb_array_length(f -> 'edges') + 1;
            e_counts := ARRAY(SELECT c::float8 FROM jsonb_array_elements_text(f -> 'counts') c) || (f ->> 'null_count')::float8;
            a_counts := ARRAY(SELECT coalesce((counts ->> format('%s:%s', d, b))::float8, 0) FROM generate_series(0, nb - 1) b ORDER BY b)
                        || a_null;
            d := d + 1;   -- the "outside [min, max]" dimension
            unseen_share := CASE WHEN a_nonnull > 0 THEN coalesce((counts ->> format('%s:1', d))::float8, 0) / a_nonnull END;
        END IF;
        psi := recsys.population_stability_index(e_counts, a_counts);
        status := CASE WHEN psi > psi_alert THEN 'alert' WHEN psi > psi_warn THEN 'warn' ELSE 'ok' END;
        RETURN NEXT;
    END LOOP;

    FOR p IN SELECT e.p FROM jsonb_array_elements(ref -> 'products') WITH ORDINALITY e(p, o) ORDER BY e.o LOOP
        d := d + 1;
        feature := p ->> 'column';
        kind := 'product';
        a_null := coalesce((counts ->> format('%s:null', d))::float8, 0);
        null_share := a_null / month_rows;
        reference_null_share := (p ->> 'null_count')::float8 / ref_rows;
        unseen_share := NULL;
        -- Bins: held, not held, NULL.
        e_counts := ARRAY[(p ->> 'held_count')::float8,
                          ref_rows - (p ->> 'held_count')::float8 - (p ->> 'null_count')::float8,
                          (p ->> 'null_count')::float8];
        a_counts := ARRAY[coalesce((counts ->> format('%s:1', d))::float8, 0), coalesce((counts ->> format('%s:0', d))::float8, 0),
                          a_null];
        holding_rate := CASE WHEN month_rows > a_null THEN a_counts[1] / (month_rows - a_null) END;
        reference_holding_rate := CASE WHEN ref_rows > e_counts[3] THEN e_counts[1] / (ref_rows - e_counts[3]) END;
        psi := recsys.population_stability_index(e_counts, a_counts);
        status := CASE WHEN psi > psi_alert THEN 'alert' WHEN psi > psi_warn THEN 'warn' ELSE 'ok' END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION recsys.feature_drift(text, date, integer) IS 'Population stability index of each feature (on the reference''s quantile bins or vocabulary, NULL a bin of its own) and each product''s holding (held, not held, NULL) between a model version''s feature reference and one month of its source (production unless a version is given); status ok, warn (PSI > 0.1) or alert (> 0.25); with NULL shares, the share of non-NULL values the reference never saw (numeric: outside its [min, max]; categorical: outside the vocabulary) and holding rates';

CREATE FUNCTION recsys.prediction_skew(model_name text, month date, version integer DEFAULT NULL)
RETURNS TABLE (product text, segment text, customers bigint, mean_predicted double precision,
               calibrated_predicted double precision, observed_add_rate double precision, observed_adds bigint,
               ratio double precision, status text)
AS 'MODULE_PATHNAME', 'recsys_prediction_skew' LANGUAGE C VOLATILE ROWS 150;
COMMENT ON FUNCTION recsys.prediction_skew(text, date, integer) IS 'Per product, overall (segment ''all'') and per segment: the mean predicted probability of an add over the customers with snapshots in month and the month after who do not hold it in month (scored with inputs ending at month), its calibration for the training''s sampling of examples without adds, and the share of them holding it the month after; status warn or alert when the calibrated-to-observed ratio leaves [1/1.5, 1.5] or [1/2, 2] by more than 3 Poisson standard deviations, with at least 10 adds observed or expected';

CREATE FUNCTION recsys.training_serving_skew(model_name text, month date, version integer DEFAULT NULL)
RETURNS TABLE (input text, feature text, training_mean double precision, serving_mean double precision,
               training_null_rate double precision, serving_null_rate double precision,
               standardized_difference double precision, flagged boolean)
AS 'MODULE_PATHNAME', 'recsys_training_serving_skew' LANGUAGE C VOLATILE ROWS 30;
COMMENT ON FUNCTION recsys.training_serving_skew(text, date, integer) IS 'Per encoded input of the model (a numeric feature''s standardised value and missing flag, a categorical feature''s one-hot slots): its mean over the training months implied by the feature reference against its mean over every customer''s row of month as the model''s encoder encodes it, the feature''s NULL rates, and the standardized difference; flagged beyond 0.25 in absolute value or when the NULL rate moved by more than 0.05';

REVOKE ALL ON FUNCTION recsys.store_feature_reference(text, integer, jsonb, jsonb),
                       recsys.drift_column_sql(regclass, text, text),
                       recsys.drift_month_range_sql(regclass, text, date, date),
                       recsys.feature_bin_counts(regclass, text, date, date, jsonb),
                       recsys.record_feature_reference(text, integer, date, date),
                       recsys.population_stability_index(double precision[], double precision[], double precision),
                       recsys.feature_drift(text, date, integer),
                       recsys.prediction_skew(text, date, integer),
                       recsys.training_serving_skew(text, date, integer) FROM PUBLIC;
-- Monitoring reads the fitted distributions and the source: recsys_admin, as validate_data.
-- The helpers run with the caller's rights, so they are granted to whoever calls their callers.
GRANT EXECUTE ON FUNCTION recsys.store_feature_reference(text, integer, jsonb, jsonb),
                          recsys.drift_column_sql(regclass, text, text),
                          recsys.drift_month_range_sql(regclass, text, date, date),
                          recsys.feature_bin_counts(regclass, text, date, date, jsonb),
                          recsys.record_feature_reference(text, integer, date, date),
                          recsys.feature_drift(text, date, integer),
                          recsys.prediction_skew(text, date, integer),
                          recsys.training_serving_skew(text, date, integer) TO recsys_admin;
-- Arithmetic on the caller's own numbers.
GRANT EXECUTE ON FUNCTION recsys.population_stability_index(double precision[], double precision[], double precision)
    TO recsys_reader;
