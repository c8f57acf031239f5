/* SPDX-License-Identifier: MIT */
/*
 * test_policy.c: the policy's defaults and its validation. Every bad field
 * is refused with QORB_EPOLICY and a message naming it, by
 * qorb_policy_validate() and by qorb_pool_new() (which then leaves the
 * resolver and connector with the caller); a policy is copied.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

static void test_defaults(void **state) {
  qorb_policy_t p;
  char err[128] = "x";
  (void)state;
  memset(&p, 0xa5, sizeof(p));
  qorb_policy_init(&p);
  assert_int_equal(p.size, sizeof(p));
  assert_string_equal(p.name, "qorb");
  assert_int_equal(p.spares_wanted, 2);
  assert_int_equal(p.max_slots, 16);
  assert_int_equal(p.max_slots_per_backend, 0);
  assert_int_equal(p.max_connecting_per_backend, 2);
  assert_int_equal(p.max_waiters, 1024);
  assert_int_equal(p.claim_timeout_ms, 5000);
  assert_int_equal(p.connect_timeout_ms, 5000);
  assert_int_equal(p.min_backoff_ms, 50);
  assert_int_equal(p.max_backoff_ms, 500);
  assert_int_equal(p.backoff_spread_ms, 100);
  assert_int_equal(p.health_interval_ms, 30000);
  assert_int_equal(p.health_check_timeout_ms, 2000);
  assert_int_equal(p.acquire_timeout_ms, 5000);
  assert_int_equal(p.recycle_timeout_ms, 5000);
  assert_int_equal(p.rebalance_interval_ms, 1000);
  assert_int_equal(p.failure_window_ms, 60000);
  assert_int_equal(p.max_lifetime_ms, 1800000);
  assert_int_equal(p.idle_timeout_ms, 600000);
  assert_int_equal(p.leak_threshold_ms, 0);
  assert_null(p.log_cb);
  assert_null(p.log_arg);
  assert_int_equal(p.fail_fast_after_ms, 10000);
  assert_int_equal(p.validate_idle_ms, 0);
  assert_int_equal(p.waiter_priority_us, 1000);
  assert_int_equal(p.min_conns, 0);
  assert_int_equal(p.max_lifetime_jitter_ms, QORB_LIFETIME_JITTER_AUTO);
  /* One field, two names. */
  assert_int_equal(p.prepare_timeout_ms, 5000);
  p.prepare_timeout_ms = 1234;
  assert_int_equal(p.acquire_timeout_ms, 1234);
  p.prepare_timeout_ms = 5000;
  assert_int_equal(qorb_policy_validate(&p, err, sizeof(err)), 0);
  assert_int_equal(qorb_policy_validate(&p, NULL, 0), 0);
}

static void test_not_initialised(void **state) {
  qorb_policy_t p;
  char err[128];
  (void)state;
  qorb_policy_init(&p);
  p.size = 0;
  assert_int_equal(qorb_policy_validate(&p, err, sizeof(err)), QORB_EINVAL);
  p.size = 3;
  assert_int_equal(qorb_policy_validate(&p, err, sizeof(err)), QORB_EINVAL);
  assert_int_equal(qorb_policy_validate(NULL, err, sizeof(err)), QORB_EINVAL);
}

/* One bad value: the field it breaks and a word the message must carry. */
typedef struct bad_case {
  const char *what;
  void (*apply)(qorb_policy_t *p);
  const char *name_in_msg;
} bad_case_t;

static void bad_max_slots(qorb_policy_t *p) { p->max_slots = 0; }
static void bad_spares(qorb_policy_t *p) {
  p->max_slots = 4;
  p->spares_wanted = 5;
}
static void bad_backoff(qorb_policy_t *p) {
  p->min_backoff_ms = 500;
  p->max_backoff_ms = 100;
}
static void bad_connecting(qorb_policy_t *p) {
  p->max_connecting_per_backend = 0;
}
static void bad_claim_timeout(qorb_policy_t *p) { p->claim_timeout_ms = 0; }
static void bad_connect_timeout(qorb_policy_t *p) { p->connect_timeout_ms = 0; }
static void bad_check_timeout(qorb_policy_t *p) {
  p->health_check_timeout_ms = 0;
}
static void bad_acquire_timeout(qorb_policy_t *p) { p->acquire_timeout_ms = 0; }
static void bad_recycle_timeout(qorb_policy_t *p) { p->recycle_timeout_ms = 0; }
static void bad_min_conns(qorb_policy_t *p) { p->min_conns = p->max_slots + 1; }
static void bad_jitter(qorb_policy_t *p) {
  p->max_lifetime_ms = 1000;
  p->max_lifetime_jitter_ms = 1001;
}
static void bad_priority(qorb_policy_t *p) { p->waiter_priority_us = 1000001; }

