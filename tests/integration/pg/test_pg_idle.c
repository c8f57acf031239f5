/* SPDX-License-Identifier: MIT */
/*
 * test_pg_idle.c: idle connections that the server kills are found without
 * a health check. qorb-pg's peek (the private qorb__pg_peek_conn) on a
 * PGconn of the test's own: nothing waiting is alive, a NOTIFY is alive
 * and stays queued, a terminated session is QORB_EGONE, and none of it
 * waits (libpq's socket is non-blocking). Then through pools whose health
 * checks are off (health_interval_ms 0):
 *   - the idle watch: every idle session killed, all replaced by the pool
 *     on its own, and 50 claims after that all work;
 *   - the warning a death gives its siblings: with the idle watch off too,
 *     killed idle sessions stay unnoticed until a claimant finds its
 *     connection dead and releases it (plainly); the pool then checks the
 *     backend's other idle connections at once and replaces them.
 */
#define _GNU_SOURCE

#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg_int.h"
#include "pg_testlib.h"

#define POOL_SIZE 4

static void tweak_no_checks(qorb_policy_t *p) {
  itest_no_checks(p, POOL_SIZE);
}

/* Wait until `fd` is readable, at most `ms`; 1 if it is. */
static int readable(int fd, int ms) {
  struct pollfd p;
  p.fd = fd;
  p.events = POLLIN;
  p.revents = 0;
  return poll(&p, 1, ms) == 1;
}

static void assert_nonblocking(PGconn *pg) {
  int fl = fcntl(PQsocket(pg), F_GETFL);
  assert_true(fl >= 0);
  assert_true(fl & O_NONBLOCK);
}

