/* SPDX-License-Identifier: MIT */
/*
 * test_leak.c: leak detection. A claim held longer than leak_threshold_ms
 * is counted once in stats.leaks and reported through the policy's log
 * callback with the file and line of the claim site (recorded by the claim
 * macros); claims released in time are not.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

#define A "127.0.0.1:1"

typedef struct log_rec {
  int n, leak_msgs;
  char last[512];
  char pool[64];
  qorb_log_level_t level;
  int wrong_thread;
  pthread_t loop_thread;
  void *arg_seen;
} log_rec_t;

static void log_cb(const char *pool, qorb_log_level_t level, const char *msg,
                   void *arg) {
  log_rec_t *l = arg;
  l->n++;
  l->arg_seen = arg;
  if (!pthread_equal(pthread_self(), l->loop_thread)) l->wrong_thread = 1;
  snprintf(l->pool, sizeof(l->pool), "%s", pool ? pool : "(null)");
  /* A leak report is the message that names a claim site in this file. */
  if (msg != NULL && strstr(msg, "test_leak.c:") != NULL) {
    l->leak_msgs++;
    snprintf(l->last, sizeof(l->last), "%s", msg);
    l->level = level;
  }
}

static void setup(fx_t *fx, log_rec_t *l, unsigned threshold) {
  memset(l, 0, sizeof(*l));
  l->loop_thread = pthread_self();
  fx_init(fx, 0, 0);
  fx->policy.leak_threshold_ms = threshold;
  fx->policy.log_cb = log_cb;
  fx->policy.log_arg = l;
  fx->policy.max_slots = 2;
  fx->policy.spares_wanted = 2;
  fx_start(fx);
  fx_set(fx, A);
  PUMP_UNTIL(fx->loop, fx_idle(fx) == 2, 3000);
}

static uint64_t leaks(fx_t *fx) {
  qorb_pool_stats_t st;
  fx_stats(fx, &st);
  return st.leaks;
}

static void test_leak_reported_with_site(void **state) {
  fx_t fx;
  log_rec_t l;
  qorb_claim_t *c = NULL;
  char site[128];
  int line;
  (void)state;
  setup(&fx, &l, 50);
  line = __LINE__ + 1;
  assert_int_equal(qorb_pool_try_claim(fx.pool, &c), 0);
  assert_int_equal(fake_conn_acquire(fx_conn(c), (uintptr_t)c), 0);
  snprintf(site, sizeof(site), "test_leak.c:%d", line);
  PUMP_UNTIL(fx.loop, leaks(&fx) == 1, 3000);
  PUMP_UNTIL(fx.loop, l.leak_msgs >= 1, 1000);
  if (strstr(l.last, site) == NULL)
    fail_msg("leak report \"%s\" does not name the claim site %s", l.last,
             site);
  assert_string_equal(l.pool, "test");
  assert_ptr_equal(l.arg_seen, &l);
  assert_int_equal(l.wrong_thread, 0);
  assert_true(l.level >= QORB_LOG_WARN);
  /* Counted once per claim, however long it stays out. */
  pump_for(fx.loop, 250);
  assert_int_equal(leaks(&fx), 1);
  assert_int_equal(l.leak_msgs, 1);
  fx_release(c);
  pump_for(fx.loop, 30);
  assert_int_equal(leaks(&fx), 1);
  fx_finish(&fx);
}

static void test_async_claim_site(void **state) {
  fx_t fx;
  log_rec_t l;
  claim_rec_t rec;
  char site[128];
  int line, rc;
  (void)state;
  setup(&fx, &l, 50);
  claim_rec_init(&rec, &fx);
  line = __LINE__ + 1;
  rc = qorb_pool_claim(fx.pool, 1000, claim_rec_cb, &rec, NULL);
  assert_int_equal(rc, 0);
  snprintf(site, sizeof(site), "test_leak.c:%d", line);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 2000);
  assert_int_equal(rec.status, 0);
  PUMP_UNTIL(fx.loop, l.leak_msgs >= 1, 3000);
  if (strstr(l.last, site) == NULL)
    fail_msg("leak report \"%s\" does not name the claim site %s", l.last,
             site);
  assert_int_equal(leaks(&fx), 1);
  claim_rec_release(&rec);
  fx_finish(&fx);
}

/* Two leaked claims from two sites: each reported with its own site. */
static void test_two_sites(void **state) {
  fx_t fx;
  log_rec_t l;
  qorb_claim_t *c1 = NULL, *c2 = NULL;
  char site1[64], site2[64];
  (void)state;
  setup(&fx, &l, 40);
  snprintf(site1, sizeof(site1), "test_leak.c:%d", __LINE__ + 1);
  assert_int_equal(qorb_pool_try_claim(fx.pool, &c1), 0);
  pump_for(fx.loop, 100);
  PUMP_UNTIL(fx.loop, l.leak_msgs >= 1, 2000);
  assert_non_null(strstr(l.last, site1));
  snprintf(site2, sizeof(site2), "test_leak.c:%d", __LINE__ + 1);
  assert_int_equal(qorb_pool_try_claim(fx.pool, &c2), 0);
  PUMP_UNTIL(fx.loop, l.leak_msgs >= 2, 2000);
  assert_non_null(strstr(l.last, site2));
  assert_int_equal(leaks(&fx), 2);
  assert_int_equal(qorb_release(c1), 0);
  assert_int_equal(qorb_release(c2), 0);
  fx_finish(&fx);
}

static void test_no_leak_when_released_in_time(void **state) {
  fx_t fx;
  log_rec_t l;
  int i;
  (void)state;
  setup(&fx, &l, 200);
  for (i = 0; i < 20; i++) {
    qorb_claim_t *c = fx_claim(&fx);
    pump_for(fx.loop, 5);
    fx_release(c);
  }
  pump_for(fx.loop, 250);
  assert_int_equal(leaks(&fx), 0);
  assert_int_equal(l.leak_msgs, 0);
  fx_finish(&fx);
}

static void test_threshold_off(void **state) {
  fx_t fx;
  log_rec_t l;
  qorb_claim_t *c;
  (void)state;
  setup(&fx, &l, 0);
  c = fx_claim(&fx);
  pump_for(fx.loop, 200);
  assert_int_equal(leaks(&fx), 0);
  assert_int_equal(l.leak_msgs, 0);
  fx_release(c);
  fx_finish(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_leak_reported_with_site),
      cmocka_unit_test(test_async_claim_site),
      cmocka_unit_test(test_two_sites),
      cmocka_unit_test(test_no_leak_when_released_in_time),
      cmocka_unit_test(test_threshold_off),
  };
  return cmocka_run_group_tests_name("leak", tests, NULL, NULL);
}
