-- Reduced-precision scoring (docs/reduced-precision.md): a model version scores in float32,
-- bf16 or int8, as recorded in its bytes, so a registered version never changes how it scores.
-- A reduced-precision version is derived from a float32 one as a new candidate version, which
-- goes through evaluation, the promotion gate and promotion like any other.

CREATE FUNCTION recsys.model_with_precision(model bytea, target_precision text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'recsys_model_with_precision' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION recsys.model_with_precision(bytea, text) IS 'The same model (features, products, float32 weights) marked to score in precision ''fp32'', ''bf16'' or ''int8''';

-- VOLATILE: the answer follows recsys.reduced_precision_kernels.
CREATE FUNCTION recsys.precision_kernel(model_precision text) RETURNS text
    AS 'MODULE_PATHNAME', 'recsys_precision_kernel' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION recsys.precision_kernel(text) IS 'The kernel this backend scores a model of that precision with (avx512_bf16, avx512_vnni, avx2; sgemm for fp32); 0A000 naming what the CPU lacks when it has none';

-- SECURITY INVOKER: it reads the source version with the caller's rights (recsys_admin may
-- read recsys.models) and registers through recsys.register_model, which checks that the
-- acting role may read every column the model reads.
CREATE FUNCTION recsys.register_reduced_precision(model_name text, source_version integer, target_precision text,
                                                  description text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    src recsys.models%ROWTYPE;
BEGIN
    IF model_name IS NULL OR source_version IS NULL OR target_precision IS NULL THEN
        RAISE EXCEPTION 'model name, source version and target precision must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF target_precision NOT IN ('bf16', 'int8') THEN
        RAISE EXCEPTION 'precision must be ''bf16'' or ''int8'', not "%"', target_precision
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A float32 version is registered with recsys.register_model or recsys.train.';
    END IF;
    SELECT * INTO src FROM recsys.models m WHERE m.name = model_name AND m.version = source_version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" has no version %', model_name, source_version USING ERRCODE = 'undefined_object';
    END IF;
    IF coalesce(src.feature_spec ->> 'precision', 'fp32') <> 'fp32' THEN
        RAISE EXCEPTION 'version % of model "%" is itself %; derive from a float32 version', source_version,
                        model_name, src.feature_spec ->> 'precision'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The metrics were measured in float32: the derived version starts without any, and is
    -- evaluated (recsys.evaluate_and_record, recsys.validate) before it can be promoted.
    RETURN recsys.register_model(
        model_name,
        recsys.model_with_precision(src.model, target_precision),
        src.hyperparameters || jsonb_build_object('precision', target_precision, 'derived_from_version', source_version),
        '{}'::jsonb,
        src.training_data,
        coalesce(description, format('%s scoring of version %s (same float32 weights, quantized when loaded)',
                                     target_precision, source_version)));
END
$$;
COMMENT ON FUNCTION recsys.register_reduced_precision(text, integer, text, text) IS 'Registers a float32 version''s model marked to score in bf16 or int8 as the next candidate version (hyperparameters record the precision and the source version; metrics start empty); returns the version';

REVOKE ALL ON FUNCTION recsys.model_with_precision(bytea, text), recsys.precision_kernel(text),
    recsys.register_reduced_precision(text, integer, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION recsys.precision_kernel(text) TO recsys_reader;
GRANT EXECUTE ON FUNCTION recsys.model_with_precision(bytea, text),
    recsys.register_reduced_precision(text, integer, text, text) TO recsys_admin;
