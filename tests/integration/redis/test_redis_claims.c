/* SPDX-License-Identifier: MIT */
/*
 * test_redis_claims.c: claims over two backends (a and b).
 *   - blocking flavour: 8 threads claim, SET/GET/INCR on the claimed
 *     redisContext, release; every round trip works, both backends serve
 *     claims, the contexts are in blocking mode with TCP keepalive on, and
 *     after the pool closes no connection of it is left on the servers;
 *   - async flavour: the application's loop, 16 concurrent claim chains
 *     (claim, INCR, release from the reply callback) until 2000 commands
 *     have run; both backends serve; closing leaves no watcher on the loop;
 *   - configured AUTH / SELECT / CLIENT SETNAME are in effect on the
 *     claimed connection, and connects really happen without blocking the
 *     pool loop (a connect to a frozen server does not stop claims).
 */
#define _GNU_SOURCE

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "redis_testlib.h"

#define THREADS 8
#define ROUNDS 300

static void tweak_8(qorb_policy_t *p) {
  p->max_slots = 8;
  p->spares_wanted = 4;
}

typedef struct worker {
  pthread_t thread;
  int id;
  qorb_pool_t *pool;
  atomic_int *errors;
  int blocking_ok;  /* every claimed context was in blocking mode */
  int keepalive_ok; /* and had SO_KEEPALIVE */
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  int i;

  w->blocking_ok = 1;
  w->keepalive_ok = 1;
  for (i = 0; i < ROUNDS; i++) {
    qorb_claim_t *cl;
    redisContext *c;
    redisReply *r;
    int ka = 0, bad = 0;
    socklen_t len = sizeof(ka);

    if (qorb_pool_claim_wait(w->pool, 10000, &cl) != 0) {
      atomic_fetch_add(w->errors, 1);
      continue;
    }
    c = qorb_redis_ctx(cl);
    if (c == NULL) {
      atomic_fetch_add(w->errors, 1);
      qorb_release_broken(cl);
      continue;
    }
    if (!(c->flags & REDIS_BLOCK)) w->blocking_ok = 0;
    if (getsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &ka, &len) != 0 || !ka)
      w->keepalive_ok = 0;
    r = redisCommand(c, "SET claims:%d:%d v%d", w->id, i, i);
    if (r == NULL || r->type != REDIS_REPLY_STATUS) bad = 1;
    if (r) freeReplyObject(r);
    r = redisCommand(c, "GET claims:%d:%d", w->id, i);
    if (r == NULL || r->type != REDIS_REPLY_STRING ||
        atoi(r->str + 1) != i)
      bad = 1;
    if (r) freeReplyObject(r);
    r = redisCommand(c, "INCR claims:counter");
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) bad = 1;
    if (r) freeReplyObject(r);
    if (bad) atomic_fetch_add(w->errors, 1);
    qorb_release(cl);
  }
  return NULL;
}

static void test_blocking_threads(void **state) {
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  worker_t w[THREADS];
  atomic_int errors = 0;
  int i;
  (void)state;
  rt_skip_if_external("needs a second master, b");

  rt_options(&o, "qorb-claims");
  pool = rt_pool(RT_AB, &o, NULL, tweak_8);
  for (i = 0; i < THREADS; i++) {
    w[i].id = i;
    w[i].pool = pool;
    w[i].errors = &errors;
    assert_int_equal(pthread_create(&w[i].thread, NULL, worker_main, &w[i]),
                     0);
  }
  for (i = 0; i < THREADS; i++) {
    assert_int_equal(pthread_join(w[i].thread, NULL), 0);
    assert_true(w[i].blocking_ok);
    assert_true(w[i].keepalive_ok);
  }
  assert_int_equal(atomic_load(&errors), 0);
  /* Both backends served claims. */
  assert_true(itest_claims(pool, RT_A) > 0);
  assert_true(itest_claims(pool, RT_B) > 0);
  assert_int_equal(itest_claims(pool, RT_A) + itest_claims(pool, RT_B),
                   THREADS * ROUNDS);
  assert_int_equal(itest_failures(pool, RT_A), 0);
  assert_int_equal(itest_failures(pool, RT_B), 0);
  /* The client name is set on every connection of the pool. */
  assert_true(rt_count_clients(RT_A, "qorb-claims") >= 1);
  assert_true(rt_count_clients(RT_B, "qorb-claims") >= 1);
  itest_close(pool);
  /* Nothing left behind on the servers. */
  ITEST_WAIT(rt_count_clients(RT_A, "qorb-claims") == 0 &&
                 rt_count_clients(RT_B, "qorb-claims") == 0,
             5000);
  assert_int_equal(rt_count_clients(RT_A, "qorb-claims"), 0);
  assert_int_equal(rt_count_clients(RT_B, "qorb-claims"), 0);
}

