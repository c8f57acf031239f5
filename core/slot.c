/* SPDX-License-Identifier: MIT */
/*
 * slot.c: the slot state machine (see the table in private.h), run on the
 * pool loop: connect with backoff, prepare, health check, recycle,
 * lifetime; and the connector's face, qorb_op_*: a qorb_op_t is the slot
 * whose op is in flight.
 *
 * Each slot has two timers: `timer`, for whatever its state waits on (op
 * timeout, backoff, health interval, the retire tick), and `life`, its
 * max_lifetime. Health checks, deaths of idle connections and the idle
 * watch are in health.c. Rebalancing is asked for, never run from here
 * (qorb__want_rebalance): it runs at the end of the wake pass, so slots sit
 * below rebalancing and never re-enter it.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "private.h"

#if defined(QORB_HAVE_PROBES)
static const char *const state_names[] = {
    "free",    "connecting", "backoff",  "preparing", "idle",
    "claimed", "released",   "checking", "recycling", "closing"};
#endif

static void probe_state(qorb_claim_t *s, int from, int to) {
  if (from != to && s->backend != NULL)
    QORB_PROBE(SLOT_STATE_CHANGE, s->pool->name, (uint64_t)s->index,
               s->backend->addr.text, (char *)state_names[from],
               (char *)state_names[to]);
  (void)s;
  (void)from;
  (void)to;
}

void qorb__slot_set_state(qorb_claim_t *s, int to) {
  int from = atomic_load_explicit(&s->state, RELAXED);
  atomic_store(&s->state, to);
  probe_state(s, from, to);
}

int qorb__slot_cas_state(qorb_claim_t *s, int from, int to) {
  int seen = from;
  if (!atomic_compare_exchange_strong(&s->state, &seen, to)) return 0;
  probe_state(s, from, to);
  return 1;
}

void qorb__slot_timer_start(qorb_claim_t *s, unsigned delay_ms) {
  ev_timer_stop(s->pool->loop, &s->timer);
  ev_timer_set(&s->timer, qorb__ms(delay_ms), 0.);
  ev_timer_start(s->pool->loop, &s->timer);
}

/* ---------------------------------------------------------------------- */
/* Bind and unbind                                                         */

qorb_claim_t *qorb__slot_bind(qorb_pool_t *p, struct qorb__backend *b) {
  unsigned i;
  for (i = 0; i < p->cap; i++) {
    qorb_claim_t *s = &p->slots[i];
    if (qorb__slot_state(s) != QORB__S_FREE) continue;
    pthread_mutex_lock(&p->mu);
    s->backend = b;
    s->nclaims_base = atomic_load_explicit(&s->nclaims, RELAXED);
    qorb__list_push_back(&b->slots, &s->blink);
    qorb__pool_unlock(p);
    atomic_store_explicit(&s->flags, 0, RELAXED);
    s->release_broken = 0;
    s->backoff_ms = 0;
    s->connected = 0;
    s->retiring = 0;
    s->op = QORB__OP_NONE;
    s->op_done_queued = 0;
    s->leak_reported = 0;
    s->close_cause = -1;
    b->nslots++;
    p->nbound++;
    return s;
  }
  return NULL;
}

static void slot_start_hook(qorb_claim_t *s, int op, int state);
static void slot_op_failed(qorb_claim_t *s, int op, int status);
static void slot_clean(qorb_claim_t *s, unsigned suspect);
static const char *op_name(int op);

