/* SPDX-License-Identifier: MIT */
/*
 * redis.c: qorb-redis, the hiredis connector. One file, two flavours that
 * share everything but their I/O:
 *
 *   blocking  a redisContext from redisConnectNonBlock(), driven on the
 *             pool loop with one ev_io. It is handed to claimants in
 *             blocking mode (REDIS_BLOCK, a blocking socket), because they
 *             call redisCommand() on their own threads. Over plain TCP our
 *             own ops leave it that way: they send and receive with
 *             MSG_DONTWAIT (and MSG_NOSIGNAL), format their commands
 *             themselves and feed the replies to the context's own reader
 *             (redisReaderFeed, redisGetReplyFromReader), so a recycle
 *             costs no fcntl(2) and raises no SIGPIPE. Over TLS (hiredis
 *             1.x) the bytes must go through hiredis's TLS layer: each op
 *             then switches the socket to non-blocking and uses
 *             redisAppendCommandArgv, redisBufferWrite and redisBufferRead,
 *             and switches it back at the end.
 *   async     a redisAsyncContext from redisAsyncConnect(), attached to the
 *             pool loop with event hooks of our own (the same as hiredis's
 *             adapters/libev.h, plus two things it cannot do: reading is
 *             paused while the connection sits idle, so that hiredis never
 *             frees an idle context under the pool, and writes are guarded
 *             against SIGPIPE).
 *
 * Every op is one pipelined round trip: a list of commands ("steps") sent
 * at once, whose replies are checked in order by qr_reply(). The last step
 * is always a PING with a token of the op's own, so a reply that is out of
 * step (a claimant left one unread on the socket) can never pass as ours.
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
 * makes every later callback of that context a no-op. qorb_op_done() may
 * close and free the connection before it returns, so it is always the
 * last thing a callback does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

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

/* A tag at the start of every connection, so that the accessors refuse a
 * claim that does not come from a qorb-redis pool instead of misreading
 * it. */
#define QR_MAGIC 0x71726473u /* "qrds" */

/* Pub/sub replies still to come. hiredis 1.1 replaced sub.invalid with
 * sub.replies and counts pending UNSUBSCRIBEs. */
#if HIREDIS_MAJOR > 1 || (HIREDIS_MAJOR == 1 && HIREDIS_MINOR >= 1)
#define QR_SUB_PENDING(ac) \
  ((ac)->sub.replies.head != NULL || (ac)->sub.pending_unsubs != 0)
#else
#define QR_SUB_PENDING(ac) ((ac)->sub.invalid.head != NULL)
#endif

#define QR_MAX_STEPS 8
#define QR_MAX_NAME 128
/* Pub/sub messages skipped while waiting for RESET's reply. A connection
 * that keeps producing more than this is not worth saving. */
#define QR_MAX_SKIP 65536

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
  QR_ROLE,
  QR_PING /* always last: PING <token> */
};

enum qr_op { QR_OP_CONNECT, QR_OP_CHECK, QR_OP_RECYCLE };

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
  int broken;      /* an op failed or the connection died: never reuse */
  int sigpipe_guard; /* SIGPIPE is neither ignored nor blocked */

  /* blocking flavour */
  redisContext *c;
  ev_io io;
  int io_events;      /* events io is started with, 0 when stopped */
  int connecting;     /* waiting for connect(2) to finish */
  int fl_block, fl_nonblock; /* the socket's file status flags */
  int raw;            /* plain TCP: our own I/O (see the top of the file) */
  char *wbuf;         /* raw: the op's commands, formatted */
  size_t wlen, woff, wcap; /* raw: bytes in wbuf, sent, allocated */

  /* async flavour */
  redisAsyncContext *ac; /* NULL once hiredis has let go of it */
} qr_conn_t;

/* ------------------------------------------------------------------------
 * SIGPIPE
 * ------------------------------------------------------------------------
 * hiredis writes with write(2), so a peer that hung up raises SIGPIPE,
 * whose default action ends the process. A library must not change the
 * process's signal disposition; instead, when SIGPIPE is neither ignored
 * nor blocked, our writes on the loop block it for the thread, and consume
 * a SIGPIPE that they raised themselves (the libpq technique).
 */
typedef struct qr_sigpipe {
  sigset_t old;
  int was_pending;
} qr_sigpipe_t;

static int qr_sigpipe_needed(void) {
  struct sigaction sa;
  sigset_t cur;

  if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
      sa.sa_handler == SIG_IGN)
    return 0;
  if (pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0 &&
      sigismember(&cur, SIGPIPE) == 1)
    return 0;
  return 1;
}

static void qr_sigpipe_block(qr_sigpipe_t *g) {
  sigset_t s, pend;

  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &s, &g->old);
  g->was_pending = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) == 1;
}

