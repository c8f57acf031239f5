/* SPDX-License-Identifier: MIT */
/*
 * echo_connector.h: a qorb connector for a line echo server over TCP
 * (examples/echo_server.c). It is written to be read before writing a
 * connector of your own: echo_connector.c walks through every op of
 * qorb_connector_ops_t and the rules qorb holds connectors to. The demo
 * (echo_demo.c) and the tests use it to drive a pool against real sockets
 * without a database.
 *
 * These are example symbols, so they use an `echo_` prefix: the `qorb_`
 * prefix belongs to the library.
 */
#ifndef ECHO_CONNECTOR_H
#define ECHO_CONNECTOR_H

#include <stddef.h>

#include <qorb/qorb.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Longest message echo_roundtrip() sends, without its newline. */
#define ECHO_MAX_LINE 1024

/**
 * Make an echo connector, to be given to qorb_pool_new().
 * @param out  receives the connector.
 * @return 0, QORB_EINVAL (NULL), QORB_ENOMEM.
 * Ownership: the pool that takes it frees it; otherwise free it with
 * qorb_connector_free(). Thread: any.
 */
int echo_connector_new(qorb_connector_t **out);

/**
 * The socket of a claimed echo connection, for programs that want to do
 * their own I/O on it. It is non-blocking. Do not close it: release the
 * claim (as broken if you left the stream in an unknown state).
 * @return the file descriptor, or QORB_EINVAL for a NULL claim.
 * Ownership: the pool's; valid until release. Thread: the claimant's.
 */
int echo_conn_fd(const qorb_claim_t *claim);

/**
 * One blocking request and response on a claimed echo connection: send
 * `msg` and a newline, read the echo back, check that it matches.
 * @param msg         the line to send, without a newline (at most
 *                    ECHO_MAX_LINE bytes, no '\n' inside).
 * @param reply       if not NULL, receives the echoed line without its
 *                    newline, truncated to `cap` - 1 bytes and terminated.
 * @param timeout_ms  bound on the whole round trip (poll(2) is used).
 * @return 0; QORB_EINVAL (NULL claim or msg, msg too long or with a
 *         newline); QORB_ETIMEDOUT; QORB_ECLOSED (the server hung up);
 *         QORB_EPROTO (the echo did not match); -errno (send/recv/poll).
 *         On any failure the connection is marked broken: releasing it
 *         closes it (the stream may hold half a reply), so the next
 *         claimant never reads this one's leftovers.
 * Thread: the claimant's (blocks it).
 */
int echo_roundtrip(qorb_claim_t *claim, const char *msg, char *reply,
                   size_t cap, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* ECHO_CONNECTOR_H */