/* Close the slot's connection, aborting any op in flight. */
static void slot_close_conn(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  /* A hook still running is told first, so that it drops its own work. */
  if (QORB__OP_IS_HOOK(s->op) && !s->op_done_queued &&
      p->policy.hook_cancel != NULL && s->conn != NULL)
    p->policy.hook_cancel(p->policy.hook_arg, (qorb_op_t *)s, s->conn);
  if (s->op_done_queued) {
    qorb__list_remove(&s->plink);
    s->op_done_queued = 0;
  }
  if (s->op == QORB__OP_CONNECT && s->backend->nconnecting > 0)
    s->backend->nconnecting--;
  s->op = QORB__OP_NONE;
  qorb__watch_drop(s);
  if (s->conn != NULL) {
    p->cops->close(p->cctx, s->conn);
    s->conn = NULL;
  }
  if (s->connected) {
    qorb__count_close(s);
    s->connected = 0;
    s->backend->nconnected--;
    if (s->backend->nconnected == 0) {
      atomic_store_explicit(&s->backend->online_ns, 0, RELAXED);
      s->backend->down_since = ev_now(p->loop);
      QORB_PROBE(SLOT_SET_OFFLINE, p->name, s->backend->addr.text);
      qorb__pool_log(p, QORB_LOG_WARN, "backend %s offline",
                     s->backend->addr.text);
    }
    qorb__pool_publish(p);
  }
  s->close_cause = -1;
}

void qorb__slot_unbind(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  struct qorb__backend *b = s->backend;
  slot_close_conn(s);
  ev_timer_stop(p->loop, &s->timer);
  ev_timer_stop(p->loop, &s->life);
  if (s->retiring) b->nretiring--;
  s->retiring = 0;
  pthread_mutex_lock(&p->mu);
  b->claims_retired +=
      atomic_load_explicit(&s->nclaims, RELAXED) - s->nclaims_base;
  qorb__list_remove(&s->blink);
  qorb__slot_set_state(s, QORB__S_FREE);
  s->backend = NULL;
  qorb__pool_unlock(p);
  b->nslots--;
  p->nbound--;
  qorb__backend_free_if_done(p, b);
}

/* Unbind `s`, then let rebalancing and closing catch up. */
void qorb__slot_free(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  qorb__slot_unbind(s);
  qorb__want_rebalance(p);
  qorb__pool_check_closed(p);
}

/* ---------------------------------------------------------------------- */
/* Connected, idle, retiring                                               */

/* Has `b` a connected slot that is not retiring (a ready replacement)? */
int qorb__backend_has_fresh(struct qorb__backend *b) {
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
  if (s->retiring) return qorb__backend_has_fresh(b);
  return b->nslots - b->nretiring > b->target;
}

/* Start op `op` in `state`, bounded by `timeout_ms`; < 0 if it could not. */
static int start_op(qorb_claim_t *s, int op, int state, unsigned timeout_ms) {
  qorb_pool_t *p = s->pool;
  int rc;
  s->op = op;
  s->op_status = 0;
  s->err_set = 0;
  qorb__watch_stop(s);
  qorb__slot_set_state(s, state);
  qorb__slot_timer_start(s, timeout_ms);
  switch (op) {
  case QORB__OP_CHECK:
    QORB_PROBE(HEALTH_CHECK_START, p->name, (uint64_t)s->index,
               s->backend->addr.text);
    rc = p->cops->check(p->cctx, (qorb_op_t *)s, s->conn);
    break;
  case QORB__OP_PREPARE:
    rc = p->cops->prepare(p->cctx, (qorb_op_t *)s, s->conn);
    break;
  case QORB__OP_AFTER_CONNECT:
    rc = p->policy.after_connect(p->policy.hook_arg, (qorb_op_t *)s, s->conn);
    break;
  case QORB__OP_BEFORE_ACQUIRE:
    rc = p->policy.before_acquire(p->policy.hook_arg, (qorb_op_t *)s, s->conn);
    break;
  case QORB__OP_AFTER_RELEASE:
    rc = p->policy.after_release(p->policy.hook_arg, (qorb_op_t *)s, s->conn);
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
    return rc;
  }
  return 0;
}

/* Start `op`; if it cannot even start, the slot has failed. */
void qorb__slot_start_op(qorb_claim_t *s, int op, int state,
                         unsigned timeout_ms) {
  if (start_op(s, op, state, timeout_ms) < 0)
    qorb__slot_failed(s, QORB__FAIL_OP);
}

