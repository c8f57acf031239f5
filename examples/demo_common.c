/* SPDX-License-Identifier: MIT */
/*
 * demo_common.c: see demo_common.h. The option parser, pool construction
 * and stats table (with the resolver's figures from the pool's snapshot)
 * serve every example program; the rest is the demos' workload: worker
 * threads doing what a thread-per-request service does (claim, one
 * request, release), a line of figures and the stats table once a second,
 * so that a backend being stopped and restarted, or added to and removed
 * from the DNS records (the demo scripts do that), shows up as it happens,
 * and the totals at the end.
 */
#define _GNU_SOURCE
#include "demo_common.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef DEMO_HAVE_ENDPOINT
#include <qorb/endpoint.h>
#endif

#define DEMO_MAX_OPTS 16     /* options in one demo_parse_args() table */
#define DEMO_MAX_BACKENDS 16 /* rows in the stats table */
#define DEMO_MAX_CODES 16    /* distinct error codes counted per worker */

/* ------------------------------------------------------------ options */

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

static void usage(FILE *f, const char *prog, const demo_opt_t *opts, size_t n) {
  size_t i;

  fprintf(f, "usage: %s", prog);
  for (i = 0; i < n; i++)
    if (opts[i].required)
      fprintf(f, " --%s %s", opts[i].name, opts[i].arg);
  fprintf(f, " [options]\n");
  for (i = 0; i < n; i++) {
    char lhs[48];
    snprintf(lhs, sizeof(lhs), "--%s%s%s", opts[i].name,
             opts[i].arg != NULL ? " " : "",
             opts[i].arg != NULL ? opts[i].arg : "");
    fprintf(f, "  %-17s %s\n", lhs, opts[i].help);
  }
}

int demo_positional_usage(const char *prog, int argc, char **argv,
                          const char *usage) {
  int i;
  for (i = 1; i < argc; i++) {
    int help = strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0;
    if (!help && argv[i][0] != '-') continue;
    fputs(usage, help ? stdout : stderr);
    if (!help) fprintf(stderr, "%s: unknown option '%s'\n", prog, argv[i]);
    return help ? 0 : 2;
  }
  return -1;
}

int demo_parse_args(const char *prog, int argc, char **argv,
                    const demo_opt_t *opts, size_t n) {
  struct option longopts[DEMO_MAX_OPTS + 2];
  char shortopts[2 * DEMO_MAX_OPTS + 2];
  int seen[DEMO_MAX_OPTS] = {0};
  size_t i, k = 0;
  int c;

  if (n > DEMO_MAX_OPTS) {
    fprintf(stderr, "%s: too many options for demo_parse_args\n", prog);
    return -1;
  }
  for (i = 0; i < n; i++) {
    longopts[i].name = opts[i].name;
    longopts[i].has_arg = opts[i].arg != NULL ? required_argument : no_argument;
    longopts[i].flag = NULL;
    longopts[i].val = opts[i].key;
    shortopts[k++] = opts[i].key;
    if (opts[i].arg != NULL)
      shortopts[k++] = ':';
  }
  longopts[n].name = "help";
  longopts[n].has_arg = no_argument;
  longopts[n].flag = NULL;
  longopts[n].val = 'h';
  memset(&longopts[n + 1], 0, sizeof(longopts[n + 1]));
  shortopts[k++] = 'h';
  shortopts[k] = '\0';

  while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
    if (c == 'h') {
      usage(stdout, prog, opts, n);
      exit(0);
    }
    for (i = 0; i < n && opts[i].key != c; i++) {
    }
    if (i == n)
      goto bad; /* getopt_long has said what is wrong */
    seen[i] = 1;
    if (opts[i].arg == NULL) {
      *opts[i].num = 1;
    } else if (opts[i].str != NULL) {
      *opts[i].str = optarg;
    } else if (parse_uint(optarg, opts[i].min, opts[i].max, opts[i].num) != 0) {
      fprintf(stderr, "%s: --%s: bad value \"%s\" (%u to %u)\n", prog,
              opts[i].name, optarg, opts[i].min, opts[i].max);
      goto bad;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, argv[optind]);
    goto bad;
  }
  for (i = 0; i < n; i++) {
    if (opts[i].required && !seen[i]) {
      fprintf(stderr, "%s: --%s is required\n", prog, opts[i].name);
      goto bad;
    }
  }
  return 0;

