#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test_dns_probes.sh LIB TARGET: prove libqorb-dns's USDT probes are in the
# shared library LIB (readelf) and fire with the right arguments (gdb
# breaks on them in TARGET, dns_probe_target, linked with the static
# libraries). The names and counts are the ones dns_probe_target.c scripts:
# its responder answers svc.probe.test with 2 addresses, then 3; the server
# of dead.probe.test never answers.
set -euo pipefail
. "$(dirname "$0")/probes_lib.sh"
lib=$1
target=$2
live="svc\\.probe\\.test:5432"
dead="dead\\.probe\\.test:5432"

probes_present "$lib" resolve__start resolve__done resolve__failed \
  backends__changed

# Arguments (core/probes.d): resolve-start (name, servers), resolve-done
# (name, found), resolve-failed (name, ARES status, its text),
# backends-changed (name, before, after).
out=$(probes_run "$target" "dns probe target done" resolve__start:su \
  resolve__done:su resolve__failed:sds backends__changed:suu)

probes_fired "$out" "^HIT resolve__start $live 1\$" "resolve-start (live)"
probes_fired "$out" "^HIT resolve__start $dead 1\$" "resolve-start (dead)"
probes_fired "$out" "^HIT resolve__done $live 2\$" "resolve-done, 2 found"
probes_fired "$out" "^HIT resolve__done $live 3\$" "resolve-done, 3 found"
probes_fired "$out" "^HIT backends__changed $live 0 2\$" "backends-changed 0 -> 2"
probes_fired "$out" "^HIT backends__changed $live 2 3\$" "backends-changed 2 -> 3"
# ARES_ETIMEOUT (12) and its ares_strerror() text.
probes_fired "$out" "^HIT resolve__failed $dead 12 Timeout while contacting DNS servers\$" \
  "resolve-failed (timeout)"
