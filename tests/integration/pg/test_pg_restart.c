/* SPDX-License-Identifier: MIT */
/*
 * test_pg_restart.c: fast restarts (pg_ctl restart -m fast) while claims
 * run. With one backend restarting and the other up, no claim fails. With
 * the only backend restarting, claims wait through it (the library's
 * fail_fast_after_ms) and none fails either. With both down past the
 * bound, claims fail at once with QORB_ENOTONLINE (not after their
 * timeout) and libpq's text is in the backends' last_error. When a backend
 * comes back, the pool recovers by itself.
 */
#define _GNU_SOURCE

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg_testlib.h"

#define NWORKERS 4

typedef struct load {
  qorb_pool_t *pool;
  atomic_int stop;
  atomic_int claims, claim_errors, query_errors;
  atomic_int last_claim_error;
  pthread_t tid[NWORKERS];
} load_t;

static void *worker(void *arg) {
  load_t *l = arg;
  int i;
  /* Bounded: at most this many claims, and stopped by the test. */
  for (i = 0; i < 200000 && !atomic_load(&l->stop); i++) {
    qorb_claim_t *cl;
    char buf[256];
    int rc = qorb_pool_claim_wait(l->pool, 3000, &cl);
    if (rc != 0) {
      atomic_fetch_add(&l->claim_errors, 1);
      atomic_store(&l->last_claim_error, rc);
      itest_nap_ms(5);
      continue;
    }
    atomic_fetch_add(&l->claims, 1);
    /* A session killed by the restart fails its query: the claimant's
       business, and the release closes that connection. */
    if (pgt_value(qorb_pg_conn(cl), "SELECT 1", buf, sizeof(buf)) != 0)
      atomic_fetch_add(&l->query_errors, 1);
    qorb_release(cl);
  }
  return NULL;
}

static void load_start(load_t *l, qorb_pool_t *pool) {
  int i;
  memset(l, 0, sizeof(*l));
  l->pool = pool;
  for (i = 0; i < NWORKERS; i++)
    assert_int_equal(pthread_create(&l->tid[i], NULL, worker, l), 0);
}

static void load_stop(load_t *l) {
  int i;
  atomic_store(&l->stop, 1);
  for (i = 0; i < NWORKERS; i++) pthread_join(l->tid[i], NULL);
}

/* Stop the load and say what it saw. */
static void load_stop_report(load_t *l) {
  load_stop(l);
  fprintf(stderr, "claims %d, claim errors %d, query errors %d\n",
          atomic_load(&l->claims), atomic_load(&l->claim_errors),
          atomic_load(&l->query_errors));
}

static void tweak(qorb_policy_t *p) {
  p->max_slots = 8;
  p->spares_wanted = 4;
  p->health_interval_ms = 200;
  p->health_check_timeout_ms = 2000;
  p->connect_timeout_ms = 3000;
}

static int teardown(void **state) {
  (void)state;
  pgt_servers("ensure a");
  pgt_servers("ensure b");
  return 0;
}

static void test_restart_one_backend(void **state) {
  qorb_pool_t *pool;
  load_t l;
  uint64_t a0;
  int round;
  (void)state;
  pgt_skip_if_external("restarts servers a and b");
  pool = pgt_pool(PGT_AB, NULL, tweak);
  ITEST_WAIT(itest_online(pool, PGT_A) && itest_online(pool, PGT_B), 10000);
  load_start(&l, pool);
  ITEST_WAIT(atomic_load(&l.claims) > 200, 10000);

  for (round = 0; round < 2; round++) {
    const char *name = round == 0 ? "restart a" : "restart b";
    const char *addr = round == 0 ? PGT_A : PGT_B;
    uint64_t t0 = itest_now_ms();
    assert_int_equal(pgt_servers(name), 0);
    /* Back online and serving claims again, by itself. */
    a0 = itest_claims(pool, addr);
    ITEST_WAIT(itest_online(pool, addr) && itest_claims(pool, addr) > a0 + 20,
               15000);
    assert_true(itest_online(pool, addr));
    assert_true(itest_claims(pool, addr) > a0 + 20);
    fprintf(stderr, "%s: serving again %llu ms after the restart began\n", name,
            (unsigned long long)(itest_now_ms() - t0));
  }
  load_stop_report(&l);
  /* The other backend was up all along: no claim failed. */
  assert_int_equal(atomic_load(&l.claim_errors), 0);
  itest_close(pool);
}

/* The library's fail-fast bound (10 s), not the tests' quick one. */
static void tweak_default_fail_fast(qorb_policy_t *p) {
  qorb_policy_t d;
  tweak(p);
  qorb_policy_init(&d);
  p->fail_fast_after_ms = d.fail_fast_after_ms;
}

