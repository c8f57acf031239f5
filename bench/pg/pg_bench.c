/* SPDX-License-Identifier: MIT */
/*
 * pg_bench.c: SELECT 1 round trips per second and their latency, N client
 * threads, three ways to reach the same PostgreSQL server:
 *
 *   direct        each client on a dedicated connection of its own (PQexec)
 *   qorb-none     a qorb-pg pool of 8 on its own thread; each round trip is
 *                 claim_wait + PQexec + release, reset_sql = NULL: nothing
 *                 to clean, the release is the lock-free fast path (the
 *                 same work PgBouncer's transaction mode does)
 *   qorb-discard  the same with the default DISCARD ALL after every
 *                 release, run by the pool loop, not by the releasing thread
 *   qorb-hooked   qorb-none with a before_acquire and an after_release hook
 *                 that only look at the connection (PQtransactionStatus)
 *                 and keep it: what the hooks themselves cost, every
 *                 release going through the pool loop
 *   pgbouncer     PgBouncer in transaction mode with a pool of 8 (PQexec on
 *                 a connection to PgBouncer per client)
 *
 * It starts its own PostgreSQL and PgBouncer on loopback (bench_servers.sh,
 * in a folder under /tmp) once, and stops them at the end.
 *
 * This machine's speed drifts by tens of percent from one second to the
 * next, so a point is not one long window per path: per client count the
 * same N threads, after a warm-up of every path, run `--rounds` short rounds
 * of each path, alternating them in ABBA order (direct, qorb-none,
 * qorb-discard, qorb-hooked, pgbouncer, then the reverse), and the figures
 * are medians
 * over rounds. A ratio is the median of the per-round ratios: the two paths
 * of a pair ran within the same second. One line per point:
 *
 *   bench=pg path=<direct|qorb|qorb-hooked|pgbouncer> reset=<none|discard>
 *       clients=N
 *       tps=X p50_us=Y p99_us=Z rounds=R timeouts=T errors=E
 *       [wait_max_ms=W] min_share=A max_share=B starved=K
 *       check=ok|noisy|FAILED
 *
 * then, per client count, the release cost with reset=discard and the
 * ratios against the goals (qorb reset=none >= 0.95x direct and >= 2x
 * PgBouncer at 8 and 32 clients; reset=discard >= 0.6x reset=none at 16),
 * (with qorb-hooked: hooked_over_none, not a goal), and at the end
 *
 *   bench=pg summary goals_met=M goals_missed=K checks=ok|FAILED noisy=P
 *       elapsed_s=T
 *
 * It exits 1 when a check FAILED. See README.md.
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
#include <dirent.h>
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
#define MAX_ROUNDS 50
/* A claim that waits this long has failed: a round trip takes ~100 us. */
#define CLAIM_TIMEOUT_MS 1000

typedef enum path {
  P_DIRECT = 0,
  P_QORB_NONE,
  P_QORB_DISCARD,
  P_QORB_HOOKED,
  P_BOUNCER,
  P_COUNT
} path_t;

/* --paths names, then the output line's path= and reset= fields. */
static const char *const path_opt[P_COUNT] = {
    "direct", "qorb-none", "qorb-discard", "qorb-hooked", "pgbouncer"};
static const char *const path_name[P_COUNT] = {"direct", "qorb", "qorb",
                                               "qorb-hooked", "pgbouncer"};
static const char *const path_reset[P_COUNT] = {"none", "none", "discard",
                                                "none", "none"};

static int is_qorb(int p) {
  return p == P_QORB_NONE || p == P_QORB_DISCARD || p == P_QORB_HOOKED;
}

/*
 * One client thread. What it counts is this round's; the main thread reads
 * and resets it between rounds, while the client is parked on the barrier.
 */
typedef struct client {
  PGconn *conn[P_COUNT]; /* direct and pgbouncer: its own connections */
  bench_hist_t *lat, *rel;
  uint64_t ops, timeouts, errors;
  uint64_t wait_max_ns; /* the longest successful claim wait */
  char first_error[160];
  uint64_t total_ops[P_COUNT]; /* all measured rounds, for the shares */
} client_t;

/* One path at one client count, over its rounds. */
typedef struct acc {
  unsigned nrounds;
  double tps[MAX_ROUNDS], p50[MAX_ROUNDS], p99[MAX_ROUNDS];
  uint64_t timeouts, errors, wait_max_ns;
  bench_hist_t *rel; /* qorb: the release call, all rounds */
  uint64_t ops_total;     /* round trips of the measured rounds */
  uint64_t server_cpu_ns; /* PostgreSQL's CPU time over those rounds */
} acc_t;