static const bad_case_t bad_cases[] = {
    {"max_slots 0", bad_max_slots, "max_slots"},
    {"spares over max_slots", bad_spares, "spares_wanted"},
    {"min_backoff over max_backoff", bad_backoff, "backoff"},
    {"no connection attempts", bad_connecting, "max_connecting_per_backend"},
    {"claim_timeout 0", bad_claim_timeout, "claim_timeout_ms"},
    {"connect_timeout 0", bad_connect_timeout, "connect_timeout_ms"},
    {"health_check_timeout 0", bad_check_timeout, "health_check_timeout_ms"},
    {"acquire_timeout 0", bad_acquire_timeout, "acquire_timeout_ms"},
    {"min_conns over max_slots", bad_min_conns, "min_conns"},
    {"jitter over the lifetime", bad_jitter, "max_lifetime_jitter_ms"},
    {"waiter_priority over a second", bad_priority, "waiter_priority_us"},
    {"recycle_timeout 0", bad_recycle_timeout, "recycle_timeout_ms"},
};
#define NBAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

static void test_validate_bad_fields(void **state) {
  size_t i;
  (void)state;
  for (i = 0; i < NBAD; i++) {
    qorb_policy_t p;
    char err[256];
    int rc;
    qorb_policy_init(&p);
    bad_cases[i].apply(&p);
    memset(err, 0, sizeof(err));
    rc = qorb_policy_validate(&p, err, sizeof(err));
    if (rc != QORB_EPOLICY)
      fail_msg("%s: %s, expected QORB_EPOLICY", bad_cases[i].what,
               qorb_err_name(rc));
    if (strstr(err, bad_cases[i].name_in_msg) == NULL)
      fail_msg("%s: message \"%s\" does not name %s", bad_cases[i].what, err,
               bad_cases[i].name_in_msg);
    /* Without a buffer, the same code. */
    assert_int_equal(qorb_policy_validate(&p, NULL, 0), QORB_EPOLICY);
  }
}

/* Values at the edge of the range that are fine. */
static void test_validate_edges_ok(void **state) {
  qorb_policy_t p;
  char err[128];
  (void)state;
  qorb_policy_init(&p);
  p.max_slots = 1;
  p.spares_wanted = 1;
  p.min_backoff_ms = p.max_backoff_ms = 100;
  p.backoff_spread_ms = 0;
  p.health_interval_ms = 0;   /* off */
  p.max_lifetime_ms = 0;      /* never */
  p.idle_timeout_ms = 0;      /* never */
  p.leak_threshold_ms = 0;    /* off */
  p.spares_wanted = 0;
  assert_int_equal(qorb_policy_validate(&p, err, sizeof(err)), 0);
  p.spares_wanted = 1;
  p.max_slots_per_backend = 1;
  assert_int_equal(qorb_policy_validate(&p, err, sizeof(err)), 0);
}

static void test_pool_new_refuses_bad_policy(void **state) {
  size_t i;
  (void)state;
  for (i = 0; i < NBAD; i++) {
    fx_t fx;
    int rc;
    fx_init(&fx, 0, 0);
    bad_cases[i].apply(&fx.policy);
    rc = fx_try_start(&fx);
    if (rc != QORB_EPOLICY)
      fail_msg("pool_new with %s: %s", bad_cases[i].what, qorb_err_name(rc));
    if (strstr(fx.err, bad_cases[i].name_in_msg) == NULL)
      fail_msg("pool_new with %s: message \"%s\" does not name %s",
               bad_cases[i].what, fx.err, bad_cases[i].name_in_msg);
    assert_null(fx.pool);
    /* Nothing was started; the resolver and connector came back to us
       (fx_try_start freed them, so their destroy ops ran once). */
    assert_int_equal(atomic_load(&fx.fr->starts), 0);
    assert_int_equal(atomic_load(&fx.fr->destroys), 1);
    assert_int_equal(fake_connector_destroyed(fx.fc), 1);
    fx_finish(&fx);
  }
}

