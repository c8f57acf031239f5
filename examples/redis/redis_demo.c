/* SPDX-License-Identifier: MIT */
/*
 * redis_demo.c: qorb-redis-demo, a Redis pool at work, for tools/demo.sh.
 *
 *   qorb-redis-demo --backends 127.0.0.2:56395,127.0.0.3:56396 \
 *                   --seconds 12 --threads 4
 *
 * A pool over the static resolver and qorb-redis (blocking flavour), on a
 * loop thread the pool owns, and worker threads doing what request
 * handlers do: claim (waiting up to a second), INCR and GET, release. Once
 * a second it prints the pool's statistics, so that a backend being
 * restarted (the demo script does that midway) shows up as it happens:
 * the backend goes offline, claims move to the other one, and it comes
 * back online when it returns.
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

#include <hiredis/hiredis.h>

#include <qorb/qorb.h>
#include <qorb/redis.h>

#define DEMO_MAX_BACKENDS 16

typedef struct demo_opts {
  const char *backends;
  unsigned seconds, threads, think_ms, max_slots;
} demo_opts_t;

typedef struct demo_worker {
  pthread_t thread;
  unsigned id;
  qorb_pool_t *pool;
  const demo_opts_t *opts;
} demo_worker_t;

static atomic_int stop_now;
static volatile sig_atomic_t interrupted;
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
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !interrupted) {
  }
}

/* One request: INCR a counter of this worker's, then GET it back. */
static int request(redisContext *c, unsigned id) {
  redisReply *r = redisCommand(c, "INCR demo:counter:%u", id);
  long long n;
  int ok;

  if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
    if (r) freeReplyObject(r);
    return -1;
  }
  n = r->integer;
  freeReplyObject(r);
  r = redisCommand(c, "GET demo:counter:%u", id);
  ok = r != NULL && r->type == REDIS_REPLY_STRING && atoll(r->str) >= n;
  if (r) freeReplyObject(r);
  return ok ? 0 : -1;
}

static void *worker_main(void *arg) {
  demo_worker_t *w = arg;

  while (!atomic_load_explicit(&stop_now, memory_order_relaxed)) {
    qorb_claim_t *claim;
    int rc = qorb_pool_claim_wait(w->pool, 1000, &claim);
    if (rc != 0) {
      atomic_fetch_add(&claim_err, 1);
      if (rc == QORB_ESHUTDOWN) break;
      sleep_ms(50); /* QORB_ENOTONLINE comes back at once: do not spin */
      continue;
    }
    rc = request(qorb_redis_ctx(claim), w->id);
    /* A failed command leaves an error on the context: the release sees
     * it and the pool replaces the connection. */
    qorb_release(claim);
    atomic_fetch_add(rc == 0 ? &total_ok : &total_err, 1);
    if (w->opts->think_ms > 0) sleep_ms(w->opts->think_ms);
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

static void print_stats(qorb_pool_t *pool, double elapsed,
                        unsigned long *last_ok) {
  qorb_backend_stats_t be[DEMO_MAX_BACKENDS];
  qorb_pool_stats_t st;
  unsigned long ok = atomic_load(&total_ok);
  size_t n = 0, i;

  qorb_pool_stats_init(&st);
  if (qorb_pool_stats(pool, &st, be, DEMO_MAX_BACKENDS, &n) != 0) return;
  printf("[%5.1fs] requests %lu (+%lu), errors %lu, claim failures %lu\n",
         elapsed, ok, ok - *last_ok, (unsigned long)atomic_load(&total_err),
         (unsigned long)atomic_load(&claim_err));
  *last_ok = ok;
  printf("  pool: %u/%u backends online; slots connecting %u idle %u "
         "checking %u claimed %u; waiters %u; claims %llu\n",
         st.backends_online, st.backends, st.connecting, st.idle, st.checking,
         st.claimed, st.waiters, (unsigned long long)st.claims);
  printf("  %-18s %-6s %4s %4s %4s %4s %9s %6s  %s\n", "backend", "online",
         "conn", "idle", "chk", "clm", "claims", "fails", "last error");
  for (i = 0; i < n && i < DEMO_MAX_BACKENDS; i++) {
    char err[60];
    cell(err, sizeof(err), be[i].last_error);
    printf("  %-18s %-6s %4u %4u %4u %4u %9llu %6llu  %s\n", be[i].addr.text,
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
  if (errno || *s == '\0' || *s == '-' || *end != '\0' || v < min || v > max)
    return -1;
  *out = (unsigned)v;
  return 0;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: qorb-redis-demo --backends LIST [options]\n"
          "  --backends LIST   redis-servers, e.g. 127.0.0.2:6379,[::1]:6379\n"
          "  --seconds N       run time (default 10)\n"
          "  --threads T       worker threads (default 4)\n"
          "  --think-ms M      pause between requests per worker (default 2)\n"
          "  --max-slots S     pool size over all backends (default 8)\n");
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
      fprintf(stderr, "qorb-redis-demo: bad value \"%s\"\n", optarg);
      return -1;
    }
  }
  return (optind == argc && o->backends != NULL) ? 0 : -1;
}

static int make_pool(const demo_opts_t *o, qorb_pool_t **pool) {
  qorb_redis_options_t ro;
  qorb_resolver_t *resolver = NULL;
  qorb_connector_t *connector = NULL;
  qorb_policy_t policy;
  char err[256] = "";
  int rc;

  rc = qorb_static_resolver_new(&resolver, o->backends, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "qorb-redis-demo: --backends: %s\n",
            err[0] ? err : qorb_strerror(rc));
    return rc;
  }
  qorb_redis_options_init(&ro);
  ro.client_name = "qorb-demo";
  ro.command_timeout_ms = 1000; /* a claimant never hangs on a dead server */
  rc = qorb_redis_connector_new(&connector, &ro, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "qorb-redis-demo: connector: %s\n", err);
    qorb_resolver_free(resolver);
    return rc;
  }
  qorb_policy_init(&policy);
  policy.name = "redis-demo";
  policy.max_slots = o->max_slots;
  policy.spares_wanted = o->max_slots < 2 ? o->max_slots : 2;
  policy.claim_timeout_ms = 1000;
  policy.connect_timeout_ms = 1000;
  policy.min_backoff_ms = 100;
  policy.max_backoff_ms = 1000;
  policy.health_interval_ms = 1000;
  policy.health_check_timeout_ms = 500;
  policy.rebalance_interval_ms = 500;
  policy.failure_window_ms = 2000;
  rc = qorb_pool_new(pool, NULL, &policy, resolver, connector, err,
                     sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "qorb-redis-demo: pool: %s %s\n", qorb_strerror(rc),
            err);
    qorb_resolver_free(resolver);
    qorb_connector_free(connector);
  }
  return rc;
}

