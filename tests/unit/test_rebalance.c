/* SPDX-License-Identifier: MIT */
/*
 * test_rebalance.c: how slots are spread. A new backend gets one slot; once
 * online, the online backends share min(claimed + waiters + spares,
 * max_slots) evenly, each capped by max_slots_per_backend, with at most
 * max_connecting_per_backend attempts in flight; an offline backend keeps
 * one probing slot (inside max_slots, a hard cap on connections); backends are ranked by recent failures, so a failing
 * one loses its slots and its claims. The resolver's set changes: swapped,
 * removed (also while claimed), emptied, re-added.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "fixture.h"

#define A "127.0.0.1:1"
#define B "127.0.0.2:1"
#define C "127.0.0.3:1"

static unsigned long cnt(_Atomic unsigned long *x) { return atomic_load(x); }
static fc_backend_t *fb(fx_t *fx, const char *a) {
  return fake_connector_backend(fx->fc, a);
}

/* Slots per backend add up to the pool's totals. */
static void check_totals(fx_t *fx) {
  qorb_pool_stats_t st;
  qorb_backend_stats_t bs[16];
  size_t n = 0, i;
  unsigned conn = 0, idle = 0, chk = 0, cl = 0, online = 0;
  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(fx->pool, &st, bs, 16, &n), 0);
  assert_int_equal(n, st.backends);
  for (i = 0; i < n && i < 16; i++) {
    conn += bs[i].connecting;
    idle += bs[i].idle;
    chk += bs[i].checking;
    cl += bs[i].claimed;
    online += bs[i].online ? 1u : 0u;
  }
  assert_int_equal(conn, st.connecting);
  assert_int_equal(idle, st.idle);
  assert_int_equal(chk, st.checking);
  assert_int_equal(cl, st.claimed);
  assert_int_equal(online, st.backends_online);
}

static void test_new_backend_one_slot_then_grow(void **state) {
  fx_t fx;
  qorb_backend_stats_t b;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 8;
  fx.policy.spares_wanted = 4;
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_delay(60, 0));
  fx_start(&fx);
  fx_set(&fx, A);
  pump_for(fx.loop, 25);
  assert_true(fx_backend(&fx, A, &b));
  assert_int_equal(b.connecting, 1);
  assert_int_equal(fx_slots(&fx, A), 1);
  check_totals(&fx);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 4, 3000);
  pump_for(fx.loop, 60);
  assert_int_equal(fx_slots(&fx, A), 4);
  assert_int_equal(fake_connector_open(fx.fc, A), 4);
  assert_true(atomic_load(&fb(&fx, A)->n.max_inflight_connects) <= 2);
  check_totals(&fx);
  fx_finish(&fx);
}

static void test_max_connecting_per_backend(void **state) {
  fx_t fx;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 10;
  fx.policy.spares_wanted = 10;
  fx.policy.max_connecting_per_backend = 3;
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_delay(30, 0));
  fx_start(&fx);
  fx_set(&fx, A);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 10, 5000);
  /* No connect storm: at most 3 attempts at a time, and 3 were used. */
  assert_int_equal(atomic_load(&fb(&fx, A)->n.max_inflight_connects), 3);
  fx_finish(&fx);
}

static void test_spread_evenly_over_three(void **state) {
  fx_t fx;
  unsigned sa, sb, sc, lo, hi;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 6;
  fx.policy.spares_wanted = 6;
  fx_start(&fx);
  fx_set(&fx, A "," B "," C);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 6, 3000);
  pump_for(fx.loop, 60);
  assert_int_equal(fx_slots(&fx, A), 2);
  assert_int_equal(fx_slots(&fx, B), 2);
  assert_int_equal(fx_slots(&fx, C), 2);
  assert_int_equal(fake_connector_open(fx.fc, NULL), 6);
  check_totals(&fx);
  fx_finish(&fx);

  /* 7 over 3: 3, 2, 2 in some order. */
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 7;
  fx.policy.spares_wanted = 7;
  fx_start(&fx);
  fx_set(&fx, A "," B "," C);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 7, 3000);
  pump_for(fx.loop, 60);
  sa = fx_slots(&fx, A);
  sb = fx_slots(&fx, B);
  sc = fx_slots(&fx, C);
  lo = sa < sb ? (sa < sc ? sa : sc) : (sb < sc ? sb : sc);
  hi = sa > sb ? (sa > sc ? sa : sc) : (sb > sc ? sb : sc);
  assert_int_equal(sa + sb + sc, 7);
  assert_true(hi - lo <= 1);
  fx_finish(&fx);
}

