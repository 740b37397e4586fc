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
chmod a+r "$work/model.hex"   # read by the servers (pg_read_file), which run as postgres
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
chmod a+r "$work/ids.txt"
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

# The same in CPU time, which a loaded machine disturbs far less than latency: a DO loop of
# RECSYS_BENCH_CALLS calls (default 500, the same random ids in every mode: setseed) in one
# session, reading the backend's own /proc/self/schedstat (run time in ns) before and after; for
# the proxy modes also the shard backend that PL/Proxy's connection runs on (/proc/PID/schedstat
# read on the shard). Overhead = proxy backend + its shard backend - the direct call.
calls=${RECSYS_BENCH_CALLS:-500}
# Writes the CPU time (ns) of PL/Proxy's backend on shard 0 to $1; "find" first looks it up (the
# newest client backend there other than this one's).
cat >"$work/shard_cpu.sh" <<EOF
#!/bin/sh
q() { "$PGBIN/psql" -XAtq -U postgres -h "${shard_dirs[0]}" -p "${ports[0]}" -d recsys_shard -c "\$1"; }
[ "\$2" = find ] && q "SELECT pid FROM pg_stat_activity WHERE datname = 'recsys_shard' AND backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY backend_start DESC LIMIT 1" >"$work/pid.txt"
q "SELECT split_part(pg_read_file('/proc/' || \$(cat "$work/pid.txt") || '/schedstat'), ' ', 1)" >"\$1"
EOF
cpu_round() {  # MODE -> "own_cpu_us shard_cpu_us wall_us" per call
    local call out
    case "$1" in
        direct) call="recsys.recommend(id)" ;;
        plproxy) call="recsys_proxy.shard_recommend(id, 7, 'default', 1)" ;;
        proxy) call="recsys_proxy.recommend(id)" ;;
    esac
    {
        echo "SELECT $call FROM bench_ids WHERE n = 1;"   # warm: model cached, PL/Proxy connected
        if [ "$1" != direct ]; then echo "\\! sh $work/shard_cpu.sh $work/shard_c0.txt find"; fi
        echo "SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint AS c0, clock_timestamp() AS t0 \\gset"
        # The id drawn first: random() in the WHERE clause would make it a sequential scan.
        echo "DO \$\$ DECLARE x text[]; j bigint; BEGIN PERFORM setseed(0.42);"
        echo "  FOR i IN 1..$calls LOOP j := 1 + floor(random() * $nids)::bigint;"
        echo "    SELECT $call INTO x FROM bench_ids WHERE n = j; END LOOP; END \$\$;"
        echo "SELECT (split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint - :c0) / $calls / 1000.0,"
        echo "       extract(epoch FROM clock_timestamp() - :'t0') * 1e6 / $calls;"
        if [ "$1" != direct ]; then echo "\\! sh $work/shard_cpu.sh $work/shard_c1.txt"; fi
    } >"$work/round.sql"
    if [ "$1" = direct ]; then
        out=$(qs 0 -F ' ' -f "$work/round.sql" | tail -n 1)
        echo "$out 0 0"
    else
        out=$(qp -F ' ' -f "$work/round.sql" | tail -n 1)
        echo "$out $(cat "$work/shard_c0.txt") $(cat "$work/shard_c1.txt")"
    fi | awk -v n="$calls" '{ printf "%.1f %.1f %.1f\n", $1, ($4 - $3) / n / 1000, $2 }'
}
: >"$work/cpu.txt"
for r in $(seq 1 "$rounds"); do
    line=""
    for i in 0 1 2; do
        m=${modes[$(((i + r) % 3))]}
        read -r own shard wall <<<"$(cpu_round "$m")"
        line="$line $m=$own+$shard wall_$m=$wall"
        echo "$m $own $shard $wall" >>"$work/cpu.txt"
    done
    echo "cpu round $r ($calls calls; us/call, own+shard backend):$line"
done
cpu_field() { awk -v m="$1" -v f="$2" '$1 == m { print $f }' "$work/cpu.txt" | median; }
cpu_total() { awk -v m="$1" '$1 == m { print $2 + $3 }' "$work/cpu.txt" | median; }
direct_cpu=$(cpu_total direct)
plproxy_cpu=$(cpu_total plproxy)
proxy_cpu=$(cpu_total proxy)
proxy_own=$(cpu_field proxy 2)
plproxy_own=$(cpu_field plproxy 2)
cpu_over_proxy=$(awk -v a="$proxy_cpu" -v b="$direct_cpu" 'BEGIN { printf "%.1f", a - b }')
cpu_over_plproxy=$(awk -v a="$plproxy_cpu" -v b="$direct_cpu" 'BEGIN { printf "%.1f", a - b }')

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
printf '| CPU per recommend() call through recsys_proxy.recommend (proxy backend %s us + shard backend), DO loop | %s us | %s us (direct on the shard) | +%s us/call |\n' \
    "$proxy_own" "$proxy_cpu" "$direct_cpu" "$cpu_over_proxy"
printf '| CPU per recommend() call through the bare PL/Proxy function (proxy backend %s us + shard backend), DO loop | %s us | %s us (direct on the shard) | +%s us/call |\n' \
    "$plproxy_own" "$plproxy_cpu" "$direct_cpu" "$cpu_over_plproxy"
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
        echo "plproxy_cpu_direct_us $direct_cpu"
        echo "plproxy_cpu_proxy_us $proxy_cpu"
        echo "plproxy_cpu_overhead_us $cpu_over_proxy"
        echo "plproxy_refresh_sharded_s $refresh_sharded"
        echo "plproxy_refresh_single_s $refresh_single"
    } >>"$RECSYS_PLPROXY_RESULTS"
fi
