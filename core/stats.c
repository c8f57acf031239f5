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
/* The stats tick: how long claims are held, and leak detection            */

/* How often the tick looks at the claimed slots (the oldest claim's age is
 * known to this much). */
#define STATS_TICK 0.25

static void leak_timer_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  qorb_pool_t *p = (qorb_pool_t *)t->data;
  ev_tstamp now = ev_now(loop), limit = qorb__ms(p->policy.leak_threshold_ms);
  int64_t now_ms = qorb__coarse_ms();
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
    if (qorb__slot_state(s) != QORB__S_CLAIMED) {
      if (atomic_load_explicit(&s->held_since_ms, RELAXED) != 0)
        atomic_store_explicit(&s->held_since_ms, 0, RELAXED);
      continue;
    }
    seq = atomic_load_explicit(&s->nclaims, RELAXED);
    if (seq != s->leak_seq || atomic_load_explicit(&s->held_since_ms,
                                                   RELAXED) == 0) {
      s->leak_seq = seq;
      s->leak_since = now;
      s->leak_reported = 0;
      atomic_store_explicit(&s->held_since_ms, now_ms, RELAXED);
      continue;
    }
    if (limit > 0 && !s->leak_reported && now - s->leak_since >= limit) {
      const char *file = atomic_load_explicit(&s->claim_file, RELAXED);
      int line = atomic_load_explicit(&s->claim_line, RELAXED);
      s->leak_reported = 1;
      atomic_fetch_add(&p->leaks, 1);
      QORB_PROBE(CLAIM_HELD_TOO_LONG, p->name, (uint64_t)s->index,
                 s->backend->addr.text, file ? file : "?", line,
                 (uint64_t)((now - s->leak_since) * 1000.));
      qorb__pool_log(p, QORB_LOG_WARN,
               "possible leak: connection %u to %s claimed at %s:%d held "
               "over %u ms",
               s->index, s->backend->addr.text, file ? file : "?", line,
               p->policy.leak_threshold_ms);
    }
  }
}

void qorb__leak_timer_init(qorb_pool_t *p) {
  double iv = STATS_TICK;
  if (p->policy.leak_threshold_ms > 0 &&
      qorb__ms(p->policy.leak_threshold_ms) / 4 < iv)
    iv = qorb__ms(p->policy.leak_threshold_ms) / 4;
  if (iv < 0.01) iv = 0.01;
  ev_timer_init(&p->leak_timer, leak_timer_cb, iv, iv);
  p->leak_timer.data = p;
  ev_timer_start(p->loop, &p->leak_timer);
}

/* ---------------------------------------------------------------------- */
/* Counting                                                                */

/* A 1-2.5-5 series from 10 us to 10 s, then +Inf. */
static const uint64_t wait_le_ns[QORB_WAIT_BUCKETS - 1] = {
    10000ull,      25000ull,      50000ull,      100000ull,     250000ull,
    500000ull,     1000000ull,    2500000ull,    5000000ull,    10000000ull,
    25000000ull,   50000000ull,   100000000ull,  250000000ull,  500000000ull,
    1000000000ull, 2500000000ull, 5000000000ull, 10000000000ull};

uint64_t qorb_wait_bucket_le_ns(unsigned i) {
  return i < QORB_WAIT_BUCKETS - 1 ? wait_le_ns[i] : UINT64_MAX;
}

void qorb__count_wait(qorb_pool_t *p, uint64_t ns) {
  unsigned i = 0;
  uint64_t max = atomic_load_explicit(&p->wait_ns_max, RELAXED);
  if (!QORB__FIGURES) return;
  while (i < QORB_WAIT_BUCKETS - 1 && ns > wait_le_ns[i]) i++;
  atomic_fetch_add_explicit(&p->wait_hist[i], 1, RELAXED);
  atomic_fetch_add_explicit(&p->wait_ns_total, ns, RELAXED);
  atomic_fetch_add_explicit(&p->waited, 1, RELAXED);
  while (ns > max && !atomic_compare_exchange_weak_explicit(
                         &p->wait_ns_max, &max, ns, RELAXED, RELAXED)) {
  }
}

void qorb__count_failure(qorb_pool_t *p, int rc) {
  unsigned r;
  switch (rc) {
  case QORB_ETIMEDOUT:
  case QORB_EALLINUSE:
  case QORB_EAGAIN:
    r = QORB_CLAIM_FAIL_TIMEOUT;
    break;
  case QORB_ENOTONLINE:
  case QORB_ENOBACKENDS:
    r = QORB_CLAIM_FAIL_NOTONLINE;
    break;
  case QORB_EQUEUEFULL:
    r = QORB_CLAIM_FAIL_QUEUEFULL;
    break;
  case QORB_ESHUTDOWN:
    r = QORB_CLAIM_FAIL_SHUTDOWN;
    break;
  case QORB_ECANCELED:
    r = QORB_CLAIM_FAIL_CANCELED;
    break;
  default:
    r = QORB_CLAIM_FAIL_OTHER;
    break;
  }
  if (QORB__FIGURES) atomic_fetch_add_explicit(&p->failed[r], 1, RELAXED);
  atomic_fetch_add(&p->claim_failures, 1);
}

