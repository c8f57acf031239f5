/* SPDX-License-Identifier: MIT */
/*
 * dns_lookup.c: one lookup, and what its answers do to the backend set.
 *
 * A lookup is the SRV query and then one address query per target (SRV
 * mode), or one address query (host mode). When its last query is done the
 * outcome decides:
 *   - failed (timeouts, refusals, server failures on every server; or every
 *     target failed): nothing changes; ask again soon, backing off.
 *   - empty (no such name, or no usable record): the first time, nothing
 *     changes and we ask again at the minimum interval; when a second
 *     lookup confirms it, the set is emptied.
 *   - answered: the new set is what was found, plus the backends of
 *     targets whose own query failed (kept as they were), plus backends
 *     that the answer no longer lists but whose TTL has not run out yet.
 * The next lookup comes before the smallest TTL runs out, within
 * [min_interval_ms, max_interval_ms].
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dns_int.h"

static void dns_lookup_finish(dns_resolver_t *d);

static void dns_schedule(dns_resolver_t *d, uint64_t ms) {
  if (ms < d->o.min_interval_ms) ms = d->o.min_interval_ms;
  if (ms > d->o.max_interval_ms) ms = d->o.max_interval_ms;
  ev_timer_stop(d->loop, &d->next);
  ev_timer_set(&d->next, (double)ms / 1000., 0.);
  ev_timer_start(d->loop, &d->next);
  qorb__dns_report(d);
}

/* How long a record with this TTL (seconds; 0 = none given) keeps its
 * backend: the TTL, at least one minimum interval, plus the time one
 * lookup may take over every server. */
static uint64_t dns_lifetime_ms(const dns_resolver_t *d, unsigned ttl) {
  uint64_t ms = ttl == 0 ? d->o.max_interval_ms : (uint64_t)ttl * 1000u;
  if (ms < d->o.min_interval_ms) ms = d->o.min_interval_ms;
  return ms + (uint64_t)d->o.query_timeout_ms * d->o.tries * d->nservers;
}

/* Add a backend to `found` (a duplicate keeps the longer life). */
static void dns_found_add(dns_resolver_t *d, const qorb_addr_t *a,
                          const char *target, uint64_t expires) {
  for (unsigned i = 0; i < d->nfound; i++) {
    if (qorb_addr_equal(&d->found[i].addr, a)) {
      if (expires > d->found[i].expires_ms) d->found[i].expires_ms = expires;
      return;
    }
  }
  if (d->nfound == d->o.max_backends) {
    qorb__dns_log(d, QORB_LOG_WARN, "%s: skipping %s: over max_backends %u",
                  d->o.name, a->text, d->o.max_backends);
    return;
  }
  d->found[d->nfound].addr = *a;
  snprintf(d->found[d->nfound].target, DNS_NAME_MAX, "%s", target);
  d->found[d->nfound].expires_ms = expires;
  d->nfound++;
}

/* --- answers ------------------------------------------------------------ */

/* The SRV answer: one address query per usable target. */
static void dns_srv_answer(dns_resolver_t *d, dns_query_t *q,
                           const unsigned char *abuf, int alen) {
  struct ares_srv_reply *srv = NULL, *r;
  unsigned ttl = 0, records = 0;
  int rc;

  rc = ares_parse_srv_reply(abuf, alen, &srv);
  if (rc != ARES_SUCCESS) {
    q->outcome = rc == ARES_ENODATA ? DNS_EMPTY : DNS_FAIL;
    q->status = rc;
    qorb__dns_log(d, QORB_LOG_WARN, "%s: unusable SRV answer: %s", q->name,
                  ares_strerror(rc));
    return;
  }
  if (qorb__dns_answer_ttl(abuf, alen, 33, &ttl) != 0)
    qorb__dns_log(d, QORB_LOG_WARN, "%s: no SRV TTL in the answer", q->name);
  for (r = srv; r != NULL && records < DNS_MAX_RECORDS; r = r->next) {
    dns_query_t *t;
    unsigned i, dup = 0;

    records++;
    if (r->port == 0 || qorb__dns_check_name(r->host, 1) != 0) {
      qorb__dns_log(d, QORB_LOG_WARN, "%s: skipping target \"%.64s\" port "
                    "%u: %s", q->name, r->host, r->port,
                    r->port == 0 ? "port 0" : "malformed name");
      continue;
    }
    for (i = 1; i < d->nq; i++)
      if (d->q[i].port == r->port && strcasecmp(d->q[i].name, r->host) == 0)
        dup = 1;
    if (dup) continue;
    if (d->nq == 1 + DNS_MAX_TARGETS) {
      qorb__dns_log(d, QORB_LOG_WARN, "%s: more than %d targets; skipping "
                    "the rest", q->name, DNS_MAX_TARGETS);
      break;
    }
    t = &d->q[d->nq++];
    memset(t, 0, sizeof(*t));
    t->d = d;
    t->kind = DNS_Q_ADDR;
    t->gen = d->gen;
    snprintf(t->name, sizeof(t->name), "%s", r->host);
    t->port = r->port;
    t->srv_ttl = ttl;
    d->pending++;
  }
  ares_free_data(srv);
  if (d->nq == 1) q->outcome = DNS_EMPTY; /* nothing usable */
  qorb__dns_log(d, QORB_LOG_DEBUG, "%s: %u SRV records, %u targets, TTL %u",
                q->name, records, d->nq - 1, ttl);
  /* Send after the list is complete: a callback may run inside a send. */
  for (unsigned i = 1, n = d->nq; i < n; i++) qorb__dns_query_send(&d->q[i]);
}

