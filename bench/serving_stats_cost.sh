#!/usr/bin/env bash
# What keeping recsys.serving_stats costs a recommend() call. A benchmark, not a test: it prints
# figures and checks nothing.
#
#   PGHOST=... PGPORT=... PGUSER=postgres bash bench/serving_stats_cost.sh
#
# Server time per call, measured as bench/run_all.sh measures recommend(): a DO block calls
# recommend() for RECSYS_BENCH_CALLS random customers (default 1000) and takes clock_timestamp()
# deltas, with recsys.serving_stats on and off in turn over the same ids, RECSYS_BENCH_ROUNDS
# times (default 61; the order alternates between rounds). Short rounds, paired: a load that
# drifts over seconds (a shared machine) weighs on both modes of a round alike. Printed: the
# median per mode, and the median over rounds of the on/off ratio and of the difference in
# microseconds per call, for each model measured, with the spread of the differences: a
# difference within it is noise. The same in the backend's CPU time (/proc/self/schedstat, which
# leaves out waits for a CPU on a loaded machine), where Linux provides it.
#
# Needs a running cluster with recsys preloaded (shared_preload_libraries = 'recsys'; otherwise
# nothing is counted and it says so) and a superuser (recsys.serving_stats is PGC_SUSET). By
# default it creates and drops the database recsys_stats_bench with RECSYS_BENCH_CUSTOMERS
# customers (default 20000, 17 months each) and two untrained models: the reference shape
# (window 16, hidden 128) and a tiny one (window 3, hidden 4), whose call is cheap enough for the
# statistics' share to show. To measure an existing model instead (bench/run_all.sh does), set
# RECSYS_STATS_DB, RECSYS_STATS_MODEL and RECSYS_STATS_IDS ("first_id last_id").
# RECSYS_BENCH_VERBOSE=1 prints every round's figures.
set -euo pipefail

calls=${RECSYS_BENCH_CALLS:-1000}
rounds=${RECSYS_BENCH_ROUNDS:-61}
customers=${RECSYS_BENCH_CUSTOMERS:-20000}
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

if [ -n "${RECSYS_STATS_DB:-}" ]; then
    db=$RECSYS_STATS_DB
    models=${RECSYS_STATS_MODEL:?set RECSYS_STATS_MODEL}
    read -r first_id last_id <<<"${RECSYS_STATS_IDS:?set RECSYS_STATS_IDS}"
else
    db=recsys_stats_bench
    models="stats_reference stats_tiny"
    first_id=15889  # recsys.generate_santander's first customer id
    last_id=$((first_id + customers - 1))
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
    trap '"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
    bench_snapshot_database "$customers" <<SQL
SELECT recsys.promote('stats_reference', recsys.register_model('stats_reference', recsys.untrained_model('bench.snapshots')),
                      force => true, reason => 'benchmark fixture');
SELECT recsys.promote('stats_tiny', recsys.register_model('stats_tiny',
                          recsys.untrained_model('bench.snapshots', window_months => 3, hidden => 4)),
                      force => true, reason => 'benchmark fixture');
SQL
fi

preloaded=$("${PSQL[@]}" -d "$db" -At -c "SELECT 'recsys' = ANY(string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))")
[ "$preloaded" = t ] || echo "warning: recsys is not in shared_preload_libraries: nothing is counted, on and off cost the same" >&2

