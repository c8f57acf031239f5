/* SPDX-License-Identifier: MIT */
/*
 * test_pg_conninfo.c: qorb-pg's conninfo compiler (pg_conninfo.c, through
 * the private pg_int.h), no server needed. It proves what the arrays handed
 * to PQconnectStartParams hold: every keyword the template (URI, keyword
 * string or keyword arrays) sets, once, with its value intact through
 * quoting; qorb's TCP defaults only where the template is silent; and host,
 * hostaddr and port last, pointing at the buffers that each connect fills
 * with its backend. A template libpq refuses is refused with libpq's own
 * message.
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pg_int.h"

/* The number of keywords in the context's NULL-terminated arrays. */
static size_t nkw(const pg_ctx_t *ctx) {
  size_t n = 0;
  while (ctx->keywords[n] != NULL) n++;
  assert_null(ctx->values[n]);
  return n;
}

/* The value of `kw`, asserting that it appears at most once; NULL if not
   there. */
static const char *val(const pg_ctx_t *ctx, const char *kw) {
  const char *v = NULL;
  size_t i;
  for (i = 0; ctx->keywords[i] != NULL; i++) {
    if (strcmp(ctx->keywords[i], kw) != 0) continue;
    assert_null(v);
    v = ctx->values[i];
    assert_non_null(v);
  }
  return v;
}

static pg_ctx_t *compile(const qorb_pg_options_t *o) {
  pg_ctx_t *ctx = NULL;
  char err[256];
  int rc = qorb__pg_ctx_new(&ctx, o, err, sizeof(err));
  if (rc != 0) fail_msg("qorb__pg_ctx_new: %s: %s", qorb_err_name(rc), err);
  assert_non_null(ctx);
  return ctx;
}

/* host, hostaddr and port come last, in that order; hostaddr and port are
   the context's own buffers. */
static void assert_backend_tail(const pg_ctx_t *ctx) {
  size_t n = nkw(ctx);
  assert_true(n >= 3);
  assert_string_equal(ctx->keywords[n - 3], "host");
  assert_string_equal(ctx->keywords[n - 2], "hostaddr");
  assert_string_equal(ctx->keywords[n - 1], "port");
  assert_ptr_equal(ctx->values[n - 2], ctx->hostaddr);
  assert_ptr_equal(ctx->values[n - 1], ctx->port);
}

static void test_defaults(void **state) {
  pg_ctx_t *ctx;
  (void)state;
  ctx = compile(NULL);
  assert_int_equal(ctx->role, QORB_PG_ROLE_ANY);
  assert_string_equal(ctx->reset_sql, "DISCARD ALL");
  assert_null(ctx->acquire_sql);
  assert_string_equal(val(ctx, "keepalives"), "1");
  assert_string_equal(val(ctx, "keepalives_idle"), "5");
  assert_string_equal(val(ctx, "keepalives_interval"), "2");
  assert_string_equal(val(ctx, "keepalives_count"), "3");
  assert_string_equal(val(ctx, "tcp_user_timeout"), "10000");
  /* No host in the template: the backend is named by its address, so
     that PGHOST cannot disagree with hostaddr. */
  assert_ptr_equal(val(ctx, "host"), ctx->hostaddr);
  assert_backend_tail(ctx);
  assert_int_equal(nkw(ctx), 8);
  qorb__pg_ctx_free(ctx);
}

static void test_uri(void **state) {
  qorb_pg_options_t o;
  pg_ctx_t *ctx;
  (void)state;
  qorb_pg_options_init(&o);
  o.conninfo = "postgresql://app:pw@db.example:6543/mydb?sslmode=prefer"
               "&application_name=x&connect_timeout=3";
  ctx = compile(&o);
  assert_string_equal(val(ctx, "user"), "app");
  assert_string_equal(val(ctx, "password"), "pw");
  assert_string_equal(val(ctx, "dbname"), "mydb");
  assert_string_equal(val(ctx, "sslmode"), "prefer");
  assert_string_equal(val(ctx, "application_name"), "x");
  assert_string_equal(val(ctx, "connect_timeout"), "3");
  /* One host name is kept, for TLS and the password file; the template's
     port gives way to the backend's. */
  assert_string_equal(val(ctx, "host"), "db.example");
  assert_ptr_equal(val(ctx, "port"), ctx->port);
  assert_backend_tail(ctx);
  qorb__pg_ctx_free(ctx);

  /* Several hosts, or a socket directory, name no single backend. */
  o.conninfo = "postgresql://h1:1,h2:2/app";
  ctx = compile(&o);
  assert_ptr_equal(val(ctx, "host"), ctx->hostaddr);
  assert_string_equal(val(ctx, "dbname"), "app");
  assert_backend_tail(ctx);
  qorb__pg_ctx_free(ctx);
}

