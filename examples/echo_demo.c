/* SPDX-License-Identifier: MIT */
/*
 * echo_demo.c: qorb-echo-demo, a pool at work against echo servers.
 *
 *   qorb-echo-demo --backends 127.0.0.1:47001,127.0.0.2:47001 \
 *                  --seconds 12 --threads 4
 *
 * It builds a pool over the static resolver and the example echo
 * connector, on a loop thread the pool owns (loop NULL), and runs worker
 * threads that do what a thread-per-request service does: claim (blocking,
 * with a timeout), one request/response, release. Once a second it prints
 * the pool's statistics, so that a backend being stopped and restarted
 * (tools/demo.sh does that) shows up as it happens: the slot set goes
 * offline, claims move to the other backends, the probing slot backs off,
 * and the backend comes back online when it returns.
 *
 * The options, the worker threads and the stats table are shared with the
 * other demos (demo_common.c); this file is what is particular to echo.
 */
#define _GNU_SOURCE
#include <stdio.h>

#include <qorb/qorb.h>

#include "demo_common.h"
#include "echo_connector.h"

#define PROG "qorb-echo-demo"

/* One request: a line to the echo server and its echo back. On a failure
 * the connector marks the connection broken, so the release after it
 * closes the connection instead of handing it out again. */
static int request(qorb_claim_t *claim, unsigned worker, unsigned long n,
                   void *arg) {
  char msg[64], reply[64];
  (void)arg;

  snprintf(msg, sizeof(msg), "worker %u request %lu", worker, n);
  return echo_roundtrip(claim, msg, reply, sizeof(reply), 1000);
}

int main(int argc, char **argv) {
  static const demo_workload_t workload = {PROG, "round trips", request, NULL,
                                           NULL};
  qorb_connector_t *connector = NULL;
  qorb_policy_t policy;
  demo_opts_t opts;
  int rc;

  if (demo_parse_opts(PROG, argc, argv, &opts,
                      "echo servers, e.g. 127.0.0.1:47001,[::1]:47001", 4096, 0,
                      NULL, 0) != 0)
    return 2;

  rc = echo_connector_new(&connector);
  if (rc != 0) {
    fprintf(stderr, PROG ": connector: %s\n", qorb_strerror(rc));
    return 1;
  }
  /* A policy tuned so that a demo of a few seconds shows failure and
   * recovery. */
  demo_policy(&policy, "echo-demo", opts.max_slots);
  return demo_run(&opts, connector, &policy, &workload);
}
