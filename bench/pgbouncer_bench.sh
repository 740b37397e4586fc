#!/usr/bin/env bash
# recommend() at 64 clients through pgbouncer (transaction pooling) against 64 direct
# connections: TPS and p50 / p99 latency. A benchmark, not a test: it prints figures and checks
# nothing.
#
#   PGHOST=... PGPORT=... PGUSER=postgres bash bench/pgbouncer_bench.sh
#
# Each run is pgbench -n -M simple (pgbouncer 1.18 in transaction pooling does not keep
# protocol-level prepared statements, so both runs use the simple protocol) -c
# RECSYS_PGB_CLIENTS (default 64) -j 2 -T RECSYS_PGB_SECONDS (default 10) over one recommend()
# per transaction for random customers, with a per-transaction log for the percentiles
# (bench/bench_util.py). The direct run holds 64 backends (max_connections: scripts/pg_cluster.sh
# sets 120); the pooled run holds RECSYS_PGB_POOL of them (default 8, pgbouncer's
# default_pool_size): the 64 clients queue in pgbouncer for those. The two runs alternate
# RECSYS_PGB_ROUNDS times (default 1), pooled first. Also printed: the model parses and cache
# hits of the pooled run (recsys.serving_stats, when recsys is preloaded).
#
# pgbouncer is started privately (scripts/pgbouncer.sh) on port RECSYS_PGB_PORT (default
# PGPORT + 30) in a temporary directory and stopped at the end. The cluster's socket directory
# is PGHOST. By default it creates and drops the database recsys_pgbouncer_bench with
# RECSYS_BENCH_CUSTOMERS customers (default 20000, 17 months each) and an untrained reference
# model (window 16, hidden 128). To measure an existing model (bench/run_all.sh does), set
# RECSYS_PGB_DB, RECSYS_PGB_MODEL and RECSYS_PGB_IDS ("first_id last_id"); RECSYS_PGB_RESULTS: a
# file to append "key value" lines to.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
: "${PGHOST:?set PGHOST to the cluster socket directory}" "${PGPORT:?set PGPORT}"
export PGUSER=${PGUSER:-postgres}
clients=${RECSYS_PGB_CLIENTS:-64}
secs=${RECSYS_PGB_SECONDS:-10}
pool=${RECSYS_PGB_POOL:-8}
rounds=${RECSYS_PGB_ROUNDS:-1}
bouncer_port=${RECSYS_PGB_PORT:-$((PGPORT + 30))}
customers=${RECSYS_BENCH_CUSTOMERS:-20000}
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

work=$(mktemp -d /tmp/recsys-pgbouncer-bench.XXXXXX)
chmod 755 "$work"
created_db=""
cleanup() {
    bash "$root/scripts/pgbouncer.sh" stop "$work/bouncer" >/dev/null 2>&1 || true
    if [ -n "$created_db" ]; then "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $created_db" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${RECSYS_PGB_DB:-}" ]; then
    db=$RECSYS_PGB_DB
    model=${RECSYS_PGB_MODEL:?set RECSYS_PGB_MODEL}
    read -r first_id last_id <<<"${RECSYS_PGB_IDS:?set RECSYS_PGB_IDS}"
else
    db=recsys_pgbouncer_bench
    model=pgbouncer_reference
    first_id=15889  # recsys.generate_santander's first customer id
    last_id=$((first_id + customers - 1))
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
    created_db=$db
    bench_snapshot_database "$customers" <<SQL
SELECT recsys.promote('$model', recsys.register_model('$model', recsys.untrained_model('bench.snapshots')),
                      force => true, reason => 'benchmark fixture');
SQL
fi
max_conn=$("${PSQL[@]}" -d "$db" -At -c "SHOW max_connections")
bash "$root/scripts/pgbouncer.sh" start "$work/bouncer" "$bouncer_port" "$PGHOST" "$PGPORT" "$pool"
cat >"$work/recommend.sql" <<EOF
\set id random($first_id, $last_id)
SELECT recsys.recommend(:id, 7, '$model');
EOF
echo "pgbench -n -M simple -c $clients -j 2 -T $secs, one recommend() per transaction, model '$model';" \
     "max_connections = $max_conn; pgbouncer pool_mode = transaction, default_pool_size = $pool"

run() {  # run NAME HOST PORT ROUND
    local name=$1 host=$2 port=$3 round=$4 out tps failed p50 p99 cnt
    mkdir -p "$work/log_${name}_$round"
    out=$(PGHOST=$host PGPORT=$port "$PGBIN/pgbench" -n -M simple -c "$clients" -j 2 -T "$secs" -f "$work/recommend.sql" \
          -l --log-prefix="$work/log_${name}_$round/pgbench" "$db" 2>&1) || { echo "$out"; return 1; }
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
    read -r p50 p99 cnt < <(/usr/bin/python3 "$root/bench/bench_util.py" pgbench-log "$work/log_${name}_$round/pgbench")
    printf '%-9s round %s: clients=%s tps=%s p50=%s ms p99=%s ms transactions=%s failed=%s\n' \
        "$name" "$round" "$clients" "$tps" "$p50" "$p99" "$cnt" "${failed:-0}"
    echo "$name $tps $p50 $p99" >>"$work/figures"
}
stats() {  # stats WHAT: the model parses and cache hits of the run just made
    "${PSQL[@]}" -d "$db" -At -c "SELECT '$1: ' || sum(calls) || ' recommend() calls, ' || max(model_loads) || ' model parses, '
                                         || max(cache_hits) || ' cache hits'
                                    FROM recsys.serving_stats WHERE entry_point = 'recommend' AND model = '$model'" 2>/dev/null || true
    "${PSQL[@]}" -d "$db" -c "SELECT recsys.serving_stats_reset()" >/dev/null 2>&1 || true
}
for round in $(seq "$rounds"); do
    "${PSQL[@]}" -d "$db" -c "SELECT recsys.serving_stats_reset()" >/dev/null 2>&1 || true
    run pgbouncer "$work/bouncer" "$bouncer_port" "$round"
    stats "  pooled run"
    run direct "$PGHOST" "$PGPORT" "$round"
    stats "  direct run"
done
# Medians over the rounds.
read -r b_tps b_p50 b_p99 d_tps d_p50 d_p99 < <(/usr/bin/python3 - "$work/figures" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = lambda name, i: statistics.median(float(r[i]) for r in rows if r[0] == name)
print(*(f"{med(n, i):.3f}" for n in ("pgbouncer", "direct") for i in (1, 2, 3)))
PY
)
echo "median: pgbouncer tps=$b_tps p50=$b_p50 ms p99=$b_p99 ms; direct tps=$d_tps p50=$d_p50 ms p99=$d_p99 ms"
if [ -n "${RECSYS_PGB_RESULTS:-}" ]; then
    {
        echo "pgbouncer_c${clients}_tps $b_tps"; echo "pgbouncer_c${clients}_p99_ms $b_p99"
        echo "direct_c${clients}_tps $d_tps"; echo "direct_c${clients}_p99_ms $d_p99"
        echo "pgbouncer_pool $pool"
    } >>"$RECSYS_PGB_RESULTS"
fi
