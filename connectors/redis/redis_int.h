/* SPDX-License-Identifier: MIT */
/*
 * redis_int.h: what the files of qorb-redis share. The configuration and
 * the connection object, the steps and ops of the pipeline, and the
 * functions each file offers the others, grouped by file:
 *
 *   redis.c           the op table, options, constructor and accessors
 *   redis_pipeline.c  which commands an op sends, and the reply checks
 *   redis_blocking.c  the blocking driver (redisContext on one ev_io)
 *   redis_async.c     the async driver (redisAsyncContext, our ev hooks)
 *   redis_sigpipe.c   the SIGPIPE guard around hiredis's writes
 *
 * Private to libqorb-redis (and its unit tests).
 */
#ifndef QORB_REDIS_INT_H
#define QORB_REDIS_INT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#if defined(QORB_REDIS_HAVE_TLS) && HIREDIS_MAJOR >= 1
#include <hiredis/hiredis_ssl.h>
#define QR_TLS 1
#else
#define QR_TLS 0
#endif

#include <qorb/redis.h>

#define QR_MAX_STEPS 10

/* ------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------ */

typedef struct qr_cfg {
  qorb_redis_flavour_t flavour;
  qorb_redis_role_t role;
  qorb_redis_recycle_t recycle;
  int keepalive;
  int database;
  unsigned command_timeout_ms;
  char *password;
  char *user;
  char *client_name;
  struct redisSSLContext *tls;
  char dbtext[16]; /* the database number as SELECT's argument */
} qr_cfg_t;

/* ------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------ */

/* What one reply is expected to answer. */
enum qr_step {
  QR_PROBE_RESET, /* connect: RESET, to learn whether the server has it */
  QR_RESET,       /* recycle: RESET */
  QR_AUTH,
  QR_SELECT,
  QR_SETNAME,
  QR_DISCARD,
  QR_UNWATCH,
  QR_PROBE_NOEVICT, /* connect: CLIENT NO-EVICT off, to learn if it exists */
  QR_PROBE_NOTOUCH, /* connect: CLIENT NO-TOUCH off, likewise */
  QR_NOEVICT,       /* recycle: CLIENT NO-EVICT off */
  QR_NOTOUCH,       /* recycle: CLIENT NO-TOUCH off */
  QR_ROLE,
  QR_USER,        /* hook: the command of qorb_redis_hook_command() */
  QR_PING /* always last: PING <token> */
};

enum qr_op { QR_OP_CONNECT, QR_OP_CHECK, QR_OP_RECYCLE, QR_OP_HOOK };

typedef struct qr_conn {
  uint32_t magic;
  const qr_cfg_t *cfg;
  struct ev_loop *loop;
  qorb_op_t *op;     /* op in flight, NULL between ops */
  enum qr_op opkind; /* its kind, for error codes and texts */

  /* The op's pipeline: steps[next] is what the next reply answers. */
  unsigned char steps[QR_MAX_STEPS];
  unsigned nsteps, next, skipped;
  uint64_t seq;    /* ops started, for the PING token */
  char token[32];  /* PING's argument for this op */
  int has_reset;   /* the server knows RESET (learnt at connect) */
  int has_noevict; /* ... CLIENT NO-EVICT (7.0+), which RESET keeps on 7.0 */
  int has_notouch; /* ... CLIENT NO-TOUCH (7.2+) */
  int broken;      /* an op failed or the connection died: never reuse */
  int gone;        /* ... because the server went away (QORB_EGONE) */
  int sigpipe_guard; /* SIGPIPE is neither ignored nor blocked */
  int reset_pending; /* blocking, raw: the recycle pipeline was sent by the
                        releasing thread (qorb__redis_blk_reset_send); its
                        replies are still to be read */
  char *errout;      /* with no op: where qorb__redis_err writes (the
                        first failure only), NULL: nowhere */
  size_t errout_len;
  /* QR_OP_HOOK: the command, for qorb__redis_build only (the caller's
     arrays), and the judge of its reply */
  int hook_argc;
  const char **hook_argv;
  const size_t *hook_len;
  qorb_redis_hook_reply_cb hook_judge;
  void *hook_arg;

  /* blocking flavour */
  redisContext *c;
  ev_io io;
  int io_events;      /* events io is started with, 0 when stopped */
  int connecting;     /* waiting for connect(2) to finish */
  int fl_block, fl_nonblock; /* the socket's file status flags */
  int raw;            /* plain TCP: our own I/O (see redis_blocking.c) */
  char *wbuf;         /* raw: the op's commands, formatted */
  size_t wlen, woff, wcap; /* raw: bytes in wbuf, sent, allocated */

  /* async flavour */
  redisAsyncContext *ac; /* NULL once hiredis has let go of it */
} qr_conn_t;

/* ------------------------------------------------------------------------
 * redis_pipeline.c
 * ------------------------------------------------------------------------ */

