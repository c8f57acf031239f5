/* SPDX-License-Identifier: MIT */
/*
 * itest.c: see itest.h.
 */
#define _GNU_SOURCE

#include "itest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* Room for every backend a test pool has (the suites use up to four). */
#define ITEST_MAX_BACKENDS 16

uint64_t itest_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void itest_nap_ms(unsigned ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

int itest_script(const char *script, const char *testbed, const char *args) {
  char cmd[1024];
  const char *base = strrchr(script, '/');
  int rc;

  snprintf(cmd, sizeof(cmd), "sh '%s' '%s' %s", script, testbed, args);
  rc = system(cmd);
  if (rc != 0)
    fprintf(stderr, "%s: '%s' failed (%d)\n", base ? base + 1 : script, args,
            rc);
  return rc;
}

/* The pool's log, on stderr when the environment variable named by `arg`
 * is set. */
static void itest_log(const char *pool, qorb_log_level_t level, const char *msg,
                      void *arg) {
  if (arg != NULL && getenv((const char *)arg) != NULL)
    fprintf(stderr, "[%s %d] %s\n", pool, (int)level, msg);
}

void itest_policy(qorb_policy_t *pol, const char *name,
                  const char *verbose_env) {
  qorb_policy_init(pol);
  pol->name = name;
  pol->min_backoff_ms = 20;
  pol->max_backoff_ms = 200;
  pol->backoff_spread_ms = 20;
  /* Tests of "every backend down" want the fail-fast answer soon. */
  pol->fail_fast_after_ms = 300;
  pol->log_cb = itest_log;
  pol->log_arg = (void *)verbose_env; /* only read */
}

void itest_no_checks(qorb_policy_t *pol, unsigned n) {
  pol->max_slots = n;
  pol->spares_wanted = n;
  pol->health_interval_ms = 0;
}

int itest_pool_new(qorb_pool_t **pool, const char *backends,
                   qorb_connector_t *connector, struct ev_loop *loop,
                   const qorb_policy_t *pol) {
  qorb_resolver_t *r = NULL;
  char err[256] = "";
  int rc;

  rc = qorb_static_resolver_new(&r, backends, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "static resolver: %s %s\n", qorb_strerror(rc), err);
    qorb_connector_free(connector);
    return rc;
  }
  rc = qorb_pool_new(pool, loop, pol, r, connector, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "pool: %s %s\n", qorb_strerror(rc), err);
    qorb_resolver_free(r);
    qorb_connector_free(connector);
  }
  return rc;
}

int itest_unwatched(qorb_connector_t **out, const qorb_connector_ops_t *ops,
                    void *ctx, qorb_connector_ops_t *storage) {
  *storage = *ops;
  storage->idle_fd = NULL;
  storage->peek = NULL;
  storage->destroy = NULL;
  return qorb_connector_new(out, storage, ctx);
}

void itest_close(qorb_pool_t *pool) {
  if (pool)
    assert_int_equal(qorb_pool_close(pool, NULL, NULL), 0);
}

int itest_backend(qorb_pool_t *pool, const char *addr,
                  qorb_backend_stats_t *out, qorb_pool_stats_t *pool_out) {
  qorb_backend_stats_t bs[ITEST_MAX_BACKENDS];
  qorb_pool_stats_t st;
  size_t n = 0, i;

  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(pool, &st, bs, ITEST_MAX_BACKENDS, &n), 0);
  if (pool_out)
    *pool_out = st;
  for (i = 0; i < n && i < ITEST_MAX_BACKENDS; i++) {
    if (strcmp(bs[i].addr.text, addr) == 0) {
      if (out)
        *out = bs[i];
      return 0;
    }
  }
  return -1;
}

int itest_online(qorb_pool_t *pool, const char *addr) {
  qorb_backend_stats_t b;
  return itest_backend(pool, addr, &b, NULL) == 0 ? b.online : 0;
}

unsigned itest_idle(qorb_pool_t *pool, const char *addr) {
  qorb_backend_stats_t b;
  return itest_backend(pool, addr, &b, NULL) == 0 ? b.idle : 0;
}

uint64_t itest_claims(qorb_pool_t *pool, const char *addr) {
  qorb_backend_stats_t b;
  return itest_backend(pool, addr, &b, NULL) == 0 ? b.claims : 0;
}

uint64_t itest_connects(qorb_pool_t *pool, const char *addr) {
  qorb_backend_stats_t b;
  return itest_backend(pool, addr, &b, NULL) == 0 ? b.connects : 0;
}

uint64_t itest_failures(qorb_pool_t *pool, const char *addr) {
  qorb_backend_stats_t b;
  return itest_backend(pool, addr, &b, NULL) == 0 ? b.failures : 0;
}

unsigned itest_total_idle(qorb_pool_t *pool) {
  qorb_pool_stats_t st;
  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(pool, &st, NULL, 0, NULL), 0);
  return st.idle;
}

const char *itest_last_error(qorb_pool_t *pool, const char *addr, char *buf,
                             size_t len) {
  qorb_backend_stats_t b;
  if (len == 0)
    return buf;
  buf[0] = '\0';
  if (itest_backend(pool, addr, &b, NULL) == 0)
    snprintf(buf, len, "%s", b.last_error);
  return buf;
}

static int error_has(qorb_pool_t *pool, const char *addr, const char *what,
                     const char *also, char *buf, size_t len) {
  itest_last_error(pool, addr, buf, len);
  return strstr(buf, what) != NULL && (also == NULL || strstr(buf, also));
}

void itest_wait_error(qorb_pool_t *pool, const char *addr, const char *what,
                      const char *also, unsigned ms) {
  char buf[256];
  uint64_t end = itest_now_ms() + ms;
  while (!error_has(pool, addr, what, also, buf, sizeof(buf)) &&
         itest_now_ms() < end)
    itest_nap_ms(10);
  if (!error_has(pool, addr, what, also, buf, sizeof(buf)))
    fail_msg("%s: last error \"%s\" does not contain \"%s\"%s%s%s", addr, buf,
             what, also ? " and \"" : "", also ? also : "", also ? "\"" : "");
}
