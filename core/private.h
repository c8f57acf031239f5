/* SPDX-License-Identifier: MIT */
/*
 * private.h: the core's private structures and the prototypes its files
 * share. One concept per file:
 *
 *   claim.c      everything a claimant's thread runs: the fast path, the
 *                queue of waiting claims, the hand-off, release
 *   slot.c       the slot state machine, its timers, and the connector's
 *                face (qorb_op_*): a qorb_op_t is a slot
 *   health.c     health checks, one death warning its siblings, and the idle
 *                watch (the loop watches idle connections' sockets)
 *   backend.c    slot sets: the failure window, online/offline,
 *                qorb_resolver_update() (the resolver's face)
 *   rebalance.c  targets per backend, shrink and grow, the claim scan order
 *   stats.c      the stats snapshot and leak detection
 *   pool.c       the pool's own life: new, the wake pass, close, free, the
 *                pool-owned loop thread
 *   objects.c    connector and resolver instances; policy.c, addr.c,
 *                error.c, alloc.c, version.c: small public helpers
 *
 * Who touches what. Fields marked [any] are atomics that any thread reads
 * or writes. Fields marked [mu] are written by the loop with pool->mu held
 * and read freely by the loop; other threads read or write them only with
 * mu held. Everything else belongs to the pool loop alone. A function whose
 * name ends in _locked expects mu held by its caller.
 */
#ifndef QORB_PRIVATE_H
#define QORB_PRIVATE_H

#include <ev.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "internal.h"
#include "qorb/connector.h"
#include "qorb/pool.h"
#include "qorb/resolver.h"

#define RELAXED memory_order_relaxed

struct qorb_connector {
  qorb_connector_ops_t ops; /* a copy, missing version-1 fields NULL */
  void *ctx;
};

struct qorb_resolver {
  const qorb_resolver_ops_t *ops;
  void *ctx;
  qorb_pool_t *pool; /* set while a pool owns it */
  int started;
};

/* Start `r` for pool `p` (the pool's own resolver, or a part of a merged
   one): marked started before its start op runs, as that op may report at
   once; unmarked again when it fails. Returns what the op returned.
   objects.c, loop thread or before the loop runs. */
int qorb__resolver_start(qorb_resolver_t *r, qorb_pool_t *p);
/* Stop `r` if it is started. objects.c, loop thread. */
void qorb__resolver_stop(qorb_resolver_t *r);

/*
 * Slot states, and who moves a slot from one to the next. A slot lives on
 * its backend's list from bind to unbind.
 *
 *   from                 to                 who        how
 *   FREE                 CONNECTING|BACKOFF loop       bind, then connect
 *   BACKOFF              CONNECTING         loop       backoff timer
 *   CONNECTING           PREPARING          loop       connected, prepare wanted
 *   CONNECTING|PREPARING IDLE|CLAIMED       loop       slot_offer (CLAIMED: given
 *   |CHECKING|RECYCLING                                to the head waiter)
 *   any busy state       BACKOFF            loop       op failed or timed out
 *   IDLE                 CLAIMED            claimant   CAS (grab_idle)
 *   IDLE                 CLAIMED            releaser   CAS under mu: hand a slot it
 *                                                      stored IDLE to a waiter
 *   IDLE                 CHECKING           loop       CAS: health check due
 *   IDLE                 CLOSING            loop       CAS: shrink or retire
 *   CLAIMED              IDLE               releaser   store: clean release
 *   CLAIMED              RELEASED           releaser   store under mu: the loop
 *                                                      must recycle or close it
 *   RELEASED             RECYCLING|PREPARING loop      recycle (or prepare)
 *                        |IDLE|CLAIMED|BACKOFF
 *   any but CLAIMED      FREE               loop       unbind (close)
 *   |RELEASED
 *
 * Only the claimant's CAS and the releaser's stores happen off the loop;
 * the loop makes every other change through slot_set_state() or
 * slot_cas_state() (slot.c), so the slot-state-change probe sees them all.
 */
