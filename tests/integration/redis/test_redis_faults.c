/* SPDX-License-Identifier: MIT */
/*
 * test_redis_faults.c: failures are noticed and the connection replaced,
 * or clearly reported, and nothing leaks:
 *   - CLIENT KILL of idle connections (caught by the health check) and of
 *     a claimed one (the claimant's command fails, the release closes it);
 *   - a backend restart;
 *   - a hung backend (SIGSTOP): checks and connects time out, claims move
 *     to the other backend, a claimant's command times out
 *     (command_timeout_ms), and the backend comes back after SIGCONT;
 *   - requirepass with a wrong password, no password, a wrong ACL user;
 *   - a refused port; a database the server does not have.
 * Both flavours where it matters. SIGPIPE is blocked on the test thread
 * only (a claimant writing to a killed connection), not on the pools'
 * threads, so the connector's own SIGPIPE guard is exercised.
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "redis_testlib.h"

static void tweak_checks(qorb_policy_t *p) {
  p->max_slots = 4;
  p->spares_wanted = 4;
  p->health_interval_ms = 200;
  p->health_check_timeout_ms = 300;
  p->connect_timeout_ms = 500;
  p->recycle_timeout_ms = 500;
}

static void tweak_fail_fast(qorb_policy_t *p) {
  p->max_slots = 2;
  p->spares_wanted = 1;
  p->claim_timeout_ms = 2000;
}

static int ping_ok(redisContext *c) {
  redisReply *r = redisCommand(c, "PING");
  int ok = r != NULL && r->type == REDIS_REPLY_STATUS &&
           strcmp(r->str, "PONG") == 0;
  if (r != NULL) freeReplyObject(r);
  return ok;
}

/* n claims, each a PING that must work; returns the number from `addr`. */
static int claims_all_ok(qorb_pool_t *pool, int n, const char *addr) {
  int i, from = 0;
  for (i = 0; i < n; i++) {
    qorb_claim_t *cl;
    assert_int_equal(qorb_pool_claim_wait(pool, 5000, &cl), 0);
    assert_true(ping_ok(qorb_redis_ctx(cl)));
    if (addr != NULL && strcmp(qorb_claim_addr(cl)->text, addr) == 0) from++;
    assert_int_equal(qorb_release(cl), 0);
  }
  return from;
}

/* ------------------------------------------------------------------ */

static void kill_idle(qorb_redis_flavour_t flavour, const char *name) {
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  struct ev_loop *loop = NULL;
  long long ids[8], now_ids[8];
  uint64_t connects, failures;
  int i, j, n;

  rt_options(&o, name);
  o.flavour = flavour;
  if (flavour == QORB_REDIS_ASYNC) loop = ev_loop_new(EVFLAG_AUTO);
  pool = rt_pool(RT_A, &o, loop, tweak_checks);
  RT_WAIT(loop,
          itest_idle(pool, RT_A) == 4 && rt_count_clients(RT_A, name) == 4,
          10000);
  assert_int_equal(itest_idle(pool, RT_A), 4);
  connects = itest_connects(pool, RT_A);
  failures = itest_failures(pool, RT_A);
  n = rt_client_ids(RT_A, name, ids, 8);
  assert_int_equal(n, 4);
  for (i = 0; i < n; i++) assert_int_equal(rt_kill_client(RT_A, ids[i]), 1);

  /* The health checks find them dead; the pool connects replacements. */
  RT_WAIT(loop,
          itest_connects(pool, RT_A) >= connects + 4 &&
              itest_idle(pool, RT_A) == 4,
          10000);
  assert_true(itest_connects(pool, RT_A) >= connects + 4);
  assert_int_equal(itest_idle(pool, RT_A), 4);
  assert_true(itest_failures(pool, RT_A) >= failures + 4);
  assert_int_equal(rt_client_ids(RT_A, name, now_ids, 8), 4);
  for (i = 0; i < 4; i++)
    for (j = 0; j < 4; j++) assert_true(now_ids[i] != ids[j]);

  if (loop != NULL) {
    for (i = 0; i < 10; i++) {
      qorb_claim_t *cl;
      rt_reply_t r;
      assert_int_equal(rt_loop_claim(pool, loop, 5000, &cl), 0);
      assert_int_equal(
          rt_loop_cmd(loop, qorb_redis_async(cl), 5000, &r, "PING"), 0);
      assert_string_equal(r.str, "PONG");
      assert_int_equal(qorb_release(cl), 0);
    }
    rt_close_on_loop(pool, loop);
    ev_loop_destroy(loop);
  } else {
    claims_all_ok(pool, 20, NULL);
    itest_close(pool);
  }
  ITEST_WAIT(rt_count_clients(RT_A, name) == 0, 5000);
  assert_int_equal(rt_count_clients(RT_A, name), 0);
}

