/* SPDX-License-Identifier: MIT */
/*
 * pg_testlib.c: see pg_testlib.h. The script path and the test bed folder
 * come from CMake as PGT_SERVERS_SH and PGT_TESTBED.
 */
#define _GNU_SOURCE

#include "pg_testlib.h"

#include <errno.h>
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

int pgt_servers(const char *args) {
  return itest_script(PGT_SERVERS_SH, PGT_TESTBED, args);
}

const char *pgt_server_cert(void) { return PGT_TESTBED "/server.crt"; }

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
