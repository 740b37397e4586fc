#!/usr/bin/env bash
# Hot standby replicas (docs/scale-out.md, "Read replicas"): a primary with generated data and
# two trained versions, and a streaming-replication standby made with pg_basebackup -R. Checks:
#   - parity: recommend_many() for every customer, recommend() and recommend_scores() for a
#     sample and the rows of recsys.recommendations are identical on the standby and the primary;
#   - the read path writes nothing on the standby: with recsys.log_sample_rate = 1 and a shadow
#     version sampling every call, recommend() succeeds there, and the prediction-log and shadow
#     writes are skipped and counted (prediction_log_counters(), shadow_counters());
#   - a promote and a rollback on the primary (5 times each) reach the standby with WAL: a standby session that
#     has the old version cached scores with the new one on its next transaction. The delay from
#     the primary's COMMIT returning to the first standby call that used the new version is
#     measured and printed (a tight loop of one-statement transactions on the standby).
#
# Clusters: a temporary directory, ports RECSYS_REPLICA_PORT (default 55570, the primary) and
# the next one (the standby), started with scripts/pg_cluster.sh (recsys preloaded); both are
# stopped at the end, on failure too. Data: RECSYS_REPLICA_CUSTOMERS (default 3000) customers x
# 8 months. About a minute on two cores. Prints "ok - ..." / "not ok - ..." lines and
# "N passed, M failed" last; exits 1 on any failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
port=${RECSYS_REPLICA_PORT:-55570}
standby_port=$((port + 1))
customers=${RECSYS_REPLICA_CUSTOMERS:-3000}
db=recsys_replica
export OPENBLAS_NUM_THREADS=1
# shellcheck source=tests/integration/tap.sh
. "$root/tests/integration/tap.sh" replica

