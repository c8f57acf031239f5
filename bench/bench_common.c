/* SPDX-License-Identifier: MIT */
/*
 * bench_common.c: see bench_common.h.
 */
#define _GNU_SOURCE

#include "bench_common.h"

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_sleep_ns(uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ns / 1000000000u);
  ts.tv_nsec = (long)(ns % 1000000000u);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void bench_nap_ms(unsigned ms) { bench_sleep_ns((uint64_t)ms * 1000000u); }

void bench_hist_add(bench_hist_t *h, uint64_t ns) {
  uint64_t us = ns / 1000;
  h->b[us < BENCH_HIST_US ? us : BENCH_HIST_US]++;
  h->n++;
  if (ns > h->max_ns)
    h->max_ns = ns;
}

void bench_hist_merge(bench_hist_t *into, const bench_hist_t *h) {
  size_t i;
  for (i = 0; i <= BENCH_HIST_US; i++)
    into->b[i] += h->b[i];
  into->n += h->n;
  if (h->max_ns > into->max_ns)
    into->max_ns = h->max_ns;
}

double bench_hist_pct(const bench_hist_t *h, double pct) {
  double exact;
  uint64_t want, seen = 0;
  size_t i;

  if (h->n == 0)
    return 0.0;
  /* Nearest rank: the smallest sample with at least pct% at or below it. */
  exact = (double)h->n * pct / 100.0;
  want = (uint64_t)exact;
  if ((double)want < exact)
    want++;
  if (want == 0)
    want = 1;
  if (want > h->n)
    want = h->n;
  for (i = 0; i < BENCH_HIST_US; i++) {
    seen += h->b[i];
    if (seen >= want)
      return (double)i + 0.5;
  }
  return (double)h->max_ns / 1000.0;
}

int bench_parse_list(const char *s, unsigned *out, unsigned cap,
                     unsigned max_value, unsigned *n) {
  char *end;

  *n = 0;
  while (*s) {
    unsigned long v;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (end == s || errno || *s == '-' || v == 0 || v > max_value || *n == cap)
      return -1;
    out[(*n)++] = (unsigned)v;
    s = end;
    if (*s == ',')
      s++;
    else if (*s)
      return -1;
  }
  return *n ? 0 : -1;
}

static unsigned idle_slots(qorb_pool_t *pool) {
  qorb_pool_stats_t st;
  qorb_pool_stats_init(&st);
  if (qorb_pool_stats(pool, &st, NULL, 0, NULL) != 0)
    return 0;
  return st.idle;
}

/* Wakes the loop every millisecond, so that a wait on it stays bounded. */
static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)w;
  (void)revents;
}

int bench_wait_idle(const char *prog, qorb_pool_t *pool, unsigned want,
                    unsigned timeout_ms, struct ev_loop *loop) {
  uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
  unsigned idle = 0;
  ev_timer tick;

  if (loop != NULL) {
    ev_timer_init(&tick, tick_cb, 0.001, 0.001);
    ev_timer_start(loop, &tick);
  }
  while ((idle = idle_slots(pool)) < want && bench_now_ns() < deadline) {
    if (loop != NULL)
      ev_run(loop, EVRUN_ONCE);
    else
      bench_nap_ms(1);
  }
  if (loop != NULL)
    ev_timer_stop(loop, &tick);
  if (idle >= want)
    return 0;
  fprintf(stderr, "%s: only %u of %u slots idle after %.1f s\n", prog, idle,
          want, (double)timeout_ms / 1000.0);
  return -1;
}

int bench_run_threads(bench_run_t *run, unsigned n, void *(*fn)(void *),
                      void *args, size_t stride, double warmup_s,
                      double seconds, volatile sig_atomic_t *interrupted,
                      uint64_t *window_ns) {
  pthread_t *tids = calloc(n ? n : 1, sizeof(*tids));
  uint64_t t0 = 0, t1 = 0, len = (uint64_t)(seconds * 1e9);
  unsigned i, started = 0;
  int rc = -1;

  *window_ns = 0;
  atomic_store(&run->ready, 0);
  atomic_store(&run->measuring, 0);
  atomic_store(&run->stop, 0);
  if (tids == NULL)
    return -1;
  for (i = 0; i < n; i++) {
    if (pthread_create(&tids[i], NULL, fn, (char *)args + i * stride) != 0)
      break;
    started++;
  }
  if (started == n) {
    /* Every client connected and looping, then a warm-up (caches, a
     * proxy's server connections), then the measured window. */
    for (i = 0; i < 10000 && atomic_load(&run->ready) < (int)n; i++)
      bench_nap_ms(1);
    bench_sleep_ns((uint64_t)(warmup_s * 1e9));
    t0 = bench_now_ns();
    atomic_store(&run->measuring, 1);
    for (;;) {
      uint64_t done = bench_now_ns() - t0;
      if (done >= len || (interrupted != NULL && *interrupted))
        break;
      bench_sleep_ns(len - done < 20000000u ? len - done : 20000000u);
    }
    atomic_store(&run->measuring, 0);
    t1 = bench_now_ns();
    *window_ns = t1 - t0;
    rc = 0;
  }
  atomic_store(&run->stop, 1);
  for (i = 0; i < started; i++)
    pthread_join(tids[i], NULL);
  free(tids);
  return rc;
}

