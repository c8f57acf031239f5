/* SPDX-License-Identifier: MIT */
/*
 * echo_connector.c: a complete qorb connector in one file, for a line echo
 * server over TCP. Read it top to bottom before writing your own; each op
 * says what qorb expects of it and why.
 *
 * The contract in five points (connector.h has the full text):
 *
 *  1. Each connection is an object of ours (`echo_conn_t`). qorb never
 *     looks inside; it hands the object back to every op and to `close`.
 *  2. The asynchronous ops (connect, check, prepare, recycle) start work
 *     and return 0, and later finish it by calling qorb_op_done(op, status)
 *     exactly once, on the pool loop. If an op fails before it has started
 *     anything, it returns a negative code instead, and then it must not
 *     call qorb_op_done().
 *  3. qorb enforces every timeout itself. When one expires, or when the
 *     pool closes, it calls `close`, which must abort whatever is in flight
 *     WITHOUT calling qorb_op_done(): stop the watchers, close the socket,
 *     free the object.
 *  4. All ops run on the pool loop thread, except `needs_recycle`, which
 *     runs on whatever thread releases a claim. It must not block, do I/O
 *     or touch loop state.
 *  5. qorb_op_done() is the op's last word. qorb acts on it later in the
 *     same loop iteration (never inside the call), and after a failure
 *     that action is `close`. So finish all bookkeeping first (stop the
 *     watcher, clear the op), call it last, and touch nothing after it.
 *
 * The protocol is as small as it gets: the server sends back every byte it
 * receives. A health check is a real round trip ("ping\n" -> "ping\n"). An
 * echo connection carries no session state, so there is nothing to
 * prepare for a claimant or to clean after one: `prepare` and `recycle`
 * are NULL, and `needs_recycle` only has to say whether a claimant left
 * the connection broken.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "echo_connector.h"

#define ECHO_PING "ping\n"
#define ECHO_PING_LEN (sizeof(ECHO_PING) - 1)

/*
 * What the connection is doing on the loop. Between ops it is IDLE and no
 * watcher is active: while a claimant owns the connection, the loop must
 * not touch its socket.
 */
typedef enum echo_state {
  ECHO_IDLE,       /* no op in flight */
  ECHO_CONNECTING, /* connect(2) in progress: waiting for writability */
  ECHO_PING_SEND,  /* health check: writing "ping\n" */
  ECHO_PING_RECV   /* health check: reading the echo back */
} echo_state_t;

typedef struct echo_conn {
  int fd;
  echo_state_t state;
  qorb_op_t *op; /* the op in flight, NULL when IDLE */
  struct ev_loop *loop;
  ev_io io; /* one watcher, re-aimed at EV_READ or EV_WRITE as needed */
  size_t done; /* bytes of the ping sent, or of its echo received */
  char buf[ECHO_PING_LEN]; /* the echo, which may arrive in pieces */

  /*
   * Set by the claimant (echo_roundtrip) when a request failed half way:
   * the stream may hold part of a reply that the next claimant would
   * read as its own. Read by needs_recycle on the releasing thread, which
   * is the claimant's own thread (or one it handed the claim to, which
   * orders the write before the read).
   */
  int broken;
} echo_conn_t;

/* ------------------------------------------------------------------------
 * Finishing an op
 * ------------------------------------------------------------------------
 * Every op ends here, success or failure: stop the watcher so that nothing
 * fires while the connection is idle or claimed, forget the op, and only
 * then tell qorb. The connection is qorb's again from that moment: it may
 * be claimed by another thread or closed, so nothing here touches `c`
 * after qorb_op_done().
 */
static void echo_finish(echo_conn_t *c, int status) {
  qorb_op_t *op = c->op;

  ev_io_stop(c->loop, &c->io);
  c->op = NULL;
  c->state = ECHO_IDLE;
  qorb_op_done(op, status);
}

/* A failed op records its detail for the stats (last_error) first. */
static void echo_fail(echo_conn_t *c, int status, const char *what) {
  qorb_op_set_error(c->op, "%s %s: %s", what, qorb_op_addr(c->op)->text,
                    qorb_strerror(status));
  echo_finish(c, status);
}

