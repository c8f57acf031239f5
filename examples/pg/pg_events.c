/* SPDX-License-Identifier: MIT */
/*
 * pg_events.c: qorb-pg-events, an event-driven service over a qorb-pg pool.
 * Everything runs on the application's own libev loop, given to the pool:
 * a claim comes back as a callback on that loop, the query goes out with
 * PQsendQuery() and its result is read from an ev_io of the application's
 * own on PQsocket(). Nothing blocks; one thread serves every request.
 *
 *   qorb-pg-events --backends 127.0.0.1:5432 \
 *                  --conninfo "user=app dbname=app" --concurrency 16
 *
 * The flow of one request:
 *
 *   request_start  -> qorb_pool_claim(cb)            (never calls back inline)
 *   on_claim       -> PQsendQuery + PQflush, start our ev_io
 *   on_socket      -> PQconsumeInput, PQgetResult until NULL
 *                  -> stop our ev_io, qorb_release   (pool owns the socket)
 */
#define _GNU_SOURCE
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qorb/pg.h>
#include <qorb/qorb.h>

#include "demo_common.h"

#define PROG "qorb-pg-events"

#define MAX_CONCURRENCY 256

typedef struct service service_t;

/* One in-flight request: its claim, its PGconn and its watcher. */
typedef struct request {
  service_t *svc;
  unsigned slot;     /* which of the concurrent request slots */
  unsigned long seq; /* the request number it serves */
  qorb_claim_t *claim;
  PGconn *pg;
  ev_io io;
  int failed;
} request_t;

struct service {
  struct ev_loop *loop;
  qorb_pool_t *pool;
  unsigned long started, total, ok, errors;
  unsigned active;
  int reasons_shown;
  request_t req[MAX_CONCURRENCY];
};

/* Why claims fail: libpq's text for each backend, in the pool's stats
   (printed once). */
static void show_reasons(service_t *s) {
  if (s->reasons_shown++) return;
  demo_print_stats(stderr, s->pool, 0);
}

static void request_start(request_t *r);

static void request_done(request_t *r) {
  service_t *s = r->svc;
  if (r->failed)
    s->errors++;
  else
    s->ok++;
  /* Keep this slot busy with the next request, if any are left. */
  if (s->started < s->total) {
    request_start(r);
    return;
  }
  if (--s->active == 0) {
    /* All done: close the pool. On this loop it returns at once; once the
       pool has finished closing it holds no watcher, so ev_run returns. */
    qorb_pool_close(s->pool, NULL, NULL);
  }
}

static void on_socket(struct ev_loop *loop, ev_io *w, int revents) {
  request_t *r = w->data;
  PGresult *res;
  int broken = 0;

  if (revents & EV_WRITE) {
    /* Part of the query is still in libpq's buffer. */
    int f = PQflush(r->pg);
    if (f < 0) {
      broken = 1;
      goto finished;
    }
    if (f == 0) {
      ev_io_stop(loop, w);
      ev_io_set(w, PQsocket(r->pg), EV_READ);
      ev_io_start(loop, w);
    }
  }
  if (!(revents & EV_READ)) return;
  if (!PQconsumeInput(r->pg)) {
    broken = 1;
    goto finished;
  }
  /* Read results until PQgetResult() says NULL: only then is the
     connection idle again and fit to be released. */
  while (!PQisBusy(r->pg)) {
    res = PQgetResult(r->pg);
    if (res == NULL) goto finished;
    if (PQresultStatus(res) != PGRES_TUPLES_OK ||
        strtoul(PQgetvalue(res, 0, 0), NULL, 10) != r->seq)
      r->failed = 1;
    PQclear(res);
  }
  return; /* the rest of the answer is still on its way */

finished:
  if (broken) {
    fprintf(stderr, "request %lu: %s", r->seq, PQerrorMessage(r->pg));
    r->failed = 1;
  }
  /* Our watcher goes before the claim does. */
  ev_io_stop(loop, w);
  if (broken || PQstatus(r->pg) != CONNECTION_OK)
    qorb_release_broken(r->claim);
  else
    qorb_release(r->claim); /* blocking mode is put back by the pool */
  r->claim = NULL;
  r->pg = NULL;
  request_done(r);
}

