/* SPDX-License-Identifier: MIT */
/*
 * backend.c: slot sets, one per backend. The windowed failure count that
 * ranks them, what the pool publishes about them to claimants (how many
 * are known and online, and the all-failed short cut), and the resolver's
 * face: qorb_resolver_update() turns a snapshot of addresses into added
 * and removed backends, and qorb_resolver_report() keeps the resolver's
 * figures for the stats snapshot (a merged resolver's parts report to it
 * instead, resolver_merge.c). Loop thread throughout.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "private.h"
#include "resolver_merge.h"

static void backend_window(qorb_pool_t *p, struct qorb__backend *b) {
  ev_tstamp now = ev_now(p->loop), win = qorb__ms(p->policy.failure_window_ms);
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

unsigned qorb__backend_recent_failures(qorb_pool_t *p,
                                       struct qorb__backend *b) {
  backend_window(p, b);
  return b->fail_prev + b->fail_cur;
}

void qorb__backend_failure(qorb_pool_t *p, struct qorb__backend *b) {
  backend_window(p, b);
  b->fail_cur++;
  atomic_fetch_add_explicit(&b->failures, 1, RELAXED);
}

/*
 * Publish what claimants read without the lock: how many backends are
 * known and online, and the fail-fast short cut. That short cut (claims
 * fail at once with QORB_ENOTONLINE) holds only while every known backend
 * is offline after a failed connect, and has been offline for at least
 * fail_fast_after_ms: a backend that restarts within that bound costs no
 * failed claim (claims wait up to their timeout), and no claim ever fails
 * at once while some backend has a connected slot. Until the bound has
 * passed, a timer publishes again when it does.
 */
void qorb__pool_publish(qorb_pool_t *p) {
  struct qorb__backend *b;
  qorb__list_t *it;
  unsigned known = 0, online = 0;
  int all_failed = 1;
  ev_tstamp now = ev_now(p->loop), bound = qorb__ms(p->policy.fail_fast_after_ms);
  ev_tstamp wait = 0;
  for (it = p->backends.next; it != &p->backends; it = it->next) {
    b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
    if (b->removed) continue;
    known++;
    if (b->nconnected > 0) online++;
    if (b->nconnected > 0 || !b->failed) {
      all_failed = 0;
    } else if (now - b->down_since < bound) {
      /* Failed, but not for long enough yet. */
      if (bound - (now - b->down_since) > wait)
        wait = bound - (now - b->down_since);
    }
  }
  if (known == 0 || p->closing_loop) all_failed = 0;
  p->nbackends = known;
  p->nonline = online;
  atomic_store(&p->pub_backends, known);
  atomic_store(&p->pub_online, online);
  ev_timer_stop(p->loop, &p->failfast_timer);
  if (all_failed && wait > 0) {
    /* Look again once the most recent of them has been down long enough. */
    ev_timer_set(&p->failfast_timer, wait + 0.001, 0.);
    ev_timer_start(p->loop, &p->failfast_timer);
    all_failed = 0;
  }
  if (all_failed && !atomic_load_explicit(&p->all_failed, RELAXED)) {
    atomic_store(&p->all_failed, 1);
    pthread_mutex_lock(&p->mu);
    qorb__fail_waiters_locked(p, QORB_ENOTONLINE);
    qorb__pool_unlock(p);
    qorb__pool_kick(p);
  } else if (!all_failed) {
    atomic_store(&p->all_failed, 0);
  }
}

static void failfast_timer_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  qorb_pool_t *p = (qorb_pool_t *)t->data;
  (void)loop;
  (void)revents;
  qorb__pool_publish(p);
}

void qorb__failfast_timer_init(qorb_pool_t *p) {
  ev_timer_init(&p->failfast_timer, failfast_timer_cb, 0., 0.);
  p->failfast_timer.data = p;
}

void qorb__backend_free_if_done(qorb_pool_t *p, struct qorb__backend *b) {
  if (!b->removed || b->nslots != 0) return;
  pthread_mutex_lock(&p->mu);
  qorb__list_remove(&b->link);
  qorb__pool_unlock(p);
  qorb__free(b);
}

void qorb__backends_free(qorb_pool_t *p) {
  while (!qorb__list_empty(&p->backends)) {
    qorb__list_t *it = p->backends.next;
    qorb__list_remove(it);
    qorb__free(QORB_CONTAINER_OF(it, struct qorb__backend, link));
  }
}

