/* SPDX-License-Identifier: MIT */
/*
 * test_health.c: claims stay healthy while connections die. An idle
 * connection that the server closes, or that receives something nobody
 * asked for, is found by the pool loop's watch at once (no health check
 * runs in these tests) and replaced, never handed out; one death has the
 * backend's other idle connections checked; a claim may validate a
 * connection that sat idle too long; a sibling held by a claimant when one
 * dies is looked at when it comes back; a claimant that wins the slot before
 * the watch simply has it (many rounds, threads: clean under
 * ThreadSanitizer); claims wait through a short outage and fail early only
 * after fail_fast_after_ms; a stale claim handle is refused.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fixture.h"

#define A1 "127.0.0.1:1"
#define A2 "127.0.0.2:1"

static fc_backend_t *b1(fx_t *fx) { return fake_connector_backend(fx->fc, A1); }

static unsigned long cnt(_Atomic unsigned long *x) { return atomic_load(x); }

/* The open connection of `fx` with the lowest id, or NULL. */
static fake_conn_t *first_open(fx_t *fx) {
  unsigned i, n = fake_connector_nconns(fx->fc);
  for (i = 1; i <= n; i++) {
    fake_conn_t *c = fake_connector_conn(fx->fc, i);
    if (c != NULL && atomic_load(&c->open)) return c;
  }
  return NULL;
}

static void start_idle(fx_t *fx, unsigned flags, unsigned n) {
  fx_init(fx, flags, 0);
  fx->policy.max_slots = n;
  fx->policy.spares_wanted = n;
  fx_start(fx);
  fx_set(fx, A1);
  PUMP_UNTIL(fx->loop, fx_idle(fx) == n, 3000);
}

/* Claim every connection once (all must be open and not `dead`). */
static void claims_avoid(fx_t *fx, unsigned n, const fake_conn_t *dead) {
  qorb_claim_t *c[8];
  unsigned i;
  for (i = 0; i < n; i++) {
    c[i] = fx_claim(fx);
    assert_ptr_not_equal(fx_conn(c[i]), dead);
    assert_true(atomic_load(&fx_conn(c[i])->open));
  }
  for (i = 0; i < n; i++) fx_release(c[i]);
}

static void test_idle_close_found_at_once(void **state) {
  fx_t fx;
  fake_conn_t *dead;
  (void)state;
  start_idle(&fx, FC_WATCH, 2);
  dead = first_open(&fx);
  fake_conn_kill(dead);
  /* No health check runs (health_interval_ms is 0): only the watch. */
  PUMP_UNTIL(fx.loop, !atomic_load(&dead->open), 3000);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 2, 3000);
  assert_int_equal(cnt(&b1(&fx)->n.connects_ok), 3);
  assert_int_equal(cnt(&b1(&fx)->n.peeks_dead), 1);
  /* The one check is of the sibling, warned by the death. */
  assert_int_equal(cnt(&b1(&fx)->n.checks), 1);
  claims_avoid(&fx, 2, dead);
  fx_finish(&fx);
}

static void test_unsolicited_data_closes(void **state) {
  fx_t fx;
  fake_conn_t *dirty;
  (void)state;
  start_idle(&fx, FC_WATCH, 1);
  dirty = first_open(&fx);
  fake_conn_poke(dirty);
  PUMP_UNTIL(fx.loop, !atomic_load(&dirty->open), 3000);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 1, 3000);
  claims_avoid(&fx, 1, dirty);
  fx_finish(&fx);
}

/* A connection that stays quiet is left alone: the watch costs nothing. */
static void test_quiet_connections_kept(void **state) {
  fx_t fx;
  (void)state;
  start_idle(&fx, FC_WATCH, 3);
  pump_for(fx.loop, 100);
  assert_int_equal(cnt(&b1(&fx)->n.peeks), 0);
  assert_int_equal(cnt(&b1(&fx)->n.closes), 0);
  claims_avoid(&fx, 3, NULL);
  pump_for(fx.loop, 150); /* claims and releases rearm the watch */
  assert_int_equal(cnt(&b1(&fx)->n.closes), 0);
  assert_int_equal(cnt(&b1(&fx)->n.connects_ok), 3);
  fx_finish(&fx);
}

