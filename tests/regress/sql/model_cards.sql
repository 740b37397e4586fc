-- recsys.model_card and recsys.model_cards: the card's sections and figures from the registry,
-- the cards stored on registration and promotion, a reader's access, missing pieces, bad
-- arguments. Trained figures differ slightly between CPUs (BLAS kernels), so those lines are
-- printed with their decimals masked and compared with the registry in SQL instead.
SET client_min_messages = warning;  -- per-epoch NOTICEs carry timings
SET jit = off;
CREATE SCHEMA card_test;
CREATE TABLE card_test.t AS SELECT * FROM recsys.generate_santander(1500);

-- The lines of one section of a card (heading '': the title block), without blank lines;
-- registry ids, timestamps, checksums and fingerprints masked (they differ from run to run:
-- the training data's fingerprint depends on the session's DateStyle), and with
-- mask_figures the decimals and the training speed too.
CREATE FUNCTION pg_temp.card_section(card text, heading text, mask_figures boolean DEFAULT false)
RETURNS SETOF text LANGUAGE sql AS $$
    SELECT CASE WHEN mask_figures
                THEN regexp_replace(regexp_replace(masked, '\d+\.\d+', 'x.x', 'g'), 'a second: [0-9,]+', 'a second: N')
                ELSE masked END
      FROM (SELECT regexp_replace(regexp_replace(regexp_replace(line, '#\d+', '#N', 'g'),
                                                 '\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC', 'TIME', 'g'),
                                  '[0-9a-f]{64}|[0-9a-f]{32}', 'HEX', 'g') AS masked, line, title, n
              FROM (SELECT line, n, first_value(line) OVER (PARTITION BY section ORDER BY n) AS title
                      FROM (SELECT line, n, count(*) FILTER (WHERE line LIKE '#%') OVER (ORDER BY n) AS section
                              FROM regexp_split_to_table(card, E'\n') WITH ORDINALITY AS l(line, n)) s) t) u
     WHERE (title = '## ' || heading OR (heading = '' AND title LIKE '# %')) AND line <> '' AND line <> title
     ORDER BY n;
$$;
-- The SQLSTATE and message of a statement's error.
CREATE FUNCTION pg_temp.error_of(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

---------------------------------------------------------------------------------------------
-- A trained version: its card is stored on registration
---------------------------------------------------------------------------------------------
SELECT recsys.train('card_lstm', 'card_test.t', train_months => 3, window_months => 4, hidden => 8, epochs => 1,
                    batch_size => 128, seed => 7, max_customers => 800) AS version;
SELECT version, occasion, card = recsys.model_card('card_lstm', 1) AS same_as_now
  FROM recsys.model_cards WHERE name = 'card_lstm' ORDER BY version, occasion;

-- Its sections, in order.
SELECT line AS heading FROM regexp_split_to_table(recsys.model_card('card_lstm', 1), E'\n') WITH ORDINALITY AS l(line, n)
 WHERE line LIKE '#%' ORDER BY n;

-- The parts that do not depend on floating-point results, as they are.
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), '');
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), 'Intended use');
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), 'Model');
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), 'Training data');
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), 'Features');
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), 'Hyper-parameters');
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), 'Known limitations');
-- The checksum and the data's fingerprint are the registry's.
SELECT position('- **SHA-256 of the model bytes:** ' || encode(sha256, 'hex') IN recsys.model_card(name, version)) > 0
           AS sha256_shown,
       position('- Data fingerprint: ' || (training_data ->> 'fingerprint') IN recsys.model_card(name, version)) > 0
           AS fingerprint_shown
  FROM recsys.models WHERE name = 'card_lstm' AND version = 1;

