#!/usr/bin/env bash
# Failover with pg_auto_failover (docs/scale-out.md, "Failover with pg_auto_failover"): a
# monitor, a primary and a secondary (pg_autoctl, Debian's postgresql-15-auto-failover), a
# trained model in production. Clients call recommend() through a multi-host connection string
# with target_session_attrs=read-write while a writer registers and promotes versions; the
# primary's machine dies (kill -9 of its pg_autoctl keeper and PostgreSQL, process group and
# all). Checks: the secondary is promoted, the clients reconnect and go on, and every
# registration and promote whose COMMIT returned is present on the new primary (the registry is
# replicated synchronously: pg_auto_failover sets synchronous_standby_names while a secondary is
# healthy). Prints the seconds without service and the failed calls.
#
# The monitor's health checks are tightened for the test (a check a second, a node unhealthy
# after 3 s) so that failover takes seconds, not the defaults' ~30 s; docs/scale-out.md says
# what a bank should keep. Ports RECSYS_FAILOVER_PORT (default 55575, the monitor) and the next
# two (the nodes), on 127.0.0.1; pg_autoctl runs as the postgres user with PGBIN's pg_ctl and
# keeps its state under the test's temporary directory. Everything it started is stopped at the
# end, on failure too (RECSYS_FAILOVER_KEEP=1 keeps the temporary directory and its logs). About
# 1.5 minutes on two cores. Prints "ok - ..." / "not ok - ..." lines
# and "N passed, M failed" last; exits 1 on any failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PG_AUTOCTL=${PG_AUTOCTL:-/usr/bin/pg_autoctl}
monitor_port=${RECSYS_FAILOVER_PORT:-55575}
port1=$((monitor_port + 1))
port2=$((monitor_port + 2))
customers=${RECSYS_FAILOVER_CUSTOMERS:-2000}
db=recsys_failover
export OPENBLAS_NUM_THREADS=1
# shellcheck source=tests/integration/tap.sh
. "$root/tests/integration/tap.sh" failover

tmp=$(mktemp -d "${RECSYS_FAILOVER_TMP:-/tmp}/recsys-failover.XXXXXX")
chmod 755 "$tmp"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$tmp"
# pg_autoctl keeps its configuration, state and pid files under the XDG directories.
# PGHOST is left out: pg_autoctl reaches its local PostgreSQL through PGHOST, which must then
# be that server's own socket directory (the default), not the caller's (tests/run_all.sh exports its own).
autoctl_env=(env -u PGHOST -u PGPORT -u PGDATABASE XDG_CONFIG_HOME="$tmp/xdg/config" XDG_DATA_HOME="$tmp/xdg/data" XDG_RUNTIME_DIR="$tmp/xdg/run"
             PG_CONFIG="$PGBIN/pg_config" PGCONNECT_TIMEOUT=5)
