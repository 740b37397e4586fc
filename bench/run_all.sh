#!/usr/bin/env bash
# Every recsys benchmark in one command; prints figures (no thresholds), ending with a Markdown table.
#
#   bash bench/run_all.sh
#
# Knobs: RECSYS_BENCH_CUSTOMERS (default 1000000), RECSYS_BENCH_SECONDS (pgbench / HTTP load
# duration, default 20), RECSYS_BENCH_QUICK=1 (20000 customers, 5 s: for development),
# RECSYS_BENCH_PORT (default 55450), RECSYS_BENCH_KEEP=1 (keep the work directory).
#
# Builds (scripts/build.sh), starts a private cluster in a temporary directory, generates the
# data, exports a fixed-seed torch model (bench/torch_reference.py) registered and promoted as
# 'bench', then measures:
#   (a) full refresh through SQL: 1 connection without workers, 1 connection with parallel workers
#       (recsys.parallel_workers), and 2 sharded connections
#   (b) the core LSTM scoring loop alone, (d) the sgemm-bound rate (build/lstm_scoring_bench)
#   (c) torch on the same weights
#   (e) reduced precision: the core loop in fp32, bf16 and int8 (build/reduced_precision_bench)
#       and torch's quantize_dynamic on the same weights (bench/reduced_precision_torch.py)
#   the training step against torch's (same batches, weights, loss, clipping, Adam; bench/training_vs_torch.sh)
#   online: pgbench recommend() vs the bare 17-row fetch, and a Python HTTP scoring service
#   shadow scoring's cost per recommend() (bench/shadow_cost.sh, v2 as the shadow of v1)
#   the prediction log's cost per recommend() and a refresh's cost of keeping its prediction set
#   (bench/prediction_log_cost.sh)
#   the serving statistics' cost per recommend() (bench/serving_stats_cost.sh, recsys.serving_stats on/off)
#   advance_month against the full recompute per way of keeping recsys.customer_states
#   (bench/advance_month_cost.sh, at RECSYS_ADVANCE_CUSTOMERS, default a tenth of the customers)
#   refresh_recommendations' write against scoring alone, and deleting + inserting a model's rows
#   against updating them in place (bench/refresh_write_cost.sh, same number of customers)
#   recommend() of a from-start model from stored states vs the bare fetch (bench/online_state_cost.sh)
#   score_all of from-start models past their window vs within it (bench/extrapolation_cost.sh,
#   its own database of 20000 customers)
#   recommend() at 64 clients through pgbouncer vs 64 direct connections (bench/pgbouncer_bench.sh)
#   a promote during a pgbench run, and a backend's memory before/after loading the model.
#   PL/Proxy shards (bench/plproxy_bench.sh, three clusters of its own on RECSYS_BENCH_PORT + 20 ..
#   + 22, 20000 customers): recommend() through the proxy vs direct on a shard, and a refresh on
#   2 shards vs one server; on this 2-core machine overhead and correctness, not scaling.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=${RECSYS_BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
    N=${RECSYS_BENCH_CUSTOMERS:-20000}
    SECS=${RECSYS_BENCH_SECONDS:-5}
    GB_MIN_TIME=0.2
    TORCH_SECS=1
else
    N=${RECSYS_BENCH_CUSTOMERS:-1000000}
    SECS=${RECSYS_BENCH_SECONDS:-20}
    GB_MIN_TIME=1
    TORCH_SECS=3
fi
PORT=${RECSYS_BENCH_PORT:-55450}
HTTP_PORT=$((PORT + 10))
FIRST_ID=15889
LAST_ID=$((FIRST_ID + N - 1))
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1

