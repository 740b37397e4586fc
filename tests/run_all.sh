#!/usr/bin/env bash
# Runs every recsys test: installs dependencies, builds, runs the GoogleTest unit tests,
# starts a private PostgreSQL 15 cluster (temporary directory, private port), runs the
# pg_regress suite (installcheck) and the integration tests against it, stops it, and
# prints one closing line "N passed, M failed". Exits non-zero on any failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export OPENBLAS_NUM_THREADS=1

passed=0
failed=0
failures=()
record() {  # record NAME PASSED FAILED
    passed=$((passed + $2))
    failed=$((failed + $3))
    [ "$3" -gt 0 ] && failures+=("$1")
    echo "== $1: $2 passed, $3 failed"
}

scripts/install_deps.sh || { echo "dependency installation failed"; exit 1; }
scripts/build.sh || { echo "build failed"; exit 1; }

# 1. Unit tests of the core.
log=$(mktemp)
./build/recsys_unit_tests --gtest_brief=1 >"$log" 2>&1
rc=$?
cat "$log" | tail -n 40
n_pass=$(grep -oP '\[  PASSED  \] \K[0-9]+' "$log" || echo 0)
n_fail=$(grep -oP '\[  FAILED  \] \K[0-9]+(?= test)' "$log" || echo 0)
[ $rc -ne 0 ] && [ "$n_fail" -eq 0 ] && n_fail=1
record "unit tests" "${n_pass:-0}" "${n_fail:-0}"

# 1b. The unit tests under ASan/UBSan, and libFuzzer runs of the parsers (RECSYS_FUZZ_SECONDS
# per target, default 60). Each prints "N passed, M failed" as its last line.
suite_log=$(mktemp)
for suite in sanitizers fuzz; do
    bash tests/run_$suite.sh >"$suite_log" 2>&1
    rc=$?
    tail -n 25 "$suite_log"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$suite_log" | tail -n 1)
    p=$(echo "$line" | grep -oP '^[0-9]+' || echo 0)
    f=$(echo "$line" | grep -oP '[0-9]+(?= failed)' || echo 0)
    [ -z "$p" ] && p=0
    [ -z "$f" ] && f=0
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    record "$suite" "$p" "$f"
done
rm -f "$suite_log"

# 2. A private cluster for everything that needs PostgreSQL.
cluster=$(mktemp -d /tmp/recsys-test.XXXXXX)
port=${RECSYS_TEST_PORT:-55432}
cleanup() { scripts/pg_cluster.sh stop "$cluster"; rm -rf "$cluster"; }
trap cleanup EXIT
scripts/pg_cluster.sh start "$cluster" "$port" || { echo "could not start PostgreSQL"; exit 1; }
export PGHOST=$cluster PGPORT=$port PGUSER=postgres PGDATABASE=postgres

# 3. pg_regress suite, then the isolation tests (tests/isolation); each prints "All N tests
# passed." or "F of N tests failed.", and a failing pg_regress stops make before isolation.
rm -rf tests/regress/results tests/isolation/results tests/regress/regression.diffs tests/isolation/regression.diffs
sum_of() { grep -oP "$1" "$cluster/installcheck.log" | awk '{ s += $1 } END { print s + 0 }'; }
if make -f Makefile.pgxs installcheck >"$cluster/installcheck.log" 2>&1; then
    record "pg_regress + isolation" "$(sum_of 'All \K[0-9]+(?= tests passed)')" 0
else
    cat "$cluster/installcheck.log" | tail -n 30
    [ -f tests/regress/regression.diffs ] && head -n 200 tests/regress/regression.diffs
    [ -f tests/isolation/regression.diffs ] && head -n 200 tests/isolation/regression.diffs
    n_ok=$(sum_of 'All \K[0-9]+(?= tests passed)')
    n_fail=$(sum_of '\K[0-9]+(?= of [0-9]+ tests failed)')
    n_all=$(sum_of '[0-9]+ of \K[0-9]+(?= tests failed)')
    [ "$n_fail" -eq 0 ] && n_fail=1
    record "pg_regress + isolation" $((n_ok + n_all - n_fail)) "$n_fail"
fi

# 4. Integration tests: each prints "N passed, M failed" as its last line.
run_integration() {  # NAME COMMAND...
    local name=$1
    shift
    local out="$cluster/$name.log"
    "$@" >"$out" 2>&1
    local rc=$?
    tail -n 25 "$out"
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    local p f
    p=$(echo "$line" | grep -oP '^[0-9]+' || echo 0)
    f=$(echo "$line" | grep -oP '[0-9]+(?= failed)' || echo 0)
    [ -z "$p" ] && p=0
    [ -z "$f" ] && f=0
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    record "$name" "$p" "$f"
}
psql -qXc "CREATE DATABASE recsys_integration" >/dev/null
PGDATABASE=recsys_integration psql -qXc "CREATE EXTENSION recsys" >/dev/null
export RECSYS_PG_DSN="host=$cluster port=$port user=postgres dbname=recsys_integration"
run_integration "header firewall" tests/check_header_firewall.sh
run_integration "santander loader" env PGDATABASE=recsys_integration tests/integration/test_santander_loader.sh
run_integration "generated CSV round trip" env PGDATABASE=recsys_integration tests/integration/test_generated_csv_roundtrip.sh
run_integration "dump and restore" tests/integration/test_dump_restore.sh
run_integration "upgrade" tests/integration/test_upgrade.sh
# Starts its own cluster (pg_cron must be preloaded) on RECSYS_LIFECYCLE_PORT (default 55434).
run_integration "lifecycle" tests/integration/test_lifecycle.sh
# Starts its own cluster (recsys preloaded, for serving_stats) on RECSYS_MONITORING_PORT (default
# 55435), and one without the preload on the next port.
run_integration "monitoring" tests/integration/test_monitoring.sh
# Scale-out (docs/scale-out.md), each with its own clusters on its own ports, all stopped at
# the end: a hot standby (RECSYS_REPLICA_PORT, default 55570, and the next port); pg_auto_failover
# with a monitor and two nodes (RECSYS_FAILOVER_PORT, default 55575, and the next two); pgbouncer
# in front of a cluster (RECSYS_PGBOUNCER_TEST_PORT, default 55580, and the next port).
run_integration "replicas" tests/integration/test_replicas.sh
run_integration "failover" tests/integration/test_failover.sh
run_integration "pgbouncer" tests/integration/test_pgbouncer.sh
# Starts three clusters of its own (a PL/Proxy proxy with a single-node reference, two shards with
# max_prepared_transactions) on RECSYS_SHARD_PORT (default 55465) .. +2; about 1.5 minutes, cut
# off after 10 (its trap stops the clusters).
run_integration "sharding" timeout 600 tests/integration/test_sharding.sh
run_integration "torch parity" /usr/bin/python3 tests/integration/test_torch_parity.py --cli build/recsys_model_cli
for t in tests/integration/test_*.py; do
    case "$t" in */test_torch_parity.py) continue ;; esac
    run_integration "$(basename "$t" .py)" /usr/bin/python3 "$t"
done

echo
if [ ${#failures[@]} -gt 0 ]; then echo "failed: ${failures[*]}"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
