/* SPDX-License-Identifier: MIT */
/*
 * test_connstr.c: pools from one string (qorb_pg_pool_new(),
 * qorb_redis_pool_new()) without a server. The parsers behind them
 * (connectors/connstr.h) are checked on their own: every pool_* key and
 * duration unit, both PostgreSQL forms, several hosts, IPv6,
 * target_session_attrs, the Redis URL's parts, and malformed input, each
 * refusal with a message naming what is wrong. A sweep over every prefix
 * and many byte flips of valid strings must only ever return 0 or an error
 * and leave no block allocated; an out-of-memory sweep fails each
 * allocation in turn. Host names are sorted from numeric addresses, and
 * the merged resolver that several hosts make is checked over static
 * parts on a pool of the scripted fake connector. Last, the public
 * constructors make pools over 127.0.0.2:1, which never connect (host
 * names looked up on 127.0.0.1:2, where no DNS server listens), and close
 * them.
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "count_alloc.h"
#include "fake_connector.h"
#include "loop_helpers.h"
#include "qorb/pool.h"
#include "qorb/static.h"

#ifdef QORB_TEST_HAVE_PG
#include "qorb/pg.h"
#endif
#ifdef QORB_TEST_HAVE_REDIS
#include "qorb/redis.h"
#endif
#include "connstr.h"

static char err[512];

/* A log callback that counts its calls in *arg. */
static int g_logs;
static void count_log(const char *pool, qorb_log_level_t level,
                      const char *msg, void *arg) {
  (void)pool;
  (void)level;
  (void)msg;
  (*(int *)arg)++;
}

/* ------------------------------------------------------------ durations */

static unsigned dur_ok(const char *s) {
  unsigned ms = 12345;
  int rc = qorb__connstr_duration_ms(s, &ms, err, sizeof(err));
  if (rc != 0) fail_msg("duration \"%s\": %s", s, err);
  return ms;
}

static void dur_bad(const char *s, const char *msg_part) {
  unsigned ms = 0;
  err[0] = '\0';
  assert_int_equal(qorb__connstr_duration_ms(s, &ms, err, sizeof(err)),
                   QORB_ECONFIG);
  if (!strstr(err, msg_part))
    fail_msg("duration \"%s\": message \"%s\" lacks \"%s\"", s, err,
             msg_part);
}

static void test_durations(void **state) {
  (void)state;
  assert_int_equal(dur_ok("1h30m"), 5400000);
  assert_int_equal(dur_ok("1.5h"), 5400000);
  assert_int_equal(dur_ok("500ms"), 500);
  assert_int_equal(dur_ok("2s"), 2000);
  assert_int_equal(dur_ok("+2s"), 2000);
  assert_int_equal(dur_ok(".5s"), 500);
  assert_int_equal(dur_ok("1.s"), 1000);
  assert_int_equal(dur_ok("3m"), 180000);
  assert_int_equal(dur_ok("1h1m1s1ms"), 3661001);
  assert_int_equal(dur_ok("2000000ns"), 2);
  assert_int_equal(dur_ok("3000us"), 3);
  assert_int_equal(dur_ok("4000\xc2\xb5s"), 4);  /* micro sign */
  assert_int_equal(dur_ok("5000\xce\xbcs"), 5);  /* Greek mu */
  /* Below a millisecond rounds up: 0 means "off" for some fields. */
  assert_int_equal(dur_ok("1ns"), 1);
  assert_int_equal(dur_ok("1500us"), 2);
  assert_int_equal(dur_ok("0"), 0);
  assert_int_equal(dur_ok("0s"), 0);
  assert_int_equal(dur_ok("1000h"), 3600000000u);

  dur_bad("30", "needs a unit");
  dur_bad("1.5", "needs a unit");
  dur_bad("", "invalid duration");
  dur_bad("s", "invalid duration");
  dur_bad(".s", "invalid duration");
  dur_bad("1h2", "needs a unit");
  dur_bad("-1s", "negative");
  dur_bad("1x", "unknown unit");
  dur_bad("1sec", "unknown unit");
  dur_bad("2000h", "too large");
  dur_bad("99999999999999999999h", "too large");
  dur_bad("1 s", "unknown unit");
}

/* ------------------------------------------------------------ pg */

#ifdef QORB_TEST_HAVE_PG

static qorb__pg_connstr_t pg_ok(const char *s) {
  qorb__pg_connstr_t c;
  int rc = qorb__pg_connstr_parse(&c, s, NULL, err, sizeof(err));
  if (rc != 0) fail_msg("\"%s\": %s: %s", s, qorb_err_name(rc), err);
  assert_true(c.backends != NULL || c.names != NULL);
  assert_non_null(c.conninfo);
  return c;
}

static void pg_bad_base(const char *str, const qorb_policy_t *base, int code,
                        const char *msg_part) {
  const char *s = str ? str : "(NULL)";
  qorb__pg_connstr_t c;
  int rc;
  err[0] = '\0';
  rc = qorb__pg_connstr_parse(&c, str, base, err, sizeof(err));
  if (rc != code)
    fail_msg("\"%s\": got %s (%s), want %s", s, qorb_err_name(rc), err,
             qorb_err_name(code));
  if (msg_part && !strstr(err, msg_part))
    fail_msg("\"%s\": message \"%s\" lacks \"%s\"", s, err, msg_part);
  assert_null(c.backends);
  assert_null(c.names);
  assert_null(c.dns_servers);
  assert_null(c.conninfo);
}

static void pg_bad(const char *str, int code, const char *msg_part) {
  pg_bad_base(str, NULL, code, msg_part);
}

/* The value libpq reads for `kw` from the cleaned conninfo; "" if none. */
static void ci_val(const char *conninfo, const char *kw, char *out,
                   size_t outlen) {
  char *msg = NULL;
  PQconninfoOption *o = PQconninfoParse(conninfo, &msg), *p;
  if (!o) fail_msg("cleaned conninfo \"%s\" refused: %s", conninfo, msg);
  out[0] = '\0';
  for (p = o; p->keyword; p++)
    if (strcmp(p->keyword, kw) == 0 && p->val)
      snprintf(out, outlen, "%s", p->val);
  PQconninfoFree(o);
}

static void assert_ci(const qorb__pg_connstr_t *c, const char *kw,
                      const char *want) {
  char v[256];
  ci_val(c->conninfo, kw, v, sizeof(v));
  if (strcmp(v, want) != 0)
    fail_msg("conninfo \"%s\": %s is \"%s\", want \"%s\"", c->conninfo, kw,
             v, want);
}

static void assert_no_pool_keys(const qorb__pg_connstr_t *c) {
  assert_null(strstr(c->conninfo, "pool_"));
  assert_null(strstr(c->conninfo, "target_session_attrs"));
  assert_null(strstr(c->conninfo, "hostaddr"));
  assert_null(strstr(c->conninfo, "port"));
}

