#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test_qorbtop.sh QORBTOP TARGET: tools/qorbtop against a live endpoint.
# TARGET (qorbtop_target) serves a fake-connector pool "qorbtop-test" with
# backends 127.0.0.1:1 and 127.0.0.2:1 (up) and 127.0.0.3:1 (down, with a
# last error). Checks:
#   --once    shows the pool, the three backend rows, their states and the
#             counts, with real rates (two samples)
#   --once --interval 0  one sample, rates "-"
#   --json    valid JSON naming the pool
#   errors    a bad ENDPOINT, a refused port, a server answering garbage,
#             a missing socket: exit 2 with a message on stderr
#   unix:     the same over a Unix socket
#   live      the full-screen view in a detached 80x24 tmux session: the
#             backend rows appear, p pauses, q quits (exit status 0)
# Every wait is bounded.
set -euo pipefail
qorbtop=$1
target=$2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qorbtop-test.XXXXXX")
tsock="qorbtop-test-$$"
pids=()
cleanup() {
  tmux -L "$tsock" kill-server 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# start_target NAME [ARGS]: start TARGET (SIGTERM ends it); sets $port
# from its "port N" line and NAME_pid.
start_target() {
  local name=$1
  shift
  "$target" "$@" </dev/null >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 100); do
    if grep -q '^port ' "$tmp/$name.out"; then
      port=$(sed -n 's/^port //p' "$tmp/$name.out")
      return 0
    fi
    sleep 0.1
  done
  cat "$tmp/$name.err" >&2
  fail "$name did not become ready in 10 s"
}

# expect_exit2 WHAT ARGS...: qorbtop fails with status 2 and a message.
expect_exit2() {
  local what=$1 rc=0
  shift
  timeout 30 python3 "$qorbtop" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" -eq 2 ] || fail "$what: exit $rc, wanted 2 ($(cat "$tmp/err"))"
  [ -s "$tmp/err" ] || fail "$what: no message on stderr"
  echo "ok: $what -> exit 2: $(tail -n 1 "$tmp/err")"
}

start_target tcp
ep="127.0.0.1:$port"
echo "target on $ep"

# ---- --once, two samples
timeout 30 python3 "$qorbtop" --once --interval 0.5 "$ep" >"$tmp/once" ||
  fail "--once exited $?"
cat "$tmp/once"
grep -q '^pool qorbtop-test  backends 2/3 online' "$tmp/once" ||
  fail "--once: no pool header with 2/3 backends online"
for a in 127.0.0.1:1 127.0.0.2:1; do
  grep -Eq "^$a +up " "$tmp/once" || fail "--once: no 'up' row for $a"
done
# down, idle 0, ..., no connection made, failures, and an error with its age
grep -Eq '^127\.0\.0\.3:1 +down +0 +[0-9]+ +[0-9]+ +[0-9]+ +[0-9.k]+ +0 +[1-9][0-9]* +[0-9.]+[smhd]' "$tmp/once" ||
  fail "--once: 127.0.0.3:1 not down with failures and an error age"
# The fake connector's text, on the row or the line under it.
grep -q 'connect failed on 127\.0\.0\.3:1' "$tmp/once" || fail "--once: no last error text"
grep -q 'rates over 0\.[0-9]s' "$tmp/once" || fail "--once: rates not over two samples"
# The target claims all the time: a real, non-zero claim rate.
grep -Eq '^  claims [1-9][0-9.k]*/s' "$tmp/once" || fail "--once: claim rate is zero"
awk 'length > 80 { exit 1 }' "$tmp/once" || fail "--once: a line over 80 columns"

# ---- --once, one sample
timeout 30 python3 "$qorbtop" --once --interval 0 "$ep" >"$tmp/once1" ||
  fail "--once --interval 0 exited $?"
grep -q '^  claims -/s  failed -/s' "$tmp/once1" || fail "single sample: rates not '-'"
grep -q '(one sample)' "$tmp/once1" || fail "single sample: not said"
# One sample shows the waits since the start: the target's first claim
# waited for a connection, and is still held.
grep -Eq '^  claims -/s  failed -/s  waits: mean [0-9.]+[mun]?s p50<=[0-9.]+[mun]?s p99<=[0-9.]+[mun]?s  max [0-9.]+[mun]?s$' "$tmp/once1" ||
  fail "single sample: no wait figures"
grep -Eq '^  oldest claim [0-9.]+[smhd] at .*qorbtop_target\.c:[0-9]+ on 127\.0\.0\.[12]:1$' "$tmp/once1" ||
  fail "single sample: no oldest claim with its site"
grep -Eq '^  connections: idle [0-9]+ claimed [1-9][0-9]* connecting [0-9]+ checking [0-9]+  waiters 0$' "$tmp/once1" ||
  fail "single sample: connection counts"
cat "$tmp/once1"

# ---- --json
timeout 30 python3 "$qorbtop" --json "$ep" >"$tmp/json" || fail "--json exited $?"
python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
names = [p.get("name") for p in doc["pools"]]
assert "qorbtop-test" in names, names
' "$tmp/json" || fail "--json: not JSON naming the pool"
echo "ok: --json"

