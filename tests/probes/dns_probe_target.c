/* SPDX-License-Identifier: MIT */
/*
 * dns_probe_target.c: a small program that drives libqorb-dns through the
 * lookups that fire its four USDT probes, so that
 * tests/probes/test_dns_probes.sh can check with gdb that each fires with
 * the right arguments. It needs no DNS server of the system's:
 *
 *   - a scripted responder of its own (UDP on 127.0.0.1, a port the kernel
 *     picks, served on the same libev loop) answers A queries for
 *     DPT_LIVE_HOST with two addresses the first time and three ever after,
 *     so the pool over DPT_LIVE_NAME sees resolve-start, resolve-done (2,
 *     then 3) and backends-changed (0 -> 2, then 2 -> 3);
 *   - a silent socket (bound, never read) is the only server of the pool
 *     over DPT_DEAD_NAME, whose lookups time out (one try of
 *     DPT_DEAD_TIMEOUT_MS): resolve-failed with ARES_ETIMEOUT.
 *
 * Both pools use probe_connector.c, which connects without the network.
 * Every wait is bounded in time and in loop iterations; the program prints
 * "dns probe target done" and exits 0 when both pools got there and closed
 * cleanly, 1 otherwise. PROBE_VERBOSE=1 prints the resolvers' logs.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe_connector.h"
#include "qorb/dns.h"
#include "qorb/qorb.h"

/* test_dns_probes.sh expects these names and counts. */
#define DPT_LIVE_HOST "svc.probe.test"
#define DPT_LIVE_NAME DPT_LIVE_HOST ":5432"
#define DPT_DEAD_NAME "dead.probe.test:5432"
#define DPT_FIRST 2 /* addresses in the first answer */
#define DPT_LATER 3 /* addresses in every later answer */
#define DPT_DEAD_TIMEOUT_MS 200
#define DPT_DEADLINE_S 30.
#define DPT_MAX_STEPS 100000

/* --- the scripted DNS responder ------------------------------------------ */

typedef struct responder {
  int fd;
  ev_io io;
  unsigned answered; /* A queries for DPT_LIVE_HOST answered */
} responder_t;

static int verbose;

/* The question's name as dotted text; the offset past its QTYPE/QCLASS, or
 * 0 when the query is malformed (or compressed, which queries never are). */
static size_t dns_question(const unsigned char *q, size_t n, char *name,
                           size_t cap, unsigned *qtype) {
  size_t off = 12, len = 0;

  while (off < n && q[off] != 0) {
    size_t l = q[off];
    if ((l & 0xC0) != 0 || off + 1 + l > n || len + l + 2 > cap) return 0;
    if (len > 0) name[len++] = '.';
    memcpy(name + len, q + off + 1, l);
    len += l;
    off += 1 + l;
  }
  if (off + 5 > n) return 0;
  name[len] = '\0';
  *qtype = (unsigned)(q[off + 1] << 8 | q[off + 2]);
  return off + 5;
}

/* One RR answering the question (a pointer to it) with A `ip`, TTL 1 s. */
static size_t dns_put_a(unsigned char *a, size_t off, const char *ip) {
  static const unsigned char head[] = {0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4};

  memcpy(a + off, head, sizeof(head));
  inet_pton(AF_INET, ip, a + off + sizeof(head));
  return off + sizeof(head) + 4;
}

static void responder_cb(struct ev_loop *loop, ev_io *w, int revents) {
  static const char *ips[DPT_LATER] = {"127.0.0.2", "127.0.0.3", "127.0.0.4"};
  responder_t *rs = w->data;
  unsigned char q[512], a[512];
  struct sockaddr_storage from;
  socklen_t fromlen = sizeof(from);
  char name[256];
  unsigned qtype, i, count = 0;
  ssize_t n;
  size_t off;

  (void)loop;
  (void)revents;
  n = recvfrom(rs->fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fromlen);
  if (n < 12 || q[4] != 0 || q[5] != 1) return; /* one question, always */
  off = dns_question(q, (size_t)n, name, sizeof(name), &qtype);
  if (off == 0 || off + DPT_LATER * 16 > sizeof(a)) return;
  memcpy(a, q, off);
  a[2] = (unsigned char)(0x84 | (q[2] & 0x01)); /* QR, AA, the query's RD */
  a[3] = 0;                                     /* NOERROR */
  memset(a + 6, 0, 6);                          /* no AN/NS/AR yet */
  if (strcasecmp(name, DPT_LIVE_HOST) != 0) {
    a[3] = 3; /* NXDOMAIN */
  } else if (qtype == 1) {
    count = rs->answered++ == 0 ? DPT_FIRST : DPT_LATER;
    for (i = 0; i < count; i++) off = dns_put_a(a, off, ips[i]);
  } /* AAAA and the rest: NOERROR with no records */
  a[7] = (unsigned char)count;
  if (verbose)
    fprintf(stderr, "responder: %s type %u: %u records\n", name, qtype, count);
  sendto(rs->fd, a, off, 0, (struct sockaddr *)&from, fromlen);
}

/* A UDP socket on 127.0.0.1 at a port the kernel picks; -1 on failure. */
static int udp_socket(uint16_t *port) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);

  if (fd < 0) return -1;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

/* --- the pools ------------------------------------------------------------ */

static void log_cb(const char *name, qorb_log_level_t level, const char *msg,
                   void *arg) {
  (void)arg;
  if (verbose) fprintf(stderr, "[%s %d] %s\n", name, (int)level, msg);
}

