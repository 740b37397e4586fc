#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian 12 machine (as root): installs dependencies,
# builds and installs recsys, starts a private PostgreSQL 15 cluster under .run/demo,
# generates Santander-shaped data, trains an LSTM in the database, validates it against
# popularity baselines, promotes it, materializes recommendations for every customer,
# prints the top 7 for a few of them and the model report, whose picture it writes to
# .run/demo/model_report.svg.
#   RECSYS_DEMO_CUSTOMERS (default 50000), RECSYS_DEMO_PORT (default 55431)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
customers=${RECSYS_DEMO_CUSTOMERS:-50000}
port=${RECSYS_DEMO_PORT:-55431}
cluster=$root/.run/demo
export OPENBLAS_NUM_THREADS=1

step() { printf '\n== %s\n' "$*"; }

step "Installing dependencies (Debian packages) and building"
scripts/install_deps.sh
scripts/build.sh

step "Starting a private PostgreSQL 15 cluster in $cluster on port $port"
scripts/pg_cluster.sh stop "$cluster" 2>/dev/null || true
scripts/pg_cluster.sh start "$cluster" "$port"
export PGHOST=$cluster PGPORT=$port PGUSER=postgres
psql -qX -d postgres -c "DROP DATABASE IF EXISTS recsys_demo" -c "CREATE DATABASE recsys_demo"
export PGDATABASE=recsys_demo
psql -qX -c "CREATE EXTENSION recsys"

step "Generating $customers customers x 17 months of Santander-shaped snapshots"
psql -qX -v ON_ERROR_STOP=1 -v schema=santander -f sql/santander_loader.sql >/dev/null
psql -qX -v ON_ERROR_STOP=1 <<SQL
\timing on
INSERT INTO santander.snapshots SELECT * FROM recsys.generate_santander($customers);
ANALYZE santander.snapshots;
SQL
psql -X -c "SELECT count(*) AS snapshots, count(DISTINCT ncodpers) AS customers, min(fecha_dato), max(fecha_dato) FROM santander.snapshots"

bash scripts/demo_model.sh

step "Materializing recommendations for every customer"
psql -X -v ON_ERROR_STOP=1 <<'SQL'
\timing on
SELECT recsys.refresh_recommendations('default') AS customers_scored;
SQL

step "Top 7 next products for a few customers"
psql -X -v ON_ERROR_STOP=1 <<'SQL'
SELECT customer_id, model_version, products[1:7] AS top_7
  FROM recsys.recommendations WHERE model_name = 'default' ORDER BY customer_id LIMIT 5;
SELECT * FROM recsys.recommend_scores(15889);
SQL

step "One place to look: recsys.model_report('default'), and its picture"
# Drift of the months after training, prediction skew of the latest month whose next month has
# landed, serving statistics (recsys is preloaded); realized MAP@7 appears once the month the
# refresh predicted has landed and recsys.update_realized_quality() has run.
psql -X -v ON_ERROR_STOP=1 -P pager=off <<'SQL'
SELECT section, item, to_char(month, 'YYYY-MM') AS month, version,
       CASE WHEN value = trunc(value) AND abs(value) >= 1 THEN value::bigint::text ELSE round(value::numeric, 5)::text END AS value,
       left(detail, 100) AS detail
  FROM recsys.model_report('default');
SQL
psql -XAt -v ON_ERROR_STOP=1 -c "SELECT recsys.model_report_svg('default')" >"$cluster/model_report.svg"
echo "The model report as a picture (SVG, open it in a browser): $cluster/model_report.svg"

cat <<EOF

Connect with:  psql -h $cluster -p $port -U postgres recsys_demo
Try:           SELECT recsys.recommend(15889);
Stop with:     scripts/pg_cluster.sh stop $cluster
EOF
