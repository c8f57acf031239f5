#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# demo.sh: the README's demo. Builds qorb (Release) and shows a pool at
# work against real servers on loopback, one section per kind of backend:
#
#   demo_echo   three TCP echo servers (127.0.0.1-3, port 47001) and the
#               example echo connector; one server is killed at ~4 s and
#               restarted at ~8 s: the backend goes offline, claims move
#               to the others, and the backend comes back.
#   demo_pg     PostgreSQL servers found through DNS (tools/demo-pg.sh)
#   demo_redis  redis-servers found through DNS (tools/demo-redis.sh)
#
# How it shows. Each demo program serves its pool on a stats endpoint
# (--endpoint 127.0.0.1:0, a port of the system's choice) and runs --quiet,
# its own output going to a log in the scratch folder. When standard output
# is a terminal that curses can drive, tools/qorbtop shows the endpoint
# full screen for the section's duration (--duration), with the backends'
# rows going down and up as the script stops and starts servers; the
# section's events are printed after it, in the summary. Otherwise (a pipe,
# CI) a `qorbtop --once` frame is printed every ~2.5 s, with the events
# between the frames. At the end of each section a summary is printed from
# the pool's last stats (the program's --stats-json, the same document as
# the endpoint's /stats.json) and JSON samples taken at each event: claims
# served and failed, claim waits, connections opened and closed by cause,
# the backends found through DNS, and for each server that was stopped, how
# long it was out and when it was back online. The whole demo ends with one
# line per section.
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
#   QORB_DEMO_VIEW    live (qorbtop full screen) or frames (--once frames);
#                     default: live when stdout is a usable terminal
#
# Every server the script starts (unbound and qorbtop included) is stopped
# on exit, also on Ctrl-C; qorbtop gives the terminal back on SIGTERM.
#
# Adding a section: write demo_NAME (start its servers with start_bg, which
# registers them for cleanup, its program with demo_start or demo_start_dns,
# pass the time with demo_watch, say what happens with demo_event (and
# demo_stopped / demo_started for a server taken down), then demo_wait and
# demo_summary; use dns_up or dns_service for the DNS server), add NAME to
# SECTIONS, and list what it needs in need_NAME (need_dns too, if it uses
# DNS) so missing packages are installed first.
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
  # The stats endpoint, and qorbtop and the summaries read from it.
  [[ -e /usr/include/microhttpd.h ]] || printf ' libmicrohttpd-dev'
  command -v python3 >/dev/null || printf ' python3'
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
    # As root deps.sh installs them; otherwise it prints the command to run.
    if [[ $(id -u) -eq 0 ]]; then
      say "installing missing packages: $missing"
    else
      say "missing packages: $missing"
    fi
    "$root/tools/deps.sh" || die "install the missing packages first"
  else
    die "missing: $missing (tools/deps.sh installs them)"
  fi
}

