#!/usr/bin/env bash
# What the PL/Proxy layer costs (docs/scale-out.md, "Sharding with PL/Proxy"). A benchmark, not a
# test: it prints figures and checks nothing.
#
#   bash bench/plproxy_bench.sh        (as root or postgres; PGBIN as for scripts/pg_cluster.sh)
#
# Builds the two-shard set-up of the sharding test (scripts/shard_clusters.sh: a proxy cluster with
# a single-node reference database beside it, two shard clusters) on RECSYS_PLPROXY_PORT (default
# 55470) .. +2 with RECSYS_BENCH_CUSTOMERS customers (default 20000, 17 months), an untrained model
# of the reference shape (window 16, hidden 128) registered and promoted through the proxy and on
# the reference, then measures:
#   - one recommend() call, from a pgbench client (1 client, -M prepared, RECSYS_BENCH_SECONDS
#     seconds a round, default 5), over shard 0's customers: direct on shard 0
#     (recsys.recommend), through the proxy's bare PL/Proxy function (recsys_proxy.shard_recommend
#     with the version given) and through recsys_proxy.recommend (the pin looked up on the proxy),
#     in RECSYS_BENCH_ROUNDS rounds (default 5) whose order rotates; printed: the median latency
#     per mode and the median over rounds of the difference to direct (the proxy's overhead);
#   - refresh_recommendations(): through the proxy (both shards at once, each its half) against
#     the single server with every customer, 3 rounds alternating; median seconds.
# On a 2-core machine all three clusters and the client share the cores: these figures show the
# proxy's overhead and that it works, not scaling (which needs a machine per shard).
# RECSYS_PLPROXY_RESULTS=FILE appends "key value" lines for bench/run_all.sh's table.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
port=${RECSYS_PLPROXY_PORT:-55470}
customers=${RECSYS_BENCH_CUSTOMERS:-20000}
secs=${RECSYS_BENCH_SECONDS:-5}
rounds=${RECSYS_BENCH_ROUNDS:-5}
export OPENBLAS_NUM_THREADS=1 PGUSER=postgres PGOPTIONS="-c client_min_messages=warning"

work=$(mktemp -d /tmp/recsys-plproxy-bench.XXXXXX)
chmod 755 "$work"
# shellcheck source=scripts/shard_clusters.sh
. "$ROOT/scripts/shard_clusters.sh"
cleanup() {
    shard_clusters_stop
    rm -rf "$work"
}
trap cleanup EXIT
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

cpu_model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)
echo "PL/Proxy benchmark: $customers customers x 17 months, 2 shards, $(date -u '+%Y-%m-%d %H:%M UTC'), $cpu_model, $(nproc) CPUs"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
shard_clusters_start "$work" "$port" "$customers" >"$work/setup.log" 2>&1 || { cat "$work/setup.log"; exit 1; }
qr -c "SELECT encode(recsys.untrained_model('santander.snapshots', window_months => 16, hidden => 128, seed => 1), 'hex')" \
    >"$work/model.hex"
qr -c "SELECT recsys.register_model('default', decode(pg_read_file('$work/model.hex'), 'hex'))" \
   -c "SELECT recsys.promote('default', 1, force => true, reason => 'benchmark')" >/dev/null
qp -c "CALL recsys_proxy.register_model('default', decode(pg_read_file('$work/model.hex'), 'hex'))" \
   -c "CALL recsys_proxy.promote('default', 1, force => true, reason => 'benchmark')" >/dev/null
echo "set up in $(($(date +%s) - t0)) s: $(qs 0 -c "SELECT count(DISTINCT ncodpers) FROM santander.snapshots") customers on shard 0, $(qs 1 -c "SELECT count(DISTINCT ncodpers) FROM santander.snapshots") on shard 1"

# The same numbered list of shard 0's customers on the proxy and on shard 0, so that every mode
# does the same lookup besides its call.
qs 0 -c "CREATE TABLE bench_ids AS SELECT row_number() OVER (ORDER BY ncodpers) AS n, ncodpers AS id
          FROM (SELECT DISTINCT ncodpers FROM santander.snapshots) s" -c "ALTER TABLE bench_ids ADD PRIMARY KEY (n)"
