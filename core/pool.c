/* SPDX-License-Identifier: MIT */
/*
 * pool.c: the pool. It keeps one slot set per backend, runs every slot's
 * state machine on the pool loop (connect with backoff, prepare, health
 * check, recycle, lifetime), rebalances slots over the backends, and hands
 * out claims.
 *
 * The claim fast path is a compare-and-swap on an idle slot in a fixed
 * array; a release of a clean connection is one store. Neither takes a
 * lock, makes a system call or allocates. Everything else (a claim that
 * must wait, a release that needs I/O, a change of backends) goes through
 * pool->mu and the loop, woken by an ev_async.
 *
 * The waiter hand-off has one race to get right: a claimant that misses
 * bumps nwaiters under mu and scans again; a releaser stores IDLE and then
 * reads nwaiters. Both are sequentially consistent, so at least one of them
 * sees the other, and no waiter sleeps while a slot is idle.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#include "pool_impl.h"

/*
 * ThreadSanitizer does not intercept sem_clockwait(): tell it that a post
 * happens before the wake-up it causes.
 */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define QORB_TSAN_RELEASE(a) __tsan_release(a)
#define QORB_TSAN_ACQUIRE(a) __tsan_acquire(a)
#else
#define QORB_TSAN_RELEASE(a) ((void)(a))
#define QORB_TSAN_ACQUIRE(a) ((void)(a))
#endif

#define RELAXED memory_order_relaxed

/*
 * The slot this thread used last: tried first, so a thread tends to keep
 * one slot's cache lines to itself. initial-exec keeps the access a plain
 * %fs-relative load inside libqorb.so too.
 */
static _Thread_local struct {
  const qorb_pool_t *pool;
  unsigned idx;
} tl_hint __attribute__((tls_model("initial-exec")));

/* Set on a pool's own loop thread: a blocking claim there would deadlock. */
static _Thread_local const qorb_pool_t *tl_own_pool
    __attribute__((tls_model("initial-exec")));