static void qr_sigpipe_restore(qr_sigpipe_t *g) {
  sigset_t s, pend;
  int saved = errno;

  if (!g->was_pending && sigpending(&pend) == 0 &&
      sigismember(&pend, SIGPIPE) == 1) {
    struct timespec zero = {0, 0};
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    while (sigtimedwait(&s, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
  errno = saved;
}

/* ------------------------------------------------------------------------
 * Errors and finishing an op
 * ------------------------------------------------------------------------ */

static const char *qr_opname(enum qr_op kind) {
  switch (kind) {
    case QR_OP_CONNECT: return "connect";
    case QR_OP_CHECK: return "check";
    case QR_OP_RECYCLE: return "recycle";
  }
  return "op";
}

/* The code for a failure that has no more precise one. */
static int qr_opcode(enum qr_op kind) {
  switch (kind) {
    case QR_OP_CONNECT: return QORB_ECONNECT;
    case QR_OP_CHECK: return QORB_ECHECK;
    case QR_OP_RECYCLE: return QORB_ERECYCLE;
  }
  return QORB_EPROTO;
}

/* Record the detail of a failure, prefixed with the op's name. */
static void qr_err(qr_conn_t *k, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void qr_err(qr_conn_t *k, const char *fmt, ...) {
  char buf[256];
  va_list ap;

  if (k->op == NULL) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  qorb_op_set_error(k->op, "%s: %s", qr_opname(k->opkind), buf);
}

static void qr_blk_unwatch(qr_conn_t *k) {
  if (k->io_events != 0) {
    ev_io_stop(k->loop, &k->io);
    k->io_events = 0;
  }
}

/*
 * End the op in flight with a failure. The connection is marked broken
 * (qorb closes it; any op started on it meanwhile fails at once). After
 * qorb_op_done() returns, `k` may be gone.
 */
static void qr_fail(qr_conn_t *k, int status) {
  qorb_op_t *op = k->op;

  k->broken = 1;
  if (k->c != NULL) qr_blk_unwatch(k);
  k->op = NULL;
  if (op != NULL) qorb_op_done(op, status);
}

/* ------------------------------------------------------------------------
 * The pipeline: which commands an op sends
 * ------------------------------------------------------------------------ */

static void qr_async_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Append to the raw output buffer, growing it. */
static int qr_wbuf_add(qr_conn_t *k, const char *data, size_t n) {
  if (k->wlen + n > k->wcap) {
    size_t cap = k->wcap ? k->wcap : 256;
    char *b;
    while (cap < k->wlen + n) cap *= 2;
    b = realloc(k->wbuf, cap);
    if (b == NULL) return QORB_ENOMEM;
    k->wbuf = b;
    k->wcap = cap;
  }
  memcpy(k->wbuf + k->wlen, data, n);
  k->wlen += n;
  return 0;
}

/* One command in the protocol's array-of-bulk-strings form, as hiredis's
 * redisFormatCommandArgv() would write it, without its allocation. */
static int qr_wbuf_command(qr_conn_t *k, int argc, const char **argv,
                           const size_t *len) {
  char head[32];
  int i, n, rc;

  n = snprintf(head, sizeof(head), "*%d\r\n", argc);
  if ((rc = qr_wbuf_add(k, head, (size_t)n)) != 0) return rc;
  for (i = 0; i < argc; i++) {
    n = snprintf(head, sizeof(head), "$%zu\r\n", len[i]);
    if ((rc = qr_wbuf_add(k, head, (size_t)n)) != 0 ||
        (rc = qr_wbuf_add(k, argv[i], len[i])) != 0 ||
        (rc = qr_wbuf_add(k, "\r\n", 2)) != 0)
      return rc;
  }
  return 0;
}

/* Queue one command (argv form: binary safe, no format parsing). */
static int qr_push(qr_conn_t *k, enum qr_step step, int argc,
                   const char **argv) {
  size_t len[4];
  int i, rc;

  if (k->nsteps >= QR_MAX_STEPS || argc > 4) return QORB_EPROTO;
  for (i = 0; i < argc; i++) len[i] = strlen(argv[i]);
  if (k->c != NULL && k->raw) {
    if ((rc = qr_wbuf_command(k, argc, argv, len)) != 0) return rc;
  } else {
    if (k->c != NULL)
      rc = redisAppendCommandArgv(k->c, argc, argv, len);
    else
      rc = redisAsyncCommandArgv(k->ac, qr_async_reply, NULL, argc, argv,
                                 len);
    if (rc != REDIS_OK) return QORB_ENOMEM;
  }
  k->steps[k->nsteps++] = (unsigned char)step;
  return 0;
}

#define QR_PUSH(k, step, ...)                                            \
  do {                                                                   \
    const char *qr_argv_[] = {__VA_ARGS__};                              \
    int qr_rc_ = qr_push((k), (step),                                    \
                         (int)(sizeof(qr_argv_) / sizeof(qr_argv_[0])), \
                         qr_argv_);                                      \
    if (qr_rc_ != 0) return qr_rc_;                                      \
  } while (0)

/* AUTH as configured. */
static int qr_push_auth(qr_conn_t *k) {
  const qr_cfg_t *cfg = k->cfg;

  if (cfg->password == NULL) return 0;
  if (cfg->user != NULL)
    QR_PUSH(k, QR_AUTH, "AUTH", cfg->user, cfg->password);
  else
    QR_PUSH(k, QR_AUTH, "AUTH", cfg->password);
  return 0;
}

/*
 * Build the op's pipeline.
 *   connect  [RESET] [AUTH] [SELECT] [CLIENT SETNAME] [ROLE] PING
 *   check    [ROLE] PING
 *   recycle  RESET [AUTH] [SELECT] [CLIENT SETNAME] PING            (6.2+)
 *            DISCARD UNWATCH [AUTH] SELECT CLIENT SETNAME PING    (older)
 * RESET comes first on connect because it de-authenticates: on a fresh
 * connection it changes nothing, and its reply tells us whether the
 * server has it (Redis answers RESET before AUTH).
 */
static int qr_build(qr_conn_t *k, enum qr_op kind) {
  const qr_cfg_t *cfg = k->cfg;
  int rc;

  k->nsteps = k->next = k->skipped = 0;
  k->wlen = k->woff = 0;
  k->seq++;
  snprintf(k->token, sizeof(k->token), "qorb-%llu",
           (unsigned long long)k->seq);

  switch (kind) {
    case QR_OP_CONNECT:
      if (cfg->recycle == QORB_REDIS_RECYCLE_AUTO ||
          cfg->recycle == QORB_REDIS_RECYCLE_RESET)
        QR_PUSH(k, QR_PROBE_RESET, "RESET");
      if ((rc = qr_push_auth(k)) != 0) return rc;
      if (cfg->database != 0) QR_PUSH(k, QR_SELECT, "SELECT", cfg->dbtext);
      if (cfg->client_name != NULL)
        QR_PUSH(k, QR_SETNAME, "CLIENT", "SETNAME", cfg->client_name);
      if (cfg->role != QORB_REDIS_ROLE_ANY) QR_PUSH(k, QR_ROLE, "ROLE");
      break;

    case QR_OP_CHECK:
      if (cfg->role != QORB_REDIS_ROLE_ANY) QR_PUSH(k, QR_ROLE, "ROLE");
      break;

    case QR_OP_RECYCLE:
      if (k->has_reset) {
        QR_PUSH(k, QR_RESET, "RESET");
        if ((rc = qr_push_auth(k)) != 0) return rc;
        if (cfg->database != 0) QR_PUSH(k, QR_SELECT, "SELECT", cfg->dbtext);
        if (cfg->client_name != NULL)
          QR_PUSH(k, QR_SETNAME, "CLIENT", "SETNAME", cfg->client_name);
      } else {
        /* Without RESET, undo what a claimant commonly leaves: a MULTI
         * (DISCARD), WATCHed keys (UNWATCH), another user (AUTH), another
         * database (SELECT, always) and a client name (set it back, or
         * clear it with ""). A subscribed connection fails DISCARD and is
         * closed. */
        QR_PUSH(k, QR_DISCARD, "DISCARD");
        QR_PUSH(k, QR_UNWATCH, "UNWATCH");
        if ((rc = qr_push_auth(k)) != 0) return rc;
        QR_PUSH(k, QR_SELECT, "SELECT", cfg->dbtext);
        QR_PUSH(k, QR_SETNAME, "CLIENT", "SETNAME",
                cfg->client_name != NULL ? cfg->client_name : "");
      }
      break;
  }
  QR_PUSH(k, QR_PING, "PING", k->token);
  return 0;
}

/* ------------------------------------------------------------------------
 * Checking replies
 * ------------------------------------------------------------------------ */

static int qr_is_status(const redisReply *r, const char *text) {
  return r->type == REDIS_REPLY_STATUS && r->str != NULL &&
         strcmp(r->str, text) == 0;
}

static const char *qr_type_name(int type) {
  switch (type) {
    case REDIS_REPLY_STRING: return "string";
    case REDIS_REPLY_ARRAY: return "array";
    case REDIS_REPLY_INTEGER: return "integer";
    case REDIS_REPLY_NIL: return "nil";
    case REDIS_REPLY_STATUS: return "status";
    case REDIS_REPLY_ERROR: return "error";
  }
  return "unknown";
}

/* A pub/sub message or (un)subscribe confirmation, as a subscribed RESP2
 * connection receives them until RESET takes effect. */
static int qr_is_pubsub(const redisReply *r) {
  static const char *const kinds[] = {
      "message",    "pmessage",     "smessage",     "subscribe", "psubscribe",
      "ssubscribe", "unsubscribe",  "punsubscribe", "sunsubscribe", "pong"};
  const redisReply *e;
  size_t i;

  if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) return 0;
  e = r->element[0];
  if (e == NULL || e->type != REDIS_REPLY_STRING || e->str == NULL) return 0;
  for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
    if (strcmp(e->str, kinds[i]) == 0) return 1;
  return 0;
}

/* Describe a reply we did not expect, for the error text. */
static void qr_err_reply(qr_conn_t *k, const char *what, const redisReply *r) {
  if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS)
    qr_err(k, "%s: %s", what, r->str != NULL ? r->str : "");
  else
    qr_err(k, "%s: unexpected %s reply", what, qr_type_name(r->type));
}

/* The error code for a server error reply to a step. */
static int qr_err_code(qr_conn_t *k, const redisReply *r) {
  return r->type == REDIS_REPLY_ERROR ? qr_opcode(k->opkind) : QORB_EPROTO;
}

static int qr_check_role(qr_conn_t *k, const redisReply *r) {
  const qr_cfg_t *cfg = k->cfg;
  const redisReply *e;
  int is_master, is_replica;

  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
      (e = r->element[0]) == NULL || e->type != REDIS_REPLY_STRING ||
      e->str == NULL) {
    qr_err_reply(k, "ROLE", r);
    return qr_err_code(k, r);
  }
  is_master = strcmp(e->str, "master") == 0;
  is_replica = strcmp(e->str, "slave") == 0 || strcmp(e->str, "replica") == 0;
  if (cfg->role == QORB_REDIS_ROLE_MASTER && !is_master) {
    qr_err(k, "ROLE: backend is a %s, the pool wants a master", e->str);
    return QORB_EROLE;
  }
  if (cfg->role == QORB_REDIS_ROLE_REPLICA && !is_replica) {
    qr_err(k, "ROLE: backend is a %s, the pool wants a replica", e->str);
    return QORB_EROLE;
  }
  return 0;
}

/*
 * Check one reply against the step it answers.
 * @return 0 (the step is done), 1 (the reply was skipped: the step still
 *         waits), or a negative code with the error text recorded.
 */
static int qr_reply(qr_conn_t *k, enum qr_step step, const redisReply *r) {
  switch (step) {
    case QR_PROBE_RESET:
      if (qr_is_status(r, "RESET")) {
        k->has_reset = 1;
        return 0;
      }
      if (r->type == REDIS_REPLY_ERROR &&
          k->cfg->recycle == QORB_REDIS_RECYCLE_AUTO) {
        /* Older than 6.2, renamed, or not allowed: fall back. */
        k->has_reset = 0;
        return 0;
      }
      if (r->type == REDIS_REPLY_ERROR) {
        qr_err(k, "RESET (required by the recycle mode): %s",
               r->str != NULL ? r->str : "");
        return QORB_ENOTSUP;
      }
      qr_err_reply(k, "RESET", r);
      return QORB_EPROTO;

    case QR_RESET:
      if (qr_is_status(r, "RESET")) return 0;
      /* A subscribed connection may deliver messages ahead of RESET's
       * reply; nothing after it is the claimant's. */
      if (qr_is_pubsub(r) && k->skipped < QR_MAX_SKIP) {
        k->skipped++;
        return 1;
      }
      qr_err_reply(k, "RESET", r);
      return qr_err_code(k, r);

    case QR_AUTH:
      if (qr_is_status(r, "OK")) return 0;
      qr_err_reply(k, "AUTH", r);
      return r->type == REDIS_REPLY_ERROR ? QORB_EAUTH : QORB_EPROTO;

    case QR_SELECT:
      if (qr_is_status(r, "OK")) return 0;
      qr_err_reply(k, "SELECT", r);
      return qr_err_code(k, r);

    case QR_SETNAME:
      if (qr_is_status(r, "OK")) return 0;
      qr_err_reply(k, "CLIENT SETNAME", r);
      return qr_err_code(k, r);

    case QR_DISCARD:
      /* "ERR DISCARD without MULTI" is the common, clean answer. */
      if (qr_is_status(r, "OK") ||
          (r->type == REDIS_REPLY_ERROR && r->str != NULL &&
           strstr(r->str, "without MULTI") != NULL))
        return 0;
      qr_err_reply(k, "DISCARD", r);
      return qr_err_code(k, r);

    case QR_UNWATCH:
      if (qr_is_status(r, "OK")) return 0;
      qr_err_reply(k, "UNWATCH", r);
      return qr_err_code(k, r);

    case QR_ROLE:
      return qr_check_role(k, r);

    case QR_PING:
      if (r->type == REDIS_REPLY_STRING && r->str != NULL &&
          strcmp(r->str, k->token) == 0)
        return 0;
      if (r->type == REDIS_REPLY_ERROR) {
        qr_err_reply(k, "PING", r);
        return qr_opcode(k->opkind);
      }
      /* Someone else's reply where ours should be: the stream is out of
       * step, and only closing the connection makes it safe. */
      qr_err(k, "PING: reply out of step (%s)", qr_type_name(r->type));
      return QORB_EPROTO;
  }
  return QORB_EPROTO;
}

/* ------------------------------------------------------------------------
 * Blocking flavour: I/O on the loop
 * ------------------------------------------------------------------------ */

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

static int qr_obuf_pending(const redisContext *c) {
  return c->obuf != NULL && c->obuf[0] != '\0';
}

/* Bytes of the op's commands not sent yet. */
static int qr_blk_unsent(const qr_conn_t *k) {
  return k->raw ? k->woff < k->wlen : qr_obuf_pending(k->c);
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
        qr_err(k, "%s", strerror(rc));
        return rc == EPIPE || rc == ECONNRESET ? QORB_ECLOSED
                                               : qr_opcode(k->opkind);
      }
    }
    *done = 1;
    return 0;
  }
  if (k->sigpipe_guard) {
    qr_sigpipe_t g;
    qr_sigpipe_block(&g);
    rc = redisBufferWrite(k->c, done);
    qr_sigpipe_restore(&g);
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
      qr_err(k, "server closed the connection");
      return QORB_ECLOSED;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno != EINTR) {
      int e = errno;
      qr_err(k, "%s", strerror(e));
      return e == ECONNRESET ? QORB_ECLOSED : qr_opcode(k->opkind);
    }
  }
  if (redisReaderFeed(k->c->reader, buf, (size_t)n) != REDIS_OK) {
    qr_err(k, "out of memory");
    return QORB_ENOMEM;
  }
  return 0;
}

