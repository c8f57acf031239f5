/* SPDX-License-Identifier: MIT */
/*
 * claim.c: everything a claimant's thread runs. The fast path, the queue
 * of waiting claims with its hand-off and deadlines, and release.
 *
 * The claim fast path is a compare-and-swap on an idle slot in a fixed
 * array; a release of a clean connection is one store. Neither takes a
 * lock, makes a system call or allocates (with a claim probe attached, the
 * claim id is one atomic add). Everything else (a claim that must wait, a
 * release that needs I/O) goes through pool->mu and the loop, woken by an
 * ev_async.
 *
 * The waiter hand-off has one race to get right: a claimant that misses
 * bumps nwaiters under mu and scans again; a releaser stores IDLE and then
 * reads nwaiters. Both are sequentially consistent, so at least one of them
 * sees the other, and no waiter sleeps while a slot is idle.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "private.h"

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

/*
 * The slot this thread used last: tried first, so a thread tends to keep
 * one slot's cache lines to itself, as long as the pool's scan order has
 * not changed since (a new order, say a backend ranked down, outranks the
 * habit). initial-exec keeps the access a plain %fs-relative load inside
 * libqorb.so too.
 */
static _Thread_local struct {
  const qorb_pool_t *pool;
  unsigned idx;
  unsigned epoch;
} tl_hint __attribute__((tls_model("initial-exec")));

static void hint_set(qorb_pool_t *p, unsigned idx) {
  tl_hint.pool = p;
  tl_hint.idx = idx;
  tl_hint.epoch = atomic_load_explicit(&p->order_epoch, RELAXED);
}

_Thread_local const qorb_pool_t *qorb__tl_own_pool
    __attribute__((tls_model("initial-exec")));

/*
 * May a claim that did not queue take an idle connection now? Yes unless
 * a queued claim is due (older than waiter_priority_us, or asynchronous):
 * then releases go to the queue's head.
 */
static int may_pass(qorb_pool_t *p) {
  return atomic_load(&p->nwaiters) == 0 || atomic_load(&p->ndue) == 0;
}

int qorb__claim_reason(qorb_pool_t *p) {
  if (atomic_load_explicit(&p->closing, RELAXED)) return QORB_ESHUTDOWN;
  if (atomic_load_explicit(&p->pub_backends, RELAXED) == 0)
    return QORB_ENOBACKENDS;
  if (atomic_load_explicit(&p->pub_online, RELAXED) == 0)
    return QORB_ENOTONLINE;
  return QORB_EALLINUSE;
}

/* ---------------------------------------------------------------------- */
/* The fast path                                                           */

static int grab_cas(qorb_claim_t *s) {
  int idle = QORB__S_IDLE;
  return atomic_compare_exchange_strong_explicit(
      &s->state, &idle, QORB__S_CLAIMED, memory_order_acquire, RELAXED);
}

/*
 * Take an IDLE slot: the thread's last one if it is clean, else the first
 * clean one in the scan order. With `pend`, and no clean one, a slot whose
 * reset answer is still on its way (the caller then reads it: only a
 * blocking claimant may). A clean connection is preferred, so that a reset
 * in flight makes nobody wait while a spare is there.
 */
static qorb_claim_t *grab_idle(qorb_pool_t *p, int pend) {
  unsigned i, n = p->cap, pass;
  qorb_claim_t *s;
  int seen = 0;

  if (tl_hint.pool == p && tl_hint.idx < n &&
      tl_hint.epoch == atomic_load_explicit(&p->order_epoch, RELAXED)) {
    s = &p->slots[tl_hint.idx];
    if (atomic_load_explicit(&s->state, RELAXED) == QORB__S_IDLE &&
        !qorb__slot_pending(s) && grab_cas(s))
      return s;
  }
  for (pass = 0; pass < 2; pass++) {
    for (i = 0; i < n; i++) {
      uint32_t idx = atomic_load_explicit(&p->order[i], RELAXED);
      if (idx >= n) continue;
      s = &p->slots[idx];
      if (atomic_load_explicit(&s->state, RELAXED) != QORB__S_IDLE) continue;
      if (pass == 0 && qorb__slot_pending(s)) {
        seen = 1;
        continue;
      }
      if (grab_cas(s)) {
        hint_set(p, idx);
        return s;
      }
    }
    if (!pend || !seen) break;
  }
  return NULL;
}

