#!/usr/bin/env bash
# Hash sharding with PL/Proxy and two-phase registry changes (docs/scale-out.md, "Sharding with
# PL/Proxy"), end to end on three private clusters on this machine:
#   - the proxy cluster: database recsys_proxy (plproxy, dblink, sql/recsys_proxy.sql; no snapshots)
#     and database recsys_single, a single-node recsys with every customer: the reference;
#   - shard 0 and shard 1: database recsys_shard with the recsys extension, the snapshots of the
#     customers whose id hashes to them (hashint8(id) & 1) and max_prepared_transactions = 10.
# Checked: scores through the proxy equal the single-node scores for every customer (recommend_many
# split by shard and merged, recommend and recommend_scores per customer for a sample); refresh on
# every shard at once; a promote through the proxy during a pgbench run of recommend() against the
# proxy (0 failed calls; a monitor that calls recommend_many over customers of both shards never gets
# a mix of versions, even while one shard has committed and the other has not); a crash of the proxy
# between PREPARE and the commit decision (rolled back by recsys_proxy.resolve_prepared()) and one
# after the decision with one shard committed (committed by it); a shard that is down (its customers
# get a clear error, the other shard's are served).
#
# Ports RECSYS_SHARD_PORT (default 55465: proxy), +1 and +2 (shards); temporary directories; every
# cluster is stopped by a trap, even on failure (RECSYS_SHARD_KEEP=1 leaves them running).
# RECSYS_SHARD_CUSTOMERS (default 10000) customers x 17 months (seed 42); tiny untrained models
# (window 6, hidden 16, seeds 1 and 2): this tests routing and the protocol, not the model.
# Needs the extension installed and postgresql-15-plproxy; PGBIN as for scripts/pg_cluster.sh.
# About a minute on two cores. Prints "ok - ..." / "not ok - ..." and "N passed, M failed" last.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export PGBIN
port=${RECSYS_SHARD_PORT:-55465}
customers=${RECSYS_SHARD_CUSTOMERS:-10000}
export OPENBLAS_NUM_THREADS=1
export PGUSER=postgres PGOPTIONS="-c client_min_messages=warning -c lock_timeout=60s"
# shellcheck source=tests/integration/tap.sh
. "$root/tests/integration/tap.sh" sharding

work=$(mktemp -d /tmp/recsys-shard.XXXXXX)
chmod 755 "$work"
ROOT=$root
# shellcheck source=scripts/shard_clusters.sh
. "$root/scripts/shard_clusters.sh"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    if [ -n "${RECSYS_SHARD_KEEP:-}" ]; then echo "kept the clusters running under $work"; return; fi
    shard_clusters_stop
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' TERM INT   # a timeout or ^C still runs cleanup (EXIT)

check() {  # check DESCRIPTION FUNCTION SQL-returning-boolean
    local got
    got=$("$2" -c "$3" 2>&1)
    if [ "$got" = t ]; then ok "$1"; else not_ok "$1 (got: $got)"; fi
}
sqlstate_of() {  # FUNCTION SQL: the SQLSTATE it fails with, "none" when it succeeds
    local out
    out=$("$1" -v VERBOSITY=verbose -c "$2" 2>&1)
    echo "$out" | grep -oP '^ERROR:  \K[0-9A-Z]{5}' | head -n 1 | grep . || echo none
}

# ---------------------------------------------------------------------------------------------
# Three clusters (scripts/shard_clusters.sh): the proxy with the single-node reference beside
# it, and two shards, each customer's rows on the shard its id hashes to
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
if ! shard_clusters_start "$work" "$port" "$customers" >"$work/setup.log" 2>&1; then
    cat "$work/setup.log"
    not_ok "three clusters, proxy set up (plproxy, dblink, sql/recsys_proxy.sql), data split (is postgresql-15-plproxy installed?)"
    finish