bad:
  usage(stderr, prog, opts, n);
  return -1;
}

/* ------------------------------------------------------------ the pool */

/* qorb_pool_new() for a resolver of any kind. Both the resolver and the
 * connector are the pool's on success and freed here on failure. */
static int pool_new(const char *prog, qorb_pool_t **pool, struct ev_loop *loop,
                    qorb_resolver_t *resolver, qorb_connector_t *connector,
                    const qorb_policy_t *policy) {
  char err[256] = "";
  int rc;

  rc = qorb_pool_new(pool, loop, policy, resolver, connector, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "%s: pool: %s%s%s\n", prog, qorb_strerror(rc),
            err[0] ? ": " : "", err);
    /* On failure the resolver and the connector are still ours. */
    qorb_resolver_free(resolver);
    qorb_connector_free(connector);
  }
  return rc;
}

int demo_pool_new(const char *prog, qorb_pool_t **pool, struct ev_loop *loop,
                  const char *backends, qorb_connector_t *connector,
                  const qorb_policy_t *policy) {
  qorb_resolver_t *resolver = NULL;
  char err[256] = "";
  int rc;

  rc = qorb_static_resolver_new(&resolver, backends, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "%s: backends \"%s\": %s\n", prog, backends,
            err[0] ? err : qorb_strerror(rc));
    qorb_connector_free(connector);
    return rc;
  }
  return pool_new(prog, pool, loop, resolver, connector, policy);
}

/* Squeeze a possibly long error text into a table cell of `len` bytes
 * (0: take it whole). */
static const char *cell(char *dst, size_t len, const char *src) {
  size_t n = strlen(src);

  if (len < 4 || n < len)
    return src;
  memcpy(dst, src, len - 4);
  memcpy(dst + len - 4, "...", 4);
  return dst;
}

/* A time in ms as seconds for the resolver line. */
static double ms_s(int64_t ms) { return (double)ms / 1000.0; }

/* The resolver's line: its last report, carried by the pool's snapshot (so
 * any thread may print it). The static resolver has nothing to add. */
static void print_resolver(FILE *f, const qorb_resolver_stats_t *r) {
  if (strcmp(r->kind, "static") == 0)
    return;
  fprintf(f,
          "  resolver: %s %s, %u server%s (%u failing): %u backends; "
          "queries %llu, failed %llu, changes %llu; ",
          r->kind, r->name, r->servers, r->servers == 1 ? "" : "s",
          r->servers_failing, r->backends, (unsigned long long)r->queries,
          (unsigned long long)r->failures, (unsigned long long)r->changes);
  if (r->next_query_ms > 0)
    fprintf(f, "next lookup in %.1f s\n", ms_s(r->next_query_ms));
  else
    fprintf(f, "%s\n", r->next_query_ms == 0 ? "lookup running" : "stopped");
  if (r->last_error != 0)
    fprintf(f, "  resolver last error (%.1f s ago): %s\n",
            ms_s(r->last_error_age_ms), r->last_error_text);
}

/* One snapshot of the pool, for stats_print(). */
typedef struct demo_snap {
  int ok;
  qorb_pool_stats_t st;
  qorb_backend_stats_t be[DEMO_MAX_BACKENDS];
  size_t n;
} demo_snap_t;

static void stats_take(qorb_pool_t *pool, demo_snap_t *s) {
  qorb_pool_stats_init(&s->st);
  s->n = 0;
  s->ok = qorb_pool_stats(pool, &s->st, s->be, DEMO_MAX_BACKENDS, &s->n) == 0;
}

/* Print a snapshot. The caller holds flockfile(f), and no qorb call is
 * made here: the DNS log callback prints from the pool loop, so waiting on
 * the pool while holding the stream could wait on a loop that waits on the
 * stream. */
