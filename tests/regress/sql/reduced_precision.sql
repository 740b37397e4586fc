-- Reduced-precision versions (docs/reduced-precision.md): derived from a float32 version as new
-- candidates, scoring close to it, refused cleanly where the CPU (or the superuser's cap,
-- recsys.reduced_precision_kernels) leaves no kernel.
SET client_min_messages = warning;
CREATE SCHEMA rp;
CREATE TABLE rp.snapshots AS SELECT * FROM recsys.generate_santander(40, months => 4);
SELECT recsys.register_model('rp_model', recsys.untrained_model('rp.snapshots', window_months => 3, hidden => 16, seed => 5),
                             hyperparameters => '{"hidden": 16}', metrics => '{"map7": 0.01}');
RESET client_min_messages;

-- Versions 2 (bf16) and 3 (int8): candidates with the source's hyperparameters, the precision and
-- where they came from, no metrics yet.
SELECT recsys.register_reduced_precision('rp_model', 1, 'bf16') AS bf16_version;
SELECT recsys.register_reduced_precision('rp_model', 1, 'int8', 'int8 for the batch refresh') AS int8_version;
SELECT version, status, feature_spec->>'precision' AS precision, hyperparameters, metrics, description
  FROM recsys.models WHERE name = 'rp_model' ORDER BY version;
SELECT action, count(*) FROM recsys.model_events WHERE name = 'rp_model' GROUP BY action;

-- The float32 weights are kept: back at fp32 the bytes are the source's, byte for byte.
SELECT recsys.model_with_precision(d.model, 'fp32') = s.model AS fp32_bytes_restored,
       d.sha256 <> s.sha256 AS derived_bytes_differ, length(d.model) - length(s.model) AS extra_bytes
  FROM recsys.models s, recsys.models d
 WHERE s.name = 'rp_model' AND s.version = 1 AND d.name = 'rp_model' AND d.version = 3;

-- Scores: close to float32, and not identical (the reduced kernels ran).
SELECT recsys.precision_kernel('fp32') AS fp32_kernel,
       recsys.precision_kernel('bf16') IN ('avx512_bf16', 'avx2') AS bf16_has_kernel,
       recsys.precision_kernel('int8') IN ('avx512_vnni', 'avx2') AS int8_has_kernel;
WITH s AS (SELECT recsys.score_customer(c, 'rp_model', 1) AS f32, recsys.score_customer(c, 'rp_model', 2) AS b16,
                  recsys.score_customer(c, 'rp_model', 3) AS i8
             FROM (SELECT DISTINCT ncodpers FROM rp.snapshots) ids(c))
SELECT max(abs(f - b)) < 0.01 AS bf16_close, max(abs(f - b)) > 0 AS bf16_differs,
       max(abs(f - q)) < 0.01 AS int8_close, max(abs(f - q)) > 0 AS int8_differs, count(*) AS scores
  FROM s, LATERAL unnest(s.f32, s.b16, s.i8) u(f, b, q);
-- Evaluation and batch scoring go through the same kernels.
SELECT method, customers > 0 AS evaluated FROM recsys.evaluate('rp_model', 3) WHERE method = 'lstm';
SELECT count(*) AS scored FROM recsys.score_all('rp_model', version => 3);

-- Bad requests.
SELECT recsys.register_reduced_precision('rp_model', 2, 'int8');  -- version 2 is itself bf16
SELECT recsys.register_reduced_precision('rp_model', 1, 'fp16');
SELECT recsys.register_reduced_precision('rp_model', 9, 'int8');
SELECT recsys.model_with_precision(model, 'int4') FROM recsys.models WHERE name = 'rp_model' AND version = 1;
SELECT recsys.model_with_precision('\x00'::bytea, 'int8');

-- No kernel: the superuser's cap takes every instruction away, as on a CPU without AVX2/FMA.
SELECT recsys.register_reduced_precision('rp_model', 1, 'int8') AS not_yet_loaded_version;
SET recsys.reduced_precision_kernels = 'none';
SELECT recsys.precision_kernel('int8');
SELECT recsys.score_customer(15889, 'rp_model', 4);
DO $$
BEGIN
    PERFORM recsys.score_customer(15889, 'rp_model', 4);
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'feature_not_supported: %', SQLERRM;
END
$$;
SELECT count(*) FROM recsys.score_all('rp_model', version => 3);  -- batch scoring builds its own scorer
SELECT recsys.precision_kernel('fp32') AS fp32_unaffected, count(*) AS fp32_scored FROM recsys.score_all('rp_model', version => 1);
RESET recsys.reduced_precision_kernels;
-- The failed load left nothing behind: with the kernels back, version 4 scores as version 3.
SELECT recsys.score_customer(15889, 'rp_model', 4) = recsys.score_customer(15889, 'rp_model', 3) AS same_as_version_3;

-- Only a superuser may cap the kernels; only recsys_admin may derive versions.
CREATE ROLE rp_reader;
GRANT recsys_reader TO rp_reader;
SET ROLE rp_reader;
SET recsys.reduced_precision_kernels = 'avx2';
SELECT recsys.register_reduced_precision('rp_model', 1, 'bf16');
SELECT recsys.precision_kernel('fp32') AS reader_may_ask;
RESET ROLE;

DROP ROLE rp_reader;
SET client_min_messages = warning;
DROP SCHEMA rp CASCADE;

-- recsys.blas_core names the kernels OpenBLAS chose for this CPU (which depends on the machine);
-- nobody can change it from SQL, since OpenBLAS reads OPENBLAS_CORETYPE only when it loads.
SELECT current_setting('recsys.blas_core') ~ '^[A-Za-z0-9()]+$' AS blas_core_named,
       context FROM pg_settings WHERE name = 'recsys.blas_core';
SET recsys.blas_core = 'Prescott';
