#!/usr/bin/env bash
# Monitoring end to end (docs/monitoring.md): six months of generated data arrive one by one
# after a model was trained, with a change planted from the third of them; the test checks
# that feature_drift, prediction_skew, realized_quality, serving_stats, the prediction log,
# model_report and model_report_svg each show what happened, and prints the timeline.
#
# The data: RECSYS_MONITORING_CUSTOMERS (default 50000) customers x 11 months (2015-08 ..
# 2016-06, seed 42). From 2016-03, for segment 02 - PARTICULARES only, the uptake of
# ind_cno_fin_ult1 doubles and age is halved (docs/generated-data.md, "Planted changes").
# Version 1 (window 6, hidden 64, 5 epochs) trains on 2015-09 .. 2015-11, early-stops on
# 2015-12, is promoted by force and predicts 2016-01 (a prediction set). Then, for each month
# 2016-01 .. 2016-06: its snapshots are inserted, refresh_recommendations() (which realizes the
# earlier predictions and predicts the next month), recommend() / recommend_scores() calls at
# recsys.log_sample_rate 1 and 0 with some that fail, update_realized_quality().
#
# Why the MAP@7 checks use the customers who added: more adds raise Kaggle's MAP@7 (over all
# customers) whatever the ranking, so the stale model's figure over all customers rises with
# the planted uptake; its MAP@7 over the customers who added falls. The check compares it with
# the same model on the same months generated without the change (recsys.evaluate on that
# counterfactual data, which gives the realized figures exactly on the months before it).
#
# Its own cluster: a temporary directory, port RECSYS_MONITORING_PORT (default 55435), recsys
# preloaded by scripts/pg_cluster.sh (serving statistics need it); and, at the end, a second
# one on the next port without it, to check the report says so. Both stopped at the end
# (RECSYS_MONITORING_KEEP=1 leaves the first running). The SVG is written to
# $RECSYS_MONITORING_SVG (default: the cluster directory, removed at the end unless kept).
# About 2 minutes on two cores. Prints "ok - ..." / "not ok - ..." lines and "N passed, M
# failed" last; exits 1 on any failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
port=${RECSYS_MONITORING_PORT:-55435}
customers=${RECSYS_MONITORING_CUSTOMERS:-50000}
db=recsys_monitoring
export OPENBLAS_NUM_THREADS=1
# shellcheck source=tests/integration/tap.sh
. "$root/tests/integration/tap.sh" monitoring

cluster=$(mktemp -d "${RECSYS_MONITORING_TMP:-/tmp}/recsys-monitoring.XXXXXX")
cluster2="$cluster/unpreloaded"
svg=${RECSYS_MONITORING_SVG:-$cluster/model_report.svg}
cleanup() {
    "$root/scripts/pg_cluster.sh" stop "$cluster2" >/dev/null 2>&1
    if [ -n "${RECSYS_MONITORING_KEEP:-}" ]; then echo "kept the cluster running: PGHOST=$cluster PGPORT=$port"; return; fi
    "$root/scripts/pg_cluster.sh" stop "$cluster" >/dev/null 2>&1
    rm -rf "$cluster"
}
trap cleanup EXIT

