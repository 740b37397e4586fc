#!/usr/bin/env bash
# Starts or stops a private PostgreSQL 15 cluster: its own data directory, port and socket
# directory, so it never collides with another cluster or a system service.
#   scripts/pg_cluster.sh start DIR PORT   -> initdb if needed, start, wait until ready
#   scripts/pg_cluster.sh stop DIR
# initdb refuses to run as root, so as root the cluster runs as the postgres user.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
action=$1
dir=$(realpath -m "$2")
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$action" in
start)
    port=$3
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log"; exit 1; }
    fi
    # recsys is preloaded (recsys.serving_stats keeps its figures in shared memory), beside any
    # library the cluster's configuration already preloads (pg_cron for the lifecycle test):
    # a -c option would otherwise replace postgresql.conf's list. RECSYS_PRELOAD=0: not preloaded.
    preload=""
    for lib in $(as_owner "$PGBIN/postgres" -D "$dir/data" -C shared_preload_libraries | tr -d ' "' | tr ',' ' '); do
        [ "$lib" = recsys ] || preload=${preload:+$preload,}$lib
    done
    [ "${RECSYS_PRELOAD:-1}" = 0 ] || preload=${preload:+$preload,}recsys
    as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses= -c max_connections=120 -c shared_buffers=512MB -c fsync=off -c shared_preload_libraries=$preload" start >/dev/null ||
        { tail -n 30 "$dir/server.log"; exit 1; }
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    ;;
*)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
