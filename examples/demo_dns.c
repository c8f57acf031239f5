/* SPDX-License-Identifier: MIT */
/*
 * demo_dns.c: see demo_dns.h. The one place in the examples that knows
 * libqorb-dns, so that demo_common (and the echo demo) build without it.
 */
#define _GNU_SOURCE
#include "demo_dns.h"

#include <stdio.h>

#include <qorb/dns.h>

/*
 * The resolver's log, on the pool loop: changes of the backend set and
 * failures are what the demo is about; the DEBUG lines (every query and
 * answer) would drown the stats. stdout's lock keeps a line from landing
 * inside a stats table that the main thread is printing.
 */
static void dns_log(const char *name, qorb_log_level_t level, const char *msg,
                    void *arg) {
  (void)name;
  (void)arg;
  if (level < QORB_LOG_INFO)
    return;
  flockfile(stdout);
  printf("  [dns%s] %s\n", level >= QORB_LOG_WARN ? " warning" : "", msg);
  fflush(stdout);
  funlockfile(stdout);
}

int demo_dns_resolver_new(const char *prog, const demo_opts_t *o,
                          qorb_resolver_t **out) {
  qorb_dns_options_t d;
  char err[256] = "";
  int rc;

  qorb_dns_options_init(&d);
  d.name = o->service;
  d.servers = o->dns_server;
  /* One try of 500 ms per server: a DNS server that does not answer shows
   * in the demo's stats within a second (the defaults are 2 x 2 s). */
  d.query_timeout_ms = 500;
  d.tries = 1;
  d.log_cb = dns_log;
  rc = qorb_dns_resolver_new(out, &d, err, sizeof(err));
  if (rc != 0)
    fprintf(stderr, "%s: --service \"%s\"%s%s: %s\n", prog, o->service,
            o->dns_server != NULL ? " --dns-server " : "",
            o->dns_server != NULL ? o->dns_server : "",
            err[0] ? err : qorb_strerror(rc));
  return rc;
}
