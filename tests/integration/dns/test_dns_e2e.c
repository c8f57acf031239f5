/* SPDX-License-Identifier: MIT */
/*
 * test_dns_e2e.c: a qorb-pg pool and a qorb-redis pool on SRV names, over
 * three real servers each (e2e_servers.sh: 127.0.0.2-4, PostgreSQL 55445,
 * Redis 56445), while the records change every second for 20 s and eight
 * threads claim from both pools and run a command on each claim.
 *
 * The three targets e1-e3.e2e.test.local carry one-second TTLs. Starting
 * from e1 and e2, each second either the target present longest loses its
 * A record or the target absent longest gets it back, so a target stays
 * away for three seconds (long past its records' lifetime: its backend
 * really leaves the pools) and at times one target alone serves, one that
 * was added a second before. At the end every target is back.
 *
 * Asserted: no claim and no command fails, claims were served throughout,
 * backends left and came back, and every backend of the final records
 * serves in both pools.
 */
#define _GNU_SOURCE
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <qorb/pg.h>
#include <qorb/redis.h>

#include "dns_testlib.h"

#define NTHREADS 8
#define STEPS 20
#define STEP_MS 1000
#define MAX_CLAIMS_PER_THREAD 2000000 /* a bound; time ends the run */
#define CLAIM_TIMEOUT_MS 10000

static const char *const targets[3] = {"e1.e2e.test.local.",
                                       "e2.e2e.test.local.",
                                       "e3.e2e.test.local."};
static const char *const target_ip[3] = {"127.0.0.2", "127.0.0.3",
                                         "127.0.0.4"};

typedef struct worker {
  qorb_pool_t *pg, *redis;
  pthread_t tid;
  atomic_int *stop;
  atomic_ulong claims; /* read by the main thread while running */
  unsigned failures;
  char first_error[256];
} worker_t;

static void worker_fail(worker_t *w, const char *fmt, const char *what) {
  if (w->failures++ == 0)
    snprintf(w->first_error, sizeof(w->first_error), fmt, what);
}

static void *work(void *arg) {
  worker_t *w = arg;
  unsigned long i;

  for (i = 0; i < MAX_CLAIMS_PER_THREAD && !atomic_load(w->stop); i++) {
    qorb_claim_t *cl;
    PGresult *res;
    redisReply *rep;
    int rc = qorb_pool_claim_wait(w->pg, CLAIM_TIMEOUT_MS, &cl);

    if (rc != 0) {
      worker_fail(w, "pg claim: %s", qorb_strerror(rc));
      continue;
    }
    res = PQexec(qorb_pg_conn(cl), "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      worker_fail(w, "SELECT 1: %s", PQerrorMessage(qorb_pg_conn(cl)));
      PQclear(res);
      qorb_release_broken(cl);
      continue;
    }
    PQclear(res);
    qorb_release(cl);

    rc = qorb_pool_claim_wait(w->redis, CLAIM_TIMEOUT_MS, &cl);
    if (rc != 0) {
      worker_fail(w, "redis claim: %s", qorb_strerror(rc));
      continue;
    }
    rep = redisCommand(qorb_redis_ctx(cl), "INCR qorb:e2e");
    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
      worker_fail(w, "INCR: %s",
                  rep == NULL ? qorb_redis_ctx(cl)->errstr : "not an integer");
      if (rep != NULL) freeReplyObject(rep);
      qorb_release_broken(cl);
      continue;
    }
    freeReplyObject(rep);
    qorb_release(cl);
    atomic_fetch_add(&w->claims, 1);
  }
  return NULL;
}

static void e2e_log(const char *name, qorb_log_level_t level, const char *msg,
                    void *arg) {
  (void)arg;
  if (getenv("DT_VERBOSE") != NULL || level >= QORB_LOG_ERROR)
    fprintf(stderr, "[%s] %s\n", name, msg);
}

/* Put target i's A record in or take it out. */
static void target_set(int i, int present) {
  char args[160];
  if (present)
    snprintf(args, sizeof(args), "add '%s 1 IN A %s'", targets[i],
             target_ip[i]);
  else
    snprintf(args, sizeof(args), "remove %s", targets[i]);
  dt_script(args);
}

static qorb_resolver_t *srv_resolver(const char *name) {
  qorb_dns_options_t o;
  qorb_resolver_t *r = NULL;
  char err[256] = "";
  int rc;

  dt_options(&o, name);
  o.servers = "127.0.0.1:55353";
  o.log_cb = e2e_log;
  rc = qorb_dns_resolver_new(&r, &o, err, sizeof(err));
  if (rc != 0) fail_msg("dns resolver %s: %s %s", name, qorb_strerror(rc), err);
  return r;
}

static qorb_pool_t *e2e_pool(const char *name, const char *srv,
                             qorb_connector_t *c) {
  qorb_policy_t pol;
  qorb_pool_t *pool = NULL;
  char err[256] = "";
  int rc;

  itest_policy(&pol, name, "DT_VERBOSE");
  pol.max_slots = 8;
  pol.spares_wanted = 4;
  rc = qorb_pool_new(&pool, NULL, &pol, srv_resolver(srv), c, err,
                     sizeof(err));
  if (rc != 0) fail_msg("pool %s: %s %s", name, qorb_strerror(rc), err);
  return pool;
}