static volatile sig_atomic_t interrupted;
static char bench_dir[256];
static int servers_up;
static double g_seconds = 5.0, g_warmup = 0.5;
static unsigned g_pool = 8, g_rounds = 10;
static int g_verbose;
static unsigned g_noisy; /* points whose check said "noisy" */
static qorb_pool_t *g_pools[P_COUNT]; /* the qorb paths' pools */
static bench_group_t *g_group;        /* the client threads of a point */

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

/* One round of `path` for one client: round trips until told to stop. */
static void client_round(void *arg, int path) {
  client_t *c = arg;
  uint64_t i;
  /* Bounded by the stop flag and, as a backstop, by a count no round of a
     few seconds gets near. */
  for (i = 0; i < 100000000u && !bench_group_stopping(g_group); i++) {
    uint64_t t0 = bench_now_ns(), t1, t2;
    if (is_qorb(path)) {
      qorb_claim_t *cl;
      int rc = qorb_pool_claim_wait(g_pools[path], CLAIM_TIMEOUT_MS, &cl);
      t1 = bench_now_ns();
      if (rc == QORB_EALLINUSE || rc == QORB_ETIMEDOUT) {
        c->timeouts++;
        continue;
      }
      if (rc != 0) {
        client_error(c, "claim", qorb_strerror(rc));
        bench_nap_ms(1);
        continue;
      }
      if (t1 - t0 > c->wait_max_ns)
        c->wait_max_ns = t1 - t0;
      if (select1(qorb_pg_conn(cl)) != 0) {
        client_error(c, "query", PQerrorMessage(qorb_pg_conn(cl)));
        qorb_release_broken(cl);
        continue;
      }
      t1 = bench_now_ns();
      qorb_release(cl);
      t2 = bench_now_ns();
      bench_hist_add(c->rel, t2 - t1);
    } else {
      if (select1(c->conn[path]) != 0) {
        client_error(c, "query", PQerrorMessage(c->conn[path]));
        bench_nap_ms(1);
        continue;
      }
      t2 = bench_now_ns();
    }
    bench_hist_add(c->lat, t2 - t0);
    c->ops++;
  }
}

/* qorb-hooked's before_acquire and after_release: keep an idle connection
   (the cheapest hook there is, answered before it returns). */
static int look_hook(void *arg, qorb_op_t *op, void *conn) {
  PGconn *pg = qorb_pg_hook_conn(conn);
  (void)arg;
  qorb_op_done(op, pg != NULL && PQtransactionStatus(pg) == PQTRANS_IDLE
                       ? 0
                       : QORB_EREJECTED);
  return 0;
}

static qorb_pool_t *make_pool(int path) {
  int discard = path == P_QORB_DISCARD;
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
  pol.name = discard ? "bench-discard"
                     : path == P_QORB_HOOKED ? "bench-hooked" : "bench-none";
  if (path == P_QORB_HOOKED) pol.before_acquire = pol.after_release = look_hook;
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
  if (bench_wait_idle("pg_bench", pool, g_pool, 10000, NULL) != 0) {
    qorb_pool_close(pool, NULL, NULL);
    return NULL;
  }
  return pool;
}

/*
 * The CPU time (user + system) that the benchmark's PostgreSQL has used so
 * far: its postmaster and every process it started (the backends), from
 * /proc. What a path costs the server per round trip is the difference
 * over its rounds divided by its round trips. 0 when it cannot be read.
 */
static uint64_t server_cpu_ns(void) {
  char path[320], buf[512];
  long pm = 0, hz = sysconf(_SC_CLK_TCK);
  uint64_t ticks = 0;
  FILE *f;
  DIR *d;
  struct dirent *e;

  snprintf(path, sizeof(path), "%s/data/postmaster.pid", bench_dir);
  if ((f = fopen(path, "r")) == NULL) return 0;
  if (fscanf(f, "%ld", &pm) != 1) pm = 0;
  fclose(f);
  if (pm <= 0 || hz <= 0 || (d = opendir("/proc")) == NULL) return 0;
  while ((e = readdir(d)) != NULL) {
    long pid = strtol(e->d_name, NULL, 10), ppid = 0;
    unsigned long long ut = 0, st = 0;
    const char *q;
    if (pid <= 0) continue;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if ((f = fopen(path, "r")) == NULL) continue;
    q = fgets(buf, sizeof(buf), f);
    fclose(f);
    /* After "pid (comm) ": state ppid ... utime (14th) stime (15th). */
    if (q == NULL || (q = strrchr(buf, ')')) == NULL) continue;
    if (sscanf(q + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ppid, &ut, &st) != 3)
      continue;
    if (pid == pm || ppid == pm) ticks += ut + st;
  }
  closedir(d);
  return ticks * (1000000000ull / (uint64_t)hz);
}