static void test_pool_new_uninitialised_policy(void **state) {
  fx_t fx;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.size = 0;
  assert_int_equal(fx_try_start(&fx), QORB_EINVAL);
  assert_null(fx.pool);
  fx_finish(&fx);
}

static void test_policy_copied(void **state) {
  fx_t fx;
  char name[32];
  qorb_claim_t *c;
  claim_rec_t rec;
  (void)state;
  fx_init(&fx, 0, 0);
  snprintf(name, sizeof(name), "copied-name");
  fx.policy.name = name;
  fx.policy.claim_timeout_ms = 40;
  fx.policy.max_slots = 1;
  fx.policy.spares_wanted = 1;
  fx_start(&fx);
  /* Change the caller's copy: the pool must not see it. */
  memset(name, 'z', sizeof(name) - 1);
  fx.policy.claim_timeout_ms = 60000;
  fx.policy.max_slots = 16;
  assert_string_equal(qorb_pool_name(fx.pool), "copied-name");
  fx_set(&fx, "127.0.0.1:1");
  c = fx_claim(&fx);
  /* timeout < 0: the pool's claim_timeout_ms (40, not 60000). */
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, -1), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 5000);
  assert_int_equal(rec.status, QORB_EALLINUSE);
  assert_true(rec.done_ms - rec.start_ms >= 35.0);
  assert_true(rec.done_ms - rec.start_ms < 2000.0);
  fx_release(c);
  fx_finish(&fx);
}

static void test_null_policy_defaults(void **state) {
  fx_t fx;
  qorb_pool_t *pool = NULL;
  qorb_connector_t *c;
  qorb_resolver_t *r;
  int closed = 0;
  (void)state;
  fx_init(&fx, 0, 0);
  c = fake_connector_make(fx.fc);
  r = fake_resolver_make(fx.fr);
  assert_int_equal(qorb_pool_new(&pool, fx.loop, NULL, r, c, NULL, 0), 0);
  assert_non_null(pool);
  assert_string_equal(qorb_pool_name(pool), "qorb");
  fx.pool = pool;
  fx.started = 1;
  fx.uses_fake_resolver = 1;
  (void)closed;
  fx_finish(&fx);
}

static void test_resolver_start_fails(void **state) {
  fx_t fx;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.fr->start_result = QORB_ECONFIG;
  assert_int_equal(fx_try_start(&fx), QORB_ECONFIG);
  assert_null(fx.pool);
  assert_int_equal(atomic_load(&fx.fr->starts), 1);
  assert_int_equal(atomic_load(&fx.fr->destroys), 1);
  assert_int_equal(fake_connector_destroyed(fx.fc), 1);
  assert_int_equal(fake_connector_nconns(fx.fc), 0);
  fx_finish(&fx);
}

/*
 * Versioned structs, both directions. An older caller's policy ends at
 * log_arg (the first release): it is a heap block of exactly that size, so
 * AddressSanitizer sees any read or write past it. A newer caller's policy
 * is longer than ours, with fields we do not know.
 */
#define POLICY_V1 (offsetof(qorb_policy_t, log_arg) + sizeof(void *))

