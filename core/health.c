/* SPDX-License-Identifier: MIT */
/*
 * health.c: keeping idle connections healthy: health checks (due
 * health_interval_ms after the last, however often the connection is
 * used), one death warning its siblings, and the idle watch. While the
 * pool owns an idle connection, the loop watches its socket (idle_fd):
 * readable or hung up with nobody holding it means the server closed it or
 * sent something unsolicited, and the connector's peek decides. The watch
 * is started whenever the loop makes the slot IDLE. A claimant's CAS takes
 * the slot without touching the watch (the fast path stays free of system
 * calls); the claimant's own traffic then wakes the watch once, and the
 * loop stops it and looks again every QORB__REWATCH_MS until the slot is
 * idle again (a clean release stores IDLE without the loop).
 *
 * The loop watches a duplicate of the connector's socket, made once per
 * connection: a claimant's library may close its own descriptor when the
 * connection fails under it (libpq does), and the watch must never see
 * that number closed under it, or reused by another socket. Loop thread.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>

#include "private.h"

#define QORB__REWATCH_MS 100

void qorb__watch_stop(qorb_claim_t *s) {
  if (s->watching) {
    ev_io_stop(s->pool->loop, &s->watch);
    s->watching = 0;
  }
  ev_timer_stop(s->pool->loop, &s->rewatch);
}

/* Stop watching and drop the duplicate (the connection is closing). */
void qorb__watch_drop(qorb_claim_t *s) {
  qorb__watch_stop(s);
  if (s->watch_fd >= 0) {
    close(s->watch_fd);
    s->watch_fd = -1;
  }
}

/*
 * The descriptor to watch (our duplicate of the connector's socket), made
 * while the loop still owns the connection; -1: not watched.
 */
int qorb__watch_fd(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  int fd;
  if (s->watch_fd >= 0) return s->watch_fd;
  if (p->cops->idle_fd == NULL || s->conn == NULL) return -1;
  fd = p->cops->idle_fd(p->cctx, s->conn);
  if (fd < 0) return -1;
  s->watch_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return s->watch_fd;
}

void qorb__watch_start(qorb_claim_t *s, int fd) {
  qorb_pool_t *p = s->pool;
  if (fd < 0) {
    qorb__watch_stop(s);
    return;
  }
  if (s->watching && s->watch.fd == fd) return;
  qorb__watch_stop(s);
  ev_io_set(&s->watch, fd, EV_READ);
  ev_io_start(p->loop, &s->watch);
  s->watching = 1;
}

/* Look again once the claimant has let the slot go. */
void qorb__watch_later(qorb_claim_t *s) {
  if (s->pool->cops->idle_fd == NULL) return;
  ev_timer_stop(s->pool->loop, &s->rewatch);
  ev_timer_set(&s->rewatch, qorb__ms(QORB__REWATCH_MS), 0.);
  ev_timer_start(s->pool->loop, &s->rewatch);
}


#define QORB__CHECK_RETRY_MS 100

/*
 * A slot the loop has just taken from IDLE to CHECKING whose releaser sent
 * a reset (QORB__F_PENDING): read the answer without waiting. Returns 1
 * when the connection is clean (still CHECKING: the caller goes on with
 * it); 0 when the answer is not all there yet (the slot is offered again,
 * still pending, and looked at when more arrives); -1 when the reset
 * failed (the connection is closed and replaced). The reset's round trip
 * is not a health check: it says nothing of the backend's role.
 */
static int slot_settle(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  struct qorb__backend *b = s->backend;
  int rc;
  s->reset_err[0] = '\0';
  rc = p->cops->reset_finish(p->cctx, s->conn, 0, s->reset_err,
                             sizeof(s->reset_err));
  if (rc == QORB_EAGAIN) {
    qorb__slot_offer(s);
    return 0;
  }
  atomic_fetch_and_explicit(&s->flags, ~QORB__F_PENDING, RELAXED);
  if (rc < 0) {
    /* As a failed recycle: closed, replaced, and its siblings looked at
       when the backend itself went away. */
    qorb_op_set_error((qorb_op_t *)s, "%s",
                      s->reset_err[0] ? s->reset_err : qorb_strerror(rc));
    s->reset_err[0] = '\0';
    s->close_cause = QORB_CLOSE_RECYCLE;
    QORB_PROBE(RECYCLE_FAILED, p->name, (uint64_t)s->index, b->addr.text,
               rc, qorb_err_name(rc));
    qorb__slot_failed(s, QORB__FAIL_OP);
    if (rc == QORB_EGONE) qorb__backend_warn(b, NULL);
    return -1;
  }
  return 1;
}

static void watch_cb(struct ev_loop *loop, ev_io *w, int revents) {
  qorb_claim_t *s = QORB_CONTAINER_OF(w, qorb_claim_t, watch);
  qorb_pool_t *p = s->pool;
  int rc;
  (void)loop;
  (void)revents;
  qorb__watch_stop(s);
  /* A claimant that took the slot first simply has it. */
  if (!qorb__slot_cas_state(s, QORB__S_IDLE, QORB__S_CHECKING)) {
    if (qorb__slot_state(s) == QORB__S_CLAIMED) qorb__watch_later(s);
    return;
  }
  /* The answer to its releaser's reset, most likely. */
  if (qorb__slot_pending(s)) {
    if (slot_settle(s) == 1) qorb__slot_offer(s);
    return;
  }
  rc = p->cops->peek != NULL ? p->cops->peek(p->cctx, s->conn) : QORB_ECLOSED;
  if (rc == 0) {
    /* Alive (a NOTIFY, say): idle again, or to a claim that queued while
       we looked. */
    qorb__slot_offer(s);
    return;
  }
  qorb__slot_idle_died(s, rc);
}

