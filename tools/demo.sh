#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# demo.sh: the README's demo. Builds qorb (Release) and shows a pool at
# work against real servers on loopback, one section per kind of backend:
#
#   demo_echo   three TCP echo servers (127.0.0.1-3, port 47001) and the
#               example echo connector; one server is killed at ~4 s and
#               restarted at ~8 s, and the per-second stats show the
#               backend going offline, claims moving to the others, and
#               the backend coming back.
#   demo_pg     PostgreSQL servers found through DNS (tools/demo-pg.sh)
#   demo_redis  redis-servers found through DNS (tools/demo-redis.sh)
#
# The pg and redis sections find their servers through DNS: this script
# starts one throwaway unbound (dns_up) on 127.0.0.1 port 55363, loopback
# only, answering for the local zone demo.local. alone (everything else is
# refused, nothing is forwarded), and the sections put their SRV and A
# records in it (dns_service, 2 s TTLs) and change them at run time through
# unbound-control (dns_join, dns_set), so that the pools follow.
#
# Usage: tools/demo.sh [SECTION...]     (default: every section)
#
# Environment:
#   QORB_DEMO_BUILD   build folder (default: <repo>/build/demo)
#   QORB_DEMO_SKIP_DEPS=1   do not run tools/deps.sh even if things are
#                     missing
#
# Every server the script starts (unbound included) is stopped on exit,
# also on Ctrl-C.
#
# Adding a section: write demo_NAME (start its servers with start_bg, which
# registers them for cleanup, its program with demo_start or demo_start_dns
# and then demo_wait, and use dns_up or dns_service for the DNS server), add
# NAME to SECTIONS, and list what it needs in need_NAME (need_dns too, if
# it uses DNS) so missing packages are installed first.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${QORB_DEMO_BUILD:-"$root/build/demo"}
work=""       # scratch folder for logs, made by main()
pids=()       # everything we started, stopped by cleanup()

SECTIONS=(echo)
# The connectors' sections live beside this script.
for section in pg redis; do
  if [[ -f "$root/tools/demo-$section.sh" ]]; then
    # shellcheck source=/dev/null
    source "$root/tools/demo-$section.sh"
    SECTIONS+=("$section")
  fi
