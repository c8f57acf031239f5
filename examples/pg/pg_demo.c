/* SPDX-License-Identifier: MIT */
/*
 * pg_demo.c: qorb-pg-demo, a qorb-pg pool at work, for the README's demo
 * (tools/demo-pg.sh runs it against throwaway PostgreSQL servers that it
 * lists in a throwaway DNS server, adds one to the records midway and
 * restarts another).
 *
 *   qorb-pg-demo --service _pg._tcp.demo.local. \
 *                --dns-server 127.0.0.1:55363 \
 *                --conninfo "user=postgres dbname=postgres" \
 *                --seconds 14 --threads 4
 *   qorb-pg-demo --backends 127.0.0.2:55435,127.0.0.3:55436 ...
 *
 * The backends come from DNS (a qorb-dns resolver over the SRV name, or a
 * host:port, and the DNS servers given) or from a numeric list (the static
 * resolver). Worker threads claim, run a small transaction (PQexec), and
 * release, as a thread-per-request service would. Once a second the
 * program prints the pool's statistics and the resolver's figures, so that
 * the changes show as they happen: a target added to the SRV records
 * becomes a backend within a TTL and takes its share of the claims; a
 * restarted server's sessions are terminated, the health checks and the
 * claimants notice, the backend goes offline (with libpq's words in
 * last_error), claims move to the others, and it comes back online on its
 * own.
 *
 * The options, the worker threads and the stats table are shared with the
 * other demos (examples/demo_common.c); this file is what is particular
 * to PostgreSQL.
 */
#define _GNU_SOURCE
#include <stdio.h>

#include <qorb/pg.h>
#include <qorb/qorb.h>

#include "demo_common.h"
#include "demo_dns.h"

#define PROG "qorb-pg-demo"

/* A small transaction, as a request handler would run it. */
static int request(qorb_claim_t *claim, unsigned worker, unsigned long n,
                   void *arg) {
  static const char *const steps[] = {
      "BEGIN", "SELECT count(*) FROM pg_stat_activity", "COMMIT"};
  PGconn *pg = qorb_pg_conn(claim);
  size_t i;
  (void)worker;
  (void)n;
  (void)arg;

  for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    PGresult *res = PQexec(pg, steps[i]);
    ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    /* A session killed by the restart: a plain release is enough, the
     * pool sees PQstatus() and closes the connection. */
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
      return PQstatus(pg) != CONNECTION_OK ? QORB_ECLOSED : QORB_EPROTO;
  }
  return 0;
}

int main(int argc, char **argv) {
  static const demo_workload_t workload = {PROG, "transactions", request, NULL,
                                           demo_dns_resolver_new};
  const char *conninfo =
      "user=postgres dbname=postgres application_name=qorb_demo";
  const demo_opt_t extra[] = {
      {"conninfo", 'c', "STR", &conninfo, NULL, 0, 0, 0,
       "libpq template (default \"user=postgres dbname=postgres\")"},
  };
  qorb_connector_t *connector = NULL;
  qorb_pg_options_t pgo;
  qorb_policy_t policy;
  demo_opts_t opts;
  char err[256] = "";
  int rc;

  if (demo_parse_opts(
          PROG, argc, argv, &opts, "PostgreSQL servers, numeric host:port list",
          1024, DEMO_OPTS_DNS, extra, sizeof(extra) / sizeof(extra[0])) != 0)
    return 2;

  qorb_pg_options_init(&pgo);
  pgo.conninfo = conninfo;
  rc = qorb_pg_connector_new(&connector, &pgo, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, PROG ": --conninfo: %s\n",
            err[0] ? err : qorb_strerror(rc));
    return 1;
  }
  demo_policy(&policy, "pg-demo", opts.max_slots);
  /* More spares and more frequent checks than the other demos: a restart
   * terminates every session at once. */
  policy.spares_wanted = opts.max_slots < 4 ? opts.max_slots : 4;
  policy.health_interval_ms = 500;
  return demo_run(&opts, connector, &policy, &workload);
}