/* Close one retiring idle slot of `b` now that a replacement is ready. */
static void backend_retire_one(struct qorb__backend *b) {
  qorb__list_t *it;
  for (it = b->slots.next; it != &b->slots; it = it->next) {
    qorb_claim_t *s = QORB_CONTAINER_OF(it, qorb_claim_t, blink);
    if (!s->retiring) continue;
    if (qorb__slot_cas_state(s, QORB__S_IDLE, QORB__S_CLOSING)) {
      qorb__slot_unbind(s);
      return;
    }
  }
}

/*
 * A connected, clean slot with nothing left to do: give it to the head
 * waiter if a claim is queued, else make it IDLE. Arms its next timer.
 */
void qorb__slot_offer(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  int r, replacement, fd;

  if (s->hook_acquire_due) {
    /* before_acquire owes this hand-out a look first. */
    s->hook_acquire_due = 0;
    slot_start_hook(s, QORB__OP_BEFORE_ACQUIRE, QORB__S_PREPARING);
    return;
  }
  s->op = QORB__OP_NONE;
  if (s->retiring)
    qorb__slot_timer_start(s, p->policy.rebalance_interval_ms);
  else if (p->policy.health_interval_ms > 0 && p->cops->check != NULL)
    qorb__slot_health_timer(s);
  else
    ev_timer_stop(p->loop, &s->timer);
  replacement = !s->retiring && s->backend->nretiring > 0;

  if (p->validate_ms > 0)
    atomic_store_explicit(&s->idle_since_ms, qorb__coarse_ms(), RELAXED);
  /* Asked before IDLE is published: a claimant may take it at once. */
  fd = qorb__watch_fd(s);
  pthread_mutex_lock(&p->mu);
  r = qorb__offer_locked(p, s, qorb__slot_state(s));
  if (r == QORB__OFFER_KEPT) qorb__slot_set_state(s, QORB__S_IDLE);
  qorb__pool_unlock(p);
  if (r == QORB__OFFER_KEPT)
    qorb__watch_start(s, fd);
  else
    qorb__watch_later(s);
  if (r == QORB__OFFER_ASYNC) qorb__pool_kick(p);
  if (replacement) backend_retire_one(s->backend);
}

/*
 * Run a policy hook as the slot's op. One that cannot start fails the slot
 * as its own failure would.
 */
static void slot_start_hook(qorb_claim_t *s, int op, int state) {
  int rc = start_op(s, op, state, s->pool->policy.hook_timeout_ms);
  if (rc < 0) slot_op_failed(s, op, rc);
}

/*
 * Connected and clean: run after_connect once per connection, then prepare
 * it if the connector wants, else offer it.
 */
static void slot_ready(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  if (slot_excess(s)) {
    qorb__slot_free(s);
    return;
  }
  if (s->hook_connect_due) {
    s->hook_connect_due = 0;
    slot_start_hook(s, QORB__OP_AFTER_CONNECT, QORB__S_PREPARING);
    return;
  }
  if (p->cops->prepare != NULL) {
    qorb__slot_start_op(s, QORB__OP_PREPARE, QORB__S_PREPARING,
                  p->policy.prepare_timeout_ms);
    return;
  }
  qorb__slot_offer(s);
}

/* ---------------------------------------------------------------------- */
/* Failure and (re)connecting                                              */

/*
 * An op or a connect failed, or a check said the connection is bad: close
 * it and reconnect after a backoff (or free the slot if it is not wanted).
 */
