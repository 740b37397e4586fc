#!/usr/bin/env bash
# recommend() through pgbouncer in transaction pooling (docs/scale-out.md, "Many clients:
# pgbouncer"): a private cluster (recsys preloaded, for recsys.serving_stats) and a private
# pgbouncer in front of it (scripts/pgbouncer.sh, pool of 4 server connections). Checks:
#   - recommend(), recommend_scores() and recommend_many() through pgbouncer return what direct
#     connections return, for 500 customers;
#   - 32 clients (pgbench, one recommend() per transaction) share the 4 pooled backends, and the
#     model stays cached in them: recsys.serving_stats counts at most one parse per server
#     connection against thousands of calls, and no call fails;
#   - a promote reaches the pooled backends: the next transactions score with the new version.
# Ports RECSYS_PGBOUNCER_TEST_PORT (default 55580, the cluster) and the next one (pgbouncer);
# both stopped at the end, on failure too. About 30 s on two cores. Prints "ok - ..." / "not ok
# - ..." lines and "N passed, M failed" last; exits 1 on any failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
port=${RECSYS_PGBOUNCER_TEST_PORT:-55580}
bouncer_port=$((port + 1))
pool=4
clients=32
db=recsys_pgbouncer
export OPENBLAS_NUM_THREADS=1
# shellcheck source=tests/integration/tap.sh
. "$root/tests/integration/tap.sh" pgbouncer

