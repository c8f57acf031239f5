/* SPDX-License-Identifier: MIT */
/*
 * test_figures.c: the snapshot's figures match what the pool did, through
 * scripted scenarios over the fake connector: claims that waited (count,
 * total, maximum, histogram), failed claims by reason, connections opened
 * and closed by every cause, the oldest claim held now with its site and
 * backend, and per backend the connect failures, the last error's age and
 * whether it still holds, and the time online.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "fixture.h"

#define A "127.0.0.1:1"
#define B "127.0.0.2:1"

static void start(fx_t *fx, unsigned flags, unsigned slots) {
  fx_init(fx, flags, 0);
  fx->policy.max_slots = slots;
  fx->policy.spares_wanted = slots;
  fx_start(fx);
  fx_set(fx, A);
  PUMP_UNTIL(fx->loop, fx_idle(fx) == slots, 3000);
}

static uint64_t closed(fx_t *fx, unsigned cause) {
  qorb_pool_stats_t st;
  fx_stats(fx, &st);
  return st.closed[cause];
}

static uint64_t closed_total(const qorb_pool_stats_t *st) {
  uint64_t n = 0;
  for (unsigned i = 0; i < QORB_CLOSE__COUNT; i++) n += st->closed[i];
  return n;
}

static void test_names_and_buckets(void **state) {
  (void)state;
  assert_string_equal(qorb_claim_fail_name(QORB_CLAIM_FAIL_TIMEOUT), "timeout");
  assert_string_equal(qorb_claim_fail_name(QORB_CLAIM_FAIL_QUEUEFULL),
                      "queue_full");
  assert_string_equal(qorb_claim_fail_name(QORB_CLAIM_FAIL__COUNT), "?");
  assert_string_equal(qorb_close_cause_name(QORB_CLOSE_LIFETIME), "lifetime");
  assert_string_equal(qorb_close_cause_name(QORB_CLOSE_POOL), "pool_closed");
  assert_string_equal(qorb_close_cause_name(QORB_CLOSE__COUNT), "?");
  for (unsigned i = 0; i < QORB_CLOSE__COUNT; i++)
    assert_string_not_equal(qorb_close_cause_name(i), "?");
  assert_int_equal(qorb_wait_bucket_le_ns(0), 10000);
  assert_int_equal(qorb_wait_bucket_le_ns(6), 1000000);
  assert_int_equal(qorb_wait_bucket_le_ns(QORB_WAIT_BUCKETS - 2), 10000000000ull);
  assert_true(qorb_wait_bucket_le_ns(QORB_WAIT_BUCKETS - 1) == UINT64_MAX);
  for (unsigned i = 1; i < QORB_WAIT_BUCKETS; i++)
    assert_true(qorb_wait_bucket_le_ns(i) > qorb_wait_bucket_le_ns(i - 1));
}

/* A claim that waits ~40 ms, one that times out, one refused (queue full)
 * and one cancelled; a fast-path claim does not count as waiting. */
static void test_waits_and_failures(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  claim_rec_t r1, r2, r3;
  qorb_claim_t *held;
  uint64_t sum = 0, failed = 0;
  unsigned i, top = 0;
  (void)state;
  start(&fx, 0, 1);
  held = fx_claim(&fx);
  fx_stats(&fx, &st);
  assert_int_equal(st.waited, 0);
  assert_int_equal(st.wait_ns_max, 0);

  claim_rec_init(&r1, &fx);
  assert_int_equal(fx_claim_async(&fx, &r1, 5000), 0);
  pump_for(fx.loop, 40);
  fx_release(held);
  PUMP_UNTIL(fx.loop, atomic_load(&r1.calls) == 1, 2000);
  assert_int_equal(r1.status, 0);
  fx_stats(&fx, &st);
  assert_int_equal(st.waited, 1);
  assert_true(st.wait_ns_total >= 30000000ull && st.wait_ns_total < 2000000000ull);
  assert_int_equal(st.wait_ns_max, st.wait_ns_total);

  /* r1 holds the only slot: r2 times out. */
  claim_rec_init(&r2, &fx);
  assert_int_equal(fx_claim_async(&fx, &r2, 30), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&r2.calls) == 1, 2000);
  assert_int_not_equal(r2.status, 0);
  /* r3 is cancelled. */
  claim_rec_init(&r3, &fx);
  assert_int_equal(fx_claim_async(&fx, &r3, 5000), 0);
  assert_int_equal(qorb_pool_claim_cancel(fx.pool, r3.id), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&r3.calls) == 1, 2000);
  assert_int_equal(r3.status, QORB_ECANCELED);
  claim_rec_release(&r1);
  /* And the fast path again: no new wait. */
  held = fx_claim(&fx);
  fx_release(held);

  fx_stats(&fx, &st);
  assert_int_equal(st.waited, 3); /* r1, r2 (timed out), r3 (cancelled) */
  for (i = 0; i < QORB_WAIT_BUCKETS; i++) {
    sum += st.wait_hist[i];
    if (st.wait_hist[i] != 0) top = i;
  }
  assert_int_equal(sum, st.waited);
  /* The longest wait lies in the highest bucket used. */
  assert_true(st.wait_ns_max <= qorb_wait_bucket_le_ns(top));
  assert_true(top == 0 || st.wait_ns_max > qorb_wait_bucket_le_ns(top - 1));
  assert_true(st.wait_ns_max >= 25000000ull);
  assert_int_equal(st.failed[QORB_CLAIM_FAIL_TIMEOUT], 1);
  assert_int_equal(st.failed[QORB_CLAIM_FAIL_CANCELED], 1);
  for (i = 0; i < QORB_CLAIM_FAIL__COUNT; i++) failed += st.failed[i];
  assert_int_equal(failed, st.claim_failures);
  assert_int_equal(st.claim_failures, 2);
  fx_finish(&fx);
}

