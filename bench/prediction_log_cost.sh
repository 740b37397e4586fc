#!/usr/bin/env bash
# What the prediction log (recsys.log_sample_rate) costs a recommend() call, and what keeping
# each refresh's output as a prediction set costs refresh_recommendations(). A benchmark, not a
# test: it prints figures and checks nothing.
#
#   PGHOST=... PGPORT=... PGUSER=postgres bash bench/prediction_log_cost.sh
#
# 1. Online. Server time per call: a DO block calls recommend() for RECSYS_BENCH_CALLS random
#    customers (default 10000), each twice, at recsys.log_sample_rate 0 (the default: one branch)
#    and 1.0 (every call writes a log row in a subtransaction), in alternating order, and sums
#    each call's clock_timestamp() delta per rate; RECSYS_BENCH_ROUNDS times (default 3);
#    printed: the median per rate and the median over rounds of the ratio within a round. One
#    transaction, rolled back: no log row outlives the benchmark.
# 2. Batch. What the refresh adds for the prediction set, in a transaction rolled back:
#    - the refresh as 0.2.0 wrote it (delete, insert from score_all) against the refresh of now
#      (realized-quality update first, the latest-month query, the same scoring, the copy of the
#      rows to recsys.prediction_set_rows), in turn, RECSYS_BENCH_REFRESH_ROUNDS times (default
#      2), medians;
#    - the parts alone: the latest-month query, the copy of every row, the check whether any
#      realized quality is due (a month landed);
#    - standalone only: the month predicted lands, and the time to compute the set's realized
#      quality (every customer).
#    With RECSYS_PLOG_DB set (bench/run_all.sh), only the parts alone are measured, on the
#    model's current recsys.recommendations (bench/run_all.sh has just refreshed them).
#
# Needs a running cluster with the recsys extension installed and a superuser. By default it
# creates and drops the database recsys_plog_bench with RECSYS_BENCH_CUSTOMERS customers
# (default 100000): 16 months in bench.snapshots, the 17th held back in bench.next_month, and an
# untrained model of the reference shape (window 16, hidden 128) in production. To measure an
# existing model instead, set RECSYS_PLOG_DB, RECSYS_PLOG_MODEL and RECSYS_PLOG_IDS
# ("first_id last_id"). RECSYS_PLOG_RESULTS: a file to append "key value" lines to.
set -euo pipefail

calls=${RECSYS_BENCH_CALLS:-10000}
rounds=${RECSYS_BENCH_ROUNDS:-3}
refresh_rounds=${RECSYS_BENCH_REFRESH_ROUNDS:-2}
customers=${RECSYS_BENCH_CUSTOMERS:-100000}
PSQL=(psql -X -q -v ON_ERROR_STOP=1)

standalone=1
if [ -n "${RECSYS_PLOG_DB:-}" ]; then
    standalone=0
    db=$RECSYS_PLOG_DB
    model=${RECSYS_PLOG_MODEL:?set RECSYS_PLOG_MODEL}
    read -r first_id last_id <<<"${RECSYS_PLOG_IDS:?set RECSYS_PLOG_IDS}"
else
    db=recsys_plog_bench
    model=plog_bench
    first_id=15889  # recsys.generate_santander's first customer id
    last_id=$((first_id + customers - 1))
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
    "${PSQL[@]}" -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    trap '"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
    start=$(date +%s)
    "${PSQL[@]}" -d "$db" -o /dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION recsys;
CREATE SCHEMA bench;
CREATE TABLE bench.all_months AS SELECT * FROM recsys.generate_santander($customers, months => 17);
CREATE TABLE bench.snapshots AS SELECT * FROM bench.all_months WHERE fecha_dato < '2016-05-01';
CREATE TABLE bench.next_month AS SELECT * FROM bench.all_months WHERE fecha_dato >= '2016-05-01';
DROP TABLE bench.all_months;
ALTER TABLE bench.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
VACUUM ANALYZE bench.snapshots;
SELECT recsys.register_model('$model', recsys.untrained_model('bench.snapshots', seed => 1));
SELECT recsys.promote('$model', 1, force => true, reason => 'benchmark fixture');
SQL
    echo "data: $customers customers x 16 months (+1 held back), $(($(date +%s) - start)) s to generate"
fi

if [ "$standalone" = 1 ]; then
    # Customers with a snapshot in the latest month (some of the generator's join later).
    ids_sql="SELECT s.ncodpers FROM bench.snapshots s WHERE s.fecha_dato = '2016-04-28'
                ORDER BY random() LIMIT $calls"
