#!/bin/sh
# SPDX-License-Identifier: MIT
#
# e2e_servers.sh: the backends of the qorb-dns end-to-end test
# (test_dns_e2e): three throwaway PostgreSQL servers and three redis-servers,
# one of each on 127.0.0.2, 127.0.0.3 and 127.0.0.4, PostgreSQL on port
# 55445 and Redis on port 56445. The test finds them through the SRV names
# _pg._tcp.e2e.test.local. and _redis._tcp.e2e.test.local. that
# dns_servers.sh serves (targets e1, e2 and e3.e2e.test.local). CTest calls
# `setup` before the test and `cleanup` after it, whatever happened.
#
#   e2e_servers.sh ROOT setup | cleanup
#
# PostgreSQL refuses to run as root: as root it runs as the postgres user,
# from a folder under /tmp that ROOT/datadir names. Only processes this
# script started (by their pid files) are ever signalled; every wait is
# bounded.

set -eu

ROOT=${1:?usage: e2e_servers.sh ROOT setup|cleanup}
CMD=${2:?usage: e2e_servers.sh ROOT setup|cleanup}
case $ROOT in
  /*) ;;
  *) ROOT="$(pwd)/$ROOT" ;;
esac
HOSTS="127.0.0.2 127.0.0.3 127.0.0.4"
PG_PORT=55445
REDIS_PORT=56445

# PGBIN, as_pg, PGUSER_OS, pg_start, alive, wait_gone.
# shellcheck source=tests/integration/pg/pg_lib.sh
. "$(dirname "$0")/../pg/pg_lib.sh"

die() { echo "e2e_servers.sh: $*" >&2; exit 1; }

datadir() { cat "$ROOT/datadir" 2>/dev/null || true; }

setup() {
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found"
  [ -x "$PGBIN/initdb" ] || die "no PostgreSQL server binaries in $PGBIN"
  cleanup
  mkdir -p "$ROOT"
  d=$(mktemp -d /tmp/qorb-e2e.XXXXXX)
  echo "$d" > "$ROOT/datadir"
  [ "$(id -u)" != 0 ] || chown "$PGUSER_OS" "$d"
  as_pg "$PGBIN/initdb" -D "$d/template" -U postgres -A trust --no-sync \
    >"$ROOT/initdb.log" 2>&1 || { tail -n 20 "$ROOT/initdb.log" >&2; die "initdb failed"; }
  i=1
  for h in $HOSTS; do
    as_pg cp -a "$d/template" "$d/pg$i"
    pg_start "$d/pg$i" "$d/pg$i.log" "$h" "$PG_PORT" ||
      { tail -n 20 "$d/pg$i.log" >&2; die "PostgreSQL on $h:$PG_PORT did not start"; }
    mkdir -p "$ROOT/redis$i"
    redis-server --bind "$h" --port "$REDIS_PORT" --save '' --appendonly no \
      --daemonize yes --dir "$ROOT/redis$i" --pidfile "$ROOT/redis$i.pid" \
      --logfile "$ROOT/redis$i.log" >/dev/null ||
      die "redis-server on $h:$REDIS_PORT did not start"
    i=$((i + 1))
  done
  # Ready: each redis answers (PostgreSQL is, pg_ctl -w waited for it).
  for h in $HOSTS; do
    n=0
    until redis-cli -h "$h" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do
      n=$((n + 1))
      [ $n -lt 100 ] || die "redis-server on $h:$REDIS_PORT does not answer"
      sleep 0.1
    done
  done
}

cleanup() {
  d=$(datadir)
  i=1
  for h in $HOSTS; do
    f="$ROOT/redis$i.pid"
    if [ -f "$f" ]; then
      p=$(cat "$f" 2>/dev/null || true)
      if [ -n "$p" ] && alive "$p"; then
        kill -TERM "$p" 2>/dev/null || true
        wait_gone "$p"
        kill -KILL "$p" 2>/dev/null || true
      fi
      rm -f "$f"
    fi
    if [ -n "$d" ] && [ -f "$d/pg$i/postmaster.pid" ]; then
      p=$(head -n 1 "$d/pg$i/postmaster.pid")
      kids=$(pgrep -P "$p" 2>/dev/null || true)
      as_pg "$PGBIN/pg_ctl" -D "$d/pg$i" -m immediate -w -t 30 -s stop ||
        kill -KILL "$p" 2>/dev/null || true
      for k in $p $kids; do wait_gone "$k"; done
    fi
    rm -rf "$ROOT/redis$i"
    i=$((i + 1))
  done
  [ -z "$d" ] || rm -rf "$d"
  rm -f "$ROOT/datadir"
}

case $CMD in
  setup) setup ;;
  cleanup) cleanup ;;
  *) die "unknown command '$CMD' (setup, cleanup)" ;;
esac