enum qorb__slot_state {
  QORB__S_FREE = 0,   /* array entry unused */
  QORB__S_CONNECTING, /* connect op in flight */
  QORB__S_BACKOFF,    /* waiting to (re)connect */
  QORB__S_PREPARING,  /* prepare (on_acquire) op in flight */
  QORB__S_IDLE,       /* connected, clean, claimable */
  QORB__S_CLAIMED,    /* owned by a claimant */
  QORB__S_RELEASED,   /* released, queued for the loop (recycle or close) */
  QORB__S_CHECKING,   /* health check in flight */
  QORB__S_RECYCLING,  /* recycle op in flight */
  QORB__S_CLOSING     /* taken by the loop to be closed */
};

enum qorb__op_kind {
  QORB__OP_NONE = 0,
  QORB__OP_CONNECT,
  QORB__OP_CHECK,
  QORB__OP_PREPARE,
  QORB__OP_RECYCLE,
  QORB__OP_AFTER_CONNECT,  /* policy hooks, run as ops of the slot */
  QORB__OP_BEFORE_ACQUIRE,
  QORB__OP_AFTER_RELEASE
};

#define QORB__OP_IS_HOOK(op) ((op) >= QORB__OP_AFTER_CONNECT)

/* slot->flags [any] */
#define QORB__F_RETIRE 1u  /* close instead of reuse when released */
#define QORB__F_SUSPECT 2u /* a sibling died while this one was claimed:
                              its release goes through the loop, which
                              looks at it before anyone else may claim it */
#define QORB__F_PENDING 4u /* its releaser sent the reset (reset_send) and
                              stored it IDLE: whoever takes it next reads
                              the answer (reset_finish) before using it */

struct qorb__backend;

/*
 * One slot: the claim handle users hold and the op handle connectors hold
 * are both this struct. The first cache line is what claimants touch; the
 * loop's part starts on the next.
 */
struct qorb_claim {
  _Alignas(64) _Atomic int state;        /* [any] enum qorb__slot_state */
  _Atomic unsigned flags;                /* [any] QORB__F_* */
  _Atomic uint64_t nclaims;              /* [any] written by the owner only */
  _Atomic(const char *) claim_file;      /* [any] written by the owner */
  _Atomic int claim_line;                /* [any] written by the owner */
  _Atomic int64_t idle_since_ms;         /* [any] when it last became IDLE
                                            (only with validate_idle_ms) */
  void *conn;          /* set by the loop before the slot is published */
  struct qorb__backend *backend; /* [mu] while bound */
  qorb_pool_t *pool;
  uint32_t index;
  /* Set by the releaser before it stores RELEASED under mu; the loop reads
     it after taking the slot off pool->released under mu. */
  int release_broken;

  /* One timer for whatever the state waits on: the op timeout, the backoff,
     the health interval, or the retire tick of a retiring idle slot. */
  _Alignas(64) ev_timer timer;
  ev_timer life;               /* max_lifetime */
  ev_io watch;                 /* the idle socket (connector's idle_fd) */
  ev_timer rewatch;            /* watch again once a claimant let it go */
  int watching;                /* `watch` is started */
  int watch_fd;                /* our duplicate of the connector's socket */
  ev_tstamp checked_at;        /* last health check passed (or connect) */
  qorb__list_t blink;          /* backend's slot list [mu] */
  qorb__list_t plink;          /* pool->released [mu] or pool->done_ops */
  int op;                      /* enum qorb__op_kind in flight */
  int op_done_queued;          /* the op finished; queued for the loop */
  int op_status;
  int err_set;                 /* the op recorded its own error text */
  unsigned backoff_ms;
  int connected;               /* counted in backend->nconnected */
  int retiring;                /* lifetime expired; replace, then close */
  uint64_t nclaims_base;       /* [mu] nclaims when bound to its backend */
  uint64_t leak_seq;
  ev_tstamp leak_since;
  int leak_reported;
  _Atomic int64_t held_since_ms; /* [any] the stats tick's first sight of
                                    this claim (qorb__coarse_ms), 0: none */
  int hook_connect_due;        /* after_connect still to run on this
                                  connection */
  int hook_acquire_due;        /* before_acquire to run before the next
                                  hand-out */
  int hook_suspect;            /* QORB__F_SUSPECT taken at release, kept
                                  across after_release */
  int release_clean;           /* released to the loop for its hooks only:
                                  the connector said it needs no cleaning */
  int close_cause;             /* QORB_CLOSE_* the next close counts as,
                                  -1: taken from the slot's situation */
  /* Why a claimant's reset_finish failed: written before it hands the slot
     to the loop (under mu), read by the loop after. */
  char reset_err[160];
};

