/* SPDX-License-Identifier: MIT */
/*
 * itest.h: what the integration tests of every connector share (the
 * qorb-pg and qorb-redis suites, through their pg_testlib and
 * redis_testlib): running the suite's server script, the test pools'
 * policy and construction (also with a connector whose idle watch is off),
 * bounded waits on a condition that another thread (the pool's) changes,
 * and lookups in the pool's stats by backend address. The helpers that
 * fail the test do so through cmocka.
 */
#ifndef QORB_TEST_ITEST_H
#define QORB_TEST_ITEST_H

#include <stddef.h>
#include <stdint.h>

#include <qorb/qorb.h>

/* Milliseconds on the monotonic clock. */
uint64_t itest_now_ms(void);

/* Sleep a little: the step of every bounded wait loop. */
void itest_nap_ms(unsigned ms);

/*
 * Wait until `cond` is true, polling every 10 ms, at most `ms`
 * milliseconds. The caller asserts the condition afterwards.
 */
#define ITEST_WAIT(cond, ms)                                                   \
  do {                                                                         \
    uint64_t itest_end_ = itest_now_ms() + (uint64_t)(ms);                     \
    while (!(cond) && itest_now_ms() < itest_end_)                             \
      itest_nap_ms(10);                                                        \
  } while (0)

/*
 * Run `sh SCRIPT TESTBED ARGS` (a suite's server script on its test bed
 * folder); returns its exit status (0 = success) and says so on stderr
 * when it failed.
 */
int itest_script(const char *script, const char *testbed, const char *args);

/*
 * The test pools' policy: the library defaults, `name`, quick backoff
 * (min 20 ms, max 200 ms, spread 20 ms), claims failing fast 300 ms into an
 * outage of every backend, and the pool's log on stderr when
 * the environment variable `verbose_env` is set (e.g. PGT_VERBOSE=1).
 * `verbose_env` must outlive the pool (a string literal).
 */
void itest_policy(qorb_policy_t *pol, const char *name,
                  const char *verbose_env);

/*
 * Make the policy one of `n` connections, all kept as spares, with the
 * health checks off (health_interval_ms 0): a dead idle connection is then
 * found only by the pool's idle watch (or when a sibling's death warns
 * it), never by a check on a timer.
 */
void itest_no_checks(qorb_policy_t *pol, unsigned n);

/*
 * A pool over a static resolver for `backends` and `connector`, on `loop`
 * (NULL: a thread of the pool's own). Returns 0 or the failing call's code,
 * after printing why on stderr. Ownership: `connector` is transferred (the
 * pool's on success, freed here on failure).
 */
int itest_pool_new(qorb_pool_t **pool, const char *backends,
                   qorb_connector_t *connector, struct ev_loop *loop,
                   const qorb_policy_t *pol);

/*
 * A connector like the one whose op table is `ops` and context `ctx`, but
 * without the idle watch (no idle_fd, no peek) and without destroy: an
 * idle connection that died is then found only by a health check, by its
 * next claimant, or when a sibling's failure (QORB_EGONE) makes the pool
 * check the backend's idle connections. `storage` receives the table and
 * must outlive the connector; `ctx` stays the caller's (e.g. the context
 * of a connector made by the library, freed with it after the pool).
 * Returns qorb_connector_new()'s code.
 */
int itest_unwatched(qorb_connector_t **out, const qorb_connector_ops_t *ops,
                    void *ctx, qorb_connector_ops_t *storage);

/* Close a pool (blocking when it runs its own thread) and assert it
 * worked. NULL is ignored. */
void itest_close(qorb_pool_t *pool);

/*
 * Stats of one backend by its "host:port" text. Returns 0 and fills `out`
 * (if not NULL), or -1 if the pool does not know it. `pool_out`, if not
 * NULL, receives the pool's own stats. Asserts that the snapshot worked.
 */
int itest_backend(qorb_pool_t *pool, const char *addr,
                  qorb_backend_stats_t *out, qorb_pool_stats_t *pool_out);

/* Shorthands over itest_backend(): 0 when the backend is unknown. */
int itest_online(qorb_pool_t *pool, const char *addr);
unsigned itest_idle(qorb_pool_t *pool, const char *addr);
uint64_t itest_claims(qorb_pool_t *pool, const char *addr);
uint64_t itest_connects(qorb_pool_t *pool, const char *addr);
uint64_t itest_failures(qorb_pool_t *pool, const char *addr);

/* Idle slots over all backends. */
unsigned itest_total_idle(qorb_pool_t *pool);

/* The backend's last_error, copied into `buf` ("" when unknown). */
const char *itest_last_error(qorb_pool_t *pool, const char *addr, char *buf,
                             size_t len);

/* Wait (bounded by `ms`) until the backend's last_error contains both
   `what` and `also` (NULL: only `what`); fails the test otherwise. */
void itest_wait_error(qorb_pool_t *pool, const char *addr, const char *what,
                      const char *also, unsigned ms);

#endif /* QORB_TEST_ITEST_H */