/*
 * Hand a claimed slot to the loop (recycle, check or close it): CLAIMED ->
 * RELEASED, a CAS, so that of two racing releases of one claim one wins.
 * Returns 0, or QORB_EINVAL when the slot was not CLAIMED.
 */
static int to_loop_locked(qorb_pool_t *p, qorb_claim_t *s) {
  int claimed = QORB__S_CLAIMED;
  if (!atomic_compare_exchange_strong(&s->state, &claimed, QORB__S_RELEASED))
    return QORB_EINVAL;
  qorb__list_push_back(&p->released, &s->plink);
  ev_async_send(p->loop, &p->wake);
  return 0;
}

/*
 * grab_idle(), then, with validate_idle_ms set, a look (the connector's
 * peek: no round trip) at a connection that sat idle longer than that: a
 * dead one goes to the loop as broken and the scan goes on. `locked`: the
 * caller holds mu.
 */
static qorb_claim_t *grab_valid(qorb_pool_t *p, int locked, int pend) {
  qorb_claim_t *s;
  unsigned tries;
  if (p->validate_ms == 0) return grab_idle(p, pend);
  for (tries = 0; tries < p->cap; tries++) {
    int64_t idle;
    int rc;
    if ((s = grab_idle(p, pend)) == NULL) return NULL;
    /* Its reset's answer is read next: that looks at it. */
    if (qorb__slot_pending(s)) return s;
    idle = qorb__coarse_ms() - atomic_load_explicit(&s->idle_since_ms, RELAXED);
    if (idle <= (int64_t)p->validate_ms) return s;
    if ((rc = p->cops->peek(p->cctx, s->conn)) == 0) return s;
    /* Dead: to the loop as broken (ours since the CAS, so this succeeds). */
    s->release_broken = rc < 0 ? rc : QORB_ECLOSED;
    if (!locked) pthread_mutex_lock(&p->mu);
    (void)to_loop_locked(p, s);
    if (!locked) qorb__pool_unlock(p);
  }
  return NULL;
}

/*
 * Read the answer to the reset that `s`'s releaser sent (reset_finish,
 * waiting up to `wait_ms`; 0: not at all). The caller owns the slot. A
 * failure sends it to the loop to be closed, with why (`locked`: mu is
 * held). Returns 0 (clean), QORB_EAGAIN (wait_ms 0: the answer is not all
 * there; still pending) or the failure.
 */
static int settle(qorb_pool_t *p, qorb_claim_t *s, int wait_ms, int locked) {
  int rc;
  s->reset_err[0] = '\0';
  rc = p->cops->reset_finish(p->cctx, s->conn, wait_ms, s->reset_err,
                             sizeof(s->reset_err));
  if (rc == QORB_EAGAIN && wait_ms == 0) return rc;
  atomic_fetch_and_explicit(&s->flags, ~QORB__F_PENDING, RELAXED);
  if (rc == 0) {
    s->reset_err[0] = '\0';
    return 0;
  }
  if (s->reset_err[0] == '\0')
    snprintf(s->reset_err, sizeof(s->reset_err), "reset: %s",
             qorb_strerror(rc));
  s->release_broken = rc < 0 ? rc : QORB_ERECYCLE;
  if (!locked) pthread_mutex_lock(&p->mu);
  (void)to_loop_locked(p, s);
  if (!locked) qorb__pool_unlock(p);
  return rc < 0 ? rc : QORB_ERECYCLE;
}

/*
 * A claim that never waits (try_claim, or an asynchronous claim on the
 * loop) took a pending slot because no clean one was idle: read the reset's
 * answer if it is all there. Returns `s`, clean now, or NULL: the answer
 * is not all there yet (the slot is IDLE again, still pending; the loop
 * reads it when it arrives) or the reset failed (the slot went to the loop
 * to be closed). `locked`: mu is held.
 */