static void slot_connect(qorb_claim_t *s);
static void slot_close_conn(qorb_claim_t *s);
static void slot_unbind(qorb_claim_t *s);
static void slot_set_idle(qorb_claim_t *s);
/* How bad a failure is: a broken release, an op's failure, a connect's. */
enum { FAIL_BROKEN = 0, FAIL_OP = 1, FAIL_CONNECT = 2 };
static void slot_failed(qorb_claim_t *s, int status, int kind);
static void pool_rebalance(qorb_pool_t *p);
static void pool_unlock(qorb_pool_t *p);
static void pool_kick(qorb_pool_t *p);
static void pool_check_closed(qorb_pool_t *p);
static void pool_log(qorb_pool_t *p, qorb_log_level_t lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#if defined(QORB_HAVE_PROBES)
static const char *const state_names[] = {
    "free",    "connecting", "backoff",  "preparing", "idle",
    "claimed", "released",   "checking", "recycling", "closing"};
#endif

/* ---------------------------------------------------------------------- */
/* Small helpers                                                           */

static ev_tstamp ms(unsigned v) { return (ev_tstamp)v / 1000.0; }

static uint64_t rng_next(qorb_pool_t *p) {
  /* xorshift64*: loop-only jitter, no need for more. */
  uint64_t x = p->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  p->rng = x;
  return x * 2685821657736338717ull;
}

static double rng_unit(qorb_pool_t *p) {
  return (double)(rng_next(p) >> 11) / 9007199254740992.0;
}

static int slot_state(const qorb_claim_t *s) {
  return atomic_load_explicit(&s->state, RELAXED);
}

static void slot_set_state(qorb_claim_t *s, int st) {
  int from = atomic_load_explicit(&s->state, RELAXED);
  atomic_store(&s->state, st);
  if (from != st && s->backend != NULL)
    QORB_PROBE(SLOT_STATE_CHANGE, s->pool->name, (uint64_t)s->index,
               s->backend->addr.text, (char *)state_names[from],
               (char *)state_names[st]);
}

static void pool_log(qorb_pool_t *p, qorb_log_level_t lvl, const char *fmt,
                     ...) {
  char buf[512];
  va_list ap;
  if (p->policy.log_cb == NULL) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  p->policy.log_cb(p->name, lvl, buf, p->policy.log_arg);
}

/* Why a claim fails now, when it cannot be served. */
static int pool_reason(qorb_pool_t *p) {
  if (atomic_load_explicit(&p->closing, RELAXED)) return QORB_ESHUTDOWN;
  if (atomic_load_explicit(&p->pub_backends, RELAXED) == 0)
    return QORB_ENOBACKENDS;
  if (atomic_load_explicit(&p->pub_online, RELAXED) == 0)
    return QORB_ENOTONLINE;
  return QORB_EALLINUSE;
}

/* ---------------------------------------------------------------------- */
/* The claim fast path                                                     */

static qorb_claim_t *grab_idle(qorb_pool_t *p) {
  unsigned i, n = p->cap;
  qorb_claim_t *s;
  int idle;

  if (tl_hint.pool == p && tl_hint.idx < n) {
    s = &p->slots[tl_hint.idx];
    idle = QORB__S_IDLE;
    if (atomic_load_explicit(&s->state, RELAXED) == QORB__S_IDLE &&
        atomic_compare_exchange_strong_explicit(&s->state, &idle,
                                                QORB__S_CLAIMED,
                                                memory_order_acquire,
                                                RELAXED))
      return s;
  }
  for (i = 0; i < n; i++) {
    uint32_t idx = atomic_load_explicit(&p->order[i], RELAXED);
    if (idx >= n) continue;
    s = &p->slots[idx];
    if (atomic_load_explicit(&s->state, RELAXED) != QORB__S_IDLE) continue;
    idle = QORB__S_IDLE;
    if (atomic_compare_exchange_strong_explicit(&s->state, &idle,
                                                QORB__S_CLAIMED,
                                                memory_order_acquire,
                                                RELAXED)) {
      tl_hint.pool = p;
      tl_hint.idx = idx;
      return s;
    }
  }
  return NULL;
}

/* The claimant now owns `s`: count it and note where it was claimed. */
static void claim_taken(qorb_claim_t *s, const char *file, int line,
                        uint64_t id) {
  uint64_t n = atomic_load_explicit(&s->nclaims, RELAXED);
  atomic_store_explicit(&s->nclaims, n + 1, RELAXED);
  atomic_store_explicit(&s->claim_file, file, RELAXED);
  atomic_store_explicit(&s->claim_line, line, RELAXED);
  QORB_PROBE(HANDLE_CLAIMED, s->pool->name, id, (uint64_t)s->index,
             s->backend->addr.text);
  QORB_PROBE(CLAIM_DONE, s->pool->name, id, (uint64_t)s->index,
             s->backend->addr.text);
  (void)id;
}

static uint64_t probe_claim_id(qorb_pool_t *p) {
  uint64_t id = 0;
  if (QORB_PROBE_ENABLED(CLAIM_START) || QORB_PROBE_ENABLED(CLAIM_DONE) ||
      QORB_PROBE_ENABLED(CLAIM_FAILED)) {
    pthread_mutex_lock(&p->mu);
    id = ++p->next_id;
    pool_unlock(p);
  }
  return id;
}

int qorb_pool_try_claim_at(qorb_pool_t *p, qorb_claim_t **claim,
                           const char *file, int line) {
  qorb_claim_t *s;
  uint64_t id;
  if (claim != NULL) *claim = NULL;
  if (p == NULL || claim == NULL) return QORB_EINVAL;
  id = probe_claim_id(p);
  QORB_PROBE(CLAIM_START, p->name, id);
  if (atomic_load_explicit(&p->closing, RELAXED)) {
    QORB_PROBE(CLAIM_FAILED, p->name, id, QORB_ESHUTDOWN);
    return QORB_ESHUTDOWN;
  }
  /* Queued claims are served first: no barging past them. */
  if (atomic_load(&p->nwaiters) == 0 && (s = grab_idle(p)) != NULL) {
    claim_taken(s, file, line, id);
    *claim = s;
    return 0;
  }
  if (atomic_load_explicit(&p->all_failed, RELAXED)) {
    QORB_PROBE(CLAIM_FAILED, p->name, id, QORB_ENOTONLINE);
    return QORB_ENOTONLINE;
  }
  /* A miss: ask the loop to grow towards the demand, if it can. */
  if (!atomic_load_explicit(&p->pub_full, RELAXED)) {
    pthread_mutex_lock(&p->mu);
    p->grow_wanted = 1;
    ev_async_send(p->loop, &p->wake);
    pool_unlock(p);
  }
  QORB_PROBE(CLAIM_FAILED, p->name, id, QORB_EAGAIN);
  return QORB_EAGAIN;
}

/* ---------------------------------------------------------------------- */
/* Waiters                                                                 */

/* Give `s` (already CLAIMED) to waiter `w`. Caller holds mu. */
static void waiter_give(qorb_pool_t *p, qorb__waiter_t *w, qorb_claim_t *s,
                        int status) {
  qorb__list_remove(&w->link);
  qorb__list_remove(&w->alink); /* harmless when not on to_arm */
  atomic_fetch_sub(&p->nwaiters, 1);
  w->slot = s;
  w->status = status;
  w->done = 1;
  /* A blocking waiter is woken by pool_unlock(), once mu is free for it. */
  qorb__list_push_back(w->blocking ? &p->to_post : &p->completed, &w->link);
}

/*
 * Unlock mu, then wake the blocking waiters given a result meanwhile. Waking
 * them with mu held would have each one wake up only to block on mu again.
 * A waiter stays in place until its post arrives, so the posts are safe.
 */
static void pool_unlock(qorb_pool_t *p) {
  qorb__list_t posts, *it, *next;
  if (qorb__list_empty(&p->to_post)) {
    pthread_mutex_unlock(&p->mu);
    return;
  }
  posts.next = p->to_post.next;
  posts.prev = p->to_post.prev;
  posts.next->prev = &posts;
  posts.prev->next = &posts;
  qorb__list_init(&p->to_post);
  pthread_mutex_unlock(&p->mu);
  for (it = posts.next; it != &posts; it = next) {
    qorb__waiter_t *w = QORB_CONTAINER_OF(it, qorb__waiter_t, link);
    next = it->next; /* read first: once posted, the waiter may be gone */
    QORB_TSAN_RELEASE(&w->sem);
    sem_post(&w->sem);
  }
}

static qorb__waiter_t *waiter_head(qorb_pool_t *p) {
  if (qorb__list_empty(&p->waiters)) return NULL;
  return QORB_CONTAINER_OF(p->waiters.next, qorb__waiter_t, link);
}

/*
 * A clean slot that its releaser stored as IDLE while claims were queued:
 * take it back and give it to the first of them. Any thread.
 */
static void handoff_idle(qorb_pool_t *p, qorb_claim_t *s) {
  int idle = QORB__S_IDLE, wake = 0;
  qorb__waiter_t *w;
  pthread_mutex_lock(&p->mu);
  w = waiter_head(p);
  if (w != NULL &&
      atomic_compare_exchange_strong(&s->state, &idle, QORB__S_CLAIMED)) {
    waiter_give(p, w, s, 0);
    wake = !w->blocking;
  }
  /* Under mu, so that the pool cannot finish closing under our feet. */
  if (wake) ev_async_send(p->loop, &p->wake);
  pool_unlock(p);
}

/* Fail every queued claim with `status`. Caller holds mu. Loop thread. */
static void fail_waiters(qorb_pool_t *p, int status) {
  qorb__waiter_t *w;
  while ((w = waiter_head(p)) != NULL) {
    atomic_fetch_add(&p->claim_failures, 1);
    waiter_give(p, w, NULL, status);
  }
}

int qorb_pool_claim_wait_at(qorb_pool_t *p, int timeout_ms,
                            qorb_claim_t **claim, const char *file, int line) {
  qorb__waiter_t w;
  qorb_claim_t *s;
  struct timespec deadline;
  uint64_t id;
  qorb_claim_t *got;
  int rc, spins, served = 0;

  if (claim != NULL) *claim = NULL;
  if (p == NULL || claim == NULL) return QORB_EINVAL;
  if (tl_own_pool == p) return QORB_EBUSY;
  if (timeout_ms < 0) timeout_ms = (int)p->policy.claim_timeout_ms;
  id = probe_claim_id(p);
  QORB_PROBE(CLAIM_START, p->name, id);

  /*
   * Fast path, then a few yields before queueing: with more threads than
   * cores, the slot we missed is usually held by a thread that was
   * preempted inside its claim and needs only a moment of CPU to release
   * it. Nobody is queued while we yield, so FIFO order is kept.
   */
  for (spins = 0; spins < 4; spins++) {
    if (atomic_load_explicit(&p->closing, RELAXED) ||
        atomic_load(&p->nwaiters) != 0 ||
        atomic_load_explicit(&p->all_failed, RELAXED))
      break;
    if ((s = grab_idle(p)) != NULL) {
      claim_taken(s, file, line, id);
      *claim = s;
      return 0;
    }
    if (timeout_ms == 0 || atomic_load_explicit(&p->pub_online, RELAXED) == 0)
      break;
    sched_yield();
  }

  pthread_mutex_lock(&p->mu);
  if (atomic_load_explicit(&p->closing, RELAXED)) {
    rc = QORB_ESHUTDOWN;
    goto fail_locked;
  }
  if (atomic_load_explicit(&p->all_failed, RELAXED)) {
    rc = QORB_ENOTONLINE;
    goto fail_locked;
  }
  if (qorb__list_empty(&p->waiters) && (s = grab_idle(p)) != NULL) {
    pool_unlock(p);
    claim_taken(s, file, line, id);
    *claim = s;
    return 0;
  }
  if (timeout_ms == 0) {
    rc = pool_reason(p);
    goto fail_locked;
  }
  if (atomic_load_explicit(&p->nwaiters, RELAXED) >= p->policy.max_waiters) {
    atomic_fetch_add(&p->queue_full, 1);
    rc = QORB_EQUEUEFULL;
    goto fail_locked;
  }

  memset(&w, 0, sizeof(w));
  w.blocking = 1;
  w.id = id;
  qorb__list_init(&w.alink);
  sem_init(&w.sem, 0, 0);
  qorb__list_push_back(&p->waiters, &w.link);
  atomic_fetch_add(&p->nwaiters, 1);
  /* Scan once more: a release may have stored IDLE before seeing us. */
  if ((s = grab_idle(p)) != NULL) {
    waiter_give(p, &w, s, 0);
    qorb__list_remove(&w.link); /* ours: no post to wait for */
    served = 1;
  }
  p->inflight++;
  /* Waking the loop costs a system call: only when the pool can grow. */
  if (!served && !atomic_load_explicit(&p->pub_full, RELAXED)) {
    p->grow_wanted = 1;
    ev_async_send(p->loop, &p->wake);
  }
  pool_unlock(p);

  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  while (!served) {
    if (sem_clockwait(&w.sem, CLOCK_MONOTONIC, &deadline) == 0) {
      QORB_TSAN_ACQUIRE(&w.sem);
      break;
    }
    if (errno == EINTR) continue;
    pthread_mutex_lock(&p->mu);
    if (!w.done) {
      /* Timed out, still queued: leave with the reason. */
      rc = pool_reason(p);
      atomic_fetch_add(&p->timeouts, 1);
      waiter_give(p, &w, NULL, rc);
      qorb__list_remove(&w.link);
      pool_unlock(p);
      break;
    }
    /* Given a result just as we timed out: its post is on its way. */
    pool_unlock(p);
    while (sem_wait(&w.sem) != 0 && errno == EINTR) {
    }
    QORB_TSAN_ACQUIRE(&w.sem);
    break;
  }
  /*
   * Read the result under mu (also what ThreadSanitizer needs: it does not
   * see sem_clockwait). The giver dropped mu before posting, so this lock
   * is normally free.
   */
  pthread_mutex_lock(&p->mu);
  got = w.slot;
  rc = w.status;
  /* The last thread out of a closing pool lets the loop finish. */
  if (--p->inflight == 0 && atomic_load_explicit(&p->closing, RELAXED))
    ev_async_send(p->loop, &p->wake);
  if (got == NULL) {
    atomic_fetch_add(&p->claim_failures, 1);
    QORB_PROBE(CLAIM_FAILED, p->name, id, rc);
  }
  pool_unlock(p);
  if (got != NULL) claim_taken(got, file, line, id);
  sem_destroy(&w.sem);
  if (got != NULL) {
    *claim = got;
    return 0;
  }
  return rc;

fail_locked:
  pool_unlock(p);
  atomic_fetch_add(&p->claim_failures, 1);
  QORB_PROBE(CLAIM_FAILED, p->name, id, rc);
  return rc;
}

int qorb_pool_claim_at(qorb_pool_t *p, int timeout_ms, qorb_claim_cb cb,
                       void *arg, uint64_t *idp, const char *file, int line) {
  qorb__waiter_t *w;
  qorb_claim_t *s;
  int rc = 0;

  if (p == NULL || cb == NULL) return QORB_EINVAL;
  if (timeout_ms < 0) timeout_ms = (int)p->policy.claim_timeout_ms;
  pthread_mutex_lock(&p->mu);
  if (atomic_load_explicit(&p->closing, RELAXED)) {
    rc = QORB_ESHUTDOWN;
    goto out;
  }
  if (atomic_load_explicit(&p->nwaiters, RELAXED) >= p->policy.max_waiters) {
    atomic_fetch_add(&p->queue_full, 1);
    rc = QORB_EQUEUEFULL;
    goto out;
  }
  if (!qorb__list_empty(&p->free_waiters)) {
    w = QORB_CONTAINER_OF(p->free_waiters.next, qorb__waiter_t, link);
    qorb__list_remove(&w->link);
  } else if ((w = qorb__malloc(sizeof(*w))) == NULL) {
    rc = QORB_ENOMEM;
    goto out;
  }
  memset(w, 0, sizeof(*w));
  qorb__list_init(&w->alink);
  w->cb = cb;
  w->arg = arg;
  w->id = ++p->next_id;
  w->file = file;
  w->line = line;
  w->timeout_ms = (unsigned)timeout_ms;
  if (idp != NULL) *idp = w->id;
  QORB_PROBE(CLAIM_START, p->name, w->id);
  qorb__list_push_back(&p->waiters, &w->link);
  atomic_fetch_add(&p->nwaiters, 1);
  if (waiter_head(p) == w && (s = grab_idle(p)) != NULL) {
    waiter_give(p, w, s, 0);
    goto queued;
  }
  if (atomic_load_explicit(&p->all_failed, RELAXED)) {
    atomic_fetch_add(&p->claim_failures, 1);
    waiter_give(p, w, NULL, QORB_ENOTONLINE);
    goto queued;
  }
  qorb__list_push_back(&p->to_arm, &w->alink);
  p->grow_wanted = 1;
queued:
  ev_async_send(p->loop, &p->wake);
  pool_unlock(p);
  return 0;
out:
  pool_unlock(p);
  return rc;
}

int qorb_pool_claim_cancel(qorb_pool_t *p, uint64_t id) {
  qorb__list_t *it;
  int rc = QORB_EAGAIN;
  if (p == NULL) return QORB_EINVAL;
  pthread_mutex_lock(&p->mu);
  for (it = p->waiters.next; it != &p->waiters; it = it->next) {
    qorb__waiter_t *w = QORB_CONTAINER_OF(it, qorb__waiter_t, link);
    if (!w->blocking && w->id == id) {
      waiter_give(p, w, NULL, QORB_ECANCELED);
      rc = 0;
      break;
    }
  }
  pool_unlock(p);
  if (rc == 0) ev_feed_event(p->loop, &p->wake, EV_ASYNC);
  return rc;
}

static void waiter_timer_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  qorb__waiter_t *w = QORB_CONTAINER_OF(t, qorb__waiter_t, timer);
  qorb_pool_t *p = (qorb_pool_t *)t->data;
  (void)revents;
  ev_timer_stop(loop, t);
  pthread_mutex_lock(&p->mu);
  if (!w->done) {
    atomic_fetch_add(&p->timeouts, 1);
    atomic_fetch_add(&p->claim_failures, 1);
    waiter_give(p, w, NULL, pool_reason(p));
  }
  pool_unlock(p);
  ev_feed_event(loop, &p->wake, EV_ASYNC);
}

