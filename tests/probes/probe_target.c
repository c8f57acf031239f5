/* SPDX-License-Identifier: MIT */
/*
 * probe_target.c: a small program that drives a pool through connect,
 * claim, release and a failed claim, so that tests/probes/test_probes.sh can
 * prove with gdb that qorb's USDT probes fire (no kernel support needed).
 * Its connector connects at once and needs no recycle.
 */
#define _POSIX_C_SOURCE 200809L
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

#include "qorb/qorb.h"

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  (void)loop;
  (void)revents;
  qorb_op_done((qorb_op_t *)t->data, 0);
  ev_timer_stop(loop, t);
}

static int mock_connect(void *ctx, qorb_op_t *op, const qorb_addr_t *addr,
                        void **conn) {
  ev_timer *t = malloc(sizeof(*t));
  (void)ctx;
  (void)addr;
  if (t == NULL) return QORB_ENOMEM;
  ev_timer_init(t, tick_cb, 0., 0.);
  t->data = op;
  ev_timer_start(qorb_op_loop(op), t);
  *conn = t;
  return 0;
}

static void mock_close(void *ctx, void *conn) {
  ev_timer *t = conn;
  (void)ctx;
  ev_timer_stop(ev_default_loop(0), t);
  free(t);
}

static int mock_clean(void *ctx, void *conn) {
  (void)ctx;
  (void)conn;
  return 0;
}

static const qorb_connector_ops_t mock_ops = {
    QORB_CONNECTOR_OPS_VERSION, "mock", mock_connect, NULL, NULL, NULL,
    mock_clean, mock_close, NULL, NULL, NULL};

static int n_idle(qorb_pool_t *pool) {
  qorb_pool_stats_t st;
  qorb_pool_stats_init(&st);
  qorb_pool_stats(pool, &st, NULL, 0, NULL);
  return (int)st.idle;
}

int main(void) {
  struct ev_loop *loop = ev_default_loop(0);
  qorb_resolver_t *r;
  qorb_connector_t *c;
  qorb_pool_t *pool;
  qorb_policy_t pol;
  qorb_claim_t *claim, *second;
  char err[128];
  int i, rc;

  if (qorb_static_resolver_new(&r, "127.0.0.1:1", err, sizeof(err)) < 0 ||
      qorb_connector_new(&c, &mock_ops, NULL) < 0)
    return 1;
  qorb_policy_init(&pol);
  pol.name = "probe-target";
  pol.max_slots = 1;
  pol.spares_wanted = 1;
  if (qorb_pool_new(&pool, loop, &pol, r, c, err, sizeof(err)) < 0) return 1;
  for (i = 0; i < 1000 && n_idle(pool) < 1; i++) ev_run(loop, EVRUN_ONCE);
  if (n_idle(pool) < 1) return 1;
  for (i = 0; i < 3; i++) {
    if (qorb_pool_try_claim(pool, &claim) < 0) return 1;
    rc = qorb_pool_try_claim(pool, &second); /* fails: claim-failed */
    if (rc != QORB_EAGAIN) return 1;
    qorb_release(claim);
  }
  qorb_pool_close(pool, NULL, NULL);
  ev_run(loop, 0);
  printf("probe target done\n");
  return 0;
}