/* ---------------------------------------------------------------------- */

#define CHAINS 16
#define ASYNC_OPS 2000

typedef struct async_state {
  qorb_pool_t *pool;
  struct ev_loop *loop;
  int started, finished, errors, active;
  int done;
} async_state_t;

static void chain_next(async_state_t *s);

/* The claim and the state travel together in a small record. */
typedef struct chain_op {
  async_state_t *s;
  qorb_claim_t *claim;
} chain_op_t;

static void chain_reply(redisAsyncContext *ac, void *r, void *privdata) {
  chain_op_t *op = privdata;
  async_state_t *s = op->s;
  redisReply *reply = r;
  (void)ac;

  if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) s->errors++;
  s->finished++;
  /* Release from the reply callback: the usual async pattern. */
  assert_int_equal(qorb_release(op->claim), 0);
  free(op);
  s->active--;
  chain_next(s);
}

static void chain_claimed(qorb_pool_t *pool, int status, qorb_claim_t *cl,
                          void *arg) {
  async_state_t *s = arg;
  redisAsyncContext *ac;
  chain_op_t *op;
  (void)pool;

  if (status != 0) {
    s->errors++;
    s->active--;
    s->finished++;
    chain_next(s);
    return;
  }
  ac = qorb_redis_async(cl);
  assert_non_null(ac);
  assert_null(qorb_redis_ctx(cl)); /* not a blocking pool */
  op = calloc(1, sizeof(*op));
  assert_non_null(op);
  op->s = s;
  op->claim = cl;
  if (redisAsyncCommand(ac, chain_reply, op, "INCR async:counter") !=
      REDIS_OK) {
    s->errors++;
    free(op);
    qorb_release_broken(cl);
    s->active--;
    s->finished++;
    chain_next(s);
  }
}

static void chain_next(async_state_t *s) {
  if (s->started >= ASYNC_OPS) {
    if (s->active == 0) s->done = 1;
    return;
  }
  s->started++;
  s->active++;
  assert_int_equal(qorb_pool_claim(s->pool, 10000, chain_claimed, s, NULL),
                   0);
}

static void test_async_loop(void **state) {
  qorb_redis_options_t o;
  async_state_t s;
  uint64_t end;
  int i;
  (void)state;
  rt_skip_if_external("needs a second master, b");

  memset(&s, 0, sizeof(s));
  s.loop = ev_loop_new(EVFLAG_AUTO);
  assert_non_null(s.loop);
  rt_options(&o, "qorb-claims-async");
  o.flavour = QORB_REDIS_ASYNC;
  s.pool = rt_pool(RT_AB, &o, s.loop, tweak_8);
  for (i = 0; i < CHAINS; i++) chain_next(&s);
  end = itest_now_ms() + 60000;
  while (!s.done && itest_now_ms() < end)
    rt_loop_for(s.loop, 50);
  assert_true(s.done);
  assert_int_equal(s.finished, ASYNC_OPS);
  assert_int_equal(s.errors, 0);
  assert_true(itest_claims(s.pool, RT_A) > 0);
  assert_true(itest_claims(s.pool, RT_B) > 0);
  assert_true(rt_count_clients(RT_A, "qorb-claims-async") >= 1);
  {
    /* Keepalive is on for the async flavour too. */
    qorb_claim_t *cl;
    int ka = 0;
    socklen_t len = sizeof(ka);
    assert_int_equal(rt_loop_claim(s.pool, s.loop, 5000, &cl), 0);
    assert_int_equal(getsockopt(qorb_redis_async(cl)->c.fd, SOL_SOCKET,
                                SO_KEEPALIVE, &ka, &len),
                     0);
    assert_true(ka);
    assert_int_equal(qorb_release(cl), 0);
  }
  rt_close_on_loop(s.pool, s.loop);
  ev_loop_destroy(s.loop);
  ITEST_WAIT(rt_count_clients(RT_A, "qorb-claims-async") == 0 &&
                 rt_count_clients(RT_B, "qorb-claims-async") == 0,
             5000);
  assert_int_equal(rt_count_clients(RT_A, "qorb-claims-async"), 0);
  assert_int_equal(rt_count_clients(RT_B, "qorb-claims-async"), 0);
}

