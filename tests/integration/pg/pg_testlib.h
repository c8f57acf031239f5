/* SPDX-License-Identifier: MIT */
/*
 * pg_testlib.h: helpers shared by the qorb-pg integration tests: the
 * server script (pg_servers.sh, whose path CMake passes in), pools over the
 * fixture's servers, waiting on conditions with a bound, stats lookups and
 * an admin connection of the test's own (plain blocking libpq, never
 * through a pool) for pg_terminate_backend and friends.
 *
 * Servers (see pg_servers.sh): a 127.0.0.2:55431 and b 127.0.0.3:55432 are
 * started by the CTest fixture; p 127.0.0.2:55433 and its standby s
 * 127.0.0.3:55434 by the role test itself.
 */
#ifndef QORB_PG_TESTLIB_H
#define QORB_PG_TESTLIB_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include <qorb/pg.h>
#include <qorb/qorb.h>

#define PGT_A "127.0.0.2:55431"
#define PGT_B "127.0.0.3:55432"
#define PGT_P "127.0.0.2:55433"
#define PGT_S "127.0.0.3:55434"
#define PGT_AB PGT_A "," PGT_B
/* Nothing listens there. */
#define PGT_REFUSED "127.0.0.2:55439"

/* Run `pg_servers.sh ROOT <args>`; returns its exit status (0 = success). */
int pgt_servers(const char *args);

/* The servers' TLS certificate (self-signed, for qorb-test.invalid). */
const char *pgt_server_cert(void);

/* Milliseconds on the monotonic clock. */
uint64_t pgt_now_ms(void);

/* Sleep a little: the step of every bounded wait loop. */
void pgt_nap_ms(unsigned ms);

/*
 * Wait until `cond` is true, polling every 10 ms, at most `ms`
 * milliseconds. Assert the condition afterwards.
 */
#define PGT_WAIT(cond, ms)                                             \
  do {                                                                 \
    uint64_t pgt_end_ = pgt_now_ms() + (uint64_t)(ms);                 \
    while (!(cond) && pgt_now_ms() < pgt_end_) pgt_nap_ms(10);         \
  } while (0)

/*
 * A pool on its own thread over `backends` with qorb-pg options `o` (NULL:
 * the test defaults: user postgres, dbname postgres). `tweak`, if not
 * NULL, adjusts the policy, which starts from the library defaults with
 * quick backoff (min 20 ms, max 200 ms). Fails the test on error.
 */
qorb_pool_t *pgt_pool(const char *backends, const qorb_pg_options_t *o,
                      void (*tweak)(qorb_policy_t *));

/* The default test options: conninfo "user=postgres dbname=postgres". */
void pgt_options(qorb_pg_options_t *o);

/* Close a pool (blocking, own thread) and assert it worked. */
void pgt_close(qorb_pool_t *pool);

/*
 * Stats of one backend by its "host:port" text. Returns 0 and fills `out`,
 * or -1 if the pool does not know it. `pool_out` may be NULL.
 */
int pgt_backend(qorb_pool_t *pool, const char *addr,
                qorb_backend_stats_t *out, qorb_pool_stats_t *pool_out);

/* Shorthands over pgt_backend(): 0 when unknown. */
int pgt_online(qorb_pool_t *pool, const char *addr);
unsigned pgt_idle(qorb_pool_t *pool, const char *addr);
uint64_t pgt_claims(qorb_pool_t *pool, const char *addr);
uint64_t pgt_connects(qorb_pool_t *pool, const char *addr);
uint64_t pgt_failures(qorb_pool_t *pool, const char *addr);
unsigned pgt_total_idle(qorb_pool_t *pool);

/* The backend's last_error, copied into `buf`. */
const char *pgt_last_error(qorb_pool_t *pool, const char *addr, char *buf,
                           size_t len);

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
