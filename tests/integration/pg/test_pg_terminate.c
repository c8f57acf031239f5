/* SPDX-License-Identifier: MIT */
/*
 * test_pg_terminate.c: the server kills pooled sessions
 * (pg_terminate_backend). Idle ones are noticed by the health checks and
 * replaced, and later claims all succeed; a claimed one shows up as a
 * broken PGconn to its claimant, is closed at release (plain or as broken)
 * and replaced, and later claims succeed and never see that session again.
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg_testlib.h"

static void tweak(qorb_policy_t *p) {
  p->max_slots = 6;
  p->spares_wanted = 4;
  p->health_interval_ms = 100;
  p->health_check_timeout_ms = 2000;
}

static uint64_t connects(qorb_pool_t *pool) {
  return itest_connects(pool, PGT_A) + itest_connects(pool, PGT_B);
}

/* Claim `n` times in a row; every claim and its query must work. */
static void claims_work(qorb_pool_t *pool, int n, int avoid_pid) {
  int i;
  for (i = 0; i < n; i++) {
    qorb_claim_t *cl;
    char buf[64];
    assert_int_equal(qorb_pool_claim_wait(pool, 5000, &cl), 0);
    assert_int_not_equal(PQbackendPID(qorb_pg_conn(cl)), avoid_pid);
    if (pgt_value(qorb_pg_conn(cl), "SELECT 1", buf, sizeof(buf)) != 0)
      fail_msg("claim %d: %s", i, buf);
    assert_int_equal(qorb_release(cl), 0);
  }
}

static void test_terminate_idle(void **state) {
  qorb_pool_t *pool;
  uint64_t c0, f0;
  long killed;
  char ea[256], eb[256];
  (void)state;
  pool = pgt_pool(PGT_AB, NULL, tweak);
  ITEST_WAIT(itest_total_idle(pool) >= 4, 10000);
  assert_true(itest_total_idle(pool) >= 4);
  c0 = connects(pool);
  f0 = itest_failures(pool, PGT_A) + itest_failures(pool, PGT_B);

  killed = pgt_kill_sessions(PGT_A) + pgt_kill_sessions(PGT_B);
  fprintf(stderr, "terminated %ld idle sessions\n", killed);
  assert_true(killed >= 4);

  /* Noticed (failed checks) and replaced (new connects), by itself. */
  ITEST_WAIT(connects(pool) >= c0 + (uint64_t)killed, 10000);
  assert_true(connects(pool) >= c0 + (uint64_t)killed);
  assert_true(itest_failures(pool, PGT_A) + itest_failures(pool, PGT_B) >=
              f0 + (uint64_t)killed);
  /* libpq's / the server's words reached last_error. */
  itest_last_error(pool, PGT_A, ea, sizeof(ea));
  itest_last_error(pool, PGT_B, eb, sizeof(eb));
  fprintf(stderr, "last errors: a: %s | b: %s\n", ea, eb);
  /* Whoever saw it first: a health check (libpq's or the server's words)
     or the idle watch (the pool's). */
  assert_true(strstr(ea, "terminating connection") ||
              strstr(ea, "server closed the connection") ||
              strstr(ea, "closed by the server") ||
              strstr(eb, "terminating connection") ||
              strstr(eb, "server closed the connection") ||
              strstr(eb, "closed by the server"));

  claims_work(pool, 50, 0);
  itest_close(pool);
}

static void test_terminate_claimed(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  PGconn *pg;
  char sql[128], buf[256];
  int pid, round;
  (void)state;
  pool = pgt_pool(PGT_AB, NULL, tweak);
  for (round = 0; round < 2; round++) {
    const char *addr;
    assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
    pg = qorb_pg_conn(cl);
    pid = PQbackendPID(pg);
    addr = qorb_claim_addr(cl)->text;
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
    {
      PGconn *admin = pgt_admin(addr);
      assert_int_equal(pgt_value(admin, sql, buf, sizeof(buf)), 0);
      assert_string_equal(buf, "t");
      PQfinish(admin);
    }
    /* The claimant finds out on its next query. */
    assert_int_not_equal(pgt_value(pg, "SELECT 1", buf, sizeof(buf)), 0);
    fprintf(stderr, "claimant saw: %s", buf);
    assert_int_equal(PQstatus(pg), CONNECTION_BAD);
    /* A plain release is enough: the pool sees the PGconn is broken. */
    if (round == 0)
      assert_int_equal(qorb_release(cl), 0);
    else
      assert_int_equal(qorb_release_broken(cl), 0);
    claims_work(pool, 30, pid);
  }
  itest_close(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_terminate_idle),
      cmocka_unit_test(test_terminate_claimed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