/* Run the callbacks of finished asynchronous claims. Loop thread. */
static void deliver_completed(qorb_pool_t *p) {
  for (;;) {
    qorb__waiter_t *w;
    qorb_claim_t *s;
    int status;
    pthread_mutex_lock(&p->mu);
    if (qorb__list_empty(&p->completed)) {
      pool_unlock(p);
      return;
    }
    w = QORB_CONTAINER_OF(p->completed.next, qorb__waiter_t, link);
    qorb__list_remove(&w->link);
    pool_unlock(p);
    if (w->armed) ev_timer_stop(p->loop, &w->timer);
    s = w->slot;
    status = w->status;
    if (s != NULL) claim_taken(s, w->file, w->line, w->id);
    else QORB_PROBE(CLAIM_FAILED, p->name, w->id, status);
    w->cb(p, status, s, w->arg);
    pthread_mutex_lock(&p->mu);
    qorb__list_push_back(&p->free_waiters, &w->link);
    pool_unlock(p);
  }
}

/* ---------------------------------------------------------------------- */
/* Release                                                                 */

static int release_impl(qorb_claim_t *s, int broken) {
  qorb_pool_t *p;
  int r = 0;
  if (s == NULL) return QORB_EINVAL;
  if (atomic_load_explicit(&s->state, RELAXED) != QORB__S_CLAIMED)
    return QORB_EINVAL; /* released twice, or not a claim */
  p = s->pool;
  if (!broken && p->cops->needs_recycle != NULL)
    r = p->cops->needs_recycle(p->cctx, s->conn);
  else if (!broken)
    r = (p->cops->recycle != NULL || p->cops->prepare != NULL) ? 1 : 0;
  QORB_PROBE(HANDLE_RECYCLED, p->name, (uint64_t)s->index,
             s->backend->addr.text, broken || r < 0);
  if (!broken && r == 0 &&
      !(atomic_load_explicit(&s->flags, RELAXED) & QORB__F_RETIRE) &&
      !atomic_load_explicit(&p->closing, RELAXED)) {
    tl_hint.pool = p;
    tl_hint.idx = s->index;
    atomic_store(&s->state, QORB__S_IDLE);
    if (atomic_load(&p->nwaiters) != 0) handoff_idle(p, s);
    return 0;
  }
  s->release_broken = broken || r < 0;
  pthread_mutex_lock(&p->mu);
  atomic_store(&s->state, QORB__S_RELEASED);
  qorb__list_push_back(&p->released, &s->plink);
  ev_async_send(p->loop, &p->wake);
  pool_unlock(p);
  return 0;
}

int qorb_release(qorb_claim_t *claim) { return release_impl(claim, 0); }

int qorb_release_broken(qorb_claim_t *claim) {
  return release_impl(claim, 1);
}

void *qorb_claim_conn(const qorb_claim_t *claim) {
  return claim != NULL ? claim->conn : NULL;
}

const qorb_addr_t *qorb_claim_addr(const qorb_claim_t *claim) {
  return claim != NULL ? &claim->backend->addr : NULL;
}

/* ---------------------------------------------------------------------- */
/* Backends                                                                */

static void backend_window(qorb_pool_t *p, struct qorb__backend *b) {
  ev_tstamp now = ev_now(p->loop), win = ms(p->policy.failure_window_ms);
  if (now - b->window_start >= 2 * win) {
    b->fail_prev = 0;
    b->fail_cur = 0;
    b->window_start = now;
  } else if (now - b->window_start >= win) {
    b->fail_prev = b->fail_cur;
    b->fail_cur = 0;
    b->window_start += win;
  }
}

static unsigned backend_recent_failures(qorb_pool_t *p,
                                        struct qorb__backend *b) {
  backend_window(p, b);
  return b->fail_prev + b->fail_cur;
}

static void backend_failure(qorb_pool_t *p, struct qorb__backend *b) {
  backend_window(p, b);
  b->fail_cur++;
  atomic_fetch_add_explicit(&b->failures, 1, RELAXED);
}

static void pool_publish(qorb_pool_t *p) {
  struct qorb__backend *b;
  qorb__list_t *it;
  unsigned known = 0, online = 0;
  int all_failed = 1;
  for (it = p->backends.next; it != &p->backends; it = it->next) {
    b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
    if (b->removed) continue;
    known++;
    if (b->nconnected > 0) online++;
    if (b->nconnected > 0 || !b->failed) all_failed = 0;
  }
  if (known == 0) all_failed = 0;
  p->nbackends = known;
  p->nonline = online;
  atomic_store(&p->pub_backends, known);
  atomic_store(&p->pub_online, online);
  if (p->closing_loop) all_failed = 0;
  if (all_failed && !atomic_load_explicit(&p->all_failed, RELAXED)) {
    atomic_store(&p->all_failed, 1);
    pthread_mutex_lock(&p->mu);
    fail_waiters(p, QORB_ENOTONLINE);
    pool_unlock(p);
    ev_feed_event(p->loop, &p->wake, EV_ASYNC);
  } else if (!all_failed) {
    atomic_store(&p->all_failed, 0);
  }
}


static void backend_free_if_done(qorb_pool_t *p, struct qorb__backend *b) {
  if (!b->removed || b->nslots != 0) return;
  pthread_mutex_lock(&p->mu);
  qorb__list_remove(&b->link);
  pool_unlock(p);
  qorb__free(b);
}

int qorb_resolver_update(qorb_resolver_t *r, const qorb_addr_t *addrs,
                         size_t n) {
  qorb_pool_t *p;
  qorb__list_t *it, *next;
  size_t i;
  int rc = 0;

  if (r == NULL || (addrs == NULL && n > 0)) return QORB_EINVAL;
  p = r->pool;
  if (p == NULL || !r->started) return QORB_EBUSY;
  if (p->closing_loop) return 0;

  /* Mark every backend gone, then revive the ones still reported. */
  for (it = p->backends.next; it != &p->backends; it = it->next)
    QORB_CONTAINER_OF(it, struct qorb__backend, link)->target = UINT32_MAX;
  for (i = 0; i < n; i++) {
    struct qorb__backend *b = NULL;
    for (it = p->backends.next; it != &p->backends; it = it->next) {
      struct qorb__backend *c = QORB_CONTAINER_OF(it, struct qorb__backend, link);
      if (qorb_addr_equal(&c->addr, &addrs[i])) {
        b = c;
        break;
      }
    }
    if (b != NULL) {
      if (b->target == UINT32_MAX) b->target = 0;
      b->removed = 0;
      continue;
    }
    b = qorb__calloc(1, sizeof(*b));
    if (b == NULL) {
      rc = QORB_ENOMEM;
      continue;
    }
    b->addr = addrs[i];
    b->jitter = rng_unit(p) * 0.5;
    qorb__list_init(&b->slots);
    b->window_start = ev_now(p->loop);
    pthread_mutex_lock(&p->mu);
    qorb__list_push_back(&p->backends, &b->link);
    pool_unlock(p);
    pool_log(p, QORB_LOG_INFO, "backend %s added", b->addr.text);
  }
  for (it = p->backends.next; it != &p->backends; it = next) {
    struct qorb__backend *b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
    next = it->next;
    if (b->target == UINT32_MAX) {
      b->target = 0;
      if (!b->removed)
        pool_log(p, QORB_LOG_INFO, "backend %s removed", b->addr.text);
      b->removed = 1;
      backend_free_if_done(p, b);
    }
  }
  pool_publish(p);
  pool_rebalance(p);
  return rc;
}

/* ---------------------------------------------------------------------- */
/* Slots                                                                   */