static void test_kill_idle_blocking(void **state) {
  (void)state;
  kill_idle(QORB_REDIS_BLOCKING, "qorb-kill-idle");
}

static void test_kill_idle_async(void **state) {
  (void)state;
  kill_idle(QORB_REDIS_ASYNC, "qorb-kill-idle-async");
}

static void test_kill_claimed_blocking(void **state) {
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  redisContext *c;
  uint64_t connects;
  long long id;
  (void)state;

  rt_options(&o, "qorb-kill-claimed");
  pool = rt_pool(RT_A, &o, NULL, tweak_checks);
  ITEST_WAIT(itest_idle(pool, RT_A) == 4, 10000);
  connects = itest_connects(pool, RT_A);
  assert_int_equal(qorb_pool_claim_wait(pool, 5000, &cl), 0);
  c = qorb_redis_ctx(cl);
  id = rt_cmd_int(c, "CLIENT ID");
  assert_int_equal(rt_kill_client(RT_A, id), 1);
  /* The claimant sees the failure... */
  assert_false(ping_ok(c));
  assert_true(c->err != 0);
  /* ...and a plain release is enough: the pool sees the error. */
  assert_int_equal(qorb_release(cl), 0);
  ITEST_WAIT(itest_connects(pool, RT_A) >= connects + 1 &&
                 itest_idle(pool, RT_A) == 4,
             10000);
  assert_true(itest_connects(pool, RT_A) >= connects + 1);
  claims_all_ok(pool, 20, NULL);
  itest_close(pool);
}

static void test_kill_claimed_async(void **state) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  rt_reply_t r;
  long long id;
  uint64_t end;
  (void)state;

  rt_options(&o, "qorb-kill-claimed-async");
  o.flavour = QORB_REDIS_ASYNC;
  pool = rt_pool(RT_A, &o, loop, tweak_checks);
  assert_int_equal(rt_loop_claim(pool, loop, 5000, &cl), 0);
  assert_int_equal(
      rt_loop_cmd(loop, qorb_redis_async(cl), 5000, &r, "CLIENT ID"), 0);
  id = r.integer;
  assert_int_equal(rt_kill_client(RT_A, id), 1);
  /* hiredis fails the command with a NULL reply and frees the context;
   * the accessor then says so. */
  assert_int_equal(
      rt_loop_cmd(loop, qorb_redis_async(cl), 5000, &r, "PING"), -1);
  assert_null(qorb_redis_async(cl));
  assert_int_equal(qorb_release(cl), 0);
  /* Later claims work (on other connections). */
  end = itest_now_ms() + 5000;
  while (itest_now_ms() < end) {
    assert_int_equal(rt_loop_claim(pool, loop, 5000, &cl), 0);
    assert_non_null(qorb_redis_async(cl));
    assert_int_equal(
        rt_loop_cmd(loop, qorb_redis_async(cl), 5000, &r, "CLIENT ID"), 0);
    assert_true(r.integer != id);
    assert_int_equal(qorb_release(cl), 0);
    if (itest_idle(pool, RT_A) == 4)
      break;
    rt_loop_for(loop, 10);
  }
  rt_close_on_loop(pool, loop);
  ev_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */

