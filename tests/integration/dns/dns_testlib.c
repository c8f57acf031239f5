/* SPDX-License-Identifier: MIT */
/*
 * dns_testlib.c: the shared part of the qorb-dns integration tests (see
 * dns_testlib.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns_testlib.h"

#define DT_LOG_LINES 2048

static char g_log[DT_LOG_LINES][256];
static unsigned g_nlog;

static void dt_log_cb(const char *pool, qorb_log_level_t level,
                      const char *msg, void *arg) {
  (void)arg;
  if (getenv("DT_VERBOSE") != NULL)
    fprintf(stderr, "[%s %d] %s\n", pool, (int)level, msg);
  snprintf(g_log[g_nlog % DT_LOG_LINES], sizeof(g_log[0]), "%s", msg);
  g_nlog++;
}

unsigned dt_logged(const char *needle) {
  unsigned n = 0, first = g_nlog > DT_LOG_LINES ? g_nlog - DT_LOG_LINES : 0;
  for (unsigned i = first; i < g_nlog; i++)
    if (strstr(g_log[i % DT_LOG_LINES], needle) != NULL) n++;
  return n;
}

void dt_log_clear(void) { g_nlog = 0; }

void dt_options(qorb_dns_options_t *o, const char *name) {
  qorb_dns_options_init(o);
  o->name = name;
  o->servers = DT_SERVERS;
  o->min_interval_ms = 100;
  o->max_interval_ms = 2000;
  o->query_timeout_ms = 300;
  o->tries = 1;
  o->log_cb = dt_log_cb;
}

void dt_start(dt_t *t, const qorb_dns_options_t *o) {
  qorb_policy_t pol;
  char err[256] = "";
  int rc;

  memset(t, 0, sizeof(*t));
  dt_log_clear();
  t->loop = ev_loop_new(EVFLAG_AUTO);
  assert_non_null(t->loop);
  rc = qorb_dns_resolver_new(&t->r, o, err, sizeof(err));
  if (rc != 0) fail_msg("qorb_dns_resolver_new: %s (%s)", qorb_strerror(rc), err);
  t->fc = fake_connector_new(0);
  itest_policy(&pol, "dns", "DT_VERBOSE");
  pol.spares_wanted = 1;
  pol.max_slots = 4;
  rc = qorb_pool_new(&t->pool, t->loop, &pol, t->r, fake_connector_make(t->fc),
                     err, sizeof(err));
  if (rc != 0) fail_msg("qorb_pool_new: %s (%s)", qorb_strerror(rc), err);
}

static void dt_closed(qorb_pool_t *pool, int status, void *arg) {
  (void)pool;
  assert_int_equal(status, 0);
  *(int *)arg = 1;
}

void dt_finish(dt_t *t) {
  int done = 0;

  if (t->pool != NULL) {
    assert_int_equal(qorb_pool_close(t->pool, dt_closed, &done), 0);
    PUMP_UNTIL(t->loop, done, 10000);
    t->pool = NULL;
  }
  assert_int_equal(loop_active(t->loop), 0);
  fake_connector_verify(t->fc, 1);
  fake_connector_free(t->fc);
  ev_loop_destroy(t->loop);
  memset(t, 0, sizeof(*t));
}

int dt_has(dt_t *t, const char *addr) {
  return itest_backend(t->pool, addr, NULL, NULL) == 0;
}

unsigned dt_pool_backends(qorb_pool_t *pool) {
  qorb_pool_stats_t st;
  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(pool, &st, NULL, 0, NULL), 0);
  return st.backends;
}

unsigned dt_backends(dt_t *t) { return dt_pool_backends(t->pool); }

void dt_stats(dt_t *t, qorb_dns_stats_t *st) {
  qorb_dns_stats_init(st);
  assert_int_equal(qorb_dns_resolver_stats(t->r, st), 0);
}

void dt_pool_resolver(dt_t *t, qorb_resolver_stats_t *rs) {
  qorb_pool_stats_t st;
  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(t->pool, &st, NULL, 0, NULL), 0);
  *rs = st.resolver;
}

void dt_script(const char *args) {
  assert_int_equal(itest_script(DT_SERVERS_SH, DT_TESTBED, args), 0);
}