as_owner mkdir -p "$tmp/xdg/run"
autoctl() { as_owner "${autoctl_env[@]}" "$PG_AUTOCTL" "$@"; }
# Starts a pg_autoctl service in its own process group (setsid), so that a hard stop can kill
# the keeper and its PostgreSQL together, as a dying machine would.
declare -A service_pid
start_service() {  # NAME ARGS...
    local name=$1
    shift
    as_owner setsid "${autoctl_env[@]}" "$PG_AUTOCTL" "$@" >"$tmp/$name.log" 2>&1 &
    service_pid[$name]=$!
}
# The pg_autoctl supervisor of a node: it leads its own process group (setsid, then exec).
keeper_pid() { head -n 1 "$tmp/xdg/run/pg_autoctl$tmp/$1/pg_autoctl.pid" 2>/dev/null; }
cleanup() {
    for name in node2 node1 monitor; do
        [ -d "$tmp/$name" ] && as_owner "${autoctl_env[@]}" timeout 30 "$PG_AUTOCTL" stop --pgdata "$tmp/$name" >/dev/null 2>&1
    done
    for name in node2 node1 monitor; do
        local pid
        pid=$(keeper_pid "$name")
        # A stopping keeper stops its PostgreSQL (fast) first: give it 20 s, then kill it.
        for _ in $(seq 200); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
        if [ -f "$tmp/$name/postmaster.pid" ]; then
            as_owner "$PGBIN/pg_ctl" -D "$tmp/$name" -m immediate -w stop >/dev/null 2>&1
        fi
    done
    # pg_autoctl stop returns before PostgreSQL has finished its shutdown checkpoint.
    for name in node2 node1 monitor; do
        for _ in $(seq 100); do [ -f "$tmp/$name/postmaster.pid" ] || break; sleep 0.1; done
    done
    [ -n "${RECSYS_FAILOVER_KEEP:-}" ] && { echo "kept the logs in $tmp"; return; }
    rm -rf "$tmp"
}
trap cleanup EXIT
export PGOPTIONS="-c client_min_messages=warning"
psql_at() { timeout 60 "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 "$@"; }
node_sql() { PGCONNECT_TIMEOUT=5 psql_at "host=127.0.0.1 port=$1 user=postgres dbname=$db" -c "$2"; }
state() { autoctl show state --pgdata "$tmp/monitor" 2>&1; }
wait_for() {  # wait_for SECONDS COMMAND... : until the command succeeds
    local until=$(($(date +%s) + $1))
    shift
    while [ "$(date +%s)" -lt "$until" ]; do "$@" && return 0; sleep 1; done
    return 1
}

# ---------------------------------------------------------------------------------------------
# Monitor, primary, secondary
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
if ! autoctl create monitor --pgctl "$PGBIN/pg_ctl" --pgdata "$tmp/monitor" --pgport "$monitor_port" \
        --hostname 127.0.0.1 --auth trust --no-ssl >"$tmp/create-monitor.log" 2>&1; then
    tail -n 20 "$tmp/create-monitor.log"
    not_ok "pg_autoctl create monitor"
    finish
fi
# The monitor listens on every address by default; the test keeps it on the loopback.
autoctl config set --pgdata "$tmp/monitor" postgresql.listen_addresses 127.0.0.1 >/dev/null 2>&1 ||
    not_ok "pg_autoctl config set postgresql.listen_addresses on the monitor"
start_service monitor run --pgdata "$tmp/monitor"
monitor_uri="postgres://autoctl_node@127.0.0.1:$monitor_port/pg_auto_failover?sslmode=disable"
monitor_ready() { psql_at "$monitor_uri" -c "SELECT 1" >/dev/null 2>&1; }
wait_for 60 monitor_ready || { tail -n 20 "$tmp/monitor.log"; not_ok "the monitor runs on port $monitor_port"; finish; }
# Failover in seconds for the test: a health check a second, a node unhealthy after 3 s, and
# the secondary promoted 5 s after the old primary was told to demote (the default waits 30 s
# for an unreachable primary to have demoted itself; each node's keeper is set below to demote
# itself after 3 s without the monitor and the secondary, within those 5 s).
out=$(psql_at "host=127.0.0.1 port=$monitor_port user=postgres dbname=pg_auto_failover" \
    -c "ALTER SYSTEM SET pgautofailover.health_check_period = 1000" \
    -c "ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000" \
    -c "ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1" \
    -c "ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500" \
    -c "ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 3000" \
    -c "ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 5000" \
    -c "SELECT pg_catalog.pg_reload_conf()" 2>&1) || not_ok "monitor settings: $out"

create_node() {  # NAME PORT
    start_service "$1" create postgres --pgctl "$PGBIN/pg_ctl" --pgdata "$tmp/$1" --pgport "$2" --hostname 127.0.0.1 \
        --listen 127.0.0.1 --auth trust --no-ssl --monitor "$monitor_uri" --name "$1" --dbname "$db" --run
}
node_state_is() { state | grep -qE "^ *$1 .*\| *$2 *\| *$2 *$"; }
create_node node1 "$port1"
wait_for 90 node_state_is node1 single || { state; tail -n 20 "$tmp/node1.log"; not_ok "node1 becomes a single primary"; finish; }
create_node node2 "$port2"
# pg_autoctl's pg_basebackup waits for a checkpoint; a CHECKPOINT on node1 makes it immediate.
secondary_ready() {
    node_sql "$port1" "CHECKPOINT" >/dev/null 2>&1
    node_state_is node2 secondary && node_state_is node1 primary
}
wait_for 120 secondary_ready || { state; tail -n 20 "$tmp/node2.log"; not_ok "node2 becomes the secondary of node1"; finish; }
for name in node1 node2; do
    autoctl config set --pgdata "$tmp/$name" timeout.network_partition_timeout 3 >/dev/null 2>&1 ||
        not_ok "pg_autoctl config set timeout.network_partition_timeout on $name"
done
sync_names=$(node_sql "$port1" "SHOW synchronous_standby_names")
sync_commit=$(node_sql "$port1" "SHOW synchronous_commit")
ok "monitor, primary node1 (port $port1) and secondary node2 (port $port2) in $(($(date +%s) - t0)) s; \
synchronous_standby_names = '$sync_names', synchronous_commit = $sync_commit"
[[ "$sync_names" == *pgautofailover_standby_2* ]] && [ "$sync_commit" = on ] &&
    ok "the primary commits synchronously: a COMMIT returns once node2 has the WAL" ||
    not_ok "synchronous replication is not set: '$sync_names', $sync_commit"

# ---------------------------------------------------------------------------------------------
# A model in production on the primary
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
v1=$(node_sql "$port1" "
CREATE EXTENSION recsys;
CREATE SCHEMA santander;
CREATE TABLE santander.snapshots AS SELECT * FROM recsys.generate_santander($customers, 6, 11);
ALTER TABLE santander.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
ANALYZE santander.snapshots;
SELECT recsys.train('default', 'santander.snapshots', train_months => 2, window_months => 3, hidden => 8, epochs => 1);" 2>&1)
if [[ "$v1" =~ ^[0-9]+$ ]] && node_sql "$port1" "SELECT recsys.promote('default', $v1, force => true, reason => 'failover test')" >/dev/null; then
    ok "version $v1 trained on node1 and promoted ($(($(date +%s) - t0)) s)"
else
    not_ok "training on node1: $v1"
    finish
fi

# ---------------------------------------------------------------------------------------------
# Clients and a writer through a multi-host connection string; node1's machine dies
# ---------------------------------------------------------------------------------------------
dsn="host=127.0.0.1,127.0.0.1 port=$port1,$port2 user=postgres dbname=$db target_session_attrs=read-write connect_timeout=2"
kill_node1() {
    local keeper
    keeper=$(keeper_pid node1)
    [ -n "$keeper" ] && kill -KILL -- "-$keeper" 2>/dev/null
    [ -f "$tmp/node1/postmaster.pid" ] && kill -KILL "$(head -n 1 "$tmp/node1/postmaster.pid")" 2>/dev/null
    return 0
}
timeout 200 /usr/bin/python3 - "$dsn" "$v1" "$customers" "$tmp/kill" >"$tmp/clients.log" 2>&1 <<'PY' &
import os, random, sys, threading, time
import psycopg2
dsn, v1, kill_flag = sys.argv[1], int(sys.argv[2]), sys.argv[4]
lock = threading.Lock()
successes, failures = [], []   # (monotonic time, its connection's opening time) of calls that succeeded; times of failures
committed = []                 # (action, version) whose COMMIT returned
stop = threading.Event()
killed_at = [None]
opened_at = {}                 # connection -> when it was opened
with psycopg2.connect(dsn) as c, c.cursor() as cur:
    cur.execute("SELECT DISTINCT ncodpers FROM santander.snapshots")
    ids = [r[0] for r in cur.fetchall()]

def connect():
    while not stop.is_set():
        try:
            c = psycopg2.connect(dsn)
            c.autocommit = True
            opened_at[c] = time.monotonic()
            return c
        except psycopg2.Error:
            time.sleep(0.1)

def client(seed):
    rnd = random.Random(seed)
    conn = connect()
    while not stop.is_set():
        try:
            cur = conn.cursor()
            cur.execute("SELECT recsys.recommend(%s)", (rnd.choice(ids),))
            assert cur.fetchone()[0] is not None
            with lock: successes.append((time.monotonic(), opened_at[conn]))
        except psycopg2.Error:
            with lock: failures.append(time.monotonic())
            try: conn.close()
            except Exception: pass
            conn = connect()

def writer():
    conn = connect()
    n = 0
    while not stop.is_set():
        n += 1
        try:
            cur = conn.cursor()
            cur.execute("SELECT recsys.register_model('failover', (SELECT model FROM recsys.models WHERE name = 'default' AND version = %s))", (v1,))
            version = cur.fetchone()[0]
            with lock: committed.append(("register", version))
            cur.execute("SELECT recsys.promote('failover', %s, force => true, reason => 'failover test')", (version,))
            with lock: committed.append(("promote", version))
        except psycopg2.Error:
            try: conn.close()
            except Exception: pass
            conn = connect()
        time.sleep(0.1)

threads = [threading.Thread(target=client, args=(i,)) for i in range(4)] + [threading.Thread(target=writer)]
for t in threads: t.daemon = True; t.start()
start = time.monotonic()
time.sleep(5)
with open(kill_flag, "w") as f: f.write("kill\n")   # the shell kills node1 when it sees this
while not os.path.exists(kill_flag + ".done") and time.monotonic() - start < 60: time.sleep(0.01)
killed_at[0] = time.monotonic()
# Service is back with the first successful call on a connection opened after the kill (a call
# in flight on node1 may still have returned just after it). Run on until 5 s after that, at
# most 150 s.
def after_kill():
    with lock: return [t for t, opened in successes if opened > killed_at[0]]
while time.monotonic() - killed_at[0] < 150:
    after = after_kill()
    if after and time.monotonic() - after[0] > 5: break
    if not any(t.is_alive() for t in threads[:4]): break   # the clients died: an error in this script
    time.sleep(0.2)
stop.set()
for t in threads: t.join(10)
k = killed_at[0]
before = [t for t, opened in successes if opened <= k]
after = sorted(after_kill())
gap = (after[0] - max(before)) if after and before else float("nan")
print("successful calls: %d on connections to node1, %d on connections opened after the kill" % (len(before), len(after)))
print("seconds without service: %.2f (last successful call on node1 to the first on a connection opened after the kill)" % gap)
print("failed calls: %d (all of the run; each ended its connection, the client reconnected)" % len(failures))
for action, version in committed: print("committed %s %d" % (action, version))
sys.exit(0 if after else 1)
PY
client_pid=$!
for _ in $(seq 300); do [ -f "$tmp/kill" ] && break; sleep 0.1; done
kill_node1
killed=$(date +%s.%N)
touch "$tmp/kill.done"
ok "node1 killed hard (kill -9 of its pg_autoctl keeper and PostgreSQL) at $(date -u +%T) while clients called recommend()"
wait "$client_pid"
rc=$?
out=$(cat "$tmp/clients.log")
echo "$out" | grep -v '^committed' | sed 's/^/   /'
[ $rc = 0 ] && ok "the clients reconnected through the multi-host connection string and recommend() goes on" ||
    not_ok "the clients did not resume (rc $rc): $(echo "$out" | tail -n 5)"
state | sed 's/^/   /'
node2_promoted() { node_state_is node2 "(primary|wait_primary)"; }
wait_for 60 node2_promoted && ok "node2 was promoted by the monitor" || not_ok "node2 is not the primary"
[ -z "$(keeper_pid node1)" ] || ! kill -0 "$(keeper_pid node1)" 2>/dev/null && ok "node1 stays down (its keeper is gone)" ||
    not_ok "node1's keeper still runs"

# ---------------------------------------------------------------------------------------------
# No committed registration or promote was lost
# ---------------------------------------------------------------------------------------------
registered=$(echo "$out" | awk '$1 == "committed" && $2 == "register" { print $3 }' | sort -n | tr '\n' ' ')
promoted=$(echo "$out" | awk '$1 == "committed" && $2 == "promote" { print $3 }' | tail -n 1)
n_reg=$(echo "$registered" | wc -w)
present=$(node_sql "$port2" "SELECT count(*) FROM recsys.models WHERE name = 'failover'
                              AND version = ANY ('{$(echo $registered | tr ' ' ',')}'::int[])" 2>&1)
production=$(node_sql "$port2" "SELECT version FROM recsys.models WHERE name = 'failover' AND status = 'production'" 2>&1)
[ "$n_reg" -gt 0 ] && [ "$present" = "$n_reg" ] && ok "all $n_reg registrations whose COMMIT returned are on the new primary" ||
    not_ok "registrations committed: $n_reg, present on node2: $present"
if [ -z "$promoted" ]; then
    not_ok "no promote committed during the run"
elif [ "$production" -ge "$promoted" ] 2>/dev/null; then
    ok "the last committed promote (version $promoted) is on the new primary: production version $production"
else
    not_ok "last committed promote $promoted, production on node2: $production"
fi
v_now=$(node_sql "$port2" "SELECT array_length(recsys.recommend(min(ncodpers)), 1) FROM santander.snapshots" 2>&1)
[ "$v_now" -ge 1 ] 2>/dev/null && ok "recommend() on the new primary answers ($v_now products)" || not_ok "recommend() on node2: $v_now"
finish