static qorb_claim_t *settle_nowait(qorb_pool_t *p, qorb_claim_t *s,
                                   int locked) {
  int rc;
  if (s == NULL || !qorb__slot_pending(s)) return s;
  rc = settle(p, s, 0, locked);
  if (rc == QORB_EAGAIN) atomic_store(&s->state, QORB__S_IDLE);
  return rc == 0 ? s : NULL;
}

/*
 * A blocking claimant's last step before it owns `s`: read the answer to
 * the reset its releaser sent, waiting up to recycle_timeout_ms. Returns
 * 0, or -1 when the reset failed: the slot went to the loop to be closed
 * and the claim must look again.
 */
static int claim_settle(qorb_pool_t *p, qorb_claim_t *s) {
  if (!qorb__slot_pending(s)) return 0;
  return settle(p, s, (int)p->reset_wait_ms, 0) == 0 ? 0 : -1;
}

/*
 * The claimant now owns `s`: count it, note where it was claimed, and make
 * its handle (the slot with the claim count's low bits).
 */
static qorb_claim_t *claim_taken(qorb_claim_t *s, const char *file, int line,
                                 uint64_t id) {
  uint64_t n = atomic_load_explicit(&s->nclaims, RELAXED) + 1;
  atomic_store_explicit(&s->nclaims, n, RELAXED);
  atomic_store_explicit(&s->claim_file, file, RELAXED);
  atomic_store_explicit(&s->claim_line, line, RELAXED);
  /* A claim id is 0 unless a claim probe is attached: one test untraced. */
  if (id != 0) {
    QORB_PROBE(HANDLE_CLAIMED, s->pool->name, id, (uint64_t)s->index,
               s->backend->addr.text);
    QORB_PROBE(CLAIM_DONE, s->pool->name, id, (uint64_t)s->index,
               s->backend->addr.text);
  }
  return qorb__handle(s, n);
}

/*
 * A claim id for the probes; 0 (and no atomic add) while none of the claim
 * probes is attached, and the claim path then tests nothing else. One
 * branch: the semaphores are or'ed, not tested in turn.
 */
static uint64_t probe_claim_id(qorb_pool_t *p) {
  if (QORB_PROBE_ENABLED(CLAIM_START) | QORB_PROBE_ENABLED(CLAIM_DONE) |
      QORB_PROBE_ENABLED(CLAIM_FAILED) | QORB_PROBE_ENABLED(HANDLE_CLAIMED))
    return atomic_fetch_add_explicit(&p->next_id, 1, RELAXED) + 1;
  (void)p;
  return 0;
}

/* A try_claim that cannot be served now: tell the probe (not counted as a
 * failed claim). */
static int claim_refused(qorb_pool_t *p, uint64_t id, int rc) {
  if (id != 0) QORB_PROBE(CLAIM_FAILED, p->name, id, rc, qorb_err_name(rc));
  (void)p;
  return rc;
}

/* Count a failed claim and tell the probe. */
static int claim_failed(qorb_pool_t *p, uint64_t id, int rc) {
  qorb__count_failure(p, rc);
  QORB_PROBE(CLAIM_FAILED, p->name, id, rc, qorb_err_name(rc));
  (void)id;
  return rc;
}

/* Ask the loop to grow towards the demand. Caller holds mu. */
static void want_grow_locked(qorb_pool_t *p) {
  p->grow_wanted = 1;
  ev_async_send(p->loop, &p->wake);
}

