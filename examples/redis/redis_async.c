/* SPDX-License-Identifier: MIT */
/*
 * redis_async.c: qorb-redis-async, the event-driven flavour on the
 * application's own libev loop.
 *
 *   qorb-redis-async [BACKENDS [CONCURRENCY [REQUESTS]]]   (--help: usage)
 *   qorb-redis-async 127.0.0.1:6379,127.0.0.2:6379 16 1000
 *
 * The pool lives on our loop (we pass it to qorb_pool_new() and run it).
 * CONCURRENCY request chains run at once, each one: qorb_pool_claim()
 * with a callback, redisAsyncCommand() on the claimed redisAsyncContext,
 * and qorb_release() from the reply callback. Nothing blocks; everything
 * happens on this one thread. When the requests are done we close the
 * pool, and ev_run() returns once the last watcher (ours or qorb's) is
 * gone.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <qorb/qorb.h>
#include <qorb/redis.h>

#include "demo_common.h"

#define PROG "qorb-redis-async"

typedef struct app {
  qorb_pool_t *pool;
  unsigned to_start; /* requests not started yet */
  unsigned running;  /* chains in flight */
  unsigned ok, failed;
} app_t;

static void next_request(app_t *app);

static void on_closed(qorb_pool_t *pool, int status, void *arg) {
  app_t *app = arg;
  (void)pool;
  printf("%u requests done, %u failed; pool closed (%s)\n", app->ok,
         app->failed, qorb_strerror(status));
}

/* The reply callback needs both the claim and the app: a small record. */
typedef struct request {
  app_t *app;
  qorb_claim_t *claim;
} request_t;

static void on_request_reply(redisAsyncContext *ac, void *r, void *arg) {
  request_t *req = arg;
  app_t *app = req->app;
  redisReply *reply = r;
  (void)ac;

  if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
    app->ok++;
  else
    app->failed++;
  /* Release from the callback: no command of ours is outstanding. */
  qorb_release(req->claim);
  free(req);
  app->running--;
  next_request(app);
}

static void on_claim(qorb_pool_t *pool, int status, qorb_claim_t *claim,
                     void *arg) {
  app_t *app = arg;
  request_t *req;
  (void)pool;

  if (status != 0) {
    fprintf(stderr, "claim: %s\n", qorb_strerror(status));
    app->failed++;
    app->running--;
    next_request(app);
    return;
  }
  req = malloc(sizeof(*req));
  if (req == NULL) {
    qorb_release(claim);
    app->failed++;
    app->running--;
    next_request(app);
    return;
  }
  req->app = app;
  req->claim = claim;
  if (redisAsyncCommand(qorb_redis_async(claim), on_request_reply, req,
                        "INCR example:async") != REDIS_OK) {
    free(req);
    qorb_release_broken(claim);
    app->failed++;
    app->running--;
    next_request(app);
  }
}

static void next_request(app_t *app) {
  if (app->to_start == 0) {
    /* All started; when the last one is back, close the pool. */
    if (app->running == 0) qorb_pool_close(app->pool, on_closed, app);
    return;
  }
  app->to_start--;
  app->running++;
  /* The callback always runs later, from the loop (never from inside
   * this call), with a claim or the reason there is none. */
  if (qorb_pool_claim(app->pool, 1000, on_claim, app, NULL) != 0) {
    app->failed++;
    app->running--;
  }
}

static const char usage_text[] =
    "usage: " PROG " [BACKENDS [CONCURRENCY [REQUESTS]]]\n"
    "  BACKENDS     host:port,... numeric (default 127.0.0.1:6379)\n"
    "  CONCURRENCY  requests at once (default 16)\n"
    "  REQUESTS     requests in all (default 1000)\n";

int main(int argc, char **argv) {
  const char *backends = argc > 1 ? argv[1] : "127.0.0.1:6379";
  unsigned concurrency = argc > 2 ? (unsigned)atoi(argv[2]) : 16;
  unsigned requests = argc > 3 ? (unsigned)atoi(argv[3]) : 1000;
  struct ev_loop *loop = EV_DEFAULT;
  qorb_redis_options_t opts;
  qorb_connector_t *connector = NULL;
  qorb_policy_t policy;
  app_t app = {NULL, 0, 0, 0, 0};
  char err[256] = "";
  unsigned i;
  int rc;

  if ((rc = demo_positional_usage(PROG, argc, argv, usage_text)) >= 0)
    return rc;
  signal(SIGPIPE, SIG_IGN);
  if (concurrency == 0) concurrency = 16;

  qorb_redis_options_init(&opts);
  opts.flavour = QORB_REDIS_ASYNC;
  opts.client_name = "qorb-example-async";
  rc = qorb_redis_connector_new(&connector, &opts, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, PROG ": connector: %s: %s\n", qorb_strerror(rc), err);
    return 1;
  }
  qorb_policy_init(&policy);
  policy.name = "redis-async-example";
  policy.max_slots = 8;
  /* Our loop: call qorb_pool_new() on its thread, before or while it
   * runs. */
  if (demo_pool_new(PROG, &app.pool, loop, backends, connector, &policy) != 0)
    return 1;

  app.to_start = requests;
  for (i = 0; i < concurrency && app.to_start > 0; i++) next_request(&app);
  if (requests == 0) qorb_pool_close(app.pool, on_closed, &app);

  ev_run(loop, 0); /* returns when the pool has closed */
  return app.failed == 0 ? 0 : 1;
}
