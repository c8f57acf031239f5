/* SPDX-License-Identifier: MIT */
/*
 * test_pg_hang.c: a hung backend (every process of it stopped with SIGSTOP:
 * it accepts TCP connections and never answers). Health checks time out,
 * its connections are dropped, reconnects time out, claims go to the other
 * backend; after SIGCONT it serves again. A pool closed while its
 * connects hang in mid-handshake closes at once and leaks nothing.
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
  p->health_check_timeout_ms = 500;
  p->connect_timeout_ms = 1000;
  p->claim_timeout_ms = 3000;
}

static int teardown(void **state) {
  (void)state;
  pgt_servers("thaw b");
  pgt_servers("ensure b");
  return 0;
}

/* Claim everything idle at once, query each, release: did any land on b? */
static int batch_reaches_b(qorb_pool_t *pool) {
  qorb_claim_t *cl[6];
  int n = 0, i, hit = 0;
  while (n < 6 && qorb_pool_try_claim(pool, &cl[n]) == 0) n++;
  for (i = 0; i < n; i++) {
    if (strcmp(qorb_claim_addr(cl[i])->text, PGT_B) == 0 &&
        pgt_exec(qorb_pg_conn(cl[i]), "SELECT 1") == 0)
      hit = 1;
    qorb_release(cl[i]);
  }
  return hit;
}

static void test_hung_backend(void **state) {
  qorb_pool_t *pool;
  char e[256];
  uint64_t t0;
  int i;
  (void)state;
  pgt_skip_if_external("freezes server b");
  pool = pgt_pool(PGT_AB, NULL, tweak);
  ITEST_WAIT(itest_online(pool, PGT_A) && itest_online(pool, PGT_B) &&
                 itest_total_idle(pool) >= 4,
             10000);
  assert_true(itest_online(pool, PGT_B));

  t0 = itest_now_ms();
  assert_int_equal(pgt_servers("freeze b"), 0);
  /* Checks time out, b's connections are dropped, b goes offline. */
  ITEST_WAIT(!itest_online(pool, PGT_B), 10000);
  assert_false(itest_online(pool, PGT_B));
  fprintf(stderr, "hung backend offline after %llu ms\n",
          (unsigned long long)(itest_now_ms() - t0));
  itest_last_error(pool, PGT_B, e, sizeof(e));
  fprintf(stderr, "b: %s\n", e);
  assert_non_null(strstr(e, "timed out"));

  /* Claims go to a, quickly, and work. */
  for (i = 0; i < 30; i++) {
    qorb_claim_t *cl;
    t0 = itest_now_ms();
    assert_int_equal(qorb_pool_claim_wait(pool, 3000, &cl), 0);
    assert_true(itest_now_ms() - t0 < 1000);
    assert_string_equal(qorb_claim_addr(cl)->text, PGT_A);
    assert_int_equal(pgt_exec(qorb_pg_conn(cl), "SELECT 1"), 0);
    qorb_release(cl);
  }
  /* Reconnects to b keep timing out (they hang in the handshake). */
  ITEST_WAIT(itest_failures(pool, PGT_B) >= 6, 10000);
  assert_true(itest_failures(pool, PGT_B) >= 6);
  assert_false(itest_online(pool, PGT_B));

  t0 = itest_now_ms();
  assert_int_equal(pgt_servers("thaw b"), 0);
  ITEST_WAIT(itest_online(pool, PGT_B), 10000);
  assert_true(itest_online(pool, PGT_B));
  ITEST_WAIT(batch_reaches_b(pool), 10000);
  assert_true(itest_claims(pool, PGT_B) > 0);
  fprintf(stderr, "b serves again %llu ms after SIGCONT\n",
          (unsigned long long)(itest_now_ms() - t0));
  itest_close(pool);
}

/* Close a pool whose only backend hangs: connects in flight are aborted
   (the connector's close), nothing waits for libpq. */
static void test_close_while_connecting(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl = NULL;
  uint64_t t0;
  int rc;
  (void)state;
  pgt_skip_if_external("freezes server b");
  assert_int_equal(pgt_servers("freeze b"), 0);
  pool = pgt_pool(PGT_B, NULL, tweak);
  /* A claim times out while the connects hang: no backend ever online. */
  t0 = itest_now_ms();
  rc = qorb_pool_claim_wait(pool, 1500, &cl);
  assert_true(rc == QORB_ENOTONLINE || rc == QORB_EALLINUSE);
  assert_true(itest_now_ms() - t0 < 3000);
  t0 = itest_now_ms();
  itest_close(pool);
  assert_true(itest_now_ms() - t0 < 1000);
  assert_int_equal(pgt_servers("thaw b"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_hung_backend, teardown),
      cmocka_unit_test_teardown(test_close_while_connecting, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
