#!/usr/bin/env bash
# The demo's model step (connection from the PG* environment): trains an LSTM on
# santander.snapshots in the database (early stopping on the second-latest month, so that the
# latest stays held out), evaluates it on that held-out month beside the popularity baselines,
# validates it through the promotion gate and promotes it.
set -euo pipefail
printf '\n== Training an LSTM in the database (early stopping on the second-latest month; progress as NOTICEs)\n'
psql -X -v ON_ERROR_STOP=1 <<'SQL'
SELECT max(fecha_dato) AS held_out, (max(fecha_dato) - interval '1 month')::date AS early_stopping
  FROM santander.snapshots \gset
\timing on
SELECT recsys.train('default', 'santander.snapshots', validation_month => :'early_stopping') AS version \gset
\timing off
SELECT name, version, status, metrics->>'epochs_run' AS epochs, round((metrics->>'seconds')::numeric, 1) AS seconds,
       round((metrics->>'examples_per_second')::numeric) AS examples_per_s, training_data->'train_months' AS train_months,
       training_data->>'validation_month' AS validation_month
  FROM recsys.models WHERE name = 'default' AND version = :version;

\echo
\echo == Held-out month: the LSTM beside the popularity baselines (MAP@7 over all customers, Kaggle definition)
SELECT method, round(map7::numeric, 5) AS map7, round(map7_adders::numeric, 4) AS map7_adders,
       round(precision7::numeric, 4) AS precision7, round(recall7::numeric, 4) AS recall7,
       round(coverage::numeric, 3) AS coverage, customers, adders
  FROM recsys.evaluate_and_record('default', :version, :'held_out');

\echo
\echo == Promotion gate: candidate against production on the same frozen rows of the held-out month
SELECT validation_id, passed, production_version, round(candidate_map7::numeric, 5) AS candidate_map7,
       round(production_map7::numeric, 5) AS production_map7, round(ci_low::numeric, 5) AS ci_low,
       round(ci_high::numeric, 5) AS ci_high, reasons
  FROM recsys.validate('default', :version, :'held_out');
-- Promoted only with that passing record (recsys.promote refuses a candidate without one).
SELECT recsys.promote('default', :version)
  FROM recsys.model_validations v
 WHERE v.id = (SELECT max(id) FROM recsys.model_validations WHERE name = 'default' AND candidate_version = :version)
   AND v.passed;
SELECT name, version, status FROM recsys.models WHERE name = 'default' ORDER BY version;
SQL
