/* SPDX-License-Identifier: MIT */
/**
 * @file
 * endpoint.h: a small HTTP server that answers with the statistics of one
 * or several pools, for Prometheus and for tools/qorbtop. It is the
 * optional library libqorb-endpoint (qorb::endpoint, qorb-endpoint.pc).
 *
 *   GET /metrics     Prometheus text format (text/plain; version=0.0.4)
 *   GET /stats.json  the same figures as JSON (application/json)
 *   GET /            a short index of the two
 * Any other path gets 404, any method but GET and HEAD 405.
 *
 * Why libmicrohttpd. An endpoint that faces whatever connects to it must
 * survive malformed requests, oversized headers, floods of connections and
 * clients that are slow or never read their reply, without ever stalling
 * the loop it shares with a pool. libmicrohttpd (GNU, LGPL 2.1+, packaged
 * everywhere; Debian 12 ships 0.9.75) already does all of that: it parses
 * HTTP/1.x strictly, bounds each connection's memory (headers included),
 * caps the number of connections, times out idle ones, and can run in
 * "external" mode, where the application polls one epoll descriptor and
 * calls it when it is ready, so it never blocks and never starts threads
 * of its own. A hand-written parser would have to relearn each of those
 * lessons.
 *
 * Threads. The endpoint lives on one libev loop:
 *   - the application's (pass its loop): one ev_io on libmicrohttpd's
 *     epoll descriptor and one ev_timer from its next timeout, so requests
 *     are served by whoever runs that loop (the pool loop too, when the
 *     application gave the same loop to qorb_pool_new()). Its watchers do
 *     not keep the loop running on their own, like the pool's housekeeping.
 *   - or one of its own on a thread the endpoint owns (pass NULL).
 * Answering a request takes a snapshot of every pool (qorb_pool_stats(),
 * which any thread may call) and formats it (<qorb/stats.h>); it never
 * waits for a pool. Pools may be added and removed from any thread.
 */
#ifndef QORB_ENDPOINT_H
#define QORB_ENDPOINT_H

#include "common.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;

/** A stats endpoint. Opaque. */
typedef struct qorb_endpoint qorb_endpoint_t;

/**
 * Endpoint options, with defaults from qorb_endpoint_options_init(). Plain
 * data; new fields are only ever appended (see qorb_policy_t on `size`).
 */
typedef struct qorb_endpoint_options {
  size_t size;                /**< set by qorb_endpoint_options_init() */
  const char *listen;         /**< where to listen (copied):
                                   "127.0.0.1:PORT", "[::1]:PORT" (numeric
                                   addresses only; PORT 0 picks a free port,
                                   see qorb_endpoint_port()) or
                                   "unix:/path/to/socket". Any address is
                                   accepted, but the statistics name every
                                   backend: keep it on loopback or a Unix
                                   socket unless something else guards it.
                                   Default "127.0.0.1:0" */
  unsigned max_connections;   /**< connections served at once, 1 to 65536
                                   (64); further clients wait in the
                                   listen backlog */
  unsigned timeout_ms;        /**< a connection that makes no progress this
                                   long (a slow or silent client, one that
                                   does not read its reply) is closed; 100
                                   to 86400000 (5000). libmicrohttpd counts
                                   whole seconds: rounded up */
  size_t max_request_bytes;   /**< memory per connection, request line and
                                   headers included; a request that needs
                                   more gets 431 or 413 and is closed; 4096
                                   to 1048576 (16384) */
  size_t max_response_bytes;  /**< bound on one formatted answer; a larger
                                   one gets 500; 4096 to 1073741824
                                   (16777216) */
} qorb_endpoint_options_t;

/** Fill `o` with the defaults. Thread: any. */
#define qorb_endpoint_options_init(o) \
  qorb_endpoint_options_init_((o), sizeof(*(o)))
QORB_EXTERN void qorb_endpoint_options_init_(qorb_endpoint_options_t *o,
                                             size_t size);

/**
 * Make an endpoint and start listening.
 * @param out     receives the endpoint.
 * @param loop    the application's libev loop, or NULL for a loop on a
 *                thread the endpoint owns. With the application's loop,
 *                call this on the loop's thread (or before the loop runs).
 * @param opts    NULL for the defaults.
 * @param err     if not NULL, receives a message on failure (the bad field
 *                or the system call that failed).
 * @param errlen  size of `err`.
 * @return 0; QORB_EINVAL (NULL `out`, `size` not set by
 *         qorb_endpoint_options_init(), a value out of range);
 *         QORB_EBADADDR (a malformed `listen`: no port, a port over 65535,
 *         a host name instead of a numeric address, an IPv6 address
 *         without brackets, trailing characters, a Unix path that is empty
 *         or too long); -errno from socket(), bind() or listen() (e.g.
 *         -EADDRINUSE, -EACCES) or from thread creation; QORB_ENOTSUP
 *         (libmicrohttpd built without epoll); QORB_ENOMEM.
 * Ownership: the options are copied. A Unix socket file is created (a stale
 * one, which nothing listens on any more, is replaced) and removed by
 * qorb_endpoint_free().
 * Thread: any for loop == NULL; the loop's thread otherwise.
 */
QORB_EXTERN int qorb_endpoint_new(qorb_endpoint_t **out, struct ev_loop *loop,
                                  const qorb_endpoint_options_t *opts,
                                  char *err, size_t errlen);

/**
 * The TCP port the endpoint listens on: the one chosen by the system when
 * `listen` asked for port 0.
 * @return the port (1 to 65535), 0 for a Unix socket, QORB_EINVAL for NULL.
 * Thread: any.
 */
QORB_EXTERN int qorb_endpoint_port(const qorb_endpoint_t *e);

/**
 * Serve the statistics of `pool` too. Pools appear in the order they were
 * added.
 * @return 0, QORB_EINVAL (NULL), QORB_EBUSY (already added), QORB_ENOMEM.
 * Ownership: `pool` is borrowed until qorb_endpoint_remove_pool() or
 * qorb_endpoint_free(): remove it before closing it.
 * Thread: any (the pool list has a lock of its own).
 */
QORB_EXTERN int qorb_endpoint_add_pool(qorb_endpoint_t *e, qorb_pool_t *pool);

/**
 * Stop serving `pool`. When this returns, the endpoint no longer touches
 * it (a request being answered on another thread is finished first), so
 * the pool may be closed.
 * @return 0, QORB_EINVAL (NULL, or `pool` was not added).
 * Thread: any.
 */
QORB_EXTERN int qorb_endpoint_remove_pool(qorb_endpoint_t *e,
                                          qorb_pool_t *pool);

/**
 * Stop listening, close every connection and free the endpoint. With the
 * endpoint's own thread, the thread is joined first. Afterwards the loop
 * holds no watcher of the endpoint's. The pools are not touched.
 * @return 0, QORB_EINVAL (NULL).
 * Ownership: `e` is gone.
 * Thread: any for the endpoint's own thread; the loop's thread otherwise
 * (from a callback of that loop too).
 */
QORB_EXTERN int qorb_endpoint_free(qorb_endpoint_t *e);

#ifdef __cplusplus
}
#endif
#endif /* QORB_ENDPOINT_H */
