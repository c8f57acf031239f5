/* SPDX-License-Identifier: MIT */
/*
 * test_redis_config.c: qorb-redis options, without a server. Defaults,
 * every invalid value refused at creation with the field named, the size
 * field, and the accessors' answers for claims that are not qorb-redis
 * claims.
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <qorb/qorb.h>
#include <qorb/redis.h>

static void test_defaults(void **state) {
  qorb_redis_options_t o;
  (void)state;
  memset(&o, 0xab, sizeof(o));
  qorb_redis_options_init(&o);
  assert_int_equal(o.size, sizeof(o));
  assert_int_equal(o.flavour, QORB_REDIS_BLOCKING);
  assert_null(o.password);
  assert_null(o.user);
  assert_int_equal(o.database, 0);
  assert_null(o.client_name);
  assert_int_equal(o.role, QORB_REDIS_ROLE_ANY);
  assert_int_equal(o.recycle, QORB_REDIS_RECYCLE_AUTO);
  assert_int_equal(o.keepalive, 1); /* keepalive on by default */
  assert_int_equal(o.command_timeout_ms, 0);
  assert_null(o.tls);
}

static void test_valid(void **state) {
  qorb_redis_options_t o;
  qorb_connector_t *c = NULL;
  char err[128];
  (void)state;

  /* NULL options: the defaults. */
  assert_int_equal(qorb_redis_connector_new(&c, NULL, err, sizeof(err)), 0);
  assert_non_null(c);
  assert_non_null(qorb_connector_ctx(c));
  qorb_connector_free(c);

  qorb_redis_options_init(&o);
  o.flavour = QORB_REDIS_ASYNC;
  o.password = "p w%s\"d"; /* any bytes: sent as one argument */
  o.user = "app-user";
  o.database = 15;
  o.client_name = "svc:api/1";
  o.role = QORB_REDIS_ROLE_REPLICA;
  o.recycle = QORB_REDIS_RECYCLE_LEGACY;
  o.keepalive = 0;
  o.command_timeout_ms = 250;
  c = NULL;
  assert_int_equal(qorb_redis_connector_new(&c, &o, err, sizeof(err)), 0);
  assert_string_equal(err, "");
  qorb_connector_free(c);

  /* err may be NULL. */
  c = NULL;
  assert_int_equal(qorb_redis_connector_new(&c, &o, NULL, 0), 0);
  qorb_connector_free(c);
}

/* One bad value: refused with `code`, *out NULL, and `word` in the text. */
static void refused(const qorb_redis_options_t *o, int code,
                    const char *word) {
  qorb_connector_t *c = (qorb_connector_t *)(void *)&c;
  char err[160] = "x";
  assert_int_equal(qorb_redis_connector_new(&c, o, err, sizeof(err)), code);
  assert_null(c);
  if (strstr(err, word) == NULL)
    fprintf(stderr, "error '%s' does not name '%s'\n", err, word);
  assert_non_null(strstr(err, word));
}

static void test_invalid(void **state) {
  qorb_redis_options_t o;
  char name[200];
  (void)state;

  assert_int_equal(qorb_redis_connector_new(NULL, NULL, NULL, 0),
                   QORB_EINVAL);

  qorb_redis_options_init(&o);
  o.size = 0;
  refused(&o, QORB_EINVAL, "qorb_redis_options_init");
  qorb_redis_options_init(&o);
  o.size = sizeof(o) + 8;
  refused(&o, QORB_EINVAL, "qorb_redis_options_init");

  qorb_redis_options_init(&o);
  o.database = -1;
  refused(&o, QORB_ECONFIG, "database");

  qorb_redis_options_init(&o);
  o.client_name = "has space";
  refused(&o, QORB_ECONFIG, "client_name");
  o.client_name = "new\nline";
  refused(&o, QORB_ECONFIG, "client_name");
  o.client_name = "";
  refused(&o, QORB_ECONFIG, "client_name");
  memset(name, 'n', sizeof(name) - 1);
  name[sizeof(name) - 1] = '\0';
  o.client_name = name;
  refused(&o, QORB_ECONFIG, "client_name");

  qorb_redis_options_init(&o);
  o.user = "app";
  refused(&o, QORB_ECONFIG, "password"); /* a user needs a password */
  o.password = "pw";
  o.user = "two words";
  refused(&o, QORB_ECONFIG, "user");
  o.user = "";
  refused(&o, QORB_ECONFIG, "user");

  qorb_redis_options_init(&o);
  o.password = "";
  refused(&o, QORB_ECONFIG, "password");

  qorb_redis_options_init(&o);
  o.flavour = (qorb_redis_flavour_t)7;
  refused(&o, QORB_ECONFIG, "flavour");

  qorb_redis_options_init(&o);
  o.role = (qorb_redis_role_t)-1;
  refused(&o, QORB_ECONFIG, "role");

  qorb_redis_options_init(&o);
  o.recycle = (qorb_redis_recycle_t)9;
  refused(&o, QORB_ECONFIG, "recycle");

  qorb_redis_options_init(&o);
  o.keepalive = 2;
  refused(&o, QORB_ECONFIG, "keepalive");

  qorb_redis_options_init(&o);
  o.command_timeout_ms = 100000000u;
  refused(&o, QORB_ECONFIG, "command_timeout_ms");
}

static void test_tls(void **state) {
  qorb_redis_options_t o;
  qorb_connector_t *c = NULL;
  char err[160];
  int rc;
  (void)state;

  qorb_redis_options_init(&o);
  o.tls = (struct redisSSLContext *)(void *)&o; /* only stored, never used */
  rc = qorb_redis_connector_new(&c, &o, err, sizeof(err));
#if defined(QORB_REDIS_TEST_HAVE_TLS)
  assert_int_equal(rc, 0);
  qorb_connector_free(c);
#else
  /* hiredis 0.14 has no TLS. */
  assert_int_equal(rc, QORB_ENOTSUP);
  assert_null(c);
  assert_non_null(strstr(err, "tls"));
#endif
}

static void test_accessors(void **state) {
  (void)state;
  assert_null(qorb_redis_ctx(NULL));
  assert_null(qorb_redis_async(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults), cmocka_unit_test(test_valid),
      cmocka_unit_test(test_invalid), cmocka_unit_test(test_tls),
      cmocka_unit_test(test_accessors)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