/*
 * After a round: take what every client counted into `a` (when `keep`;
 * warm-up rounds are dropped) and reset it. `scratch` is a histogram the
 * round's latencies are merged into for its percentiles.
 */
static void collect(client_t *cs, unsigned n, int path, uint64_t window_ns,
                    int keep, acc_t *a, bench_hist_t *scratch,
                    unsigned round) {
  uint64_t ops = 0;
  unsigned i;
  double tps;

  memset(scratch, 0, sizeof(*scratch));
  for (i = 0; i < n; i++) {
    client_t *c = &cs[i];
    if (keep) {
      bench_hist_merge(scratch, c->lat);
      if (a->rel != NULL)
        bench_hist_merge(a->rel, c->rel);
      ops += c->ops;
      c->total_ops[path] += c->ops;
      a->timeouts += c->timeouts;
      a->errors += c->errors;
      if (c->wait_max_ns > a->wait_max_ns)
        a->wait_max_ns = c->wait_max_ns;
    }
    memset(c->lat, 0, sizeof(*c->lat));
    memset(c->rel, 0, sizeof(*c->rel));
    c->ops = c->timeouts = c->errors = c->wait_max_ns = 0;
  }
  if (!keep || a->nrounds >= MAX_ROUNDS)
    return;
  a->ops_total += ops;
  tps = window_ns ? (double)ops * 1e9 / (double)window_ns : 0.0;
  a->tps[a->nrounds] = tps;
  a->p50[a->nrounds] = bench_hist_pct(scratch, 50);
  a->p99[a->nrounds] = bench_hist_pct(scratch, 99);
  a->nrounds++;
  if (g_verbose)
    printf("# round=%u path=%s clients=%u tps=%.0f p50_us=%.0f p99_us=%.0f\n",
           round, path_opt[path], n, tps, bench_hist_pct(scratch, 50),
           bench_hist_pct(scratch, 99));
}

/* Median of a[x] / b[y] over the rounds both ran; 0 when none did. */
static double ratio_median(const acc_t *x, const acc_t *y) {
  double r[MAX_ROUNDS];
  unsigned k, n = 0;
  for (k = 0; k < x->nrounds && k < y->nrounds; k++)
    if (y->tps[k] > 0)
      r[n++] = x->tps[k] / y->tps[k];
  return bench_median(r, n);
}

/*
 * A point's verdict: FAILED for a claim that timed out or waited longer
 * than its timeout, an error, or a qorb client outside [mean / 2, 2 x mean];
 * "noisy" when only a direct or pgbouncer client was: each has its own
 * connection there, so only the scheduler can have starved it (the machine
 * was too busy for the figures, the pool is not involved).
 */
static const char *point_check(int path, uint64_t timeouts, uint64_t errors,
                               uint64_t wait_max_ns, unsigned starved) {
  if (timeouts || errors ||
      wait_max_ns > (uint64_t)CLAIM_TIMEOUT_MS * 1000000u)
    return "FAILED";
  if (starved) return is_qorb(path) ? "FAILED" : "noisy";
  return "ok";
}

static const char *goal(int applies, int ran, double v, double want) {
  if (!applies) return "n/a";
  if (!ran) return "not-run";
  return v >= want ? "met" : "MISSED";
}

/*
 * One client count: open the connections, start the threads, warm every
 * enabled path up, run the rounds, print. Returns 0, or 1 when a check
 * failed (timeouts, errors, a starved client), -1 when it could not run.
 */