static void test_policy_older_caller(void **state) {
  qorb_policy_t *old, view;
  void *block;
  fx_t fx;
  qorb_pool_t *pool = NULL;
  char err[128];
  (void)state;
  block = malloc(POLICY_V1);
  assert_non_null(block);
  old = block;
  qorb_policy_init_(old, POLICY_V1); /* what an older qorb_policy_init() does */
  /* Read and change it through a full-sized view of its first bytes. */
  memset(&view, 0, sizeof(view));
  memcpy(&view, block, POLICY_V1);
  assert_int_equal(view.size, POLICY_V1);
  assert_int_equal(view.max_slots, 16);
  view.max_slots = 3;
  view.spares_wanted = 1;
  memcpy(block, &view, POLICY_V1);
  assert_int_equal(qorb_policy_validate(old, err, sizeof(err)), 0);
  /* A pool takes it, with our defaults for what it lacks. */
  fx_init(&fx, 0, 0);
  assert_int_equal(qorb_pool_new(&pool, fx.loop, old, fake_resolver_make(fx.fr),
                                 fake_connector_make(fx.fc), err, sizeof(err)),
                   0);
  fx.pool = pool;
  fx.started = 1;
  fx.uses_fake_resolver = 1;
  free(block);
  fx_set(&fx, "127.0.0.1:1");
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 1, 3000);
  fx_finish(&fx);
  /* Shorter than the first release, or absurdly long: not initialised. */
  {
    qorb_policy_t p;
    qorb_policy_init(&p);
    p.size = POLICY_V1 - 1;
    assert_int_equal(qorb_policy_validate(&p, err, sizeof(err)), QORB_EINVAL);
    p.size = 1u << 20;
    assert_int_equal(qorb_policy_validate(&p, err, sizeof(err)), QORB_EINVAL);
  }
}

typedef struct newer_policy {
  qorb_policy_t p;
  unsigned later_field;
  char later_tail[40];
} newer_policy_t;

static void test_policy_newer_caller(void **state) {
  newer_policy_t n;
  char err[128];
  (void)state;
  memset(&n, 0xa5, sizeof(n));
  qorb_policy_init_(&n.p, sizeof(n));
  assert_int_equal(n.p.size, sizeof(n));
  assert_int_equal(n.p.max_slots, 16);
  /* Fields beyond ours start at zero (a newer caller's defaults are its
     library's business; ours never leaves garbage). */
  assert_int_equal(n.later_field, 0);
  assert_int_equal(n.later_tail[39], 0);
  n.later_field = 7;
  assert_int_equal(qorb_policy_validate(&n.p, err, sizeof(err)), 0);
}

static void test_stats_both_directions(void **state) {
  fx_t fx;
  struct {
    qorb_pool_stats_t st;
    uint64_t later[4];
  } newer;
  struct {
    qorb_backend_stats_t b;
    uint64_t later[2];
  } bnew[2];
  qorb_pool_stats_t *older;
  size_t n = 0, old_size = offsetof(qorb_pool_stats_t, closing) + sizeof(int);
  (void)state;
  fx_init(&fx, 0, 0);
  fx_start(&fx);
  fx_set(&fx, "127.0.0.1:1");
  PUMP_UNTIL(fx.loop, fx_idle(&fx) >= 1, 3000);
  /* Newer caller: larger structs, tails zeroed, never garbage. */
  memset(&newer, 0xa5, sizeof(newer));
  memset(bnew, 0xa5, sizeof(bnew));
  qorb_pool_stats_init_(&newer.st, sizeof(newer), sizeof(bnew[0]));
  assert_int_equal(qorb_pool_stats(fx.pool, &newer.st, &bnew[0].b, 2, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(newer.later[3], 0);
  assert_int_equal(bnew[0].later[1], 0);
  assert_string_equal(bnew[0].b.addr.text, "127.0.0.1:1");
  /* Older caller: a heap block of its size only. */
  older = malloc(old_size);
  assert_non_null(older);
  qorb_pool_stats_init_(older, old_size, sizeof(qorb_backend_stats_t));
  assert_int_equal(qorb_pool_stats(fx.pool, older, NULL, 0, NULL), 0);
  free(older);
  fx_finish(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_policy_older_caller),
      cmocka_unit_test(test_policy_newer_caller),
      cmocka_unit_test(test_stats_both_directions),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_not_initialised),
      cmocka_unit_test(test_validate_bad_fields),
      cmocka_unit_test(test_validate_edges_ok),
      cmocka_unit_test(test_pool_new_refuses_bad_policy),
      cmocka_unit_test(test_pool_new_uninitialised_policy),
      cmocka_unit_test(test_policy_copied),
      cmocka_unit_test(test_null_policy_defaults),
      cmocka_unit_test(test_resolver_start_fails),
  };
  return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
