/* SPDX-License-Identifier: MIT */
/*
 * probe_target.c: a small program that drives a pool through connect,
 * claim, release, a failed claim and a claim held past the leak threshold
 * (claim-held-too-long), so that tests/probes/test_probes.sh can
 * prove with gdb that qorb's USDT probes fire (no kernel support needed).
 * Its connector (probe_connector.c) connects at once and needs no recycle.
 */
#define _POSIX_C_SOURCE 200809L
#include <ev.h>
#include <stdio.h>

#include "probe_connector.h"
#include "qorb/qorb.h"

static int n_idle(qorb_pool_t *pool) {
  qorb_pool_stats_t st;
  qorb_pool_stats_init(&st);
  qorb_pool_stats(pool, &st, NULL, 0, NULL);
  return (int)st.idle;
}

static void done_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)w;
  (void)revents;
  ev_break(loop, EVBREAK_ONE);
}

int main(void) {
  struct ev_loop *loop = ev_default_loop(0);
  qorb_resolver_t *r;
  qorb_connector_t *c;
  qorb_pool_t *pool;
  qorb_policy_t pol;
  qorb_claim_t *claim, *second;
  ev_timer hold;
  char err[128];
  int i, rc;

  if (qorb_static_resolver_new(&r, "127.0.0.1:1", err, sizeof(err)) < 0 ||
      (c = probe_connector_new()) == NULL)
    return 1;
  qorb_policy_init(&pol);
  pol.name = "probe-target";
  pol.max_slots = 1;
  pol.spares_wanted = 1;
  pol.leak_threshold_ms = 50;
  if (qorb_pool_new(&pool, loop, &pol, r, c, err, sizeof(err)) < 0) return 1;
  for (i = 0; i < 1000 && n_idle(pool) < 1; i++) ev_run(loop, EVRUN_ONCE);
  if (n_idle(pool) < 1) return 1;
  for (i = 0; i < 3; i++) {
    if (qorb_pool_try_claim(pool, &claim) < 0) return 1;
    rc = qorb_pool_try_claim(pool, &second); /* fails: claim-failed */
    if (rc != QORB_EAGAIN) return 1;
    qorb_release(claim);
  }
  /* Held for 300 ms, six times the threshold: claim-held-too-long. */
  if (qorb_pool_try_claim(pool, &claim) < 0) return 1;
  ev_timer_init(&hold, done_cb, 0.3, 0.);
  ev_timer_start(loop, &hold);
  ev_run(loop, 0);
  qorb_release(claim);
  qorb_pool_close(pool, NULL, NULL);
  ev_run(loop, 0);
  printf("probe target done\n");
  return 0;
}