static int run_clients(unsigned n, const int *enabled, unsigned *goals_met,
                       unsigned *goals_missed) {
  client_t *cs = calloc(n, sizeof(*cs));
  acc_t *acc = calloc(P_COUNT, sizeof(*acc));
  bench_hist_t *scratch = calloc(1, sizeof(*scratch));
  uint64_t ops[MAX_CLIENTS];
  unsigned i, k, j;
  int p, rc = -1, failed = 0;

  if (cs == NULL || acc == NULL || scratch == NULL) goto out;
  for (p = 0; p < P_COUNT; p++)
    if (enabled[p] && is_qorb(p) &&
        (acc[p].rel = calloc(1, sizeof(bench_hist_t))) == NULL)
      goto out;
  for (i = 0; i < n; i++) {
    client_t *c = &cs[i];
    c->lat = calloc(1, sizeof(bench_hist_t));
    c->rel = calloc(1, sizeof(bench_hist_t));
    if (!c->lat || !c->rel) goto out;
    for (p = 0; p < P_COUNT; p++) {
      if (!enabled[p] || is_qorb(p)) continue;
      c->conn[p] = PQconnectdb(p == P_DIRECT
                                   ? "hostaddr=" HOST " port=" PG_PORT
                                     " user=postgres dbname=postgres"
                                     " application_name=qorb_bench_direct"
                                   : "hostaddr=" HOST " port=" BOUNCER_PORT
                                     " user=postgres dbname=postgres");
      if (PQstatus(c->conn[p]) != CONNECTION_OK) {
        fprintf(stderr, "pg_bench: %s connection: %s", path_opt[p],
                PQerrorMessage(c->conn[p]));
        goto out;
      }
    }
  }
  g_group = bench_group_start(n, client_round, cs, sizeof(cs[0]));
  if (g_group == NULL) goto out;

  /* Warm up (caches, PgBouncer's server connections), not counted. */
  for (p = 0; p < P_COUNT && g_warmup > 0 && !interrupted; p++) {
    if (!enabled[p]) continue;
    collect(cs, n, p, bench_group_round(g_group, p, g_warmup), 0, &acc[p],
            scratch, 0);
    if (is_qorb(p))
      bench_wait_idle("pg_bench", g_pools[p], g_pool, 2000, NULL);
  }
  for (k = 0; k < g_rounds && !interrupted; k++) {
    for (j = 0; j < P_COUNT; j++) {
      /* ABBA: the paths in order in even rounds, reversed in odd ones. */
      uint64_t cpu0;
      p = (int)(k % 2 == 0 ? j : P_COUNT - 1 - j);
      if (!enabled[p]) continue;
      cpu0 = server_cpu_ns();
      collect(cs, n, p, bench_group_round(g_group, p, g_seconds / g_rounds),
              1, &acc[p], scratch, k);
      /* A DISCARD ALL still running would load the next round's path. */
      if (is_qorb(p) &&
          bench_wait_idle("pg_bench", g_pools[p], g_pool, 2000, NULL) != 0)
        failed = 1;
      /* The server's share of the round, its reset included. */
      acc[p].server_cpu_ns += server_cpu_ns() - cpu0;
    }
  }
  bench_group_stop(g_group);
  g_group = NULL;
  for (i = 0; i < n; i++)
    if (cs[i].first_error[0])
      fprintf(stderr, "pg_bench: clients=%u client %u: first error: %s\n", n,
              i, cs[i].first_error);
  if (interrupted) goto out;

  for (p = 0; p < P_COUNT; p++) {
    acc_t *a = &acc[p];
    double min_share, max_share;
    unsigned starved;
    const char *check;
    if (!enabled[p]) continue;
    for (i = 0; i < n; i++) ops[i] = cs[i].total_ops[p];
    starved = bench_shares(ops, n, &min_share, &max_share);
    check = point_check(p, a->timeouts, a->errors, a->wait_max_ns, starved);
    if (strcmp(check, "FAILED") == 0) failed = 1;
    if (strcmp(check, "noisy") == 0) g_noisy++;
    printf("bench=pg path=%s reset=%s clients=%u tps=%.0f p50_us=%.0f "
           "p99_us=%.0f rounds=%u timeouts=%llu errors=%llu",
           path_name[p], path_reset[p], n, bench_median(a->tps, a->nrounds),
           bench_median(a->p50, a->nrounds), bench_median(a->p99, a->nrounds),
           a->nrounds, (unsigned long long)a->timeouts,
           (unsigned long long)a->errors);
    if (is_qorb(p))
      printf(" wait_max_ms=%.1f", (double)a->wait_max_ns / 1e6);
    if (a->ops_total > 0 && a->server_cpu_ns > 0)
      printf(" server_cpu_us=%.1f",
             (double)a->server_cpu_ns / 1e3 / (double)a->ops_total);
    printf(" min_share=%.2f max_share=%.2f starved=%u check=%s\n", min_share,
           max_share, starved, check);
  }
  if (enabled[P_QORB_DISCARD]) {
    /* With reset=discard the releasing thread only hands the connection
       to the pool loop; the DISCARD ALL round trip is not in these. */
    bench_hist_t *r = acc[P_QORB_DISCARD].rel;
    printf("bench=pg-release reset=discard clients=%u release_p50_us=%.1f "
           "release_p99_us=%.1f release_max_us=%.0f query_p50_us=%.0f\n",
           n, bench_hist_pct(r, 50), bench_hist_pct(r, 99),
           (double)r->max_ns / 1000.0,
           enabled[P_DIRECT]
               ? bench_median(acc[P_DIRECT].p50, acc[P_DIRECT].nrounds)
               : bench_median(acc[P_QORB_NONE].p50, acc[P_QORB_NONE].nrounds));
  }
  {
    int have_d = enabled[P_DIRECT] && enabled[P_QORB_NONE];
    int have_b = enabled[P_BOUNCER] && enabled[P_QORB_NONE];
    int have_r = enabled[P_QORB_DISCARD] && enabled[P_QORB_NONE];
    int have_h = enabled[P_QORB_HOOKED] && enabled[P_QORB_NONE];
    double over_d = have_d ? ratio_median(&acc[P_QORB_NONE], &acc[P_DIRECT]) : 0;
    double over_b =
        have_b ? ratio_median(&acc[P_QORB_NONE], &acc[P_BOUNCER]) : 0;
    double disc =
        have_r ? ratio_median(&acc[P_QORB_DISCARD], &acc[P_QORB_NONE]) : 0;
    double hooked =
        have_h ? ratio_median(&acc[P_QORB_HOOKED], &acc[P_QORB_NONE]) : 0;
    const char *gd = goal(n == 8 || n == 32, have_d, over_d, 0.95);
    const char *gb = goal(n == 8 || n == 32, have_b, over_b, 2.0);
    const char *gr = goal(n == 16, have_r, disc, 0.6);
    const char *gs[3];
    gs[0] = gd;
    gs[1] = gb;
    gs[2] = gr;
    for (i = 0; i < 3; i++) {
      if (strcmp(gs[i], "met") == 0) (*goals_met)++;
      if (strcmp(gs[i], "MISSED") == 0) (*goals_missed)++;
    }
    if (have_d || have_b || have_r || have_h) {
      printf("bench=pg-ratio clients=%u", n);
      if (have_d) printf(" qorb_over_direct=%.2f", over_d);
      if (have_b) printf(" qorb_over_pgbouncer=%.2f", over_b);
      if (have_r)
        printf(" discard_over_none=%.2f discard_loss_pct=%.0f", disc,
               (1.0 - disc) * 100.0);
      if (have_h) printf(" hooked_over_none=%.2f", hooked);
      printf(" goal_direct=%s goal_pgbouncer=%s goal_discard=%s\n", gd, gb,
             gr);
    }
  }
  fflush(stdout);
  rc = failed;

out:
  bench_group_stop(g_group);
  g_group = NULL;
  if (cs != NULL) {
    for (i = 0; i < n; i++) {
      for (p = 0; p < P_COUNT; p++)
        if (cs[i].conn[p]) PQfinish(cs[i].conn[p]);
      free(cs[i].lat);
      free(cs[i].rel);
    }
  }
  if (acc != NULL)
    for (p = 0; p < P_COUNT; p++) free(acc[p].rel);
  free(cs);
  free(acc);
  free(scratch);
  return rc;
}