static struct qorb__backend *backend_find(qorb_pool_t *p,
                                          const qorb_addr_t *addr) {
  qorb__list_t *it;
  for (it = p->backends.next; it != &p->backends; it = it->next) {
    struct qorb__backend *b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
    if (qorb_addr_equal(&b->addr, addr)) return b;
  }
  return NULL;
}

static int backend_add(qorb_pool_t *p, const qorb_addr_t *addr) {
  struct qorb__backend *b = qorb__calloc(1, sizeof(*b));
  if (b == NULL) return QORB_ENOMEM;
  b->addr = *addr;
  b->jitter = qorb__rng_unit(p) * 0.5;
  qorb__list_init(&b->slots);
  b->window_start = ev_now(p->loop);
  b->down_since = b->window_start; /* not connected yet */
  pthread_mutex_lock(&p->mu);
  qorb__list_push_back(&p->backends, &b->link);
  qorb__pool_unlock(p);
  qorb__pool_log(p, QORB_LOG_INFO, "backend %s added", b->addr.text);
  return 0;
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
  /* Started with the pool's pointer but not the pool's own: a part of the
     merged resolver that is (resolver_merge.c). */
  if (r != p->resolver)
    return qorb__merge_part_update(p->resolver, r, addrs, n);
  if (p->closing_loop) return 0;

  /* Mark every backend gone, then revive the ones still reported. */
  for (it = p->backends.next; it != &p->backends; it = it->next)
    QORB_CONTAINER_OF(it, struct qorb__backend, link)->target = UINT32_MAX;
  for (i = 0; i < n; i++) {
    struct qorb__backend *b = backend_find(p, &addrs[i]);
    if (b == NULL) {
      if (backend_add(p, &addrs[i]) < 0) rc = QORB_ENOMEM;
      continue;
    }
    if (b->target == UINT32_MAX) b->target = 0;
    b->removed = 0;
  }
  for (it = p->backends.next; it != &p->backends; it = next) {
    struct qorb__backend *b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
    next = it->next;
    if (b->target == UINT32_MAX) {
      b->target = 0;
      if (!b->removed)
        qorb__pool_log(p, QORB_LOG_INFO, "backend %s removed", b->addr.text);
      b->removed = 1;
      qorb__backend_free_if_done(p, b);
    }
  }
  qorb__pool_publish(p);
  /*
   * An update comes from outside the slot machine (never from inside a
   * rebalance), so it rebalances at once: a removed backend's idle slots
   * close now, before any claim can take one.
   */
  qorb__rebalance(p);
  return rc;
}

void qorb_resolver_stats_init_(qorb_resolver_stats_t *st, size_t size) {
  if (st == NULL || size < offsetof(qorb_resolver_stats_t, kind)) return;
  memset(st, 0, size);
  st->size = size;
  st->last_error_age_ms = -1;
  st->next_query_ms = -1;
}

int qorb_resolver_report(qorb_resolver_t *r, const qorb_resolver_stats_t *st) {
  qorb_resolver_stats_t in;
  qorb_pool_t *p;

  if (r == NULL || st == NULL ||
      st->size < offsetof(qorb_resolver_stats_t, kind) || st->size > 65536)
    return QORB_EINVAL;
  p = r->pool;
  if (p == NULL || !r->started) return QORB_EBUSY;
  /* An older, shorter struct: the fields it lacks keep their defaults. */
  qorb_resolver_stats_init(&in);
  memcpy(&in, st, st->size < sizeof(in) ? st->size : sizeof(in));
  in.size = sizeof(in);
  in.kind[sizeof(in.kind) - 1] = '\0';
  in.name[sizeof(in.name) - 1] = '\0';
  in.last_error_text[sizeof(in.last_error_text) - 1] = '\0';
  if (in.kind[0] == '\0')
    snprintf(in.kind, sizeof(in.kind), "%s", r->ops->name ? r->ops->name : "");
  /* A part of the pool's merged resolver: the merged one sums them. */
  if (r != p->resolver) return qorb__merge_part_report(p->resolver, r, &in);
  pthread_mutex_lock(&p->mu);
  p->rstats = in;
  p->rstats_ns = qorb__now_ns();
  pthread_mutex_unlock(&p->mu);
  return 0;
}
