/* SPDX-License-Identifier: MIT */
/**
 * @file pool.h
 * pool.h: the pool. It owns a resolver and a connector, keeps one slot set
 * per backend, and hands out claims on connections that are open, healthy
 * and clean.
 *
 * Threads. All slot work runs on one libev loop, the pool loop: either the
 * application's (pass it to qorb_pool_new() and run it) or one on a thread
 * the pool owns (pass NULL). Claims come three ways:
 *   - qorb_pool_try_claim(): never waits; an idle connection or QORB_EAGAIN.
 *   - qorb_pool_claim_wait(): blocks the calling thread up to a timeout.
 *   - qorb_pool_claim(): a callback on the pool loop, never from inside the
 *     call.
 * try_claim, claim_wait, release and stats may be called from any thread;
 * when an idle connection exists, claim and release take no lock, make no
 * system call and allocate nothing.
 */
#ifndef QORB_POOL_H
#define QORB_POOL_H

#include "common.h"
#include "connector.h"
#include "resolver.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;

/** A pool (qorb_pool_new()). Opaque. */
typedef struct qorb_pool qorb_pool_t;
/** A claimed connection. Opaque; valid until released. */
typedef struct qorb_claim qorb_claim_t;

/**
 * A lifecycle hook (policy.after_connect, before_acquire, after_release),
 * with the semantics of pgxpool's AfterConnect, BeforeAcquire and
 * AfterRelease, but asynchronous, so that the pool loop never blocks.
 *
 * It runs on the pool loop while the pool owns the connection (nobody has
 * it claimed), and decides through the slot's op handle, as a connector op
 * does: it returns 0 once started, and then calls qorb_op_done(op, 0) to
 * keep the connection, or qorb_op_done(op, code) with a negative code
 * (QORB_EREJECTED, or the failure's own) to close it; it may call
 * qorb_op_done() before it returns. A negative return means it could not
 * start (then it must not call qorb_op_done()), and closes the connection
 * too. qorb_op_set_error() records why, as the backend's last error. A
 * closed connection is never handed out; claims take another one.
 *
 * The pool bounds each run by policy.hook_timeout_ms. When the bound
 * passes (or the pool closes) it calls policy.hook_cancel, if set, and
 * then closes the connection, which aborts what the connector's own hook
 * helpers started (qorb_pg_hook_exec(), qorb_redis_hook_command()); after
 * that the hook must not call qorb_op_done(). A hook that works by other
 * means (its own watchers) must set hook_cancel to stop them.
 *
 * @param arg   policy.hook_arg.
 * @param op    the slot's op handle: for qorb_op_done(), qorb_op_set_error(),
 *              qorb_op_addr(), qorb_op_loop() and the connectors' hook
 *              helpers.
 * @param conn  the connector's connection object (for qorb-pg and
 *              qorb-redis, give it to their hook helpers, or read the
 *              driver's handle with qorb_pg_hook_conn() /
 *              qorb_redis_hook_ctx()).
 * Thread: the pool loop.
 */
typedef int (*qorb_hook_fn)(void *arg, qorb_op_t *op, void *conn);

/**
 * policy.hook_cancel: a hook run on `op` is being abandoned (timed out, or
 * the pool is closing); stop what it started. The connection closes right
 * after. Thread: the pool loop.
 */
typedef void (*qorb_hook_cancel_fn)(void *arg, qorb_op_t *op, void *conn);

/**
 * Pool policy: every knob, with defaults from qorb_policy_init(). Plain
 * data; new fields are only ever appended, and `size` says which a caller
 * knows: a program built against an older, shorter policy gets the
 * defaults for the fields it lacks, and one built against a newer, longer
 * policy is accepted (fields beyond this library's are ignored). Times are
 * in milliseconds.
 */