static qorb_claim_t *slot_bind(qorb_pool_t *p, struct qorb__backend *b) {
  unsigned i;
  for (i = 0; i < p->cap; i++) {
    qorb_claim_t *s = &p->slots[i];
    if (slot_state(s) != QORB__S_FREE) continue;
    pthread_mutex_lock(&p->mu);
    s->backend = b;
    s->nclaims_base = atomic_load_explicit(&s->nclaims, RELAXED);
    qorb__list_push_back(&b->slots, &s->blink);
    pool_unlock(p);
    atomic_store_explicit(&s->flags, 0, RELAXED);
    s->release_broken = 0;
    s->backoff_ms = 0;
    s->connected = 0;
    s->retiring = 0;
    s->op = QORB__OP_NONE;
    s->op_done_queued = 0;
    s->leak_reported = 0;
    b->nslots++;
    p->nbound++;
    return s;
  }
  return NULL;
}

/* Close the connection (if any) and drop the slot from its backend. */
static void slot_unbind(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  struct qorb__backend *b = s->backend;
  slot_close_conn(s);
  ev_timer_stop(p->loop, &s->timer);
  ev_timer_stop(p->loop, &s->life);
  if (s->retiring) b->nretiring--;
  s->retiring = 0;
  pthread_mutex_lock(&p->mu);
  b->claims_retired += atomic_load_explicit(&s->nclaims, RELAXED) - s->nclaims_base;
  qorb__list_remove(&s->blink);
  slot_set_state(s, QORB__S_FREE);
  s->backend = NULL;
  pool_unlock(p);
  b->nslots--;
  p->nbound--;
  backend_free_if_done(p, b);
}

/* Close the slot's connection, aborting any op in flight. */
static void slot_close_conn(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  if (s->op_done_queued) {
    qorb__list_remove(&s->plink);
    s->op_done_queued = 0;
  }
  if (s->op == QORB__OP_CONNECT && s->backend->nconnecting > 0)
    s->backend->nconnecting--;
  s->op = QORB__OP_NONE;
  if (s->conn != NULL) {
    p->cops->close(p->cctx, s->conn);
    s->conn = NULL;
  }
  if (s->connected) {
    s->connected = 0;
    s->backend->nconnected--;
    if (s->backend->nconnected == 0) {
      QORB_PROBE(SLOT_SET_OFFLINE, p->name, s->backend->addr.text);
      pool_log(p, QORB_LOG_WARN, "backend %s offline", s->backend->addr.text);
    }
    pool_publish(p);
  }
}

static void slot_timer_start(qorb_claim_t *s, unsigned delay_ms) {
  ev_timer_stop(s->pool->loop, &s->timer);
  ev_timer_set(&s->timer, ms(delay_ms), 0.);
  ev_timer_start(s->pool->loop, &s->timer);
}

/* Has `b` a connected slot that is not retiring (a ready replacement)? */
static int backend_has_fresh(struct qorb__backend *b) {
  qorb__list_t *it;
  for (it = b->slots.next; it != &b->slots; it = it->next) {
    qorb_claim_t *x = QORB_CONTAINER_OF(it, qorb_claim_t, blink);
    if (!x->retiring && x->connected) return 1;
  }
  return 0;
}

/*
 * Is this slot beyond what its backend should keep? A retiring slot is,
 * once a replacement is connected: until then it keeps serving, so that a
 * lifetime expiry never leaves a gap.
 */
static int slot_excess(qorb_claim_t *s) {
  struct qorb__backend *b = s->backend;
  if (s->pool->closing_loop || b->removed) return 1;
  if (s->retiring) return backend_has_fresh(b);
  return b->nslots - b->nretiring > b->target;
}

static void slot_free_and_rebalance(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  slot_unbind(s);
  pool_rebalance(p);
  pool_check_closed(p);
}

static int start_op(qorb_claim_t *s, int op, int state, unsigned timeout_ms) {
  qorb_pool_t *p = s->pool;
  int rc;
  s->op = op;
  s->op_status = 0;
  slot_set_state(s, state);
  slot_timer_start(s, timeout_ms);
  switch (op) {
  case QORB__OP_CHECK:
    QORB_PROBE(HEALTH_CHECK_START, p->name, (uint64_t)s->index,
               s->backend->addr.text);
    rc = p->cops->check(p->cctx, (qorb_op_t *)s, s->conn);
    break;
  case QORB__OP_PREPARE:
    rc = p->cops->prepare(p->cctx, (qorb_op_t *)s, s->conn);
    break;
  default:
    QORB_PROBE(RECYCLE_START, p->name, (uint64_t)s->index,
               s->backend->addr.text);
    rc = p->cops->recycle(p->cctx, (qorb_op_t *)s, s->conn);
    break;
  }
  if (rc < 0 && !s->op_done_queued) {
    /* Failed before it started: no completion will come. */
    s->op = QORB__OP_NONE;
    ev_timer_stop(p->loop, &s->timer);
  }
  return rc < 0 && !s->op_done_queued ? rc : 0;
}

/* A connected, clean slot: prepare it if the connector wants, else idle. */
static void slot_ready(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  int rc;
  if (slot_excess(s)) {
    slot_free_and_rebalance(s);
    return;
  }
  if (p->cops->prepare != NULL) {
    rc = start_op(s, QORB__OP_PREPARE, QORB__S_PREPARING,
                  p->policy.acquire_timeout_ms);
    if (rc < 0) slot_failed(s, rc, FAIL_OP);
    return;
  }
  slot_set_idle(s);
}

/* Close one retiring idle slot of `b` now that a replacement is ready. */
static void backend_retire_one(qorb_pool_t *p, struct qorb__backend *b) {
  qorb__list_t *it;
  for (it = b->slots.next; it != &b->slots; it = it->next) {
    qorb_claim_t *s = QORB_CONTAINER_OF(it, qorb_claim_t, blink);
    int idle = QORB__S_IDLE;
    if (!s->retiring) continue;
    if (atomic_compare_exchange_strong(&s->state, &idle, QORB__S_CLOSING)) {
      slot_unbind(s);
      return;
    }
  }
  (void)p;
}

static void slot_set_idle(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  qorb__waiter_t *w;
  int wake = 0, replacement = 0;

  s->op = QORB__OP_NONE;
  if (s->retiring)
    slot_timer_start(s, p->policy.rebalance_interval_ms);
  else if (p->policy.health_interval_ms > 0 && p->cops->check != NULL)
    slot_timer_start(s, p->policy.health_interval_ms);
  else
    ev_timer_stop(p->loop, &s->timer);
  replacement = !s->retiring && s->backend->nretiring > 0;

  pthread_mutex_lock(&p->mu);
  w = waiter_head(p);
  if (w != NULL) {
    slot_set_state(s, QORB__S_CLAIMED);
    waiter_give(p, w, s, 0);
    wake = !w->blocking;
  } else {
    slot_set_state(s, QORB__S_IDLE);
  }
  pool_unlock(p);
  if (wake) ev_feed_event(p->loop, &p->wake, EV_ASYNC);
  if (replacement) backend_retire_one(p, s->backend);
}

/*
 * An op or a connect failed, or a check said the connection is bad: close
 * it and reconnect after a backoff (or free the slot if it is not wanted).
 */
static void slot_failed(qorb_claim_t *s, int status, int kind) {
  qorb_pool_t *p = s->pool;
  struct qorb__backend *b = s->backend;
  unsigned delay;
  slot_close_conn(s);
  ev_timer_stop(p->loop, &s->timer);
  ev_timer_stop(p->loop, &s->life);
  if (kind != FAIL_BROKEN) backend_failure(p, b);
  /*
   * Only a failed connect says the backend is unreachable. A connection
   * that failed a check is replaced; the backend is judged by that attempt.
   */
  if (kind == FAIL_CONNECT && b->nconnected == 0 && !b->failed) {
    b->failed = 1;
    pool_publish(p);
  }
  if (slot_excess(s)) {
    slot_free_and_rebalance(s);
    return;
  }
  if (kind == FAIL_BROKEN) {
    /* Released as broken: replace it at once, it says nothing of the backend. */
    s->backoff_ms = 0;
    slot_set_state(s, QORB__S_BACKOFF);
    slot_connect(s);
    return;
  }
  if (s->backoff_ms == 0)
    s->backoff_ms = p->policy.min_backoff_ms;
  else if (s->backoff_ms >= p->policy.max_backoff_ms / 2)
    s->backoff_ms = p->policy.max_backoff_ms;
  else
    s->backoff_ms *= 2;
  delay = s->backoff_ms;
  if (p->policy.backoff_spread_ms > 0)
    delay += (unsigned)(rng_next(p) % p->policy.backoff_spread_ms);
  slot_set_state(s, QORB__S_BACKOFF);
  slot_timer_start(s, delay);
  (void)status;
  pool_rebalance(p);
}