/* One death (a broken release, or EOF seen by the watch) checks siblings. */
static void test_death_warns_siblings(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  fake_conn_t *k;
  unsigned long checks0;
  (void)state;
  start_idle(&fx, FC_WATCH, 3);
  checks0 = cnt(&b1(&fx)->n.checks);
  c = fx_claim(&fx);
  fx_release_broken(c);
  /* The two idle siblings get a health check at once. */
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.checks) >= checks0 + 2, 3000);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 3, 3000);
  checks0 = cnt(&b1(&fx)->n.checks);
  k = first_open(&fx);
  fake_conn_kill(k);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.checks) >= checks0 + 2, 3000);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 3, 3000);
  claims_avoid(&fx, 3, k);
  fx_finish(&fx);
}

/* A sibling claimed when one dies is looked at when it comes back. */
static void test_claimed_sibling_checked_on_release(void **state) {
  fx_t fx;
  qorb_claim_t *c1, *c2;
  unsigned long checks0;
  (void)state;
  start_idle(&fx, FC_NO_RECYCLE | FC_NO_PREPARE, 2);
  c1 = fx_claim(&fx);
  c2 = fx_claim(&fx);
  fx_release_broken(c1);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.closes) == 1, 3000);
  checks0 = cnt(&b1(&fx)->n.checks);
  /* A clean release would store IDLE at once; a suspect one is checked. */
  fx_release(c2);
  PUMP_UNTIL(fx.loop, cnt(&b1(&fx)->n.checks) == checks0 + 1, 3000);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 2, 3000);
  /* Only once: the next clean release takes the fast path again. */
  c2 = fx_claim(&fx);
  fx_release(c2);
  pump_for(fx.loop, 30);
  assert_int_equal(cnt(&b1(&fx)->n.checks), checks0 + 1);
  fx_finish(&fx);
}

/* Every connection of a backend dies: each is found, none handed out. */
static void test_all_die_none_handed_out(void **state) {
  fx_t fx;
  unsigned i, n;
  (void)state;
  start_idle(&fx, FC_WATCH, 4);
  n = fake_connector_nconns(fx.fc);
  for (i = 1; i <= n; i++) fake_conn_kill(fake_connector_conn(fx.fc, i));
  PUMP_UNTIL(fx.loop, fake_connector_open(fx.fc, A1) == 4 &&
                          cnt(&b1(&fx)->n.closes) >= 4 && fx_idle(&fx) == 4,
             3000);
  for (i = 1; i <= n; i++)
    assert_false(atomic_load(&fake_connector_conn(fx.fc, i)->open));
  claims_avoid(&fx, 4, NULL);
  fx_finish(&fx);
}

/* validate_idle_ms: a connector with peek but no idle_fd (nothing is
   watched): a claim looks at a connection idle longer than the bound. */
static void test_validate_on_claim(void **state) {
  fx_t fx;
  fake_conn_t *dead;
  qorb_claim_t *c;
  (void)state;
  fx_init(&fx, FC_WATCH | FC_PEEK_ONLY, 0);
  fx.policy.max_slots = 1;
  fx.policy.spares_wanted = 1;
  fx.policy.validate_idle_ms = 30;
  fx_start(&fx);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 1, 3000);
  /* Used within the bound: no look. */
  c = fx_claim(&fx);
  fx_release(c);
  c = fx_claim(&fx);
  fx_release(c);
  assert_int_equal(cnt(&b1(&fx)->n.peeks), 0);
  dead = first_open(&fx);
  fake_conn_kill(dead);
  pump_for(fx.loop, 80);
  assert_true(atomic_load(&dead->open)); /* nobody watched it */
  c = fx_claim(&fx); /* the first look finds it dead; the next is new */
  assert_ptr_not_equal(fx_conn(c), dead);
  assert_int_equal(cnt(&b1(&fx)->n.peeks_dead), 1);
  fx_release(c);
  fx_finish(&fx);
}