work=$(mktemp -d /tmp/recsys_bench.XXXXXX)
chmod 755 "$work"
pgdir=$work/pg
R=$work/results.txt
: >"$R"
svc_pid=""
cleanup() {
    local rc=$?
    if [ -n "$svc_pid" ]; then kill "$svc_pid" 2>/dev/null || true; fi
    bash "$root/scripts/pg_cluster.sh" stop "$pgdir" || true
    if [ "${RECSYS_BENCH_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
        echo "run_all.sh: work directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }
put() { echo "$1 $2" >>"$R"; }
now() { date +%s.%N; }
elapsed() { $PY -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$pgdir" -p "$PORT" -U postgres -d postgres)
psql_() { "${PSQL[@]}" "$@"; }
DSN="host=$pgdir port=$PORT user=postgres dbname=postgres"

cpu_model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)
cpus=$(nproc)
echo "recsys benchmarks: $N customers, ${SECS}s runs, $(date -u '+%Y-%m-%d %H:%M UTC'), $cpu_model, $cpus CPUs"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

say "build (scripts/build.sh)"
bash scripts/build.sh

say "private cluster on port $PORT ($pgdir)"
bash scripts/pg_cluster.sh start "$pgdir" "$PORT"
psql_ -c "CREATE EXTENSION recsys"
psql_ -v schema=santander -f sql/santander_loader.sql >/dev/null

say "data: $N customers x 17 months, 2 connections"
chunk=100000
half=$(((N + 1) / 2))
t0=$(now)
pids=()
for w in 0 1; do
    lo=$((w * half))
    hi=$(((w + 1) * half)); [ $hi -gt $N ] && hi=$N
    {
        for ((s = lo; s < hi; s += chunk)); do
            n=$((hi - s)); [ $n -gt $chunk ] && n=$chunk
            echo "INSERT INTO santander.snapshots SELECT * FROM recsys.generate_santander($n, first_customer => $s);"
        done
    } >"$work/gen$w.sql"
    psql_ -f "$work/gen$w.sql" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
t1=$(now)
put load_s "$(elapsed "$t0" "$t1")"
psql_ -c "ANALYZE santander.snapshots"
read -r rows ids minid maxid < <(psql_ -At -F' ' -c "SELECT count(*), count(DISTINCT ncodpers), min(ncodpers), max(ncodpers) FROM santander.snapshots")
put customers "$N"
put rows "$rows"
echo "loaded $rows rows, $ids customers (ids $minid..$maxid) in $(elapsed "$t0" "$t1") s"
if [ "$minid" != "$FIRST_ID" ] || [ "$maxid" != "$LAST_ID" ]; then
    echo "warning: customer ids are $minid..$maxid, expected $FIRST_ID..$LAST_ID" >&2
    FIRST_ID=$minid; LAST_ID=$maxid
fi

say "reference model: spec from recsys.untrained_model, weights from torch (bench/torch_reference.py)"
psql_ -At -c "SELECT recsys.register_model('bench_spec', recsys.untrained_model('santander.snapshots'))" >/dev/null
mkdir -p "$work/model"
read -r V1 V2 < <($PY bench/torch_reference.py export --dsn "$DSN" --spec-model bench_spec --out "$work/model")
psql_ -At -c "SELECT 'bench v' || version || ': ' || status || ', ' || (feature_spec->>'step_width') || ' inputs/step, hidden ' || (feature_spec->>'hidden') || ', ' || (feature_spec->>'static_width') || ' static, ' || jsonb_array_length(feature_spec->'products') || ' products, window ' || (feature_spec->>'window_months') FROM recsys.models WHERE name = 'bench' ORDER BY version"

say "(b) core scoring loop and (d) sgemm bound: build/lstm_scoring_bench (same weights: RECSYS_BENCH_MODEL)"
RECSYS_BENCH_MODEL=$work/model/bench_v1.rsm build/lstm_scoring_bench --benchmark_min_time=$GB_MIN_TIME \
    --benchmark_format=console --benchmark_out_format=json --benchmark_out="$work/gbench.json"
$PY bench/bench_util.py gbench "$work/gbench.json" >>"$R"

say "(c) torch, same weights, same kind of inputs, torch.no_grad()"
$PY bench/torch_reference.py bench --dir "$work/model" --seconds "$TORCH_SECS" --json "$work/torch.json"
$PY -c "
import json, sys
for k, v in json.load(open(sys.argv[1])).items(): print(k, v)" "$work/torch.json" >>"$R"

say "(e) reduced precision: core loop fp32 / bf16 / int8 and torch quantize_dynamic, same weights and inputs"
mkdir -p "$work/precision"
RECSYS_BENCH_MODEL=$work/model/bench_v1.rsm RECSYS_PRECISION_DUMP=$work/precision build/reduced_precision_bench \
    --benchmark_min_time=$GB_MIN_TIME --benchmark_format=console --benchmark_out_format=json \
    --benchmark_out="$work/precision.json"
$PY bench/bench_util.py precision "$work/precision.json" >>"$R"
$PY bench/reduced_precision_torch.py --dir "$work/precision" --seconds "$TORCH_SECS" --json "$work/precision_torch.json"
$PY -c "
import json, sys
for k, v in json.load(open(sys.argv[1])).items():
    if not isinstance(v, dict): print('e_' + k, v)" "$work/precision_torch.json" >>"$R"
say "training step: recsys.train()'s step vs the same step in torch (bench/training_vs_torch.sh)"
RECSYS_TRAIN_RESULTS="$R" RECSYS_BENCH_QUICK="$quick" bash bench/training_vs_torch.sh

say "(a) full refresh through SQL"
echo "EXPLAIN (COSTS OFF) SELECT count(*) FROM recsys.score_all('bench'):"
psql_ -c "SET max_parallel_workers_per_gather = 2" -c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" -c "EXPLAIN (COSTS OFF) SELECT count(*) FROM recsys.score_all('bench')"
echo "A function scan runs in the leader only (PostgreSQL does not parallelize a Function Scan, even of a
PARALLEL SAFE function with max_parallel_workers_per_gather = 2 and zero parallel costs): score_all starts its own
parallel workers (recsys.parallel_workers), each scoring slices of the id range; its shard/shards arguments still
split the customers for several connections (run here with recsys.parallel_workers = 0)."
put cpus "$cpus"
t0=$(now)
n1=$(PGOPTIONS="-c recsys.parallel_workers=0" psql_ -At -c "SELECT recsys.refresh_recommendations('bench')")
t1=$(now)
a1=$(elapsed "$t0" "$t1")
put a1_s "$a1"
put a1_cps "$($PY -c "print($n1 / $a1)")"
echo "refresh_recommendations('bench'), recsys.parallel_workers = 0: $n1 customers in $a1 s"
psql_ -c "DELETE FROM recsys.recommendations WHERE model_name = 'bench'" -c "VACUUM recsys.recommendations"
# The same refresh with parallel workers (recsys.parallel_workers = -1, the default: one per further CPU).
t0=$(now)
n3=$(psql_ -At -c "SELECT recsys.refresh_recommendations('bench')")
t1=$(now)
a3=$(elapsed "$t0" "$t1")
put a3_s "$a3"
put a3_cps "$($PY -c "print($n3 / $a3)")"
echo "refresh_recommendations('bench'), parallel workers (default): $n3 customers in $a3 s"
psql_ -c "DELETE FROM recsys.recommendations WHERE model_name = 'bench'" -c "VACUUM recsys.recommendations"
t0=$(now)
pids=()
for i in 0 1; do
    PGOPTIONS="-c recsys.parallel_workers=0" psql_ -At -c "INSERT INTO recsys.recommendations SELECT model_name, customer_id, model_version, computed_at, products, scores FROM recsys.score_all('bench', 7, shard => $i, shards => 2)" >/dev/null &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
t1=$(now)
a2=$(elapsed "$t0" "$t1")
n2=$(psql_ -At -c "SELECT count(*) FROM recsys.recommendations WHERE model_name = 'bench'")
put a2_s "$a2"
put a2_cps "$($PY -c "print($n2 / $a2)")"
echo "score_all, 2 shards on 2 connections: $n2 customers in $a2 s"

say "a BI query calling recommend() per row: serial, parallel workers, and recommend_many()"
# 50,000 customers (or all of them in quick mode), their latest month.
bi_n=$((N < 50000 ? N : 50000))
bi_where="ncodpers < $((FIRST_ID + bi_n)) AND fecha_dato = (SELECT max(fecha_dato) FROM santander.snapshots)"
bi_query="SELECT count(*) FROM santander.snapshots WHERE $bi_where AND cardinality(recsys.recommend(ncodpers, 7, 'bench')) > 0"
psql_ -c "SET max_parallel_workers_per_gather = 2" -c "EXPLAIN (COSTS OFF) $bi_query"
for workers in 0 2; do
    t0=$(now)
    psql_ -At -c "SET max_parallel_workers_per_gather = $workers" -c "SET parallel_setup_cost = 0" \
          -c "SET parallel_tuple_cost = 0" -c "$bi_query" >/dev/null
    t1=$(now)
    put "bi_w${workers}_cps" "$($PY -c "print($bi_n / $(elapsed "$t0" "$t1"))")"
    echo "recommend() per row, max_parallel_workers_per_gather = $workers: $bi_n customers in $(elapsed "$t0" "$t1") s"
done
t0=$(now)
psql_ -At -c "SELECT count(*) FROM recsys.recommend_many(ARRAY(SELECT ncodpers FROM santander.snapshots WHERE $bi_where), 7, 'bench')" >/dev/null
t1=$(now)
put bi_many_cps "$($PY -c "print($bi_n / $(elapsed "$t0" "$t1"))")"
echo "recommend_many() over the same customers: $(elapsed "$t0" "$t1") s"

say "incremental scoring: a new month advances stored LSTM states vs a full recompute"
# A from-start model over the first 16 months; then the 17th month lands.
last_month=$(psql_ -At -c "SELECT max(fecha_dato) FROM santander.snapshots")
psql_ -c "CREATE TABLE santander.snapshots_inc AS SELECT * FROM santander.snapshots WHERE fecha_dato < date '$last_month' - 20" \
      -c "ALTER TABLE santander.snapshots_inc ADD PRIMARY KEY (ncodpers, fecha_dato)" -c "ANALYZE santander.snapshots_inc"
psql_ -At -c "SELECT recsys.promote('bench_inc', recsys.register_model('bench_inc', recsys.untrained_model('santander.snapshots_inc', window_months => 17, start_month => '2015-01-28')), force => true, reason => 'benchmark fixture')" >/dev/null
t0=$(now)
ni=$(psql_ -At -c "SELECT recsys.rebuild_states('bench_inc')")
t1=$(now)
put inc_build_s "$(elapsed "$t0" "$t1")"
echo "rebuild_states over 16 months: $ni customers in $(elapsed "$t0" "$t1") s"
psql_ -c "INSERT INTO santander.snapshots_inc SELECT * FROM santander.snapshots WHERE fecha_dato = '$last_month'" -c "ANALYZE santander.snapshots_inc"
t0=$(now)
na=$(psql_ -At -c "SELECT recsys.advance_month('bench_inc', '$last_month')")
t1=$(now)
put inc_advance_s "$(elapsed "$t0" "$t1")"
put inc_advance_n "$na"
echo "advance_month to $last_month: $na customers in $(elapsed "$t0" "$t1") s"
t0=$(now)
nf=$(psql_ -At -c "SELECT recsys.rebuild_states('bench_inc')")
t1=$(now)
put inc_full_s "$(elapsed "$t0" "$t1")"
put inc_full_n "$nf"
echo "full recompute (rebuild_states) over 17 months: $nf customers in $(elapsed "$t0" "$t1") s"
psql_ -c "DROP TABLE santander.snapshots_inc" -c "DELETE FROM recsys.customer_states"

say "incremental scoring: how recsys.customer_states is kept (bench/advance_month_cost.sh, its own database)"
# A tenth of the customers (RECSYS_ADVANCE_CUSTOMERS): each storage option runs a rebuild, an
# advance and a full recompute.
PATH="$PGBIN:$PATH" PGHOST=$pgdir PGPORT=$PORT PGUSER=postgres RECSYS_ADVANCE_RESULTS="$R" \
    RECSYS_BENCH_CUSTOMERS=${RECSYS_ADVANCE_CUSTOMERS:-$(((N + 9) / 10))} bash bench/advance_month_cost.sh

say "refresh_recommendations: what writing costs, delete + insert vs update in place (bench/refresh_write_cost.sh)"
PATH="$PGBIN:$PATH" PGHOST=$pgdir PGPORT=$PORT PGUSER=postgres RECSYS_REFRESH_RESULTS="$R" \
    RECSYS_BENCH_CUSTOMERS=${RECSYS_ADVANCE_CUSTOMERS:-$(((N + 9) / 10))} bash bench/refresh_write_cost.sh

say "online path: pgbench -n -M prepared -T $SECS, ids random in [$FIRST_ID, $LAST_ID]"
cat >"$work/recommend.sql" <<EOF
\set id random($FIRST_ID, $LAST_ID)
SELECT recsys.recommend(:id, 7, 'bench');
EOF
cat >"$work/bare.sql" <<EOF
\set id random($FIRST_ID, $LAST_ID)
SELECT * FROM santander.snapshots WHERE ncodpers = :id ORDER BY fecha_dato DESC LIMIT 17;
EOF
mkdir -p "$work/pgb"
pgb() {  # name script clients
    local name=$1 script=$2 c=$3 out
    out=$("$PGBIN/pgbench" -n -M prepared -T "$SECS" -c "$c" -j "$c" -f "$script" -l \
        --log-prefix="$work/pgb/${name}_c$c" -h "$pgdir" -p "$PORT" -U postgres postgres 2>&1) || { echo "$out"; return 1; }
    local tps failed p50 p99 cnt
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
    read -r p50 p99 cnt < <($PY bench/bench_util.py pgbench-log "$work/pgb/${name}_c$c")
    put "${name}_c${c}_tps" "$tps"
    put "${name}_c${c}_p50_ms" "$p50"
    put "${name}_c${c}_p99_ms" "$p99"
    put "${name}_c${c}_failed" "${failed:-0}"
    printf '%-10s clients=%s tps=%s p50=%s ms p99=%s ms transactions=%s failed=%s\n' "$name" "$c" "$tps" "$p50" "$p99" "$cnt" "${failed:-0}"
}
for c in 1 2 8; do
    pgb rec "$work/recommend.sql" "$c"
    pgb bare "$work/bare.sql" "$c"
done

echo "server-side time per call (DO loop over 10,000 random ids, clock_timestamp deltas):"
read -r srv_rec srv_bare < <(psql_ -At -F' ' <<EOF
DO \$\$
DECLARE
    ids bigint[] := ARRAY(SELECT $FIRST_ID + floor(random() * $N)::bigint FROM generate_series(1, 10000));
    t0 timestamptz; t1 timestamptz; t2 timestamptz; r text[];
BEGIN
    PERFORM setseed(0.5);
    PERFORM recsys.recommend(ids[1], 7, 'bench');  -- load the model first
    t0 := clock_timestamp();
    FOR i IN 1 .. 10000 LOOP
        r := recsys.recommend(ids[i], 7, 'bench');
    END LOOP;
    t1 := clock_timestamp();
    FOR i IN 1 .. 10000 LOOP
        PERFORM * FROM santander.snapshots WHERE ncodpers = ids[i] ORDER BY fecha_dato DESC LIMIT 17;
    END LOOP;
    t2 := clock_timestamp();
    PERFORM set_config('bench.rec_us', (extract(epoch FROM t1 - t0) * 1e6 / 10000)::text, false);
    PERFORM set_config('bench.bare_us', (extract(epoch FROM t2 - t1) * 1e6 / 10000)::text, false);
END
\$\$;
SELECT round(current_setting('bench.rec_us')::numeric, 1), round(current_setting('bench.bare_us')::numeric, 1);
EOF
)
put srv_rec_us "$srv_rec"
put srv_bare_us "$srv_bare"
echo "recommend(): $srv_rec us/call; bare 17-row fetch: $srv_bare us/call"

say "shadow scoring: recommend() with no shadow, a shadow set but (almost) never drawn, every call shadowed"
PGHOST=$pgdir PGPORT=$PORT PGUSER=postgres RECSYS_SHADOW_DB=postgres RECSYS_SHADOW_MODEL=bench \
    RECSYS_SHADOW_VERSION=$V2 RECSYS_SHADOW_IDS="$FIRST_ID $LAST_ID" RECSYS_SHADOW_RESULTS="$R" bash bench/shadow_cost.sh

say "prediction log: recommend() at recsys.log_sample_rate 0 and 1.0; what a refresh adds to keep its prediction set"
PGHOST=$pgdir PGPORT=$PORT PGUSER=postgres RECSYS_PLOG_DB=postgres RECSYS_PLOG_MODEL=bench \
    RECSYS_PLOG_IDS="$FIRST_ID $LAST_ID" RECSYS_PLOG_RESULTS="$R" bash bench/prediction_log_cost.sh

say "online path from stored states: recommend() of a from-start model with every customer's state vs the bare fetch"
PGHOST=$pgdir PGPORT=$PORT PGUSER=postgres PGBIN=$PGBIN RECSYS_ONLINE_DB=postgres RECSYS_ONLINE_RELATION=santander.snapshots \
    RECSYS_ONLINE_SLIDING=bench RECSYS_ONLINE_IDS="$FIRST_ID $LAST_ID" RECSYS_ONLINE_PGBENCH_SECONDS=$SECS \
    RECSYS_ONLINE_RESULTS="$R" bash bench/online_state_cost.sh

say "past the window: score_all of from-start models kept past their window vs one within it (its own database)"
PGHOST=$pgdir PGPORT=$PORT PGUSER=postgres PGBIN=$PGBIN bash bench/extrapolation_cost.sh

say "serving statistics: recommend() with recsys.serving_stats on and off (same loop, alternating rounds)"
PGHOST=$pgdir PGPORT=$PORT PGUSER=postgres RECSYS_STATS_DB=postgres RECSYS_STATS_MODEL=bench \
    RECSYS_STATS_IDS="$FIRST_ID $LAST_ID" RECSYS_STATS_RESULTS="$R" bash bench/serving_stats_cost.sh

say "many clients: recommend() at 64 clients through pgbouncer (transaction pooling, pool of 8) vs 64 direct connections"
PGBIN=$PGBIN PGHOST=$pgdir PGPORT=$PORT PGUSER=postgres RECSYS_PGB_DB=postgres RECSYS_PGB_MODEL=bench \
    RECSYS_PGB_IDS="$FIRST_ID $LAST_ID" RECSYS_PGB_SECONDS=$SECS RECSYS_PGB_PORT=$((PORT + 11)) \
    RECSYS_PGB_RESULTS="$R" bash bench/pgbouncer_bench.sh

say "(iii) Python scoring service (bench/python_scoring_service.py) loaded by bench/http_load.py"
$PY bench/python_scoring_service.py --dsn "$DSN" --dir "$work/model" --port "$HTTP_PORT" >"$work/service.log" 2>&1 &
svc_pid=$!
for _ in $(seq 1 100); do
    if $PY -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$HTTP_PORT/recommend?id=$FIRST_ID', timeout=2)" 2>/dev/null; then break; fi
    sleep 0.2
done
echo "sample: $($PY -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$HTTP_PORT/recommend?id=$FIRST_ID').read().decode())")"
echo "        recommend(): $(psql_ -At -c "SELECT recsys.recommend($FIRST_ID, 7, 'bench')")"
for c in 1 2 8; do
    $PY bench/http_load.py --port "$HTTP_PORT" --clients "$c" --seconds "$SECS" --first-id "$FIRST_ID" \
        --customers "$N" --json "$work/http_c$c.json"
    $PY -c "
