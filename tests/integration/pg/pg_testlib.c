/* SPDX-License-Identifier: MIT */
/*
 * pg_testlib.c: see pg_testlib.h. The script path and the test bed folder
 * come from CMake as PGT_SERVERS_SH and PGT_TESTBED.
 */
#define _GNU_SOURCE

#include "pg_testlib.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#ifndef PGT_SERVERS_SH
#error "PGT_SERVERS_SH must be defined by the build"
#endif
#ifndef PGT_TESTBED
#error "PGT_TESTBED must be defined by the build"
#endif

int pgt_servers(const char *args) {
  char cmd[1024];
  int rc;
  snprintf(cmd, sizeof(cmd), "sh '%s' '%s' %s", PGT_SERVERS_SH, PGT_TESTBED,
           args);
  rc = system(cmd);
  if (rc != 0) fprintf(stderr, "pgt_servers: '%s' failed (%d)\n", args, rc);
  return rc;
}

const char *pgt_server_cert(void) { return PGT_TESTBED "/server.crt"; }

uint64_t pgt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void pgt_nap_ms(unsigned ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

void pgt_options(qorb_pg_options_t *o) {
  qorb_pg_options_init(o);
  o->conninfo = "user=postgres dbname=postgres application_name=qorb_test";
}

static void pgt_log(const char *pool, qorb_log_level_t level,
                    const char *msg, void *arg) {
  (void)arg;
  if (getenv("PGT_VERBOSE"))
    fprintf(stderr, "[%s %d] %s\n", pool, (int)level, msg);
}

qorb_pool_t *pgt_pool(const char *backends, const qorb_pg_options_t *o,
                      void (*tweak)(qorb_policy_t *)) {
  qorb_pg_options_t def;
  qorb_policy_t pol;
  qorb_resolver_t *r = NULL;
  qorb_connector_t *c = NULL;
  qorb_pool_t *pool = NULL;
  char err[256] = "";
  int rc;

  if (!o) {
    pgt_options(&def);
    o = &def;
  }
  qorb_policy_init(&pol);
  pol.name = "pgtest";
  pol.min_backoff_ms = 20;
  pol.max_backoff_ms = 200;
  pol.backoff_spread_ms = 20;
  pol.log_cb = pgt_log;
  if (tweak) tweak(&pol);
  rc = qorb_static_resolver_new(&r, backends, err, sizeof(err));
  if (rc != 0) fail_msg("static resolver: %s %s", qorb_strerror(rc), err);
  rc = qorb_pg_connector_new(&c, o, err, sizeof(err));
  if (rc != 0) fail_msg("pg connector: %s %s", qorb_strerror(rc), err);
  rc = qorb_pool_new(&pool, NULL, &pol, r, c, err, sizeof(err));
  if (rc != 0) fail_msg("pool: %s %s", qorb_strerror(rc), err);
  return pool;
}

void pgt_close(qorb_pool_t *pool) {
  if (pool) assert_int_equal(qorb_pool_close(pool, NULL, NULL), 0);
}

int pgt_backend(qorb_pool_t *pool, const char *addr,
                qorb_backend_stats_t *out, qorb_pool_stats_t *pool_out) {
  qorb_pool_stats_t st;
  qorb_backend_stats_t bs[8];
  size_t n = 0, i;
  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(pool, &st, bs, 8, &n), 0);
  if (pool_out) *pool_out = st;
  for (i = 0; i < n && i < 8; i++) {
    if (strcmp(bs[i].addr.text, addr) == 0) {
      if (out) *out = bs[i];
      return 0;
    }
  }
  return -1;
}

int pgt_online(qorb_pool_t *pool, const char *addr) {
  qorb_backend_stats_t b;
  return pgt_backend(pool, addr, &b, NULL) == 0 ? b.online : 0;
}

unsigned pgt_idle(qorb_pool_t *pool, const char *addr) {
  qorb_backend_stats_t b;
  return pgt_backend(pool, addr, &b, NULL) == 0 ? b.idle : 0;
}

uint64_t pgt_claims(qorb_pool_t *pool, const char *addr) {
  qorb_backend_stats_t b;
  return pgt_backend(pool, addr, &b, NULL) == 0 ? b.claims : 0;
}

uint64_t pgt_connects(qorb_pool_t *pool, const char *addr) {
  qorb_backend_stats_t b;
  return pgt_backend(pool, addr, &b, NULL) == 0 ? b.connects : 0;
}

uint64_t pgt_failures(qorb_pool_t *pool, const char *addr) {
  qorb_backend_stats_t b;
  return pgt_backend(pool, addr, &b, NULL) == 0 ? b.failures : 0;
}

unsigned pgt_total_idle(qorb_pool_t *pool) {
  qorb_pool_stats_t st;
  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(pool, &st, NULL, 0, NULL), 0);
  return st.idle;
}

const char *pgt_last_error(qorb_pool_t *pool, const char *addr, char *buf,
                           size_t len) {
  qorb_backend_stats_t b;
  if (len == 0) return buf;
  buf[0] = '\0';
  if (pgt_backend(pool, addr, &b, NULL) == 0)
    snprintf(buf, len, "%s", b.last_error);
  return buf;
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
