/* SPDX-License-Identifier: MIT */
/*
 * test_claim.c: claims on the application's loop. try_claim, asynchronous
 * claims (never completed inside the call), waiting in FIFO order, the
 * bounded queue, cancellation, and the failure reasons: no backends, none
 * online (at once when every backend has failed), all in use, queue full,
 * terminated.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "fixture.h"

#define A1 "127.0.0.1:1"
#define A2 "127.0.0.2:1"

static void test_claim_one_backend(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  fake_conn_t *conn;
  qorb_pool_stats_t st;
  qorb_backend_stats_t b;
  (void)state;
  fx_init(&fx, 0, 0);
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  conn = fx_conn(c);
  assert_true(atomic_load(&conn->open));
  assert_string_equal(conn->backend->addr, A1);
  assert_non_null(qorb_claim_addr(c));
  assert_string_equal(qorb_claim_addr(c)->text, A1);
  assert_int_equal(qorb_claim_addr(c)->port, 1);
  fx_stats(&fx, &st);
  assert_int_equal(st.claimed, 1);
  assert_int_equal(st.claims, 1);
  assert_int_equal(st.backends, 1);
  assert_int_equal(st.backends_online, 1);
  assert_int_equal(st.closing, 0);
  assert_true(fx_backend(&fx, A1, &b));
  assert_int_equal(b.claimed, 1);
  assert_int_equal(b.claims, 1);
  assert_int_equal(b.online, 1);
  assert_true(b.connects >= 1);
  assert_int_equal(b.failures, 0);
  assert_string_equal(b.last_error, "");
  fx_release(c);
  fx_stats(&fx, &st);
  assert_int_equal(st.claimed, 0);
  fx_finish(&fx);
}

/* A clean release goes straight back: the next try_claim needs no loop turn. */
static void test_fast_path_no_loop(void **state) {
  fx_t fx;
  qorb_claim_t *c, *d;
  unsigned id;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  id = fx_conn(c)->id;
  for (i = 0; i < 1000; i++) {
    fx_release(c);
    assert_int_equal(fx_try_claim(&fx, &d), 0);
    assert_int_equal(fx_conn(d)->id, id);
    c = d;
  }
  fx_release(c);
  /* No recycle and no prepare ran for clean releases. */
  assert_int_equal(atomic_load(&fake_connector_total(fx.fc)->recycles), 0);
  assert_int_equal(atomic_load(&fake_connector_total(fx.fc)->prepares), 1);
  fx_finish(&fx);
}

static void test_async_claim_never_inside_call(void **state) {
  fx_t fx;
  claim_rec_t rec;
  (void)state;
  fx_init(&fx, 0, 0);
  fx_start(&fx);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) >= 1, 2000);
  /* An idle connection exists, and still the callback waits for the loop. */
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 1000), 0);
  assert_int_equal(atomic_load(&rec.calls), 0);
  assert_int_equal(rec.called_inside, 0);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 2000);
  assert_int_equal(rec.status, 0);
  assert_non_null(rec.claim);
  claim_rec_release(&rec);
  pump_for(fx.loop, 10);
  assert_int_equal(atomic_load(&rec.calls), 1);
  fx_finish(&fx);
}

static void test_claim_before_any_backend(void **state) {
  fx_t fx;
  claim_rec_t rec;
  qorb_claim_t *c = NULL;
  qorb_pool_stats_t st;
  (void)state;
  fx_init(&fx, 0, 0);
  fx_start(&fx);
  /* Nothing known yet: try_claim cannot wait, a claim can. */
  assert_int_equal(qorb_pool_try_claim(fx.pool, &c), QORB_EAGAIN);
  assert_null(c);
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 3000), 0);
  pump_for(fx.loop, 50);
  assert_int_equal(atomic_load(&rec.calls), 0);
  fx_stats(&fx, &st);
  assert_int_equal(st.waiters, 1);
  assert_int_equal(st.backends, 0);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 2000);
  assert_int_equal(rec.status, 0);
  assert_string_equal(rec.conn->backend->addr, A1);
  fx_stats(&fx, &st);
  assert_int_equal(st.waiters, 0);
  claim_rec_release(&rec);
  fx_finish(&fx);
}

