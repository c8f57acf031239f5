/* SPDX-License-Identifier: MIT */
/*
 * redis_async.c: qorb-redis's async flavour. A redisAsyncContext from
 * redisAsyncConnect(), attached to the pool loop with event hooks of our
 * own (the same as hiredis's adapters/libev.h, plus two things it cannot
 * do: reading is paused while the connection sits idle, so that hiredis
 * never frees an idle context under the pool, and writes are guarded
 * against SIGPIPE), and the hiredis callbacks that feed the replies to the
 * pipeline.
 *
 * hiredis lifetimes, the part that is easy to get wrong (0.14 and 1.x
 * alike, without REDIS_OPT_NOAUTOFREE):
 *   - An async context frees itself on disconnect. First it runs every
 *     pending callback with a NULL reply, then the disconnect callback
 *     (only if it had connected), then it is gone.
 *   - redisAsyncFree() inside a hiredis callback only marks the context;
 *     hiredis frees it when the callback returns, running the remaining
 *     callbacks with NULL replies.
 * So our callbacks never reach the connection through their privdata:
 * they read ac->data, and detaching (ac->data = NULL) is the one step that
 * makes every later callback of that context a no-op. qorb_op_done() is
 * the op's last word (see its contract in <qorb/connector.h>), so it is
 * always the last thing a callback does.
 */
#define _GNU_SOURCE
#include <stdint.h>

#include "redis_int.h"

/* The async flavour's event hooks (our counterpart of redisLibevEvents).
 * Owned by hiredis once attached: it calls qr_ev_cleanup() when the
 * context goes, possibly after our connection object is gone, so this
 * struct never points at the connection. */
typedef struct qr_ev {
  redisAsyncContext *ac;
  struct ev_loop *loop;
  ev_io rev, wev;
  int guard; /* block SIGPIPE around writes */
} qr_ev_t;

/* ------------------------------------------------------------------------
 * Async flavour: event hooks
 * ------------------------------------------------------------------------
 * hiredis calls these to say what it wants to wait for. They must be
 * idempotent. After cleanup, ac->ev.data is NULL and they do nothing.
 */

static void qr_ev_read_cb(struct ev_loop *loop, ev_io *w, int revents) {
  qr_ev_t *e = w->data;
  (void)loop;
  (void)revents;
  redisAsyncHandleRead(e->ac); /* may free e */
}

static void qr_ev_write_cb(struct ev_loop *loop, ev_io *w, int revents) {
  qr_ev_t *e = w->data;
  redisAsyncContext *ac = e->ac;
  (void)loop;
  (void)revents;

  if (e->guard) {
    qr_sigpipe_t g;
    qorb__redis_sigpipe_block(&g);
    redisAsyncHandleWrite(ac); /* may free e */
    qorb__redis_sigpipe_restore(&g);
  } else {
    redisAsyncHandleWrite(ac);
  }
}

static void qr_ev_add_read(void *p) {
  qr_ev_t *e = p;
  if (e != NULL && !ev_is_active(&e->rev)) ev_io_start(e->loop, &e->rev);
}

static void qr_ev_del_read(void *p) {
  qr_ev_t *e = p;
  if (e != NULL) ev_io_stop(e->loop, &e->rev);
}

static void qr_ev_add_write(void *p) {
  qr_ev_t *e = p;
  if (e != NULL && !ev_is_active(&e->wev)) ev_io_start(e->loop, &e->wev);
}

static void qr_ev_del_write(void *p) {
  qr_ev_t *e = p;
  if (e != NULL) ev_io_stop(e->loop, &e->wev);
}

static void qr_ev_cleanup(void *p) {
  qr_ev_t *e = p;

  if (e == NULL) return;
  ev_io_stop(e->loop, &e->rev);
  ev_io_stop(e->loop, &e->wev);
  /* Some hiredis versions call cleanup more than once. */
  e->ac->ev.data = NULL;
  e->ac->ev.cleanup = NULL;
  qorb_free(e);
}

/*
 * Stop reading while the connection is idle or handed out. hiredis turns
 * reading back on after its next write (every command is a write), so a
 * claimant never notices. Meanwhile hiredis cannot free the context while
 * the pool holds it, and it does not compete with the pool's own watch of
 * the idle socket (the idle_fd op): a hang-up or anything unsolicited
 * wakes only the pool, whose peek looks without reading (see
 * qorb__redis_peek), and the pool closes the connection itself.
 */
void qorb__redis_async_pause(qr_conn_t *k) {
  qr_ev_t *e;

  if (k->ac == NULL || (e = k->ac->ev.data) == NULL) return;
  ev_io_stop(e->loop, &e->rev);
}

static int qr_async_attach(qr_conn_t *k, redisAsyncContext *ac) {
  qr_ev_t *e;

  if (ac->ev.data != NULL) return QORB_EBUSY;
  e = qorb_calloc(1, sizeof(*e));
  if (e == NULL) return QORB_ENOMEM;
  e->ac = ac;
  e->loop = k->loop;
  e->guard = k->sigpipe_guard;
  ev_io_init(&e->rev, qr_ev_read_cb, ac->c.fd, EV_READ);
  ev_io_init(&e->wev, qr_ev_write_cb, ac->c.fd, EV_WRITE);
  e->rev.data = e;
  e->wev.data = e;
  ac->ev.addRead = qr_ev_add_read;
  ac->ev.delRead = qr_ev_del_read;
  ac->ev.addWrite = qr_ev_add_write;
  ac->ev.delWrite = qr_ev_del_write;
  ac->ev.cleanup = qr_ev_cleanup;
  ac->ev.data = e;
  return 0;
}

