#!/usr/bin/env bash
# The generator's CSV (Kaggle train_ver2.csv format, dirty formatting included) loaded through
# the real-data loader must give exactly the rows recsys.generate_santander() gives for the
# same seed: one generator, one loader, no drift between them. Needs PG* pointing at a
# server with the recsys extension in PGDATABASE. Prints "N passed, M failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
PSQL=${PSQL:-psql}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
check() {  # check DESCRIPTION SQL-returning-boolean
    local got
    got=$($PSQL -XAtq -v ON_ERROR_STOP=1 -c "$2" 2>&1)
    if [ "$got" = "t" ]; then
        echo "ok   - $1"
        passed=$((passed + 1))
    else
        echo "FAIL - $1 (got: $got)"
        failed=$((failed + 1))
    fi
}

customers=2000
build/recsys_generate_csv --customers $customers --months 17 --seed 42 >"$tmp/generated.csv"
if tools/load_santander_csv.sh "$tmp/generated.csv" gen_csv >"$tmp/load.log" 2>&1; then
    echo "ok   - the loader accepts the generator's CSV"
    passed=$((passed + 1))
else
    cat "$tmp/load.log"
    echo "FAIL - the loader refused the generator's CSV"
    failed=$((failed + 1))
fi
check "every generated row arrives" \
    "SELECT count(*) = (SELECT count(*) FROM recsys.generate_santander($customers, 17, 42)) FROM gen_csv.snapshots"
check "17 months, $customers customers" \
    "SELECT count(DISTINCT fecha_dato) = 17 AND count(DISTINCT ncodpers) = $customers FROM gen_csv.snapshots"
check "loaded rows equal generate_santander() rows, column by column (both directions)" \
    "SELECT NOT EXISTS (SELECT * FROM gen_csv.snapshots EXCEPT ALL SELECT * FROM recsys.generate_santander($customers, 17, 42))
        AND NOT EXISTS (SELECT * FROM recsys.generate_santander($customers, 17, 42) EXCEPT ALL SELECT * FROM gen_csv.snapshots)"
check "missing values survive the dirty format as NULLs" \
    "SELECT count(*) FILTER (WHERE renta IS NULL) > 0 AND count(*) FILTER (WHERE age IS NULL) > 0 FROM gen_csv.snapshots"
$PSQL -XAtq -c "DROP SCHEMA gen_csv CASCADE" >/dev/null 2>&1
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
