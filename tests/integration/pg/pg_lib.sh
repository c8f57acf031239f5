# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# pg_lib.sh: what the scripts that run throwaway PostgreSQL servers share,
# sourced (not run) by tests/integration/pg/pg_servers.sh and
# bench/pg/bench_servers.sh:
#
#   PGBIN              the server binaries: $QORB_PG_BIN, else PostgreSQL 15,
#                      else the newest under /usr/lib/postgresql, else
#                      pg_config's
#   as_pg CMD...       run CMD as the user that runs the servers: PostgreSQL
#                      refuses to run as root, so as root that is the
#                      postgres user (runuser); as another user, that user
#   PGUSER_OS          that user's name
#   pg_start DATA LOG HOST PORT
#                      start the server in DATA, logging to LOG, on
#                      HOST:PORT only (no Unix socket, fsync off) and wait
#                      until it accepts connections
#   alive PID          is the process alive (a zombie is not: nobody may
#                      reap it here)?
#   wait_gone PID      wait, at most 10 s, until it is not

if [ -n "${QORB_PG_BIN:-}" ]; then
  PGBIN=$QORB_PG_BIN
elif [ -x /usr/lib/postgresql/15/bin/postgres ]; then
  PGBIN=/usr/lib/postgresql/15/bin
else
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$PGBIN" ] || PGBIN=$(pg_config --bindir)
fi

# shellcheck disable=SC2034 # PGUSER_OS is for the sourcing script
if [ "$(id -u)" = 0 ]; then
  as_pg() { runuser -u postgres -- "$@"; }
  PGUSER_OS=postgres
else
  as_pg() { "$@"; }
  PGUSER_OS=$(id -un)
fi

# -w waits until it accepts connections (for a standby: hot standby).
pg_start() {
  as_pg "$PGBIN/pg_ctl" -D "$1" -l "$2" -w -t 60 -s \
    -o "-p $4 -c listen_addresses=$3 -c unix_socket_directories= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start
}

alive() {
  [ -r "/proc/$1/stat" ] || return 1
  st=$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)
  [ "$st" != Z ] && [ "$st" != X ]
}

wait_gone() {
  wg_i=0
  while alive "$1" && [ $wg_i -lt 200 ]; do
    sleep 0.05
    wg_i=$((wg_i + 1))
  done
}
