/* SPDX-License-Identifier: MIT */
/*
 * echo_demo.c: qorb-echo-demo, a pool at work against echo servers.
 *
 *   qorb-echo-demo --backends 127.0.0.1:47001,127.0.0.2:47001 \
 *                  --seconds 12 --threads 4
 *
 * It builds a pool over the static resolver and the example echo
 * connector, on a loop thread the pool owns (loop NULL), and runs worker
 * threads that do what a thread-per-request service does: claim (blocking,
 * with a timeout), one request/response, release. Once a second it prints
 * the pool's statistics, so that a backend being stopped and restarted
 * (tools/demo.sh does that) shows up as it happens: the slot set goes
 * offline, claims move to the other backends, the probing slot backs off,
 * and the backend comes back online when it returns.
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

#include <qorb/qorb.h>

#include "echo_connector.h"

#define DEMO_MAX_BACKENDS 16
#define DEMO_MAX_CODES 16 /* distinct error codes counted per worker */

typedef struct demo_opts {
  const char *backends;
  unsigned seconds;
  unsigned threads;
  unsigned think_ms;
  unsigned max_slots;
} demo_opts_t;

typedef struct demo_err {
  int code;
  unsigned long count;
} demo_err_t;

typedef struct demo_worker {
  pthread_t thread;
  unsigned id;
  qorb_pool_t *pool;
  const demo_opts_t *opts;
  /* Written by the worker only; read by main after the join. */
  demo_err_t errs[DEMO_MAX_CODES];
  unsigned long other_errs; /* codes beyond the table */
} demo_worker_t;

static atomic_int stop_now;             /* the workers' stop signal */
static volatile sig_atomic_t interrupted; /* SIGINT / SIGTERM seen */
static atomic_ulong total_ok, total_err, claim_err;

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

static void count_err(demo_worker_t *w, int code) {
  unsigned i;

  for (i = 0; i < DEMO_MAX_CODES; i++) {
    if (w->errs[i].count == 0) w->errs[i].code = code;
    if (w->errs[i].code == code) {
      w->errs[i].count++;
      return;
    }
  }
  w->other_errs++;
}

/*
 * One worker: claim, round trip, release, until told to stop. This is the
 * whole of what an application thread does with the pool.
 */
static void *worker_main(void *arg) {
  demo_worker_t *w = arg;
  unsigned long n = 0;

  while (!atomic_load_explicit(&stop_now, memory_order_relaxed)) {
    char msg[64], reply[64];
    qorb_claim_t *claim;
    int rc;

    /* Wait up to a second for a connection. Failing claims say why: no
     * backend known, none online (at once, when every backend has
     * failed), or all in use (after the timeout). */
    rc = qorb_pool_claim_wait(w->pool, 1000, &claim);
    if (rc != 0) {
      count_err(w, rc);
      atomic_fetch_add_explicit(&claim_err, 1, memory_order_relaxed);
      if (rc == QORB_ESHUTDOWN) break;
      /* QORB_ENOTONLINE comes back at once: do not spin on it. */
      sleep_ms(50);
      continue;
    }

    snprintf(msg, sizeof(msg), "worker %u request %lu", w->id, n++);
    rc = echo_roundtrip(claim, msg, reply, sizeof(reply), 1000);

    /* Release even after a failure: the connector marked the connection
     * broken, its needs_recycle says so, and the pool closes it instead
     * of handing it out again. (qorb_release_broken() says the same
     * thing explicitly.) */
    qorb_release(claim);

    if (rc != 0) {
      count_err(w, rc);
      atomic_fetch_add_explicit(&total_err, 1, memory_order_relaxed);
    } else {
      atomic_fetch_add_explicit(&total_ok, 1, memory_order_relaxed);
    }
    if (w->opts->think_ms > 0) sleep_ms(w->opts->think_ms);
  }
  return NULL;
}

/* Squeeze a possibly long error text into a table cell. */
static void cell(char *dst, size_t len, const char *src) {
  size_t n = strlen(src);

  if (n < len) {
    memcpy(dst, src, n + 1);
    return;
  }
  memcpy(dst, src, len - 4);
  memcpy(dst + len - 4, "...", 4);
}

