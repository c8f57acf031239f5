/* SPDX-License-Identifier: MIT */
/*
 * resolver_merge.c: one resolver over several (qorb_resolver_merge_new()).
 * A pool takes one resolver, but a connection string may name several
 * hosts, each found its own way (a DNS lookup per host name, a static list
 * for numeric addresses). The merged resolver starts its parts with the
 * pool's pointer, so that each finds the pool loop as it would on its own;
 * their reports come here instead of to the pool (backend.c sends a report
 * from a resolver that is not the pool's own to qorb__merge_part_*()), and
 * each time one part's set changes, the union of all the parts' latest
 * sets goes to the pool. A part that has not reported yet adds nothing;
 * one that failed keeps its last set, as it would alone. Loop thread.
 */
#include <stdio.h>
#include <string.h>

#include "private.h"
#include "resolver_merge.h"

typedef struct merge_part {
  qorb_resolver_t *r;       /* owned */
  qorb_addr_t *addrs;       /* its last set (owned; NULL when empty) */
  size_t n;
  qorb_resolver_stats_t st; /* its last figures */
  uint64_t st_ns;           /* when they came (qorb__now_ns); 0: none */
} merge_part_t;

typedef struct merge {
  qorb_resolver_t *self;
  merge_part_t *parts;
  size_t nparts;
  size_t nunion;    /* backends in the last union the pool took */
  uint64_t changes; /* unions the pool took */
} merge_t;

static int merge_start(void *ctx, qorb_resolver_t *r);
static void merge_stop(void *ctx);
static void merge_destroy(void *ctx);

static const qorb_resolver_ops_t merge_ops = {
    .version = QORB_RESOLVER_OPS_VERSION,
    .name = "merge",
    .start = merge_start,
    .stop = merge_stop,
    .destroy = merge_destroy,
};

static merge_t *merge_of(qorb_resolver_t *merged) {
  if (merged == NULL || qorb__resolver_ops(merged) != &merge_ops) return NULL;
  return qorb_resolver_ctx(merged);
}

static merge_part_t *merge_find(merge_t *m, const qorb_resolver_t *part) {
  size_t i;
  for (i = 0; i < m->nparts; i++)
    if (m->parts[i].r == part) return &m->parts[i];
  return NULL;
}

/* Sum the parts' figures for the pool's stats snapshot. Each part's ages
   and times are moved on by how long ago it reported them. */
static void merge_report(merge_t *m) {
  qorb_resolver_stats_t agg;
  uint64_t now = qorb__now_ns();
  size_t i, len = 0;

  if (!m->self->started) return;
  qorb_resolver_stats_init(&agg);
  snprintf(agg.kind, sizeof(agg.kind), "%s", merge_ops.name);
  for (i = 0; i < m->nparts; i++) {
    const merge_part_t *mp = &m->parts[i];
    const char *name = mp->st_ns != 0 && mp->st.name[0] != '\0'
                           ? mp->st.name
                           : qorb__resolver_ops(mp->r)->name;
    int64_t el;
    if (len < sizeof(agg.name))
      len += (size_t)snprintf(agg.name + len, sizeof(agg.name) - len, "%s%s",
                              i > 0 ? "," : "", name ? name : "");
    if (mp->st_ns == 0) continue;
    el = (int64_t)((now - mp->st_ns) / 1000000u);
    agg.queries += mp->st.queries;
    agg.failures += mp->st.failures;
    if (mp->st.last_error != 0 && mp->st.last_error_age_ms >= 0 &&
        (agg.last_error_age_ms < 0 ||
         mp->st.last_error_age_ms + el < agg.last_error_age_ms)) {
      agg.last_error = mp->st.last_error;
      memcpy(agg.last_error_text, mp->st.last_error_text,
             sizeof(agg.last_error_text));
      agg.last_error_age_ms = mp->st.last_error_age_ms + el;
    }
    if (mp->st.next_query_ms >= 0) {
      int64_t next = mp->st.next_query_ms > el ? mp->st.next_query_ms - el : 0;
      if (agg.next_query_ms < 0 || next < agg.next_query_ms)
        agg.next_query_ms = next;
    }
    if (mp->st.servers > agg.servers) agg.servers = mp->st.servers;
    if (mp->st.servers_failing > agg.servers_failing)
      agg.servers_failing = mp->st.servers_failing;
  }
  agg.changes = m->changes;
  agg.backends = (unsigned)m->nunion;
  (void)qorb_resolver_report(m->self, &agg);
}

