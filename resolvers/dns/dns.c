/* SPDX-License-Identifier: MIT */
/*
 * dns.c: the DNS resolver's options, its public calls and its resolver ops.
 * start() runs the first lookup and stop() silences every watcher; the
 * lookups themselves are in dns_lookup.c and the servers in dns_server.c.
 * Everything runs on the pool loop; nothing here blocks (c-ares reads
 * /etc/resolv.conf once, when the resolver is made).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "dns_int.h"

/* --- helpers shared by the other files ---------------------------------- */

uint64_t qorb__dns_now_ms(const dns_resolver_t *d) {
  return d->loop != NULL ? (uint64_t)(ev_now(d->loop) * 1000.) : 0;
}

static void dns_vlog(dns_resolver_t *d, qorb_log_level_t level,
                     const char *fmt, va_list ap) {
  char msg[640];

  if (d->o.log_cb == NULL) return;
  vsnprintf(msg, sizeof(msg), fmt, ap);
  d->o.log_cb(d->o.name, level, msg, d->o.log_arg);
}

void qorb__dns_log(dns_resolver_t *d, qorb_log_level_t level,
                   const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  dns_vlog(d, level, fmt, ap);
  va_end(ap);
}

/* Record a failure for the stats, and log it. */
void qorb__dns_error(dns_resolver_t *d, int code, const char *fmt, ...) {
  va_list ap;

  d->last_error = code;
  d->last_error_ms = qorb__dns_now_ms(d) + 1; /* 0 means none */
  va_start(ap, fmt);
  vsnprintf(d->last_error_text, sizeof(d->last_error_text), fmt, ap);
  va_end(ap);
  va_start(ap, fmt);
  dns_vlog(d, QORB_LOG_WARN, fmt, ap);
  va_end(ap);
}

/* --- options ------------------------------------------------------------ */

void qorb_dns_options_init_(qorb_dns_options_t *o, size_t size) {
  if (o == NULL || size < sizeof(size_t)) return;
  qorb_dns_options_t def;
  memset(&def, 0, sizeof(def));
  def.size = size < sizeof(def) ? size : sizeof(def);
  def.families = QORB_DNS_INET | QORB_DNS_INET6;
  def.min_interval_ms = 1000;
  def.max_interval_ms = 300000;
  def.query_timeout_ms = 2000;
  def.tries = 2;
  def.max_backends = 256;
  memcpy(o, &def, def.size);
}

void qorb_dns_stats_init_(qorb_dns_stats_t *st, size_t size) {
  if (st == NULL || size < sizeof(size_t)) return;
  memset(st, 0, size < sizeof(*st) ? size : sizeof(*st));
  st->size = size < sizeof(*st) ? size : sizeof(*st);
}

static int dns_bad(char *err, size_t errlen, int code, const char *msg) {
  if (err != NULL && errlen > 0) snprintf(err, errlen, "%s", msg);
  return code;
}

/* The caller's options over the defaults (a shorter, older struct gets the
 * defaults of the fields it lacks). */
static int dns_options_copy(const qorb_dns_options_t *o,
                            qorb_dns_options_t *out) {
  if (o == NULL || o->size < offsetof(qorb_dns_options_t, log_cb))
    return QORB_EINVAL;
  qorb_dns_options_init(out);
  memcpy(out, o, o->size < sizeof(*out) ? o->size : sizeof(*out));
  out->size = sizeof(*out);
  return 0;
}

