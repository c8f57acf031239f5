#!/bin/sh
# SPDX-License-Identifier: MIT
#
# pg_servers.sh: throwaway PostgreSQL servers for the qorb-pg integration
# tests. Every server lives in a folder under ROOT (the build tree), listens
# on one loopback address and port and nothing else (no Unix socket), and
# runs with fsync off. CTest calls `setup` before the tests (fixture setup)
# and `cleanup` after them (fixture cleanup); the tests call the others to
# stop, restart, freeze and promote servers.
#
#   pg_servers.sh ROOT setup        template (initdb, once) + servers a and b
#   pg_servers.sh ROOT cleanup      stop every server under ROOT, remove data
#   pg_servers.sh ROOT start|stop|restart|freeze|thaw|pid|ensure NAME
#   pg_servers.sh ROOT shutdown-smart NAME  begin a smart shutdown, no wait
#   pg_servers.sh ROOT pair-up      primary p + streaming standby s (fresh)
#   pg_servers.sh ROOT pair-down    stop and remove p and s
#   pg_servers.sh ROOT promote s
#   pg_servers.sh ROOT configure DATA   give the initdb'd folder DATA what
#                   the tests expect of a server (TLS, settings, pg_hba for
#                   clients from anywhere); docker/pg-init.sh uses it
#   pg_servers.sh ROOT sql          print the roles and the table the tests
#                   expect, one statement a line (for psql or --single)
#
# Servers: a 127.0.0.2:55431, b 127.0.0.3:55432 (two backends of one
# service), p 127.0.0.2:55433 (primary), s 127.0.0.3:55434 (its standby).
# Roles: postgres (superuser, trust), qorb_pw (password "secret",
# scram-sha-256), qorb_other (NOLOGIN, for SET ROLE), qorb_nossl (refused
# over TLS, trusted without it). TLS is on, with a self-signed certificate
# for qorb-test.invalid (copied to ROOT/server.crt).
#
# PostgreSQL refuses to run as root: as root, everything runs as the
# postgres user (runuser); as another user, as that user (as_pg, from
# pg_lib.sh, which bench/pg/bench_servers.sh shares). If the postgres user
# cannot reach ROOT, the data goes to a folder under /tmp that ROOT points
# to (ROOT/datadir).
#
# External servers: when QORB_TEST_PG_PRIMARY or QORB_TEST_PG_STANDBY is
# set, the tests use those servers (pg_testlib.h, docs/docker.md) and this
# script touches nothing: setup, cleanup, start, ensure, thaw, pair-up and
# pair-down do nothing and succeed; stop, restart, freeze, promote,
# shutdown-smart and pid fail with a message (the tests that need them
# skip before asking).

set -eu

ROOT=${1:?usage: pg_servers.sh ROOT COMMAND [NAME]}
CMD=${2:?usage: pg_servers.sh ROOT COMMAND [NAME]}
NAME=${3:-}

if [ -n "${QORB_TEST_PG_PRIMARY:-}${QORB_TEST_PG_STANDBY:-}" ]; then
  why="the servers are external (QORB_TEST_PG_PRIMARY=${QORB_TEST_PG_PRIMARY:-} QORB_TEST_PG_STANDBY=${QORB_TEST_PG_STANDBY:-})"
  case $CMD in
    setup|cleanup|start|ensure|thaw|pair-up|pair-down)
      echo "pg_servers.sh $CMD${NAME:+ $NAME}: nothing to do, $why" >&2
      exit 0
      ;;
    stop|restart|freeze|promote|shutdown-smart|pid)
      echo "pg_servers.sh $CMD${NAME:+ $NAME}: refused, $why" >&2
      exit 1
      ;;
  esac
fi

# PGBIN, as_pg, PGUSER_OS, pg_start, alive, wait_gone.
# shellcheck source=tests/integration/pg/pg_lib.sh
. "$(dirname "$0")/pg_lib.sh"

die() { echo "pg_servers.sh: $*" >&2; exit 1; }

# Bump when make_template changes, so that old templates are rebuilt.
TEMPLATE_VERSION=2

