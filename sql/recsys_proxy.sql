-- recsys_proxy: the proxy database of a hash-sharded recsys (docs/scale-out.md, "Sharding with
-- PL/Proxy"). Not part of the recsys extension: the proxy holds no snapshots and no models; each
-- shard is an ordinary database with the recsys extension and the snapshots of the customers whose
-- id hashes to it. Install on the proxy database, as a superuser, after defining the shards:
--
--   CREATE EXTENSION plproxy; CREATE EXTENSION dblink;
--   CREATE SERVER recsys_shards FOREIGN DATA WRAPPER plproxy
--       OPTIONS (p0 'host=/run/shard0 port=5433 dbname=bank', p1 'host=/run/shard1 port=5434 dbname=bank');
--   CREATE USER MAPPING FOR PUBLIC SERVER recsys_shards;   -- each role reaches the shards as itself
--   \i sql/recsys_proxy.sql
--
-- A customer lives on partition hashint8(customer_id) & (partitions - 1) (PL/Proxy's RUN ON masks
-- the hash with the partition count, a power of two); load each shard's snapshots with the same
-- expression (recsys_proxy.shard_of).
--
-- Serving (recommend, recommend_scores, recommend_many) pins the version that the proxy records as
-- production (recsys_proxy.production) and runs on the customer's shard with that version, so a
-- call never depends on how far a shard has got through a promotion. Registry changes (register,
-- promote, rollback) run on every shard under two-phase commit, coordinated here over dblink with
-- a presumed-abort log (recsys_proxy.transactions): the decision to commit is committed on the
-- proxy, together with the new pin, before the first COMMIT PREPARED. After a crash,
-- SELECT * FROM recsys_proxy.resolve_prepared() finishes what was left in doubt.

CREATE SCHEMA recsys_proxy;
REVOKE ALL ON SCHEMA recsys_proxy FROM PUBLIC;
COMMENT ON SCHEMA recsys_proxy IS 'recsys over hash shards: PL/Proxy serving, 2PC registry changes, shard status';

---------------------------------------------------------------------------------------------
-- The proxy's record: what is production, and every registry change with its 2PC state
---------------------------------------------------------------------------------------------
CREATE TABLE recsys_proxy.production (
    model       text PRIMARY KEY,
    version     integer NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    transaction bigint
);
COMMENT ON TABLE recsys_proxy.production IS 'The production version every proxy call pins, per model; changed only in the same commit as a 2PC commit decision';

CREATE TABLE recsys_proxy.transactions (
    id          bigserial PRIMARY KEY,
    action      text NOT NULL CHECK (action IN ('register', 'promote', 'rollback')),
    model       text NOT NULL,
    result      integer,              -- the version registered, promoted or rolled back to
    shards      integer NOT NULL,
    -- preparing: no decision (presumed abort); committing: decided, COMMIT PREPARED under way;
    -- committed / aborted: finished on every shard.
    state       text NOT NULL DEFAULT 'preparing' CHECK (state IN ('preparing', 'committing', 'committed', 'aborted')),
    error       text,
    by          name NOT NULL DEFAULT current_user,
    started_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    decided_at  timestamptz,
    finished_at timestamptz
);
COMMENT ON TABLE recsys_proxy.transactions IS 'Two-phase registry changes across the shards; the gid on shard N is recsys_proxy_<id>_<N>';

---------------------------------------------------------------------------------------------
-- Shards
---------------------------------------------------------------------------------------------
-- The partitions of the PL/Proxy cluster recsys_shards, from its SQL/MED server, with the role
-- the coordinator connects as (the caller: the shards check its rights, not the proxy's).
CREATE FUNCTION recsys_proxy.shard_dsns() RETURNS TABLE (shard integer, dsn text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT substr(split_part(o, '=', 1), 2)::integer,
           -- a libpq keyword value in single quotes, with \ and ' escaped by a backslash
           substr(o, strpos(o, '=') + 1) || ' user=''' || replace(replace(current_user::text, E'\\', E'\\\\'), '''', E'\\''')
               || ''' application_name=recsys_proxy'
      FROM pg_foreign_server s, unnest(s.srvoptions) o
     WHERE s.srvname = 'recsys_shards' AND o ~ '^p[0-9]+='
     ORDER BY 1
$$;

CREATE FUNCTION recsys_proxy.shard_of(customer_id bigint, shards integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.hashint8(customer_id) & (shards - 1) $$;
COMMENT ON FUNCTION recsys_proxy.shard_of(bigint, integer) IS 'The partition a customer''s snapshots belong on (PL/Proxy''s RUN ON hashint8(customer_id)); shards is a power of two';

CREATE FUNCTION recsys_proxy.pinned_version(model text) RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT p.version FROM recsys_proxy.production p WHERE p.model = pinned_version.model $$;

---------------------------------------------------------------------------------------------
-- Serving: PL/Proxy functions that run recsys on the customer's shard ...
---------------------------------------------------------------------------------------------
CREATE FUNCTION recsys_proxy.shard_recommend(customer_id bigint, k integer, model text, version integer)
RETURNS text[] LANGUAGE plproxy
AS $$ CLUSTER 'recsys_shards'; RUN ON pg_catalog.hashint8(customer_id); TARGET recsys.recommend; $$;

CREATE FUNCTION recsys_proxy.shard_recommend_scores(customer_id bigint, k integer, model text, version integer)
RETURNS TABLE (rank integer, product text, score real) LANGUAGE plproxy
AS $$ CLUSTER 'recsys_shards'; RUN ON pg_catalog.hashint8(customer_id); TARGET recsys.recommend_scores; $$;

-- SPLIT: each shard gets the ids that hash to it, in one call; the rows of all shards come back.
CREATE FUNCTION recsys_proxy.shard_recommend_many(customer_ids bigint[], k integer, model text, version integer)
RETURNS TABLE (customer_id bigint, products text[], scores real[]) LANGUAGE plproxy
AS $$ CLUSTER 'recsys_shards'; SPLIT customer_ids; RUN ON pg_catalog.hashint8(customer_ids);
      TARGET recsys.recommend_many; $$;

-- RUN ON ALL: every shard at once (PL/Proxy sends the queries before it waits for any).
CREATE FUNCTION recsys_proxy.shard_refresh_recommendations(model text, k integer)
RETURNS SETOF bigint LANGUAGE plproxy
AS $$ CLUSTER 'recsys_shards'; RUN ON ALL; TARGET recsys.refresh_recommendations; $$;

---------------------------------------------------------------------------------------------
-- ... behind the same signatures as on a single server, with the proxy's production pinned
---------------------------------------------------------------------------------------------
-- A shard that cannot be reached fails the calls of its own customers only. PL/Proxy reports a
-- failed connection as an internal error (XX000) naming the socket; the serving functions turn
-- it into connection_failure (08006) naming the shard and the customer, and leave other errors
-- (a remote error keeps its own SQLSTATE) as they are.
CREATE FUNCTION recsys_proxy.is_unreachable_shard(message text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT message ~ '^PL/Proxy function' AND message ~* '(PQconnect|could not connect|connection to server|server closed|terminat|no connection)' $$;

CREATE FUNCTION recsys_proxy.raise_shard_unreachable(customer_id bigint, message text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shard integer := recsys_proxy.shard_of(customer_id, (SELECT count(*)::integer FROM recsys_proxy.shard_dsns()));
BEGIN
    RAISE EXCEPTION 'recsys shard % is unreachable; customer % cannot be served', shard, customer_id
        USING ERRCODE = 'connection_failure', DETAIL = message,
              HINT = 'Customers of the other shards are still served. See SELECT * FROM recsys_proxy.shard_status();';
END
$$;

CREATE FUNCTION recsys_proxy.recommend(customer_id bigint, k integer DEFAULT 7, model text DEFAULT 'default',
                                       version integer DEFAULT NULL)
RETURNS text[] LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN recsys_proxy.shard_recommend(customer_id, k, model, coalesce(version, recsys_proxy.pinned_version(model)));
EXCEPTION WHEN internal_error THEN
    IF NOT recsys_proxy.is_unreachable_shard(SQLERRM) THEN
        RAISE;
    END IF;
    PERFORM recsys_proxy.raise_shard_unreachable(customer_id, SQLERRM);
END
$$;
COMMENT ON FUNCTION recsys_proxy.recommend(bigint, integer, text, integer) IS 'recsys.recommend() on the customer''s shard, with the proxy''s production version unless a version is given';

CREATE FUNCTION recsys_proxy.recommend_scores(customer_id bigint, k integer DEFAULT 7, model text DEFAULT 'default',
                                              version integer DEFAULT NULL)
RETURNS TABLE (rank integer, product text, score real) LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT * FROM recsys_proxy.shard_recommend_scores(
        customer_id, k, model, coalesce(version, recsys_proxy.pinned_version(model)));
EXCEPTION WHEN internal_error THEN
    IF NOT recsys_proxy.is_unreachable_shard(SQLERRM) THEN
        RAISE;
    END IF;
    PERFORM recsys_proxy.raise_shard_unreachable(customer_id, SQLERRM);
END
$$;
COMMENT ON FUNCTION recsys_proxy.recommend_scores(bigint, integer, text, integer) IS 'recsys.recommend_scores() on the customer''s shard, with the proxy''s production version unless a version is given';

-- One pinned version for the whole array, so that no call mixes versions across shards. Rows
-- come back in the order of the ids given (PL/Proxy returns them shard by shard).
CREATE FUNCTION recsys_proxy.recommend_many(customer_ids bigint[], k integer DEFAULT 7, model text DEFAULT 'default',
                                            version integer DEFAULT NULL)
RETURNS TABLE (customer_id bigint, products text[], scores real[]) LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT r.customer_id, r.products, r.scores
      FROM recsys_proxy.shard_recommend_many(customer_ids, k, model,
                                             coalesce(version, recsys_proxy.pinned_version(model))) r
     ORDER BY array_position(customer_ids, r.customer_id);
EXCEPTION WHEN internal_error THEN
    IF NOT recsys_proxy.is_unreachable_shard(SQLERRM) THEN
        RAISE;
    END IF;
    RAISE EXCEPTION 'a recsys shard that some of these customers belong to is unreachable' USING ERRCODE = 'connection_failure',
        DETAIL = SQLERRM,
        HINT = 'Customers of the other shards are still served: leave out the ids of the shard that is down (recsys_proxy.shard_of(id, shards)); see SELECT * FROM recsys_proxy.shard_status();';
END
$$;
COMMENT ON FUNCTION recsys_proxy.recommend_many(bigint[], integer, text, integer) IS 'recsys.recommend_many() split by shard (each shard scores its own customers in one batch) and merged, with one pinned version';

-- recsys.refresh_recommendations() on every shard at once; refused while a registry change is
-- under way or a shard's production differs from the proxy's, since each shard refreshes with
-- its own production version. Returns the rows written on all shards together.
CREATE FUNCTION recsys_proxy.refresh_recommendations(model text DEFAULT 'default', k integer DEFAULT 7)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    written bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(hashtext('recsys_proxy'), hashtext('registry')) THEN
        RAISE EXCEPTION 'a registry change through the proxy is under way' USING ERRCODE = 'lock_not_available',
            HINT = 'Refresh when it has finished.';
    END IF;
    IF EXISTS (SELECT 1 FROM recsys_proxy.shard_status(model) s WHERE s.status <> 'ok') THEN
        RAISE EXCEPTION 'the shards do not agree on model "%"''s production version', model
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'See SELECT * FROM recsys_proxy.shard_status(); SELECT * FROM recsys_proxy.resolve_prepared() settles a change left in doubt.';
    END IF;
    SELECT sum(n) INTO written FROM recsys_proxy.shard_refresh_recommendations(model, k) n;
    RETURN written;
END
$$;
COMMENT ON FUNCTION recsys_proxy.refresh_recommendations(text, integer) IS 'recsys.refresh_recommendations() on every shard at once; the rows written in all';

---------------------------------------------------------------------------------------------
-- Status: each shard's production version, flagged where it differs
---------------------------------------------------------------------------------------------
CREATE FUNCTION recsys_proxy.shard_status(model text DEFAULT 'default')
RETURNS TABLE (shard integer, production_version integer, pinned_version integer, prepared_transactions integer,
               status text, detail text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s         record;
    pinned    integer := recsys_proxy.pinned_version(model);
    -- What every shard must have: the pin, or without one the first reachable shard's version.
    reference integer := pinned;
    first     boolean := true;
    in_doubt  boolean := EXISTS (SELECT 1 FROM recsys_proxy.transactions t
                                  WHERE t.model = shard_status.model AND t.state IN ('preparing', 'committing'));
BEGIN
    FOR s IN SELECT * FROM recsys_proxy.shard_dsns() LOOP
        shard := s.shard; pinned_version := pinned; production_version := NULL; prepared_transactions := NULL;
        detail := NULL;
        BEGIN
            SELECT r.v, r.p INTO production_version, prepared_transactions
              FROM public.dblink(s.dsn, format(
                   'SELECT (SELECT m.version FROM recsys.models m WHERE m.name = %L AND m.status = ''production''),
                           (SELECT count(*)::integer FROM pg_catalog.pg_prepared_xacts x
                             WHERE x.gid LIKE ''recsys\_proxy\_%%'' AND x.database = pg_catalog.current_database())',
                   model)) AS r(v integer, p integer);
            IF pinned IS NULL AND first THEN
                reference := production_version;
            END IF;
            first := false;
            status := CASE WHEN production_version IS DISTINCT FROM reference THEN 'differs'
                           WHEN prepared_transactions > 0 OR in_doubt THEN 'in doubt'
                           ELSE 'ok' END;
            detail := CASE status
                WHEN 'differs' THEN format('production is %s here, %s on the proxy', coalesce(production_version::text, 'none'),
                                           coalesce(reference::text, 'none'))
                WHEN 'in doubt' THEN 'a registry change is prepared or undecided: SELECT * FROM recsys_proxy.resolve_prepared()'
            END;
        EXCEPTION WHEN connection_exception THEN
            status := 'unreachable';
            detail := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION recsys_proxy.shard_status(text) IS 'Each shard''s production version beside the proxy''s pin: ok, differs, in doubt (a prepared or undecided registry change) or unreachable';

---------------------------------------------------------------------------------------------
-- Registry changes on every shard, atomically: two-phase commit, presumed abort
---------------------------------------------------------------------------------------------
-- For tests only: stops the coordinator for recsys_proxy.pause_seconds at a named point
-- (SET recsys_proxy.pause_at = 'prepared' | 'first_commit'), so that a test can crash the proxy
-- inside the 2PC window or watch a state in which one shard has committed and another has not.
CREATE FUNCTION recsys_proxy.test_pause(point text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('recsys_proxy.pause_at', true) = point THEN
        PERFORM pg_sleep(coalesce(nullif(current_setting('recsys_proxy.pause_seconds', true), '')::float8, 1));
    END IF;
END
$$;

-- Runs statement (one integer value, the same on every shard) on every shard inside a transaction
-- of its own, PREPAREs them all, logs the commit decision on the proxy (with the new pin when
-- pin_result) and commits it, then COMMIT PREPAREs on every shard. Any failure before the decision
-- rolls every shard back. A procedure, because the decision must be committed here before the
-- first COMMIT PREPARED (so: no SET clause and no SECURITY DEFINER, and every name is qualified).
-- One change at a time: a session advisory lock, which also keeps resolve_prepared() away.
CREATE PROCEDURE recsys_proxy.run_on_every_shard(action text, model text, statement text, pin_result boolean,
                                                 INOUT result integer DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    s         record;
    txn       bigint;
    conns     integer[] := '{}';
    prepared  integer[] := '{}';
    got       integer;
    first     boolean := true;
    err       text;
    err_state text;
    err_detail text;
    failed    integer[] := '{}';
    i         integer;
BEGIN
    PERFORM pg_catalog.pg_advisory_lock(pg_catalog.hashtext('recsys_proxy'), pg_catalog.hashtext('registry'));
    IF EXISTS (SELECT 1 FROM recsys_proxy.transactions t WHERE t.state OPERATOR(pg_catalog.=) ANY ('{preparing,committing}')) THEN
        PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('recsys_proxy'), pg_catalog.hashtext('registry'));
        RAISE EXCEPTION 'an earlier registry change through the proxy was left in doubt' USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Settle it first: SELECT * FROM recsys_proxy.resolve_prepared();';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM recsys_proxy.shard_dsns()) THEN
        PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('recsys_proxy'), pg_catalog.hashtext('registry'));
        RAISE EXCEPTION 'no shards: the PL/Proxy server recsys_shards has no partitions' USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO recsys_proxy.transactions (action, model, shards)
    VALUES (action, model, (SELECT pg_catalog.count(*) FROM recsys_proxy.shard_dsns()))
    RETURNING id INTO txn;
    COMMIT;

    -- Phase 1: do the change on every shard and prepare it.
    BEGIN
        FOR s IN SELECT * FROM recsys_proxy.shard_dsns() LOOP
            PERFORM public.dblink_connect('recsys_proxy_' OPERATOR(pg_catalog.||) s.shard, s.dsn);
            conns := conns OPERATOR(pg_catalog.||) s.shard;
            PERFORM public.dblink_exec('recsys_proxy_' OPERATOR(pg_catalog.||) s.shard, 'BEGIN');
            SELECT r.v INTO got FROM public.dblink('recsys_proxy_' OPERATOR(pg_catalog.||) s.shard, statement) AS r(v integer);
            IF first THEN
                result := got;
                first := false;
            ELSIF got IS DISTINCT FROM result THEN
                RAISE EXCEPTION 'shard % answered % where the first shard answered %: the registries differ', s.shard, got, result
                    USING ERRCODE = 'data_exception',
                          HINT = 'Compare SELECT name, version, sha256, status FROM recsys.models on the shards.';
            END IF;
            PERFORM public.dblink_exec('recsys_proxy_' OPERATOR(pg_catalog.||) s.shard,
                                       pg_catalog.format('PREPARE TRANSACTION %L', pg_catalog.format('recsys_proxy_%s_%s', txn, s.shard)));
            prepared := prepared OPERATOR(pg_catalog.||) s.shard;
        END LOOP;
        PERFORM recsys_proxy.test_pause('prepared');
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, err_state = RETURNED_SQLSTATE, err_detail = PG_EXCEPTION_DETAIL;
    END;

    IF err IS NOT NULL THEN
        -- No decision was logged: roll every shard back (what resolve_prepared() would also do).
        FOREACH i IN ARRAY conns LOOP
            BEGIN
                IF i OPERATOR(pg_catalog.=) ANY (prepared) THEN
                    PERFORM public.dblink_exec('recsys_proxy_' OPERATOR(pg_catalog.||) i,
                                               pg_catalog.format('ROLLBACK PREPARED %L', pg_catalog.format('recsys_proxy_%s_%s', txn, i)));
                END IF;
                PERFORM public.dblink_disconnect('recsys_proxy_' OPERATOR(pg_catalog.||) i);
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'shard %: %', i, SQLERRM;
            END;
        END LOOP;
        UPDATE recsys_proxy.transactions t SET state = 'aborted', error = err, finished_at = pg_catalog.clock_timestamp()
         WHERE t.id OPERATOR(pg_catalog.=) txn;
        COMMIT;
        PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('recsys_proxy'), pg_catalog.hashtext('registry'));
        IF coalesce(err_detail, '') = '' THEN
            RAISE EXCEPTION '% of model "%" was rolled back on every shard: %', action, model, err USING ERRCODE = err_state;
        END IF;
        RAISE EXCEPTION '% of model "%" was rolled back on every shard: %', action, model, err
            USING ERRCODE = err_state, DETAIL = err_detail;
    END IF;

    -- The decision: committed (durably) on the proxy, with the new pin, before any shard commits.
    UPDATE recsys_proxy.transactions t SET state = 'committing', result = run_on_every_shard.result,
           decided_at = pg_catalog.clock_timestamp()
     WHERE t.id OPERATOR(pg_catalog.=) txn;
    IF pin_result THEN
        INSERT INTO recsys_proxy.production AS p (model, version, transaction)
        VALUES (run_on_every_shard.model, run_on_every_shard.result, txn)
        ON CONFLICT ON CONSTRAINT production_pkey
        DO UPDATE SET version = excluded.version, changed_at = pg_catalog.clock_timestamp(), transaction = excluded.transaction;
    END IF;
    PERFORM pg_catalog.set_config('synchronous_commit', 'on', true);
    COMMIT;

    -- Phase 2: commit everywhere. A shard that fails now keeps its prepared change for resolve_prepared().
    FOREACH i IN ARRAY prepared LOOP
        BEGIN
            PERFORM public.dblink_exec('recsys_proxy_' OPERATOR(pg_catalog.||) i,
                                       pg_catalog.format('COMMIT PREPARED %L', pg_catalog.format('recsys_proxy_%s_%s', txn, i)));
        EXCEPTION WHEN OTHERS THEN
            failed := failed OPERATOR(pg_catalog.||) i;
            RAISE WARNING 'shard %: COMMIT PREPARED failed: %', i, SQLERRM;
        END;
        IF i OPERATOR(pg_catalog.=) prepared[1] THEN
            PERFORM recsys_proxy.test_pause('first_commit');
        END IF;
    END LOOP;
    FOREACH i IN ARRAY conns LOOP
        BEGIN
            PERFORM public.dblink_disconnect('recsys_proxy_' OPERATOR(pg_catalog.||) i);
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END LOOP;
    IF pg_catalog.cardinality(failed) OPERATOR(pg_catalog.=) 0 THEN
        UPDATE recsys_proxy.transactions t SET state = 'committed', finished_at = pg_catalog.clock_timestamp()
         WHERE t.id OPERATOR(pg_catalog.=) txn;
    ELSE
        RAISE WARNING '% of model "%" is decided but not yet committed on shard(s) %', action, model, failed
            USING HINT = 'When they are reachable again: SELECT * FROM recsys_proxy.resolve_prepared();';
    END IF;
    COMMIT;
    PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('recsys_proxy'), pg_catalog.hashtext('registry'));
END
$$;
COMMENT ON PROCEDURE recsys_proxy.run_on_every_shard(text, text, text, boolean, integer) IS 'Two-phase commit of one registry statement on every shard; the commit decision and the new pin are committed on the proxy before the first COMMIT PREPARED';

CREATE PROCEDURE recsys_proxy.register_model(model_name text, model bytea, hyperparameters jsonb DEFAULT '{}',
                                             metrics jsonb DEFAULT '{}', training_data jsonb DEFAULT '{}',
                                             description text DEFAULT NULL, INOUT version integer DEFAULT NULL)
LANGUAGE plpgsql
AS $$
BEGIN
    CALL recsys_proxy.run_on_every_shard('register', model_name,
        pg_catalog.format('SELECT recsys.register_model(%L, %L::bytea, %L::jsonb, %L::jsonb, %L::jsonb, %L)',
                          model_name, model, hyperparameters, metrics, training_data, description),
        false, version);
END
$$;
COMMENT ON PROCEDURE recsys_proxy.register_model(text, bytea, jsonb, jsonb, jsonb, text, integer) IS 'recsys.register_model() of the same bytes on every shard, atomically (2PC); the same version number everywhere';

CREATE PROCEDURE recsys_proxy.promote(model_name text, model_version integer, force boolean DEFAULT false,
                                      reason text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    promoted integer;
BEGIN
    CALL recsys_proxy.run_on_every_shard('promote', model_name,
        pg_catalog.format('SELECT %s FROM (SELECT recsys.promote(%L, %s, %L, %L)) p',
                          model_version, model_name, model_version, force, reason),
        true, promoted);
END
$$;
COMMENT ON PROCEDURE recsys_proxy.promote(text, integer, boolean, text) IS 'recsys.promote() on every shard, atomically (2PC); proxy calls use the new version from the commit decision on';

CREATE PROCEDURE recsys_proxy.rollback(model_name text, reason text DEFAULT NULL, INOUT version integer DEFAULT NULL)
LANGUAGE plpgsql
AS $$
BEGIN
    CALL recsys_proxy.run_on_every_shard('rollback', model_name,
        pg_catalog.format('SELECT recsys.rollback(%L, %L)', model_name, reason), true, version);
END
$$;
COMMENT ON PROCEDURE recsys_proxy.rollback(text, text, integer) IS 'recsys.rollback() on every shard, atomically (2PC); every shard must go back to the same version';

-- The promotion gate through the proxy: recsys.validate() of the candidate on every shard, each
-- on its own customers, each record committed on its shard (no 2PC: a record is a fact about
-- that shard's data, kept whatever the others found). A gated recsys_proxy.promote() (force
-- false) then commits only if every shard's recsys.promote() finds a passing record against its
-- production version: one shard that fails its gate rolls the promote back everywhere.
CREATE FUNCTION recsys_proxy.validate(model_name text, candidate_version integer, month date DEFAULT NULL)
RETURNS TABLE (shard integer, validation_id bigint, passed boolean, production_version integer,
               candidate_map7 double precision, production_map7 double precision, difference double precision,
               reasons text[])
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT d.shard, d.dsn FROM recsys_proxy.shard_dsns() d ORDER BY d.shard LOOP
        RETURN QUERY
        SELECT s.shard, v.validation_id, v.passed, v.production_version, v.candidate_map7, v.production_map7,
               v.difference, v.reasons
          FROM public.dblink(s.dsn,
                 pg_catalog.format('SELECT validation_id, passed, production_version, candidate_map7, production_map7, '
                                   'difference, reasons FROM recsys.validate(%L, %s, %L)',
                                   model_name, candidate_version, month))
            AS v(validation_id bigint, passed boolean, production_version integer, candidate_map7 double precision,
                 production_map7 double precision, difference double precision, reasons text[]);
    END LOOP;
END
$$;
COMMENT ON FUNCTION recsys_proxy.validate(text, integer, date) IS 'recsys.validate() of a candidate on every shard, on each shard''s own customers; one row per shard. A gated recsys_proxy.promote() needs every shard to pass';

-- The documented recovery: finds the prepared registry changes on every shard (pg_prepared_xacts,
-- gid recsys_proxy_<transaction>_<shard>) and settles each by the proxy's log: COMMIT PREPARED
-- where the proxy decided to commit, ROLLBACK PREPARED otherwise (presumed abort). Returns one
-- row per prepared transaction settled and one per unreachable shard; run it again once those
-- are back. Idempotent.
CREATE FUNCTION recsys_proxy.resolve_prepared()
RETURNS TABLE (shard integer, gid text, transaction_id bigint, action text, outcome text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s           record;
    x           record;
    decided     text;
    unreachable integer := 0;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('recsys_proxy'), hashtext('registry')) THEN
        RAISE EXCEPTION 'a registry change through the proxy is running now' USING ERRCODE = 'lock_not_available',
            HINT = 'Resolve when it has finished (it settles its own shards).';
    END IF;
    FOR s IN SELECT * FROM recsys_proxy.shard_dsns() LOOP
        shard := s.shard;
        BEGIN
            FOR x IN SELECT * FROM public.dblink(s.dsn,
                     'SELECT x.gid FROM pg_catalog.pg_prepared_xacts x
                       WHERE x.gid LIKE ''recsys\_proxy\_%'' AND x.database = pg_catalog.current_database()
                       ORDER BY x.prepared') AS r(gid text) LOOP
                gid := x.gid;
                transaction_id := split_part(x.gid, '_', 3)::bigint;
                SELECT t.state, t.action INTO decided, action FROM recsys_proxy.transactions t WHERE t.id = transaction_id;
                IF decided IN ('committing', 'committed') THEN
                    PERFORM public.dblink_exec(s.dsn, format('COMMIT PREPARED %L', x.gid));
                    outcome := 'committed';
                ELSE
                    PERFORM public.dblink_exec(s.dsn, format('ROLLBACK PREPARED %L', x.gid));
                    outcome := 'rolled back';
                END IF;
                RETURN NEXT;
            END LOOP;
        EXCEPTION WHEN connection_exception THEN
            unreachable := unreachable + 1;
            gid := NULL; transaction_id := NULL; action := NULL;
            outcome := 'unreachable: ' || SQLERRM;
            RETURN NEXT;
        END;
    END LOOP;
    -- Every shard answered: nothing is in doubt any more.
    IF unreachable = 0 THEN
        UPDATE recsys_proxy.transactions t SET state = 'aborted', finished_at = clock_timestamp(),
               error = coalesce(t.error, 'no commit decision: rolled back by resolve_prepared()')
         WHERE t.state = 'preparing';
        UPDATE recsys_proxy.transactions t SET state = 'committed', finished_at = clock_timestamp()
         WHERE t.state = 'committing';
    END IF;
END
$$;
COMMENT ON FUNCTION recsys_proxy.resolve_prepared() IS 'Settles registry changes left prepared on the shards by a crash: commits those the proxy decided to commit, rolls back the rest (presumed abort)';

-- Takes the shards' common production version as the proxy's pin (shards set up without the
-- proxy, or a pin to repair); refuses when they disagree or one is unreachable.
CREATE FUNCTION recsys_proxy.adopt_production(model text DEFAULT 'default') RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    versions integer[];
BEGIN
    DELETE FROM recsys_proxy.production p WHERE p.model = adopt_production.model;
    SELECT array_agg(DISTINCT coalesce(s.production_version, -1)) INTO versions
      FROM recsys_proxy.shard_status(model) s;
    IF EXISTS (SELECT 1 FROM recsys_proxy.shard_status(model) s WHERE s.status <> 'ok') OR cardinality(versions) <> 1
       OR versions[1] = -1 THEN
        RAISE EXCEPTION 'the shards do not share one production version of model "%"', model
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'See SELECT * FROM recsys_proxy.shard_status();';
    END IF;
    INSERT INTO recsys_proxy.production (model, version) VALUES (model, versions[1]);
    RETURN versions[1];
END
$$;

---------------------------------------------------------------------------------------------
-- Privileges: serving for whoever the DBA grants USAGE on the schema (the shards check that
-- role's own rights, since PL/Proxy connects as it); registry changes and recovery for the DBA.
---------------------------------------------------------------------------------------------
ALTER FUNCTION recsys_proxy.pinned_version(text) SECURITY DEFINER;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA recsys_proxy FROM PUBLIC;
REVOKE EXECUTE ON ALL PROCEDURES IN SCHEMA recsys_proxy FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    recsys_proxy.recommend(bigint, integer, text, integer),
    recsys_proxy.recommend_scores(bigint, integer, text, integer),
    recsys_proxy.recommend_many(bigint[], integer, text, integer),
    recsys_proxy.shard_recommend(bigint, integer, text, integer),
    recsys_proxy.shard_recommend_scores(bigint, integer, text, integer),
    recsys_proxy.shard_recommend_many(bigint[], integer, text, integer),
    recsys_proxy.raise_shard_unreachable(bigint, text),
    recsys_proxy.is_unreachable_shard(text),
    recsys_proxy.pinned_version(text),
    recsys_proxy.shard_dsns(),
    recsys_proxy.shard_of(bigint, integer)
TO PUBLIC;