static void test_pg_uri(void **state) {
  qorb__pg_connstr_t c;
  (void)state;
  c = pg_ok("postgresql://app@127.0.0.2,127.0.0.3:5433/app?pool_max_conns=16"
            "&pool_min_idle=4&target_session_attrs=read-write&sslmode=disable");
  assert_string_equal(c.backends, "127.0.0.2:5432,127.0.0.3:5433");
  assert_int_equal(c.policy.max_slots, 16);
  assert_int_equal(c.policy.spares_wanted, 4);
  assert_int_equal(c.role, QORB_PG_ROLE_PRIMARY);
  assert_ci(&c, "user", "app");
  assert_ci(&c, "dbname", "app");
  assert_ci(&c, "sslmode", "disable");
  assert_ci(&c, "host", "");
  assert_no_pool_keys(&c);
  assert_string_equal(c.policy.name, "qorb"); /* default kept */
  qorb__pg_connstr_free(&c);

  /* postgres://, password, percent-decoding, no query. */
  c = pg_ok("postgres://us%40er:p%3As%2Fs@127.0.0.1:6000/d%20b");
  assert_string_equal(c.backends, "127.0.0.1:6000");
  assert_ci(&c, "user", "us@er");
  assert_ci(&c, "password", "p:s/s");
  assert_ci(&c, "dbname", "d b");
  assert_int_equal(c.role, QORB_PG_ROLE_ANY);
  qorb__pg_connstr_free(&c);

  /* IPv6 in brackets, with and without a port; a shared port in the
     query; host in the query overrides the authority (libpq's order). */
  c = pg_ok("postgresql://[::1]:5433,[fe80::1],127.0.0.1/db");
  assert_string_equal(c.backends, "[::1]:5433,[fe80::1]:5432,127.0.0.1:5432");
  qorb__pg_connstr_free(&c);
  /* An empty port is the default, as in libpq. */
  c = pg_ok("postgresql://127.0.0.1:/db");
  assert_string_equal(c.backends, "127.0.0.1:5432");
  qorb__pg_connstr_free(&c);
  c = pg_ok("postgresql://127.0.0.1,127.0.0.2/db?port=6543");
  assert_string_equal(c.backends, "127.0.0.1:6543,127.0.0.2:6543");
  qorb__pg_connstr_free(&c);
  c = pg_ok("postgresql:///db?host=10.1.2.3&application_name=a%26b");
  assert_string_equal(c.backends, "10.1.2.3:5432");
  assert_ci(&c, "application_name", "a&b");
  qorb__pg_connstr_free(&c);
}

static void test_pg_kv(void **state) {
  qorb__pg_connstr_t c;
  (void)state;
  c = pg_ok("host=127.0.0.2,127.0.0.3 port=5432 dbname=app pool_max_conns=8");
  assert_string_equal(c.backends, "127.0.0.2:5432,127.0.0.3:5432");
  assert_int_equal(c.policy.max_slots, 8);
  assert_ci(&c, "dbname", "app");
  assert_ci(&c, "host", "");
  assert_no_pool_keys(&c);
  qorb__pg_connstr_free(&c);

  /* Per-host ports, empty ones default; IPv6 bare (libpq's k=v form). */
  c = pg_ok("  host = ::1,127.0.0.1,10.0.0.1   port=1,,3 user=u  ");
  assert_string_equal(c.backends, "[::1]:1,127.0.0.1:5432,10.0.0.1:3");
  assert_ci(&c, "user", "u");
  qorb__pg_connstr_free(&c);

  /* Quotes and backslashes survive the round trip to libpq. */
  c = pg_ok("host=127.0.0.1 password='it\\'s a \\\\ secret' "
            "application_name=x\\ y options='-c search_path=a'");
  assert_ci(&c, "password", "it's a \\ secret");
  assert_ci(&c, "application_name", "x y");
  assert_ci(&c, "options", "-c search_path=a");
  qorb__pg_connstr_free(&c);

  /* hostaddr wins; a single host name next to it stays, for TLS. */
  c = pg_ok("host=db.example hostaddr=10.0.0.1,10.0.0.2 sslmode=verify-full");
  assert_string_equal(c.backends, "10.0.0.1:5432,10.0.0.2:5432");
  assert_ci(&c, "host", "db.example");
  assert_null(strstr(c.conninfo, "hostaddr"));
  qorb__pg_connstr_free(&c);

  /* A later value of a keyword replaces the earlier one, as in libpq. */
  c = pg_ok("host=127.0.0.1 pool_max_conns=3 pool_max_conns=5 dbname=a "
            "dbname=b");
  assert_int_equal(c.policy.max_slots, 5);
  assert_ci(&c, "dbname", "b");
  qorb__pg_connstr_free(&c);

  /* Only hosts: nothing left for libpq. */
  c = pg_ok("host=127.0.0.1");
  assert_string_equal(c.conninfo, "");
  qorb__pg_connstr_free(&c);
}

static void test_pg_pool_keys(void **state) {
  qorb__pg_connstr_t c;
  (void)state;
  c = pg_ok("host=127.0.0.1 pool_max_conns=20 pool_min_conns=3 "
            "pool_min_idle=5 pool_max_conn_lifetime=1h30m "
            "pool_max_conn_lifetime_jitter=90s pool_max_conn_idle_time=10m "
            "pool_health_check_period=500ms pool_name=orders");
  assert_int_equal(c.policy.max_slots, 20);
  assert_int_equal(c.policy.min_conns, 3);
  assert_int_equal(c.policy.spares_wanted, 5);
  assert_int_equal(c.policy.max_lifetime_ms, 5400000);
  assert_int_equal(c.policy.max_lifetime_jitter_ms, 90000);
  assert_int_equal(c.policy.idle_timeout_ms, 600000);
  assert_int_equal(c.policy.health_interval_ms, 500);
  assert_string_equal(c.policy.name, "orders");
  assert_ptr_equal(c.policy.name, c.name);
  assert_int_equal(qorb_policy_validate(&c.policy, NULL, 0), 0);
  qorb__pg_connstr_free(&c);

  c = pg_ok("postgresql://127.0.0.1/?pool_max_conn_lifetime=0"
            "&pool_health_check_period=0&pool_max_conn_idle_time=1.5h"
            "&pool_name=a%20b");
  assert_int_equal(c.policy.max_lifetime_ms, 0);
  assert_int_equal(c.policy.health_interval_ms, 0);
  assert_int_equal(c.policy.idle_timeout_ms, 5400000);
  assert_string_equal(c.policy.name, "a b");
  qorb__pg_connstr_free(&c);
}

static void test_pg_roles(void **state) {
  static const struct {
    const char *v;
    int role;
  } ok[] = {{"any", QORB_PG_ROLE_ANY},
            {"read-write", QORB_PG_ROLE_PRIMARY},
            {"primary", QORB_PG_ROLE_PRIMARY},
            {"read-only", QORB_PG_ROLE_STANDBY},
            {"standby", QORB_PG_ROLE_STANDBY}};
  char s[128];
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    qorb__pg_connstr_t c;
    snprintf(s, sizeof(s), "host=127.0.0.1 target_session_attrs=%s", ok[i].v);
    c = pg_ok(s);
    assert_int_equal(c.role, ok[i].role);
    assert_no_pool_keys(&c);
    qorb__pg_connstr_free(&c);
    snprintf(s, sizeof(s), "postgresql://127.0.0.1/?target_session_attrs=%s",
             ok[i].v);
    c = pg_ok(s);
    assert_int_equal(c.role, ok[i].role);
    qorb__pg_connstr_free(&c);
  }
  pg_bad("host=127.0.0.1 target_session_attrs=prefer-standby", QORB_ECONFIG,
         "prefer-standby");
  pg_bad("host=127.0.0.1 target_session_attrs=master", QORB_ECONFIG,
         "target_session_attrs");
}