static void terminate_pid(const char *addr, int pid) {
  PGconn *admin = pgt_admin(addr);
  char sql[96], buf[16];
  snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
  assert_int_equal(pgt_value(admin, sql, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "t");
  PQfinish(admin);
}

/* Claim `n` times in a row; every claim and its query must work. */
static void claims_work(qorb_pool_t *pool, int n) {
  int i;
  for (i = 0; i < n; i++) {
    qorb_claim_t *cl;
    char buf[64];
    assert_int_equal(qorb_pool_claim_wait(pool, 5000, &cl), 0);
    if (pgt_value(qorb_pg_conn(cl), "SELECT 1", buf, sizeof(buf)) != 0)
      fail_msg("claim %d got a dead connection: %s", i, buf);
    assert_int_equal(qorb_release(cl), 0);
  }
}

static void test_peek_conn(void **state) {
  PGconn *pg = pgt_admin(PGT_A), *admin = pgt_admin(PGT_A);
  PGnotify *n;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  uint64_t t0;
  int pid = PQbackendPID(pg), rc;
  (void)state;

  /* libpq's socket is non-blocking, in blocking mode too, and so is a
     pooled connection's (PQconnectStartParams): the peek never waits. */
  assert_int_equal(PQisnonblocking(pg), 0);
  assert_nonblocking(pg);
  pool = pgt_pool(PGT_A, NULL, NULL);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_nonblocking(qorb_pg_conn(cl));
  assert_int_equal(qorb_release(cl), 0);
  itest_close(pool);
  ITEST_WAIT(pgt_count_sessions(PGT_A) == 0, 5000); /* for the next tests */

  /* Nothing arrived: alive. */
  assert_int_equal(qorb__pg_peek_conn(pg), 0);

  /* A NOTIFY is not a death, and stays queued for the claimant. */
  assert_int_equal(pgt_exec(pg, "LISTEN qorb_idle"), 0);
  assert_int_equal(pgt_exec(admin, "NOTIFY qorb_idle, 'hello'"), 0);
  assert_true(readable(PQsocket(pg), 5000));
  assert_int_equal(qorb__pg_peek_conn(pg), 0);
  assert_false(readable(PQsocket(pg), 0)); /* read into libpq's queue */
  n = PQnotifies(pg);
  assert_non_null(n);
  assert_string_equal(n->relname, "qorb_idle");
  assert_string_equal(n->extra, "hello");
  PQfreemem(n);
  assert_int_equal(pgt_exec(pg, "SELECT 1"), 0); /* still in step */

  /* The server ends the session: QORB_EGONE (the pool then closes it). */
  terminate_pid(PGT_A, pid);
  assert_true(readable(PQsocket(pg), 5000));
  /* What has arrived may be only part of the server's last words: then
     peek says "alive so far" and the next readiness tells the rest. */
  t0 = itest_now_ms();
  while ((rc = qorb__pg_peek_conn(pg)) == 0 && itest_now_ms() - t0 < 5000)
    (void)readable(PQsocket(pg), 100);
  assert_int_equal(rc, QORB_EGONE);
  assert_true(itest_now_ms() - t0 < 5000);
  PQfinish(pg);
  PQfinish(admin);
}

/* Once the pool holds POOL_SIZE idle sessions, kill them all; returns the
   backend's connects before the kill. */
static uint64_t kill_all_idle(qorb_pool_t *pool) {
  uint64_t c0;
  ITEST_WAIT(itest_idle(pool, PGT_A) == POOL_SIZE &&
                 pgt_count_sessions(PGT_A) == POOL_SIZE,
             10000);
  assert_int_equal(itest_idle(pool, PGT_A), POOL_SIZE);
  c0 = itest_connects(pool, PGT_A);
  assert_int_equal(pgt_kill_sessions(PGT_A), POOL_SIZE);
  return c0;
}

/* Wait until the pool has replaced every killed session; assert it. */
static void all_replaced(qorb_pool_t *pool, uint64_t c0) {
  ITEST_WAIT(itest_connects(pool, PGT_A) >= c0 + POOL_SIZE &&
                 itest_idle(pool, PGT_A) == POOL_SIZE,
             10000);
  assert_true(itest_connects(pool, PGT_A) >= c0 + POOL_SIZE);
  assert_int_equal(itest_idle(pool, PGT_A), POOL_SIZE);
}

/* (a) Every pooled session killed while idle: replaced by the pool on its
   own (no health check), and no claim after that gets a dead one. */
static void test_idle_kill(void **state) {
  qorb_pool_t *pool = pgt_pool(PGT_A, NULL, tweak_no_checks);
  (void)state;
  all_replaced(pool, kill_all_idle(pool));
  claims_work(pool, 50);
  itest_close(pool);
}

/* (b) With neither health checks nor the idle watch, the killed idle
   sessions go unnoticed until one claimant finds its connection dead; its
   plain release (QORB_EGONE from the connector) has the pool check the
   backend's other idle connections at once. */
static void test_gone_warns_siblings(void **state) {
  static qorb_connector_ops_t ops;
  qorb_connector_t *real = NULL, *conn = NULL;
  qorb_pg_options_t o;
  qorb_policy_t pol;
  qorb_pool_t *pool = NULL;
  qorb_claim_t *cl;
  char err[256] = "", buf[256];
  uint64_t c0, t0;
  (void)state;

  pgt_options(&o);
  assert_int_equal(qorb_pg_connector_new(&real, &o, err, sizeof(err)), 0);
  assert_int_equal(
      itest_unwatched(&conn, qorb__pg_ops(qorb_connector_ctx(real)),
                      qorb_connector_ctx(real), &ops),
      0);
  itest_policy(&pol, "pgtest", "PGT_VERBOSE");
  tweak_no_checks(&pol);
  assert_int_equal(itest_pool_new(&pool, PGT_A, conn, NULL, &pol), 0);

  c0 = kill_all_idle(pool);
  /* Nothing else looks at idle connections here. */
  ITEST_WAIT(pgt_count_sessions(PGT_A) == 0, 5000);
  itest_nap_ms(300);
  assert_int_equal(itest_connects(pool, PGT_A), c0);

  assert_int_equal(qorb_pool_claim_wait(pool, 5000, &cl), 0);
  assert_int_not_equal(pgt_value(qorb_pg_conn(cl), "SELECT 1", buf,
                                 sizeof(buf)),
                       0);
  assert_int_equal(PQstatus(qorb_pg_conn(cl)), CONNECTION_BAD);
  t0 = itest_now_ms();
  assert_int_equal(qorb_release(cl), 0);

  all_replaced(pool, c0);
  fprintf(stderr, "all replaced %llu ms after the release\n",
          (unsigned long long)(itest_now_ms() - t0));
  claims_work(pool, 20);
  itest_close(pool);
  qorb_connector_free(real);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_peek_conn),
      cmocka_unit_test(test_idle_kill),
      cmocka_unit_test(test_gone_warns_siblings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
