/* SPDX-License-Identifier: MIT */
/*
 * test_redis_isolation.c: nothing a claimant leaves behind reaches the next
 * claimant of the same connection. A pool of exactly one connection (so the
 * next claim gets the same one, unless it was closed), configured with
 * database 2 and a client name; each case dirties the connection, releases
 * it, claims again and checks the clean default state with CLIENT INFO and
 * by behaviour:
 *   SELECT 5; MULTI left open; WATCH on a key changed meanwhile; SUBSCRIBE
 *   with messages waiting; CLIENT SETNAME; CLIENT REPLY OFF; CLIENT
 *   TRACKING on; CLIENT NO-EVICT on (Redis 7.0's RESET keeps it); a
 *   command appended and never sent; a reply left unread; a broken
 *   release.
 * Both flavours, with RESET (Redis 7 has it) and with the legacy sequence
 * that older servers get (forced with QORB_REDIS_RECYCLE_LEGACY). With
 * recycling off (QORB_REDIS_RECYCLE_NONE) nothing is cleaned, but a reply
 * left unread, in hiredis's buffer or still on the socket, never reaches
 * the next claimant.
 */
#define _GNU_SOURCE

#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_testlib.h"

#define NAME "qorb-iso"

static void tweak_one(qorb_policy_t *p) {
  p->max_slots = 1;
  p->spares_wanted = 1;
  p->recycle_timeout_ms = 2000;
}

static qorb_pool_t *iso_pool(qorb_redis_recycle_t mode,
                             qorb_redis_flavour_t flavour,
                             struct ev_loop *loop) {
  qorb_redis_options_t o;
  rt_options(&o, NAME);
  o.database = 2;
  o.recycle = mode;
  o.flavour = flavour;
  return rt_pool(RT_A, &o, loop, tweak_one);
}

/* ---------------------------------------------------------------------
 * Blocking flavour
 * --------------------------------------------------------------------- */

static redisContext *claim(qorb_pool_t *pool, qorb_claim_t **cl) {
  redisContext *c;
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, cl), 0);
  c = qorb_redis_ctx(*cl);
  assert_non_null(c);
  assert_true(c->flags & REDIS_BLOCK);
  return c;
}

static long long client_id(redisContext *c) {
  return rt_cmd_int(c, "CLIENT ID");
}

