/* SPDX-License-Identifier: MIT */
/*
 * pg_testlib.h: helpers shared by the qorb-pg integration tests: the
 * server script (pg_servers.sh, whose path CMake passes in), pools over the
 * fixture's servers, and an admin connection of the test's own (plain
 * blocking libpq, never through a pool) for pg_terminate_backend and
 * friends. Waiting on conditions with a bound (ITEST_WAIT), closing pools
 * and stats lookups (itest_online() ...) come from tests/support/itest.h,
 * which the redis suite uses too.
 *
 * Servers (see pg_servers.sh): a 127.0.0.2:55431 and b 127.0.0.3:55432 are
 * started by the CTest fixture; p 127.0.0.2:55433 and its standby s
 * 127.0.0.3:55434 by the role test itself.
 *
 * External servers (docs/docker.md; docker/ sets them): with
 *   QORB_TEST_PG_PRIMARY=host:port   a primary: servers a and p
 *   QORB_TEST_PG_STANDBY=host:port   a streaming standby of it: b and s
 *   QORB_TEST_PG_CERT=path           optional: their TLS certificate
 * pg_servers.sh starts nothing and the tests use those servers instead.
 * The addresses are numeric and the servers' own (no NAT, no published
 * port): tests ask a server for its address and port. The servers must be
 * set up as `pg_servers.sh ROOT configure` sets up a data folder (roles,
 * pg_hba, TLS). Tests that stop, restart, freeze or promote a server skip
 * (pgt_skip_if_external()), as does the TLS test without
 * QORB_TEST_PG_CERT; the tests that use b only read, so a standby serves.
 */
#ifndef QORB_PG_TESTLIB_H
#define QORB_PG_TESTLIB_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include <qorb/pg.h>
#include <qorb/qorb.h>

/* Waits, closing pools, stats lookups: shared with the other suites. */
#include "itest.h"

/* Nothing listens there (in a test container neither). */
#define PGT_REFUSED "127.0.0.2:55439"

/* The servers' addresses and the backend lists the tests use. */
typedef struct pgt_addrs {
  int external;           /* QORB_TEST_PG_PRIMARY/STANDBY are set */
  qorb_addr_t a, b, p, s; /* .text "host:port", .host, .port */
  char ab[128];           /* "a,b" */
  char ps[128];           /* "p,s" */
  char refused_a[128];    /* PGT_REFUSED ",a" */
  char refused_b[128];    /* PGT_REFUSED ",b" */
} pgt_addrs_t;

/* Read from the environment once; any thread. An unusable variable ends
   the program with a message. */
const pgt_addrs_t *pgt_addrs(void);

#define PGT_A (pgt_addrs()->a.text)
#define PGT_B (pgt_addrs()->b.text)
#define PGT_P (pgt_addrs()->p.text)
#define PGT_S (pgt_addrs()->s.text)
#define PGT_AB (pgt_addrs()->ab)
#define PGT_PS (pgt_addrs()->ps)
#define PGT_REFUSED_A (pgt_addrs()->refused_a)
#define PGT_REFUSED_B (pgt_addrs()->refused_b)

/* 1 when the tests run against external servers (see above). */
int pgt_external(void);

/*
 * With external servers, say why on stderr and skip the calling test
 * (cmocka skip()); otherwise return. `why` completes "this test ...",
 * e.g. "freezes server b". Call it before making anything the test would
 * have to free.
 */
void pgt_skip_if_external(const char *why);

/* Run `pg_servers.sh ROOT <args>`; returns its exit status (0 = success). */
int pgt_servers(const char *args);

/*
 * The servers' TLS certificate (self-signed, for qorb-test.invalid). With
 * external servers it is QORB_TEST_PG_CERT; when that is unset, this
 * skips the calling test (as pgt_skip_if_external() does).
 */
const char *pgt_server_cert(void);

/*
 * A pool on its own thread over `backends` with qorb-pg options `o` (NULL:
 * the test defaults: user postgres, dbname postgres). `tweak`, if not
 * NULL, adjusts the policy, which starts from itest_policy() (quick
 * backoff; PGT_VERBOSE=1 shows the pool's log). Fails the test on error.
 */
qorb_pool_t *pgt_pool(const char *backends, const qorb_pg_options_t *o,
                      void (*tweak)(qorb_policy_t *));

/*
 * The default test options: conninfo "user=postgres dbname=postgres
 * application_name=<pgt_app_name()>".
 */
void pgt_options(qorb_pg_options_t *o);

/* "qorb_<program name>": this test program's sessions, and no other's. */
const char *pgt_app_name(void);

/* How many sessions of this program `addr` has (pg_stat_activity). */
long pgt_count_sessions(const char *addr);

/* pg_terminate_backend() every session of this program on `addr`; returns
   how many were terminated, or -1. */
long pgt_kill_sessions(const char *addr);

/*
 * Run `sql` on `conn` (blocking) and copy the first value of the first row
 * into `buf` ("" for no rows or NULL). Returns 0, or -1 on any error (the
 * error text then goes into `buf`).
 */
int pgt_value(PGconn *conn, const char *sql, char *buf, size_t len);

/* Run `sql` (blocking); 0 if it succeeded (command or tuples), -1 if not. */
int pgt_exec(PGconn *conn, const char *sql);

/*
 * An admin connection of the test's own to "host:port" (blocking
 * PQconnectdb as postgres). Fails the test if it cannot connect.
 */
PGconn *pgt_admin(const char *addr);

/* Run `sql` on a fresh admin connection to `addr`, return the first value
   as an integer (or -1 on error). */
long pgt_admin_long(const char *addr, const char *sql);

#endif /* QORB_PG_TESTLIB_H */