addr_of() {
  case $1 in
    a) echo "127.0.0.2 55431" ;;
    b) echo "127.0.0.3 55432" ;;
    p) echo "127.0.0.2 55433" ;;
    s) echo "127.0.0.3 55434" ;;
    *) die "unknown server '$1' (a, b, p, s)" ;;
  esac
}

# The folder holding the data: ROOT itself, or the one ROOT/datadir names.
datadir() {
  if [ -f "$ROOT/datadir" ]; then cat "$ROOT/datadir"; else echo "$ROOT/data"; fi
}

# Make the data folder, owned by the user that runs postgres.
make_datadir() {
  mkdir -p "$ROOT"
  if [ -f "$ROOT/datadir" ] && [ -d "$(cat "$ROOT/datadir")" ]; then return; fi
  rm -f "$ROOT/datadir"
  mkdir -p "$ROOT/data"
  if [ "$(id -u)" = 0 ]; then
    chown "$PGUSER_OS" "$ROOT/data"
    if ! runuser -u postgres -- test -w "$ROOT/data"; then
      rmdir "$ROOT/data"
      d=$(mktemp -d /tmp/qorb-pg-test.XXXXXX)
      chown "$PGUSER_OS" "$d"
      echo "$d" > "$ROOT/datadir"
    fi
  fi
}

pgdata() { echo "$(datadir)/$1"; }

pm_pid() {
  f="$(pgdata "$1")/postmaster.pid"
  [ -f "$f" ] && head -n 1 "$f" || true
}

