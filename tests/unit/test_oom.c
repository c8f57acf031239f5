/* SPDX-License-Identifier: MIT */
/*
 * test_oom.c: out-of-memory sweeps. With a counting allocator installed
 * through qorb_set_allocator(), each scenario runs again and again with
 * allocation N failing (N = 1, 2, ...; once, or from N on), until a run
 * passes with no failure injected. Every run must end cleanly: each call
 * returns success or QORB_ENOMEM (a claim may instead time out for want of
 * a connection), close still completes, every connection opened is closed
 * once, and no block qorb allocated is left (live count back to zero).
 * libev allocates through its own allocator, not qorb's: not counted. When
 * the pg and redis connectors are built, their constructors are swept too
 * (their option copies and, for pg, the compiled template); libpq and
 * hiredis allocate with libc, not counted either.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "count_alloc.h"
#include "fixture.h"
#ifdef QORB_TEST_HAVE_PG
#include <qorb/pg.h>
#endif
#ifdef QORB_TEST_HAVE_REDIS
#include <qorb/redis.h>
#endif

#define MAX_STEPS 5000

/* The fault of the current run; a scenario arms it where its sweep starts. */
static unsigned long g_fail_at;
static int g_persistent;

static void arm(void) {
  count_alloc_reset();
  count_alloc_fail_at(g_fail_at, g_persistent);
}

typedef struct outcome {
  int full;        /* every step succeeded, the claim included */
} outcome_t;

static int claim_status_ok(int st) {
  return st == 0 || st == QORB_ENOMEM || st == QORB_ENOBACKENDS ||
         st == QORB_ENOTONLINE || st == QORB_EALLINUSE;
}

static void close_cb(qorb_pool_t *pool, int status, void *arg) {
  (void)pool;
  assert_int_equal(status, 0);
  (*(int *)arg)++;
}

static void policy(qorb_policy_t *p) {
  qorb_policy_init(p);
  p->name = "oom";
  p->max_slots = 2;
  p->spares_wanted = 1;
  p->min_backoff_ms = 1;
  p->max_backoff_ms = 5;
  p->backoff_spread_ms = 1;
  p->claim_timeout_ms = 100;
  p->rebalance_interval_ms = 10;
  p->health_interval_ms = 0;
  p->max_lifetime_ms = 0;
  p->idle_timeout_ms = 0;
}

/* Application loop: connector, static resolver, pool, one claim, close. */
static outcome_t scenario_loop(void) {
  outcome_t o = {0};
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  fake_connector_t *fc = fake_connector_new(0);
  qorb_connector_t *c = NULL;
  qorb_resolver_t *r = NULL;
  qorb_pool_t *pool = NULL;
  qorb_policy_t pol;
  claim_rec_t rec;
  int rc, closed = 0, destroyed_expected = 0;

  assert_non_null(loop);
  arm();
  rc = qorb_connector_new(&c, fake_connector_ops(fc), fc);
  assert_true(rc == 0 || rc == QORB_ENOMEM);
  if (rc != 0) goto done;
  rc = qorb_static_resolver_new(&r, "127.0.0.1:1", NULL, 0);
  assert_true(rc == 0 || rc == QORB_ENOMEM);
  if (rc != 0) {
    qorb_connector_free(c);
    destroyed_expected = 1;
    goto done;
  }
  policy(&pol);
  rc = qorb_pool_new(&pool, loop, &pol, r, c, NULL, 0);
  if (rc != 0) {
    if (rc != QORB_ENOMEM) fail_msg("qorb_pool_new: %s", qorb_err_name(rc));
    qorb_resolver_free(r);
    qorb_connector_free(c);
    destroyed_expected = 1;
    goto done;
  }
  destroyed_expected = 1;

  memset(&rec, 0, sizeof(rec));
  rec.status = 1;
  rc = qorb_pool_claim(pool, 100, claim_rec_cb, &rec, NULL);
  assert_true(rc == 0 || rc == QORB_ENOMEM);
  if (rc == 0) {
    PUMP_UNTIL(loop, atomic_load(&rec.calls) == 1, 5000);
    if (!claim_status_ok(rec.status))
      fail_msg("claim under OOM: %s", qorb_err_name(rec.status));
    if (rec.status == 0) {
      assert_int_equal(fake_conn_release(rec.conn, (uintptr_t)&rec), 0);
      assert_int_equal(qorb_release(rec.claim), 0);
      o.full = 1;
    }
  }
  /* Closing needs no memory: it must always work. */
  assert_int_equal(qorb_pool_close(pool, close_cb, &closed), 0);
  PUMP_UNTIL(loop, closed == 1, 5000);
  pump_for(loop, 2);
  assert_int_equal(closed, 1);

done:
  fake_connector_verify(fc, destroyed_expected);
  assert_int_equal(loop_active(loop), 0);
  ev_loop_destroy(loop);
  fake_connector_free(fc);
  return o;
}

