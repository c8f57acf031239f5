/* SPDX-License-Identifier: MIT */
/*
 * redis_testlib.c: see redis_testlib.h. The script path and the test bed
 * folder come from CMake as RT_SERVERS_SH and RT_TESTBED; external
 * servers, from the environment (QORB_TEST_REDIS_*).
 */
#define _GNU_SOURCE

#include "redis_testlib.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <cmocka.h>

#ifndef RT_SERVERS_SH
#error "RT_SERVERS_SH must be defined by the build"
#endif
#ifndef RT_TESTBED
#error "RT_TESTBED must be defined by the build"
#endif

static rt_addrs_t addrs;
static pthread_once_t addrs_once = PTHREAD_ONCE_INIT;

/* An environment variable, NULL when unset or empty. */
static const char *env(const char *name) {
  const char *v = getenv(name);
  return v != NULL && *v != '\0' ? v : NULL;
}

/* Fill `out` from the variable `var` when the servers are external and
   `var` is not NULL, else from the fixture's `fixture` address. */
static void addr_of(qorb_addr_t *out, const char *var, const char *fixture) {
  const char *text = addrs.external && var != NULL ? env(var) : fixture;
  if (text == NULL || qorb_addr_parse(text, out) != 0) {
    fprintf(stderr,
            "%s=\"%s\": wanted the server's numeric host:port (with "
            "QORB_TEST_REDIS_MASTER and QORB_TEST_REDIS_REPLICA both set)\n",
            var != NULL ? var : "address", text != NULL ? text : "");
    exit(2);
  }
}

/* With external servers b, b6 and p keep the fixture's addresses, where
   nothing listens: the tests that need them skip first. */
static void addrs_init(void) {
  addrs.external = env("QORB_TEST_REDIS_MASTER") != NULL ||
                   env("QORB_TEST_REDIS_REPLICA") != NULL;
  addr_of(&addrs.a, "QORB_TEST_REDIS_MASTER", "127.0.0.2:56391");
  addr_of(&addrs.r, "QORB_TEST_REDIS_REPLICA", "127.0.0.3:56393");
  addr_of(&addrs.b, NULL, "127.0.0.3:56392");
  addr_of(&addrs.b6, NULL, "[::1]:56392");
  addr_of(&addrs.p, NULL, "127.0.0.2:56394");
  snprintf(addrs.ab, sizeof(addrs.ab), "%s,%s", addrs.a.text, addrs.b.text);
  snprintf(addrs.ar, sizeof(addrs.ar), "%s,%s", addrs.a.text, addrs.r.text);
}

const rt_addrs_t *rt_addrs(void) {
  pthread_once(&addrs_once, addrs_init);
  return &addrs;
}

int rt_external(void) { return rt_addrs()->external; }

void rt_skip_if_external(const char *why) {
  if (!rt_external()) return;
  fprintf(stderr,
          "SKIP: this test %s; the servers are external "
          "(QORB_TEST_REDIS_MASTER=%s QORB_TEST_REDIS_REPLICA=%s)\n",
          why, RT_A, RT_R);
  skip();
}

int rt_servers(const char *args) {
  return itest_script(RT_SERVERS_SH, RT_TESTBED, args);
}

void rt_block_sigpipe(void) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &s, NULL);
}

void rt_options(qorb_redis_options_t *o, const char *client_name) {
  qorb_redis_options_init(o);
  o->client_name = client_name;
}

qorb_pool_t *rt_pool(const char *backends, const qorb_redis_options_t *o,
                     struct ev_loop *loop, void (*tweak)(qorb_policy_t *)) {
  qorb_redis_options_t def;
  qorb_policy_t pol;
  qorb_connector_t *c = NULL;
  qorb_pool_t *pool = NULL;
  char err[256] = "";
  int rc;

  if (o == NULL) {
    rt_options(&def, "qorb-test");
    o = &def;
  }
  itest_policy(&pol, "redistest", "RT_VERBOSE");
  if (tweak != NULL) tweak(&pol);

  rc = qorb_redis_connector_new(&c, o, err, sizeof(err));
  if (rc != 0) fprintf(stderr, "connector: %s\n", err);
  assert_int_equal(rc, 0);
  {
    /* The pool's thread inherits this thread's signal mask. Start it with
     * SIGPIPE unblocked, as in a program that never touched it, so the
     * connector's own SIGPIPE guard is what keeps the process alive. */
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_UNBLOCK, &pipe_set, &old);
    rc = itest_pool_new(&pool, backends, c, loop, &pol);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  assert_int_equal(rc, 0);
  return pool;
}

static void rt_closed_cb(qorb_pool_t *pool, int status, void *arg) {
  (void)pool;
  assert_int_equal(status, 0);
  *(int *)arg = 1;
}

