-- score_all with parallel workers (recsys.parallel_workers): same rows as scoring alone, one
-- refresh with workers equals one without, a worker's error fails the call and rolls the
-- refresh back, statement_timeout ends every worker, and the fallbacks to scoring alone.
SET client_min_messages = warning;
CREATE SCHEMA ps;
-- 5000 customers: enough ids for 3 workers beside the calling backend (about 1000 ids each at least).
CREATE TABLE ps.snapshots AS SELECT * FROM recsys.generate_santander(5000, months => 6);
ALTER TABLE ps.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
SELECT recsys.register_model('ps_model', recsys.untrained_model('ps.snapshots', window_months => 4, hidden => 16, seed => 21));
SELECT recsys.promote('ps_model', 1, force => true, reason => 'test fixture');
SELECT set_config('ps.caller_pid', pg_backend_pid()::text, false) IS NOT NULL AS caller_pid_set;
-- A view of ps.snapshots whose renta column (a feature the model reads) is renta_sql.
CREATE FUNCTION ps.create_view(name text, renta_sql text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE VIEW ps.%I AS SELECT %s FROM ps.snapshots s', name,
                   (SELECT string_agg(CASE WHEN attname = 'renta' THEN renta_sql || ' AS renta'
                                           ELSE 's.' || quote_ident(attname) END, ', ' ORDER BY attnum)
                      FROM pg_attribute
                     WHERE attrelid = 'ps.snapshots'::regclass AND attnum > 0 AND NOT attisdropped));