running() {
  pid=$(pm_pid "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# The postmaster and every process below it.
tree_pids() {
  pid=$(pm_pid "$1")
  [ -n "$pid" ] || return 0
  echo "$pid"
  pgrep -P "$pid" 2>/dev/null || true
}

start() {
  set -- $(addr_of "$1") "$1"
  host=$1 port=$2 name=$3
  d=$(pgdata "$name")
  [ -d "$d" ] || die "no data for server $name"
  if running "$name"; then return 0; fi
  rm -f "$d/postmaster.pid"
  pg_start "$d" "$d/server.log" "$host" "$port" ||
    { tail -n 20 "$d/server.log" >&2; die "server $name did not start"; }
}

stop() {
  name=$1 mode=${2:-fast}
  d=$(pgdata "$name")
  [ -d "$d" ] || return 0
  thaw "$name"
  pid=$(pm_pid "$name")
  kids=$(tree_pids "$name")
  if running "$name"; then
    as_pg "$PGBIN/pg_ctl" -D "$d" -m "$mode" -w -t 60 -s stop ||
      { [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true; }
  fi
  # pg_ctl returns when the pid file is gone; wait for the processes too,
  # so that nothing is left running when the fixture ends.
  for k in $kids; do wait_gone "$k"; done
}

freeze() {
  for p in $(tree_pids "$1"); do kill -STOP "$p" 2>/dev/null || true; done
}

thaw() {
  for p in $(tree_pids "$1"); do kill -CONT "$p" 2>/dev/null || true; done
}

# configure_data DATA NET: what the tests expect of a server, in the
# initdb'd folder DATA, for clients from NET (a pg_hba address:
# 127.0.0.0/8, all). TLS, with a certificate for the name
# qorb-test.invalid: the tests connect with sslmode=verify-full and
# host=qorb-test.invalid while the pool supplies hostaddr.
configure_data() {
  t=$1 net=$2
  as_pg openssl req -new -x509 -days 3650 -nodes -subj /CN=qorb-test.invalid \
    -addext subjectAltName=DNS:qorb-test.invalid \
    -keyout "$t/server.key" -out "$t/server.crt" >/dev/null 2>&1 ||
    die "openssl could not make the server's certificate"
  as_pg chmod 600 "$t/server.key"
  cat >> "$t/postgresql.conf" <<EOF
ssl = on
password_encryption = 'scram-sha-256'
wal_level = replica
max_wal_senders = 5
hot_standby = on
log_min_messages = warning
log_connections = off
EOF
  # The password user first: the first matching line wins.
  tmp=$(mktemp)
  cat > "$tmp" <<EOF
host all qorb_pw $net scram-sha-256
hostssl all qorb_nossl $net reject
host all all $net trust
host replication all $net trust
EOF
  cat "$t/pg_hba.conf" >> "$tmp"
  as_pg sh -c "cat > '$t/pg_hba.conf'" < "$tmp"
  rm -f "$tmp"
}

# The roles and the table the tests use, one statement a line.
template_sql() {
  printf '%s;\n' \
    "CREATE ROLE qorb_pw LOGIN PASSWORD 'secret'" \
    "CREATE ROLE qorb_other NOLOGIN" \
    "CREATE ROLE qorb_nossl LOGIN" \
    "CREATE TABLE qorb_t (id int)" \
    "GRANT ALL ON qorb_t TO PUBLIC"
}

# initdb once per build tree: later fixtures copy it. The tests read the
# certificate from ROOT.
make_template() {
  t=$(pgdata template)
  if [ -f "$t/PG_VERSION" ] && [ "$(cat "$t/.qorb-ready" 2>/dev/null)" = "$TEMPLATE_VERSION" ]; then
    cp "$t/server.crt" "$ROOT/server.crt"
    return 0
  fi
  rm -rf "$t"
  as_pg "$PGBIN/initdb" -D "$t" -A trust -U postgres --no-sync >/dev/null
  configure_data "$t" 127.0.0.0/8
  cp "$t/server.crt" "$ROOT/server.crt"
  # Single-user mode: roles without starting a server.
  template_sql |
    as_pg "$PGBIN/postgres" --single -D "$t" postgres >"$t/single.log" 2>&1 ||
    { cat "$t/single.log" >&2; die "single-user setup failed"; }
  as_pg sh -c "echo $TEMPLATE_VERSION > '$t/.qorb-ready'"
}

fresh_copy() {
  d=$(pgdata "$1")
  rm -rf "$d"
  as_pg cp -a "$(pgdata template)" "$d"
  rm -f "$d/.qorb-ready"
}

cleanup_all() {
  dd=$(datadir)
  [ -d "$dd" ] || return 0
  for n in a b p s; do
    [ -d "$dd/$n" ] && stop "$n" immediate
  done
  rm -rf "$dd/a" "$dd/b" "$dd/p" "$dd/s"
}

case $CMD in
  setup)
    make_datadir
    cleanup_all
    make_template
    fresh_copy a
    fresh_copy b
    start a
    start b
    ;;
  cleanup)
    cleanup_all
    # The template stays for the next run (initdb is the slow part), unless
    # it lives outside ROOT.
    if [ -f "$ROOT/datadir" ]; then
      rm -rf "$(cat "$ROOT/datadir")"
      rm -f "$ROOT/datadir"
    fi
    ;;
  start) start "$NAME" ;;
  stop) stop "$NAME" "${4:-fast}" ;;
  restart)
    stop "$NAME" fast
    start "$NAME"
    ;;
  ensure)
    thaw "$NAME"
    start "$NAME"
    ;;
  shutdown-smart)
    # Begin a smart shutdown and return at once: while sessions remain, the
    # server refuses new ones with "the database system is shutting down".
    as_pg "$PGBIN/pg_ctl" -D "$(pgdata "$NAME")" -m smart -W -s stop
    ;;
  freeze) freeze "$NAME" ;;
  thaw) thaw "$NAME" ;;
  pid) pm_pid "$NAME" ;;
  pair-up)
    stop s immediate
    stop p immediate
    fresh_copy p
    start p
    d=$(pgdata s)
    rm -rf "$d"
    as_pg "$PGBIN/pg_basebackup" -h 127.0.0.2 -p 55433 -U postgres -D "$d" \
      -R -X stream -c fast --no-sync
    start s
    ;;
  pair-down)
    stop s immediate
    stop p immediate
    rm -rf "$(pgdata p)" "$(pgdata s)"
    ;;
  promote)
    as_pg "$PGBIN/pg_ctl" -D "$(pgdata "$NAME")" -w -t 60 -s promote
    ;;
  configure)
    [ -f "${NAME:?usage: pg_servers.sh ROOT configure DATA}/PG_VERSION" ] ||
      die "$NAME is not an initdb'd data folder"
    configure_data "$NAME" all
    ;;
  sql) template_sql ;;
  *) die "unknown command '$CMD'" ;;
esac
