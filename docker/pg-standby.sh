#!/bin/sh
# SPDX-License-Identifier: MIT
#
# pg-standby.sh: the pg-standby container's entrypoint (docker-compose.yml;
# runs as the postgres user). Copies the primary afresh with pg_basebackup
# -R (a streaming standby: configuration, pg_hba, TLS certificate, roles
# and all) and starts it as a hot standby with the arguments given, e.g.
# `-p 5433 -c fsync=off`. A fresh copy every start: a standby kept from an
# earlier primary would not follow a new one.
#
#   QORB_PG_PRIMARY_HOST, QORB_PG_PRIMARY_PORT   where the primary listens
#   PGDATA                                       the standby's data folder
set -eu

host=${QORB_PG_PRIMARY_HOST:?}
port=${QORB_PG_PRIMARY_PORT:-5432}
data=${PGDATA:?}

# Compose starts this once the primary is healthy; wait a little anyway,
# bounded, in case it was started on its own.
i=0
until pg_isready -q -h "$host" -p "$port" -U postgres; do
  i=$((i + 1))
  if [ "$i" -gt 120 ]; then
    echo "pg-standby.sh: no primary at $host:$port after 60 s" >&2
    exit 1
  fi
  sleep 0.5
done

rm -rf "$data"
pg_basebackup -h "$host" -p "$port" -U postgres -D "$data" -R -X stream \
  -c fast --no-sync
exec postgres -D "$data" "$@"