-- Timings and trained figures: their shape here, their values against the registry below.
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), 'Training time', true);
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), 'Evaluation', true);
SELECT count(*) AS methods_recorded FROM recsys.evaluate_and_record('card_lstm', 1);
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), 'Evaluation', true);
SELECT position(format('- %s s in all', round((metrics ->> 'seconds')::numeric, 1)) IN c) > 0 AS seconds_shown,
       position(format('MAP@7 %s, MAP@7 of customers who added %s,', round((metrics ->> 'map7')::numeric, 5),
                       round((metrics ->> 'map7_adders')::numeric, 4)) IN c) > 0 AS training_map7_shown,
       position(format('| 2016-05 | lstm | %s | %s |', round((metrics #>> '{evaluation,2016-05,lstm,map7}')::numeric, 5),
                       round((metrics #>> '{evaluation,2016-05,lstm,map7_adders}')::numeric, 4)) IN c) > 0
           AS evaluated_map7_shown,
       position(format('| 2016-05 | popularity | %s |', round((metrics #>> '{evaluation,2016-05,popularity,map7}')::numeric, 5))
                IN c) > 0 AS baseline_map7_shown
  FROM recsys.models, recsys.model_card(name, version) AS c WHERE name = 'card_lstm' AND version = 1;

---------------------------------------------------------------------------------------------
-- Promotion stores a second card; lineage
---------------------------------------------------------------------------------------------
SELECT recsys.promote('card_lstm', 1, force => true, reason => 'first production version');
SELECT version, occasion, card = recsys.model_card('card_lstm', 1) AS same_as_now
  FROM recsys.model_cards WHERE name = 'card_lstm' ORDER BY version, occasion;
SELECT pg_temp.card_section(card, '') FROM recsys.model_cards
 WHERE name = 'card_lstm' AND version = 1 AND occasion = 'promote';
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), 'Lineage');

-- A second version, and a validation record for it against version 1 (written here directly,
-- with round figures, as recsys.validate would).
SELECT recsys.train('card_lstm', 'card_test.t', train_months => 3, window_months => 4, hidden => 8, epochs => 1,
                    batch_size => 128, seed => 8, max_customers => 800) AS version;
INSERT INTO recsys.model_validations (name, candidate_version, production_version, relation, month, customers, adders,
                                      fingerprint, candidate_map7, production_map7, difference, ci_low, ci_high, rule,
                                      figures, passed, reasons, validated_by)
SELECT 'card_lstm', 2, 1, 'card_test.t', '2016-05-28', 1442, 47, repeat('ab', 32), 0.0213, 0.0201, 0.0012, -0.0004, 0.0029,
       to_jsonb(recsys.gate_rule('card_lstm')) - 'updated_at' - 'updated_by' - 'name',
       '{"relation": "card_test.t", "month": "2016-05-28", "customers": 1442, "adders": 47,
         "candidate": {"version": 2, "map7": 0.0213}, "baseline": {"version": 1, "map7": 0.0201},
         "difference": {"mean": 0.0012, "low": -0.0004, "high": 0.0029},
         "subpopulations": [
           {"dimension": "age", "value": "25-34", "customers": 1292, "adders": 40, "candidate_map7": 0.0221,
            "baseline_map7": 0.0207, "difference": 0.0014, "low": -0.00035, "high": 0.00312},
           {"dimension": "age", "value": "<25", "customers": 150, "adders": 7, "candidate_map7": 0.0144,
            "baseline_map7": 0.0151, "difference": -0.0007, "low": -0.0061, "high": 0.0049}]}',
       true, '{"passed: MAP@7 0.0213 against production''s 0.0201, difference 0.0012 [-0.0004, 0.0029]"}', 'postgres';
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 2), 'Validation against production');
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 2), 'Known limitations');

-- The record lets version 2 through the gate; both versions' lineage shows the change.
SELECT recsys.promote('card_lstm', 2);
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 2), 'Lineage');
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), 'Lineage');
SELECT version, occasion, card = recsys.model_card('card_lstm', version) AS same_as_now,
       (SELECT l FROM regexp_split_to_table(card, E'\n') l WHERE l LIKE '- **Status:**%') AS status_line
  FROM recsys.model_cards WHERE name = 'card_lstm' ORDER BY version, occasion;