static void test_no_backends_at_timeout(void **state) {
  fx_t fx;
  claim_rec_t rec;
  qorb_pool_stats_t st;
  (void)state;
  fx_init(&fx, 0, 0);
  fx_start(&fx);
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 60), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 3000);
  assert_int_equal(rec.status, QORB_ENOBACKENDS);
  assert_null(rec.claim);
  /* It waited for a backend to appear, up to its timeout. */
  assert_true(rec.done_ms - rec.start_ms >= 55.0);
  fx_stats(&fx, &st);
  assert_int_equal(st.claim_failures, 1);
  assert_int_equal(st.waiters, 0);
  fx_finish(&fx);
}

/* Known but not yet connected (the connect hangs): ENOTONLINE at timeout. */
static void test_not_online_at_timeout(void **state) {
  fx_t fx;
  claim_rec_t rec;
  (void)state;
  fx_init(&fx, 0, 0);
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_hang());
  fx_start(&fx);
  fx_set(&fx, A1);
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 60), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 3000);
  assert_int_equal(rec.status, QORB_ENOTONLINE);
  assert_true(rec.done_ms - rec.start_ms >= 55.0);
  fx_finish(&fx);
}

/* Every known backend has failed: claims fail at once, not at timeout. */
static void test_not_online_at_once(void **state) {
  fx_t fx;
  claim_rec_t waiting, late;
  qorb_claim_t *c = NULL;
  (void)state;
  fx_init(&fx, 0, 0);
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_delay(30, QORB_ECONNECT));
  fx_start(&fx);
  fx_set(&fx, A1 "," A2);
  /* Queued before the failures: fails when the last backend fails. */
  claim_rec_init(&waiting, &fx);
  assert_int_equal(fx_claim_async(&fx, &waiting, 5000), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&waiting.calls) == 1, 3000);
  assert_int_equal(waiting.status, QORB_ENOTONLINE);
  assert_true(waiting.done_ms - waiting.start_ms < 1000.0);
  /* Later claims too, without waiting for their timeout. */
  claim_rec_init(&late, &fx);
  assert_int_equal(fx_claim_async(&fx, &late, 5000), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&late.calls) == 1, 3000);
  assert_int_equal(late.status, QORB_ENOTONLINE);
  assert_true(late.done_ms - late.start_ms < 1000.0);
  assert_int_equal(qorb_pool_try_claim(fx.pool, &c), QORB_ENOTONLINE);
  assert_null(c);
  fx_finish(&fx);
}

/* One backend failed, another not yet answered: wait (not all have failed). */
static void test_not_online_waits_while_one_untried(void **state) {
  fx_t fx;
  claim_rec_t rec;
  (void)state;
  fx_init(&fx, 0, 0);
  fake_connector_set(fx.fc, A1, FC_CONNECT, fc_fail(QORB_ECONNECT));
  fake_connector_set(fx.fc, A2, FC_CONNECT, fc_hang());
  fx_start(&fx);
  fx_set(&fx, A1 "," A2);
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 80), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 3000);
  assert_int_equal(rec.status, QORB_ENOTONLINE);
  assert_true(rec.done_ms - rec.start_ms >= 75.0);
  fx_finish(&fx);
}

/* A backend that comes back serves claims again. */
static void test_recovers_after_failures(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  for (i = 0; i < 3; i++)
    fake_connector_push(fx.fc, A1, FC_CONNECT, fc_fail(-111));
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  assert_int_equal(atomic_load(&fake_connector_backend(fx.fc, A1)->n.connects_failed), 3);
  fx_release(c);
  fx_finish(&fx);
}

