-- The promotion gate: recsys.validate() records, recsys.promote() refusing a candidate without
-- a passing one, forced promotions, gate rules, and the audit trail.
SET client_min_messages = warning;
SET jit = off;
CREATE SCHEMA gate;
CREATE TABLE gate.s AS SELECT * FROM recsys.generate_santander(4000, 8);  -- 2015-01 .. 2015-08

-- v1: trained with early stopping on 2015-07, so 2015-08 is held out. v2: an untrained model of
-- the same shape (random weights). v3: v1's bytes registered again (an identical challenger).
SELECT recsys.train('gate_m', 'gate.s', train_months => 3, validation_month => '2015-07-28', window_months => 4,
                    hidden => 16, epochs => 2, batch_size => 128, seed => 7) AS v1;
SELECT recsys.register_model('gate_m', recsys.untrained_model('gate.s', window_months => 4, hidden => 16, seed => 3,
                                                              until => '2015-06-28')) AS v2;
SELECT recsys.register_model('gate_m', model) AS v3 FROM recsys.models WHERE name = 'gate_m' AND version = 1;
\set VERBOSITY terse

-- A month the candidate learned from (training or early stopping) cannot judge it.
SELECT * FROM recsys.validate('gate_m', 1, '2015-07-01');
SELECT * FROM recsys.validate('gate_m', 1, '2015-06-28');
-- Nothing validated: promote refuses (55000), and says how to proceed.
SELECT recsys.promote('gate_m', 1);

-- The first validation: no production version, so only the rule's floor applies.
SELECT validation_id IS NOT NULL AS recorded, passed, production_version, candidate_map7 > 0 AS learned,
       production_map7, difference, reasons[1] LIKE 'passed: MAP@7 %, no production version to compare with' AS why
  FROM recsys.validate('gate_m', 1);
SELECT to_char(month, 'YYYY-MM-DD') AS month, customers = (SELECT count(*) FROM gate.s a JOIN gate.s b USING (ncodpers)
                            WHERE a.fecha_dato = '2015-07-28' AND b.fecha_dato = '2015-08-28') AS all_customers,
       length(fingerprint) = 64 AS sha256_hex, rule ->> 'resamples' AS resamples, validated_by
  FROM recsys.model_validations WHERE name = 'gate_m' ORDER BY id;
SELECT recsys.promote('gate_m', 1);
SELECT version, action, previous_version, forced, validation_id = (SELECT max(id) FROM recsys.model_validations) AS with_record
  FROM recsys.model_events WHERE name = 'gate_m' AND action = 'promote';

-- A random challenger is worse: refused, with the reason; promote refuses it too. (Whether its
-- interval lies entirely below 0 depends on how much the tiny v1 learned; test_lifecycle.sh
-- checks the "clearly worse" rule on a larger set.)
SELECT passed, production_version, candidate_map7 < production_map7 AS worse, ci_low < 0 AS interval_reaches_below_zero,
       reasons[1] LIKE 'MAP@7 % is % below production''s % (allowed drop 0)' AS drop_reason
  FROM recsys.validate('gate_m', 2);
SELECT recsys.promote('gate_m', 2);
-- Subpopulations are judged too: some of them are clearly worse and named.
SELECT EXISTS (SELECT 1 FROM unnest(reasons) r WHERE r LIKE 'clearly worse for segment = % customers)%') AS segment_named
  FROM recsys.model_validations WHERE name = 'gate_m' AND candidate_version = 2;

-- Reproducible: the same validation again gives the very same figures and fingerprint.
SELECT * FROM recsys.validate('gate_m', 2) \gset second_
SELECT count(*) AS records, count(DISTINCT figures) AS distinct_figures, count(DISTINCT fingerprint) AS fingerprints
  FROM recsys.model_validations WHERE name = 'gate_m' AND candidate_version = 2;

-- An identical challenger: difference 0 exactly, interval [0, 0]; it passes and is promoted.
SELECT passed, difference, ci_low, ci_high FROM recsys.validate('gate_m', 3);
SELECT (figures -> 'subpopulations' -> 0 ->> 'difference')::float8 AS first_subpopulation_difference
  FROM recsys.model_validations WHERE name = 'gate_m' AND candidate_version = 3;
SELECT recsys.promote('gate_m', 3);
-- That record was against version 1; with version 3 in production, v1's old record no longer
-- counts (it was made against no production version).
SELECT recsys.promote('gate_m', 1);

-- Gate rules: a floor no model reaches fails the identical challenger too.
SELECT min_map7, max_drop_absolute, resamples FROM recsys.set_gate_rule('gate_m', '{"min_map7": 0.9}');
SELECT passed, reasons[1] LIKE 'MAP@7 % is below the minimum 0.9' AS floor_reason FROM recsys.validate('gate_m', 1);
SELECT recsys.set_gate_rule('gate_m', '{"min_map7": 2}');
SELECT recsys.set_gate_rule('gate_m', '{"no_such_field": 1}');
SELECT recsys.set_gate_rule('no_such_model', '{}');
SELECT (recsys.gate_rule('never_registered')).resamples AS default_resamples;

-- Forced promotion: a reason is required, and it is recorded.
SELECT recsys.promote('gate_m', 2, force => true);
SELECT recsys.promote('gate_m', 2, force => true, reason => 'incident 4711: v3 misranks mortgages');
SELECT version, previous_version, forced, reason, validation_id FROM recsys.model_events
 WHERE name = 'gate_m' AND action = 'promote' ORDER BY id DESC LIMIT 1;
-- Rollback needs no validation (the version served before) and records why.
SELECT recsys.rollback('gate_m', 'v2 forced by mistake');
SELECT version, action, previous_version, reason FROM recsys.model_events
 WHERE name = 'gate_m' ORDER BY id DESC LIMIT 1;
SELECT version, status FROM recsys.models WHERE name = 'gate_m' ORDER BY version;

-- Bad arguments.
SELECT * FROM recsys.validate(NULL, 1);
SELECT * FROM recsys.validate('gate_m', 9);
SELECT * FROM recsys.validate('gate_m', 3);   -- already production
SELECT recsys.promote('gate_m', 1, force => NULL);

-- Privileges: an admin validates and promotes through the gate; only the gate writes records.
CREATE ROLE gate_admin;
GRANT recsys_admin TO gate_admin;
GRANT USAGE ON SCHEMA gate TO gate_admin;
SET ROLE gate_admin;
SELECT recsys.record_model_validation('gate_m', 2, 3, recsys.gate_rule('gate_m'), '{}', true, '{}');
INSERT INTO recsys.model_validations (name, candidate_version, relation, month, customers, adders, fingerprint,
                                      candidate_map7, rule, figures, passed, reasons, validated_by)
VALUES ('gate_m', 2, 'x', '2015-08-01', 0, 0, '', 1, '{}', '{}', true, '{}', 'gate_admin');
SELECT * FROM recsys.validate('gate_m', 1);   -- cannot read gate.s
RESET ROLE;
GRANT SELECT ON gate.s TO gate_admin;
SET ROLE gate_admin;
SELECT passed FROM recsys.validate('gate_m', 1);   -- fails the 0.9 floor, but is recorded
SELECT validated_by FROM recsys.model_validations ORDER BY id DESC LIMIT 1;
RESET ROLE;
\set VERBOSITY default

SET client_min_messages = warning;
DROP OWNED BY gate_admin;
DROP ROLE gate_admin;
DELETE FROM recsys.models WHERE name = 'gate_m';
DELETE FROM recsys.gate_rules WHERE name = 'gate_m';
DROP SCHEMA gate CASCADE;
RESET client_min_messages;
