#!/usr/bin/env bash
# Cancel latency and peak backend memory of recsys batch scoring. A benchmark, not a test: it
# prints figures and checks nothing.
#
#   PGHOST=... PGPORT=... PGUSER=postgres bash bench/cancel_latency.sh
#
# Needs a running cluster with the recsys extension installed and a superuser; it creates and
# drops the database recsys_cancel_bench. For each model of RECSYS_BENCH_MODELS
# ("window:hidden[:layers] ...", default "120:512 240:512 240:2048"), while score_all runs over
# RECSYS_BENCH_CUSTOMERS customers (default 2000, 17 months each):
#   cancel   the time from pg_cancel_backend(), sent RECSYS_BENCH_DELAY_S seconds (default 2)
#            into the statement, to its end, seen by a second session polling
#            pg_stat_activity every half millisecond;
#   timeout  the time from statement_timeout (RECSYS_BENCH_TIMEOUT_MS, default 2000) firing to
#            the error: the statement's elapsed time (psql \timing) minus the timeout.
# Each is measured RECSYS_BENCH_REPEAT times (default 3), after the model is loaded in the
# session. Then the backend's peak resident memory (VmHWM, read from /proc/self/status by the
# backend itself) for recommend_many of 3 customers of a T=240, H=512 model, and for score_all
# under SET recsys.batch_size = 65536 (the reference model T=16, H=128, and the T=240, H=512
# one), each in a fresh connection whose baseline (model loaded through recommend()) is shown.
# RECSYS_BENCH_OLD=1 skips the score_all of the T=240, H=512 model at batch size 65536, which
# a build without recsys.max_batch_memory would need about 130 GB for.
set -euo pipefail

models=${RECSYS_BENCH_MODELS:-"120:512 240:512 240:2048"}
customers=${RECSYS_BENCH_CUSTOMERS:-2000}
timeout_ms=${RECSYS_BENCH_TIMEOUT_MS:-2000}
delay_s=${RECSYS_BENCH_DELAY_S:-2}
repeat=${RECSYS_BENCH_REPEAT:-3}
old=${RECSYS_BENCH_OLD:-0}
db=recsys_cancel_bench
first_id=15889  # recsys.generate_santander's first customer id

PSQL=(psql -X -q -v ON_ERROR_STOP=1)
psql_db() { "${PSQL[@]}" -d "$db" "$@"; }

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "server: $("${PSQL[@]}" -d postgres -Atc 'SHOW server_version'), recsys.max_batch_memory: $("${PSQL[@]}" -d postgres -At \
    -c "LOAD 'recsys'" -c "SELECT coalesce(current_setting('recsys.max_batch_memory', true), 'not defined (old build)')")"

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap '"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
psql_db <<SQL
SET client_min_messages = warning;
CREATE EXTENSION recsys CASCADE;
CREATE SCHEMA bench;
CREATE TABLE bench.snapshots AS SELECT * FROM recsys.generate_santander($customers, months => 17);
ALTER TABLE bench.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
ANALYZE bench.snapshots;
-- Peak resident memory of this backend, in kB.
CREATE FUNCTION bench.vm_hwm_kb() RETURNS bigint LANGUAGE sql
    AS \$\$ SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+) kB'))[1]::bigint \$\$;
-- Waits until the session named recsys_cancel_bench has run score_all for delay seconds,
-- cancels it and returns the milliseconds until its statement is over.
CREATE FUNCTION bench.cancel_after(delay float8) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE
    p int;
    started timestamptz;
    t0 timestamptz;
    st text;
BEGIN
    LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT pid, query_start INTO p, started FROM pg_stat_activity
         WHERE application_name = 'recsys_cancel_bench' AND state = 'active' AND query LIKE '%score_all%';
        EXIT WHEN p IS NOT NULL AND clock_timestamp() - started > delay * interval '1 second';
        PERFORM pg_sleep(0.01);
    END LOOP;
    t0 := clock_timestamp();
    PERFORM pg_cancel_backend(p);
    LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT state INTO st FROM pg_stat_activity WHERE pid = p AND query_start = started;
        EXIT WHEN st IS DISTINCT FROM 'active';
        PERFORM pg_sleep(0.0005);
    END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END \$\$;