/*
 * Queue the op's commands: into k->wbuf for a raw blocking connection, into
 * hiredis's output buffer otherwise (with qorb__redis_async_reply as the
 * callback of each async command). Resets the pipeline and makes the op's
 * PING token.
 * @return 0, QORB_ENOMEM or QORB_EPROTO (too many steps).
 */
int qorb__redis_build(qr_conn_t *k, enum qr_op kind);

/*
 * Check one reply against the step it answers.
 * @return 0 (the step is done), 1 (the reply was skipped: the step still
 *         waits), or a negative code with the error text recorded.
 */
int qorb__redis_reply(qr_conn_t *k, enum qr_step step, const redisReply *r);

/* The code for a failure of an op of this kind that has no more precise
   one. */
int qorb__redis_opcode(enum qr_op kind);

/* Record the detail of a failure of the op in flight, prefixed with the
   op's name; with no op, into k->errout if set; else nothing. */
void qorb__redis_err(qr_conn_t *k, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * End the op in flight with a failure: mark the connection broken (and
 * gone, for QORB_EGONE), stop the blocking watcher, clear the op and call qorb_op_done() last (its contract
 * is in <qorb/connector.h>).
 */
void qorb__redis_fail(qr_conn_t *k, int status);

/* 1 when a socket error (an errno) means the server side went away: a
   reset, a broken pipe, a keepalive or user timeout, no route. */
int qorb__redis_errno_gone(int e);

/* 1 when a hiredis context error (err, errstr) means the server went
   away: EOF, or an I/O error of the kinds above. */
int qorb__redis_ctx_gone(int err, const char *errstr);

/* ------------------------------------------------------------------------
 * redis.c
 * ------------------------------------------------------------------------ */

/*
 * The peek op: look at an idle connection without waiting, reading or
 * sending (hiredis's buffers and a recv(MSG_PEEK | MSG_DONTWAIT)). 0 when
 * nothing arrived, QORB_EGONE when the server closed it (EOF, a reset),
 * QORB_EPROTO when bytes arrived that nobody asked for (an unread reply, a
 * push), QORB_EBROKEN when an earlier op failed.
 */
int qorb__redis_peek(void *ctx, void *conn);

/* The op table that qorb_redis_connector_new() uses; tests build
   connectors of their own from it. */
extern const qorb_connector_ops_t qorb__redis_ops;

/* ------------------------------------------------------------------------
 * redis_blocking.c
 * ------------------------------------------------------------------------ */

/* Start connecting; the connect op's pipeline goes out once connected. */
int qorb__redis_blk_connect(qr_conn_t *k, const qorb_addr_t *addr);
/* Start a check or recycle on an idle connection. */
int qorb__redis_blk_start(qr_conn_t *k, qorb_op_t *op, enum qr_op kind);
/* Stop the connection's watcher, if it runs. */
void qorb__redis_blk_unwatch(qr_conn_t *k);
/* Commands appended to the context and not sent yet. */
int qorb__redis_obuf_pending(const redisContext *c);

/* ------------------------------------------------------------------------
 * redis_async.c
 * ------------------------------------------------------------------------ */

/* Start connecting; the connect op's commands queue until connected. */
int qorb__redis_async_connect(qr_conn_t *k, const qorb_addr_t *addr);
/* Start a check or recycle on an idle connection. */
int qorb__redis_async_start(qr_conn_t *k, qorb_op_t *op, enum qr_op kind);
/* Stop reading while the connection is idle or handed out. */
void qorb__redis_async_pause(qr_conn_t *k);
/* Let go of the context: every later callback of it does nothing. */
void qorb__redis_detach(qr_conn_t *k);
/* The hiredis callback of every command the pipeline queues. */
void qorb__redis_async_reply(redisAsyncContext *ac, void *r, void *privdata);

/* ------------------------------------------------------------------------
 * redis_sigpipe.c
 * ------------------------------------------------------------------------ */

typedef struct qr_sigpipe {
  sigset_t old;
  int was_pending;
} qr_sigpipe_t;

/* 1 when SIGPIPE is neither ignored nor blocked: writes need the guard. */
int qorb__redis_sigpipe_needed(void);
/* Block SIGPIPE for this thread around one write ... */
void qorb__redis_sigpipe_block(qr_sigpipe_t *g);
/* ... and put the mask back, consuming a SIGPIPE the write raised. */
void qorb__redis_sigpipe_restore(qr_sigpipe_t *g);

/*
 * The recycle without the pool loop (the connector's reset_send and
 * reset_finish), for a raw blocking connection: the releasing thread sends
 * the recycle pipeline; the next owner reads and checks its replies.
 * reset_send returns 0 (sent), 1 (not for this connection: TLS, the async
 * flavour) or a negative code (broken). reset_finish returns 0 (clean),
 * QORB_EAGAIN (wait_ms 0 and not all there) or a negative code with the
 * reason in err.
 */
int qorb__redis_blk_reset_send(qr_conn_t *k);
int qorb__redis_blk_reset_finish(qr_conn_t *k, int wait_ms, char *err,
                                 size_t errlen);

#endif /* QORB_REDIS_INT_H */