static void test_all_in_use(void **state) {
  fx_t fx;
  qorb_claim_t *c1, *c2;
  claim_rec_t rec;
  qorb_pool_stats_t st;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 2;
  fx.policy.spares_wanted = 2;
  fx_start(&fx);
  fx_set(&fx, A1);
  c1 = fx_claim(&fx);
  c2 = fx_claim(&fx);
  assert_ptr_not_equal(c1, c2);
  assert_int_not_equal(fx_conn(c1)->id, fx_conn(c2)->id);
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 60), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 3000);
  assert_int_equal(rec.status, QORB_EALLINUSE);
  assert_true(rec.done_ms - rec.start_ms >= 55.0);
  fx_stats(&fx, &st);
  assert_int_equal(st.timeouts, 1);
  assert_int_equal(st.claim_failures, 1);
  assert_int_equal(st.claims, 2);
  /* Never more than max_slots connections. */
  assert_true(atomic_load(&fake_connector_total(fx.fc)->max_live) <= 2);
  fx_release(c1);
  fx_release(c2);
  fx_finish(&fx);
}

/* Waiters are served in the order they came, with release in the callback. */
static void test_fifo_release_in_callback(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  claim_rec_t recs[6];
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  claim_rec_reset_seq();
  for (i = 0; i < 6; i++) {
    claim_rec_init(&recs[i], &fx);
    recs[i].release_in_cb = 1;
    assert_int_equal(fx_claim_async(&fx, &recs[i], 3000), 0);
  }
  pump_for(fx.loop, 20);
  for (i = 0; i < 6; i++) assert_int_equal(atomic_load(&recs[i].calls), 0);
  fx_release(c);
  PUMP_UNTIL(fx.loop, atomic_load(&recs[5].calls) == 1, 3000);
  for (i = 0; i < 6; i++) {
    assert_int_equal(atomic_load(&recs[i].calls), 1);
    assert_int_equal(recs[i].status, 0);
    assert_int_equal(recs[i].seq, i + 1);
    assert_int_equal(recs[i].called_inside, 0);
  }
  fx_finish(&fx);
}

/* The same with claims held and released by the test one by one. */
static void test_fifo_held(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  claim_rec_t recs[5];
  int i, j;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 2;
  fx.policy.spares_wanted = 2;
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  {
    qorb_claim_t *c2 = fx_claim(&fx);
    claim_rec_reset_seq();
    for (i = 0; i < 5; i++) {
      claim_rec_init(&recs[i], &fx);
      assert_int_equal(fx_claim_async(&fx, &recs[i], 5000), 0);
    }
    pump_for(fx.loop, 20);
    fx_release(c2);
  }
  /* One slot frees at a time; each time exactly the oldest waiter gets it. */
  for (i = 0; i < 5; i++) {
    PUMP_UNTIL(fx.loop, atomic_load(&recs[i].calls) == 1, 3000);
    pump_for(fx.loop, 5);
    for (j = i + 1; j < 5; j++) assert_int_equal(atomic_load(&recs[j].calls), 0);
    assert_int_equal(recs[i].status, 0);
    assert_int_equal(recs[i].seq, i + 1);
    claim_rec_release(&recs[i]);
  }
  fx_release(c);
  fx_finish(&fx);
}

/* A released connection goes to the oldest waiter, not to a try_claim. */
static void test_try_claim_does_not_jump_queue(void **state) {
  fx_t fx;
  qorb_claim_t *c, *d = NULL;
  claim_rec_t rec;
  int rc;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 3000), 0);
  pump_for(fx.loop, 10);
  fx_release(c);
  rc = qorb_pool_try_claim(fx.pool, &d);
  assert_int_equal(rc, QORB_EAGAIN);
  assert_null(d);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 3000);
  assert_int_equal(rec.status, 0);
  claim_rec_release(&rec);
  fx_finish(&fx);
}

