/* SPDX-License-Identifier: MIT */
/*
 * test_slot.c: one slot's life. Slow and hung connects, synchronous
 * completions, backoff (doubling to its cap, spread within bounds), health
 * checks (periodic, only on idle slots, failed or hung ones replaced with
 * backoff), prepare after every connect and recycle, recycle on release
 * (failed or timed out: closed, never handed out), release as broken,
 * max_lifetime (replaced without a failed claim, expiries spread) and
 * idle_timeout (shrink back to the spares).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#define A1 "127.0.0.1:1"

static double ns_to_ms(uint64_t ns) { return (double)ns / 1e6; }

static fc_backend_t *b1(fx_t *fx) { return fake_connector_backend(fx->fc, A1); }

static unsigned long cnt(_Atomic unsigned long *x) { return atomic_load(x); }

static void test_slow_connector(void **state) {
  fx_t fx;
  claim_rec_t rec;
  qorb_pool_stats_t st;
  qorb_backend_stats_t b;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.spares_wanted = 3;
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_delay(150, 0));
  fx_start(&fx);
  fx_set(&fx, A1);
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 3000), 0);
  pump_for(fx.loop, 30);
  /* A new backend starts with one slot, connecting. */
  assert_true(fx_backend(&fx, A1, &b));
  assert_int_equal(b.connecting, 1);
  assert_int_equal(b.online, 0);
  assert_int_equal(b.idle + b.claimed + b.checking, 0);
  assert_int_equal(atomic_load(&b1(&fx)->n.inflight_connects), 1);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 3000);
  assert_int_equal(rec.status, 0);
  assert_true(rec.done_ms - rec.start_ms >= 140.0);
  fx_stats(&fx, &st);
  assert_int_equal(st.backends_online, 1);
  claim_rec_release(&rec);
  fx_finish(&fx);
}

static void test_connect_timeout(void **state) {
  fx_t fx;
  qorb_backend_stats_t b;
  qorb_claim_t *c;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.connect_timeout_ms = 40;
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_hang());
  fx_start(&fx);
  fx_set(&fx, A1);
  /* The pool aborts the hung connect by closing it, then tries again. */
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.aborts_by_op[FC_CONNECT]) >= 2, 3000);
  assert_true(fx_backend(&fx, A1, &b));
  assert_true(b.failures >= 1);
  assert_int_equal(b.online, 0);
  assert_true(strlen(b.last_error) > 0);
  assert_int_equal(cnt(&b1(&fx)->n.connects_ok), 0);
  /* Each attempt lasted about connect_timeout_ms. */
  {
    fake_conn_t *first = fake_connector_conn(fx.fc, 1);
    double lived = ns_to_ms(first->closed_ns - first->opened_ns);
    assert_true(lived >= 35.0);
    assert_true(lived < 1000.0);
  }
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_ok());
  c = fx_claim(&fx);
  fx_release(c);
  fx_finish(&fx);
}

/* A connect that fails before starting (returns < 0) is retried too. */
static void test_connect_refused_at_start(void **state) {
  fx_t fx;
  qorb_backend_stats_t b;
  qorb_claim_t *c;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  for (i = 0; i < 3; i++)
    fake_connector_push(fx.fc, A1, FC_CONNECT, fc_refuse(-111));
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  assert_int_equal(cnt(&b1(&fx)->n.connects_refused), 3);
  assert_true(fx_backend(&fx, A1, &b));
  assert_true(b.failures >= 3);
  fx_release(c);
  fx_finish(&fx);
}