/* Pool thread: pool_new(NULL loop), claim_wait, release, blocking close. */
static outcome_t scenario_thread(void) {
  outcome_t o = {0};
  fake_connector_t *fc = fake_connector_new(0);
  qorb_connector_t *c = NULL;
  qorb_resolver_t *r = NULL;
  qorb_pool_t *pool = NULL;
  qorb_claim_t *claim = NULL;
  qorb_policy_t pol;
  int rc, closed = 0, destroyed_expected = 0;

  arm();
  rc = qorb_connector_new(&c, fake_connector_ops(fc), fc);
  assert_true(rc == 0 || rc == QORB_ENOMEM);
  if (rc != 0) goto done;
  rc = qorb_static_resolver_new(&r, "127.0.0.1:1", NULL, 0);
  assert_true(rc == 0 || rc == QORB_ENOMEM);
  destroyed_expected = 1;
  if (rc != 0) {
    qorb_connector_free(c);
    goto done;
  }
  policy(&pol);
  rc = qorb_pool_new(&pool, NULL, &pol, r, c, NULL, 0);
  if (rc != 0) {
    if (rc != QORB_ENOMEM) fail_msg("qorb_pool_new: %s", qorb_err_name(rc));
    qorb_resolver_free(r);
    qorb_connector_free(c);
    goto done;
  }
  rc = qorb_pool_claim_wait(pool, 100, &claim);
  if (!claim_status_ok(rc)) fail_msg("claim_wait under OOM: %s", qorb_err_name(rc));
  if (rc == 0) {
    assert_int_equal(qorb_release(claim), 0);
    o.full = 1;
  }
  assert_int_equal(qorb_pool_close(pool, close_cb, &closed), 0);
  assert_int_equal(closed, 1);

done:
  fake_connector_verify(fc, destroyed_expected);
  fake_connector_free(fc);
  return o;
}

/* Static resolver on its own: new, replace, free. */
static outcome_t scenario_static(void) {
  outcome_t o = {0};
  qorb_resolver_t *r = NULL;
  int rc;
  arm();
  rc = qorb_static_resolver_new(&r, "127.0.0.1:1, [::1]:2, 127.0.0.3:3",
                                NULL, 0);
  assert_true(rc == 0 || rc == QORB_ENOMEM);
  if (rc != 0) return o;
  rc = qorb_static_resolver_set(r, "127.0.0.4:4 127.0.0.5:5 [::1]:6 127.0.0.7:7",
                                NULL, 0);
  assert_true(rc == 0 || rc == QORB_ENOMEM);
  if (rc == 0) o.full = 1;
  qorb_resolver_free(r);
  return o;
}

/*
 * A running pool (built with no fault) gets a new backend set, claims on
 * it, and closes: the faults start at the update.
 */
