#!/usr/bin/env bash
# recommend()'s server time against the bare fetch of a customer's 17 latest snapshot rows, in the
# same DO loop (the issue's target: within 3x), for a from-start model scoring from stored states,
# the same model without stored states (full history), and a sliding-window model. A benchmark,
# not a test: it prints figures and checks nothing but the path counters.
#
#   PGHOST=... PGPORT=... PGUSER=postgres bash bench/online_state_cost.sh
#
# Rounds (RECSYS_BENCH_ROUNDS, default 15) of RECSYS_BENCH_CALLS calls (default 2000) per mode
# over the same random ids, the modes in a rotating order; printed: the median per mode of the
# server time per call (clock_timestamp deltas) and of the backend's CPU time per call
# (/proc/self/schedstat: leaves out waits for a CPU on a loaded machine), and the median within a
# round of each mode's ratio to the bare fetch. By default it creates and drops the database
# recsys_online_bench with RECSYS_BENCH_CUSTOMERS customers (default 50000, 17 months each), a
# sliding-window model (window 16, hidden 128) and two from-start models (window 17, hidden 128):
# online_bench_fs with every customer's state (rebuild_states), online_bench_full without any.
# To measure an existing database instead (bench/run_all.sh
# does), set RECSYS_ONLINE_DB, RECSYS_ONLINE_RELATION (its snapshots), RECSYS_ONLINE_SLIDING (a
# sliding-window model there) and RECSYS_ONLINE_IDS ("first_id last_id"); the from-start models
# are registered there, and their states are deleted at the end. With RECSYS_ONLINE_PGBENCH_SECONDS
# set, it also runs pgbench ($PGBIN/pgbench, -M prepared, 2 clients) for that many seconds on
# recommend() from stored states and on the bare fetch, and prints both TPS and their ratio
# (the issue's target: at least 0.75).
set -euo pipefail

calls=${RECSYS_BENCH_CALLS:-2000}
rounds=${RECSYS_BENCH_ROUNDS:-15}
customers=${RECSYS_BENCH_CUSTOMERS:-50000}
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"

if [ -n "${RECSYS_ONLINE_DB:-}" ]; then
    db=$RECSYS_ONLINE_DB
    relation=${RECSYS_ONLINE_RELATION:?set RECSYS_ONLINE_RELATION}
    sliding=${RECSYS_ONLINE_SLIDING:?set RECSYS_ONLINE_SLIDING}
    read -r first_id last_id <<<"${RECSYS_ONLINE_IDS:?set RECSYS_ONLINE_IDS}"
    trap '"${PSQL[@]}" -d "$db" -c "DELETE FROM recsys.customer_states WHERE model_name = '"'"'online_bench_fs'"'"'" >/dev/null 2>&1 || true' EXIT
else
    db=recsys_online_bench
    relation=bench.snapshots
    sliding=online_bench_sliding
    first_id=15889  # recsys.generate_santander's first customer id
    last_id=$((first_id + customers - 1))
    trap '"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
    bench_snapshot_database "$customers" <<SQL
SELECT recsys.promote('$sliding', recsys.register_model('$sliding', recsys.untrained_model('bench.snapshots')),
                      force => true, reason => 'benchmark fixture');
SQL
fi
first_month=$("${PSQL[@]}" -d "$db" -At -c "SELECT min(fecha_dato) FROM $relation")
"${PSQL[@]}" -d "$db" -o /dev/null <<SQL
SET client_min_messages = warning;
SELECT recsys.promote('online_bench_fs', recsys.register_model('online_bench_fs',
           recsys.untrained_model('$relation', window_months => 17, start_month => '$first_month')),
       force => true, reason => 'benchmark fixture');
SELECT recsys.promote('online_bench_full', recsys.register_model('online_bench_full',
           recsys.untrained_model('$relation', window_months => 17, start_month => '$first_month')),
       force => true, reason => 'benchmark fixture');
SELECT recsys.rebuild_states('online_bench_fs');
SQL

