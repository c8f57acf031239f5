/* SPDX-License-Identifier: MIT */
/*
 * test_close.c: terminating a pool on the application's loop. Close returns
 * at once; waiting claims fail with QORB_ESHUTDOWN; idle, connecting,
 * backing-off, checking, preparing and recycling slots are closed (ops
 * aborted, not waited for); claimed ones close when released; the callback
 * runs exactly once, after which nothing of the pool is left on the loop.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "fixture.h"

#define A "127.0.0.1:1"
#define B "127.0.0.2:1"
#define C "127.0.0.3:1"
#define D "127.0.0.4:1"
#define E "127.0.0.5:1"

static unsigned long cnt(_Atomic unsigned long *x) { return atomic_load(x); }
static fc_backend_t *fb(fx_t *fx, const char *a) {
  return fake_connector_backend(fx->fc, a);
}

static void test_close_idle(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.spares_wanted = 3;
  fx_start(&fx);
  fx_set(&fx, A "," B);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 3, 3000);
  fx_close_begin(&fx);
  fx_stats(&fx, &st);
  assert_int_equal(st.closing, 1);
  fx_close_wait(&fx);
  assert_int_equal(fake_connector_open(fx.fc, NULL), 0);
  assert_int_equal(fake_resolver_set(fx.fr, A), QORB_EBUSY);
  fx_finish(&fx);
}

static void test_close_right_after_new(void **state) {
  fx_t fx;
  (void)state;
  fx_init(&fx, 0, 0);
  fake_resolver_set_initial(fx.fr, A "," B);
  fx_start(&fx);
  /* Not one loop iteration in between. */
  fx_close(&fx);
  fx_finish(&fx);
}

static void test_close_twice(void **state) {
  fx_t fx;
  (void)state;
  fx_init(&fx, 0, 0);
  fx_start(&fx);
  fx_set(&fx, A);
  fx_close_begin(&fx);
  assert_int_equal(qorb_pool_close(fx.pool, NULL, NULL), QORB_EBUSY);
  fx_close_wait(&fx);
  fx_finish(&fx);
}

static void test_close_null_callback(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  (void)state;
  fx_init(&fx, 0, 0);
  fx_start(&fx);
  fx_set(&fx, A);
  c = fx_claim(&fx);
  assert_int_equal(qorb_pool_close(fx.pool, NULL, NULL), 0);
  fx.close_requested = 1;
  fx_release(c);
  /* No callback to wait for: wait for the pool's last connection. */
  PUMP_UNTIL(fx.loop,
             fake_connector_destroyed(fx.fc) &&
                 atomic_load(&fx.fr->destroys) == 1,
             3000);
  pump_for(fx.loop, 20);
  fx.pool = NULL;
  atomic_store(&fx.close_calls, 1);
  fx_finish(&fx);
}

static void test_close_with_claimed(void **state) {
  fx_t fx;
  qorb_claim_t *c, *d = NULL;
  fake_conn_t *hc;
  claim_rec_t late;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.spares_wanted = 2;
  fx_start(&fx);
  fx_set(&fx, A);
  c = fx_claim(&fx);
  hc = fx_conn(c);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 2, 3000);
  fx_close_begin(&fx);
  /* Idle ones close; the claimed one waits for its claimant. */
  PUMP_UNTIL(fx.loop, fake_connector_open(fx.fc, NULL) == 1, 2000);
  pump_for(fx.loop, 30);
  assert_int_equal(atomic_load(&fx.close_calls), 0);
  assert_int_equal(atomic_load(&hc->open), 1);
  /* No new claims. */
  assert_int_equal(qorb_pool_try_claim(fx.pool, &d), QORB_ESHUTDOWN);
  assert_null(d);
  claim_rec_init(&late, &fx);
  assert_int_equal(fx_claim_async(&fx, &late, 100), QORB_ESHUTDOWN);
  /* Release (even a dirty one): closed, not recycled, and close finishes. */
  fake_conn_set_dirty(hc, 1);
  fx_release(c);
  fx_close_wait(&fx);
  assert_int_equal(atomic_load(&hc->open), 0);
  assert_int_equal(cnt(&fb(&fx, A)->n.recycles), 0);
  assert_int_equal(atomic_load(&late.calls), 0);
  fx_finish(&fx);
}

