#!/usr/bin/env bash
# A new month for incremental scoring: recsys.advance_month() against the full recompute
# (recsys.rebuild_states()) in the same run, for each way of keeping recsys.customer_states.
# A benchmark, not a test: it prints figures and checks nothing.
#
#   PGHOST=... PGPORT=... PGUSER=postgres bash bench/advance_month_cost.sh
#
# Creates the database recsys_advance_bench with RECSYS_BENCH_CUSTOMERS customers (default
# 100000, 17 months each, recsys.generate_santander) and a from-start untrained model of the
# reference shape (17 months from January 2015, hidden 128), then for each storage option in
# RECSYS_ADVANCE_OPTIONS (default "upsert030 logged ff70 ff50 unlogged generation"):
#   1. the storage of recsys.customer_states and recsys.recommendations is set, both emptied
#   2. rebuild_states over the first 16 months (creates the states)
#   3. the 17th month lands; advance_month() is timed
#   4. rebuild_states() over 17 months, the full recompute, is timed
# Options: upsert030 = 0.3.0's writer (one upsert statement over the materialized output of
# full_states / advanced_states; put back afterwards) at fillfactor 100 as in 0.3.0; logged =
# the batched writer at fillfactor 100; ffNN = the batched writer at fillfactor NN on both
# tables (NN < 100 leaves room on each page for an update to stay HOT); unlogged = fillfactor
# 100 and customer_states UNLOGGED; generation = not a writer of the extension but a measure of
# the insert-only design that docs/benchmarks.md discusses: each month writes a new table (one
# row per customer: state and recommendations) with CREATE TABLE AS from advanced_states() (or
# full_states() for the full recompute), copies the customers without a new month, and builds
# its primary key after, never updating a row; an upper bound on that design's cost, since the
# function's rows pass through a tuplestore first. At the end the tables are put back as the extension creates
# them (fillfactor 50, logged). Printed per option: wall and backend CPU seconds of the advance
# and of the full recompute, their ratios, and the share of customer_states updates that were
# HOT. RECSYS_ADVANCE_RESULTS: a file that gets "key value" lines. RECSYS_ADVANCE_KEEP=1 keeps
# the database.
set -euo pipefail

customers=${RECSYS_BENCH_CUSTOMERS:-100000}
options=${RECSYS_ADVANCE_OPTIONS:-upsert030 logged ff70 ff50 unlogged generation}
db=recsys_advance_bench
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
psql_() { "${PSQL[@]}" -d "$db" "$@"; }
root=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=${RECSYS_ADVANCE_RESULTS:-}
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
timed() { bench_timed "$1"; }
put() { bench_put "$1" "$2"; }
bench_generated_database "$customers"
last_month=$(psql_ -At -c "SELECT max(fecha_dato) FROM santander.snapshots")
psql_ -c "CREATE TABLE santander.snapshots_inc AS SELECT * FROM santander.snapshots WHERE fecha_dato < date '$last_month' - 20" \
      -c "ALTER TABLE santander.snapshots_inc ADD PRIMARY KEY (ncodpers, fecha_dato)" -c "ANALYZE santander.snapshots_inc"
psql_ -At -c "SELECT recsys.promote('bench_inc', recsys.register_model('bench_inc', recsys.untrained_model('santander.snapshots_inc', window_months => 17, start_month => '2015-01-28')), force => true, reason => 'benchmark fixture')" >/dev/null
echo "advance_month vs full recompute: $customers customers, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1), $(nproc) CPUs"
printf '%-10s %14s %10s %10s %8s %10s %10s %8s %8s\n' option customers advance_s full_s ratio adv_cpu_s full_cpu_s cpu_ratio hot_pct

# 0.3.0's store_states, for the upsert030 option.
old_store_states="CREATE OR REPLACE FUNCTION recsys.store_states(model text, month date, k integer)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS \$\$
DECLARE written bigint;
BEGIN
    EXECUTE 'WITH a AS (SELECT * FROM '
         || CASE WHEN month IS NULL THEN 'recsys.full_states(\$1, \$3)' ELSE 'recsys.advanced_states(\$1, \$2, \$3)' END
         || '), st AS (INSERT INTO recsys.customer_states (model_name, customer_id, model_version, state_month, state, products)
                SELECT \$1, a.customer_id, a.model_version, a.state_month, a.state, a.products FROM a
                ON CONFLICT (model_name, customer_id) DO UPDATE
                   SET model_version = excluded.model_version, state_month = excluded.state_month,
                       state = excluded.state, products = excluded.products)
    INSERT INTO recsys.recommendations (model_name, customer_id, model_version, computed_at, products, scores)
    SELECT \$1, a.customer_id, a.model_version, now(), a.top_products, a.scores FROM a
    ON CONFLICT (model_name, customer_id) DO UPDATE
       SET model_version = excluded.model_version, computed_at = excluded.computed_at,
           products = excluded.products, scores = excluded.scores'
    USING model, month, k;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END \$\$"