/* The default state: database 2, our name, no MULTI, no subscription. */
static void assert_clean_info(const char *info) {
  char buf[128];
  assert_int_equal(rt_info_field(info, "db", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "2");
  assert_int_equal(rt_info_field(info, "name", buf, sizeof(buf)), 0);
  assert_string_equal(buf, NAME);
  assert_int_equal(rt_info_field(info, "multi", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "-1");
  assert_int_equal(rt_info_field(info, "sub", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "0");
  assert_int_equal(rt_info_field(info, "psub", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "0");
  assert_int_equal(rt_info_field(info, "flags", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "N");
}

static void assert_clean(redisContext *c) {
  redisReply *r = rt_cmd(c, "CLIENT INFO");
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  assert_clean_info(r->str);
  freeReplyObject(r);
  /* And by behaviour: a plain command answers at once, in database 2. */
  rt_cmd_status(c, "OK", "SET iso:probe here");
  r = rt_cmd(c, "GET iso:probe");
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  assert_string_equal(r->str, "here");
  freeReplyObject(r);
  rt_cmd_status(c, "PONG", "PING");
}

/* CLIENT INFO's flags include `flag`. */
static void assert_flag(redisContext *c, char flag) {
  redisReply *r = rt_cmd(c, "CLIENT INFO");
  char buf[32];
  assert_int_equal(rt_info_field(r->str, "flags", buf, sizeof(buf)), 0);
  freeReplyObject(r);
  if (strchr(buf, flag) == NULL)
    fail_msg("flags '%s' without '%c'", buf, flag);
}

/* Send what is appended to `c` without reading any reply. */
static void flush_only(redisContext *c) {
  int done = 0;
  while (!done) assert_int_equal(redisBufferWrite(c, &done), REDIS_OK);
}

/* Release the claim, claim again, check clean; the same connection or a
 * new one as `same` says. */
static void next_is_clean(qorb_pool_t *pool, qorb_claim_t *cl, long long id,
                          int same) {
  redisContext *c;
  assert_int_equal(qorb_release(cl), 0);
  c = claim(pool, &cl);
  if (same)
    assert_int_equal(client_id(c), id);
  else
    assert_true(client_id(c) != id);
  assert_clean(c);
  assert_int_equal(qorb_release(cl), 0);
}

static void run_blocking_cases(qorb_redis_recycle_t mode) {
  qorb_pool_t *pool = iso_pool(mode, QORB_REDIS_BLOCKING, NULL);
  redisContext *admin = rt_admin(RT_A);
  qorb_claim_t *cl;
  redisContext *c;
  redisReply *r;
  long long id;
  int i;

  /* A fresh connection is clean, in database 2 with our name. */
  c = claim(pool, &cl);
  id = client_id(c);
  assert_clean(c);
  rt_cmd_status(c, "OK", "SET iso:db2 two");

  /* SELECT another database. */
  rt_cmd_status(c, "OK", "SELECT 5");
  rt_cmd_status(c, "OK", "SET iso:db5 five");
  next_is_clean(pool, cl, id, 1);

  /* MULTI left open, with a command queued. */
  c = claim(pool, &cl);
  rt_cmd_status(c, "OK", "MULTI");
  rt_cmd_status(c, "QUEUED", "SET iso:multi queued");
  next_is_clean(pool, cl, id, 1);
  r = rt_cmd(admin, "EXISTS iso:multi"); /* never executed */
  assert_int_equal(r->integer, 0);
  freeReplyObject(r);

  /* WATCH on a key that someone else changes meanwhile: the next
   * claimant's transaction must not abort because of it. */
  c = claim(pool, &cl);
  rt_cmd_status(c, "OK", "WATCH iso:watched");
  assert_int_equal(qorb_release(cl), 0);
  rt_cmd_status(admin, "OK", "SELECT 2");
  rt_cmd_status(admin, "OK", "SET iso:watched by-admin");
  c = claim(pool, &cl);
  assert_int_equal(client_id(c), id);
  rt_cmd_status(c, "OK", "MULTI");
  rt_cmd_status(c, "QUEUED", "SET iso:watched by-claimant");
  r = rt_cmd(c, "EXEC");
  assert_int_equal(r->type, REDIS_REPLY_ARRAY); /* nil if still watched */
  freeReplyObject(r);
  assert_clean(c);

  /* SUBSCRIBE, with messages published after it waiting unread. RESET
   * ends the subscription and the messages are skipped; the legacy
   * sequence cannot clean it and closes the connection. */
  r = rt_cmd(c, "SUBSCRIBE iso:chan");
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  freeReplyObject(r);
  for (i = 0; i < 3; i++) {
    long long n = rt_cmd_int(admin, "PUBLISH iso:chan hello%d", i);
    assert_int_equal(n, 1);
  }
  next_is_clean(pool, cl, id, mode != QORB_REDIS_RECYCLE_LEGACY);
  c = claim(pool, &cl);
  id = client_id(c);

  /* CLIENT SETNAME: the configured name comes back. */
  rt_cmd_status(c, "OK", "CLIENT SETNAME someone-else");
  next_is_clean(pool, cl, id, 1);

  /* CLIENT NO-EVICT on (flag e), which Redis 7.0's RESET leaves on: the
   * recycle turns it off (flags back to N), in both recycle styles. */
  c = claim(pool, &cl);
  rt_cmd_status(c, "OK", "CLIENT NO-EVICT on");
  assert_flag(c, 'e');
  next_is_clean(pool, cl, id, 1);

  /* CLIENT TRACKING on (flag t): only RESET undoes it. */
  if (mode != QORB_REDIS_RECYCLE_LEGACY) {
    c = claim(pool, &cl);
    rt_cmd_status(c, "OK", "CLIENT TRACKING on");
    assert_flag(c, 't');
    next_is_clean(pool, cl, id, 1);
  }

  /* CLIENT REPLY OFF: only RESET undoes it (the legacy sequence would
   * get no reply and time out, closing the connection). */
  if (mode != QORB_REDIS_RECYCLE_LEGACY) {
    c = claim(pool, &cl);
    assert_int_equal(redisAppendCommand(c, "CLIENT REPLY OFF"), REDIS_OK);
    flush_only(c);
    next_is_clean(pool, cl, id, 1);
  }

  /* A command appended and never sent: closed, not recycled. */
  c = claim(pool, &cl);
  assert_int_equal(redisAppendCommand(c, "SET iso:pending yes"), REDIS_OK);
  next_is_clean(pool, cl, id, 0);
  c = claim(pool, &cl);
  id = client_id(c);

  /* Two commands sent, one reply read: the other reply is in hiredis's
   * buffer or still on the socket. Either way, closed. */
  assert_int_equal(redisAppendCommand(c, "SET iso:unread 1"), REDIS_OK);
  assert_int_equal(redisAppendCommand(c, "GET iso:unread"), REDIS_OK);
  assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
  freeReplyObject(r);
  next_is_clean(pool, cl, id, 0);
  c = claim(pool, &cl);
  id = client_id(c);

  /* Released as broken: closed. */
  assert_int_equal(qorb_release_broken(cl), 0);
  c = claim(pool, &cl);
  assert_true(client_id(c) != id);
  assert_clean(c);
  assert_int_equal(qorb_release(cl), 0);

  /* Nothing of the dirty states ever counted as a backend failure except
   * the connections closed on purpose, which are not failures either. */
  assert_true(itest_online(pool, RT_A));
  itest_close(pool);
  redisFree(admin);
}

static void test_blocking_reset(void **state) {
  (void)state;
  run_blocking_cases(QORB_REDIS_RECYCLE_AUTO);
}

static void test_blocking_legacy(void **state) {
  (void)state;
  run_blocking_cases(QORB_REDIS_RECYCLE_LEGACY);
}

/* With recycling off, nothing is cleaned (the documented trade), but a
 * connection left with replies pending is still closed. */
static void test_blocking_none(void **state) {
  qorb_pool_t *pool = iso_pool(QORB_REDIS_RECYCLE_NONE, QORB_REDIS_BLOCKING,
                               NULL);
  qorb_claim_t *cl;
  redisContext *c;
  redisReply *r;
  long long id;
  char buf[16];
  (void)state;

  c = claim(pool, &cl);
  id = client_id(c);
  rt_cmd_status(c, "OK", "SELECT 5");
  assert_int_equal(qorb_release(cl), 0);
  c = claim(pool, &cl);
  assert_int_equal(client_id(c), id);
  r = rt_cmd(c, "CLIENT INFO");
  assert_int_equal(rt_info_field(r->str, "db", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "5"); /* not cleaned: recycle NONE */
  freeReplyObject(r);
  assert_int_equal(redisAppendCommand(c, "PING"), REDIS_OK);
  assert_int_equal(qorb_release(cl), 0);
  c = claim(pool, &cl);
  assert_true(client_id(c) != id);

  /* A reply left on the socket: the command was sent and answered, and
   * nothing read it. No recycle's PING stands between it and the next
   * claimant, so the release looks at the socket and closes the
   * connection; the next claimant's first reply is its own. */
  id = client_id(c);
  assert_int_equal(redisAppendCommand(c, "PING stale-on-socket"), REDIS_OK);
  flush_only(c);
  {
    struct pollfd p = {c->fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 5000), 1);
  }
  assert_int_equal(qorb_release(cl), 0);
  c = claim(pool, &cl);
  assert_true(client_id(c) != id);
  rt_cmd_status(c, "PONG", "PING");

  /* Two commands sent, one reply read: the other is in hiredis's buffer
   * or on the socket. Either way the next claimant never reads it. */
  id = client_id(c);
  assert_int_equal(redisAppendCommand(c, "PING first"), REDIS_OK);
  assert_int_equal(redisAppendCommand(c, "PING stale-second"), REDIS_OK);
  assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
  assert_string_equal(r->str, "first");
  freeReplyObject(r);
  assert_int_equal(qorb_release(cl), 0);
  c = claim(pool, &cl);
  assert_true(client_id(c) != id);
  rt_cmd_status(c, "PONG", "PING");
  assert_int_equal(qorb_release(cl), 0);
  itest_close(pool);
}

/* ---------------------------------------------------------------------
 * Async flavour, on the test's own loop
 * --------------------------------------------------------------------- */

static redisAsyncContext *aclaim(qorb_pool_t *pool, struct ev_loop *loop,
                                 qorb_claim_t **cl) {
  redisAsyncContext *ac;
  assert_int_equal(rt_loop_claim(pool, loop, 10000, cl), 0);
  ac = qorb_redis_async(*cl);
  assert_non_null(ac);
  return ac;
}

static long long aclient_id(struct ev_loop *loop, redisAsyncContext *ac) {
  rt_reply_t r;
  assert_int_equal(rt_loop_cmd(loop, ac, 5000, &r, "CLIENT ID"), 0);
  assert_int_equal(r.type, REDIS_REPLY_INTEGER);
  return r.integer;
}

static void aassert_clean(struct ev_loop *loop, redisAsyncContext *ac) {
  rt_reply_t r;
  assert_int_equal(rt_loop_cmd(loop, ac, 5000, &r, "CLIENT INFO"), 0);
  assert_int_equal(r.type, REDIS_REPLY_STRING);
  assert_clean_info(r.str);
  assert_int_equal(rt_loop_cmd(loop, ac, 5000, &r, "SET iso:aprobe x"), 0);
  assert_int_equal(r.type, REDIS_REPLY_STATUS);
  assert_string_equal(r.str, "OK");
}

static void anext_is_clean(qorb_pool_t *pool, struct ev_loop *loop,
                           qorb_claim_t *cl, long long id, int same) {
  redisAsyncContext *ac;
  assert_int_equal(qorb_release(cl), 0);
  ac = aclaim(pool, loop, &cl);
  if (same)
    assert_int_equal(aclient_id(loop, ac), id);
  else
    assert_true(aclient_id(loop, ac) != id);
  aassert_clean(loop, ac);
  assert_int_equal(qorb_release(cl), 0);
}

/* A command whose reply must be the status `want`. A macro, so the
 * command is the format itself (split into arguments by hiredis). */
#define astatus(loop, ac, want, cmd)                                   \
  do {                                                                 \
    rt_reply_t r_;                                                     \
    assert_int_equal(rt_loop_cmd((loop), (ac), 5000, &r_, cmd), 0);    \
    if (r_.type != REDIS_REPLY_STATUS || strcmp(r_.str, (want)) != 0)  \
      fprintf(stderr, "%s: type %d '%s'\n", cmd, r_.type, r_.str);     \
    assert_int_equal(r_.type, REDIS_REPLY_STATUS);                     \
    assert_string_equal(r_.str, (want));                               \
  } while (0)

static int pending_calls;
static void pending_cb(redisAsyncContext *ac, void *r, void *privdata) {
  (void)ac;
  (void)privdata;
  (void)r;
  pending_calls++;
}

static void run_async_cases(qorb_redis_recycle_t mode) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  qorb_pool_t *pool = iso_pool(mode, QORB_REDIS_ASYNC, loop);
  redisContext *admin = rt_admin(RT_A);
  redisAsyncContext *ac;
  qorb_claim_t *cl;
  rt_reply_t r;
  long long id;

  ac = aclaim(pool, loop, &cl);
  id = aclient_id(loop, ac);
  aassert_clean(loop, ac);

  astatus(loop, ac, "OK", "SELECT 5");
  anext_is_clean(pool, loop, cl, id, 1);

  ac = aclaim(pool, loop, &cl);
  astatus(loop, ac, "OK", "MULTI");
  astatus(loop, ac, "QUEUED", "SET iso:amulti queued");
  anext_is_clean(pool, loop, cl, id, 1);

  ac = aclaim(pool, loop, &cl);
  astatus(loop, ac, "OK", "CLIENT SETNAME someone-else");
  anext_is_clean(pool, loop, cl, id, 1);

  /* CLIENT NO-EVICT on, which Redis 7.0's RESET keeps: turned off. */
  ac = aclaim(pool, loop, &cl);
  astatus(loop, ac, "OK", "CLIENT NO-EVICT on");
  assert_int_equal(rt_loop_cmd(loop, ac, 5000, &r, "CLIENT INFO"), 0);
  assert_non_null(strstr(r.str, " flags=e "));
  anext_is_clean(pool, loop, cl, id, 1);

  ac = aclaim(pool, loop, &cl);
  astatus(loop, ac, "OK", "WATCH iso:awatched");
  assert_int_equal(qorb_release(cl), 0);
  rt_cmd_status(admin, "OK", "SELECT 2");
  rt_cmd_status(admin, "OK", "SET iso:awatched by-admin");
  ac = aclaim(pool, loop, &cl);
  assert_int_equal(aclient_id(loop, ac), id);
  astatus(loop, ac, "OK", "MULTI");
  astatus(loop, ac, "QUEUED", "SET iso:awatched mine");
  assert_int_equal(rt_loop_cmd(loop, ac, 5000, &r, "EXEC"), 0);
  assert_int_equal(r.type, REDIS_REPLY_ARRAY);

  /* Subscribed: the async flavour closes it (hiredis is in pub/sub mode
   * and will not take ordinary commands). */
  assert_int_equal(rt_loop_cmd(loop, ac, 5000, &r, "SUBSCRIBE iso:achan"),
                   0);
  assert_true(ac->c.flags & REDIS_SUBSCRIBED);
  anext_is_clean(pool, loop, cl, id, 0);

  /* Released with a callback outstanding: closed. The callback runs
   * once: with the reply if it arrives before the close, else with NULL
   * when the context goes. */
  ac = aclaim(pool, loop, &cl);
  id = aclient_id(loop, ac);
  pending_calls = 0;
  assert_int_equal(redisAsyncCommand(ac, pending_cb, NULL, "PING"), REDIS_OK);
  anext_is_clean(pool, loop, cl, id, 0);
  assert_int_equal(pending_calls, 1);

  rt_close_on_loop(pool, loop);
  ev_loop_destroy(loop);
  redisFree(admin);
}

static void test_async_reset(void **state) {
  (void)state;
  run_async_cases(QORB_REDIS_RECYCLE_AUTO);
}

static void test_async_legacy(void **state) {
  (void)state;
  run_async_cases(QORB_REDIS_RECYCLE_LEGACY);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_blocking_reset),
      cmocka_unit_test(test_blocking_legacy),
      cmocka_unit_test(test_blocking_none),
      cmocka_unit_test(test_async_reset),
      cmocka_unit_test(test_async_legacy),
  };
  rt_block_sigpipe();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
