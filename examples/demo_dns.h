/* SPDX-License-Identifier: MIT */
/*
 * demo_dns.h: the demos' DNS resolver (libqorb-dns), for programs that take
 * --service and --dns-server (demo_parse_opts() with DEMO_OPTS_DNS). Built
 * as qorb_demo_dns only when libqorb-dns is (-DQORB_WITH_DNS=ON).
 *
 *   demo_dns_resolver_new()  a qorb-dns resolver for o->service that asks
 *                            o->dns_server, and prints the resolver's
 *                            changes of the backend set as they happen
 *
 * Put it in the workload (demo_workload_t.resolver_new) and demo_run()
 * makes the pool over it; the per-second stats then show the resolver's
 * figures too (demo_print_stats()).
 */
#ifndef QORB_DEMO_DNS_H
#define QORB_DEMO_DNS_H

#include "demo_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A DNS resolver for o->service (an SRV name or "host:port"), asking
 * o->dns_server (NULL: /etc/resolv.conf's servers), with short query
 * timeouts so that a demo shows a dead server quickly. Its log lines of
 * level INFO and up (a new backend set, a backend whose TTL ran out,
 * failures) are printed on stdout as "  [dns] ..." from the pool loop,
 * under flockfile(), so they fall between the stats tables.
 * Returns 0 with *out set (give it to a pool, or qorb_resolver_free() it),
 * or non-zero after printing why on stderr, prefixed with `prog`.
 * A demo_resolver_fn.
 */
int demo_dns_resolver_new(const char *prog, const demo_opts_t *o,
                          qorb_resolver_t **out);

#ifdef __cplusplus
}
#endif
#endif /* QORB_DEMO_DNS_H */