typedef struct qorb_policy {
  size_t size;                  /**< set by qorb_policy_init() */
  const char *name;             /**< pool name for stats, logs and probes
                                     (copied, 1 to 63 characters; default
                                     "qorb") */
  unsigned spares_wanted;       /**< idle connections kept beyond the claimed
                                     ones (default 2) */
  unsigned max_slots;           /**< connections over all backends (16) */
  unsigned max_slots_per_backend;  /**< cap per backend; 0 = max_slots (0) */
  unsigned max_connecting_per_backend; /**< concurrent connection attempts
                                     per backend (2) */
  unsigned max_waiters;         /**< bounded claim queue; further claims fail
                                     at once with QORB_EQUEUEFULL (1024) */
  unsigned claim_timeout_ms;    /**< default wait for a claim (5000) */
  unsigned connect_timeout_ms;  /**< one connection attempt (5000) */
  unsigned min_backoff_ms;      /**< first reconnect delay (50) */
  unsigned max_backoff_ms;      /**< backoff cap (500): with one probing
                                     connection to a backend that is down,
                                     about 2 attempts a second */
  unsigned backoff_spread_ms;   /**< random extra in [0, spread) (100) */
  unsigned health_interval_ms;  /**< idle health checks; 0 = off (30000) */
  unsigned health_check_timeout_ms; /**< bound on one check (2000) */
  union {
    unsigned prepare_timeout_ms; /**< bound on the connector's prepare
                                     (on_acquire: e.g. qorb-pg's
                                     acquire_sql) before a connection is
                                     claimable (5000). Not a claim's wait:
                                     that is claim_timeout_ms */
    unsigned acquire_timeout_ms; /**< the same field's earlier name */
  };
  unsigned recycle_timeout_ms;  /**< bound on on_recycle (5000) */
  unsigned rebalance_interval_ms; /**< periodic rebalance (1000) */
  unsigned failure_window_ms;   /**< window of the failure count that ranks
                                     backends (60000) */
  unsigned max_lifetime_ms;     /**< retire connections this old, minus up to
                                     max_lifetime_jitter_ms; 0 = never, else
                                     at least 100 (1800000). The
                                     old connection serves until its
                                     replacement is up; meanwhile the pool
                                     may hold up to max_slots/8 + 1
                                     connections beyond max_slots. */
  unsigned idle_timeout_ms;     /**< shrink towards the spares after demand
                                     has been lower this long; 0 = never
                                     (600000) */
  unsigned leak_threshold_ms;   /**< report claims held longer; 0 = off (0) */
  qorb_log_cb log_cb;           /**< optional log callback */
  void *log_arg;                /**< its argument */
  /* Appended in 0.2. */
  unsigned fail_fast_after_ms;  /**< claims fail at once (QORB_ENOTONLINE)
                                     only after every known backend has been
                                     offline, with a failed connect, this
                                     long; until then they wait up to their
                                     timeout, so a backend that restarts
                                     costs no failed claim. 0 = at once
                                     (10000) */
  unsigned validate_idle_ms;    /**< a claim that finds a connection idle
                                     longer than this first asks the
                                     connector to look at it (`peek`: no
                                     round trip, no waiting; a dead one is
                                     closed and the claim takes another).
                                     0 = off (0): idle connections are
                                     watched by the pool loop anyway */
  unsigned waiter_priority_us;  /**< a queued claim that has waited this
                                     long is served before any claim that
                                     did not queue: the next connection
                                     released goes to the oldest such claim
                                     (FIFO among them). Until then a thread
                                     that releases and claims again, or
                                     arrives while a connection is idle,
                                     may take it first, which saves the
                                     hand-off's thread wake-up. Queued
                                     asynchronous claims are never passed.
                                     0 = strict FIFO; at most 1000000
                                     (1000, one millisecond) */
  unsigned min_conns;           /**< connections kept open at all times,
                                     whatever the demand (pgxpool's
                                     MinConns): idle shrinking stops here,
                                     and the pool opens them at start. At
                                     most max_slots (0) */
  unsigned max_lifetime_jitter_ms; /**< each connection retires up to this
                                     much before max_lifetime_ms (a random
                                     share), so that connections opened
                                     together do not all expire together;
                                     at most max_lifetime_ms.
                                     QORB_LIFETIME_JITTER_AUTO: 2.5% of
                                     max_lifetime_ms (the default) */
  /* Appended in 0.2: lifecycle hooks (see qorb_hook_fn). */
  qorb_hook_fn after_connect;   /**< once per new connection, after the
                                     connector's connect and before its
                                     first prepare: set session defaults,
                                     prepare statements. A failure or a
                                     timeout closes the connection and
                                     counts as the backend's failure
                                     (backoff) (NULL) */
  qorb_hook_fn before_acquire;  /**< before each hand-out: after connect
                                     (and after_connect and prepare), and
                                     after each release's cleaning, before
                                     the connection becomes claimable. A
                                     rejection closes it and the slot
                                     connects again after a backoff; claims
                                     take other connections meanwhile.
                                     With this or after_release set, every
                                     release goes through the pool loop
                                     (NULL) */
  qorb_hook_fn after_release;   /**< after each release, before the
                                     connection is cleaned, with whatever
                                     state the claimant left (for qorb-pg,
                                     possibly inside its open transaction,
                                     which the cleaning then rolls back): a
                                     rejection closes it and a new one
                                     replaces it at once. Not for a release
                                     with qorb_release_broken(), nor for
                                     one the connector finds broken (NULL) */
  qorb_hook_cancel_fn hook_cancel; /**< when a hook has not finished in
                                     hook_timeout_ms, or the pool closes
                                     under it: drop whatever the hook
                                     started by its own means, before the
                                     connection closes (NULL) */
  void *hook_arg;               /**< the hooks' first argument */
  unsigned hook_timeout_ms;     /**< bound on each hook run (5000) */
} qorb_policy_t;

