#!/bin/sh
# SPDX-License-Identifier: MIT
#
# dns_servers.sh: a throwaway unbound for the qorb-dns integration tests. It
# answers only for the local zone test.local. (everything else is refused,
# nothing is forwarded) on 127.0.0.1 and ::1, port 55353, and takes record
# changes at run time through unbound-control (a socket in ROOT). CTest calls
# `setup` before the tests (fixture setup) and `cleanup` after them; the
# tests call the others.
#
#   dns_servers.sh ROOT setup | cleanup | start | stop
#   dns_servers.sh ROOT add 'RR'           add one record
#   dns_servers.sh ROOT remove NAME        remove every record of NAME
#
# Nothing listens on port 55359 (the dead-server test). Only the process
# this script started (by its pid file) is ever signalled; every wait is
# bounded.

set -eu

ROOT=${1:?usage: dns_servers.sh ROOT COMMAND [ARG]}
CMD=${2:?usage: dns_servers.sh ROOT COMMAND [ARG]}
ARG=${3:-}
case $ROOT in
  /*) ;;
  *) ROOT="$(pwd)/$ROOT" ;;
esac
PORT=55353
CONF="$ROOT/unbound.conf"
PIDFILE="$ROOT/unbound.pid"

die() { echo "dns_servers.sh: $*" >&2; exit 1; }

command -v unbound >/dev/null 2>&1 || die "unbound not found"
command -v unbound-control >/dev/null 2>&1 || die "unbound-control not found"

write_conf() {
  mkdir -p "$ROOT"
  # unbound runs as the invoking user (username ""), root included.
  cat > "$CONF" <<CONF
server:
  interface: 127.0.0.1@$PORT
  interface: ::1@$PORT
  port: $PORT
  do-ip6: yes
  username: ""
  chroot: ""
  directory: "$ROOT"
  pidfile: "$PIDFILE"
  logfile: "$ROOT/unbound.log"
  use-syslog: no
  do-daemonize: no
  num-threads: 1
  verbosity: 1
  module-config: "iterator"
  access-control: 127.0.0.0/8 allow
  access-control: ::1/128 allow
  local-zone: "." refuse
  local-zone: "test.local." static
  local-data: "test.local. 300 IN SOA ns.test.local. admin.test.local. 1 3600 600 86400 1"
  # SRV, three targets: A and AAAA, A only, AAAA only.
  local-data: "_pg._tcp.test.local. 30 IN SRV 10 50 5432 pg1.test.local."
  local-data: "_pg._tcp.test.local. 30 IN SRV 10 50 5433 pg2.test.local."
  local-data: "_pg._tcp.test.local. 30 IN SRV 20 10 5434 pg3.test.local."
  local-data: "pg1.test.local. 30 IN A 127.0.0.2"
  local-data: "pg1.test.local. 30 IN AAAA ::1"
  local-data: "pg2.test.local. 30 IN A 127.0.0.3"
  local-data: "pg3.test.local. 30 IN AAAA ::ffff:127.0.0.4"
  # SRV: a target without an address and one with port 0 (skipped).
  local-data: "_odd._tcp.test.local. 30 IN SRV 10 10 5440 pg2.test.local."
  local-data: "_odd._tcp.test.local. 30 IN SRV 10 10 5441 noaddr.test.local."
  local-data: "_odd._tcp.test.local. 30 IN SRV 10 10 0 pg1.test.local."
  local-data: "noaddr.test.local. 30 IN TXT \"no address here\""
  # host:port with several A records.
  local-data: "multi.test.local. 30 IN A 127.0.0.5"
  local-data: "multi.test.local. 30 IN A 127.0.0.6"
  local-data: "multi.test.local. 30 IN A 127.0.0.7"
  # The end-to-end test (e2e_servers.sh): three targets, one second TTLs;
  # the test removes and adds their A records at run time.
$(for svc in "pg 55445" "redis 56445"; do
    set -- $svc
    for i in 1 2 3; do
      echo "  local-data: \"_$1._tcp.e2e.test.local. 1 IN SRV 10 10 $2 e$i.e2e.test.local.\""
    done
  done
  for i in 1 2 3; do
    echo "  local-data: \"e$i.e2e.test.local. 1 IN A 127.0.0.$((i + 1))\""
  done)
  # More than a few hundred records (bounded by max_backends).
$(i=1; while [ $i -le 300 ]; do
    echo "  local-data: \"many.test.local. 30 IN A 127.0.$((i / 250 + 10)).$((i % 250 + 1))\""
    i=$((i + 1))
  done)
remote-control:
  control-enable: yes
  control-interface: "$ROOT/unbound.ctl"
  control-use-cert: no
CONF
}

pid_of() {
  [ -f "$PIDFILE" ] || return 1
  p=$(cat "$PIDFILE" 2>/dev/null || true)
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
  echo "$p"
}

ctl() { unbound-control -c "$CONF" "$@"; }

start() {
  if pid_of >/dev/null; then return 0; fi
  [ -f "$CONF" ] || write_conf
  rm -f "$PIDFILE"
  unbound-checkconf "$CONF" >/dev/null || die "bad unbound.conf"
  # Detached from the caller's output, so that ctest does not wait on it.
  unbound -d -c "$CONF" </dev/null >>"$ROOT/unbound.out" 2>&1 &
  echo $! > "$PIDFILE.start"
  i=0
  while [ $i -lt 100 ]; do
    if ctl status >/dev/null 2>&1 && pid_of >/dev/null; then return 0; fi
    i=$((i + 1))
    sleep 0.1
  done
  cat "$ROOT/unbound.log" >&2 2>/dev/null || true
  die "unbound is not answering on port $PORT"
}

stop() {
  p=$(pid_of) || p=$(cat "$PIDFILE.start" 2>/dev/null || true)
  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
    i=0
    while [ $i -lt 100 ] && kill -0 "$p" 2>/dev/null; do
      i=$((i + 1))
      sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  fi
  rm -f "$PIDFILE" "$PIDFILE.start"
}

case $CMD in
  setup) stop; rm -rf "$ROOT"; write_conf; start ;;
  cleanup) stop; rm -rf "$ROOT" ;;
  start) start ;;
  stop) stop ;;
  add) ctl local_data "${ARG:?record}" >/dev/null ;;
  remove) ctl local_data_remove "${ARG:?name}" >/dev/null ;;
  *) die "unknown command '$CMD'" ;;
esac