/* Point the watcher at the other direction (only legal while stopped). */
static void echo_watch(echo_conn_t *c, int events) {
  ev_io_stop(c->loop, &c->io);
  ev_io_set(&c->io, c->fd, events);
  ev_io_start(c->loop, &c->io);
}

/* ------------------------------------------------------------------------
 * The I/O callback: one function drives every state
 * ------------------------------------------------------------------------ */
static void echo_io_cb(struct ev_loop *loop, ev_io *w, int revents) {
  echo_conn_t *c = w->data;
  ssize_t n;
  (void)loop;
  (void)revents;

  switch (c->state) {
    case ECHO_CONNECTING: {
      /* A non-blocking connect(2) reports its result as writability;
       * SO_ERROR says whether it worked. */
      int err = 0;
      socklen_t len = sizeof(err);
      if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
      if (err != 0) {
        echo_fail(c, -err, "connect");
        return;
      }
      echo_finish(c, 0);
      return;
    }

    case ECHO_PING_SEND:
      /* MSG_NOSIGNAL: a peer that hung up must give EPIPE, not kill the
       * process with SIGPIPE. */
      n = send(c->fd, &ECHO_PING[c->done], ECHO_PING_LEN - c->done,
               MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        echo_fail(c, -errno, "check send to");
        return;
      }
      c->done += (size_t)n;
      if (c->done < ECHO_PING_LEN) return; /* partial write: wait again */
      c->state = ECHO_PING_RECV;
      c->done = 0;
      echo_watch(c, EV_READ);
      return;

    case ECHO_PING_RECV:
      /* The echo may come in pieces: gather it in buf. Never read past
       * the bytes we expect, so a misbehaving server's extra bytes are
       * seen by the next check rather than swallowed. */
      n = recv(c->fd, c->buf + c->done, ECHO_PING_LEN - c->done, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        echo_fail(c, -errno, "check recv from");
        return;
      }
      if (n == 0) {
        echo_fail(c, QORB_ECLOSED, "check recv from");
        return;
      }
      c->done += (size_t)n;
      if (c->done < ECHO_PING_LEN) return;
      if (memcmp(c->buf, ECHO_PING, ECHO_PING_LEN) != 0) {
        echo_fail(c, QORB_EPROTO, "check of");
        return;
      }
      echo_finish(c, 0);
      return;

    case ECHO_IDLE:
    default:
      /* No watcher is active while idle; stop it if we ever get here. */
      ev_io_stop(c->loop, &c->io);
      return;
  }
}

/* ------------------------------------------------------------------------
 * connect: open a connection to one backend
 * ------------------------------------------------------------------------
 * qorb gives the backend's address, already numeric: the resolver did any
 * name lookup. The socket is non-blocking, so connect(2) returns at once
 * and the result arrives as writability on the loop.
 *
 * Until this returns 0 the connection object is ours alone: on an early
 * failure we free it and return the error (no qorb_op_done). Once we
 * return 0 with *conn set, it is qorb's to close.
 */