static void rt_guard_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  (void)revents;
  *(int *)t->data = 1;
  ev_break(loop, EVBREAK_ONE);
}

void rt_close_on_loop(qorb_pool_t *pool, struct ev_loop *loop) {
  int closed = 0, guard_fired = 0;
  ev_timer guard;

  assert_int_equal(qorb_pool_close(pool, rt_closed_cb, &closed), 0);
  /* The guard only bounds a failure; it is stopped as soon as the pool
   * has closed, and then no watcher may be active. */
  ev_timer_init(&guard, rt_guard_cb, 10.0, 0.);
  guard.data = &guard_fired;
  ev_timer_start(loop, &guard);
  while (!closed && !guard_fired) ev_run(loop, EVRUN_ONCE);
  ev_timer_stop(loop, &guard);
  assert_true(closed);
  /* Nothing of qorb's may be left on the loop: ev_run(loop, 0) returns at
   * once when no watcher is active. The guard is unreferenced, so it does
   * not keep the loop running itself; it only fires (and fails the test)
   * if something else does. */
  guard_fired = 0;
  ev_timer_init(&guard, rt_guard_cb, 5.0, 0.);
  guard.data = &guard_fired;
  ev_timer_start(loop, &guard);
  ev_unref(loop);
  ev_run(loop, 0);
  ev_ref(loop);
  ev_timer_stop(loop, &guard);
  assert_false(guard_fired);
}

redisContext *rt_admin(const char *addr) {
  qorb_addr_t a;
  struct timeval tv = {5, 0};
  redisContext *c;

  assert_int_equal(qorb_addr_parse(addr, &a), 0);
  c = redisConnectWithTimeout(a.host, a.port, tv);
  assert_non_null(c);
  if (c->err) fprintf(stderr, "admin %s: %s\n", addr, c->errstr);
  assert_int_equal(c->err, 0);
  assert_int_equal(redisSetTimeout(c, tv), REDIS_OK);
  if (strcmp(addr, RT_P) == 0) rt_cmd_status(c, "OK", "AUTH %s", RT_PASSWORD);
  return c;
}

static redisReply *rt_vcmd(redisContext *c, const char *fmt, va_list ap) {
  redisReply *r = redisvCommand(c, fmt, ap);
  if (r == NULL) fprintf(stderr, "command '%s': %s\n", fmt, c->errstr);
  assert_non_null(r);
  return r;
}

redisReply *rt_cmd(redisContext *c, const char *fmt, ...) {
  redisReply *r;
  va_list ap;
  va_start(ap, fmt);
  r = rt_vcmd(c, fmt, ap);
  va_end(ap);
  return r;
}

void rt_cmd_status(redisContext *c, const char *status, const char *fmt, ...) {
  redisReply *r;
  va_list ap;
  va_start(ap, fmt);
  r = rt_vcmd(c, fmt, ap);
  va_end(ap);
  if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, status) != 0)
    fprintf(stderr, "command '%s': type %d '%s', wanted %s\n", fmt, r->type,
            r->str ? r->str : "", status);
  assert_int_equal(r->type, REDIS_REPLY_STATUS);
  assert_string_equal(r->str, status);
  freeReplyObject(r);
}

long long rt_cmd_int(redisContext *c, const char *fmt, ...) {
  redisReply *r;
  long long v;
  va_list ap;
  va_start(ap, fmt);
  r = rt_vcmd(c, fmt, ap);
  va_end(ap);
  if (r->type != REDIS_REPLY_INTEGER)
    fprintf(stderr, "command '%s': type %d '%s'\n", fmt, r->type,
            r->str ? r->str : "");
  assert_int_equal(r->type, REDIS_REPLY_INTEGER);
  v = r->integer;
  freeReplyObject(r);
  return v;
}

int rt_info_field(const char *info, const char *field, char *buf,
                  size_t len) {
  size_t fl = strlen(field);
  const char *p = info;

  buf[0] = '\0';
  while (p != NULL && *p != '\0') {
    if ((p == info || p[-1] == ' ') && strncmp(p, field, fl) == 0 &&
        p[fl] == '=') {
      const char *v = p + fl + 1;
      size_t n = strcspn(v, " \r\n");
      if (n >= len) n = len - 1;
      memcpy(buf, v, n);
      buf[n] = '\0';
      return 0;
    }
    p = strchr(p, ' ');
    if (p != NULL) p++;
  }
  return -1;
}