void qorb__count_close(qorb_claim_t *s) {
  qorb_pool_t *p = s->pool;
  int c = s->close_cause;
  if (!QORB__FIGURES) return;
  if (c < 0 || c >= QORB_CLOSE__COUNT) {
    if (p->closing_loop)
      c = QORB_CLOSE_POOL;
    else if (s->backend->removed)
      c = QORB_CLOSE_REMOVED;
    else if (s->retiring)
      c = QORB_CLOSE_LIFETIME;
    else
      c = QORB_CLOSE_IDLE;
  }
  s->close_cause = -1;
  atomic_fetch_add_explicit(&p->closed[c], 1, RELAXED);
  atomic_fetch_add_explicit(&s->backend->closed, 1, RELAXED);
}

static const char *const fail_names[QORB_CLAIM_FAIL__COUNT] = {
    "timeout", "not_online", "queue_full", "shutdown", "canceled", "other"};
static const char *const close_names[QORB_CLOSE__COUNT] = {
    "lifetime", "idle", "health", "broken", "recycle",
    "prepare",  "died", "removed", "pool_closed"};

const char *qorb_claim_fail_name(unsigned reason) {
  return reason < QORB_CLAIM_FAIL__COUNT ? fail_names[reason] : "?";
}

const char *qorb_close_cause_name(unsigned cause) {
  return cause < QORB_CLOSE__COUNT ? close_names[cause] : "?";
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
  uint64_t now_ns, online_ns;
  int64_t now_ms;

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
  out.waiters_due = atomic_load_explicit(&p->ndue, RELAXED);
  out.timeouts = atomic_load_explicit(&p->timeouts, RELAXED);
  out.claim_failures = atomic_load_explicit(&p->claim_failures, RELAXED);
  out.queue_full = atomic_load_explicit(&p->queue_full, RELAXED);
  out.leaks = atomic_load_explicit(&p->leaks, RELAXED);
  for (i = 0; i < p->cap; i++)
    out.claims += atomic_load_explicit(&p->slots[i].nclaims, RELAXED);
  qorb__strlcpy(out.name, p->name, sizeof(out.name));
  out.waited = atomic_load_explicit(&p->waited, RELAXED);
  out.wait_ns_total = atomic_load_explicit(&p->wait_ns_total, RELAXED);
  out.wait_ns_max = atomic_load_explicit(&p->wait_ns_max, RELAXED);
  for (i = 0; i < QORB_WAIT_BUCKETS; i++)
    out.wait_hist[i] = atomic_load_explicit(&p->wait_hist[i], RELAXED);
  for (i = 0; i < QORB_CLAIM_FAIL__COUNT; i++)
    out.failed[i] = atomic_load_explicit(&p->failed[i], RELAXED);
  out.opened = atomic_load_explicit(&p->opened, RELAXED);
  for (i = 0; i < QORB_CLOSE__COUNT; i++)
    out.closed[i] = atomic_load_explicit(&p->closed[i], RELAXED);
  now_ns = qorb__now_ns();
  now_ms = qorb__coarse_ms();
  out.uptime_ms = (int64_t)((now_ns - p->created_ns) / 1000000u);
  out.oldest_claim_ms = -1;

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
      case QORB__S_CLAIMED: {
        int64_t since = atomic_load_explicit(&s->held_since_ms, RELAXED);
        bs.claimed++;
        bs.online = 1;
        if (since != 0 && (out.oldest_claim_ms < 0 ||
                           now_ms - since > out.oldest_claim_ms)) {
          const char *file = atomic_load_explicit(&s->claim_file, RELAXED);
          out.oldest_claim_ms = now_ms > since ? now_ms - since : 0;
          snprintf(out.oldest_claim_site, sizeof(out.oldest_claim_site),
                   "%s:%d", file != NULL ? file : "?",
                   atomic_load_explicit(&s->claim_line, RELAXED));
          out.oldest_claim_backend = b->addr;
        }
        break;
      }
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
    bs.connect_failures = atomic_load_explicit(&b->connect_failures, RELAXED);
    bs.closed = atomic_load_explicit(&b->closed, RELAXED);
    online_ns = atomic_load_explicit(&b->online_ns, RELAXED);
    bs.online_ms = online_ns == 0 ? -1
                                  : (int64_t)((now_ns - online_ns) / 1000000u);
    bs.last_error_age_ms =
        b->last_error_ns == 0
            ? -1
            : (int64_t)((now_ns - b->last_error_ns) / 1000000u);
    /* Current: it is offline, or it failed after it last came online. */
    bs.last_error_current =
        b->last_error_ns != 0 &&
        (online_ns == 0 || b->last_error_ns >= online_ns);
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
