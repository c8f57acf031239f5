/* SPDX-License-Identifier: MIT */
/*
 * claim.c: the cost of the pool itself. A mock connector whose connections
 * need no I/O at all (connect finishes on the next loop iteration, release
 * never needs a recycle) isolates claim + release; the same measured loop
 * over a mutex-protected LIFO free list (the "floor") runs in the same
 * process, so the pool's cost reads as a ratio that means the same on any
 * machine. Three modes:
 *   threads  N threads, qorb_pool_claim_wait() + qorb_release() in a loop,
 *            on a pool that runs its own loop thread;
 *   floor    the same loop over pthread mutex + condvar + LIFO array;
 *   async    one libev loop owned here, K claimants interleaved on it:
 *            try_claim (fast path), falling back to qorb_pool_claim() with
 *            a callback on QORB_EAGAIN.
 * Every mock connection carries a "held" flag set with a CAS on claim and
 * cleared on release, so a connection handed to two claimants at once shows
 * up as a violation. Each point runs several short rounds per mode,
 * alternating qorb and floor, and reports medians (see run_point()).
 * Output: one line per configuration,
 *   bench=claim mode=M threads=N pool=P ops_per_s=X p50_ns=Y p99_ns=Z ...
 * and a ratio line per (threads, pool) pair. See bench/README.md.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qorb/connector.h"
#include "qorb/pool.h"
#include "qorb/resolver.h"
#include "qorb/static.h"

#include "bench_common.h"

#define MAX_LIST 16          /* entries in --threads / --pools */
#define MAX_THREADS 256
#define MAX_POOL 4096
#define SAMPLE_MASK 63u      /* time one cycle in 64 */
#define ASYNC_BATCH 256      /* claimant steps per loop iteration */
#define CACHELINE 64

/* ------------------------------------------------------------------------ */
/* The mock connection and connector                                         */

/*
 * One connection. `held` is the correctness check; it sits on its own cache
 * line (as a real connection's hot state would) so that the floor, which
 * uses the same struct, pays the same memory traffic as the pool.
 */
typedef struct mock_conn {
  _Alignas(CACHELINE) atomic_int held;
  ev_timer connect_timer;
  qorb_op_t *op;
  struct ev_loop *loop;
} mock_conn_t;

typedef struct mock_ctx {
  atomic_uint opened;
  atomic_uint closed;
} mock_ctx_t;

static void mock_connected(struct ev_loop *loop, ev_timer *w, int revents) {
  mock_conn_t *c = w->data;
  (void)loop;
  (void)revents;
  qorb_op_done(c->op, 0);
}

/* Finish on the next loop iteration, never inside the call: the realistic
 * shape of an asynchronous connect that happens to cost nothing. */
static int mock_connect(void *ctx, qorb_op_t *op, const qorb_addr_t *addr,
                        void **conn) {
  mock_ctx_t *m = ctx;
  mock_conn_t *c;
  (void)addr;
  c = aligned_alloc(CACHELINE, sizeof(*c));
  if (c == NULL) return QORB_ENOMEM;
  memset(c, 0, sizeof(*c));
  atomic_init(&c->held, 0);
  c->op = op;
  c->loop = qorb_op_loop(op);
  ev_timer_init(&c->connect_timer, mock_connected, 0., 0.);
  c->connect_timer.data = c;
  ev_timer_start(c->loop, &c->connect_timer);
  atomic_fetch_add(&m->opened, 1u);
  *conn = c;
  return 0;
}

static int mock_needs_recycle(void *ctx, void *conn) {
  (void)ctx;
  (void)conn;
  return 0;
}

static void mock_close(void *ctx, void *conn) {
  mock_ctx_t *m = ctx;
  mock_conn_t *c = conn;
  ev_timer_stop(c->loop, &c->connect_timer);
  atomic_fetch_add(&m->closed, 1u);
  free(c);
}

static const qorb_connector_ops_t mock_ops = {
    .version = QORB_CONNECTOR_OPS_VERSION,
    .name = "mock",
    .connect = mock_connect,
    .check = NULL,
    .prepare = NULL,
    .recycle = NULL,
    .needs_recycle = mock_needs_recycle,
    .close = mock_close,
    .destroy = NULL,
};

/* --no-check turns the held flag off in every mode, for raw figures. */
static int g_check = 1;
/* --verbose prints every round's figure as a comment line. */
static int g_verbose = 0;

/* Mark a connection taken; 1 when someone else already held it. */
static inline int held_enter(mock_conn_t *c) {
  int expect = 0;
  if (!g_check) return 0;
  return !atomic_compare_exchange_strong_explicit(
      &c->held, &expect, 1, memory_order_acquire, memory_order_relaxed);
}