/* Every op completing inside the op itself, successes and failures. */
static void test_synchronous_completion(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.health_interval_ms = 20;
  fake_connector_push(fx.fc, NULL, FC_CONNECT, fc_sync(QORB_ECONNECT));
  fake_connector_push(fx.fc, NULL, FC_PREPARE, fc_sync(QORB_EACQUIRE));
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_sync(0));
  fake_connector_set(fx.fc, NULL, FC_PREPARE, fc_sync(0));
  fake_connector_set(fx.fc, NULL, FC_CHECK, fc_sync(0));
  fake_connector_set(fx.fc, NULL, FC_RECYCLE, fc_sync(0));
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  for (i = 0; i < 5; i++) {
    fake_conn_set_dirty(fx_conn(c), 1);
    fx_release(c);
    c = fx_claim(&fx);
  }
  fx_release(c);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.checks) >= 3, 3000);
  /* A failing synchronous check, a failing synchronous recycle. */
  fake_connector_push(fx.fc, NULL, FC_CHECK, fc_sync(QORB_ECHECK));
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.checks_failed) == 1, 3000);
  fake_connector_push(fx.fc, NULL, FC_RECYCLE, fc_sync(QORB_ERECYCLE));
  c = fx_claim(&fx);
  fake_conn_set_dirty(fx_conn(c), 1);
  fx_release(c);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.recycles_failed) == 1, 3000);
  c = fx_claim(&fx);
  fx_release(c);
  assert_int_equal(cnt(&b1(&fx)->n.connects_failed), 1);
  assert_int_equal(cnt(&b1(&fx)->n.prepares_failed), 1);
  fx_finish(&fx);
}

/* Gaps from each failure to the next attempt, in ms. */
static int backoff_gaps(fc_backend_t *b, double *gaps, int max) {
  unsigned nf = atomic_load(&b->nfail_done);
  unsigned ns = atomic_load(&b->nconnect_start);
  int n = 0;
  unsigned i;
  for (i = 0; i + 1 < ns && i < nf && n < max; i++)
    gaps[n++] = ns_to_ms(b->connect_start_ns[i + 1] - b->fail_done_ns[i]);
  return n;
}

static void test_backoff_doubles_to_max(void **state) {
  fx_t fx;
  double gaps[16];
  int n, i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.min_backoff_ms = 20;
  fx.policy.max_backoff_ms = 160;
  fx.policy.backoff_spread_ms = 1;
  fx.policy.spares_wanted = 3;
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_fail(-111));
  fx_start(&fx);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, atomic_load(&b1(&fx)->nconnect_start) >= 9, 5000);
  n = backoff_gaps(b1(&fx), gaps, 8);
  assert_true(n >= 8);
  for (i = 0; i < n; i++) {
    double want = 20.0 * (double)(1u << (i < 3 ? i : 3));
    if (gaps[i] < want - 2.0 || gaps[i] > want + 1.0 + 60.0)
      fail_msg("backoff gap %d = %.1f ms, expected %.0f ms (+spread)", i,
               gaps[i], want);
  }
  /* An offline backend keeps one probing slot: never two attempts at once. */
  assert_int_equal(atomic_load(&b1(&fx)->n.max_inflight_connects), 1);
  fx_finish(&fx);
}

static void test_backoff_spread(void **state) {
  fx_t fx;
  double gaps[32], sum = 0, lo = 1e9, hi = -1e9, mean;
  int n, i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.min_backoff_ms = 10;
  fx.policy.max_backoff_ms = 10;
  fx.policy.backoff_spread_ms = 40;
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_fail(-111));
  fx_start(&fx);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, atomic_load(&b1(&fx)->nconnect_start) >= 25, 8000);
  n = backoff_gaps(b1(&fx), gaps, 24);
  assert_true(n >= 24);
  for (i = 0; i < n; i++) {
    double extra = gaps[i] - 10.0;
    if (extra < -2.0 || extra > 40.0 + 40.0)
      fail_msg("gap %d = %.1f ms: spread out of [0, 40) ms", i, gaps[i]);
    sum += extra;
    if (extra < lo) lo = extra;
    if (extra > hi) hi = extra;
  }
  mean = sum / n;
  /* Uniform in [0, 40): mean near 20, and not the same every time. */
  if (mean < 5.0 || mean > 35.0) fail_msg("mean spread %.1f ms", mean);
  if (hi - lo < 5.0) fail_msg("spread not random: %.1f .. %.1f ms", lo, hi);
  fx_finish(&fx);
}

static void test_health_checks_only_idle(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  unsigned long before;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx.policy.health_interval_ms = 20;
  fx_start(&fx);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.checks) >= 3, 3000);
  c = fx_claim(&fx);
  before = cnt(&b1(&fx)->n.checks);
  /* Claimed: no check (the fake also reports a check of a claimed conn). */
  pump_for(fx.loop, 120);
  assert_int_equal(cnt(&b1(&fx)->n.checks), before);
  fx_release(c);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.checks) >= before + 2, 3000);
  assert_int_equal(cnt(&b1(&fx)->n.closes), 0);
  fx_finish(&fx);
}