echo "online path: $calls calls x $rounds rounds per mode, ids $first_id..$last_id of $relation"
out=$("${PSQL[@]}" -d "$db" 2>&1 <<SQL
CREATE TEMP TABLE t (mode text, rnd int, wall_us float8, cpu_us float8);
DO \$\$
DECLARE
    ids   bigint[] := ARRAY(SELECT $first_id + floor(random() * ($last_id - $first_id + 1))::bigint
                              FROM generate_series(1, $calls));
    modes text[] := ARRAY['bare', 'state', 'full', 'sliding'];
    m     text;
    t0    timestamptz;
    c0    bigint;
    cpu   boolean := true;
    r     text[];
BEGIN
    BEGIN
        PERFORM split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint;
    EXCEPTION WHEN OTHERS THEN
        cpu := false;
    END;
    -- Models parsed and cached, the ids' pages read, before timing.
    FOR i IN 1 .. $calls LOOP
        r := recsys.recommend(ids[i], 7, 'online_bench_fs');
        r := recsys.recommend(ids[i], 7, 'online_bench_full');
        r := recsys.recommend(ids[i], 7, '$sliding');
    END LOOP;
    FOR rnd IN 1 .. $rounds LOOP
        FOR j IN 0 .. 3 LOOP
            m := modes[1 + (j + rnd) % 4];
            IF cpu THEN c0 := split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint; END IF;
            t0 := clock_timestamp();
            IF m = 'bare' THEN
                FOR i IN 1 .. $calls LOOP
                    PERFORM * FROM $relation WHERE ncodpers = ids[i] ORDER BY fecha_dato DESC LIMIT 17;
                END LOOP;
            ELSIF m = 'sliding' THEN
                FOR i IN 1 .. $calls LOOP
                    r := recsys.recommend(ids[i], 7, '$sliding');
                END LOOP;
            ELSIF m = 'full' THEN
                FOR i IN 1 .. $calls LOOP
                    r := recsys.recommend(ids[i], 7, 'online_bench_full');
                END LOOP;
            ELSE
                FOR i IN 1 .. $calls LOOP
                    r := recsys.recommend(ids[i], 7, 'online_bench_fs');
                END LOOP;
            END IF;
            INSERT INTO t VALUES (m, rnd, extract(epoch FROM clock_timestamp() - t0) * 1e6 / $calls,
                                  CASE WHEN cpu THEN (split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint - c0) / 1e3 / $calls END);
        END LOOP;
    END LOOP;
END
\$\$;
SELECT 'online_bench ' || string_agg(format('%s_us=%s %s_cpu_us=%s %s_ratio=%s %s_cpu_ratio=%s', mode,
           round(wall::numeric, 1), mode, coalesce(round(cpu::numeric, 1)::text, 'n/a'),
           mode, round(ratio::numeric, 2), mode, coalesce(round(cpu_ratio::numeric, 2)::text, 'n/a')), ' ')
  FROM (SELECT a.mode, percentile_cont(0.5) WITHIN GROUP (ORDER BY a.wall_us) AS wall,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.cpu_us) AS cpu,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.wall_us / b.wall_us) AS ratio,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.cpu_us / b.cpu_us) AS cpu_ratio
          FROM t a JOIN t b ON b.rnd = a.rnd AND b.mode = 'bare' GROUP BY a.mode) s;
SELECT 'online_paths ' || string_agg(format('%s: stored=%s full=%s', model, s, f), ', ' ORDER BY model)
  FROM (SELECT model, sum(from_stored_state) s, sum(from_full_history) f FROM recsys.serving_stats
         WHERE model IN ('online_bench_fs', 'online_bench_full') GROUP BY model) x;
SQL
) || { echo "$out" >&2; exit 1; }
line=$(sed -n 's/^ *online_bench //p' <<<"$out")
paths=$(sed -n 's/^ *online_paths //p' <<<"$out")
[ -n "$line" ] || { echo "$out" >&2; exit 1; }
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$line"; }
echo "  bare 17-row fetch: $(field bare_us) us/call (CPU $(field bare_cpu_us) us)"
for m in state full sliding; do
    echo "  recommend() $m: $(field ${m}_us) us/call (CPU $(field ${m}_cpu_us) us); ratio to the bare fetch $(field ${m}_ratio)x (CPU $(field ${m}_cpu_ratio)x)"
done
echo "  path counters (recsys.serving_stats): $paths"
if [ -n "${RECSYS_ONLINE_RESULTS:-}" ]; then
    for m in bare state full sliding; do
        echo "online_${m}_us $(field ${m}_us)" >>"$RECSYS_ONLINE_RESULTS"
        echo "online_${m}_ratio $(field ${m}_ratio)" >>"$RECSYS_ONLINE_RESULTS"
    done
fi

if [ -n "${RECSYS_ONLINE_PGBENCH_SECONDS:-}" ]; then
    pgbench=${PGBIN:-/usr/lib/postgresql/15/bin}/pgbench
    dir=$(mktemp -d)
    printf '\\set id random(%s, %s)\nSELECT recsys.recommend(:id, 7, %s);\n' "$first_id" "$last_id" "'online_bench_fs'" >"$dir/state.sql"
    printf '\\set id random(%s, %s)\nSELECT * FROM %s WHERE ncodpers = :id ORDER BY fecha_dato DESC LIMIT 17;\n' \
        "$first_id" "$last_id" "$relation" >"$dir/bare.sql"
    tps() { "$pgbench" -n -M prepared -T "$RECSYS_ONLINE_PGBENCH_SECONDS" -c 2 -j 2 -f "$1" "$db" 2>&1 |
                sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p'; }
    t_state=$(tps "$dir/state.sql")
    t_bare=$(tps "$dir/bare.sql")
    rm -rf "$dir"
    echo "  pgbench, 2 clients, ${RECSYS_ONLINE_PGBENCH_SECONDS} s each: recommend() from stored states $t_state tps, bare fetch $t_bare tps, ratio $(awk -v a="$t_state" -v b="$t_bare" 'BEGIN { printf "%.2f", a / b }')"
    if [ -n "${RECSYS_ONLINE_RESULTS:-}" ]; then
        echo "online_state_c2_tps $t_state" >>"$RECSYS_ONLINE_RESULTS"
        echo "online_bare_c2_tps $t_bare" >>"$RECSYS_ONLINE_RESULTS"
    fi
fi
