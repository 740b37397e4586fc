#!/usr/bin/env bash
# What shadow scoring (recsys.set_shadow) costs a recommend() call. A benchmark, not a test: it
# prints figures and checks nothing.
#
#   PGHOST=... PGPORT=... PGUSER=postgres bash bench/shadow_cost.sh
#
# Server time per call, measured as bench/run_all.sh measures recommend(): a DO block calls
# recommend() for RECSYS_BENCH_CALLS random customers (default 10000) and takes clock_timestamp()
# deltas, in three modes over the same ids:
#   none   no shadow version set;
#   tiny   a shadow set with sample 0.0001: almost no call is drawn, so this is the cost every
#          call pays for the shadow being set (sample must be > 0);
#   full   sample 1.0: every call also scores with the shadow version and writes a log row.
# The three loops run RECSYS_BENCH_ROUNDS times (default 3) in turn; printed: the median per
# mode, and the median over rounds of each mode's ratio to "none" of the same round. Everything runs in one transaction that is
# rolled back, so neither the shadow setting nor its log rows outlive the benchmark.
#
# Needs a running cluster with the recsys extension installed and a superuser. By default it
# creates and drops the database recsys_shadow_bench with RECSYS_BENCH_CUSTOMERS customers
# (default 20000, 17 months each) and two untrained models of the reference shape (window 16,
# hidden 128; seeds 1 and 2), version 1 in production. To measure an existing model instead
# (bench/run_all.sh does), set RECSYS_SHADOW_DB, RECSYS_SHADOW_MODEL, RECSYS_SHADOW_VERSION (the
# shadow version, not the production one) and RECSYS_SHADOW_IDS ("first_id last_id").
set -euo pipefail

calls=${RECSYS_BENCH_CALLS:-10000}
rounds=${RECSYS_BENCH_ROUNDS:-3}
customers=${RECSYS_BENCH_CUSTOMERS:-20000}
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

if [ -n "${RECSYS_SHADOW_DB:-}" ]; then
    db=$RECSYS_SHADOW_DB
    model=${RECSYS_SHADOW_MODEL:?set RECSYS_SHADOW_MODEL}
    shadow=${RECSYS_SHADOW_VERSION:?set RECSYS_SHADOW_VERSION}
    read -r first_id last_id <<<"${RECSYS_SHADOW_IDS:?set RECSYS_SHADOW_IDS}"
else
    db=recsys_shadow_bench
    model=shadow_bench
    shadow=2
    first_id=15889  # recsys.generate_santander's first customer id
    last_id=$((first_id + customers - 1))
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
    trap '"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
    bench_snapshot_database "$customers" <<SQL
SELECT recsys.register_model('$model', recsys.untrained_model('bench.snapshots', seed => s)) FROM generate_series(1, 2) s;
SELECT recsys.promote('$model', 1, force => true, reason => 'benchmark fixture');
SQL
fi

echo "shadow scoring cost: model $model, shadow version $shadow, $calls calls x $rounds rounds, ids $first_id..$last_id"
# The figures leave the rolled-back transaction as a NOTICE.
out=$("${PSQL[@]}" -d "$db" 2>&1 <<SQL
BEGIN;
DO \$\$
DECLARE
    ids     bigint[] := ARRAY(SELECT $first_id + floor(random() * ($last_id - $first_id + 1))::bigint
                                FROM generate_series(1, $calls));
    modes   text[] := ARRAY['none', 'tiny', 'full'];
    times   double precision[] := '{}';
    t0      timestamptz;
    r       text[];
    mode_   text;
    c       record;
    medians text;
    ratios  text;
BEGIN
    PERFORM recsys.set_shadow('$model', NULL);
    -- Both models parsed and cached before timing.
    r := recsys.recommend(ids[1], 7, '$model');
    r := recsys.recommend(ids[1], 7, '$model', $shadow);
    FOR rnd IN 1 .. $rounds LOOP
        FOREACH mode_ IN ARRAY modes LOOP
            CASE mode_
                WHEN 'none' THEN PERFORM recsys.set_shadow('$model', NULL);
                WHEN 'tiny' THEN PERFORM recsys.set_shadow('$model', $shadow, 0.0001);
                ELSE PERFORM recsys.set_shadow('$model', $shadow, 1.0);
            END CASE;
            t0 := clock_timestamp();
            FOR i IN 1 .. $calls LOOP
                r := recsys.recommend(ids[i], 7, '$model');
            END LOOP;
            times := times || extract(epoch FROM clock_timestamp() - t0) * 1e6 / $calls;
        END LOOP;
    END LOOP;
    -- times holds round-major triples; the median of each mode over the rounds.
    SELECT string_agg(format('%s=%s', modes[s.m], round(s.median::numeric, 2)), ' ' ORDER BY s.m)
      INTO medians
      FROM (SELECT (u.k - 1) % 3 + 1 AS m, percentile_cont(0.5) WITHIN GROUP (ORDER BY u.t) AS median
              FROM unnest(times) WITH ORDINALITY AS u(t, k) GROUP BY 1) s;
    -- The load of a shared machine drifts between rounds: the ratio within each round, median.
    SELECT format('tiny_ratio=%s full_ratio=%s',
                  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY times[3 * k + 2] / times[3 * k + 1])::numeric, 3),
                  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY times[3 * k + 3] / times[3 * k + 1])::numeric, 3))
      INTO ratios
      FROM generate_series(0, $rounds - 1) k;
    SELECT * INTO c FROM recsys.shadow_counters();
    RAISE NOTICE 'shadow_bench % % sampled=% logged=% errors=% all=%', medians, ratios, c.sampled, c.logged, c.errors,
        array_to_string(ARRAY(SELECT round(t::numeric, 1) FROM unnest(times) t), ',');
END
\$\$;
ROLLBACK;
SQL
)
line=$(sed -n 's/.*NOTICE:  shadow_bench //p' <<<"$out")
[ -n "$line" ] || { echo "$out" >&2; exit 1; }
none=$(sed -n 's/.*none=\([0-9.]*\).*/\1/p' <<<"$line")
tiny=$(sed -n 's/.*tiny=\([0-9.]*\).*/\1/p' <<<"$line")
full=$(sed -n 's/.*full=\([0-9.]*\).*/\1/p' <<<"$line")
tiny_ratio=$(sed -n 's/.*tiny_ratio=\([0-9.]*\).*/\1/p' <<<"$line")
full_ratio=$(sed -n 's/.*full_ratio=\([0-9.]*\).*/\1/p' <<<"$line")
echo "per-call server time, median of $rounds rounds (none,tiny,full of every round, us: $(sed -n 's/.*all=//p' <<<"$line"))"
echo "  no shadow:               $none us/call"
echo "  shadow set, sample 1e-4: $tiny us/call  (median ratio to no shadow within a round: ${tiny_ratio}x)"
echo "  shadow set, sample 1.0:  $full us/call  (median ratio to no shadow within a round: ${full_ratio}x)"
echo "  $(sed -n 's/.*\(sampled=[0-9]* logged=[0-9]* errors=[0-9]*\).*/\1/p' <<<"$line") (this session's counters; the log rows were rolled back)"
if [ -n "${RECSYS_SHADOW_RESULTS:-}" ]; then
    { echo "shadow_none_us $none"; echo "shadow_tiny_us $tiny"; echo "shadow_full_us $full"
      echo "shadow_tiny_ratio $tiny_ratio"; echo "shadow_full_ratio $full_ratio"; } >>"$RECSYS_SHADOW_RESULTS"
fi
