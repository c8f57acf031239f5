#!/bin/sh
# SPDX-License-Identifier: MIT
#
# redis_servers.sh: throwaway redis-servers for the qorb-redis integration
# tests. Every server lives in a folder under ROOT (the build tree), listens
# on one loopback address and port only, with no persistence (--save ''
# --appendonly no). CTest calls `setup` before the tests (fixture setup) and
# `cleanup` after them (fixture cleanup); the tests call the others to stop,
# restart and freeze servers.
#
#   redis_servers.sh ROOT setup                 start every server (fresh)
#   redis_servers.sh ROOT cleanup               stop every server, remove ROOT
#   redis_servers.sh ROOT start|stop|restart|freeze|thaw|pid NAME
#
# Servers:
#   a  127.0.0.2:56391  master
#   b  127.0.0.3:56392  master, also on [::1]:56392
#   r  127.0.0.3:56393  replica of a (--replicaof 127.0.0.2 56391)
#   p  127.0.0.2:56394  --requirepass qorb-secret, plus ACL user "qorbuser"
#                       with password "qorb-user-pw"
#   t  127.0.0.3:56395  TLS only (certificates made with openssl in ROOT/t);
#                       not started by setup: the TLS test starts it
# Nothing listens on 127.0.0.2:56398 (the refused-port test).
#
# Only processes this script started (by the pid files under ROOT) are ever
# signalled. Every wait is bounded.
#
# External servers: when QORB_TEST_REDIS_MASTER or QORB_TEST_REDIS_REPLICA
# is set, the tests use those servers (redis_testlib.h, docs/docker.md) and
# this script touches nothing: setup, cleanup, start and thaw do nothing and
# succeed; stop, restart, freeze and pid fail with a message (the tests
# that need them skip before asking).

set -eu

ROOT=${1:?usage: redis_servers.sh ROOT COMMAND [NAME]}
CMD=${2:?usage: redis_servers.sh ROOT COMMAND [NAME]}
NAME=${3:-}

if [ -n "${QORB_TEST_REDIS_MASTER:-}${QORB_TEST_REDIS_REPLICA:-}" ]; then
  why="the servers are external (QORB_TEST_REDIS_MASTER=${QORB_TEST_REDIS_MASTER:-} QORB_TEST_REDIS_REPLICA=${QORB_TEST_REDIS_REPLICA:-})"
  case $CMD in
    setup|cleanup|start|thaw)
      echo "redis_servers.sh $CMD${NAME:+ $NAME}: nothing to do, $why" >&2
      exit 0
      ;;
    *)
      echo "redis_servers.sh $CMD${NAME:+ $NAME}: refused, $why" >&2
      exit 1
      ;;
  esac