static void test_keyword_string(void **state) {
  qorb_pg_options_t o;
  pg_ctx_t *ctx;
  (void)state;
  qorb_pg_options_init(&o);
  o.conninfo = "user=app dbname='my db' host=/var/run/postgresql "
               "hostaddr=10.0.0.1 port=1 application_name='it\\'s'";
  ctx = compile(&o);
  assert_string_equal(val(ctx, "user"), "app");
  assert_string_equal(val(ctx, "dbname"), "my db");
  assert_string_equal(val(ctx, "application_name"), "it's");
  /* The template's host, hostaddr and port are dropped: a socket directory
     names no backend, and the resolver's address wins. */
  assert_ptr_equal(val(ctx, "host"), ctx->hostaddr);
  assert_ptr_equal(val(ctx, "hostaddr"), ctx->hostaddr);
  assert_ptr_equal(val(ctx, "port"), ctx->port);
  assert_backend_tail(ctx);
  qorb__pg_ctx_free(ctx);
}

/* Keyword arrays are quoted into a conninfo string for libpq's parser:
   every value must come out as it went in. */
static void test_arrays_quoting(void **state) {
  qorb_pg_options_t o;
  pg_ctx_t *ctx;
  static const char *const kw[] = {"user",    "dbname", "application_name",
                                   "options", "host",   "password",
                                   NULL};
  static const char *const v[] = {"app",
                                  "it's a db",
                                  "with\\backslash",
                                  "-c statement_timeout=5s",
                                  "", /* empty: skipped */
                                  "\\'both\\' ",
                                  NULL};
  (void)state;
  qorb_pg_options_init(&o);
  o.conninfo = "user=other dbname=x sslmode=disable";
  o.keywords = kw;
  o.values = v;
  ctx = compile(&o);
  /* The arrays win over the conninfo. */
  assert_string_equal(val(ctx, "user"), "app");
  assert_string_equal(val(ctx, "dbname"), "it's a db");
  assert_string_equal(val(ctx, "sslmode"), "disable");
  assert_string_equal(val(ctx, "application_name"), "with\\backslash");
  assert_string_equal(val(ctx, "options"), "-c statement_timeout=5s");
  assert_string_equal(val(ctx, "password"), "\\'both\\' ");
  assert_ptr_equal(val(ctx, "host"), ctx->hostaddr);
  assert_backend_tail(ctx);
  qorb__pg_ctx_free(ctx);
}

/* qorb's TCP defaults fill only what neither the template nor the options
   switch off. */
static void test_tcp_defaults(void **state) {
  qorb_pg_options_t o;
  pg_ctx_t *ctx;
  (void)state;
  qorb_pg_options_init(&o);
  o.conninfo = "keepalives_idle=60 tcp_user_timeout=0";
  ctx = compile(&o);
  assert_string_equal(val(ctx, "keepalives"), "1");
  assert_string_equal(val(ctx, "keepalives_idle"), "60");
  assert_string_equal(val(ctx, "keepalives_interval"), "2");
  assert_string_equal(val(ctx, "tcp_user_timeout"), "0");
  qorb__pg_ctx_free(ctx);

  qorb_pg_options_init(&o);
  o.keepalives = 0;
  o.tcp_user_timeout_ms = 0;
  ctx = compile(&o);
  assert_string_equal(val(ctx, "keepalives"), "0");
  assert_null(val(ctx, "keepalives_idle"));
  assert_null(val(ctx, "keepalives_interval"));
  assert_null(val(ctx, "keepalives_count"));
  assert_null(val(ctx, "tcp_user_timeout"));
  qorb__pg_ctx_free(ctx);

  qorb_pg_options_init(&o);
  o.conninfo = "keepalives=0";
  o.keepalives_count = 0;
  ctx = compile(&o);
  assert_string_equal(val(ctx, "keepalives"), "0");
  /* The options' keepalives is still on: its settings apply, for libpq to
     ignore while the template's keepalives=0 holds. */
  assert_string_equal(val(ctx, "keepalives_idle"), "5");
  assert_null(val(ctx, "keepalives_count"));
  qorb__pg_ctx_free(ctx);
}

