-- Security: a hostile role's objects on a DBA's search_path are never called by recsys; a
-- model can only be registered, promoted or published by roles that may read every column it
-- reads; PUBLIC, recsys_reader and recsys_admin each get exactly their part.
SET client_min_messages = warning;
CREATE SCHEMA sec;
CREATE TABLE sec.snapshots AS SELECT * FROM recsys.generate_santander(200, months => 6);
CREATE INDEX ON sec.snapshots (ncodpers, fecha_dato);
RESET client_min_messages;

---------------------------------------------------------------------------------------------
-- 1. search_path hijack. An unprivileged role owns a schema that a DBA has on search_path,
-- before pg_catalog, and fills it with look-alikes of the built-ins recsys's SQL uses. Each
-- look-alike logs its call and tries to make its owner a superuser.
---------------------------------------------------------------------------------------------
CREATE ROLE sec_hijacker;
CREATE SCHEMA hijack AUTHORIZATION sec_hijacker;
GRANT USAGE ON SCHEMA hijack TO PUBLIC;
SET ROLE sec_hijacker;
CREATE TABLE hijack.calls (what text, by_role name);
GRANT INSERT, SELECT ON hijack.calls TO PUBLIC;
CREATE FUNCTION hijack.pwn(what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hijack.calls VALUES (what, current_user);
    BEGIN
        EXECUTE 'ALTER ROLE sec_hijacker SUPERUSER';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RETURN true;
END $$;
CREATE FUNCTION hijack.date_trunc(text, date) RETURNS timestamp LANGUAGE sql
    AS $$ SELECT CASE WHEN hijack.pwn('date_trunc(text, date)') THEN pg_catalog.date_trunc($1, $2::pg_catalog.timestamp) END $$;
CREATE FUNCTION hijack.date_trunc(text, timestamp) RETURNS timestamp LANGUAGE sql
    AS $$ SELECT CASE WHEN hijack.pwn('date_trunc(text, timestamp)') THEN pg_catalog.date_trunc($1, $2) END $$;
CREATE FUNCTION hijack.md5(text) RETURNS text LANGUAGE sql
    AS $$ SELECT CASE WHEN hijack.pwn('md5') THEN pg_catalog.md5($1) END $$;
CREATE FUNCTION hijack.ln(double precision) RETURNS double precision LANGUAGE sql
    AS $$ SELECT CASE WHEN hijack.pwn('ln') THEN pg_catalog.ln($1) END $$;
CREATE FUNCTION hijack.encode(bytea, text) RETURNS text LANGUAGE sql
    AS $$ SELECT CASE WHEN hijack.pwn('encode') THEN pg_catalog.encode($1, $2) END $$;
CREATE FUNCTION hijack.now() RETURNS timestamptz LANGUAGE sql
    AS $$ SELECT CASE WHEN hijack.pwn('now') THEN pg_catalog.now() END $$;
CREATE FUNCTION hijack.int_plus_float(integer, double precision) RETURNS double precision LANGUAGE sql
    AS $$ SELECT CASE WHEN hijack.pwn('integer + double precision') THEN $1::pg_catalog.float8 OPERATOR(pg_catalog.+) $2 END $$;
CREATE OPERATOR hijack.+ (LEFTARG = integer, RIGHTARG = double precision, FUNCTION = hijack.int_plus_float);
CREATE FUNCTION hijack.int8_eq(bigint, bigint) RETURNS boolean LANGUAGE sql
    AS $$ SELECT CASE WHEN hijack.pwn('bigint = bigint') THEN $1 OPERATOR(pg_catalog.=) $2 END $$;
CREATE OPERATOR hijack.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = hijack.int8_eq);
CREATE FUNCTION hijack.text_eq(text, text) RETURNS boolean LANGUAGE sql
    AS $$ SELECT CASE WHEN hijack.pwn('text = text') THEN $1 OPERATOR(pg_catalog.=) $2 END $$;
CREATE OPERATOR hijack.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hijack.text_eq);
CREATE FUNCTION hijack.date_lt(date, date) RETURNS boolean LANGUAGE sql
    AS $$ SELECT CASE WHEN hijack.pwn('date < date') THEN $1 OPERATOR(pg_catalog.<) $2 END $$;
CREATE OPERATOR hijack.< (LEFTARG = date, RIGHTARG = date, FUNCTION = hijack.date_lt);
CREATE FUNCTION hijack.date_ge(date, date) RETURNS boolean LANGUAGE sql
    AS $$ SELECT CASE WHEN hijack.pwn('date >= date') THEN $1 OPERATOR(pg_catalog.>=) $2 END $$;
CREATE OPERATOR hijack.>= (LEFTARG = date, RIGHTARG = date, FUNCTION = hijack.date_ge);
CREATE FUNCTION hijack.text_cat(text, text) RETURNS text LANGUAGE sql
    AS $$ SELECT CASE WHEN hijack.pwn('text || text') THEN $1 OPERATOR(pg_catalog.||) $2 END $$;