else
    ids_sql="SELECT $first_id + floor(random() * ($last_id - $first_id + 1))::bigint FROM generate_series(1, $calls)"
fi
echo "prediction log cost: model $model, $calls calls x $rounds rounds, ids $first_id..$last_id"
# The figures leave the rolled-back transaction as a NOTICE.
out=$("${PSQL[@]}" -d "$db" 2>&1 <<SQL
BEGIN;
DO \$\$
DECLARE
    ids     bigint[] := ARRAY($ids_sql);
    zero_us double precision;
    full_us double precision;
    times   double precision[] := '{}';
    t0      timestamptz;
    r       text[];
    rate    text;
    c       record;
    logged  bigint;
BEGIN
    -- The model parsed and cached, and the log's insert plan prepared, before timing.
    PERFORM set_config('recsys.log_sample_rate', '1', true);
    r := recsys.recommend(ids[1], 7, '$model');
    -- One untimed pass over the ids, so that the first timed loop does not pay for reading them.
    PERFORM set_config('recsys.log_sample_rate', '0', true);
    FOR i IN 1 .. $calls LOOP
        r := recsys.recommend(ids[i], 7, '$model');
    END LOOP;
    -- Paired: each id is called once at rate 0 and once at rate 1, in alternating order, each
    -- call timed alone, so that both rates see the same load of a shared machine and the same
    -- cache state on average.
    FOR rnd IN 1 .. $rounds LOOP
        zero_us := 0;
        full_us := 0;
        FOR i IN 1 .. $calls LOOP
            FOR j IN 0 .. 1 LOOP
                rate := ((i + j) % 2)::text;
                PERFORM set_config('recsys.log_sample_rate', rate, true);
                t0 := clock_timestamp();
                r := recsys.recommend(ids[i], 7, '$model');
                IF rate = '0' THEN
                    zero_us := zero_us + extract(epoch FROM clock_timestamp() - t0) * 1e6;
                ELSE
                    full_us := full_us + extract(epoch FROM clock_timestamp() - t0) * 1e6;
                END IF;
            END LOOP;
        END LOOP;
        times := times || zero_us / $calls || full_us / $calls;
    END LOOP;
    SELECT count(*) INTO logged FROM recsys.prediction_log WHERE model = '$model';
    SELECT * INTO c FROM recsys.prediction_log_counters();
    RAISE NOTICE 'plog_bench zero=% full=% ratio=% logged=% sampled=% errors=% all=%',
        round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY times[2 * k + 1]) FROM generate_series(0, $rounds - 1) k)::numeric, 2),
        round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY times[2 * k + 2]) FROM generate_series(0, $rounds - 1) k)::numeric, 2),
        round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY times[2 * k + 2] / times[2 * k + 1]) FROM generate_series(0, $rounds - 1) k)::numeric, 3),
        logged, c.sampled, c.errors,
        array_to_string(ARRAY(SELECT round(t::numeric, 1) FROM unnest(times) t), ',');
END
\$\$;
ROLLBACK;
SQL
)
line=$(sed -n 's/.*NOTICE:  plog_bench //p' <<<"$out")
[ -n "$line" ] || { echo "$out" >&2; exit 1; }
get() { sed -n "s/.*\b$1=\(-\{0,1\}[0-9.]*\).*/\1/p" <<<"$2"; }
zero=$(get zero "$line"); full=$(get full "$line"); ratio=$(get ratio "$line")
echo "per-call server time of recommend(), median of $rounds rounds (rate 0, rate 1 of every round, us: $(sed -n 's/.*all=//p' <<<"$line"))"
echo "  log_sample_rate 0:   $zero us/call"
echo "  log_sample_rate 1.0: $full us/call  (median ratio to rate 0 within a round: ${ratio}x)"
echo "  $(sed -n 's/.*\(logged=[0-9]*\).*/\1/p' <<<"$line") rows, $(sed -n 's/.*\(sampled=[0-9]* errors=[0-9]*\).*/\1/p' <<<"$line") (rolled back)"