/** max_lifetime_jitter_ms: 2.5% of max_lifetime_ms. */
#define QORB_LIFETIME_JITTER_AUTO 0xffffffffu

/** Fill `p` with the defaults. Thread: any. */
#define qorb_policy_init(p) qorb_policy_init_((p), sizeof(*(p)))
QORB_EXTERN void qorb_policy_init_(qorb_policy_t *p, size_t size);

/**
 * Check a policy without making a pool.
 * @param err     if not NULL, receives a message naming the bad field.
 * @return 0, QORB_EINVAL (NULL, or `size` not set by qorb_policy_init()),
 *         QORB_EPOLICY (a value out of range: max_slots 0, spares over
 *         max_slots, min_backoff over max_backoff, a zero timeout, ...).
 * Thread: any.
 */
QORB_EXTERN int qorb_policy_validate(const qorb_policy_t *p, char *err,
                                     size_t errlen);

/**
 * Make a pool and start it: the resolver starts and slots begin to connect.
 * @param out        receives the pool.
 * @param loop       the application's libev loop, or NULL for a loop on a
 *                   thread the pool owns. With the application's loop, call
 *                   this on the loop's thread (or before the loop runs).
 * @param policy     NULL for the defaults.
 * @param resolver   the resolver (required).
 * @param connector  the connector (required).
 * @param err        if not NULL, receives a message on QORB_EPOLICY.
 * @return 0, QORB_EINVAL (NULL arguments), QORB_EPOLICY, QORB_ENOMEM,
 *         -errno (thread or loop creation), or the resolver's start error.
 * Ownership: on success the pool owns the resolver and the connector and
 * frees them when it is closed; on failure they stay the caller's. The
 * policy is copied.
 * Thread: any for loop == NULL; the loop's thread otherwise.
 */
QORB_EXTERN int qorb_pool_new(qorb_pool_t **out, struct ev_loop *loop,
                              const qorb_policy_t *policy,
                              qorb_resolver_t *resolver,
                              qorb_connector_t *connector, char *err,
                              size_t errlen);

