/* SPDX-License-Identifier: MIT */
/**
 * @file
 * connector.h: the interface for connector authors. A connector knows how to
 * open, check, prepare, clean and close one kind of connection to one
 * backend. qorb ships libpq and hiredis connectors; examples/echo_connector.c
 * is a small one written to be read before writing your own.
 *
 * The model: every connection is one object of the connector's own (`conn`).
 * qorb asks for asynchronous operations on it through the op table below and
 * hands each one a `qorb_op_t *`, the slot that owns the connection. The
 * connector finishes each operation by calling qorb_op_done() exactly once,
 * from the pool loop. qorb enforces every timeout itself: when one expires it
 * calls `close`, which must abort whatever is in flight without ever calling
 * qorb_op_done() for it.
 *
 * The qorb_op_*() functions accept a NULL op and then do nothing (the
 * getters return NULL).
 */
#ifndef QORB_CONNECTOR_H
#define QORB_CONNECTOR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;

/** The slot that owns one connection, as seen by its connector. Opaque. */
typedef struct qorb_op qorb_op_t;

/** A connector instance: an op table and its context. Opaque. */
typedef struct qorb_connector qorb_connector_t;

/**
 * The op table's version. 2 added `idle_fd` and `peek`; 3 added
 * `reset_send` and `reset_finish`. Tables of versions 1 and 2 are still
 * accepted: without `peek`, idle connections are found dead only by
 * `check`; without `reset_send`, every release that needs cleaning goes
 * through `recycle` on the pool loop.
 */
#define QORB_CONNECTOR_OPS_VERSION 3

/**
 * The connector op table. Keep it `static const`. Every op runs on the pool
 * loop thread except `needs_recycle`, which runs on whichever thread releases
 * a claim.
 *
 * Asynchronous ops (`connect`, `check`, `prepare`, `recycle`) return 0 when
 * started, and then call qorb_op_done(op, status) exactly once, from the pool
 * loop (possibly before the op returns). They return a negative code when
 * they fail before starting; then qorb_op_done() must not be called.
 *
 * A failure that means the backend went away (the server closed the
 * connection or is shutting down, as opposed to one connection's own
 * trouble) is reported as QORB_EGONE, by any op, by `needs_recycle` and by
 * `peek`: the pool then checks that backend's other idle connections at
 * once instead of waiting for their turn.
 */
typedef struct qorb_connector_ops {
  unsigned version; /**< QORB_CONNECTOR_OPS_VERSION */
  const char *name; /**< short name for stats and probes, e.g. "pg" */

  /**
   * Start connecting to `addr`. On return 0, `*conn` must hold the new
   * connection object (qorb passes it to every later op and to `close`).
   * qorb_op_loop(op) gives the loop to attach watchers to.
   */
  int (*connect)(void *ctx, qorb_op_t *op, const qorb_addr_t *addr,
                 void **conn);

  /** Health check of an idle connection (a real round trip). NULL: none. */
  int (*check)(void *ctx, qorb_op_t *op, void *conn);

  /**
   * on_acquire: prepare a connection for its next claimant. It runs after
   * every connect and every recycle, before the connection can be claimed,
   * so that a claim itself never waits for I/O. NULL: nothing to prepare.
   */
  int (*prepare)(void *ctx, qorb_op_t *op, void *conn);

  /**
   * on_recycle: clean a released connection (roll back, reset session
   * state) so that nothing crosses from one claimant to the next. A failure
   * closes the connection; it is never handed out dirty. NULL: nothing to
   * clean.
   */
  int (*recycle)(void *ctx, qorb_op_t *op, void *conn);

  /**
   * Decide on release, without I/O and without blocking: 0 when the
   * connection is already clean and can go straight back to the idle set
   * (no `recycle` or `prepare` runs), 1 when `recycle` must run, a negative
   * code when it is broken and must be closed. Called from the releasing
   * thread, so it must not touch the pool loop's state (watchers, timers).
   * The exception is a connection that is only ever used on the pool loop,
   * such as an async-flavour qorb-redis claim: its claimant releases it on
   * the loop thread, so there needs_recycle may touch loop state (qorb-redis
   * stops its read watcher, ev_io_stop, for a connection that goes straight
   * back to idle). NULL: recycle always runs (if there is one). A negative
   * return of QORB_EGONE also warns the backend's other connections (see
   * above).
   */
  int (*needs_recycle)(void *ctx, void *conn);

  /**
   * Abort any op in flight on `conn` (without calling qorb_op_done), close
   * the connection and free `conn`. Must not fail. Required.
   */
  void (*close)(void *ctx, void *conn);

  /** Free `ctx` when the connector is freed. NULL: nothing to free. */
  void (*destroy)(void *ctx);

  /* ---- version 2 ---- */

  /**
   * The socket of a connection, for the pool loop to watch while the
   * connection is idle: readable or hung up while nobody holds it means the
   * server closed it or sent something unsolicited, and `peek` (below)
   * decides. -1: not watched. Called on the pool loop whenever the pool
   * owns the connection (it may change after a reconnect). NULL: idle
   * connections are not watched; a dead one is found by `check` or by its
   * next claimant.
   */
  int (*idle_fd)(void *ctx, void *conn);

  /**
   * Look at a connection nobody holds, without waiting: 0 when it is still
   * alive and clean (a PostgreSQL NOTIFY that arrived is not a death), a
   * negative code when it is dead or unusable, and then it is closed.
   * QORB_EGONE says the backend itself went away (the connection closed,
   * the server shutting down), and makes the pool check the backend's other
   * idle connections at once. It may read what has already arrived (a recv
   * on a non-blocking socket) but never waits or sends. Called on the pool
   * loop when an idle connection's socket becomes readable, and on a
   * claimant's thread when a claim finds a connection idle longer than the
   * policy's validate_idle_ms; either way the caller owns the connection
   * for the call. NULL: a readable idle socket means the connection is
   * dead.
   */
  int (*peek)(void *ctx, void *conn);

  /* ---- version 3 ---- */

  /**
   * Clean a released connection without the pool loop: send the reset on
   * the releasing thread and return without waiting for its answer; the
   * next owner reads the answer with `reset_finish` before anyone uses the
   * connection. Called on the releasing thread (never the pool loop's)
   * when needs_recycle said 1, on a connection nobody else touches.
   * Returns 0 when the reset is on its way (the connection goes back to
   * the idle set at once, marked as waiting for `reset_finish`), 1 when
   * this release needs `recycle` on the loop after all (an open
   * transaction, say; nothing was sent), a negative code when the
   * connection is broken (it is closed). It may write to the socket
   * (a short, non-blocking send) but never waits for the server. NULL:
   * every release that needs cleaning goes to `recycle`. Needs
   * `reset_finish`.
   */
  int (*reset_send)(void *ctx, void *conn);

  /**
   * Read the answer to the reset that `reset_send` sent, on whichever
   * thread owns the connection now: a claimant's, before its claim returns
   * (`wait_ms` > 0: wait up to that long), or the pool loop's (`wait_ms`
   * 0: never wait; return QORB_EAGAIN while the answer is not all there,
   * and the loop looks again when the socket is readable). Returns 0 when
   * the connection is clean, or a negative code when the reset failed or
   * timed out (the connection is closed, never handed out); then it may
   * write why into `err` (`errlen` bytes, given empty), which becomes the
   * backend's last error.
   */
  int (*reset_finish)(void *ctx, void *conn, int wait_ms, char *err,
                      size_t errlen);
} qorb_connector_ops_t;