import json, sys
d = json.load(open(sys.argv[1]))
for k in ('tps', 'p50_ms', 'p99_ms', 'errors'): print(f'py_c{sys.argv[2]}_{k}', d[k])" "$work/http_c$c.json" "$c" >>"$R"
done
kill "$svc_pid" 2>/dev/null || true
wait "$svc_pid" 2>/dev/null || true
svc_pid=""

say "promote during a pgbench run of recommend() (v$V1 -> v$V2 after $((SECS / 2)) s of $SECS s)"
"$PGBIN/pgbench" -n -M prepared -T "$SECS" -c 2 -j 2 -f "$work/recommend.sql" -h "$pgdir" -p "$PORT" \
    -U postgres postgres >"$work/promote_pgbench.log" 2>&1 &
pgb_pid=$!
sleep "$((SECS / 2))"
# The checker is one psql session opened before the promote: it has scored with v$V1 (model
# cached in the backend), then the promote commits from another session (\! psql), and the same
# session's next statements must score with v$V2.
CHECK_IDS="$FIRST_ID + g * ($N / 50) FROM generate_series(0, 49) g"
psql_ -At >"$work/promote_check.txt" <<EOF
SELECT 'before', count(*) FILTER (WHERE recsys.recommend(id, 7, 'bench') = recsys.recommend(id, 7, 'bench', $V1)),
       count(*) FILTER (WHERE recsys.recommend(id, 7, 'bench', $V1) IS DISTINCT FROM recsys.recommend(id, 7, 'bench', $V2))
  FROM (SELECT $CHECK_IDS) s(id);