/* "direct,qorb-none" and the like into enabled[]; 0, or -1 if malformed. */
static int parse_paths(const char *s, int *enabled) {
  char buf[256], *tok, *save = NULL;
  int p, any = 0;

  if (strlen(s) >= sizeof(buf)) return -1;
  memset(enabled, 0, sizeof(int) * P_COUNT);
  snprintf(buf, sizeof(buf), "%s", s);
  for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int hit = 0;
    for (p = 0; p < P_COUNT; p++) {
      if (strcmp(tok, path_opt[p]) == 0 || strcmp(tok, "all") == 0 ||
          (strcmp(tok, "qorb") == 0 && is_qorb(p))) {
        enabled[p] = 1;
        hit = 1;
      }
    }
    if (!hit) return -1;
    any = 1;
  }
  return any ? 0 : -1;
}

static void usage_to(FILE *out) {
  fprintf(out,
          "usage: pg_bench [--seconds S] [--rounds R] [--warmup S] "
          "[--clients 1,8,16,32]\n"
          "                [--pool N] [--paths LIST] [--verbose]\n"
          "  --seconds S   measured time per path and point, split into the "
          "rounds (default 5)\n"
          "  --rounds R    rounds per path, alternated ABBA; medians "
          "(default 10)\n"
          "  --warmup S    one unmeasured round of each path first (default "
          "0.5)\n"
          "  --paths LIST  any of direct,qorb-none,qorb-discard,qorb-hooked,"
          "pgbouncer;\n"
          "                qorb = the three qorb paths; all (the default)\n"
          "  --verbose     print every round's figures as # lines\n"
          "Starts PostgreSQL (127.0.0.2:55438) and PgBouncer "
          "(127.0.0.2:56432) in a folder under /tmp and stops them.\n");
}