fi
ok "proxy on port $port, shards on ${ports[*]} (max_prepared_transactions = 10), plproxy $(qp -c "SELECT extversion FROM pg_extension WHERE extname = 'plproxy'")"
total=$(qr -c "SELECT count(DISTINCT ncodpers) FROM santander.snapshots")
on0=$(qs 0 -c "SELECT count(DISTINCT ncodpers) FROM santander.snapshots")
on1=$(qs 1 -c "SELECT count(DISTINCT ncodpers) FROM santander.snapshots")
read -r min_id max_id <<<"$(qr -F ' ' -c "SELECT min(ncodpers), max(ncodpers) FROM santander.snapshots")"
if [ "$((on0 + on1))" = "$total" ] && [ "$on0" -gt 0 ] && [ "$on1" -gt 0 ] &&
    [ "$(qs 0 -c "SELECT bool_and((hashint8(ncodpers) & 1) = 0) FROM santander.snapshots")" = t ]; then
    ok "$total customers x 17 months: $on0 on shard 0, $on1 on shard 1 ($(($(date +%s) - t0)) s with the clusters)"
else
    not_ok "data split ($on0 + $on1 <> $total)"
fi

# Two models built once on the reference: the same bytes go to the reference and, through the
# proxy, to every shard.
for seed in 1 2; do
    qr -c "SELECT encode(recsys.untrained_model('santander.snapshots', window_months => 6, hidden => 16, seed => $seed), 'hex')" \
        >"$work/model$seed.hex"
    chmod a+r "$work/model$seed.hex"   # read by the servers (pg_read_file), which run as postgres
done
ref_out=$(qr -c "SELECT recsys.register_model('default', decode(pg_read_file('$work/model1.hex'), 'hex'))" \
             -c "SELECT recsys.register_model('default', decode(pg_read_file('$work/model2.hex'), 'hex'))" \
             -c "SELECT recsys.promote('default', 1, force => true, reason => 'sharding test')" 2>&1 | tr '\n' ' ')
register_model() {  # HEXFILE: registers through the proxy, prints the version
    qp -c "CALL recsys_proxy.register_model('default', decode(pg_read_file('$1'), 'hex'))"
}
if [ "$(register_model "$work/model1.hex")" = 1 ] && [ "$(register_model "$work/model2.hex")" = 2 ] &&
    qp -c "CALL recsys_proxy.promote('default', 1, force => true, reason => 'sharding test')" >/dev/null; then
    ok "v1 and v2 registered and v1 promoted through the proxy (reference: $ref_out)"
else
    not_ok "register and promote through the proxy"
    finish
fi
check "registry identical on every shard (same versions, bytes and production)" qp "
SELECT count(DISTINCT r) = 1 FROM (
    SELECT string_agg(x, ';') r FROM dblink('host=${shard_dirs[0]} port=${ports[0]} dbname=recsys_shard',
        'SELECT version || sha256::text || status FROM recsys.models ORDER BY version') AS t(x text)
    UNION ALL
    SELECT string_agg(x, ';') FROM dblink('host=${shard_dirs[1]} port=${ports[1]} dbname=recsys_shard',
        'SELECT version || sha256::text || status FROM recsys.models ORDER BY version') AS t(x text)
    UNION ALL
    SELECT string_agg(x, ';') FROM dblink('host=$proxy_dir port=$port dbname=recsys_single', 'SELECT version || sha256::text || status FROM recsys.models ORDER BY version') AS t(x text)) s"
check "shard_status: both shards ok with production 1, pinned 1" qp "
SELECT array_agg(status || ':' || production_version || ':' || pinned_version ORDER BY shard) = '{ok:1:1,ok:1:1}'
  FROM recsys_proxy.shard_status()"

# ---------------------------------------------------------------------------------------------
# Scores through the proxy equal the single node's, for every customer
# ---------------------------------------------------------------------------------------------
# The reference's answers, brought to the proxy database once (dblink within the proxy cluster).
qp -c "CREATE TABLE reference_v1 AS SELECT * FROM dblink('host=$proxy_dir port=$port dbname=recsys_single',
           'SELECT customer_id, products, scores FROM recsys.recommend_many(ARRAY(SELECT DISTINCT ncodpers FROM santander.snapshots ORDER BY 1))')
       AS t(customer_id bigint, products text[], scores real[])" \
      -c "CREATE TABLE reference_v2 AS SELECT * FROM dblink('host=$proxy_dir port=$port dbname=recsys_single',
           'SELECT customer_id, products, scores FROM recsys.recommend_many(ARRAY(SELECT DISTINCT ncodpers FROM santander.snapshots ORDER BY 1), version => 2)')
       AS t(customer_id bigint, products text[], scores real[])" >/dev/null
