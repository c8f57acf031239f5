#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test_probes.sh LIB TARGET: prove qorb's USDT probes are in the shared
# library (readelf) and fire (gdb breaks on them in TARGET, a program linked
# with the static library, and counts the hits).
set -euo pipefail
. "$(dirname "$0")/probes_lib.sh"
lib=$1
target=$2

probes_present "$lib" claim__start claim__done claim__failed \
  handle__claimed handle__recycled connect__start connect__done \
  connect__failed health__check__start health__check__done \
  health__check__failed recycle__start recycle__done recycle__failed \
  slot__state__change slot__set__online slot__set__offline \
  rebalance__start rebalance__done claim__held__too__long

# The probes this program must hit, each printing its pool name.
fire="claim__start claim__done claim__failed handle__claimed handle__recycled
connect__start connect__done slot__set__online slot__state__change
rebalance__start rebalance__done"
specs=()
for p in $fire; do specs+=("$p:s"); done
out=$(probes_run "$target" "probe target done" "${specs[@]}")
for p in $fire; do
  probes_fired "$out" "^HIT $p probe-target\$" "probe $p"
done

# Arguments beyond the pool name: a reason comes with its name, and a
# claim held past leak_threshold_ms (50 ms, held 300) names its site.
out=$(probes_run "$target" "probe target done" claim__failed:suds \
  claim__held__too__long:sussdu)
probes_fired "$out" "^HIT claim__failed probe-target [0-9]+ -4002 QORB_EAGAIN\$" \
  "claim-failed with its reason's name"
probes_fired "$out" \
  "^HIT claim__held__too__long probe-target 0 127\\.0\\.0\\.1:1 [^ ]*probe_target\\.c [0-9]+ ([5-9][0-9]|[0-9]{3,})\$" \
  "claim-held-too-long with slot, backend, claim site and time held"