static void test_pg_malformed(void **state) {
  (void)state;
  pg_bad(NULL, QORB_EINVAL, NULL);
  assert_int_equal(qorb__pg_connstr_parse(NULL, "host=1.2.3.4", NULL, err,
                                          sizeof(err)),
                   QORB_EINVAL);
  /* Pool settings. */
  pg_bad("host=127.0.0.1 pool_max_conn_lifetime=30", QORB_ECONFIG,
         "pool_max_conn_lifetime: duration \"30\" needs a unit");
  pg_bad("host=127.0.0.1 pool_health_check_period=5x", QORB_ECONFIG,
         "pool_health_check_period");
  pg_bad("host=127.0.0.1 pool_max_conn_idle_time=", QORB_ECONFIG,
         "pool_max_conn_idle_time");
  pg_bad("host=127.0.0.1 pool_max_conn_lifetime_jitter=-1s", QORB_ECONFIG,
         "pool_max_conn_lifetime_jitter");
  pg_bad("host=127.0.0.1 pool_max_conns=lots", QORB_ECONFIG,
         "pool_max_conns");
  pg_bad("host=127.0.0.1 pool_max_conns=0", QORB_ECONFIG, "pool_max_conns");
  pg_bad("host=127.0.0.1 pool_max_conns=99999999999", QORB_ECONFIG,
         "pool_max_conns");
  pg_bad("host=127.0.0.1 pool_min_conns=-1", QORB_ECONFIG, "pool_min_conns");
  pg_bad("host=127.0.0.1 pool_frobnicate=1", QORB_ECONFIG,
         "pool_frobnicate");
  pg_bad("postgresql://127.0.0.1/?pool_max_conns_x=1", QORB_ECONFIG,
         "pool_max_conns_x");
  pg_bad("host=127.0.0.1 pool_name=", QORB_ECONFIG, "pool_name");
  pg_bad("host=127.0.0.1 pool_name=0123456789012345678901234567890123456789"
         "012345678901234567890123",
         QORB_ECONFIG, "pool_name");
  /* Settings that do not fit together name a key. */
  pg_bad("host=127.0.0.1 pool_max_conns=8 pool_min_idle=20", QORB_ECONFIG,
         "pool_min_idle");
  pg_bad("host=127.0.0.1 pool_max_conns=8 pool_min_conns=9", QORB_ECONFIG,
         "pool_min_conns");
  pg_bad("host=127.0.0.1 pool_max_conn_lifetime=50ms", QORB_ECONFIG,
         "pool_max_conn_lifetime");
  pg_bad("host=127.0.0.1 pool_max_conns=5000", QORB_ECONFIG,
         "pool_max_conns");
  /* Hosts and ports. */
  pg_bad("dbname=app", QORB_ECONFIG, "no host");
  pg_bad("", QORB_ECONFIG, "no host");
  pg_bad("postgresql:///app", QORB_ECONFIG, "no host");
  pg_bad("host=127.0.0.1,,127.0.0.2", QORB_ECONFIG, "empty host");
  pg_bad("host=", QORB_ECONFIG, "no host");
  pg_bad("postgresql://127.0.0.1,/app", QORB_ECONFIG, "empty host");
  pg_bad("hostaddr=db.example", QORB_ECONFIG,
         "hostaddr \"db.example\": not a numeric");
  pg_bad("host=/var/run/postgresql", QORB_ECONFIG, "Unix-domain");
  pg_bad("host=127.0.0.1 port=99999", QORB_ECONFIG, "port");
  pg_bad("host=127.0.0.1 port=0", QORB_ECONFIG, "port");
  pg_bad("host=127.0.0.1 port=54x", QORB_ECONFIG, "port");
  pg_bad("postgresql://127.0.0.1:5x/app", QORB_ECONFIG, "port");
  pg_bad("host=127.0.0.1,127.0.0.2,127.0.0.3 port=1,2", QORB_ECONFIG,
         "could not match 2 port numbers to 3 hosts");
  pg_bad("postgresql://[::1/app", QORB_ECONFIG, "[");
  pg_bad("postgresql://[::1]x/app", QORB_ECONFIG, "]");
  pg_bad("host=[::1", QORB_ECONFIG, NULL);
  /* Syntax. */
  pg_bad("host='127.0.0.1", QORB_ECONFIG, "unterminated quoted string");
  pg_bad("host=127.0.0.1 password='abc\\'", QORB_ECONFIG,
         "unterminated quoted string");
  pg_bad("host=127.0.0.1 dbname", QORB_ECONFIG, "missing \"=\" after");
  pg_bad("postgresql://127.0.0.1/app?sslmode", QORB_ECONFIG,
         "missing key/value separator");
  pg_bad("postgresql://127.0.0.1/app?a=b=c", QORB_ECONFIG, "extra key/value");
  pg_bad("postgresql://u%zz@127.0.0.1/app", QORB_ECONFIG, "percent");
  pg_bad("postgresql://127.0.0.1/a%00b", QORB_ECONFIG, "%00");
  /* libpq's own check of the rest. */
  pg_bad("host=127.0.0.1 bogus=1", QORB_ECONFIG, "invalid connection option");
  pg_bad("postgresql://127.0.0.1/app?bogus=1", QORB_ECONFIG,
         "invalid connection option");
  pg_bad("postgresql://127.0.0.1/app?a%20b=1", QORB_ECONFIG,
         "invalid connection option");
}