static outcome_t scenario_update(void) {
  outcome_t o = {0};
  fx_t fx;
  claim_rec_t rec;
  int rc;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 4;
  fx.policy.spares_wanted = 2;
  fx.policy.claim_timeout_ms = 100;
  fx.policy.min_backoff_ms = 1;
  fx.policy.max_backoff_ms = 5;
  fx_start(&fx);
  fx_set(&fx, "127.0.0.1:1");
  PUMP_UNTIL(fx.loop, fx_idle(&fx) == 2, 3000);
  arm();
  rc = fake_resolver_set(fx.fr, "127.0.0.2:1,127.0.0.3:1,127.0.0.4:1");
  if (rc != 0 && rc != QORB_ENOMEM)
    fail_msg("update under OOM: %s", qorb_err_name(rc));
  claim_rec_init(&rec, &fx);
  rc = fx_claim_async(&fx, &rec, 100);
  assert_true(rc == 0 || rc == QORB_ENOMEM);
  if (rc == 0) {
    PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 5000);
    if (!claim_status_ok(rec.status))
      fail_msg("claim under OOM: %s", qorb_err_name(rec.status));
    if (rec.status == 0) {
      if (strcmp(qorb_claim_addr(rec.claim)->text, "127.0.0.1:1") != 0) o.full = 1;
      claim_rec_release(&rec);
    }
  }
  pump_for(fx.loop, 5);
  fx_finish(&fx);
  return o;
}

#if defined(QORB_TEST_HAVE_PG) || defined(QORB_TEST_HAVE_REDIS)
/* One connector constructor's result: success (then the connector is
   freed) or `refusal`, the code its options are expected to get, are both
   full runs; QORB_ENOMEM is allowed; anything else fails the test. */
static outcome_t connector_made(const char *what, int rc, qorb_connector_t *c,
                                int refusal) {
  outcome_t o = {0};
  if (rc == 0) {
    assert_non_null(c);
    qorb_connector_free(c);
    o.full = refusal == 0;
  } else {
    assert_null(c);
    if (rc != QORB_ENOMEM && rc != refusal)
      fail_msg("%s under OOM: %s", what, qorb_err_name(rc));
    o.full = rc == refusal;
  }
  return o;
}
#endif

#ifdef QORB_TEST_HAVE_PG
/* Make a pg connector from a template, under the fault of the run. */
static outcome_t pg_made(const char *what, const char *conninfo,
                         const char *const *kw, const char *const *val,
                         int refusal) {
  qorb_pg_options_t opts;
  qorb_connector_t *c = NULL;
  char err[256];
  int rc;

  qorb_pg_options_init(&opts);
  opts.conninfo = conninfo;
  opts.keywords = kw;
  opts.values = val;
  opts.acquire_sql = "SET search_path = app";
  arm();
  rc = qorb_pg_connector_new(&c, &opts, err, sizeof(err));
  return connector_made(what, rc, c, refusal);
}

/* A template of every kind (URI, keyword arrays with quoting, more pairs
   than the keyword list's first allocation holds) and both SQL strings. */
static outcome_t scenario_pg(void) {
  static const char *const kw[] = {
      "user", "password", "dbname", "passfile", "connect_timeout",
      "client_encoding", "options", "application_name",
      "fallback_application_name", "sslmode", "sslrootcert", "sslcert",
      "sslkey", "requirepeer", "krbsrvname", "target_session_attrs",
      "keepalives_idle", NULL};
  static const char *const val[] = {
      "app", "it's secret", "app db", "/dev/null", "3", "UTF8",
      "-c statement_timeout=5s", "oom\\test", "qorb", "disable", "/r.crt",
      "/c.crt", "/c.key", "postgres", "postgres", "any", "7", NULL};
  return pg_made("pg connector",
                 "postgresql://other@db.example:6543/x?sslmode=prefer", kw,
                 val, 0);
}

/* A template that libpq refuses after qorb has copied the options and
   quoted the keyword arrays: the refusal leaks nothing either. */
