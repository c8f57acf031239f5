/* SPDX-License-Identifier: MIT */
/*
 * redis_blocking.c: qorb-redis's blocking flavour. A redisContext from
 * redisConnectNonBlock(), driven on the pool loop with one ev_io, and
 * handed to claimants in blocking mode (REDIS_BLOCK, a blocking socket),
 * because they call redisCommand() on their own threads. Over plain TCP our
 * own ops leave it that way: they send and receive with MSG_DONTWAIT (and
 * MSG_NOSIGNAL), format their commands themselves and feed the replies to
 * the context's own reader (redisReaderFeed, redisGetReplyFromReader), so a
 * recycle costs no fcntl(2) and raises no SIGPIPE. Over TLS (hiredis 1.x)
 * the bytes must go through hiredis's TLS layer: each op then switches the
 * socket to non-blocking and uses redisAppendCommandArgv, redisBufferWrite
 * and redisBufferRead, and switches it back at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "../conn_wait.h"
#include "redis_int.h"

/* ------------------------------------------------------------------------
 * Blocking flavour: I/O on the loop
 * ------------------------------------------------------------------------ */

void qorb__redis_blk_unwatch(qr_conn_t *k) {
  if (k->io_events != 0) {
    ev_io_stop(k->loop, &k->io);
    k->io_events = 0;
  }
}

static void qr_blk_watch(qr_conn_t *k, int events) {
  if (k->io_events == events) return;
  if (k->io_events != 0) ev_io_stop(k->loop, &k->io);
  ev_io_set(&k->io, k->c->fd, events);
  ev_io_start(k->loop, &k->io);
  k->io_events = events;
}

/* Switch the socket and hiredis's idea of it between the loop's
 * non-blocking use and the claimant's blocking use. */
static int qr_blk_mode(qr_conn_t *k, int blocking) {
  redisContext *c = k->c;

  if (fcntl(c->fd, F_SETFL, blocking ? k->fl_block : k->fl_nonblock) != 0)
    return -errno;
  if (blocking)
    c->flags |= REDIS_BLOCK;
  else
    c->flags &= ~REDIS_BLOCK;
  return 0;
}

int qorb__redis_obuf_pending(const redisContext *c) {
  return c->obuf != NULL && c->obuf[0] != '\0';
}

/* Bytes of the op's commands not sent yet. */
static int qr_blk_unsent(const qr_conn_t *k) {
  return k->raw ? k->woff < k->wlen : qorb__redis_obuf_pending(k->c);
}

/* Send what we can of the op's commands. @return 0 (with *done 1 once all
 * is sent) or a negative code with the error text recorded. */
static int qr_blk_send(qr_conn_t *k, int *done) {
  int rc;

  *done = 0;
  if (k->raw) {
    while (k->woff < k->wlen) {
      ssize_t n = send(k->c->fd, k->wbuf + k->woff, k->wlen - k->woff,
                       MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        k->woff += (size_t)n;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return 0;
      } else if (n < 0 && errno != EINTR) {
        rc = errno;
        qorb__redis_err(k, "%s", strerror(rc));
        return qorb__redis_errno_gone(rc) ? QORB_EGONE
                                          : qorb__redis_opcode(k->opkind);
      }
    }
    *done = 1;
    return 0;
  }
  if (k->sigpipe_guard) {
    qr_sigpipe_t g;
    qorb__redis_sigpipe_block(&g);
    rc = redisBufferWrite(k->c, done);
    qorb__redis_sigpipe_restore(&g);
  } else {
    rc = redisBufferWrite(k->c, done);
  }
  return rc == REDIS_OK ? 0 : -1;
}

/* Read what has arrived into the context's reader. @return 0 or a
 * negative code with the error text recorded. */