/* An address answer: its backends, with their TTL (and the SRV's). */
static void dns_addr_answer(dns_resolver_t *d, dns_query_t *q,
                            const struct ares_addrinfo *ai) {
  const struct ares_addrinfo_node *n;
  unsigned count = 0;

  for (n = ai != NULL ? ai->nodes : NULL; n != NULL; n = n->ai_next) {
    char host[INET6_ADDRSTRLEN];
    const void *src;
    qorb_addr_t a;
    unsigned ttl = n->ai_ttl > 0 ? (unsigned)n->ai_ttl : 0;

    if (n->ai_family == AF_INET)
      src = &((const struct sockaddr_in *)(const void *)n->ai_addr)->sin_addr;
    else if (n->ai_family == AF_INET6)
      src = &((const struct sockaddr_in6 *)(const void *)n->ai_addr)
                 ->sin6_addr;
    else
      continue;
    if (inet_ntop(n->ai_family, src, host, sizeof(host)) == NULL ||
        qorb_addr_set(&a, host, q->port) != 0)
      continue;
    if (d->srv && q->srv_ttl != 0 && (ttl == 0 || q->srv_ttl < ttl))
      ttl = q->srv_ttl;
    if (ttl != 0 && ttl < d->min_ttl) d->min_ttl = ttl;
    dns_found_add(d, &a, q->name, qorb__dns_now_ms(d) + dns_lifetime_ms(d, ttl));
    count++;
  }
  if (count == 0) q->outcome = DNS_EMPTY;
}

/* One query is done (on some server, or on none). */
void qorb__dns_query_done(dns_query_t *q, const unsigned char *abuf,
                          int alen, struct ares_addrinfo *ai) {
  dns_resolver_t *d = q->d;

  if (q->outcome == DNS_OK) {
    if (q->kind == DNS_Q_SRV)
      dns_srv_answer(d, q, abuf, alen);
    else
      dns_addr_answer(d, q, ai);
  }
  if (q->outcome == DNS_EMPTY && q->kind == DNS_Q_ADDR)
    qorb__dns_log(d, QORB_LOG_WARN, "%s: target %s has no address%s",
                  d->o.name, q->name, d->srv ? "; skipping it" : "");
  if (q->outcome == DNS_FAIL && q->kind == DNS_Q_ADDR && d->srv)
    qorb__dns_log(d, QORB_LOG_WARN, "%s: target %s failed: %s; keeping its "
                  "backends", d->o.name, q->name, ares_strerror(q->status));
  if (--d->pending == 0) dns_lookup_finish(d);
}

/* --- the lookup --------------------------------------------------------- */

void qorb__dns_lookup_start(dns_resolver_t *d) {
  dns_query_t *q = &d->q[0];

  if (d->busy || !d->running) return;
  d->busy = 1;
  d->gen++;
  d->nfound = 0;
  d->min_ttl = UINT32_MAX;
  qorb__dns_server_order(d);
  memset(q, 0, sizeof(*q));
  q->d = d;
  q->gen = d->gen;
  q->kind = d->srv ? DNS_Q_SRV : DNS_Q_ADDR;
  snprintf(q->name, sizeof(q->name), "%s", d->srv ? d->o.name : d->host);
  q->port = d->port;
  d->nq = 1;
  d->pending = 2; /* the query, and this call until it has sent it */
  DNS_PROBE2(resolve__start, d->o.name, d->nservers);
  qorb__dns_log(d, QORB_LOG_DEBUG, "lookup of %s", d->o.name);
  qorb__dns_report(d);
  qorb__dns_query_send(q);
  if (--d->pending == 0) dns_lookup_finish(d);
}

static int dns_set_has(const dns_entry_t *set, unsigned n,
                       const qorb_addr_t *a) {
  for (unsigned i = 0; i < n; i++)
    if (qorb_addr_equal(&set[i].addr, a)) return 1;
  return 0;
}

/* Did the target of an entry fail its query in this lookup? */
static int dns_target_failed(const dns_resolver_t *d, const dns_entry_t *e) {
  for (unsigned i = 1; i < d->nq; i++)
    if (d->q[i].outcome == DNS_FAIL && strcasecmp(d->q[i].name, e->target) == 0)
      return 1;
  return 0;
}