done

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------- cleanup
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    # Bounded wait, then force: never leave a server behind.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
  if [[ -n "$work" && -d "$work" ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_bg NAME CMD...: run CMD in the background with its output in
# $work/NAME.log, remember its pid (for cleanup) in the variable last_pid.
last_pid=""
start_bg() {
  local name=$1; shift
  "$@" >"$work/$name.log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
}

# stop_pid PID: stop one server we started (SIGTERM, bounded wait).
stop_pid() {
  local pid=$1 p keep=()
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${pids[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
  pids=("${keep[@]+"${keep[@]}"}")
}

# wait_for_line FILE TEXT PID: wait (up to 10 s) until FILE contains TEXT,
# failing early if PID exits.
wait_for_line() {
  local file=$1 text=$2 pid=$3
  for _ in $(seq 100); do
    grep -qF -- "$text" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; return 1; }
    sleep 0.1
  done
  cat "$file" >&2
  return 1
}

# ------------------------------------------------------- dependencies
# need_SECTION prints what is missing for a section, as words on one
# line (nothing when ready).
need_build() {
  command -v cmake >/dev/null || printf ' cmake'
  command -v cc >/dev/null || printf ' cc'
  [[ -e /usr/include/ev.h ]] || printf ' libev-dev'
}
need_echo() { :; }
# What the DNS server and libqorb-dns need (for sections that use dns_up).
need_dns() {
  { command -v unbound && command -v unbound-control; } >/dev/null 2>&1 \
    || printf ' unbound'
  [[ -e /usr/include/ares.h ]] || printf ' libc-ares-dev'
}

ensure_deps() {
  local missing="" s
  local -a missing_list
  missing+=" $(need_build)"
  for s in "$@"; do
    if declare -F "need_$s" >/dev/null; then missing+=" $("need_$s")"; fi
  done
  read -r -a missing_list <<<"$missing"  # squeeze the blanks
  missing=${missing_list[*]-}
  [[ -z "$missing" ]] && return 0
  if [[ "${QORB_DEMO_SKIP_DEPS:-0}" != 1 && -x "$root/tools/deps.sh" ]]; then
    say "installing missing packages: $missing"
    "$root/tools/deps.sh"
  else
    die "missing: $missing (tools/deps.sh installs them)"
  fi
}

# -------------------------------------------------------------- build
build_qorb() {
  say "building qorb (Release) in $build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DQORB_BUILD_EXAMPLES=ON -DQORB_WITH_DNS=ON >"$work/cmake.log" 2>&1 \
    || { cat "$work/cmake.log" >&2; die "cmake configure failed"; }
  cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" \
    --target "$@" >"$work/build.log" 2>&1 \
    || { tail -50 "$work/build.log" >&2; die "build failed"; }
}

# bin NAME: the path of a built program.
bin() {
  local f
  for f in "$build/examples/$1" "$build/bin/$1" "$build/$1"; do
    [[ -x "$f" ]] && { printf '%s\n' "$f"; return 0; }
  done
  die "built program $1 not found under $build"
}

# ---------------------------------------------------------------- DNS
# One throwaway unbound for the sections that find their servers in DNS,
# like tests/integration/dns/dns_servers.sh (which uses port 55353): it
# runs as the invoking user (username ""), in the foreground (-d) so that
# its pid is ours (in `pids`, stopped by cleanup), answers only for
# demo.local. on 127.0.0.1, and takes record changes through
# unbound-control on a socket in $work/dns.
DNS_PORT=55363
DNS_SERVER="127.0.0.1:$DNS_PORT"  # what the demo programs ask
DNS_ZONE=demo.local.
DNS_TTL=2                          # short: changes are followed in seconds
dns_pid=""

dns_ctl() { unbound-control -c "$work/dns/unbound.conf" "$@"; }

# dns_up: start the DNS server unless it runs already (sections share it).
dns_up() {
  local d="$work/dns"
  if [[ -n "$dns_pid" ]] && kill -0 "$dns_pid" 2>/dev/null; then return 0; fi
  mkdir -p "$d"
  cat >"$d/unbound.conf" <<CONF
server:
  interface: 127.0.0.1@$DNS_PORT
  port: $DNS_PORT
  do-ip6: no
  username: ""
  chroot: ""
  directory: "$d"
  pidfile: "$d/unbound.pid"
  logfile: "$d/unbound.log"
  use-syslog: no
  do-daemonize: no
  num-threads: 1
  verbosity: 1
  module-config: "iterator"
  access-control: 127.0.0.0/8 allow
  local-zone: "." refuse
  local-zone: "$DNS_ZONE" static
  local-data: "$DNS_ZONE $DNS_TTL IN SOA ns.$DNS_ZONE admin.$DNS_ZONE 1 3600 600 86400 $DNS_TTL"
remote-control:
  control-enable: yes
  control-interface: "$d/unbound.ctl"
  control-use-cert: no
CONF
  unbound-checkconf "$d/unbound.conf" >"$work/unbound-checkconf.log" 2>&1 \
    || { cat "$work/unbound-checkconf.log" >&2; die "bad unbound.conf"; }
  say "dns: unbound on $DNS_SERVER, zone $DNS_ZONE (TTL ${DNS_TTL}s)"
  start_bg unbound unbound -d -c "$d/unbound.conf"
  dns_pid=$last_pid
  for _ in $(seq 100); do
    dns_ctl status >/dev/null 2>&1 && return 0
    kill -0 "$dns_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/unbound.log" "$d/unbound.log" >&2 2>/dev/null || true
  die "unbound is not answering on $DNS_SERVER (port in use?)"
}

# dns_rr NAME TYPE DATA: one record line of the zone, with the short TTL.
dns_rr() { printf '%s %s IN %s %s\n' "$1" "$DNS_TTL" "$2" "$3"; }

# dns_add RR...: add records (each RR one line, as dns_rr writes them).
dns_add() {
  printf '%s\n' "$@" | dns_ctl local_datas >/dev/null \
    || die "unbound-control could not add: $*"
}

# dns_set NAME RR...: replace every record of NAME by the RRs given.
# unbound cannot remove one record of a name alone: remove the name, put
# back the rest. A lookup in between sees no such name, which qorb-dns
# only believes once a second lookup confirms it.
dns_set() {
  local name=$1; shift
  dns_ctl local_data_remove "$name" >/dev/null \
    || die "unbound-control could not remove $name"
  [[ $# -eq 0 ]] || dns_add "$@"
}

# dns_srv NAME TARGET PORT: one SRV record of NAME (priority and weight
# 10; qorb-dns uses every target) for TARGET.demo.local.
dns_srv() { dns_rr "$1" SRV "10 10 $3 $2.$DNS_ZONE"; }

# dns_join NAME TARGET PORT: say so, and add TARGET.demo.local. on PORT to
# the SRV records of NAME.
dns_join() {
  printf '\n*** DNS: adding %s SRV 10 10 %s %s.%s ***\n\n' "$1" "$3" "$2" \
    "$DNS_ZONE"
  dns_add "$(dns_srv "$1" "$2" "$3")"
}

# dns_service SECTION NAME TARGET PORT1 PORT2 PORT3: start the DNS server
# if need be, give the hosts TARGET1-3.demo.local. the addresses
# 127.0.0.2-4, list the first two on PORT1 and PORT2 in the SRV records of
# NAME (the sections add or remove the third and others at run time), and
# show the records as the server answers them.
dns_service() {
  local section=$1 name=$2 target=$3 port1=$4 port2=$5 port3=$6
  dns_up
  dns_add "$(dns_rr "${target}1.$DNS_ZONE" A 127.0.0.2)" \
    "$(dns_rr "${target}2.$DNS_ZONE" A 127.0.0.3)" \
    "$(dns_rr "${target}3.$DNS_ZONE" A 127.0.0.4)" \
    "$(dns_srv "$name" "${target}1" "$port1")" \
    "$(dns_srv "$name" "${target}2" "$port2")"
  say "$section: $name lists ${target}1 and ${target}2 (${target}3," \
      "127.0.0.4:$port3, is not listed yet):"
  if command -v dig >/dev/null 2>&1; then
    dig @127.0.0.1 -p "$DNS_PORT" +short +time=1 +tries=1 "$name" SRV
  else
    dns_ctl list_local_data | grep -F "$name"
  fi | sed 's/^/    /' || true  # only a show: never fatal
}

# ------------------------------------------------ the demo programs
# demo_start PROG ARG...: run a demo program in the background, its output
# on ours, registered for cleanup; its pid in demo_pid.
demo_pid=""
demo_start() {
  "$@" &
  demo_pid=$!
  pids+=("$demo_pid")
}

# demo_start_dns PROG NAME SECONDS THREADS: demo_start for a program that
# finds its servers as NAME in the demo's DNS server.
demo_start_dns() {
  demo_start "$1" --service "$2" --dns-server "$DNS_SERVER" --seconds "$3" \
    --threads "$4"
}

# demo_wait: wait for the program demo_start ran and forget its pid;
# leaves its exit status in demo_rc.
demo_rc=0
demo_wait() {
  local p keep=()
  demo_rc=0
  wait "$demo_pid" || demo_rc=$?
  for p in "${pids[@]}"; do [[ "$p" == "$demo_pid" ]] || keep+=("$p"); done
  pids=("${keep[@]+"${keep[@]}"}")
}

# --------------------------------------------------------- echo demo
demo_echo() {
  local port=47001 seconds=12 threads=4 i server demo
  local -a srv=()

  build_qorb echo_server echo_demo
  server=$(bin qorb-echo-server)
  demo=$(bin qorb-echo-demo)

  say "echo: three echo servers on 127.0.0.1-3:$port"
  for i in 1 2 3; do
    start_bg "echo$i" "$server" "127.0.0.$i" "$port"
    srv[i]=$last_pid
    wait_for_line "$work/echo$i.log" "listening" "${srv[i]}" \
      || die "echo server on 127.0.0.$i:$port did not start (port in use?)"
  done

  say "echo: pool over them for ${seconds}s, $threads threads;" \
      "127.0.0.2 is killed at ~4s and restarted at ~8s"
  demo_start "$demo" \
    --backends "127.0.0.1:$port,127.0.0.2:$port,127.0.0.3:$port" \
    --seconds "$seconds" --threads "$threads"

  sleep 4
  printf '\n*** killing the echo server on 127.0.0.2:%s ***\n\n' "$port"
  stop_pid "${srv[2]}"

  sleep 4
  printf '\n*** restarting the echo server on 127.0.0.2:%s ***\n\n' "$port"
  start_bg echo2b "$server" 127.0.0.2 "$port"
  srv[2]=$last_pid
  wait_for_line "$work/echo2b.log" "listening" "${srv[2]}" \
    || die "echo server on 127.0.0.2:$port did not restart"

  demo_wait
  for i in 1 2 3; do stop_pid "${srv[i]}"; done
  [[ $demo_rc -eq 0 ]] || die "echo demo failed (exit $demo_rc)"
}

# --------------------------------------------------------------- main
main() {
  local s
  local -a run=("$@")
  [[ ${#run[@]} -gt 0 ]] || run=("${SECTIONS[@]}")
  for s in "${run[@]}"; do
    declare -F "demo_$s" >/dev/null || die "unknown section '$s' (have: ${SECTIONS[*]})"
  done
  work=$(mktemp -d "${TMPDIR:-/tmp}/qorb-demo.XXXXXX")
  ensure_deps "${run[@]}"
  for s in "${run[@]}"; do "demo_$s"; done
  say "done"
}

main "$@"