int qorb_pool_try_claim_at(qorb_pool_t *p, qorb_claim_t **claim,
                           const char *file, int line) {
  qorb_claim_t *s;
  uint64_t id;
  if (claim != NULL) *claim = NULL;
  if (p == NULL || claim == NULL) return QORB_EINVAL;
  id = probe_claim_id(p);
  if (id != 0) QORB_PROBE(CLAIM_START, p->name, id);
  if (atomic_load_explicit(&p->closing, RELAXED)) {
    return claim_refused(p, id, QORB_ESHUTDOWN);
  }
  /* No passing a queued claim that is due; no reset answer to wait for. */
  if (may_pass(p) &&
      (s = settle_nowait(p, grab_valid(p, 0, 1), 0)) != NULL) {
    *claim = claim_taken(s, file, line, id);
    return 0;
  }
  if (atomic_load_explicit(&p->all_failed, RELAXED)) {
    return claim_refused(p, id, QORB_ENOTONLINE);
  }
  /* A miss: ask the loop to grow towards the demand, if it can. */
  if (!atomic_load_explicit(&p->pub_full, RELAXED)) {
    pthread_mutex_lock(&p->mu);
    want_grow_locked(p);
    qorb__pool_unlock(p);
  }
  return claim_refused(p, id, QORB_EAGAIN);
}

/* ---------------------------------------------------------------------- */
/* The queue of waiting claims                                             */

/* From now on `w` is not passed: releases go to the queue's head. */
static void waiter_due_locked(qorb_pool_t *p, qorb__waiter_t *w) {
  if (w->due) return;
  w->due = 1;
  atomic_fetch_add(&p->ndue, 1);
}

/* Give `s` (already CLAIMED, or NULL with a failure) to waiter `w`. */
static void waiter_give_locked(qorb_pool_t *p, qorb__waiter_t *w,
                               qorb_claim_t *s, int status) {
  qorb__list_remove(&w->link);
  qorb__list_remove(&w->alink); /* harmless when not on to_arm */
  atomic_fetch_sub(&p->nwaiters, 1);
  if (w->due) atomic_fetch_sub(&p->ndue, 1);
  if (!w->blocking) atomic_fetch_sub(&p->nasync, 1);
  w->due = 0;
  w->slot = s;
  w->status = status;
  w->done = 1;
  /* A blocking waiter is woken by qorb__pool_unlock(), once mu is free. */
  qorb__list_push_back(w->blocking ? &p->to_post : &p->completed, &w->link);
}

/*
 * Unlock mu, then wake the blocking waiters given a result meanwhile. Waking
 * them with mu held would have each one wake up only to block on mu again.
 * A waiter stays in place until its post arrives, so the posts are safe.
 */