export PGHOST=$cluster PGPORT=$port PGUSER=postgres PGDATABASE=$db
export PGOPTIONS="-c client_min_messages=warning"
q() { "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }                     # one value
show() { "$PGBIN/psql" -Xq -v ON_ERROR_STOP=1 -P pager=off -c "$1"; }      # a table, printed
check() {  # check DESCRIPTION SQL-returning-boolean
    local got
    got=$(q "$2" 2>&1)
    if [ "$got" = t ]; then ok "$1"; else not_ok "$1 (got: $got)"; fi
}

# ---------------------------------------------------------------------------------------------
# A cluster with recsys preloaded
# ---------------------------------------------------------------------------------------------
if ! "$root/scripts/pg_cluster.sh" start "$cluster" "$port" >"$cluster/start.log" 2>&1; then
    cat "$cluster/start.log"
    not_ok "the cluster starts on port $port"
    finish
fi
PGDATABASE=postgres q "CREATE DATABASE $db" >/dev/null
if ! out=$(q "CREATE EXTENSION recsys; SHOW shared_preload_libraries" 2>&1); then
    echo "$out"
    not_ok "CREATE EXTENSION recsys"
    finish
fi
[[ ",$out," == *",recsys,"* ]] && ok "cluster on port $port, shared_preload_libraries = '$out'" ||
    not_ok "recsys is not preloaded: shared_preload_libraries = '$out'"

# ---------------------------------------------------------------------------------------------
# Data: 11 months with a planted change from 2016-03; 2015-08 .. 2015-12 loaded
# ---------------------------------------------------------------------------------------------
segment="02 - PARTICULARES"
product=ind_cno_fin_ult1
planted="{\"from_month\": \"2016-03-28\", \"segment\": \"$segment\",
          \"uptake\": {\"product\": \"$product\", \"factor\": 2}, \"shift\": {\"column\": \"age\", \"factor\": 0.5}}"
months="2016-01 2016-02 2016-03 2016-04 2016-05 2016-06"
t0=$(date +%s)
if ! out=$(q "
CREATE SCHEMA santander;
CREATE TABLE santander.arriving AS
    SELECT * FROM recsys.generate_santander($customers, 11, 42, first_month => '2015-08-28', planted => '$planted');
CREATE TABLE santander.snapshots AS SELECT * FROM santander.arriving WHERE fecha_dato < '2016-01-01';
ALTER TABLE santander.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
DELETE FROM santander.arriving WHERE fecha_dato < '2016-01-01';
ANALYZE santander.snapshots;
SELECT count(*) FROM santander.snapshots" 2>&1); then
    echo "$out"
    not_ok "generated data"
    finish
fi
ok "generated $customers customers: $out rows of 2015-08 .. 2015-12 loaded, 2016-01 .. 2016-06 waiting ($(($(date +%s) - t0)) s)"

# ---------------------------------------------------------------------------------------------
# Version 1: trained before the change, promoted, predicting 2016-01
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
v1=$(q "SELECT recsys.train('default', 'santander.snapshots', train_months => 3, validation_month => '2015-12-28',
                            window_months => 6, hidden => 64, epochs => 5, learning_rate => 0.01)" 2>&1)
if [[ "$v1" =~ ^[0-9]+$ ]]; then ok "version $v1 trained on 2015-09 .. 2015-11 ($(($(date +%s) - t0)) s)"; else not_ok "training: $v1"; finish; fi
q "SELECT recsys.promote('default', $v1, force => true, reason => 'first model of the monitoring test')" >/dev/null
n=$(q "SELECT recsys.refresh_recommendations('default')" 2>&1)
check "the first refresh is kept as a prediction set for 2016-01 ($n customers)" \
    "SELECT count(*) = 1 AND bool_and(month = '2016-01-01' AND version = $v1 AND customers = $n)
       FROM recsys.prediction_sets WHERE model = 'default'"

# ---------------------------------------------------------------------------------------------
# Six months arrive
# ---------------------------------------------------------------------------------------------
q "SELECT recsys.serving_stats_reset()" >/dev/null
# What the test itself did and saw, per entry point: calls, and errors by SQLSTATE.
calls_recommend=0
calls_scores=0
calls_refresh=0
errors_P0002=0
errors_22023=0
logged_expected=0
q "CREATE TABLE santander.rate_0_calls (id bigint); CREATE TABLE santander.called (id bigint PRIMARY KEY)" >/dev/null
t0=$(date +%s)
for m in $months; do
    q "INSERT INTO santander.snapshots SELECT * FROM santander.arriving WHERE date_trunc('month', fecha_dato) = '$m-01';
       ANALYZE santander.snapshots" >/dev/null
    q "SELECT recsys.refresh_recommendations('default')" >/dev/null && calls_refresh=$((calls_refresh + 1))
    # 20 recommend() and 5 recommend_scores() at rate 1; 10 recommend() at rate 0; 2 calls for a
    # customer with no snapshot (P0002) at rate 1 and 1 with k = 0 (22023) at rate 0, each its
    # own statement. Every call is for another customer.
    out=$("$PGBIN/psql" -Xq -v VERBOSITY=verbose -P pager=off 2>&1 <<SQL
CREATE TEMP TABLE picked AS
    SELECT id, row_number() OVER (ORDER BY id) AS i
      FROM (SELECT s.ncodpers AS id FROM santander.snapshots s
             WHERE s.fecha_dato >= '$m-01' AND NOT EXISTS (SELECT 1 FROM santander.called c WHERE c.id = s.ncodpers)
             ORDER BY s.ncodpers LIMIT 35) p;
INSERT INTO santander.called SELECT id FROM picked;
SET recsys.log_sample_rate = 1;
SELECT count(recsys.recommend(id)) AS rate_1_recommend FROM picked WHERE i <= 20;
SELECT count(*) AS rate_1_scores FROM picked p, LATERAL recsys.recommend_scores(p.id, k => 3) s WHERE p.i > 20 AND p.i <= 25;
SELECT recsys.recommend(999999999);
SELECT recsys.recommend(999999998);
SET recsys.log_sample_rate = 0;
SELECT count(recsys.recommend(id)) AS rate_0_recommend FROM picked WHERE i > 25;
SELECT recsys.recommend((SELECT id FROM picked WHERE i = 1), k => 0);
INSERT INTO santander.rate_0_calls SELECT id FROM picked WHERE i > 25;
SQL
)
    if [ "$m" = 2016-01 ]; then echo "$out" | sed 's/^/   /'; fi
    calls_recommend=$((calls_recommend + 20 + 10 + 3))
    calls_scores=$((calls_scores + 5))
    logged_expected=$((logged_expected + 25))
    errors_P0002=$((errors_P0002 + $(echo "$out" | grep -c '^ERROR:  P0002')))
    errors_22023=$((errors_22023 + $(echo "$out" | grep -c '^ERROR:  22023')))
    q "SELECT recsys.update_realized_quality('default')" >/dev/null
done
echo "   six months arrived in $(($(date +%s) - t0)) s; the test made $calls_refresh refreshes, $calls_recommend recommend()" \
     "and $calls_scores recommend_scores() calls, and saw $errors_P0002 errors P0002 and $errors_22023 errors 22023"
[ "$errors_P0002" -eq 12 ] && [ "$errors_22023" -eq 6 ] && ok "every planned failure failed (12 x P0002, 6 x 22023)" ||
    not_ok "planned failures: $errors_P0002 x P0002, $errors_22023 x 22023"

# ---------------------------------------------------------------------------------------------
# Serving statistics: exactly the calls and errors the test made
# ---------------------------------------------------------------------------------------------
show "SELECT model, version, entry_point, calls, customers, errors, errors_by_sqlstate, round(p50_ms::numeric, 3) AS p50_ms,
             round(p95_ms::numeric, 3) AS p95_ms, round(p99_ms::numeric, 3) AS p99_ms
        FROM recsys.serving_stats WHERE entry_point IS NOT NULL"
check "serving_stats: recommend $calls_recommend calls, $((errors_P0002 + errors_22023)) errors ($errors_P0002 P0002, $errors_22023 22023); recommend_scores $calls_scores calls; refresh $calls_refresh calls; nothing else" \
    "WITH s AS (SELECT entry_point, sum(calls) AS calls, sum(errors) AS errors,
                       sum(coalesce((errors_by_sqlstate ->> 'P0002')::bigint, 0)) AS p0002,
                       sum(coalesce((errors_by_sqlstate ->> '22023')::bigint, 0)) AS e22023
                  FROM recsys.serving_stats WHERE entry_point IS NOT NULL GROUP BY entry_point)
     SELECT (SELECT array_agg(entry_point ORDER BY entry_point) FROM s) = ARRAY['recommend', 'recommend_scores', 'refresh']
        AND (SELECT calls = $calls_recommend AND errors = $((errors_P0002 + errors_22023)) AND p0002 = $errors_P0002
                    AND e22023 = $errors_22023 FROM s WHERE entry_point = 'recommend')
        AND (SELECT calls = $calls_scores AND errors = 0 FROM s WHERE entry_point = 'recommend_scores')
        AND (SELECT calls = $calls_refresh AND errors = 0 FROM s WHERE entry_point = 'refresh')"
check "serving_stats: the successful calls counted their customers and latencies (p50 <= p95 <= p99 <= max)" \
    "SELECT bool_and(customers = calls - errors OR entry_point = 'refresh')
            AND bool_and(p50_ms <= p95_ms AND p95_ms <= p99_ms AND p99_ms <= max_ms)
       FROM recsys.serving_stats WHERE entry_point IS NOT NULL AND calls > errors"

# ---------------------------------------------------------------------------------------------
# The prediction log: one row per successful call at rate 1, none at rate 0
# ---------------------------------------------------------------------------------------------
show "SELECT month, entry_point, count(*) AS rows, count(DISTINCT customer_id) AS customers
        FROM recsys.prediction_log GROUP BY 1, 2 ORDER BY 1, 2"
check "prediction_log: $logged_expected rows, 25 for each predicted month 2016-02 .. 2016-07 (20 recommend, 5 recommend_scores of 3 products)" \
    "SELECT count(*) = $logged_expected
            AND (SELECT bool_and(n = 25) AND count(*) = 6 FROM (SELECT month, count(*) AS n FROM recsys.prediction_log GROUP BY month) x)
            AND count(*) FILTER (WHERE entry_point = 'recommend' AND cardinality(products) = 7) = 120
            AND count(*) FILTER (WHERE entry_point = 'recommend_scores' AND cardinality(products) = 3) = 30
            AND count(DISTINCT customer_id) = $logged_expected AND bool_and(version = $v1)
       FROM recsys.prediction_log"
check "prediction_log: no row for the 60 calls at rate 0, nor for the calls that failed" \
    "SELECT (SELECT count(*) FROM santander.rate_0_calls) = 60
            AND NOT EXISTS (SELECT 1 FROM recsys.prediction_log l JOIN santander.rate_0_calls r ON r.id = l.customer_id)
            AND NOT EXISTS (SELECT 1 FROM recsys.prediction_log l WHERE l.customer_id IN (999999999, 999999998))"

# ---------------------------------------------------------------------------------------------
# Realized quality: the stale model
# ---------------------------------------------------------------------------------------------
show "SELECT month, version, source, set_id, round(map7::numeric, 5) AS map7, round(map7_adders::numeric, 4) AS map7_adders,
             customers, adders, predicted FROM recsys.realized_quality WHERE model = 'default' ORDER BY month, source"
check "realized_quality: one batch row per month 2016-01 .. 2016-06 (every customer predicted), one online row per month 2016-02 .. 2016-06 (25 predicted)" \
    "SELECT count(*) FILTER (WHERE source = 'batch') = 6
            AND array_agg(to_char(month, 'YYYY-MM') ORDER BY month) FILTER (WHERE source = 'batch')
                = string_to_array('$months', ' ')
            AND count(*) FILTER (WHERE source = 'online') = 5
            AND bool_and(predicted = 25) FILTER (WHERE source = 'online')
            AND bool_and(version = $v1)
       FROM recsys.realized_quality WHERE model = 'default'"
check "realized MAP@7 over the customers who added: lower on average in the four months from the change (2016-03 ..) than in the two before" \
    "SELECT avg(map7_adders) FILTER (WHERE month >= '2016-03-01') < avg(map7_adders) FILTER (WHERE month < '2016-03-01')
       FROM recsys.realized_quality WHERE model = 'default' AND source = 'batch'"

# ---------------------------------------------------------------------------------------------
# Drift: age, and nothing else
# ---------------------------------------------------------------------------------------------
q "CREATE TABLE santander.drift AS
   SELECT m::date AS month, d.* FROM generate_series('2016-01-01'::date, '2016-06-01', interval '1 month') m,
          recsys.feature_drift('default', m::date, $v1) d" >/dev/null
show "SELECT to_char(month, 'YYYY-MM') AS month, round(max(psi) FILTER (WHERE feature = 'age')::numeric, 4) AS age_psi,
             max(status) FILTER (WHERE feature = 'age') AS age_status,
             (SELECT string_agg(x.feature || ' ' || round(x.psi::numeric, 4), ', ' ORDER BY x.psi DESC)
                FROM (SELECT * FROM santander.drift o WHERE o.month = d.month AND o.feature <> 'age'
                       ORDER BY o.psi DESC LIMIT 3) x) AS next_highest
        FROM santander.drift d GROUP BY month ORDER BY month"
check "feature_drift: nothing at warn or alert in 2016-01 and 2016-02" \
    "SELECT bool_and(status = 'ok') FROM santander.drift WHERE month < '2016-03-01'"
check "feature_drift: age at alert (PSI > 0.25) in every month from 2016-03, every other feature and product ok" \
    "SELECT bool_and(status = 'alert' AND psi > 0.25) FILTER (WHERE feature = 'age')
            AND count(*) FILTER (WHERE feature = 'age') = 4
            AND bool_and(status = 'ok' AND psi <= 0.1) FILTER (WHERE feature <> 'age')
       FROM santander.drift WHERE month >= '2016-03-01'"

# ---------------------------------------------------------------------------------------------
# Prediction skew: cno in the planted segment
# ---------------------------------------------------------------------------------------------
q "CREATE TABLE santander.skew AS
   SELECT m::date AS month, s.* FROM generate_series('2016-01-01'::date, '2016-05-01', interval '1 month') m,
          recsys.prediction_skew('default', m::date, $v1) s" >/dev/null
show "SELECT to_char(month, 'YYYY-MM') AS inputs, to_char(month + interval '1 month', 'YYYY-MM') AS adds, product, segment,
             customers, round((100 * calibrated_predicted)::numeric, 3) AS predicted_pct,
             round((100 * observed_add_rate)::numeric, 3) AS observed_pct, observed_adds, round(ratio::numeric, 3) AS ratio, status
        FROM santander.skew WHERE product = '$product' AND segment IN ('all', '$segment')
         AND month IN ('2016-01-01', '2016-03-01', '2016-05-01') ORDER BY segment, month"
show "SELECT to_char(month, 'YYYY-MM') AS inputs, product, segment, observed_adds, round(ratio::numeric, 3) AS ratio, status
        FROM santander.skew WHERE month = '2016-03-01' AND status <> 'ok'
       ORDER BY recsys.model_report_skew_deviance(observed_adds, calibrated_predicted * customers) DESC LIMIT 8"
check "prediction_skew flags $product in segment $segment after the change (inputs 2016-03 .. 2016-05: warn or alert, under-predicted)" \
    "SELECT count(*) = 3 AND bool_and(status IN ('warn', 'alert') AND ratio < 1 / 1.5)
       FROM santander.skew WHERE product = '$product' AND segment = '$segment' AND month >= '2016-03-01'"
check "... and its ratio there fell by more than a quarter from the month before the change (2016-01, adds in 2016-02)" \
    "SELECT a.ratio < 0.75 * b.ratio FROM santander.skew a, santander.skew b
      WHERE a.product = '$product' AND a.segment = '$segment' AND a.month = '2016-03-01'
        AND b.product = a.product AND b.segment = a.segment AND b.month = '2016-01-01'"
check "... and it is the product of the most surprising flagged cell of 2016-03 (largest Poisson deviance), $segment its most surprising segment" \
    "SELECT (SELECT product FROM santander.skew WHERE month = '2016-03-01' AND status <> 'ok'
              ORDER BY recsys.model_report_skew_deviance(observed_adds, calibrated_predicted * customers) DESC LIMIT 1) = '$product'
        AND (SELECT segment FROM santander.skew WHERE month = '2016-03-01' AND product = '$product' AND segment <> 'all'
              ORDER BY recsys.model_report_skew_deviance(observed_adds, calibrated_predicted * customers) DESC LIMIT 1) = '$segment'"

