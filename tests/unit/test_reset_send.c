/* SPDX-License-Identifier: MIT */
/*
 * test_reset_send.c: the reset sent by the releasing thread (connector
 * ops reset_send and reset_finish), over the fake connector with
 * FC_RESET_SEND on a pool with its own loop thread: the release sends and
 * stores the connection IDLE, pending; the next owner reads the answer
 * before anyone uses it (a claim of a connection still dirty is a
 * violation of the fake's); a failed reset closes the connection; a claim
 * that never waits does not wait for the answer, and the pool loop reads
 * it when it arrives; asynchronous claims queued send releases through the
 * loop's recycle.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"

#define A "127.0.0.1:1"

static fc_counts_t *total(fx_t *fx) { return fake_connector_total(fx->fc); }

static unsigned waiters(fx_t *fx) {
  qorb_pool_stats_t st;
  fx_stats(fx, &st);
  return st.waiters;
}

/* A pool of one connection on its own thread, up and idle. */
static void start_one(fx_t *fx, unsigned flags) {
  fx_init(fx, flags | FC_NO_CHECK | FC_NO_PREPARE, 1);
  fx->policy.max_slots = 1;
  fx->policy.spares_wanted = 1;
  fake_resolver_set_initial(fx->fr, A);
  fx_start(fx);
  WAIT_UNTIL(fx_idle(fx) == 1, 5000);
}

/* Claim with claim_wait (the blocking path) and take the fake's hold. */
static qorb_claim_t *claim_blocking(fx_t *fx) {
  qorb_claim_t *c = NULL;
  assert_int_equal(qorb_pool_claim_wait(fx->pool, 5000, &c), 0);
  assert_int_equal(fake_conn_acquire(fx_conn(c), (uintptr_t)c), 0);
  return c;
}

/* Claim, make the session dirty, release: the reset is sent. */
static fake_conn_t *dirty_release(fx_t *fx) {
  qorb_claim_t *c = claim_blocking(fx);
  fake_conn_t *conn = fx_conn(c);
  fake_conn_set_dirty(conn, 1);
  fx_release(c);
  return conn;
}

static void test_sent_by_releaser_read_by_claimant(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  fake_conn_t *conn;
  int round;
  (void)state;
  start_one(&fx, FC_RESET_SEND);
  for (round = 1; round <= 3; round++) {
    conn = dirty_release(&fx);
    assert_int_equal(atomic_load(&total(&fx)->reset_sends), (unsigned long)round);
    /* No trip through the loop's recycle. */
    assert_int_equal(atomic_load(&total(&fx)->recycles), 0);
    c = claim_blocking(&fx); /* the fake's acquire: clean, or a violation */
    assert_ptr_equal(fx_conn(c), conn);
    assert_int_equal(atomic_load(&total(&fx)->reset_finishes), (unsigned long)round);
    fx_release(c);
  }
  assert_int_equal(atomic_load(&total(&fx)->connects_ok), 1);
  fx_finish(&fx);
}

static void test_failed_reset_closes(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  fake_conn_t *conn;
  qorb_pool_stats_t st;
  qorb_backend_stats_t b;
  (void)state;
  start_one(&fx, FC_RESET_SEND);
  fake_connector_reset_script(fx.fc, 0, QORB_ERECYCLE, 0);
  conn = dirty_release(&fx);
  /* The claim reads the failure, gives that connection up and waits for a
     new one: never the dirty one. */
  c = claim_blocking(&fx);
  assert_ptr_not_equal(fx_conn(c), conn);
  assert_int_equal(atomic_load(&conn->open), 0);
  fx_release(c);
  fx_stats(&fx, &st);
  assert_int_equal(st.closed[QORB_CLOSE_RECYCLE], 1);
  assert_true(fx_backend(&fx, A, &b));
  assert_non_null(strstr(b.last_error, "scripted failure"));
  fake_connector_reset_script(fx.fc, 0, 0, 0);
  fx_finish(&fx);
}

