#!/usr/bin/env bash
# Starts or stops a private pgbouncer (Debian's pgbouncer, transaction pooling) in front of a
# private cluster: its own directory, configuration, port and socket directory, never the
# system service (/etc/pgbouncer, the pgbouncer unit stay untouched).
#   scripts/pgbouncer.sh start DIR PORT SERVER_SOCKET_DIR SERVER_PORT [POOL_SIZE]
#   scripts/pgbouncer.sh stop DIR
# Clients connect to the socket directory DIR on PORT, any database of the server, user
# postgres (trust, as the private clusters do); POOL_SIZE (default 8) server connections per
# database and user, 250 clients at most. As root, pgbouncer runs as the postgres user.
set -euo pipefail
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
action=$1
dir=$(realpath -m "$2")
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$action" in
start)
    port=$3 server_dir=$4 server_port=$5 pool=${6:-8}
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    # trust still needs the user in auth_file. Transaction pooling: a server connection is
    # lent to a client for one transaction, so a backend (and its cached model) serves many
    # clients. ignore_startup_parameters: psql and pgbench send these, pgbouncer would refuse.
    as_owner tee "$dir/userlist.txt" >/dev/null <<<'"postgres" ""'
    as_owner tee "$dir/pgbouncer.ini" >/dev/null <<INI
[databases]
* = host=$server_dir port=$server_port
[pgbouncer]
listen_addr =
listen_port = $port
unix_socket_dir = $dir
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = $pool
max_client_conn = 250
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    as_owner "$PGBOUNCER" -d "$dir/pgbouncer.ini" || { tail -n 20 "$dir/pgbouncer.log"; exit 1; }
    for _ in $(seq 50); do [ -S "$dir/.s.PGSQL.$port" ] && exit 0; sleep 0.1; done
    tail -n 20 "$dir/pgbouncer.log"
    exit 1
    ;;
stop)
    if [ -f "$dir/pgbouncer.pid" ]; then
        pid=$(cat "$dir/pgbouncer.pid")
        kill -TERM "$pid" 2>/dev/null || true  # SIGTERM: immediate shutdown
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    ;;
*)
    echo "usage: $0 start DIR PORT SERVER_SOCKET_DIR SERVER_PORT [POOL_SIZE] | stop DIR" >&2
    exit 2
    ;;
esac