int main(int argc, char **argv) {
  demo_worker_t *workers;
  struct sigaction sa;
  qorb_pool_t *pool;
  demo_opts_t opts;
  unsigned long last_ok = 0, ok;
  double start, elapsed;
  unsigned i, started = 0, tick;

  if (parse_opts(argc, argv, &opts) != 0) {
    usage(stderr);
    return 2;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */

  if (make_pool(&opts, &pool) != 0) return 1;
  printf("qorb %s: redis pool \"%s\" over %s, %u threads, %u s\n",
         qorb_version_string(), qorb_pool_name(pool), opts.backends,
         opts.threads, opts.seconds);
  workers = calloc(opts.threads, sizeof(*workers));
  if (workers == NULL) {
    qorb_pool_close(pool, NULL, NULL);
    return 1;
  }
  start = now_s();
  for (i = 0; i < opts.threads; i++) {
    workers[i].id = i;
    workers[i].pool = pool;
    workers[i].opts = &opts;
    if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]))
      break;
    started++;
  }
  for (tick = 1; started > 0 && tick <= opts.seconds && !interrupted;
       tick++) {
    double left;
    while (!interrupted && (left = start + tick - now_s()) > 0)
      sleep_ms(left > 0.1 ? 100 : (unsigned)(left * 1000) + 1);
    if (interrupted) break;
    print_stats(pool, now_s() - start, &last_ok);
  }
  atomic_store(&stop_now, 1);
  for (i = 0; i < started; i++) pthread_join(workers[i].thread, NULL);
  free(workers);
  elapsed = now_s() - start;
  printf("final:\n");
  print_stats(pool, elapsed, &last_ok);
  qorb_pool_close(pool, NULL, NULL);
  ok = atomic_load(&total_ok);
  printf("totals: %lu requests in %.1f s (%.0f/s), %lu failed requests, "
         "%lu failed claims\n",
         ok, elapsed, elapsed > 0 ? (double)ok / elapsed : 0.0,
         (unsigned long)atomic_load(&total_err),
         (unsigned long)atomic_load(&claim_err));
  printf("pool closed\n");
  return ok > 0 ? 0 : 1;
}