new_store_states="CREATE OR REPLACE FUNCTION recsys.store_states(model text, month date, k integer)
RETURNS bigint AS 'recsys', 'recsys_store_states' LANGUAGE C VOLATILE"
# The generation option's month (month NULL: the full recompute); returns the rows written.
psql_ -c "CREATE SCHEMA bench_gen" -c "CREATE FUNCTION bench_gen.write_generation(month date) RETURNS bigint
LANGUAGE plpgsql AS \$\$
DECLARE written bigint; kept bigint := 0;
BEGIN
    DROP TABLE IF EXISTS bench_gen.next_generation;
    IF month IS NULL THEN
        CREATE TABLE bench_gen.next_generation WITH (fillfactor = 100) AS
            SELECT 'bench_inc'::text AS model_name, f.* FROM recsys.full_states('bench_inc', 7) f;
        GET DIAGNOSTICS written = ROW_COUNT;
    ELSE
        CREATE TABLE bench_gen.next_generation WITH (fillfactor = 100) AS
            SELECT 'bench_inc'::text AS model_name, a.* FROM recsys.advanced_states('bench_inc', month, 7) a;
        GET DIAGNOSTICS written = ROW_COUNT;
        INSERT INTO bench_gen.next_generation
        SELECT s.model_name, s.customer_id, s.model_version, s.state_month, s.state, s.products, r.products, r.scores
          FROM recsys.customer_states s JOIN recsys.recommendations r USING (model_name, customer_id)
         WHERE s.model_name = 'bench_inc'
           AND NOT EXISTS (SELECT FROM bench_gen.next_generation g WHERE g.customer_id = s.customer_id);
        GET DIAGNOSTICS kept = ROW_COUNT;
    END IF;
    ALTER TABLE bench_gen.next_generation ADD PRIMARY KEY (model_name, customer_id);
    RETURN written + kept;
END \$\$"

for opt in $options; do
    if [ "$opt" = upsert030 ]; then psql_ -c "$old_store_states"; else psql_ -c "$new_store_states"; fi
    case "$opt" in
    upsert030|logged) storage="ALTER TABLE recsys.customer_states SET LOGGED; ALTER TABLE recsys.customer_states RESET (fillfactor); ALTER TABLE recsys.recommendations RESET (fillfactor)" ;;
    ff*|generation) ff=${opt#ff}; [ "$opt" = generation ] && ff=50
        storage="ALTER TABLE recsys.customer_states SET LOGGED; ALTER TABLE recsys.customer_states SET (fillfactor = $ff); ALTER TABLE recsys.recommendations SET (fillfactor = $ff)" ;;
    unlogged) storage="ALTER TABLE recsys.customer_states SET UNLOGGED; ALTER TABLE recsys.customer_states RESET (fillfactor); ALTER TABLE recsys.recommendations RESET (fillfactor)" ;;
    *) echo "unknown option $opt" >&2; exit 2 ;;
    esac
    psql_ -c "$storage" -c "TRUNCATE recsys.customer_states, recsys.recommendations" \
          -c "DELETE FROM santander.snapshots_inc WHERE fecha_dato = '$last_month'" -c "VACUUM recsys.recommendations"
    psql_ -At -c "SELECT recsys.rebuild_states('bench_inc')" >/dev/null
    psql_ -c "INSERT INTO santander.snapshots_inc SELECT * FROM santander.snapshots WHERE fecha_dato = '$last_month'" \
          -c "ANALYZE santander.snapshots_inc" -c "CHECKPOINT"
    upd0=$(psql_ -At -c "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'recsys.customer_states'::regclass")
    advance="SELECT recsys.advance_month('bench_inc', '$last_month')" full="SELECT recsys.rebuild_states('bench_inc')"
    if [ "$opt" = generation ]; then
        advance="SELECT bench_gen.write_generation('$last_month')" full="SELECT bench_gen.write_generation(NULL)"
    fi
    read -r na adv adv_cpu < <(timed "$advance")
    sleep 0.6  # table statistics reach pg_stat_user_tables within PGSTAT_MIN_INTERVAL (500 ms)
    upd1=$(psql_ -At -c "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'recsys.customer_states'::regclass")
    hot=$(awk -v a="$upd0" -v b="$upd1" 'BEGIN { split(a, x, "|"); split(b, y, "|"); u = y[1] - x[1]; h = y[2] - x[2];
                                                 if (u > 0) printf "%.0f", 100 * h / u; else print "-" }')
    psql_ -c "CHECKPOINT"
    read -r nf full full_cpu < <(timed "$full")
    ratio=$(awk -v a="$adv" -v f="$full" 'BEGIN { printf "%.2f", f / a }')
    ratio_cpu=$(awk -v a="$adv_cpu" -v f="$full_cpu" 'BEGIN { printf "%.2f", f / a }')
    printf '%-10s %14s %10s %10s %8s %10s %10s %8s %8s\n' "$opt" "$na/$nf" "$adv" "$full" "${ratio}x" "$adv_cpu" "$full_cpu" "${ratio_cpu}x" "$hot"
    put "advance_${opt}_s" "$adv"
    put "advance_${opt}_full_s" "$full"
    put "advance_${opt}_n" "$na"
    put "advance_${opt}_cpu_s" "$adv_cpu"
    put "advance_${opt}_full_cpu_s" "$full_cpu"
done
# Back as the extension creates the tables (sql/0.4.0/21_states_fillfactor.sql).
psql_ -c "ALTER TABLE recsys.customer_states SET LOGGED" -c "ALTER TABLE recsys.customer_states SET (fillfactor = 50)" -c "ALTER TABLE recsys.recommendations SET (fillfactor = 50)"
if [ "${RECSYS_ADVANCE_KEEP:-0}" != 1 ]; then
    "${PSQL[@]}" -d postgres -c "DROP DATABASE $db"
fi