\! $PGBIN/psql -X -q -At -o /dev/null -h $pgdir -p $PORT -U postgres -d postgres -c "SELECT recsys.promote('bench', $V2, force => true, reason => 'benchmark fixture')"
SELECT 'after', count(*) FILTER (WHERE recsys.recommend(id, 7, 'bench') = recsys.recommend(id, 7, 'bench', $V2)),
       count(*) FILTER (WHERE recsys.recommend(id, 7, 'bench') = recsys.recommend(id, 7, 'bench', $V1)
                         AND recsys.recommend(id, 7, 'bench', $V1) IS DISTINCT FROM recsys.recommend(id, 7, 'bench', $V2))
  FROM (SELECT $CHECK_IDS) s(id);
EOF
wait "$pgb_pid" || true
cat "$work/promote_check.txt"
read -r _ before_v1 differ < <(grep '^before' "$work/promote_check.txt" | tr '|' ' ')
read -r _ after_v2 stale < <(grep '^after' "$work/promote_check.txt" | tr '|' ' ')
pfailed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$work/promote_pgbench.log")
ptx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/promote_pgbench.log")
echo "pgbench during the promote: $ptx transactions, ${pfailed:-?} failed"
echo "checker (one psql session kept open, 50 fixed ids): before the promote $before_v1/50 answers equal v$V1's;"
echo "the two versions differ for $differ/50 ids; after the promote committed (from another session),"
echo "$after_v2/50 answers of the same session equal v$V2's and $stale/50 still gave v$V1's answer where it differs."
put promote_failed "${pfailed:-?} of ${ptx:-?}"
put promote_check "session sees v$V2 on its next statement: $after_v2/50 = v$V2, $stale stale (versions differ on $differ/50)"