static int echo_connect(void *ctx, qorb_op_t *op, const qorb_addr_t *addr,
                        void **conn) {
  struct sockaddr_storage ss;
  socklen_t sslen;
  echo_conn_t *c;
  int one = 1;
  int rc;
  (void)ctx;

  memset(&ss, 0, sizeof(ss));
  if (addr->family == AF_INET6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(addr->port);
    if (inet_pton(AF_INET6, addr->host, &sin6->sin6_addr) != 1)
      return QORB_EBADADDR;
    sslen = sizeof(*sin6);
  } else {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(addr->port);
    if (inet_pton(AF_INET, addr->host, &sin->sin_addr) != 1)
      return QORB_EBADADDR;
    sslen = sizeof(*sin);
  }

  c = calloc(1, sizeof(*c));
  if (c == NULL) return QORB_ENOMEM;
  c->fd = socket(addr->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    rc = -errno;
    goto fail;
  }
  /* Small request/response messages: do not wait to coalesce them. */
  (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  if (connect(c->fd, (struct sockaddr *)&ss, sslen) != 0 &&
      errno != EINPROGRESS) {
    /* Failed before starting (on loopback a refusal can be immediate). */
    rc = -errno;
    qorb_op_set_error(op, "connect %s: %s", addr->text, qorb_strerror(rc));
    goto fail;
  }

  /* Connected or in progress: either way the socket becomes writable, and
   * the callback finishes the op on a later loop iteration. Even a connect
   * that completed at once could call qorb_op_done() right here (that is
   * allowed), but one path is easier to read than two. */
  c->loop = qorb_op_loop(op);
  c->op = op;
  c->state = ECHO_CONNECTING;
  ev_io_init(&c->io, echo_io_cb, c->fd, EV_WRITE);
  c->io.data = c;
  ev_io_start(c->loop, &c->io);
  *conn = c;
  return 0;

fail:
  if (c->fd >= 0) close(c->fd);
  free(c);
  return rc;
}

/* ------------------------------------------------------------------------
 * check: a health check of an idle connection
 * ------------------------------------------------------------------------
 * qorb runs it every health_interval_ms on idle connections and bounds it
 * by health_check_timeout_ms: a server that accepts the ping and never
 * answers is caught by that timer, which calls echo_close(). The check
 * must be a real round trip; a connection that merely looks open (no
 * error on the socket) may be dead at the other end.
 */
static int echo_check(void *ctx, qorb_op_t *op, void *conn) {
  echo_conn_t *c = conn;
  (void)ctx;

  c->op = op;
  c->state = ECHO_PING_SEND;
  c->done = 0;
  echo_watch(c, EV_WRITE);
  return 0;
}

/* ------------------------------------------------------------------------
 * needs_recycle: the release-time decision
 * ------------------------------------------------------------------------
 * Runs on the releasing thread, not the loop, and on the fast path of
 * qorb_release(): no I/O, no locks, no blocking. 0 sends the connection
 * straight back to the idle set; a negative code closes it. (1 would ask
 * for `recycle`, but there is nothing to clean on an echo connection.)
 */
static int echo_needs_recycle(void *ctx, void *conn) {
  const echo_conn_t *c = conn;
  (void)ctx;

  return c->broken ? QORB_EBROKEN : 0;
}

/* ------------------------------------------------------------------------
 * close: abort, close, free. Must not fail.
 * ------------------------------------------------------------------------
 * qorb calls this when a connection is retired: a timeout expired on an op
 * in flight, an op failed, the backend went away, the connection was
 * released broken, it reached its lifetime, or the pool is closing. An op
 * may be in flight; it is abandoned without qorb_op_done(). Stopping the
 * watcher matters as much as closing the socket: the loop must hold no
 * watcher that points into freed memory.
 */
static void echo_close(void *ctx, void *conn) {
  echo_conn_t *c = conn;
  (void)ctx;

  if (c->loop != NULL) ev_io_stop(c->loop, &c->io);
  if (c->fd >= 0) close(c->fd);
  free(c);
}

/*
 * idle_fd and peek let the pool watch idle connections: when the socket of
 * a connection nobody holds becomes readable, the pool asks peek, which
 * looks without waiting. An echo server never speaks first, so anything
 * but "nothing yet" means the connection is over: EOF (the server closed
 * it: QORB_EGONE, which also has the pool check the other connections to
 * that server) or stray bytes.
 */
static int echo_idle_fd(void *ctx, void *conn) {
  echo_conn_t *c = conn;
  (void)ctx;
  return c->fd;
}

static int echo_peek(void *ctx, void *conn) {
  echo_conn_t *c = conn;
  char b;
  ssize_t n;
  (void)ctx;
  n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return QORB_EGONE;
  if (n > 0) return QORB_EPROTO;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
  return QORB_EGONE;
}

/*
 * The op table: static const, versioned. prepare and recycle are NULL
 * (nothing to do), destroy is NULL (the connector has no context).
 */
static const qorb_connector_ops_t echo_ops = {
    QORB_CONNECTOR_OPS_VERSION,
    "echo",
    echo_connect,
    echo_check,
    NULL, /* prepare */
    NULL, /* recycle */
    echo_needs_recycle,
    echo_close,
    NULL, /* destroy */
    echo_idle_fd,
    echo_peek,
    NULL, /* reset_send: nothing to reset */
    NULL, /* reset_finish */
};

int echo_connector_new(qorb_connector_t **out) {
  if (out == NULL) return QORB_EINVAL;
  return qorb_connector_new(out, &echo_ops, NULL);
}

/* ------------------------------------------------------------------------
 * Helpers for the claimant
 * ------------------------------------------------------------------------
 * Everything below runs on the claimant's thread while it holds the claim.
 * The loop does not touch a claimed connection, so no locking is needed.
 */

int echo_conn_fd(const qorb_claim_t *claim) {
  const echo_conn_t *c = claim != NULL ? qorb_claim_conn(claim) : NULL;

  return c != NULL ? c->fd : QORB_EINVAL;
}

static int64_t echo_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for `events` on fd until `deadline` (< 0: forever). */
static int echo_wait(int fd, short events, int64_t deadline) {
  for (;;) {
    struct pollfd pfd;
    int wait_ms = -1;
    int n;

    if (deadline >= 0) {
      int64_t left = deadline - echo_now_ms();
      if (left <= 0) return QORB_ETIMEDOUT;
      wait_ms = left > 60000 ? 60000 : (int)left;
    }
    pfd.fd = fd;
    pfd.events = events;
    pfd.revents = 0;
    n = poll(&pfd, 1, wait_ms);
    if (n > 0) return 0; /* ready, or an error the next call reports */
    if (n < 0 && errno != EINTR) return -errno;
  }
}

static int echo_roundtrip_io(echo_conn_t *c, const char *line, size_t len,
                             char *in, int timeout_ms) {
  int64_t deadline = timeout_ms < 0 ? -1 : echo_now_ms() + timeout_ms;
  size_t done = 0;
  ssize_t n;
  int rc;

  while (done < len) {
    n = send(c->fd, line + done, len - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if ((rc = echo_wait(c->fd, POLLOUT, deadline)) != 0) return rc;
    } else if (n < 0 && errno != EINTR) {
      return -errno;
    }
  }
  done = 0;
  while (done < len) {
    n = recv(c->fd, in + done, len - done, 0);
    if (n > 0) {
      done += (size_t)n;
    } else if (n == 0) {
      return QORB_ECLOSED;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if ((rc = echo_wait(c->fd, POLLIN, deadline)) != 0) return rc;
    } else if (errno != EINTR) {
      return -errno;
    }
  }
  return memcmp(in, line, len) == 0 ? 0 : QORB_EPROTO;
}

int echo_roundtrip(qorb_claim_t *claim, const char *msg, char *reply,
                   size_t cap, int timeout_ms) {
  char line[ECHO_MAX_LINE + 1], in[ECHO_MAX_LINE + 1];
  echo_conn_t *c;
  size_t len;
  int rc;

  if (claim == NULL || msg == NULL) return QORB_EINVAL;
  c = qorb_claim_conn(claim);
  if (c == NULL) return QORB_EINVAL;
  len = strnlen(msg, ECHO_MAX_LINE + 1);
  if (len > ECHO_MAX_LINE || memchr(msg, '\n', len) != NULL)
    return QORB_EINVAL; /* nothing was sent: the connection is fine */
  memcpy(line, msg, len);
  line[len] = '\n';

  rc = echo_roundtrip_io(c, line, len + 1, in, timeout_ms);
  if (rc != 0) {
    /* Half a request may be in flight or half a reply unread: this
     * connection must not serve anyone else. needs_recycle sees the flag
     * when it is released, and qorb closes it. */
    c->broken = 1;
    return rc;
  }
  if (reply != NULL && cap > 0) {
    size_t m = len < cap - 1 ? len : cap - 1;
    memcpy(reply, in, m);
    reply[m] = '\0';
  }
  return 0;
}
