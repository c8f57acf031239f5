/* SPDX-License-Identifier: MIT */
/*
 * dns_server.c: the DNS servers. Each server gets a c-ares channel of its
 * own, so that we know which server failed (c-ares 1.18 hides that inside a
 * channel) and can try the least failing one first. A channel lives on the
 * pool loop: ARES_OPT_SOCK_STATE_CB reports its sockets, each gets an
 * ev_io that calls ares_process_fd(), and one ev_timer, re-armed from
 * ares_timeout() after any activity, drives c-ares's timeouts.
 *
 * A query (dns_query_t) is sent to the first server of the order; when that
 * server times out, refuses or fails, it goes to the next one, and only
 * when every server failed does the query fail.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "dns_int.h"

/* --- the channel on the loop ------------------------------------------ */

static void dns_server_rearm(dns_server_t *s) {
  struct timeval tv, *tvp;

  if (!s->d->running || s->ch == NULL) return;
  ev_timer_stop(s->d->loop, &s->timer);
  tvp = ares_timeout(s->ch, NULL, &tv);
  if (tvp == NULL) return;
  ev_timer_set(&s->timer, (double)tvp->tv_sec + (double)tvp->tv_usec / 1e6,
               0.);
  ev_timer_start(s->d->loop, &s->timer);
}