static void test_health_check_off(void **state) {
  fx_t fx;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.health_interval_ms = 0;
  fx_start(&fx);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) >= 1, 2000);
  pump_for(fx.loop, 150);
  assert_int_equal(cnt(&b1(&fx)->n.checks), 0);
  fx_finish(&fx);
}

static void test_health_check_failure_reconnects(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  qorb_backend_stats_t b;
  double gap;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx.policy.health_interval_ms = 20;
  fx.policy.min_backoff_ms = 40;
  fx.policy.max_backoff_ms = 400;
  fx_start(&fx);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.checks) >= 1, 3000);
  fake_connector_push(fx.fc, A1, FC_CHECK, fc_fail(QORB_ECHECK));
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.checks_failed) == 1, 3000);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.closes) == 1, 3000);
  assert_int_equal(atomic_load(&fake_connector_conn(fx.fc, 1)->open), 0);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.connects_ok) == 2, 3000);
  /* The reconnect waited min_backoff_ms after the failure. */
  gap = ns_to_ms(b1(&fx)->connect_start_ns[1] - b1(&fx)->fail_done_ns[0]);
  if (gap < 38.0) fail_msg("reconnect %.1f ms after a failed check", gap);
  assert_true(fx_backend(&fx, A1, &b));
  assert_true(b.failures >= 1);
  assert_non_null(strstr(b.last_error, "fake check failed"));
  c = fx_claim(&fx);
  assert_int_equal(fx_conn(c)->id, 2);
  fx_release(c);
  fx_finish(&fx);
}

static void test_health_check_hung(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx.policy.health_interval_ms = 20;
  fx.policy.health_check_timeout_ms = 40;
  fake_connector_push(fx.fc, A1, FC_CHECK, fc_hang());
  fx_start(&fx);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.aborts_by_op[FC_CHECK]) == 1, 3000);
  {
    fake_conn_t *first = fake_connector_conn(fx.fc, 1);
    assert_int_equal(atomic_load(&first->open), 0);
  }
  c = fx_claim(&fx);
  assert_int_equal(fx_conn(c)->id, 2);
  fx_release(c);
  fx_finish(&fx);
}

/* prepare runs after connect and before any claim can see the connection. */
static void test_prepare_before_claim(void **state) {
  fx_t fx;
  qorb_claim_t *c = NULL;
  qorb_pool_stats_t st;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fake_connector_set(fx.fc, NULL, FC_PREPARE, fc_delay(80, 0));
  fx_start(&fx);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.connects_ok) == 1, 2000);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.prepares) == 1, 2000);
  assert_int_equal(qorb_pool_try_claim(fx.pool, &c), QORB_EAGAIN);
  fx_stats(&fx, &st);
  assert_int_equal(st.idle, 0);
  assert_int_equal(st.checking, 1);
  c = fx_claim(&fx);
  assert_int_equal(atomic_load(&fx_conn(c)->needs_prepare), 0);
  fx_release(c);
  fx_finish(&fx);
}

static void test_prepare_failure_never_handed_out(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  qorb_backend_stats_t b;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fake_connector_push(fx.fc, A1, FC_PREPARE, fc_delay(30, QORB_EACQUIRE));
  fx_start(&fx);
  fx_set(&fx, A1);
  /* fx_claim polls try_claim all along: conn 1 is never seen. */
  c = fx_claim(&fx);
  assert_int_equal(fx_conn(c)->id, 2);
  assert_int_equal(atomic_load(&fake_connector_conn(fx.fc, 1)->claims), 0);
  assert_int_equal(atomic_load(&fake_connector_conn(fx.fc, 1)->open), 0);
  assert_true(fx_backend(&fx, A1, &b));
  assert_true(b.failures >= 1);
  assert_non_null(strstr(b.last_error, "prepare"));
  fx_release(c);
  fx_finish(&fx);
}

static void test_prepare_hung(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx.policy.acquire_timeout_ms = 40;
  fake_connector_push(fx.fc, A1, FC_PREPARE, fc_hang());
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  assert_int_equal(fx_conn(c)->id, 2);
  assert_int_equal(cnt(&b1(&fx)->n.aborts_by_op[FC_PREPARE]), 1);
  assert_int_equal(atomic_load(&fake_connector_conn(fx.fc, 1)->claims), 0);
  fx_release(c);
  fx_finish(&fx);
}