int qorb_dns_options_validate(const qorb_dns_options_t *in, char *err,
                              size_t errlen) {
  qorb_dns_options_t o;
  char host[DNS_NAME_MAX], msg[256];
  uint16_t port;
  int srv;

  if (err != NULL && errlen > 0) err[0] = '\0';
  if (dns_options_copy(in, &o) != 0)
    return dns_bad(err, errlen, QORB_EINVAL,
                   "options: NULL, or not set up by qorb_dns_options_init()");
  if (o.name == NULL || o.name[0] == '\0')
    return dns_bad(err, errlen, QORB_EBADADDR, "name: required");
  if (qorb__dns_parse_name(o.name, host, sizeof(host), &port, &srv) != 0) {
    snprintf(msg, sizeof(msg), "name \"%.64s%s\": want \"host:port\" (port "
             "1-65535, IPv6 in brackets) or an SRV name like "
             "\"_pg._tcp.db.example.\"", o.name,
             strlen(o.name) > 64 ? "..." : "");
    return dns_bad(err, errlen, QORB_EBADADDR, msg);
  }
  if (o.servers != NULL) {
    qorb_addr_t a[QORB_DNS_MAX_SERVERS];
    unsigned n;
    int rc = qorb__dns_parse_servers(o.servers, a, QORB_DNS_MAX_SERVERS, &n,
                                     msg, sizeof(msg));
    if (rc != 0) return dns_bad(err, errlen, rc, msg);
  }
  if (o.families == 0 || (o.families & ~(QORB_DNS_INET | QORB_DNS_INET6)))
    return dns_bad(err, errlen, QORB_ECONFIG,
                   "families: QORB_DNS_INET, QORB_DNS_INET6 or both");
  if (o.min_interval_ms == 0)
    return dns_bad(err, errlen, QORB_ECONFIG, "min_interval_ms: must be > 0");
  if (o.min_interval_ms > o.max_interval_ms)
    return dns_bad(err, errlen, QORB_ECONFIG,
                   "min_interval_ms exceeds max_interval_ms");
  if (o.query_timeout_ms == 0 || o.query_timeout_ms > 600000)
    return dns_bad(err, errlen, QORB_ECONFIG,
                   "query_timeout_ms: 1 to 600000");
  if (o.tries == 0 || o.tries > 16)
    return dns_bad(err, errlen, QORB_ECONFIG, "tries: 1 to 16");
  if (o.max_backends == 0 || o.max_backends > 4096)
    return dns_bad(err, errlen, QORB_ECONFIG, "max_backends: 1 to 4096");
  return 0;
}

/* --- resolver ops ------------------------------------------------------- */

static void dns_next_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  qorb__dns_lookup_start(w->data);
}

static int dns_start(void *ctx, qorb_resolver_t *r) {
  dns_resolver_t *d = ctx;

  d->r = r;
  d->loop = qorb_resolver_loop(r);
  if (d->loop == NULL) return QORB_EINVAL;
  d->running = 1;
  /* A numeric or /etc/hosts name is answered inside this call. */
  qorb__dns_lookup_start(d);
  return 0;
}

static void dns_stop(void *ctx) {
  dns_resolver_t *d = ctx;

  if (!d->running) return;
  /* The channels stay until destroy: stop may run inside a c-ares
   * callback, where ares_destroy() must not. Their late callbacks see
   * `running` 0 and do nothing. */
  d->running = 0;
  ev_timer_stop(d->loop, &d->next);
  for (unsigned i = 0; i < d->nservers; i++) {
    dns_server_t *s = &d->servers[i];
    ev_timer_stop(d->loop, &s->timer);
    for (unsigned j = 0; j < DNS_MAX_SOCKS; j++)
      if (s->fd[j] != ARES_SOCKET_BAD) ev_io_stop(d->loop, &s->io[j]);
  }
}

static void dns_destroy(void *ctx) {
  dns_resolver_t *d = ctx;

  d->running = 0;
  qorb__dns_servers_destroy(d);
  if (d->library_init) ares_library_cleanup();
  d->magic = 0;
  qorb_free(d->q);
  qorb_free(d->found);
  qorb_free(d->set);
  qorb_free(d->addrs);
  qorb_free(d->servers_text);
  qorb_free(d);
}

static const qorb_resolver_ops_t dns_ops = {
    QORB_RESOLVER_OPS_VERSION, "dns", dns_start, dns_stop, dns_destroy,
};

/* --- public ------------------------------------------------------------- */

