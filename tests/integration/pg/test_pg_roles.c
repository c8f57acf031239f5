/* SPDX-License-Identifier: MIT */
/*
 * test_pg_roles.c: role awareness against a primary p and its streaming
 * standby s (pg_basebackup -R), both started by this test. A primary-only
 * pool never claims s, a standby-only pool never claims p, an any-role pool
 * uses both. Then a failover: p stops, s is promoted; the primary-only pool
 * follows to s, the standby-only pool drops s at its next health check (it
 * is a primary now) and, with no standby left, fails claims at once.
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

static int group_setup(void **state) {
  (void)state;
  return pgt_servers("pair-up") == 0 ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  pgt_servers("pair-down");
  return 0;
}

static void tweak(qorb_policy_t *p) {
  p->max_slots = 4;
  p->spares_wanted = 2;
  p->health_interval_ms = 100;
  p->health_check_timeout_ms = 1000;
  p->max_backoff_ms = 200;
}

static qorb_pool_t *role_pool(qorb_pg_role_t role) {
  qorb_pg_options_t o;
  pgt_options(&o);
  o.role = role;
  return pgt_pool(PGT_PS, &o, tweak);
}

/* Claim once: return the answer of pg_is_in_recovery() ("t"/"f") and the
   backend, or rc < 0. */
static int claim_role(qorb_pool_t *pool, int timeout_ms, char *rec,
                      char *addr) {
  qorb_claim_t *cl;
  char buf[64];
  int rc = qorb_pool_claim_wait(pool, timeout_ms, &cl);
  if (rc != 0) return rc;
  snprintf(addr, 64, "%s", qorb_claim_addr(cl)->text);
  rc = pgt_value(qorb_pg_conn(cl), "SELECT pg_is_in_recovery()", buf,
                 sizeof(buf));
  snprintf(rec, 64, "%s", buf);
  qorb_release(cl);
  return rc == 0 ? 0 : QORB_EPROTO;
}

static void test_roles_and_failover(void **state) {
  qorb_pool_t *prim, *stby, *any;
  char rec[64], addr[64], e[256];
  int i, rc;
  uint64_t t0;
  (void)state;
  prim = role_pool(QORB_PG_ROLE_PRIMARY);
  stby = role_pool(QORB_PG_ROLE_STANDBY);
  any = role_pool(QORB_PG_ROLE_ANY);
  ITEST_WAIT(itest_online(prim, PGT_P) && itest_online(stby, PGT_S) &&
                 itest_online(any, PGT_P) && itest_online(any, PGT_S) &&
                 itest_failures(prim, PGT_S) > 0 &&
                 itest_failures(stby, PGT_P) > 0,
             15000);
  assert_true(itest_online(any, PGT_P) && itest_online(any, PGT_S));

  /* The wrong role is refused at connect, with a clear reason. */
  assert_false(itest_online(prim, PGT_S));
  assert_false(itest_online(stby, PGT_P));
  itest_last_error(prim, PGT_S, e, sizeof(e));
  assert_non_null(strstr(e, "standby"));
  itest_last_error(stby, PGT_P, e, sizeof(e));
  assert_non_null(strstr(e, "primary"));

  for (i = 0; i < 40; i++) {
    assert_int_equal(claim_role(prim, 5000, rec, addr), 0);
    assert_string_equal(addr, PGT_P);
    assert_string_equal(rec, "f");
    assert_int_equal(claim_role(stby, 5000, rec, addr), 0);
    assert_string_equal(addr, PGT_S);
    assert_string_equal(rec, "t");
  }
  assert_int_equal(itest_claims(prim, PGT_S), 0);
  assert_int_equal(itest_claims(stby, PGT_P), 0);

  /* Failover. */
  if (pgt_external()) {
    itest_close(prim);
    itest_close(stby);
    itest_close(any);
    pgt_skip_if_external("passed the role checks, and its failover would "
                         "stop the primary and promote the standby");
  }
  t0 = itest_now_ms();
  assert_int_equal(pgt_servers("stop p"), 0);
  assert_int_equal(pgt_servers("promote s"), 0);

  /* The primary-only pool follows to s. */
  ITEST_WAIT(claim_role(prim, 500, rec, addr) == 0 && strcmp(addr, PGT_S) == 0,
             15000);
  assert_string_equal(addr, PGT_S);
  assert_string_equal(rec, "f");
  fprintf(stderr,
          "primary pool on the promoted standby %llu ms after the "
          "failover began\n",
          (unsigned long long)(itest_now_ms() - t0));
  for (i = 0; i < 20; i++) {
    assert_int_equal(claim_role(prim, 5000, rec, addr), 0);
    assert_string_equal(addr, PGT_S);
    assert_string_equal(rec, "f");
  }

  /* The standby-only pool has no standby left: it fails claims at once,
     and says why. */
  ITEST_WAIT((rc = claim_role(stby, 500, rec, addr)) == QORB_ENOTONLINE, 15000);
  assert_int_equal(rc, QORB_ENOTONLINE);
  t0 = itest_now_ms();
  assert_int_equal(claim_role(stby, 5000, rec, addr), QORB_ENOTONLINE);
  assert_true(itest_now_ms() - t0 < 1000);
  itest_last_error(stby, PGT_S, e, sizeof(e));
  fprintf(stderr, "standby pool, s: %s\n", e);
  assert_non_null(strstr(e, "primary"));
  assert_false(itest_online(stby, PGT_S));

  itest_close(prim);
  itest_close(stby);
  itest_close(any);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roles_and_failover),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