# ---------------------------------------------------------------------------------------------
# The report, as rows and as a picture
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
q "CREATE TABLE santander.report AS SELECT row_number() OVER () AS n, * FROM recsys.model_report('default')" >/dev/null
echo "   recsys.model_report('default') in $(($(date +%s) - t0)) s:"
show "SELECT section, item, to_char(month, 'YYYY-MM') AS month, version,
             CASE WHEN abs(value) < 10 THEN round(value::numeric, 5) ELSE round(value::numeric) END AS value, left(detail, 110) AS detail
        FROM santander.report ORDER BY n"
check "model_report: its sections in order" \
    "SELECT array_agg(section ORDER BY first) = ARRAY['model', 'versions', 'events', 'quality', 'drift', 'skew', 'serving_skew', 'serving']
       FROM (SELECT section, min(n) AS first FROM santander.report GROUP BY section) s"
check "model_report: the promotion of version $v1, placed at 2016-01; realized MAP@7 for 2016-01 .. 2016-06 as realized_quality has it" \
    "SELECT (SELECT count(*) = 1 AND bool_and(month = '2016-01-01' AND version = $v1) FROM santander.report
              WHERE section = 'events' AND item = 'promote')
        AND (SELECT array_agg(r.value ORDER BY r.month) = array_agg(q.map7 ORDER BY r.month)
               FROM santander.report r JOIN recsys.realized_quality q
                 ON q.month = r.month AND q.version = r.version AND q.source = 'batch'
              WHERE r.section = 'quality' AND r.item = 'map7')
        AND (SELECT count(*) = 6 FROM santander.report WHERE section = 'quality' AND item = 'map7_adders')"
