#!/bin/sh
# SPDX-License-Identifier: MIT
#
# run-tests.sh: the command of the `tests` service (docker/Dockerfile).
# Waits, bounded, until the compose set is ready: the primary accepts
# sessions, the standby is in recovery and streaming, the replica's link to
# the master is up, the DNS server answers for the SRV names. Then fetches
# the PostgreSQL servers' TLS certificate (QORB_TEST_PG_CERT, for the TLS
# test) and runs ctest in /build against the containers, with the
# arguments given (default: -L 'pg|redis'). Exits with ctest's status.
#
# Reads QORB_TEST_PG_PRIMARY, QORB_TEST_PG_STANDBY, QORB_TEST_REDIS_MASTER,
# QORB_TEST_REDIS_REPLICA (host:port each) and QORB_DOCKER_DNS (an address),
# all set by docker-compose.yml; QORB_DOCKER_BUILD, the build folder, is
# /build unless set.
set -eu

pg_primary=${QORB_TEST_PG_PRIMARY:?set by docker-compose.yml}
pg_standby=${QORB_TEST_PG_STANDBY:?set by docker-compose.yml}
redis_master=${QORB_TEST_REDIS_MASTER:?set by docker-compose.yml}
redis_replica=${QORB_TEST_REDIS_REPLICA:?set by docker-compose.yml}
dns=${QORB_DOCKER_DNS:?set by docker-compose.yml}

say() { echo "run-tests.sh: $*" >&2; }

# ADDR is host:port (numeric IPv4 here).
host_of() { echo "${1%:*}"; }
port_of() { echo "${1##*:}"; }

# pg ADDR SQL: the first value of SQL's answer.
pg() {
  psql -h "$(host_of "$1")" -p "$(port_of "$1")" -U postgres -d postgres \
    -Atq --no-psqlrc -c "$2"
}

# redis ADDR ARGS...
redis() {
  r_addr=$1
  shift
  redis-cli -h "$(host_of "$r_addr")" -p "$(port_of "$r_addr")" "$@"
}

# The readiness checks, each true once that part is ready.
pg_is() { [ "$(pg "$1" 'SELECT pg_is_in_recovery()' 2>/dev/null)" = "$2" ]; }
pg_streaming() {
  [ "$(pg "$1" 'SELECT status FROM pg_stat_wal_receiver' 2>/dev/null)" = streaming ]
}
redis_pong() { [ "$(redis "$1" ping 2>/dev/null)" = PONG ]; }
redis_linked() {
  redis "$1" info replication 2>/dev/null | grep -q '^master_link_status:up'
}
# dig +short prints its failures on stdout too: look for an SRV answer.
srv_answers() {
  dig +short +time=1 +tries=1 @"$dns" "$1" SRV 2>/dev/null |
    grep -qE '^[0-9]+ [0-9]+ [0-9]+ [^ ]+$'
}

# wait_for WHAT CHECK ARGS...: until CHECK succeeds, at most 120 s.
wait_for() {
  what=$1
  shift
  i=0
  until "$@"; do
    i=$((i + 1))
    if [ "$i" -gt 240 ]; then
      say "$what: not ready after 120 s"
      exit 1
    fi
    sleep 0.5
  done
  say "$what: ready"
}

wait_for "PostgreSQL primary $pg_primary" pg_is "$pg_primary" f
wait_for "PostgreSQL standby $pg_standby" pg_is "$pg_standby" t
wait_for "standby streaming from the primary" pg_streaming "$pg_standby"
wait_for "Redis master $redis_master" redis_pong "$redis_master"
wait_for "Redis replica $redis_replica" redis_linked "$redis_replica"
for name in _pg._tcp.qorb.test _redis._tcp.qorb.test; do
  wait_for "DNS $dns: $name SRV" srv_answers "$name"
  dig +short @"$dns" "$name" SRV | sed "s/^/run-tests.sh:   $name SRV /" >&2
done

# The certificate the servers present (pg_servers.sh configure made it, the
# standby copied it); without one the TLS test skips.
cert=/tmp/qorb-pg-server.crt
if [ "$(pg "$pg_primary" 'SHOW ssl')" = on ] &&
  pg "$pg_primary" "SELECT pg_read_file(current_setting('ssl_cert_file'))" \
    > "$cert" && [ -s "$cert" ]; then
  export QORB_TEST_PG_CERT="$cert"
  say "PostgreSQL TLS certificate: $cert"
else
  say "PostgreSQL TLS is off: the TLS test will skip"
fi

[ "$#" -gt 0 ] || set -- -L 'pg|redis'
cd "${QORB_DOCKER_BUILD:-/build}"
say "ctest --output-on-failure $*"
exec ctest --output-on-failure --no-tests=error "$@"