/* Report the union of the parts' sets, each address once. */
static int merge_union(merge_t *m) {
  qorb_addr_t *all = NULL;
  size_t i, j, k = 0, total = 0;
  int rc;

  for (i = 0; i < m->nparts; i++) total += m->parts[i].n;
  if (total > 0) {
    all = qorb__calloc(total, sizeof(*all));
    if (all == NULL) return QORB_ENOMEM;
  }
  for (i = 0; i < m->nparts; i++) {
    const merge_part_t *mp = &m->parts[i];
    for (j = 0; j < mp->n; j++) {
      size_t d;
      for (d = 0; d < k && !qorb_addr_equal(&all[d], &mp->addrs[j]); d++) {
      }
      if (d == k) all[k++] = mp->addrs[j];
    }
  }
  rc = qorb_resolver_update(m->self, all, k);
  qorb__free(all);
  if (rc == 0) {
    m->nunion = k;
    m->changes++;
    merge_report(m);
  }
  return rc;
}

int qorb__merge_part_update(qorb_resolver_t *merged, qorb_resolver_t *part,
                            const qorb_addr_t *addrs, size_t n) {
  merge_t *m = merge_of(merged);
  merge_part_t *mp = m != NULL ? merge_find(m, part) : NULL;
  qorb_addr_t *copy = NULL;

  if (mp == NULL || !merged->started) return QORB_EBUSY;
  if (n > 0) {
    copy = qorb__calloc(n, sizeof(*copy));
    if (copy == NULL) return QORB_ENOMEM;
    memcpy(copy, addrs, n * sizeof(*copy));
  }
  qorb__free(mp->addrs);
  mp->addrs = copy;
  mp->n = n;
  return merge_union(m);
}

int qorb__merge_part_report(qorb_resolver_t *merged, qorb_resolver_t *part,
                            const qorb_resolver_stats_t *st) {
  merge_t *m = merge_of(merged);
  merge_part_t *mp = m != NULL ? merge_find(m, part) : NULL;

  if (mp == NULL || !merged->started) return QORB_EBUSY;
  mp->st = *st;
  mp->st_ns = qorb__now_ns();
  merge_report(m);
  return 0;
}

/* Stop the first `n` parts and forget what they reported. */
static void merge_stop_parts(merge_t *m, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    merge_part_t *mp = &m->parts[i];
    qorb__resolver_stop(mp->r);
    mp->r->pool = NULL;
    qorb__free(mp->addrs);
    mp->addrs = NULL;
    mp->n = 0;
    mp->st_ns = 0;
  }
  m->nunion = 0;
}

static int merge_start(void *ctx, qorb_resolver_t *r) {
  merge_t *m = ctx;
  size_t i;

  m->self = r;
  for (i = 0; i < m->nparts; i++) {
    int rc = qorb__resolver_start(m->parts[i].r, r->pool);
    if (rc < 0) {
      merge_stop_parts(m, i + 1);
      return rc;
    }
  }
  return 0;
}

static void merge_stop(void *ctx) {
  merge_t *m = ctx;
  merge_stop_parts(m, m->nparts);
}

static void merge_destroy(void *ctx) {
  merge_t *m = ctx;
  size_t i;
  for (i = 0; i < m->nparts; i++) {
    m->parts[i].r->pool = NULL;
    qorb_resolver_free(m->parts[i].r);
    qorb__free(m->parts[i].addrs);
  }
  qorb__free(m->parts);
  qorb__free(m);
}

int qorb_resolver_merge_new(qorb_resolver_t **out,
                            qorb_resolver_t *const *parts, size_t n) {
  merge_t *m;
  size_t i, j;
  int rc;

  if (out == NULL) return QORB_EINVAL;
  *out = NULL;
  if (parts == NULL || n == 0) return QORB_EINVAL;
  for (i = 0; i < n; i++) {
    if (parts[i] == NULL || parts[i]->pool != NULL || parts[i]->started ||
        parts[i]->ops == &merge_ops)
      return QORB_EINVAL;
    for (j = 0; j < i; j++)
      if (parts[j] == parts[i]) return QORB_EINVAL;
  }
  m = qorb__calloc(1, sizeof(*m));
  if (m == NULL) return QORB_ENOMEM;
  m->parts = qorb__calloc(n, sizeof(*m->parts));
  if (m->parts == NULL) {
    qorb__free(m);
    return QORB_ENOMEM;
  }
  m->nparts = n;
  for (i = 0; i < n; i++) m->parts[i].r = parts[i];
  rc = qorb_resolver_new(out, &merge_ops, m);
  if (rc != 0) {
    /* The parts stay the caller's. */
    qorb__free(m->parts);
    qorb__free(m);
    return rc;
  }
  m->self = *out;
  return 0;
}