t0=$(date +%s)
qp -c "CREATE TABLE proxied_v1 AS SELECT * FROM recsys_proxy.recommend_many(ARRAY(SELECT customer_id FROM reference_v1 ORDER BY 1))" >/dev/null
check "recommend_many through the proxy: every one of $total customers, same products and scores (|diff| <= 1e-6) as the single node ($(($(date +%s) - t0)) s)" qp "
SELECT count(*) = $total AND count(*) = (SELECT count(*) FROM reference_v1)
       AND bool_and(p.products = r.products)
       AND max((SELECT max(abs(a - b)) FROM unnest(p.scores, r.scores) u(a, b))) <= 1e-6
  FROM proxied_v1 p JOIN reference_v1 r USING (customer_id)"
check "recommend_many through the proxy returns the rows in the order of the ids given" qp "
SELECT array_agg(customer_id) = ARRAY[$max_id, $min_id, $((min_id + 1)), $((max_id - 1))]::bigint[]
  FROM recsys_proxy.recommend_many(ARRAY[$max_id, $min_id, $((min_id + 1)), $((max_id - 1))]::bigint[])"
check "v1 and v2 give different recommendations for most customers (so a mix of versions would show)" qp "
SELECT count(*) FILTER (WHERE a.products <> b.products) > count(*) / 2 FROM reference_v1 a JOIN reference_v2 b USING (customer_id)"
check "recommend() through the proxy, 300 customers of both shards: same as the single node" qp "
SELECT count(*) = 300 AND bool_and(recsys_proxy.recommend(customer_id) = products)
       AND count(DISTINCT recsys_proxy.shard_of(customer_id, 2)) = 2
  FROM (SELECT * FROM reference_v1 ORDER BY hashint4(customer_id::int) LIMIT 300) r"
check "recommend_scores() through the proxy, 50 customers: same ranks, products and scores" qp "
SELECT bool_and(ok) FROM (
    SELECT (SELECT array_agg(product ORDER BY rank) = r.products
               AND max(abs(score - r.scores[rank])) <= 1e-6
              FROM recsys_proxy.recommend_scores(r.customer_id)) ok
      FROM (SELECT * FROM reference_v1 ORDER BY hashint4(customer_id::int) LIMIT 50) r) s"
check "a pinned version through the proxy: recommend_many(..., version => 2) equals the single node's v2" qp "
SELECT bool_and(p.products = r.products)
  FROM recsys_proxy.recommend_many(ARRAY(SELECT customer_id FROM reference_v2 ORDER BY 1 LIMIT 500), version => 2) p
  JOIN reference_v2 r USING (customer_id)"

# Refresh on every shard at once, against the single node's.
written=$(qp -c "SELECT recsys_proxy.refresh_recommendations()" 2>&1)
qr -c "SELECT recsys.refresh_recommendations()" >/dev/null
check "refresh_recommendations through the proxy: $written rows over both shards, each shard its own customers, same as the single node" qp "
WITH sharded AS (
    SELECT 0 AS shard, * FROM dblink('host=${shard_dirs[0]} port=${ports[0]} dbname=recsys_shard',
        'SELECT customer_id, products FROM recsys.recommendations') AS t(customer_id bigint, products text[])
    UNION ALL
    SELECT 1, * FROM dblink('host=${shard_dirs[1]} port=${ports[1]} dbname=recsys_shard',
        'SELECT customer_id, products FROM recsys.recommendations') AS t(customer_id bigint, products text[])),
single AS (
    SELECT * FROM dblink('host=$proxy_dir port=$port dbname=recsys_single', 'SELECT customer_id, products FROM recsys.recommendations')
        AS t(customer_id bigint, products text[]))
SELECT '$written' = (SELECT count(*)::text FROM single)
       AND (SELECT count(*) FROM sharded) = (SELECT count(*) FROM single)
       AND (SELECT bool_and(shard = recsys_proxy.shard_of(customer_id, 2)) FROM sharded)
       AND NOT EXISTS (SELECT customer_id, products FROM sharded EXCEPT SELECT customer_id, products FROM single)"

