/* SPDX-License-Identifier: MIT */
/*
 * test_redis_hooks.c: the pool's lifecycle hooks against a real Redis,
 * with qorb_redis_hook_command() sending their commands on the pool loop:
 * after_connect runs once per connection (it counts itself in a key), in
 * both flavours; an after_connect command the server refuses keeps the
 * backend from being used and says why; before_acquire rejects connections
 * while a gate key says so, and none of them is handed out; after_release
 * rejects the connection its claimant marked, which is closed on the
 * server; a before_acquire that blocks past hook_timeout_ms (BLPOP) closes
 * the connection, and claims are served once it answers in time again.
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_testlib.h"

#define NAME "qorb-hooks"

/* What the hooks of the current test do; the pool loop reads it. */
static struct {
  _Atomic unsigned long connects, acquires, releases;
  _Atomic int slow;          /* before_acquire blocks past its bound */
  _Atomic int bad_connect;   /* after_connect sends an unknown command */
} H;

/* Rejects a connection whose reply is the string `arg`. */
static int judge_word(void *arg, qorb_op_t *op, const redisReply *r) {
  const char *word = arg;
  if (r->type == REDIS_REPLY_STRING && strcmp(r->str, word) == 0) {
    qorb_op_set_error(op, "the reply says %s", word);
    return QORB_EREJECTED;
  }
  return 0;
}

static int hook_cmd(qorb_op_t *op, void *conn, int argc, const char **argv,
                    const char *reject) {
  size_t len[4];
  int i;
  for (i = 0; i < argc; i++) len[i] = strlen(argv[i]);
  return qorb_redis_hook_command(op, conn, argc, argv, len,
                                 reject != NULL ? judge_word : NULL,
                                 (void *)reject);
}

static int after_connect(void *arg, qorb_op_t *op, void *conn) {
  const char *incr[] = {"INCR", "hooks:connects"};
  const char *bad[] = {"NOSUCHCOMMAND", "x"};
  (void)arg;
  atomic_fetch_add(&H.connects, 1);
  return hook_cmd(op, conn, 2, atomic_load(&H.bad_connect) ? bad : incr,
                  NULL);
}


static int before_acquire(void *arg, qorb_op_t *op, void *conn) {
  const char *get[] = {"GET", "hooks:gate"};
  const char *blpop[] = {"BLPOP", "hooks:never", "3"};
  (void)arg;
  atomic_fetch_add(&H.acquires, 1);
  if (atomic_load(&H.slow)) return hook_cmd(op, conn, 3, blpop, NULL);
  /* The gate key: "closed" rejects every connection. */
  return hook_cmd(op, conn, 2, get, "closed");
}

static int after_release(void *arg, qorb_op_t *op, void *conn) {
  const char *getname[] = {"CLIENT", "GETNAME"};
  (void)arg;
  atomic_fetch_add(&H.releases, 1);
  /* A claimant marks its connection by naming it "marked". */
  return hook_cmd(op, conn, 2, getname, "marked");
}

static void hooked(qorb_policy_t *p) {
  p->max_slots = 2;
  p->spares_wanted = 2;
  p->health_interval_ms = 0;
  p->after_connect = after_connect;
  p->before_acquire = before_acquire;
  p->after_release = after_release;
  p->hook_timeout_ms = 400;
}

static qorb_pool_t *open_pool(qorb_redis_flavour_t flavour,
                              struct ev_loop *loop) {
  qorb_redis_options_t o;
  redisContext *admin = rt_admin(RT_A);
  rt_cmd_status(admin, "OK", "SET hooks:gate open");
  rt_cmd_int(admin, "DEL hooks:connects");
  redisFree(admin);
  memset(&H, 0, sizeof(H));
  rt_options(&o, NAME);
  o.flavour = flavour;
  return rt_pool(RT_A, &o, loop, hooked);
}

static long long connects_key(void) {
  redisContext *admin = rt_admin(RT_A);
  redisReply *r = rt_cmd(admin, "GET hooks:connects");
  long long n = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
  freeReplyObject(r);
  redisFree(admin);
  return n;
}

static redisContext *claim(qorb_pool_t *pool, qorb_claim_t **cl) {
  redisContext *c;
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, cl), 0);
  c = qorb_redis_ctx(*cl);
  assert_non_null(c);
  return c;
}

/* Once per connection, with before_acquire before each hand-out and
   after_release after each release. */
static void test_after_connect_once(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  int i;
  (void)state;
  pool = open_pool(QORB_REDIS_BLOCKING, NULL);
  for (i = 0; i < 20; i++) {
    redisContext *c = claim(pool, &cl);
    rt_cmd_status(c, "OK", "SET hooks:k%d v", i);
    assert_int_equal(qorb_release(cl), 0);
  }
  ITEST_WAIT(itest_total_idle(pool) == 2, 10000);
  assert_int_equal(atomic_load(&H.connects), itest_connects(pool, RT_A));
  assert_int_equal(connects_key(), (long long)atomic_load(&H.connects));
  assert_int_equal(atomic_load(&H.releases), 20);
  assert_int_equal(atomic_load(&H.acquires), 20 + atomic_load(&H.connects));
  itest_close(pool);
}

