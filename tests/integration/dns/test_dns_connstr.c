/* SPDX-License-Identifier: MIT */
/*
 * test_dns_connstr.c: pools from one connection string whose hosts are
 * names (qorb_pg_pool_new(), qorb_redis_pool_new() and their _with
 * variants), over the real servers of e2e_servers.sh (PostgreSQL on
 * 127.0.0.2-4 port 55445, Redis on 127.0.0.2-4 port 56445) and names that
 * this test adds to the unbound of dns_servers.sh (pool_dns_servers points
 * the pools at it):
 *
 *   pga.names.test.local   A 127.0.0.2
 *   pgb.names.test.local   A 127.0.0.3
 *   both.names.test.local  A 127.0.0.3, A 127.0.0.4
 *
 * Asserted: a PostgreSQL pool over two host names (a merged resolver of
 * two DNS resolvers) and one over a name and a numeric address (DNS and
 * static, merged) connect to each backend, as the servers themselves say
 * (inet_server_addr()); a single name stays libpq's host while the
 * connection goes to the resolved address; a Redis pool over one name
 * with two addresses connects to both, in the URL's database.
 */
#define _GNU_SOURCE
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <qorb/pg.h>
#include <qorb/redis.h>

#include "dns_testlib.h"

#define WAIT_MS 20000
#define HOLD 6 /* claims held at once: more than one backend's share */

static const char *const records[] = {
    "pga.names.test.local. 30 IN A 127.0.0.2",
    "pgb.names.test.local. 30 IN A 127.0.0.3",
    "both.names.test.local. 30 IN A 127.0.0.3",
    "both.names.test.local. 30 IN A 127.0.0.4",
};

static int setup(void **state) {
  char args[128];
  (void)state;
  dt_script("remove pga.names.test.local.");
  dt_script("remove pgb.names.test.local.");
  dt_script("remove both.names.test.local.");
  for (size_t i = 0; i < sizeof(records) / sizeof(records[0]); i++) {
    snprintf(args, sizeof(args), "add '%s'", records[i]);
    dt_script(args);
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  dt_script("remove pga.names.test.local.");
  dt_script("remove pgb.names.test.local.");
  dt_script("remove both.names.test.local.");
  return 0;
}

/* The test pools' policy (quick backoff, the log with DT_VERBOSE=1), under
   the string's pool_* keys. */
static qorb_pool_t *pg_pool(const char *name, const char *connstr) {
  qorb_policy_t base;
  qorb_pool_t *pool = NULL;
  char err[256] = "";
  int rc;
  itest_policy(&base, name, "DT_VERBOSE");
  rc = qorb_pg_pool_new_with(&pool, NULL, connstr, &base, err, sizeof(err));
  if (rc != 0) fail_msg("%s: %s: %s", connstr, qorb_err_name(rc), err);
  return pool;
}

static void resolver_kind(qorb_pool_t *pool, const char *kind) {
  qorb_pool_stats_t st;
  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(pool, &st, NULL, 0, NULL), 0);
  assert_string_equal(st.resolver.kind, kind);
}

/* Bit i of the result: target_ip[i] served one of the claims. */
static const char *const target_ip[3] = {"127.0.0.2", "127.0.0.3",
                                         "127.0.0.4"};

static unsigned ip_bit(const char *ip) {
  for (unsigned i = 0; i < 3; i++)
    if (strcmp(ip, target_ip[i]) == 0) return 1u << i;
  fail_msg("a connection to unexpected address %s", ip);
  return 0;
}

/* The server of a claimed connection, as ip_bit(); asserts it works. */
typedef unsigned (*probe_fn)(qorb_claim_t *cl);

/* PostgreSQL: the server says its address. */
static unsigned pg_probe(qorb_claim_t *cl) {
  PGresult *res = PQexec(qorb_pg_conn(cl), "SELECT host(inet_server_addr())");
  unsigned bit;
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    fail_msg("SELECT: %s", PQerrorMessage(qorb_pg_conn(cl)));
  bit = ip_bit(PQgetvalue(res, 0, 0));
  PQclear(res);
  return bit;
}

/* Hold HOLD claims at once, probe each, release them: the servers seen. */
static unsigned hold_round(qorb_pool_t *pool, probe_fn probe) {
  qorb_claim_t *cl[HOLD];
  unsigned seen = 0;
  int i, rc;
  for (i = 0; i < HOLD; i++) {
    rc = qorb_pool_claim_wait(pool, 10000, &cl[i]);
    if (rc != 0) fail_msg("claim: %s", qorb_strerror(rc));
    seen |= probe(cl[i]);
  }
  for (i = 0; i < HOLD; i++) qorb_release(cl[i]);
  return seen;
}

/* Claim rounds until exactly the servers in `want` have answered. */
static void sees(qorb_pool_t *pool, probe_fn probe, unsigned want) {
  uint64_t end = itest_now_ms() + WAIT_MS;
  unsigned seen = 0;
  while ((seen & want) != want && itest_now_ms() < end) {
    seen |= hold_round(pool, probe);
    if ((seen & want) != want) itest_nap_ms(50);
  }
  if (seen != want) fail_msg("servers seen 0x%x, want 0x%x", seen, want);
}