SQL

model_name() { echo "m_${1//:/_}"; }
register() {  # window:hidden[:layers]
    IFS=: read -r window hidden layers <<<"$1"
    local name
    name=$(model_name "$1")
    psql_db -Atc "SELECT recsys.register_model('$name', recsys.untrained_model('bench.snapshots', window_months => $window,
                  hidden => $hidden, layers => ${layers:-1}, seed => 1))" >/dev/null
    psql_db -Atc "SELECT recsys.promote('$name', 1, force => true, reason => 'benchmark fixture')" >/dev/null
}

printf '\n%-14s %-8s %s\n' "model" "case" "ms from cancel / timeout to the error"
register 16:128
register 240:512
for spec in $models; do
    [ "$spec" = 240:512 ] || register "$spec"
    name=$(model_name "$spec")
    warm="SELECT cardinality(recsys.recommend($first_id, model => '$name'))"
    cancels=()
    for _ in $(seq "$repeat"); do
        ("${PSQL[@]}" -d "$db" -c "SET application_name = 'recsys_cancel_bench'" -c "$warm" \
            -c "SELECT count(*) FROM recsys.score_all('$name')" >/dev/null 2>&1 || true) &
        a=$!
        cancels+=("$(psql_db -Atc "SELECT round(bench.cancel_after($delay_s)::numeric, 1)")")
        wait "$a"
    done
    printf '%-14s %-8s %s\n' "$spec" cancel "${cancels[*]}"
    timeouts=()
    for _ in $(seq "$repeat"); do
        out=$("${PSQL[@]}" -d "$db" -c "$warm" -c "SET statement_timeout = $timeout_ms" -c '\timing on' \
            -c "SELECT count(*) FROM recsys.score_all('$name')" 2>/dev/null || true)
        elapsed=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -1)
        timeouts+=("$(awk -v e="$elapsed" -v t="$timeout_ms" 'BEGIN { printf "%.1f", e - t }')")
    done
    printf '%-14s %-8s %s\n' "$spec" timeout "${timeouts[*]}"
done

# Peak memory of a fresh backend: baseline after loading the model, then after the call.
peak() {  # model, settings, statement
    "${PSQL[@]}" -d "$db" -At -F' ' -c "SELECT cardinality(recsys.recommend($first_id, model => '$1'))" \
        -c "SELECT bench.vm_hwm_kb()" -c "$2" -c "$3" -c "SELECT bench.vm_hwm_kb()" |
        awk 'NR == 2 { base = $1 } END { printf "%d MB (baseline %d MB)", $1 / 1024, base / 1024 }'
}
printf '\n%-52s %s\n' "case" "backend peak RSS (VmHWM)"
printf '%-52s %s\n' "recommend_many of 3 customers, T=240 H=512" \
    "$(peak m_240_512 "SELECT 1" "SELECT count(*) FROM recsys.recommend_many(ARRAY[$first_id, $((first_id + 1)), $((first_id + 2))], model => 'm_240_512')")"
printf '%-52s %s\n' "score_all, batch_size 65536, T=16 H=128 ($customers)" \
    "$(peak m_16_128 "SET recsys.batch_size = 65536" "SELECT count(*) FROM recsys.score_all('m_16_128')")"
if [ "$old" = 1 ]; then
    printf '%-52s %s\n' "score_all, batch_size 65536, T=240 H=512 ($customers)" "skipped (RECSYS_BENCH_OLD=1)"
else
    printf '%-52s %s\n' "score_all, batch_size 65536, T=240 H=512 ($customers)" \
        "$(peak m_240_512 "SET recsys.batch_size = 65536" "SELECT count(*) FROM recsys.score_all('m_240_512')")"
fi
