/* SPDX-License-Identifier: MIT */
/*
 * test_pg_threads.c: the thread-per-request shape. Eight threads claim with
 * qorb_pool_claim_wait(), run blocking queries (PQexec) and release, over
 * two backends. Every claim succeeds, every query answers from the backend
 * the claim says it is on, both backends serve, and the pool's counters
 * add up.
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

#define NTHREADS 8
#define PER_THREAD 150

typedef struct worker {
  qorb_pool_t *pool;
  pthread_t tid;
  int claim_errors;
  int query_errors;
  int wrong_backend;
  int on_a, on_b;
  char first_error[256];
} worker_t;

static void *work(void *arg) {
  worker_t *w = arg;
  int i;
  for (i = 0; i < PER_THREAD; i++) {
    qorb_claim_t *cl;
    char buf[64], want[16];
    int rc = qorb_pool_claim_wait(w->pool, 10000, &cl);
    if (rc != 0) {
      if (!w->claim_errors++)
        snprintf(w->first_error, sizeof(w->first_error), "claim: %s",
                 qorb_strerror(rc));
      continue;
    }
    snprintf(want, sizeof(want), "%u", (unsigned)qorb_claim_addr(cl)->port);
    /* A little work on the connection, then check who answered. */
    if (pgt_value(qorb_pg_conn(cl),
                  "SELECT inet_server_port() FROM generate_series(1, 3) "
                  "LIMIT 1",
                  buf, sizeof(buf)) != 0) {
      if (!w->query_errors++)
        snprintf(w->first_error, sizeof(w->first_error), "query: %s", buf);
      qorb_release_broken(cl);
      continue;
    }
    if (strcmp(buf, want) != 0) w->wrong_backend++;
    if (strcmp(qorb_claim_addr(cl)->text, PGT_A) == 0)
      w->on_a++;
    else
      w->on_b++;
    /* Every few claims leave a transaction open: recycled, not lost. */
    if (i % 10 == 0) (void)pgt_exec(qorb_pg_conn(cl), "BEGIN");
    qorb_release(cl);
  }
  return NULL;
}

static void tweak(qorb_policy_t *p) {
  p->max_slots = 8;
  p->spares_wanted = 4;
}

static void test_eight_threads_two_backends(void **state) {
  worker_t w[NTHREADS];
  qorb_pool_t *pool;
  qorb_pool_stats_t st;
  int i, on_a = 0, on_b = 0, total = 0;
  (void)state;
  pool = pgt_pool(PGT_AB, NULL, tweak);
  /* Both backends come online on their own. */
  ITEST_WAIT(itest_online(pool, PGT_A) && itest_online(pool, PGT_B), 10000);
  assert_true(itest_online(pool, PGT_A));
  assert_true(itest_online(pool, PGT_B));

  memset(w, 0, sizeof(w));
  for (i = 0; i < NTHREADS; i++) {
    w[i].pool = pool;
    assert_int_equal(pthread_create(&w[i].tid, NULL, work, &w[i]), 0);
  }
  for (i = 0; i < NTHREADS; i++) {
    assert_int_equal(pthread_join(w[i].tid, NULL), 0);
    if (w[i].first_error[0])
      fprintf(stderr, "thread %d: %s\n", i, w[i].first_error);
    assert_int_equal(w[i].claim_errors, 0);
    assert_int_equal(w[i].query_errors, 0);
    assert_int_equal(w[i].wrong_backend, 0);
    on_a += w[i].on_a;
    on_b += w[i].on_b;
  }
  total = on_a + on_b;
  fprintf(stderr, "claims: %d on a, %d on b\n", on_a, on_b);
  assert_int_equal(total, NTHREADS * PER_THREAD);
  assert_true(on_a > 0);
  assert_true(on_b > 0);

  /* The pool counted the same: claims per backend and in all. */
  assert_int_equal(itest_claims(pool, PGT_A), (uint64_t)on_a);
  assert_int_equal(itest_claims(pool, PGT_B), (uint64_t)on_b);
  assert_int_equal(itest_backend(pool, PGT_A, NULL, &st), 0);
  assert_true(st.claims >= (uint64_t)total);
  assert_int_equal(st.claimed, 0);
  assert_int_equal(st.claim_failures, 0);
  /* Never more connections than the policy allows. */
  assert_true(st.connecting + st.idle + st.checking + st.claimed <= 8);
  /* The pool's connections, seen from the servers, are at most 8. */
  assert_true(pgt_count_sessions(PGT_A) +
                  pgt_count_sessions(PGT_B) <=
              8);
  itest_close(pool);
  /* And none are left once it is closed. */
  ITEST_WAIT(pgt_count_sessions(PGT_A) == 0,
             5000);
  assert_int_equal(pgt_count_sessions(PGT_A),
                   0);
}

/* try_claim never waits: it gets an idle connection or QORB_EAGAIN. */
static void test_try_claim(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl[8];
  int n = 0, rc = 0, i;
  (void)state;
  pool = pgt_pool(PGT_AB, NULL, tweak);
  ITEST_WAIT(itest_total_idle(pool) >= 4, 10000);
  while (n < 8 && (rc = qorb_pool_try_claim(pool, &cl[n])) == 0) {
    assert_int_equal(pgt_exec(qorb_pg_conn(cl[n]), "SELECT 1"), 0);
    n++;
  }
  assert_true(n >= 1);
  if (n < 8) assert_int_equal(rc, QORB_EAGAIN);
  for (i = 0; i < n; i++) assert_int_equal(qorb_release(cl[i]), 0);
  itest_close(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_eight_threads_two_backends),
      cmocka_unit_test(test_try_claim),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
