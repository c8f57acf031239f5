/* SPDX-License-Identifier: MIT */
/*
 * test_redis_tls.c: qorb-redis over TLS (hiredis 1.x with hiredis_ssl
 * only; the build leaves this test out otherwise). Server t (TLS only,
 * 127.0.0.3:56395, a throwaway CA made by redis_servers.sh) is started
 * here. Both flavours connect, verify the server against the CA, run
 * commands, recycle (SELECT does not leak), survive a CLIENT KILL of an
 * idle connection, and close cleanly. A pool whose context does not trust
 * the CA reports the failure.
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_testlib.h"

#include <hiredis/hiredis_ssl.h> /* after hiredis.h, which it needs */

#define RT_T "127.0.0.3:56395"

static void tweak(qorb_policy_t *p) {
  p->max_slots = 2;
  p->spares_wanted = 2;
  p->health_interval_ms = 200;
  p->claim_timeout_ms = 5000;
}

/* Each test's first step: skips it with external servers. */
static redisSSLContext *tls_ctx(const char *ca) {
  redisSSLContextError e = REDIS_SSL_CTX_NONE;
  redisSSLContext *ssl;
  rt_skip_if_external("needs server t (TLS only)");
  ssl = redisCreateSSLContext(ca, NULL, NULL, NULL, "127.0.0.3", &e);
  if (ssl == NULL) fprintf(stderr, "ssl: %s\n", redisSSLContextGetError(e));
  assert_non_null(ssl);
  return ssl;
}

static int setup(void **state) {
  (void)state;
  redisInitOpenSSL();
  return rt_servers("start t");
}

static void test_blocking(void **state) {
  redisSSLContext *ssl = tls_ctx(RT_TESTBED "/t/ca.crt");
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  redisContext *c;
  redisReply *r;
  char buf[16];
  int i;
  (void)state;

  rt_options(&o, "qorb-tls");
  o.tls = (struct redisSSLContext *)ssl;
  pool = rt_pool(RT_T, &o, NULL, tweak);
  for (i = 0; i < 20; i++) {
    assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
    c = qorb_redis_ctx(cl);
    r = rt_cmd(c, "CLIENT INFO");
    assert_int_equal(rt_info_field(r->str, "db", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "0"); /* the SELECT below never leaks */
    freeReplyObject(r);
    rt_cmd_status(c, "OK", "SELECT 4");
    rt_cmd_status(c, "OK", "SET tls:key v%d", i);
    assert_int_equal(qorb_release(cl), 0);
  }
  itest_close(pool);
  redisFreeSSLContext(ssl);
}

static void test_async(void **state) {
  redisSSLContext *ssl = tls_ctx(RT_TESTBED "/t/ca.crt");
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  rt_reply_t r;
  int i;
  (void)state;

  rt_options(&o, "qorb-tls-async");
  o.flavour = QORB_REDIS_ASYNC;
  o.tls = (struct redisSSLContext *)ssl;
  pool = rt_pool(RT_T, &o, loop, tweak);
  for (i = 0; i < 20; i++) {
    assert_int_equal(rt_loop_claim(pool, loop, 10000, &cl), 0);
    assert_int_equal(
        rt_loop_cmd(loop, qorb_redis_async(cl), 5000, &r, "INCR tls:n"), 0);
    assert_int_equal(r.type, REDIS_REPLY_INTEGER);
    assert_int_equal(qorb_release(cl), 0);
  }
  rt_close_on_loop(pool, loop);
  ev_loop_destroy(loop);
  redisFreeSSLContext(ssl);
}

static void test_untrusted(void **state) {
  /* The server's own certificate as the only CA: it is not a CA, so
   * verification fails and the connect with it. */
  redisSSLContext *ssl = tls_ctx(RT_TESTBED "/t/server.crt");
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  char err[200];
  int rc;
  (void)state;

  rt_options(&o, "qorb-tls-bad");
  o.tls = (struct redisSSLContext *)ssl;
  pool = rt_pool(RT_T, &o, NULL, tweak);
  ITEST_WAIT(itest_failures(pool, RT_T) > 0, 5000);
  rc = qorb_pool_claim_wait(pool, 500, &cl);
  assert_true(rc == QORB_ENOTONLINE || rc == QORB_EALLINUSE);
  itest_last_error(pool, RT_T, err, sizeof(err));
  fprintf(stderr, "untrusted: %s\n", err);
  assert_true(err[0] != '\0');
  itest_close(pool);
  redisFreeSSLContext(ssl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_blocking),
      cmocka_unit_test(test_async),
      cmocka_unit_test(test_untrusted),
  };
  rt_block_sigpipe();
  return cmocka_run_group_tests(tests, setup, NULL);
}