/* A handle kept after release is refused once the slot is claimed again. */
static void test_stale_handle_refused(void **state) {
  fx_t fx;
  qorb_claim_t *c1, *c2;
  (void)state;
  start_idle(&fx, 0, 1);
  c1 = fx_claim(&fx);
  fx_release(c1);
  c2 = fx_claim(&fx);
  assert_ptr_equal(qorb_claim_conn(c1), qorb_claim_conn(c2)); /* same slot */
  assert_int_equal(qorb_release(c1), QORB_EINVAL);
  assert_int_equal(qorb_release_broken(c1), QORB_EINVAL);
  /* c2 is still held, and still its holder's to release. */
  assert_int_equal(fx_try_claim(&fx, &c1), QORB_EAGAIN);
  fx_release(c2);
  assert_int_equal(qorb_release(c2), QORB_EINVAL); /* twice */
  fx_finish(&fx);
}

/*
 * fail_fast_after_ms: with every backend down, a claim waits until the
 * bound has passed (then every waiter fails with QORB_ENOTONLINE), and
 * fails at once after it; a backend back within the bound costs nothing.
 */
static void test_fail_fast_bound(void **state) {
  fx_t fx;
  claim_rec_t rec, late;
  qorb_claim_t *c;
  double t0;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 1;
  fx.policy.spares_wanted = 1;
  fx.policy.fail_fast_after_ms = 300;
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_fail(QORB_ECONNECT));
  fx_start(&fx);
  t0 = now_ms();
  fx_set(&fx, A1);
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 5000), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 3000);
  assert_int_equal(rec.status, QORB_ENOTONLINE);
  assert_true(rec.done_ms - t0 >= 250.0);  /* waited out the bound */
  assert_true(rec.done_ms - t0 < 2500.0);  /* not its own 5 s */
  claim_rec_init(&late, &fx);
  assert_int_equal(fx_claim_async(&fx, &late, 5000), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&late.calls) == 1, 3000);
  assert_int_equal(late.status, QORB_ENOTONLINE);
  assert_true(late.done_ms - late.start_ms < 200.0); /* at once now */
  /* Back: claims work again. */
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_ok());
  c = fx_claim(&fx);
  fx_release(c);
  fx_finish(&fx);
}

static void test_short_outage_costs_no_claim(void **state) {
  fx_t fx;
  claim_rec_t rec;
  fake_conn_t *gone;
  (void)state;
  fx_init(&fx, FC_WATCH, 0);
  fx.policy.max_slots = 1;
  fx.policy.spares_wanted = 1;
  fx.policy.fail_fast_after_ms = 2000;
  fx_start(&fx);
  fx_set(&fx, A1);
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 1, 3000);
  /* The backend restarts: the connection dies, reconnects fail a while. */
  fake_connector_push(fx.fc, A1, FC_CONNECT, fc_fail(QORB_ECONNECT));
  fake_connector_push(fx.fc, A1, FC_CONNECT, fc_fail(QORB_ECONNECT));
  fake_connector_push(fx.fc, A1, FC_CONNECT, fc_delay(100, QORB_ECONNECT));
  gone = first_open(&fx);
  fake_conn_kill(gone);
  PUMP_UNTIL(fx.loop, !atomic_load(&gone->open), 3000);
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 3000), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 5000);
  assert_int_equal(rec.status, 0);
  assert_ptr_not_equal(rec.conn, gone);
  assert_true(cnt(&b1(&fx)->n.connects_failed) >= 3);
  claim_rec_release(&rec);
  fx_finish(&fx);
}