/* A settled pool leaves its connections alone: the odd slot of an uneven
   split does not move from backend to backend on every rebalance. */
static void test_no_churn_when_settled(void **state) {
  fx_t fx;
  unsigned long before;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 7;
  fx.policy.spares_wanted = 7;
  fx_start(&fx);
  fx_set(&fx, A "," B "," C);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 7, 3000);
  pump_for(fx.loop, 100);
  before = cnt(&fake_connector_total(fx.fc)->connects_started);
  pump_for(fx.loop, 500); /* 25 rebalance intervals */
  assert_int_equal(cnt(&fake_connector_total(fx.fc)->connects_started), before);
  assert_int_equal(cnt(&fake_connector_total(fx.fc)->closes), 0);
  fx_finish(&fx);
}

static void test_per_backend_cap(void **state) {
  fx_t fx;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 8;
  fx.policy.spares_wanted = 8;
  fx.policy.max_slots_per_backend = 3;
  fx_start(&fx);
  fx_set(&fx, A);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 3, 3000);
  pump_for(fx.loop, 80);
  assert_int_equal(fx_slots(&fx, A), 3);
  fx_set(&fx, A "," B);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 6, 3000);
  pump_for(fx.loop, 80);
  assert_int_equal(fx_slots(&fx, A), 3);
  assert_int_equal(fx_slots(&fx, B), 3);
  assert_true(atomic_load(&fb(&fx, A)->n.max_live) <= 3);
  fx_finish(&fx);
}

static void test_grows_with_demand_up_to_max(void **state) {
  fx_t fx;
  qorb_claim_t *c[4];
  claim_rec_t rec;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 4;
  fx.policy.spares_wanted = 1;
  fx_start(&fx);
  fx_set(&fx, A);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 1, 3000);
  pump_for(fx.loop, 40);
  assert_int_equal(fx_total_slots(&fx), 1);
  for (i = 0; i < 3; i++) c[i] = fx_claim(&fx);
  /* claimed + spares */
  PUMP_UNTIL(fx.loop, fx_total_slots(&fx) == 4 && fx_idle(&fx) == 1, 3000);
  c[3] = fx_claim(&fx);
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 60), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 3000);
  assert_int_equal(rec.status, QORB_EALLINUSE);
  assert_true(atomic_load(&fake_connector_total(fx.fc)->max_live) <= 4);
  for (i = 0; i < 4; i++) fx_release(c[i]);
  fx_finish(&fx);
}

/* min_conns is a floor under the demand (claimed + waiters + spares): open
   at start with no claim, and still open once demand has fallen for
   idle_timeout. */
static void test_min_conns_floor(void **state) {
  fx_t fx;
  qorb_claim_t *c[5];
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 6;
  fx.policy.spares_wanted = 1;
  fx.policy.min_conns = 3;
  fx.policy.idle_timeout_ms = 50;
  fx_start(&fx);
  fx_set(&fx, A);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 3, 3000);
  pump_for(fx.loop, 60);
  assert_int_equal(fx_total_slots(&fx), 3);
  /* Demand above the floor grows the pool ... */
  for (i = 0; i < 5; i++) {
    PUMP_UNTIL(fx.loop, fx_idle(&fx) >= 1, 3000);
    c[i] = fx_claim(&fx);
  }
  PUMP_UNTIL(fx.loop, fx_total_slots(&fx) == 6, 3000);
  for (i = 0; i < 5; i++) fx_release(c[i]);
  /* ... and once it has stayed low past idle_timeout, it shrinks to the
     floor, not below. */
  PUMP_UNTIL(fx.loop, fx_total_slots(&fx) == 3, 5000);
  pump_for(fx.loop, 200);
  assert_int_equal(fx_total_slots(&fx), 3);
  fx_finish(&fx);
}

/* Waiters count as demand: queued claims make the pool grow. */
static void test_waiters_are_demand(void **state) {
  fx_t fx;
  claim_rec_t recs[3];
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 4;
  fx.policy.spares_wanted = 0;
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_delay(20, 0));
  fx_start(&fx);
  fx_set(&fx, A);
  for (i = 0; i < 3; i++) {
    claim_rec_init(&recs[i], &fx);
    assert_int_equal(fx_claim_async(&fx, &recs[i], 3000), 0);
  }
  PUMP_UNTIL(fx.loop, atomic_load(&recs[2].calls) == 1, 3000);
  for (i = 0; i < 3; i++) {
    assert_int_equal(recs[i].status, 0);
    assert_int_equal(recs[i].seq > 0, 1);
  }
  for (i = 0; i < 3; i++) claim_rec_release(&recs[i]);
  fx_finish(&fx);
}