fi
# redis-server changes folder (--dir) before opening its log: use an
# absolute path.
case $ROOT in
  /*) ;;
  *) ROOT="$(pwd)/$ROOT" ;;
esac
ALL="a b r p"        # started by setup
STOP_ORDER="t r p b a" # every server; all are signalled before any wait

die() { echo "redis_servers.sh: $*" >&2; exit 1; }

command -v redis-server >/dev/null 2>&1 || die "redis-server not found"
command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found"

host_of() {
  case $1 in
    a) echo 127.0.0.2 ;; b) echo 127.0.0.3 ;;
    r) echo 127.0.0.3 ;; p) echo 127.0.0.2 ;; t) echo 127.0.0.3 ;;
    *) die "unknown server '$1' ($ALL)" ;;
  esac
}
port_of() {
  case $1 in
    a) echo 56391 ;; b) echo 56392 ;; r) echo 56393 ;; p) echo 56394 ;;
    t) echo 56395 ;;
    *) die "unknown server '$1' ($ALL)" ;;
  esac
}

pidfile() { echo "$ROOT/$1/redis.pid"; }

pid_of() {
  f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  p=$(cat "$f" 2>/dev/null || true)
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
  echo "$p"
}

cli() { # cli NAME ARGS...: redis-cli against server NAME
  n=$1; shift
  if [ "$n" = p ]; then
    redis-cli -h "$(host_of "$n")" -p "$(port_of "$n")" -a qorb-secret \
      --no-auth-warning "$@"
  elif [ "$n" = t ]; then
    redis-cli --tls --cacert "$ROOT/t/ca.crt" -h "$(host_of "$n")" \
      -p "$(port_of "$n")" "$@"
  else
    redis-cli -h "$(host_of "$n")" -p "$(port_of "$n")" "$@"
  fi
}

# A throwaway CA and a server certificate for 127.0.0.3 (server t).
make_certs() {
  d=$1
  [ -f "$d/server.crt" ] && return 0
  command -v openssl >/dev/null 2>&1 || die "openssl not found (server t)"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" \
    -out "$d/ca.crt" -days 2 -subj "/CN=qorb-test-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$d/server.key" \
    -out "$d/server.csr" -subj "/CN=127.0.0.3" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.3\n' > "$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
    -CAcreateserial -out "$d/server.crt" -days 2 -extfile "$d/ext.cnf" \
    2>/dev/null || die "could not make certificates for t"
}

start() {
  n=$1
  if pid_of "$n" >/dev/null; then return 0; fi
  d="$ROOT/$n"
  mkdir -p "$d"
  rm -f "$(pidfile "$n")"
  bind=$(host_of "$n")
  if [ "$n" = b ]; then bind="$bind ::1"; fi
  if [ "$n" = t ]; then make_certs "$d"; fi
  set -- --bind "$bind" --port "$(port_of "$n")" \
    --save '' --appendonly no --daemonize yes \
    --pidfile "$(pidfile "$n")" --logfile "$d/redis.log" --dir "$d"
  case $n in
    r) set -- "$@" --replicaof 127.0.0.2 56391 ;;
    p) set -- "$@" --requirepass qorb-secret ;;
    t) set -- "$@" --port 0 --tls-port "$(port_of t)" \
         --tls-cert-file "$d/server.crt" --tls-key-file "$d/server.key" \
         --tls-ca-cert-file "$d/ca.crt" --tls-auth-clients no ;;
  esac
  redis-server "$@" || die "redis-server $n did not start (see $d/redis.log)"
  i=0
  while [ $i -lt 100 ]; do
    if [ "$(cli "$n" ping 2>/dev/null || true)" = PONG ] && pid_of "$n" >/dev/null
    then
      if [ "$n" = p ]; then
        cli p ACL SETUSER qorbuser on '>qorb-user-pw' '~*' '&*' '+@all' \
          >/dev/null || die "ACL SETUSER failed on p"
      fi
      return 0
    fi
    i=$((i + 1))
    sleep 0.1
  done
  cat "$d/redis.log" >&2 || true
  die "redis-server $n is not answering on $(host_of "$n"):$(port_of "$n")"
}

# Signal one server to stop (no wait); echo its pid if it was running.
signal_stop() {
  n=$1
  p=$(pid_of "$n") || { rm -f "$(pidfile "$n")"; return 0; }
  kill -CONT "$p" 2>/dev/null || true # a frozen server ignores TERM
  kill -TERM "$p" 2>/dev/null || true
  echo "$p"
}

# Wait (bounded) for pids to exit, then force the stragglers.
reap() {
  for p in "$@"; do
    i=0
    while [ $i -lt 100 ] && kill -0 "$p" 2>/dev/null; do
      i=$((i + 1))
      sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
    i=0
    while [ $i -lt 50 ] && kill -0 "$p" 2>/dev/null; do
      i=$((i + 1))
      sleep 0.1
    done
  done
}

stop() {
  pids=""
  for n in "$@"; do pids="$pids $(signal_stop "$n")"; done
  # shellcheck disable=SC2086 # word splitting wanted
  reap $pids
  for n in "$@"; do rm -f "$(pidfile "$n")"; done
}

case $CMD in
  setup)
    # shellcheck disable=SC2086
    stop $STOP_ORDER
    for n in $ALL; do start "$n"; done
    ;;
  cleanup)
    # shellcheck disable=SC2086
    stop $STOP_ORDER
    rm -rf "$ROOT"
    ;;
  start) start "${NAME:?name}" ;;
  stop) stop "${NAME:?name}" ;;
  restart) stop "${NAME:?name}"; start "$NAME" ;;
  freeze) p=$(pid_of "${NAME:?name}") || die "$NAME not running"; kill -STOP "$p" ;;
  thaw) p=$(pid_of "${NAME:?name}") || die "$NAME not running"; kill -CONT "$p" ;;
  pid) pid_of "${NAME:?name}" || die "$NAME not running" ;;
  *) die "unknown command '$CMD'" ;;
esac