static inline void held_leave(mock_conn_t *c) {
  if (!g_check) return;
  atomic_store_explicit(&c->held, 0, memory_order_release);
}

/* ------------------------------------------------------------------------ */
/* The floor: a plain mutex-protected LIFO free list                          */

typedef struct floor_list {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  mock_conn_t **items;
  unsigned n;
  unsigned waiters;
} floor_list_t;

static inline mock_conn_t *floor_pop(floor_list_t *f) {
  mock_conn_t *c;
  pthread_mutex_lock(&f->mu);
  while (f->n == 0) {
    f->waiters++;
    pthread_cond_wait(&f->cv, &f->mu);
    f->waiters--;
  }
  c = f->items[--f->n];
  pthread_mutex_unlock(&f->mu);
  return c;
}

static inline void floor_push(floor_list_t *f, mock_conn_t *c) {
  unsigned waiters;
  pthread_mutex_lock(&f->mu);
  f->items[f->n++] = c;
  waiters = f->waiters;
  pthread_mutex_unlock(&f->mu);
  if (waiters) pthread_cond_signal(&f->cv);
}

static int floor_init(floor_list_t *f, unsigned m) {
  unsigned i;
  memset(f, 0, sizeof(*f));
  f->items = calloc(m, sizeof(*f->items));
  if (f->items == NULL) return -1;
  for (i = 0; i < m; i++) {
    mock_conn_t *c = aligned_alloc(CACHELINE, sizeof(*c));
    if (c == NULL) return -1;
    memset(c, 0, sizeof(*c));
    atomic_init(&c->held, 0);
    f->items[f->n++] = c;
  }
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  return 0;
}

static void floor_fini(floor_list_t *f) {
  unsigned i;
  for (i = 0; i < f->n; i++) free(f->items[i]);
  free(f->items);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cv);
}

/* ------------------------------------------------------------------------ */
/* Results                                                                   */

typedef struct result {
  double ops_per_s;
  uint64_t cycles;
  uint64_t p50_ns, p99_ns;
  unsigned starved;
  uint64_t violations;
  uint64_t errors;
  int first_error;
  uint64_t fallbacks; /* async only */
} result_t;

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Percentile by nearest rank over sorted samples. */
static uint64_t pct(const uint32_t *s, size_t n, double p) {
  size_t k;
  if (n == 0) return 0;
  k = (size_t)(p * (double)n);
  if (k >= n) k = n - 1;
  return s[k];
}

static void print_result(const char *mode, unsigned threads, unsigned pool,
                         const result_t *r) {
  printf("bench=claim mode=%s threads=%u pool=%u ops_per_s=%.0f p50_ns=%llu "
         "p99_ns=%llu starved=%u violations=%llu",
         mode, threads, pool, r->ops_per_s, (unsigned long long)r->p50_ns,
         (unsigned long long)r->p99_ns, r->starved,
         (unsigned long long)r->violations);
  if (r->errors)
    printf(" errors=%llu first_error=%s", (unsigned long long)r->errors,
           qorb_err_name(r->first_error));
  if (strcmp(mode, "async") == 0)
    printf(" fallbacks=%llu", (unsigned long long)r->fallbacks);
  printf("\n");
  fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Thread modes: qorb claim_wait and the floor, one measured loop            */

/*
 * This machine's speed drifts by tens of percent from one second to the
 * next (a shared virtual machine), so a point is not one long run per mode:
 * the same N threads run `rounds` short rounds of each mode, alternating
 * qorb and floor (ABBA order), and the figures are medians over rounds. The
 * ratio is the median of the per-round-pair ratios, each pair measured
 * within a fraction of a second.
 */
enum { MODE_QORB = 0, MODE_FLOOR = 1, NMODES = 2 };

typedef struct run {
  int mode; /* set by main between rounds, read after the start barrier */
  int quit;
  qorb_pool_t *pool;
  floor_list_t *floor;
  pthread_barrier_t start, end;
  _Alignas(CACHELINE) atomic_int stop; /* read every cycle: own line */
  char pad[CACHELINE - sizeof(atomic_int)];
} run_t;

/* One thread's figures for one mode, summed over its rounds. */
typedef struct per_mode {
  uint64_t cycles;
  uint64_t violations;
  uint64_t errors;
  int first_error;
  uint32_t *samples; /* ring of `cap` entries */
  size_t cap;
  size_t nsamples; /* taken, may exceed cap */
} per_mode_t;

typedef struct worker {
  _Alignas(CACHELINE) pthread_t tid;
  run_t *run;
  per_mode_t m[NMODES];
  uint64_t round_cycles;
  uint64_t end_ns;
} worker_t;

/*
 * One claim + release, with the correctness check. `mode` is a constant at
 * each call site, so the compiler keeps two separate loops.
 */
static inline __attribute__((always_inline)) int cycle(run_t *r, int mode,
                                                       per_mode_t *pm) {
  if (mode == MODE_QORB) {
    qorb_claim_t *cl;
    mock_conn_t *c;
    int rc = qorb_pool_claim_wait(r->pool, -1, &cl);
    if (rc != 0) {
      if (pm->errors++ == 0) pm->first_error = rc;
      return rc;
    }
    c = qorb_claim_conn(cl);
    if (c == NULL || held_enter(c))
      pm->violations++;
    else
      held_leave(c);
    qorb_release(cl);
  } else {
    mock_conn_t *c = floor_pop(r->floor);
    if (held_enter(c))
      pm->violations++;
    else
      held_leave(c);
    floor_push(r->floor, c);
  }
  return 0;
}

static inline __attribute__((always_inline)) void worker_loop(worker_t *w,
                                                              int mode) {
  run_t *r = w->run;
  per_mode_t *pm = &w->m[mode];
  uint64_t i = 0, done = 0;
  while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
    if ((i++ & SAMPLE_MASK) == 0) {
      uint64_t t0 = bench_now_ns(), dt;
      if (cycle(r, mode, pm) == 0) done++;
      dt = bench_now_ns() - t0;
      pm->samples[pm->nsamples++ % pm->cap] =
          dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
    } else if (cycle(r, mode, pm) == 0) {
      done++;
    }
  }
  w->end_ns = bench_now_ns();
  w->round_cycles = done;
  pm->cycles += done;
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  run_t *r = w->run;
  for (;;) {
    pthread_barrier_wait(&r->start);
    if (r->quit) break;
    if (r->mode == MODE_QORB)
      worker_loop(w, MODE_QORB);
    else
      worker_loop(w, MODE_FLOOR);
    pthread_barrier_wait(&r->end);
  }
  return NULL;
}