/* Host names go to DNS resolvers, numeric addresses to the static one. */
static void test_pg_host_names(void **state) {
  qorb__pg_connstr_t c;
  char name[300];
  (void)state;
  /* The example: two names, one port for the last (libpq's
     order: the first has none, so 5432). */
  c = pg_ok("postgresql://app@db1.internal,db2.internal:5432/app"
            "?pool_max_conns=16&pool_min_idle=4"
            "&target_session_attrs=read-write");
  assert_null(c.backends);
  assert_string_equal(c.names, "db1.internal:5432,db2.internal:5432");
  assert_null(c.dns_servers);
  assert_int_equal(c.policy.max_slots, 16);
  assert_int_equal(c.policy.spares_wanted, 4);
  assert_int_equal(c.role, QORB_PG_ROLE_PRIMARY);
  assert_ci(&c, "host", ""); /* several hosts: each under its address */
  assert_ci(&c, "user", "app");
  assert_no_pool_keys(&c);
  qorb__pg_connstr_free(&c);

  /* Names and addresses mixed, per-host ports; the DNS servers. */
  c = pg_ok("host=db1.internal,127.0.0.2,::1,Db_2.Example. port=1,2,3,4 "
            "pool_dns_servers='127.0.0.1:5353, [::1]:5353'");
  assert_string_equal(c.backends, "127.0.0.2:2,[::1]:3");
  assert_string_equal(c.names, "db1.internal:1,Db_2.Example.:4");
  assert_string_equal(c.dns_servers, "127.0.0.1:5353, [::1]:5353");
  assert_null(strstr(c.conninfo, "pool_dns_servers"));
  qorb__pg_connstr_free(&c);
  c = pg_ok("postgresql://db.example/app?pool_dns_servers=127.0.0.1:5353,"
            "%5B::1%5D:53");
  assert_string_equal(c.dns_servers, "127.0.0.1:5353,[::1]:53");
  qorb__pg_connstr_free(&c);

  /* One name: it stays as libpq's host (verify-full, password files). */
  c = pg_ok("postgresql://u@db.example:6000/d?sslmode=verify-full");
  assert_string_equal(c.names, "db.example:6000");
  assert_ci(&c, "host", "db.example");
  assert_ci(&c, "sslmode", "verify-full");
  qorb__pg_connstr_free(&c);
  c = pg_ok("host=localhost");
  assert_string_equal(c.names, "localhost:5432");
  assert_ci(&c, "host", "localhost");
  qorb__pg_connstr_free(&c);
  /* verify-full over several numeric addresses checks each address. */
  c = pg_ok("host=127.0.0.2,127.0.0.3 sslmode=verify-full");
  assert_null(c.names);
  qorb__pg_connstr_free(&c);

  /* A name of 253 characters (labels of 63) and a final dot. */
  snprintf(name, sizeof(name), "host=%.63s.%.63s.%.63s.%.61s.",
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
           "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
           "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
           "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
  c = pg_ok(name);
  assert_int_equal(strlen(c.names), 253 + 1 + 5);
  qorb__pg_connstr_free(&c);
  name[strlen(name) - 1] = 'd'; /* 254 characters, no final dot */
  pg_bad(name, QORB_ECONFIG, "neither a numeric address nor a host name");

  /* Malformed names, each named in the message. */
  pg_bad("host=-db.example", QORB_ECONFIG, "host \"-db.example\": neither");
  pg_bad("host=db..example", QORB_ECONFIG, "host \"db..example\"");
  pg_bad("host=.db", QORB_ECONFIG, "host \".db\"");
  pg_bad("host=db!.example", QORB_ECONFIG, "host \"db!.example\"");
  pg_bad("host=127.0.0.1,db%20x", QORB_ECONFIG, "host \"db%20x\"");
  pg_bad("host=fe80::zz", QORB_ECONFIG, "host \"fe80::zz\"");
  pg_bad("host=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "a.example",
         QORB_ECONFIG, "neither a numeric address nor a host name");
  /* verify-full cannot check one name per backend. */
  pg_bad("host=db1.example,db2.example sslmode=verify-full", QORB_ECONFIG,
         "sslmode=verify-full");
  pg_bad("host=db1.example,127.0.0.1 sslmode=verify-full", QORB_ECONFIG,
         "sslmode=verify-full");

  /* pool_dns_servers: numeric "host:port" entries, 1 to 8. */
  pg_bad("host=db pool_dns_servers=", QORB_ECONFIG, "pool_dns_servers: empty");
  pg_bad("host=db pool_dns_servers=' , '", QORB_ECONFIG,
         "pool_dns_servers: empty");
  pg_bad("host=db pool_dns_servers=127.0.0.1", QORB_ECONFIG,
         "pool_dns_servers: bad entry \"127.0.0.1\"");
  pg_bad("host=db pool_dns_servers=ns.example:53", QORB_ECONFIG,
         "pool_dns_servers: bad entry \"ns.example:53\"");
  pg_bad("host=db pool_dns_servers=::1:53", QORB_ECONFIG,
         "pool_dns_servers: bad entry \"::1:53\"");
  pg_bad("host=db pool_dns_servers=127.0.0.1:0", QORB_ECONFIG,
         "pool_dns_servers: bad entry");
  pg_bad("postgresql://db/?pool_dns_servers=127.0.0.1:53,127.0.0.1:54,"
         "127.0.0.1:55,127.0.0.1:56,127.0.0.1:57,127.0.0.1:58,127.0.0.1:59,"
         "127.0.0.1:60,127.0.0.1:61",
         QORB_ECONFIG, "pool_dns_servers: more than 8");
  pg_bad("host=db pool_dns_servers=127.0.0.1:53aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         QORB_ECONFIG, "pool_dns_servers: an entry is too long");
}

/* The caller's policy under the string's pool_* keys. */

static void test_pg_base_policy(void **state) {
  qorb__pg_connstr_t c;
  qorb_policy_t base;
  (void)state;
  qorb_policy_init(&base);
  base.name = "base";
  base.max_slots = 3;
  base.claim_timeout_ms = 1234;
  base.log_cb = count_log;
  base.log_arg = &g_logs;
  assert_int_equal(qorb__pg_connstr_parse(&c, "host=127.0.0.1 "
                                          "pool_max_conns=16", &base, err,
                                          sizeof(err)),
                   0);
  assert_int_equal(c.policy.max_slots, 16);        /* the string's */
  assert_int_equal(c.policy.claim_timeout_ms, 1234); /* the base's */
  assert_string_equal(c.policy.name, "base");
  assert_ptr_equal(c.policy.log_cb, count_log);
  assert_ptr_equal(c.policy.log_arg, &g_logs);
  assert_int_equal(c.policy.size, sizeof(c.policy));
  qorb__pg_connstr_free(&c);
  assert_int_equal(qorb__pg_connstr_parse(&c, "host=127.0.0.1 pool_name=s",
                                          &base, err, sizeof(err)),
                   0);
  assert_string_equal(c.policy.name, "s");
  assert_int_equal(c.policy.max_slots, 3);
  qorb__pg_connstr_free(&c);
  /* Settings that clash once the string's are applied are refused. */
  base.spares_wanted = 3;
  pg_bad_base("host=127.0.0.1 pool_max_conns=2", &base, QORB_ECONFIG,
              "spares_wanted exceeds max_slots");
  /* A base not from qorb_policy_init(). */
  base.size = 0;
  pg_bad_base("host=127.0.0.1", &base, QORB_EINVAL, "qorb_policy_init");
  base.size = 1u << 20;
  pg_bad_base("host=127.0.0.1", &base, QORB_EINVAL, "qorb_policy_init");
}

#endif /* QORB_TEST_HAVE_PG */

/* ------------------------------------------------------------ redis */

#ifdef QORB_TEST_HAVE_REDIS

static qorb__redis_url_t redis_ok(const char *s) {
  qorb__redis_url_t u;
  int rc = qorb__redis_url_parse(&u, s, NULL, err, sizeof(err));
  if (rc != 0) fail_msg("\"%s\": %s: %s", s, qorb_err_name(rc), err);
  assert_true(u.backends != NULL || u.names != NULL);
  return u;
}

static void redis_bad(const char *str, int code, const char *msg_part) {
  const char *s = str ? str : "(NULL)";
  qorb__redis_url_t u;
  int rc;
  err[0] = '\0';
  rc = qorb__redis_url_parse(&u, str, NULL, err, sizeof(err));
  if (rc != code)
    fail_msg("\"%s\": got %s (%s), want %s", s, qorb_err_name(rc), err,
             qorb_err_name(code));
  if (msg_part && !strstr(err, msg_part))
    fail_msg("\"%s\": message \"%s\" lacks \"%s\"", s, err, msg_part);
  assert_null(u.backends);
  assert_null(u.names);
  assert_null(u.dns_servers);
  assert_null(u.user);
  assert_null(u.password);
}

static void test_redis_url(void **state) {
  qorb__redis_url_t u;
  (void)state;
  u = redis_ok("redis://user:pass@127.0.0.2:6379,127.0.0.3:6379/2"
               "?pool_max_conns=8");
  assert_string_equal(u.backends, "127.0.0.2:6379,127.0.0.3:6379");
  assert_string_equal(u.user, "user");
  assert_string_equal(u.password, "pass");
  assert_int_equal(u.database, 2);
  assert_int_equal(u.policy.max_slots, 8);
  assert_int_equal(u.flavour, QORB_REDIS_BLOCKING);
  qorb__redis_url_free(&u);

  u = redis_ok("redis://127.0.0.1");
  assert_string_equal(u.backends, "127.0.0.1:6379");
  assert_null(u.user);
  assert_null(u.password);
  assert_int_equal(u.database, 0);
  qorb__redis_url_free(&u);

  u = redis_ok("redis://:s%40cr%3At@[::1],127.0.0.1:7000/?flavour=async"
               "&client_name=api&pool_min_idle=1&pool_max_conn_idle_time=1m"
               "&pool_name=cache");
  assert_string_equal(u.backends, "[::1]:6379,127.0.0.1:7000");
  assert_null(u.user);
  assert_string_equal(u.password, "s@cr:t");
  assert_int_equal(u.flavour, QORB_REDIS_ASYNC);
  assert_string_equal(u.client_name, "api");
  assert_int_equal(u.policy.spares_wanted, 1);
  assert_int_equal(u.policy.idle_timeout_ms, 60000);
  assert_string_equal(u.policy.name, "cache");
  qorb__redis_url_free(&u);

  /* A password alone, as redis-cli reads "redis://secret@host"; an '@'
     in the password. */
  u = redis_ok("redis://secret@127.0.0.1/15");
  assert_null(u.user);
  assert_string_equal(u.password, "secret");
  assert_int_equal(u.database, 15);
  qorb__redis_url_free(&u);
  u = redis_ok("redis://u%20x:p@ss@127.0.0.1?flavour=blocking");
  assert_string_equal(u.user, "u x");
  assert_string_equal(u.password, "p@ss");
  qorb__redis_url_free(&u);
}

static void test_redis_malformed(void **state) {
  (void)state;
  redis_bad(NULL, QORB_EINVAL, NULL);
  redis_bad("rediss://127.0.0.1", QORB_ENOTSUP, "rediss://");
  redis_bad("http://127.0.0.1", QORB_ECONFIG, "redis://");
  redis_bad("redis://", QORB_ECONFIG, "no host");
  redis_bad("redis://u:p@/0", QORB_ECONFIG, "no host");
  redis_bad("redis://127.0.0.1,", QORB_ECONFIG, "empty host");
  redis_bad("redis://cache..example:6379", QORB_ECONFIG,
            "host \"cache..example\": neither a numeric address nor a "
            "host name");
  redis_bad("redis://127.0.0.1/?pool_dns_servers=127.0.0.1", QORB_ECONFIG,
            "pool_dns_servers: bad entry \"127.0.0.1\"");
  redis_bad("redis://127.0.0.1:0", QORB_ECONFIG, "port");
  redis_bad("redis://127.0.0.1:65536", QORB_ECONFIG, "port");
  redis_bad("redis://127.0.0.1:x", QORB_ECONFIG, "port");
  redis_bad("redis://127.0.0.1/x", QORB_ECONFIG, "database");
  redis_bad("redis://127.0.0.1/-1", QORB_ECONFIG, "database");
  redis_bad("redis://user:@127.0.0.1", QORB_ECONFIG, "without a password");
  redis_bad("redis://u:p%4@127.0.0.1", QORB_ECONFIG, "percent");
  redis_bad("redis://127.0.0.1/?flavour=turbo", QORB_ECONFIG, "flavour");
  redis_bad("redis://127.0.0.1/?db=1", QORB_ECONFIG, "\"db\"");
  redis_bad("redis://127.0.0.1/?pool_max_conns", QORB_ECONFIG, "\"=\"");
  redis_bad("redis://127.0.0.1/?pool_max_conns=0", QORB_ECONFIG,
            "pool_max_conns");
  redis_bad("redis://127.0.0.1/?pool_max_conn_lifetime=10", QORB_ECONFIG,
            "needs a unit");
  redis_bad("redis://127.0.0.1/?pool_bogus=1", QORB_ECONFIG, "pool_bogus");
  redis_bad("redis://127.0.0.1/?pool_max_conns=2&pool_min_idle=3",
            QORB_ECONFIG, "pool_min_idle");
}


static void test_redis_host_names(void **state) {
  qorb__redis_url_t u;
  qorb_policy_t base;
  (void)state;
  /* The example. */
  u = redis_ok("redis://user:pass@cache.internal:6379/2?pool_max_conns=8");
  assert_null(u.backends);
  assert_string_equal(u.names, "cache.internal:6379");
  assert_string_equal(u.user, "user");
  assert_string_equal(u.password, "pass");
  assert_int_equal(u.database, 2);
  assert_int_equal(u.policy.max_slots, 8);
  qorb__redis_url_free(&u);
  u = redis_ok("redis://c1.internal,127.0.0.3:7000,[::1],c2:1/"
               "?pool_dns_servers=%5B::1%5D:5353");
  assert_string_equal(u.backends, "127.0.0.3:7000,[::1]:6379");
  assert_string_equal(u.names, "c1.internal:6379,c2:1");
  assert_string_equal(u.dns_servers, "[::1]:5353");
  qorb__redis_url_free(&u);

  redis_bad("redis://c_1.internal!", QORB_ECONFIG, "host \"c_1.internal!\"");
  redis_bad("redis://127.0.0.1/?pool_dns_servers=", QORB_ECONFIG,
            "pool_dns_servers: empty");
  redis_bad("redis://127.0.0.1/?pool_dns_servers=a.b:53", QORB_ECONFIG,
            "pool_dns_servers: bad entry \"a.b:53\"");

  /* The base policy's fields, the URL's keys over them. */
  qorb_policy_init(&base);
  base.claim_timeout_ms = 777;
  base.log_cb = count_log;
  assert_int_equal(qorb__redis_url_parse(&u, "redis://c?pool_min_idle=1",
                                         &base, err, sizeof(err)),
                   0);
  assert_int_equal(u.policy.claim_timeout_ms, 777);
  assert_int_equal(u.policy.spares_wanted, 1);
  assert_ptr_equal(u.policy.log_cb, count_log);
  qorb__redis_url_free(&u);
  base.size = 3;
  err[0] = '\0';
  assert_int_equal(qorb__redis_url_parse(&u, "redis://c", &base, err,
                                         sizeof(err)),
                   QORB_EINVAL);
  assert_non_null(strstr(err, "qorb_policy_init"));
  assert_null(u.names);
}

#endif /* QORB_TEST_HAVE_REDIS */

/* ------------------------------------------------- truncations and flips */

typedef int (*parse_fn)(const char *s);

#ifdef QORB_TEST_HAVE_PG
static int parse_pg(const char *s) {
  qorb__pg_connstr_t c;
  int rc = qorb__pg_connstr_parse(&c, s, NULL, err, sizeof(err));
  if (rc == 0) {
    assert_true(c.backends != NULL || c.names != NULL);
    assert_int_equal(qorb_policy_validate(&c.policy, NULL, 0), 0);
    qorb__pg_connstr_free(&c);
  }
  return rc;
}
#endif
#ifdef QORB_TEST_HAVE_REDIS
static int parse_redis(const char *s) {
  qorb__redis_url_t u;
  int rc = qorb__redis_url_parse(&u, s, NULL, err, sizeof(err));
  if (rc == 0) {
    assert_true(u.backends != NULL || u.names != NULL);
    assert_int_equal(qorb_policy_validate(&u.policy, NULL, 0), 0);
    qorb__redis_url_free(&u);
  }
  return rc;
}
#endif

static void check_one(parse_fn fn, const char *s) {
  int rc;
  err[0] = '\0';
  rc = fn(s);
  if (rc != 0 && rc != QORB_ECONFIG && rc != QORB_ENOTSUP)
    fail_msg("\"%s\": unexpected %s", s, qorb_err_name(rc));
  if (rc != 0 && err[0] == '\0') fail_msg("\"%s\": refused with no message", s);
  if (count_alloc_live() != 0)
    fail_msg("\"%s\": %ld blocks left", s, count_alloc_live());
}

static void sweep(parse_fn fn, const char *const *valid, size_t n) {
  static const unsigned char subst[] = {
      ',', ':', '@', '/', '?', '=', '&', '\'',
      '\\', '[', ']', '%', ' ', '.', '0', 'h', 0x80, 0xff};
  size_t i, len, k, j;
  char *buf;
  for (i = 0; i < n; i++) {
    assert_int_equal(fn(valid[i]), 0);
    len = strlen(valid[i]);
    buf = malloc(len + 1);
    assert_non_null(buf);
    for (k = 0; k <= len; k++) { /* every prefix, "" included */
      memcpy(buf, valid[i], k);
      buf[k] = '\0';
      check_one(fn, buf);
    }
    for (k = 0; k < len; k++) {
      for (j = 0; j < sizeof(subst); j++) {
        memcpy(buf, valid[i], len + 1);
        buf[k] = (char)subst[j];
        check_one(fn, buf);
      }
      /* and a bit flip of each bit */
      for (j = 0; j < 8; j++) {
        memcpy(buf, valid[i], len + 1);
        buf[k] = (char)(buf[k] ^ (1 << j));
        if (buf[k] == '\0') continue; /* a prefix, done above */
        check_one(fn, buf);
      }
    }
    free(buf);
  }
}

#ifdef QORB_TEST_HAVE_PG
static const char *const pg_valid[] = {
    "postgresql://app:pw@127.0.0.2,127.0.0.3:5433/app?pool_max_conns=16"
    "&pool_min_idle=4&target_session_attrs=read-write&sslmode=disable",
    "host=127.0.0.2,127.0.0.3 port=5432 dbname=app pool_max_conns=8 "
    "password='a\\'b' pool_max_conn_lifetime=1h30m",
    "postgres://[::1]:5433,[fe80::1]/d%20b?pool_health_check_period=1.5s"
    "&pool_name=n",
    "postgresql://app@db1.internal,db2.internal:5432/app?pool_max_conns=16"
    "&pool_min_idle=4&target_session_attrs=read-write",
    "host=db1.internal,127.0.0.2 port=5432,5433 pool_dns_servers="
    "'127.0.0.1:5353 [::1]:5353' sslmode=verify-ca",
};

static void test_pg_sweep(void **state) {
  (void)state;
  sweep(parse_pg, pg_valid, sizeof(pg_valid) / sizeof(pg_valid[0]));
}
#endif

#ifdef QORB_TEST_HAVE_REDIS
static const char *const redis_valid[] = {
    "redis://user:pass@127.0.0.2:6379,127.0.0.3:6379/2?pool_max_conns=8",
    "redis://:p%40ss@[::1]/?flavour=async&pool_max_conn_idle_time=2m30s",
    "redis://user:pass@cache.internal:6379/2?pool_max_conns=8",
    "redis://c1.internal,127.0.0.3:7000/?pool_dns_servers=127.0.0.1:5353",
};

static void test_redis_sweep(void **state) {
  (void)state;
  sweep(parse_redis, redis_valid,
        sizeof(redis_valid) / sizeof(redis_valid[0]));
}
#endif

/* Fail each allocation in turn: QORB_ENOMEM or success, and no leak. */
static void oom_sweep(parse_fn fn, const char *s) {
  unsigned long n;
  for (n = 1;; n++) {
    int rc;
    count_alloc_reset();
    count_alloc_fail_at(n, 0);
    rc = fn(s);
    if (count_alloc_live() != 0)
      fail_msg("\"%s\", allocation %lu failed: %ld blocks left", s, n,
               count_alloc_live());
    if (!count_alloc_failed()) {
      assert_int_equal(rc, 0);
      break;
    }
    if (rc != QORB_ENOMEM)
      fail_msg("\"%s\", allocation %lu failed: got %s", s, n,
               qorb_err_name(rc));
  }
  count_alloc_fail_at(0, 0);
  assert_true(n > 2);
}

static void test_oom(void **state) {
  (void)state;
#ifdef QORB_TEST_HAVE_PG
  {
    size_t i;
    for (i = 0; i < sizeof(pg_valid) / sizeof(pg_valid[0]); i++)
      oom_sweep(parse_pg, pg_valid[i]);
  }
#endif
#ifdef QORB_TEST_HAVE_REDIS
  {
    size_t i;
    for (i = 0; i < sizeof(redis_valid) / sizeof(redis_valid[0]); i++)
      oom_sweep(parse_redis, redis_valid[i]);
  }
#endif
}

/* ------------------------------------------------- public constructors */

static void on_closed(qorb_pool_t *pool, int status, void *arg) {
  (void)pool;
  assert_int_equal(status, 0);
  *(int *)arg = 1;
}

static int flag_set(void *arg) { return *(int *)arg; }

/* A pool over an address that refuses, made on our loop and closed. */
static void close_on_loop(struct ev_loop *loop, qorb_pool_t *pool) {
  int closed = 0;
  pump_for(loop, 20); /* let it try to connect */
  assert_int_equal(qorb_pool_close(pool, on_closed, &closed), 0);
  assert_true(pump_until_fn(loop, flag_set, &closed, 5000));
  assert_int_equal(loop_active(loop), 0);
}


/* ------------------------------------------------------- merged resolver */

/* 1 when `pool` has backend `addr` ("host:port"). */
static int pool_has(qorb_pool_t *pool, const char *addr) {
  qorb_pool_stats_t st;
  qorb_backend_stats_t b[8];
  size_t n = 0, i;
  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(pool, &st, b, 8, &n), 0);
  for (i = 0; i < n && i < 8; i++)
    if (strcmp(b[i].addr.text, addr) == 0) return 1;
  return 0;
}

static unsigned pool_backends(qorb_pool_t *pool) {
  qorb_pool_stats_t st;
  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(pool, &st, NULL, 0, NULL), 0);
  return st.backends;
}