/** Callback when a pool has finished closing. */
typedef void (*qorb_close_cb)(qorb_pool_t *pool, int status, void *arg);

/**
 * Terminate the pool: stop the resolver, close idle and connecting
 * connections, fail waiting claims with QORB_ESHUTDOWN, and close claimed
 * connections as they are released. Closing finishes when the last claim
 * has come back; the pool is then freed.
 *
 * With the application's loop: returns at once; `cb` (may be NULL) runs
 * exactly once on the loop when closing has finished, with status 0, after
 * which the loop holds no qorb watchers and `pool` is gone.
 * With the pool's own thread: blocks until closing has finished and the
 * thread is joined, then calls `cb` (if any) from the calling thread. If
 * called on the pool's own thread (from a qorb callback), it returns at
 * once and the thread finishes closing and frees itself.
 * @return 0, QORB_EINVAL (NULL pool), QORB_EBUSY (close already called).
 * Callback: if 0 is returned, exactly once; never if < 0.
 * Thread: any for the pool's own thread; the loop's thread otherwise.
 */
QORB_EXTERN int qorb_pool_close(qorb_pool_t *pool, qorb_close_cb cb,
                                void *arg);

/** The pool loop. Thread: any. */
QORB_EXTERN struct ev_loop *qorb_pool_loop(const qorb_pool_t *pool);

/** The pool name from the policy. Thread: any. */
QORB_EXTERN const char *qorb_pool_name(const qorb_pool_t *pool);

/**
 * Claim an idle connection without waiting. The macro records the call
 * site for leak reports.
 * @param claim  receives the claim on success.
 * @return 0; QORB_EAGAIN when none is idle (or when a queued claim is
 *         due: it is served first, see waiter_priority_us);
 *         QORB_ENOTONLINE when every known backend has been down for
 *         fail_fast_after_ms;
 *         QORB_ESHUTDOWN after close;
 *         QORB_EINVAL for NULL.
 * Ownership: the claim is the caller's until qorb_release().
 * Thread: any. No lock, system call or allocation when it succeeds; a miss
 * takes the pool's lock and wakes the loop so that the pool grows.
 */
#define qorb_pool_try_claim(pool, claim) \
  qorb_pool_try_claim_at((pool), (claim), __FILE__, __LINE__)
/** qorb_pool_try_claim() with the claim site given (`file`, `line`: kept
 * for the stats' oldest claim and the leak report). */
QORB_EXTERN int qorb_pool_try_claim_at(qorb_pool_t *pool,
                                       qorb_claim_t **claim, const char *file,
                                       int line);

/**
 * Claim a connection, blocking the calling thread until one is free or
 * `timeout_ms` passes. Queued claims are served by the rule of
 * policy.waiter_priority_us: one that has waited that long gets the next
 * release, first come first served among them.
 * @param timeout_ms  < 0 for the policy's claim_timeout_ms; 0 to not wait
 *                    (then a miss returns the reason it would fail with at
 *                    its deadline: QORB_ENOBACKENDS, QORB_ENOTONLINE or
 *                    QORB_EALLINUSE).
 * @return 0; QORB_ENOBACKENDS (the resolver knows no backend),
 *         QORB_ENOTONLINE (backends known, none online at the deadline;
 *         at once when every one of them has been down, after a failed
 *         connect, for fail_fast_after_ms), QORB_EALLINUSE (timed out
 *         while backends were online), QORB_EQUEUEFULL, QORB_ESHUTDOWN,
 *         QORB_EINVAL.
 * Thread: any thread except the pool loop's own (it would wait for itself:
 * QORB_EBUSY there when the pool owns the thread).
 */
#define qorb_pool_claim_wait(pool, timeout_ms, claim) \
  qorb_pool_claim_wait_at((pool), (timeout_ms), (claim), __FILE__, __LINE__)
