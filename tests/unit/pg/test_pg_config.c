/* SPDX-License-Identifier: MIT */
/*
 * test_pg_config.c: qorb-pg's options and connector creation, no server
 * needed. A malformed template is refused at creation with libpq's own
 * message; bad arguments get QORB_EINVAL; an older caller's shorter options
 * struct and a newer caller's longer one both work, and nothing past the
 * caller's size is read or written.
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <qorb/pg.h>
#include <qorb/qorb.h>

static void test_defaults(void **state) {
  qorb_pg_options_t o;
  (void)state;
  memset(&o, 0x5a, sizeof(o));
  qorb_pg_options_init(&o);
  assert_int_equal(o.size, sizeof(o));
  assert_null(o.conninfo);
  assert_null(o.keywords);
  assert_null(o.values);
  assert_int_equal(o.role, QORB_PG_ROLE_ANY);
  assert_string_equal(o.reset_sql, "DISCARD ALL");
  assert_null(o.acquire_sql);
  assert_int_equal(o.keepalives, 1);
  assert_int_equal(o.keepalives_idle_s, 5);
  assert_int_equal(o.keepalives_interval_s, 2);
  assert_int_equal(o.keepalives_count, 3);
  assert_int_equal(o.tcp_user_timeout_ms, 10000);
}

static int make(const qorb_pg_options_t *o, char *err, size_t len) {
  qorb_connector_t *c = NULL;
  int rc = qorb_pg_connector_new(&c, o, err, len);
  if (rc == 0) {
    assert_non_null(c);
    assert_non_null(qorb_connector_ctx(c));
    qorb_connector_free(c);
  } else {
    assert_null(c);
  }
  return rc;
}

static void test_good_templates(void **state) {
  qorb_pg_options_t o;
  char err[256];
  static const char *const kw[] = {"user", "dbname", "application_name",
                                   "options", "host", NULL};
  static const char *const val[] = {"app", "it's a db", "with\\backslash",
                                    "-c statement_timeout=5s", "", NULL};
  (void)state;
  assert_int_equal(make(NULL, err, sizeof(err)), 0);

  qorb_pg_options_init(&o);
  o.conninfo = "user=app dbname=app sslmode=disable connect_timeout=3";
  assert_int_equal(make(&o, err, sizeof(err)), 0);

  o.conninfo = "postgresql://app:pw@db.example:5432/app?sslmode=prefer"
               "&application_name=x";
  assert_int_equal(make(&o, err, sizeof(err)), 0);

  /* A multi-host URI is accepted: the resolver supplies addresses. */
  o.conninfo = "postgresql://h1:1,h2:2/app";
  assert_int_equal(make(&o, err, sizeof(err)), 0);

  /* Keyword arrays, alone and over a conninfo, with quotes, backslashes,
     spaces and an empty value (skipped). */
  o.conninfo = "user=other";
  o.keywords = kw;
  o.values = val;
  assert_int_equal(make(&o, err, sizeof(err)), 0);
  o.conninfo = NULL;
  assert_int_equal(make(&o, err, sizeof(err)), 0);

  /* Every option combination that changes the op table. */
  qorb_pg_options_init(&o);
  o.acquire_sql = "SET application_name = 'a'";
  o.reset_sql = NULL;
  o.role = QORB_PG_ROLE_STANDBY;
  o.keepalives = 0;
  o.tcp_user_timeout_ms = 0;
  assert_int_equal(make(&o, err, sizeof(err)), 0);
  o.reset_sql = "";
  o.role = QORB_PG_ROLE_PRIMARY;
  assert_int_equal(make(&o, NULL, 0), 0);
}

static void test_malformed_templates(void **state) {
  qorb_pg_options_t o;
  char err[256];
  static const char *const kw[] = {"user", "no_such_option", NULL};
  static const char *const val[] = {"app", "1", NULL};
  static const char *const badkw[] = {"user name", NULL};
  static const char *const badval[] = {"x", NULL};
  (void)state;
  qorb_pg_options_init(&o);

  o.conninfo = "user=app dbname";
  assert_int_equal(make(&o, err, sizeof(err)), QORB_ECONFIG);
  /* libpq's own text, without its trailing newline */
  assert_non_null(strstr(err, "missing \"=\" after \"dbname\""));
  assert_int_not_equal(err[strlen(err) - 1], '\n');

  o.conninfo = "user=app bogus=1";
  assert_int_equal(make(&o, err, sizeof(err)), QORB_ECONFIG);
  assert_non_null(strstr(err, "invalid connection option \"bogus\""));

  o.conninfo = "user='unterminated";
  assert_int_equal(make(&o, err, sizeof(err)), QORB_ECONFIG);
  assert_non_null(strstr(err, "unterminated quoted string"));

  o.conninfo = "postgresql://[::1/app";
  assert_int_equal(make(&o, err, sizeof(err)), QORB_ECONFIG);
  assert_non_null(strstr(err, "IPv6"));

  o.conninfo = "postgresql://h/app?nonsense=1";
  assert_int_equal(make(&o, err, sizeof(err)), QORB_ECONFIG);
  assert_non_null(strstr(err, "nonsense"));

  o.conninfo = NULL;
  o.keywords = kw;
  o.values = val;
  assert_int_equal(make(&o, err, sizeof(err)), QORB_ECONFIG);
  assert_non_null(strstr(err, "invalid connection option \"no_such_option\""));

  o.keywords = badkw;
  o.values = badval;
  assert_int_equal(make(&o, err, sizeof(err)), QORB_ECONFIG);
  assert_non_null(strstr(err, "user name"));

  /* A NULL or tiny error buffer is fine. */
  o.keywords = NULL;
  o.values = NULL;
  o.conninfo = "x";
  assert_int_equal(make(&o, NULL, 0), QORB_ECONFIG);
  assert_int_equal(make(&o, err, 1), QORB_ECONFIG);
  assert_int_equal(err[0], '\0');
}