static void test_restart_only_backend(void **state) {
  qorb_pool_t *pool;
  load_t l;
  uint64_t a0, t0;
  (void)state;
  pgt_skip_if_external("restarts server a");
  pool = pgt_pool(PGT_A, NULL, tweak_default_fail_fast);
  ITEST_WAIT(itest_online(pool, PGT_A), 10000);
  load_start(&l, pool);
  ITEST_WAIT(atomic_load(&l.claims) > 200, 10000);
  t0 = itest_now_ms();
  assert_int_equal(pgt_servers("restart a"), 0);
  a0 = itest_claims(pool, PGT_A);
  ITEST_WAIT(itest_claims(pool, PGT_A) > a0 + 50, 15000);
  assert_true(itest_claims(pool, PGT_A) > a0 + 50);
  fprintf(stderr, "only backend: serving again %llu ms after the restart "
                  "began\n",
          (unsigned long long)(itest_now_ms() - t0));
  load_stop_report(&l);
  /* Every claim waited out the restart (3 s timeout): none failed. */
  assert_int_equal(atomic_load(&l.claim_errors), 0);
  itest_close(pool);
}

static void test_all_down_then_recover(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl = NULL;
  load_t l;
  char e[256];
  uint64_t t0, dt;
  int rc;
  (void)state;
  pgt_skip_if_external("stops and starts servers a and b");
  pool = pgt_pool(PGT_AB, NULL, tweak);
  ITEST_WAIT(itest_online(pool, PGT_A) && itest_online(pool, PGT_B), 10000);
  load_start(&l, pool);
  ITEST_WAIT(atomic_load(&l.claims) > 100, 10000);

  assert_int_equal(pgt_servers("stop a"), 0);
  assert_int_equal(pgt_servers("stop b"), 0);
  ITEST_WAIT(!itest_online(pool, PGT_A) && !itest_online(pool, PGT_B), 10000);
  assert_false(itest_online(pool, PGT_A) || itest_online(pool, PGT_B));
  /* Once both have failed to reconnect, claims fail at once. */
  ITEST_WAIT(qorb_pool_try_claim(pool, &cl) == QORB_ENOTONLINE, 5000);
  t0 = itest_now_ms();
  rc = qorb_pool_claim_wait(pool, 10000, &cl);
  dt = itest_now_ms() - t0;
  assert_int_equal(rc, QORB_ENOTONLINE);
  assert_null(cl);
  assert_true(dt < 1000);
  /* The workers saw the same error, not a timeout. */
  ITEST_WAIT(atomic_load(&l.claim_errors) > 10, 5000);
  assert_int_equal(atomic_load(&l.last_claim_error), QORB_ENOTONLINE);
  /* libpq's own text: the refused reconnects (by now; the sessions that
     the shutdown killed said "terminating connection" before). */
  ITEST_WAIT(strstr(itest_last_error(pool, PGT_A, e, sizeof(e)),
                    "Connection refused") != NULL,
             3000);
  fprintf(stderr, "a: %s\n", e);
  assert_non_null(strstr(e, "127.0.0.2"));
  assert_non_null(strstr(e, "Connection refused"));
  ITEST_WAIT(strstr(itest_last_error(pool, PGT_B, e, sizeof(e)),
                    "Connection refused") != NULL,
             3000);
  fprintf(stderr, "b: %s\n", e);
  assert_non_null(strstr(e, "Connection refused"));

  /* One backend back: claims work again without anyone's help. */
  t0 = itest_now_ms();
  assert_int_equal(pgt_servers("start b"), 0);
  ITEST_WAIT(qorb_pool_claim_wait(pool, 1000, &cl) == 0, 10000);
  assert_non_null(cl);
  assert_string_equal(qorb_claim_addr(cl)->text, PGT_B);
  assert_int_equal(pgt_exec(qorb_pg_conn(cl), "SELECT 1"), 0);
  qorb_release(cl);
  fprintf(stderr, "claims work %llu ms after b started\n",
          (unsigned long long)(itest_now_ms() - t0));
  assert_int_equal(pgt_servers("start a"), 0);
  ITEST_WAIT(itest_online(pool, PGT_A) && itest_online(pool, PGT_B), 10000);
  assert_true(itest_online(pool, PGT_A) && itest_online(pool, PGT_B));
  load_stop(&l);
  itest_close(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_restart_one_backend, teardown),
      cmocka_unit_test_teardown(test_restart_only_backend, teardown),
      cmocka_unit_test_teardown(test_all_down_then_recover, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