static void usage(void) { usage_to(stderr); }

int main(int argc, char **argv) {
  unsigned clients[MAX_POINTS] = {1, 8, 16, 32}, nclients = 4, i;
  unsigned goals_met = 0, goals_missed = 0;
  int enabled[P_COUNT] = {1, 1, 1, 1, 1};
  int p, failed = 0;
  struct sigaction sa;
  double load[1];
  uint64_t t_start = bench_now_ns();

  for (p = 1; p < argc; p++) {
    const char *v = p + 1 < argc ? argv[p + 1] : NULL;
    if (strcmp(argv[p], "--seconds") == 0 && v) {
      g_seconds = atof(argv[++p]);
      if (g_seconds < 0.05 || g_seconds > 60) return usage(), 2;
    } else if (strcmp(argv[p], "--warmup") == 0 && v) {
      g_warmup = atof(argv[++p]);
      if (g_warmup < 0 || g_warmup > 10) return usage(), 2;
    } else if (strcmp(argv[p], "--rounds") == 0 && v) {
      int r = atoi(argv[++p]);
      if (r < 1 || r > MAX_ROUNDS) return usage(), 2;
      g_rounds = (unsigned)r;
    } else if (strcmp(argv[p], "--clients") == 0 && v) {
      if (bench_parse_list(argv[++p], clients, MAX_POINTS, MAX_CLIENTS,
                           &nclients) != 0)
        return usage(), 2;
    } else if (strcmp(argv[p], "--pool") == 0 && v) {
      g_pool = (unsigned)atoi(argv[++p]);
      if (g_pool < 1 || g_pool > 64) return usage(), 2;
    } else if (strcmp(argv[p], "--paths") == 0 && v) {
      if (parse_paths(argv[++p], enabled) != 0) return usage(), 2;
    } else if (strcmp(argv[p], "--verbose") == 0 || strcmp(argv[p], "-v") == 0) {
      g_verbose = 1;
    } else if (strcmp(argv[p], "--help") == 0 ||
               strcmp(argv[p], "-h") == 0) {
      usage_to(stdout);
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  if (g_seconds / g_rounds < 0.02) {
    fprintf(stderr, "pg_bench: rounds shorter than 20 ms; use fewer --rounds\n");
    return 2;
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
  for (p = 0; p < P_COUNT; p++) {
    if (!enabled[p] || !is_qorb(p)) continue;
    if ((g_pools[p] = make_pool(p)) == NULL) {
      fprintf(stderr, "pg_bench: no %s pool\n", path_opt[p]);
      failed = 1;
      goto done;
    }
  }

  if (getloadavg(load, 1) != 1) load[0] = -1;
  printf("# bench=pg seconds=%.2f rounds=%u round_s=%.3f warmup=%.2f pool=%u "
         "claim_timeout_ms=%d loadavg=%.2f\n",
         g_seconds, g_rounds, g_seconds / g_rounds, g_warmup, g_pool,
         CLAIM_TIMEOUT_MS, load[0]);
  fflush(stdout);
  for (i = 0; i < nclients && !interrupted; i++) {
    int rc = run_clients(clients[i], enabled, &goals_met, &goals_missed);
    if (rc < 0)
      fprintf(stderr, "pg_bench: clients=%u did not run\n", clients[i]);
    if (rc != 0) failed = 1;
  }
  if (!interrupted)
    printf("bench=pg summary goals_met=%u goals_missed=%u checks=%s "
           "noisy=%u elapsed_s=%.0f\n",
           goals_met, goals_missed, failed ? "FAILED" : "ok", g_noisy,
           (double)(bench_now_ns() - t_start) / 1e9);

done:
  for (p = 0; p < P_COUNT; p++)
    if (g_pools[p]) qorb_pool_close(g_pools[p], NULL, NULL);
  stop_servers();
  if (interrupted) return 130;
  return failed ? 1 : 0;
}