/* needs_recycle 1: recycle, then prepare, then claimable; same connection. */
static void test_recycle_then_prepare(void **state) {
  fx_t fx;
  qorb_claim_t *c, *d = NULL;
  qorb_pool_stats_t st;
  unsigned id;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fake_connector_set(fx.fc, NULL, FC_RECYCLE, fc_delay(60, 0));
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  id = fx_conn(c)->id;
  fake_conn_set_dirty(fx_conn(c), 1);
  fx_release(c);
  /* Not claimable while it is being cleaned. */
  assert_int_equal(qorb_pool_try_claim(fx.pool, &d), QORB_EAGAIN);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.recycles) == 1, 2000);
  assert_int_equal(qorb_pool_try_claim(fx.pool, &d), QORB_EAGAIN);
  fx_stats(&fx, &st);
  assert_int_equal(st.checking, 1);
  assert_int_equal(st.idle, 0);
  c = fx_claim(&fx);
  assert_int_equal(fx_conn(c)->id, id);
  assert_int_equal(cnt(&b1(&fx)->n.prepares), 2);
  assert_true(cnt(&b1(&fx)->n.needs_recycle_calls) >= 1);
  fx_release(c);
  fx_finish(&fx);
}

static void test_recycle_failure_closes(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  qorb_backend_stats_t b;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fake_connector_push(fx.fc, A1, FC_RECYCLE, fc_delay(20, QORB_ERECYCLE));
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  assert_int_equal(fx_conn(c)->id, 1);
  fake_conn_set_dirty(fx_conn(c), 1);
  fx_release(c);
  /* Polling claims never get conn 1 back (it stays dirty in the fake). */
  c = fx_claim(&fx);
  assert_int_equal(fx_conn(c)->id, 2);
  assert_int_equal(atomic_load(&fake_connector_conn(fx.fc, 1)->open), 0);
  assert_int_equal(atomic_load(&fake_connector_conn(fx.fc, 1)->claims), 1);
  assert_true(fx_backend(&fx, A1, &b));
  assert_true(b.failures >= 1);
  assert_non_null(strstr(b.last_error, "recycle"));
  fx_release(c);
  fx_finish(&fx);
}

static void test_recycle_timeout_closes(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx.policy.recycle_timeout_ms = 40;
  fake_connector_push(fx.fc, A1, FC_RECYCLE, fc_hang());
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  fake_conn_set_dirty(fx_conn(c), 1);
  fx_release(c);
  c = fx_claim(&fx);
  assert_int_equal(fx_conn(c)->id, 2);
  assert_int_equal(cnt(&b1(&fx)->n.aborts_by_op[FC_RECYCLE]), 1);
  fx_release(c);
  fx_finish(&fx);
}

/* needs_recycle < 0: broken; closed without a recycle, replaced. */
static void test_needs_recycle_broken(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  fake_conn_set_dirty(fx_conn(c), QORB_ECLOSED);
  fx_release(c);
  c = fx_claim(&fx);
  assert_int_equal(fx_conn(c)->id, 2);
  assert_int_equal(cnt(&b1(&fx)->n.recycles), 0);
  assert_int_equal(atomic_load(&fake_connector_conn(fx.fc, 1)->open), 0);
  fx_release(c);
  fx_finish(&fx);
}

static void test_release_broken(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx_start(&fx);
  fx_set(&fx, A1);
  c = fx_claim(&fx);
  /* Even one that says it only needs a recycle: broken means closed. */
  fake_conn_set_dirty(fx_conn(c), 1);
  fx_release_broken(c);
  c = fx_claim(&fx);
  assert_int_equal(fx_conn(c)->id, 2);
  assert_int_equal(cnt(&b1(&fx)->n.recycles), 0);
  assert_int_equal(atomic_load(&fake_connector_conn(fx.fc, 1)->open), 0);
  fx_release(c);
  fx_finish(&fx);
}