/**
 * Make a connector from an op table and a context.
 * @param out  receives the connector.
 * @param ops  the op table; must outlive the connector (make it static).
 * @param ctx  the connector's context, passed to every op.
 * @return 0, QORB_EINVAL (NULL `out` or `ops`, wrong version, no
 *         `connect` or `close`), QORB_ENOMEM.
 * Ownership: the connector keeps `ops` and `ctx`; ops->destroy(ctx) runs
 * when the connector is freed. If this call fails, `ctx` stays the caller's.
 * Thread: any.
 */
QORB_EXTERN int qorb_connector_new(qorb_connector_t **out,
                                   const qorb_connector_ops_t *ops, void *ctx);

/**
 * Free a connector that no pool owns (one whose qorb_pool_new() failed, or
 * that was never given to a pool). A pool frees its own connector.
 * Thread: any. NULL is ignored.
 */
QORB_EXTERN void qorb_connector_free(qorb_connector_t *c);

/** The context given to qorb_connector_new(). Thread: any. */
QORB_EXTERN void *qorb_connector_ctx(const qorb_connector_t *c);

/**
 * Finish the asynchronous op in flight on this slot.
 * @param status  0 for success, a negative code for failure.
 * Callback contract: exactly once per started op, from the pool loop.
 * It only queues: the pool acts on the result later in this loop iteration,
 * never inside the call, so it may be called from inside the op itself
 * (a connect that fails at once) and `conn` is still there when it
 * returns. Treat it as the op's last word anyway: finish the bookkeeping
 * first (stop the watchers, clear the op), call it last, and touch nothing
 * after it. What it leaves is what the pool acts on: `close` after a
 * failure, the idle set (where another thread may claim the connection)
 * after success.
 * Thread: the pool loop.
 */
QORB_EXTERN void qorb_op_done(qorb_op_t *op, int status);

/**
 * Record the detail of a failure (the server's or the library's text). It
 * is copied into the backend's bounded error buffer, readable later as
 * `last_error` in the stats snapshot (qorb_pool_stats()), even after the
 * connection is gone.
 * Thread: the pool loop.
 */
QORB_EXTERN void qorb_op_set_error(qorb_op_t *op, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/** The pool loop that this op runs on. Thread: the pool loop. */
QORB_EXTERN struct ev_loop *qorb_op_loop(const qorb_op_t *op);

/** The backend address of this op's slot. Thread: the pool loop. */
QORB_EXTERN const qorb_addr_t *qorb_op_addr(const qorb_op_t *op);

#ifdef __cplusplus
}
#endif
#endif /* QORB_CONNECTOR_H */