/* One slot set: everything about one backend. */
struct qorb__backend {
  qorb__list_t link;       /* pool->backends [mu] */
  qorb_addr_t addr;
  qorb__list_t slots;      /* [mu] bound slots */
  unsigned nslots;         /* bound slots */
  unsigned nretiring;      /* bound slots with retiring set */
  unsigned nconnected;     /* slots with a live connection */
  unsigned nconnecting;    /* connect ops in flight */
  unsigned target;         /* wanted slots, from rebalancing */
  _Atomic int removed;     /* no longer reported by the resolver */
  int failed;              /* failed since it was last online */
  ev_tstamp down_since;    /* offline since (added, or last slot closed) */
  _Atomic unsigned fail_cur, fail_prev; /* windowed failure count */
  ev_tstamp window_start;
  double rank;             /* lower is better */
  double jitter;           /* fixed per backend: spreads clients, never flaps */
  uint64_t claims_retired; /* [mu] claims of slots no longer bound */
  _Atomic uint64_t connects;
  _Atomic uint64_t failures;
  _Atomic uint64_t connect_failures;
  _Atomic uint64_t closed;       /* connections closed, any cause */
  char last_error[192];    /* [mu] */
  uint64_t last_error_ns;  /* [mu] when (qorb__now_ns), 0: none */
  _Atomic uint64_t online_ns; /* online since (qorb__now_ns), 0: offline */
};

/* A queued claim: blocking (a thread sleeps on sem) or asynchronous. */
typedef struct qorb__waiter {
  qorb__list_t link;      /* [mu] pool->waiters, ->completed or ->to_post */
  int blocking;
  int due;                /* [mu] counted in pool->ndue */
  int done;               /* [mu] */
  int status;             /* [mu] */
  qorb_claim_t *slot;     /* [mu] */
  uint64_t id;
  const char *file;
  int line;
  /* blocking: posted after the giver has dropped mu */
  sem_t sem;
  /* asynchronous */
  qorb_claim_cb cb;
  void *arg;
  unsigned timeout_ms;
  int armed;              /* timer started (loop) */
  uint64_t queued_ns;     /* when it queued (qorb__now_ns); 0: served at once */
  qorb__list_t alink;     /* [mu] pool->to_arm */
  ev_timer timer;
} qorb__waiter_t;

/*
 * The pool is allocated through the allocator hook, which promises only
 * malloc's alignment: the hot and cold parts are kept apart with padding,
 * not _Alignas.
 */
struct qorb_pool {
  char pad0[64];                 /* off the allocator's neighbours' line */
  /* Read by every claim. */
  qorb_claim_t *slots;
  unsigned cap;
  _Atomic uint32_t *order;       /* [any] scan order, best backends first */
  _Atomic unsigned order_epoch;  /* [any] bumped when `order` changes */
  _Atomic unsigned nwaiters;     /* [any] queued claims */
  _Atomic unsigned ndue;         /* [any, written under mu] queued claims
                                    that newcomers may no longer pass:
                                    older than waiter_priority_us, and
                                    every asynchronous one */
  _Atomic unsigned nasync;       /* [any, written under mu] queued
                                    asynchronous claims */
  _Atomic int closing;           /* [any] */
  _Atomic int all_failed;        /* [any] every known backend has failed */
  _Atomic unsigned pub_backends; /* [any] for failure reasons */
  _Atomic unsigned pub_online;   /* [any] */
  _Atomic int pub_full;          /* [any] max_slots reached: a miss cannot grow */
  _Atomic uint64_t next_id;      /* [any] claim ids for the probes */
  unsigned validate_ms;          /* validate_idle_ms, 0 without a peek op:
                                    read by every claim and release, so
                                    kept on this line */
  int hooked_release;            /* before_acquire or after_release set:
                                    every release goes through the loop */
  unsigned reset_wait_ms;        /* recycle_timeout_ms: a claimant's wait
                                    for a reset's answer (reset_finish) */
  const qorb_connector_ops_t *cops;
  void *cctx;
  char name[64];