static void slot_connect(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  struct qorb__backend *b = s->backend;
  void *conn = NULL;
  int rc;

  if (b->nconnecting >= p->policy.max_connecting_per_backend) {
    /* Too many attempts in flight to this backend: try again shortly. */
    slot_set_state(s, QORB__S_BACKOFF);
    slot_timer_start(s, p->policy.min_backoff_ms);
    return;
  }
  b->nconnecting++;
  s->op = QORB__OP_CONNECT;
  s->op_status = 0;
  slot_set_state(s, QORB__S_CONNECTING);
  slot_timer_start(s, p->policy.connect_timeout_ms);
  QORB_PROBE(CONNECT_START, p->name, (uint64_t)s->index, b->addr.text);
  s->err_set = 0;
  rc = p->cops->connect(p->cctx, (qorb_op_t *)s, &b->addr, &conn);
  if (rc < 0 && !s->op_done_queued) {
    s->conn = NULL;
    if (!s->err_set)
      qorb_op_set_error((qorb_op_t *)s, "connect to %s: %s", b->addr.text,
                        qorb_strerror(rc));
    QORB_PROBE(CONNECT_FAILED, p->name, (uint64_t)s->index, b->addr.text, rc);
    slot_failed(s, rc, FAIL_CONNECT);
    return;
  }
  s->conn = conn;
}

/* The op in flight finished (queued by qorb_op_done). */
static void slot_op_finished(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  struct qorb__backend *b = s->backend;
  int status = s->op_status, op = s->op;

  ev_timer_stop(p->loop, &s->timer);
  s->op = QORB__OP_NONE;
  switch (op) {
  case QORB__OP_CONNECT:
    b->nconnecting--;
    if (status < 0) {
      QORB_PROBE(CONNECT_FAILED, p->name, (uint64_t)s->index, b->addr.text,
                 status);
      slot_failed(s, status, FAIL_CONNECT);
      return;
    }
    QORB_PROBE(CONNECT_DONE, p->name, (uint64_t)s->index, b->addr.text);
    atomic_fetch_add_explicit(&b->connects, 1, RELAXED);
    s->connected = 1;
    s->backoff_ms = 0;
    if (b->nconnected++ == 0) {
      b->failed = 0;
      QORB_PROBE(SLOT_SET_ONLINE, p->name, b->addr.text);
      pool_log(p, QORB_LOG_INFO, "backend %s online", b->addr.text);
      pool_publish(p);
    }
    if (p->policy.max_lifetime_ms > 0) {
      /* Up to 2.5% earlier, so that connections made together expire apart. */
      double life = ms(p->policy.max_lifetime_ms);
      life -= life * 0.025 * rng_unit(p);
      ev_timer_set(&s->life, life, 0.);
      ev_timer_start(p->loop, &s->life);
    }
    slot_ready(s);
    pool_rebalance(p);
    return;
  case QORB__OP_CHECK:
    if (status < 0) {
      QORB_PROBE(HEALTH_CHECK_FAILED, p->name, (uint64_t)s->index,
                 b->addr.text, status);
      pool_log(p, QORB_LOG_WARN, "health check of %s failed: %s",
               b->addr.text, qorb_strerror(status));
      slot_failed(s, status, FAIL_OP);
      return;
    }
    QORB_PROBE(HEALTH_CHECK_DONE, p->name, (uint64_t)s->index, b->addr.text);
    if (slot_excess(s)) {
      slot_free_and_rebalance(s);
      return;
    }
    slot_set_idle(s);
    return;
  case QORB__OP_PREPARE:
    if (status < 0) {
      slot_failed(s, status, FAIL_OP);
      return;
    }
    slot_set_idle(s);
    return;
  case QORB__OP_RECYCLE:
    if (status < 0) {
      QORB_PROBE(RECYCLE_FAILED, p->name, (uint64_t)s->index, b->addr.text,
                 status);
      slot_failed(s, status, FAIL_OP);
      return;
    }
    QORB_PROBE(RECYCLE_DONE, p->name, (uint64_t)s->index, b->addr.text);
    slot_ready(s);
    return;
  default:
    return;
  }
}

/* A released slot reaches the loop: close, recycle or make idle. */
static void slot_released(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  int rc;
  if (s->release_broken) {
    if (p->closing_loop || s->backend->removed || s->retiring) {
      slot_free_and_rebalance(s);
      return;
    }
    slot_failed(s, QORB_EBROKEN, FAIL_BROKEN);
    return;
  }
  if (slot_excess(s)) {
    slot_free_and_rebalance(s);
    return;
  }
  if (p->cops->recycle != NULL) {
    rc = start_op(s, QORB__OP_RECYCLE, QORB__S_RECYCLING,
                  p->policy.recycle_timeout_ms);
    if (rc < 0) slot_failed(s, rc, FAIL_OP);
    return;
  }
  slot_ready(s);
}

static void slot_timer_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  qorb_claim_t *s = QORB_CONTAINER_OF(t, qorb_claim_t, timer);
  qorb_pool_t *p = s->pool;
  int st = slot_state(s), idle = QORB__S_IDLE, rc;
  (void)loop;
  (void)revents;
  if (s->op_done_queued) return; /* finished just in time */
  switch (st) {
  case QORB__S_BACKOFF:
    if (slot_excess(s)) {
      slot_free_and_rebalance(s);
      return;
    }
    slot_connect(s);
    return;
  case QORB__S_CONNECTING:
  case QORB__S_CHECKING:
  case QORB__S_PREPARING:
  case QORB__S_RECYCLING:
    qorb_op_set_error((qorb_op_t *)s, "%s of %s timed out",
                      st == QORB__S_CONNECTING  ? "connect"
                      : st == QORB__S_CHECKING  ? "health check"
                      : st == QORB__S_PREPARING ? "prepare"
                                                : "recycle",
                      s->backend->addr.text);
    s->op_status = QORB_ETIMEDOUT;
    if (st == QORB__S_CONNECTING) {
      QORB_PROBE(CONNECT_FAILED, p->name, (uint64_t)s->index,
                 s->backend->addr.text, QORB_ETIMEDOUT);
    } else if (st == QORB__S_CHECKING) {
      QORB_PROBE(HEALTH_CHECK_FAILED, p->name, (uint64_t)s->index,
                 s->backend->addr.text, QORB_ETIMEDOUT);
    } else if (st == QORB__S_RECYCLING) {
      QORB_PROBE(RECYCLE_FAILED, p->name, (uint64_t)s->index,
                 s->backend->addr.text, QORB_ETIMEDOUT);
    }
    slot_failed(s, QORB_ETIMEDOUT,
                st == QORB__S_CONNECTING ? FAIL_CONNECT : FAIL_OP);
    return;
  case QORB__S_IDLE:
    if (s->retiring && backend_has_fresh(s->backend)) {
      if (atomic_compare_exchange_strong(&s->state, &idle, QORB__S_CLOSING))
        slot_free_and_rebalance(s);
      else
        slot_timer_start(s, p->policy.rebalance_interval_ms);
      return;
    }
    if (p->cops->check == NULL || p->policy.health_interval_ms == 0) {
      /* No health checks: only a retiring slot needs this timer. */
      if (s->retiring) slot_timer_start(s, p->policy.rebalance_interval_ms);
      return;
    }
    /* Health check, if nobody claims it first. */
    if (!atomic_compare_exchange_strong(&s->state, &idle, QORB__S_CHECKING)) {
      slot_timer_start(s, p->policy.health_interval_ms);
      return;
    }
    rc = start_op(s, QORB__OP_CHECK, QORB__S_CHECKING,
                  p->policy.health_check_timeout_ms);
    if (rc < 0) slot_failed(s, rc, FAIL_OP);
    return;
  case QORB__S_CLAIMED:
  case QORB__S_RELEASED:
    if (p->policy.health_interval_ms > 0)
      slot_timer_start(s, p->policy.health_interval_ms);
    return;
  default:
    return;
  }
}

static void slot_life_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  qorb_claim_t *s = QORB_CONTAINER_OF(t, qorb_claim_t, life);
  qorb_pool_t *p = s->pool;
  (void)revents;
  ev_timer_stop(loop, t);
  if (s->retiring) return;
  /*
   * Retire without a gap: the slot stays claimable while rebalancing starts
   * its replacement; the first replacement to become idle closes it. Until
   * a replacement is connected it keeps serving (a release puts it back);
   * after that, a claimed one closes on release, a busy one when its op
   * ends, an idle one at its next timer tick.
   */
  s->retiring = 1;
  s->backend->nretiring++;
  atomic_fetch_or(&s->flags, QORB__F_RETIRE);
  pool_log(p, QORB_LOG_DEBUG, "connection %u to %s reached its lifetime",
           s->index, s->backend->addr.text);
  pool_rebalance(p);
}

/* ---------------------------------------------------------------------- */
/* The connector's side                                                    */

void qorb_op_done(qorb_op_t *op, int status) {
  qorb_claim_t *s = (qorb_claim_t *)op;
  qorb_pool_t *p;
  if (s == NULL) return;
  p = s->pool;
  if (QORB_NEVER(s->op == QORB__OP_NONE || s->op_done_queued)) return;
  /*
   * Do not act inside the connector's own callback: the connector may
   * still be using the connection. Queue the slot; the wake watcher runs
   * later in this same loop iteration.
   */
  s->op_status = status;
  s->op_done_queued = 1;
  qorb__list_push_back(&p->done_ops, &s->plink);
  ev_feed_event(p->loop, &p->wake, EV_ASYNC);
}

void qorb_op_set_error(qorb_op_t *op, const char *fmt, ...) {
  qorb_claim_t *s = (qorb_claim_t *)op;
  char buf[192];
  va_list ap;
  if (s == NULL || fmt == NULL || s->backend == NULL) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  /* Drop a trailing newline (libpq ends its messages with one). */
  {
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
  }
  s->err_set = 1;
  pthread_mutex_lock(&s->pool->mu);
  qorb__strlcpy(s->backend->last_error, buf, sizeof(s->backend->last_error));
  pthread_mutex_unlock(&s->pool->mu);
  pool_log(s->pool, QORB_LOG_WARN, "%s: %s", s->backend->addr.text, buf);
}