static void test_restart(void **state) {
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *held[4];
  uint64_t connects, end;
  int stale = 0, i, n, from_a = 0;
  (void)state;
  rt_skip_if_external("restarts server a");

  rt_options(&o, "qorb-restart");
  pool = rt_pool(RT_AB, &o, NULL, tweak_checks);
  ITEST_WAIT(itest_online(pool, RT_A) && itest_online(pool, RT_B) &&
                 itest_total_idle(pool) == 4,
             10000);
  assert_true(itest_online(pool, RT_A) && itest_online(pool, RT_B));
  connects = itest_connects(pool, RT_A);

  assert_int_equal(rt_servers("restart a"), 0);

  /* Claims keep working meanwhile; a connection that still points at the
   * old process fails once, is released and closed. */
  end = itest_now_ms() + 15000;
  while (itest_now_ms() < end &&
         !(itest_online(pool, RT_A) && itest_connects(pool, RT_A) > connects)) {
    qorb_claim_t *cl;
    if (qorb_pool_claim_wait(pool, 2000, &cl) != 0) continue;
    if (!ping_ok(qorb_redis_ctx(cl))) stale++;
    qorb_release(cl);
    itest_nap_ms(5);
  }
  assert_true(itest_connects(pool, RT_A) > connects);
  assert_true(itest_online(pool, RT_A));
  assert_true(itest_failures(pool, RT_A) > 0);

  /* Hold every slot at once, so that a's (claims prefer the backend with
   * fewer recent failures) are used too: every one works, at most each
   * stale connection failing once more on the way. */
  end = itest_now_ms() + 15000;
  n = 0;
  while (n < 4 && itest_now_ms() < end) {
    if (qorb_pool_claim_wait(pool, 2000, &held[n]) != 0) continue;
    if (ping_ok(qorb_redis_ctx(held[n]))) {
      n++;
    } else {
      stale++;
      qorb_release(held[n]);
    }
  }
  assert_int_equal(n, 4);
  for (i = 0; i < n; i++) {
    if (strcmp(qorb_claim_addr(held[i])->text, RT_A) == 0) from_a++;
    qorb_release(held[i]);
  }
  assert_true(from_a >= 1);
  /* At most every connection to a once (4 slots over two backends). */
  assert_true(stale <= 4);
  claims_all_ok(pool, 40, NULL);
  itest_close(pool);
}

/* ------------------------------------------------------------------ */