static void test_bad_arguments(void **state) {
  qorb_pg_options_t o;
  qorb_connector_t *c = (qorb_connector_t *)&o;
  char err[128];
  static const char *const kw[] = {"user", NULL};
  (void)state;
  assert_int_equal(qorb_pg_connector_new(NULL, NULL, err, sizeof(err)),
                   QORB_EINVAL);

  qorb_pg_options_init(&o);
  o.size = 0; /* never initialised */
  assert_int_equal(qorb_pg_connector_new(&c, &o, err, sizeof(err)),
                   QORB_EINVAL);
  assert_null(c);
  assert_non_null(strstr(err, "qorb_pg_options_init"));
  o.size = offsetof(qorb_pg_options_t, role); /* shorter than any version */
  assert_int_equal(make(&o, err, sizeof(err)), QORB_EINVAL);

  qorb_pg_options_init(&o);
  o.keywords = kw; /* without values */
  assert_int_equal(make(&o, err, sizeof(err)), QORB_EINVAL);

  qorb_pg_options_init(&o);
  o.role = (qorb_pg_role_t)7;
  assert_int_equal(make(&o, err, sizeof(err)), QORB_EINVAL);

  assert_null(qorb_pg_conn(NULL));
  qorb_pg_options_init_(NULL, sizeof(o)); /* ignored, no crash */
  qorb_pg_options_init_(&o, 0);           /* no size field: ignored */
}

/* A caller compiled against an older, shorter qorb_pg_options_t. */
static void test_older_struct(void **state) {
  union {
    qorb_pg_options_t o;
    unsigned char bytes[sizeof(qorb_pg_options_t) + 16];
  } u;
  size_t old = offsetof(qorb_pg_options_t, reset_sql);
  char err[128];
  (void)state;
  memset(&u, 0x77, sizeof(u));
  qorb_pg_options_init_(&u.o, old);
  assert_int_equal(u.o.size, old);
  assert_int_equal(u.bytes[old], 0x77); /* nothing written past its size */
  u.o.conninfo = "user=app";
  assert_int_equal(make(&u.o, err, sizeof(err)), 0);
}

/* A caller compiled against a newer, longer qorb_pg_options_t: its fields
   beyond ours are zeroed by the init, ignored by the constructor, and the
   size field says the caller's size. */
static void test_newer_struct(void **state) {
  union {
    qorb_pg_options_t o;
    unsigned char bytes[sizeof(qorb_pg_options_t) + 32];
  } u;
  size_t i;
  char err[128];
  (void)state;
  memset(&u, 0x77, sizeof(u));
  qorb_pg_options_init_(&u.o, sizeof(u));
  assert_int_equal(u.o.size, sizeof(u));
  for (i = sizeof(u.o); i < sizeof(u); i++) assert_int_equal(u.bytes[i], 0);
  assert_string_equal(u.o.reset_sql, "DISCARD ALL");
  assert_int_equal(u.o.tcp_user_timeout_ms, 10000);
  u.o.conninfo = "user=app";
  assert_int_equal(make(&u.o, err, sizeof(err)), 0);
  /* What a newer caller put in fields this library does not know. */
  memset(u.bytes + sizeof(u.o), 0x5a, sizeof(u) - sizeof(u.o));
  assert_int_equal(make(&u.o, err, sizeof(err)), 0);
  /* Set by hand rather than by the init: the same. */
  qorb_pg_options_init(&u.o);
  u.o.size = sizeof(u);
  assert_int_equal(make(&u.o, err, sizeof(err)), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_good_templates),
      cmocka_unit_test(test_malformed_templates),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_older_struct),
      cmocka_unit_test(test_newer_struct),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