struct ev_loop *qorb_op_loop(const qorb_op_t *op) {
  return op != NULL ? ((const qorb_claim_t *)op)->pool->loop : NULL;
}

const qorb_addr_t *qorb_op_addr(const qorb_op_t *op) {
  const qorb_claim_t *s = (const qorb_claim_t *)op;
  return (s != NULL && s->backend != NULL) ? &s->backend->addr : NULL;
}

/* ---------------------------------------------------------------------- */
/* Rebalancing                                                             */

/* Backends beyond this many are known but get no slots. */
#define QORB__MAX_BACKENDS 256

static int rank_cmp(const void *a, const void *b) {
  const struct qorb__backend *x = *(struct qorb__backend *const *)a;
  const struct qorb__backend *y = *(struct qorb__backend *const *)b;
  return x->rank < y->rank ? -1 : x->rank > y->rank ? 1 : 0;
}

/*
 * Close slots of `b` beyond its target, cheapest first: those not connected,
 * then idle ones. A removed backend (or a closing pool) loses every slot
 * nobody holds, ops in flight aborted, and a removed backend is freed with
 * its last slot. Claimed slots close when they come back.
 */
static void backend_shrink(qorb_pool_t *p, struct qorb__backend *b) {
  qorb__list_t *it, *next;
  int pass, gone = b->removed || p->closing_loop;
  for (pass = 0; pass < 2; pass++) {
    for (it = b->slots.next; it != &b->slots; it = next) {
      qorb_claim_t *s = QORB_CONTAINER_OF(it, qorb_claim_t, blink);
      int st = slot_state(s), idle = QORB__S_IDLE, last = b->nslots == 1;
      next = it->next;
      if (st == QORB__S_CLAIMED || st == QORB__S_RELEASED) continue;
      if (!gone && (s->retiring || b->nslots - b->nretiring <= b->target))
        continue;
      if (st == QORB__S_IDLE) {
        if (pass == 0 ||
            !atomic_compare_exchange_strong(&s->state, &idle, QORB__S_CLOSING))
          continue;
      } else if (pass == 1 ||
                 (!gone && st != QORB__S_BACKOFF &&
                  !(st == QORB__S_CONNECTING && !s->op_done_queued))) {
        continue; /* connected and busy: leave it unless the backend is gone */
      }
      last = last && b->removed; /* read before unbind may free b */
      slot_unbind(s);
      if (last) return;
    }
  }
}

/*
 * Set every backend's target. Backends come in three kinds: online (a
 * connection is up), failed (offline since a failed connect) and new (not
 * yet connected, not yet failed). A failed backend keeps one probing slot.
 * Online and new backends share min(demand, max_slots) evenly, best ranked
 * first, but a new backend holds one slot until it is online: its share is
 * kept for it rather than lent to the others, so that nothing opened now
 * has to be closed a moment later when it comes up.
 */
static void pool_set_targets(qorb_pool_t *p, struct qorb__backend **share,
                                 unsigned *nshare_out,
                                 struct qorb__backend **off,
                                 unsigned *noff_out) {
  struct qorb__backend *b;
  qorb__list_t *it;
  unsigned nshare = 0, noff = 0, i, k, claimed = 0, demand, budget, total;
  unsigned per_max, left;
  ev_tstamp now = ev_now(p->loop);

  for (it = p->backends.next; it != &p->backends; it = it->next) {
    b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
    b->rank = (double)backend_recent_failures(p, b) + b->jitter;
    b->target = 0;
    if (b->removed || p->closing_loop) continue;
    if ((b->nconnected > 0 || !b->failed) && nshare < QORB__MAX_BACKENDS)
      share[nshare++] = b;
    else if (noff < QORB__MAX_BACKENDS)
      off[noff++] = b;
  }
  qsort(share, nshare, sizeof(share[0]), rank_cmp);
  qsort(off, noff, sizeof(off[0]), rank_cmp);
  *nshare_out = nshare;
  *noff_out = noff;

  for (i = 0; i < p->cap; i++)
    if (slot_state(&p->slots[i]) == QORB__S_CLAIMED ||
        slot_state(&p->slots[i]) == QORB__S_RELEASED)
      claimed++;
  demand = claimed + atomic_load_explicit(&p->nwaiters, RELAXED) +
           p->policy.spares_wanted;
  /* idle_timeout: shrink only after demand has stayed lower that long. */
  if (demand >= p->demand_peak || p->demand_peak_at == 0) {
    p->demand_peak = demand;
    p->demand_peak_at = now;
  } else if (p->policy.idle_timeout_ms > 0 &&
             now - p->demand_peak_at >= ms(p->policy.idle_timeout_ms)) {
    p->demand_peak = demand;
    p->demand_peak_at = now;
  }
  if (demand < p->demand_peak) demand = p->demand_peak;

  /*
   * max_slots is a hard cap on connections, probes included. Backends that
   * can serve come first: each gets at least one slot, then failed ones get
   * a probe each from what is left, then the rest is shared by demand.
   */
  {
    unsigned nmin = nshare < p->policy.max_slots ? nshare : p->policy.max_slots;
    unsigned probes = p->policy.max_slots - nmin;
    if (probes > noff) probes = noff;
    for (i = 0; i < noff; i++) off[i]->target = i < probes ? 1 : 0;
    budget = p->policy.max_slots - probes;
    if (nshare == 0) return;
    total = demand < budget ? demand : budget;
    if (total < nmin) total = nmin;
  }
  per_max = p->policy.max_slots_per_backend ? p->policy.max_slots_per_backend
                                            : p->policy.max_slots;
  /* Deal the slots out one round at a time, best ranked first. */
  left = total;
  while (left > 0) {
    unsigned dealt = 0;
    for (k = 0; k < nshare && left > 0; k++) {
      if (share[k]->target >= per_max) continue;
      share[k]->target++;
      left--;
      dealt++;
    }
    if (dealt == 0) break;
  }
  for (k = 0; k < nshare; k++)
    if (share[k]->nconnected == 0 && share[k]->target > 1) share[k]->target = 1;
}

static void pool_rebalance(qorb_pool_t *p) {
  struct qorb__backend *on[QORB__MAX_BACKENDS], *off[QORB__MAX_BACKENDS], *b;
  qorb__list_t *it, *next;
  unsigned non = 0, noff = 0, i;

  if (p->in_rebalance || p->loop == NULL) return;
  p->in_rebalance = 1;
  QORB_PROBE(REBALANCE_START, p->name);
  pool_set_targets(p, on, &non, off, &noff);

  /* Shrink first, so that growing finds room (this may free a backend). */
  for (it = p->backends.next; it != &p->backends; it = next) {
    next = it->next;
    b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
    backend_shrink(p, b);
  }
  for (i = 0; i < non + noff; i++) {
    b = i < non ? on[i] : off[i - non];
    while (b->nslots - b->nretiring < b->target && p->nbound < p->cap &&
           b->nconnecting < p->policy.max_connecting_per_backend) {
      qorb_claim_t *s = slot_bind(p, b);
      if (s == NULL) break;
      slot_connect(s);
    }
  }

  /* Publish the claim scan order: best-ranked backends' slots first. */
  {
    unsigned n = 0;
    pthread_mutex_lock(&p->mu);
    for (i = 0; i < non + noff; i++) {
      b = i < non ? on[i] : off[i - non];
      for (it = b->slots.next; it != &b->slots && n < p->cap; it = it->next) {
        qorb_claim_t *s = QORB_CONTAINER_OF(it, qorb_claim_t, blink);
        atomic_store_explicit(&p->order[n++], s->index, RELAXED);
      }
    }
    /* Slots of removed backends go last (they are draining). */
    for (it = p->backends.next; it != &p->backends; it = it->next) {
      qorb__list_t *jt;
      b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
      if (!b->removed) continue;
      for (jt = b->slots.next; jt != &b->slots && n < p->cap; jt = jt->next)
        atomic_store_explicit(&p->order[n++],
                              QORB_CONTAINER_OF(jt, qorb_claim_t, blink)->index,
                              RELAXED);
    }
    for (; n < p->cap; n++) atomic_store_explicit(&p->order[n], UINT32_MAX, RELAXED);
    pool_unlock(p);
  }
  {
    unsigned serving = 0;
    for (it = p->backends.next; it != &p->backends; it = it->next) {
      b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
      serving += b->nslots - b->nretiring;
    }
    atomic_store_explicit(&p->pub_full, serving >= p->policy.max_slots,
                          RELAXED);
  }
  QORB_PROBE(REBALANCE_DONE, p->name, p->nbound);
  p->in_rebalance = 0;
}

static void rebalance_timer_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  qorb_pool_t *p = (qorb_pool_t *)t->data;
  (void)loop;
  (void)revents;
  pool_rebalance(p);
}

/* ---------------------------------------------------------------------- */
/* Leak detection                                                          */

