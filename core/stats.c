/* SPDX-License-Identifier: MIT */
/*
 * stats.c: what the pool tells about itself. The snapshot
 * (qorb_pool_stats), and leak detection, which reads the same claim
 * counters: a claim held past leak_threshold_ms is reported through the
 * log callback with its claim site.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "private.h"

/* ---------------------------------------------------------------------- */
/* Leak detection                                                          */

static void leak_timer_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  qorb_pool_t *p = (qorb_pool_t *)t->data;
  ev_tstamp now = ev_now(loop), limit = qorb__ms(p->policy.leak_threshold_ms);
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
    if (qorb__slot_state(s) != QORB__S_CLAIMED) continue;
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
      qorb__pool_log(p, QORB_LOG_WARN,
               "possible leak: connection %u to %s claimed at %s:%d held "
               "over %u ms",
               s->index, s->backend->addr.text, file ? file : "?",
               atomic_load_explicit(&s->claim_line, RELAXED),
               p->policy.leak_threshold_ms);
    }
  }
}

int qorb__leak_timer_init(qorb_pool_t *p) {
  double iv = qorb__ms(p->policy.leak_threshold_ms) / 4;
  if (p->policy.leak_threshold_ms == 0) {
    ev_timer_init(&p->leak_timer, leak_timer_cb, 1., 1.);
    p->leak_timer.data = p;
    return 0;
  }
  if (iv < 0.01) iv = 0.01;
  ev_timer_init(&p->leak_timer, leak_timer_cb, iv, iv);
  p->leak_timer.data = p;
  ev_timer_start(p->loop, &p->leak_timer);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* Stats                                                                   */

/* Larger than this is not a size that qorb_pool_stats_init() set. */
#define STATS_MAX_SIZE 65536

void qorb_pool_stats_init_(qorb_pool_stats_t *st, size_t size,
                           size_t backend_size) {
  /* The caller's struct is `size` bytes, longer or shorter than ours. */
  if (st == NULL || size < offsetof(qorb_pool_stats_t, closing) ||
      size > STATS_MAX_SIZE)
    return;
  memset(st, 0, size);
  st->size = size;
  st->backend_size = backend_size;
}

/* The resolver's last report, its times moved on to now. */
static void stats_resolver_locked(qorb_pool_t *p, qorb_resolver_stats_t *rs,
                                  unsigned backends) {
  int64_t gone;

  if (p->rstats_ns == 0) {
    qorb_resolver_stats_init(rs);
    snprintf(rs->kind, sizeof(rs->kind), "%s",
             p->resolver->ops->name ? p->resolver->ops->name : "");
    rs->backends = backends;
    return;
  }
  *rs = p->rstats;
  gone = (int64_t)((qorb__now_ns() - p->rstats_ns) / 1000000u);
  if (rs->last_error_age_ms >= 0) rs->last_error_age_ms += gone;
  if (rs->next_query_ms > 0)
    rs->next_query_ms = rs->next_query_ms > gone ? rs->next_query_ms - gone : 0;
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
  if (p == NULL || st == NULL ||
      st->size < offsetof(qorb_pool_stats_t, closing) ||
      st->size > STATS_MAX_SIZE ||
      (backends != NULL && (st->backend_size < sizeof(qorb_addr_t) ||
                            st->backend_size > STATS_MAX_SIZE)))
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
      switch (qorb__slot_state(s)) {
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
    if (backends != NULL && nb < cap) {
      /* The caller's stride; fields beyond ours are zeroed. */
      char *at = (char *)backends + nb * st->backend_size;
      if (st->backend_size > sizeof(bs))
        memset(at + sizeof(bs), 0, st->backend_size - sizeof(bs));
      memcpy(at, &bs,
             st->backend_size < sizeof(bs) ? st->backend_size : sizeof(bs));
    }
    nb++;
  }
  stats_resolver_locked(p, &out.resolver, out.backends);
  qorb__pool_unlock(p);
  if (st->size > sizeof(out))
    memset((char *)st + sizeof(out), 0, st->size - sizeof(out));
  memcpy(st, &out, st->size < sizeof(out) ? st->size : sizeof(out));
  if (n != NULL) *n = nb;
  return 0;
}