/* No needs_recycle op: recycle runs on every release. */
static void test_recycle_always_without_needs_recycle(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  int i;
  (void)state;
  fx_init(&fx, FC_NO_NEEDS_RECYCLE, 0);
  fx.policy.max_slots = 1;
  fx_start(&fx);
  fx_set(&fx, A1);
  for (i = 0; i < 3; i++) {
    c = fx_claim(&fx);
    assert_int_equal(fx_conn(c)->id, 1);
    fx_release(c);
  }
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.recycles) == 3, 2000);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.prepares) == 4, 2000);
  fx_finish(&fx);
}

/* A connector without check, prepare or recycle works too. */
static void test_minimal_connector(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  int i;
  (void)state;
  fx_init(&fx, FC_NO_CHECK | FC_NO_PREPARE | FC_NO_RECYCLE, 0);
  fx.policy.health_interval_ms = 20;
  fx_start(&fx);
  fx_set(&fx, A1);
  for (i = 0; i < 3; i++) {
    c = fx_claim(&fx);
    fx_release(c);
  }
  pump_for(fx.loop, 60);
  c = fx_claim(&fx);
  fx_release(c);
  fx_finish(&fx);
}

/* ---- max_lifetime ------------------------------------------------------- */

#define NDRV 400
typedef struct driver {
  fx_t *fx;
  ev_timer t;
  claim_rec_t recs[NDRV];
  int n, refused, timeout_ms;
} driver_t;

static void driver_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  driver_t *d = w->data;
  (void)loop;
  (void)revents;
  if (d->n >= NDRV) return;
  claim_rec_init(&d->recs[d->n], d->fx);
  d->recs[d->n].release_in_cb = 1;
  if (fx_claim_async(d->fx, &d->recs[d->n], d->timeout_ms) != 0) d->refused++;
  d->n++;
}

static int driver_done(void *arg) {
  driver_t *d = arg;
  int i;
  for (i = 0; i < d->n; i++)
    if (atomic_load(&d->recs[i].calls) == 0) return 0;
  return 1;
}

static void test_lifetime_replaces_without_failing_claims(void **state) {
  fx_t fx;
  driver_t *d = calloc(1, sizeof(*d));
  unsigned i, n, retired = 0;
  double close_start;
  (void)state;
  assert_non_null(d);
  fx_init(&fx, 0, 0);
  /* Demand is at most 2 (one claim at a time plus a spare): there is
     always room under max_slots to connect a replacement first. */
  fx.policy.max_slots = 4;
  fx.policy.spares_wanted = 1;
  /* Times large enough that a loaded machine's scheduling delays (tens of
     milliseconds under the sanitizers) stay well inside them. */
  fx.policy.max_lifetime_ms = 600;
  /* Connecting takes longer than a claim may wait: a gap would show. */
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_delay(240, 0));
  fx_start(&fx);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) >= 1, 3000);
  d->fx = &fx;
  d->timeout_ms = 160;
  /* NDRV claims, one every 10 ms: they span the whole 4 s. */
  ev_timer_init(&d->t, driver_cb, 0.010, 0.010);
  d->t.data = d;
  ev_timer_start(fx.loop, &d->t);
  pump_for(fx.loop, 4000);
  ev_timer_stop(fx.loop, &d->t);
  assert_true(pump_until_fn(fx.loop, driver_done, d, 3000));
  close_start = now_ms();
  for (i = 0; i < (unsigned)d->n; i++)
    if (d->recs[i].status != 0)
      fail_msg("claim %u of %d failed with %s during lifetime replacement", i,
               d->n, qorb_err_name(d->recs[i].status));
  assert_int_equal(d->refused, 0);
  assert_true(d->n >= 100);
  /* Several generations went by. */
  assert_true(cnt(&b1(&fx)->n.connects_ok) >= 5);
  n = fake_connector_nconns(fx.fc);
  for (i = 1; i <= n; i++) {
    fake_conn_t *c = fake_connector_conn(fx.fc, i);
    double age;
    if (atomic_load(&c->open) || !atomic_load(&c->connected)) continue;
    if (ns_to_ms(c->closed_ns) >= close_start) continue;
    age = ns_to_ms(c->closed_ns - c->connected_ns);
    retired++;
    /* max_lifetime minus up to 2.5%, and not much later: the replacement
       connects in 240 ms, and the old one closes when it is up. */
    if (age < 600.0 * 0.975 - 2.0 || age > 600.0 + 240.0 + 400.0)
      fail_msg("conn %u retired at age %.1f ms (max_lifetime 600)", c->id, age);
  }
  assert_true(retired >= 4);
  fx_finish(&fx);
  free(d);
}