static void leak_timer_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  qorb_pool_t *p = (qorb_pool_t *)t->data;
  ev_tstamp now = ev_now(loop), limit = ms(p->policy.leak_threshold_ms);
  unsigned i;
  (void)revents;
  /*
   * A claim is recognised by the slot's claim counter: if it has not moved
   * since we first saw the slot claimed, the same claim is still held. This
   * keeps the clock off the claim fast path.
   */
  for (i = 0; i < p->cap; i++) {
    qorb_claim_t *s = &p->slots[i];
    uint64_t seq;
    if (slot_state(s) != QORB__S_CLAIMED) continue;
    seq = atomic_load_explicit(&s->nclaims, RELAXED);
    if (seq != s->leak_seq) {
      s->leak_seq = seq;
      s->leak_since = now;
      s->leak_reported = 0;
      continue;
    }
    if (!s->leak_reported && now - s->leak_since >= limit) {
      const char *file = atomic_load_explicit(&s->claim_file, RELAXED);
      s->leak_reported = 1;
      atomic_fetch_add(&p->leaks, 1);
      pool_log(p, QORB_LOG_WARN,
               "possible leak: connection %u to %s claimed at %s:%d held "
               "over %u ms",
               s->index, s->backend->addr.text, file ? file : "?",
               atomic_load_explicit(&s->claim_line, RELAXED),
               p->policy.leak_threshold_ms);
    }
  }
}

/* ---------------------------------------------------------------------- */
/* The wake watcher: everything other threads hand to the loop             */

static void pool_kick(qorb_pool_t *p) {
  ev_feed_event(p->loop, &p->wake, EV_ASYNC);
}

/*
 * Housekeeping watchers are unref'd so that they alone do not keep the
 * loop running; take those references back before stopping them (libev
 * wants that) and so that the loop runs until closing has finished.
 */
static void pool_ref_loop(qorb_pool_t *p) {
  while (p->unrefs > 0) {
    ev_ref(p->loop);
    p->unrefs--;
  }
}

static void pool_begin_close(qorb_pool_t *p) {
  qorb__list_t *it, *next;
  p->closing_loop = 1;
  pool_ref_loop(p);
  atomic_store(&p->closing, 1);
  if (p->resolver->started) {
    p->resolver->ops->stop(p->resolver->ctx);
    p->resolver->started = 0;
  }
  ev_timer_stop(p->loop, &p->rebalance_timer);
  ev_timer_stop(p->loop, &p->leak_timer);
  pthread_mutex_lock(&p->mu);
  fail_waiters(p, QORB_ESHUTDOWN);
  pool_unlock(p);
  for (it = p->backends.next; it != &p->backends; it = next) {
    struct qorb__backend *b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
    next = it->next;
    b->removed = 1;
    b->target = 0;
    backend_shrink(p, b); /* claimed slots close when released */
  }
  pool_publish(p);
}

static void pool_finish(qorb_pool_t *p);

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents) {
  qorb_pool_t *p = (qorb_pool_t *)w->data;
  int close_now, grow;
  (void)loop;
  (void)revents;

  pthread_mutex_lock(&p->mu);
  close_now = p->close_requested && !p->closing_loop;
  grow = p->grow_wanted;
  p->grow_wanted = 0;
  pool_unlock(p);
  if (close_now) pool_begin_close(p);

  /* Ops that finished. */
  while (!qorb__list_empty(&p->done_ops)) {
    qorb_claim_t *s = QORB_CONTAINER_OF(p->done_ops.next, qorb_claim_t, plink);
    qorb__list_remove(&s->plink);
    s->op_done_queued = 0;
    slot_op_finished(s);
  }

  /* Released slots that need the loop. */
  for (;;) {
    qorb_claim_t *s;
    pthread_mutex_lock(&p->mu);
    if (qorb__list_empty(&p->released)) {
      pool_unlock(p);
      break;
    }
    s = QORB_CONTAINER_OF(p->released.next, qorb_claim_t, plink);
    qorb__list_remove(&s->plink);
    pool_unlock(p);
    slot_released(s);
  }

  /* Asynchronous claims that need their deadline armed. */
  for (;;) {
    qorb__waiter_t *wt;
    pthread_mutex_lock(&p->mu);
    if (qorb__list_empty(&p->to_arm)) {
      pool_unlock(p);
      break;
    }
    wt = QORB_CONTAINER_OF(p->to_arm.next, qorb__waiter_t, alink);
    qorb__list_remove(&wt->alink);
    ev_timer_init(&wt->timer, waiter_timer_cb, ms(wt->timeout_ms), 0.);
    wt->timer.data = p;
    wt->armed = 1;
    ev_timer_start(p->loop, &wt->timer);
    pool_unlock(p);
  }

  if (grow && !p->closing_loop) pool_rebalance(p);
  deliver_completed(p);
  pool_check_closed(p);
  if (p->finished) pool_finish(p);
}

/* Closing is complete when no slot is bound and no callback is pending. */
static void pool_check_closed(qorb_pool_t *p) {
  int empty;
  if (!p->closing_loop || p->finished) return;
  if (p->nbound != 0 || !qorb__list_empty(&p->done_ops)) return;
  pthread_mutex_lock(&p->mu);
  empty = qorb__list_empty(&p->released) && qorb__list_empty(&p->completed) &&
          qorb__list_empty(&p->waiters) && p->inflight == 0;
  pool_unlock(p);
  if (!empty) return;
  p->finished = 1;
  pool_kick(p);
}

static void pool_free(qorb_pool_t *p) {
  while (!qorb__list_empty(&p->free_waiters)) {
    qorb__list_t *it = p->free_waiters.next;
    qorb__list_remove(it);
    qorb__free(QORB_CONTAINER_OF(it, qorb__waiter_t, link));
  }
  while (!qorb__list_empty(&p->backends)) {
    qorb__list_t *it = p->backends.next;
    qorb__list_remove(it);
    qorb__free(QORB_CONTAINER_OF(it, struct qorb__backend, link));
  }
  if (p->resolver != NULL) {
    p->resolver->pool = NULL;
    qorb_resolver_free(p->resolver);
  }
  if (p->connector != NULL) qorb_connector_free(p->connector);
  pthread_mutex_destroy(&p->mu);
  qorb__free(p->order);
  qorb__free(p->slots_raw);
  qorb__free(p);
}

/* Stop the last watchers; with an application loop, free and call back. */
static void pool_finish(qorb_pool_t *p) {
  qorb_close_cb cb;
  void *arg;
  ev_async_stop(p->loop, &p->wake);
  ev_timer_stop(p->loop, &p->rebalance_timer);
  ev_timer_stop(p->loop, &p->leak_timer);
  if (p->own_loop) {
    /* The thread's ev_run returns now; the closer (or the thread) frees. */
    ev_break(p->loop, EVBREAK_ALL);
    return;
  }
  pthread_mutex_lock(&p->mu);
  cb = p->close_cb;
  arg = p->close_arg;
  pool_unlock(p);
  pool_free(p);
  if (cb != NULL) cb(p, 0, arg);
}

/* ---------------------------------------------------------------------- */
/* Lifecycle                                                               */

static void *pool_thread_main(void *arg) {
  qorb_pool_t *p = arg;
  struct ev_loop *loop = p->loop;
  qorb_close_cb cb;
  void *cb_arg;
  tl_own_pool = p;
  ev_run(loop, 0);
  tl_own_pool = NULL;
  if (p->detach_on_finish) {
    pthread_mutex_lock(&p->mu);
    cb = p->close_cb;
    cb_arg = p->close_arg;
    pool_unlock(p);
    pool_free(p);
    ev_loop_destroy(loop);
    if (cb != NULL) cb(p, 0, cb_arg);
  }
  return NULL;
}

