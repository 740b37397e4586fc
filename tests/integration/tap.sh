# What the integration test scripts share: "ok - ..." / "not ok - ..." lines, the
# "N passed, M failed" line last with the exit status, and running a command as the cluster's
# owner. Source it with the test's name: `. "$root/tests/integration/tap.sh" failover`.
tap_name=$1
started=$(date +%s)
passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
# Prints the time taken and the counts; exits 0 when nothing failed, 1 otherwise.
finish() {
    echo "$tap_name test: $(($(date +%s) - started)) s"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ] && exit 0
    exit 1
}
# initdb and the server refuse to run as root: as root, commands run as the postgres user.
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