static void test_close_fails_waiters(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  claim_rec_t recs[3];
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx_start(&fx);
  fx_set(&fx, A);
  c = fx_claim(&fx);
  for (i = 0; i < 3; i++) {
    claim_rec_init(&recs[i], &fx);
    assert_int_equal(fx_claim_async(&fx, &recs[i], 10000), 0);
  }
  pump_for(fx.loop, 10);
  fx_close_begin(&fx);
  for (i = 0; i < 3; i++) assert_int_equal(atomic_load(&recs[i].calls), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&recs[2].calls) == 1, 2000);
  for (i = 0; i < 3; i++) {
    assert_int_equal(atomic_load(&recs[i].calls), 1);
    assert_int_equal(recs[i].status, QORB_ESHUTDOWN);
    assert_null(recs[i].claim);
  }
  fx_release(c);
  fx_close_wait(&fx);
  for (i = 0; i < 3; i++) assert_int_equal(atomic_load(&recs[i].calls), 1);
  fx_finish(&fx);
}

/* Close finishes well before a slow connect would have. */
static void test_close_slow_connect(void **state) {
  fx_t fx;
  double t0;
  (void)state;
  fx_init(&fx, 0, 0);
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_delay(1500, 0));
  fx_start(&fx);
  fx_set(&fx, A);
  pump_for(fx.loop, 20);
  assert_int_equal(atomic_load(&fb(&fx, A)->n.inflight_connects), 1);
  t0 = now_ms();
  fx_close(&fx);
  assert_true(now_ms() - t0 < 1000.0);
  assert_int_equal(cnt(&fb(&fx, A)->n.aborts_by_op[FC_CONNECT]), 1);
  fx_finish(&fx);
}

static void test_close_hung_connect(void **state) {
  fx_t fx;
  (void)state;
  fx_init(&fx, 0, 0);
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_hang());
  fx_start(&fx);
  fx_set(&fx, A "," B);
  PUMP_UNTIL(fx.loop, atomic_load(&fake_connector_total(fx.fc)->inflight_connects) == 2, 2000);
  fx_close(&fx);
  assert_int_equal(cnt(&fake_connector_total(fx.fc)->aborts_by_op[FC_CONNECT]), 2);
  fx_finish(&fx);
}

/* A backend waiting out a long backoff: its timer must not hold close up. */
static void test_close_in_backoff(void **state) {
  fx_t fx;
  double t0;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.min_backoff_ms = 5000;
  fx.policy.max_backoff_ms = 10000;
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_fail(-111));
  fx_start(&fx);
  fx_set(&fx, A);
  PUMP_UNTIL(fx.loop, cnt(&fb(&fx, A)->n.connects_failed) == 1, 2000);
  pump_for(fx.loop, 20);
  t0 = now_ms();
  fx_close(&fx);
  assert_true(now_ms() - t0 < 1000.0);
  fx_finish(&fx);
}

/*
 * Close with one op hung in flight on backend A: the op is aborted (the
 * connector's close runs once, its completion never), and close finishes.
 * The op's own timeout is long, so only close can end it.
 */
static void close_while(fc_op_t op, int dirty_release) {
  fx_t fx;
  fx_init(&fx, 0, 0);
  fx.policy.health_interval_ms = op == FC_CHECK ? 20 : 0;
  fx.policy.health_check_timeout_ms = 10000;
  fx.policy.acquire_timeout_ms = 10000;
  fx.policy.recycle_timeout_ms = 10000;
  fake_connector_set(fx.fc, NULL, op, fc_hang());
  fx_start(&fx);
  fx_set(&fx, A);
  if (dirty_release) {
    qorb_claim_t *c = fx_claim(&fx);
    fake_conn_set_dirty(fx_conn(c), 1);
    fx_release(c);
  }
  PUMP_UNTIL(fx.loop, fake_connector_pending(fx.fc, A, op) != NULL, 2000);
  fx_close(&fx);
  assert_int_equal(cnt(&fb(&fx, A)->n.aborts_by_op[op]), 1);
  fx_finish(&fx);
}

static void test_close_while_checking(void **state) {
  (void)state;
  close_while(FC_CHECK, 0);
}

static void test_close_while_preparing(void **state) {
  (void)state;
  close_while(FC_PREPARE, 0);
}

static void test_close_while_recycling(void **state) {
  (void)state;
  close_while(FC_RECYCLE, 1);
}

/* Everything at once: idle, claimed, waiting, connecting, slow, backing
   off, checking. */
