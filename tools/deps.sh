#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# deps.sh: install the Debian packages qorb needs to build and to run every
# test (compilers and libraries, plus the servers the integration tests start
# on their own ports: PostgreSQL 15, Redis, PgBouncer, twemproxy, unbound;
# and docker-compose, with which a test validates docker/docker-compose.yml
# offline: no Docker engine is installed or needed; doxygen and groff for
# the docs tests, which check the API reference and the man pages).
# Only missing packages are installed: one `apt-get update`, then one
# `apt-get install`. As non-root it prints the command to run and fails.
# Installing redis-server or postgresql may start their system services; the
# tests do not use them (they start their own servers on unusual ports).
#
# Quiet on success: one line.
set -euo pipefail

packages=(
  cmake make gcc libc6-dev pkg-config python3
  libev-dev libc-ares-dev libpq-dev libhiredis-dev libcmocka-dev libmicrohttpd-dev
  systemtap-sdt-dev
  postgresql-15 redis-server pgbouncer nutcracker unbound
  procps iproute2 gdb binutils tmux prometheus
  doxygen groff-base
  docker-compose
)

missing=()
for p in "${packages[@]}"; do
  # dpkg -s succeeds for removed-but-configured packages too: check the status.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages; run:" >&2
  echo "  sudo apt-get update && sudo ${cmd[*]}" >&2
  exit 1
fi

log=$(mktemp "${TMPDIR:-/tmp}/qorb-deps.XXXXXX")
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update && "${cmd[@]}"; } >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "deps: failed to install: ${missing[*]}" >&2
  exit 1
fi
echo "deps: installed ${missing[*]}"