static void rewatch_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  qorb_claim_t *s = QORB_CONTAINER_OF(t, qorb_claim_t, rewatch);
  (void)revents;
  ev_timer_stop(loop, t);
  switch (qorb__slot_state(s)) {
  case QORB__S_IDLE:
    /* The duplicate was made when the loop owned the connection: watching
       it asks nothing of the connection a claimant may hold by now. */
    if (s->watch_fd >= 0) qorb__watch_start(s, s->watch_fd);
    return;
  case QORB__S_CLAIMED:
    qorb__watch_later(s);
    return;
  default:
    return; /* the loop has it: it watches again when it makes it IDLE */
  }
}

void qorb__watch_init(qorb_claim_t *s) {
  ev_io_init(&s->watch, watch_cb, -1, EV_READ);
  s->watch_fd = -1;
  ev_timer_init(&s->rewatch, rewatch_cb, 0., 0.);
}

/* ---------------------------------------------------------------------- */
/* Health checks and deaths                                                */

/*
 * Arm the timer for the next health check: health_interval_ms after the
 * last one (or the connect). Use does not postpone it: a connection
 * claimed again and again is still checked. One that is due but held by a
 * claimant is looked at again shortly (a clean release goes back to idle
 * without the loop).
 */
void qorb__slot_health_timer(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  ev_tstamp due = s->checked_at + qorb__ms(p->policy.health_interval_ms);
  ev_tstamp left = due - ev_now(p->loop);
  ev_tstamp retry = qorb__ms(p->policy.health_interval_ms < QORB__CHECK_RETRY_MS
                                 ? p->policy.health_interval_ms
                                 : QORB__CHECK_RETRY_MS);
  int st = qorb__slot_state(s);
  if (left < 0) left = 0;
  if (left < retry && (st == QORB__S_CLAIMED || st == QORB__S_RELEASED))
    left = retry;
  ev_timer_stop(p->loop, &s->timer);
  ev_timer_set(&s->timer, left, 0.);
  ev_timer_start(p->loop, &s->timer);
}

/*
 * Check a slot the loop has just taken from IDLE to CHECKING: a health
 * check round trip, or where the connector has none, a look (peek).
 */
void qorb__slot_check_now(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  int rc;
  if (qorb__slot_pending(s)) {
    /* Its reset's answer first; not there yet: look again soon. */
    rc = slot_settle(s);
    if (rc == 0 && qorb__slot_state(s) == QORB__S_IDLE)
      qorb__slot_timer_start(s, QORB__CHECK_RETRY_MS);
    if (rc != 1) return;
  }
  if (p->cops->check != NULL) {
    qorb__slot_start_op(s, QORB__OP_CHECK, QORB__S_CHECKING,
                  p->policy.health_check_timeout_ms);
    return;
  }
  qorb__watch_stop(s);
  rc = p->cops->peek != NULL ? p->cops->peek(p->cctx, s->conn) : 0;
  if (rc < 0) {
    qorb__slot_idle_died(s, rc);
    return;
  }
  qorb__slot_offer(s);
}

/*
 * An idle connection that the server closed, or that received something
 * unsolicited (the connector's peek said so): close it and replace it at
 * once, and have its siblings checked, since the backend may have gone.
 */
void qorb__slot_idle_died(qorb_claim_t *s, int rc) {
  qorb_pool_t *p = s->pool;
  struct qorb__backend *b = s->backend;
  if (rc == QORB_EGONE)
    qorb_op_set_error((qorb_op_t *)s,
                      "idle connection to %s closed by the server",
                      b->addr.text);
  else
    qorb_op_set_error((qorb_op_t *)s, "idle connection to %s unusable: %s",
                      b->addr.text, qorb_strerror(rc));
  QORB_PROBE(HEALTH_CHECK_FAILED, p->name, (uint64_t)s->index, b->addr.text,
             rc, qorb_err_name(rc));
  (void)p;
  qorb__slot_failed(s, QORB__FAIL_IDLE);
  qorb__backend_warn(b, NULL);
}

void qorb__backend_warn(struct qorb__backend *b, const qorb_claim_t *except) {
  qorb__list_t *it, *next;
  if (b->removed) return; /* its idle slots are closing anyway */
  for (it = b->slots.next; it != &b->slots; it = next) {
    qorb_claim_t *x = QORB_CONTAINER_OF(it, qorb_claim_t, blink);
    next = it->next;
    if (x == except) continue;
    if (qorb__slot_cas_state(x, QORB__S_IDLE, QORB__S_CHECKING)) {
      qorb__slot_check_now(x);
      continue;
    }
    /* Held by a claimant: looked at when it comes back, before reuse. */
    if (qorb__slot_state(x) == QORB__S_CLAIMED)
      atomic_fetch_or(&x->flags, QORB__F_SUSPECT);
  }
}

/* The timer of an IDLE slot: retire tick or health check. */
void qorb__slot_idle_tick(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  if (s->retiring && qorb__backend_has_fresh(s->backend)) {
    if (qorb__slot_cas_state(s, QORB__S_IDLE, QORB__S_CLOSING))
      qorb__slot_free(s);
    else
      qorb__slot_timer_start(s, p->policy.rebalance_interval_ms);
    return;
  }
  if (p->cops->check == NULL || p->policy.health_interval_ms == 0) {
    /* No health checks: only a retiring slot needs this timer. */
    if (s->retiring) qorb__slot_timer_start(s, p->policy.rebalance_interval_ms);
    return;
  }
  /* Health check, if nobody claims it first. */
  if (!qorb__slot_cas_state(s, QORB__S_IDLE, QORB__S_CHECKING)) {
    qorb__slot_health_timer(s);
    return;
  }
  qorb__slot_check_now(s);
}
