/* SPDX-License-Identifier: MIT */
/*
 * bench_common.h: what the benchmark programs share (bench/claim,
 * bench/pg/pg_bench, bench/redis/redis_bench): the monotonic clock and
 * sleeps, a latency histogram with percentiles, comma lists of counts on
 * the command line, waiting until a pool has every slot idle, running N
 * client threads through a warm-up and a measured window, and (pg_bench,
 * redis_bench) running N client threads through short rounds of several
 * paths in turn, with medians and per-thread shares.
 */
#ifndef QORB_BENCH_COMMON_H
#define QORB_BENCH_COMMON_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <qorb/qorb.h>

/* ------------------------------------------------------------- time */

/* Nanoseconds on the monotonic clock. */
uint64_t bench_now_ns(void);

/* Sleep `ns` (or `ms`), resuming after a signal. */
void bench_sleep_ns(uint64_t ns);
void bench_nap_ms(unsigned ms);

/* -------------------------------------------------------- histogram */

/* 1 us buckets up to 50 ms, then one overflow bucket. */
#define BENCH_HIST_US 50000

typedef struct bench_hist {
  uint64_t n;
  uint64_t max_ns;
  uint32_t b[BENCH_HIST_US + 1];
} bench_hist_t;

void bench_hist_add(bench_hist_t *h, uint64_t ns);
void bench_hist_merge(bench_hist_t *into, const bench_hist_t *h);

/*
 * The `pct` percentile (0-100) in microseconds, by nearest rank: the
 * middle of the bucket holding that sample (x.5), or the largest sample
 * when it fell in the overflow bucket; 0 for an empty histogram.
 */
double bench_hist_pct(const bench_hist_t *h, double pct);

/* ----------------------------------------------------------- options */

/*
 * Parse a comma list of counts ("1,8,32") into `out` (at most `cap`
 * entries), each in [1, max_value]; *n receives how many. Returns 0, or -1
 * for an empty or malformed list, a value out of range or too many.
 */
int bench_parse_list(const char *s, unsigned *out, unsigned cap,
                     unsigned max_value, unsigned *n);

/* -------------------------------------------------------------- pools */

/*
 * Wait, at most `timeout_ms`, until `want` slots of `pool` are idle (a
 * benchmark measures a full pool): polling its stats every millisecond,
 * or, when `loop` is not NULL (the pool lives on the caller's loop, which
 * nothing else runs), running that loop meanwhile. Returns 0, or -1 after
 * saying on stderr, prefixed with `prog`, how many were idle.
 */
int bench_wait_idle(const char *prog, qorb_pool_t *pool, unsigned want,
                    unsigned timeout_ms, struct ev_loop *loop);

/* ------------------------------------------------------ client threads */

/*
 * What a run's client threads look at. A client calls bench_ready() once
 * when it starts, then loops until bench_stopping(), and counts what it
 * does only while bench_measuring().
 */
typedef struct bench_run {
  atomic_int ready;
  atomic_int measuring;
  atomic_int stop;
} bench_run_t;

static inline void bench_ready(bench_run_t *r) {
  atomic_fetch_add(&r->ready, 1);
}

static inline int bench_measuring(bench_run_t *r) {
  return atomic_load_explicit(&r->measuring, memory_order_relaxed);
}

static inline int bench_stopping(bench_run_t *r) {
  return atomic_load_explicit(&r->stop, memory_order_relaxed);
}

/*
 * Run `n` client threads, fn(args + i * stride) for i < n: wait (bounded,
 * 10 s) until every one is ready, let them warm up for `warmup_s`, then
 * measure for `seconds` (ended early when *interrupted, if given, becomes
 * non-zero), stop and join them. *window_ns receives the measured
 * window's length. Returns 0; -1 if a thread could not be started (those
 * that were are stopped and joined).
 */
int bench_run_threads(bench_run_t *run, unsigned n, void *(*fn)(void *),
                      void *args, size_t stride, double warmup_s,
                      double seconds, volatile sig_atomic_t *interrupted,
                      uint64_t *window_ns);

/* ------------------------------------------------------------- rounds */

/*
 * A machine shared with other work drifts by tens of percent from one
 * second to the next, so pg_bench and redis_bench do not measure a path in
 * one long window: the same N client threads run short rounds of every
 * path in turn, in ABBA order, and a figure is the median over rounds; a
 * ratio is the median of the ratios of rounds measured next to each other.
 * (bench/claim does the same with its own loop.)
 */

/* The median of v[0..n-1] (sorted in place); 0 when n is 0. */
double bench_median(double *v, unsigned n);

/*
 * Shares of work: ops[i] is what client i did in all its rounds of one
 * path. *min_share and *max_share receive the smallest and largest
 * relative to the mean (1.0 each when the mean is 0 or n is 0). Returns
 * how many clients are starved or favoured: outside [mean / 2, 2 * mean].
 */
unsigned bench_shares(const uint64_t *ops, unsigned n, double *min_share,
                      double *max_share);

/*
 * A group of N client threads that run rounds on the main thread's word.
 * Each round, every client calls fn(args + i * stride, path) once; fn
 * loops until bench_group_stopping() and returns. Between rounds the
 * clients are parked on a barrier, so the main thread may read and reset
 * what they count without locks.
 */
typedef struct bench_group bench_group_t;

/* Start `n` threads; NULL (after saying so on stderr) if one could not be. */
bench_group_t *bench_group_start(unsigned n, void (*fn)(void *arg, int path),
                                 void *args, size_t stride);

/*
 * One round of `path`: release the clients, sleep `seconds`, tell them to
 * stop, wait for each to finish the operation it is in. Returns the
 * round's length in nanoseconds, from the release until the last client
 * finished. Bounded by `seconds` plus the longest single operation.
 */
uint64_t bench_group_round(bench_group_t *g, int path, double seconds);

/* Non-zero once the current round should end (read it every operation). */
int bench_group_stopping(const bench_group_t *g);

/* Stop and join the threads and free the group (NULL is allowed). */
void bench_group_stop(bench_group_t *g);

#endif /* QORB_BENCH_COMMON_H */