/* Merge the samples of `n` sources and fill the percentiles. */
static int finish_latency(result_t *res, per_mode_t *const *pms, unsigned n) {
  size_t total = 0, k = 0;
  unsigned i;
  uint32_t *all;
  for (i = 0; i < n; i++)
    total += pms[i]->nsamples < pms[i]->cap ? pms[i]->nsamples : pms[i]->cap;
  all = malloc((total ? total : 1) * sizeof(*all));
  if (all == NULL) return -1;
  for (i = 0; i < n; i++) {
    size_t m = pms[i]->nsamples < pms[i]->cap ? pms[i]->nsamples : pms[i]->cap;
    memcpy(all + k, pms[i]->samples, m * sizeof(*all));
    k += m;
  }
  qsort(all, total, sizeof(*all), cmp_u32);
  res->p50_ns = pct(all, total, 0.50);
  res->p99_ns = pct(all, total, 0.99);
  free(all);
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, unsigned n) {
  if (n == 0) return 0;
  qsort(v, n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_ROUNDS 50

/*
 * One (N, M) point: N threads, `rounds` rounds of each enabled mode (pool
 * and/or floor may be NULL), `seconds` of measuring per mode in all.
 * Fills res[MODE_QORB] and res[MODE_FLOOR] for the enabled modes and
 * *ratio (0 unless both ran).
 */
static int run_point(qorb_pool_t *pool, floor_list_t *floor,
                     unsigned nthreads, double seconds, unsigned rounds,
                     result_t res[NMODES], double *ratio) {
  run_t *r;
  worker_t *ws;
  unsigned i, k, mode, started = 0;
  int enabled[NMODES];
  double ops[NMODES][MAX_ROUNDS], ratios[MAX_ROUNDS];
  uint64_t round_ns = (uint64_t)(seconds / rounds * 1e9);
  /* Enough ring space for ~60M cycles/s over the run, shared out. */
  size_t cap = (size_t)(seconds * 60e6 / (SAMPLE_MASK + 1)) * 2 / nthreads +
               1024;
  int rc = -1;

  enabled[MODE_QORB] = pool != NULL;
  enabled[MODE_FLOOR] = floor != NULL;
  memset(res, 0, sizeof(result_t) * NMODES);
  *ratio = 0;
  r = aligned_alloc(CACHELINE, sizeof(*r));
  ws = aligned_alloc(CACHELINE, sizeof(*ws) * nthreads);
  if (r == NULL || ws == NULL) goto out_free;
  memset(r, 0, sizeof(*r));
  memset(ws, 0, sizeof(*ws) * nthreads);
  r->pool = pool;
  r->floor = floor;
  atomic_init(&r->stop, 0);
  for (i = 0; i < nthreads; i++) {
    ws[i].run = r;
    for (mode = 0; mode < NMODES; mode++) {
      if (!enabled[mode]) continue;
      ws[i].m[mode].cap = cap;
      ws[i].m[mode].samples = malloc(cap * sizeof(uint32_t));
      if (ws[i].m[mode].samples == NULL) goto out_free;
    }
  }
  if (pthread_barrier_init(&r->start, NULL, nthreads + 1) != 0) goto out_free;
  if (pthread_barrier_init(&r->end, NULL, nthreads + 1) != 0) {
    pthread_barrier_destroy(&r->start);
    goto out_free;
  }
  for (i = 0; i < nthreads; i++) {
    if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) break;
    started++;
  }
  if (started < nthreads) {
    /* A barrier sized for threads that do not exist never opens. */
    fprintf(stderr, "claim: pthread_create failed at %u threads\n", started);
    exit(2);
  }

  for (k = 0; k < rounds; k++) {
    unsigned j;
    for (j = 0; j < NMODES; j++) {
      /* ABBA: qorb first in even rounds, floor first in odd ones. */
      uint64_t t0, t_end = 0, cycles = 0;
      mode = (k % 2 == 0) ? j : NMODES - 1 - j;
      if (!enabled[mode]) continue;
      r->mode = (int)mode;
      atomic_store(&r->stop, 0);
      pthread_barrier_wait(&r->start);
      t0 = bench_now_ns();
      bench_sleep_ns(round_ns);
      atomic_store(&r->stop, 1);
      pthread_barrier_wait(&r->end);
      for (i = 0; i < nthreads; i++) {
        cycles += ws[i].round_cycles;
        if (ws[i].end_ns > t_end) t_end = ws[i].end_ns;
      }
      ops[mode][k] =
          t_end > t0 ? (double)cycles * 1e9 / (double)(t_end - t0) : 0;
      if (g_verbose)
        printf("# round=%u mode=%s threads=%u ops_per_s=%.0f\n", k,
               mode == MODE_QORB ? "threads" : "floor", nthreads,
               ops[mode][k]);
    }
    if (enabled[MODE_QORB] && enabled[MODE_FLOOR])
      ratios[k] = ops[MODE_FLOOR][k] > 0
                      ? ops[MODE_QORB][k] / ops[MODE_FLOOR][k]
                      : 0;
  }
  r->quit = 1;
  pthread_barrier_wait(&r->start);
  for (i = 0; i < started; i++) pthread_join(ws[i].tid, NULL);
  pthread_barrier_destroy(&r->start);
  pthread_barrier_destroy(&r->end);

  rc = 0;
  for (mode = 0; mode < NMODES; mode++) {
    per_mode_t *pms[MAX_THREADS];
    result_t *o = &res[mode];
    if (!enabled[mode]) continue;
    for (i = 0; i < nthreads; i++) {
      per_mode_t *pm = &ws[i].m[mode];
      pms[i] = pm;
      o->cycles += pm->cycles;
      o->violations += pm->violations;
      if (pm->errors && o->errors == 0) o->first_error = pm->first_error;
      o->errors += pm->errors;
      if (pm->cycles == 0) o->starved++;
    }
    o->ops_per_s = median(ops[mode], rounds);
    if (finish_latency(o, pms, nthreads) != 0) rc = -1;
  }
  if (enabled[MODE_QORB] && enabled[MODE_FLOOR])
    *ratio = median(ratios, rounds);

out_free:
  if (ws)
    for (i = 0; i < nthreads; i++)
      for (mode = 0; mode < NMODES; mode++) free(ws[i].m[mode].samples);
  free(ws);
  free(r);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Pool setup                                                                */

static int make_pool(qorb_pool_t **out, struct ev_loop *loop, unsigned m,
                     mock_ctx_t *mctx) {
  qorb_policy_t pol;
  qorb_resolver_t *res = NULL;
  qorb_connector_t *con = NULL;
  char err[256] = "";
  int rc;

  qorb_policy_init(&pol);
  pol.name = "bench";
  pol.max_slots = m;
  pol.spares_wanted = m;
  pol.max_connecting_per_backend = m;
  pol.max_waiters = MAX_THREADS + MAX_POOL;
  pol.claim_timeout_ms = 10000;
  pol.health_interval_ms = 0;
  pol.max_lifetime_ms = 0;
  pol.idle_timeout_ms = 0;
  pol.leak_threshold_ms = 0;

  rc = qorb_static_resolver_new(&res, "127.0.0.1:1", err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "claim: static resolver: %s %s\n", qorb_strerror(rc), err);
    return rc;
  }
  rc = qorb_connector_new(&con, &mock_ops, mctx);
  if (rc != 0) {
    fprintf(stderr, "claim: connector: %s\n", qorb_strerror(rc));
    qorb_resolver_free(res);
    return rc;
  }
  rc = qorb_pool_new(out, loop, &pol, res, con, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "claim: pool: %s %s\n", qorb_strerror(rc), err);
    qorb_connector_free(con);
    qorb_resolver_free(res);
  }
  return rc;
}