static void test_queue_full(void **state) {
  fx_t fx;
  qorb_claim_t *c, *d = NULL;
  claim_rec_t recs[3];
  qorb_pool_stats_t st;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx.policy.max_waiters = 2;
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  for (i = 0; i < 3; i++) claim_rec_init(&recs[i], &fx);
  assert_int_equal(fx_claim_async(&fx, &recs[0], 5000), 0);
  assert_int_equal(fx_claim_async(&fx, &recs[1], 5000), 0);
  /* The third is refused at once, and its callback never runs. */
  assert_int_equal(fx_claim_async(&fx, &recs[2], 5000), QORB_EQUEUEFULL);
  assert_int_equal(qorb_pool_try_claim(fx.pool, &d), QORB_EAGAIN);
  pump_for(fx.loop, 30);
  assert_int_equal(atomic_load(&recs[2].calls), 0);
  fx_stats(&fx, &st);
  assert_int_equal(st.waiters, 2);
  assert_int_equal(st.queue_full, 1);
  /* Room again once the queue drains. */
  fx_release(c);
  PUMP_UNTIL(fx.loop, atomic_load(&recs[0].calls) == 1, 3000);
  claim_rec_release(&recs[0]);
  PUMP_UNTIL(fx.loop, atomic_load(&recs[1].calls) == 1, 3000);
  assert_int_equal(fx_claim_async(&fx, &recs[2], 5000), 0);
  claim_rec_release(&recs[1]);
  PUMP_UNTIL(fx.loop, atomic_load(&recs[2].calls) == 1, 3000);
  assert_int_equal(recs[2].status, 0);
  claim_rec_release(&recs[2]);
  pump_for(fx.loop, 10);
  assert_int_equal(atomic_load(&recs[2].calls), 1);
  fx_finish(&fx);
}

static void test_cancel(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  claim_rec_t a, b;
  qorb_pool_stats_t st;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  claim_rec_init(&a, &fx);
  claim_rec_init(&b, &fx);
  assert_int_equal(fx_claim_async(&fx, &a, 5000), 0);
  assert_int_equal(fx_claim_async(&fx, &b, 5000), 0);
  assert_int_not_equal(a.id, b.id);
  assert_int_equal(qorb_pool_claim_cancel(fx.pool, a.id), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&a.calls) == 1, 2000);
  assert_int_equal(a.status, QORB_ECANCELED);
  assert_null(a.claim);
  /* Once is all. */
  assert_int_equal(qorb_pool_claim_cancel(fx.pool, a.id), QORB_EAGAIN);
  fx_stats(&fx, &st);
  assert_int_equal(st.waiters, 1);
  /* The next waiter moves up. */
  fx_release(c);
  PUMP_UNTIL(fx.loop, atomic_load(&b.calls) == 1, 2000);
  assert_int_equal(b.status, 0);
  assert_int_equal(qorb_pool_claim_cancel(fx.pool, b.id), QORB_EAGAIN);
  claim_rec_release(&b);
  pump_for(fx.loop, 10);
  assert_int_equal(atomic_load(&a.calls), 1);
  assert_int_equal(atomic_load(&b.calls), 1);
  fx_finish(&fx);
}

/* Claims and releases from inside claim callbacks. */
static void reclaim_then(claim_rec_t *rec) {
  claim_rec_t *next = rec->user;
  if (next != NULL && rec->status == 0) {
    /* Release, then claim again, both from inside the callback. */
    claim_rec_release(rec);
    next->in_call = 1;
    assert_int_equal(qorb_pool_claim(rec->fx->pool, 2000, claim_rec_cb, next,
                                     &next->id),
                     0);
    next->in_call = 0;
  }
}

static void test_claim_inside_callback(void **state) {
  fx_t fx;
  claim_rec_t recs[4];
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx_start(&fx);
  fx_set(&fx, A1);
  for (i = 0; i < 4; i++) {
    claim_rec_init(&recs[i], &fx);
    recs[i].then = reclaim_then;
    recs[i].user = i < 3 ? &recs[i + 1] : NULL;
  }
  assert_int_equal(fx_claim_async(&fx, &recs[0], 2000), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&recs[3].calls) == 1, 3000);
  for (i = 0; i < 4; i++) {
    assert_int_equal(recs[i].status, 0);
    assert_int_equal(recs[i].called_inside, 0);
  }
  claim_rec_release(&recs[3]);
  fx_finish(&fx);
}