qs 0 -c "COPY bench_ids TO STDOUT" >"$work/ids.txt"
qp -c "CREATE TABLE bench_ids (n bigint PRIMARY KEY, id bigint)" -c "COPY bench_ids FROM '$work/ids.txt'"
nids=$(wc -l <"$work/ids.txt")
cat >"$work/direct.sql" <<EOF
\set n random(1, $nids)
SELECT recsys.recommend(id) FROM bench_ids WHERE n = :n;
EOF
cat >"$work/plproxy.sql" <<EOF
\set n random(1, $nids)
SELECT recsys_proxy.shard_recommend(id, 7, 'default', 1) FROM bench_ids WHERE n = :n;
EOF
cat >"$work/proxy.sql" <<EOF
\set n random(1, $nids)
SELECT recsys_proxy.recommend(id) FROM bench_ids WHERE n = :n;
EOF
run_mode() {  # MODE -> average latency in ms of one pgbench round
    local host=$proxy_dir p=$port db=recsys_proxy
    if [ "$1" = direct ]; then host=${shard_dirs[0]} p=${ports[0]} db=recsys_shard; fi
    "$PGBIN/pgbench" -n -M prepared -c 1 -T "$secs" -h "$host" -p "$p" -d "$db" -f "$work/$1.sql" 2>&1 |
        grep -oP 'latency average = \K[0-9.]+'
}
modes=(direct plproxy proxy)
for m in "${modes[@]}"; do run_mode "$m" >/dev/null; done   # warm: model cached, connections open
: >"$work/rounds.txt"
for r in $(seq 1 "$rounds"); do
    line=""
    for i in 0 1 2; do
        m=${modes[$(((i + r) % 3))]}
        line="$line $m=$(run_mode "$m")"
    done
    echo "round $r:$line" | tee -a "$work/rounds.txt"
done
field() { grep -oP "(?<= )$1=\K[0-9.]+" "$work/rounds.txt"; }   # " proxy=", not "plproxy="
direct_ms=$(field direct | median)
plproxy_ms=$(field plproxy | median)
proxy_ms=$(field proxy | median)
diff_median() {  # MODE: median over rounds of (MODE - direct) in microseconds
    paste <(field "$1") <(field direct) | awk '{ printf "%.1f\n", ($1 - $2) * 1000 }' | median
}
plproxy_over_us=$(diff_median plproxy)
proxy_over_us=$(diff_median proxy)

# Refresh: through the proxy (two shards at once) against the single server, alternating.
: >"$work/refresh.txt"
for r in 1 2 3; do
    a=$(date +%s.%N); qp -c "SELECT recsys_proxy.refresh_recommendations()" >/dev/null; b=$(date +%s.%N)
    qr -c "SELECT recsys.refresh_recommendations()" >/dev/null; c=$(date +%s.%N)
    echo "$a $b $c" | awk '{ printf "sharded=%.3f single=%.3f\n", $2 - $1, $3 - $2 }' | tee -a "$work/refresh.txt"
done
refresh_sharded=$(grep -oP 'sharded=\K[0-9.]+' "$work/refresh.txt" | median)
refresh_single=$(grep -oP 'single=\K[0-9.]+' "$work/refresh.txt" | median)

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (at the start: $load_start)"
echo "| PL/Proxy, 2 shards on one $(nproc)-CPU machine ($cpu_model) | value | reference | ratio |"
echo "|---|---|---|---|"
printf '| recommend() through recsys_proxy.recommend (pin looked up on the proxy), 1 client | %s ms | %s ms (direct on the shard) | +%s us/call |\n' \
    "$proxy_ms" "$direct_ms" "$proxy_over_us"
printf '| recommend() through the bare PL/Proxy function (version given), 1 client | %s ms | %s ms (direct on the shard) | +%s us/call |\n' \
    "$plproxy_ms" "$direct_ms" "$plproxy_over_us"
printf '| refresh_recommendations(), %s customers: 2 shards at once through the proxy | %s s | %s s (one server, every customer) | %s |\n' \
    "$customers" "$refresh_sharded" "$refresh_single" "$(awk -v a="$refresh_sharded" -v b="$refresh_single" 'BEGIN { printf "%.2fx", a / b }')"
echo
echo "All clusters share this machine's $(nproc) CPUs: overhead and correctness, not scaling."
if [ -n "${RECSYS_PLPROXY_RESULTS:-}" ]; then
    {
        echo "plproxy_direct_ms $direct_ms"
        echo "plproxy_proxy_ms $proxy_ms"
        echo "plproxy_bare_ms $plproxy_ms"
        echo "plproxy_overhead_us $proxy_over_us"
        echo "plproxy_bare_overhead_us $plproxy_over_us"
        echo "plproxy_refresh_sharded_s $refresh_sharded"
        echo "plproxy_refresh_single_s $refresh_single"
    } >>"$RECSYS_PLPROXY_RESULTS"
fi
