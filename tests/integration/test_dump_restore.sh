#!/usr/bin/env bash
# pg_dump / pg_restore keep everything recsys holds: a database with the extension, a sliding-
# window model (refreshed recommendations) and a from-start model (stored LSTM states) is dumped
# with pg_dump -Fc and restored into a new database; then every row of recsys.models,
# recsys.model_events, recsys.recommendations and recsys.customer_states must be identical in
# both, scoring must give identical scores, and advance_month() must advance the restored states
# by one step at once (no silent full rebuild).
#
# Needs PGHOST/PGPORT/PGUSER pointing at a server where the recsys extension is installed and
# where it may create and drop two databases. Prints "ok - ..." / "not ok - ..." lines and
# "N passed, M failed" last; exit status 1 when any check fails. KEEP_DBS=1 keeps the two
# databases (recsys_dump_src_PID, recsys_dump_dst_PID) for a look afterwards.
set -uo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PSQL=${PSQL:-$PGBIN/psql}
src=recsys_dump_src_$$
dst=recsys_dump_dst_$$
tmp=$(mktemp -d)
drop_databases() {
    "$PSQL" -XAtq -d postgres -c "DROP DATABASE IF EXISTS $src" -c "DROP DATABASE IF EXISTS $dst" >/dev/null 2>&1
}
cleanup() {
    drop_databases
    rm -rf "$tmp"
}
if [ -n "${KEEP_DBS:-}" ]; then trap 'rm -rf "$tmp"' EXIT; else trap cleanup EXIT; fi

passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
q() { "$PSQL" -XAtq -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }  # q DB SQL: unaligned rows
# check DESCRIPTION DB SQL-returning-boolean
check() {
    local got
    got=$(q "$2" "$3" 2>&1)
    if [ "$got" = t ]; then ok "$1"; else not_ok "$1 (got: $got)"; fi
}
# same DESCRIPTION SQL: the query's rows must be identical in both databases (diff shown if not).
same() {
    local desc=$1 sql=$2 a=$tmp/a.out b=$tmp/b.out rows_a rows_b
    if ! q "$src" "$sql" >"$a" 2>&1; then not_ok "$desc (query failed in the dumped database: $(head -c 300 "$a"))"; return; fi
    if ! q "$dst" "$sql" >"$b" 2>&1; then not_ok "$desc (query failed in the restored database: $(head -c 300 "$b"))"; return; fi
    rows_a=$(wc -l <"$a")
    rows_b=$(wc -l <"$b")
    if [ "$rows_a" -eq 0 ]; then not_ok "$desc (no rows in the dumped database: nothing compared)"; return; fi
    if cmp -s "$a" "$b"; then
        ok "$desc ($rows_a rows)"
    else
        not_ok "$desc (dumped: $rows_a rows, restored: $rows_b rows)"
        diff "$a" "$b" | cut -c 1-200 | head -n 10 | sed 's/^/#   /'
    fi
}

drop_databases
started=$(date +%s%N)
if ! "$PSQL" -XAtq -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $src" >"$tmp/setup.log" 2>&1 ||
    ! "$PSQL" -Xq -v ON_ERROR_STOP=1 -d "$src" >>"$tmp/setup.log" 2>&1 <<'SQL'; then
SET client_min_messages = warning;
CREATE EXTENSION recsys;
CREATE SCHEMA dr;
CREATE TABLE dr.snapshots AS
SELECT * FROM recsys.generate_santander(300, months => 8) WHERE fecha_dato < '2015-08-01';
ALTER TABLE dr.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
-- A sliding-window model, two versions (2 in production), with every registry column filled.
SELECT recsys.register_model('dr_sliding', recsys.untrained_model('dr.snapshots', window_months => 4, hidden => 8, seed => s),
                             hyperparameters => jsonb_build_object('hidden', 8, 'seed', s),
                             metrics => jsonb_build_object('map7', 0.01 * s, 'note', 'made up'),
                             training_data => '{"relation": "dr.snapshots"}', description => 'seed ' || s)
  FROM generate_series(1, 2) s;
SELECT recsys.promote('dr_sliding', 1, force => true, reason => 'test fixture');
SELECT recsys.promote('dr_sliding', 2, force => true, reason => 'test fixture');
SELECT recsys.record_evaluation('dr_sliding', 2, '{"2015-07": {"lstm": {"map7": 0.5}}}');
-- A model whose history runs from a start month: incremental scoring with stored states.
SELECT recsys.register_model('dr_from_start', recsys.untrained_model('dr.snapshots', window_months => 12, hidden => 8,
                             seed => 5, start_month => '2015-01-28'));
SELECT recsys.promote('dr_from_start', 1, force => true, reason => 'test fixture');
SELECT recsys.refresh_recommendations('dr_sliding');
SELECT recsys.rebuild_states('dr_from_start');
SQL
    cat "$tmp/setup.log"
    not_ok "setting up the database to dump"
    echo "$passed passed, $failed failed"
    exit 1
fi
ok "a database with two models, recommendations and stored states"

if "$PGBIN/pg_dump" -Fc -d "$src" -f "$tmp/recsys.dump" 2>"$tmp/dump.log"; then
    ok "pg_dump -Fc"
else
    not_ok "pg_dump -Fc: $(head -c 500 "$tmp/dump.log")"