static void test_lifetime_expiries_spread(void **state) {
  fx_t fx;
  double lo = 1e18, hi = 0;
  unsigned i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 8;
  fx.policy.spares_wanted = 8;
  fx.policy.max_connecting_per_backend = 8;
  fx.policy.max_lifetime_ms = 2000;
  fx_start(&fx);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.connects_ok) >= 8, 3000);
  PUMP_UNTIL(fx.loop, fake_connector_conn(fx.fc, 8) != NULL &&
                          !atomic_load(&fake_connector_conn(fx.fc, 8)->open) &&
                          !atomic_load(&fake_connector_conn(fx.fc, 1)->open),
             5000);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.closes) >= 8, 3000);
  for (i = 1; i <= 8; i++) {
    fake_conn_t *c = fake_connector_conn(fx.fc, i);
    double at = ns_to_ms(c->closed_ns), age;
    assert_int_equal(atomic_load(&c->open), 0);
    age = at - ns_to_ms(c->connected_ns);
    if (age < 2000.0 * 0.975 - 2.0 || age > 2000.0 + 150.0)
      fail_msg("conn %u retired at age %.1f ms (max_lifetime 2000)", i, age);
    if (at < lo) lo = at;
    if (at > hi) hi = at;
  }
  /* Jitter spreads expiries of connections made together. */
  if (hi - lo < 5.0) fail_msg("8 expiries within %.2f ms", hi - lo);
  fx_finish(&fx);
}

static void test_idle_timeout_shrinks(void **state) {
  fx_t fx;
  qorb_claim_t *c[5];
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 6;
  fx.policy.spares_wanted = 1;
  fx.policy.idle_timeout_ms = 150;
  fx_start(&fx);
  fx_set(&fx, A1);
  for (i = 0; i < 5; i++) c[i] = fx_claim(&fx);
  PUMP_UNTIL(fx.loop, fx_total_slots(&fx) == 6, 3000);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 1, 3000);
  for (i = 0; i < 5; i++) fx_release(c[i]);
  pump_for(fx.loop, 40);
  /* Too soon to shrink. */
  assert_int_equal(fx_total_slots(&fx), 6);
  PUMP_UNTIL(fx.loop, fx_total_slots(&fx) == 1, 3000);
  PUMP_UNTIL(fx.loop, fake_connector_open(fx.fc, NULL) == 1, 3000);
  assert_int_equal(cnt(&b1(&fx)->n.closes), 5);
  /* Demand comes back: the pool grows again. */
  for (i = 0; i < 3; i++) c[i] = fx_claim(&fx);
  for (i = 0; i < 3; i++) fx_release(c[i]);
  fx_finish(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slow_connector),
      cmocka_unit_test(test_connect_timeout),
      cmocka_unit_test(test_connect_refused_at_start),
      cmocka_unit_test(test_synchronous_completion),
      cmocka_unit_test(test_backoff_doubles_to_max),
      cmocka_unit_test(test_backoff_spread),
      cmocka_unit_test(test_health_checks_only_idle),
      cmocka_unit_test(test_health_check_off),
      cmocka_unit_test(test_health_check_failure_reconnects),
      cmocka_unit_test(test_health_check_hung),
      cmocka_unit_test(test_prepare_before_claim),
      cmocka_unit_test(test_prepare_failure_never_handed_out),
      cmocka_unit_test(test_prepare_hung),
      cmocka_unit_test(test_recycle_then_prepare),
      cmocka_unit_test(test_recycle_failure_closes),
      cmocka_unit_test(test_recycle_timeout_closes),
      cmocka_unit_test(test_needs_recycle_broken),
      cmocka_unit_test(test_release_broken),
      cmocka_unit_test(test_recycle_always_without_needs_recycle),
      cmocka_unit_test(test_minimal_connector),
      cmocka_unit_test(test_lifetime_replaces_without_failing_claims),
      cmocka_unit_test(test_lifetime_expiries_spread),
      cmocka_unit_test(test_idle_timeout_shrinks),
  };
  return cmocka_run_group_tests_name("slot", tests, NULL, NULL);
}