static void test_merge(void **state) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  fake_connector_t *fc = fake_connector_new(0);
  qorb_resolver_t *a = NULL, *b = NULL, *m = NULL, *x = NULL, *parts[2];
  qorb_pool_t *pool = NULL;
  qorb_pool_stats_t st;
  qorb_policy_t pol;
  int closed = 0;
  (void)state;
  assert_non_null(loop);
  assert_non_null(fc);
  assert_int_equal(qorb_static_resolver_new(&a, "127.0.0.2:1,127.0.0.3:1",
                                            err, sizeof(err)),
                   0);
  assert_int_equal(qorb_static_resolver_new(&b, "127.0.0.3:1,[::1]:1", err,
                                            sizeof(err)),
                   0);
  /* Refusals leave the parts with us. */
  parts[0] = a;
  parts[1] = a;
  assert_int_equal(qorb_resolver_merge_new(NULL, parts, 1), QORB_EINVAL);
  assert_int_equal(qorb_resolver_merge_new(&m, NULL, 1), QORB_EINVAL);
  assert_int_equal(qorb_resolver_merge_new(&m, parts, 0), QORB_EINVAL);
  assert_int_equal(qorb_resolver_merge_new(&m, parts, 2), QORB_EINVAL);
  parts[1] = NULL;
  assert_int_equal(qorb_resolver_merge_new(&m, parts, 2), QORB_EINVAL);
  assert_null(m);
  parts[1] = b;
  assert_int_equal(qorb_resolver_merge_new(&m, parts, 2), 0);
  assert_non_null(m);
  /* A merged resolver is no part. */
  assert_int_equal(qorb_resolver_merge_new(&x, &m, 1), QORB_EINVAL);
  assert_null(x);

  qorb_policy_init(&pol);
  pol.name = "merge";
  pol.spares_wanted = 1;
  pol.max_slots = 8;
  assert_int_equal(qorb_pool_new(&pool, loop, &pol, m,
                                 fake_connector_make(fc), err, sizeof(err)),
                   0);
  /* A started part belongs to the pool now. */
  assert_int_equal(qorb_resolver_merge_new(&x, &a, 1), QORB_EINVAL);

  /* The union, each address once. */
  PUMP_UNTIL(loop, pool_backends(pool) == 3, 5000);
  assert_true(pool_has(pool, "127.0.0.2:1"));
  assert_true(pool_has(pool, "127.0.0.3:1"));
  assert_true(pool_has(pool, "[::1]:1"));
  /* One part changes: the union follows; an address both had stays. */
  assert_int_equal(qorb_static_resolver_set(a, "127.0.0.4:1", err,
                                            sizeof(err)),
                   0);
  PUMP_UNTIL(loop, pool_has(pool, "127.0.0.4:1") &&
                       !pool_has(pool, "127.0.0.2:1"),
             5000);
  assert_true(pool_has(pool, "127.0.0.3:1"));
  assert_int_equal(pool_backends(pool), 3);
  assert_int_equal(qorb_static_resolver_set(b, "", err, sizeof(err)), 0);
  PUMP_UNTIL(loop, pool_backends(pool) == 1, 5000);
  assert_true(pool_has(pool, "127.0.0.4:1"));

  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(pool, &st, NULL, 0, NULL), 0);
  assert_string_equal(st.resolver.kind, "merge");
  assert_string_equal(st.resolver.name, "static,static");
  assert_int_equal(st.resolver.backends, 1);
  assert_true(st.resolver.changes >= 3);

  assert_int_equal(qorb_pool_close(pool, on_closed, &closed), 0);
  assert_true(pump_until_fn(loop, flag_set, &closed, 5000));
  assert_int_equal(loop_active(loop), 0);
  fake_connector_verify(fc, 1);
  fake_connector_free(fc);

  /* Freed without a pool, it frees its parts. */
  assert_int_equal(qorb_static_resolver_new(&a, "127.0.0.2:1", err,
                                            sizeof(err)),
                   0);
  assert_int_equal(qorb_resolver_merge_new(&m, &a, 1), 0);
  qorb_resolver_free(m);
  ev_loop_destroy(loop);
}