for model in $models; do
    echo "serving statistics cost: model $model, $calls calls x $rounds rounds (on and off each), ids $first_id..$last_id"
    # The figures leave as a NOTICE.
    out=$("${PSQL[@]}" -d "$db" 2>&1 <<SQL
DO \$\$
DECLARE
    ids      bigint[] := ARRAY(SELECT $first_id + floor(random() * ($last_id - $first_id + 1))::bigint
                                 FROM generate_series(1, $calls));
    t_on     double precision[] := '{}';
    t_off    double precision[] := '{}';
    c_on     double precision[] := '{}';
    c_off    double precision[] := '{}';
    t0       timestamptz;
    c0       bigint;
    cpu      boolean := true;
    r        text[];
    counted0 bigint;
    counted1 bigint;
    mode_    text;
BEGIN
    -- The model parsed and cached, the ids' pages read, before timing.
    FOR i IN 1 .. $calls LOOP
        r := recsys.recommend(ids[i], 7, '$model');
    END LOOP;
    SELECT coalesce(sum(calls), 0) INTO counted0 FROM recsys.serving_stats WHERE model = '$model';
    -- The backend's own CPU time (Linux: nanoseconds on a CPU, /proc/self/schedstat) leaves out the
    -- time it waited for one, which the wall clock of a shared machine does not.
    BEGIN
        PERFORM split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint;
    EXCEPTION WHEN OTHERS THEN
        cpu := false;
    END;
    FOR rnd IN 1 .. $rounds LOOP
        FOREACH mode_ IN ARRAY CASE WHEN rnd % 2 = 1 THEN ARRAY['on', 'off'] ELSE ARRAY['off', 'on'] END LOOP
            PERFORM set_config('recsys.serving_stats', mode_, true);
            IF cpu THEN c0 := split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint; END IF;
            t0 := clock_timestamp();
            FOR i IN 1 .. $calls LOOP
                r := recsys.recommend(ids[i], 7, '$model');
            END LOOP;
            IF mode_ = 'on' THEN
                t_on := t_on || extract(epoch FROM clock_timestamp() - t0) * 1e6 / $calls;
                IF cpu THEN c_on := c_on || (split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint - c0) / 1e3 / $calls; END IF;
            ELSE
                t_off := t_off || extract(epoch FROM clock_timestamp() - t0) * 1e6 / $calls;
                IF cpu THEN c_off := c_off || (split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint - c0) / 1e3 / $calls; END IF;
            END IF;
        END LOOP;
    END LOOP;
    PERFORM set_config('recsys.serving_stats', 'on', true);
    SELECT coalesce(sum(calls), 0) INTO counted1 FROM recsys.serving_stats WHERE model = '$model';
    RAISE NOTICE 'stats_bench on=% off=% ratio=% diff_us=% spread_us=% counted=% expected=% cpu_on=% cpu_off=% cpu_ratio=% cpu_diff_us=% cpu_spread_us=% rounds_on=% rounds_off=%',
        (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t)::numeric, 2) FROM unnest(t_on) t),
        (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t)::numeric, 2) FROM unnest(t_off) t),
        (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY a / b)::numeric, 4) FROM unnest(t_on, t_off) u(a, b)),
        (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY a - b)::numeric, 3) FROM unnest(t_on, t_off) u(a, b)),
        -- the spread of the per-round differences: their interquartile range
        (SELECT round((percentile_cont(0.75) WITHIN GROUP (ORDER BY a - b)
                     - percentile_cont(0.25) WITHIN GROUP (ORDER BY a - b))::numeric, 3) FROM unnest(t_on, t_off) u(a, b)),
        counted1 - counted0, $calls * $rounds,
        coalesce((SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t)::numeric, 2) FROM unnest(c_on) t)::text, 'n/a'),
        coalesce((SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t)::numeric, 2) FROM unnest(c_off) t)::text, 'n/a'),
        coalesce((SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY a / b)::numeric, 4) FROM unnest(c_on, c_off) u(a, b))::text, 'n/a'),
        coalesce((SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY a - b)::numeric, 3) FROM unnest(c_on, c_off) u(a, b))::text, 'n/a'),
        coalesce((SELECT round((percentile_cont(0.75) WITHIN GROUP (ORDER BY a - b)
                     - percentile_cont(0.25) WITHIN GROUP (ORDER BY a - b))::numeric, 3) FROM unnest(c_on, c_off) u(a, b))::text, 'n/a'),
        array_to_string(ARRAY(SELECT round(t::numeric, 2) FROM unnest(t_on) t), ','),
        array_to_string(ARRAY(SELECT round(t::numeric, 2) FROM unnest(t_off) t), ',');
END
\$\$;
SQL
    ) || { echo "$out" >&2; exit 1; }
    line=$(sed -n 's/.*NOTICE:  stats_bench //p' <<<"$out")
    [ -n "$line" ] || { echo "$out" >&2; exit 1; }
    field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$line"; }
    echo "  per-call server time, median of $rounds rounds: on $(field on) us, off $(field off) us"
    echo "  on/off ratio (median within a round): $(field ratio)x; on - off: $(field diff_us) us/call (interquartile range of the rounds' differences: $(field spread_us) us)"
    echo "  backend CPU time per call (no run-queue waits), median: on $(field cpu_on) us, off $(field cpu_off) us; ratio $(field cpu_ratio)x; on - off: $(field cpu_diff_us) us/call (interquartile range $(field cpu_spread_us) us)"
    echo "  calls counted while on: $(field counted) of $(field expected); load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
    [ -z "${RECSYS_BENCH_VERBOSE:-}" ] || echo "  rounds on: $(field rounds_on); off: $(field rounds_off)"
    if [ -n "${RECSYS_STATS_RESULTS:-}" ]; then
        { echo "stats_${model}_on_us $(field on)"; echo "stats_${model}_off_us $(field off)"
          echo "stats_${model}_ratio $(field ratio)"; echo "stats_${model}_diff_us $(field diff_us)"
          echo "stats_${model}_cpu_ratio $(field cpu_ratio)"; echo "stats_${model}_cpu_diff_us $(field cpu_diff_us)"; } >>"$RECSYS_STATS_RESULTS"
    fi
done
