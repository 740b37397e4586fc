#!/usr/bin/env bash
# The demo's model step (connection from the PG* environment): registers a model over
# santander.snapshots and promotes it.
set -euo pipefail
printf '\n== Registering a model (random weights: no training step yet) and promoting it\n'
psql -X -v ON_ERROR_STOP=1 <<'SQL'
SELECT recsys.register_model('default', recsys.untrained_model('santander.snapshots', seed => 1),
       description => 'random weights, untrained') AS version \gset
SELECT recsys.promote('default', :version);
SELECT name, version, status, feature_spec->'window_months' AS months, feature_spec->'hidden' AS hidden,
       description FROM recsys.models WHERE name = 'default';
SQL
echo "NOTE: this model has RANDOM WEIGHTS; its recommendations are not meaningful yet."
