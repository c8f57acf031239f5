/* SPDX-License-Identifier: MIT */
/*
 * service.h: the thread-per-request skeleton that pg_service.c and
 * redis_service.c share (service.c). A program fills a service_t with what
 * is particular to its connector (how to make the pool from a connection
 * string, what one request does with a claimed connection) and hands it,
 * with argc and argv, to service_main(), which does the rest: options,
 * the pool, one thread per request, the summary and the exit status.
 */
#ifndef SERVICE_H
#define SERVICE_H

#include <stddef.h>

#include <qorb/qorb.h>

typedef struct service {
  const char *prog;            /* program name, for messages and --help */
  const char *server;          /* "PostgreSQL" or "Redis", for --help */
  const char *default_connstr; /* used when none is given */
  /* qorb_pg_pool_new() or qorb_redis_pool_new(). */
  int (*pool_new)(qorb_pool_t **out, struct ev_loop *loop, const char *connstr,
                  char *err, size_t errlen);
  /* One request, on a claimed connection: returns 0, or -1 with a message
     in `err`; sets *broken when the connection must not be reused. Runs on
     the request's own thread. */
  int (*handle)(qorb_claim_t *claim, unsigned long request, char *err,
                size_t errlen, int *broken);
} service_t;

/* Parses the options, runs the requests, prints what happened. Returns
   the process exit status: 0 when every request succeeded, 1 when one
   failed or the pool could not be made, 2 for a usage error. */
int service_main(const service_t *svc, int argc, char **argv);

#endif /* SERVICE_H */
