/* SPDX-License-Identifier: MIT */
/*
 * dns_testlib.h: what the qorb-dns integration tests share. A pool on an
 * application loop (run by the test thread, so the resolver's stats can be
 * read between loop runs) over a DNS resolver and the scripted fake
 * connector (no database: what the tests look at is the backend set the
 * pool sees), the unbound that dns_servers.sh runs on 127.0.0.1 and ::1
 * port 55353, and the resolver's log kept for the tests to search.
 */
#ifndef QORB_DNS_TESTLIB_H
#define QORB_DNS_TESTLIB_H

#include <ev.h>

#include <qorb/dns.h>
#include <qorb/qorb.h>

#include "fake_connector.h"
#include "itest.h"
#include "loop_helpers.h"

#define DT_SERVERS "127.0.0.1:55353,[::1]:55353"
#define DT_DEAD "127.0.0.1:55359" /* nothing listens there */

typedef struct dt {
  struct ev_loop *loop;
  fake_connector_t *fc;
  qorb_pool_t *pool;
  qorb_resolver_t *r; /* the pool's */
} dt_t;

/* Options for `name` against the test unbound: min interval 100 ms, max
 * 2 s, 300 ms per try, one try, the log kept (and on stderr with
 * DT_VERBOSE=1). */
void dt_options(qorb_dns_options_t *o, const char *name);

/* Make the pool; asserts it worked. */
void dt_start(dt_t *t, const qorb_dns_options_t *o);

/* Close the pool, assert the loop holds no watchers and the connector saw
 * no violation, free everything. */
void dt_finish(dt_t *t);

/* 1 when the pool knows backend `addr` ("host:port"). */
int dt_has(dt_t *t, const char *addr);
/* Backends the pool knows. */
unsigned dt_backends(dt_t *t);
/* Backends `pool` knows (any pool). */
unsigned dt_pool_backends(qorb_pool_t *pool);
/* The resolver's stats (asserted to work). */
void dt_stats(dt_t *t, qorb_dns_stats_t *st);
/* The resolver's figures in the pool's stats snapshot. */
void dt_pool_resolver(dt_t *t, qorb_resolver_stats_t *rs);
/* Log lines so far containing `needle`. */
unsigned dt_logged(const char *needle);
/* Forget the log. */
void dt_log_clear(void);

/* Run dns_servers.sh with `args` ("stop", "add 'RR'", ...); asserts 0. */
void dt_script(const char *args);

#endif /* QORB_DNS_TESTLIB_H */