/* A hiredis I/O error: the text, and the code (EOF is the server hanging
 * up). */
static void qr_blk_io_fail(qr_conn_t *k) {
  redisContext *c = k->c;
  const char *text = c->errstr;

  /* hiredis's TLS layer reports a failed handshake (an untrusted
   * certificate, ...) as an I/O error with errno 0: "Success". */
  if (text[0] == '\0' || strcmp(text, "Success") == 0)
    text = k->cfg->tls != NULL ? "TLS handshake or I/O failed" : "I/O error";
  qr_err(k, "%s", text);
  qr_fail(k, c->err == REDIS_ERR_EOF ? QORB_ECLOSED : qr_opcode(k->opkind));
}

/* Every reply is in: hand the context over in blocking mode. */
static void qr_blk_succeed(qr_conn_t *k) {
  redisContext *c = k->c;
  qorb_op_t *op;
  int rc;

  qr_blk_unwatch(k);
  if (c->reader->pos < c->reader->len) {
    qr_err(k, "unexpected data after the last reply");
    qr_fail(k, QORB_EPROTO);
    return;
  }
  /* Raw ops never leave blocking mode, except the connect. */
  if ((!k->raw || k->opkind == QR_OP_CONNECT) &&
      (rc = qr_blk_mode(k, 1)) != 0) {
    qr_err(k, "fcntl: %s", strerror(-rc));
    qr_fail(k, rc);
    return;
  }
  if (k->opkind == QR_OP_CONNECT && k->cfg->command_timeout_ms > 0) {
    /* hiredis applies a timeout only to a blocking context. */
    struct timeval tv;
    tv.tv_sec = (time_t)(k->cfg->command_timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)(k->cfg->command_timeout_ms % 1000) * 1000;
    if (redisSetTimeout(c, tv) != REDIS_OK) {
      qr_err(k, "setting the command timeout: %s", c->errstr);
      qr_fail(k, QORB_ECONNECT);
      return;
    }
  }
  op = k->op;
  k->op = NULL;
  qorb_op_done(op, 0);
}