CREATE OPERATOR hijack.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = hijack.text_cat);
-- A type that shadows float8: an unqualified cast to float8 would run its check.
CREATE DOMAIN hijack.float8 AS pg_catalog.float8 CHECK (hijack.pwn('cast to float8'));
RESET ROLE;

-- The DBA (a superuser) works with the hostile schema first on search_path, even before
-- pg_catalog, and runs every recsys function that builds SQL.
SET search_path = hijack, pg_catalog, public;
SET client_min_messages = warning;
SELECT recsys.register_model('sec_model', recsys.untrained_model('sec.snapshots', window_months => 4, hidden => 8))
    AS version;
SELECT recsys.promote('sec_model', 1, force => true, reason => 'test fixture');
SELECT recsys.train('sec_model', 'sec.snapshots', train_months => 2, window_months => 4, hidden => 4, epochs => 1,
                    batch_size => 64, max_customers => 100) AS trained_version;
SELECT cardinality(recsys.recommend(15889, model => 'sec_model')) AS recommended;
SELECT count(*) AS scored FROM recsys.recommend_many(ARRAY[15889, 15890]::bigint[], model => 'sec_model');
SELECT count(*) AS scored_all FROM recsys.score_all('sec_model', 7, as_of => '2015-05-28', shard => 1, shards => 2);
SELECT recsys.refresh_recommendations('sec_model') AS refreshed;
SELECT count(*) AS evaluated FROM recsys.evaluate('sec_model', 1, '2015-06-28');
SELECT recsys.register_model('sec_inc', recsys.untrained_model('sec.snapshots', window_months => 8, hidden => 4,
                             start_month => '2015-01-28')) AS version;
SELECT recsys.promote('sec_inc', 1, force => true, reason => 'test fixture');
SELECT recsys.advance_month('sec_inc', '2015-06-28') AS states;
SELECT cardinality(recsys.advance_customer('sec_inc', 15889)) AS advanced;
RESET client_min_messages;
RESET search_path;
-- None of the look-alikes ran, and their owner is no superuser.
SELECT count(*) AS hostile_calls FROM hijack.calls;
SELECT rolsuper AS hijacker_is_superuser FROM pg_roles WHERE rolname = 'sec_hijacker';

---------------------------------------------------------------------------------------------
-- 2. Confused deputy. mallory may register and promote (recsys_admin) but not read
-- vault.snapshots; she forges a model that reads it (her decoy model with the relation
-- renamed and the checksum recomputed), hoping the DBA's routine refresh publishes its scores
-- to eve, who only reads recommendations.
---------------------------------------------------------------------------------------------
CREATE ROLE sec_mallory;
CREATE ROLE sec_eve;
GRANT recsys_admin TO sec_mallory;
GRANT recsys_reader TO sec_eve;
CREATE SCHEMA vault;
CREATE TABLE vault.snapshots AS SELECT * FROM sec.snapshots;
CREATE SCHEMA decoy AUTHORIZATION sec_mallory;
GRANT USAGE ON SCHEMA vault TO sec_mallory;  -- the schema, not the table
SET ROLE sec_mallory;
CREATE TABLE decoy.snapshots AS SELECT * FROM recsys.generate_santander(50, months => 6);
CREATE TABLE decoy.forged AS
WITH m AS (SELECT recsys.untrained_model('decoy.snapshots', window_months => 4, hidden => 4) AS bytes),
     body AS (SELECT decode(replace(encode(substring(bytes FROM 1 FOR length(bytes) - 32), 'hex'),
                                    encode('decoy.snapshots', 'hex'), encode('vault.snapshots', 'hex')), 'hex') AS b
                FROM m)