fi
q postgres "CREATE DATABASE $dst" >/dev/null
if "$PGBIN/pg_restore" --exit-on-error -d "$dst" "$tmp/recsys.dump" >"$tmp/restore.log" 2>&1; then
    ok "pg_restore into a new database, without errors"
else
    not_ok "pg_restore into a new database: $(head -c 500 "$tmp/restore.log")"
fi
check "the restored extension has the dumped extension's version" "$dst" \
    "SELECT extversion = '$(q "$src" "SELECT extversion FROM pg_extension WHERE extname = 'recsys'")' FROM pg_extension WHERE extname = 'recsys'"

# Every row, every column.
same "recsys.models: every row and column (bytes, sha256, status, feature_spec, metrics, ...)" \
    "SELECT m::text FROM recsys.models m ORDER BY name, version"
same "recsys.model_events: every row and column" "SELECT e::text FROM recsys.model_events e ORDER BY id"
same "recsys.model_events_id_seq: the same position" "SELECT last_value, is_called FROM recsys.model_events_id_seq"
same "recsys.recommendations: every row and column" \
    "SELECT r::text FROM recsys.recommendations r ORDER BY model_name, customer_id"
same "recsys.customer_states: every row and column" \
    "SELECT s::text FROM recsys.customer_states s ORDER BY model_name, customer_id"

# Scoring the restored models gives exactly the dumped database's scores.
ids="SELECT DISTINCT ncodpers FROM dr.snapshots ORDER BY 1 LIMIT 40"
same "score_customer(): identical scores, both models, production and pinned versions" \
    "SELECT id, recsys.score_customer(id, 'dr_sliding')::text, recsys.score_customer(id, 'dr_sliding', 1)::text,
            recsys.score_customer(id, 'dr_from_start')::text FROM ($ids) c(id) ORDER BY id"
same "recommend() and recommend_scores(): identical rankings and scores" \
    "SELECT id, recsys.recommend(id, 7, 'dr_sliding')::text, recsys.recommend(id, 7, 'dr_from_start')::text,
            (SELECT array_agg(score ORDER BY rank)::text FROM recsys.recommend_scores(id, 5, 'dr_sliding'))
       FROM ($ids) c(id) ORDER BY id"
same "score_all(): identical for every customer" \
    "SELECT customer_id, model_version, products::text, scores::text FROM recsys.score_all('dr_sliding') ORDER BY 1"

# A new month lands in both databases: advance_month() steps the restored states by one month
# for August's customers only (a full rebuild would touch every customer), and gives the
# dumped database's states exactly.
august="INSERT INTO dr.snapshots SELECT * FROM recsys.generate_santander(300, months => 8)
        WHERE fecha_dato = '2015-08-28' AND ncodpers % 3 = 0"
q "$src" "$august" >/dev/null
q "$dst" "$august" >/dev/null
n_august=$(q "$src" "SELECT count(*) FROM dr.snapshots WHERE fecha_dato = '2015-08-28'")
n_src=$(q "$src" "SELECT recsys.advance_month('dr_from_start', '2015-08-28')" 2>&1)
n_dst=$(q "$dst" "SELECT recsys.advance_month('dr_from_start', '2015-08-28')" 2>&1)
if [ "$n_src" = "$n_august" ]; then
    ok "advance_month() in the dumped database advances August's $n_august customers"
else
    not_ok "advance_month() in the dumped database: $n_src customers, expected $n_august"
fi
if [ "$n_dst" = "$n_august" ]; then
    ok "advance_month() right after restore advances the restored states ($n_dst customers, no rebuild)"
else
    not_ok "advance_month() right after restore: $n_dst customers, expected August's $n_august (a full rebuild?)"
fi
same "after advance_month(): identical states" \
    "SELECT s::text FROM recsys.customer_states s WHERE model_name = 'dr_from_start' ORDER BY customer_id"
same "after advance_month(): identical recommendations (computed_at aside)" \
    "SELECT customer_id, model_version, products::text, scores::text FROM recsys.recommendations
      WHERE model_name = 'dr_from_start' ORDER BY customer_id"
check "after advance_month(): the restored database's states equal a full recompute (1e-5)" "$dst" \
    "SELECT count(*) = (SELECT count(DISTINCT ncodpers) FROM dr.snapshots)
            AND bool_and(s.state_month = f.state_month AND s.products = f.products)
            AND max((SELECT max(abs(a - b)) FROM unnest(s.state, f.state) u(a, b))) < 1e-5
       FROM recsys.customer_states s JOIN recsys.full_states('dr_from_start') f USING (customer_id)
      WHERE s.model_name = 'dr_from_start'"

# The restored registry keeps working: the next registration gets the next version and event id.
check "registering in the restored database gives the next version" "$dst" \
    "SELECT recsys.register_model('dr_sliding', model) = 3 FROM recsys.models WHERE name = 'dr_sliding' AND version = 1"
check "... and the next event id, from the restored sequence" "$dst" \
    "SELECT max(id) = (SELECT last_value FROM recsys.model_events_id_seq) AND count(*) = count(DISTINCT id)
            AND max(id) = 1 + (SELECT max(id) FROM recsys.model_events WHERE NOT (name = 'dr_sliding' AND version = 3))
       FROM recsys.model_events"

elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
echo "# $((elapsed / 1000)).$(printf '%03d' $((elapsed % 1000))) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