static void test_sql_and_role(void **state) {
  qorb_pg_options_t o;
  pg_ctx_t *ctx;
  char acquire[] = "SET application_name = 'a'";
  (void)state;
  qorb_pg_options_init(&o);
  o.reset_sql = "";
  o.acquire_sql = acquire;
  o.role = QORB_PG_ROLE_STANDBY;
  ctx = compile(&o);
  assert_null(ctx->reset_sql);
  assert_non_null(ctx->acquire_sql);
  assert_ptr_not_equal(ctx->acquire_sql, acquire); /* a copy */
  assert_string_equal(ctx->acquire_sql, acquire);
  assert_int_equal(ctx->role, QORB_PG_ROLE_STANDBY);
  qorb__pg_ctx_free(ctx);

  o.reset_sql = NULL;
  o.acquire_sql = "";
  ctx = compile(&o);
  assert_null(ctx->reset_sql);
  assert_null(ctx->acquire_sql);
  qorb__pg_ctx_free(ctx);
}

/* A caller built against a struct that ends before reset_sql gets the
   defaults of what it lacks, and nothing past its size is read. */
static void test_older_struct(void **state) {
  union {
    qorb_pg_options_t o;
    unsigned char bytes[sizeof(qorb_pg_options_t)];
  } u;
  size_t old = offsetof(qorb_pg_options_t, reset_sql);
  pg_ctx_t *ctx;
  (void)state;
  memset(&u, 0x77, sizeof(u));
  qorb_pg_options_init_(&u.o, old);
  assert_int_equal(u.bytes[old], 0x77); /* not written */
  ctx = compile(&u.o);
  assert_string_equal(ctx->reset_sql, "DISCARD ALL");
  assert_null(ctx->acquire_sql);
  assert_string_equal(val(ctx, "keepalives"), "1");
  assert_string_equal(val(ctx, "keepalives_idle"), "5");
  assert_string_equal(val(ctx, "keepalives_interval"), "2");
  assert_string_equal(val(ctx, "keepalives_count"), "3");
  assert_string_equal(val(ctx, "tcp_user_timeout"), "10000");
  qorb__pg_ctx_free(ctx);

  /* Ends inside the TCP settings: the first ones are the caller's, the
     rest the defaults. The garbage after its size is never read. */
  memset(&u, 0x77, sizeof(u));
  old = offsetof(qorb_pg_options_t, keepalives_interval_s);
  qorb_pg_options_init_(&u.o, old);
  u.o.reset_sql = NULL;
  u.o.keepalives_idle_s = 9;
  ctx = compile(&u.o);
  assert_null(ctx->reset_sql);
  assert_string_equal(val(ctx, "keepalives_idle"), "9");
  assert_string_equal(val(ctx, "keepalives_interval"), "2");
  assert_string_equal(val(ctx, "tcp_user_timeout"), "10000");
  qorb__pg_ctx_free(ctx);
}

/* A newer caller's longer struct: every field of ours is read, the rest
   ignored. */
static void test_newer_struct(void **state) {
  union {
    qorb_pg_options_t o;
    unsigned char bytes[sizeof(qorb_pg_options_t) + 24];
  } u;
  pg_ctx_t *ctx;
  (void)state;
  qorb_pg_options_init_(&u.o, sizeof(u));
  memset(u.bytes + sizeof(u.o), 0x5a, sizeof(u) - sizeof(u.o));
  u.o.acquire_sql = "SELECT 2";
  u.o.tcp_user_timeout_ms = 0;
  ctx = compile(&u.o);
  assert_string_equal(ctx->acquire_sql, "SELECT 2");
  assert_null(val(ctx, "tcp_user_timeout"));
  assert_string_equal(val(ctx, "keepalives_idle"), "5");
  qorb__pg_ctx_free(ctx);
}

/* Which SQLSTATEs say the backend went away. */
static void test_sqlstate_gone(void **state) {
  (void)state;
  assert_true(qorb__pg_sqlstate_gone("57P01")); /* admin_shutdown */
  assert_true(qorb__pg_sqlstate_gone("57P02")); /* crash_shutdown */
  assert_true(qorb__pg_sqlstate_gone("57P03")); /* cannot_connect_now */
  assert_true(qorb__pg_sqlstate_gone("08006")); /* connection_failure */
  assert_true(qorb__pg_sqlstate_gone("08P01")); /* protocol_violation */
  assert_false(qorb__pg_sqlstate_gone("57P04")); /* database_dropped */
  assert_false(qorb__pg_sqlstate_gone("57014")); /* query_canceled */
  assert_false(qorb__pg_sqlstate_gone("42P01"));
  assert_false(qorb__pg_sqlstate_gone("08"));
  assert_false(qorb__pg_sqlstate_gone(""));
  assert_false(qorb__pg_sqlstate_gone(NULL));
}