# -------------------------------------------------------------- build
build_qorb() {
  say "building qorb (Release) in $build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DQORB_BUILD_EXAMPLES=ON -DQORB_WITH_DNS=ON -DQORB_WITH_ENDPOINT=ON \
    >"$work/cmake.log" 2>&1 \
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
  demo_event "DNS: adding $1 SRV 10 10 $3 $2.$DNS_ZONE"
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
# One demo program runs at a time. demo_start runs it in the background,
# --quiet, with its output in $work/NAME.log, a stats endpoint on a port of
# the system's choice (demo_ep) and its last stats written to
# $work/NAME.json at the end; the view (demo_view: live or frames, chosen
# by main) shows the endpoint meanwhile.
demo_view=""     # live: qorbtop full screen; frames: `qorbtop --once` frames
demo_pid=""      # the demo program
demo_name=""     # its section name
demo_ep=""       # its stats endpoint, HOST:PORT
demo_t0=""       # when it started serving ($EPOCHREALTIME)
demo_viewer=""   # the full-screen qorbtop's pid (live view)
demo_events=()   # "SECONDS<TAB>TEXT" for the summary
demo_outages=()  # "ADDR<TAB>STOPPED<TAB>STARTED" (seconds), for the summary
demo_lines=()    # one line per section, printed at the very end
qorbtop="$root/tools/qorbtop"

# demo_elapsed: seconds since demo_t0, with one decimal.
demo_elapsed() {
  awk -v a="$demo_t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# demo_start NAME SECONDS PROG ARG...: run a demo program for SECONDS with
# the view on its endpoint; its pid in demo_pid.
demo_start() {
  local name=$1 seconds=$2 log; shift 2
  log="$work/$name.log"
  demo_name=$name
  demo_events=()
  demo_outages=()
  "$@" --seconds "$seconds" --quiet --endpoint 127.0.0.1:0 \
    --stats-json "$work/$name.json" >"$log" 2>&1 &
  demo_pid=$!
  pids+=("$demo_pid")
  wait_for_line "$log" "stats endpoint: " "$demo_pid" \
    || die "$name: the demo program did not start"
  demo_ep=$(sed -n 's|^stats endpoint: http://||p' "$log" | head -n 1)
  demo_t0=$EPOCHREALTIME
  if [[ $demo_view == live ]]; then
    # Without job control a background job's stdin is /dev/null: give
    # qorbtop the terminal for its keys. It stops when the program does
    # (demo_wait), or after a bound if something goes wrong.
    "$qorbtop" --interval 1 --duration "$((seconds + 5))" "$demo_ep" \
      </dev/tty &
    demo_viewer=$!
    pids+=("$demo_viewer")
  fi
}

# demo_start_dns NAME PROG SERVICE SECONDS THREADS: demo_start for a
# program that finds its servers as SERVICE in the demo's DNS server.
demo_start_dns() {
  demo_start "$1" "$4" "$2" --service "$3" --dns-server "$DNS_SERVER" \
    --threads "$5"
}

# demo_frame: one `qorbtop --once` frame (rates over 1 s), indented.
demo_frame() {
  printf -- '--- %ss ---\n' "$(demo_elapsed)"
  "$qorbtop" --once --interval 1 "$demo_ep" 2>&1 | sed 's/^/  /' || true
}

# demo_watch SECONDS: let the program run that long, showing it: the live
# view needs nothing; otherwise a frame every ~2.5 s.
demo_watch() {
  local deadline
  deadline=$(awk -v a="$EPOCHREALTIME" -v s="$1" 'BEGIN { printf "%.3f", a + s }')
  if [[ $demo_view == live ]]; then
    sleep "$1"
    return 0
  fi
  while awk -v u="$deadline" -v n="$EPOCHREALTIME" 'BEGIN { exit !(u - n > 1.2) }'; do
    demo_frame
    # The frame took ~1 s of its own: rest so that frames are ~2.5 s apart,
    # never past the deadline.
    sleep "$(awk -v u="$deadline" -v n="$EPOCHREALTIME" \
      'BEGIN { d = u - n; if (d > 1.5) d = 1.5; if (d < 0) d = 0; printf "%.2f", d }')"
  done
  sleep "$(awk -v u="$deadline" -v n="$EPOCHREALTIME" \
    'BEGIN { d = u - n; if (d < 0) d = 0; printf "%.2f", d }')"
}

# demo_event TEXT: something the script did, with its time; printed now
# with the frames, after the live view otherwise.
demo_event() {
  local t
  t=$(demo_elapsed)
  demo_events+=("$t"$'\t'"$*")
  [[ $demo_view == live ]] || printf '\n*** %ss  %s ***\n\n' "$t" "$*"
}

# demo_stopped ADDR TEXT / demo_started ADDR TEXT: demo_event for a server
# taken down and brought back; the summary says how long the pool went
# without it and how soon after its restart it was online again.
demo_stopped() {
  demo_event "$2"
  demo_outages+=("$1"$'\t'"$(demo_elapsed)"$'\t'"-")
}
demo_started() {
  local i last
  demo_event "$2"
  for i in "${!demo_outages[@]}"; do
    [[ ${demo_outages[i]} == "$1"$'\t'*$'\t'- ]] && last=$i
  done
  [[ -n ${last-} ]] || return 0
  demo_outages[last]=${demo_outages[last]%-}$(demo_elapsed)
}

# demo_wait: wait for the program, stop the live view and forget both;
# leaves the program's exit status in demo_rc.
demo_rc=0
demo_wait() {
  local p keep=()
  demo_rc=0
  wait "$demo_pid" || demo_rc=$?
  if [[ -n $demo_viewer ]]; then
    kill -TERM "$demo_viewer" 2>/dev/null || true
    wait "$demo_viewer" 2>/dev/null || true
  fi
  for p in "${pids[@]}"; do
    [[ "$p" == "$demo_pid" || "$p" == "$demo_viewer" ]] || keep+=("$p")
  done
  pids=("${keep[@]+"${keep[@]}"}")
  demo_viewer=""
  if [[ $demo_rc -ne 0 ]]; then
    tail -n 20 "$work/$demo_name.log" >&2
  fi
}

# demo_summary: what the section showed, from the pool's last stats (the
# program's --stats-json) and the events; one line of it kept for the end.
demo_summary() {
  local json="$work/$demo_name.json" line
  say "$demo_name: summary"
  if [[ ! -s $json ]]; then
    printf '  (no stats: the program did not finish; its log:)\n'
    tail -n 20 "$work/$demo_name.log" | sed 's/^/  /'
    demo_lines+=("$demo_name: failed (exit $demo_rc)")
    return 0
  fi
  line=$(python3 - "$json" "$work/$demo_name.summary" \
    "${#demo_events[@]}" "${demo_events[@]+"${demo_events[@]}"}" \
    "${demo_outages[@]+"${demo_outages[@]}"}" <<'PY'
import json, sys

doc = json.load(open(sys.argv[1]))
out = open(sys.argv[2], "w")
n = int(sys.argv[3])
events = [a.split("\t", 1) for a in sys.argv[4:4 + n]]
outages = [a.split("\t") for a in sys.argv[4 + n:]]
pool = doc["pools"][0]
secs = max(pool["uptime_ms"], 1) / 1000.0


def p(s=""):
    out.write("  " + s + "\n")


def causes(d):
    s = ", ".join("%s %d" % (k, v) for k, v in d.items() if v)
    return " (" + s + ")" if s else ""


def ms(ns):
    return "%.2f ms" % (ns / 1e6)


p("%d claims served in %.1f s (%.0f/s); %d failed%s"
  % (pool["claims"], secs, pool["claims"] / secs, pool["claim_failures"],
     causes(pool["failed"])))
if pool["waited"]:
    p("%d claims waited for a connection: mean %s, longest %s"
      % (pool["waited"], ms(pool["wait_ns_total"] / pool["waited"]),
         ms(pool["wait_ns_max"])))
else:
    p("no claim waited for a connection")
p("connections opened %d, closed %d%s"
  % (pool["opened"], sum(pool["closed"].values()), causes(pool["closed"])))
r = pool.get("resolver") or {}
if r.get("kind") == "dns":
    p("DNS resolver: %d queries, %d failed, %d changes to the backends"
      % (r["queries"], r["failures"], r["changes"]))
if events:
    p("what happened:")
    for t, text in events:
        p("  %6ss  %s" % (t, text))
by_addr = {b["addr"]: b for b in pool["backends"]}
back = []
for addr, stopped, started in outages:
    b = by_addr.get(addr)
    if started == "-":
        p("%s: stopped at %ss, not started again" % (addr, stopped))
        continue
    out_s = float(started) - float(stopped)
    if b is None or b["online_ms"] < 0:
        p("%s: out %.1f s; not online again by the end" % (addr, out_s))
        back.append("%s not back" % addr)
        continue
    # The pool's clock: it came online uptime - online_ms after its start.
    online_at = (pool["uptime_ms"] - b["online_ms"]) / 1000.0
    after = online_at - float(started)
    p("%s: out %.1f s, online again %.1f s after its restart"
      % (addr, out_s, max(after, 0.0)))
    back.append("%s back %.1f s after its restart" % (addr, max(after, 0.0)))
p("backends at the end:")
p("  %-21s %-7s %8s %6s %6s  %s" % ("BACKEND", "STATE", "CLAIMS", "CONNS",
                                    "FAILS", "LAST ERROR"))
for b in pool["backends"]:
    err = b["last_error"] or "-"
    if b["last_error"] and not b["last_error_current"]:
        err = "(stale) " + err
    p("  %-21s %-7s %8d %6d %6d  %s"
      % (b["addr"], "online" if b["online"] else "offline", b["claims"],
         b["connects"], b["failures"], err[:40]))
line = "%d claims, %d failed, %d backends" % (
    pool["claims"], pool["claim_failures"], len(pool["backends"]))
if back:
    line += "; " + "; ".join(back)
print(line)
PY
) || line="summary failed"
  cat "$work/$demo_name.summary" 2>/dev/null || true
  demo_lines+=("$demo_name: $line")
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
  demo_start echo "$seconds" "$demo" \
    --backends "127.0.0.1:$port,127.0.0.2:$port,127.0.0.3:$port" \
    --threads "$threads"

  demo_watch 4
  demo_stopped "127.0.0.2:$port" "killing the echo server on 127.0.0.2:$port"
  stop_pid "${srv[2]}"

  demo_watch 4
  demo_started "127.0.0.2:$port" "restarting the echo server on 127.0.0.2:$port"
  start_bg echo2b "$server" 127.0.0.2 "$port"
  srv[2]=$last_pid
  wait_for_line "$work/echo2b.log" "listening" "${srv[2]}" \
    || die "echo server on 127.0.0.2:$port did not restart"

  demo_watch "$((seconds - 8))"
  demo_wait
  demo_summary
  for i in 1 2 3; do stop_pid "${srv[i]}"; done
  [[ $demo_rc -eq 0 ]] || die "echo demo failed (exit $demo_rc)"
}

# --------------------------------------------------------------- main
main() {
  local s
  local -a run=()
  for s in "$@"; do
    case $s in
      -h|--help)
        printf 'usage: %s [SECTION...]   (sections: %s; default: all)\n' \
          "$0" "${SECTIONS[*]}"
        printf 'QORB_DEMO_VIEW=live|frames chooses the view (default: live\n'
        printf 'on a terminal); see the comment at the top of %s.\n' "$0"
        return 0 ;;
      -*) die "unknown option '$s' (try --help)" ;;
      *) run+=("$s") ;;
    esac
  done
  [[ ${#run[@]} -gt 0 ]] || run=("${SECTIONS[@]}")
  for s in "${run[@]}"; do
    declare -F "demo_$s" >/dev/null || die "unknown section '$s' (have: ${SECTIONS[*]})"
  done
  demo_view=${QORB_DEMO_VIEW:-}
  if [[ -z $demo_view ]]; then
    demo_view=frames
    if [[ -t 0 && -t 1 && ${TERM:-dumb} != dumb ]] \
        && tput lines >/dev/null 2>&1 && { : </dev/tty; } 2>/dev/null; then
      demo_view=live
    fi
  fi
  [[ $demo_view == live || $demo_view == frames ]] \
    || die "QORB_DEMO_VIEW must be live or frames, not '$demo_view'"
  work=$(mktemp -d "${TMPDIR:-/tmp}/qorb-demo.XXXXXX")
  ensure_deps "${run[@]}"
  for s in "${run[@]}"; do "demo_$s"; done
  say "done"
  for s in "${demo_lines[@]+"${demo_lines[@]}"}"; do printf '  %s\n' "$s"; done
}

main "$@"
