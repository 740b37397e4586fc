#!/usr/bin/env bash
# MAP@7 of a trained model in fp32, bf16 and int8 on a held-out month, and the largest score
# difference, through SQL (docs/reduced-precision.md). Connection from PGHOST / PGPORT / PGUSER;
# creates (and leaves) database recsys_precision. Knobs: RECSYS_PRECISION_CUSTOMERS (default
# 50000, as the README's demo), RECSYS_PRECISION_SCORED (customers whose 24 scores are compared,
# default 5000), RECSYS_PRECISION_MODEL_OUT (write the trained float32 model file there, for
# build/reduced_precision_bench's RECSYS_BENCH_MODEL).
# Prints key value lines (q_*) and the evaluate() rows.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
customers=${RECSYS_PRECISION_CUSTOMERS:-50000}
scored=${RECSYS_PRECISION_SCORED:-5000}
export PGUSER=${PGUSER:-postgres}
psql -qX -d postgres -c "DROP DATABASE IF EXISTS recsys_precision" -c "CREATE DATABASE recsys_precision"
export PGDATABASE=recsys_precision
psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION recsys"
psql -qX -v ON_ERROR_STOP=1 -v schema=santander -f "$root/sql/santander_loader.sql" >/dev/null
psql -qX -v ON_ERROR_STOP=1 -c "INSERT INTO santander.snapshots SELECT * FROM recsys.generate_santander($customers)" \
    -c "ANALYZE santander.snapshots"
psql -X -v ON_ERROR_STOP=1 -At <<SQL
SELECT max(fecha_dato) AS held_out, (max(fecha_dato) - interval '1 month')::date AS early_stopping
  FROM santander.snapshots \gset
SET client_min_messages = warning;
SELECT recsys.train('default', 'santander.snapshots', validation_month => :'early_stopping') AS v32 \gset
SELECT recsys.register_reduced_precision('default', :v32, 'bf16') AS v16 \gset
SELECT recsys.register_reduced_precision('default', :v32, 'int8') AS v8 \gset
SELECT 'q_customers $customers';
SELECT 'q_held_out ' || :'held_out';
SELECT 'q_kernel_bf16 ' || recsys.precision_kernel('bf16');
SELECT 'q_kernel_int8 ' || recsys.precision_kernel('int8');
SELECT 'q_map7_' || p || ' ' || round(e.map7::numeric, 6) || ' (customers ' || e.customers || ')'
  FROM (VALUES ('fp32', :v32), ('bf16', :v16), ('int8', :v8)) v(p, ver),
       LATERAL recsys.evaluate('default', ver, :'held_out') e
 WHERE e.method = 'lstm';
-- The largest score difference over the first $scored customers, every product.
WITH ids AS (SELECT DISTINCT ncodpers AS id FROM santander.snapshots ORDER BY 1 LIMIT $scored),
     s AS (SELECT i.id, recsys.score_customer(i.id, 'default', :v32) AS f32,
                  recsys.score_customer(i.id, 'default', :v16) AS b16,
                  recsys.score_customer(i.id, 'default', :v8) AS i8 FROM ids i)
SELECT 'q_max_abs_diff_bf16 ' || max(abs(f - b)) || E'\nq_max_abs_diff_int8 ' || max(abs(f - q))
  FROM s, LATERAL unnest(s.f32, s.b16, s.i8) u(f, b, q);
SQL
if [ -n "${RECSYS_PRECISION_MODEL_OUT:-}" ]; then
    psql -XAt -v ON_ERROR_STOP=1 -c "SELECT encode(model, 'hex') FROM recsys.models WHERE name = 'default' AND version = 1" |
        xxd -r -p >"$RECSYS_PRECISION_MODEL_OUT"
fi
