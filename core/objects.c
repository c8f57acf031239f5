/* SPDX-License-Identifier: MIT */
/*
 * objects.c: the connector and resolver instances, the small objects that
 * pair a third party's op table with its context. The pool owns them once
 * qorb_pool_new() succeeds.
 */
#include <stddef.h>
#include <string.h>

#include "private.h"

int qorb_connector_new(qorb_connector_t **out, const qorb_connector_ops_t *ops,
                       void *ctx) {
  qorb_connector_t *c;
  if (out == NULL || ops == NULL) return QORB_EINVAL;
  *out = NULL;
  if (ops->version < 1 || ops->version > QORB_CONNECTOR_OPS_VERSION ||
      ops->connect == NULL || ops->close == NULL)
    return QORB_EINVAL;
  c = qorb__calloc(1, sizeof(*c));
  if (c == NULL) return QORB_ENOMEM;
  /* An older table ends where its version's fields end: copy no further
     (the rest stays NULL). */
  if (ops->version == 1)
    memcpy(&c->ops, ops, offsetof(qorb_connector_ops_t, idle_fd));
  else if (ops->version == 2)
    memcpy(&c->ops, ops, offsetof(qorb_connector_ops_t, reset_send));
  else
    c->ops = *ops;
  /* One without the other is no use: the pair or neither. */
  if (c->ops.reset_send == NULL || c->ops.reset_finish == NULL) {
    c->ops.reset_send = NULL;
    c->ops.reset_finish = NULL;
  }
  c->ctx = ctx;
  *out = c;
  return 0;
}

void qorb_connector_free(qorb_connector_t *c) {
  if (c == NULL) return;
  if (c->ops.destroy != NULL) c->ops.destroy(c->ctx);
  qorb__free(c);
}

void *qorb_connector_ctx(const qorb_connector_t *c) {
  return c != NULL ? c->ctx : NULL;
}

int qorb_resolver_new(qorb_resolver_t **out, const qorb_resolver_ops_t *ops,
                      void *ctx) {
  qorb_resolver_t *r;
  if (out == NULL || ops == NULL) return QORB_EINVAL;
  *out = NULL;
  if (ops->version != QORB_RESOLVER_OPS_VERSION || ops->start == NULL ||
      ops->stop == NULL)
    return QORB_EINVAL;
  r = qorb__calloc(1, sizeof(*r));
  if (r == NULL) return QORB_ENOMEM;
  r->ops = ops;
  r->ctx = ctx;
  *out = r;
  return 0;
}

int qorb__resolver_start(qorb_resolver_t *r, qorb_pool_t *p) {
  int rc;
  r->pool = p;
  r->started = 1;
  rc = r->ops->start(r->ctx, r);
  if (rc < 0) r->started = 0;
  return rc;
}

void qorb__resolver_stop(qorb_resolver_t *r) {
  if (!r->started) return;
  r->ops->stop(r->ctx);
  r->started = 0;
}

void qorb_resolver_free(qorb_resolver_t *r) {
  if (r == NULL) return;
  if (r->started && r->ops->stop != NULL) r->ops->stop(r->ctx);
  if (r->ops->destroy != NULL) r->ops->destroy(r->ctx);
  qorb__free(r);
}

const qorb_resolver_ops_t *qorb__resolver_ops(const qorb_resolver_t *r) {
  return r != NULL ? r->ops : NULL;
}

void *qorb_resolver_ctx(const qorb_resolver_t *r) {
  return r != NULL ? r->ctx : NULL;
}

struct ev_loop *qorb_resolver_loop(const qorb_resolver_t *r) {
  return (r != NULL && r->pool != NULL) ? r->pool->loop : NULL;
}