/** qorb_pool_claim_wait() with the claim site given. */
QORB_EXTERN int qorb_pool_claim_wait_at(qorb_pool_t *pool, int timeout_ms,
                                        qorb_claim_t **claim,
                                        const char *file, int line);

/**
 * Claim callback.
 * @param status  0 with a claim, or the reason it failed (as for
 *                qorb_pool_claim_wait), QORB_ECANCELED after
 *                qorb_pool_claim_cancel(), QORB_ESHUTDOWN at close.
 * @param claim   the claim when status is 0, NULL otherwise.
 */
typedef void (*qorb_claim_cb)(qorb_pool_t *pool, int status,
                              qorb_claim_t *claim, void *arg);

/**
 * Claim asynchronously: `cb` runs on the pool loop when a connection is
 * free, or with the reason when the claim fails. Never from inside this
 * call, even when a connection is idle (use try_claim for that).
 * @param timeout_ms  < 0 for the policy's claim_timeout_ms.
 * @param id          if not NULL, receives an id for qorb_pool_claim_cancel().
 * @return 0 (then `cb` runs exactly once), QORB_EINVAL, QORB_EQUEUEFULL,
 *         QORB_ESHUTDOWN, QORB_ENOMEM (then `cb` never runs).
 * Thread: any.
 */
#define qorb_pool_claim(pool, timeout_ms, cb, arg, id)                    \
  qorb_pool_claim_at((pool), (timeout_ms), (cb), (arg), (id), __FILE__, \
                     __LINE__)
/** qorb_pool_claim() with the claim site given. */
QORB_EXTERN int qorb_pool_claim_at(qorb_pool_t *pool, int timeout_ms,
                                   qorb_claim_cb cb, void *arg, uint64_t *id,
                                   const char *file, int line);

/**
 * Cancel a queued asynchronous claim: its callback runs with
 * QORB_ECANCELED on the loop.
 * @return 0, QORB_EINVAL, QORB_EAGAIN when no queued claim has that id
 *         (its callback has run or is about to run, or the id was never
 *         issued).
 * Thread: the pool loop.
 */
QORB_EXTERN int qorb_pool_claim_cancel(qorb_pool_t *pool, uint64_t id);

/**
 * Release a claim: the connection is cleaned (if the connector says it
 * needs it, on the pool loop, without making the caller wait) and made
 * available again. After close, it is closed instead. Releasing is always
 * safe, whatever happened to the connection meanwhile: one that the server
 * closed under its claimant (a query failed: libpq CONNECTION_BAD, a
 * hiredis I/O error) is seen by the connector and closed, never handed out
 * again, and its backend's other idle connections are checked at once.
 * @return 0, QORB_EINVAL (NULL; a claim released already; a stale handle:
 *         claim handles carry a generation, so a handle kept after its
 *         release is refused, rather than releasing the connection of
 *         whoever holds that slot now, for the next 63 claims of the slot).
 * Ownership: the claim and its connection are the pool's again.
 * Thread: any. No lock, system call or allocation when the connection is
 * clean and nobody waits.
 */
QORB_EXTERN int qorb_release(qorb_claim_t *claim);

/**
 * Release a claim whose connection the caller knows to be broken: it is
 * closed and replaced, never handed out again, and the backend's other
 * idle connections are checked at once.
 * @return 0, QORB_EINVAL (as qorb_release()). Thread: any.
 */
QORB_EXTERN int qorb_release_broken(qorb_claim_t *claim);

/**
 * The connector's connection object of a claim (e.g. a qorb-pg connection;
 * connectors have typed accessors such as qorb_pg_conn()).
 * Ownership: the pool's; valid until release. Thread: the claimant's.
 */
QORB_EXTERN void *qorb_claim_conn(const qorb_claim_t *claim);