/* A merged resolver whose second part fails to start: the first is
   stopped again and the pool refused, nothing left. */
static int refuse_start(void *ctx, qorb_resolver_t *r) {
  (void)ctx;
  (void)r;
  return QORB_ECONFIG;
}
static void no_stop(void *ctx) { (void)ctx; }
static const qorb_resolver_ops_t refusing_ops = {
    .version = QORB_RESOLVER_OPS_VERSION,
    .name = "refusing",
    .start = refuse_start,
    .stop = no_stop,
};

static void test_merge_start_fails(void **state) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  fake_connector_t *fc = fake_connector_new(0);
  qorb_resolver_t *parts[2] = {NULL, NULL}, *m = NULL;
  qorb_connector_t *conn;
  qorb_pool_t *pool = NULL;
  (void)state;
  assert_int_equal(qorb_static_resolver_new(&parts[0], "127.0.0.2:1", err,
                                            sizeof(err)),
                   0);
  assert_int_equal(qorb_resolver_new(&parts[1], &refusing_ops, NULL), 0);
  assert_int_equal(qorb_resolver_merge_new(&m, parts, 2), 0);
  conn = fake_connector_make(fc);
  assert_int_equal(qorb_pool_new(&pool, loop, NULL, m, conn, err,
                                 sizeof(err)),
                   QORB_ECONFIG);
  assert_null(pool);
  assert_int_equal(loop_active(loop), 0);
  /* Given back: it may start again (and fail again) or be freed. */
  qorb_resolver_free(m);
  qorb_connector_free(conn);
  fake_connector_free(fc);
  ev_loop_destroy(loop);
}