static void stats_print(FILE *f, const demo_snap_t *s, size_t error_width) {
  const qorb_pool_stats_t *st = &s->st;
  const qorb_backend_stats_t *be = s->be;
  size_t i;

  if (!s->ok) {
    fprintf(f, "  stats unavailable\n");
    return;
  }
  fprintf(f,
          "  pool: %u/%u backends online; slots connecting %u idle %u "
          "checking %u claimed %u; waiters %u; claims %llu; timeouts %llu\n",
          st->backends_online, st->backends, st->connecting, st->idle,
          st->checking, st->claimed, st->waiters,
          (unsigned long long)st->claims, (unsigned long long)st->timeouts);
  print_resolver(f, &st->resolver);
  fprintf(f, "  %-22s %-6s %4s %4s %4s %4s %9s %6s  %s\n", "backend", "online",
          "conn", "idle", "chk", "clm", "claims", "fails", "last error");
  for (i = 0; i < s->n && i < DEMO_MAX_BACKENDS; i++) {
    char err[sizeof(be[0].last_error)];
    fprintf(f, "  %-22s %-6s %4u %4u %4u %4u %9llu %6llu  %s\n",
            be[i].addr.text, be[i].online ? "yes" : "NO", be[i].connecting,
            be[i].idle, be[i].checking, be[i].claimed,
            (unsigned long long)be[i].claims,
            (unsigned long long)be[i].failures,
            cell(err, error_width < sizeof(err) ? error_width : 0,
                 be[i].last_error));
  }
  if (s->n > DEMO_MAX_BACKENDS)
    fprintf(f, "  ... and %zu more backends\n", s->n - DEMO_MAX_BACKENDS);
}

void demo_print_stats(FILE *f, qorb_pool_t *pool, size_t error_width) {
  demo_snap_t s;

  stats_take(pool, &s);
  flockfile(f);
  stats_print(f, &s, error_width);
  fflush(f);
  funlockfile(f);
}

/* ------------------------------------------------------- the demos' run */

int demo_parse_opts(const char *prog, int argc, char **argv, demo_opts_t *o,
                    const char *backends_help, unsigned max_slots_cap,
                    unsigned flags, const demo_opt_t *extra, size_t n_extra) {
  const int dns = (flags & DEMO_OPTS_DNS) != 0;
  demo_opt_t opts[DEMO_MAX_OPTS] = {
      {"backends", 'b', "LIST", &o->backends, NULL, 0, 0, !dns, backends_help},
      {"seconds", 's', "N", NULL, &o->seconds, 1, 86400, 0,
       "run time (default 10)"},
      {"threads", 't', "T", NULL, &o->threads, 1, 256, 0,
       "worker threads (default 4)"},
      {"think-ms", 'k', "M", NULL, &o->think_ms, 0, 10000, 0,
       "pause between requests per worker (default 2)"},
      {"max-slots", 'm', "S", NULL, &o->max_slots, 1, max_slots_cap, 0,
       "pool size over all backends (default 8)"},
      {"endpoint", 'e', "LISTEN", &o->endpoint, NULL, 0, 0, 0,
       "serve the pool's stats for tools/qorbtop, e.g. 127.0.0.1:0"},
      {"stats-json", 'j', "FILE", &o->stats_json, NULL, 0, 0, 0,
       "write the pool's last stats there as JSON"},
      {"quiet", 'q', NULL, NULL, &o->quiet, 0, 0, 0,
       "no stats table each second"},
      /* Only with DEMO_OPTS_DNS (n below leaves them out otherwise). */
      {"service", 'S', "NAME", &o->service, NULL, 0, 0, 0,
       "find the backends in DNS: an SRV name (_pg._tcp.db.example.) or "
       "host:port; instead of --backends"},
      {"dns-server", 'D', "LIST", &o->dns_server, NULL, 0, 0, 0,
       "DNS servers for --service, host:port,... (default: the system's)"},
  };
  size_t n = dns ? 10 : 8, i;

  memset(o, 0, sizeof(*o));
  o->seconds = 10;
  o->threads = 4;
  o->think_ms = 2;
  o->max_slots = 8;
  for (i = 0; i < n_extra && n < DEMO_MAX_OPTS; i++)
    opts[n++] = extra[i];
  if (demo_parse_args(prog, argc, argv, opts, n) != 0)
    return -1;
  if (dns && (o->backends == NULL) == (o->service == NULL)) {
    fprintf(stderr, "%s: give either --backends or --service\n", prog);
    goto bad;
  }
  if (o->dns_server != NULL && o->service == NULL) {
    fprintf(stderr, "%s: --dns-server goes with --service\n", prog);
    goto bad;
  }
  return 0;

bad:
  usage(stderr, prog, opts, n);
  return -1;
}

