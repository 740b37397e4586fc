-- Data validation: recsys.validate_data() checks one month of snapshots against the month
-- before (or a model's feature spec) and records the run; recsys.require_valid_data() stops on
-- a failed check unless a member of recsys_override signs it off with a reason.
SET client_min_messages = warning;
CREATE SCHEMA dv;
CREATE TABLE dv.snap AS SELECT * FROM recsys.generate_santander(2000, 4);   -- 2015-01 .. 2015-04
CREATE INDEX ON dv.snap (ncodpers, fecha_dato);
RESET client_min_messages;
\set SHOW_CONTEXT never

-- The rows of one run, without the validation id (a sequence).
CREATE FUNCTION dv.checks(relation regclass, month date, model text DEFAULT NULL, version integer DEFAULT NULL,
                          id_column text DEFAULT 'ncodpers')
RETURNS TABLE (check_name text, column_name text, observed text, expected text, severity text)
LANGUAGE sql AS $$
    SELECT v.check_name, v.column_name, v.observed, v.expected, v.severity
      FROM recsys.validate_data(relation, month, model, version, id_column) v
$$;
-- The latest record, without its id and time.
CREATE VIEW dv.last_record AS
    SELECT relation, month, model_name, model_version, checked_by = current_user AS by_me, passed,
           jsonb_array_length(results) AS results, overridden_by, override_reason
      FROM recsys.data_validations ORDER BY id DESC LIMIT 1;

---------------------------------------------------------------------------------------------
-- 1. A clean month passes: every check ok, one row per check and column.
---------------------------------------------------------------------------------------------
SELECT check_name, count(*) AS rows, count(*) FILTER (WHERE severity = 'ok') AS ok
  FROM dv.checks('dv.snap', '2015-04-15') GROUP BY 1 ORDER BY min(check_name);
SELECT * FROM dv.last_record;
-- What the rows say, for a few columns.
SELECT * FROM dv.checks('dv.snap', '2015-04-15')
 WHERE column_name IS NULL OR column_name IN ('ncodpers', 'renta', 'sexo', 'ind_cco_fin_ult1', 'ind_ahor_fin_ult1');

-- The first month has nothing before it: its comparisons are ok and say so.
SELECT check_name, column_name, observed, expected, severity FROM dv.checks('dv.snap', '2015-01-28')
 WHERE check_name IN ('row_count', 'customers_vanished', 'customers_appeared', 'unknown_categories')
    OR column_name IN ('renta', 'ind_cco_fin_ult1');
SELECT severity, count(*) FROM dv.checks('dv.snap', '2015-01-28') GROUP BY 1 ORDER BY 1;

-- A month without rows is a failed row_count check, not an error; nothing else is checked.
SELECT * FROM dv.checks('dv.snap', '2015-05-01') WHERE check_name <> 'column_type';
SELECT * FROM dv.last_record;

-- A timestamptz month is read in UTC (like training and scoring), whatever the session's
-- TimeZone: 2015-04-01 00:30 UTC is in April although it is March 31 in Los Angeles.
CREATE TABLE dv.snap_tz AS SELECT * FROM dv.snap;
ALTER TABLE dv.snap_tz ALTER COLUMN fecha_dato TYPE timestamptz USING fecha_dato::timestamp AT TIME ZONE 'UTC';
UPDATE dv.snap_tz SET fecha_dato = '2015-04-01 00:30:00+00' WHERE fecha_dato = '2015-04-28 00:00:00+00';
SET TimeZone = 'America/Los_Angeles';
SELECT * FROM dv.checks('dv.snap_tz', '2015-04-01')
 WHERE severity <> 'ok' OR check_name IN ('row_count', 'customers_vanished') OR column_name = 'fecha_dato';
RESET TimeZone;

---------------------------------------------------------------------------------------------
-- 2. Columns: missing, of a type recsys cannot read, or no customer id at all.
---------------------------------------------------------------------------------------------
CREATE TABLE dv.schema_bad AS SELECT * FROM dv.snap;
ALTER TABLE dv.schema_bad DROP COLUMN ind_viv_fin_ult1,
                          ALTER COLUMN renta TYPE text,
                          ALTER COLUMN sexo TYPE date USING NULL,
                          ALTER COLUMN ind_ahor_fin_ult1 TYPE boolean USING ind_ahor_fin_ult1 = 1;
SELECT * FROM dv.checks('dv.schema_bad', '2015-04-01')
 WHERE severity <> 'ok' OR column_name IN ('ind_ahor_fin_ult1', 'renta', 'sexo');
-- Without the customer id column nothing else can be read: the column checks only.
SELECT * FROM dv.checks('dv.snap', '2015-04-01', id_column => 'customer') WHERE severity <> 'ok';
SELECT count(*) AS checks FROM dv.checks('dv.snap', '2015-04-01', id_column => 'customer');

---------------------------------------------------------------------------------------------
-- 3. Planted faults, each caught by its check on its column.
---------------------------------------------------------------------------------------------
CREATE TABLE dv.faults AS SELECT * FROM dv.snap;
UPDATE dv.faults SET renta = NULL WHERE fecha_dato = '2015-04-28';                              -- entirely NULL
UPDATE dv.faults SET ind_ahor_fin_ult1 = 2 WHERE fecha_dato = '2015-04-28' AND ncodpers % 40 = 0;  -- flag 2
UPDATE dv.faults SET sexo = 'X' WHERE fecha_dato = '2015-04-28' AND ncodpers % 10 = 0;          -- unseen value
UPDATE dv.faults SET age = 150 WHERE fecha_dato = '2015-04-28' AND ncodpers % 10 = 1;           -- out of range
UPDATE dv.faults SET ind_ctju_fin_ult1 = 1 WHERE fecha_dato = '2015-04-28' AND ncodpers % 4 = 0; -- rate jumps
INSERT INTO dv.faults SELECT * FROM dv.faults WHERE fecha_dato = '2015-04-28' AND ncodpers % 500 = 0;  -- duplicates
SELECT * FROM dv.checks('dv.faults', '2015-04-01') WHERE severity <> 'ok';
SELECT * FROM dv.last_record;

-- Half the customers missing: a fail on customers_vanished; the row count drops by 49.4%, a
-- warning (a fail from 50%). The holding rates of the remaining half move by sampling noise only,
-- within 3 standard errors: ok.
CREATE TABLE dv.half AS SELECT * FROM dv.snap;
DELETE FROM dv.half WHERE fecha_dato = '2015-04-28' AND ncodpers % 2 = 0;
SELECT * FROM dv.checks('dv.half', '2015-04-01') WHERE severity <> 'ok';

-- Quoted names: a relation and an id column that need quoting.
CREATE TABLE dv."Snap Shots" AS SELECT * FROM dv.snap;
ALTER TABLE dv."Snap Shots" RENAME COLUMN ncodpers TO "Customer Id";
INSERT INTO dv."Snap Shots" SELECT * FROM dv."Snap Shots" WHERE fecha_dato = '2015-04-28' AND "Customer Id" = 15889;
SELECT * FROM dv.checks('dv."Snap Shots"', '2015-04-01', id_column => 'Customer Id')
 WHERE severity <> 'ok' OR column_name = 'Customer Id';

---------------------------------------------------------------------------------------------
-- 4. require_valid_data(): the id of a passing run; 22000 naming the first failing check.
---------------------------------------------------------------------------------------------
SELECT recsys.require_valid_data('dv.snap', '2015-04-01', NULL, NULL) > 0 AS passed_with_id;
SELECT * FROM dv.last_record;
SELECT recsys.require_valid_data('dv.faults', '2015-04-01', NULL, NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- The error rolled its statement back, the record of the run too: the one record is section 3's.
SELECT count(*) FROM recsys.data_validations WHERE relation = 'dv.faults';
SELECT recsys.require_valid_data('dv.half', '2015-04-01', NULL, NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT recsys.require_valid_data('dv."Snap Shots"', '2015-04-01', NULL, NULL, id_column => 'Customer Id');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- An empty reason is no reason.
SELECT recsys.require_valid_data('dv.faults', '2015-04-01', NULL, NULL, override_reason => ' ');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

---------------------------------------------------------------------------------------------
-- 5. Who may check and who may override.
---------------------------------------------------------------------------------------------
CREATE ROLE dv_admin;                     -- runs the checks (recsys_admin), may not override
CREATE ROLE dv_signer;                    -- also signs off exceptions (recsys_override)
CREATE ROLE dv_reader;                    -- scores (recsys_reader), does not check data
GRANT recsys_admin TO dv_admin, dv_signer;
GRANT recsys_reader TO dv_reader;
GRANT recsys_override TO dv_signer;
GRANT USAGE ON SCHEMA dv TO dv_admin, dv_signer, dv_reader;
GRANT SELECT ON dv.snap, dv.faults TO dv_admin, dv_signer, dv_reader;
CREATE TABLE dv.secret AS SELECT * FROM dv.snap;

SET ROLE dv_reader;
SELECT count(*) FROM recsys.validate_data('dv.snap', '2015-04-01');
RESET ROLE;

SET ROLE dv_admin;
-- Checks run with the caller's rights on the relation ...
SELECT count(*) FROM recsys.validate_data('dv.secret', '2015-04-01');
-- ... and are recorded without any privilege on recsys.data_validations.
SELECT count(*) FILTER (WHERE severity = 'ok') AS ok FROM recsys.validate_data('dv.snap', '2015-04-01');
SELECT relation, checked_by, passed FROM recsys.data_validations ORDER BY id DESC LIMIT 1;
INSERT INTO recsys.data_validations (relation, month, checked_by, passed, results)
VALUES ('dv.snap', '2015-04-01', 'dv_admin', true, '[]');
UPDATE recsys.data_validations SET passed = true;
-- Overriding takes recsys_override.
SELECT recsys.require_valid_data('dv.faults', '2015-04-01', NULL, NULL, override_reason => 'renta feed is late');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT recsys.override_data_validation(max(id), 'renta feed is late') FROM recsys.data_validations;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

SET ROLE dv_signer;
SELECT recsys.require_valid_data('dv.faults', '2015-04-01', NULL, NULL, override_reason => 'renta feed is late') > 0
    AS overridden_with_id;
RESET ROLE;
SELECT relation, passed, checked_by, overridden_by, override_reason,
       (SELECT count(*) FROM jsonb_array_elements(results) r WHERE r ->> 'severity' = 'fail') AS failed
  FROM recsys.data_validations ORDER BY id DESC LIMIT 1;
-- A run is signed off once, and only a failed one.
DO $$
BEGIN
    PERFORM recsys.override_data_validation((SELECT max(id) FROM recsys.data_validations), 'again');
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    RAISE NOTICE 'refused: %', regexp_replace(SQLERRM, '[0-9]+', 'N');
END $$;
DO $$
BEGIN
    PERFORM recsys.override_data_validation((SELECT max(id) FROM recsys.data_validations WHERE passed), 'why not');
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    RAISE NOTICE 'refused: %', regexp_replace(SQLERRM, '[0-9]+', 'N');
END $$;

---------------------------------------------------------------------------------------------
-- 6. Against a model's feature spec: its vocabularies and training ranges.
---------------------------------------------------------------------------------------------
SET client_min_messages = warning;
SELECT recsys.register_model('dv_model', recsys.untrained_model('dv.snap', window_months => 3, hidden => 4)) AS version;
RESET client_min_messages;
SELECT f ->> 'column' AS feature, f -> 'vocabulary' AS vocabulary, f -> 'clip_min' AS clip_min, f -> 'clip_max' AS clip_max
  FROM recsys.models m, jsonb_array_elements(m.feature_spec -> 'features') f
 WHERE m.name = 'dv_model' AND f ->> 'column' IN ('sexo', 'segmento', 'renta');
CREATE TABLE dv.drift AS SELECT * FROM dv.snap;
UPDATE dv.drift SET segmento = '04 - NUEVO' WHERE fecha_dato = '2015-04-28' AND ncodpers % 20 = 0;
UPDATE dv.drift SET renta = 1e12 WHERE fecha_dato = '2015-04-28' AND ncodpers % 10 = 0;
UPDATE dv.drift SET sexo = 'X' WHERE fecha_dato = '2015-04-28' AND ncodpers = 15889;
SELECT * FROM dv.checks('dv.drift', '2015-04-01', 'dv_model', 1)
 WHERE severity <> 'ok' OR check_name IN ('unknown_categories', 'value_range');
SELECT * FROM dv.last_record;
-- The clean data passes against the model.
SELECT severity, count(*) FROM dv.checks('dv.snap', '2015-04-01', 'dv_model', 1) GROUP BY 1;

-- Version NULL: the production version, which must exist.
SELECT count(*) FROM dv.checks('dv.snap', '2015-04-01', 'dv_model');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET client_min_messages = warning;
SELECT recsys.promote('dv_model', 1, force => true, reason => 'data validation test fixture');
RESET client_min_messages;
SELECT severity, count(*) FROM dv.checks('dv.drift', '2015-04-01', 'dv_model') GROUP BY 1 ORDER BY 1;
SELECT model_name, model_version, passed FROM dv.last_record;
SELECT recsys.require_valid_data('dv.drift', '2015-04-01', 'dv_model', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

---------------------------------------------------------------------------------------------
-- 7. Bad arguments.
---------------------------------------------------------------------------------------------
SELECT count(*) FROM recsys.validate_data(NULL, '2015-04-01');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM recsys.validate_data('dv.snap', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM recsys.validate_data('dv.snap', '2015-04-01', 'dv_no_such_model');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM recsys.validate_data('dv.snap', '2015-04-01', 'dv_model', 7);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM recsys.validate_data('dv.snap', '2015-04-01', version => 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM recsys.validate_data('dv.no_such_table', '2015-04-01');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

---------------------------------------------------------------------------------------------
-- 8. A hostile role's look-alikes on the caller's search_path, before pg_catalog, are never
-- called: aggregates, operators and functions the checks use.
---------------------------------------------------------------------------------------------
CREATE ROLE dv_hijacker;
CREATE SCHEMA dv_hijack AUTHORIZATION dv_hijacker;
GRANT USAGE ON SCHEMA dv_hijack TO PUBLIC;
SET ROLE dv_hijacker;
CREATE TABLE dv_hijack.calls (what text, by_role name);
GRANT INSERT, SELECT ON dv_hijack.calls TO PUBLIC;
CREATE FUNCTION dv_hijack.called(what text) RETURNS boolean LANGUAGE sql
    AS $$ INSERT INTO dv_hijack.calls VALUES (what, current_user) RETURNING true $$;
CREATE FUNCTION dv_hijack.count_step(bigint, anyelement) RETURNS bigint LANGUAGE sql
    AS $$ SELECT CASE WHEN dv_hijack.called('count(' || pg_catalog.pg_typeof($2)::pg_catalog.text || ')')
                      THEN $1 OPERATOR(pg_catalog.+) 1 END $$;
CREATE AGGREGATE dv_hijack.count(smallint) (SFUNC = dv_hijack.count_step, STYPE = bigint, INITCOND = '0');
CREATE AGGREGATE dv_hijack.count(integer) (SFUNC = dv_hijack.count_step, STYPE = bigint, INITCOND = '0');
CREATE AGGREGATE dv_hijack.count(bigint) (SFUNC = dv_hijack.count_step, STYPE = bigint, INITCOND = '0');
CREATE AGGREGATE dv_hijack.count(text) (SFUNC = dv_hijack.count_step, STYPE = bigint, INITCOND = '0');
CREATE AGGREGATE dv_hijack.count(double precision) (SFUNC = dv_hijack.count_step, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION dv_hijack.text_eq(text, text) RETURNS boolean LANGUAGE sql
    AS $$ SELECT dv_hijack.called('text = text') AND $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR dv_hijack.= (LEFTARG = text, RIGHTARG = text, FUNCTION = dv_hijack.text_eq);
CREATE FUNCTION dv_hijack.int2_int4_eq(smallint, integer) RETURNS boolean LANGUAGE sql
    AS $$ SELECT dv_hijack.called('smallint = integer') AND $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR dv_hijack.= (LEFTARG = smallint, RIGHTARG = integer, FUNCTION = dv_hijack.int2_int4_eq);
CREATE FUNCTION dv_hijack.int2_int4_ne(smallint, integer) RETURNS boolean LANGUAGE sql
    AS $$ SELECT dv_hijack.called('smallint <> integer') AND $1 OPERATOR(pg_catalog.<>) $2 $$;
CREATE OPERATOR dv_hijack.<> (LEFTARG = smallint, RIGHTARG = integer, FUNCTION = dv_hijack.int2_int4_ne);
CREATE FUNCTION dv_hijack.date_ge(date, date) RETURNS boolean LANGUAGE sql
    AS $$ SELECT dv_hijack.called('date >= date') AND $1 OPERATOR(pg_catalog.>=) $2 $$;
CREATE OPERATOR dv_hijack.>= (LEFTARG = date, RIGHTARG = date, FUNCTION = dv_hijack.date_ge);
CREATE FUNCTION dv_hijack.date_lt(date, date) RETURNS boolean LANGUAGE sql
    AS $$ SELECT dv_hijack.called('date < date') AND $1 OPERATOR(pg_catalog.<) $2 $$;
CREATE OPERATOR dv_hijack.< (LEFTARG = date, RIGHTARG = date, FUNCTION = dv_hijack.date_lt);
CREATE FUNCTION dv_hijack.float8_lt(double precision, double precision) RETURNS boolean LANGUAGE sql
    AS $$ SELECT dv_hijack.called('float8 < float8') AND $1 OPERATOR(pg_catalog.<) $2 $$;
CREATE OPERATOR dv_hijack.< (LEFTARG = double precision, RIGHTARG = double precision, FUNCTION = dv_hijack.float8_lt);
CREATE FUNCTION dv_hijack.date_trunc(text, timestamp) RETURNS timestamp LANGUAGE sql
    AS $$ SELECT CASE WHEN dv_hijack.called('date_trunc') THEN pg_catalog.date_trunc($1, $2) END $$;
CREATE FUNCTION dv_hijack.round(numeric, integer) RETURNS numeric LANGUAGE sql
    AS $$ SELECT CASE WHEN dv_hijack.called('round') THEN pg_catalog.round($1, $2) END $$;
CREATE FUNCTION dv_hijack.quote_ident(text) RETURNS text LANGUAGE sql
    AS $$ SELECT CASE WHEN dv_hijack.called('quote_ident') THEN pg_catalog.quote_ident($1) END $$;
CREATE FUNCTION dv_hijack.to_char(timestamp, text) RETURNS text LANGUAGE sql
    AS $$ SELECT CASE WHEN dv_hijack.called('to_char') THEN pg_catalog.to_char($1, $2) END $$;
CREATE FUNCTION dv_hijack.pg_has_role(name, text, text) RETURNS boolean LANGUAGE sql
    AS $$ SELECT dv_hijack.called('pg_has_role') $$;
RESET ROLE;

SET search_path = dv_hijack, pg_catalog, public;
-- Each statement here is free of operators and of the look-alikes' argument types.
SELECT count(*) AS checks FROM recsys.validate_data('dv.snap', '2015-04-15');
SELECT count(*) AS checks FROM recsys.validate_data('dv.faults', '2015-04-15');
SELECT count(*) AS checks FROM recsys.validate_data('dv.snap_tz', '2015-04-15');
SELECT count(*) AS checks FROM recsys.validate_data('dv.drift', '2015-04-15', 'dv_model', 1);
SET client_min_messages = error;
SELECT recsys.require_valid_data('dv.faults', '2015-04-01', NULL, NULL, 'search_path test') IS NOT NULL AS overridden;
RESET client_min_messages;
SELECT recsys.require_valid_data('dv.faults', '2015-04-01', NULL, NULL);
-- The traps are live: unqualified SQL in this session is caught.
SELECT count(1::smallint) AS trap_count, 'a'::text = 'a'::text AS trap_equals;
RESET search_path;
SELECT what, by_role = current_user AS by_me, count(*) FROM dv_hijack.calls GROUP BY 1, 2 ORDER BY 1;

---------------------------------------------------------------------------------------------
-- Clean up.
---------------------------------------------------------------------------------------------
SET client_min_messages = warning;
DELETE FROM recsys.data_validations WHERE relation LIKE 'dv.%';
DELETE FROM recsys.model_events WHERE name = 'dv_model';
DELETE FROM recsys.models WHERE name = 'dv_model';
DROP SCHEMA dv CASCADE;
DROP SCHEMA dv_hijack CASCADE;
DROP OWNED BY dv_admin, dv_signer, dv_reader, dv_hijacker;
DROP ROLE dv_admin, dv_signer, dv_reader, dv_hijacker;
RESET client_min_messages;
