/* SPDX-License-Identifier: MIT */
/*
 * redis_demo.c: qorb-redis-demo, a Redis pool at work, for tools/demo.sh.
 *
 *   qorb-redis-demo --service _redis._tcp.demo.local. \
 *                   --dns-server 127.0.0.1:55363 --seconds 12 --threads 4
 *   qorb-redis-demo --backends 127.0.0.2:56395,127.0.0.3:56396 ...
 *
 * A pool over a qorb-dns resolver (an SRV name or host:port, asking the
 * DNS servers given) or the static resolver (a numeric list), and
 * qorb-redis (blocking flavour), on a loop thread the pool owns, and
 * worker threads doing what request handlers do: claim (waiting up to a
 * second), INCR and GET, release. Once a second it prints the pool's
 * statistics and the resolver's figures, so that the records changing
 * (tools/demo-redis.sh adds a target midway and then removes another)
 * shows up as it happens: the new backend connects and takes claims; the
 * removed one stays until its TTL runs out, then its connections close and
 * its claims move to the others.
 *
 * The options, the worker threads and the stats table are shared with the
 * other demos (examples/demo_common.c); this file is what is particular
 * to Redis.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <hiredis/hiredis.h>

#include <qorb/qorb.h>
#include <qorb/redis.h>

#include "demo_common.h"
#include "demo_dns.h"

#define PROG "qorb-redis-demo"

/* One request: INCR a counter of this worker's, then GET it back. A failed
 * command leaves an error on the context: the release sees it and the
 * pool replaces the connection. */
static int request(qorb_claim_t *claim, unsigned worker, unsigned long n,
                   void *arg) {
  redisContext *c = qorb_redis_ctx(claim);
  redisReply *r = redisCommand(c, "INCR demo:counter:%u", worker);
  long long count;
  int ok;
  (void)n;
  (void)arg;

  if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
    if (r) freeReplyObject(r);
    return c->err ? QORB_ECLOSED : QORB_EPROTO;
  }
  count = r->integer;
  freeReplyObject(r);
  r = redisCommand(c, "GET demo:counter:%u", worker);
  ok = r != NULL && r->type == REDIS_REPLY_STRING && atoll(r->str) >= count;
  if (r) freeReplyObject(r);
  if (ok)
    return 0;
  return c->err ? QORB_ECLOSED : QORB_EPROTO;
}

int main(int argc, char **argv) {
  static const demo_workload_t workload = {PROG, "requests", request, NULL,
                                           demo_dns_resolver_new};
  qorb_redis_options_t ro;
  qorb_connector_t *connector = NULL;
  qorb_policy_t policy;
  demo_opts_t opts;
  char err[256] = "";
  int rc;

  if (demo_parse_opts(PROG, argc, argv, &opts,
                      "redis-servers, e.g. 127.0.0.2:6379,[::1]:6379", 4096,
                      DEMO_OPTS_DNS, NULL, 0) != 0)
    return 2;
  signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */

  qorb_redis_options_init(&ro);
  ro.client_name = "qorb-demo";
  ro.command_timeout_ms = 1000; /* a claimant never hangs on a dead server */
  rc = qorb_redis_connector_new(&connector, &ro, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, PROG ": connector: %s\n", err[0] ? err : qorb_strerror(rc));
    return 1;
  }
  demo_policy(&policy, "redis-demo", opts.max_slots);
  return demo_run(&opts, connector, &policy, &workload);
}