static outcome_t scenario_pg_refused(void) {
  static const char *const kw[] = {"user", "no_such_option", NULL};
  static const char *const val[] = {"app", "1", NULL};
  return pg_made("pg connector (refused)", "user=app dbname=app", kw, val,
                 QORB_ECONFIG);
}
#endif

#ifdef QORB_TEST_HAVE_REDIS
/* Every option that is copied: password, user and client name. */
static outcome_t scenario_redis(void) {
  qorb_redis_options_t opts;
  qorb_connector_t *c = NULL;
  char err[256];
  int rc;

  qorb_redis_options_init(&opts);
  opts.flavour = QORB_REDIS_ASYNC;
  opts.password = "secret";
  opts.user = "app";
  opts.client_name = "oom";
  opts.database = 3;
  opts.role = QORB_REDIS_ROLE_MASTER;
  arm();
  rc = qorb_redis_connector_new(&c, &opts, err, sizeof(err));
  return connector_made("redis connector", rc, c, 0);
}
#endif

static void sweep(const char *name, outcome_t (*run)(void), int persistent) {
  unsigned long n;
  int done = 0;
  for (n = 1; n <= MAX_STEPS && !done; n++) {
    outcome_t o;
    g_fail_at = n;
    g_persistent = persistent;
    count_alloc_reset();
    count_alloc_fail_at(0, 0);
    o = run();
    count_alloc_fail_at(0, 0);
    if (count_alloc_live() != 0)
      fail_msg("%s: failing allocation %lu%s leaks %ld block(s)", name, n,
               persistent ? " and after" : "", count_alloc_live());
    assert_int_equal(count_alloc_bad_frees(), 0);
    if (!count_alloc_failed()) {
      /* Allocation n was never reached: the run had no fault. */
      if (!o.full) fail_msg("%s: the run without a fault did not succeed", name);
      print_message("%s (%s): %lu allocations swept\n", name,
                    persistent ? "from N on" : "N only", n - 1);
      done = 1;
    }
  }
  assert_true(done);
}

static int setup(void **state) {
  (void)state;
  count_alloc_install();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  assert_int_equal(count_alloc_live(), 0);
  count_alloc_uninstall();
  return 0;
}

static void test_oom_static(void **state) {
  (void)state;
  sweep("static resolver", scenario_static, 0);
  sweep("static resolver", scenario_static, 1);
}

static void test_oom_pool_loop(void **state) {
  (void)state;
  sweep("pool on app loop", scenario_loop, 0);
  sweep("pool on app loop", scenario_loop, 1);
}

static void test_oom_resolver_update(void **state) {
  (void)state;
  sweep("resolver update", scenario_update, 0);
  sweep("resolver update", scenario_update, 1);
}

static void test_oom_pool_thread(void **state) {
  (void)state;
  sweep("pool on own thread", scenario_thread, 0);
  sweep("pool on own thread", scenario_thread, 1);
}

#ifdef QORB_TEST_HAVE_PG
static void test_oom_pg_connector(void **state) {
  (void)state;
  sweep("pg connector", scenario_pg, 0);
  sweep("pg connector", scenario_pg, 1);
  sweep("pg connector (refused)", scenario_pg_refused, 0);
  sweep("pg connector (refused)", scenario_pg_refused, 1);
}
#endif

#ifdef QORB_TEST_HAVE_REDIS
static void test_oom_redis_connector(void **state) {
  (void)state;
  sweep("redis connector", scenario_redis, 0);
  sweep("redis connector", scenario_redis, 1);
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
#ifdef QORB_TEST_HAVE_PG
      cmocka_unit_test(test_oom_pg_connector),
#endif
#ifdef QORB_TEST_HAVE_REDIS
      cmocka_unit_test(test_oom_redis_connector),
#endif
      cmocka_unit_test(test_oom_static),
      cmocka_unit_test(test_oom_pool_loop),
      cmocka_unit_test(test_oom_resolver_update),
      cmocka_unit_test(test_oom_pool_thread),
  };
  return cmocka_run_group_tests_name("oom", tests, setup, teardown);
}