static void test_queue_full_counted(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  claim_rec_t r1, r2;
  qorb_claim_t *held;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx.policy.max_waiters = 1;
  fx_start(&fx);
  fx_set(&fx, A);
  held = fx_claim(&fx);
  claim_rec_init(&r1, &fx);
  claim_rec_init(&r2, &fx);
  assert_int_equal(fx_claim_async(&fx, &r1, 5000), 0);
  assert_int_equal(fx_claim_async(&fx, &r2, 5000), QORB_EQUEUEFULL);
  fx_stats(&fx, &st);
  assert_int_equal(st.queue_full, 1);
  fx_release(held);
  PUMP_UNTIL(fx.loop, atomic_load(&r1.calls) == 1, 2000);
  claim_rec_release(&r1);
  fx_finish(&fx);
}

static void test_close_broken_recycle_prepare(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  qorb_claim_t *c;
  (void)state;
  start(&fx, 0, 1);
  fx_release_broken(fx_claim(&fx));
  PUMP_UNTIL(fx.loop, closed(&fx, QORB_CLOSE_BROKEN) == 1, 2000);

  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 1, 2000);
  fake_connector_push(fx.fc, A, FC_RECYCLE, fc_fail(QORB_ERECYCLE));
  c = fx_claim(&fx);
  atomic_store(&fx_conn(c)->dirty, 1); /* so the release recycles it */
  fx_release(c);
  PUMP_UNTIL(fx.loop, closed(&fx, QORB_CLOSE_RECYCLE) == 1, 2000);

  /* The reconnect after it fails its prepare. */
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 1, 2000);
  fake_connector_push(fx.fc, A, FC_PREPARE, fc_fail(QORB_EACQUIRE));
  fx_release_broken(fx_claim(&fx));
  PUMP_UNTIL(fx.loop, closed(&fx, QORB_CLOSE_PREPARE) == 1, 2000);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 1, 2000);

  fx_stats(&fx, &st);
  assert_int_equal(st.closed[QORB_CLOSE_BROKEN], 2);
  assert_int_equal(closed_total(&st), 4);
  /* Opened: the first, and one after each of the four closes. */
  assert_int_equal(st.opened, 5);
  fx_finish(&fx);
}

static void test_close_health_and_died(void **state) {
  fx_t fx;
  fake_conn_t *c;
  (void)state;
  fx_init(&fx, FC_WATCH, 0);
  fx.policy.max_slots = 1;
  fx.policy.spares_wanted = 1;
  fx.policy.health_interval_ms = 30;
  fx_start(&fx);
  fx_set(&fx, A);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 1, 3000);
  fake_connector_push(fx.fc, A, FC_CHECK, fc_fail(QORB_ECHECK));
  PUMP_UNTIL(fx.loop, closed(&fx, QORB_CLOSE_HEALTH) == 1, 3000);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 1, 3000);
  c = fake_connector_conn(fx.fc, fake_connector_nconns(fx.fc));
  assert_true(atomic_load(&c->open));
  fake_conn_kill(c);
  PUMP_UNTIL(fx.loop, closed(&fx, QORB_CLOSE_DIED) == 1, 3000);
  assert_int_equal(closed(&fx, QORB_CLOSE_HEALTH), 1);
  fx_finish(&fx);
}

