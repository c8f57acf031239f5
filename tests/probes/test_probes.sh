#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test_probes.sh LIB TARGET: prove qorb's USDT probes are in the shared
# library (readelf) and fire (gdb breaks on them in TARGET, a program linked
# with the static library, and counts the hits).
set -euo pipefail
lib=$1
target=$2

want="claim__start claim__done claim__failed handle__claimed handle__recycled
connect__start connect__done connect__failed health__check__start
health__check__done health__check__failed recycle__start recycle__done
recycle__failed slot__state__change slot__set__online slot__set__offline
rebalance__start rebalance__done"

notes=$(readelf -n "$lib")
for p in $want; do
  if ! grep -q "Name: $p\$" <<<"$notes"; then
    echo "FAIL: probe $p missing from $lib" >&2
    exit 1
  fi
done
echo "all $(wc -w <<<"$want") probes present in $(basename "$lib")"

if ! command -v gdb >/dev/null; then
  echo "gdb not installed: firing not checked" >&2
  exit 1
fi
# The probes this program must hit (ELF notes spell the dashes as "__").
fire="claim__start claim__done claim__failed handle__claimed handle__recycled
connect__start connect__done slot__set__online slot__state__change
rebalance__start rebalance__done"
script=$(mktemp)
trap 'rm -f "$script"' EXIT
{
  echo "set breakpoint pending on"
  echo "set pagination off"
  for p in $fire; do
    echo "break -probe-stap qorb:$p"
    echo "commands"
    echo "silent"
    echo "printf \"HIT $p %s\\n\", (char *)\$_probe_arg0"
    echo "continue"
    echo "end"
  done
  echo "run"
} >"$script"
out=$(timeout 120 gdb -q -batch -x "$script" --args "$target" 2>&1)
grep -q "probe target done" <<<"$out" || { echo "$out" >&2; echo "FAIL: target did not finish" >&2; exit 1; }
for p in $fire; do
  n=$(grep -c "^HIT $p probe-target\$" <<<"$out" || true)
  if [ "$n" -lt 1 ]; then
    echo "$out" | tail -30 >&2
    echo "FAIL: probe $p did not fire" >&2
    exit 1
  fi
  echo "probe $p fired $n times"
done