/* The lookup's outcome as a whole. */
static dns_outcome_t dns_lookup_outcome(const dns_resolver_t *d) {
  unsigned failed = 0;

  if (d->q[0].outcome != DNS_OK || !d->srv) return d->q[0].outcome;
  for (unsigned i = 1; i < d->nq; i++) failed += d->q[i].outcome == DNS_FAIL;
  if (failed > 0 && failed == d->nq - 1) return DNS_FAIL;
  return d->nfound == 0 && failed == 0 ? DNS_EMPTY : DNS_OK;
}

/* Report `found` as the new set if it differs from the one reported. */
static void dns_install(dns_resolver_t *d) {
  unsigned i, same = (unsigned)(d->nfound == d->nset);
  dns_entry_t *t;
  int rc;

  for (i = 0; same && i < d->nfound; i++)
    same = (unsigned)dns_set_has(d->set, d->nset, &d->found[i].addr);
  t = d->set; /* the new set becomes current either way (new expiries) */
  d->set = d->found;
  d->found = t;
  unsigned old = d->nset;
  d->nset = d->nfound;
  d->nfound = 0;
  if (same && !d->unreported) return;

  for (i = 0; i < d->nset; i++) d->addrs[i] = d->set[i].addr;
  rc = qorb_resolver_update(d->r, d->addrs, d->nset);
  if (rc != 0) {
    d->unreported = 1;
    qorb__dns_error(d, rc, "%s: the pool did not take the new set: %s",
                    d->o.name, qorb_strerror(rc));
    return;
  }
  d->unreported = 0;
  d->changes++;
  DNS_PROBE3(backends__changed, d->o.name, old, d->nset);
  char list[512];
  size_t off = 0;
  list[0] = '\0';
  for (i = 0; i < d->nset && off < sizeof(list) - 1; i++) {
    int w = snprintf(list + off, sizeof(list) - off, "%s%s", i ? " " : "",
                     d->set[i].addr.text);
    if (w < 0) break;
    off += (size_t)w;
  }
  if (off >= sizeof(list)) off = sizeof(list) - 1;
  qorb__dns_log(d, QORB_LOG_INFO, "%s: %u backends (was %u): %s", d->o.name,
                d->nset, old, list);
}

static void dns_lookup_finish(dns_resolver_t *d) {
  uint64_t now = qorb__dns_now_ms(d), next;
  dns_outcome_t out = dns_lookup_outcome(d);
  unsigned i, shift;

  d->busy = 0;
  if (out == DNS_FAIL) {
    int st = d->q[0].outcome == DNS_FAIL ? d->q[0].status : d->q[1].status;
    d->failures++;
    d->fail_streak++;
    d->nfound = 0;
    qorb__dns_error(d, st == ARES_ENOMEM ? QORB_ENOMEM : QORB_ETIMEDOUT,
                    "%s: lookup failed: %s; keeping %u backends", d->o.name,
                    ares_strerror(st), d->nset);
    DNS_PROBE3(resolve__failed, d->o.name, st, ares_strerror(st));
    shift = d->fail_streak - 1 > 16 ? 16 : d->fail_streak - 1;
    dns_schedule(d, (uint64_t)d->o.min_interval_ms << shift);
    return;
  }
  d->fail_streak = 0;
  DNS_PROBE2(resolve__done, d->o.name, d->nfound);
  if (out == DNS_EMPTY) {
    d->empty_streak++;
    d->nfound = 0;
    if (d->empty_streak == 1 && d->nset > 0) {
      qorb__dns_log(d, QORB_LOG_WARN, "%s: no records; asking again before "
                    "removing %u backends", d->o.name, d->nset);
    } else {
      dns_install(d);
      qorb__dns_log(d, QORB_LOG_INFO, "%s: no records", d->o.name);
    }
    dns_schedule(d, d->o.min_interval_ms);
    return;
  }
  d->empty_streak = 0;
  next = d->min_ttl == UINT32_MAX ? d->o.max_interval_ms
                                  : (uint64_t)d->min_ttl * 750u;
  /* Keep what failed to resolve, and what is gone but not yet expired. */
  for (i = 0; i < d->nset; i++) {
    dns_entry_t *e = &d->set[i];
    int failed = dns_target_failed(d, e);
    if (dns_set_has(d->found, d->nfound, &e->addr)) continue;
    if (!failed && e->expires_ms <= now) {
      qorb__dns_log(d, QORB_LOG_INFO, "%s: %s expired", d->o.name,
                    e->addr.text);
      continue;
    }
    if (!failed && e->expires_ms - now < next) next = e->expires_ms - now;
    dns_found_add(d, &e->addr, e->target, e->expires_ms);
  }
  qorb__dns_log(d, QORB_LOG_DEBUG, "%s: answer: %u backends", d->o.name,
                d->nfound);
  dns_install(d);
  dns_schedule(d, d->nset == 0 || d->unreported ? d->o.min_interval_ms
                                                : next);
}
