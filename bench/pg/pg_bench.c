/* SPDX-License-Identifier: MIT */
/*
 * pg_bench.c: SELECT 1 round trips per second and their latency, N client
 * threads, three ways to reach the same PostgreSQL server:
 *
 *   direct     each client on a dedicated connection of its own (PQexec)
 *   qorb       a qorb-pg pool of 8 on its own thread; each round trip is
 *              claim_wait + PQexec + release. Twice: reset=none (nothing to
 *              clean, the release is the lock-free fast path: the same work
 *              PgBouncer's transaction mode does) and reset=discard (the
 *              default DISCARD ALL after every release, run by the pool
 *              loop, not by the releasing thread)
 *   pgbouncer  PgBouncer in transaction mode with a pool of 8 (PQexec on a
 *              connection to PgBouncer per client)
 *
 * It starts its own PostgreSQL and PgBouncer on loopback (bench_servers.sh,
 * in a folder under /tmp) and stops them at the end, so it needs nothing
 * else running. One line per point:
 *
 *   bench=pg path=<direct|qorb|pgbouncer> reset=<none|discard> clients=N
 *       tps=X p50_us=Y p99_us=Z
 *
 * then, per client count, the release cost with reset=discard and the
 * ratios against the goals (qorb reset=none >= 0.95x direct everywhere and
 * >= 2x PgBouncer at 8 and 32 clients).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <qorb/pg.h>
#include <qorb/qorb.h>

#include "bench_common.h"

#ifndef PG_BENCH_SERVERS_SH
#define PG_BENCH_SERVERS_SH "bench_servers.sh"
#endif

#define HOST "127.0.0.2"
#define PG_PORT "55438"
#define BOUNCER_PORT "56432"
#define MAX_CLIENTS 64
#define MAX_POINTS 8

typedef enum path { P_DIRECT = 0, P_QORB_NONE, P_QORB_DISCARD, P_BOUNCER,
                    P_COUNT } path_t;

static const char *const path_name[P_COUNT] = {"direct", "qorb", "qorb",
                                               "pgbouncer"};
static const char *const path_reset[P_COUNT] = {"none", "none", "discard",
                                                "none"};

typedef struct result {
  double tps;
  double p50_us, p99_us;
  double rel_p50_us, rel_p99_us, rel_max_us; /* qorb: the release call */
  uint64_t errors;
  int ran;
} result_t;

struct point;

typedef struct client {
  struct point *pt;
  PGconn *conn; /* direct / pgbouncer */
  bench_hist_t *lat, *rel;
  uint64_t ops, errors;
  char first_error[160];
} client_t;

typedef struct point {
  path_t path;
  unsigned nclients;
  qorb_pool_t *pool;
  bench_run_t run;
  client_t clients[MAX_CLIENTS];
} point_t;

static volatile sig_atomic_t interrupted;
static char bench_dir[256];
static int servers_up;
static double g_seconds = 3.0, g_warmup = 0.5;
static unsigned g_pool = 8;

static int servers(const char *cmd) {
  char line[768];
  snprintf(line, sizeof(line), "sh '%s' '%s' %s %u",
           getenv("PG_BENCH_SERVERS_SH") ? getenv("PG_BENCH_SERVERS_SH")
                                         : PG_BENCH_SERVERS_SH,
           bench_dir, cmd, g_pool);
  return system(line);
}

static void stop_servers(void) {
  if (servers_up) {
    servers_up = 0;
    servers("stop");
  }
}

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static void client_error(client_t *c, const char *what, const char *msg) {
  if (c->errors++ == 0)
    snprintf(c->first_error, sizeof(c->first_error), "%s: %.*s", what,
             (int)strcspn(msg, "\n"), msg);
}

/* One SELECT 1 on a blocking connection; 0 if it worked. */
static int select1(PGconn *conn) {
  PGresult *res = PQexec(conn, "SELECT 1");
  int ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
  PQclear(res);
  return ok ? 0 : -1;
}

static void *client_main(void *arg) {
  client_t *c = arg;
  point_t *pt = c->pt;
  int qorb = pt->path == P_QORB_NONE || pt->path == P_QORB_DISCARD;
  uint64_t i;
  bench_ready(&pt->run);
  /* Bounded by the stop flag and, as a backstop, by a count no run of a
     few seconds gets near. */
  for (i = 0; i < 2000000000u && !bench_stopping(&pt->run); i++) {
    int measuring = bench_measuring(&pt->run);
    uint64_t t0 = bench_now_ns(), t1, t2;
    if (qorb) {
      qorb_claim_t *cl;
      int rc = qorb_pool_claim_wait(pt->pool, 10000, &cl);
      if (rc != 0) {
        client_error(c, "claim", qorb_strerror(rc));
        bench_nap_ms(1);
        continue;
      }
      if (select1(qorb_pg_conn(cl)) != 0) {
        client_error(c, "query", PQerrorMessage(qorb_pg_conn(cl)));
        qorb_release_broken(cl);
        continue;
      }
      t1 = bench_now_ns();
      qorb_release(cl);
      t2 = bench_now_ns();
      if (measuring)
        bench_hist_add(c->rel, t2 - t1);
    } else {
      if (select1(c->conn) != 0) {
        client_error(c, "query", PQerrorMessage(c->conn));
        bench_nap_ms(1);
        continue;
      }
      t2 = bench_now_ns();
    }
    if (measuring) {
      bench_hist_add(c->lat, t2 - t0);
      c->ops++;
    }
  }
  return NULL;
}