# ---------------------------------------------------------------------------------------------
# A promote through the proxy during a pgbench run of recommend() against the proxy
# ---------------------------------------------------------------------------------------------
# Two customers, one per shard, whose v1 and v2 recommendations differ: a monitor scores both in
# one recommend_many call every few milliseconds and records the answer beside the shards' states.
read -r c0 c1 <<<"$(qp -F ' ' -c "
SELECT (SELECT a.customer_id FROM reference_v1 a JOIN reference_v2 b USING (customer_id)
         WHERE a.products <> b.products AND recsys_proxy.shard_of(a.customer_id, 2) = 0 ORDER BY 1 LIMIT 1),
       (SELECT a.customer_id FROM reference_v1 a JOIN reference_v2 b USING (customer_id)
         WHERE a.products <> b.products AND recsys_proxy.shard_of(a.customer_id, 2) = 1 ORDER BY 1 LIMIT 1)")"
qp -c "CREATE TABLE monitor (at timestamptz, states text[], answer text[])" \
   -c "CREATE TABLE expected AS SELECT (SELECT array_agg(products::text ORDER BY customer_id) FROM reference_v1 WHERE customer_id IN ($c0, $c1)) v1,
                                       (SELECT array_agg(products::text ORDER BY customer_id) FROM reference_v2 WHERE customer_id IN ($c0, $c1)) v2" >/dev/null
cat >"$work/recommend.sql" <<EOF
\set id random($min_id, $max_id)
SELECT recsys_proxy.recommend(:id);
EOF
"$PGBIN/pgbench" -n -h "$proxy_dir" -p "$port" -d recsys_proxy -f "$work/recommend.sql" -c 4 -j 2 -T 12 >"$work/pgbench.log" 2>&1 &
bench_pid=$!
pids+=("$bench_pid")
(
    end=$(($(date +%s) + 11))
    while [ "$(date +%s)" -lt "$end" ]; do
        qp -c "INSERT INTO monitor SELECT clock_timestamp(),
                   (SELECT array_agg(status || ':' || coalesce(production_version, 0) ORDER BY shard) FROM recsys_proxy.shard_status()),
                   (SELECT array_agg(products::text ORDER BY customer_id) FROM recsys_proxy.recommend_many(ARRAY[$c0, $c1]::bigint[]))" \
            >/dev/null 2>>"$work/monitor.err"
    done
) &
monitor_pid=$!
pids+=("$monitor_pid")
sleep 3
# Held for 3 s after the first shard's COMMIT PREPARED: shard 0 is on v2, shard 1 still on v1.
promote_out=$(qp -c "SET recsys_proxy.pause_at = 'first_commit'" -c "SET recsys_proxy.pause_seconds = 3" \
                 -c "CALL recsys_proxy.promote('default', 2, force => true, reason => 'promote under load')" 2>&1)
promote_rc=$?
wait "$bench_pid"
bench_rc=$?
wait "$monitor_pid"
tx=$(grep -oP 'number of transactions actually processed: \K[0-9]+' "$work/pgbench.log")
fails=$(grep -oP 'number of failed transactions: \K[0-9]+' "$work/pgbench.log")
if [ "$promote_rc" = 0 ] && [ "$bench_rc" = 0 ] && [ "${tx:-0}" -gt 0 ] && [ "${fails:-x}" = 0 ] && ! grep -q 'aborted' "$work/pgbench.log"; then
    ok "promote v2 through the proxy during pgbench of recommend() (4 clients, 12 s): $tx calls, 0 failed"
else
    cat "$work/pgbench.log"; echo "$promote_out"
    not_ok "promote during pgbench (promote rc $promote_rc, pgbench rc $bench_rc, $tx calls, ${fails:-?} failed)"
fi
read -r samples mixed window v1s v2s <<<"$(qp -F ' ' -c "
SELECT count(*), count(*) FILTER (WHERE answer IS DISTINCT FROM e.v1 AND answer IS DISTINCT FROM e.v2),
       count(*) FILTER (WHERE states[1] LIKE '%:2' AND states[2] LIKE '%:1'), count(*) FILTER (WHERE answer = e.v1),
       count(*) FILTER (WHERE answer = e.v2)
  FROM monitor, expected e")"