static void test_hung_backend(void **state) {
  qorb_redis_options_t o, ao;
  qorb_pool_t *pool, *apool;
  struct ev_loop *loop;
  qorb_claim_t *held = NULL;
  redisContext *c;
  uint64_t t0, end;
  char err[200];
  int i, from_a;
  (void)state;
  rt_skip_if_external("freezes server b");
  loop = ev_loop_new(EVFLAG_AUTO);

  rt_options(&o, "qorb-hung");
  o.command_timeout_ms = 500;
  pool = rt_pool(RT_AB, &o, NULL, tweak_checks);
  rt_options(&ao, "qorb-hung-async");
  ao.flavour = QORB_REDIS_ASYNC;
  apool = rt_pool(RT_AB, &ao, loop, tweak_checks);
  end = itest_now_ms() + 10000;
  while (!(itest_online(pool, RT_A) && itest_online(pool, RT_B) &&
           itest_online(apool, RT_B)) &&
         itest_now_ms() < end)
    rt_loop_for(loop, 10);
  assert_true(itest_online(pool, RT_B) && itest_online(apool, RT_B));

  /* Hold a connection to b, to see a claimant's command time out. */
  for (i = 0; i < 50 && held == NULL; i++) {
    qorb_claim_t *cl;
    assert_int_equal(qorb_pool_claim_wait(pool, 5000, &cl), 0);
    if (strcmp(qorb_claim_addr(cl)->text, RT_B) == 0)
      held = cl;
    else
      qorb_release(cl);
  }
  assert_non_null(held);

  assert_int_equal(rt_servers("freeze b"), 0);

  /* The claimant's command is bounded by command_timeout_ms. */
  c = qorb_redis_ctx(held);
  t0 = itest_now_ms();
  assert_false(ping_ok(c));
  assert_true(itest_now_ms() - t0 < 3000);
  assert_true(c->err != 0);
  assert_int_equal(qorb_release(held), 0); /* closed: the context failed */

  /* Health checks time out; reconnects time out; b goes offline in both
   * pools while a keeps serving. */
  end = itest_now_ms() + 15000;
  while ((itest_online(pool, RT_B) || itest_online(apool, RT_B)) &&
         itest_now_ms() < end)
    rt_loop_for(loop, 10);
  assert_false(itest_online(pool, RT_B));
  assert_false(itest_online(apool, RT_B));
  assert_true(itest_online(pool, RT_A));
  itest_last_error(pool, RT_B, err, sizeof(err));
  assert_true(err[0] != '\0');
  from_a = claims_all_ok(pool, 30, RT_A);
  assert_int_equal(from_a, 30);
  for (i = 0; i < 10; i++) {
    qorb_claim_t *cl;
    rt_reply_t r;
    assert_int_equal(rt_loop_claim(apool, loop, 5000, &cl), 0);
    assert_string_equal(qorb_claim_addr(cl)->text, RT_A);
    assert_int_equal(
        rt_loop_cmd(loop, qorb_redis_async(cl), 5000, &r, "PING"), 0);
    assert_int_equal(qorb_release(cl), 0);
  }

  assert_int_equal(rt_servers("thaw b"), 0);
  end = itest_now_ms() + 15000;
  while (!(itest_online(pool, RT_B) && itest_online(apool, RT_B)) &&
         itest_now_ms() < end)
    rt_loop_for(loop, 10);
  assert_true(itest_online(pool, RT_B));
  assert_true(itest_online(apool, RT_B));
  itest_close(pool);
  rt_close_on_loop(apool, loop);
  ev_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */

/* A pool that cannot connect: claims fail, the reason is recorded. */
static void expect_refused(const qorb_redis_options_t *o, const char *addr,
                           const char *text) {
  struct ev_loop *loop = NULL;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  char err[200];
  int rc;

  if (o->flavour == QORB_REDIS_ASYNC) loop = ev_loop_new(EVFLAG_AUTO);
  pool = rt_pool(addr, o, loop, tweak_fail_fast);
  if (loop != NULL) {
    uint64_t end = itest_now_ms() + 5000;
    while (itest_failures(pool, addr) == 0 && itest_now_ms() < end)
      rt_loop_for(loop, 10);
    rc = rt_loop_claim(pool, loop, 1000, &cl);
  } else {
    ITEST_WAIT(itest_failures(pool, addr) > 0, 5000);
    rc = qorb_pool_claim_wait(pool, 1000, &cl);
  }
  assert_true(rc == QORB_ENOTONLINE || rc == QORB_EALLINUSE);
  assert_true(itest_failures(pool, addr) > 0);
  assert_false(itest_online(pool, addr));
  itest_last_error(pool, addr, err, sizeof(err));
  if (strcasestr(err, text) == NULL)
    fprintf(stderr, "last_error '%s' lacks '%s'\n", err, text);
  assert_non_null(strcasestr(err, text));
  if (loop != NULL) {
    rt_close_on_loop(pool, loop);
    ev_loop_destroy(loop);
  } else {
    itest_close(pool);
  }
}

static void test_auth(void **state) {
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  int f;
  (void)state;
  rt_skip_if_external("needs server p (requirepass, an ACL user)");

  for (f = 0; f < 2; f++) {
    rt_options(&o, "qorb-auth");
    o.flavour = f ? QORB_REDIS_ASYNC : QORB_REDIS_BLOCKING;
    o.password = "wrong-password";
    expect_refused(&o, RT_P, "WRONGPASS");
    o.password = NULL; /* no AUTH: the server wants one */
    expect_refused(&o, RT_P, "NOAUTH");
    o.user = "nobody";
    o.password = RT_USER_PASSWORD;
    expect_refused(&o, RT_P, "WRONGPASS");
  }

  /* The right password (default user) works. */
  rt_options(&o, "qorb-auth");
  o.password = RT_PASSWORD;
  pool = rt_pool(RT_P, &o, NULL, NULL);
  claims_all_ok(pool, 5, RT_P);
  itest_close(pool);
}

static void test_refused_port(void **state) {
  qorb_redis_options_t o;
  (void)state;
  rt_options(&o, "qorb-refused");
  expect_refused(&o, RT_REFUSED, "refused");
  o.flavour = QORB_REDIS_ASYNC;
  expect_refused(&o, RT_REFUSED, "refused");
}

static void test_bad_database(void **state) {
  qorb_redis_options_t o;
  (void)state;
  rt_options(&o, "qorb-baddb");
  o.database = 99; /* the server has 16 */
  expect_refused(&o, RT_A, "DB index is out of range");
  o.flavour = QORB_REDIS_ASYNC;
  expect_refused(&o, RT_A, "DB index is out of range");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kill_idle_blocking),
      cmocka_unit_test(test_kill_idle_async),
      cmocka_unit_test(test_kill_claimed_blocking),
      cmocka_unit_test(test_kill_claimed_async),
      cmocka_unit_test(test_restart),
      cmocka_unit_test(test_hung_backend),
      cmocka_unit_test(test_auth),
      cmocka_unit_test(test_refused_port),
      cmocka_unit_test(test_bad_database),
  };
  rt_block_sigpipe();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