void qorb__pool_unlock(qorb_pool_t *p) {
  qorb__list_t posts, *it, *next;
  if (qorb__list_empty(&p->to_post)) {
    pthread_mutex_unlock(&p->mu);
    return;
  }
  qorb__list_splice(&posts, &p->to_post);
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

int qorb__offer_locked(qorb_pool_t *p, qorb_claim_t *s, int from) {
  qorb__waiter_t *w = waiter_head(p);
  /* A reset answer still to read is a blocking claimant's to wait for; the
     loop reads it for an asynchronous one (the idle watch) and offers the
     slot again. */
  if (w == NULL || (!w->blocking && qorb__slot_pending(s)) ||
      !qorb__slot_cas_state(s, from, QORB__S_CLAIMED))
    return QORB__OFFER_KEPT;
  waiter_give_locked(p, w, s, 0);
  return w->blocking ? QORB__OFFER_POSTED : QORB__OFFER_ASYNC;
}

void qorb__fail_waiters_locked(qorb_pool_t *p, int status) {
  qorb__waiter_t *w;
  while ((w = waiter_head(p)) != NULL) {
    qorb__count_failure(p, status);
    waiter_give_locked(p, w, NULL, status);
  }
}

/*
 * The first part of a blocking claim: the fast path, then a few yields
 * before queueing. With more threads than cores, the slot we missed is
 * usually held by a thread that was preempted inside its claim and needs
 * only a moment of CPU to release it. Nobody is queued while we yield, so
 * FIFO order is kept.
 */
static qorb_claim_t *claim_spin(qorb_pool_t *p, int timeout_ms) {
  qorb_claim_t *s;
  int spins;
  for (spins = 0; spins < 4; spins++) {
    if (atomic_load_explicit(&p->closing, RELAXED) || !may_pass(p) ||
        atomic_load_explicit(&p->all_failed, RELAXED))
      break;
    if ((s = grab_valid(p, 0, 1)) != NULL) return s;
    if (timeout_ms == 0 || atomic_load_explicit(&p->pub_online, RELAXED) == 0)
      break;
    sched_yield();
  }
  return NULL;
}

/*
 * Under mu: fail at once, take an idle slot, or queue `w`. Returns 0 with
 * `*got` set (served, nothing queued), 0 with `*got` NULL (queued, or
 * served at once through `w`), or a negative code (mu is still held).
 */
static int claim_enqueue_locked(qorb_pool_t *p, qorb__waiter_t *w,
                                int timeout_ms, qorb_claim_t **got) {
  qorb_claim_t *s;
  *got = NULL;
  if (atomic_load_explicit(&p->closing, RELAXED)) return QORB_ESHUTDOWN;
  if (atomic_load_explicit(&p->all_failed, RELAXED)) return QORB_ENOTONLINE;
  if (may_pass(p) && (s = grab_valid(p, 1, 1)) != NULL) {
    *got = s;
    return 0;
  }
  if (timeout_ms == 0) return qorb__claim_reason(p);
  if (atomic_load_explicit(&p->nwaiters, RELAXED) >= p->policy.max_waiters) {
    atomic_fetch_add(&p->queue_full, 1);
    return QORB_EQUEUEFULL;
  }
  w->blocking = 1;
  qorb__list_init(&w->alink);
  sem_init(&w->sem, 0, 0);
  qorb__list_push_back(&p->waiters, &w->link);
  atomic_fetch_add(&p->nwaiters, 1);
  if (p->policy.waiter_priority_us == 0) waiter_due_locked(p, w);
  p->inflight++;
  /* Scan once more: a release may have stored IDLE before seeing us. */
  if ((s = grab_valid(p, 1, 1)) != NULL) {
    waiter_give_locked(p, w, s, 0);
    qorb__list_remove(&w->link); /* ours: no post to wait for */
    return 0;
  }
  /* Waking the loop costs a system call: only when the pool can grow. */
  if (!atomic_load_explicit(&p->pub_full, RELAXED)) want_grow_locked(p);
  return 0;
}

static void deadline_after(struct timespec *t, const struct timespec *from,
                           long long us) {
  long long ns = (long long)from->tv_nsec + (us % 1000000) * 1000;
  t->tv_sec = from->tv_sec + (time_t)(us / 1000000) + (time_t)(ns / 1000000000);
  t->tv_nsec = (long)(ns % 1000000000);
}

static int before(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec < b->tv_sec ||
         (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/*
 * Sleep until `w` is given a result or the deadline passes. A waiter that
 * newcomers may still pass wakes once at waiter_priority_us: it takes a
 * connection left idle meanwhile (its releaser did not claim again), or
 * becomes due, and from then on the next release is handed to the queue's
 * head.
 */
static void claim_sleep(qorb_pool_t *p, qorb__waiter_t *w, int timeout_ms,
                        int due_already) {
  struct timespec now, deadline, due, *until;
  int due_armed = !due_already;
  clock_gettime(CLOCK_MONOTONIC, &now);
  deadline_after(&deadline, &now, (long long)timeout_ms * 1000);
  deadline_after(&due, &now, (long long)p->policy.waiter_priority_us);
  for (;;) {
    until = due_armed && before(&due, &deadline) ? &due : &deadline;
    if (sem_clockwait(&w->sem, CLOCK_MONOTONIC, until) == 0) {
      QORB_TSAN_ACQUIRE(&w->sem);
      return;
    }
    if (errno == EINTR) continue;
    pthread_mutex_lock(&p->mu);
    if (!w->done && until == &due) {
      qorb_claim_t *s;
      due_armed = 0;
      /* Due (first, so that a release from now on hands off to us), then
         one look for a connection left idle. */
      waiter_due_locked(p, w);
      if ((s = grab_valid(p, 1, 1)) != NULL) {
        waiter_give_locked(p, w, s, 0);
        qorb__list_remove(&w->link); /* ours: no post to wait for */
        qorb__pool_unlock(p);
        return;
      }
      qorb__pool_unlock(p);
      continue;
    }
    if (!w->done) {
      /* Timed out, still queued: leave with the reason. */
      atomic_fetch_add(&p->timeouts, 1);
      waiter_give_locked(p, w, NULL, qorb__claim_reason(p));
      qorb__list_remove(&w->link);
      qorb__pool_unlock(p);
      return;
    }
    /* Given a result just as we timed out: its post is on its way. */
    qorb__pool_unlock(p);
    while (sem_wait(&w->sem) != 0 && errno == EINTR) {
    }
    QORB_TSAN_ACQUIRE(&w->sem);
    return;
  }
}

int qorb_pool_claim_wait_at(qorb_pool_t *p, int timeout_ms,
                            qorb_claim_t **claim, const char *file, int line) {
  qorb__waiter_t w;
  qorb_claim_t *got;
  uint64_t id;
  int rc, served, due;
  unsigned settles = 0;

  if (claim != NULL) *claim = NULL;
  if (p == NULL || claim == NULL) return QORB_EINVAL;
  if (qorb__tl_own_pool == p) return QORB_EBUSY;
  if (timeout_ms < 0) timeout_ms = (int)p->policy.claim_timeout_ms;
  id = probe_claim_id(p);
  if (id != 0) QORB_PROBE(CLAIM_START, p->name, id);

again:
  if ((got = claim_spin(p, timeout_ms)) != NULL) goto taken;

  memset(&w, 0, sizeof(w));
  w.id = id;
  pthread_mutex_lock(&p->mu);
  rc = claim_enqueue_locked(p, &w, timeout_ms, &got);
  if (rc < 0 || got != NULL) {
    qorb__pool_unlock(p);
    if (rc < 0) return claim_failed(p, id, rc);
    goto taken;
  }
  served = w.done; /* under mu: once queued, w is the givers' too */
  due = w.due;
  qorb__pool_unlock(p);
  if (!served) {
    /* It waits: the clock is read only off the fast path. */
    uint64_t t0 = QORB__FIGURES ? qorb__now_ns() : 0;
    claim_sleep(p, &w, timeout_ms, due);
    if (QORB__FIGURES) qorb__count_wait(p, qorb__now_ns() - t0);
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
  qorb__pool_unlock(p);
  sem_destroy(&w.sem);
  if (got == NULL) return claim_failed(p, id, rc);
taken:
  /* A connection whose reset failed went to the loop: look again, a
     bounded number of times (each was a connection closed). */
  if (claim_settle(p, got) != 0) {
    if (++settles <= p->cap) goto again;
    return claim_failed(p, id, QORB_ERECYCLE);
  }
  *claim = claim_taken(got, file, line, id);
  return 0;
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
  w->id = atomic_fetch_add_explicit(&p->next_id, 1, RELAXED) + 1;
  w->file = file;
  w->line = line;
  w->timeout_ms = (unsigned)timeout_ms;
  if (idp != NULL) *idp = w->id;
  QORB_PROBE(CLAIM_START, p->name, w->id);
  qorb__list_push_back(&p->waiters, &w->link);
  atomic_fetch_add(&p->nwaiters, 1);
  /* Never passed by a newcomer: its claimant cannot spin or wake itself. */
  atomic_fetch_add(&p->nasync, 1);
  waiter_due_locked(p, w);
  if (waiter_head(p) == w &&
      (s = settle_nowait(p, grab_valid(p, 1, 1), 1)) != NULL) {
    waiter_give_locked(p, w, s, 0);
  } else if (atomic_load_explicit(&p->all_failed, RELAXED)) {
    qorb__count_failure(p, QORB_ENOTONLINE);
    waiter_give_locked(p, w, NULL, QORB_ENOTONLINE);
  } else {
    /* It waits: not the fast path. */
    if (QORB__FIGURES) w->queued_ns = qorb__now_ns();
    qorb__list_push_back(&p->to_arm, &w->alink);
    p->grow_wanted = 1;
  }
  /* Never called back from inside this call: the loop delivers. */
  ev_async_send(p->loop, &p->wake);
out:
  qorb__pool_unlock(p);
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
      qorb__count_failure(p, QORB_ECANCELED);
      waiter_give_locked(p, w, NULL, QORB_ECANCELED);
      rc = 0;
      break;
    }
  }
  qorb__pool_unlock(p);
  if (rc == 0) qorb__pool_kick(p);
  return rc;
}

/* An asynchronous claim's deadline. Loop. */
static void waiter_timer_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  qorb__waiter_t *w = QORB_CONTAINER_OF(t, qorb__waiter_t, timer);
  qorb_pool_t *p = (qorb_pool_t *)t->data;
  (void)revents;
  ev_timer_stop(loop, t);
  pthread_mutex_lock(&p->mu);
  if (!w->done) {
    int rc = qorb__claim_reason(p);
    atomic_fetch_add(&p->timeouts, 1);
    qorb__count_failure(p, rc);
    waiter_give_locked(p, w, NULL, rc);
  }
  qorb__pool_unlock(p);
  qorb__pool_kick(p);
}

void qorb__waiters_arm(qorb_pool_t *p) {
  pthread_mutex_lock(&p->mu);
  while (!qorb__list_empty(&p->to_arm)) {
    qorb__waiter_t *w =
        QORB_CONTAINER_OF(p->to_arm.next, qorb__waiter_t, alink);
    qorb__list_remove(&w->alink);
    ev_timer_init(&w->timer, waiter_timer_cb, qorb__ms(w->timeout_ms), 0.);
    w->timer.data = p;
    w->armed = 1;
    ev_timer_start(p->loop, &w->timer);
  }
  qorb__pool_unlock(p);
}

void qorb__waiters_deliver(qorb_pool_t *p) {
  /*
   * One at a time, not spliced: a callback is user code, and each record
   * stays on `completed` (which closing waits on) until its turn.
   */
  for (;;) {
    qorb__waiter_t *w;
    qorb_claim_t *s;
    pthread_mutex_lock(&p->mu);
    if (qorb__list_empty(&p->completed)) {
      qorb__pool_unlock(p);
      return;
    }
    w = QORB_CONTAINER_OF(p->completed.next, qorb__waiter_t, link);
    qorb__list_remove(&w->link);
    qorb__pool_unlock(p);
    if (w->armed) ev_timer_stop(p->loop, &w->timer);
    if (w->queued_ns != 0) qorb__count_wait(p, qorb__now_ns() - w->queued_ns);
    s = w->slot;
    if (s != NULL) s = claim_taken(s, w->file, w->line, w->id);
    else QORB_PROBE(CLAIM_FAILED, p->name, w->id, w->status,
                    qorb_err_name(w->status));
    w->cb(p, w->status, s, w->arg);
    pthread_mutex_lock(&p->mu);
    qorb__list_push_back(&p->free_waiters, &w->link);
    qorb__pool_unlock(p);
  }
}

void qorb__waiters_free(qorb_pool_t *p) {
  while (!qorb__list_empty(&p->free_waiters)) {
    qorb__list_t *it = p->free_waiters.next;
    qorb__list_remove(it);
    qorb__free(QORB_CONTAINER_OF(it, qorb__waiter_t, link));
  }
}

/* ---------------------------------------------------------------------- */
/* Release                                                                 */

/*
 * A clean slot that its releaser stored as IDLE while claims were queued:
 * take it back and give it to the first of them, unless a claimant took it
 * first. Releaser's thread.
 */
static void handoff_idle(qorb_pool_t *p, qorb_claim_t *s) {
  int r;
  pthread_mutex_lock(&p->mu);
  r = qorb__offer_locked(p, s, QORB__S_IDLE);
  /* Under mu, so that the pool cannot finish closing under our feet. */
  if (r == QORB__OFFER_ASYNC) ev_async_send(p->loop, &p->wake);
  qorb__pool_unlock(p);
}

/*
 * Give a claimed slot back. Claimant's thread, no lock on the clean path:
 * the connector's needs_recycle says whether the connection needs the loop
 * (a recycle op) or can be stored IDLE at once. A connection that needs
 * cleaning and whose connector can send the reset from here (reset_send)
 * is stored IDLE too, marked pending: its next owner reads the answer.
 * That saves the round trip through the loop thread; the reset itself
 * still runs before anyone uses the connection. Not on the pool's own
 * loop thread (an asynchronous claimant must never wait for the answer),
 * and not while asynchronous claims are queued (they are served by the
 * loop, which would have to read it first). `release_broken` is a plain
 * field, ordered for the loop by mu with the RELEASED store.
 */
static int release_impl(qorb_claim_t *h, int broken) {
  qorb_claim_t *s = qorb__handle_slot(h);
  qorb_pool_t *p;
  int r = 0, claimed = QORB__S_CLAIMED, plain;
  if (s == NULL) return QORB_EINVAL;
  /* Released twice, not a claim, or a stale handle of an earlier claim. */
  if (atomic_load_explicit(&s->state, RELAXED) != QORB__S_CLAIMED ||
      qorb__handle(s, atomic_load_explicit(&s->nclaims, RELAXED)) != h)
    return QORB_EINVAL;
  p = s->pool;
  if (!broken && p->cops->needs_recycle != NULL)
    r = p->cops->needs_recycle(p->cctx, s->conn);
  else if (!broken)
    r = (p->cops->recycle != NULL || p->cops->prepare != NULL) ? 1 : 0;
  /* May it go back to IDLE without the loop (given a clean connection)? */
  plain = !broken && !p->hooked_release &&
          !(atomic_load_explicit(&s->flags, RELAXED) &
            (QORB__F_RETIRE | QORB__F_SUSPECT)) &&
          !atomic_load_explicit(&p->closing, RELAXED);
  if (plain && r == 1 && p->cops->reset_send != NULL &&
      qorb__tl_own_pool != p && atomic_load(&p->nasync) == 0) {
    int rs = p->cops->reset_send(p->cctx, s->conn);
    if (rs == 0) {
      atomic_fetch_or_explicit(&s->flags, QORB__F_PENDING, RELAXED);
      r = 0;
    } else if (rs < 0) {
      r = rs;
    }
  }
  QORB_PROBE(HANDLE_RECYCLED, p->name, (uint64_t)s->index,
             s->backend->addr.text, broken || r < 0);
  if (plain && r == 0) {
    hint_set(p, s->index);
    if (p->validate_ms > 0)
      atomic_store_explicit(&s->idle_since_ms, qorb__coarse_ms(), RELAXED);
    /* A CAS, not a store: of two racing releases of one claim, one wins. */
    if (!atomic_compare_exchange_strong(&s->state, &claimed, QORB__S_IDLE))
      return QORB_EINVAL;
    /* A due claim is served first (FIFO among them); until one is due, the
       connection is anyone's who comes for it, this thread's included. */
    if (atomic_load(&p->nwaiters) != 0 && atomic_load(&p->ndue) != 0)
      handoff_idle(p, s);
    return 0;
  }
  s->release_broken = broken ? QORB_EBROKEN : r < 0 ? r : 0;
  /* Through the loop for the hooks only: no cleaning is owed. */
  s->release_clean = p->hooked_release && r == 0;
  pthread_mutex_lock(&p->mu);
  r = to_loop_locked(p, s);
  qorb__pool_unlock(p);
  return r;
}

int qorb_release(qorb_claim_t *claim) { return release_impl(claim, 0); }

int qorb_release_broken(qorb_claim_t *claim) {
  return release_impl(claim, 1);
}

void *qorb_claim_conn(const qorb_claim_t *claim) {
  return claim != NULL ? qorb__handle_slot(claim)->conn : NULL;
}

const qorb_addr_t *qorb_claim_addr(const qorb_claim_t *claim) {
  return claim != NULL ? &qorb__handle_slot(claim)->backend->addr : NULL;
}