/* The pool's resolver is of `kind`, it finds one backend per server of
   `want`, and each of them serves claims. */
static void serves_each(qorb_pool_t *pool, const char *kind, probe_fn probe,
                        unsigned want) {
  unsigned n = (unsigned)__builtin_popcount(want);
  resolver_kind(pool, kind);
  ITEST_WAIT(dt_pool_backends(pool) == n, WAIT_MS);
  assert_int_equal(dt_pool_backends(pool), n);
  sees(pool, probe, want);
}

static void test_pg_two_names(void **state) {
  qorb_pool_t *pool;
  (void)state;
  /* The form, two names and the port at the end; port= gives both
     the servers' port (in the URI alone the first would get 5432). */
  pool = pg_pool("names-pg",
                 "postgresql://postgres@pga.names.test.local,"
                 "pgb.names.test.local:55445/postgres?port=55445"
                 "&pool_max_conns=8&pool_min_idle=4"
                 "&target_session_attrs=read-write"
                 "&pool_dns_servers=127.0.0.1:55353"
                 "&application_name=qorb_names");
  serves_each(pool, "merge", pg_probe, 1u | 2u);
  assert_true(itest_claims(pool, "127.0.0.2:55445") > 0);
  assert_true(itest_claims(pool, "127.0.0.3:55445") > 0);
  itest_close(pool);
}

static void test_pg_name_and_address(void **state) {
  qorb_pool_t *pool;
  (void)state;
  /* key=value form: a name and a numeric address, DNS and static. */
  pool = pg_pool("names-mixed",
                 "host=pga.names.test.local,127.0.0.4 port=55445 "
                 "user=postgres dbname=postgres pool_max_conns=8 "
                 "pool_min_idle=4 pool_dns_servers='127.0.0.1:55353 "
                 "[::1]:55353'");
  serves_each(pool, "merge", pg_probe, 1u | 4u);
  itest_close(pool);
}

static void test_pg_one_name_is_libpq_host(void **state) {
  qorb_pool_t *pool = NULL;
  qorb_claim_t *cl;
  char err[256] = "";
  int rc;
  (void)state;
  rc = qorb_pg_pool_new(&pool, NULL,
                        "postgresql://postgres@pga.names.test.local:55445/"
                        "postgres?pool_dns_servers=127.0.0.1:55353",
                        err, sizeof(err));
  if (rc != 0) fail_msg("%s: %s", qorb_err_name(rc), err);
  resolver_kind(pool, "dns");
  assert_int_equal(qorb_pool_claim_wait(pool, WAIT_MS, &cl), 0);
  /* The name for TLS and password files, the address to connect to. */
  assert_string_equal(PQhost(qorb_pg_conn(cl)), "pga.names.test.local");
  assert_string_equal(PQhostaddr(qorb_pg_conn(cl)), "127.0.0.2");
  qorb_release(cl);
  itest_close(pool);
}

/* Redis: the server's bind address; the connection is in database 2. */
static unsigned redis_probe(qorb_claim_t *cl) {
  redisContext *c = qorb_redis_ctx(cl);
  redisReply *rep = redisCommand(c, "CONFIG GET bind");
  unsigned bit;
  if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2)
    fail_msg("CONFIG GET bind: %s", rep == NULL ? c->errstr : "bad reply");
  bit = ip_bit(rep->element[1]->str);
  freeReplyObject(rep);
  rep = redisCommand(c, "CLIENT INFO");
  if (rep == NULL || rep->type != REDIS_REPLY_STRING)
    fail_msg("CLIENT INFO: %s", rep == NULL ? c->errstr : "bad reply");
  if (strstr(rep->str, " db=2 ") == NULL)
    fail_msg("not in database 2: %s", rep->str);
  freeReplyObject(rep);
  return bit;
}

static void test_redis_name_two_addresses(void **state) {
  qorb_pool_t *pool = NULL;
  char err[256] = "";
  int rc;
  (void)state;
  rc = qorb_redis_pool_new(&pool, NULL,
                           "redis://both.names.test.local:56445/2"
                           "?pool_max_conns=8&pool_min_idle=4"
                           "&pool_dns_servers=127.0.0.1:55353",
                           err, sizeof(err));
  if (rc != 0) fail_msg("%s: %s", qorb_err_name(rc), err);
  serves_each(pool, "dns", redis_probe, 2u | 4u);
  assert_true(itest_claims(pool, "127.0.0.3:56445") > 0);
  assert_true(itest_claims(pool, "127.0.0.4:56445") > 0);
  itest_close(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pg_two_names),
      cmocka_unit_test(test_pg_name_and_address),
      cmocka_unit_test(test_pg_one_name_is_libpq_host),
      cmocka_unit_test(test_redis_name_two_addresses),
  };
  signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */
  return cmocka_run_group_tests_name("dns_connstr", tests, setup, teardown);
}
