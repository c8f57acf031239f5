/* SPDX-License-Identifier: MIT */
/*
 * test_redis_idle.c: idle connections that the server kills (CLIENT KILL)
 * are found without a health check (health_interval_ms 0):
 *   - by the idle watch (qorb-redis's idle_fd and peek), in both flavours:
 *     every idle connection killed, all replaced by the pool on its own,
 *     and 50 claims after that all work. In the async flavour hiredis's
 *     own read watcher is paused while the connection is idle, so only the
 *     pool's watch sees the hang-up;
 *   - by the warning a death gives its siblings: with the idle watch off
 *     too, the killed idle connections go unnoticed until a claimant finds
 *     its connection dead and releases it (plainly, QORB_EGONE from the
 *     connector); the pool then checks the backend's other idle
 *     connections at once and replaces them.
 * SIGPIPE is blocked on the test thread (a claimant writing to a killed
 * connection).
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_int.h"
#include "redis_testlib.h"

#define POOL_SIZE 4

static void tweak_no_checks(qorb_policy_t *p) {
  itest_no_checks(p, POOL_SIZE);
}

/* Once the pool (on `loop`, or NULL) holds POOL_SIZE idle connections
   named `name`, kill them all; returns the backend's connects before. */
static uint64_t kill_all_idle(qorb_pool_t *pool, struct ev_loop *loop,
                              const char *name) {
  long long ids[16];
  uint64_t c0;
  int i, n;
  RT_WAIT(loop,
          itest_idle(pool, RT_A) == POOL_SIZE &&
              rt_count_clients(RT_A, name) == POOL_SIZE,
          10000);
  assert_int_equal(itest_idle(pool, RT_A), POOL_SIZE);
  c0 = itest_connects(pool, RT_A);
  n = rt_client_ids(RT_A, name, ids, 16);
  assert_int_equal(n, POOL_SIZE);
  for (i = 0; i < n; i++) assert_int_equal(rt_kill_client(RT_A, ids[i]), 1);
  return c0;
}

/* Wait until the pool has replaced every killed connection; assert it. */
static void all_replaced(qorb_pool_t *pool, struct ev_loop *loop,
                         uint64_t c0) {
  RT_WAIT(loop,
          itest_connects(pool, RT_A) >= c0 + POOL_SIZE &&
              itest_idle(pool, RT_A) == POOL_SIZE,
          10000);
  assert_true(itest_connects(pool, RT_A) >= c0 + POOL_SIZE);
  assert_int_equal(itest_idle(pool, RT_A), POOL_SIZE);
}

/* `n` claims, each a PING that must answer PONG: no dead one handed out. */
static void claims_work(qorb_pool_t *pool, struct ev_loop *loop, int n) {
  int i;
  for (i = 0; i < n; i++) {
    qorb_claim_t *cl;
    if (loop != NULL) {
      rt_reply_t r;
      assert_int_equal(rt_loop_claim(pool, loop, 5000, &cl), 0);
      if (rt_loop_cmd(loop, qorb_redis_async(cl), 5000, &r, "PING") != 0)
        fail_msg("claim %d got a dead connection", i);
      assert_string_equal(r.str, "PONG");
    } else {
      redisReply *r;
      assert_int_equal(qorb_pool_claim_wait(pool, 5000, &cl), 0);
      r = redisCommand(qorb_redis_ctx(cl), "PING");
      if (r == NULL)
        fail_msg("claim %d got a dead connection: %s", i,
                 qorb_redis_ctx(cl)->errstr);
      assert_string_equal(r->str, "PONG");
      freeReplyObject(r);
    }
    assert_int_equal(qorb_release(cl), 0);
  }
}

/* (a) Every idle connection killed: replaced without a health check. */
static void idle_kill(qorb_redis_flavour_t flavour, const char *name) {
  qorb_redis_options_t o;
  struct ev_loop *loop = NULL;
  qorb_pool_t *pool;

  rt_options(&o, name);
  o.flavour = flavour;
  if (flavour == QORB_REDIS_ASYNC) loop = ev_loop_new(EVFLAG_AUTO);
  pool = rt_pool(RT_A, &o, loop, tweak_no_checks);
  all_replaced(pool, loop, kill_all_idle(pool, loop, name));
  claims_work(pool, loop, 50);
  if (loop != NULL) {
    rt_close_on_loop(pool, loop);
    ev_loop_destroy(loop);
  } else {
    itest_close(pool);
  }
}

static void test_idle_kill_blocking(void **state) {
  (void)state;
  idle_kill(QORB_REDIS_BLOCKING, "qorb-idle-kill");
}

static void test_idle_kill_async(void **state) {
  (void)state;
  idle_kill(QORB_REDIS_ASYNC, "qorb-idle-kill-async");
}

/* (b) No health checks, no idle watch: one claimant's dead connection
   warns the backend's other idle ones. */
static void test_gone_warns_siblings(void **state) {
  static qorb_connector_ops_t ops;
  const char *name = "qorb-idle-gone";
  qorb_connector_t *real = NULL, *conn = NULL;
  qorb_redis_options_t o;
  qorb_policy_t pol;
  qorb_pool_t *pool = NULL;
  qorb_claim_t *cl;
  redisContext *c;
  redisReply *r;
  char err[160] = "";
  uint64_t c0, t0;
  (void)state;

  rt_options(&o, name);
  assert_int_equal(qorb_redis_connector_new(&real, &o, err, sizeof(err)), 0);
  assert_int_equal(itest_unwatched(&conn, &qorb__redis_ops,
                                   qorb_connector_ctx(real), &ops),
                   0);
  itest_policy(&pol, "rtest", "RT_VERBOSE");
  tweak_no_checks(&pol);
  assert_int_equal(itest_pool_new(&pool, RT_A, conn, NULL, &pol), 0);

  c0 = kill_all_idle(pool, NULL, name);
  /* Nothing else looks at idle connections here. */
  itest_nap_ms(300);
  assert_int_equal(itest_connects(pool, RT_A), c0);

  assert_int_equal(qorb_pool_claim_wait(pool, 5000, &cl), 0);
  c = qorb_redis_ctx(cl);
  r = redisCommand(c, "PING");
  assert_null(r);
  assert_true(c->err != 0);
  t0 = itest_now_ms();
  assert_int_equal(qorb_release(cl), 0);

  all_replaced(pool, NULL, c0);
  fprintf(stderr, "all replaced %llu ms after the release\n",
          (unsigned long long)(itest_now_ms() - t0));
  claims_work(pool, NULL, 20);
  itest_close(pool);
  qorb_connector_free(real);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_idle_kill_blocking),
      cmocka_unit_test(test_idle_kill_async),
      cmocka_unit_test(test_gone_warns_siblings),
  };
  rt_block_sigpipe();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