END $$;
-- A view whose income column fails when a parallel worker reads it (a worker's pg_backend_pid()
-- is its own; the calling backend's pid reaches the workers as a setting): it shows that
-- workers did score, and that their errors reach the caller. Declared PARALLEL SAFE so that
-- score_all lets workers read the view, and STABLE so that a query of the view that does not
-- read the column (score_all's id range) does not call it. With ps.pause on, the calling
-- backend pauses 0.2 s on one customer in 300 (at least one per slice of the id range), so
-- that the workers have started before it could score every slice itself.
CREATE FUNCTION ps.income_outside_workers(id bigint, x double precision) RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    IF pg_backend_pid() <> current_setting('ps.caller_pid')::integer THEN
        RAISE EXCEPTION 'read by a parallel worker as %', current_user;
    ELSIF id % 300 = 0 AND current_setting('ps.pause', true) = 'on' THEN
        PERFORM pg_sleep(0.2);
    END IF;
    RETURN x;
END $$;
SELECT ps.create_view('worker_probe', 'ps.income_outside_workers(s.ncodpers, s.renta)');
SELECT recsys.register_model('ps_probe', recsys.untrained_model('ps.worker_probe', window_months => 4, hidden => 16, seed => 21));
-- The same view with the function declared PARALLEL UNSAFE: workers may not read it.
CREATE FUNCTION ps.income_unsafe(x double precision) RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL UNSAFE AS $$
BEGIN
    IF pg_backend_pid() <> current_setting('ps.caller_pid')::integer THEN
        RAISE EXCEPTION 'read by a parallel worker';
    END IF;
    RETURN x;
END $$;
SELECT ps.create_view('unsafe_probe', 'ps.income_unsafe(s.renta)');
SELECT recsys.register_model('ps_unsafe', recsys.untrained_model('ps.unsafe_probe', window_months => 4, hidden => 16, seed => 21));
RESET client_min_messages;
SET jit = off;

-- The setting: -1 (one fewer than the CPUs) by default, 0 to 1024 workers.
SHOW recsys.parallel_workers;
SET recsys.parallel_workers = -2;
SET recsys.parallel_workers = 1025;
SET recsys.parallel_workers = 1024;
SET recsys.parallel_workers = 0;

-- Workers score: a source only they fail on fails with 3 workers, not alone.
SELECT count(*) AS scored_alone FROM recsys.score_all('ps_probe', 7, version => 1, shard => 0, shards => 50);
SET recsys.parallel_workers = 3;
SET ps.pause = on;
\set VERBOSITY terse
SELECT count(*) FROM recsys.score_all('ps_probe', 7, version => 1);
\set VERBOSITY default
-- Workers run as the caller: a scoring role that may read the view gets the same error, raised
-- by its workers as itself; one that may not is refused before any worker starts.
CREATE ROLE ps_scorer;
GRANT recsys_reader TO ps_scorer;
GRANT USAGE ON SCHEMA ps TO ps_scorer;
GRANT SELECT ON ps.worker_probe TO ps_scorer;
SET ROLE ps_scorer;
\set VERBOSITY terse
SELECT count(*) FROM recsys.score_all('ps_probe', 7, version => 1);
SELECT count(*) FROM recsys.score_all('ps_model', 7, version => 1);
\set VERBOSITY default
RESET ROLE;
RESET ps.pause;
-- A view with a PARALLEL UNSAFE function is read by the calling backend alone.
SELECT count(*) AS scored_alone FROM recsys.score_all('ps_unsafe', 7, version => 1);

-- Parallel rows equal serial rows: the same customers, the same products, scores within 1e-6
-- (batches of other sizes may round the last bit differently).
SET recsys.parallel_workers = 0;
CREATE TEMP TABLE serial_all AS SELECT * FROM recsys.score_all('ps_model', 7);
CREATE TEMP TABLE serial_as_of AS SELECT * FROM recsys.score_all('ps_model', 5, as_of => '2015-04-28');
SET recsys.parallel_workers = 3;
CREATE TEMP TABLE parallel_all AS SELECT * FROM recsys.score_all('ps_model', 7);
CREATE TEMP TABLE parallel_as_of AS SELECT * FROM recsys.score_all('ps_model', 5, as_of => '2015-04-28');
SELECT count(*) AS customers, count(s.customer_id) = count(*) AND count(p.customer_id) = count(*) AS same_customers,
       bool_and(s.products = p.products) AS same_products,
       bool_and((SELECT max(abs(a - b)) FROM unnest(s.scores, p.scores) u(a, b)) <= 1e-6) AS same_scores,
       bool_and(s.model_version = p.model_version AND s.model_name = p.model_name) AS same_version
  FROM serial_all s FULL JOIN parallel_all p USING (customer_id);
SELECT count(*) AS customers, count(s.customer_id) = count(*) AND count(p.customer_id) = count(*) AS same_customers,
       bool_and(s.products = p.products) AS same_products,
       bool_and((SELECT max(abs(a - b)) FROM unnest(s.scores, p.scores) u(a, b)) <= 1e-6) AS same_scores
  FROM serial_as_of s FULL JOIN parallel_as_of p USING (customer_id);
-- Explicit shards still split the customers, each shard scored with workers.
SELECT count(*) AS customers, count(DISTINCT customer_id) AS distinct_customers,
       bool_and(s.products = a.products) AS same_products
  FROM (SELECT * FROM recsys.score_all('ps_model', 7, shard => 0, shards => 2)
        UNION ALL SELECT * FROM recsys.score_all('ps_model', 7, shard => 1, shards => 2)) s
  JOIN serial_all a USING (customer_id);

-- The batch path (rows read from the executor's slots) agrees with the one-customer path
-- (rows read through an SPI tuple table) for every customer.
SELECT bool_and(p.products = recsys.recommend(p.customer_id, 7, 'ps_model')) AS batch_equals_single
  FROM parallel_all p;

-- A refresh with workers writes the same recommendations as one without.
SET recsys.parallel_workers = 0;
SELECT recsys.refresh_recommendations('ps_model') AS refreshed_alone;
CREATE TEMP TABLE refreshed_alone AS SELECT * FROM recsys.recommendations WHERE model_name = 'ps_model';
SET recsys.parallel_workers = 3;
SELECT recsys.refresh_recommendations('ps_model') AS refreshed_with_workers;
SELECT count(*) AS customers, count(a.customer_id) = count(*) AND count(r.customer_id) = count(*) AS same_customers,
       bool_and(a.products = r.products) AS same_products,
       bool_and((SELECT max(abs(x - y)) FROM unnest(a.scores, r.scores) u(x, y)) <= 1e-6) AS same_scores
  FROM refreshed_alone a FULL JOIN (SELECT * FROM recsys.recommendations WHERE model_name = 'ps_model') r USING (customer_id);

-- A value the encoder refuses in one customer's row fails the whole refresh, whichever
-- participant reads it, and the previous recommendations stay.
CREATE TEMP TABLE before_failure AS SELECT * FROM recsys.recommendations WHERE model_name = 'ps_model';
UPDATE ps.snapshots SET renta = 'NaN' WHERE ncodpers = 15889 + 4321 AND fecha_dato = '2015-06-28';
\set VERBOSITY terse
SELECT recsys.refresh_recommendations('ps_model');
SET recsys.parallel_workers = 0;
SELECT count(*) FROM recsys.score_all('ps_model', 7);
SET recsys.parallel_workers = 3;
\set VERBOSITY default
SELECT count(*) AS customers, bool_and(b.computed_at = r.computed_at AND b.products = r.products) AS unchanged
  FROM before_failure b FULL JOIN (SELECT * FROM recsys.recommendations WHERE model_name = 'ps_model') r USING (customer_id);
UPDATE ps.snapshots SET renta = NULL WHERE ncodpers = 15889 + 4321 AND fecha_dato = '2015-06-28';

-- statement_timeout stops the call and every worker: workers that sleep on each row keep it
-- running until the timeout; afterwards no worker of this backend is left.
-- (The calling backend pauses as in ps.worker_probe, so the call outlasts the timeout even
-- where no worker could start.)
CREATE FUNCTION ps.slow_in_workers(id bigint, x double precision) RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    IF pg_backend_pid() <> current_setting('ps.caller_pid')::integer THEN
        PERFORM pg_sleep(0.05);
    ELSIF id % 300 = 0 AND current_setting('ps.pause', true) = 'on' THEN
        PERFORM pg_sleep(0.2);
    END IF;
    RETURN x;
END $$;
SET client_min_messages = warning;
SELECT ps.create_view('slow_probe', 'ps.slow_in_workers(s.ncodpers, s.renta)');
SELECT recsys.register_model('ps_slow', recsys.untrained_model('ps.slow_probe', window_months => 4, hidden => 16, seed => 21));
RESET client_min_messages;
SET ps.pause = on;
SET statement_timeout = '1s';
\set VERBOSITY terse
SELECT count(*) FROM recsys.score_all('ps_slow', 7, version => 1);
\set VERBOSITY default
RESET statement_timeout;
RESET ps.pause;
SELECT count(*) AS workers_left FROM pg_stat_activity WHERE leader_pid = pg_backend_pid() AND pid <> pg_backend_pid();

-- pg_cancel_backend of the calling backend stops it and its workers: another session scores
-- through ps.slow_probe until it is cancelled once its workers run.
SELECT dblink_connect('other', format('dbname=%s host=%s port=%s', current_database(),
                                      current_setting('unix_socket_directories'), current_setting('port')));
CREATE TEMP TABLE other AS SELECT pid FROM dblink('other', 'SELECT pg_backend_pid()') AS t(pid integer);
SELECT * FROM dblink('other', $q$SELECT set_config('ps.caller_pid', pg_backend_pid()::text, false) IS NOT NULL,
                                        set_config('ps.pause', 'on', false),
                                        set_config('recsys.parallel_workers', '3', false)$q$) AS t(pid_set boolean, pause text, workers text);
SELECT dblink_send_query('other', $q$SELECT count(*) FROM recsys.score_all('ps_slow', 7, version => 1)$q$) AS sent;
CREATE FUNCTION pg_temp.other_workers() RETURNS bigint LANGUAGE sql AS $$
SELECT count(*) FROM pg_stat_activity a JOIN other o ON a.leader_pid = o.pid AND a.pid <> o.pid $$;
CREATE FUNCTION pg_temp.wait_for_other_workers() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 6000 LOOP  -- 60 s at most
        PERFORM pg_stat_clear_snapshot();
        IF pg_temp.other_workers() > 0 THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END $$;
SELECT pg_temp.wait_for_other_workers() AS workers_running;
SELECT pg_cancel_backend(pid) AS cancelled FROM other;
\set VERBOSITY terse
SELECT * FROM dblink_get_result('other', false) AS t(n bigint);
\set VERBOSITY default
SELECT split_part(dblink_error_message('other'), E'\n', 1) AS other_error;
SELECT * FROM dblink_get_result('other', false) AS t(n bigint);
SELECT pg_stat_clear_snapshot();
SELECT pg_temp.other_workers() AS workers_left;
SELECT dblink_disconnect('other');

-- No worker to be had (max_parallel_workers = 0): the calling backend scores everything and says so.
SET max_parallel_workers = 0;
SELECT count(*) AS customers FROM recsys.score_all('ps_model', 7);
-- recsys.max_batch_memory bounds the whole call, not each process: the calling backend and the
-- 3 workers planned each plan their batches in a quarter of it (DEBUG1 shows the plan).
SET recsys.max_batch_memory = '4MB';
SET client_min_messages = debug1;
SELECT count(*) AS customers FROM recsys.score_all('ps_model', 7);
RESET client_min_messages;
RESET recsys.max_batch_memory;
RESET max_parallel_workers;
-- A small relation is scored alone, in id order.
SELECT array_agg(customer_id) = array_agg(customer_id ORDER BY customer_id) AS in_id_order
  FROM recsys.score_all('ps_model', 7, shard => 0, shards => 5) s;
RESET recsys.parallel_workers;
DROP OWNED BY ps_scorer;
DROP ROLE ps_scorer;
