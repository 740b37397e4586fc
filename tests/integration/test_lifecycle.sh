#!/usr/bin/env bash
# The model lifecycle end to end, on generated data with planted changes (docs/lifecycle.md):
# data validation stops a retrain cycle, the promotion gate refuses a candidate trained on
# shuffled labels and one that is better overall but clearly worse for one segment, and a
# retrain cycle that pg_cron runs for real promotes a good candidate. Every figure the closing
# note quotes is printed (intervals, the failing segment, the pg_cron run's rows).
#
# It starts its own cluster, because pg_cron must be preloaded: a temporary directory, port
# RECSYS_LIFECYCLE_PORT (default 55434), shared_preload_libraries = 'pg_cron',
# cron.database_name = the test database, cron.use_background_workers = on (jobs need no TCP
# connection to this socket-only cluster), max_worker_processes = 16; stopped at the end
# (RECSYS_LIFECYCLE_KEEP=1 leaves it running, to look around). Needs
# the extension installed (make -f Makefile.pgxs install) and postgresql-15-cron.
#
# The data: RECSYS_LIFECYCLE_CUSTOMERS (default 40000) customers x 11 months (2015-01 ..
# 2015-11, seed 42) with a planted drift: from 2015-06 every customer takes up ind_cno_fin_ult1
# at 10x the rate. santander.snapshots holds 2015-01 .. 2015-10; 2015-11 waits in
# santander.next_month. Production is a small model trained before the drift (early stopping
# on 2015-06), so a candidate trained on the newest months is clearly better for everyone.
# Models are tiny (window 6, hidden 16, 2 epochs): the whole test takes about two minutes on two
# cores, most of it waiting for pg_cron's next minute.
#
# Prints "ok - ..." / "not ok - ..." lines and "N passed, M failed" last; exits 1 on any failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
port=${RECSYS_LIFECYCLE_PORT:-55434}
customers=${RECSYS_LIFECYCLE_CUSTOMERS:-40000}
db=recsys_lifecycle
export OPENBLAS_NUM_THREADS=1   # inherited by the server: one core per backend
# shellcheck source=tests/integration/tap.sh
. "$root/tests/integration/tap.sh" lifecycle

cluster=$(mktemp -d /tmp/recsys-lifecycle.XXXXXX)
cleanup() {
    if [ -n "${RECSYS_LIFECYCLE_KEEP:-}" ]; then echo "kept the cluster running: PGHOST=$cluster PGPORT=$port"; return; fi
    "$root/scripts/pg_cluster.sh" stop "$cluster" >/dev/null 2>&1
    rm -rf "$cluster"
}
trap cleanup EXIT

