-- The model registry: versions, promote, rollback, transactions, privileges, bad bytes.
SET client_min_messages = warning;
CREATE SCHEMA reg;
CREATE TABLE reg.snapshots AS SELECT * FROM recsys.generate_santander(200, months => 6);
CREATE TABLE reg.blobs AS
SELECT s AS seed, recsys.untrained_model('reg.snapshots', window_months => 4, hidden => 8, seed => s) AS model
  FROM generate_series(1, 3) s;
RESET client_min_messages;

-- Versions are numbered per model name, from 1.
SELECT recsys.register_model('reg_model', model, '{"hidden": 8}', description => 'seed ' || seed) AS version
  FROM reg.blobs ORDER BY seed;
SELECT name, version, status, created_by = session_user AS by_me, sha256 = sha256(model) AS checksum_ok,
       feature_spec->>'window_months' AS window, feature_spec->>'step_width' AS step_width,
       jsonb_array_length(feature_spec->'products') AS products, hyperparameters, description
  FROM recsys.models WHERE name = 'reg_model' ORDER BY version;
SELECT feature_spec->'source' AS source FROM recsys.models WHERE name = 'reg_model' AND version = 1;
SELECT f->>'column' AS column, f->>'kind' AS kind, f->>'role' AS role
  FROM recsys.models, jsonb_array_elements(feature_spec->'features') f
 WHERE name = 'reg_model' AND version = 1;

-- Nothing is in production yet.
SELECT recsys.recommend(15889, model => 'reg_model');

-- Promote, promote again, roll back twice.
SELECT recsys.promote('reg_model', 1, force => true, reason => 'test fixture');
SELECT version, status FROM recsys.models WHERE name = 'reg_model' ORDER BY version;
SELECT recsys.promote('reg_model', 2, force => true, reason => 'test fixture');
SELECT version, status FROM recsys.models WHERE name = 'reg_model' ORDER BY version;
SELECT recsys.promote('reg_model', 3, force => true, reason => 'test fixture');
SELECT recsys.rollback('reg_model');
SELECT version, status FROM recsys.models WHERE name = 'reg_model' ORDER BY version;
SELECT recsys.rollback('reg_model');
SELECT version, status FROM recsys.models WHERE name = 'reg_model' ORDER BY version;
SELECT recsys.rollback('reg_model');
SELECT name, version, action, previous_version FROM recsys.model_events WHERE name = 'reg_model' ORDER BY id;

-- Promoting the production version again changes nothing.
SELECT recsys.promote('reg_model', 1, force => true, reason => 'test fixture');

-- A rolled-back promotion leaves no trace; scoring inside the transaction sees it at once.
BEGIN;
SELECT recsys.promote('reg_model', 3, force => true, reason => 'test fixture');
SELECT recsys.score_customer(15889, 'reg_model') = recsys.score_customer(15889, 'reg_model', 3) AS uses_v3;
ROLLBACK;
SELECT version, status FROM recsys.models WHERE name = 'reg_model' ORDER BY version;
SELECT recsys.score_customer(15889, 'reg_model') = recsys.score_customer(15889, 'reg_model', 1) AS uses_v1;

-- Unknown models and versions.
SELECT recsys.promote('reg_model', 9, force => true, reason => 'test fixture');
SELECT recsys.promote('no_such_model', 1, force => true, reason => 'test fixture');
SELECT recsys.rollback('no_such_model');
SELECT recsys.register_model(NULL, (SELECT model FROM reg.blobs WHERE seed = 1));
SELECT recsys.register_model('bad name!', (SELECT model FROM reg.blobs WHERE seed = 1));

-- Corrupt, truncated and empty bytes are refused with the reason; nothing is registered.
SELECT recsys.register_model('reg_bad', ''::bytea);
SELECT recsys.register_model('reg_bad', '\x0102030405'::bytea);
SELECT recsys.register_model('reg_bad', substring(model from 1 for length(model) - 1)) FROM reg.blobs WHERE seed = 1;
SELECT recsys.register_model('reg_bad', model || '\x00'::bytea) FROM reg.blobs WHERE seed = 1;
SELECT recsys.register_model('reg_bad', overlay(model placing '\xff'::bytea from 200 for 1)) FROM reg.blobs WHERE seed = 1;
SELECT recsys.register_model('reg_bad', overlay(model placing 'XECSYSLM'::bytea from 1 for 8)) FROM reg.blobs WHERE seed = 1;
SELECT recsys.register_model('reg_bad', overlay(model placing '\x03000000'::bytea from 9 for 4)) FROM reg.blobs WHERE seed = 1;
SELECT count(*) AS bad_registered FROM recsys.models WHERE name = 'reg_bad';

-- Model files on the server: only with pg_read_server_files.
SELECT lo_from_bytea(4242, model) IS NOT NULL AS stored FROM reg.blobs WHERE seed = 2;
SELECT lo_export(4242, '/tmp/recsys_regress_model.bin') = 1 AS exported;
SELECT lo_unlink(4242);
SELECT recsys.register_model_file('reg_file', '/tmp/recsys_regress_model.bin') AS version;
SELECT m.sha256 = b.sha AS same_bytes
  FROM recsys.models m, (SELECT sha256(model) AS sha FROM reg.blobs WHERE seed = 2) b
 WHERE m.name = 'reg_file';
SELECT recsys.register_model_file('reg_file', '/tmp/recsys_regress_no_such_file.bin');

-- Privileges: scoring is recsys_reader's, changing the registry recsys_admin's
-- (security.sql tests every role in detail).
CREATE ROLE recsys_analyst;
CREATE ROLE recsys_mlops;
GRANT USAGE ON SCHEMA reg TO recsys_analyst, recsys_mlops;
GRANT SELECT ON reg.snapshots, reg.blobs TO recsys_analyst, recsys_mlops;
GRANT recsys_reader TO recsys_analyst;
GRANT recsys_admin TO recsys_mlops;
GRANT recsys_override TO recsys_mlops;  -- may skip the gate (promotion_gate.sql tests the gate)
SET ROLE recsys_analyst;
SELECT cardinality(recsys.recommend(15889, model => 'reg_model')) AS analyst_can_score;
SELECT recsys.promote('reg_model', 2, force => true, reason => 'test fixture');
SELECT recsys.register_model('reg_model', model) FROM reg.blobs WHERE seed = 1;
SELECT recsys.register_model_file('reg_file', '/tmp/recsys_regress_model.bin');
SELECT recsys.read_model_file('/tmp/recsys_regress_model.bin');
DELETE FROM recsys.models;
RESET ROLE;
SET ROLE recsys_mlops;
SELECT recsys.promote('reg_model', 2, force => true, reason => 'test fixture');
SELECT recsys.register_model('reg_model', model) AS version FROM reg.blobs WHERE seed = 1;
SELECT name, version, status, created_by FROM recsys.models WHERE name = 'reg_model' ORDER BY version;
SELECT recsys.register_model_file('reg_file', '/tmp/recsys_regress_model.bin');
RESET ROLE;
GRANT pg_read_server_files TO recsys_mlops;
SET ROLE recsys_mlops;
SELECT recsys.register_model_file('reg_file', '/tmp/recsys_regress_model.bin') AS version;
RESET ROLE;

-- Clean up the roles (the registry rows stay: models are never deleted by the API).
REVOKE pg_read_server_files FROM recsys_mlops;
DROP OWNED BY recsys_analyst, recsys_mlops;
DROP ROLE recsys_analyst;
DROP ROLE recsys_mlops;
