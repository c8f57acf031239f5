/* SPDX-License-Identifier: MIT */
/*
 * probe_connector.c: see probe_connector.h. A connection is a timer of
 * 0 s that completes the connect op.
 */
#define _POSIX_C_SOURCE 200809L
#include <ev.h>
#include <stdlib.h>

#include "probe_connector.h"

typedef struct probe_conn {
  ev_timer timer;
  struct ev_loop *loop;
} probe_conn_t;

static void probe_connected_cb(struct ev_loop *loop, ev_timer *t,
                               int revents) {
  (void)revents;
  ev_timer_stop(loop, t);
  qorb_op_done((qorb_op_t *)t->data, 0);
}

static int probe_connect(void *ctx, qorb_op_t *op, const qorb_addr_t *addr,
                         void **conn) {
  probe_conn_t *c = malloc(sizeof(*c));

  (void)ctx;
  (void)addr;
  if (c == NULL) return QORB_ENOMEM;
  c->loop = qorb_op_loop(op);
  ev_timer_init(&c->timer, probe_connected_cb, 0., 0.);
  c->timer.data = op;
  ev_timer_start(c->loop, &c->timer);
  *conn = c;
  return 0;
}

static int probe_needs_recycle(void *ctx, void *conn) {
  (void)ctx;
  (void)conn;
  return 0;
}

static void probe_close(void *ctx, void *conn) {
  probe_conn_t *c = conn;

  (void)ctx;
  ev_timer_stop(c->loop, &c->timer);
  free(c);
}

static const qorb_connector_ops_t probe_ops = {
    QORB_CONNECTOR_OPS_VERSION, "probe", probe_connect, NULL, NULL, NULL,
    probe_needs_recycle, probe_close, NULL, NULL, NULL, NULL, NULL};

qorb_connector_t *probe_connector_new(void) {
  qorb_connector_t *c;

  return qorb_connector_new(&c, &probe_ops, NULL) == 0 ? c : NULL;
}