export PGHOST=$cluster PGPORT=$port PGUSER=postgres PGDATABASE=$db
export PGOPTIONS="-c client_min_messages=warning"   # no training NOTICEs in captured values
q() { "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }                     # one value
show() { "$PGBIN/psql" -Xq -v ON_ERROR_STOP=1 -P pager=off -c "$1"; }      # a table, printed
check() {  # check DESCRIPTION SQL-returning-boolean
    local got
    got=$(q "$2" 2>&1)
    if [ "$got" = t ]; then ok "$1"; else not_ok "$1 (got: $got)"; fi
}
sqlstate_of() {  # the SQLSTATE an SQL statement fails with ("none" when it succeeds)
    local out
    out=$("$PGBIN/psql" -Xq -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "$1" 2>&1)
    echo "$out" | grep -oP '^ERROR:  \K[0-9A-Z]{5}' | head -n 1 | grep . || echo none
}

# ---------------------------------------------------------------------------------------------
# A cluster with pg_cron preloaded
# ---------------------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] && chown postgres:postgres "$cluster"
if ! as_owner "$PGBIN/initdb" -D "$cluster/data" -A trust -U postgres --no-sync --encoding=UTF8 --locale=C \
        >"$cluster/initdb.log" 2>&1; then
    cat "$cluster/initdb.log"
    not_ok "initdb"
    finish
fi
cat >>"$cluster/data/postgresql.conf" <<EOF
shared_preload_libraries = 'pg_cron'
cron.database_name = '$db'
cron.use_background_workers = on
max_worker_processes = 16
EOF
if ! "$root/scripts/pg_cluster.sh" start "$cluster" "$port"; then
    not_ok "the cluster with pg_cron starts (is postgresql-15-cron installed?)"
    finish
fi
PGDATABASE=postgres q "CREATE DATABASE $db" >/dev/null
if ! out=$(q "CREATE EXTENSION pg_cron; CREATE EXTENSION recsys;
              SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'" 2>&1); then
    echo "$out"
    not_ok "CREATE EXTENSION pg_cron, recsys"
    finish
fi
ok "cluster on port $port with pg_cron $out preloaded (background workers)"

# ---------------------------------------------------------------------------------------------
# Data: 11 generated months with a planted drift; the 11th waits in santander.next_month
# ---------------------------------------------------------------------------------------------
drift='{"from_month": "2015-06-28", "uptake": {"product": "ind_cno_fin_ult1", "factor": 10}}'
# The segment candidate's data: the same, but students' cno and ahor flags swapped in every month.
students_swapped="[$drift, {\"from_month\": \"2015-01-28\", \"segment\": \"03 - UNIVERSITARIO\",
                             \"swap_products\": [\"ind_cno_fin_ult1\", \"ind_ahor_fin_ult1\"]}]"
products="ind_ahor_fin_ult1 ind_aval_fin_ult1 ind_cco_fin_ult1 ind_cder_fin_ult1 ind_cno_fin_ult1 ind_ctju_fin_ult1
ind_ctma_fin_ult1 ind_ctop_fin_ult1 ind_ctpp_fin_ult1 ind_deco_fin_ult1 ind_deme_fin_ult1 ind_dela_fin_ult1
ind_ecue_fin_ult1 ind_fond_fin_ult1 ind_hip_fin_ult1 ind_plan_fin_ult1 ind_pres_fin_ult1 ind_reca_fin_ult1
ind_tjcr_fin_ult1 ind_valo_fin_ult1 ind_viv_fin_ult1 ind_nomina_ult1 ind_nom_pens_ult1 ind_recibo_ult1"
flag_list=$(echo $products | tr ' ' ',')
flag_list_f=$(for p in $products; do printf 'f.%s,' "$p"; done | sed 's/,$//')
customer_cols="b.fecha_dato, b.ncodpers, b.ind_empleado, b.pais_residencia, b.sexo, b.age, b.fecha_alta, b.ind_nuevo,
b.antiguedad, b.indrel, b.tiprel_1mes, b.indresi, b.indext, b.canal_entrada, b.cod_prov, b.ind_actividad_cliente,
b.renta, b.segmento"

t0=$(date +%s)
if ! out=$(q "
CREATE SCHEMA santander;
CREATE TABLE santander.generated AS
    SELECT * FROM recsys.generate_santander($customers, 11, 42, planted => '$drift');
CREATE TABLE santander.snapshots AS SELECT * FROM santander.generated WHERE fecha_dato < '2015-11-01';
ALTER TABLE santander.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
CREATE TABLE santander.next_month AS SELECT * FROM santander.generated WHERE fecha_dato >= '2015-11-01';
-- The clean months, to put back after a candidate was trained on altered ones.
CREATE TABLE santander.clean AS SELECT * FROM santander.snapshots;
DROP TABLE santander.generated;
ANALYZE santander.snapshots;
-- Who runs the scheduled cycle: an ordinary role, not a superuser.
CREATE ROLE ml_ops LOGIN;
GRANT recsys_admin TO ml_ops;
GRANT USAGE ON SCHEMA santander, cron TO ml_ops;
GRANT SELECT ON santander.snapshots TO ml_ops;
SELECT count(*) FROM santander.snapshots" 2>&1); then
    echo "$out"
    not_ok "generated data"
    finish
fi
ok "generated $customers customers, $out rows (2015-01 .. 2015-10) in $(($(date +%s) - t0)) s"
show "SELECT fecha_dato, count(*) AS customers, round(avg(ind_cno_fin_ult1) * 100, 2) AS cno_held_pct
        FROM santander.snapshots WHERE fecha_dato >= '2015-04-01' GROUP BY 1 ORDER BY 1"

# Loads santander.snapshots with other months (SQL producing rows), or back with the clean ones.
load_snapshots() {
    q "TRUNCATE santander.snapshots; INSERT INTO santander.snapshots $1; ANALYZE santander.snapshots" >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Production: a first model trained before the drift, promoted by force with a reason
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
p1=$(q "SELECT recsys.train('default', 'santander.snapshots', train_months => 3, validation_month => '2015-06-28',
                            window_months => 6, hidden => 16, epochs => 2, learning_rate => 0.01)" 2>&1)
if [[ "$p1" =~ ^[0-9]+$ ]]; then ok "first model trained: version $p1 ($(($(date +%s) - t0)) s)"; else not_ok "first model: $p1"; finish; fi

# A retrain cycle without a production version is recorded as failed, with a clear message.
check "retrain without a production version: run recorded as failed at 'started' (55000), nothing promoted" \
    "SELECT r.status = 'failed' AND r.error_sqlstate = '55000' AND r.error LIKE '%has no production version%'
            AND r.steps -> -1 ->> 'step' = 'started' AND r.production_after IS NULL
       FROM recsys.retrain('default', 'santander.snapshots') r"
check "retrain of a model that does not exist: run recorded as failed (42704)" \
    "SELECT r.status = 'failed' AND r.error_sqlstate = '42704' FROM recsys.retrain('no_such_model', 'santander.snapshots') r"

q "SELECT recsys.promote('default', $p1, force => true, reason => 'first model: no production to validate against')" >/dev/null
check "version $p1 is production, forced with its reason in model_events" \
    "SELECT EXISTS (SELECT 1 FROM recsys.models WHERE name = 'default' AND version = $p1 AND status = 'production')
        AND EXISTS (SELECT 1 FROM recsys.model_events WHERE name = 'default' AND version = $p1 AND action = 'promote'
                       AND forced AND reason LIKE 'first model%')"
production_is() { q "SELECT version FROM recsys.models WHERE name = 'default' AND status = 'production'"; }

# ---------------------------------------------------------------------------------------------
# Planted data faults in the next month: validate_data fails them, retrain stops at the data check
# ---------------------------------------------------------------------------------------------
fault_check() {  # fault_check DESCRIPTION SELECT-of-the-faulty-2015-11 EXPECTED-CHECK EXPECTED-COLUMN
    q "CREATE OR REPLACE VIEW santander.faulty AS SELECT * FROM santander.snapshots UNION ALL $2" >/dev/null
    local got
    got=$(q "SELECT string_agg(check_name || coalesce(' (' || column_name || ')', '') || ': ' || observed, '; ')
               FROM recsys.validate_data('santander.faulty', '2015-11-28', 'default') WHERE severity = 'fail'" 2>&1)
    echo "   $1 -> failing checks: $got"
    if [[ "$got" == *"$3"*"$4"* ]]; then ok "validate_data fails $1 with $3"; else not_ok "validate_data on $1: $got"; fi
}
fault_check "a column all NULL (renta)" \
    "SELECT fecha_dato, ncodpers, ind_empleado, pais_residencia, sexo, age, fecha_alta, ind_nuevo, antiguedad, indrel,
            tiprel_1mes, indresi, indext, canal_entrada, cod_prov, ind_actividad_cliente, NULL::float8, segmento, $flag_list
       FROM santander.next_month" null_rate renta
fault_check "product flags of 2" \
    "SELECT fecha_dato, ncodpers, ind_empleado, pais_residencia, sexo, age, fecha_alta, ind_nuevo, antiguedad, indrel,
            tiprel_1mes, indresi, indext, canal_entrada, cod_prov, ind_actividad_cliente, renta, segmento,
            $(echo $flag_list | sed 's/ind_recibo_ult1/(ind_recibo_ult1 * 2)::smallint/')
       FROM santander.next_month" product_flag_values ind_recibo_ult1
fault_check "half the customers" "SELECT * FROM santander.next_month WHERE ncodpers % 2 = 0" customers_vanished ncodpers
q "CREATE OR REPLACE VIEW santander.faulty AS SELECT * FROM santander.snapshots UNION ALL SELECT * FROM santander.next_month" >/dev/null
check "the clean next month passes validate_data (warnings at most)" \
    "SELECT count(*) FILTER (WHERE severity = 'fail') = 0 FROM recsys.validate_data('santander.faulty', '2015-11-28', 'default')"
q "DROP VIEW santander.faulty" >/dev/null

# The newest month lands with half the customers: the cycle stops at the data check.
q "INSERT INTO santander.snapshots SELECT * FROM santander.next_month WHERE ncodpers % 2 = 0" >/dev/null
run=$(q "SELECT r.id FROM recsys.retrain('default', 'santander.snapshots') r" 2>&1)
echo "   retrain on a half-loaded 2015-11 -> run $run:"
show "SELECT id, status, production_before, production_after, data_validation_id, candidate_version, error_sqlstate, error
        FROM recsys.training_runs WHERE id = ${run:-0}"
show "SELECT s ->> 'step' AS step, s ->> 'outcome' AS outcome, s ->> 'seconds' AS seconds, s -> 'detail' AS detail
        FROM recsys.training_runs r, jsonb_array_elements(r.steps) s WHERE r.id = ${run:-0}"
check "retrain with half the newest month: failed at data_check, customers_vanished named, production unchanged, nothing trained" \
    "SELECT r.status = 'failed' AND r.steps -> -1 ->> 'step' = 'data_check' AND r.error_sqlstate = '22000'
            AND r.error LIKE 'data check \"customers_vanished\" failed%' AND r.production_before = $p1 AND r.production_after = $p1
            AND r.candidate_version IS NULL
            AND (SELECT count(*) FROM recsys.models WHERE name = 'default') = 1
       FROM recsys.training_runs r WHERE r.id = ${run:-0}"
check "the failed run points at a stored data validation that lists the failing checks" \
    "SELECT NOT d.passed AND d.month = '2015-11-01'
            AND d.results @> '[{\"check\": \"customers_vanished\", \"severity\": \"fail\"}]'
            AND (r.steps -> -1 -> 'detail' -> 'failing_checks') @> '[{\"check\": \"customers_vanished\"}]'
       FROM recsys.training_runs r JOIN recsys.data_validations d ON d.id = r.data_validation_id WHERE r.id = ${run:-0}"
q "DELETE FROM santander.snapshots WHERE fecha_dato >= '2015-11-01'" >/dev/null
[ "$(production_is)" = "$p1" ] && ok "production is still version $p1" || not_ok "production changed: $(production_is)"

# ---------------------------------------------------------------------------------------------
# A candidate better overall but clearly worse for students (planted through the generator)
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
load_snapshots "SELECT * FROM recsys.generate_santander($customers, 11, 42, planted => '$students_swapped')
                 WHERE fecha_dato < '2015-11-01'"
segment_candidate=$(q "SELECT recsys.train('default', 'santander.snapshots', train_months => 3, validation_month => '2015-09-28',
                                           window_months => 6, hidden => 16, epochs => 5, learning_rate => 0.01)" 2>&1)
load_snapshots "SELECT * FROM santander.clean"
if [[ "$segment_candidate" =~ ^[0-9]+$ ]]; then ok "candidate $segment_candidate trained on data with students' cno and ahor swapped ($(($(date +%s) - t0)) s)"; else not_ok "segment candidate: $segment_candidate"; fi
show "SELECT validation_id, passed, round(candidate_map7::numeric, 5) AS candidate, round(production_map7::numeric, 5) AS production,
             round(difference::numeric, 5) AS difference, round(ci_low::numeric, 5) AS ci_low, round(ci_high::numeric, 5) AS ci_high,
             array_to_string(reasons, E'\n') AS reasons
        FROM recsys.validate('default', ${segment_candidate:-0}, '2015-10-28')"
segment_validation=$(q "SELECT max(id) FROM recsys.model_validations WHERE candidate_version = ${segment_candidate:-0}")
show "SELECT s ->> 'dimension' AS dimension, s ->> 'value' AS value, s ->> 'customers' AS customers, s ->> 'adders' AS adders,
             round((s ->> 'difference')::numeric, 5) AS difference, round((s ->> 'low')::numeric, 5) AS low,
             round((s ->> 'high')::numeric, 5) AS high
        FROM recsys.model_validations v, jsonb_array_elements(v.figures -> 'subpopulations') s
       WHERE v.id = ${segment_validation:-0} AND s ->> 'dimension' IN ('segment', 'age_band')"
check "the segment candidate is better overall (interval above 0) ..." \
    "SELECT ci_low > 0 FROM recsys.model_validations WHERE id = ${segment_validation:-0}"
check "... but refused, with segment 03 - UNIVERSITARIO named as clearly worse" \
    "SELECT NOT passed AND EXISTS (SELECT 1 FROM unnest(reasons) r WHERE r LIKE 'clearly worse for segment = 03 - UNIVERSITARIO%')
            AND NOT EXISTS (SELECT 1 FROM unnest(reasons) r WHERE r LIKE 'clearly worse than production%' OR r LIKE 'MAP@7 % below%')
       FROM recsys.model_validations WHERE id = ${segment_validation:-0}"
state=$(sqlstate_of "SELECT recsys.promote('default', ${segment_candidate:-0})")
[ "$state" = 55000 ] && ok "recsys.promote refuses the segment candidate (SQLSTATE 55000)" || not_ok "promote of the segment candidate: SQLSTATE $state"

# Re-running a validation gives identical figures: same fingerprint, same intervals.
q "SELECT 1 FROM recsys.validate('default', ${segment_candidate:-0}, '2015-10-28')" >/dev/null
show "SELECT id, fingerprint, customers, adders, round(candidate_map7::numeric, 6) AS candidate, round(production_map7::numeric, 6) AS production,
             ci_low, ci_high FROM recsys.model_validations WHERE candidate_version = ${segment_candidate:-0} ORDER BY id"
check "re-running the validation gives identical figures (fingerprint, MAP@7s, intervals, subpopulations)" \
    "SELECT count(*) = 2 AND count(DISTINCT figures) = 1 AND count(DISTINCT fingerprint) = 1
            AND count(DISTINCT (ci_low, ci_high, candidate_map7, production_map7, passed, reasons)) = 1
       FROM recsys.model_validations WHERE candidate_version = ${segment_candidate:-0}"

# A cycle on another relation than production's stops before training: the gate compares
# versions on the same relation.
q "CREATE TABLE santander.other AS SELECT * FROM santander.clean WHERE ncodpers < 15889 + 3000" >/dev/null
check "retrain on a relation production does not read: failed at 'started' (22023), nothing trained" \
    "SELECT r.status = 'failed' AND r.error_sqlstate = '22023' AND r.steps -> -1 ->> 'step' = 'started'
            AND r.candidate_version IS NULL AND r.production_after = $p1
       FROM recsys.retrain('default', 'santander.other') r"

# ---------------------------------------------------------------------------------------------
# A good candidate, trained, validated and promoted by a cycle that pg_cron runs
# ---------------------------------------------------------------------------------------------
before_runs=$(q "SELECT coalesce(max(id), 0) FROM recsys.training_runs")
t0=$(date +%s)
job=$(PGUSER=ml_ops q "SELECT cron.schedule('recsys-retrain-test', '* * * * *',
                                            \$\$SELECT recsys.retrain('default', 'santander.snapshots')\$\$)" 2>&1)
if [[ "$job" =~ ^[0-9]+$ ]]; then ok "ml_ops scheduled the retrain cycle with pg_cron: job $job, every minute"; else not_ok "cron.schedule: $job"; finish; fi
# pg_cron starts the job at the next minute; a cycle takes seconds here, so it is unscheduled
# once the first run is recorded, before the minute after (a job unscheduled while it runs
# finishes, but pg_cron 1.4 records it as failed, "job canceled").
run=""
for _ in $(seq 1 150); do
    run=$(q "SELECT id FROM recsys.training_runs WHERE id > $before_runs AND started_by = 'ml_ops' ORDER BY id LIMIT 1")
    [ -n "$run" ] && break
    sleep 1
done
q "SELECT cron.unschedule($job)" >/dev/null
if [ -z "$run" ]; then
    not_ok "no retrain cycle finished within 150 s of scheduling"
    show "SELECT * FROM cron.job_run_details"
    tail -n 30 "$cluster/server.log"
    finish
fi
ok "the scheduled cycle finished: run $run, $(($(date +%s) - t0)) s after scheduling"
# pg_cron records the end of the job just after its transaction commits.
for _ in $(seq 1 20); do
    [ "$(q "SELECT count(*) FROM cron.job_run_details WHERE status IN ('starting', 'running')")" = 0 ] && break
    sleep 0.5
done
good=$(q "SELECT candidate_version FROM recsys.training_runs WHERE id = $run")
echo "   cron.job_run_details:"
show "SELECT jobid, runid, username, database, status, return_message, start_time
        FROM cron.job_run_details ORDER BY runid"
grep -E 'cron job [0-9]+ (starting|COMMAND completed)' "$cluster/server.log" | sed 's/^/   server log: /'
echo "   recsys.training_runs:"
show "SELECT id, name, relation, started_by, status, production_before, production_after, data_validation_id,
             candidate_version, validation_id, finished_at - started_at AS took
        FROM recsys.training_runs WHERE id = $run"
show "SELECT s ->> 'step' AS step, s ->> 'outcome' AS outcome, s ->> 'seconds' AS seconds,
             left((s -> 'detail')::text, 160) AS detail
        FROM recsys.training_runs r, jsonb_array_elements(r.steps) s WHERE r.id = $run"
show "SELECT round((s -> 'detail' ->> 'candidate_map7')::numeric, 5) AS candidate, round((s -> 'detail' ->> 'production_map7')::numeric, 5) AS production,
             round((s -> 'detail' ->> 'difference')::numeric, 5) AS difference, round((s -> 'detail' ->> 'ci_low')::numeric, 5) AS ci_low,
             round((s -> 'detail' ->> 'ci_high')::numeric, 5) AS ci_high, s -> 'detail' -> 'reasons' ->> 0 AS reason
        FROM recsys.training_runs r, jsonb_array_elements(r.steps) s WHERE r.id = $run AND s ->> 'step' = 'validation'"
check "pg_cron ran the job as ml_ops and it succeeded" \
    "SELECT count(*) = 1 AND bool_and(status = 'succeeded' AND username = 'ml_ops') FROM cron.job_run_details"
check "the run: status promoted, started by ml_ops, every step in order with its timing" \
    "SELECT r.status = 'promoted' AND r.started_by = 'ml_ops' AND r.error IS NULL AND r.finished_at IS NOT NULL
            AND (SELECT array_agg(s ->> 'step' ORDER BY o) FROM jsonb_array_elements(r.steps) WITH ORDINALITY e(s, o))
                = ARRAY['started', 'data_check', 'training', 'validation', 'decision']
            AND (SELECT bool_and((s ->> 'seconds')::numeric >= 0 AND (s ->> 'started_at')::timestamptz >= r.started_at)
                   FROM jsonb_array_elements(r.steps) s)
            AND r.production_before = $p1 AND r.production_after = r.candidate_version
            AND r.data_validation_id IS NOT NULL AND r.validation_id IS NOT NULL
       FROM recsys.training_runs r WHERE r.id = $run"
check "the candidate early-stopped on 2015-09 and was judged on the held-out 2015-10, with production's hyper-parameters" \
    "SELECT m.training_data ->> 'validation_month' = '2015-09' AND to_char(v.month, 'YYYY-MM') = '2015-10'
            AND (m.hyperparameters ->> 'hidden')::int = 16 AND (m.hyperparameters ->> 'epochs')::int = 2
            AND (m.hyperparameters ->> 'train_months')::int = 3 AND v.passed AND v.ci_low > 0
       FROM recsys.training_runs r JOIN recsys.models m ON m.name = r.name AND m.version = r.candidate_version
            JOIN recsys.model_validations v ON v.id = r.validation_id WHERE r.id = $run"
echo "   recsys.model_events:"
show "SELECT id, version, action, previous_version, by, forced, validation_id, reason FROM recsys.model_events
       WHERE name = 'default' AND action <> 'register' ORDER BY id"
check "model_events has the promotion, by ml_ops, not forced, with the run's validation_id" \
    "SELECT e.by = 'ml_ops' AND NOT e.forced AND e.validation_id = r.validation_id AND e.previous_version = $p1
       FROM recsys.training_runs r JOIN recsys.model_events e ON e.name = r.name AND e.version = r.candidate_version
      WHERE r.id = $run AND e.action = 'promote'"
check "production is the run's candidate" \
    "SELECT m.version = r.candidate_version FROM recsys.training_runs r JOIN recsys.models m
         ON m.name = r.name AND m.status = 'production' WHERE r.id = $run"

# ---------------------------------------------------------------------------------------------
# A candidate trained on shuffled labels fails the gate against the new production; promote
# refuses it (55000)
# ---------------------------------------------------------------------------------------------
# Within each month the 24 product flags move, as one vector, to another customer (a fixed
# pseudo-random permutation): holding rates stay, the link to a customer's history is gone.
t0=$(date +%s)
load_snapshots "WITH b AS (SELECT *, row_number() OVER (PARTITION BY fecha_dato ORDER BY ncodpers) AS rn FROM santander.clean),
                     f AS (SELECT fecha_dato, $flag_list,
                                  row_number() OVER (PARTITION BY fecha_dato ORDER BY md5(ncodpers::text || 'shuffle')) AS rn
                             FROM santander.clean)
                SELECT $customer_cols, $flag_list_f FROM b JOIN f USING (fecha_dato, rn)"
shuffled=$(q "SELECT recsys.train('default', 'santander.snapshots', train_months => 3, validation_month => '2015-09-28',
                                  window_months => 6, hidden => 16, epochs => 2, learning_rate => 0.01)" 2>&1)
load_snapshots "SELECT * FROM santander.clean"
if [[ "$shuffled" =~ ^[0-9]+$ ]]; then ok "candidate $shuffled trained on shuffled labels ($(($(date +%s) - t0)) s)"; else not_ok "shuffled candidate: $shuffled"; fi
show "SELECT validation_id, passed, round(candidate_map7::numeric, 5) AS candidate, round(production_map7::numeric, 5) AS production,
             round(difference::numeric, 5) AS difference, round(ci_low::numeric, 5) AS ci_low, round(ci_high::numeric, 5) AS ci_high,
             array_to_string(reasons, E'\n') AS reasons
        FROM recsys.validate('default', ${shuffled:-0}, '2015-10-28')"
check "the shuffled-label candidate fails the gate: clearly worse than production, said in the reasons" \
    "SELECT NOT passed AND ci_high < 0 AND production_version = $good
            AND EXISTS (SELECT 1 FROM unnest(reasons) r WHERE r LIKE 'clearly worse than production%')
       FROM recsys.model_validations WHERE id = (SELECT max(id) FROM recsys.model_validations WHERE candidate_version = ${shuffled:-0})"
state=$(sqlstate_of "SELECT recsys.promote('default', ${shuffled:-0})")
[ "$state" = 55000 ] && ok "recsys.promote refuses the shuffled-label candidate (SQLSTATE 55000)" || not_ok "promote of the shuffled candidate: SQLSTATE $state"

# ---------------------------------------------------------------------------------------------
# Fewer months than production's train_months: the cycle trains on what there is and says so
# ---------------------------------------------------------------------------------------------
q "DELETE FROM santander.snapshots WHERE fecha_dato < '2015-06-01'" >/dev/null
run=$(q "SELECT r.id FROM recsys.retrain('default', 'santander.snapshots') r" 2>&1)
show "SELECT s ->> 'step' AS step, s ->> 'outcome' AS outcome, s -> 'detail' ->> 'train_months' AS train_months,
             s -> 'detail' ->> 'note' AS note
        FROM recsys.training_runs r, jsonb_array_elements(r.steps) s WHERE r.id = ${run:-0}"
check "only 2015-06 .. 2015-10 left: the cycle trains on 2 target months instead of production's 3 and records it" \
    "SELECT r.status IN ('promoted', 'kept') AND (r.steps -> 2 -> 'detail' ->> 'train_months')::int = 2
            AND (r.steps -> 2 -> 'detail' ->> 'train_months_requested')::int = 3
            AND r.steps -> 2 -> 'detail' ->> 'note' LIKE '%only 2 target months before 2015-09%'
            AND (SELECT training_data -> 'train_months' FROM recsys.models WHERE name = 'default' AND version = r.candidate_version)
                = '[\"2015-07\", \"2015-08\"]'
       FROM recsys.training_runs r WHERE r.id = ${run:-0}"

# ---------------------------------------------------------------------------------------------
# A cycle whose candidate does not pass the gate keeps production; a second cycle of the same
# model while one runs is recorded as failed
# ---------------------------------------------------------------------------------------------
production=$(production_is)
q "SELECT 1 FROM recsys.set_gate_rule('default', '{\"min_map7\": 0.5}')" >/dev/null
run=$(q "SELECT r.id FROM recsys.retrain('default', 'santander.snapshots') r" 2>&1)
show "SELECT s ->> 'step' AS step, s ->> 'outcome' AS outcome, left(s -> 'detail' ->> 'reason', 120) AS reason
        FROM recsys.training_runs r, jsonb_array_elements(r.steps) s WHERE r.id = ${run:-0} AND s ->> 'step' = 'decision'"
check "a candidate below the gate rule's minimum MAP@7: status kept, production unchanged, the reason recorded" \
    "SELECT r.status = 'kept' AND r.production_after = $production AND r.production_before = $production
            AND r.steps -> -1 ->> 'outcome' = 'kept' AND r.steps -> -1 -> 'detail' ->> 'reason' LIKE '%below the minimum 0.5%'
            AND (SELECT version FROM recsys.models WHERE name = 'default' AND status = 'production') = $production
       FROM recsys.training_runs r WHERE r.id = ${run:-0}"
"$PGBIN/psql" -XAtq -c "BEGIN; SELECT pg_advisory_xact_lock(hashtext('recsys.retrain'), hashtext('default'));
                        SELECT pg_sleep(4); COMMIT" >/dev/null 2>&1 &
locker=$!
sleep 1
check "a second cycle while one holds the model's lock: failed at 'started' (55P03), nothing trained" \
    "SELECT r.status = 'failed' AND r.error_sqlstate = '55P03' AND r.steps -> -1 ->> 'step' = 'started'
            AND r.candidate_version IS NULL FROM recsys.retrain('default', 'santander.snapshots') r"
wait "$locker"

echo "   all training runs:"
show "SELECT id, started_by, status, production_before AS before, production_after AS after, candidate_version AS candidate,
             error_sqlstate, left(error, 90) AS error FROM recsys.training_runs ORDER BY id"
finish