static void closed_cb(qorb_pool_t *pool, int status, void *arg) {
  (void)pool;
  if (status == 0) ++*(int *)arg;
}

/* A pool over a DNS resolver of `name` whose one server is 127.0.0.1:port. */
static int dns_pool(struct ev_loop *loop, const char *name, uint16_t port,
                    unsigned timeout_ms, qorb_pool_t **pool,
                    qorb_resolver_t **r) {
  qorb_dns_options_t o;
  qorb_policy_t pol;
  qorb_connector_t *c;
  char servers[32], err[256] = "";
  int rc;

  snprintf(servers, sizeof(servers), "127.0.0.1:%u", (unsigned)port);
  qorb_dns_options_init(&o);
  o.name = name;
  o.servers = servers;
  o.families = QORB_DNS_INET;
  o.min_interval_ms = 100;
  o.max_interval_ms = 300;
  o.query_timeout_ms = timeout_ms;
  o.tries = 1;
  o.log_cb = log_cb;
  rc = qorb_dns_resolver_new(r, &o, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "qorb_dns_resolver_new(%s): %s (%s)\n", name,
            qorb_strerror(rc), err);
    return rc;
  }
  if ((c = probe_connector_new()) == NULL) {
    qorb_resolver_free(*r);
    return QORB_ENOMEM;
  }
  qorb_policy_init(&pol);
  pol.name = "dns-probe-target";
  pol.max_slots = 4;
  pol.spares_wanted = 1;
  rc = qorb_pool_new(pool, loop, &pol, *r, c, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "qorb_pool_new(%s): %s (%s)\n", name, qorb_strerror(rc),
            err);
    qorb_resolver_free(*r);
    qorb_connector_free(c);
  }
  return rc;
}

static void dns_stats(const qorb_resolver_t *r, qorb_dns_stats_t *st) {
  qorb_dns_stats_init(st);
  if (qorb_dns_resolver_stats(r, st) != 0) memset(st, 0, sizeof(*st));
}

/* Wakes the loop, so that every wait below notices its deadline. */
static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)w;
  (void)revents;
}

int main(void) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  qorb_pool_t *live = NULL, *dead = NULL;
  qorb_resolver_t *live_r, *dead_r;
  qorb_dns_stats_t ls, ds;
  responder_t rs;
  ev_timer tick;
  uint16_t live_port, dead_port;
  int silent, closed = 0, ok = 0, steps;
  double deadline;

  verbose = getenv("PROBE_VERBOSE") != NULL;
  memset(&rs, 0, sizeof(rs));
  qorb_dns_stats_init(&ls);
  qorb_dns_stats_init(&ds);
  if (loop == NULL) return 1;
  rs.fd = udp_socket(&live_port);
  silent = udp_socket(&dead_port);
  if (rs.fd < 0 || silent < 0) {
    perror("udp socket on 127.0.0.1");
    return 1;
  }
  ev_io_init(&rs.io, responder_cb, rs.fd, EV_READ);
  rs.io.data = &rs;
  ev_io_start(loop, &rs.io);
  ev_timer_init(&tick, tick_cb, 0.05, 0.05);
  ev_timer_start(loop, &tick);

  if (dns_pool(loop, DPT_LIVE_NAME, live_port, 5000, &live, &live_r) != 0 ||
      dns_pool(loop, DPT_DEAD_NAME, dead_port, DPT_DEAD_TIMEOUT_MS, &dead,
               &dead_r) != 0)
    goto done;

  /* Until the live pool has its three backends (its second change) and the
   * dead one has failed at least once. */
  deadline = ev_now(loop) + DPT_DEADLINE_S;
  for (steps = 0; steps < DPT_MAX_STEPS && ev_now(loop) < deadline; steps++) {
    dns_stats(live_r, &ls);
    dns_stats(dead_r, &ds);
    if (ls.backends == DPT_LATER && ls.changes >= 2 && ds.failures >= 1) {
      ok = 1;
      break;
    }
    ev_run(loop, EVRUN_ONCE);
  }
  if (!ok)
    fprintf(stderr, "dns probe target: timed out: live %u backends, %llu "
            "changes; dead %llu failures\n", ls.backends,
            (unsigned long long)ls.changes, (unsigned long long)ds.failures);

done:
  if (live != NULL && qorb_pool_close(live, closed_cb, &closed) != 0) ok = 0;
  if (dead != NULL && qorb_pool_close(dead, closed_cb, &closed) != 0) ok = 0;
  deadline = ev_now(loop) + DPT_DEADLINE_S;
  for (steps = 0; steps < DPT_MAX_STEPS && ev_now(loop) < deadline &&
                  closed < (live != NULL) + (dead != NULL);
       steps++)
    ev_run(loop, EVRUN_ONCE);
  if (closed < (live != NULL) + (dead != NULL)) {
    fprintf(stderr, "dns probe target: pools did not close\n");
    ok = 0;
  }
  ev_timer_stop(loop, &tick);
  ev_io_stop(loop, &rs.io);
  if (ev_run(loop, EVRUN_NOWAIT)) {
    fprintf(stderr, "dns probe target: watchers left on the loop\n");
    ok = 0;
  }
  close(rs.fd);
  close(silent);
  ev_loop_destroy(loop);
  if (!ok) return 1;
  printf("dns probe target done\n");
  return 0;
}