void demo_policy(qorb_policy_t *p, const char *name, unsigned max_slots) {
  qorb_policy_init(p);
  p->name = name;
  p->max_slots = max_slots;
  p->spares_wanted = max_slots < 2 ? max_slots : 2;
  p->claim_timeout_ms = 1000;
  p->connect_timeout_ms = 1000;
  p->min_backoff_ms = 100;  /* a dead backend is probed quickly... */
  p->max_backoff_ms = 1000; /* ...and at least once a second */
  p->health_interval_ms = 1000;
  p->health_check_timeout_ms = 500;
  p->rebalance_interval_ms = 500;
  /* Backends are ranked by their failures in this window; a short one lets
   * a restarted backend win its share of claims back within the demo. */
  p->failure_window_ms = 2000;
}

typedef struct demo_err {
  int code;
  unsigned long count;
} demo_err_t;

/* Failures by code; codes beyond the table are counted as `other`. */
typedef struct demo_errs {
  demo_err_t e[DEMO_MAX_CODES];
  size_t n;
  unsigned long other;
} demo_errs_t;

typedef struct demo_shared {
  qorb_pool_t *pool;
  const demo_opts_t *opts;
  const demo_workload_t *wl;
  atomic_int stop; /* the workers' stop signal */
  atomic_ulong ok, failed, claim_failed;
} demo_shared_t;

typedef struct demo_worker {
  pthread_t thread;
  unsigned id;
  demo_shared_t *sh;
  demo_errs_t errs; /* written by the worker only; read after the join */
} demo_worker_t;

static volatile sig_atomic_t interrupted; /* SIGINT / SIGTERM seen */

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

static void errs_add(demo_errs_t *t, int code, unsigned long count) {
  size_t i;

  for (i = 0; i < t->n && t->e[i].code != code; i++) {
  }
  if (i == t->n) {
    if (t->n == DEMO_MAX_CODES) {
      t->other += count;
      return;
    }
    t->e[t->n].code = code;
    t->e[t->n++].count = 0;
  }
  t->e[i].count += count;
}

/*
 * One worker: claim, request, release, until told to stop. This is the
 * whole of what an application thread does with the pool.
 */
static void *worker_main(void *arg) {
  demo_worker_t *w = arg;
  demo_shared_t *sh = w->sh;
  unsigned long n = 0;

  while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
    qorb_claim_t *claim;
    int rc;

    /* Wait up to a second for a connection. Failing claims say why: no
     * backend known, none online (at once, when every backend has
     * failed), or all in use (after the timeout). */
    rc = qorb_pool_claim_wait(sh->pool, 1000, &claim);
    if (rc != 0) {
      errs_add(&w->errs, rc, 1);
      atomic_fetch_add_explicit(&sh->claim_failed, 1, memory_order_relaxed);
      if (rc == QORB_ESHUTDOWN)
        break;
      /* QORB_ENOTONLINE comes back at once: do not spin on it. */
      sleep_ms(50);
      continue;
    }

    rc = sh->wl->request(claim, w->id, n++, sh->wl->arg);

    /* Release even after a failure: the connector sees that the
     * connection broke (its needs_recycle says so), and the pool closes
     * it instead of handing it out again. (qorb_release_broken() says the
     * same thing explicitly.) */
    qorb_release(claim);

    if (rc != 0) {
      errs_add(&w->errs, rc, 1);
      atomic_fetch_add_explicit(&sh->failed, 1, memory_order_relaxed);
    } else {
      atomic_fetch_add_explicit(&sh->ok, 1, memory_order_relaxed);
    }
    if (sh->opts->think_ms > 0)
      sleep_ms(sh->opts->think_ms);
  }
  return NULL;
}

/* The second's line and the stats table, together under flockfile(). The
 * snapshot is taken before the lock (see stats_print()). */
static void print_tick(demo_shared_t *sh, double elapsed,
                       unsigned long *last_ok) {
  unsigned long ok = atomic_load(&sh->ok);
  demo_snap_t s;

  stats_take(sh->pool, &s);
  flockfile(stdout);
  printf("[%5.1fs] %s %lu (+%lu), errors %lu, claim failures %lu\n", elapsed,
         sh->wl->noun, ok, ok - *last_ok,
         (unsigned long)atomic_load(&sh->failed),
         (unsigned long)atomic_load(&sh->claim_failed));
  stats_print(stdout, &s, 64);
  fflush(stdout);
  funlockfile(stdout);
  *last_ok = ok;
}

/*
 * The demo's pool, on a loop thread of its own (loop NULL suits a program
 * whose work happens on plain threads), over the resolver that `o` asks
 * for. The connector is the pool's, or freed here on failure.
 */