static void test_close_everything(void **state) {
  fx_t fx;
  qorb_claim_t *held[2];
  claim_rec_t waiter;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 16;
  fx.policy.spares_wanted = 4;
  fx.policy.health_interval_ms = 20;
  fx.policy.health_check_timeout_ms = 10000;
  fx.policy.min_backoff_ms = 3000;
  fx.policy.max_backoff_ms = 3000;
  fake_connector_set(fx.fc, B, FC_CONNECT, fc_hang());
  fake_connector_set(fx.fc, C, FC_CONNECT, fc_delay(2000, 0));
  fake_connector_set(fx.fc, D, FC_CONNECT, fc_fail(-111));
  fake_connector_set(fx.fc, E, FC_CHECK, fc_hang());
  fx_start(&fx);
  fx_set(&fx, A);
  held[0] = fx_claim(&fx);
  held[1] = fx_claim(&fx);
  fx_set(&fx, A "," B "," C "," D "," E);
  PUMP_UNTIL(fx.loop, fake_connector_pending(fx.fc, E, FC_CHECK) != NULL &&
                          cnt(&fb(&fx, D)->n.connects_failed) >= 1 &&
                          fake_connector_pending(fx.fc, B, FC_CONNECT) != NULL &&
                          fake_connector_pending(fx.fc, C, FC_CONNECT) != NULL,
             3000);
  claim_rec_init(&waiter, &fx);
  /* Room for one more waiter whatever the state: a queued async claim. */
  (void)fx_claim_async(&fx, &waiter, 10000);
  fx_close_begin(&fx);
  /* The waiter may have been served just before the close: it then holds
     a third connection until it releases it. */
  PUMP_UNTIL(fx.loop, atomic_load(&waiter.calls) == 1, 2000);
  if (waiter.status == 0) claim_rec_release(&waiter);
  else assert_int_equal(waiter.status, QORB_ESHUTDOWN);
  PUMP_UNTIL(fx.loop, fake_connector_open(fx.fc, NULL) == 2, 2000);
  assert_int_equal(atomic_load(&fx.close_calls), 0);
  for (i = 0; i < 2; i++) fx_release(held[i]);
  fx_close_wait(&fx);
  fx_finish(&fx);
}

/* qorb_pool_close() and qorb_release() from inside a claim callback. */
static void close_in_cb(claim_rec_t *rec) {
  fx_t *fx = rec->fx;
  if (rec->status != 0) return;
  fx_close_begin(fx);
  claim_rec_release(rec);
}

static void test_close_from_claim_callback(void **state) {
  fx_t fx;
  claim_rec_t rec;
  (void)state;
  fx_init(&fx, 0, 0);
  fx_start(&fx);
  fx_set(&fx, A);
  claim_rec_init(&rec, &fx);
  rec.then = close_in_cb;
  assert_int_equal(fx_claim_async(&fx, &rec, 2000), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 2000);
  assert_int_equal(rec.status, 0);
  assert_int_equal(fx.close_requested, 1);
  fx_close_wait(&fx);
  fx_finish(&fx);
}

/* Releasing the last claim from inside another callback-driven path: the
   claim callback of a waiter that gets ESHUTDOWN releases the held one. */
static void release_other(claim_rec_t *rec) {
  qorb_claim_t *other = rec->user;
  if (rec->status == QORB_ESHUTDOWN && other != NULL) {
    fx_release(other);
    rec->user = NULL;
  }
}

static void test_release_inside_shutdown_callback(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  claim_rec_t rec;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx_start(&fx);
  fx_set(&fx, A);
  c = fx_claim(&fx);
  claim_rec_init(&rec, &fx);
  rec.then = release_other;
  rec.user = c;
  assert_int_equal(fx_claim_async(&fx, &rec, 5000), 0);
  pump_for(fx.loop, 10);
  fx_close_begin(&fx);
  fx_close_wait(&fx);
  assert_int_equal(rec.status, QORB_ESHUTDOWN);
  assert_null(rec.user);
  fx_finish(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_close_idle),
      cmocka_unit_test(test_close_right_after_new),
      cmocka_unit_test(test_close_twice),
      cmocka_unit_test(test_close_null_callback),
      cmocka_unit_test(test_close_with_claimed),
      cmocka_unit_test(test_close_fails_waiters),
      cmocka_unit_test(test_close_slow_connect),
      cmocka_unit_test(test_close_hung_connect),
      cmocka_unit_test(test_close_in_backoff),
      cmocka_unit_test(test_close_while_checking),
      cmocka_unit_test(test_close_while_preparing),
      cmocka_unit_test(test_close_while_recycling),
      cmocka_unit_test(test_close_everything),
      cmocka_unit_test(test_close_from_claim_callback),
      cmocka_unit_test(test_release_inside_shutdown_callback),
  };
  return cmocka_run_group_tests_name("close", tests, NULL, NULL);
}