static qorb_pool_t *make_pool(int discard) {
  qorb_pg_options_t o;
  qorb_policy_t pol;
  qorb_resolver_t *r;
  qorb_connector_t *conn;
  qorb_pool_t *pool = NULL;
  char err[256];
  int rc;

  qorb_pg_options_init(&o);
  o.conninfo = "user=postgres dbname=postgres application_name=qorb_bench";
  o.reset_sql = discard ? QORB_PG_DISCARD_ALL : NULL;
  qorb_policy_init(&pol);
  pol.name = discard ? "bench-discard" : "bench-none";
  pol.max_slots = g_pool;
  pol.spares_wanted = g_pool;
  pol.max_lifetime_ms = 0;
  pol.idle_timeout_ms = 0;
  pol.max_waiters = 4096;
  if ((rc = qorb_static_resolver_new(&r, HOST ":" PG_PORT, err, sizeof(err))) ||
      (rc = qorb_pg_connector_new(&conn, &o, err, sizeof(err)))) {
    fprintf(stderr, "pg_bench: %s %s\n", qorb_strerror(rc), err);
    return NULL;
  }
  rc = qorb_pool_new(&pool, NULL, &pol, r, conn, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "pg_bench: pool: %s %s\n", qorb_strerror(rc), err);
    qorb_resolver_free(r);
    qorb_connector_free(conn);
    return NULL;
  }
  /* Measure a full pool: wait (bounded) until every slot is idle. */
  bench_wait_idle("pg_bench", pool, g_pool, 10000, NULL);
  return pool;
}

static int run_point(path_t path, unsigned nclients, result_t *res) {
  point_t *pt = calloc(1, sizeof(*pt));
  bench_hist_t *lat = calloc(1, sizeof(*lat)), *rel = calloc(1, sizeof(*rel));
  unsigned i;
  uint64_t window_ns = 0, ops = 0, errors = 0;
  const char *first_error = NULL;
  int rc = -1;

  memset(res, 0, sizeof(*res));
  if (!pt || !lat || !rel) goto out;
  pt->path = path;
  pt->nclients = nclients;
  if (path == P_QORB_NONE || path == P_QORB_DISCARD) {
    pt->pool = make_pool(path == P_QORB_DISCARD);
    if (!pt->pool) goto out;
  }
  for (i = 0; i < nclients; i++) {
    client_t *c = &pt->clients[i];
    c->pt = pt;
    c->lat = calloc(1, sizeof(bench_hist_t));
    c->rel = calloc(1, sizeof(bench_hist_t));
    if (!c->lat || !c->rel) goto join;
    if (path == P_DIRECT || path == P_BOUNCER) {
      c->conn = PQconnectdb(path == P_DIRECT
                                ? "hostaddr=" HOST " port=" PG_PORT
                                  " user=postgres dbname=postgres"
                                  " application_name=qorb_bench_direct"
                                : "hostaddr=" HOST " port=" BOUNCER_PORT
                                  " user=postgres dbname=postgres");
      if (PQstatus(c->conn) != CONNECTION_OK) {
        fprintf(stderr, "pg_bench: %s connection: %s", path_name[path],
                PQerrorMessage(c->conn));
        goto join;
      }
    }
  }
  /* Warm up (caches, PgBouncer's server connections), then measure. */
  rc = bench_run_threads(&pt->run, nclients, client_main, pt->clients,
                         sizeof(pt->clients[0]), g_warmup, g_seconds,
                         &interrupted, &window_ns);
join:
  for (i = 0; i < nclients; i++) {
    client_t *c = &pt->clients[i];
    if (c->lat)
      bench_hist_merge(lat, c->lat);
    if (c->rel)
      bench_hist_merge(rel, c->rel);
    ops += c->ops;
    errors += c->errors;
    if (c->errors && !first_error) first_error = c->first_error;
    if (c->conn) PQfinish(c->conn);
  }
  if (first_error)
    fprintf(stderr, "pg_bench: %s: %llu errors, first: %s\n", path_name[path],
            (unsigned long long)errors, first_error);
  if (rc == 0) {
    res->ran = 1;
    res->tps = (double)ops / ((double)window_ns / 1e9);
    res->p50_us = bench_hist_pct(lat, 50);
    res->p99_us = bench_hist_pct(lat, 99);
    res->rel_p50_us = bench_hist_pct(rel, 50);
    res->rel_p99_us = bench_hist_pct(rel, 99);
    res->rel_max_us = (double)rel->max_ns / 1000.0;
    res->errors = errors;
  }
  for (i = 0; i < nclients; i++) {
    free(pt->clients[i].lat);
    free(pt->clients[i].rel);
  }
  if (pt->pool) qorb_pool_close(pt->pool, NULL, NULL);
out:
  free(pt);
  free(lat);
  free(rel);
  return rc;
}

