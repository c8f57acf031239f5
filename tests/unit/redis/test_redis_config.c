/* SPDX-License-Identifier: MIT */
/*
 * test_redis_config.c: qorb-redis options, without a server. Defaults,
 * every invalid value refused at creation with the field named, the size
 * field (an older caller's shorter struct gets the defaults of what it
 * lacks, a newer caller's longer one is accepted, nothing past the caller's
 * size is read or written; the connector's configuration is looked at
 * through the private redis_int.h), and the accessors' answers for claims
 * that are not qorb-redis claims.
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

#include "redis_int.h"

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
  o.size = sizeof(o.size) - 1; /* not even the size field */
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

/* Make a connector from `o` and copy its configuration into `cfg`. */
static void config_of(const qorb_redis_options_t *o, qr_cfg_t *cfg) {
  qorb_connector_t *c = NULL;
  char err[160];
  int rc = qorb_redis_connector_new(&c, o, err, sizeof(err));
  if (rc != 0) fail_msg("connector: %s: %s", qorb_err_name(rc), err);
  memcpy(cfg, qorb_connector_ctx(c), sizeof(*cfg));
  cfg->password = cfg->user = cfg->client_name = NULL; /* freed below */
  qorb_connector_free(c);
}

/* A caller compiled against an older, shorter qorb_redis_options_t: the
   init writes nothing past its size, and the fields it lacks get their
   defaults. */
static void test_older_struct(void **state) {
  union {
    qorb_redis_options_t o;
    unsigned char bytes[sizeof(qorb_redis_options_t)];
  } u;
  size_t old = offsetof(qorb_redis_options_t, recycle);
  qr_cfg_t cfg;
  (void)state;
  memset(&u, 0x77, sizeof(u));
  qorb_redis_options_init_(&u.o, old);
  assert_int_equal(u.o.size, old);
  assert_int_equal(u.bytes[old], 0x77);
  assert_int_equal(u.bytes[sizeof(u) - 1], 0x77);
  u.o.database = 3;
  config_of(&u.o, &cfg);
  assert_int_equal(cfg.database, 3);
  assert_int_equal(cfg.recycle, QORB_REDIS_RECYCLE_AUTO);
  assert_int_equal(cfg.keepalive, 1);
  assert_int_equal(cfg.command_timeout_ms, 0);
  assert_null(cfg.tls);
  /* The oldest possible: just the size. */
  memset(&u, 0x77, sizeof(u));
  qorb_redis_options_init_(&u.o, sizeof(u.o.size));
  assert_int_equal(u.o.size, sizeof(u.o.size));
  assert_int_equal(u.bytes[sizeof(u.o.size)], 0x77);
  config_of(&u.o, &cfg);
  assert_int_equal(cfg.flavour, QORB_REDIS_BLOCKING);
  assert_int_equal(cfg.keepalive, 1);
  /* Too short for a size field: the init leaves it alone. */
  memset(&u, 0x77, sizeof(u));
  qorb_redis_options_init_(&u.o, 1);
  assert_int_equal(u.bytes[0], 0x77);
}

/* A caller compiled against a newer, longer struct: zeroed past our
   fields by the init, accepted by the constructor, whatever it put in
   fields this library does not know. */
static void test_newer_struct(void **state) {
  union {
    qorb_redis_options_t o;
    unsigned char bytes[sizeof(qorb_redis_options_t) + 32];
  } u;
  qr_cfg_t cfg;
  size_t i;
  (void)state;
  memset(&u, 0x77, sizeof(u));
  qorb_redis_options_init_(&u.o, sizeof(u));
  assert_int_equal(u.o.size, sizeof(u));
  for (i = sizeof(u.o); i < sizeof(u); i++) assert_int_equal(u.bytes[i], 0);
  assert_int_equal(u.o.keepalive, 1);
  u.o.database = 7;
  u.o.keepalive = 0;
  memset(u.bytes + sizeof(u.o), 0x5a, sizeof(u) - sizeof(u.o));
  config_of(&u.o, &cfg);
  assert_int_equal(cfg.database, 7);
  assert_int_equal(cfg.keepalive, 0);
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
      cmocka_unit_test(test_invalid), cmocka_unit_test(test_older_struct),
      cmocka_unit_test(test_newer_struct), cmocka_unit_test(test_tls),
      cmocka_unit_test(test_accessors)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
