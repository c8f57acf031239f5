/* SPDX-License-Identifier: MIT */
/*
 * pg_demo.c: qorb-pg-demo, a qorb-pg pool at work, for the README's demo
 * (tools/demo-pg.sh runs it against two throwaway PostgreSQL servers and
 * restarts one of them midway).
 *
 *   qorb-pg-demo --backends 127.0.0.2:55435,127.0.0.3:55436 \
 *                --conninfo "user=postgres dbname=postgres" \
 *                --seconds 12 --threads 4
 *
 * Worker threads claim, run a small transaction (PQexec), and release, as a
 * thread-per-request service would. Once a second the program prints the
 * pool's statistics, so that a restart shows as it happens: the backend's
 * sessions are terminated, the health checks and the claimants notice,
 * the backend goes offline (with libpq's words in last_error), claims move
 * to the other backend, and it comes back online on its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <qorb/pg.h>
#include <qorb/qorb.h>

#define DEMO_MAX_BACKENDS 16

typedef struct demo_opts {
  const char *backends;
  const char *conninfo;
  unsigned seconds;
  unsigned threads;
  unsigned think_ms;
  unsigned max_slots;
} demo_opts_t;

static demo_opts_t opts;
static atomic_int stop_now;
static volatile sig_atomic_t interrupted;
static atomic_ulong total_ok, query_err, claim_err;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

/* A small transaction, as a request handler would run it. */
static int one_request(PGconn *pg) {
  static const char *const steps[] = {
      "BEGIN", "SELECT count(*) FROM pg_stat_activity", "COMMIT"};
  size_t i;
  for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    PGresult *res = PQexec(pg, steps[i]);
    ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return -1;
  }
  return 0;
}

static qorb_pool_t *pool;

static void *work(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop_now, memory_order_relaxed)) {
    qorb_claim_t *claim;
    PGconn *pg;
    int rc = qorb_pool_claim_wait(pool, 1000, &claim);
    if (rc != 0) {
      atomic_fetch_add(&claim_err, 1);
      if (rc == QORB_ESHUTDOWN) break;
      sleep_ms(50); /* QORB_ENOTONLINE comes back at once: do not spin */
      continue;
    }
    pg = qorb_pg_conn(claim);
    if (one_request(pg) != 0) {
      /* Its session was killed (the restart): a plain release is enough,
         the pool sees PQstatus() and closes the connection. */
      atomic_fetch_add(&query_err, 1);
    } else {
      atomic_fetch_add(&total_ok, 1);
    }
    qorb_release(claim);
    if (opts.think_ms) sleep_ms(opts.think_ms);
  }
  return NULL;
}

static void cell(char *dst, size_t len, const char *src) {
  size_t n = strlen(src);
  if (n < len) {
    memcpy(dst, src, n + 1);
    return;
  }
  memcpy(dst, src, len - 4);
  memcpy(dst + len - 4, "...", 4);
}

static void print_stats(double elapsed, unsigned long *last_ok) {
  qorb_backend_stats_t be[DEMO_MAX_BACKENDS];
  qorb_pool_stats_t st;
  unsigned long ok = atomic_load(&total_ok);
  size_t n = 0, i;

  qorb_pool_stats_init(&st);
  if (qorb_pool_stats(pool, &st, be, DEMO_MAX_BACKENDS, &n) != 0) return;
  printf("[%5.1fs] transactions %lu (+%lu), failed %lu, claim failures %lu\n",
         elapsed, ok, ok - *last_ok, (unsigned long)atomic_load(&query_err),
         (unsigned long)atomic_load(&claim_err));
  *last_ok = ok;
  printf("  pool: %u/%u backends online; slots connecting %u idle %u "
         "checking %u claimed %u; waiters %u\n",
         st.backends_online, st.backends, st.connecting, st.idle, st.checking,
         st.claimed, st.waiters);
  printf("  %-20s %-6s %4s %4s %4s %4s %8s %5s  %s\n", "backend", "online",
         "conn", "idle", "chk", "clm", "claims", "fails", "last error");
  for (i = 0; i < n && i < DEMO_MAX_BACKENDS; i++) {
    char err[72];
    cell(err, sizeof(err), be[i].last_error);
    printf("  %-20s %-6s %4u %4u %4u %4u %8llu %5llu  %s\n", be[i].addr.text,
           be[i].online ? "yes" : "NO", be[i].connecting, be[i].idle,
           be[i].checking, be[i].claimed, (unsigned long long)be[i].claims,
           (unsigned long long)be[i].failures, err);
  }
  fflush(stdout);
}

static int parse_uint(const char *s, unsigned min, unsigned max,
                      unsigned *out) {
  char *end;
  unsigned long v;
  errno = 0;
  v = strtoul(s, &end, 10);
  if (errno || !*s || *s == '-' || *end || v < min || v > max) return -1;
  *out = (unsigned)v;
  return 0;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: qorb-pg-demo --backends LIST [options]\n"
          "  --backends LIST   PostgreSQL servers, numeric host:port list\n"
          "  --conninfo STR    libpq template (default \"user=postgres "
          "dbname=postgres\")\n"
          "  --seconds N       run time (default 10)\n"
          "  --threads T       worker threads (default 4)\n"
          "  --think-ms M      pause between transactions (default 2)\n"
          "  --max-slots S     pool size (default 8)\n");
}