  char pad1[64];                 /* the lock's line apart from the hot part */
  pthread_mutex_t mu;
  qorb__list_t waiters;          /* [mu] FIFO */
  qorb__list_t completed;        /* [mu] async waiters with a result */
  qorb__list_t to_arm;           /* [mu] async waiters needing a timer */
  qorb__list_t released;         /* [mu] slots released to the loop */
  qorb__list_t free_waiters;     /* [mu] reusable async waiter records */
  qorb__list_t to_post;          /* [mu] blocking waiters to wake on unlock */
  int grow_wanted;               /* [mu] a claim missed */
  int close_requested;           /* [mu] */
  unsigned inflight;             /* [mu] threads blocked in claim_wait */
  qorb_close_cb close_cb;        /* [mu] */
  void *close_arg;               /* [mu] */
  _Atomic uint64_t timeouts, claim_failures, queue_full, leaks;
  /* Figures for the snapshot: off the fast path (a claim that waited has
   * read the clock already; closes and opens happen on the loop). */
  _Atomic uint64_t waited, wait_ns_total, wait_ns_max;
  _Atomic uint64_t wait_hist[QORB_WAIT_BUCKETS];
  _Atomic uint64_t failed[QORB_CLAIM_FAIL__COUNT];
  _Atomic uint64_t opened;
  _Atomic uint64_t closed[QORB_CLOSE__COUNT];
  uint64_t created_ns;

  /* The loop's own. */
  struct ev_loop *loop;
  int own_loop;
  pthread_t thread;
  int thread_started;
  int detach_on_finish;          /* closed from its own thread */
  int finished;
  ev_async wake;                 /* the wake pass: see pool.c */
  int in_wake;                   /* the wake pass is running */
  int rebalance_wanted;          /* run a rebalance at the end of the pass */
  ev_timer rebalance_timer;
  ev_timer leak_timer;
  ev_timer failfast_timer;       /* re-publish when fail_fast_after passes */
  qorb__list_t done_ops;         /* slots whose op finished */
  qorb_policy_t policy;
  qorb_resolver_t *resolver;
  qorb_resolver_stats_t rstats;  /* [mu] its last report */
  uint64_t rstats_ns;            /* [mu] when (qorb__now_ns), 0: none yet */
  qorb_connector_t *connector;
  qorb__list_t backends;         /* [mu] */
  unsigned nbackends;
  unsigned nonline;
  unsigned nbound;               /* slots not FREE */
  int closing_loop;              /* close has begun on the loop */
  unsigned demand_peak;
  ev_tstamp demand_peak_at;
  uint64_t rng;
  int unrefs;                    /* watchers unref'd from the app loop */
  void *slots_raw;
};

/* ---------------------------------------------------------------------- */
/* Helpers for every file (static inline: some are on the claim path)      */

static inline ev_tstamp qorb__ms(unsigned v) { return (ev_tstamp)v / 1000.0; }

static inline int qorb__slot_state(const qorb_claim_t *s) {
  return atomic_load_explicit(&s->state, RELAXED);
}

/* Its releaser sent a reset whose answer is still to be read. */
static inline int qorb__slot_pending(const qorb_claim_t *s) {
  return (atomic_load_explicit(&s->flags, RELAXED) & QORB__F_PENDING) != 0;
}

/* xorshift64*: loop-only jitter, no need for more. Loop. */
static inline uint64_t qorb__rng_next(qorb_pool_t *p) {
  uint64_t x = p->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  p->rng = x;
  return x * 2685821657736338717ull;
}

/* Uniform in [0, 1). Loop. */
static inline double qorb__rng_unit(qorb_pool_t *p) {
  return (double)(qorb__rng_next(p) >> 11) / 9007199254740992.0;
}

/* ---------------------------------------------------------------------- */
/* claim.c: claims and their queue (any thread unless noted)               */

/* Drop mu, then post the blocking waiters given a result meanwhile. */
void qorb__pool_unlock(qorb_pool_t *p);
/* Why a claim fails now, when it cannot be served. */
int qorb__claim_reason(qorb_pool_t *p);
/*
 * If a claim is queued, move `s` from state `from` to CLAIMED (a CAS: a
 * claimant may take an IDLE slot first) and give it to the head waiter.
 * Returns QORB__OFFER_KEPT (no waiter, or the CAS lost: `s` is unchanged),
 * QORB__OFFER_POSTED (a blocking waiter, woken by qorb__pool_unlock) or
 * QORB__OFFER_ASYNC (an asynchronous one: the loop must run the wake pass).
 */
