#!/bin/sh
# SPDX-License-Identifier: MIT
#
# pg-init.sh: the pg-primary container's first-start hook (mounted into
# /docker-entrypoint-initdb.d by docker-compose.yml). The postgres image
# runs it as the postgres user once initdb is done, while a temporary
# server listens on the Unix socket only. It gives the new server what the
# qorb-pg tests expect, using the suite's own script (mounted on /qorb/pg)
# so that the containers and the tests' throwaway servers never drift apart:
# TLS with a certificate for qorb-test.invalid, the settings and pg_hba
# rules (for clients from anywhere), the roles and the table. The image
# restarts the server afterwards, which turns TLS on. The standby copies
# all of it with pg_basebackup (pg-standby.sh).
#
# The image sources a hook that is not executable and runs one that is;
# this one works either way (no exit, no set -u).

sh /qorb/pg/pg_servers.sh /tmp configure "$PGDATA" &&
  sh /qorb/pg/pg_servers.sh /tmp sql |
  psql -v ON_ERROR_STOP=1 -q --no-psqlrc -U postgres -d postgres