check "model_report: age is the only drift row above ok, in 2016-03 .. 2016-06" \
    "SELECT array_agg(DISTINCT item) = ARRAY['age'] AND count(*) = 4
       FROM santander.report WHERE section = 'drift' AND detail NOT LIKE 'ok:%'"
check "model_report: $product in segment $segment among its skewed products" \
    "SELECT EXISTS (SELECT 1 FROM santander.report WHERE section = 'skew' AND item = '$product'
                       AND detail LIKE '%segment $segment:%' AND detail NOT LIKE 'ok%')"
check "model_report: the serving rows are serving_stats' (calls per entry point)" \
    "SELECT (SELECT sum(value) FROM santander.report WHERE section = 'serving')
            = (SELECT sum(calls) FROM recsys.serving_stats WHERE model = 'default' AND entry_point IS NOT NULL)"

t0=$(date +%s)
if q "SELECT recsys.model_report_svg('default')" >"$svg" 2>"$cluster/svg.err"; then
    ok "model_report_svg: $(wc -c <"$svg") bytes in $(($(date +%s) - t0)) s, written to $svg"
else
    not_ok "model_report_svg: $(cat "$cluster/svg.err")"
fi
features=$(q "SELECT count(*) FROM santander.drift WHERE month = '2016-01-01' AND kind <> 'product'")
if out=$(/usr/bin/python3 - "$svg" "$v1" "$features" "$product" <<'PY' 2>&1
import sys, xml.etree.ElementTree as E
path, version, features, product = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
text = open(path, encoding="utf-8").read()
root = E.fromstring(text)                      # well-formed XML, or an exception
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
cls = lambda e: (e.get("class") or "").split()
every = list(root.iter())
months = ["2016-0%d" % i for i in range(1, 7)]
for metric in ("map7", "map7_adders"):
    pts = [e for e in every if "point" in cls(e) and e.get("data-metric") == metric]
    got = sorted((p.get("data-version"), p.get("data-month")) for p in pts)
    assert got == [(version, m) for m in months], (metric, got)
    series = [e for e in every if "series" in cls(e) and e.get("data-metric") == metric]
    assert [s.get("data-version") for s in series] == [version], series
promotions = [(e.get("data-version"), e.get("data-month")) for e in every if "promotion" in cls(e)]
assert promotions == [(version, "2016-01")] * 2, promotions      # one marker in each MAP@7 chart
cells = [e for e in every if "cell" in cls(e)]
cell_months = sorted({c.get("data-month") for c in cells})
assert cell_months == ["2015-12"] + months, cell_months
assert len({c.get("data-feature") for c in cells}) == features, len(cells)
age = {c.get("data-month"): c.get("data-status") for c in cells if c.get("data-feature") == "age"}
assert all((age[m] == "alert") == (m >= "2016-03") for m in age), age
assert all(c.get("data-status") == "ok" for c in cells if c.get("data-feature") != "age"), "another feature fired"
flagged = [e.get("data-status") for e in every if "product" in cls(e) and e.get("data-product") == product]
assert flagged in (["warn"], ["alert"]), flagged
low = text.lower()
for forbidden in ("<script", "href", "url(", "<image", "<foreignobject", "@import", "javascript:"):
    assert forbidden not in low, forbidden
print("%d points per metric, %d heat-map cells, promotion markers %s, %s %s" %
      (len(months), len(cells), promotions[0], product, flagged[0]))
PY
); then
    ok "model_report_svg parses as XML: one point per month per version in both MAP@7 charts, v$v1's promotion at 2016-01, age the only red row from 2016-03, $product flagged; no script or external reference ($out)"