static void on_claim(qorb_pool_t *pool, int status, qorb_claim_t *claim,
                     void *arg) {
  request_t *r = arg;
  char sql[64];
  int f;
  (void)pool;
  if (status != 0) {
    /* QORB_ENOTONLINE, QORB_EALLINUSE, ...; the pool's stats say more. */
    fprintf(stderr, "request %lu: claim: %s\n", r->seq, qorb_strerror(status));
    show_reasons(r->svc);
    r->failed = 1;
    request_done(r);
    return;
  }
  r->claim = claim;
  r->pg = qorb_pg_conn(claim);
  snprintf(sql, sizeof(sql), "SELECT %lu", r->seq);
  /* Non-blocking sends on the loop thread. */
  if (PQsetnonblocking(r->pg, 1) != 0 || !PQsendQuery(r->pg, sql) ||
      (f = PQflush(r->pg)) < 0) {
    fprintf(stderr, "request %lu: %s", r->seq, PQerrorMessage(r->pg));
    qorb_release_broken(claim);
    r->failed = 1;
    request_done(r);
    return;
  }
  ev_io_init(&r->io, on_socket, PQsocket(r->pg),
             f == 1 ? EV_READ | EV_WRITE : EV_READ);
  r->io.data = r;
  ev_io_start(r->svc->loop, &r->io);
}

static void request_start(request_t *r) {
  service_t *s = r->svc;
  int rc;
  r->seq = ++s->started;
  r->failed = 0;
  /* The callback always comes later, from the loop, never from inside. */
  rc = qorb_pool_claim(s->pool, 2000, on_claim, r, NULL);
  if (rc != 0) {
    fprintf(stderr, "request %lu: qorb_pool_claim: %s\n", r->seq,
            qorb_strerror(rc));
    r->failed = 1;
    request_done(r);
  }
}

int main(int argc, char **argv) {
  const char *backends = "127.0.0.1:5432", *conninfo = "";
  unsigned concurrency = 16, requests = 10000, i;
  const demo_opt_t options[] = {
      {"backends", 'b', "LIST", &backends, NULL, 0, 0, 0,
       "PostgreSQL servers, numeric host:port list (default 127.0.0.1:5432)"},
      {"conninfo", 'c', "STR", &conninfo, NULL, 0, 0, 0,
       "libpq template without host/port (default \"\")"},
      {"concurrency", 'n', "N", NULL, &concurrency, 1, MAX_CONCURRENCY, 0,
       "requests in flight at once (default 16)"},
      {"requests", 'r', "M", NULL, &requests, 0, 100000000, 0,
       "requests in all (default 10000)"},
  };
  qorb_connector_t *connector;
  qorb_pg_options_t pgo;
  qorb_policy_t policy;
  service_t *s;
  char err[256] = "";
  int rc;

  if (demo_parse_args(PROG, argc, argv, options,
                      sizeof(options) / sizeof(options[0])) != 0)
    return 2;
  s = calloc(1, sizeof(*s));
  if (!s) return 1;
  s->total = requests < concurrency ? concurrency : requests;

  s->loop = ev_default_loop(0);
  qorb_pg_options_init(&pgo);
  pgo.conninfo = conninfo;
  if ((rc = qorb_pg_connector_new(&connector, &pgo, err, sizeof(err)))) {
    fprintf(stderr, PROG ": --conninfo: %s\n",
            err[0] ? err : qorb_strerror(rc));
    free(s);
    return 1;
  }
  qorb_policy_init(&policy);
  policy.name = "pg-events";
  policy.max_slots = 8;
  policy.spares_wanted = 4;
  /* Our loop, not a thread of the pool's: every callback runs here. */
  if (demo_pool_new(PROG, &s->pool, s->loop, backends, connector, &policy) !=
      0) {
    free(s);
    return 1;
  }

  s->active = concurrency;
  for (i = 0; i < concurrency; i++) {
    s->req[i].svc = s;
    s->req[i].slot = i;
    request_start(&s->req[i]);
  }
  /* Returns when nothing is active any more: every request done and the
     pool closed. */
  ev_run(s->loop, 0);

  printf("%lu requests: %lu ok, %lu failed, concurrency %u\n", s->started,
         s->ok, s->errors, concurrency);

  rc = s->errors == 0 ? 0 : 1;
  free(s);
  return rc;
}
