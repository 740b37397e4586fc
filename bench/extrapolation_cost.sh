#!/usr/bin/env bash
# What scoring past a from-start model's window costs in batch: score_all of the same customers
# (17 monthly snapshots each) by from-start models whose history fits their window and by
# models kept past it (run in parts of the window's length: src/core/batch_scoring.h), beside a
# sliding-window model. A benchmark, not a test: it prints figures and checks nothing.
#
#   PGHOST=... PGPORT=... PGUSER=postgres [PGBIN=...] bash bench/extrapolation_cost.sh
#
# Creates and drops the database recsys_extrapolation_bench with RECSYS_BENCH_CUSTOMERS
# customers (default 20000) x 17 months and these models (hidden 128, the same seed):
#   within16  from-start, window 16, from the second month: 16 months, one part (the normal path)
#   past17    from-start, window 16, from the first month: 17 months, parts of 16 and 1 step
#   past17w12 from-start, window 12, from the first month: 17 months, parts of 12 and 5 steps
#   past17w8  from-start, window 8, from the first month: 17 months, parts of 8, 8 and 1 step
#   sliding16 sliding window of 16 months
# RECSYS_EXTRAPOLATION_MODELS (default all five) picks which are timed: a build from before
# extrapolation refuses the past* models, so a before/after comparison of the normal path times
# within16 and sliding16 only. Rounds (RECSYS_BENCH_ROUNDS, default 5) time one score_all(k 7)
# of every customer per model, in a rotating order, in one backend with recsys.parallel_workers
# = 0; printed: the median per model of the wall time and of the backend's CPU time
# (/proc/self/schedstat), per customer, and the median within a round of each one's ratio to
# within16.
set -euo pipefail

customers=${RECSYS_BENCH_CUSTOMERS:-20000}
rounds=${RECSYS_BENCH_ROUNDS:-5}
models=${RECSYS_EXTRAPOLATION_MODELS:-within16 past17 past17w12 past17w8 sliding16}
db=recsys_extrapolation_bench
PSQL=("${PGBIN:+$PGBIN/}psql" -X -q -v ON_ERROR_STOP=1)
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"

trap '"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
bench_snapshot_database "$customers" <<SQL
CREATE FUNCTION bench.fixture(name text, window_months integer, start_month date) RETURNS void LANGUAGE sql AS \$\$
    SELECT recsys.promote(name, recsys.register_model(name, recsys.untrained_model('bench.snapshots',
                          window_months => window_months, hidden => 128, seed => 1, start_month => start_month)),
                          force => true, reason => 'benchmark fixture');
\$\$;
SELECT bench.fixture('within16', 16, '2015-02-28');
SELECT bench.fixture('past17', 16, '2015-01-28');
SELECT bench.fixture('past17w12', 12, '2015-01-28');
SELECT bench.fixture('past17w8', 8, '2015-01-28');
SELECT bench.fixture('sliding16', 16, NULL);
-- The backend's CPU time in ms (schedstat: nanoseconds on a CPU), leaving out waits for a CPU.
CREATE FUNCTION bench.cpu_ms() RETURNS double precision LANGUAGE sql AS
\$\$ SELECT split_part(pg_read_file('/proc/' || pg_backend_pid() || '/schedstat'), ' ', 1)::double precision / 1e6 \$\$;
CREATE TABLE bench.timing (round integer, model text, wall_ms double precision, cpu_ms double precision);
SQL

list=$(printf "'%s'," $models)
"${PSQL[@]}" -d "$db" <<SQL
SET recsys.parallel_workers = 0;
-- Each model once before timing (its cache entry, the plans, the source in shared buffers).
SELECT count(*) FROM unnest(ARRAY[${list%,}]) m, LATERAL recsys.score_all(m, 7) s \gset
DO \$\$
DECLARE
    models text[] := ARRAY[${list%,}];
    n integer := array_length(models, 1);
    t0 timestamptz;
    c0 double precision;
    m text;
BEGIN
    FOR r IN 1..$rounds LOOP
        FOR i IN 0..n - 1 LOOP
            m := models[1 + (i + r) % n];
            c0 := bench.cpu_ms();
            t0 := clock_timestamp();
            PERFORM count(*) FROM recsys.score_all(m, 7);
            INSERT INTO bench.timing VALUES (r, m, extract(epoch FROM clock_timestamp() - t0) * 1000,
                                             bench.cpu_ms() - c0);
        END LOOP;
    END LOOP;
END \$\$;
SELECT t.model, count(*) AS rounds,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY t.wall_ms) * 1000 / $customers)::numeric, 2) AS wall_us_per_customer,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY t.cpu_ms) * 1000 / $customers)::numeric, 2) AS cpu_us_per_customer,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t.wall_ms / b.wall_ms)::numeric, 3) AS wall_ratio_to_within16,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t.cpu_ms / b.cpu_ms)::numeric, 3) AS cpu_ratio_to_within16
  FROM bench.timing t LEFT JOIN bench.timing b ON b.round = t.round AND b.model = 'within16'
 GROUP BY t.model ORDER BY array_position(ARRAY[${list%,}], t.model);
SQL