if [ "${samples:-0}" -gt 0 ] && [ "$mixed" = 0 ] && [ "$window" -gt 0 ] && [ "$v1s" -gt 0 ] && [ "$v2s" -gt 0 ]; then
    ok "never a mixed state: $samples monitor calls over customers of both shards, $v1s all-v1, $v2s all-v2, 0 mixed; $window of them while shard 0 had committed v2 and shard 1 had not"
else
    head -n 5 "$work/monitor.err"
    not_ok "mixed state check ($samples samples, $mixed mixed, $window in the window, $v1s v1, $v2s v2)"
fi
check "after the promote: every shard on v2, pinned v2, transaction committed" qp "
SELECT (SELECT array_agg(status || ':' || production_version ORDER BY shard) FROM recsys_proxy.shard_status()) = '{ok:2,ok:2}'
       AND recsys_proxy.pinned_version('default') = 2
       AND (SELECT state FROM recsys_proxy.transactions ORDER BY id DESC LIMIT 1) = 'committed'"

# ---------------------------------------------------------------------------------------------
# Crashes of the proxy inside the 2PC window, recovered by recsys_proxy.resolve_prepared()
# ---------------------------------------------------------------------------------------------
prepared_on() { qs "$1" -c "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'recsys\_proxy\_%'"; }
crash_proxy_at() {  # POINT SQL: runs SQL paused at POINT, crashes the proxy (immediate stop) there, restarts it
    qp -c "SET recsys_proxy.pause_at = '$1'" -c "SET recsys_proxy.pause_seconds = 30" -c "$2" >/dev/null 2>&1 &
    local call=$!
    for _ in $(seq 1 100); do
        if [ "$1" = prepared ]; then
            [ "$(prepared_on 0)" = 1 ] && [ "$(prepared_on 1)" = 1 ] && break
        else
            [ "$(prepared_on 0)" = 0 ] && [ "$(prepared_on 1)" = 1 ] && break
        fi
        sleep 0.1
    done
    sleep 0.3
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$proxy_dir/data" -m immediate -w stop >/dev/null
    else
        "$PGBIN/pg_ctl" -D "$proxy_dir/data" -m immediate -w stop >/dev/null
    fi
    wait "$call"
    "$root/scripts/pg_cluster.sh" start "$proxy_dir" "$port"
}

# 1. Crash after both shards prepared a registration, before the decision: presumed abort.
crash_proxy_at prepared "CALL recsys_proxy.register_model('default', decode(pg_read_file('$work/model1.hex'), 'hex'))"
check "crash before the decision: each shard holds one prepared transaction, the proxy's log says preparing" qp "
SELECT (SELECT array_agg(prepared_transactions || ':' || status ORDER BY shard) FROM recsys_proxy.shard_status())
           = '{1:in doubt,1:in doubt}'
       AND (SELECT state FROM recsys_proxy.transactions ORDER BY id DESC LIMIT 1) = 'preparing'"
got=$(sqlstate_of qp "CALL recsys_proxy.promote('default', 1, force => true, reason => 'must wait')")
if [ "$got" = 55000 ]; then ok "a new registry change is refused while one is in doubt (55000)"
else not_ok "registry change while in doubt: got $got, expected 55000"; fi
check "serving goes on while in doubt (pinned v2 on both shards)" qp "
SELECT array_agg(products::text ORDER BY customer_id) = (SELECT v2 FROM expected)
  FROM recsys_proxy.recommend_many(ARRAY[$c0, $c1]::bigint[])"
resolved=$(qp -c "SELECT string_agg(shard || ':' || action || ':' || outcome, ',' ORDER BY shard) FROM recsys_proxy.resolve_prepared()" 2>&1)
check "resolve_prepared() rolls both back ($resolved): no version 3 anywhere, nothing prepared, log aborted, status ok" qp "
SELECT '$resolved' = '0:register:rolled back,1:register:rolled back'
       AND (SELECT array_agg(prepared_transactions || ':' || status || ':' || production_version ORDER BY shard)
              FROM recsys_proxy.shard_status()) = '{0:ok:2,0:ok:2}'
       AND (SELECT state FROM recsys_proxy.transactions ORDER BY id DESC LIMIT 1) = 'aborted'
       AND (SELECT count(*) FROM dblink('host=${shard_dirs[0]} port=${ports[0]} dbname=recsys_shard',
                'SELECT version FROM recsys.models WHERE version > 2') AS t(v integer)) = 0
       AND (SELECT count(*) FROM dblink('host=${shard_dirs[1]} port=${ports[1]} dbname=recsys_shard',
                'SELECT version FROM recsys.models WHERE version > 2') AS t(v integer)) = 0"