static void print_stats(qorb_pool_t *pool, double elapsed,
                        unsigned long *last_ok) {
  qorb_backend_stats_t be[DEMO_MAX_BACKENDS];
  qorb_pool_stats_t st;
  unsigned long ok = atomic_load(&total_ok);
  size_t n = 0, i;

  qorb_pool_stats_init(&st);
  if (qorb_pool_stats(pool, &st, be, DEMO_MAX_BACKENDS, &n) != 0) {
    printf("[%5.1fs] stats unavailable\n", elapsed);
    return;
  }
  printf("[%5.1fs] round trips %lu (+%lu), errors %lu, claim failures %lu\n",
         elapsed, ok, ok - *last_ok, (unsigned long)atomic_load(&total_err),
         (unsigned long)atomic_load(&claim_err));
  *last_ok = ok;
  printf("  pool: %u/%u backends online; slots connecting %u idle %u "
         "checking %u claimed %u; waiters %u; claims %llu; timeouts %llu\n",
         st.backends_online, st.backends, st.connecting, st.idle, st.checking,
         st.claimed, st.waiters, (unsigned long long)st.claims,
         (unsigned long long)st.timeouts);
  printf("  %-22s %-6s %4s %4s %4s %4s %9s %6s  %s\n", "backend", "online",
         "conn", "idle", "chk", "clm", "claims", "fails", "last error");
  for (i = 0; i < n && i < DEMO_MAX_BACKENDS; i++) {
    char err[64];
    cell(err, sizeof(err), be[i].last_error);
    printf("  %-22s %-6s %4u %4u %4u %4u %9llu %6llu  %s\n", be[i].addr.text,
           be[i].online ? "yes" : "NO", be[i].connecting, be[i].idle,
           be[i].checking, be[i].claimed, (unsigned long long)be[i].claims,
           (unsigned long long)be[i].failures, err);
  }
  if (n > DEMO_MAX_BACKENDS)
    printf("  ... and %zu more backends\n", n - DEMO_MAX_BACKENDS);
  fflush(stdout);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: qorb-echo-demo --backends LIST [options]\n"
          "  --backends LIST   echo servers, e.g. 127.0.0.1:47001,[::1]:47001\n"
          "  --seconds N       run time (default 10)\n"
          "  --threads T       worker threads (default 4)\n"
          "  --think-ms M      pause between requests per worker (default 2)\n"
          "  --max-slots S     pool size over all backends (default 8)\n");
}

static int parse_uint(const char *s, unsigned min, unsigned max,
                      unsigned *out) {
  char *end;
  unsigned long v;

  errno = 0;
  v = strtoul(s, &end, 10);
  if (errno != 0 || *s == '\0' || *s == '-' || *end != '\0' || v < min ||
      v > max)
    return -1;
  *out = (unsigned)v;
  return 0;
}

static int parse_opts(int argc, char **argv, demo_opts_t *o) {
  static const struct option longopts[] = {
      {"backends", required_argument, NULL, 'b'},
      {"seconds", required_argument, NULL, 's'},
      {"threads", required_argument, NULL, 't'},
      {"think-ms", required_argument, NULL, 'k'},
      {"max-slots", required_argument, NULL, 'm'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;

  o->backends = NULL;
  o->seconds = 10;
  o->threads = 4;
  o->think_ms = 2;
  o->max_slots = 8;
  while ((c = getopt_long(argc, argv, "b:s:t:k:m:h", longopts, NULL)) != -1) {
    int bad = 0;
    switch (c) {
      case 'b': o->backends = optarg; break;
      case 's': bad = parse_uint(optarg, 1, 86400, &o->seconds); break;
      case 't': bad = parse_uint(optarg, 1, 256, &o->threads); break;
      case 'k': bad = parse_uint(optarg, 0, 10000, &o->think_ms); break;
      case 'm': bad = parse_uint(optarg, 1, 4096, &o->max_slots); break;
      case 'h': usage(stdout); exit(0);
      default: return -1;
    }
    if (bad) {
      fprintf(stderr, "qorb-echo-demo: bad value \"%s\"\n", optarg);
      return -1;
    }
  }
  if (optind != argc || o->backends == NULL) return -1;
  return 0;
}

/* Build the pool: a static resolver, the echo connector, a policy tuned
 * so that a demo of a few seconds shows failure and recovery. */
static int make_pool(const demo_opts_t *o, qorb_pool_t **pool) {
  qorb_resolver_t *resolver = NULL;
  qorb_connector_t *connector = NULL;
  qorb_policy_t policy;
  char err[256] = "";
  int rc;

  rc = qorb_static_resolver_new(&resolver, o->backends, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "qorb-echo-demo: --backends: %s\n",
            err[0] ? err : qorb_strerror(rc));
    return rc;
  }
  rc = echo_connector_new(&connector);
  if (rc != 0) {
    fprintf(stderr, "qorb-echo-demo: connector: %s\n", qorb_strerror(rc));
    qorb_resolver_free(resolver);
    return rc;
  }

  qorb_policy_init(&policy);
  policy.name = "echo-demo";
  policy.max_slots = o->max_slots;
  policy.spares_wanted = o->max_slots < 2 ? o->max_slots : 2;
  policy.claim_timeout_ms = 1000;
  policy.connect_timeout_ms = 1000;
  policy.min_backoff_ms = 100;  /* a dead backend is probed quickly... */
  policy.max_backoff_ms = 1000; /* ...and at least once a second */
  policy.health_interval_ms = 1000;
  policy.health_check_timeout_ms = 500;
  policy.rebalance_interval_ms = 500;
  /* Backends are ranked by their failures in this window; a short one lets
   * a restarted backend win its share of claims back within the demo. */
  policy.failure_window_ms = 2000;

  /* loop NULL: the pool runs its own loop thread, which suits a program
   * whose work happens on plain threads. */
  rc = qorb_pool_new(pool, NULL, &policy, resolver, connector, err,
                     sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "qorb-echo-demo: pool: %s%s%s\n", qorb_strerror(rc),
            err[0] ? ": " : "", err);
    /* On failure the resolver and connector are still ours. */
    qorb_resolver_free(resolver);
    qorb_connector_free(connector);
  }
  return rc;
}

