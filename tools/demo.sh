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
#
# Usage: tools/demo.sh [SECTION...]     (default: every section)
#
# Environment:
#   QORB_DEMO_BUILD   build folder (default: <repo>/build/demo)
#   QORB_DEMO_SKIP_DEPS=1   do not run tools/deps.sh even if things are
#                     missing
#
# Every server the script starts is stopped on exit, also on Ctrl-C.
#
# Adding a section: write demo_NAME (start its servers with start_bg, which
# registers them for cleanup), add NAME to SECTIONS, and list what it needs
# in need_NAME so missing packages are installed first.
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
    -DQORB_BUILD_EXAMPLES=ON >"$work/cmake.log" 2>&1 \
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

# --------------------------------------------------------- echo demo
demo_echo() {
  local port=47001 seconds=12 threads=4 i server demo demo_pid
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
  "$demo" --backends "127.0.0.1:$port,127.0.0.2:$port,127.0.0.3:$port" \
    --seconds "$seconds" --threads "$threads" &
  demo_pid=$!
  pids+=("$demo_pid")

  sleep 4
  printf '\n*** killing the echo server on 127.0.0.2:%s ***\n\n' "$port"
  stop_pid "${srv[2]}"

  sleep 4
  printf '\n*** restarting the echo server on 127.0.0.2:%s ***\n\n' "$port"
  start_bg echo2b "$server" 127.0.0.2 "$port"
  srv[2]=$last_pid
  wait_for_line "$work/echo2b.log" "listening" "${srv[2]}" \
    || die "echo server on 127.0.0.2:$port did not restart"

  local rc=0
  wait "$demo_pid" || rc=$?
  local keep=() p
  for p in "${pids[@]}"; do [[ "$p" == "$demo_pid" ]] || keep+=("$p"); done
  pids=("${keep[@]+"${keep[@]}"}")
  for i in 1 2 3; do stop_pid "${srv[i]}"; done
  [[ $rc -eq 0 ]] || die "echo demo failed (exit $rc)"
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