# 2. Crash after the decision to roll back to v1, with shard 0 committed and shard 1 still prepared.
crash_proxy_at first_commit "CALL recsys_proxy.rollback('default', 'sharding test')"
check "crash after the decision: shard 0 on v1, shard 1 still on v2 with its change prepared, the proxy pins v1" qp "
SELECT (SELECT array_agg(production_version || ':' || prepared_transactions ORDER BY shard) FROM recsys_proxy.shard_status())
           = '{1:0,2:1}'
       AND recsys_proxy.pinned_version('default') = 1
       AND (SELECT state FROM recsys_proxy.transactions ORDER BY id DESC LIMIT 1) = 'committing'"
check "serving while in doubt is not mixed: customers of both shards get v1 (the decided version)" qp "
SELECT array_agg(products::text ORDER BY customer_id) = (SELECT v1 FROM expected)
  FROM recsys_proxy.recommend_many(ARRAY[$c0, $c1]::bigint[])"
resolved=$(qp -c "SELECT string_agg(shard || ':' || action || ':' || outcome, ',' ORDER BY shard) FROM recsys_proxy.resolve_prepared()" 2>&1)
check "resolve_prepared() commits the rest ($resolved): both shards on v1, log committed, status ok" qp "
SELECT '$resolved' = '1:rollback:committed'
       AND (SELECT array_agg(status || ':' || production_version ORDER BY shard) FROM recsys_proxy.shard_status()) = '{ok:1,ok:1}'
       AND (SELECT state FROM recsys_proxy.transactions ORDER BY id DESC LIMIT 1) = 'committed'"
check "resolve_prepared() again: nothing left to do" qp "SELECT count(*) = 0 FROM recsys_proxy.resolve_prepared()"

# ---------------------------------------------------------------------------------------------
# A shard that is down
# ---------------------------------------------------------------------------------------------
"$root/scripts/pg_cluster.sh" stop "${shard_dirs[1]}"
down_err=$(qp -v VERBOSITY=verbose -c "SELECT recsys_proxy.recommend($c1)" 2>&1 | head -n 1)
if echo "$down_err" | grep -q "^ERROR:  08006: recsys shard 1 is unreachable; customer $c1 cannot be served"; then
    ok "shard 1 down: its customer gets a clear error (${down_err#ERROR:  })"
else
    not_ok "shard 1 down: error for its customer was: $down_err"
fi
check "shard 1 down: shard 0's customers are still served (recommend and recommend_many)" qp "
SELECT recsys_proxy.recommend($c0) = (SELECT products FROM reference_v1 WHERE customer_id = $c0)
       AND (SELECT count(*) FROM recsys_proxy.recommend_many(
                ARRAY(SELECT customer_id FROM reference_v1 WHERE recsys_proxy.shard_of(customer_id, 2) = 0 LIMIT 100))) = 100"
got=$(sqlstate_of qp "SELECT count(*) FROM recsys_proxy.recommend_many(ARRAY[$c0, $c1]::bigint[])")
if [ "$got" = 08006 ]; then ok "shard 1 down: recommend_many over customers of both shards fails with 08006"
else not_ok "shard 1 down: recommend_many over both shards gave $got, expected 08006"; fi
check "shard 1 down: shard_status says unreachable for shard 1 only" qp "
SELECT array_agg(status ORDER BY shard) = '{ok,unreachable}' FROM recsys_proxy.shard_status()"
got=$(sqlstate_of qp "CALL recsys_proxy.promote('default', 2, force => true, reason => 'shard down')")
check "shard 1 down: a promote through the proxy fails ($got) and changes no shard" qp "
SELECT '$got' <> 'none' AND recsys_proxy.pinned_version('default') = 1
       AND (SELECT production_version FROM recsys_proxy.shard_status() WHERE shard = 0) = 1
       AND (SELECT state FROM recsys_proxy.transactions ORDER BY id DESC LIMIT 1) = 'aborted'"