enum { QORB__OFFER_KEPT = 0, QORB__OFFER_POSTED, QORB__OFFER_ASYNC };
int qorb__offer_locked(qorb_pool_t *p, qorb_claim_t *s, int from);
/* Fail every queued claim with `status`. Loop. */
void qorb__fail_waiters_locked(qorb_pool_t *p, int status);
/* Arm the deadlines of newly queued asynchronous claims. Loop. */
void qorb__waiters_arm(qorb_pool_t *p);
/* Run the callbacks of finished asynchronous claims. Loop. */
void qorb__waiters_deliver(qorb_pool_t *p);
/* Free the reusable asynchronous waiter records. */
void qorb__waiters_free(qorb_pool_t *p);

/* The pool's own loop thread, where a blocking claim would deadlock. */
extern _Thread_local const qorb_pool_t *qorb__tl_own_pool
    __attribute__((tls_model("initial-exec")));

/* ---------------------------------------------------------------------- */
/* slot.c: the slot state machine (loop)                                   */

/*
 * Claim handles carry a generation in the low bits that the slots'
 * alignment leaves free, so that a stale handle (released already, its
 * slot since claimed by someone else) is refused instead of releasing
 * another claimant's connection.
 */
#define QORB__GEN_MASK ((uintptr_t)63)
static inline qorb_claim_t *qorb__handle(qorb_claim_t *s, uint64_t nclaims) {
  return (qorb_claim_t *)((uintptr_t)s | ((uintptr_t)nclaims & QORB__GEN_MASK));
}
static inline qorb_claim_t *qorb__handle_slot(const qorb_claim_t *h) {
  return (qorb_claim_t *)((uintptr_t)h & ~QORB__GEN_MASK);
}

/* Initialise every slot of the array (qorb_pool_new). */
void qorb__slots_init(qorb_pool_t *p);
/* Bind a FREE slot to `b`; NULL when the array is full. */
qorb_claim_t *qorb__slot_bind(qorb_pool_t *p, struct qorb__backend *b);
/* Start connecting (or back off when `b` has too many connects). */
void qorb__slot_connect(qorb_claim_t *s);
/* Close the connection, abort the op in flight, free the slot. */
void qorb__slot_unbind(qorb_claim_t *s);
/* Store a loop-side state, firing slot-state-change. */
void qorb__slot_set_state(qorb_claim_t *s, int to);
/* CAS `from` -> `to`, firing slot-state-change; 1 if it was done. */
int qorb__slot_cas_state(qorb_claim_t *s, int from, int to);
/* A slot the releaser handed to the loop (pool->released). */
void qorb__slot_released(qorb_claim_t *s);
/* The op in flight finished (pool->done_ops). */
void qorb__slot_op_finished(qorb_claim_t *s);

/* How bad a failure is: a broken release (says nothing of the backend), an
   idle connection that died (counted; replaced at once), an op's, a
   connect's. */
enum { QORB__FAIL_BROKEN = 0, QORB__FAIL_IDLE, QORB__FAIL_OP, QORB__FAIL_CONNECT };
/* Close the connection; reconnect after a backoff, or free the slot. */
void qorb__slot_failed(qorb_claim_t *s, int kind);
/* Unbind, then let rebalancing and closing catch up. */
void qorb__slot_free(qorb_claim_t *s);
/* (Re)arm the slot's one timer. */
void qorb__slot_timer_start(qorb_claim_t *s, unsigned delay_ms);
/* Start an op in `state`; a slot whose op cannot start has failed. */
void qorb__slot_start_op(qorb_claim_t *s, int op, int state,
                         unsigned timeout_ms);
/* Connected, clean, nothing left to do: to the head waiter, or IDLE. */
void qorb__slot_offer(qorb_claim_t *s);
/* Has `b` a connected slot that is not retiring? */
int qorb__backend_has_fresh(struct qorb__backend *b);