static void dns_io_cb(struct ev_loop *loop, ev_io *w, int revents) {
  dns_server_t *s = w->data;
  ares_socket_t fd = w->fd;

  (void)loop;
  ares_process_fd(s->ch, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                  (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
  dns_server_rearm(s);
}

static void dns_timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  dns_server_t *s = w->data;

  (void)loop;
  (void)revents;
  ares_process_fd(s->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  dns_server_rearm(s);
}

/*
 * c-ares opened, changed or closed a socket. After stop (or before start)
 * no watcher runs, so only the table is kept up to date.
 */
static void dns_sock_state_cb(void *data, ares_socket_t fd, int readable,
                              int writable) {
  dns_server_t *s = data;
  int live = s->d->running && s->d->loop != NULL;
  int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
  unsigned i, slot = DNS_MAX_SOCKS;

  for (i = 0; i < DNS_MAX_SOCKS; i++) {
    if (s->fd[i] == fd) {
      slot = i;
      break;
    }
    if (slot == DNS_MAX_SOCKS && s->fd[i] == ARES_SOCKET_BAD) slot = i;
  }
  if (slot == DNS_MAX_SOCKS) {
    /* More sockets than one server ever needs: c-ares times the query out
     * rather than us watching an unbounded number. */
    qorb__dns_log(s->d, QORB_LOG_ERROR, "server %s: too many sockets",
                  s->text);
    return;
  }
  if (live && s->fd[slot] == fd) ev_io_stop(s->d->loop, &s->io[slot]);
  if (events == 0) {
    s->fd[slot] = ARES_SOCKET_BAD;
    return;
  }
  s->fd[slot] = fd;
  ev_io_init(&s->io[slot], dns_io_cb, fd, events);
  s->io[slot].data = s;
  if (live) ev_io_start(s->d->loop, &s->io[slot]);
}

/* --- set-up ------------------------------------------------------------ */

static int dns_ares_code(int status) {
  return status == ARES_ENOMEM ? QORB_ENOMEM : QORB_ECONFIG;
}

static int dns_channel_new(dns_resolver_t *d, dns_server_t *s, char *err,
                           size_t errlen) {
  struct ares_options ao;
  int rc;

  memset(&ao, 0, sizeof(ao));
  ao.flags = ARES_FLAG_NOSEARCH;
  ao.timeout = (int)d->o.query_timeout_ms;
  ao.tries = (int)d->o.tries;
  ao.sock_state_cb = dns_sock_state_cb;
  ao.sock_state_cb_data = s;
  ao.domains = NULL;
  ao.ndomains = 0;
  s->d = d;
  for (unsigned i = 0; i < DNS_MAX_SOCKS; i++) s->fd[i] = ARES_SOCKET_BAD;
  ev_timer_init(&s->timer, dns_timer_cb, 1., 0.);
  s->timer.data = s;
  rc = ares_init_options(&s->ch, &ao,
                         ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS |
                             ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB |
                             ARES_OPT_DOMAINS);
  if (rc != ARES_SUCCESS) {
    s->ch = NULL;
    snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
    return dns_ares_code(rc);
  }
  return 0;
}

/* Point a channel at one server, and name it. */
static int dns_channel_server(dns_server_t *s, struct ares_addr_port_node *n,
                              char *err, size_t errlen) {
  struct ares_addr_port_node one = *n;
  char host[INET6_ADDRSTRLEN];
  int rc;

  one.next = NULL;
  rc = ares_set_servers_ports(s->ch, &one);
  if (rc != ARES_SUCCESS) {
    snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
    return dns_ares_code(rc);
  }
  if (inet_ntop(n->family, &n->addr, host, sizeof(host)) == NULL)
    snprintf(host, sizeof(host), "?");
  snprintf(s->text, sizeof(s->text), n->family == AF_INET6 ? "[%s]:%d"
           : "%s:%d", host, n->udp_port != 0 ? n->udp_port : 53);
  return 0;
}

/* The servers of the options, or the system's (/etc/resolv.conf). */
int qorb__dns_servers_init(dns_resolver_t *d, char *err, size_t errlen) {
  struct ares_addr_port_node nodes[QORB_DNS_MAX_SERVERS], *list = NULL;
  struct ares_addr_port_node *n;
  unsigned count = 0, i;
  int rc;

  if (d->o.servers != NULL) {
    qorb_addr_t a[QORB_DNS_MAX_SERVERS];
    rc = qorb__dns_parse_servers(d->o.servers, a, QORB_DNS_MAX_SERVERS,
                                 &count, err, errlen);
    if (rc != 0) return rc;
    memset(nodes, 0, sizeof(nodes));
    for (i = 0; i < count; i++) {
      nodes[i].family = a[i].family;
      if (inet_pton(a[i].family, a[i].host, &nodes[i].addr) != 1)
        return QORB_EBADADDR;
      nodes[i].udp_port = nodes[i].tcp_port = a[i].port;
      nodes[i].next = i + 1 < count ? &nodes[i + 1] : NULL;
    }
  }

  rc = dns_channel_new(d, &d->servers[0], err, errlen);
  if (rc != 0) return rc;
  d->nservers = 1;
  if (d->o.servers == NULL) {
    /* The system's list, as c-ares read it into the first channel. */
    rc = ares_get_servers_ports(d->servers[0].ch, &list);
    if (rc != ARES_SUCCESS || list == NULL) {
      snprintf(err, errlen, "c-ares: no system DNS servers (%s)",
               ares_strerror(rc));
      return rc == ARES_ENOMEM ? QORB_ENOMEM : QORB_ECONFIG;
    }
    memset(nodes, 0, sizeof(nodes));
    for (n = list; n != NULL && count < QORB_DNS_MAX_SERVERS; n = n->next)
      nodes[count++] = *n;
    ares_free_data(list);
  }
  for (i = 0; i < count; i++) {
    if (i > 0) {
      rc = dns_channel_new(d, &d->servers[i], err, errlen);
      if (rc != 0) return rc;
      d->nservers = i + 1;
    }
    rc = dns_channel_server(&d->servers[i], &nodes[i], err, errlen);
    if (rc != 0) return rc;
  }
  for (i = 0; i < d->nservers; i++) d->order[i] = i;
  return 0;
}

/* Free the channels. Pending queries end with ARES_EDESTRUCTION. */
void qorb__dns_servers_destroy(dns_resolver_t *d) {
  for (unsigned i = 0; i < d->nservers; i++) {
    if (d->servers[i].ch != NULL) ares_destroy(d->servers[i].ch);
    d->servers[i].ch = NULL;
  }
}

/* Least consecutive failures first, then fewest failures, then as given. */
void qorb__dns_server_order(dns_resolver_t *d) {
  for (unsigned i = 1; i < d->nservers; i++) {
    unsigned v = d->order[i], j = i;
    const dns_server_t *sv = &d->servers[v];
    while (j > 0) {
      const dns_server_t *su = &d->servers[d->order[j - 1]];
      if (su->consecutive < sv->consecutive ||
          (su->consecutive == sv->consecutive &&
           (su->failures < sv->failures ||
            (su->failures == sv->failures && d->order[j - 1] < v))))
        break;
      d->order[j] = d->order[j - 1];
      j--;
    }
    d->order[j] = v;
  }
}

/* --- queries ------------------------------------------------------------ */

/* Statuses that say the server works: an answer, or a definite "none". */
static dns_outcome_t dns_classify(int status) {
  switch (status) {
  case ARES_SUCCESS:
    return DNS_OK;
  case ARES_ENOTFOUND:
  case ARES_ENODATA:
    return DNS_EMPTY;
  default:
    return DNS_FAIL;
  }
}

/*
 * One server's answer to `q`: done, or on to the next server. Returns 1
 * when the query was sent again.
 */
static int dns_query_answered(dns_query_t *q, int status) {
  dns_resolver_t *d = q->d;
  dns_server_t *s = &d->servers[d->order[q->attempt]];

  q->status = status;
  q->outcome = dns_classify(status);
  if (q->outcome != DNS_FAIL) {
    s->consecutive = 0;
    return 0;
  }
  if (status == ARES_ENOMEM || status == ARES_ECANCELLED) return 0;
  s->failures++;
  s->consecutive++;
  qorb__dns_log(d, QORB_LOG_WARN, "server %s failed for %s: %s", s->text,
                q->name, ares_strerror(status));
  if (++q->attempt < d->nservers) {
    qorb__dns_query_send(q);
    return 1;
  }
  return 0;
}

static int dns_query_stale(const dns_query_t *q, int status) {
  return status == ARES_EDESTRUCTION || !q->d->running || q->gen != q->d->gen;
}

static void dns_srv_cb(void *arg, int status, int timeouts,
                       unsigned char *abuf, int alen) {
  dns_query_t *q = arg;

  (void)timeouts;
  if (dns_query_stale(q, status)) return;
  if (dns_query_answered(q, status)) return;
  qorb__dns_query_done(q, abuf, alen, NULL);
}

static void dns_addr_cb(void *arg, int status, int timeouts,
                        struct ares_addrinfo *ai) {
  dns_query_t *q = arg;

  (void)timeouts;
  if (dns_query_stale(q, status)) {
    ares_freeaddrinfo(ai);
    return;
  }
  if (dns_query_answered(q, status)) {
    ares_freeaddrinfo(ai);
    return;
  }
  qorb__dns_query_done(q, NULL, 0, ai);
  ares_freeaddrinfo(ai);
}

/* Send `q` to the server at q->attempt of the order. The callback may run
 * inside this call (a hosts-file or numeric answer). */
void qorb__dns_query_send(dns_query_t *q) {
  dns_resolver_t *d = q->d;
  dns_server_t *s = &d->servers[d->order[q->attempt]];

  s->queries++;
  d->queries++;
  qorb__dns_log(d, QORB_LOG_DEBUG, "query %s %s on %s",
                q->kind == DNS_Q_SRV ? "SRV" : "address", q->name, s->text);
  if (q->kind == DNS_Q_SRV) {
    ares_query(s->ch, q->name, 1 /* C_IN */, 33 /* T_SRV */, dns_srv_cb, q);
  } else {
    struct ares_addrinfo_hints h;
    memset(&h, 0, sizeof(h));
    h.ai_flags = ARES_AI_NOSORT;
    h.ai_family = d->o.families == QORB_DNS_INET    ? AF_INET
                  : d->o.families == QORB_DNS_INET6 ? AF_INET6
                                                    : AF_UNSPEC;
    ares_getaddrinfo(s->ch, q->name, NULL, &h, dns_addr_cb, q);
  }
  dns_server_rearm(s);
}
