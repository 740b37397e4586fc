#!/usr/bin/env bash
# What writing costs in refresh_recommendations(), and the two ways of replacing a model's rows
# in recsys.recommendations. A benchmark, not a test: it prints figures and checks nothing.
#
#   PGHOST=... PGPORT=... PGUSER=postgres bash bench/refresh_write_cost.sh
#
# Creates the database recsys_refresh_bench with RECSYS_BENCH_CUSTOMERS customers (default
# 100000, 17 months each) and an untrained model of the reference shape (16-month window,
# hidden 128), refreshes once (so every customer has a row), then, one backend without parallel
# workers, RECSYS_REFRESH_ROUNDS times (default 3, the two alternating in each round):
#   score_all alone:  SELECT count(*) FROM recsys.score_all(...), nothing written
#   refresh:          refresh_recommendations(), scoring and writing (rolled back)
# and, on a materialized copy of score_all's rows, each way of replacing the model's rows:
#   delete + insert:  DELETE the model's rows, then INSERT ... ON CONFLICT DO UPDATE (0.4.0's refresh)
#   update in place:  INSERT ... ON CONFLICT DO UPDATE of the copy without deleting first (the
#                     writer's way since this change: every row exists, so every row is updated)
# each rolled back. Printed: wall and backend CPU seconds (medians), and per customer the write's
# share of the refresh. RECSYS_REFRESH_RESULTS: a file that gets "key value" lines.
set -euo pipefail

customers=${RECSYS_BENCH_CUSTOMERS:-100000}
rounds=${RECSYS_REFRESH_ROUNDS:-3}
db=recsys_refresh_bench
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
psql_() { "${PSQL[@]}" -d "$db" "$@"; }
root=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=${RECSYS_REFRESH_RESULTS:-}
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
BENCH_SESSION_SETUP="SET recsys.parallel_workers = 0;"

bench_generated_database "$customers"
psql_ -c "ANALYZE santander.snapshots"
psql_ -At -c "SELECT recsys.promote('wb', recsys.register_model('wb', recsys.untrained_model('santander.snapshots', window_months => 16)), force => true, reason => 'benchmark fixture')" >/dev/null
psql_ -At -c "SELECT recsys.refresh_recommendations('wb')" >/dev/null
psql_ -c "CREATE TABLE public.scored AS SELECT 'wb'::text AS model_name, customer_id, model_version, pg_catalog.now() AS computed_at, products, scores FROM recsys.score_all('wb', 7)" \
      -c "VACUUM ANALYZE recsys.recommendations" -c "CHECKPOINT"

score_only="SELECT count(*) FROM recsys.score_all('wb', 7)"
refresh="SELECT recsys.refresh_recommendations('wb')"
delete_insert="WITH d AS (DELETE FROM recsys.recommendations WHERE model_name = 'wb' RETURNING 1) SELECT count(*) FROM d"
insert_after="INSERT INTO recsys.recommendations SELECT * FROM public.scored ON CONFLICT (model_name, customer_id) DO UPDATE SET model_version = excluded.model_version, computed_at = excluded.computed_at, products = excluded.products, scores = excluded.scores"
update_in_place="$insert_after"
# A statement in a transaction that is rolled back, so that every round starts from the same rows;
# prints "wall_s cpu_s".
rolled_back() {
    psql_ -At -F' ' <<EOF2
SET recsys.parallel_workers = 0;
BEGIN;
SELECT pg_catalog.split_part(pg_catalog.pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint AS c0,
       pg_catalog.clock_timestamp() AS t0 \gset
$1;
${2:-}
SELECT pg_catalog.round(extract(epoch FROM pg_catalog.clock_timestamp() - :'t0')::numeric, 3),
       pg_catalog.round((pg_catalog.split_part(pg_catalog.pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint - :c0) / 1e9, 3);
ROLLBACK;
EOF2
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
: >/tmp/recsys_refresh_bench.$$
for ((r = 0; r < rounds; r++)); do
    read -r _ w c < <(bench_timed "$score_only"); echo "score $w $c" >>/tmp/recsys_refresh_bench.$$
    read -r w c < <(rolled_back "$refresh" | grep -v '^[0-9]*$' | tail -n1); echo "refresh $w $c" >>/tmp/recsys_refresh_bench.$$
    read -r w c < <(rolled_back "$delete_insert" "$insert_after;" | tail -n1); echo "delete_insert $w $c" >>/tmp/recsys_refresh_bench.$$
    read -r w c < <(rolled_back "$update_in_place" | tail -n1); echo "update $w $c" >>/tmp/recsys_refresh_bench.$$
done
echo "refresh_recommendations' writes: $customers customers, $rounds rounds, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1), $(nproc) CPUs, no parallel workers"
printf '%-36s %10s %10s %14s\n' what wall_s cpu_s cpu_us_per_row
for what in score refresh delete_insert update; do
    w=$(awk -v k=$what '$1 == k { print $2 }' /tmp/recsys_refresh_bench.$$ | median)
    c=$(awk -v k=$what '$1 == k { print $3 }' /tmp/recsys_refresh_bench.$$ | median)
    printf '%-36s %10s %10s %14s\n' "$what" "$w" "$c" "$(awk -v c="$c" -v n="$customers" 'BEGIN { printf "%.1f", c * 1e6 / n }')"
    bench_put "refresh_write_${what}_s" "$w"
    bench_put "refresh_write_${what}_cpu_s" "$c"
done
rm -f /tmp/recsys_refresh_bench.$$
psql_ -At -c "SELECT 'rows of the model after the rounds: ' || count(*) FROM recsys.recommendations WHERE model_name = 'wb'"
if [ "${RECSYS_REFRESH_KEEP:-0}" != 1 ]; then
    "${PSQL[@]}" -d postgres -c "DROP DATABASE $db"
fi