/* Every failure reason, produced on one pool, each distinct. */
static void test_failure_reasons_distinct(void **state) {
  fx_t fx;
  claim_rec_t r_nobackends, r_notonline, r_allinuse, r_waiter, r_full;
  qorb_claim_t *c;
  int codes[5], i, j, rc;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx.policy.max_waiters = 1;
  fake_connector_set(fx.fc, A1, FC_CONNECT, fc_fail(QORB_ECONNECT));
  fx_start(&fx);

  claim_rec_init(&r_nobackends, &fx);
  assert_int_equal(fx_claim_async(&fx, &r_nobackends, 30), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&r_nobackends.calls) == 1, 2000);
  codes[0] = r_nobackends.status;

  fx_set(&fx, A1);
  claim_rec_init(&r_notonline, &fx);
  assert_int_equal(fx_claim_async(&fx, &r_notonline, 3000), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&r_notonline.calls) == 1, 2000);
  codes[1] = r_notonline.status;

  fx_set(&fx, A1 "," A2);
  c = fx_claim(&fx);
  assert_string_equal(qorb_claim_addr(c)->text, A2);
  claim_rec_init(&r_allinuse, &fx);
  assert_int_equal(fx_claim_async(&fx, &r_allinuse, 30), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&r_allinuse.calls) == 1, 2000);
  codes[2] = r_allinuse.status;

  claim_rec_init(&r_waiter, &fx);
  claim_rec_init(&r_full, &fx);
  assert_int_equal(fx_claim_async(&fx, &r_waiter, 5000), 0);
  codes[3] = fx_claim_async(&fx, &r_full, 5000);

  fx_close_begin(&fx);
  PUMP_UNTIL(fx.loop, atomic_load(&r_waiter.calls) == 1, 2000);
  codes[4] = r_waiter.status;
  rc = qorb_pool_claim(fx.pool, 10, claim_rec_cb, &r_full, NULL);
  assert_int_equal(rc, QORB_ESHUTDOWN);
  fx_release(c);
  fx_close_wait(&fx);

  assert_int_equal(codes[0], QORB_ENOBACKENDS);
  assert_int_equal(codes[1], QORB_ENOTONLINE);
  assert_int_equal(codes[2], QORB_EALLINUSE);
  assert_int_equal(codes[3], QORB_EQUEUEFULL);
  assert_int_equal(codes[4], QORB_ESHUTDOWN);
  for (i = 0; i < 5; i++)
    for (j = 0; j < i; j++) assert_int_not_equal(codes[i], codes[j]);
  assert_int_equal(atomic_load(&r_full.calls), 0);
  fx_finish(&fx);
}

/* The counters say what happened, exactly. */
static void test_stats_counts(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  qorb_pool_stats_t st;
  qorb_backend_stats_t b;
  fc_backend_t *fb;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx.policy.health_interval_ms = 20;
  fake_connector_push(fx.fc, A1, FC_CONNECT, fc_fail(QORB_ECONNECT));
  fake_connector_push(fx.fc, A1, FC_CONNECT, fc_refuse(-111));
  fake_connector_push(fx.fc, A1, FC_PREPARE, fc_fail(QORB_EACQUIRE));
  fake_connector_push(fx.fc, A1, FC_CHECK, fc_fail(QORB_ECHECK));
  fake_connector_push(fx.fc, A1, FC_RECYCLE, fc_fail(QORB_ERECYCLE));
  fx_start(&fx);
  fx_set(&fx, A1);
  fb = fake_connector_backend(fx.fc, A1);
  PUMP_UNTIL(fx.loop, atomic_load(&fb->n.checks_failed) == 1, 3000);
  c = fx_claim(&fx);
  fake_conn_set_dirty(fx_conn(c), 1);
  fx_release(c);
  PUMP_UNTIL(fx.loop, atomic_load(&fb->n.recycles_failed) == 1, 3000);
  for (i = 0; i < 5; i++) {
    c = fx_claim(&fx);
    fx_release(c);
  }
  assert_true(fx_backend(&fx, A1, &b));
  /* A failed connect, a refused one, a prepare, a check, a recycle. */
  assert_int_equal(b.failures, 5);
  assert_int_equal(b.connects, atomic_load(&fb->n.connects_ok));
  assert_int_equal(b.claims, 6);
  assert_true(b.recent_failures >= 1 && b.recent_failures <= 5);
  assert_non_null(strstr(b.last_error, "recycle"));
  fx_stats(&fx, &st);
  assert_int_equal(st.claims, 6);
  assert_int_equal(st.claim_failures, 0);
  assert_int_equal(st.timeouts, 0);
  assert_int_equal(st.queue_full, 0);
  assert_int_equal(st.leaks, 0);
  fx_finish(&fx);
}