int qorb_dns_resolver_new(qorb_resolver_t **out, const qorb_dns_options_t *o,
                          char *err, size_t errlen) {
  dns_resolver_t *d;
  char dummy[8];
  int rc;

  if (err == NULL || errlen == 0) {
    err = dummy;
    errlen = sizeof(dummy);
  }
  if (out == NULL)
    return dns_bad(err, errlen, QORB_EINVAL, "out: NULL");
  rc = qorb_dns_options_validate(o, err, errlen);
  if (rc != 0) return rc;

  d = qorb_calloc(1, sizeof(*d));
  if (d == NULL) return dns_bad(err, errlen, QORB_ENOMEM, "out of memory");
  d->magic = DNS_MAGIC;
  dns_options_copy(o, &d->o);
  snprintf(d->name, sizeof(d->name), "%s", o->name);
  d->o.name = d->name;
  qorb__dns_parse_name(d->name, d->host, sizeof(d->host), &d->port, &d->srv);
  ev_timer_init(&d->next, dns_next_cb, 1., 0.);
  d->next.data = d;

  rc = QORB_ENOMEM;
  if (o->servers != NULL) {
    d->servers_text = qorb_strdup(o->servers);
    if (d->servers_text == NULL) goto fail;
  }
  d->o.servers = d->servers_text;
  d->q = qorb_calloc(1 + DNS_MAX_TARGETS, sizeof(*d->q));
  d->found = qorb_calloc(d->o.max_backends, sizeof(*d->found));
  d->set = qorb_calloc(d->o.max_backends, sizeof(*d->set));
  d->addrs = qorb_calloc(d->o.max_backends, sizeof(*d->addrs));
  if (d->q == NULL || d->found == NULL || d->set == NULL || d->addrs == NULL)
    goto fail;
  /* c-ares allocates through qorb's allocator too. */
  rc = ares_library_init_mem(ARES_LIB_INIT_ALL, qorb_malloc, qorb_free,
                             qorb_realloc);
  if (rc != ARES_SUCCESS) {
    rc = rc == ARES_ENOMEM ? QORB_ENOMEM : QORB_ECONFIG;
    goto fail;
  }
  d->library_init = 1;
  rc = qorb__dns_servers_init(d, err, errlen);
  if (rc != 0) goto fail;
  rc = qorb_resolver_new(out, &dns_ops, d);
  if (rc != 0) goto fail;
  return 0;

fail:
  if (err[0] == '\0' || rc == QORB_ENOMEM)
    snprintf(err, errlen, "%s", qorb_strerror(rc));
  dns_destroy(d);
  return rc;
}

/* The resolver's figures now. Loop. */
static void dns_stats_fill(const dns_resolver_t *d, qorb_dns_stats_t *s) {
  uint64_t now = qorb__dns_now_ms(d);

  memset(s, 0, sizeof(*s));
  s->size = sizeof(*s);
  s->queries = d->queries;
  s->failures = d->failures;
  s->changes = d->changes;
  s->last_error = d->last_error;
  snprintf(s->last_error_text, sizeof(s->last_error_text), "%s",
           d->last_error_text);
  s->last_error_age_ms =
      d->last_error_ms == 0 ? -1 : (int64_t)(now + 1 - d->last_error_ms);
  s->backends = d->nset;
  if (!d->running)
    s->next_query_ms = -1;
  else if (d->busy)
    s->next_query_ms = 0;
  else
    s->next_query_ms =
        (int64_t)(ev_timer_remaining(d->loop, (ev_timer *)&d->next) * 1000.);
  s->nservers = d->nservers;
  for (unsigned i = 0; i < d->nservers; i++) {
    snprintf(s->servers[i].addr, sizeof(s->servers[i].addr), "%s",
             d->servers[i].text);
    s->servers[i].queries = d->servers[i].queries;
    s->servers[i].failures = d->servers[i].failures;
    s->servers[i].consecutive_failures = d->servers[i].consecutive;
  }
}

/* Give the pool the figures for its stats snapshot: after every change of
 * state (a lookup begins, or ends and the next one is planned). Loop. */
void qorb__dns_report(dns_resolver_t *d) {
  qorb_dns_stats_t s;
  qorb_resolver_stats_t rs;

  if (!d->running || d->r == NULL) return;
  dns_stats_fill(d, &s);
  qorb_resolver_stats_init(&rs);
  snprintf(rs.name, sizeof(rs.name), "%s", d->o.name);
  rs.queries = s.queries;
  rs.failures = s.failures;
  rs.changes = s.changes;
  rs.last_error = s.last_error;
  memcpy(rs.last_error_text, s.last_error_text, sizeof(rs.last_error_text));
  rs.last_error_age_ms = s.last_error_age_ms;
  rs.backends = s.backends;
  rs.next_query_ms = s.next_query_ms;
  rs.servers = s.nservers;
  for (unsigned i = 0; i < s.nservers; i++)
    if (s.servers[i].consecutive_failures > 0) rs.servers_failing++;
  qorb_resolver_report(d->r, &rs);
}

int qorb_dns_resolver_stats(const qorb_resolver_t *r, qorb_dns_stats_t *st) {
  const dns_resolver_t *d;
  qorb_dns_stats_t s;

  if (r == NULL || st == NULL || st->size < offsetof(qorb_dns_stats_t, nservers))
    return QORB_EINVAL;
  d = qorb_resolver_ctx(r);
  if (d == NULL || d->magic != DNS_MAGIC) return QORB_EINVAL;
  dns_stats_fill(d, &s);
  s.size = st->size < sizeof(s) ? st->size : sizeof(s);
  memcpy(st, &s, s.size);
  return 0;
}