/* ------------------------------------------------------------------------
 * Async flavour: callbacks
 * ------------------------------------------------------------------------ */

/* The context's error text, or `otherwise` when it has none. */
static const char *qr_ac_errstr(const redisAsyncContext *ac,
                                const char *otherwise) {
  return ac->errstr != NULL && ac->errstr[0] != '\0' ? ac->errstr : otherwise;
}

/* Let go of the context: every later callback of it does nothing. */
void qorb__redis_detach(qr_conn_t *k) {
  if (k->ac != NULL) {
    k->ac->data = NULL;
    k->ac = NULL;
  }
  k->broken = 1;
}

void qorb__redis_async_reply(redisAsyncContext *ac, void *r, void *privdata) {
  qr_conn_t *k = ac->data;
  int rc;
  (void)privdata;

  if (k == NULL) return; /* detached: closed, or an abandoned op */
  if (r == NULL) {
    /* hiredis is freeing the context (the server went away, or a write
     * failed): it is no longer ours to free. */
    int gone = qorb__redis_ctx_gone(ac->err, ac->errstr);
    if (k->op != NULL)
      qorb__redis_err(k, "%s", qr_ac_errstr(ac, "connection lost"));
    qorb__redis_detach(k);
    qorb__redis_fail(k, gone ? QORB_EGONE : qorb__redis_opcode(k->opkind));
    return;
  }
  if (k->op == NULL) return; /* leftover of a failed op: k is broken */
  if (k->next >= k->nsteps) {
    qorb__redis_err(k, "unexpected reply");
    qorb__redis_fail(k, QORB_EPROTO);
    return;
  }
  rc = qorb__redis_reply(k, (enum qr_step)k->steps[k->next], r);
  if (rc < 0) {
    qorb__redis_fail(k, rc);
    return;
  }
  if (rc == 0 && ++k->next == k->nsteps) {
    qorb_op_t *op = k->op;
    k->op = NULL;
    qorb__redis_async_pause(k);
    qorb_op_done(op, 0);
  }
}

static void qr_async_on_connect(const redisAsyncContext *cac, int status) {
  redisAsyncContext *ac = (redisAsyncContext *)(uintptr_t)cac;
  qr_conn_t *k = ac->data;

  if (k == NULL || status == REDIS_OK) return;
  /* hiredis frees the context when this returns. */
  qorb__redis_err(k, "%s", qr_ac_errstr(ac, "connect failed"));
  qorb__redis_detach(k);
  qorb__redis_fail(k, QORB_ECONNECT);
}

static void qr_async_on_disconnect(const redisAsyncContext *cac, int status) {
  redisAsyncContext *ac = (redisAsyncContext *)(uintptr_t)cac;
  qr_conn_t *k = ac->data;
  (void)status;

  if (k == NULL) return;
  /* hiredis frees the context when this returns. */
  qorb__redis_err(k, "%s", qr_ac_errstr(ac, "server closed the connection"));
  qorb__redis_detach(k);
  qorb__redis_fail(k, QORB_EGONE);
}

int qorb__redis_async_start(qr_conn_t *k, qorb_op_t *op, enum qr_op kind) {
  int rc;

  k->op = op;
  k->opkind = kind;
  if (k->broken || k->ac == NULL ||
      (k->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)) != 0) {
    qorb__redis_err(k, "connection is broken");
    k->op = NULL;
    return QORB_ECLOSED;
  }
  if ((rc = qorb__redis_build(k, kind)) != 0) {
    qorb__redis_err(k, "queueing commands: %s", qorb_strerror(rc));
    k->op = NULL;
    k->broken = 1;
    return rc;
  }
  return 0;
}

int qorb__redis_async_connect(qr_conn_t *k, const qorb_addr_t *addr) {
  redisAsyncContext *ac;
  int rc;

  ac = redisAsyncConnect(addr->host, (int)addr->port);
  if (ac == NULL) return QORB_ENOMEM;
  if (ac->err) {
    qorb__redis_err(k, "%s", ac->errstr);
    redisAsyncFree(ac);
    return QORB_ECONNECT;
  }
  k->ac = ac;
  ac->data = k;
  if (k->cfg->keepalive && redisEnableKeepAlive(&ac->c) != REDIS_OK) {
    qorb__redis_err(k, "keepalive: %s", ac->c.errstr);
    return QORB_ECONNECT;
  }
#if QR_TLS
  if (k->cfg->tls != NULL &&
      redisInitiateSSLWithContext(&ac->c, (redisSSLContext *)k->cfg->tls) !=
          REDIS_OK) {
    qorb__redis_err(k, "TLS: %s", ac->c.errstr);
    return QORB_ECONNECT;
  }
#endif
  if ((rc = qr_async_attach(k, ac)) != 0) return rc;
  redisAsyncSetConnectCallback(ac, qr_async_on_connect);
  redisAsyncSetDisconnectCallback(ac, qr_async_on_disconnect);
  /* Commands queue up until the connection is made; hiredis writes them
   * on the first writable event. */
  if ((rc = qorb__redis_build(k, QR_OP_CONNECT)) != 0) {
    qorb__redis_err(k, "queueing commands: %s", qorb_strerror(rc));
    return rc;
  }
  return 0;
}