/** The backend address of a claim. Valid until release. Thread: any. */
QORB_EXTERN const qorb_addr_t *qorb_claim_addr(const qorb_claim_t *claim);

/** Per-backend statistics. */
typedef struct qorb_backend_stats {
  qorb_addr_t addr;       /**< the backend */
  int online;             /**< 1 while at least one slot is connected */
  unsigned connecting;    /**< slots connecting or waiting to reconnect */
  unsigned idle;          /**< slots idle: claimable */
  unsigned checking;      /**< health check, prepare or recycle in flight */
  unsigned claimed;       /**< slots claimed now */
  uint64_t claims;        /**< claims served from this backend */
  uint64_t connects;      /**< successful connections */
  uint64_t failures;      /**< failed connects, checks, recycles, prepares */
  unsigned recent_failures; /**< within the failure window (ranking) */
  char last_error[192];   /**< the last failure's text, "" when none */
  int64_t last_error_age_ms; /**< how long ago it happened; -1 when none */
  int last_error_current; /**< 1 while it still holds: the backend is
                               offline, or failed since it last served */
  uint64_t connect_failures; /**< of `failures`, failed connects */
  int64_t online_ms;      /**< how long it has been online; -1 offline */
  uint64_t closed;        /**< its connections closed, for any cause */
} qorb_backend_stats_t;

/** Why a claim failed: the index into qorb_pool_stats_t.failed. */
typedef enum qorb_claim_fail {
  QORB_CLAIM_FAIL_TIMEOUT = 0, /**< QORB_ETIMEDOUT, QORB_EALLINUSE, ... */
  QORB_CLAIM_FAIL_NOTONLINE,   /**< QORB_ENOTONLINE, QORB_ENOBACKENDS */
  QORB_CLAIM_FAIL_QUEUEFULL,   /**< QORB_EQUEUEFULL */
  QORB_CLAIM_FAIL_SHUTDOWN,    /**< QORB_ESHUTDOWN */
  QORB_CLAIM_FAIL_CANCELED,    /**< QORB_ECANCELED */
  QORB_CLAIM_FAIL_OTHER,       /**< anything else (QORB_ENOMEM, ...) */
  QORB_CLAIM_FAIL__COUNT
} qorb_claim_fail_t;

/** Why a connection was closed: the index into qorb_pool_stats_t.closed. */
typedef enum qorb_close_cause {
  QORB_CLOSE_LIFETIME = 0, /**< reached max_lifetime_ms */
  QORB_CLOSE_IDLE,         /**< not needed: idle past idle_timeout_ms,
                                over the demand, or moved to another
                                backend by rebalancing */
  QORB_CLOSE_HEALTH,       /**< failed a health check */
  QORB_CLOSE_BROKEN,       /**< released broken, or found dead on claim */
  QORB_CLOSE_RECYCLE,      /**< its reset (recycle) failed */
  QORB_CLOSE_PREPARE,      /**< its prepare failed */
  QORB_CLOSE_DIED,         /**< closed by the server while idle */
  QORB_CLOSE_REMOVED,      /**< the resolver removed its backend */
  QORB_CLOSE_POOL,         /**< the pool closed */
  QORB_CLOSE__COUNT
} qorb_close_cause_t;

/** Buckets of the claim wait histogram (qorb_pool_stats_t.wait_hist). */
#define QORB_WAIT_BUCKETS 20

/**
 * The upper bound of wait bucket `i` in nanoseconds: 10 us, 25, 50, 100,
 * 250, 500 us, 1 ms, ... 10 s (a 1-2.5-5 series), and UINT64_MAX for the
 * last (+Inf). Bucket i counts waits above bound i-1 up to bound i (not
 * cumulative). Thread: any.
 */
QORB_EXTERN uint64_t qorb_wait_bucket_le_ns(unsigned i);

/** A short name for a claim failure reason ("timeout", "not_online", ...);
 * "?" when out of range. */