static int new_pool(const demo_opts_t *o, qorb_connector_t *connector,
                    const qorb_policy_t *policy, const demo_workload_t *wl,
                    qorb_pool_t **pool) {
  qorb_resolver_t *resolver = NULL;

  if (o->service == NULL)
    return demo_pool_new(wl->prog, pool, NULL, o->backends, connector, policy);
  if (wl->resolver_new == NULL) {
    fprintf(stderr, "%s: --service is not supported here\n", wl->prog);
    qorb_connector_free(connector);
    return QORB_EINVAL;
  }
  if (wl->resolver_new(wl->prog, o, &resolver) != 0) {
    qorb_connector_free(connector);
    return QORB_EINVAL;
  }
  return pool_new(wl->prog, pool, NULL, resolver, connector, policy);
}

/*
 * The stats endpoint of --endpoint, on a thread of its own (loop NULL: the
 * pool's loop is the pool's business), serving `pool`. Returns 0 with *out
 * set (NULL when no endpoint was asked for), or -1 after saying why.
 */
static int endpoint_start(const demo_opts_t *o, const char *prog,
                          qorb_pool_t *pool, void **out) {
  *out = NULL;
  if (o->endpoint == NULL)
    return 0;
#ifdef DEMO_HAVE_ENDPOINT
  {
    qorb_endpoint_options_t eo;
    qorb_endpoint_t *ep;
    char err[256] = "";
    int rc;

    qorb_endpoint_options_init(&eo);
    eo.listen = o->endpoint;
    rc = qorb_endpoint_new(&ep, NULL, &eo, err, sizeof(err));
    if (rc != 0) {
      fprintf(stderr, "%s: --endpoint %s: %s%s%s\n", prog, o->endpoint,
              qorb_strerror(rc), err[0] ? ": " : "", err);
      return -1;
    }
    rc = qorb_endpoint_add_pool(ep, pool);
    if (rc != 0) {
      fprintf(stderr, "%s: endpoint: %s\n", prog, qorb_strerror(rc));
      qorb_endpoint_free(ep);
      return -1;
    }
    /* The demo scripts wait for this line (and take the port from it). */
    if (qorb_endpoint_port(ep) > 0)
      printf("stats endpoint: http://127.0.0.1:%d\n", qorb_endpoint_port(ep));
    else
      printf("stats endpoint: %s\n", o->endpoint);
    fflush(stdout);
    *out = ep;
    return 0;
  }
#else
  (void)pool;
  fprintf(stderr,
          "%s: --endpoint: libqorb-endpoint is not built "
          "(-DQORB_WITH_ENDPOINT=ON, needs libmicrohttpd)\n",
          prog);
  return -1;
#endif
}

/* Stop serving the pool (before it closes) and free the endpoint. */
static void endpoint_stop(void *ep, qorb_pool_t *pool) {
#ifdef DEMO_HAVE_ENDPOINT
  if (ep != NULL) {
    qorb_endpoint_remove_pool(ep, pool);
    qorb_endpoint_free(ep);
  }
#else
  (void)ep;
  (void)pool;
#endif
}

/* --stats-json: the pool's stats as one JSON document in `path`. */
static void write_stats_json(const char *prog, const char *path,
                             qorb_pool_t *pool) {
  size_t len = 16384, need = 0;
  char *buf = NULL, *grown;
  FILE *f;
  int rc = QORB_ENOMEM, tries;

  /* Figures change between calls: grow with some room and try again
   * (need 0 is a failed allocation, not a short buffer). */
  for (tries = 0; tries < 4; tries++) {
    grown = realloc(buf, len);
    if (grown == NULL)
      break;
    buf = grown;
    rc = qorb_stats_json(&pool, 1, buf, len, &need);
    if (rc != QORB_ENOMEM || need <= len)
      break;
    len = need + need / 4;
  }
  if (rc != 0) {
    fprintf(stderr, "%s: --stats-json: %s\n", prog, qorb_strerror(rc));
  } else if ((f = fopen(path, "w")) == NULL) {
    fprintf(stderr, "%s: --stats-json %s: %s\n", prog, path, strerror(errno));
  } else {
    fputs(buf, f);
    if (fclose(f) != 0)
      fprintf(stderr, "%s: --stats-json %s: %s\n", prog, path,
              strerror(errno));
  }
  free(buf);
}