tmp=$(mktemp -d "${RECSYS_PGBOUNCER_TMP:-/tmp}/recsys-pgbouncer.XXXXXX")
chmod 755 "$tmp"
cluster=$tmp/cluster
bouncer=$tmp/bouncer
cleanup() {
    "$root/scripts/pgbouncer.sh" stop "$bouncer" >/dev/null 2>&1
    "$root/scripts/pg_cluster.sh" stop "$cluster" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

export PGUSER=postgres PGDATABASE=$db PGOPTIONS="-c client_min_messages=warning"
direct() { PGHOST=$cluster PGPORT=$port timeout 120 "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
pooled() { PGHOST=$bouncer PGPORT=$bouncer_port timeout 120 "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

if ! PGBIN=$PGBIN timeout 120 "$root/scripts/pg_cluster.sh" start "$cluster" "$port" >"$tmp/start.log" 2>&1; then
    cat "$tmp/start.log"
    not_ok "the cluster starts on port $port"
    finish
fi
PGDATABASE=postgres direct "CREATE DATABASE $db" >/dev/null
if ! out=$(direct "
CREATE EXTENSION recsys;
CREATE SCHEMA santander;
CREATE TABLE santander.snapshots AS SELECT * FROM recsys.generate_santander(5000, 8, 3);
ALTER TABLE santander.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
ANALYZE santander.snapshots;
SELECT recsys.promote('default', recsys.register_model('default', recsys.untrained_model('santander.snapshots', window_months => 4, hidden => 16)),
                      force => true, reason => 'pgbouncer test');
SELECT recsys.register_model('default', recsys.untrained_model('santander.snapshots', window_months => 4, hidden => 8));
SELECT min(ncodpers) || ' ' || max(ncodpers) FROM santander.snapshots" 2>&1); then
    echo "$out"
    not_ok "data and models"
    finish
fi
read -r first_id last_id <<<"$(echo "$out" | tail -n 1)"
if ! "$root/scripts/pgbouncer.sh" start "$bouncer" "$bouncer_port" "$cluster" "$port" "$pool" >"$tmp/bouncer.log" 2>&1; then
    cat "$tmp/bouncer.log"
    not_ok "pgbouncer starts on port $bouncer_port"
    finish
fi
mode=$(PGHOST=$bouncer PGPORT=$bouncer_port PGDATABASE=pgbouncer "$PGBIN/psql" -XAt -c "SHOW CONFIG" 2>&1 | grep '^pool_mode|' | cut -d'|' -f2)
[ "$mode" = transaction ] && ok "pgbouncer on port $bouncer_port in front of the cluster on port $port: pool_mode = transaction, pool of $pool" ||
    not_ok "pgbouncer pool_mode: $mode"

# ---------------------------------------------------------------------------------------------
# The same answers through pgbouncer
# ---------------------------------------------------------------------------------------------
compare() {  # compare DESCRIPTION SQL-returning-one-text
    local a b
    a=$(direct "$2" 2>&1)
    b=$(pooled "$2" 2>&1)
    if [ -n "$a" ] && [ "$a" = "$b" ]; then ok "$1"; else not_ok "$1 (direct: ${a:0:200} / pgbouncer: ${b:0:200})"; fi
}
sample="SELECT DISTINCT ncodpers FROM santander.snapshots ORDER BY 1 LIMIT 500"
compare "recommend() for 500 customers: identical through pgbouncer" \
    "SELECT count(*) || ' ' || md5(string_agg(id || ':' || recsys.recommend(id)::text, ';' ORDER BY id)) FROM ($sample) c(id)"
compare "recommend_scores() for 500 customers: identical through pgbouncer" \
    "SELECT count(*) || ' ' || md5(string_agg(c.id || ':' || s.rank || s.product || s.score::text, ';' ORDER BY c.id, s.rank))
       FROM ($sample) c(id), recsys.recommend_scores(c.id) s"
compare "recommend_many() for 500 customers: identical through pgbouncer" \
    "SELECT count(*) || ' ' || md5(string_agg(customer_id || ':' || products::text || scores::text, ';' ORDER BY customer_id))
       FROM recsys.recommend_many(ARRAY($sample))"

# ---------------------------------------------------------------------------------------------
# 32 clients on 4 pooled backends: the model stays cached
# ---------------------------------------------------------------------------------------------
cat >"$tmp/recommend.sql" <<EOF
\set id random($first_id, $last_id)
SELECT recsys.recommend(:id);
EOF
direct "SELECT recsys.serving_stats_reset()" >/dev/null
# A new server connection parses the model once; the comparisons above ran in backends that
# pgbouncer may keep: close them, so that every parse counted below is the pooled run's.
PGHOST=$bouncer PGPORT=$bouncer_port PGDATABASE=pgbouncer "$PGBIN/psql" -XAtq -c "RECONNECT $db" >/dev/null 2>&1
direct "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
         WHERE datname = '$db' AND pid <> pg_catalog.pg_backend_pid()" >/dev/null
out=$(PGHOST=$bouncer PGPORT=$bouncer_port timeout 120 "$PGBIN/pgbench" -n -M simple -c "$clients" -j 2 -T 5 \
        -f "$tmp/recommend.sql" "$db" 2>&1)
tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
tx_failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
backends=$(direct "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = '$db' AND pid <> pg_catalog.pg_backend_pid()")
read -r calls errors loads hits misses <<<"$(direct "SELECT sum(calls), sum(errors), max(model_loads), max(cache_hits), max(cache_misses)
    FROM recsys.serving_stats WHERE entry_point = 'recommend'" | tr '|' ' ')"
echo "   pgbench through pgbouncer: $clients clients, ${tx:-?} transactions, ${tx_failed:-?} failed; server connections now: $backends;" \
     "serving_stats: $calls recommend() calls, $errors errors, $loads model parses, $hits cache hits, $misses misses"
[ -n "$tx" ] && [ "$tx" -gt 0 ] && [ "${tx_failed:-0}" = 0 ] && [ "$calls" = "$tx" ] && [ "$errors" = 0 ] &&
    ok "$clients clients through pgbouncer: every one of the $tx recommend() calls succeeded and was counted" ||
    not_ok "pooled run: ${tx:-?} transactions, ${tx_failed:-?} failed, $calls calls counted, $errors errors (pgbench: $(echo "$out" | tail -n 3))"
[ -n "$backends" ] && [ "$backends" -le "$pool" ] && ok "pgbouncer served $clients clients with $backends server connections (pool $pool)" ||
    not_ok "server connections: $backends for a pool of $pool"
[ -n "$loads" ] && [ "$loads" -ge 1 ] && [ "$loads" -le "$pool" ] && [ "$hits" -ge $((calls - pool)) ] &&
    ok "the model stays cached in the pooled backends: $loads parses for $calls calls ($hits cache hits)" ||
    not_ok "model cache through pgbouncer: $loads parses, $hits hits for $calls calls"

# ---------------------------------------------------------------------------------------------
# A promote reaches the pooled backends
# ---------------------------------------------------------------------------------------------
probe=$first_id
direct "SELECT recsys.promote('default', 2, force => true, reason => 'pgbouncer test')" >/dev/null
want=$(direct "SELECT recsys.score_customer($probe, version => 2)::text")
old=$(direct "SELECT recsys.score_customer($probe, version => 1)::text")
same=0
for _ in $(seq $((2 * pool))); do
    [ "$(pooled "SELECT recsys.score_customer($probe)::text")" = "$want" ] && same=$((same + 1))
done
[ "$want" != "$old" ] && [ "$same" = $((2 * pool)) ] &&
    ok "after a promote, every pooled backend scores with the new version ($same of $((2 * pool)) transactions)" ||
    not_ok "after the promote: $same of $((2 * pool)) pooled transactions used version 2"
finish