/* While one backend serves, another failing never makes a claim fail. */
static void test_one_serving_backend_enough(void **state) {
  fx_t fx;
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 2;
  fx.policy.spares_wanted = 2;
  fake_connector_set(fx.fc, A2, FC_CONNECT, fc_fail(QORB_ECONNECT));
  fx_start(&fx);
  fx_set(&fx, A1 "," A2);
  for (i = 0; i < 50; i++) {
    claim_rec_t rec;
    claim_rec_init(&rec, &fx);
    assert_int_equal(fx_claim_async(&fx, &rec, 2000), 0);
    PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 3000);
    assert_int_equal(rec.status, 0);
    claim_rec_release(&rec);
  }
  fx_finish(&fx);
}

/*
 * The race: claimants take idle slots while the pool loop watches them.
 * Each claimant has its "server" send a byte and reads it back before it
 * releases, so the watch fires while the slot is claimed (the loop must
 * leave it alone: a peek on a claimed connection is a violation) and the
 * connection is clean again at release (nothing may be closed).
 */
#define RACE_THREADS 4
#define RACE_ROUNDS 3000

typedef struct race {
  fx_t *fx;
  _Atomic int failures;
} race_t;

static void *race_main(void *arg) {
  race_t *r = arg;
  int i;
  for (i = 0; i < RACE_ROUNDS; i++) {
    qorb_claim_t *c;
    fake_conn_t *fc;
    char b;
    int rc = qorb_pool_claim_wait(r->fx->pool, 5000, &c);
    if (rc != 0) {
      atomic_fetch_add(&r->failures, 1);
      continue;
    }
    fc = qorb_claim_conn(c);
    if (fake_conn_acquire(fc, (uintptr_t)c) != 0) atomic_fetch_add(&r->failures, 1);
    if (i % 3 == 0) {
      struct pollfd pfd;
      fake_conn_poke(fc);
      pfd.fd = fc->sock[0];
      pfd.events = POLLIN;
      pfd.revents = 0;
      if (poll(&pfd, 1, 2000) != 1 || recv(fc->sock[0], &b, 1, 0) != 1)
        atomic_fetch_add(&r->failures, 1);
    }
    fake_conn_release(fc, (uintptr_t)c);
    if (qorb_release(c) != 0) atomic_fetch_add(&r->failures, 1);
  }
  return NULL;
}

static void test_claimant_wins_race_with_watch(void **state) {
  fx_t fx;
  race_t r;
  pthread_t t[RACE_THREADS];
  int i;
  (void)state;
  fx_init(&fx, FC_WATCH | FC_NO_RECYCLE | FC_NO_PREPARE, 1);
  fx.policy.max_slots = 3;
  fx.policy.spares_wanted = 3;
  /* The resolver's first report comes from the pool's own thread. */
  fake_resolver_set_initial(fx.fr, A1);
  fx_start(&fx);
  WAIT_UNTIL(fx_idle(&fx) == 3, 5000);
  r.fx = &fx;
  atomic_store(&r.failures, 0);
  for (i = 0; i < RACE_THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, race_main, &r), 0);
  for (i = 0; i < RACE_THREADS; i++) pthread_join(t[i], NULL);
  assert_int_equal(atomic_load(&r.failures), 0);
  assert_int_equal(fake_connector_violations(fx.fc), 0);
  assert_int_equal(cnt(&b1(&fx)->n.peeks_dead), 0);
  assert_int_equal(cnt(&b1(&fx)->n.closes), 0);
  fx_finish(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_idle_close_found_at_once),
      cmocka_unit_test(test_unsolicited_data_closes),
      cmocka_unit_test(test_quiet_connections_kept),
      cmocka_unit_test(test_death_warns_siblings),
      cmocka_unit_test(test_claimed_sibling_checked_on_release),
      cmocka_unit_test(test_all_die_none_handed_out),
      cmocka_unit_test(test_validate_on_claim),
      cmocka_unit_test(test_stale_handle_refused),
      cmocka_unit_test(test_fail_fast_bound),
      cmocka_unit_test(test_short_outage_costs_no_claim),
      cmocka_unit_test(test_one_serving_backend_enough),
      cmocka_unit_test(test_claimant_wins_race_with_watch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