say "memory of one backend before and after loading the model"
$PY bench/bench_util.py memory "$DSN" bench "$FIRST_ID" | tee -a "$R"

say "PL/Proxy shards: recommend() through the proxy vs direct on a shard; refresh on 2 shards vs one server"
PGBIN=$PGBIN RECSYS_PLPROXY_PORT=$((PORT + 20)) RECSYS_BENCH_CUSTOMERS=20000 RECSYS_BENCH_SECONDS=$SECS \
    RECSYS_PLPROXY_RESULTS="$R" bash bench/plproxy_bench.sh || echo "bench/plproxy_bench.sh failed; its rows read n/a"

say "results ($cpu_model, $cpus CPUs, $(date -u '+%Y-%m-%d %H:%M UTC'), load average now $(cut -d' ' -f1-3 /proc/loadavg))"
echo "Machine: $cpu_model, $cpus CPUs ($(lscpu | sed -n 's/^Core(s) per socket:[[:space:]]*//p' | head -n1) cores/socket); date: $(date -u '+%Y-%m-%d %H:%M UTC');"
echo "$N customers x 17 months; pgbench/HTTP runs of $SECS s; OPENBLAS_NUM_THREADS=1, OpenBLAS kernels $(psql_ -At -c "SHOW recsys.blas_core"); torch $($PY -c 'import torch; print(torch.__version__)')."
echo
$PY bench/bench_util.py report "$R"