int main(int argc, char **argv) {
  demo_worker_t *workers;
  demo_err_t errs[DEMO_MAX_CODES * 4];
  size_t nerrs = 0;
  unsigned long last_ok = 0, other = 0, ok, failed;
  struct sigaction sa;
  qorb_pool_t *pool;
  demo_opts_t opts;
  double start, elapsed;
  unsigned i, j, started = 0, tick;
  int rc;

  if (parse_opts(argc, argv, &opts) != 0) {
    usage(stderr);
    return 2;
  }

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  if (make_pool(&opts, &pool) != 0) return 1;
  printf("qorb %s: pool \"%s\" over %s, %u threads, %u s\n",
         qorb_version_string(), qorb_pool_name(pool), opts.backends,
         opts.threads, opts.seconds);

  workers = calloc(opts.threads, sizeof(*workers));
  if (workers == NULL) {
    fprintf(stderr, "qorb-echo-demo: out of memory\n");
    qorb_pool_close(pool, NULL, NULL);
    return 1;
  }
  start = now_s();
  for (i = 0; i < opts.threads; i++) {
    workers[i].id = i;
    workers[i].pool = pool;
    workers[i].opts = &opts;
    rc = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
    if (rc != 0) {
      fprintf(stderr, "qorb-echo-demo: thread: %s\n", strerror(rc));
      break;
    }
    started++;
  }

  /* Print once a second, on whole seconds from the start. */
  for (tick = 1; started > 0 && tick <= opts.seconds && !interrupted;
       tick++) {
    double wake = start + tick;
    double left;
    while (!interrupted && (left = wake - now_s()) > 0)
      sleep_ms(left > 0.1 ? 100 : (unsigned)(left * 1000) + 1);
    if (interrupted) break;
    print_stats(pool, now_s() - start, &last_ok);
  }

  atomic_store(&stop_now, 1);
  for (i = 0; i < started; i++) pthread_join(workers[i].thread, NULL);
  elapsed = now_s() - start;

  /* Merge the workers' error counts for the summary. */
  for (i = 0; i < started; i++) {
    other += workers[i].other_errs;
    for (j = 0; j < DEMO_MAX_CODES && workers[i].errs[j].count > 0; j++) {
      size_t k;
      for (k = 0; k < nerrs && errs[k].code != workers[i].errs[j].code; k++)
        ;
      if (k == nerrs) {
        if (nerrs == sizeof(errs) / sizeof(errs[0])) {
          other += workers[i].errs[j].count;
          continue;
        }
        errs[nerrs].code = workers[i].errs[j].code;
        errs[nerrs++].count = 0;
      }
      errs[k].count += workers[i].errs[j].count;
    }
  }
  free(workers);

  printf("final:\n");
  print_stats(pool, elapsed, &last_ok);
  rc = qorb_pool_close(pool, NULL, NULL);
  if (rc != 0)
    fprintf(stderr, "qorb-echo-demo: close: %s\n", qorb_strerror(rc));

  ok = atomic_load(&total_ok);
  failed = atomic_load(&total_err) + atomic_load(&claim_err);
  printf("totals: %lu round trips in %.1f s (%.0f/s), %lu failed "
         "(claims or round trips)\n",
         ok, elapsed, elapsed > 0 ? (double)ok / elapsed : 0.0, failed);
  for (i = 0; i < nerrs; i++)
    printf("  %-18s x%-6lu %s\n", qorb_err_name(errs[i].code), errs[i].count,
           qorb_strerror(errs[i].code));
  if (other > 0) printf("  %-18s x%lu\n", "(other)", other);
  printf("pool closed\n");
  return ok > 0 ? 0 : 1;
}