#ifdef QORB_TEST_HAVE_PG
static void test_pg_pool_new(void **state) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  qorb_pool_t *pool = (qorb_pool_t *)&pool;
  int rc;
  (void)state;
  assert_non_null(loop);
  assert_int_equal(qorb_pg_pool_new(NULL, loop, "host=127.0.0.2", err,
                                    sizeof(err)),
                   QORB_EINVAL);
  assert_int_equal(qorb_pg_pool_new(&pool, loop, NULL, err, sizeof(err)),
                   QORB_EINVAL);
  pool = (qorb_pool_t *)&pool;
  assert_int_equal(qorb_pg_pool_new(&pool, loop, "host=127.0.0.2 bogus=1",
                                    err, sizeof(err)),
                   QORB_ECONFIG);
  assert_null(pool);
  assert_non_null(strstr(err, "bogus"));

  assert_int_equal(
      qorb_pg_pool_new(&pool, loop,
                       "postgresql://app@127.0.0.2:1/app?pool_max_conns=2"
                       "&pool_min_idle=1&pool_name=pgstr"
                       "&target_session_attrs=primary",
                       err, sizeof(err)),
      0);
  assert_non_null(pool);
  assert_string_equal(qorb_pool_name(pool), "pgstr");
  close_on_loop(loop, pool);

  /* Host names (looked up where no DNS server listens) beside an address:
     a merged resolver; with the base policy's log callback. */
  {
    qorb_policy_t base;
    int logs = 0;
    qorb_policy_init(&base);
    base.name = "pgbase";
    base.log_cb = count_log;
    base.log_arg = &logs;
    pool = NULL;
    rc = qorb_pg_pool_new_with(&pool, loop,
                               "postgresql://app@db1.test.invalid,"
                               "db2.test.invalid,127.0.0.2:1/app"
                               "?pool_dns_servers=127.0.0.1:2&port=1,1,1",
                               &base, err, sizeof(err));
#ifdef QORB_TEST_HAVE_DNS
    if (rc != 0) fail_msg("names: %s: %s", qorb_err_name(rc), err);
    assert_string_equal(qorb_pool_name(pool), "pgbase");
    close_on_loop(loop, pool);
    assert_true(logs > 0);
#else
    assert_int_equal(rc, QORB_ECONFIG);
    assert_non_null(strstr(err, "host names need libqorb-dns"));
    assert_null(pool);
#endif
    base.size = 0;
    pool = (qorb_pool_t *)&pool;
    assert_int_equal(qorb_pg_pool_new_with(&pool, loop, "host=127.0.0.2",
                                           &base, err, sizeof(err)),
                     QORB_EINVAL);
    assert_null(pool);
    assert_int_equal(qorb_pg_pool_new_with(NULL, loop, "host=127.0.0.2",
                                           NULL, err, sizeof(err)),
                     QORB_EINVAL);
  }
  ev_loop_destroy(loop);
}
#endif