# ---- errors
expect_exit2 "malformed ENDPOINT" --once "no-port-here"
expect_exit2 "IPv6 without brackets" --once "::1:80"
# A port nobody listens on: bind one, close it, use it.
closed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
expect_exit2 "refused port" --once "127.0.0.1:$closed"
expect_exit2 "missing socket" --once "unix:$tmp/nothing.sock"
# Servers that answer garbage, and HTTP 200 with JSON that is not qorb's
# (each accepts for at most 30 s).
serve_canned() {
  python3 - "$1" "$2" <<'EOF' &
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
s.settimeout(30)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
reply = sys.argv[2].encode().decode("unicode_escape").encode("latin-1")
end = time.time() + 30
while time.time() < end:
    try:
        c, _ = s.accept()
    except OSError:
        break
    c.recv(4096)
    c.sendall(reply)
    c.close()
EOF
  pids+=($!)
  for _ in $(seq 50); do [ -s "$1" ] && return 0; sleep 0.1; done
  fail "canned server did not start"
}
serve_canned "$tmp/garbage.port" '\x00\x01garbage, not HTTP\r\n\r\n'
garbage=127.0.0.1:$(cat "$tmp/garbage.port")
expect_exit2 "garbage answer" --once "$garbage"
expect_exit2 "garbage answer (json)" --json "http://$garbage"
serve_canned "$tmp/other.port" 'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"x": 1}'
expect_exit2 "JSON that is not qorb stats" --once "127.0.0.1:$(cat "$tmp/other.port")"
serve_canned "$tmp/notjson.port" 'HTTP/1.0 200 OK\r\n\r\n<html>hello</html>'
expect_exit2 "an answer that is not JSON" --json "127.0.0.1:$(cat "$tmp/notjson.port")"
expect_exit2 "bad interval" --interval 0 "$ep"
expect_exit2 "--duration with --once" --once --duration 1 "$ep"
expect_exit2 "zero --duration" --duration 0 "$ep"

# ---- a Unix socket
start_target unix --unix "$tmp/stats.sock"
timeout 30 python3 "$qorbtop" --once --interval 0.3 "unix:$tmp/stats.sock" >"$tmp/once-unix" ||
  fail "--once over unix: exit $?"
grep -q '^pool qorbtop-test' "$tmp/once-unix" || fail "unix: no pool header"
grep -Eq '^127\.0\.0\.2:1 +up ' "$tmp/once-unix" || fail "unix: no backend row"
echo "ok: unix socket"

# ---- the live view in tmux
command -v tmux >/dev/null || fail "tmux is not installed (tools/deps.sh installs it)"
tmux -L "$tsock" -f /dev/null new-session -d -x 80 -y 24 -s top \
  "python3 '$qorbtop' --interval 0.3 '$ep'; echo \$? >'$tmp/live.rc'"
screen=""
for _ in $(seq 100); do
  screen=$(tmux -L "$tsock" capture-pane -p -t top 2>/dev/null || true)
  if grep -q '127\.0\.0\.3:1' <<<"$screen" && grep -q 'rates over' <<<"$screen"; then
    break
  fi
  sleep 0.1
done
echo "$screen"
grep -q '^pool qorbtop-test  backends 2/3 online' <<<"$screen" || fail "live: no pool header"
for a in 127.0.0.1:1 127.0.0.2:1; do
  grep -Eq "^$a +up " <<<"$screen" || fail "live: no row for $a"
done
grep -Eq '^127\.0\.0\.3:1 +down ' <<<"$screen" || fail "live: no down row"
grep -q 'q quit' <<<"$screen" || fail "live: no key help"

tmux -L "$tsock" send-keys -t top p
for _ in $(seq 50); do
  screen=$(tmux -L "$tsock" capture-pane -p -t top 2>/dev/null || true)
  grep -q 'PAUSED' <<<"$screen" && break
  sleep 0.1
done
grep -q 'PAUSED' <<<"$screen" || fail "live: p did not pause"
echo "ok: live view paused"

# view_ends WHAT SECONDS: the view's tmux session ends within SECONDS and
# qorbtop exited 0.
view_ends() {
  for _ in $(seq $(($2 * 10))); do
    tmux -L "$tsock" has-session -t top 2>/dev/null || break
    sleep 0.1
  done
  if tmux -L "$tsock" has-session -t top 2>/dev/null; then
    fail "live: $1 did not end the view within $2 s"
  fi
  [ "$(cat "$tmp/live.rc" 2>/dev/null)" = 0 ] ||
    fail "live: $1: exit status $(cat "$tmp/live.rc" 2>/dev/null)"
  echo "ok: live view ended on $1"
}

tmux -L "$tsock" send-keys -t top q
view_ends q 5

# --duration ends the full-screen view by itself, with status 0.
rm -f "$tmp/live.rc"
tmux -L "$tsock" -f /dev/null new-session -d -x 80 -y 24 -s top \
  "python3 '$qorbtop' --interval 0.3 --duration 1 '$ep'; echo \$? >'$tmp/live.rc'"
view_ends "--duration 1" 15

# The targets end, with status 0, on SIGTERM.
for p in "$tcp_pid" "$unix_pid"; do
  kill -TERM "$p"
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && fail "target $p did not exit within 10 s"
  rc=0
  wait "$p" || rc=$?
  [ "$rc" -eq 0 ] || fail "target $p exited $rc"
done
echo "PASS"
