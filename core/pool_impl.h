/* SPDX-License-Identifier: MIT */
/*
 * pool_impl.h: the pool's private structures, shared by pool.c (the state
 * machines and the claim paths), objects.c and stats.c.
 *
 * Who touches what. Fields marked [any] are read or written by any thread
 * through atomics; [mu] only with pool->mu held; everything else belongs to
 * the pool loop thread alone.
 */
#ifndef QORB_POOL_IMPL_H
#define QORB_POOL_IMPL_H

#include <ev.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "internal.h"
#include "qorb/connector.h"
#include "qorb/pool.h"
#include "qorb/resolver.h"

struct qorb_connector {
  const qorb_connector_ops_t *ops;
  void *ctx;
};

struct qorb_resolver {
  const qorb_resolver_ops_t *ops;
  void *ctx;
  qorb_pool_t *pool; /* set while a pool owns it */
  int started;
};

/*
 * Slot states. A slot lives on its backend's list from bind to free. Only
 * IDLE -> CLAIMED (a claimant's compare-and-swap) and CLAIMED -> IDLE or
 * RELEASED (the claimant's release) happen off the loop thread; every other
 * change is the loop's.
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
  QORB__OP_RECYCLE
};

/* slot->flags [any] */
#define QORB__F_RETIRE 1u /* close instead of reuse when released */

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
  void *conn;          /* set by the loop before the slot is published */
  struct qorb__backend *backend; /* [mu] while bound */
  qorb_pool_t *pool;
  uint32_t index;
  int release_broken;  /* set by the releaser before RELEASED */

  _Alignas(64) ev_timer timer; /* op timeout, backoff, health interval */
  ev_timer life;               /* max_lifetime */
  qorb__list_t blink;          /* backend's slot list [mu] */
  qorb__list_t plink;          /* pool's pending list (released or done) */
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
};

/* One slot set: everything about one backend. */
struct qorb__backend {
  qorb__list_t link;       /* pool->backends */
  qorb_addr_t addr;
  qorb__list_t slots;      /* [mu] bound slots */
  unsigned nslots;         /* bound slots */
  unsigned nretiring;      /* bound slots with retiring set */
  unsigned nconnected;     /* slots with a live connection */
  unsigned nconnecting;    /* connect ops in flight */
  unsigned target;         /* wanted slots, from rebalancing */
  _Atomic int removed;     /* no longer reported by the resolver */
  int failed;              /* failed since it was last online */
  _Atomic unsigned fail_cur, fail_prev; /* windowed failure count */
  ev_tstamp window_start;
  double rank;             /* lower is better */
  double jitter;           /* fixed per backend: spreads clients, never flaps */
  uint64_t claims_retired; /* [mu] claims of slots no longer bound */
  _Atomic uint64_t connects;
  _Atomic uint64_t failures;
  char last_error[192];    /* [mu] */
};

/* A queued claim: blocking (a thread waits on cond) or asynchronous. */
typedef struct qorb__waiter {
  qorb__list_t link;      /* [mu] pool->waiters or pool->completed */
  int blocking;
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
  _Atomic unsigned nwaiters;     /* [any] queued claims */
  _Atomic int closing;           /* [any] */
  _Atomic int all_failed;        /* [any] every known backend has failed */
  _Atomic unsigned pub_backends; /* [any] for failure reasons */
  _Atomic unsigned pub_online;   /* [any] */
  _Atomic int pub_full;          /* [any] max_slots reached: a miss cannot grow */
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
  uint64_t next_id;              /* [mu] */
  int grow_wanted;               /* [mu] a claim missed */
  int close_requested;           /* [mu] */
  unsigned inflight;             /* [mu] threads blocked in claim_wait */
  qorb_close_cb close_cb;        /* [mu] */
  void *close_arg;               /* [mu] */
  _Atomic uint64_t timeouts, claim_failures, queue_full, leaks;

  /* The loop's own. */
  struct ev_loop *loop;
  int own_loop;
  pthread_t thread;
  int thread_started;
  int detach_on_finish;          /* closed from its own thread */
  int finished;
  ev_async wake;
  ev_timer rebalance_timer;
  ev_timer leak_timer;
  qorb__list_t done_ops;         /* slots whose op finished */
  qorb_policy_t policy;
  qorb_resolver_t *resolver;
  qorb_connector_t *connector;
  qorb__list_t backends;         /* [mu] */
  unsigned nbackends;
  unsigned nonline;
  unsigned nbound;               /* slots not FREE */
  int closing_loop;              /* close has begun on the loop */
  unsigned demand_peak;
  ev_tstamp demand_peak_at;
  uint64_t rng;
  int in_rebalance;
  int unrefs;                    /* watchers unref'd from the app loop */
  void *slots_raw;
};

#endif /* QORB_POOL_IMPL_H */