tmp=$(mktemp -d "${RECSYS_REPLICA_TMP:-/tmp}/recsys-replica.XXXXXX")
chmod 755 "$tmp"
primary=$tmp/primary
standby=$tmp/standby
cleanup() {
    "$root/scripts/pg_cluster.sh" stop "$standby" >/dev/null 2>&1
    "$root/scripts/pg_cluster.sh" stop "$primary" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

export PGUSER=postgres PGDATABASE=$db PGOPTIONS="-c client_min_messages=warning"
on_primary() { PGHOST=$primary PGPORT=$port timeout 300 "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
on_standby() { PGHOST=$standby PGPORT=$standby_port timeout 300 "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

# ---------------------------------------------------------------------------------------------
# The primary: data, version 1 in production, version 2 as a shadow sampling every call
# ---------------------------------------------------------------------------------------------
if ! PGBIN=$PGBIN timeout 120 "$root/scripts/pg_cluster.sh" start "$primary" "$port" >"$tmp/start.log" 2>&1; then
    cat "$tmp/start.log"
    not_ok "the primary starts on port $port"
    finish
fi
PGDATABASE=postgres on_primary "CREATE DATABASE $db" >/dev/null
t0=$(date +%s)
if ! out=$(on_primary "
CREATE EXTENSION recsys;
CREATE SCHEMA santander;
CREATE TABLE santander.snapshots AS SELECT * FROM recsys.generate_santander($customers, 8, 7);
ALTER TABLE santander.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
ANALYZE santander.snapshots;
SELECT max(fecha_dato) FROM santander.snapshots" 2>&1); then
    echo "$out"
    not_ok "generated data on the primary"
    finish
fi
latest=$out
v1=$(on_primary "SELECT recsys.train('default', 'santander.snapshots', train_months => 3, window_months => 4,
                                     hidden => 16, epochs => 2, learning_rate => 0.01)" 2>&1)
v2=$(on_primary "SELECT recsys.train('default', 'santander.snapshots', train_months => 3, window_months => 4,
                                     hidden => 24, epochs => 2, learning_rate => 0.02)" 2>&1)
if [[ "$v1" =~ ^[0-9]+$ ]] && [[ "$v2" =~ ^[0-9]+$ ]]; then
    ok "primary on port $port: $customers customers x 8 months, versions $v1 and $v2 trained ($(($(date +%s) - t0)) s)"
else
    not_ok "training on the primary: $v1 / $v2"
    finish
fi
if ! out=$(on_primary "SELECT recsys.promote('default', $v1, force => true, reason => 'replica test');
                       SELECT recsys.set_shadow('default', $v2, 1.0);
                       SELECT recsys.refresh_recommendations('default')" 2>&1); then
    echo "$out"
    not_ok "promote, set_shadow and refresh_recommendations on the primary"
    finish
fi

# ---------------------------------------------------------------------------------------------
# The standby: pg_basebackup -R, started beside it
# ---------------------------------------------------------------------------------------------
mkdir -p "$standby"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$standby"
if ! as_owner timeout 120 "$PGBIN/pg_basebackup" -h "$primary" -p "$port" -U postgres -D "$standby/data" -R -X stream \
        -c fast >"$tmp/basebackup.log" 2>&1; then
    cat "$tmp/basebackup.log"
    not_ok "pg_basebackup -R from the primary"
    finish
fi
if ! PGBIN=$PGBIN timeout 120 "$root/scripts/pg_cluster.sh" start "$standby" "$standby_port" >"$tmp/start2.log" 2>&1; then
    cat "$tmp/start2.log"
    not_ok "the standby starts on port $standby_port"
    finish
fi
in_recovery=$(on_standby "SELECT pg_catalog.pg_is_in_recovery()" 2>&1)
streaming=$(on_primary "SELECT count(*) FROM pg_catalog.pg_stat_replication WHERE state = 'streaming'" 2>&1)
[ "$in_recovery" = t ] && [ "$streaming" = 1 ] && ok "standby on port $standby_port is in recovery and streaming from the primary" ||
    not_ok "standby: pg_is_in_recovery = $in_recovery, streaming senders on the primary = $streaming"
# The standby has replayed everything the primary has written so far.
lsn=$(on_primary "SELECT pg_catalog.pg_current_wal_lsn()")
for _ in $(seq 100); do
    [ "$(on_standby "SELECT pg_catalog.pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && break
    sleep 0.1
done

# ---------------------------------------------------------------------------------------------
# Parity: the same answers on both
# ---------------------------------------------------------------------------------------------
compare() {  # compare DESCRIPTION SQL-returning-one-text
    local a b
    a=$(on_primary "$2" 2>&1)
    b=$(on_standby "$2" 2>&1)
    if [ -n "$a" ] && [ "$a" = "$b" ]; then ok "$1"; else not_ok "$1 (primary: ${a:0:200} / standby: ${b:0:200})"; fi
}
ids="SELECT DISTINCT ncodpers FROM santander.snapshots"
compare "recommend_many() for all $customers customers: identical on the standby" \
    "SELECT count(*) || ' ' || md5(string_agg(customer_id || ':' || products::text || scores::text, ';' ORDER BY customer_id))
       FROM recsys.recommend_many(ARRAY($ids))"
compare "recommend() for all $customers customers: identical on the standby" \
    "SELECT count(*) || ' ' || md5(string_agg(id || ':' || recsys.recommend(id)::text, ';' ORDER BY id))
       FROM ($ids) c(id)"
compare "recommend_scores() for 500 customers: identical on the standby" \
    "SELECT count(*) || ' ' || md5(string_agg(c.id || ':' || s.rank || s.product || s.score::text, ';' ORDER BY c.id, s.rank))
       FROM (SELECT DISTINCT ncodpers FROM santander.snapshots ORDER BY 1 LIMIT 500) c(id), recsys.recommend_scores(c.id) s"
compare "recsys.recommendations: the same $customers rows on the standby" \
    "SELECT count(*) || ' ' || md5(string_agg(customer_id || ':' || model_version || products::text || scores::text, ';' ORDER BY customer_id))
       FROM recsys.recommendations WHERE model_name = 'default'"
n_recs=$(on_primary "SELECT count(*) FROM recsys.recommendations WHERE model_name = 'default'")
[ "$n_recs" = "$customers" ] && ok "the primary's refresh stored $n_recs recommendations" || not_ok "recommendations stored: $n_recs"

# ---------------------------------------------------------------------------------------------
# The read path writes nothing on the standby: logging and shadow writes skipped and counted
# ---------------------------------------------------------------------------------------------
log_rows="SELECT (SELECT count(*) FROM recsys.prediction_log) || '/' || (SELECT count(*) FROM recsys.shadow_log)"
logged_before=$(on_primary "$log_rows")
out=$(PGHOST=$standby PGPORT=$standby_port PGOPTIONS="-c client_min_messages=notice" timeout 120 "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 2>&1 <<SQL
SET recsys.log_sample_rate = 1;
SELECT count(recsys.recommend(id)) FROM (SELECT DISTINCT ncodpers FROM santander.snapshots ORDER BY 1 LIMIT 50) c(id);
SELECT count(*) FROM (SELECT DISTINCT ncodpers FROM santander.snapshots ORDER BY 1 OFFSET 50 LIMIT 10) c(id), recsys.recommend_scores(c.id, k => 3);
SELECT 'log', * FROM recsys.prediction_log_counters();
SELECT 'shadow', * FROM recsys.shadow_counters();
SQL
)
echo "$out" | sed 's/^/   /'
if echo "$out" | grep -q "ERROR\|WARNING"; then
    not_ok "the read path with logging and shadow scoring on the standby raised an error or warning"
else
    ok "recommend() and recommend_scores() with log_sample_rate = 1 and a shadow at sample 1.0 succeed on the standby, no warning"
fi
echo "$out" | grep -qx "log|60|0|60|0" && ok "prediction log on the standby: 60 calls sampled, 0 logged, 60 skipped and counted, 0 errors" ||
    not_ok "prediction log counters on the standby: $(echo "$out" | grep '^log')"
echo "$out" | grep -qx "shadow|60|0|60|0" && ok "shadow scoring on the standby: 60 calls sampled, 0 logged, 60 skipped and counted, 0 errors" ||
    not_ok "shadow counters on the standby: $(echo "$out" | grep '^shadow')"
# (The primary's own parity calls above were shadowed and logged there: those rows stay.)
logged_after=$(on_primary "$log_rows")
[ "$logged_before" = "$logged_after" ] && ok "the standby's calls added no row to the prediction and shadow logs (primary: $logged_after rows)" ||
    not_ok "log rows on the primary before / after the standby's calls: $logged_before / $logged_after"

# Writers belong on the primary: on the standby they fail with PostgreSQL's read-only error.
out=$(PGHOST=$standby PGPORT=$standby_port "$PGBIN/psql" -XAtq -v VERBOSITY=verbose \
        -c "SELECT recsys.promote('default', $v2, force => true, reason => 'replica test')" 2>&1)
echo "$out" | grep -q "^ERROR:  25006" && ok "promote() on the standby fails with 25006 (read-only transaction)" ||
    not_ok "promote() on the standby: $out"

# ---------------------------------------------------------------------------------------------
# A promote and a rollback reach the standby's warm sessions with WAL
# ---------------------------------------------------------------------------------------------
# One customer whose scores differ between the versions tells which version a call used.
probe=$(on_primary "SELECT id FROM (SELECT DISTINCT ncodpers FROM santander.snapshots ORDER BY 1 LIMIT 50) c(id)
                     WHERE recsys.score_customer(id, version => $v1) <> recsys.score_customer(id, version => $v2) LIMIT 1")
if ! [[ "$probe" =~ ^[0-9]+$ ]]; then not_ok "no customer scored differently by versions $v1 and $v2"; finish; fi
out=$(timeout 120 /usr/bin/python3 - "$primary" "$port" "$standby" "$standby_port" "$db" "$probe" "$v1" "$v2" 2>&1 <<'PY'
import sys, time
import psycopg2
primary, pport, standby, sport, db, probe, v1, v2 = sys.argv[1:]
P = psycopg2.connect(host=primary, port=pport, user="postgres", dbname=db)
S = psycopg2.connect(host=standby, port=sport, user="postgres", dbname=db)
S.autocommit = True  # every standby call its own transaction
cur_p, cur_s = P.cursor(), S.cursor()
def scores(cur, version):
    cur.execute("SELECT recsys.score_customer(%s, version => %s)::text", (int(probe), version))
    return cur.fetchone()[0]
want = {v1: scores(cur_s, int(v1)), v2: scores(cur_s, int(v2))}
assert want[v1] != want[v2]
def production_on_standby():
    cur_s.execute("SELECT recsys.score_customer(%s)::text", (int(probe),))
    got = cur_s.fetchone()[0]
    return next((v for v, s in want.items() if s == got), "?")
assert production_on_standby() == v1, "the standby does not start on version " + v1
delays = {"promote": [], "rollback": []}
for round_ in range(5):
    for step, sql, new in (("promote", "SELECT recsys.promote('default', %s, force => true, reason => 'replica test')" % v2, v2),
                           ("rollback", "SELECT recsys.rollback('default', reason => 'replica test')", v1)):
        cur_p.execute(sql)
        P.commit()
        committed = time.monotonic()
        calls = 0
        while True:
            calls += 1
            seen = production_on_standby()
            if seen == new:
                break
            if time.monotonic() - committed > 30:
                print("%s: standby still on version %s after 30 s" % (step, seen)); sys.exit(1)
        delay = (time.monotonic() - committed) * 1000
        delays[step].append(delay)
        print("%s to version %s: first standby call with it %.1f ms after COMMIT returned on the primary (%d standby calls)"
              % (step, new, delay, calls))
for step, d in delays.items():
    d.sort()
    print("%s, 5 times: delay median %.1f ms, max %.1f ms" % (step, d[2], d[4]))
PY
)
rc=$?
echo "$out" | sed 's/^/   /'
[ $rc = 0 ] && echo "$out" | grep -q "^promote to version $v2" && ok "a promote on the primary reaches a warm standby session on its next transaction once replayed" ||
    not_ok "promote replayed on the standby"
[ $rc = 0 ] && echo "$out" | grep -q "^rollback to version $v1" && ok "a rollback on the primary reaches a warm standby session on its next transaction once replayed" ||
    not_ok "rollback replayed on the standby"

finish