static void test_moves_away_from_failing_backend(void **state) {
  fx_t fx;
  qorb_backend_stats_t bb;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 6;
  fx.policy.spares_wanted = 6;
  fx.policy.health_interval_ms = 20;
  fx_start(&fx);
  fx_set(&fx, A "," B "," C);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 6, 3000);
  /* B dies: its checks and its connects fail from now on. */
  fake_connector_set(fx.fc, B, FC_CHECK, fc_fail(QORB_ECHECK));
  fake_connector_set(fx.fc, B, FC_CONNECT, fc_fail(-111));
  /* max_slots is a hard cap, the dead backend's probe included: A and C
     share max_slots - 1 = 5, as evenly as can be. */
  PUMP_UNTIL(fx.loop, fake_connector_open(fx.fc, B) <= 1 &&
                          fx_slots(&fx, A) + fx_slots(&fx, C) == 5 &&
                          fx_idle(&fx) == 5,
             5000);
  assert_true(fx_slots(&fx, A) >= 2 && fx_slots(&fx, A) <= 3);
  assert_true(fx_slots(&fx, C) >= 2 && fx_slots(&fx, C) <= 3);
  assert_int_equal(fx_slots(&fx, B), 1);
  /* Settled: A and C keep their connections. */
  {
    unsigned long a0 = cnt(&fb(&fx, A)->n.connects_started);
    unsigned long c0 = cnt(&fb(&fx, C)->n.connects_started);
    pump_for(fx.loop, 300);
    assert_int_equal(cnt(&fb(&fx, A)->n.connects_started), a0);
    assert_int_equal(cnt(&fb(&fx, C)->n.connects_started), c0);
  }
  assert_true(fx_backend(&fx, B, &bb));
  assert_int_equal(bb.online, 0);
  assert_true(bb.recent_failures >= 1);
  /* Claims go to A and C only. */
  for (i = 0; i < 30; i++) {
    qorb_claim_t *c = fx_claim(&fx);
    assert_string_not_equal(qorb_claim_addr(c)->text, B);
    fx_release(c);
  }
  /* B keeps probing, one attempt at a time. */
  assert_true(cnt(&fb(&fx, B)->n.connects_failed) >= 2);
  assert_int_equal(atomic_load(&fb(&fx, B)->n.max_inflight_connects) <= 2, 1);
  check_totals(&fx);
  fx_finish(&fx);
}

/* B connects fine but fails its checks: ranked last, it gets no claims. */
static void test_claims_prefer_fewer_failures(void **state) {
  fx_t fx;
  qorb_backend_stats_t ba, bb, bc;
  int i, on_b = 0;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 6;
  fx.policy.spares_wanted = 6;
  fx.policy.health_interval_ms = 20;
  fake_connector_set(fx.fc, B, FC_CHECK, fc_fail(QORB_ECHECK));
  fx_start(&fx);
  fx_set(&fx, A "," B "," C);
  PUMP_UNTIL(fx.loop, fx_backend(&fx, B, &bb) && bb.recent_failures >= 3,
             5000);
  PUMP_UNTIL(fx.loop, fx_backend(&fx, A, &ba) && ba.idle >= 1 &&
                          fx_backend(&fx, C, &bc) && bc.idle >= 1,
             3000);
  pump_for(fx.loop, 60);
  for (i = 0; i < 30; i++) {
    qorb_claim_t *c = fx_claim(&fx);
    if (strcmp(qorb_claim_addr(c)->text, B) == 0) on_b++;
    fx_release(c);
  }
  assert_int_equal(on_b, 0);
  assert_true(fx_backend(&fx, A, &ba));
  assert_true(fx_backend(&fx, C, &bc));
  assert_int_equal(ba.recent_failures, 0);
  assert_int_equal(bc.recent_failures, 0);
  assert_true(ba.claims + bc.claims >= 30);
  fx_finish(&fx);
}