static void test_set_backend(void **state) {
  pg_ctx_t *ctx;
  qorb_addr_t a;
  size_t n;
  (void)state;
  ctx = compile(NULL);
  n = nkw(ctx);

  assert_int_equal(qorb_addr_set(&a, "127.0.0.2", 6000), 0);
  assert_int_equal(qorb__pg_ctx_set_backend(ctx, &a), 0);
  assert_string_equal(val(ctx, "hostaddr"), "127.0.0.2");
  assert_string_equal(val(ctx, "host"), "127.0.0.2");
  assert_string_equal(val(ctx, "port"), "6000");

  /* The next connect's backend replaces the last one's, in place. */
  assert_int_equal(qorb_addr_set(&a, "::1", 65535), 0);
  assert_int_equal(qorb__pg_ctx_set_backend(ctx, &a), 0);
  assert_string_equal(val(ctx, "hostaddr"), "::1");
  assert_string_equal(val(ctx, "port"), "65535");
  assert_int_equal(nkw(ctx), n);

  memset(&a, 0, sizeof(a));
  assert_int_equal(qorb__pg_ctx_set_backend(ctx, &a), QORB_EBADADDR);
  assert_string_equal(val(ctx, "hostaddr"), "::1"); /* left as it was */
  qorb__pg_ctx_free(ctx);
}

/* A refusal carries the first line of libpq's own message for the same
   text. */
static void assert_refused_like_libpq(const char *conninfo) {
  qorb_pg_options_t o;
  pg_ctx_t *ctx = (pg_ctx_t *)&o;
  char err[256], want[256];
  char *msg = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);

  assert_null(opts);
  assert_non_null(msg);
  snprintf(want, sizeof(want), "%.*s", qorb__pg_first_line_len(msg), msg);
  PQfreemem(msg);
  qorb_pg_options_init(&o);
  o.conninfo = conninfo;
  assert_int_equal(qorb__pg_ctx_new(&ctx, &o, err, sizeof(err)),
                   QORB_ECONFIG);
  assert_null(ctx);
  assert_string_equal(err, want);
}

static void test_refused(void **state) {
  qorb_pg_options_t o;
  pg_ctx_t *ctx = NULL;
  char err[256];
  static const char *const unknown[] = {"no_such_option", NULL};
  static const char *const spaced[] = {"user name", NULL};
  static const char *const empty[] = {"", NULL};
  static const char *const one[] = {"1", NULL};
  (void)state;
  assert_refused_like_libpq("user=app dbname");
  assert_refused_like_libpq("user=app bogus=1");
  assert_refused_like_libpq("user='unterminated");
  assert_refused_like_libpq("postgresql://[::1/app");
  assert_refused_like_libpq("postgresql://h/app?nonsense=1");

  /* An unknown keyword in the arrays: libpq's message, as for a string. */
  qorb_pg_options_init(&o);
  o.keywords = unknown;
  o.values = one;
  assert_int_equal(qorb__pg_ctx_new(&ctx, &o, err, sizeof(err)),
                   QORB_ECONFIG);
  assert_null(ctx);
  assert_string_equal(err, "invalid connection option \"no_such_option\"");

  /* Keywords that would parse as something else are refused before. */
  o.keywords = spaced;
  assert_int_equal(qorb__pg_ctx_new(&ctx, &o, err, sizeof(err)),
                   QORB_ECONFIG);
  assert_string_equal(err, "invalid connection option \"user name\"");
  o.keywords = empty;
  assert_int_equal(qorb__pg_ctx_new(&ctx, &o, err, sizeof(err)),
                   QORB_ECONFIG);
  assert_string_equal(err, "empty keyword at index 0");
}

static void test_first_line_len(void **state) {
  static char big[5000];
  (void)state;
  assert_int_equal(qorb__pg_first_line_len(NULL), 0);
  assert_int_equal(qorb__pg_first_line_len(""), 0);
  assert_int_equal(qorb__pg_first_line_len("no newline"), 10);
  assert_int_equal(qorb__pg_first_line_len("line one \t\r\nline two\n"), 8);
  memset(big, 'x', sizeof(big) - 1);
  assert_int_equal(qorb__pg_first_line_len(big), 4096);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_uri),
      cmocka_unit_test(test_keyword_string),
      cmocka_unit_test(test_arrays_quoting),
      cmocka_unit_test(test_tcp_defaults),
      cmocka_unit_test(test_sql_and_role),
      cmocka_unit_test(test_older_struct),
      cmocka_unit_test(test_newer_struct),
      cmocka_unit_test(test_sqlstate_gone),
      cmocka_unit_test(test_set_backend),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_first_line_len),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