else
    not_ok "model_report_svg: $out"
fi

# ---------------------------------------------------------------------------------------------
# The counterfactual: the same model on the same months generated without the change
# ---------------------------------------------------------------------------------------------
t0=$(date +%s)
q "CREATE TABLE santander.realized AS SELECT * FROM recsys.realized_quality WHERE model = 'default' AND source = 'batch';
   TRUNCATE santander.snapshots;
   INSERT INTO santander.snapshots SELECT * FROM recsys.generate_santander($customers, 11, 42, first_month => '2015-08-28');
   ANALYZE santander.snapshots;
   CREATE TABLE santander.counterfactual AS
   SELECT m::date AS month, e.* FROM generate_series('2016-01-01'::date, '2016-06-01', interval '1 month') m,
          recsys.evaluate('default', $v1, m::date) e WHERE e.method = 'lstm'" >/dev/null
echo "   counterfactual evaluated in $(($(date +%s) - t0)) s"
check "the same model on the months without the change scores exactly the realized figures of 2016-01 and 2016-02" \
    "SELECT bool_and(abs(r.map7 - c.map7) < 1e-9 AND abs(r.map7_adders - c.map7_adders) < 1e-9 AND r.customers = c.customers)
            AND count(*) = 2
       FROM santander.realized r JOIN santander.counterfactual c USING (month) WHERE month < '2016-03-01'"