/* ---------------------------------------------------------------------- */

static void test_session_settings(void **state) {
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  redisContext *c;
  redisReply *r;
  char buf[64];
  (void)state;
  rt_skip_if_external("needs server p (requirepass, an ACL user)");

  /* AUTH with an ACL user, SELECT 3 and a client name, all on connect. */
  rt_options(&o, "qorb-settings");
  o.user = RT_USER;
  o.password = RT_USER_PASSWORD;
  o.database = 3;
  pool = rt_pool(RT_P, &o, NULL, NULL);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  c = qorb_redis_ctx(cl);
  assert_non_null(c);
  r = rt_cmd(c, "CLIENT INFO");
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  assert_int_equal(rt_info_field(r->str, "db", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "3");
  assert_int_equal(rt_info_field(r->str, "name", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "qorb-settings");
  assert_int_equal(rt_info_field(r->str, "user", buf, sizeof(buf)), 0);
  assert_string_equal(buf, RT_USER);
  freeReplyObject(r);
  assert_string_equal(qorb_claim_addr(cl)->text, RT_P);
  assert_int_equal(qorb_release(cl), 0);
  itest_close(pool);
}

/* An IPv6 backend, both flavours, and keepalive off when asked. */
static void test_ipv6(void **state) {
  struct ev_loop *loop;
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  redisReply *r;
  rt_reply_t ar;
  int ka = 1;
  socklen_t len = sizeof(ka);
  (void)state;
  rt_skip_if_external("needs b over IPv6 ([::1])");
  loop = ev_loop_new(EVFLAG_AUTO);

  rt_options(&o, "qorb-ipv6");
  o.keepalive = 0;
  pool = rt_pool(RT_B6, &o, NULL, NULL);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_string_equal(qorb_claim_addr(cl)->text, RT_B6);
  r = rt_cmd(qorb_redis_ctx(cl), "CLIENT INFO");
  assert_non_null(strstr(r->str, "laddr=[::1]:56392"));
  freeReplyObject(r);
  assert_int_equal(getsockopt(qorb_redis_ctx(cl)->fd, SOL_SOCKET,
                              SO_KEEPALIVE, &ka, &len),
                   0);
  assert_false(ka);
  qorb_release(cl);
  itest_close(pool);

  o.flavour = QORB_REDIS_ASYNC;
  pool = rt_pool(RT_B6, &o, loop, NULL);
  assert_int_equal(rt_loop_claim(pool, loop, 10000, &cl), 0);
  assert_int_equal(
      rt_loop_cmd(loop, qorb_redis_async(cl), 5000, &ar, "CLIENT INFO"), 0);
  assert_non_null(strstr(ar.str, "laddr=[::1]:56392"));
  qorb_release(cl);
  rt_close_on_loop(pool, loop);
  ev_loop_destroy(loop);
}

static void test_connect_never_blocks_loop(void **state) {
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  uint64_t t0;
  int i;
  (void)state;
  rt_skip_if_external("freezes server b");

  /* b is frozen: its connects hang (the kernel accepts, redis never
   * answers). Claims from a must keep flowing meanwhile, which they could
   * not if a connect blocked the pool loop. */
  assert_int_equal(rt_servers("freeze b"), 0);
  rt_options(&o, "qorb-nonblock");
  pool = rt_pool(RT_AB, &o, NULL, NULL);
  t0 = itest_now_ms();
  for (i = 0; i < 50; i++) {
    redisReply *r;
    assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
    assert_string_equal(qorb_claim_addr(cl)->text, RT_A);
    r = rt_cmd(qorb_redis_ctx(cl), "PING");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    qorb_release(cl);
  }
  /* Far below the 5 s connect timeout that the b connects sit in. */
  assert_true(itest_now_ms() - t0 < 4000);
  assert_int_equal(itest_online(pool, RT_B), 0);
  itest_close(pool);
  assert_int_equal(rt_servers("thaw b"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_blocking_threads),
      cmocka_unit_test(test_async_loop),
      cmocka_unit_test(test_session_settings),
      cmocka_unit_test(test_ipv6),
      cmocka_unit_test(test_connect_never_blocks_loop),
  };
  signal(SIGPIPE, SIG_IGN); /* as every hiredis program should */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