/* ---------------------------------------------------------------------- */
/* health.c: health checks, deaths, the idle watch (loop)                  */

/* Arm the timer for the next health check (due after the last one). */
void qorb__slot_health_timer(qorb_claim_t *s);
/* The slot timer of an IDLE slot: retire tick or health check. */
void qorb__slot_idle_tick(qorb_claim_t *s);
/* Check a slot just taken from IDLE to CHECKING (round trip, else peek). */
void qorb__slot_check_now(qorb_claim_t *s);
/* An idle connection the watch (or a peek) found dead: close, replace. */
void qorb__slot_idle_died(qorb_claim_t *s, int rc);
/* Check `b`'s idle connections now (one of them died). */
void qorb__backend_warn(struct qorb__backend *b, const qorb_claim_t *except);

void qorb__watch_init(qorb_claim_t *s);
/* Our duplicate of the connector's socket (made now if need be), or -1. */
int qorb__watch_fd(qorb_claim_t *s);
/* Watch `fd` (from qorb__watch_fd) for readiness; -1 stops the watch. */
void qorb__watch_start(qorb_claim_t *s, int fd);
void qorb__watch_stop(qorb_claim_t *s);
/* Stop and close the duplicate: the connection is closing. */
void qorb__watch_drop(qorb_claim_t *s);
/* Look again shortly: a claimant holds the slot. */
void qorb__watch_later(qorb_claim_t *s);

/* ---------------------------------------------------------------------- */
/* backend.c: slot sets (loop)                                             */

/* Recompute the published backend counts and the all-failed short cut. */
void qorb__pool_publish(qorb_pool_t *p);
/* Set up the fail-fast timer (re-publishes once the bound has passed). */
void qorb__failfast_timer_init(qorb_pool_t *p);
/* Count a failure in `b`'s window. */
void qorb__backend_failure(qorb_pool_t *p, struct qorb__backend *b);
/* Failures in the current and previous window. */
unsigned qorb__backend_recent_failures(qorb_pool_t *p, struct qorb__backend *b);
/* Free `b` once it is removed and has no slot left. */
void qorb__backend_free_if_done(qorb_pool_t *p, struct qorb__backend *b);
/* Free every backend (pool_free; no slot is bound). */
void qorb__backends_free(qorb_pool_t *p);

/* ---------------------------------------------------------------------- */
/* rebalance.c (loop)                                                      */

/* Ask for a rebalance at the end of the current (or next) wake pass. */
void qorb__want_rebalance(qorb_pool_t *p);
/* Rebalance now: targets, shrink, grow, publish the scan order. */
void qorb__rebalance(qorb_pool_t *p);
/* Close `b`'s slots beyond its target (all nobody holds, once it is gone). */
void qorb__backend_shrink(qorb_pool_t *p, struct qorb__backend *b);
/* Set up and start the rebalance timer. */
void qorb__rebalance_timer_init(qorb_pool_t *p);

/* ---------------------------------------------------------------------- */
/* stats.c                                                                 */

/* QORB_NO_FIGURES (bench/claim_overhead only): build without the wait,
 * reason and close figures, to measure what they cost. */
#ifdef QORB_NO_FIGURES
#define QORB__FIGURES 0
#else
#define QORB__FIGURES 1
#endif

/* Set up the stats tick (oldest claim, leak detection); it always runs,
 * unref'd. Loop. */
void qorb__leak_timer_init(qorb_pool_t *p);
/* Count a claim that waited `ns` in the queue. Any thread. */
void qorb__count_wait(qorb_pool_t *p, uint64_t ns);
/* Count a failed claim under its reason. Any thread. */
void qorb__count_failure(qorb_pool_t *p, int rc);
/* Count the close of a slot's connection (it was connected). Loop. */
void qorb__count_close(qorb_claim_t *s);

/* ---------------------------------------------------------------------- */
/* pool.c (loop)                                                           */

/* Finish closing once nothing is bound or pending. */
void qorb__pool_check_closed(qorb_pool_t *p);
/* Run the wake pass later in this loop iteration. */
void qorb__pool_kick(qorb_pool_t *p);
void qorb__pool_log(qorb_pool_t *p, qorb_log_level_t lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* QORB_PRIVATE_H */
