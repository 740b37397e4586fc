#!/usr/bin/env bash
# The demo's model step (connection from the PG* environment): trains an LSTM on
# santander.snapshots in the database, evaluates it on the held-out last month beside the
# popularity baselines, and promotes it through the promotion gate.
set -euo pipefail
printf '\n== Training an LSTM in the database (validation month: the latest; progress as NOTICEs)\n'
psql -X -v ON_ERROR_STOP=1 <<'SQL'
\timing on
SELECT recsys.train('default', 'santander.snapshots') AS version \gset
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
  FROM recsys.evaluate_and_record('default', :version);

\echo
\echo == Promotion gate: promoted only if not worse than production on the held-out month
SELECT promoted, round(candidate_map7::numeric, 5) AS candidate_map7, production_version, reason
  FROM recsys.promote_if_better('default', :version);
SQL