int qorb_pool_new(qorb_pool_t **out, struct ev_loop *loop,
                  const qorb_policy_t *policy, qorb_resolver_t *resolver,
                  qorb_connector_t *connector, char *err, size_t errlen) {
  qorb_pool_t *p = NULL;
  qorb_policy_t def;
  unsigned i, reserve;
  int rc;

  if (err != NULL && errlen > 0) err[0] = '\0';
  if (out == NULL || resolver == NULL || connector == NULL) return QORB_EINVAL;
  *out = NULL;
  if (resolver->pool != NULL) return QORB_EINVAL; /* owned by another pool */
  if (policy == NULL) {
    qorb_policy_init(&def);
    policy = &def;
  }
  if ((rc = qorb_policy_validate(policy, err, errlen)) < 0) return rc;

  p = qorb__calloc(1, sizeof(*p));
  if (p == NULL) return QORB_ENOMEM;
  p->policy = *policy;
  qorb__strlcpy(p->name, policy->name, sizeof(p->name));
  p->policy.name = p->name;
  reserve = policy->max_slots / 8 + 1; /* room for lifetime replacements */
  p->cap = policy->max_slots + reserve;
  p->slots_raw = qorb__calloc(1, (size_t)p->cap * sizeof(qorb_claim_t) + 64);
  p->order = qorb__calloc(p->cap, sizeof(*p->order));
  if (p->slots_raw == NULL || p->order == NULL) {
    qorb__free(p->slots_raw);
    qorb__free(p->order);
    qorb__free(p);
    return QORB_ENOMEM;
  }
  p->slots = (qorb_claim_t *)(((uintptr_t)p->slots_raw + 63) & ~(uintptr_t)63);
  pthread_mutex_init(&p->mu, NULL);
  qorb__list_init(&p->waiters);
  qorb__list_init(&p->completed);
  qorb__list_init(&p->to_arm);
  qorb__list_init(&p->released);
  qorb__list_init(&p->free_waiters);
  qorb__list_init(&p->to_post);
  qorb__list_init(&p->done_ops);
  qorb__list_init(&p->backends);
  p->cops = connector->ops;
  p->cctx = connector->ctx;
  p->rng = (qorb__now_ns() ^ (uint64_t)(uintptr_t)p) | 1;

  if (loop == NULL) {
    loop = ev_loop_new(EVFLAG_AUTO);
    if (loop == NULL) {
      rc = -ENOMEM;
      goto fail;
    }
    p->own_loop = 1;
  }
  p->loop = loop;
  /* The loop may have been idle a while: timers start from a fresh now. */
  ev_now_update(loop);
  for (i = 0; i < p->cap; i++) {
    qorb_claim_t *s = &p->slots[i];
    s->pool = p;
    s->index = i;
    ev_timer_init(&s->timer, slot_timer_cb, 0., 0.);
    ev_timer_init(&s->life, slot_life_cb, 0., 0.);
    qorb__list_init(&s->blink);
    qorb__list_init(&s->plink);
    atomic_store_explicit(&p->order[i], UINT32_MAX, RELAXED);
  }
  ev_async_init(&p->wake, wake_cb);
  p->wake.data = p;
  ev_async_start(loop, &p->wake);
  ev_timer_init(&p->rebalance_timer, rebalance_timer_cb,
                ms(policy->rebalance_interval_ms),
                ms(policy->rebalance_interval_ms));
  p->rebalance_timer.data = p;
  ev_timer_start(loop, &p->rebalance_timer);
  ev_unref(loop); /* housekeeping alone does not keep the loop running */
  p->unrefs++;
  if (policy->leak_threshold_ms > 0) {
    double iv = ms(policy->leak_threshold_ms) / 4;
    if (iv < 0.01) iv = 0.01;
    ev_timer_init(&p->leak_timer, leak_timer_cb, iv, iv);
    p->leak_timer.data = p;
    ev_timer_start(loop, &p->leak_timer);
    ev_unref(loop);
    p->unrefs++;
  } else {
    ev_timer_init(&p->leak_timer, leak_timer_cb, 1., 1.);
    p->leak_timer.data = p;
  }
  if (!p->own_loop) {
    ev_unref(loop); /* nor does the wake watcher */
    p->unrefs++;
  }

  p->resolver = resolver;
  p->connector = connector;
  resolver->pool = p;
  resolver->started = 1;
  rc = resolver->ops->start(resolver->ctx, resolver);
  if (rc < 0) {
    resolver->started = 0;
    goto fail_stop;
  }
  if (p->own_loop) {
    rc = pthread_create(&p->thread, NULL, pool_thread_main, p);
    if (rc != 0) {
      rc = -rc;
      resolver->ops->stop(resolver->ctx);
      resolver->started = 0;
      goto fail_stop;
    }
    p->thread_started = 1;
  }
  *out = p;
  return 0;

fail_stop:
  /* Undo everything the resolver's updates did; give both back. */
  resolver->pool = NULL;
  p->closing_loop = 1;
  while (!qorb__list_empty(&p->backends)) {
    struct qorb__backend *b =
        QORB_CONTAINER_OF(p->backends.next, struct qorb__backend, link);
    b->removed = 1;
    if (b->nslots == 0) {
      qorb__list_remove(&b->link);
      qorb__free(b);
      continue;
    }
    backend_shrink(p, b); /* nothing is claimed yet: frees b */
  }
  p->resolver = NULL;
  p->connector = NULL;
  pool_ref_loop(p);
  ev_async_stop(loop, &p->wake);
  ev_timer_stop(loop, &p->rebalance_timer);
  ev_timer_stop(loop, &p->leak_timer);
fail:
  if (p->own_loop && p->loop != NULL) ev_loop_destroy(p->loop);
  pthread_mutex_destroy(&p->mu);
  qorb__free(p->order);
  qorb__free(p->slots_raw);
  qorb__free(p);
  return rc;
}

int qorb_pool_close(qorb_pool_t *p, qorb_close_cb cb, void *arg) {
  int on_own_thread;
  if (p == NULL) return QORB_EINVAL;
  pthread_mutex_lock(&p->mu);
  if (p->close_requested) {
    pool_unlock(p);
    return QORB_EBUSY;
  }
  p->close_requested = 1;
  p->close_cb = cb;
  p->close_arg = arg;
  atomic_store(&p->closing, 1);
  on_own_thread = p->own_loop && pthread_equal(pthread_self(), p->thread);
  if (on_own_thread) p->detach_on_finish = 1;
  pool_unlock(p);

  if (!p->own_loop) {
    /* On the loop's thread: keep the loop alive until closing has finished. */
    pool_ref_loop(p);
    ev_async_send(p->loop, &p->wake);
    return 0;
  }
  if (on_own_thread) {
    pthread_detach(p->thread);
    pool_kick(p);
    return 0;
  }
  ev_async_send(p->loop, &p->wake);
  pthread_join(p->thread, NULL);
  {
    struct ev_loop *loop = p->loop;
    pool_free(p);
    ev_loop_destroy(loop);
  }
  if (cb != NULL) cb(p, 0, arg);
  return 0;
}

struct ev_loop *qorb_pool_loop(const qorb_pool_t *p) {
  return p != NULL ? p->loop : NULL;
}

const char *qorb_pool_name(const qorb_pool_t *p) {
  return p != NULL ? p->name : NULL;
}

/* ---------------------------------------------------------------------- */
/* Stats                                                                   */

void qorb_pool_stats_init_(qorb_pool_stats_t *st, size_t size,
                           size_t backend_size) {
  if (st == NULL) return;
  memset(st, 0, size < sizeof(*st) ? size : sizeof(*st));
  st->size = size;
  st->backend_size = backend_size;
}

int qorb_pool_stats(qorb_pool_t *p, qorb_pool_stats_t *st,
                    qorb_backend_stats_t *backends, size_t cap, size_t *n) {
  qorb__list_t *it, *jt;
  size_t nb = 0, i;
  qorb_pool_stats_t out;

  if (n != NULL) *n = 0;
  /*
   * The caller's structs may be older (smaller) than ours: write only the
   * fields it knows, with its own stride through the backend array.
   */
  if (p == NULL || st == NULL || st->size < offsetof(qorb_pool_stats_t, closing) ||
      (backends != NULL && st->backend_size < sizeof(qorb_addr_t)))
    return QORB_EINVAL;
  memset(&out, 0, sizeof(out));
  out.size = st->size;
  out.backend_size = st->backend_size;
  out.closing = atomic_load_explicit(&p->closing, RELAXED);
  out.waiters = atomic_load_explicit(&p->nwaiters, RELAXED);
  out.timeouts = atomic_load_explicit(&p->timeouts, RELAXED);
  out.claim_failures = atomic_load_explicit(&p->claim_failures, RELAXED);
  out.queue_full = atomic_load_explicit(&p->queue_full, RELAXED);
  out.leaks = atomic_load_explicit(&p->leaks, RELAXED);
  for (i = 0; i < p->cap; i++)
    out.claims += atomic_load_explicit(&p->slots[i].nclaims, RELAXED);

  pthread_mutex_lock(&p->mu);
  for (it = p->backends.next; it != &p->backends; it = it->next) {
    struct qorb__backend *b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
    qorb_backend_stats_t bs;
    if (b->removed && qorb__list_empty(&b->slots)) continue;
    memset(&bs, 0, sizeof(bs));
    bs.addr = b->addr;
    bs.claims = b->claims_retired;
    for (jt = b->slots.next; jt != &b->slots; jt = jt->next) {
      qorb_claim_t *s = QORB_CONTAINER_OF(jt, qorb_claim_t, blink);
      switch (slot_state(s)) {
      case QORB__S_CONNECTING:
      case QORB__S_BACKOFF:
        bs.connecting++;
        break;
      case QORB__S_IDLE:
        bs.idle++;
        bs.online = 1;
        break;
      case QORB__S_CLAIMED:
        bs.claimed++;
        bs.online = 1;
        break;
      case QORB__S_PREPARING:
      case QORB__S_RELEASED:
      case QORB__S_CHECKING:
      case QORB__S_RECYCLING:
        bs.checking++;
        bs.online = 1;
        break;
      default:
        break;
      }
      bs.claims += atomic_load_explicit(&s->nclaims, RELAXED) - s->nclaims_base;
    }
    bs.connects = atomic_load_explicit(&b->connects, RELAXED);
    bs.failures = atomic_load_explicit(&b->failures, RELAXED);
    bs.recent_failures = b->fail_prev + b->fail_cur;
    memcpy(bs.last_error, b->last_error, sizeof(bs.last_error));
    if (!b->removed) {
      out.backends++;
      if (bs.online) out.backends_online++;
    }
    out.connecting += bs.connecting;
    out.idle += bs.idle;
    out.checking += bs.checking;
    out.claimed += bs.claimed;
    if (backends != NULL && nb < cap)
      memcpy((char *)backends + nb * st->backend_size, &bs,
             st->backend_size < sizeof(bs) ? st->backend_size : sizeof(bs));
    nb++;
  }
  pool_unlock(p);
  memcpy(st, &out, st->size < sizeof(out) ? st->size : sizeof(out));
  if (n != NULL) *n = nb;
  return 0;
}