static int pool_idle(qorb_pool_t *pool, unsigned *idle, unsigned *claimed) {
  qorb_pool_stats_t st;
  int rc;
  qorb_pool_stats_init(&st);
  rc = qorb_pool_stats(pool, &st, NULL, 0, NULL);
  if (rc != 0) return rc;
  *idle = st.idle;
  if (claimed) *claimed = st.claimed;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Async mode: one loop, K interleaved claimants                             */

typedef struct async_run async_run_t;

typedef struct claimant {
  async_run_t *ar;
  qorb_claim_t *claim;
  int waiting; /* a qorb_pool_claim() callback is pending */
  int marked;  /* this claimant set the connection's held flag */
  int timed;   /* a sampled turn fell back: time it to the callback */
  uint64_t t0;
} claimant_t;

struct async_run {
  struct ev_loop *loop;
  qorb_pool_t *pool;
  unsigned m, k;
  claimant_t *cl;
  unsigned next;
  unsigned nwaiting;
  int stop;
  ev_idle drive;
  ev_timer stop_timer;
  /* Shared with run_until()'s tick. */
  ev_timer tick;
  int (*pred)(async_run_t *);
  uint64_t deadline;
  int pred_ok;
  int closed;
  per_mode_t w; /* counters and samples, as for a thread */
  uint64_t end_ns;
  uint64_t steps;
  uint64_t fallbacks;
};

static void async_take(claimant_t *c, qorb_claim_t *claim) {
  mock_conn_t *conn = qorb_claim_conn(claim);
  c->marked = 0;
  if (conn == NULL || held_enter(conn))
    c->ar->w.violations++;
  else
    c->marked = 1;
  c->claim = claim;
}

static void async_give_back(claimant_t *c) {
  if (c->marked) held_leave(qorb_claim_conn(c->claim));
  qorb_release(c->claim);
  c->claim = NULL;
}

static void async_claimed(qorb_pool_t *pool, int status, qorb_claim_t *claim,
                          void *arg) {
  claimant_t *c = arg;
  async_run_t *ar = c->ar;
  (void)pool;
  c->waiting = 0;
  ar->nwaiting--;
  if (status != 0) {
    c->timed = 0;
    if (ar->w.errors++ == 0) ar->w.first_error = status;
    return;
  }
  async_take(c, claim);
  ar->w.cycles++;
  if (c->timed) {
    /* A sampled turn that had to wait: its latency runs to here. */
    uint64_t dt = bench_now_ns() - c->t0;
    ar->w.samples[ar->w.nsamples++ % ar->w.cap] =
        dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
    c->timed = 0;
  }
  /* Once stopped, hand it straight back so the pool can close. */
  if (ar->stop) async_give_back(c);
}

/*
 * One claimant's turn: give back what it holds, then take again, fast path
 * first. Claimants hold their claim between turns, so up to K claims are
 * out at once, as with K requests in flight on one event loop.
 */
static inline int async_step(async_run_t *ar, claimant_t *c) {
  qorb_claim_t *claim;
  int rc;
  if (c->claim) async_give_back(c);
  rc = qorb_pool_try_claim(ar->pool, &claim);
  if (rc == 0) {
    async_take(c, claim);
    return 0;
  }
  if (rc == QORB_EAGAIN) {
    rc = qorb_pool_claim(ar->pool, -1, async_claimed, c, NULL);
    if (rc == 0) {
      c->waiting = 1;
      ar->nwaiting++;
      ar->fallbacks++;
      return 1;
    }
  }
  if (ar->w.errors++ == 0) ar->w.first_error = rc;
  return -1;
}

static void async_drive(struct ev_loop *loop, ev_idle *w, int revents) {
  async_run_t *ar = w->data;
  unsigned b, skipped = 0;
  (void)loop;
  (void)revents;
  for (b = 0; b < ASYNC_BATCH && !ar->stop; b++) {
    claimant_t *c = &ar->cl[ar->next];
    if (++ar->next == ar->k) ar->next = 0;
    if (c->waiting) {
      /* Every claimant waits on the loop: let it run. */
      if (++skipped >= ar->k) break;
      continue;
    }
    skipped = 0;
    if ((ar->steps++ & SAMPLE_MASK) == 0) {
      uint64_t t0 = bench_now_ns(), dt;
      int rc = async_step(ar, c);
      dt = bench_now_ns() - t0;
      if (rc == 0) {
        ar->w.cycles++;
        ar->w.samples[ar->w.nsamples++ % ar->w.cap] =
            dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
      } else if (rc == 1) {
        c->timed = 1;
        c->t0 = t0;
      }
    } else if (async_step(ar, c) == 0) {
      ar->w.cycles++;
    }
  }
}

static void async_stop(struct ev_loop *loop, ev_timer *w, int revents) {
  async_run_t *ar = w->data;
  (void)revents;
  ar->stop = 1;
  ar->end_ns = bench_now_ns();
  ev_idle_stop(loop, &ar->drive);
  ev_break(loop, EVBREAK_ONE);
}

static void async_tick(struct ev_loop *loop, ev_timer *w, int revents) {
  async_run_t *ar = w->data;
  (void)revents;
  if (ar->pred(ar)) {
    ar->pred_ok = 1;
    ev_break(loop, EVBREAK_ONE);
  } else if (bench_now_ns() >= ar->deadline) {
    ev_break(loop, EVBREAK_ONE);
  }
}

/* Run the loop until pred() holds, checked every millisecond, bounded. */
static int run_until(async_run_t *ar, int (*pred)(async_run_t *),
                     double seconds) {
  if (pred(ar)) return 0;
  ar->pred = pred;
  ar->pred_ok = 0;
  ar->deadline = bench_now_ns() + (uint64_t)(seconds * 1e9);
  ev_timer_init(&ar->tick, async_tick, 0.001, 0.001);
  ar->tick.data = ar;
  ev_timer_start(ar->loop, &ar->tick);
  ev_run(ar->loop, 0);
  ev_timer_stop(ar->loop, &ar->tick);
  return ar->pred_ok ? 0 : -1;
}

static int pred_none_waiting(async_run_t *ar) { return ar->nwaiting == 0; }

static int pred_closed(async_run_t *ar) { return ar->closed; }

static void async_pool_closed(qorb_pool_t *pool, int status, void *arg) {
  async_run_t *ar = arg;
  (void)pool;
  (void)status;
  ar->closed = 1;
}

static int run_async(unsigned m, unsigned k, double seconds, unsigned rounds,
                     result_t *res, mock_ctx_t *mctx) {
  async_run_t ar;
  per_mode_t *pm = &ar.w;
  double ops[MAX_ROUNDS];
  unsigned i, round;
  int rc = -1;

  memset(res, 0, sizeof(*res));
  memset(&ar, 0, sizeof(ar));
  ar.m = m;
  ar.k = k;
  ar.loop = ev_loop_new(EVFLAG_AUTO);
  ar.cl = calloc(k, sizeof(*ar.cl));
  ar.w.cap = (size_t)(seconds * 60e6 / (SAMPLE_MASK + 1)) * 2 + 1024;
  ar.w.samples = malloc(ar.w.cap * sizeof(uint32_t));
  if (ar.loop == NULL || ar.cl == NULL || ar.w.samples == NULL) goto out;
  for (i = 0; i < k; i++) ar.cl[i].ar = &ar;
  if (make_pool(&ar.pool, ar.loop, m, mctx) != 0) goto out;
  if (bench_wait_idle("claim: async", ar.pool, m, 10000, ar.loop) != 0)
    goto close;

  ev_idle_init(&ar.drive, async_drive);
  ar.drive.data = &ar;
  ev_timer_init(&ar.stop_timer, async_stop, seconds / rounds, 0.);
  ar.stop_timer.data = &ar;
  /* Rounds as in the thread modes; claims stay held between rounds. */
  for (round = 0; round < rounds; round++) {
    uint64_t c0 = ar.w.cycles, t0;
    ar.stop = 0;
    ev_timer_set(&ar.stop_timer, seconds / rounds, 0.);
    ev_now_update(ar.loop);
    t0 = bench_now_ns();
    ev_idle_start(ar.loop, &ar.drive);
    ev_timer_start(ar.loop, &ar.stop_timer);
    ev_run(ar.loop, 0);
    ev_timer_stop(ar.loop, &ar.stop_timer);
    ev_idle_stop(ar.loop, &ar.drive);
    if (!ar.stop) { /* ev_run returned for another reason */
      ar.stop = 1;
      ar.end_ns = bench_now_ns();
    }
    ops[round] = ar.end_ns > t0 ? (double)(ar.w.cycles - c0) * 1e9 /
                                      (double)(ar.end_ns - t0)
                                : 0;
    if (g_verbose)
      printf("# round=%u mode=async ops_per_s=%.0f\n", round, ops[round]);
  }

  res->cycles = ar.w.cycles;
  res->ops_per_s = median(ops, rounds);
  res->violations = ar.w.violations;
  res->errors = ar.w.errors;
  res->first_error = ar.w.first_error;
  res->fallbacks = ar.fallbacks;
  res->starved = ar.w.cycles == 0;
  if (finish_latency(res, &pm, 1) != 0) goto close;
  rc = 0;

close:
  /* Give everything back; queued claims are served, then handed back. */
  for (i = 0; i < k; i++)
    if (ar.cl[i].claim) async_give_back(&ar.cl[i]);
  if (run_until(&ar, pred_none_waiting, 10.0) != 0)
    fprintf(stderr, "claim: async: %u claims still queued\n", ar.nwaiting);
  if (qorb_pool_close(ar.pool, async_pool_closed, &ar) == 0 &&
      run_until(&ar, pred_closed, 10.0) != 0) {
    fprintf(stderr, "claim: async pool did not close within 10 s\n");
    rc = -1;
    /* The pool still has watchers on the loop: leave both be. */
    ar.loop = NULL;
  }
out:
  if (ar.loop) ev_loop_destroy(ar.loop);
  free(ar.cl);
  free(ar.w.samples);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Options and main                                                          */

static void usage(FILE *f) {
  fprintf(f,
          "usage: claim [--seconds S] [--threads 1,2,4,8,16,32] "
          "[--pools 8,32]\n"
          "             [--modes threads,floor,async] [--claimants K] "
          "[--rounds R] [--no-check]\n"
          "             [--verbose]\n"
          "  --seconds S    measured time per mode and point (default 0.5)\n"
          "  --threads L    thread counts for the threads and floor modes\n"
          "  --pools L      pool sizes (max_slots = spares = M)\n"
          "  --modes L      which modes to run (default all three)\n"
          "  --claimants K  concurrent claimants in async mode (default M)\n"
          "  --rounds R     rounds per mode, alternated; medians (default 5)\n"
          "  --no-check     skip the held-flag CAS (in every mode)\n"
          "  --verbose      print every round's figure as a # line\n");
}

/* Median cost of the two clock reads around a sampled cycle. */
static uint64_t clock_overhead(void) {
  uint32_t s[1001];
  unsigned i;
  for (i = 0; i < 1001; i++) {
    uint64_t a = bench_now_ns(), b = bench_now_ns();
    s[i] = (uint32_t)(b - a);
  }
  qsort(s, 1001, sizeof(s[0]), cmp_u32);
  return s[500];
}

int main(int argc, char **argv) {
  unsigned threads[MAX_LIST] = {1, 2, 4, 8, 16, 32}, nthreads = 6;
  unsigned pools[MAX_LIST] = {8, 32}, npools = 2;
  unsigned claimants = 0;
  int do_threads = 1, do_floor = 1, do_async = 1;
  double seconds = 0.5;
  unsigned pi, ti;
  int i, failed = 0;
  uint64_t total_violations = 0, total_errors = 0;
  unsigned total_starved = 0;
  unsigned rounds = 5;
  double load[1];

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--seconds") == 0 && v) {
      seconds = strtod(v, NULL);
      if (!(seconds >= 0.01 && seconds <= 30)) {
        fprintf(stderr, "claim: --seconds must be in [0.01, 30]\n");
        return 2;
      }
      i++;
    } else if (strcmp(a, "--threads") == 0 && v) {
      if (bench_parse_list(v, threads, MAX_LIST, MAX_THREADS, &nthreads) != 0) {
        fprintf(stderr, "claim: bad --threads list (1..%d)\n", MAX_THREADS);
        return 2;
      }
      i++;
    } else if (strcmp(a, "--pools") == 0 && v) {
      if (bench_parse_list(v, pools, MAX_LIST, MAX_POOL, &npools) != 0) {
        fprintf(stderr, "claim: bad --pools list (1..%d)\n", MAX_POOL);
        return 2;
      }
      i++;
    } else if (strcmp(a, "--modes") == 0 && v) {
      do_threads = strstr(v, "threads") != NULL;
      do_floor = strstr(v, "floor") != NULL;
      do_async = strstr(v, "async") != NULL;
      if (!do_threads && !do_floor && !do_async) {
        fprintf(stderr, "claim: --modes needs threads, floor or async\n");
        return 2;
      }
      i++;
    } else if (strcmp(a, "--rounds") == 0 && v) {
      unsigned n;
      unsigned list[MAX_LIST];
      if (bench_parse_list(v, list, MAX_LIST, MAX_ROUNDS, &n) != 0 || n != 1) {
        fprintf(stderr, "claim: bad --rounds (1..%d)\n", MAX_ROUNDS);
        return 2;
      }
      rounds = list[0];
      i++;
    } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
      g_verbose = 1;
    } else if (strcmp(a, "--no-check") == 0) {
      g_check = 0;
    } else if (strcmp(a, "--claimants") == 0 && v) {
      unsigned n;
      unsigned list[MAX_LIST];
      if (bench_parse_list(v, list, MAX_LIST, MAX_POOL, &n) != 0 || n != 1) {
        fprintf(stderr, "claim: bad --claimants\n");
        return 2;
      }
      claimants = list[0];
      i++;
    } else {
      usage(stderr);
      return 2;
    }
  }

  if (seconds / rounds < 0.005) {
    fprintf(stderr, "claim: rounds shorter than 5 ms; use fewer --rounds\n");
    return 2;
  }
  /* Other work on the machine skews absolute figures more than ratios. */
  if (getloadavg(load, 1) != 1) load[0] = -1;
  printf("# bench=claim seconds=%.2f rounds=%u sample=1/%u check=%s "
         "clock_pair_ns=%llu (included in p50/p99) loadavg=%.2f\n",
         seconds, rounds, SAMPLE_MASK + 1, g_check ? "on" : "off",
         (unsigned long long)clock_overhead(), load[0]);
  fflush(stdout);

  for (pi = 0; pi < npools; pi++) {
    unsigned m = pools[pi];
    mock_ctx_t mctx;
    qorb_pool_t *pool = NULL;
    floor_list_t floor;
    int have_floor = 0;

    atomic_init(&mctx.opened, 0u);
    atomic_init(&mctx.closed, 0u);
    if (do_threads) {
      if (make_pool(&pool, NULL, m, &mctx) != 0 ||
          bench_wait_idle("claim", pool, m, 10000, NULL) != 0) {
        failed = 1;
        if (pool) qorb_pool_close(pool, NULL, NULL);
        pool = NULL;
      }
    }
    if (do_floor) {
      if (floor_init(&floor, m) != 0) {
        fprintf(stderr, "claim: out of memory\n");
        return 1;
      }
      have_floor = 1;
    }

    for (ti = 0; ti < nthreads; ti++) {
      unsigned n = threads[ti];
      result_t rs[NMODES];
      double ratio;
      if (pool == NULL && !have_floor) break;
      if (run_point(pool, have_floor ? &floor : NULL, n, seconds, rounds, rs,
                    &ratio) != 0) {
        failed = 1;
        continue;
      }
      if (pool) {
        print_result("threads", n, m, &rs[MODE_QORB]);
        total_violations += rs[MODE_QORB].violations;
        total_starved += rs[MODE_QORB].starved;
        total_errors += rs[MODE_QORB].errors;
      }
      if (have_floor) {
        print_result("floor", n, m, &rs[MODE_FLOOR]);
        total_violations += rs[MODE_FLOOR].violations;
      }
      if (pool && have_floor)
        printf("bench=claim ratio threads=%u pool=%u qorb_over_floor=%.2f\n",
               n, m, ratio);
      fflush(stdout);
    }

    if (pool) {
      unsigned idle = 0, claimed = 0;
      if (pool_idle(pool, &idle, &claimed) == 0 && claimed != 0) {
        fprintf(stderr, "claim: %u slots still claimed after the runs\n",
                claimed);
        failed = 1;
      }
      qorb_pool_close(pool, NULL, NULL);
      if (atomic_load(&mctx.opened) != atomic_load(&mctx.closed)) {
        fprintf(stderr, "claim: %u connections opened, %u closed\n",
                atomic_load(&mctx.opened), atomic_load(&mctx.closed));
        failed = 1;
      }
    }
    if (have_floor) floor_fini(&floor);

    if (do_async) {
      result_t ra;
      mock_ctx_t actx;
      atomic_init(&actx.opened, 0u);
      atomic_init(&actx.closed, 0u);
      if (run_async(m, claimants ? claimants : m, seconds, rounds, &ra,
                    &actx) == 0) {
        print_result("async", 1, m, &ra);
        total_violations += ra.violations;
        total_starved += ra.starved;
        total_errors += ra.errors;
      } else {
        failed = 1;
      }
      if (atomic_load(&actx.opened) != atomic_load(&actx.closed)) {
        fprintf(stderr, "claim: async: %u connections opened, %u closed\n",
                atomic_load(&actx.opened), atomic_load(&actx.closed));
        failed = 1;
      }
    }
  }

  if (total_violations || total_starved || total_errors) {
    fprintf(stderr, "claim: %llu violations, %u starved threads, %llu errors\n",
            (unsigned long long)total_violations, total_starved,
            (unsigned long long)total_errors);
    failed = 1;
  }
  return failed ? 1 : 0;
}