check "realized MAP@7 over the customers who added is below the counterfactual's in every month from the change (2016-03 .. 2016-06)" \
    "SELECT bool_and(r.map7_adders < c.map7_adders) AND count(*) = 4
       FROM santander.realized r JOIN santander.counterfactual c USING (month) WHERE month >= '2016-03-01'"

# ---------------------------------------------------------------------------------------------
# The timeline
# ---------------------------------------------------------------------------------------------
echo
echo "Timeline (version $v1 trained on 2015-09 .. 2015-11; from 2016-03, segment $segment: $product uptake x2, age x0.5):"
show "SELECT to_char(r.month, 'YYYY-MM') AS month, round(r.map7::numeric, 5) AS realized_map7,
             round(c.map7::numeric, 5) AS without_change_map7, round(r.map7_adders::numeric, 4) AS realized_map7_adders,
             round(c.map7_adders::numeric, 4) AS without_change_map7_adders,
             round((r.map7_adders - c.map7_adders)::numeric, 4) AS adders_difference, r.adders, c.adders AS adders_without,
             (SELECT string_agg(d.feature || ' ' || round(d.psi::numeric, 3) || ' ' || d.status, ', ')
                FROM santander.drift d WHERE d.month = r.month AND d.status <> 'ok') AS psi_fired,
             (SELECT s.product || ' in ' || s.segment || ' ' || s.status || ' x' || round(s.ratio::numeric, 2)
                FROM santander.skew s
               WHERE s.month = (r.month - interval '1 month')::date AND s.status <> 'ok' AND s.segment <> 'all'
               ORDER BY recsys.model_report_skew_deviance(s.observed_adds, s.calibrated_predicted * s.customers) DESC
               LIMIT 1) AS most_skewed_segment_cell
        FROM santander.realized r JOIN santander.counterfactual c USING (month) ORDER BY r.month"