/* ------------------------------------------------------------- rounds */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *v, unsigned n) {
  if (n == 0)
    return 0.0;
  qsort(v, n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

unsigned bench_shares(const uint64_t *ops, unsigned n, double *min_share,
                      double *max_share) {
  double mean = 0.0;
  unsigned i, off = 0;

  *min_share = *max_share = 1.0;
  for (i = 0; i < n; i++)
    mean += (double)ops[i];
  if (n == 0 || mean <= 0.0)
    return 0;
  mean /= (double)n;
  *min_share = *max_share = (double)ops[0] / mean;
  for (i = 0; i < n; i++) {
    double s = (double)ops[i] / mean;
    if (s < *min_share)
      *min_share = s;
    if (s > *max_share)
      *max_share = s;
    if (s < 0.5 || s > 2.0)
      off++;
  }
  return off;
}

struct bench_group {
  unsigned n;
  void (*fn)(void *arg, int path);
  char *args;
  size_t stride;
  pthread_t *tids;
  uint64_t *end_ns; /* per client: when it left its last round */
  pthread_barrier_t start, end;
  int path; /* written before the start barrier, read after it */
  int quit;
  atomic_int stop;
};

typedef struct group_arg {
  bench_group_t *g;
  unsigned i;
} group_arg_t;

static void *group_main(void *arg) {
  bench_group_t *g = ((group_arg_t *)arg)->g;
  unsigned i = ((group_arg_t *)arg)->i;
  free(arg);
  for (;;) {
    pthread_barrier_wait(&g->start);
    if (g->quit)
      break;
    g->fn(g->args + (size_t)i * g->stride, g->path);
    g->end_ns[i] = bench_now_ns();
    pthread_barrier_wait(&g->end);
  }
  return NULL;
}

bench_group_t *bench_group_start(unsigned n, void (*fn)(void *arg, int path),
                                 void *args, size_t stride) {
  bench_group_t *g = calloc(1, sizeof(*g));
  unsigned i;

  if (g == NULL)
    return NULL;
  g->n = n;
  g->fn = fn;
  g->args = args;
  g->stride = stride;
  atomic_init(&g->stop, 0);
  g->tids = calloc(n ? n : 1, sizeof(*g->tids));
  g->end_ns = calloc(n ? n : 1, sizeof(*g->end_ns));
  if (g->tids == NULL || g->end_ns == NULL)
    goto fail;
  if (pthread_barrier_init(&g->start, NULL, n + 1) != 0)
    goto fail;
  if (pthread_barrier_init(&g->end, NULL, n + 1) != 0) {
    pthread_barrier_destroy(&g->start);
    goto fail;
  }
  for (i = 0; i < n; i++) {
    group_arg_t *a = malloc(sizeof(*a));
    if (a != NULL) {
      a->g = g;
      a->i = i;
    }
    if (a == NULL || pthread_create(&g->tids[i], NULL, group_main, a) != 0) {
      /* A barrier sized for threads that do not exist never opens. */
      fprintf(stderr, "bench: could not start client thread %u of %u\n",
              i + 1, n);
      exit(2);
    }
  }
  return g;

fail:
  fprintf(stderr, "bench: out of memory for %u client threads\n", n);
  free(g->tids);
  free(g->end_ns);
  free(g);
  return NULL;
}

uint64_t bench_group_round(bench_group_t *g, int path, double seconds) {
  uint64_t t0, t_end = 0;
  unsigned i;

  g->path = path;
  atomic_store(&g->stop, 0);
  pthread_barrier_wait(&g->start);
  t0 = bench_now_ns();
  bench_sleep_ns((uint64_t)(seconds * 1e9));
  atomic_store(&g->stop, 1);
  pthread_barrier_wait(&g->end);
  for (i = 0; i < g->n; i++)
    if (g->end_ns[i] > t_end)
      t_end = g->end_ns[i];
  return t_end > t0 ? t_end - t0 : 0;
}

int bench_group_stopping(const bench_group_t *g) {
  return atomic_load_explicit(&g->stop, memory_order_relaxed);
}

void bench_group_stop(bench_group_t *g) {
  unsigned i;
  if (g == NULL)
    return;
  g->quit = 1;
  pthread_barrier_wait(&g->start);
  for (i = 0; i < g->n; i++)
    pthread_join(g->tids[i], NULL);
  pthread_barrier_destroy(&g->start);
  pthread_barrier_destroy(&g->end);
  free(g->tids);
  free(g->end_ns);
  free(g);
}
