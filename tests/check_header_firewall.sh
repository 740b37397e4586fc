#!/usr/bin/env bash
# src/core/ is database-independent: no file in it may include a PostgreSQL header, and
# only src/pg/postgres_headers.h includes postgres.h. Prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
failed=0
if grep -rnE '#include *[<"](postgres|fmgr|funcapi|executor/|utils/|catalog/|access/|miscadmin)' src/core; then
    echo "src/core includes PostgreSQL headers (above)"
    failed=$((failed + 1))
fi
if grep -rln '#include "postgres.h"' src/pg | grep -v 'src/pg/postgres_headers.h$'; then
    echo "postgres.h included outside src/pg/postgres_headers.h (above)"
    failed=$((failed + 1))
fi
echo "$((2 - failed)) passed, $failed failed"
[ $failed -eq 0 ]
