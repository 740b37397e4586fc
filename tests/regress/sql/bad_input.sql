-- Bad input: every case ends in an ERROR with a SQLSTATE and a message a DBA understands.
SET client_min_messages = warning;
CREATE SCHEMA bad;
CREATE TABLE bad.snapshots AS SELECT * FROM recsys.generate_santander(50, months => 5);
SELECT recsys.register_model('bad_model', recsys.untrained_model('bad.snapshots', window_months => 3, hidden => 4));
SELECT recsys.promote('bad_model', 1, force => true, reason => 'test fixture');
RESET client_min_messages;
\set VERBOSITY verbose
\set SHOW_CONTEXT never

-- k out of range.
SELECT recsys.recommend(15889, 0, 'bad_model');
SELECT recsys.recommend(15889, -3, 'bad_model');
SELECT recsys.recommend(15889, 25, 'bad_model');
SELECT recsys.recommend(15889, 2000000000, 'bad_model');
SELECT * FROM recsys.recommend_scores(15889, 0, 'bad_model');
SELECT * FROM recsys.score_all('bad_model', 100);

-- Unknown model, unknown or invalid version, no production version.
SELECT recsys.recommend(15889, model => 'no_such_model');
SELECT recsys.recommend(15889, model => 'bad_model', version => 99);
SELECT recsys.recommend(15889, model => 'bad_model', version => 0);
SELECT recsys.recommend(15889);
SELECT recsys.register_model('bad_candidate', model) FROM recsys.models WHERE name = 'bad_model';
SELECT recsys.recommend(15889, model => 'bad_candidate');

-- Unknown customer.
SELECT recsys.recommend(999999999, model => 'bad_model');
SELECT * FROM recsys.recommend_many(ARRAY[15889, 999999999, 999999998]::bigint[], 3, 'bad_model');

-- NaN and infinite feature values; NULL is "missing", and fine.
UPDATE bad.snapshots SET renta = NULL WHERE ncodpers = 15890;
SELECT cardinality(recsys.recommend(15890, model => 'bad_model')) AS null_is_missing;
UPDATE bad.snapshots SET renta = 'NaN' WHERE ncodpers = 15891;
SELECT recsys.recommend(15891, model => 'bad_model');
UPDATE bad.snapshots SET age = NULL, renta = 'Infinity' WHERE ncodpers = 15891;
SELECT recsys.recommend(15891, model => 'bad_model');
SELECT count(*) FROM recsys.score_all('bad_model');
UPDATE bad.snapshots SET renta = 50000 WHERE ncodpers = 15891;

-- Product flags that are NULL or not 0/1.
UPDATE bad.snapshots SET ind_cco_fin_ult1 = NULL WHERE ncodpers = 15892;
SELECT recsys.recommend(15892, model => 'bad_model');
UPDATE bad.snapshots SET ind_cco_fin_ult1 = 2 WHERE ncodpers = 15892;
SELECT recsys.recommend(15892, model => 'bad_model');
UPDATE bad.snapshots SET ind_cco_fin_ult1 = 1 WHERE ncodpers = 15892;

-- Two rows for one customer and month.
INSERT INTO bad.snapshots SELECT * FROM bad.snapshots WHERE ncodpers = 15893 ORDER BY fecha_dato DESC LIMIT 1;
SELECT recsys.recommend(15893, model => 'bad_model');
DELETE FROM bad.snapshots WHERE ctid IN (SELECT max(ctid) FROM bad.snapshots WHERE ncodpers = 15893);

-- The source relation changes shape under the model: a missing column, a wrong type.
-- (A fresh connection parses the model again, as after a server restart.)
\c
ALTER TABLE bad.snapshots RENAME COLUMN renta TO income;
SELECT recsys.recommend(15889, model => 'bad_model');
ALTER TABLE bad.snapshots RENAME COLUMN income TO renta;
\c
ALTER TABLE bad.snapshots ALTER COLUMN age TYPE text;
SELECT recsys.recommend(15889, model => 'bad_model');
ALTER TABLE bad.snapshots ALTER COLUMN age TYPE integer USING age::integer;
\c
ALTER TABLE bad.snapshots RENAME TO snapshots_moved;
SELECT recsys.recommend(15889, model => 'bad_model');
ALTER TABLE bad.snapshots_moved RENAME TO snapshots;
\c
SELECT cardinality(recsys.recommend(15889, model => 'bad_model')) AS works_again;

-- A model whose stored bytes were damaged after registration (by a superuser's UPDATE).
SELECT recsys.register_model('bad_damaged', model) FROM recsys.models WHERE name = 'bad_model' AND version = 1;
UPDATE recsys.models SET model = overlay(model placing '\x00'::bytea from 300 for 1) WHERE name = 'bad_damaged';
SELECT recsys.recommend(15889, model => 'bad_damaged', version => 1);
UPDATE recsys.models SET model = substring(model from 1 for 100) WHERE name = 'bad_damaged';
SELECT recsys.recommend(15889, model => 'bad_damaged', version => 1);

-- Model construction arguments.
SELECT recsys.untrained_model('bad.no_such_table');
SELECT recsys.untrained_model('bad.snapshots', window_months => 0);
SELECT recsys.untrained_model('bad.snapshots', hidden => 100000);
SELECT recsys.untrained_model('bad.snapshots', id_column => 'customer');
SELECT recsys.untrained_model('bad.snapshots', start_month => '0001-01-01');
-- train() refuses a name the registry would refuse before it trains, and NaN hyper-parameters.
SELECT recsys.train('bad name!', 'bad.snapshots', epochs => 10000);
SELECT recsys.train('bad_trained', 'bad.snapshots', learning_rate => 'NaN');
SELECT recsys.train('bad_trained', 'bad.snapshots', start_month => '9999-12-01');

-- Model strings must be text (UTF-8, no control characters): forged bytes with an invalid
-- byte in a product name are refused with 22021 even with a valid checksum; a data value with a
-- control character is left out of a fitted vocabulary (an unseen category) instead.
CREATE TABLE bad.forged AS
WITH m AS (SELECT recsys.untrained_model('bad.snapshots', window_months => 3, hidden => 4) AS bytes),
     body AS (SELECT decode(replace(encode(substring(bytes FROM 1 FOR length(bytes) - 32), 'hex'),
                                    encode('ind_ahor', 'hex'), '696e645f61ff6f72'), 'hex') AS b FROM m)
SELECT b || sha256(b) AS model FROM body;
SELECT recsys.register_model('bad_text', model) FROM bad.forged;
SELECT recsys.model_spec(model) FROM bad.forged;
CREATE TABLE bad.tabbed AS SELECT * FROM recsys.generate_santander(20, months => 2);
UPDATE bad.tabbed SET segmento = E'tab\there' WHERE ncodpers % 2 = 0;
SELECT f ->> 'column' AS feature, f -> 'vocabulary' AS vocabulary
  FROM jsonb_array_elements(recsys.model_spec(recsys.untrained_model('bad.tabbed', window_months => 2, hidden => 2))
                            -> 'features') f
 WHERE f ->> 'column' = 'segmento';

-- Generator arguments.
SELECT count(*) FROM recsys.generate_santander(-1);
SELECT count(*) FROM recsys.generate_santander(1, months => 0);

-- The backend survived all of the above.
SELECT cardinality(recsys.recommend(15889, model => 'bad_model')) AS still_serving;
