#!/usr/bin/env bash
# A full refresh through one SQL call with parallel workers (recsys.parallel_workers) against
# the core scoring loop times the cores, measured in one run on the same weights:
#   (b) build/lstm_scoring_bench's best LSTM forward rate, one thread (the core loop)
#   refresh_recommendations('bench') with recsys.parallel_workers = 0 (one core)
#   refresh_recommendations('bench') with the default (-1: one worker per further CPU)
# and prints "full refresh through one SQL call, all cores" / ((b) x cores), and the same three
# per CPU second (what a loaded, shared machine can still compare).
#
#   bash bench/parallel_refresh.sh
#
# Knobs: RECSYS_BENCH_CUSTOMERS (default 200000), RECSYS_BENCH_PORT (default 55470), PGBIN
# (default /usr/lib/postgresql/15/bin; the recsys extension must be installed there, e.g.
# make -f Makefile.pgxs install PG_CONFIG=...), RECSYS_BENCH_KEEP=1 (keep the work directory).
# Needs build/lstm_scoring_bench (cmake --build build --target lstm_scoring_bench) and Debian's
# python3-torch (the weights come from bench/torch_reference.py, as in bench/run_all.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

N=${RECSYS_BENCH_CUSTOMERS:-200000}
PORT=${RECSYS_BENCH_PORT:-55470}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1
cpus=$(nproc)

work=$(mktemp -d /tmp/recsys_parallel_bench.XXXXXX)
chmod 755 "$work"
pgdir=$work/pg
cleanup() {
    local rc=$?
    PGBIN=$PGBIN bash "$root/scripts/pg_cluster.sh" stop "$pgdir" || true
    if [ "${RECSYS_BENCH_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
now() { date +%s.%N; }
elapsed() { $PY -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
psql_() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$pgdir" -p "$PORT" -U postgres -d postgres "$@"; }
DSN="host=$pgdir port=$PORT user=postgres dbname=postgres"

echo "parallel refresh benchmark: $N customers, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1), $cpus CPUs, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
PGBIN=$PGBIN bash scripts/pg_cluster.sh start "$pgdir" "$PORT"
psql_ -c "CREATE EXTENSION recsys"
psql_ -v schema=santander -f sql/santander_loader.sql >/dev/null
half=$(((N + 1) / 2))
for w in 0 1; do
    lo=$((w * half)); hi=$(((w + 1) * half)); [ $hi -gt $N ] && hi=$N
    psql_ -c "INSERT INTO santander.snapshots SELECT * FROM recsys.generate_santander($((hi - lo)), first_customer => $lo)" &
done
wait
psql_ -c "VACUUM ANALYZE santander.snapshots"
psql_ -At -c "SELECT recsys.register_model('bench_spec', recsys.untrained_model('santander.snapshots'))" >/dev/null
mkdir -p "$work/model"
$PY bench/torch_reference.py export --dsn "$DSN" --spec-model bench_spec --out "$work/model" >/dev/null


# CPU seconds of the postmaster's exited children (Linux /proc): the refresh's backend and its
# parallel workers once they have exited. On a loaded machine wall-clock rates say little; the
# CPU seconds a refresh costs still compare with the core loop's.
children_cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($16 + $17) / hz}' "/proc/$(head -n1 "$pgdir/data/postmaster.pid")/stat"; }
refresh() {  # $1: recsys.parallel_workers; prints "customers/s customers-per-CPU-second"
    local t0 t1 n c0 c1
    psql_ -c "DELETE FROM recsys.recommendations" -c "VACUUM recsys.recommendations" >/dev/null
    sleep 1
    c0=$(children_cpu_s)
    t0=$(now)
    n=$(PGOPTIONS="-c recsys.parallel_workers=$1" psql_ -At -c "SELECT recsys.refresh_recommendations('bench')")
    t1=$(now)
    sleep 1
    c1=$(children_cpu_s)
    echo "refresh_recommendations('bench'), recsys.parallel_workers = $1: $n customers in $(elapsed "$t0" "$t1") s, $($PY -c "print(f'{$c1 - $c0:.1f}')") CPU s (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    $PY -c "print(f'{$n / ($t1 - $t0):.1f} {$n / max($c1 - $c0, 0.01):.1f}')"
}
read -r serial serial_cpu < <(refresh 0)
read -r parallel parallel_cpu < <(refresh -1)
RECSYS_BENCH_MODEL=$work/model/bench_v1.rsm build/lstm_scoring_bench --benchmark_filter='BM_LstmForward' \
    --benchmark_min_time=1 --benchmark_format=console --benchmark_out_format=json --benchmark_out="$work/gbench.json"
b_best=$($PY bench/bench_util.py gbench "$work/gbench.json" | sed -n 's/^b_best //p')
# The best batch's customers per CPU second (google-benchmark's cpu_time against real_time).
b_cpu=$($PY -c "
import json, sys
runs = [b for b in json.load(open(sys.argv[1]))['benchmarks'] if b['name'].startswith('BM_LstmForward')]
best = max(runs, key=lambda b: b['customers_per_s'])
print(best['customers_per_s'] * best['real_time'] / best['cpu_time'])" "$work/gbench.json")
$PY - "$b_best" "$cpus" "$serial" "$parallel" "$b_cpu" "$serial_cpu" "$parallel_cpu" <<'EOF'
import sys
b, cpus, serial, parallel = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
b_cpu, serial_cpu, parallel_cpu = map(float, sys.argv[5:8])
print("| measure | value | reference | ratio |")
print("|---|---|---|---|")
print(f"| (b) core LSTM loop, best batch, 1 thread | {b:,.0f} cust/s | | |")
print(f"| refresh through one SQL call, recsys.parallel_workers = 0 | {serial:,.0f} cust/s | {b:,.0f} cust/s ((b) x 1 core) | {serial / b:.2f}x |")
print(f"| full refresh through one SQL call, all cores | {parallel:,.0f} cust/s | {b * cpus:,.0f} cust/s ((b) x {cpus} cores) | {parallel / (b * cpus):.2f}x |")
print(f"| all cores / 0 workers | | | {parallel / serial:.2f}x |")
print(f"| per CPU second: (b) core loop | {b_cpu:,.0f} cust/CPU-s | | |")
print(f"| per CPU second: refresh, 0 workers | {serial_cpu:,.0f} cust/CPU-s | {b_cpu:,.0f} ((b)) | {serial_cpu / b_cpu:.2f}x |")
print(f"| per CPU second: refresh, all cores | {parallel_cpu:,.0f} cust/CPU-s | {b_cpu:,.0f} ((b)) | {parallel_cpu / b_cpu:.2f}x |")
EOF