static int qr_blk_recv(qr_conn_t *k) {
  char buf[16 * 1024];
  ssize_t n;

  if (!k->raw) return redisBufferRead(k->c) == REDIS_OK ? 0 : -1;
  for (;;) {
    n = recv(k->c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) break;
    if (n == 0) {
      qorb__redis_err(k, "server closed the connection");
      return QORB_EGONE;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno != EINTR) {
      int e = errno;
      qorb__redis_err(k, "%s", strerror(e));
      return qorb__redis_errno_gone(e) ? QORB_EGONE
                                       : qorb__redis_opcode(k->opkind);
    }
  }
  if (redisReaderFeed(k->c->reader, buf, (size_t)n) != REDIS_OK) {
    qorb__redis_err(k, "out of memory");
    return QORB_ENOMEM;
  }
  return 0;
}

/* A hiredis I/O error: the text, and the code (EOF or a reset is the
 * server going away). */
static void qr_blk_io_fail(qr_conn_t *k) {
  redisContext *c = k->c;
  const char *text = c->errstr;

  /* hiredis's TLS layer reports a failed handshake (an untrusted
   * certificate, ...) as an I/O error with errno 0: "Success". */
  if (text[0] == '\0' || strcmp(text, "Success") == 0)
    text = k->cfg->tls != NULL ? "TLS handshake or I/O failed" : "I/O error";
  qorb__redis_err(k, "%s", text);
  qorb__redis_fail(k, qorb__redis_ctx_gone(c->err, c->errstr)
                         ? QORB_EGONE
                         : qorb__redis_opcode(k->opkind));
}

/* Every reply is in: hand the context over in blocking mode. */
static void qr_blk_succeed(qr_conn_t *k) {
  redisContext *c = k->c;
  qorb_op_t *op;
  int rc;

  qorb__redis_blk_unwatch(k);
  if (c->reader->pos < c->reader->len) {
    qorb__redis_err(k, "unexpected data after the last reply");
    qorb__redis_fail(k, QORB_EPROTO);
    return;
  }
  /* Raw ops never leave blocking mode, except the connect. */
  if ((!k->raw || k->opkind == QR_OP_CONNECT) &&
      (rc = qr_blk_mode(k, 1)) != 0) {
    qorb__redis_err(k, "fcntl: %s", strerror(-rc));
    qorb__redis_fail(k, rc);
    return;
  }
  if (k->opkind == QR_OP_CONNECT && k->cfg->command_timeout_ms > 0) {
    /* hiredis applies a timeout only to a blocking context. */
    struct timeval tv;
    tv.tv_sec = (time_t)(k->cfg->command_timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)(k->cfg->command_timeout_ms % 1000) * 1000;
    if (redisSetTimeout(c, tv) != REDIS_OK) {
      qorb__redis_err(k, "setting the command timeout: %s", c->errstr);
      qorb__redis_fail(k, QORB_ECONNECT);
      return;
    }
  }
  op = k->op;
  k->op = NULL;
  qorb_op_done(op, 0);
}

/* Take every complete reply out of the reader and check it against the
 * op's steps: 1 once the last step is answered, 0 while more is to come, or
 * a negative code with the error text recorded. */
static int qr_blk_replies(qr_conn_t *k) {
  for (;;) {
    void *reply = NULL;
    int rc;

    if (redisGetReplyFromReader(k->c, &reply) != REDIS_OK) {
      qorb__redis_err(k, "protocol error: %s", k->c->errstr);
      return QORB_EPROTO;
    }
    if (reply == NULL) return 0; /* wait for more */
    if (k->next >= k->nsteps) {
      freeReplyObject(reply);
      qorb__redis_err(k, "unexpected reply");
      return QORB_EPROTO;
    }
    rc = qorb__redis_reply(k, (enum qr_step)k->steps[k->next], reply);
    freeReplyObject(reply);
    if (rc < 0) return rc;
    if (rc == 0 && ++k->next == k->nsteps) return 1;
  }
}

/* The op's replies so far: fail it, finish it, or wait for more. */
static void qr_blk_drain(qr_conn_t *k) {
  int rc = qr_blk_replies(k);
  if (rc < 0)
    qorb__redis_fail(k, rc);
  else if (rc == 1)
    qr_blk_succeed(k);
}