int demo_run(const demo_opts_t *o, qorb_connector_t *connector,
             const qorb_policy_t *policy, const demo_workload_t *wl) {
  qorb_pool_t *pool;
  void *endpoint;
  demo_shared_t sh;
  demo_worker_t *workers;
  demo_errs_t errs;
  unsigned long last_ok = 0, ok;
  struct sigaction sa;
  double start, elapsed;
  unsigned i, started = 0, tick;
  size_t j;
  int rc;

  if (new_pool(o, connector, policy, wl, &pool) != 0)
    return 1;
  if (endpoint_start(o, wl->prog, pool, &endpoint) != 0) {
    qorb_pool_close(pool, NULL, NULL);
    return 1;
  }

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  memset(&sh, 0, sizeof(sh));
  memset(&errs, 0, sizeof(errs));
  sh.pool = pool;
  sh.opts = o;
  sh.wl = wl;
  atomic_init(&sh.stop, 0);
  atomic_init(&sh.ok, 0);
  atomic_init(&sh.failed, 0);
  atomic_init(&sh.claim_failed, 0);

  if (o->service != NULL)
    printf("qorb %s: pool \"%s\" over %s, found in DNS (%s), %u threads, "
           "%u s\n",
           qorb_version_string(), qorb_pool_name(pool), o->service,
           o->dns_server != NULL ? o->dns_server : "the system's servers",
           o->threads, o->seconds);
  else
    printf("qorb %s: pool \"%s\" over %s, %u threads, %u s\n",
           qorb_version_string(), qorb_pool_name(pool), o->backends, o->threads,
           o->seconds);
  workers = calloc(o->threads, sizeof(*workers));
  if (workers == NULL) {
    fprintf(stderr, "%s: out of memory\n", wl->prog);
    endpoint_stop(endpoint, pool);
    qorb_pool_close(pool, NULL, NULL);
    return 1;
  }
  start = now_s();
  for (i = 0; i < o->threads; i++) {
    workers[i].id = i;
    workers[i].sh = &sh;
    rc = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
    if (rc != 0) {
      fprintf(stderr, "%s: thread: %s\n", wl->prog, strerror(rc));
      break;
    }
    started++;
  }

  /* Print once a second, on whole seconds from the start. */
  for (tick = 1; started > 0 && tick <= o->seconds && !interrupted; tick++) {
    double left;
    while (!interrupted && (left = start + tick - now_s()) > 0)
      sleep_ms(left > 0.1 ? 100 : (unsigned)(left * 1000) + 1);
    if (interrupted)
      break;
    if (!o->quiet)
      print_tick(&sh, now_s() - start, &last_ok);
  }

  atomic_store(&sh.stop, 1);
  for (i = 0; i < started; i++)
    pthread_join(workers[i].thread, NULL);
  elapsed = now_s() - start;

  /* Merge the workers' failure counts for the summary. */
  for (i = 0; i < started; i++) {
    errs.other += workers[i].errs.other;
    for (j = 0; j < workers[i].errs.n; j++)
      errs_add(&errs, workers[i].errs.e[j].code, workers[i].errs.e[j].count);
  }
  free(workers);

  printf("final:\n");
  print_tick(&sh, elapsed, &last_ok);
  if (o->stats_json != NULL)
    write_stats_json(wl->prog, o->stats_json, pool);
  endpoint_stop(endpoint, pool);
  rc = qorb_pool_close(pool, NULL, NULL);
  if (rc != 0)
    fprintf(stderr, "%s: close: %s\n", wl->prog, qorb_strerror(rc));

  ok = atomic_load(&sh.ok);
  printf("totals: %lu %s in %.1f s (%.0f/s), %lu failed, %lu failed claims\n",
         ok, wl->noun, elapsed, elapsed > 0 ? (double)ok / elapsed : 0.0,
         (unsigned long)atomic_load(&sh.failed),
         (unsigned long)atomic_load(&sh.claim_failed));
  for (j = 0; j < errs.n; j++)
    printf("  %-18s x%-6lu %s\n", qorb_err_name(errs.e[j].code),
           errs.e[j].count, qorb_strerror(errs.e[j].code));
  if (errs.other > 0)
    printf("  %-18s x%lu\n", "(other)", errs.other);
  printf("pool closed\n");
  return ok > 0 ? 0 : 1;
}