static int has_backend(qorb_pool_t *pool, const char *ip, const char *port) {
  char addr[32];
  snprintf(addr, sizeof(addr), "%s:%s", ip, port);
  return itest_backend(pool, addr, NULL, NULL) == 0;
}

/* Every final backend of `pool` serves: its claim count moves. */
static int all_serve(qorb_pool_t *pool, const char *port,
                     const uint64_t base[3]) {
  char addr[32];
  for (int i = 0; i < 3; i++) {
    snprintf(addr, sizeof(addr), "%s:%s", target_ip[i], port);
    if (itest_claims(pool, addr) <= base[i]) return 0;
  }
  return 1;
}

static void test_pools_follow_changing_records(void **state) {
  qorb_pg_options_t po;
  qorb_redis_options_t ro;
  qorb_connector_t *pgc = NULL, *rc_ = NULL;
  qorb_pool_t *pg, *redis;
  worker_t w[NTHREADS];
  atomic_int stop = 0;
  int present[3] = {1, 1, 0}, since[3] = {0, 1, 0};
  unsigned left_pg = 0, left_redis = 0;
  uint64_t claims_before, base_pg[3], base_redis[3];
  char err[256] = "", addr[32];
  int step, i;

  (void)state;
  for (i = 0; i < 3; i++) target_set(i, 0);
  target_set(0, 1);
  target_set(1, 1);

  qorb_pg_options_init(&po);
  po.conninfo = "user=postgres dbname=postgres application_name=qorb_e2e";
  if (qorb_pg_connector_new(&pgc, &po, err, sizeof(err)) != 0)
    fail_msg("pg connector: %s", err);
  qorb_redis_options_init(&ro);
  ro.client_name = "qorb-e2e";
  if (qorb_redis_connector_new(&rc_, &ro, err, sizeof(err)) != 0)
    fail_msg("redis connector: %s", err);
  pg = e2e_pool("e2e-pg", "_pg._tcp.e2e.test.local.", pgc);
  redis = e2e_pool("e2e-redis", "_redis._tcp.e2e.test.local.", rc_);
  ITEST_WAIT(dt_pool_backends(pg) == 2 && dt_pool_backends(redis) == 2,
                   10000);
  assert_int_equal(dt_pool_backends(pg), 2);
  assert_int_equal(dt_pool_backends(redis), 2);

  memset(w, 0, sizeof(w));
  for (i = 0; i < NTHREADS; i++) {
    w[i].pg = pg;
    w[i].redis = redis;
    w[i].stop = &stop;
    assert_int_equal(pthread_create(&w[i].tid, NULL, work, &w[i]), 0);
  }

  /* Every second one change: odd steps take out the target present
   * longest, even steps bring back the one absent longest. */
  for (step = 1; step <= STEPS; step++) {
    int pick = -1;
    itest_nap_ms(STEP_MS);
    for (i = 0; i < 3; i++)
      if (present[i] == (step % 2) && (pick < 0 || since[i] < since[pick]))
        pick = i;
    assert_true(pick >= 0);
    present[pick] = !present[pick];
    since[pick] = step;
    target_set(pick, present[pick]);
    /* A target gone for two seconds has left both pools. */
    for (i = 0; i < 3; i++) {
      if (present[i] || step - since[i] < 2) continue;
      left_pg += !has_backend(pg, target_ip[i], "55445");
      left_redis += !has_backend(redis, target_ip[i], "56445");
    }
  }
  /* The final records: all three. */
  for (i = 0; i < 3; i++)
    if (!present[i]) target_set(i, 1);
  ITEST_WAIT(dt_pool_backends(pg) == 3 && dt_pool_backends(redis) == 3,
                   10000);
  for (i = 0; i < 3; i++) {
    snprintf(addr, sizeof(addr), "%s:55445", target_ip[i]);
    base_pg[i] = itest_claims(pg, addr);
    snprintf(addr, sizeof(addr), "%s:56445", target_ip[i]);
    base_redis[i] = itest_claims(redis, addr);
  }
  claims_before = 0;
  for (i = 0; i < NTHREADS; i++) claims_before += atomic_load(&w[i].claims);
  ITEST_WAIT(all_serve(pg, "55445", base_pg) &&
                   all_serve(redis, "56445", base_redis), 20000);
  atomic_store(&stop, 1);

  unsigned long total = 0;
  unsigned failures = 0;
  for (i = 0; i < NTHREADS; i++) {
    assert_int_equal(pthread_join(w[i].tid, NULL), 0);
    total += atomic_load(&w[i].claims);
    failures += w[i].failures;
    if (w[i].failures)
      fprintf(stderr, "thread %d: %u failures, first: %s\n", i,
              w[i].failures, w[i].first_error);
  }
  fprintf(stderr, "e2e: %lu claim pairs; removed targets seen gone: pg %u, "
          "redis %u\n", total, left_pg, left_redis);
  assert_int_equal(failures, 0);
  assert_true(claims_before > 1000);
  /* Backends really left while the records changed. */
  assert_true(left_pg >= 1 && left_redis >= 1);
  assert_int_equal(dt_pool_backends(pg), 3);
  assert_int_equal(dt_pool_backends(redis), 3);
  assert_true(all_serve(pg, "55445", base_pg));
  assert_true(all_serve(redis, "56445", base_redis));
  itest_close(pg);
  itest_close(redis);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pools_follow_changing_records),
  };
  signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */
  return cmocka_run_group_tests_name("dns_e2e", tests, NULL, NULL);
}