void qorb__slot_failed(qorb_claim_t *s, int kind) {
  qorb_pool_t *p = s->pool;
  struct qorb__backend *b = s->backend;
  unsigned delay;
  if (s->close_cause < 0 && kind == QORB__FAIL_BROKEN)
    s->close_cause = QORB_CLOSE_BROKEN;
  else if (s->close_cause < 0 && kind == QORB__FAIL_IDLE)
    s->close_cause = QORB_CLOSE_DIED;
  slot_close_conn(s);
  ev_timer_stop(p->loop, &s->timer);
  ev_timer_stop(p->loop, &s->life);
  if (kind != QORB__FAIL_BROKEN) qorb__backend_failure(p, b);
  /*
   * Only a failed connect says the backend is unreachable. A connection
   * that failed a check is replaced; the backend is judged by that attempt.
   */
  if (kind == QORB__FAIL_CONNECT && b->nconnected == 0 && !b->failed) {
    b->failed = 1;
    qorb__pool_publish(p);
  }
  if (slot_excess(s)) {
    qorb__slot_free(s);
    return;
  }
  if (kind == QORB__FAIL_BROKEN || kind == QORB__FAIL_IDLE) {
    /* Replace it at once: the backend may well be there (a killed session). */
    s->backoff_ms = 0;
    qorb__slot_set_state(s, QORB__S_BACKOFF);
    qorb__slot_connect(s);
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
    delay += (unsigned)(qorb__rng_next(p) % p->policy.backoff_spread_ms);
  qorb__slot_set_state(s, QORB__S_BACKOFF);
  qorb__slot_timer_start(s, delay);
  qorb__want_rebalance(p);
}

void qorb__slot_connect(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  struct qorb__backend *b = s->backend;
  void *conn = NULL;
  int rc;

  if (b->nconnecting >= p->policy.max_connecting_per_backend) {
    /* Too many attempts in flight to this backend: try again shortly. */
    qorb__slot_set_state(s, QORB__S_BACKOFF);
    qorb__slot_timer_start(s, p->policy.min_backoff_ms);
    return;
  }
  b->nconnecting++;
  s->op = QORB__OP_CONNECT;
  s->op_status = 0;
  qorb__slot_set_state(s, QORB__S_CONNECTING);
  qorb__slot_timer_start(s, p->policy.connect_timeout_ms);
  QORB_PROBE(CONNECT_START, p->name, (uint64_t)s->index, b->addr.text);
  s->err_set = 0;
  rc = p->cops->connect(p->cctx, (qorb_op_t *)s, &b->addr, &conn);
  if (rc < 0 && !s->op_done_queued) {
    s->conn = NULL;
    if (!s->err_set)
      qorb_op_set_error((qorb_op_t *)s, "connect to %s: %s", b->addr.text,
                        qorb_strerror(rc));
    QORB_PROBE(CONNECT_FAILED, p->name, (uint64_t)s->index, b->addr.text, rc,
               qorb_err_name(rc));
    atomic_fetch_add_explicit(&b->connect_failures, 1, RELAXED);
    qorb__slot_failed(s, QORB__FAIL_CONNECT);
    return;
  }
  s->conn = conn;
}

/* A connect succeeded: count it, bring the backend online, start the life. */
static void slot_connected(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  struct qorb__backend *b = s->backend;
  QORB_PROBE(CONNECT_DONE, p->name, (uint64_t)s->index, b->addr.text);
  atomic_fetch_add_explicit(&b->connects, 1, RELAXED);
  atomic_fetch_add_explicit(&p->opened, 1, RELAXED);
  s->checked_at = ev_now(p->loop);
  s->connected = 1;
  s->backoff_ms = 0;
  s->hook_connect_due = p->policy.after_connect != NULL;
  s->hook_acquire_due = p->policy.before_acquire != NULL;
  if (b->nconnected++ == 0) {
    b->failed = 0;
    atomic_store_explicit(&b->online_ns, qorb__now_ns(), RELAXED);
    QORB_PROBE(SLOT_SET_ONLINE, p->name, b->addr.text);
    qorb__pool_log(p, QORB_LOG_INFO, "backend %s online", b->addr.text);
    qorb__pool_publish(p);
  }
  if (p->policy.max_lifetime_ms > 0) {
    /* Up to the jitter earlier, so that connections made together expire
       apart. */
    double life = qorb__ms(p->policy.max_lifetime_ms);
    double jitter = p->policy.max_lifetime_jitter_ms ==
                            QORB_LIFETIME_JITTER_AUTO
                        ? life * 0.025
                        : qorb__ms(p->policy.max_lifetime_jitter_ms);
    life -= jitter * qorb__rng_unit(p);
    ev_timer_set(&s->life, life, 0.);
    ev_timer_start(p->loop, &s->life);
  }
  slot_ready(s);
  qorb__want_rebalance(p);
}

/* ---------------------------------------------------------------------- */
/* Ops ending: completion, failure, timeout                                */

/*
 * A hook closed its connection (a rejection, a failure, its timeout). The
 * hooks before a hand-out count as preparing it; after_release as its
 * cleaning. after_connect's failure is the backend's, as a failed prepare
 * is: the slot backs off. So does a connection before_acquire rejects,
 * which keeps a hook that rejects every connection from making the pool
 * connect in a loop. after_release judged one claimant's use of the
 * connection, not the backend: it is replaced at once.
 */
static void slot_hook_failed(qorb_claim_t *s, int op, int status) {
  qorb_pool_t *p = s->pool;
  char why[192];
  /* The last error names the hook, before what the hook (or its SQL) said. */
  if (s->err_set) {
    pthread_mutex_lock(&p->mu);
    qorb__strlcpy(why, s->backend->last_error, sizeof(why));
    pthread_mutex_unlock(&p->mu);
  } else {
    qorb__strlcpy(why, qorb_strerror(status), sizeof(why));
  }
  qorb_op_set_error((qorb_op_t *)s, "%s hook: %s", op_name(op), why);
  s->close_cause = op == QORB__OP_AFTER_RELEASE ? QORB_CLOSE_RECYCLE
                                                : QORB_CLOSE_PREPARE;
  qorb__pool_log(p, QORB_LOG_INFO, "%s hook closed a connection to %s: %s",
                 op_name(op), s->backend->addr.text, qorb_strerror(status));
  if (op == QORB__OP_AFTER_RELEASE && status != QORB_ETIMEDOUT) {
    if (p->closing_loop || s->backend->removed || s->retiring) {
      qorb__slot_free(s);
      return;
    }
    qorb__slot_failed(s, QORB__FAIL_BROKEN);
    return;
  }
  qorb__slot_failed(s, QORB__FAIL_OP);
}

/*
 * An op ended with `status` < 0 (its own failure, or QORB_ETIMEDOUT from
 * the slot timer): tell the probes and close the connection.
 */
static void slot_op_failed(qorb_claim_t *s, int op, int status) {
  qorb_pool_t *p = s->pool;
  const char *addr = s->backend->addr.text;
  switch (op) {
  case QORB__OP_CONNECT:
    QORB_PROBE(CONNECT_FAILED, p->name, (uint64_t)s->index, addr, status,
               qorb_err_name(status));
    atomic_fetch_add_explicit(&s->backend->connect_failures, 1, RELAXED);
    qorb__slot_failed(s, QORB__FAIL_CONNECT);
    return;
  case QORB__OP_PREPARE:
    s->close_cause = QORB_CLOSE_PREPARE;
    break;
  case QORB__OP_CHECK:
    s->close_cause = QORB_CLOSE_HEALTH;
    QORB_PROBE(HEALTH_CHECK_FAILED, p->name, (uint64_t)s->index, addr, status,
               qorb_err_name(status));
    qorb__pool_log(p, QORB_LOG_WARN, "health check of %s failed: %s", addr,
                   qorb_strerror(status));
    break;
  case QORB__OP_RECYCLE:
    s->close_cause = QORB_CLOSE_RECYCLE;
    QORB_PROBE(RECYCLE_FAILED, p->name, (uint64_t)s->index, addr, status,
               qorb_err_name(status));
    break;
  case QORB__OP_AFTER_CONNECT:
  case QORB__OP_BEFORE_ACQUIRE:
  case QORB__OP_AFTER_RELEASE:
    slot_hook_failed(s, op, status);
    return;
  default:
    break;
  }
  (void)addr;
  if (status == QORB_EGONE) {
    struct qorb__backend *b = s->backend;
    qorb__slot_failed(s, QORB__FAIL_OP);
    qorb__backend_warn(b, NULL);
    return;
  }
  qorb__slot_failed(s, QORB__FAIL_OP);
}

void qorb__slot_op_finished(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  int status = s->op_status, op = s->op;

  ev_timer_stop(p->loop, &s->timer);
  s->op = QORB__OP_NONE;
  if (op == QORB__OP_CONNECT) s->backend->nconnecting--;
  if (status < 0) {
    slot_op_failed(s, op, status);
    return;
  }
  switch (op) {
  case QORB__OP_CONNECT:
    slot_connected(s);
    return;
  case QORB__OP_CHECK:
    QORB_PROBE(HEALTH_CHECK_DONE, p->name, (uint64_t)s->index,
               s->backend->addr.text);
    s->checked_at = ev_now(p->loop);
    if (slot_excess(s)) {
      qorb__slot_free(s);
      return;
    }
    qorb__slot_offer(s);
    return;
  case QORB__OP_PREPARE:
    qorb__slot_offer(s);
    return;
  case QORB__OP_RECYCLE:
    QORB_PROBE(RECYCLE_DONE, p->name, (uint64_t)s->index,
               s->backend->addr.text);
    slot_ready(s);
    return;
  case QORB__OP_AFTER_CONNECT:
    slot_ready(s);
    return;
  case QORB__OP_BEFORE_ACQUIRE:
    if (slot_excess(s)) {
      qorb__slot_free(s);
      return;
    }
    qorb__slot_offer(s);
    return;
  case QORB__OP_AFTER_RELEASE:
    slot_clean(s, (unsigned)s->hook_suspect);
    return;
  default:
    return;
  }
}

void qorb__slot_released(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  unsigned suspect =
      atomic_fetch_and(&s->flags, ~QORB__F_SUSPECT) & QORB__F_SUSPECT;
  if (s->release_broken) {
    struct qorb__backend *b = s->backend;
    s->close_cause = QORB_CLOSE_BROKEN;
    if (s->reset_err[0] != '\0') {
      /* A claimant read a failed answer to its releaser's reset. */
      qorb_op_set_error((qorb_op_t *)s, "%s", s->reset_err);
      s->reset_err[0] = '\0';
      s->close_cause = QORB_CLOSE_RECYCLE;
      QORB_PROBE(RECYCLE_FAILED, p->name, (uint64_t)s->index, b->addr.text,
                 s->release_broken, qorb_err_name(s->release_broken));
    }
    if (p->closing_loop || b->removed || s->retiring) {
      qorb__slot_free(s);
      return;
    }
    /* One death warns its siblings: check the backend's idle ones now. */
    qorb__slot_failed(s, QORB__FAIL_BROKEN);
    qorb__backend_warn(b, NULL);
    return;
  }
  if (slot_excess(s)) {
    qorb__slot_free(s);
    return;
  }
  if (p->hooked_release) s->hook_acquire_due = p->policy.before_acquire != NULL;
  if (p->policy.after_release != NULL) {
    s->hook_suspect = suspect != 0;
    slot_start_hook(s, QORB__OP_AFTER_RELEASE, QORB__S_RECYCLING);
    return;
  }
  slot_clean(s, suspect);
}

/*
 * A released connection, clean it: recycle it, or look at it if a
 * sibling died while it was claimed, then make it ready again.
 */
static void slot_clean(qorb_claim_t *s, unsigned suspect) {
  qorb_pool_t *p = s->pool;
  if (s->release_clean) {
    /* Here for the hooks only: the connector said it is clean. */
    s->release_clean = 0;
    if (suspect) {
      qorb__slot_set_state(s, QORB__S_CHECKING);
      qorb__slot_check_now(s);
      return;
    }
    qorb__slot_offer(s);
    return;
  }
  if (p->cops->recycle != NULL) {
    /* A round trip: it also finds a suspect connection dead. */
    qorb__slot_start_op(s, QORB__OP_RECYCLE, QORB__S_RECYCLING,
                        p->policy.recycle_timeout_ms);
    return;
  }
  if (suspect) {
    qorb__slot_set_state(s, QORB__S_CHECKING);
    qorb__slot_check_now(s);
    return;
  }
  slot_ready(s);
}

static const char *op_name(int op) {
  switch (op) {
  case QORB__OP_CONNECT:
    return "connect";
  case QORB__OP_CHECK:
    return "health check";
  case QORB__OP_PREPARE:
    return "prepare";
  case QORB__OP_AFTER_CONNECT:
    return "after_connect";
  case QORB__OP_BEFORE_ACQUIRE:
    return "before_acquire";
  case QORB__OP_AFTER_RELEASE:
    return "after_release";
  default:
    return "recycle";
  }
}

static void slot_timer_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  qorb_claim_t *s = QORB_CONTAINER_OF(t, qorb_claim_t, timer);
  qorb_pool_t *p = s->pool;
  int st = qorb__slot_state(s), op = s->op;
  (void)loop;
  (void)revents;
  if (s->op_done_queued) return; /* finished just in time */
  switch (st) {
  case QORB__S_BACKOFF:
    if (slot_excess(s)) {
      qorb__slot_free(s);
      return;
    }
    qorb__slot_connect(s);
    return;
  case QORB__S_CONNECTING:
  case QORB__S_CHECKING:
  case QORB__S_PREPARING:
  case QORB__S_RECYCLING:
    qorb_op_set_error((qorb_op_t *)s, "%s of %s timed out", op_name(op),
                      s->backend->addr.text);
    s->op_status = QORB_ETIMEDOUT;
    slot_op_failed(s, op, QORB_ETIMEDOUT);
    return;
  case QORB__S_IDLE:
    qorb__slot_idle_tick(s);
    return;
  case QORB__S_CLAIMED:
  case QORB__S_RELEASED:
    if (p->policy.health_interval_ms > 0) qorb__slot_health_timer(s);
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
  qorb__pool_log(p, QORB_LOG_DEBUG, "connection %u to %s reached its lifetime",
                 s->index, s->backend->addr.text);
  qorb__want_rebalance(p);
}

void qorb__slots_init(qorb_pool_t *p) {
  unsigned i;
  for (i = 0; i < p->cap; i++) {
    qorb_claim_t *s = &p->slots[i];
    s->pool = p;
    s->index = i;
    ev_timer_init(&s->timer, slot_timer_cb, 0., 0.);
    ev_timer_init(&s->life, slot_life_cb, 0., 0.);
    qorb__watch_init(s);
    qorb__list_init(&s->blink);
    qorb__list_init(&s->plink);
    atomic_store_explicit(&p->order[i], UINT32_MAX, RELAXED);
  }
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
   * still be using the connection. Queue the slot; the wake pass runs
   * later in this same loop iteration.
   */
  s->op_status = status;
  s->op_done_queued = 1;
  qorb__list_push_back(&p->done_ops, &s->plink);
  qorb__pool_kick(p);
}

void qorb_op_set_error(qorb_op_t *op, const char *fmt, ...) {
  qorb_claim_t *s = (qorb_claim_t *)op;
  char buf[192];
  size_t n;
  va_list ap;
  if (s == NULL || fmt == NULL || s->backend == NULL) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  /* Drop a trailing newline (libpq ends its messages with one). */
  n = strlen(buf);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
  s->err_set = 1;
  pthread_mutex_lock(&s->pool->mu);
  qorb__strlcpy(s->backend->last_error, buf, sizeof(s->backend->last_error));
  s->backend->last_error_ns = qorb__now_ns();
  pthread_mutex_unlock(&s->pool->mu);
  qorb__pool_log(s->pool, QORB_LOG_WARN, "%s: %s", s->backend->addr.text, buf);
}

struct ev_loop *qorb_op_loop(const qorb_op_t *op) {
  return op != NULL ? ((const qorb_claim_t *)op)->pool->loop : NULL;
}

const qorb_addr_t *qorb_op_addr(const qorb_op_t *op) {
  const qorb_claim_t *s = (const qorb_claim_t *)op;
  return (s != NULL && s->backend != NULL) ? &s->backend->addr : NULL;
}