static void usage(void) {
  fprintf(stderr,
          "usage: pg_bench [--seconds S] [--warmup S] [--clients 1,8,32] "
          "[--pool N]\n"
          "Starts PostgreSQL (127.0.0.2:55438) and PgBouncer "
          "(127.0.0.2:56432) in a folder under /tmp and stops them.\n");
}

int main(int argc, char **argv) {
  unsigned clients[MAX_POINTS] = {1, 8, 32}, nclients = 3, i;
  int p, failed = 0;
  result_t res[MAX_POINTS][P_COUNT];
  struct sigaction sa;

  for (p = 1; p < argc; p++) {
    const char *v = p + 1 < argc ? argv[p + 1] : NULL;
    if (strcmp(argv[p], "--seconds") == 0 && v) {
      g_seconds = atof(argv[++p]);
      if (g_seconds < 0.05 || g_seconds > 60) return usage(), 2;
    } else if (strcmp(argv[p], "--warmup") == 0 && v) {
      g_warmup = atof(argv[++p]);
      if (g_warmup < 0 || g_warmup > 10) return usage(), 2;
    } else if (strcmp(argv[p], "--clients") == 0 && v) {
      if (bench_parse_list(argv[++p], clients, MAX_POINTS, MAX_CLIENTS,
                           &nclients) != 0)
        return usage(), 2;
    } else if (strcmp(argv[p], "--pool") == 0 && v) {
      g_pool = (unsigned)atoi(argv[++p]);
      if (g_pool < 1 || g_pool > 64) return usage(), 2;
    } else {
      usage();
      return 2;
    }
  }

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  snprintf(bench_dir, sizeof(bench_dir), "/tmp/qorb-pg-bench.XXXXXX");
  if (!mkdtemp(bench_dir)) {
    perror("pg_bench: mkdtemp");
    return 1;
  }
  servers_up = 1;
  atexit(stop_servers);
  if (servers("start") != 0) {
    fprintf(stderr, "pg_bench: could not start the servers\n");
    return 1;
  }

  memset(res, 0, sizeof(res));
  for (i = 0; i < nclients && !interrupted; i++) {
    for (p = 0; p < P_COUNT && !interrupted; p++) {
      result_t *r = &res[i][p];
      if (run_point((path_t)p, clients[i], r) != 0) {
        fprintf(stderr, "pg_bench: %s clients=%u did not run\n",
                path_name[p], clients[i]);
        failed = 1;
        continue;
      }
      printf("bench=pg path=%s reset=%s clients=%u tps=%.0f p50_us=%.0f "
             "p99_us=%.0f",
             path_name[p], path_reset[p], clients[i], r->tps, r->p50_us,
             r->p99_us);
      if (r->errors) printf(" errors=%llu", (unsigned long long)r->errors);
      printf("\n");
      fflush(stdout);
    }
  }
  stop_servers();
  if (interrupted) return 130;

  for (i = 0; i < nclients; i++) {
    result_t *d = &res[i][P_DIRECT], *qn = &res[i][P_QORB_NONE],
             *qd = &res[i][P_QORB_DISCARD], *b = &res[i][P_BOUNCER];
    double over_direct, over_bouncer, discard_ratio;
    if (!d->ran || !qn->ran || !qd->ran || !b->ran) continue;
    over_direct = qn->tps / d->tps;
    over_bouncer = qn->tps / b->tps;
    discard_ratio = qd->tps / qn->tps;
    /* With reset=discard the releasing thread only hands the connection
       to the pool loop; the DISCARD ALL round trip is not in these. */
    printf("bench=pg-release reset=discard clients=%u release_p50_us=%.1f "
           "release_p99_us=%.1f release_max_us=%.0f query_p50_us=%.0f\n",
           clients[i], qd->rel_p50_us, qd->rel_p99_us, qd->rel_max_us,
           d->p50_us);
    printf("bench=pg-ratio clients=%u qorb_over_direct=%.2f "
           "qorb_over_pgbouncer=%.2f discard_over_none=%.2f "
           "discard_loss_pct=%.0f goal_direct=%s goal_pgbouncer=%s\n",
           clients[i], over_direct, over_bouncer, discard_ratio,
           (1.0 - discard_ratio) * 100.0, over_direct >= 0.95 ? "met" : "MISSED",
           clients[i] < 8 ? "n/a" : over_bouncer >= 2.0 ? "met" : "MISSED");
  }
  return failed ? 1 : 0;
}
