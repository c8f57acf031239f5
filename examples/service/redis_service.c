/* SPDX-License-Identifier: MIT */
/*
 * redis_service.c: a thread-per-request service over a qorb-redis pool,
 * built from the installed package only (pkg-config qorb-redis; see
 * Makefile). The skeleton (options, one thread per request, the summary)
 * is service.c; this file is what is particular to Redis: the pool from
 * one URL, and what a request does with its redisContext.
 *
 *   redis_service --requests 200 --concurrency 8 \
 *     'redis://127.0.0.1:6379/0?pool_max_conns=4'
 */
#include <signal.h>
#include <stdio.h>

#include <hiredis/hiredis.h>
#include <qorb/qorb.h>
#include <qorb/redis.h>

#include "service.h"

#define KEY "qorb-service:requests"

/*
 * One request: INCR of a counter. The context is the claimant's, in
 * blocking mode, until the release; redisFree() it never is.
 */
static int handle(qorb_claim_t *claim, unsigned long n, char *err,
                  size_t errlen, int *broken) {
  redisContext *c = qorb_redis_ctx(claim);
  redisReply *r;
  int rc = 0;

  (void)n;
  if (c == NULL) {
    snprintf(err, errlen, "no blocking context: leave flavour=blocking");
    return -1;
  }
  r = redisCommand(c, "INCR %s", KEY);
  if (r == NULL) {
    /* An I/O error: the context is unusable. */
    snprintf(err, errlen, "INCR: %s", c->errstr);
    *broken = 1;
    return -1;
  }
  if (r->type != REDIS_REPLY_INTEGER) {
    snprintf(err, errlen, "INCR: %s",
             r->type == REDIS_REPLY_ERROR ? r->str : "not an integer reply");
    rc = -1;
  }
  freeReplyObject(r);
  return rc;
}

int main(int argc, char **argv) {
  static const service_t redis = {
      .prog = "redis_service",
      .server = "Redis",
      .default_connstr = "redis://127.0.0.1:6379/0",
      .pool_new = qorb_redis_pool_new,
      .handle = handle,
  };
  /* hiredis writes with write(2): a server that has gone away must give
     an error, not end the process. */
  signal(SIGPIPE, SIG_IGN);
  return service_main(&redis, argc, argv);
}