SELECT recsys.rollback('card_lstm');
SELECT pg_temp.card_section(recsys.model_card('card_lstm', 1), 'Lineage');
-- Writing a card again replaces the stored one (one per occasion).
SELECT recsys.store_model_card('card_lstm', 1, 'promote');
SELECT count(*) AS cards, bool_and(card = recsys.model_card(name, version)) FILTER (WHERE version = 1 AND occasion = 'promote')
           AS rewritten
  FROM recsys.model_cards WHERE name = 'card_lstm';

---------------------------------------------------------------------------------------------
-- A reader may read cards, which show metadata only
---------------------------------------------------------------------------------------------
CREATE ROLE card_reader IN ROLE recsys_reader;
SET ROLE card_reader;
SELECT pg_temp.error_of('SELECT feature_spec FROM recsys.models');
SELECT length(recsys.model_card('card_lstm', 2)) > 1000 AS reader_gets_card,
       (SELECT count(*) FROM recsys.model_cards WHERE name = 'card_lstm') AS stored_cards_readable;
SELECT pg_temp.error_of($$SELECT recsys.store_model_card('card_lstm', 2, 'promote')$$);
RESET ROLE;
-- No vocabulary value, fitted mean or deviation appears in the card.
SELECT count(*) AS statistics_or_values_shown
  FROM recsys.models m, recsys.model_card(m.name, m.version) c, jsonb_array_elements(m.feature_spec -> 'features') f,
       LATERAL (SELECT f ->> 'mean' UNION ALL SELECT f ->> 'stddev'
                UNION ALL SELECT jsonb_array_elements_text(f -> 'vocabulary') WHERE f ? 'vocabulary') AS s(x)
 WHERE m.name = 'card_lstm' AND x IS NOT NULL AND length(x) > 2 AND position(x IN c) > 0;

---------------------------------------------------------------------------------------------
-- Missing and odd registry contents read "not recorded"; a from-start model's limits
---------------------------------------------------------------------------------------------
SELECT recsys.register_model('card_bare',
                             recsys.untrained_model('card_test.t', window_months => 6, hidden => 4,
                                                    start_month => '2016-01-28'),
                             hyperparameters => '[1, 2]', metrics => '{"map7": "n/a", "seconds": null, "evaluation": 7}',
                             training_data => '"somewhere"') AS version;
SELECT pg_temp.card_section(recsys.model_card('card_bare', 1), h)
  FROM unnest(ARRAY['', 'Model', 'Training data', 'Hyper-parameters', 'Training time', 'Evaluation',
                    'Validation against production', 'Lineage', 'Known limitations']) WITH ORDINALITY AS x(h, n)
 ORDER BY n;

---------------------------------------------------------------------------------------------
-- Bad arguments
---------------------------------------------------------------------------------------------
SELECT pg_temp.error_of(s) FROM unnest(ARRAY[
    $$SELECT recsys.model_card(NULL, 1)$$,
    $$SELECT recsys.model_card('card_lstm', NULL)$$,
    $$SELECT recsys.model_card('card_lstm', 99)$$,
    $$SELECT recsys.model_card('no_such_model', 1)$$,
    $$SELECT recsys.store_model_card('card_lstm', 1, NULL)$$,
    $$SELECT recsys.store_model_card('card_lstm', 1, 'retire')$$,
    $$SELECT recsys.store_model_card('card_lstm', 99, 'register')$$]) WITH ORDINALITY AS x(s, n) ORDER BY n;

-- Clean up.
DROP ROLE card_reader;
DELETE FROM recsys.model_events WHERE name LIKE 'card\_%';
DELETE FROM recsys.models WHERE name LIKE 'card\_%';
SELECT count(*) AS cards_left FROM recsys.model_cards WHERE name LIKE 'card\_%';
DROP SCHEMA card_test CASCADE;