"$root/scripts/pg_cluster.sh" start "${shard_dirs[1]}" "${ports[1]}"
check "shard 1 back: its customers are served again through the same proxy" qp "
SELECT recsys_proxy.recommend($c1) = (SELECT products FROM reference_v1 WHERE customer_id = $c1)"

# ---------------------------------------------------------------------------------------------
# The promotion gate through the proxy: each shard validates v2 against v1 on its own customers;
# a promote without force commits exactly when every shard passed, and changes nothing otherwise
# ---------------------------------------------------------------------------------------------
validations=$(qp -F '|' -c "SELECT shard, passed, production_version, round(difference::numeric, 5) FROM recsys_proxy.validate('default', 2) ORDER BY shard" 2>&1)
n_rows=$(echo "$validations" | grep -c '^[01]|')
all_passed=$(echo "$validations" | awk -F'|' 'BEGIN { p = "t" } /^[01]\|/ { if ($2 != "t") p = "f" } END { print p }')
if [ "$n_rows" = 2 ] && echo "$validations" | awk -F'|' '/^[01]\|/ && $3 != 1 { bad = 1 } END { exit bad }'; then
    ok "recsys_proxy.validate: one record per shard against production v1 (shard|passed|production|difference: $(echo "$validations" | tr '\n' ' '))"
else
    not_ok "recsys_proxy.validate: expected 2 rows against v1, got: $validations"
fi
check "each shard keeps its own validation record of v2" qp "
SELECT bool_and(n = 1) FROM (
    SELECT count(*) AS n FROM dblink('host=${shard_dirs[0]} port=${ports[0]} dbname=recsys_shard',
        'SELECT 1 FROM recsys.model_validations WHERE name = ''default'' AND candidate_version = 2') AS t(x integer)
    UNION ALL
    SELECT count(*) FROM dblink('host=${shard_dirs[1]} port=${ports[1]} dbname=recsys_shard',
        'SELECT 1 FROM recsys.model_validations WHERE name = ''default'' AND candidate_version = 2') AS t(x integer)) s"
gated=$(sqlstate_of qp "CALL recsys_proxy.promote('default', 2)")
if [ "$all_passed" = t ]; then
    check "every shard passed: the gated promote through the proxy committed v2 on every shard ($gated)" qp "
SELECT '$gated' = 'none' AND recsys_proxy.pinned_version('default') = 2
       AND (SELECT bool_and(production_version = 2 AND status = 'ok') FROM recsys_proxy.shard_status())"
else
    check "a shard failed its gate: the gated promote failed ($gated) and changed no shard" qp "
SELECT '$gated' <> 'none' AND recsys_proxy.pinned_version('default') = 1
       AND (SELECT bool_and(production_version = 1) FROM recsys_proxy.shard_status())
       AND (SELECT state FROM recsys_proxy.transactions ORDER BY id DESC LIMIT 1) = 'aborted'"
fi
# A gate rule no candidate can meet on shard 0 only (MAP@7 of at least 1): the other version fails
# there whatever it scores, so the gated promote must fail on every shard.
prod=$(qp -c "SELECT recsys_proxy.pinned_version('default')")
cand=$((3 - prod))
qs 0 -c "SELECT recsys.set_gate_rule('default', '{\"min_map7\": 1}')" >/dev/null
failing=$(qp -F '|' -c "SELECT shard, passed FROM recsys_proxy.validate('default', $cand) ORDER BY shard" 2>&1 | tr '\n' ' ')
gated=$(sqlstate_of qp "CALL recsys_proxy.promote('default', $cand)")
check "shard 0 fails its gate (validations: $failing): the gated promote of v$cand failed ($gated) and every shard keeps v$prod" qp "
SELECT '$failing' LIKE '0|f %' AND '$gated' <> 'none' AND recsys_proxy.pinned_version('default') = $prod
       AND (SELECT bool_and(production_version = $prod AND status = 'ok') FROM recsys_proxy.shard_status())
       AND (SELECT state FROM recsys_proxy.transactions ORDER BY id DESC LIMIT 1) = 'aborted'"
qs 0 -c "DELETE FROM recsys.gate_rules WHERE name = 'default'" >/dev/null

finish