/* connect(2) finished: did it work? Then start TLS if configured. */
static int qr_blk_connected(qr_conn_t *k) {
  int err = 0;
  socklen_t len = sizeof(err);

  if (getsockopt(k->c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    qorb__redis_err(k, "%s", strerror(err));
    return -err;
  }
  k->connecting = 0;
#if QR_TLS
  if (k->cfg->tls != NULL &&
      redisInitiateSSLWithContext(k->c, (redisSSLContext *)k->cfg->tls) !=
          REDIS_OK) {
    qorb__redis_err(k, "TLS: %s", k->c->errstr);
    return QORB_ECONNECT;
  }
#endif
  return 0;
}

static void qr_blk_io_cb(struct ev_loop *loop, ev_io *w, int revents) {
  qr_conn_t *k = w->data;
  (void)loop;

  if (k->op == NULL) { /* cannot happen: no watcher between ops */
    qorb__redis_blk_unwatch(k);
    return;
  }
  if (k->connecting) {
    int rc;
    if (!(revents & EV_WRITE)) return;
    if ((rc = qr_blk_connected(k)) != 0) {
      qorb__redis_fail(k, k->opkind == QR_OP_CONNECT ? QORB_ECONNECT : rc);
      return;
    }
  }
  if (qr_blk_unsent(k)) {
    int done = 0, rc = qr_blk_send(k, &done);
    if (rc == -1) {
      qr_blk_io_fail(k); /* hiredis's error, in the context */
      return;
    }
    if (rc != 0) {
      qorb__redis_fail(k, rc);
      return;
    }
    qr_blk_watch(k, done ? EV_READ : EV_READ | EV_WRITE);
  } else if (k->io_events != EV_READ) {
    qr_blk_watch(k, EV_READ);
  }
  if (revents & EV_READ) {
    int rc = qr_blk_recv(k);
    if (rc == -1) {
      qr_blk_io_fail(k);
      return;
    }
    if (rc != 0) {
      qorb__redis_fail(k, rc);
      return;
    }
    qr_blk_drain(k);
  }
}

/* Start a check or recycle on an idle blocking connection. */
int qorb__redis_blk_start(qr_conn_t *k, qorb_op_t *op, enum qr_op kind) {
  redisContext *c = k->c;
  int rc, done = 0;

  k->op = op;
  k->opkind = kind;
  if (k->broken || c->err) {
    qorb__redis_err(k, "connection is broken: %s",
                    c->errstr[0] != '\0' ? c->errstr : "an earlier op failed");
    k->op = NULL;
    return QORB_ECLOSED;
  }
  if (!k->raw && (rc = qr_blk_mode(k, 0)) != 0) {
    qorb__redis_err(k, "fcntl: %s", strerror(-rc));
    k->op = NULL;
    return rc;
  }
  if ((rc = qorb__redis_build(k, kind)) != 0) {
    qorb__redis_err(k, "queueing commands: %s", qorb_strerror(rc));
    k->op = NULL;
    k->broken = 1; /* some commands may be queued: never reuse */
    return rc;
  }
  /* Send at once: the socket is almost always writable, and this saves a
   * loop iteration on every recycle. A failure is reported from the
   * watcher, which tries again and meets it again (hiredis keeps its error
   * in c->err; a raw send fails the same way twice), never from inside
   * this call. */
  if (qr_blk_send(k, &done) != 0) done = 0;
  qr_blk_watch(k, done ? EV_READ : EV_READ | EV_WRITE);
  return 0;
}

int qorb__redis_blk_connect(qr_conn_t *k, const qorb_addr_t *addr) {
  redisContext *c;
  int fl, rc;

  /* redisConnectNonBlock never waits: the address is numeric (no DNS),
   * and connect(2) returns EINPROGRESS. On loopback a refusal may be
   * immediate; then c->err says so. */
  c = redisConnectNonBlock(addr->host, (int)addr->port);
  if (c == NULL) return QORB_ENOMEM;
  k->c = c;
  if (c->err) {
    qorb__redis_err(k, "%s", c->errstr);
    return QORB_ECONNECT;
  }
  if (k->cfg->keepalive && redisEnableKeepAlive(c) != REDIS_OK) {
    qorb__redis_err(k, "keepalive: %s", c->errstr);
    return QORB_ECONNECT;
  }
  fl = fcntl(c->fd, F_GETFL);
  if (fl < 0) {
    rc = -errno;
    qorb__redis_err(k, "fcntl: %s", strerror(errno));
    return rc;
  }
  k->fl_nonblock = fl | O_NONBLOCK;
  k->fl_block = fl & ~O_NONBLOCK;
  k->raw = k->cfg->tls == NULL;
  if ((rc = qorb__redis_build(k, QR_OP_CONNECT)) != 0) {
    qorb__redis_err(k, "queueing commands: %s", qorb_strerror(rc));
    return rc;
  }
  k->connecting = 1;
  ev_io_init(&k->io, qr_blk_io_cb, c->fd, EV_WRITE);
  k->io.data = k;
  k->io_events = EV_WRITE;
  ev_io_start(k->loop, &k->io);
  return 0;
}

/* ------------------------------------------------------------------------
 * Blocking flavour: the recycle on the releasing thread and the next owner's
 * ------------------------------------------------------------------------ */

int qorb__redis_blk_reset_send(qr_conn_t *k) {
  int rc, done = 0;

  /* Raw I/O only: over TLS the bytes go through hiredis's TLS layer,
   * which needs the socket non-blocking (a mode switch per release). */
  if (k->c == NULL || !k->raw || k->op != NULL || k->reset_pending) return 1;
  k->opkind = QR_OP_RECYCLE;
  if ((rc = qorb__redis_build(k, QR_OP_RECYCLE)) != 0) {
    k->broken = 1;
    return rc;
  }
  if ((rc = qr_blk_send(k, &done)) != 0) {
    k->broken = 1;
    return rc < 0 ? rc : QORB_EBROKEN;
  }
  /* Whatever did not fit (never, on an idle socket) is sent by the
   * finish. */
  k->reset_pending = 1;
  return 0;
}

int qorb__redis_blk_reset_finish(qr_conn_t *k, int wait_ms, char *err,
                                 size_t errlen) {
  int64_t deadline = wait_ms > 0 ? qorb__conn_mono_ms() + wait_ms : 0;
  int rc;

  if (!k->reset_pending) return 0;
  k->errout = err;
  k->errout_len = errlen;
  for (;;) {
    int done = 0, w;

    if (qr_blk_unsent(k) && (rc = qr_blk_send(k, &done)) != 0) break;
    if ((rc = qr_blk_recv(k)) != 0) break;
    if ((rc = qr_blk_replies(k)) == 1 &&
        k->c->reader->pos < k->c->reader->len) {
      qorb__redis_err(k, "unexpected data after the last reply");
      rc = QORB_EPROTO;
    }
    if (rc != 0) break;
    if (wait_ms <= 0) {
      k->errout = NULL;
      return QORB_EAGAIN;
    }
    w = qorb__conn_wait(k->c->fd,
                        (short)(POLLIN | (qr_blk_unsent(k) ? POLLOUT : 0)),
                        deadline);
    if (w == 0) {
      qorb__redis_err(k, "no answer in %d ms", wait_ms);
      rc = QORB_ETIMEDOUT;
      break;
    }
    if (w < 0) {
      qorb__redis_err(k, "poll: %s", strerror(errno));
      rc = QORB_ERECYCLE;
      break;
    }
  }
  k->reset_pending = 0;
  k->errout = NULL;
  if (rc == 1) return 0;
  k->broken = 1;
  if (rc == QORB_EGONE) k->gone = 1;
  return rc;
}