SELECT b || sha256(b) AS model FROM body;
SELECT recsys.model_spec(model) -> 'source' ->> 'relation' AS forged_relation FROM decoy.forged;
-- Registering it is refused: she cannot read what it reads.
SELECT recsys.register_model('sec_stolen', model) FROM decoy.forged;
RESET ROLE;
-- Nor can she promote such a model that the DBA registered.
SELECT recsys.register_model('sec_stolen', model) AS dba_version FROM decoy.forged;
SET ROLE sec_mallory;
SELECT recsys.promote('sec_stolen', 1, force => true, reason => 'test fixture');
RESET ROLE;
-- She registers it while she may read the vault; the DBA then revokes that. The DBA's routine
-- refresh refuses to publish scores computed with more rights than the registrant has now.
GRANT SELECT ON vault.snapshots TO sec_mallory;
SET ROLE sec_mallory;
SELECT recsys.register_model('sec_stolen', model) AS mallory_version FROM decoy.forged;
RESET ROLE;
REVOKE SELECT ON vault.snapshots FROM sec_mallory;
SELECT recsys.promote('sec_stolen', 2, force => true, reason => 'test fixture');  -- the registrant lost the right: refused
SELECT recsys.promote('sec_stolen', 1, force => true, reason => 'test fixture');  -- the DBA's own registration
-- A DBA-run refresh of mallory's version is refused too (through a direct status change, the
-- way a hurried DBA might bypass promote).
UPDATE recsys.models SET status = 'archived' WHERE name = 'sec_stolen' AND version = 1;
UPDATE recsys.models SET status = 'production' WHERE name = 'sec_stolen' AND version = 2;
SELECT recsys.refresh_recommendations('sec_stolen');
SELECT count(*) AS stolen_rows FROM recsys.score_all('sec_stolen');
-- eve finds nothing of the vault in the recommendations.
SET ROLE sec_eve;
SELECT count(*) AS published_for_eve FROM recsys.recommendations WHERE model_name = 'sec_stolen';
RESET ROLE;
SELECT name, version, created_by FROM recsys.models WHERE name = 'sec_stolen' ORDER BY version;
SELECT name, version, action, by FROM recsys.model_events WHERE name = 'sec_stolen' ORDER BY id;

---------------------------------------------------------------------------------------------
-- 3. Least privilege: what a plain role, a reader and an admin can and cannot do.
---------------------------------------------------------------------------------------------
CREATE ROLE sec_plain;
CREATE ROLE sec_reader;
CREATE ROLE sec_admin;
GRANT recsys_reader TO sec_reader;
GRANT recsys_admin TO sec_admin;
GRANT USAGE ON SCHEMA sec TO sec_plain, sec_reader, sec_admin;
GRANT SELECT ON sec.snapshots TO sec_plain, sec_reader, sec_admin;
\set VERBOSITY terse
SET ROLE sec_plain;
SELECT recsys.recommend(15889, model => 'sec_model');
SELECT count(*) FROM recsys.recommendations;
SELECT count(*) FROM recsys.models;
RESET ROLE;
SET ROLE sec_reader;
SELECT cardinality(recsys.recommend(15889, model => 'sec_model')) AS reader_scores;
SELECT count(*) > 0 AS reader_reads_recommendations FROM recsys.recommendations WHERE model_name = 'sec_model';
SELECT name, version, status, created_by FROM recsys.models WHERE name = 'sec_model' ORDER BY version;
SELECT model FROM recsys.models WHERE name = 'sec_model';
SELECT feature_spec FROM recsys.models WHERE name = 'sec_model';
SELECT count(*) FROM recsys.customer_states;
SELECT recsys.promote('sec_model', 2, force => true, reason => 'test fixture');
SELECT recsys.register_model('sec_model', recsys.untrained_model('sec.snapshots', window_months => 4, hidden => 4));
SELECT recsys.refresh_recommendations('sec_model');
DELETE FROM recsys.recommendations;
RESET ROLE;
SET ROLE sec_admin;
-- An admin promotes through the gate: without a passing validation record, refused (55000);
-- skipping the gate needs recsys_override, even for an admin (42501).
SELECT recsys.promote('sec_model', 2);
SELECT recsys.promote('sec_model', 2, force => true, reason => 'no time to validate');
RESET ROLE;
GRANT recsys_override TO sec_admin;
SET ROLE sec_admin;
SELECT recsys.promote('sec_model', 2, force => true, reason => '   ');
SELECT recsys.promote('sec_model', 2, force => true, reason => 'signed off by model risk');
SELECT by, reason, forced FROM recsys.model_events WHERE name = 'sec_model' AND version = 2 AND action = 'promote';
SELECT recsys.refresh_recommendations('sec_model') > 0 AS admin_refreshes;
SELECT length(model) > 0 AS admin_reads_bytes FROM recsys.models WHERE name = 'sec_model' AND version = 2;
SELECT count(*) > 0 AS admin_reads_states FROM recsys.customer_states;
SELECT recsys.read_model_file('/tmp/no_such_model.rsm');
RESET ROLE;
-- A reader cannot read the source relation it was not granted: scoring runs with its rights.
REVOKE SELECT ON sec.snapshots FROM sec_reader;
SET ROLE sec_reader;
SELECT recsys.recommend(15889, model => 'sec_model');
RESET ROLE;
\set VERBOSITY default

-- Clean up the roles; recsys_reader and recsys_admin stay (they belong to the cluster).
SET client_min_messages = warning;
DROP SCHEMA hijack CASCADE;
DROP SCHEMA decoy CASCADE;
DELETE FROM recsys.recommendations WHERE model_name LIKE 'sec%';
DROP OWNED BY sec_hijacker, sec_mallory, sec_eve, sec_plain, sec_reader, sec_admin;
DROP ROLE sec_hijacker, sec_mallory, sec_eve, sec_plain, sec_reader, sec_admin;
RESET client_min_messages;
