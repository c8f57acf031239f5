#!/bin/sh
# SPDX-License-Identifier: MIT
#
# recovery_servers.sh: the servers bench/recovery breaks, in a throwaway
# folder: PostgreSQL 15 on 127.0.0.5:55471 (fsync off, no Unix socket) and
# redis-server on 127.0.0.5:56471 (no persistence). The benchmark program
# runs these commands; each returns when what it did is complete:
#
#   recovery_servers.sh DIR pg-init        initdb into DIR/pg, then start it
#   recovery_servers.sh DIR pg-start       start; returns once it accepts
#                                          connections
#   recovery_servers.sh DIR pg-stop        fast shutdown; returns once it is
#                                          gone
#   recovery_servers.sh DIR pg-restart     pg_ctl restart -m fast
#   recovery_servers.sh DIR redis-start    start; returns once PING answers
#   recovery_servers.sh DIR redis-stop     SHUTDOWN NOSAVE; returns once it
#                                          is gone
#   recovery_servers.sh DIR cleanup        continue anything stopped with
#                                          SIGSTOP, stop both, remove DIR
#
# The process ids the program signals are in DIR/pg/data/postmaster.pid
# (first line) and DIR/redis/redis.pid. As root, PostgreSQL runs as the
# postgres user. Both servers detach into sessions of their own, so a
# Ctrl-C at the terminal reaches the program, not them. The PostgreSQL
# helpers (PGBIN, as_pg, pg_start, alive, wait_gone) come from
# tests/integration/pg/pg_lib.sh.

set -eu

DIR=${1:?usage: recovery_servers.sh DIR COMMAND}
CMD=${2:?usage: recovery_servers.sh DIR COMMAND}
HOST=127.0.0.5
PGPORT=55471
REDISPORT=56471
PGDATA=$DIR/pg/data
PGLOG=$DIR/pg/postgres.log
REDISDIR=$DIR/redis

# shellcheck source=tests/integration/pg/pg_lib.sh
. "$(dirname "$0")/../../tests/integration/pg/pg_lib.sh"

redis_pid() {
  [ -s "$REDISDIR/redis.pid" ] && cat "$REDISDIR/redis.pid"
}

postmaster_pid() {
  [ -f "$PGDATA/postmaster.pid" ] && head -n 1 "$PGDATA/postmaster.pid"
}

# A process and its children, by id (the postmaster and its backends).
cont_tree() {
  kill -CONT "$1" 2>/dev/null || true
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    kill -CONT "$c" 2>/dev/null || true
  done
}

case $CMD in
  pg-init)
    mkdir -p "$DIR/pg"
    # DIR comes from mkdtemp (mode 0700): the postgres user must get through.
    if [ "$(id -u)" = 0 ]; then
      chmod 711 "$DIR"
      chown postgres "$DIR/pg"
    fi
    as_pg "$PGBIN/initdb" -D "$PGDATA" -A trust -U postgres --no-sync >/dev/null
    pg_start "$PGDATA" "$PGLOG" "$HOST" "$PGPORT"
    ;;
  pg-start)
    pg_start "$PGDATA" "$PGLOG" "$HOST" "$PGPORT"
    ;;
  pg-stop)
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 -s stop
    ;;
  pg-restart)
    # The server's options come back from postmaster.opts.
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -m fast -w -t 60 -s restart
    ;;
  redis-start)
    mkdir -p "$REDISDIR"
    redis-server --bind "$HOST" --port "$REDISPORT" --save '' \
      --appendonly no --daemonize yes --pidfile "$REDISDIR/redis.pid" \
      --dir "$REDISDIR" --logfile "$REDISDIR/redis.log"
    i=0
    until [ "$(redis-cli -h "$HOST" -p "$REDISPORT" ping 2>/dev/null)" = PONG ] ||
      [ $i -ge 200 ]; do
      sleep 0.05
      i=$((i + 1))
    done
    [ "$(redis-cli -h "$HOST" -p "$REDISPORT" ping 2>/dev/null)" = PONG ] ||
      { cat "$REDISDIR/redis.log" >&2; exit 1; }
    ;;
  redis-stop)
    pid=$(redis_pid) || { echo "recovery_servers.sh: no redis.pid" >&2; exit 1; }
    redis-cli -h "$HOST" -p "$REDISPORT" shutdown nosave >/dev/null 2>&1 || true
    wait_gone "$pid"
    ! alive "$pid"
    ;;
  cleanup)
    # A second Ctrl-C must not stop the cleanup half way; pg_ctl and kill
    # inherit the ignored signals.
    trap '' INT TERM HUP
    if pid=$(redis_pid) && alive "$pid"; then
      kill -CONT "$pid" 2>/dev/null || true
      kill -TERM "$pid" 2>/dev/null || true
      wait_gone "$pid"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    if pid=$(postmaster_pid) && alive "$pid"; then
      cont_tree "$pid"
      as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 60 -s stop \
        >/dev/null 2>&1 || kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid"
    fi
    rm -rf "$DIR"
    ;;
  *)
    echo "recovery_servers.sh: unknown command '$CMD'" >&2
    exit 1
    ;;
esac