/* Take every complete reply out of the reader and check it. */
static void qr_blk_drain(qr_conn_t *k) {
  redisContext *c = k->c;

  for (;;) {
    void *reply = NULL;
    int rc;

    if (redisGetReplyFromReader(c, &reply) != REDIS_OK) {
      qr_err(k, "protocol error: %s", c->errstr);
      qr_fail(k, QORB_EPROTO);
      return;
    }
    if (reply == NULL) return; /* wait for more */
    if (k->next >= k->nsteps) {
      freeReplyObject(reply);
      qr_err(k, "unexpected reply");
      qr_fail(k, QORB_EPROTO);
      return;
    }
    rc = qr_reply(k, (enum qr_step)k->steps[k->next], reply);
    freeReplyObject(reply);
    if (rc < 0) {
      qr_fail(k, rc);
      return;
    }
    if (rc == 0 && ++k->next == k->nsteps) {
      qr_blk_succeed(k);
      return;
    }
  }
}

/* connect(2) finished: did it work? Then start TLS if configured. */
static int qr_blk_connected(qr_conn_t *k) {
  int err = 0;
  socklen_t len = sizeof(err);

  if (getsockopt(k->c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    qr_err(k, "%s", strerror(err));
    return -err;
  }
  k->connecting = 0;
#if QR_TLS
  if (k->cfg->tls != NULL &&
      redisInitiateSSLWithContext(k->c, (redisSSLContext *)k->cfg->tls) !=
          REDIS_OK) {
    qr_err(k, "TLS: %s", k->c->errstr);
    return QORB_ECONNECT;
  }
#endif
  return 0;
}

static void qr_blk_io_cb(struct ev_loop *loop, ev_io *w, int revents) {
  qr_conn_t *k = w->data;
  (void)loop;

  if (k->op == NULL) { /* cannot happen: no watcher between ops */
    qr_blk_unwatch(k);
    return;
  }
  if (k->connecting) {
    int rc;
    if (!(revents & EV_WRITE)) return;
    if ((rc = qr_blk_connected(k)) != 0) {
      qr_fail(k, k->opkind == QR_OP_CONNECT ? QORB_ECONNECT : rc);
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
      qr_fail(k, rc);
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
      qr_fail(k, rc);
      return;
    }
    qr_blk_drain(k);
  }
}

/* Start a check or recycle on an idle blocking connection. */
static int qr_blk_start(qr_conn_t *k, qorb_op_t *op, enum qr_op kind) {
  redisContext *c = k->c;
  int rc, done = 0;

  k->op = op;
  k->opkind = kind;
  if (k->broken || c->err) {
    qr_err(k, "connection is broken: %s",
           c->errstr[0] != '\0' ? c->errstr : "an earlier op failed");
    k->op = NULL;
    return QORB_ECLOSED;
  }
  if (!k->raw && (rc = qr_blk_mode(k, 0)) != 0) {
    qr_err(k, "fcntl: %s", strerror(-rc));
    k->op = NULL;
    return rc;
  }
  if ((rc = qr_build(k, kind)) != 0) {
    qr_err(k, "queueing commands: %s", qorb_strerror(rc));
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

static int qr_blk_connect(qr_conn_t *k, const qorb_addr_t *addr) {
  redisContext *c;
  int fl, rc;

  /* redisConnectNonBlock never waits: the address is numeric (no DNS),
   * and connect(2) returns EINPROGRESS. On loopback a refusal may be
   * immediate; then c->err says so. */
  c = redisConnectNonBlock(addr->host, (int)addr->port);
  if (c == NULL) return QORB_ENOMEM;
  k->c = c;
  if (c->err) {
    qr_err(k, "%s", c->errstr);
    return QORB_ECONNECT;
  }
  if (k->cfg->keepalive && redisEnableKeepAlive(c) != REDIS_OK) {
    qr_err(k, "keepalive: %s", c->errstr);
    return QORB_ECONNECT;
  }
  fl = fcntl(c->fd, F_GETFL);
  if (fl < 0) {
    rc = -errno;
    qr_err(k, "fcntl: %s", strerror(errno));
    return rc;
  }
  k->fl_nonblock = fl | O_NONBLOCK;
  k->fl_block = fl & ~O_NONBLOCK;
  k->raw = k->cfg->tls == NULL;
  if ((rc = qr_build(k, QR_OP_CONNECT)) != 0) {
    qr_err(k, "queueing commands: %s", qorb_strerror(rc));
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
    qr_sigpipe_block(&g);
    redisAsyncHandleWrite(ac); /* may free e */
    qr_sigpipe_restore(&g);
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
  free(e);
}

/*
 * Stop reading while the connection is idle or handed out. hiredis turns
 * reading back on after its next write (every command is a write), so a
 * claimant never notices; meanwhile a server hang-up is not seen, and
 * hiredis cannot free the context while the pool holds it. The next check
 * or the claimant's next command sees the hang-up instead.
 */
static void qr_async_pause(qr_conn_t *k) {
  qr_ev_t *e;

  if (k->ac == NULL || (e = k->ac->ev.data) == NULL) return;
  ev_io_stop(e->loop, &e->rev);
}

static int qr_async_attach(qr_conn_t *k, redisAsyncContext *ac) {
  qr_ev_t *e;

  if (ac->ev.data != NULL) return QORB_EBUSY;
  e = calloc(1, sizeof(*e));
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

/* Let go of the context: every later callback of it does nothing. */
static void qr_detach(qr_conn_t *k) {
  if (k->ac != NULL) {
    k->ac->data = NULL;
    k->ac = NULL;
  }
  k->broken = 1;
}

static void qr_async_reply(redisAsyncContext *ac, void *r, void *privdata) {
  qr_conn_t *k = ac->data;
  int rc;
  (void)privdata;

  if (k == NULL) return; /* detached: closed, or an abandoned op */
  if (r == NULL) {
    /* hiredis is freeing the context (the server went away, or a write
     * failed): it is no longer ours to free. */
    int eof = ac->err == REDIS_ERR_EOF;
    if (k->op != NULL)
      qr_err(k, "%s", ac->errstr != NULL && ac->errstr[0] != '\0'
                          ? ac->errstr
                          : "connection lost");
    qr_detach(k);
    qr_fail(k, eof ? QORB_ECLOSED : qr_opcode(k->opkind));
    return;
  }
  if (k->op == NULL) return; /* leftover of a failed op: k is broken */
  if (k->next >= k->nsteps) {
    qr_err(k, "unexpected reply");
    qr_fail(k, QORB_EPROTO);
    return;
  }
  rc = qr_reply(k, (enum qr_step)k->steps[k->next], r);
  if (rc < 0) {
    qr_fail(k, rc);
    return;
  }
  if (rc == 0 && ++k->next == k->nsteps) {
    qorb_op_t *op = k->op;
    k->op = NULL;
    qr_async_pause(k);
    qorb_op_done(op, 0);
  }
}

static void qr_async_on_connect(const redisAsyncContext *cac, int status) {
  redisAsyncContext *ac = (redisAsyncContext *)(uintptr_t)cac;
  qr_conn_t *k = ac->data;

  if (k == NULL || status == REDIS_OK) return;
  /* hiredis frees the context when this returns. */
  qr_err(k, "%s", ac->errstr != NULL && ac->errstr[0] != '\0'
                      ? ac->errstr
                      : "connect failed");
  qr_detach(k);
  qr_fail(k, QORB_ECONNECT);
}

static void qr_async_on_disconnect(const redisAsyncContext *cac, int status) {
  redisAsyncContext *ac = (redisAsyncContext *)(uintptr_t)cac;
  qr_conn_t *k = ac->data;
  (void)status;

  if (k == NULL) return;
  /* hiredis frees the context when this returns. */
  qr_err(k, "%s", ac->errstr != NULL && ac->errstr[0] != '\0'
                      ? ac->errstr
                      : "server closed the connection");
  qr_detach(k);
  qr_fail(k, QORB_ECLOSED);
}

static int qr_async_start(qr_conn_t *k, qorb_op_t *op, enum qr_op kind) {
  int rc;

  k->op = op;
  k->opkind = kind;
  if (k->broken || k->ac == NULL ||
      (k->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)) != 0) {
    qr_err(k, "connection is broken");
    k->op = NULL;
    return QORB_ECLOSED;
  }
  if ((rc = qr_build(k, kind)) != 0) {
    qr_err(k, "queueing commands: %s", qorb_strerror(rc));
    k->op = NULL;
    k->broken = 1;
    return rc;
  }
  return 0;
}

static int qr_async_connect(qr_conn_t *k, const qorb_addr_t *addr) {
  redisAsyncContext *ac;
  int rc;

  ac = redisAsyncConnect(addr->host, (int)addr->port);
  if (ac == NULL) return QORB_ENOMEM;
  if (ac->err) {
    qr_err(k, "%s", ac->errstr);
    redisAsyncFree(ac);
    return QORB_ECONNECT;
  }
  k->ac = ac;
  ac->data = k;
  if (k->cfg->keepalive && redisEnableKeepAlive(&ac->c) != REDIS_OK) {
    qr_err(k, "keepalive: %s", ac->c.errstr);
    return QORB_ECONNECT;
  }
#if QR_TLS
  if (k->cfg->tls != NULL &&
      redisInitiateSSLWithContext(&ac->c, (redisSSLContext *)k->cfg->tls) !=
          REDIS_OK) {
    qr_err(k, "TLS: %s", ac->c.errstr);
    return QORB_ECONNECT;
  }
#endif
  if ((rc = qr_async_attach(k, ac)) != 0) return rc;
  redisAsyncSetConnectCallback(ac, qr_async_on_connect);
  redisAsyncSetDisconnectCallback(ac, qr_async_on_disconnect);
  /* Commands queue up until the connection is made; hiredis writes them
   * on the first writable event. */
  if ((rc = qr_build(k, QR_OP_CONNECT)) != 0) {
    qr_err(k, "queueing commands: %s", qorb_strerror(rc));
    return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * The connector ops
 * ------------------------------------------------------------------------ */

static void qr_free_conn(qr_conn_t *k) {
  if (k->c != NULL) {
    qr_blk_unwatch(k);
    redisFree(k->c);
    k->c = NULL;
  }
  if (k->ac != NULL) {
    redisAsyncContext *ac = k->ac;
    qr_detach(k);
    /* Inside one of this context's callbacks this only marks it; hiredis
     * frees it on the way out. Pending callbacks (ours, detached, or a
     * claimant's) run with a NULL reply. */
    redisAsyncFree(ac);
  }
  free(k->wbuf);
  k->magic = 0;
  free(k);
}

static int qr_connect(void *ctx, qorb_op_t *op, const qorb_addr_t *addr,
                      void **conn) {
  const qr_cfg_t *cfg = ctx;
  qr_conn_t *k;
  int rc;

  k = calloc(1, sizeof(*k));
  if (k == NULL) return QORB_ENOMEM;
  k->magic = QR_MAGIC;
  k->cfg = cfg;
  k->loop = qorb_op_loop(op);
  k->op = op; /* for qr_err() while starting */
  k->opkind = QR_OP_CONNECT;
  k->sigpipe_guard = qr_sigpipe_needed();
  if (cfg->flavour == QORB_REDIS_ASYNC)
    rc = qr_async_connect(k, addr);
  else
    rc = qr_blk_connect(k, addr);
  if (rc != 0) {
    /* Failed before starting: no qorb_op_done(), and the object is ours. */
    k->op = NULL;
    qr_free_conn(k);
    return rc;
  }
  *conn = k;
  return 0;
}

static int qr_check(void *ctx, qorb_op_t *op, void *conn) {
  qr_conn_t *k = conn;
  (void)ctx;

  return k->c != NULL ? qr_blk_start(k, op, QR_OP_CHECK)
                      : qr_async_start(k, op, QR_OP_CHECK);
}

static int qr_recycle(void *ctx, qorb_op_t *op, void *conn) {
  qr_conn_t *k = conn;
  (void)ctx;

  return k->c != NULL ? qr_blk_start(k, op, QR_OP_RECYCLE)
                      : qr_async_start(k, op, QR_OP_RECYCLE);
}

/*
 * The release-time decision, on the releasing thread, without I/O. A
 * claimant may have sent anything (SELECT, MULTI, WATCH, SUBSCRIBE, ...),
 * and nothing short of a round trip tells, so every release is recycled
 * unless the options say the claimants leave nothing behind. What can be
 * seen without I/O and cannot be cleaned closes the connection.
 */
static int qr_needs_recycle(void *ctx, void *conn) {
  const qr_cfg_t *cfg = ctx;
  qr_conn_t *k = conn;

  if (k->broken) return QORB_EBROKEN;
  if (k->c != NULL) {
    const redisContext *c = k->c;
    if (c->err) return QORB_EBROKEN;
    /* Commands appended and never sent: their replies would go to the
     * next claimant. */
    if (qr_obuf_pending(c)) return QORB_EBROKEN;
    /* Replies read and not taken. (A reply half read only happens with
     * an error on the context, caught above: in blocking mode hiredis
     * reads until a reply is complete. The reader's task index is no
     * guide: it stays at 0 after any call that found no reply.) */
    if (c->reader == NULL || c->reader->pos < c->reader->len)
      return QORB_EBROKEN;
  } else {
    const redisAsyncContext *ac = k->ac;
    if (ac == NULL) return QORB_EBROKEN; /* hiredis freed it */
    if (ac->err || ac->c.err) return QORB_EBROKEN;
    if ((ac->c.flags & (REDIS_SUBSCRIBED | REDIS_MONITORING |
                        REDIS_DISCONNECTING | REDIS_FREEING)) != 0)
      return QORB_EBROKEN;
    /* Callbacks outstanding: their replies are still to come. */
    if (ac->replies.head != NULL || QR_SUB_PENDING(ac))
      return QORB_EBROKEN;
  }
  if (cfg->recycle == QORB_REDIS_RECYCLE_NONE) {
    /* Straight back to idle with no op: pause reading here (the async
     * flavour is released on the loop thread). */
    if (k->ac != NULL) qr_async_pause(k);
    return 0;
  }
  return 1;
}

static void qr_close(void *ctx, void *conn) {
  (void)ctx;
  /* An op may be in flight: it is abandoned without qorb_op_done(). */
  ((qr_conn_t *)conn)->op = NULL;
  qr_free_conn(conn);
}

static void qr_destroy(void *ctx) {
  qr_cfg_t *cfg = ctx;

  if (cfg == NULL) return;
  free(cfg->password);
  free(cfg->user);
  free(cfg->client_name);
  free(cfg);
}

static const qorb_connector_ops_t qr_ops = {
    QORB_CONNECTOR_OPS_VERSION,
    "redis",
    qr_connect,
    qr_check,
    NULL, /* prepare: connect and recycle leave the connection ready */
    qr_recycle,
    qr_needs_recycle,
    qr_close,
    qr_destroy,
};

/* ------------------------------------------------------------------------
 * Options and the constructor
 * ------------------------------------------------------------------------ */

void qorb_redis_options_init_(qorb_redis_options_t *o, size_t size) {
  qorb_redis_options_t d;

  if (o == NULL) return;
  memset(&d, 0, sizeof(d));
  d.size = size;
  d.flavour = QORB_REDIS_BLOCKING;
  d.password = NULL;
  d.user = NULL;
  d.database = 0;
  d.client_name = NULL;
  d.role = QORB_REDIS_ROLE_ANY;
  d.recycle = QORB_REDIS_RECYCLE_AUTO;
  d.keepalive = 1;
  d.command_timeout_ms = 0;
  d.tls = NULL;
  memcpy(o, &d, size < sizeof(d) ? size : sizeof(d));
}

static int qr_bad(char *err, size_t errlen, int code, const char *what) {
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "invalid redis option: %s", what);
  return code;
}

/* A word Redis accepts as a user or client name: printable, no spaces. */
static int qr_word_ok(const char *s, size_t max) {
  size_t n = 0;

  for (; *s != '\0'; s++, n++)
    if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) return 0;
  return n >= 1 && n <= max;
}

static int qr_dup(char **dst, const char *src) {
  size_t n;

  *dst = NULL;
  if (src == NULL) return 0;
  n = strlen(src) + 1;
  *dst = malloc(n);
  if (*dst == NULL) return QORB_ENOMEM;
  memcpy(*dst, src, n);
  return 0;
}

int qorb_redis_connector_new(qorb_connector_t **out,
                             const qorb_redis_options_t *opts, char *err,
                             size_t errlen) {
  qorb_redis_options_t o;
  qr_cfg_t *cfg = NULL;
  int rc;

  if (err != NULL && errlen > 0) err[0] = '\0';
  if (out == NULL) return QORB_EINVAL;
  *out = NULL;
  qorb_redis_options_init(&o);
  if (opts != NULL) {
    if (opts->size == 0 || opts->size > sizeof(o))
      return qr_bad(err, errlen, QORB_EINVAL,
                    "options not initialised with qorb_redis_options_init()");
    memcpy(&o, opts, opts->size);
  }

  if (o.flavour != QORB_REDIS_BLOCKING && o.flavour != QORB_REDIS_ASYNC)
    return qr_bad(err, errlen, QORB_ECONFIG, "unknown flavour");
  if (o.role != QORB_REDIS_ROLE_ANY && o.role != QORB_REDIS_ROLE_MASTER &&
      o.role != QORB_REDIS_ROLE_REPLICA)
    return qr_bad(err, errlen, QORB_ECONFIG, "unknown role");
  if ((int)o.recycle < (int)QORB_REDIS_RECYCLE_AUTO ||
      (int)o.recycle > (int)QORB_REDIS_RECYCLE_NONE)
    return qr_bad(err, errlen, QORB_ECONFIG, "unknown recycle mode");
  if (o.database < 0)
    return qr_bad(err, errlen, QORB_ECONFIG, "database must be 0 or more");
  if (o.password != NULL && o.password[0] == '\0')
    return qr_bad(err, errlen, QORB_ECONFIG,
                  "password is empty (use NULL for no AUTH)");
  if (o.user != NULL && !qr_word_ok(o.user, 256))
    return qr_bad(err, errlen, QORB_ECONFIG,
                  "user must be 1 to 256 printable characters, no spaces");
  if (o.user != NULL && o.password == NULL)
    return qr_bad(err, errlen, QORB_ECONFIG, "user needs a password");
  if (o.client_name != NULL && !qr_word_ok(o.client_name, QR_MAX_NAME))
    return qr_bad(err, errlen, QORB_ECONFIG,
                  "client_name must be 1 to 128 printable characters, no "
                  "spaces");
  if (o.keepalive != 0 && o.keepalive != 1)
    return qr_bad(err, errlen, QORB_ECONFIG, "keepalive must be 0 or 1");
  if (o.command_timeout_ms > 86400000u)
    return qr_bad(err, errlen, QORB_ECONFIG,
                  "command_timeout_ms must be at most one day");
#if !QR_TLS
  if (o.tls != NULL)
    return qr_bad(err, errlen, QORB_ENOTSUP,
                  "tls needs hiredis 1.x built with TLS (hiredis_ssl)");
#endif

  cfg = calloc(1, sizeof(*cfg));
  if (cfg == NULL) return QORB_ENOMEM;
  cfg->flavour = o.flavour;
  cfg->role = o.role;
  cfg->recycle = o.recycle;
  cfg->keepalive = o.keepalive;
  cfg->database = o.database;
  cfg->command_timeout_ms = o.command_timeout_ms;
  cfg->tls = o.tls;
  snprintf(cfg->dbtext, sizeof(cfg->dbtext), "%d", o.database);
  if ((rc = qr_dup(&cfg->password, o.password)) != 0 ||
      (rc = qr_dup(&cfg->user, o.user)) != 0 ||
      (rc = qr_dup(&cfg->client_name, o.client_name)) != 0)
    goto fail;
  if ((rc = qorb_connector_new(out, &qr_ops, cfg)) != 0) goto fail;
  return 0;

fail:
  qr_destroy(cfg);
  return rc;
}

/* ------------------------------------------------------------------------
 * Accessors
 * ------------------------------------------------------------------------ */

static qr_conn_t *qr_claim_conn(const qorb_claim_t *claim) {
  qr_conn_t *k;

  if (claim == NULL) return NULL;
  k = qorb_claim_conn(claim);
  return (k != NULL && k->magic == QR_MAGIC) ? k : NULL;
}

struct redisContext *qorb_redis_ctx(const qorb_claim_t *claim) {
  qr_conn_t *k = qr_claim_conn(claim);
  return k != NULL ? k->c : NULL;
}

struct redisAsyncContext *qorb_redis_async(const qorb_claim_t *claim) {
  qr_conn_t *k = qr_claim_conn(claim);
  return k != NULL ? k->ac : NULL;
}
