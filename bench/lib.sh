# Helpers the bench scripts share; source it after setting db (the database), root (the
# repository) and PSQL (the psql command line as an array).
#
# bench_timed SQL: runs one statement in a session of its own; prints "result wall_s cpu_s":
# cpu_s is the backend's own CPU time (/proc/self/schedstat), which leaves out time spent
# waiting for a CPU on a loaded machine (parallel workers' CPU is not in it).
bench_timed() {
    "${PSQL[@]}" -d "$db" -At -F' ' <<EOF_TIMED
SELECT pg_catalog.split_part(pg_catalog.pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint AS c0,
       pg_catalog.clock_timestamp() AS t0 \gset
${BENCH_SESSION_SETUP:-}
SELECT ($1) AS n \gset
SELECT :n, pg_catalog.round(extract(epoch FROM pg_catalog.clock_timestamp() - :'t0')::numeric, 3),
       pg_catalog.round((pg_catalog.split_part(pg_catalog.pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint - :c0) / 1e9, 3);
EOF_TIMED
}

# bench_put KEY VALUE: a "key value" line for bench/run_all.sh's table, when RESULTS names a file.
bench_put() { if [ -n "${RESULTS:-}" ]; then echo "$1 $2" >>"$RESULTS"; fi; }

# bench_generated_database CUSTOMERS: (re)creates the database $db with the extension, the
# Santander loader's schema and CUSTOMERS generated customers (17 months each) in
# santander.snapshots, inserted 100,000 customers a statement.
bench_generated_database() {
    local customers=$1 chunk=100000 s n
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    "${PSQL[@]}" -d "$db" -c "CREATE EXTENSION recsys"
    "${PSQL[@]}" -d "$db" -v schema=santander -f "$root/sql/santander_loader.sql" >/dev/null
    for ((s = 0; s < customers; s += chunk)); do
        n=$((customers - s)); [ $n -gt $chunk ] && n=$chunk
        "${PSQL[@]}" -d "$db" -c "INSERT INTO santander.snapshots SELECT * FROM recsys.generate_santander($n, first_customer => $s)"
    done
}

# bench_snapshot_database CUSTOMERS <<SQL: (re)creates the database $db with the extension and
# bench.snapshots, CUSTOMERS generated customers of 17 months each, keyed by (ncodpers,
# fecha_dato) and analysed; then runs the caller's SQL from standard input (its fixtures) in the
# same session. Dropping $db afterwards is the caller's (usually an EXIT trap).
bench_snapshot_database() {
    "${PSQL[@]}" -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    {
        cat <<SQL_SNAPSHOTS
SET client_min_messages = warning;
CREATE EXTENSION recsys;
CREATE SCHEMA bench;
CREATE TABLE bench.snapshots AS SELECT * FROM recsys.generate_santander($1, months => 17);
ALTER TABLE bench.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
ANALYZE bench.snapshots;
SQL_SNAPSHOTS
        cat
    } | "${PSQL[@]}" -d "$db" -o /dev/null
}