/* The same in the async flavour, claimed and released on the loop. */
static void test_after_connect_once_async(void **state) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  int i;
  (void)state;
  pool = open_pool(QORB_REDIS_ASYNC, loop);
  for (i = 0; i < 10; i++) {
    rt_reply_t r;
    assert_int_equal(rt_loop_claim(pool, loop, 10000, &cl), 0);
    assert_int_equal(rt_loop_cmd(loop, qorb_redis_async(cl), 5000, &r,
                                 "GET hooks:gate"),
                     0);
    assert_string_equal(r.str, "open");
    assert_int_equal(qorb_release(cl), 0);
  }
  RT_WAIT(loop, itest_total_idle(pool) == 2, 10000);
  assert_int_equal(connects_key(), (long long)atomic_load(&H.connects));
  assert_int_equal(atomic_load(&H.releases), 10);
  rt_close_on_loop(pool, loop);
  ev_loop_destroy(loop);
}

/* A command the server refuses: nothing is handed out; the error says
   which hook and what the server answered. */
static void test_after_connect_refused(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl = NULL;
  (void)state;
  pool = open_pool(QORB_REDIS_BLOCKING, NULL);
  ITEST_WAIT(itest_total_idle(pool) == 2, 10000);
  atomic_store(&H.bad_connect, 1);
  /* Replace both connections: they come back through after_connect. */
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_int_equal(qorb_release_broken(cl), 0);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_int_equal(qorb_release_broken(cl), 0);
  cl = NULL;
  ITEST_WAIT(itest_total_idle(pool) == 0, 10000);
  assert_int_not_equal(qorb_pool_claim_wait(pool, 1000, &cl), 0);
  assert_null(cl);
  itest_wait_error(pool, RT_A, "after_connect hook", "unknown command", 1);
  atomic_store(&H.bad_connect, 0);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_int_equal(qorb_release(cl), 0);
  itest_close(pool);
}

/* While the gate is closed no connection is handed out (each is rejected
   and closed); once it opens, claims are served. */
static void test_before_acquire_gate(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl = NULL;
  redisContext *admin;
  (void)state;
  pool = open_pool(QORB_REDIS_BLOCKING, NULL);
  ITEST_WAIT(itest_total_idle(pool) == 2, 10000);
  admin = rt_admin(RT_A);
  rt_cmd_status(admin, "OK", "SET hooks:gate closed");
  /* The two idle connections passed the gate before it closed; take them
     out and back, so that they meet it. */
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_int_equal(qorb_release(cl), 0);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_int_equal(qorb_release(cl), 0);
  cl = NULL;
  ITEST_WAIT(itest_total_idle(pool) == 0, 10000);
  assert_int_not_equal(qorb_pool_claim_wait(pool, 1000, &cl), 0);
  assert_null(cl);
  itest_wait_error(pool, RT_A, "before_acquire hook", "says closed", 1);
  rt_cmd_status(admin, "OK", "SET hooks:gate open");
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_int_equal(qorb_release(cl), 0);
  redisFree(admin);
  itest_close(pool);
}

/* after_release closes the connection its claimant marked. */
static void test_after_release_rejects_marked(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  long long marked;
  int i;
  (void)state;
  pool = open_pool(QORB_REDIS_BLOCKING, NULL);
  {
    redisContext *c = claim(pool, &cl);
    marked = rt_cmd_int(c, "CLIENT ID");
    rt_cmd_status(c, "OK", "CLIENT SETNAME marked");
    assert_int_equal(qorb_release(cl), 0);
  }
  for (i = 0; i < 10; i++) {
    redisContext *c = claim(pool, &cl);
    assert_true(rt_cmd_int(c, "CLIENT ID") != marked);
    assert_int_equal(qorb_release(cl), 0);
  }
  ITEST_WAIT(rt_count_clients(RT_A, "marked") == 0, 10000);
  itest_close(pool);
}

/* A before_acquire that blocks past hook_timeout_ms (400 ms) closes the
   connection; once it is quick again, claims are served. */
static void test_before_acquire_timeout(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl = NULL;
  (void)state;
  pool = open_pool(QORB_REDIS_BLOCKING, NULL);
  ITEST_WAIT(itest_total_idle(pool) == 2, 10000);
  atomic_store(&H.slow, 1);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_int_equal(qorb_release(cl), 0);
  itest_wait_error(pool, RT_A, "before_acquire", "timed out", 10000);
  atomic_store(&H.slow, 0);
  {
    redisContext *c = claim(pool, &cl);
    rt_cmd_status(c, "PONG", "PING");
    assert_int_equal(qorb_release(cl), 0);
  }
  itest_close(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_after_connect_once),
      cmocka_unit_test(test_after_connect_once_async),
      cmocka_unit_test(test_after_connect_refused),
      cmocka_unit_test(test_before_acquire_gate),
      cmocka_unit_test(test_after_release_rejects_marked),
      cmocka_unit_test(test_before_acquire_timeout),
  };
  rt_block_sigpipe();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