static void test_close_lifetime_removed_idle(void **state) {
  fx_t fx;
  qorb_claim_t *c[3];
  qorb_backend_stats_t b;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 4;
  fx.policy.spares_wanted = 1;
  fx.policy.max_lifetime_ms = 100;
  fx_start(&fx);
  fx_set(&fx, A);
  PUMP_UNTIL(fx.loop, closed(&fx, QORB_CLOSE_LIFETIME) >= 1, 3000);

  /* Over the demand, then idle past idle_timeout_ms: closed as idle. */
  fx_close(&fx);
  fx_finish(&fx);
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 4;
  fx.policy.spares_wanted = 1;
  fx.policy.idle_timeout_ms = 50;
  fx_start(&fx);
  fx_set(&fx, A);
  for (i = 0; i < 3; i++) c[i] = fx_claim(&fx);
  for (i = 0; i < 3; i++) fx_release(c[i]);
  PUMP_UNTIL(fx.loop, closed(&fx, QORB_CLOSE_IDLE) >= 1, 3000);
  assert_true(closed(&fx, QORB_CLOSE_IDLE) >= 1);

  /* The resolver drops A: its connections close as removed. */
  fx_set(&fx, B);
  PUMP_UNTIL(fx.loop, closed(&fx, QORB_CLOSE_REMOVED) >= 1, 3000);
  PUMP_UNTIL(fx.loop, !fx_backend(&fx, A, NULL), 3000);
  assert_true(fx_backend(&fx, B, &b));
  fx_finish(&fx);
}

static void test_oldest_claim(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  qorb_claim_t *c;
  (void)state;
  start(&fx, 0, 2);
  fx_stats(&fx, &st);
  assert_int_equal(st.oldest_claim_ms, -1);
  c = fx_claim(&fx);
  pump_for(fx.loop, 700);
  fx_stats(&fx, &st);
  /* Seen by the 250 ms tick: at least 700 - 250 (and a margin). */
  assert_true(st.oldest_claim_ms >= 350 && st.oldest_claim_ms < 5000);
  assert_non_null(strstr(st.oldest_claim_site, ".c:"));
  assert_string_equal(st.oldest_claim_backend.text, A);
  assert_true(st.uptime_ms >= 700);
  assert_string_equal(st.name, "test");
  fx_release(c);
  pump_for(fx.loop, 300);
  fx_stats(&fx, &st);
  assert_int_equal(st.oldest_claim_ms, -1);
  fx_finish(&fx);
}

static void test_backend_error_figures(void **state) {
  fx_t fx;
  qorb_backend_stats_t b;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx.policy.spares_wanted = 1;
  fake_connector_push(fx.fc, A, FC_CONNECT, fc_fail(QORB_ECONNECT));
  fake_connector_push(fx.fc, A, FC_CONNECT, fc_fail(QORB_ECONNECT));
  fake_connector_push(fx.fc, A, FC_CONNECT, fc_hang());
  fx_start(&fx);
  fx_set(&fx, A);
  PUMP_UNTIL(fx.loop, fx_backend(&fx, A, &b) && b.connect_failures == 2, 3000);
  assert_int_equal(b.connect_failures, 2);
  assert_true(b.failures >= 2);
  assert_true(b.last_error[0] != '\0');
  assert_true(b.last_error_age_ms >= 0 && b.last_error_age_ms < 3000);
  assert_int_equal(b.last_error_current, 1); /* offline */
  assert_int_equal(b.online_ms, -1);
  PUMP_UNTIL(fx.loop, fake_connector_pending(fx.fc, A, FC_CONNECT) != NULL,
             3000);
  fake_conn_complete(fake_connector_pending(fx.fc, A, FC_CONNECT), 0);
  PUMP_UNTIL(fx.loop, fx_backend(&fx, A, &b) && b.online, 3000);
  pump_for(fx.loop, 30);
  assert_true(fx_backend(&fx, A, &b));
  /* Online since after the error: a stale error, kept for the record. */
  assert_int_equal(b.last_error_current, 0);
  assert_true(b.last_error[0] != '\0');
  assert_true(b.online_ms >= 20 && b.online_ms < 3000);
  assert_true(b.last_error_age_ms >= b.online_ms);
  fx_release_broken(fx_claim(&fx));
  PUMP_UNTIL(fx.loop, fx_backend(&fx, A, &b) && b.closed == 1, 3000);
  fx_finish(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_and_buckets),
      cmocka_unit_test(test_waits_and_failures),
      cmocka_unit_test(test_queue_full_counted),
      cmocka_unit_test(test_close_broken_recycle_prepare),
      cmocka_unit_test(test_close_health_and_died),
      cmocka_unit_test(test_close_lifetime_removed_idle),
      cmocka_unit_test(test_oldest_claim),
      cmocka_unit_test(test_backend_error_figures),
  };
  return cmocka_run_group_tests_name("figures", tests, NULL, NULL);
}
