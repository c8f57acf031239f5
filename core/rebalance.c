/* SPDX-License-Identifier: MIT */
/*
 * rebalance.c: how many slots each backend should have, and getting there.
 * Run on every rebalance request (at the end of a wake pass), on the
 * rebalance timer, and when a claim misses and the pool can grow. It sets
 * every backend's target from the demand (claimed + waiting + spares,
 * bounded by max_slots and the per-backend cap), closes what is beyond the
 * targets, opens what is missing, and publishes the claim scan order: the
 * best-ranked backends' slots first. Loop thread.
 */
#include <stdlib.h>

#include "private.h"

/*
 * At most this many backends of each kind (serving, offline) take part in
 * one rebalance: a serving backend beyond it is ranked with the offline
 * ones (one probing slot at most), and offline ones beyond it get no slot.
 */
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
void qorb__backend_shrink(qorb_pool_t *p, struct qorb__backend *b) {
  qorb__list_t *it, *next;
  int pass, gone = b->removed || p->closing_loop;
  for (pass = 0; pass < 2; pass++) {
    for (it = b->slots.next; it != &b->slots; it = next) {
      qorb_claim_t *s = QORB_CONTAINER_OF(it, qorb_claim_t, blink);
      int st = qorb__slot_state(s), last = b->nslots == 1;
      next = it->next;
      if (st == QORB__S_CLAIMED || st == QORB__S_RELEASED) continue;
      if (!gone && (s->retiring || b->nslots - b->nretiring <= b->target))
        continue;
      if (st == QORB__S_IDLE) {
        if (pass == 0 ||
            !qorb__slot_cas_state(s, QORB__S_IDLE, QORB__S_CLOSING))
          continue;
      } else if (pass == 1 ||
                 (!gone && st != QORB__S_BACKOFF &&
                  !(st == QORB__S_CONNECTING && !s->op_done_queued))) {
        continue; /* connected and busy: leave it unless the backend is gone */
      }
      last = last && b->removed; /* read before unbind may free b */
      qorb__slot_unbind(s);
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
    b->rank = (double)qorb__backend_recent_failures(p, b) + b->jitter;
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
    if (qorb__slot_state(&p->slots[i]) == QORB__S_CLAIMED ||
        qorb__slot_state(&p->slots[i]) == QORB__S_RELEASED)
      claimed++;
  demand = claimed + atomic_load_explicit(&p->nwaiters, RELAXED) +
           p->policy.spares_wanted;
  /* idle_timeout: shrink only after demand has stayed lower that long. */
  if (demand >= p->demand_peak || p->demand_peak_at == 0) {
    p->demand_peak = demand;
    p->demand_peak_at = now;
  } else if (p->policy.idle_timeout_ms > 0 &&
             now - p->demand_peak_at >= qorb__ms(p->policy.idle_timeout_ms)) {
    p->demand_peak = demand;
    p->demand_peak_at = now;
  }
  if (demand < p->demand_peak) demand = p->demand_peak;
  /* min_conns: a floor, whatever the demand. */
  if (demand < p->policy.min_conns) demand = p->policy.min_conns;

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

static void order_set(qorb_pool_t *p, unsigned n, uint32_t idx, int *changed) {
  if (atomic_load_explicit(&p->order[n], RELAXED) == idx) return;
  atomic_store_explicit(&p->order[n], idx, RELAXED);
  *changed = 1;
}

void qorb__rebalance(qorb_pool_t *p) {
  struct qorb__backend *on[QORB__MAX_BACKENDS], *off[QORB__MAX_BACKENDS], *b;
  qorb__list_t *it, *next;
  unsigned non = 0, noff = 0, i;

  p->rebalance_wanted = 0;
  QORB_PROBE(REBALANCE_START, p->name);
  pool_set_targets(p, on, &non, off, &noff);

  /* Shrink first, so that growing finds room (this may free a backend). */
  for (it = p->backends.next; it != &p->backends; it = next) {
    next = it->next;
    b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
    qorb__backend_shrink(p, b);
  }
  for (i = 0; i < non + noff; i++) {
    b = i < non ? on[i] : off[i - non];
    while (b->nslots - b->nretiring < b->target && p->nbound < p->cap &&
           b->nconnecting < p->policy.max_connecting_per_backend) {
      qorb_claim_t *s = qorb__slot_bind(p, b);
      if (s == NULL) break;
      qorb__slot_connect(s);
    }
  }

  /* Publish the claim scan order: best-ranked backends' slots first. */
  {
    unsigned n = 0;
    int changed = 0;
    pthread_mutex_lock(&p->mu);
    for (i = 0; i < non + noff; i++) {
      b = i < non ? on[i] : off[i - non];
      for (it = b->slots.next; it != &b->slots && n < p->cap; it = it->next)
        order_set(p, n++, QORB_CONTAINER_OF(it, qorb_claim_t, blink)->index,
                  &changed);
    }
    /* Slots of removed backends go last (they are draining). */
    for (it = p->backends.next; it != &p->backends; it = it->next) {
      qorb__list_t *jt;
      b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
      if (!b->removed) continue;
      for (jt = b->slots.next; jt != &b->slots && n < p->cap; jt = jt->next)
        order_set(p, n++, QORB_CONTAINER_OF(jt, qorb_claim_t, blink)->index,
                  &changed);
    }
    for (; n < p->cap; n++) order_set(p, n, UINT32_MAX, &changed);
    /* A new order outranks every thread's remembered slot. */
    if (changed) atomic_fetch_add_explicit(&p->order_epoch, 1, RELAXED);
    qorb__pool_unlock(p);
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
}

static void rebalance_timer_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  qorb_pool_t *p = (qorb_pool_t *)t->data;
  (void)loop;
  (void)revents;
  qorb__rebalance(p);
}

void qorb__rebalance_timer_init(qorb_pool_t *p) {
  ev_tstamp iv = qorb__ms(p->policy.rebalance_interval_ms);
  ev_timer_init(&p->rebalance_timer, rebalance_timer_cb, iv, iv);
  p->rebalance_timer.data = p;
  ev_timer_start(p->loop, &p->rebalance_timer);
}

/*
 * Slots never rebalance from inside their own transitions (a rebalance
 * binds, connects and unbinds slots): they ask, and the wake pass runs one
 * rebalance at its end (pool.c). From outside a wake pass, asking feeds
 * the wake watcher, which libev runs later in this same loop iteration.
 * Only entry points from outside the slot machine rebalance directly: the
 * rebalance timer, the wake pass, and a resolver's update.
 */
void qorb__want_rebalance(qorb_pool_t *p) {
  p->rebalance_wanted = 1;
  if (!p->in_wake) qorb__pool_kick(p);
}
