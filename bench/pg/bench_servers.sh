#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench_servers.sh: the servers bench/pg measures against, in a throwaway
# folder: PostgreSQL 15 on 127.0.0.2:55438 (fsync off, no Unix socket) and
# PgBouncer on 127.0.0.2:56432 in transaction mode with a pool of 8 in front
# of it. The benchmark program runs `start` before and `stop` after.
#
#   bench_servers.sh DIR start [POOL]   initdb into DIR, start both
#   bench_servers.sh DIR stop           stop both, remove DIR
#
# Both refuse to run as root: as root, they run as the postgres user. The
# PostgreSQL helpers (finding the binaries, as_pg, pg_start) come from
# tests/integration/pg/pg_lib.sh, shared with the integration tests.

set -eu

DIR=${1:?usage: bench_servers.sh DIR start|stop}
CMD=${2:?usage: bench_servers.sh DIR start|stop}
POOL=${3:-8}
HOST=127.0.0.2
PGPORT=55438
BOUNCERPORT=56432

PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)

# PGBIN, as_pg, pg_start, alive, wait_gone: shared with the integration
# tests' pg_servers.sh.
# shellcheck source=tests/integration/pg/pg_lib.sh
. "$(dirname "$0")/../../tests/integration/pg/pg_lib.sh"

case $CMD in
  start)
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    as_pg "$PGBIN/initdb" -D "$DIR/data" -A trust -U postgres --no-sync >/dev/null
    pg_start "$DIR/data" "$DIR/postgres.log" "$HOST" "$PGPORT"
    as_pg sh -c "cat > '$DIR/userlist.txt'" <<EOF
"postgres" ""
EOF
    as_pg sh -c "cat > '$DIR/pgbouncer.ini'" <<EOF
[databases]
postgres = host=$HOST port=$PGPORT dbname=postgres user=postgres

[pgbouncer]
listen_addr = $HOST
listen_port = $BOUNCERPORT
unix_socket_dir =
auth_type = trust
auth_file = $DIR/userlist.txt
pool_mode = transaction
default_pool_size = $POOL
min_pool_size = $POOL
max_client_conn = 200
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
    as_pg "$PGBOUNCER" -q -d "$DIR/pgbouncer.ini"
    i=0
    until [ -s "$DIR/pgbouncer.pid" ] || [ $i -ge 100 ]; do sleep 0.05; i=$((i + 1)); done
    [ -s "$DIR/pgbouncer.pid" ] || { cat "$DIR/pgbouncer.log" >&2; exit 1; }
    ;;
  stop)
    if [ -s "$DIR/pgbouncer.pid" ]; then
      pid=$(cat "$DIR/pgbouncer.pid")
      kill -TERM "$pid" 2>/dev/null || true
      wait_gone "$pid"
    fi
    if [ -f "$DIR/data/postmaster.pid" ]; then
      pid=$(head -n 1 "$DIR/data/postmaster.pid")
      as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate -w -t 60 -s stop ||
        kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid"
    fi
    rm -rf "$DIR"
    ;;
  *)
    echo "bench_servers.sh: unknown command '$CMD'" >&2
    exit 1
    ;;
esac