/* stats fills at most `cap` backends, reports how many exist, and honours
   the caller's idea of sizeof(qorb_backend_stats_t) (older callers). */
static void test_stats_cap_and_size(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  qorb_backend_stats_t bs[3];
  unsigned char raw[3 * offsetof(qorb_backend_stats_t, last_error) + 16];
  size_t n = 0, small = offsetof(qorb_backend_stats_t, last_error), i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.spares_wanted = 3;
  fx_start(&fx);
  fx_set(&fx, A1 "," A2 ",127.0.0.3:1");
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 3, 3000);
  memset(bs, 0xa5, sizeof(bs));
  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(fx.pool, &st, bs, 1, &n), 0);
  assert_int_equal(n, 3);
  assert_int_equal(st.backends, 3);
  assert_true(bs[0].addr.port == 1);
  assert_int_equal(((unsigned char *)&bs[1])[0], 0xa5);
  assert_int_equal(((unsigned char *)&bs[2])[sizeof(bs[2]) - 1], 0xa5);
  /* No array at all: counts only. */
  n = 0;
  assert_int_equal(qorb_pool_stats(fx.pool, &st, NULL, 0, &n), 0);
  assert_int_equal(n, 3);
  /* A caller whose backend struct ends before last_error. */
  memset(raw, 0xa5, sizeof(raw));
  qorb_pool_stats_init_(&st, sizeof(st), small);
  assert_int_equal(qorb_pool_stats(fx.pool, &st, (qorb_backend_stats_t *)(void *)raw, 3, &n), 0);
  assert_int_equal(n, 3);
  for (i = 0; i < 3; i++) {
    qorb_backend_stats_t one;
    memcpy(&one, raw + i * small, small);
    assert_int_equal(one.addr.port, 1);
    assert_int_equal(one.online, 1);
  }
  for (i = 3 * small; i < sizeof(raw); i++) assert_int_equal(raw[i], 0xa5);
  fx_finish(&fx);
}

/* The core ignores duplicate addresses in a resolver's set. */
static void test_update_duplicates(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  (void)state;
  fx_init(&fx, 0, 0);
  fx_start(&fx);
  fx_set(&fx, A1 "," A1 "," A2 "," A1);
  PUMP_UNTIL(fx.loop, (fx_stats(&fx, &st), st.backends_online == 2), 3000);
  pump_for(fx.loop, 20);
  fx_stats(&fx, &st);
  assert_int_equal(st.backends, 2);
  fx_finish(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_claim_one_backend),
      cmocka_unit_test(test_fast_path_no_loop),
      cmocka_unit_test(test_async_claim_never_inside_call),
      cmocka_unit_test(test_claim_before_any_backend),
      cmocka_unit_test(test_no_backends_at_timeout),
      cmocka_unit_test(test_not_online_at_timeout),
      cmocka_unit_test(test_not_online_at_once),
      cmocka_unit_test(test_not_online_waits_while_one_untried),
      cmocka_unit_test(test_recovers_after_failures),
      cmocka_unit_test(test_all_in_use),
      cmocka_unit_test(test_fifo_release_in_callback),
      cmocka_unit_test(test_fifo_held),
      cmocka_unit_test(test_try_claim_does_not_jump_queue),
      cmocka_unit_test(test_queue_full),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_claim_inside_callback),
      cmocka_unit_test(test_failure_reasons_distinct),
      cmocka_unit_test(test_stats_counts),
      cmocka_unit_test(test_stats_cap_and_size),
      cmocka_unit_test(test_update_duplicates),
  };
  return cmocka_run_group_tests_name("claim", tests, NULL, NULL);
}
