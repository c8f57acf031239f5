/* SPDX-License-Identifier: MIT */
/*
 * pg_testlib.c: see pg_testlib.h. The script path and the test bed folder
 * come from CMake as PGT_SERVERS_SH and PGT_TESTBED; external servers, from
 * the environment (QORB_TEST_PG_*).
 */
#define _GNU_SOURCE

#include "pg_testlib.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifndef PGT_SERVERS_SH
#error "PGT_SERVERS_SH must be defined by the build"
#endif
#ifndef PGT_TESTBED
#error "PGT_TESTBED must be defined by the build"
#endif

static pgt_addrs_t addrs;
static pthread_once_t addrs_once = PTHREAD_ONCE_INIT;

/* An environment variable, NULL when unset or empty. */
static const char *env(const char *name) {
  const char *v = getenv(name);
  return v != NULL && *v != '\0' ? v : NULL;
}

/* Fill `out` from the variable `var` when the servers are external, else
   from the fixture's `fixture` address. */
static void addr_of(qorb_addr_t *out, const char *var, const char *fixture) {
  const char *text = addrs.external ? env(var) : fixture;
  if (text == NULL || qorb_addr_parse(text, out) != 0) {
    fprintf(stderr,
            "%s=\"%s\": wanted the server's numeric host:port (with "
            "QORB_TEST_PG_PRIMARY and QORB_TEST_PG_STANDBY both set)\n",
            var, text ? text : "");
    exit(2);
  }
}

static void addrs_init(void) {
  addrs.external = env("QORB_TEST_PG_PRIMARY") != NULL ||
                   env("QORB_TEST_PG_STANDBY") != NULL;
  addr_of(&addrs.a, "QORB_TEST_PG_PRIMARY", "127.0.0.2:55431");
  addr_of(&addrs.b, "QORB_TEST_PG_STANDBY", "127.0.0.3:55432");
  addr_of(&addrs.p, "QORB_TEST_PG_PRIMARY", "127.0.0.2:55433");
  addr_of(&addrs.s, "QORB_TEST_PG_STANDBY", "127.0.0.3:55434");
  snprintf(addrs.ab, sizeof(addrs.ab), "%s,%s", addrs.a.text, addrs.b.text);
  snprintf(addrs.ps, sizeof(addrs.ps), "%s,%s", addrs.p.text, addrs.s.text);
  snprintf(addrs.refused_a, sizeof(addrs.refused_a), "%s,%s", PGT_REFUSED,
           addrs.a.text);
  snprintf(addrs.refused_b, sizeof(addrs.refused_b), "%s,%s", PGT_REFUSED,
           addrs.b.text);
}

const pgt_addrs_t *pgt_addrs(void) {
  pthread_once(&addrs_once, addrs_init);
  return &addrs;
}

int pgt_external(void) { return pgt_addrs()->external; }

void pgt_skip_if_external(const char *why) {
  if (!pgt_external()) return;
  fprintf(stderr,
          "SKIP: this test %s; the servers are external "
          "(QORB_TEST_PG_PRIMARY=%s QORB_TEST_PG_STANDBY=%s)\n",
          why, PGT_P, PGT_S);
  skip();
}

int pgt_servers(const char *args) {
  return itest_script(PGT_SERVERS_SH, PGT_TESTBED, args);
}

const char *pgt_server_cert(void) {
  const char *cert;
  if (!pgt_external()) return PGT_TESTBED "/server.crt";
  cert = env("QORB_TEST_PG_CERT");
  if (cert == NULL)
    pgt_skip_if_external("needs their TLS certificate (QORB_TEST_PG_CERT)");
  return cert;
}

/*
 * Every test program gets an application_name of its own: the suites run
 * in parallel against the same servers, and a test that counts or kills
 * "its" sessions must not see another program's.
 */
const char *pgt_app_name(void) {
  static char name[64];
  if (name[0] == '\0')
    snprintf(name, sizeof(name), "qorb_%s", program_invocation_short_name);
  return name;
}

void pgt_options(qorb_pg_options_t *o) {
  static char conninfo[160];
  qorb_pg_options_init(o);
  if (conninfo[0] == '\0')
    snprintf(conninfo, sizeof(conninfo),
             "user=postgres dbname=postgres application_name=%s",
             pgt_app_name());
  o->conninfo = conninfo;
}

/* SELECT count(<what>) over this program's sessions on `addr`. */
static long count_own_sessions(const char *addr, const char *what) {
  char sql[192];
  snprintf(sql, sizeof(sql),
           "SELECT count(%s) FROM pg_stat_activity WHERE application_name = "
           "'%s'",
           what, pgt_app_name());
  return pgt_admin_long(addr, sql);
}

long pgt_count_sessions(const char *addr) {
  return count_own_sessions(addr, "*");
}

long pgt_kill_sessions(const char *addr) {
  return count_own_sessions(addr, "pg_terminate_backend(pid)");
}

qorb_pool_t *pgt_pool(const char *backends, const qorb_pg_options_t *o,
                      void (*tweak)(qorb_policy_t *)) {
  qorb_pg_options_t def;
  qorb_policy_t pol;
  qorb_connector_t *c = NULL;
  qorb_pool_t *pool = NULL;
  char err[256] = "";
  int rc;

  if (!o) {
    pgt_options(&def);
    o = &def;
  }
  itest_policy(&pol, "pgtest", "PGT_VERBOSE");
  if (tweak) tweak(&pol);
  rc = qorb_pg_connector_new(&c, o, err, sizeof(err));
  if (rc != 0) fail_msg("pg connector: %s %s", qorb_strerror(rc), err);
  rc = itest_pool_new(&pool, backends, c, NULL, &pol);
  if (rc != 0)
    fail_msg("pool over %s: %s", backends, qorb_strerror(rc));
  return pool;
}

int pgt_value(PGconn *conn, const char *sql, char *buf, size_t len) {
  PGresult *res = PQexec(conn, sql);
  int rc = 0;
  if (len) buf[0] = '\0';
  if (!res) {
    snprintf(buf, len, "%s", PQerrorMessage(conn));
    return -1;
  }
  switch (PQresultStatus(res)) {
    case PGRES_TUPLES_OK:
      if (PQntuples(res) > 0 && PQnfields(res) > 0 &&
          !PQgetisnull(res, 0, 0))
        snprintf(buf, len, "%s", PQgetvalue(res, 0, 0));
      break;
    case PGRES_COMMAND_OK:
      break;
    default:
      snprintf(buf, len, "%s", PQresultErrorMessage(res));
      rc = -1;
      break;
  }
  PQclear(res);
  return rc;
}

int pgt_exec(PGconn *conn, const char *sql) {
  char buf[256];
  return pgt_value(conn, sql, buf, sizeof(buf));
}

PGconn *pgt_admin(const char *addr) {
  char host[64], info[256];
  const char *colon = strrchr(addr, ':');
  PGconn *c;
  assert_non_null(colon);
  snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
  snprintf(info, sizeof(info),
           "hostaddr=%s port=%s user=postgres dbname=postgres "
           "application_name=qorb_admin connect_timeout=10",
           host, colon + 1);
  c = PQconnectdb(info);
  if (PQstatus(c) != CONNECTION_OK)
    fail_msg("admin connection to %s: %s", addr, PQerrorMessage(c));
  return c;
}

long pgt_admin_long(const char *addr, const char *sql) {
  PGconn *c = pgt_admin(addr);
  char buf[256];
  long v = -1;
  if (pgt_value(c, sql, buf, sizeof(buf)) == 0) v = strtol(buf, NULL, 10);
  PQfinish(c);
  return v;
}
