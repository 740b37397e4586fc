#!/usr/bin/env bash
# Load a Kaggle-format Santander CSV (train_ver2.csv, trainsubset.csv, or the generator's output: same 48 columns)
# into PostgreSQL via sql/santander_loader.sql.
#
# usage: tools/load_santander_csv.sh CSV_FILE [SCHEMA]
#   CSV_FILE  path to the CSV, or '-' to read it from standard input
#   SCHEMA    target schema (default: santander)
# Connection: the standard libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, ...).
# psql: taken from $PSQL, else from PATH, else /usr/lib/postgresql/15/bin/psql.
#
# It creates the loader objects if needed (idempotent), then in one transaction \copy's the file into
# SCHEMA.raw_snapshots, inserts the cleaned rows into SCHEMA.snapshots (ON CONFLICT DO NOTHING), empties
# raw_snapshots, commits, and ANALYZEs snapshots. On any error nothing is loaded and the exit status is non-zero.
set -euo pipefail

usage() { echo "usage: $0 CSV_FILE [SCHEMA]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
csv=$1
schema=${2:-santander}
[[ -n $schema ]] || usage

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sql=$here/../sql/santander_loader.sql
[[ -r $sql ]] || { echo "$0: cannot read $sql" >&2; exit 1; }

if [[ -n ${PSQL:-} ]]; then
    psql_bin=$PSQL
elif command -v psql >/dev/null 2>&1; then
    psql_bin=$(command -v psql)
elif [[ -x /usr/lib/postgresql/15/bin/psql ]]; then
    psql_bin=/usr/lib/postgresql/15/bin/psql
else
    echo "$0: psql not found (set PSQL, or put it on PATH)" >&2; exit 1
fi

run_loader() {
    # -X: ignore ~/.psqlrc; ON_ERROR_STOP: stop at the first error (the open load transaction is then rolled back).
    "$psql_bin" -X -v ON_ERROR_STOP=1 -v schema="$schema" -v load=on -f "$sql"
}

if [[ $csv == - ]]; then
    run_loader
else
    [[ -f $csv && -r $csv ]] || { echo "$0: cannot read CSV file '$csv'" >&2; exit 1; }
    run_loader < "$csv"
fi