int rt_client_ids(const char *addr, const char *name, long long *ids,
                  int cap) {
  redisContext *c = rt_admin(addr);
  redisReply *r = rt_cmd(c, "CLIENT LIST");
  char want[160], *line, *save = NULL, *text;
  int n = 0;

  assert_int_equal(r->type, REDIS_REPLY_STRING);
  text = strdup(r->str);
  assert_non_null(text);
  snprintf(want, sizeof(want), " name=%s ", name);
  for (line = strtok_r(text, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    if (strstr(line, want) != NULL) {
      if (n < cap && ids != NULL) ids[n] = strtoll(line + 3, NULL, 10);
      n++;
    }
  }
  free(text);
  freeReplyObject(r);
  redisFree(c);
  return n;
}

int rt_count_clients(const char *addr, const char *name) {
  return rt_client_ids(addr, name, NULL, 0);
}

int rt_kill_client(const char *addr, long long id) {
  redisContext *c = rt_admin(addr);
  long long n = rt_cmd_int(c, "CLIENT KILL ID %lld", id);
  redisFree(c);
  return (int)n;
}

/* --------------------------------------------------------------------- */

typedef struct rt_wait {
  int done;
  int status;
  qorb_claim_t *claim;
} rt_wait_t;

static void rt_tick_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  (void)loop;
  (void)t;
  (void)revents;
}

/* Run the loop one iteration at a time until *done or the deadline. A
 * repeating timer makes sure each iteration returns. */
static void rt_run_until(struct ev_loop *loop, const int *done, unsigned ms) {
  uint64_t end = itest_now_ms() + ms;
  ev_timer tick;

  ev_timer_init(&tick, rt_tick_cb, 0.01, 0.01);
  ev_timer_start(loop, &tick);
  while (!*done && itest_now_ms() < end)
    ev_run(loop, EVRUN_ONCE);
  ev_timer_stop(loop, &tick);
}

static void rt_claim_cb(qorb_pool_t *pool, int status, qorb_claim_t *claim,
                        void *arg) {
  rt_wait_t *w = arg;
  (void)pool;
  w->status = status;
  w->claim = claim;
  w->done = 1;
}

int rt_loop_claim(qorb_pool_t *pool, struct ev_loop *loop, unsigned ms,
                  qorb_claim_t **claim) {
  rt_wait_t w = {0, 0, NULL};
  assert_int_equal(qorb_pool_claim(pool, (int)ms, rt_claim_cb, &w, NULL), 0);
  /* The claim's own timeout ends it; wait a little longer than that. */
  rt_run_until(loop, &w.done, ms + 5000);
  assert_true(w.done);
  *claim = w.claim;
  return w.status;
}

typedef struct rt_cmdwait {
  int done;
  int failed;
  int abandoned;
  rt_reply_t reply;
} rt_cmdwait_t;

static void rt_copy_reply(rt_reply_t *out, const redisReply *r) {
  memset(out, 0, sizeof(*out));
  out->type = r->type;
  out->integer = r->integer;
  out->elements = r->elements;
  if (r->str != NULL) snprintf(out->str, sizeof(out->str), "%s", r->str);
  if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
      r->element[0] != NULL && r->element[0]->str != NULL)
    snprintf(out->first, sizeof(out->first), "%s", r->element[0]->str);
}

static void rt_cmd_cb(redisAsyncContext *ac, void *r, void *privdata) {
  rt_cmdwait_t *w = privdata;
  (void)ac;
  if (w->abandoned) {
    /* The test gave up on this command; subscriptions call again, so only
     * a NULL reply (the context going away) ends the record. */
    if (r == NULL) free(w);
    return;
  }
  if (w->done) return; /* a later pub/sub message: ignore */
  if (r == NULL)
    w->failed = 1;
  else
    rt_copy_reply(&w->reply, r);
  w->done = 1;
}

int rt_loop_cmd(struct ev_loop *loop, redisAsyncContext *ac, unsigned ms,
                rt_reply_t *out, const char *fmt, ...) {
  rt_cmdwait_t *w = calloc(1, sizeof(*w));
  va_list ap;
  int rc;

  assert_non_null(w);
  assert_non_null(ac);
  va_start(ap, fmt);
  rc = redisvAsyncCommand(ac, rt_cmd_cb, w, fmt, ap);
  va_end(ap);
  assert_int_equal(rc, REDIS_OK);
  rt_run_until(loop, &w->done, ms);
  if (!w->done) {
    w->abandoned = 1; /* freed by the callback when it finally runs */
    return -2;
  }
  if (w->failed) rc = -1;
  else {
    if (out != NULL) *out = w->reply;
    rc = 0;
  }
  /* A subscription keeps its callback: leave the record to it. */
  if (w->reply.type == REDIS_REPLY_ARRAY &&
      (strcmp(w->reply.first, "subscribe") == 0 ||
       strcmp(w->reply.first, "psubscribe") == 0))
    w->abandoned = 1;
  else
    free(w);
  return rc;
}

void rt_loop_for(struct ev_loop *loop, unsigned ms) {
  int never = 0;
  rt_run_until(loop, &never, ms);
}