static int make_pool(void) {
  qorb_resolver_t *resolver = NULL;
  qorb_connector_t *connector = NULL;
  qorb_pg_options_t pgo;
  qorb_policy_t policy;
  char err[256] = "";
  int rc;

  rc = qorb_static_resolver_new(&resolver, opts.backends, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "qorb-pg-demo: --backends: %s\n",
            err[0] ? err : qorb_strerror(rc));
    return rc;
  }
  qorb_pg_options_init(&pgo);
  pgo.conninfo = opts.conninfo;
  rc = qorb_pg_connector_new(&connector, &pgo, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "qorb-pg-demo: --conninfo: %s\n",
            err[0] ? err : qorb_strerror(rc));
    qorb_resolver_free(resolver);
    return rc;
  }
  qorb_policy_init(&policy);
  policy.name = "pg-demo";
  policy.max_slots = opts.max_slots;
  policy.spares_wanted = opts.max_slots < 4 ? opts.max_slots : 4;
  policy.claim_timeout_ms = 1000;
  policy.connect_timeout_ms = 1000;
  policy.min_backoff_ms = 100;
  policy.max_backoff_ms = 1000;
  policy.health_interval_ms = 500;
  policy.health_check_timeout_ms = 500;
  policy.rebalance_interval_ms = 500;
  policy.failure_window_ms = 2000;
  rc = qorb_pool_new(&pool, NULL, &policy, resolver, connector, err,
                     sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "qorb-pg-demo: pool: %s %s\n", qorb_strerror(rc), err);
    qorb_resolver_free(resolver);
    qorb_connector_free(connector);
  }
  return rc;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"backends", required_argument, NULL, 'b'},
      {"conninfo", required_argument, NULL, 'c'},
      {"seconds", required_argument, NULL, 's'},
      {"threads", required_argument, NULL, 't'},
      {"think-ms", required_argument, NULL, 'k'},
      {"max-slots", required_argument, NULL, 'm'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  pthread_t tids[256];
  struct sigaction sa;
  unsigned long last_ok = 0, ok;
  unsigned i, started = 0, tick;
  double start, elapsed;
  int c;

  opts.conninfo = "user=postgres dbname=postgres application_name=qorb_demo";
  opts.seconds = 10;
  opts.threads = 4;
  opts.think_ms = 2;
  opts.max_slots = 8;
  while ((c = getopt_long(argc, argv, "b:c:s:t:k:m:h", longopts, NULL)) !=
         -1) {
    int bad = 0;
    switch (c) {
      case 'b': opts.backends = optarg; break;
      case 'c': opts.conninfo = optarg; break;
      case 's': bad = parse_uint(optarg, 1, 86400, &opts.seconds); break;
      case 't': bad = parse_uint(optarg, 1, 256, &opts.threads); break;
      case 'k': bad = parse_uint(optarg, 0, 10000, &opts.think_ms); break;
      case 'm': bad = parse_uint(optarg, 1, 1024, &opts.max_slots); break;
      case 'h': usage(stdout); return 0;
      default: bad = 1; break;
    }
    if (bad) {
      usage(stderr);
      return 2;
    }
  }
  if (optind != argc || !opts.backends) {
    usage(stderr);
    return 2;
  }

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  if (make_pool() != 0) return 1;
  printf("qorb %s: pool \"%s\" over %s, %u threads, %u s\n",
         qorb_version_string(), qorb_pool_name(pool), opts.backends,
         opts.threads, opts.seconds);
  start = now_s();
  for (i = 0; i < opts.threads; i++) {
    if (pthread_create(&tids[i], NULL, work, NULL) != 0) break;
    started++;
  }
  for (tick = 1; started > 0 && tick <= opts.seconds && !interrupted;
       tick++) {
    double wake = start + tick, left;
    while (!interrupted && (left = wake - now_s()) > 0)
      sleep_ms(left > 0.1 ? 100 : (unsigned)(left * 1000) + 1);
    if (interrupted) break;
    print_stats(now_s() - start, &last_ok);
  }
  atomic_store(&stop_now, 1);
  for (i = 0; i < started; i++) pthread_join(tids[i], NULL);
  elapsed = now_s() - start;
  printf("final:\n");
  print_stats(elapsed, &last_ok);
  qorb_pool_close(pool, NULL, NULL);
  ok = atomic_load(&total_ok);
  printf("totals: %lu transactions in %.1f s (%.0f/s), %lu failed, %lu "
         "claim failures\npool closed\n",
         ok, elapsed, elapsed > 0 ? (double)ok / elapsed : 0.0,
         (unsigned long)atomic_load(&query_err),
         (unsigned long)atomic_load(&claim_err));
  return ok > 0 ? 0 : 1;
}