static void test_declined_send_goes_through_the_loop(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  (void)state;
  start_one(&fx, FC_RESET_SEND);
  fake_connector_reset_script(fx.fc, 1, 0, 0); /* "needs the loop" */
  (void)dirty_release(&fx);
  WAIT_UNTIL(atomic_load(&total(&fx)->recycles) == 1, 5000);
  c = claim_blocking(&fx);
  assert_int_equal(atomic_load(&total(&fx)->reset_finishes), 0);
  fx_release(c);
  fake_connector_reset_script(fx.fc, 0, 0, 0);
  fx_finish(&fx);
}

/* try_claim never waits for the answer; the loop reads it when it comes
   (the idle watch) and the connection is claimable, clean. */
static void test_try_claim_does_not_wait(void **state) {
  fx_t fx;
  qorb_claim_t *c = NULL;
  fake_conn_t *conn;
  (void)state;
  start_one(&fx, FC_RESET_SEND | FC_WATCH);
  fake_connector_reset_script(fx.fc, 0, 0, 1); /* the answer comes late */
  conn = dirty_release(&fx);
  assert_int_equal(fx_try_claim(&fx, &c), QORB_EAGAIN);
  assert_null(c);
  assert_true(atomic_load(&total(&fx)->reset_finishes_nowait) >= 1);
  assert_int_equal(atomic_load(&conn->reset_sent), 1);
  fake_conn_answer(conn);
  WAIT_UNTIL(atomic_load(&conn->reset_sent) == 0, 5000);
  WAIT_UNTIL(fx_idle(&fx) == 1, 5000);
  assert_int_equal(fx_try_claim(&fx, &c), 0);
  assert_ptr_equal(fx_conn(c), conn);
  fx_release(c);
  fake_connector_reset_script(fx.fc, 0, 0, 0);
  fx_finish(&fx);
}

/* Nobody claims: the loop reads the answer by itself. */
static void test_loop_settles_idle(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  fake_conn_t *conn;
  (void)state;
  start_one(&fx, FC_RESET_SEND | FC_WATCH);
  conn = dirty_release(&fx);
  WAIT_UNTIL(atomic_load(&conn->reset_sent) == 0, 5000);
  assert_int_equal(atomic_load(&total(&fx)->reset_finishes_nowait), 1);
  WAIT_UNTIL(fx_idle(&fx) == 1, 5000);
  c = claim_blocking(&fx);
  assert_int_equal(atomic_load(&total(&fx)->reset_finishes), 1);
  fx_release(c);
  fx_finish(&fx);
}

static void async_cb(qorb_pool_t *pool, int status, qorb_claim_t *claim,
                     void *arg) {
  (void)pool;
  (void)status;
  *(qorb_claim_t *_Atomic *)arg = claim;
}

/* With an asynchronous claim queued, a release goes through the loop's
   recycle: the loop serves that claim and must never wait for an answer. */
static void test_async_waiter_takes_the_loop_path(void **state) {
  fx_t fx;
  qorb_claim_t *c, *_Atomic got = NULL;
  (void)state;
  start_one(&fx, FC_RESET_SEND);
  c = claim_blocking(&fx);
  assert_int_equal(qorb_pool_claim(fx.pool, 5000, async_cb, (void *)&got, NULL), 0);
  WAIT_UNTIL(waiters(&fx) == 1, 5000);
  fake_conn_set_dirty(fx_conn(c), 1);
  fx_release(c);
  WAIT_UNTIL(atomic_load(&got) != NULL, 5000);
  assert_int_equal(atomic_load(&total(&fx)->reset_sends), 0);
  assert_int_equal(atomic_load(&total(&fx)->recycles), 1);
  assert_int_equal(fake_conn_acquire(fx_conn(got), (uintptr_t)got), 0);
  fx_release(got);
  fx_finish(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sent_by_releaser_read_by_claimant),
      cmocka_unit_test(test_failed_reset_closes),
      cmocka_unit_test(test_declined_send_goes_through_the_loop),
      cmocka_unit_test(test_try_claim_does_not_wait),
      cmocka_unit_test(test_loop_settles_idle),
      cmocka_unit_test(test_async_waiter_takes_the_loop_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
