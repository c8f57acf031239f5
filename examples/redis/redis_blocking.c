/* SPDX-License-Identifier: MIT */
/*
 * redis_blocking.c: qorb-redis-blocking, the blocking flavour in a
 * thread-per-request program.
 *
 *   qorb-redis-blocking [BACKENDS [THREADS [REQUESTS]]]   (--help: usage)
 *   qorb-redis-blocking 127.0.0.1:6379,127.0.0.2:6379 4 1000
 *
 * Each thread does what a request handler does: claim a connection
 * (waiting up to a second), run commands on the hiredis redisContext with
 * plain redisCommand(), release. The pool runs its own loop thread
 * (loop NULL): connecting, health checks and the cleaning of released
 * connections happen there, so the threads only ever see a connected,
 * clean context in blocking mode.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include <qorb/qorb.h>
#include <qorb/redis.h>

#include "demo_common.h"

#define PROG "qorb-redis-blocking"

typedef struct worker {
  pthread_t thread;
  qorb_pool_t *pool;
  unsigned id, requests;
  unsigned ok, failed;
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  unsigned i;

  for (i = 0; i < w->requests; i++) {
    qorb_claim_t *claim;
    redisContext *c;
    redisReply *r;
    int rc;

    rc = qorb_pool_claim_wait(w->pool, 1000, &claim);
    if (rc != 0) {
      /* QORB_ENOTONLINE, QORB_EALLINUSE, ...: the pool says why. */
      fprintf(stderr, "thread %u: claim: %s\n", w->id, qorb_strerror(rc));
      w->failed++;
      continue;
    }
    c = qorb_redis_ctx(claim);

    /* Anything goes while the claim is held: even state that would leak
     * to the next claimant (SELECT, MULTI, WATCH, CLIENT SETNAME) is
     * cleaned by the pool after the release (RESET on Redis 6.2+). */
    r = redisCommand(c, "INCR example:counter");
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
      w->ok++;
    else
      w->failed++;
    if (r != NULL) freeReplyObject(r);

    /* A failed command leaves an error on the context (c->err); the pool
     * sees it at release and replaces the connection, so a plain release
     * is right either way. */
    qorb_release(claim);
  }
  return NULL;
}

static const char usage_text[] =
    "usage: " PROG " [BACKENDS [THREADS [REQUESTS]]]\n"
    "  BACKENDS     host:port,... numeric (default 127.0.0.1:6379)\n"
    "  THREADS      threads (default 4)\n"
    "  REQUESTS     requests in all (default 1000)\n";

int main(int argc, char **argv) {
  const char *backends = argc > 1 ? argv[1] : "127.0.0.1:6379";
  unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
  unsigned requests = argc > 3 ? (unsigned)atoi(argv[3]) : 1000;
  qorb_redis_options_t opts;
  qorb_connector_t *connector = NULL;
  qorb_policy_t policy;
  qorb_pool_t *pool = NULL;
  worker_t *workers;
  char err[256] = "";
  unsigned i, ok = 0, failed = 0;
  int rc;

  if ((rc = demo_positional_usage(PROG, argc, argv, usage_text)) >= 0)
    return rc;
  if (threads == 0 || threads > 256) threads = 4;
  /* hiredis writes with write(2): a server that went away must not kill
   * the process with SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);

  qorb_redis_options_init(&opts);
  opts.flavour = QORB_REDIS_BLOCKING;
  opts.client_name = "qorb-example";
  opts.command_timeout_ms = 2000; /* bound each redisCommand() */
  /* opts.password = "..."; opts.user = "..."; opts.database = 1; */
  rc = qorb_redis_connector_new(&connector, &opts, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, PROG ": connector: %s: %s\n", qorb_strerror(rc), err);
    return 1;
  }
  qorb_policy_init(&policy);
  policy.name = "redis-example";
  policy.max_slots = 8;
  /* loop NULL: the pool runs its own loop thread. */
  if (demo_pool_new(PROG, &pool, NULL, backends, connector, &policy) != 0)
    return 1;

  workers = calloc(threads, sizeof(*workers));
  if (workers == NULL) return 1;
  for (i = 0; i < threads; i++) {
    workers[i].pool = pool;
    workers[i].id = i;
    workers[i].requests = requests;
    pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
  }
  for (i = 0; i < threads; i++) {
    pthread_join(workers[i].thread, NULL);
    ok += workers[i].ok;
    failed += workers[i].failed;
  }
  free(workers);
  printf("%u requests done, %u failed\n", ok, failed);

  /* Blocks until every claim is back and the pool's thread has ended. */
  qorb_pool_close(pool, NULL, NULL);
  return failed == 0 ? 0 : 1;
}
