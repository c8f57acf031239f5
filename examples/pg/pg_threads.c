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
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qorb/pg.h>
#include <qorb/qorb.h>

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

static int make_pool(const opts_t *o) {
  qorb_resolver_t *resolver = NULL;
  qorb_connector_t *connector = NULL;
  qorb_pg_options_t pgo;
  qorb_policy_t policy;
  char err[256] = "";
  int rc;

  rc = qorb_static_resolver_new(&resolver, o->backends, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "--backends: %s\n", err[0] ? err : qorb_strerror(rc));
    return rc;
  }
  qorb_pg_options_init(&pgo);
  pgo.conninfo = o->conninfo;
  /* Malformed conninfo is caught here, with libpq's own message. */
  rc = qorb_pg_connector_new(&connector, &pgo, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "--conninfo: %s\n", err[0] ? err : qorb_strerror(rc));
    qorb_resolver_free(resolver);
    return rc;
  }
  qorb_policy_init(&policy);
  policy.name = "pg-threads";
  policy.max_slots = o->threads < 8 ? o->threads : 8;
  policy.spares_wanted = policy.max_slots;
  rc = qorb_pool_new(&pool, NULL, &policy, resolver, connector, err,
                     sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "pool: %s %s\n", qorb_strerror(rc), err);
    qorb_resolver_free(resolver);
    qorb_connector_free(connector);
  }
  return rc;
}

static void print_backends(void) {
  qorb_backend_stats_t be[16];
  qorb_pool_stats_t st;
  size_t n = 0, i;
  qorb_pool_stats_init(&st);
  if (qorb_pool_stats(pool, &st, be, 16, &n) != 0) return;
  for (i = 0; i < n && i < 16; i++)
    printf("  %-22s online=%d claims=%llu failures=%llu%s%s\n",
           be[i].addr.text, be[i].online, (unsigned long long)be[i].claims,
           (unsigned long long)be[i].failures,
           be[i].last_error[0] ? " last_error=" : "", be[i].last_error);
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"backends", required_argument, NULL, 'b'},
      {"conninfo", required_argument, NULL, 'c'},
      {"threads", required_argument, NULL, 't'},
      {"requests", required_argument, NULL, 'r'},
      {NULL, 0, NULL, 0}};
  pthread_t tids[256];
  unsigned i, started = 0;
  int c;

  g_opts.backends = "127.0.0.1:5432";
  g_opts.conninfo = "";
  g_opts.threads = 8;
  g_opts.requests = 1000;
  while ((c = getopt_long(argc, argv, "b:c:t:r:", longopts, NULL)) != -1) {
    switch (c) {
      case 'b': g_opts.backends = optarg; break;
      case 'c': g_opts.conninfo = optarg; break;
      case 't': g_opts.threads = (unsigned)atoi(optarg); break;
      case 'r': g_opts.requests = (unsigned)atoi(optarg); break;
      default:
        fprintf(stderr,
                "usage: qorb-pg-threads [--backends LIST] [--conninfo STR] "
                "[--threads N] [--requests M]\n");
        return 2;
    }
  }
  if (g_opts.threads < 1 || g_opts.threads > 256) g_opts.threads = 8;
  if (make_pool(&g_opts) != 0) return 1;

  for (i = 0; i < g_opts.threads; i++) {
    if (pthread_create(&tids[i], NULL, worker_main, (void *)(uintptr_t)i))
      break;
    started++;
  }
  for (i = 0; i < started; i++) pthread_join(tids[i], NULL);

  printf("%lu requests served, %lu failed, %u threads\n",
         (unsigned long)atomic_load(&served),
         (unsigned long)atomic_load(&failed), started);
  print_backends();
  /* Blocks until every claim is back and the pool's thread is joined. */
  qorb_pool_close(pool, NULL, NULL);
  return atomic_load(&failed) == 0 ? 0 : 1;
}