# ---------------------------------------------------------------------------------------------
# Without shared_preload_libraries = 'recsys': the report says so instead of failing
# ---------------------------------------------------------------------------------------------
port2=$((port + 1))
if RECSYS_PRELOAD=0 "$root/scripts/pg_cluster.sh" start "$cluster2" "$port2" >"$cluster/start2.log" 2>&1; then
    out=$(PGHOST=$cluster2 PGPORT=$port2 PGDATABASE=postgres "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 <<'SQL' 2>&1
CREATE EXTENSION recsys;
CREATE TABLE snapshots AS SELECT * FROM recsys.generate_santander(300, 4);
SELECT recsys.register_model('bare', recsys.untrained_model('public.snapshots', window_months => 3, hidden => 4)) \gset
SELECT recsys.promote('bare', 1, force => true, reason => 'no preload') \gset
SELECT section || ' | ' || item || ' | ' || detail FROM recsys.model_report('bare') WHERE section IN ('serving', 'drift');
SELECT CASE WHEN recsys.model_report_svg('bare') LIKE '%Unavailable: %shared_preload_libraries%' THEN 'svg says so' END;
SQL
)
    echo "$out" | sed 's/^/   /'
    if [[ "$out" == *"serving | unavailable | "*"shared_preload_libraries"* && "$out" == *"drift | unavailable | "*"no feature reference"* && "$out" == *"svg says so"* ]]; then
        ok "without recsys preloaded, model_report and model_report_svg say serving statistics are unavailable (and drift: no reference)"
    else
        not_ok "report without preload"
    fi
else
    cat "$cluster/start2.log"
    not_ok "a cluster without recsys preloaded starts on port $port2"
fi

finish