echo "refresh_recommendations(): what keeping the prediction set adds"
out=$("${PSQL[@]}" -d "$db" 2>&1 <<SQL
BEGIN;
DO \$\$
DECLARE
    standalone boolean := $standalone = 1;
    old_s   double precision[] := '{}';
    new_s   double precision[] := '{}';
    t0      timestamptz;
    spec    jsonb;
    rows_   bigint;
    month_ms double precision;
    copy_ms  double precision;
    check_ms double precision;
    quality_s double precision := -1;
    latest  date;
BEGIN
    IF standalone THEN
        FOR rnd IN 1 .. $refresh_rounds LOOP
            t0 := clock_timestamp();
            PERFORM recsys.lock_recommendations('$model');
            DELETE FROM recsys.recommendations r WHERE r.model_name = '$model';
            INSERT INTO recsys.recommendations (model_name, customer_id, model_version, computed_at, products, scores)
            SELECT s.model_name, s.customer_id, s.model_version, s.computed_at, s.products, s.scores
              FROM recsys.score_all('$model', 7) s;
            old_s := old_s || extract(epoch FROM clock_timestamp() - t0);
            t0 := clock_timestamp();
            PERFORM recsys.refresh_recommendations('$model');
            new_s := new_s || extract(epoch FROM clock_timestamp() - t0);
        END LOOP;
    END IF;
    SELECT m.feature_spec INTO spec FROM recsys.models m WHERE m.name = '$model' AND m.status = 'production';
    t0 := clock_timestamp();
    latest := recsys.snapshot_latest_month(spec);
    month_ms := extract(epoch FROM clock_timestamp() - t0) * 1e3;
    t0 := clock_timestamp();
    INSERT INTO recsys.prediction_set_rows (set_id, customer_id, products)
    SELECT -1, r.customer_id, r.products FROM recsys.recommendations r WHERE r.model_name = '$model';
    GET DIAGNOSTICS rows_ = ROW_COUNT;
    copy_ms := extract(epoch FROM clock_timestamp() - t0) * 1e3;
    t0 := clock_timestamp();
    PERFORM 1 FROM recsys.realized_quality_pending('$model') p WHERE p.month <= latest;
    check_ms := extract(epoch FROM clock_timestamp() - t0) * 1e3;
    IF standalone THEN
        -- The predicted month lands: the realized quality of the last set, every customer.
        INSERT INTO bench.snapshots SELECT * FROM bench.next_month;
        ANALYZE bench.snapshots;
        t0 := clock_timestamp();
        PERFORM recsys.update_realized_quality('$model');
        quality_s := extract(epoch FROM clock_timestamp() - t0);
    END IF;
    RAISE NOTICE 'plog_refresh rows=% old_s=% new_s=% extra_s=% month_ms=% copy_ms=% check_ms=% quality_s=% all_old=% all_new=%',
        rows_,
        round(coalesce((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t) FROM unnest(old_s) t), -1)::numeric, 2),
        round(coalesce((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t) FROM unnest(new_s) t), -1)::numeric, 2),
        round(coalesce((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY n - o) FROM unnest(old_s, new_s) u(o, n)), -1)::numeric, 2),
        round(month_ms::numeric, 1), round(copy_ms::numeric, 1), round(check_ms::numeric, 1), round(quality_s::numeric, 2),
        array_to_string(ARRAY(SELECT round(t::numeric, 2) FROM unnest(old_s) t), ','),
        array_to_string(ARRAY(SELECT round(t::numeric, 2) FROM unnest(new_s) t), ',');
END
\$\$;
ROLLBACK;
SQL
)
line=$(sed -n 's/.*NOTICE:  plog_refresh //p' <<<"$out")
[ -n "$line" ] || { echo "$out" >&2; exit 1; }
rows=$(get rows "$line"); month_ms=$(get month_ms "$line"); copy_ms=$(get copy_ms "$line"); check_ms=$(get check_ms "$line")
if [ "$standalone" = 1 ]; then
    echo "  refresh as in 0.2.0:           $(get old_s "$line") s  (rounds: $(sed -n 's/.*all_old=\([0-9.,]*\).*/\1/p' <<<"$line"))"
    echo "  refresh keeping the set:       $(get new_s "$line") s  (rounds: $(sed -n 's/.*all_new=\([0-9.,]*\).*/\1/p' <<<"$line"))"
    echo "  extra (median within a round): $(get extra_s "$line") s"
fi
echo "  parts, $rows customers: latest-month query $month_ms ms, copy to prediction_set_rows $copy_ms ms, the check for realized quality due $check_ms ms"
[ "$standalone" = 1 ] && echo "  realized quality of the set once its month landed ($rows customers): $(get quality_s "$line") s"
if [ -n "${RECSYS_PLOG_RESULTS:-}" ]; then
    { echo "plog_zero_us $zero"; echo "plog_full_us $full"; echo "plog_full_ratio $ratio"
      echo "plog_set_copy_ms $copy_ms"; echo "plog_month_query_ms $month_ms"; echo "plog_quality_check_ms $check_ms"; } >>"$RECSYS_PLOG_RESULTS"
fi