#ifdef QORB_TEST_HAVE_REDIS
static void test_redis_pool_new(void **state) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  qorb_pool_t *pool = NULL;
  (void)state;
  assert_non_null(loop);
  assert_int_equal(qorb_redis_pool_new(&pool, loop, NULL, err, sizeof(err)),
                   QORB_EINVAL);
  assert_int_equal(qorb_redis_pool_new(&pool, loop, "redis://a..example", err,
                                       sizeof(err)),
                   QORB_ECONFIG);
  assert_null(pool);
  /* The connector's own refusal (a client name with a space) frees the
     resolver made before it. */
  assert_int_equal(qorb_redis_pool_new(&pool, loop,
                                       "redis://127.0.0.2:1/?client_name=a%20b",
                                       err, sizeof(err)),
                   QORB_ECONFIG);
  assert_null(pool);

  assert_int_equal(qorb_redis_pool_new(&pool, loop,
                                       "redis://u:p@127.0.0.2:1/3"
                                       "?pool_max_conns=2&flavour=async",
                                       err, sizeof(err)),
                   0);
  assert_non_null(pool);
  close_on_loop(loop, pool);
  assert_int_equal(qorb_redis_pool_new(&pool, loop,
                                       "redis://127.0.0.2:1", err,
                                       sizeof(err)),
                   0);
  close_on_loop(loop, pool);
  /* One host name: its DNS resolver alone, no merge. */
  {
    int rc = qorb_redis_pool_new_with(&pool, loop,
                                      "redis://u:p@cache.test.invalid:1/2"
                                      "?pool_max_conns=8"
                                      "&pool_dns_servers=127.0.0.1:2",
                                      NULL, err, sizeof(err));
#ifdef QORB_TEST_HAVE_DNS
    qorb_pool_stats_t st;
    if (rc != 0) fail_msg("name: %s: %s", qorb_err_name(rc), err);
    pump_for(loop, 20);
    qorb_pool_stats_init(&st);
    assert_int_equal(qorb_pool_stats(pool, &st, NULL, 0, NULL), 0);
    assert_string_equal(st.resolver.kind, "dns");
    close_on_loop(loop, pool);
#else
    assert_int_equal(rc, QORB_ECONFIG);
    assert_null(pool);
#endif
  }
  ev_loop_destroy(loop);
}
#endif

/* Fail each allocation of a public constructor in turn: QORB_ENOMEM with
   nothing left (the resolver and connector made before it freed), or a
   pool, which is closed. */
typedef int (*pool_new_fn)(qorb_pool_t **out, struct ev_loop *loop,
                           const char *s, char *err, size_t errlen);

static void pool_new_oom(pool_new_fn fn, const char *s) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  unsigned long n;
  assert_non_null(loop);
  for (n = 1;; n++) {
    qorb_pool_t *pool = NULL;
    int rc, failed;
    count_alloc_reset();
    count_alloc_fail_at(n, 0);
    rc = fn(&pool, loop, s, err, sizeof(err));
    failed = count_alloc_failed();
    count_alloc_fail_at(0, 0);
    if (rc == 0) {
      assert_non_null(pool);
      close_on_loop(loop, pool);
    } else {
      if (rc != QORB_ENOMEM)
        fail_msg("\"%s\", allocation %lu failed: got %s (%s)", s, n,
                 qorb_err_name(rc), err);
      assert_null(pool);
    }
    if (count_alloc_live() != 0)
      fail_msg("\"%s\", allocation %lu failed: %ld blocks left", s, n,
               count_alloc_live());
    if (!failed) {
      assert_int_equal(rc, 0);
      break;
    }
  }
  assert_true(n > 3);
  ev_loop_destroy(loop);
}

static void test_pool_new_oom(void **state) {
  (void)state;
#ifdef QORB_TEST_HAVE_PG
  pool_new_oom(qorb_pg_pool_new,
               "postgresql://app@127.0.0.2:1,127.0.0.3:1/app?pool_max_conns=2"
               "&pool_name=oom&sslmode=disable");
#endif
#ifdef QORB_TEST_HAVE_REDIS
  pool_new_oom(qorb_redis_pool_new,
               "redis://u:p@127.0.0.2:1/1?pool_max_conns=2&client_name=c");
#endif
#if defined(QORB_TEST_HAVE_DNS) && defined(QORB_TEST_HAVE_PG)
  /* Two DNS resolvers and a static one, merged. */
  pool_new_oom(qorb_pg_pool_new,
               "postgresql://app@db1.test.invalid:1,db2.test.invalid:1,"
               "127.0.0.2:1/app?pool_dns_servers=127.0.0.1:2");
#endif
#if defined(QORB_TEST_HAVE_DNS) && defined(QORB_TEST_HAVE_REDIS)
  pool_new_oom(qorb_redis_pool_new,
               "redis://cache.test.invalid:1/?pool_dns_servers=127.0.0.1:2");
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_durations, count_alloc_setup,
                                      count_alloc_teardown),
#ifdef QORB_TEST_HAVE_PG
      cmocka_unit_test_setup_teardown(test_pg_uri, count_alloc_setup,
                                      count_alloc_teardown),
      cmocka_unit_test_setup_teardown(test_pg_kv, count_alloc_setup,
                                      count_alloc_teardown),
      cmocka_unit_test_setup_teardown(test_pg_pool_keys, count_alloc_setup,
                                      count_alloc_teardown),
      cmocka_unit_test_setup_teardown(test_pg_roles, count_alloc_setup,
                                      count_alloc_teardown),
      cmocka_unit_test_setup_teardown(test_pg_malformed, count_alloc_setup,
                                      count_alloc_teardown),
      cmocka_unit_test_setup_teardown(test_pg_sweep, count_alloc_setup,
                                      count_alloc_teardown),
      cmocka_unit_test_setup_teardown(test_pg_host_names, count_alloc_setup,
                                      count_alloc_teardown),
      cmocka_unit_test_setup_teardown(test_pg_base_policy, count_alloc_setup,
                                      count_alloc_teardown),
#endif
#ifdef QORB_TEST_HAVE_REDIS
      cmocka_unit_test_setup_teardown(test_redis_url, count_alloc_setup,
                                      count_alloc_teardown),
      cmocka_unit_test_setup_teardown(test_redis_malformed, count_alloc_setup,
                                      count_alloc_teardown),
      cmocka_unit_test_setup_teardown(test_redis_sweep, count_alloc_setup,
                                      count_alloc_teardown),
      cmocka_unit_test_setup_teardown(test_redis_host_names,
                                      count_alloc_setup, count_alloc_teardown),
#endif
      cmocka_unit_test_setup_teardown(test_oom, count_alloc_setup,
                                      count_alloc_teardown),
      cmocka_unit_test_setup_teardown(test_merge, count_alloc_setup,
                                      count_alloc_teardown),
      cmocka_unit_test_setup_teardown(test_merge_start_fails,
                                      count_alloc_setup, count_alloc_teardown),
#ifdef QORB_TEST_HAVE_PG
      cmocka_unit_test_setup_teardown(test_pg_pool_new, count_alloc_setup,
                                      count_alloc_teardown),
#endif
#ifdef QORB_TEST_HAVE_REDIS
      cmocka_unit_test_setup_teardown(test_redis_pool_new, count_alloc_setup,
                                      count_alloc_teardown),
#endif
      cmocka_unit_test_setup_teardown(test_pool_new_oom, count_alloc_setup,
                                      count_alloc_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