/* recent_failures counts within failure_window_ms only. */
static void test_failure_window(void **state) {
  fx_t fx;
  qorb_backend_stats_t b;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.failure_window_ms = 150;
  for (i = 0; i < 3; i++)
    fake_connector_push(fx.fc, A, FC_CONNECT, fc_fail(-111));
  fx_start(&fx);
  fx_set(&fx, A);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 1, 3000);
  assert_true(fx_backend(&fx, A, &b));
  assert_true(b.recent_failures >= 1);
  assert_int_equal(b.failures, 3);
  PUMP_UNTIL(fx.loop, fx_backend(&fx, A, &b) && b.recent_failures == 0, 3000);
  /* The total stays. */
  assert_int_equal(b.failures, 3);
  fx_finish(&fx);
}

static void test_backend_swapped(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.spares_wanted = 2;
  fx_start(&fx);
  fx_set(&fx, A);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 2, 3000);
  fx_set(&fx, B);
  /* The old backend's idle connections close at once. */
  PUMP_UNTIL(fx.loop, fake_connector_open(fx.fc, A) == 0, 1000);
  PUMP_UNTIL(fx.loop, !fx_backend(&fx, A, NULL), 1000);
  for (i = 0; i < 10; i++) {
    qorb_claim_t *c = fx_claim(&fx);
    assert_string_equal(qorb_claim_addr(c)->text, B);
    assert_string_equal(fx_conn(c)->backend->addr, B);
    fx_release(c);
  }
  fx_stats(&fx, &st);
  assert_int_equal(st.backends, 1);
  assert_int_equal(cnt(&fb(&fx, A)->n.closes), cnt(&fb(&fx, A)->n.connects_started));
  fx_finish(&fx);
}

static void test_backend_removed_while_claimed(void **state) {
  fx_t fx;
  qorb_claim_t *held;
  fake_conn_t *hc;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.spares_wanted = 2;
  fx_start(&fx);
  fx_set(&fx, A);
  held = fx_claim(&fx);
  hc = fx_conn(held);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 2, 3000);
  fx_set(&fx, B);
  /* Idle ones close now; the claimed one stays with its claimant. */
  PUMP_UNTIL(fx.loop, fake_connector_open(fx.fc, A) == 1, 1000);
  assert_int_equal(atomic_load(&hc->open), 1);
  assert_string_equal(qorb_claim_addr(held)->text, A);
  for (i = 0; i < 5; i++) {
    qorb_claim_t *c = fx_claim(&fx);
    assert_string_equal(qorb_claim_addr(c)->text, B);
    fx_release(c);
  }
  /* Released: closed, never handed out again. */
  fake_conn_set_dirty(hc, 1);
  fx_release(held);
  PUMP_UNTIL(fx.loop, atomic_load(&hc->open) == 0, 1000);
  PUMP_UNTIL(fx.loop, !fx_backend(&fx, A, NULL), 1000);
  assert_int_equal(atomic_load(&hc->claims), 1);
  fx_finish(&fx);
}

static void test_all_backends_removed(void **state) {
  fx_t fx;
  claim_rec_t rec;
  qorb_pool_stats_t st;
  qorb_claim_t *c;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.spares_wanted = 2;
  fx_start(&fx);
  fx_set(&fx, A "," B);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 2, 3000);
  fx_set(&fx, "");
  PUMP_UNTIL(fx.loop, fake_connector_open(fx.fc, NULL) == 0, 1000);
  fx_stats(&fx, &st);
  assert_int_equal(st.backends, 0);
  assert_int_equal(st.idle + st.connecting + st.checking + st.claimed, 0);
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 50), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 2000);
  assert_int_equal(rec.status, QORB_ENOBACKENDS);
  /* And back again. */
  fx_set(&fx, A);
  c = fx_claim(&fx);
  assert_string_equal(qorb_claim_addr(c)->text, A);
  fx_release(c);
  fx_finish(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_backend_one_slot_then_grow),
      cmocka_unit_test(test_max_connecting_per_backend),
      cmocka_unit_test(test_spread_evenly_over_three),
      cmocka_unit_test(test_no_churn_when_settled),
      cmocka_unit_test(test_per_backend_cap),
      cmocka_unit_test(test_grows_with_demand_up_to_max),
      cmocka_unit_test(test_min_conns_floor),
      cmocka_unit_test(test_waiters_are_demand),
      cmocka_unit_test(test_moves_away_from_failing_backend),
      cmocka_unit_test(test_claims_prefer_fewer_failures),
      cmocka_unit_test(test_failure_window),
      cmocka_unit_test(test_backend_swapped),
      cmocka_unit_test(test_backend_removed_while_claimed),
      cmocka_unit_test(test_all_backends_removed),
  };
  return cmocka_run_group_tests_name("rebalance", tests, NULL, NULL);
}