QORB_EXTERN const char *qorb_claim_fail_name(unsigned reason);
/** A short name for a close cause ("lifetime", "idle", "health", ...);
 * "?" when out of range. */
QORB_EXTERN const char *qorb_close_cause_name(unsigned cause);

/** Pool statistics. Plain data; appended to only. */
typedef struct qorb_pool_stats {
  size_t size;            /**< set by qorb_pool_stats_init() */
  size_t backend_size;    /**< sizeof(qorb_backend_stats_t) of the caller */
  int closing;            /**< 1 after qorb_pool_close() */
  unsigned backends;      /**< known backends */
  unsigned backends_online; /**< backends with a connected slot */
  unsigned connecting;    /**< slots connecting, all backends */
  unsigned idle;          /**< slots idle, all backends */
  unsigned checking;      /**< slots checking, preparing or recycling */
  unsigned claimed;       /**< slots claimed, all backends */
  unsigned waiters;       /**< queued claims now */
  uint64_t claims;        /**< claims served */
  uint64_t timeouts;      /**< claims that timed out */
  uint64_t claim_failures; /**< claims that failed for any reason */
  uint64_t queue_full;    /**< claims refused because the queue was full */
  uint64_t leaks;         /**< claims held longer than leak_threshold_ms */
  qorb_resolver_stats_t resolver; /**< the resolver's last report
                                       (qorb_resolver_report()) */
  char name[64];          /**< the pool's name (policy.name) */
  /* Waiting. Only claims that queued count (the fast path reads no
   * clock); a claim served by the fast path or a short spin did not wait. */
  uint64_t waited;        /**< claims that waited in the queue (served or
                               not) */
  uint64_t wait_ns_total; /**< their total wait */
  uint64_t wait_ns_max;   /**< the longest wait */
  uint64_t wait_hist[QORB_WAIT_BUCKETS]; /**< waits per bucket, see
                                              qorb_wait_bucket_le_ns() */
  uint64_t failed[QORB_CLAIM_FAIL__COUNT]; /**< failed claims by reason;
                                                they add up to
                                                claim_failures */
  uint64_t opened;        /**< connections opened (all backends) */
  uint64_t closed[QORB_CLOSE__COUNT]; /**< connections closed, by cause */
  int64_t oldest_claim_ms; /**< how long the longest-held claim has been
                                held (to the loop's tick, 250 ms); -1 when
                                nothing is claimed */
  char oldest_claim_site[128]; /**< its claim site "file:line" */
  qorb_addr_t oldest_claim_backend; /**< its backend */
  int64_t uptime_ms;      /**< since qorb_pool_new() */
  unsigned waiters_due;   /**< queued claims that newcomers may no longer
                               pass (waited waiter_priority_us, or
                               asynchronous): the next release is theirs */
} qorb_pool_stats_t;

/** Initialise `st` (and the caller's sizes) before qorb_pool_stats(). */
#define qorb_pool_stats_init(st) \
  qorb_pool_stats_init_((st), sizeof(*(st)), sizeof(qorb_backend_stats_t))
QORB_EXTERN void qorb_pool_stats_init_(qorb_pool_stats_t *st, size_t size,
                                       size_t backend_size);

/**
 * Take a snapshot of the pool's statistics.
 * @param st        initialised with qorb_pool_stats_init().
 * @param backends  array of `cap` entries for per-backend stats, or NULL.
 * @param n         if not NULL, receives the number of backends (it may
 *                  exceed `cap`; only `cap` are filled).
 * @return 0, QORB_EINVAL. Allocates nothing.
 * Thread: any.
 */
QORB_EXTERN int qorb_pool_stats(qorb_pool_t *pool, qorb_pool_stats_t *st,
                                qorb_backend_stats_t *backends, size_t cap,
                                size_t *n);

#ifdef __cplusplus
}
#endif
#endif /* QORB_POOL_H */
