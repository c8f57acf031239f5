/* SPDX-License-Identifier: MIT */
/*
 * pg_threads.c: qorb-pg-threads, a thread-per-request service over a
 * qorb-pg pool. Each worker thread does what a request handler does:
 *
 *     claim (blocking, with a timeout) -> PQexec... -> release
 *
 * The pool runs on a loop thread of its own (loop NULL), so the program
 * never touches libev. Run it against any PostgreSQL:
 *
 *   qorb-pg-threads --backends 127.0.0.1:5432 \
 *                   --conninfo "user=app dbname=app" --threads 8
 *
 * --backends is a list of numeric host:port (the pool's static resolver);
 * --conninfo is the libpq template without host/port (see qorb/pg.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qorb/pg.h>
#include <qorb/qorb.h>

#include "demo_common.h"

#define PROG "qorb-pg-threads"

typedef struct opts {
  const char *backends;
  const char *conninfo;
  unsigned threads;
  unsigned requests; /* per thread */
} opts_t;

static opts_t g_opts;
static qorb_pool_t *pool;
static atomic_ulong served, failed;

/*
 * One request: the whole of what a handler does with the pool. Returns 0
 * or a negative qorb code.
 */
static int handle_request(unsigned worker, unsigned n) {
  qorb_claim_t *claim;
  PGconn *pg;
  PGresult *res;
  char a[16], b[16];
  const char *params[2] = {a, b};
  int rc, broken = 0;

  /* Blocks this thread up to 2 s. A failure says why: QORB_ENOTONLINE (at
     once, when every backend has failed: see the pool's stats for libpq's
     text), QORB_EALLINUSE (timed out), QORB_ENOBACKENDS... */
  rc = qorb_pool_claim_wait(pool, 2000, &claim);
  if (rc != 0) return rc;

  pg = qorb_pg_conn(claim); /* blocking mode, idle, clean */
  snprintf(a, sizeof(a), "%u", worker);
  snprintf(b, sizeof(b), "%u", n);
  res = PQexecParams(pg, "SELECT $1::int * 1000000 + $2::int", 2, NULL,
                     params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    fprintf(stderr, "worker %u: %s", worker, PQerrorMessage(pg));
    rc = QORB_EPROTO;
    /* A connection that died under us: say so (a plain release would find
       out too, from PQstatus). */
    broken = PQstatus(pg) != CONNECTION_OK;
  } else if (strtol(PQgetvalue(res, 0, 0), NULL, 10) !=
             (long)worker * 1000000 + (long)n) {
    rc = QORB_EPROTO;
  }
  PQclear(res);

  /* Never PQfinish(pg): give it back. An open transaction would be rolled
     back and the session reset (DISCARD ALL) on the pool's loop; this
     thread does not wait for that. */
  if (broken)
    qorb_release_broken(claim);
  else
    qorb_release(claim);
  return rc;
}

static void *worker_main(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg, n;
  for (n = 0; n < g_opts.requests; n++) {
    if (handle_request(id, n) == 0)
      atomic_fetch_add(&served, 1);
    else
      atomic_fetch_add(&failed, 1);
  }
  return NULL;
}

int main(int argc, char **argv) {
  const demo_opt_t options[] = {
      {"backends", 'b', "LIST", &g_opts.backends, NULL, 0, 0, 0,
       "PostgreSQL servers, numeric host:port list (default 127.0.0.1:5432)"},
      {"conninfo", 'c', "STR", &g_opts.conninfo, NULL, 0, 0, 0,
       "libpq template without host/port (default \"\")"},
      {"threads", 't', "N", NULL, &g_opts.threads, 1, 256, 0,
       "worker threads (default 8)"},
      {"requests", 'r', "M", NULL, &g_opts.requests, 0, 100000000, 0,
       "requests per thread (default 1000)"},
  };
  qorb_connector_t *connector = NULL;
  qorb_pg_options_t pgo;
  qorb_policy_t policy;
  pthread_t tids[256];
  char err[256] = "";
  unsigned i, started = 0;
  int rc;

  g_opts.backends = "127.0.0.1:5432";
  g_opts.conninfo = "";
  g_opts.threads = 8;
  g_opts.requests = 1000;
  if (demo_parse_args(PROG, argc, argv, options,
                      sizeof(options) / sizeof(options[0])) != 0)
    return 2;

  qorb_pg_options_init(&pgo);
  pgo.conninfo = g_opts.conninfo;
  /* Malformed conninfo is caught here, with libpq's own message. */
  rc = qorb_pg_connector_new(&connector, &pgo, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, PROG ": --conninfo: %s\n",
            err[0] ? err : qorb_strerror(rc));
    return 1;
  }
  qorb_policy_init(&policy);
  policy.name = "pg-threads";
  policy.max_slots = g_opts.threads < 8 ? g_opts.threads : 8;
  policy.spares_wanted = policy.max_slots;
  /* loop NULL: the pool runs on a thread of its own. */
  if (demo_pool_new(PROG, &pool, NULL, g_opts.backends, connector, &policy) !=
      0)
    return 1;

  for (i = 0; i < g_opts.threads; i++) {
    if (pthread_create(&tids[i], NULL, worker_main, (void *)(uintptr_t)i))
      break;
    started++;
  }
  for (i = 0; i < started; i++) pthread_join(tids[i], NULL);

  printf("%lu requests served, %lu failed, %u threads\n",
         (unsigned long)atomic_load(&served),
         (unsigned long)atomic_load(&failed), started);
  demo_print_stats(stdout, pool, 0);
  /* Blocks until every claim is back and the pool's thread is joined. */
  qorb_pool_close(pool, NULL, NULL);
  return atomic_load(&failed) == 0 ? 0 : 1;
}
