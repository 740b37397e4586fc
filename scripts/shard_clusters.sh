# shellcheck shell=bash
# Sourced, not run: the three private clusters of a two-shard recsys behind PL/Proxy, as the
# sharding test (tests/integration/test_sharding.sh) and benchmark (bench/plproxy_bench.sh) build
# them (docs/scale-out.md, "Sharding with PL/Proxy"):
#   proxy cluster (port P):   database recsys_proxy (plproxy, dblink, sql/recsys_proxy.sql, the
#                             PL/Proxy server recsys_shards) and database recsys_single, a single
#                             server with every customer: the reference;
#   shard N (port P + 1 + N): database recsys_shard with the recsys extension, the snapshots of the
#                             customers with hashint8(id) & 1 = N, max_prepared_transactions = 10.
# Data: recsys.generate_santander(CUSTOMERS, 17, 42) on the reference, each customer's rows copied
# to its shard. Needs root (clusters run as postgres) or the postgres user, PGBIN, ROOT.
#
#   shard_clusters_start WORKDIR PORT CUSTOMERS   -> sets proxy_dir shard_dirs ports; 0 or 1
#   shard_clusters_stop                           -> stops all three
#   qp / qr / qs N  ARGS...                        -> psql (-XAtq, ON_ERROR_STOP) on the proxy
#                                                    database, the reference, shard N
proxy_dir=""
shard_dirs=()
ports=()
shard_clusters_port=""

qp() { "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -U postgres -h "$proxy_dir" -p "$shard_clusters_port" -d recsys_proxy "$@"; }
qr() { "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -U postgres -h "$proxy_dir" -p "$shard_clusters_port" -d recsys_single "$@"; }
qs() { local n=$1; shift; "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -U postgres -h "${shard_dirs[$n]}" -p "${ports[$n]}" -d recsys_shard "$@"; }

shard_clusters_as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

shard_clusters_one() {  # DIR PORT EXTRA-CONF
    mkdir -p "$1"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$1"
    shard_clusters_as_owner "$PGBIN/initdb" -D "$1/data" -A trust -U postgres --no-sync --encoding=UTF8 --locale=C \
        >"$1/initdb.log" 2>&1 || { cat "$1/initdb.log"; return 1; }
    printf '%s\n' "$3" >>"$1/data/postgresql.conf"
    "$ROOT/scripts/pg_cluster.sh" start "$1" "$2"
}

shard_clusters_start() {  # WORKDIR PORT CUSTOMERS
    local work=$1 customers=$3 n
    shard_clusters_port=$2
    proxy_dir=$work/proxy
    shard_dirs=("$work/shard0" "$work/shard1")
    ports=("$(($2 + 1))" "$(($2 + 2))")
    shard_clusters_one "$proxy_dir" "$2" "" || return 1
    for n in 0 1; do
        shard_clusters_one "${shard_dirs[$n]}" "${ports[$n]}" "max_prepared_transactions = 10" || return 1
    done
    qp -d postgres -c "CREATE DATABASE recsys_proxy" -c "CREATE DATABASE recsys_single" &&
        qs 0 -d postgres -c "CREATE DATABASE recsys_shard" && qs 1 -d postgres -c "CREATE DATABASE recsys_shard" &&
        qp -c "CREATE EXTENSION plproxy" -c "CREATE EXTENSION dblink" \
            -c "CREATE SERVER recsys_shards FOREIGN DATA WRAPPER plproxy OPTIONS (connection_lifetime '1800',
                    p0 'host=${shard_dirs[0]} port=${ports[0]} dbname=recsys_shard connect_timeout=5',
                    p1 'host=${shard_dirs[1]} port=${ports[1]} dbname=recsys_shard connect_timeout=5')" \
            -c "CREATE USER MAPPING FOR PUBLIC SERVER recsys_shards" -f "$ROOT/sql/recsys_proxy.sql" >/dev/null || return 1
    qr -c "CREATE EXTENSION recsys" -c "CREATE SCHEMA santander" \
        -c "CREATE TABLE santander.snapshots AS SELECT * FROM recsys.generate_santander($customers, 17, 42)" \
        -c "ALTER TABLE santander.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato)" -c "ANALYZE santander.snapshots" \
        >/dev/null || return 1
    for n in 0 1; do
        qs "$n" -c "CREATE EXTENSION recsys" -c "CREATE SCHEMA santander" \
            -c "CREATE TABLE santander.snapshots AS SELECT * FROM recsys.generate_santander(1, 1) WITH NO DATA" >/dev/null &&
            qr -c "COPY (SELECT * FROM santander.snapshots WHERE (hashint8(ncodpers) & 1) = $n) TO STDOUT" |
            qs "$n" -c "COPY santander.snapshots FROM STDIN" &&
            qs "$n" -c "ALTER TABLE santander.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato)" \
                -c "ANALYZE santander.snapshots" >/dev/null || return 1
    done
}

shard_clusters_stop() {
    local d
    for d in "$proxy_dir" "${shard_dirs[@]}"; do
        [ -n "$d" ] && "$ROOT/scripts/pg_cluster.sh" stop "$d" >/dev/null 2>&1
    done
    return 0
}
