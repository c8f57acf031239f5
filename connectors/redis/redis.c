/* SPDX-License-Identifier: MIT */
/*
 * redis.c: qorb-redis, the hiredis connector: its op table, options,
 * constructor and accessors. Two flavours share everything but their I/O:
 *
 *   blocking  a redisContext driven on the pool loop with one ev_io, handed
 *             to claimants in blocking mode, for redisCommand() on their
 *             own threads (redis_blocking.c).
 *   async     a redisAsyncContext attached to the pool loop with event
 *             hooks of our own (redis_async.c).
 *
 * Every op is one pipelined round trip: a list of commands ("steps") sent
 * at once, whose replies are checked in order (redis_pipeline.c). The last
 * step is always a PING with a token of the op's own, so a reply that is
 * out of step (a claimant left one unread on the socket) can never pass as
 * ours. Both drivers guard hiredis's writes against SIGPIPE
 * (redis_sigpipe.c). redis_int.h holds what the files share.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "redis_int.h"

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

#define QR_MAX_NAME 128

/* ------------------------------------------------------------------------
 * The connector ops
 * ------------------------------------------------------------------------ */

static void qr_free_conn(qr_conn_t *k) {
  if (k->c != NULL) {
    qorb__redis_blk_unwatch(k);
    redisFree(k->c);
    k->c = NULL;
  }
  if (k->ac != NULL) {
    redisAsyncContext *ac = k->ac;
    qorb__redis_detach(k);
    /* Inside one of this context's callbacks this only marks it; hiredis
     * frees it on the way out. Pending callbacks (ours, detached, or a
     * claimant's) run with a NULL reply. */
    redisAsyncFree(ac);
  }
  qorb_free(k->wbuf);
  k->magic = 0;
  qorb_free(k);
}

static int qr_connect(void *ctx, qorb_op_t *op, const qorb_addr_t *addr,
                      void **conn) {
  const qr_cfg_t *cfg = ctx;
  qr_conn_t *k;
  int rc;

  k = qorb_calloc(1, sizeof(*k));
  if (k == NULL) return QORB_ENOMEM;
  k->magic = QR_MAGIC;
  k->cfg = cfg;
  k->loop = qorb_op_loop(op);
  k->op = op; /* for qorb__redis_err() while starting */
  k->opkind = QR_OP_CONNECT;
  k->sigpipe_guard = qorb__redis_sigpipe_needed();
  if (cfg->flavour == QORB_REDIS_ASYNC)
    rc = qorb__redis_async_connect(k, addr);
  else
    rc = qorb__redis_blk_connect(k, addr);
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

  return k->c != NULL ? qorb__redis_blk_start(k, op, QR_OP_CHECK)
                      : qorb__redis_async_start(k, op, QR_OP_CHECK);
}

static int qr_recycle(void *ctx, qorb_op_t *op, void *conn) {
  qr_conn_t *k = conn;
  (void)ctx;

  return k->c != NULL ? qorb__redis_blk_start(k, op, QR_OP_RECYCLE)
                      : qorb__redis_async_start(k, op, QR_OP_RECYCLE);
}

/*
 * What waits on a socket nobody reads, without reading or waiting: 0
 * nothing, QORB_EGONE EOF or a reset, QORB_EPROTO bytes that nobody asked
 * for. Over TLS the bytes are records, so any record counts.
 */
static int qr_peek_socket(int fd) {
  ssize_t n;
  char byte;

  if (fd < 0) return QORB_EGONE;
  do {
    n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n > 0) return QORB_EPROTO;
  if (n == 0) return QORB_EGONE;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
  return qorb__redis_errno_gone(errno) ? QORB_EGONE : QORB_ECLOSED;
}

/* The context's fd, or -1 when hiredis has let go of it. */
static int qr_fd(const qr_conn_t *k) {
  if (k->c != NULL) return k->c->fd;
  return k->ac != NULL ? k->ac->c.fd : -1;
}

/*
 * What the connection's own state says, without I/O: 0 nothing wrong,
 * else the code to close it with. Replies already read into hiredis's
 * buffer and not taken (blocking: a reply half read only happens with an
 * error on the context, caught first, since in blocking mode hiredis
 * reads until a reply is complete; the reader's task index is no guide:
 * it stays at 0 after any call that found no reply), commands appended and
 * never sent, callbacks outstanding, subscriber or monitor mode.
 */
static int qr_state_error(const qr_conn_t *k) {
  const redisContext *c;

  if (k->broken) return k->gone ? QORB_EGONE : QORB_EBROKEN;
  if (k->c != NULL) {
    c = k->c;
    if (c->err)
      return qorb__redis_ctx_gone(c->err, c->errstr) ? QORB_EGONE
                                                     : QORB_EBROKEN;
    /* Commands appended and never sent: their replies would go to the
     * next claimant. */
    if (qorb__redis_obuf_pending(c)) return QORB_EBROKEN;
  } else {
    const redisAsyncContext *ac = k->ac;
    if (ac == NULL) return QORB_EGONE; /* hiredis freed it: disconnected */
    c = &ac->c;
    if (ac->err || c->err)
      return qorb__redis_ctx_gone(c->err ? c->err : ac->err, c->errstr)
                 ? QORB_EGONE
                 : QORB_EBROKEN;
    if ((c->flags & (REDIS_SUBSCRIBED | REDIS_MONITORING |
                     REDIS_DISCONNECTING | REDIS_FREEING)) != 0)
      return QORB_EBROKEN;
    /* Callbacks outstanding: their replies are still to come. */
    if (ac->replies.head != NULL || QR_SUB_PENDING(ac)) return QORB_EBROKEN;
  }
  /* Replies read and not taken. */
  if (c->reader == NULL || c->reader->pos < c->reader->len)
    return QORB_EBROKEN;
  return 0;
}

/*
 * The release-time decision, on the releasing thread. A claimant may have
 * sent anything (SELECT, MULTI, WATCH, SUBSCRIBE, ...), and nothing short
 * of a round trip tells, so every release is recycled unless the options
 * say the claimants leave nothing behind. What can be seen without I/O and
 * cannot be cleaned closes the connection. With QORB_REDIS_RECYCLE_NONE,
 * no recycle's PING token stands between a reply that the claimant left on
 * the socket and the next claimant, so the socket is looked at too (one
 * recv with MSG_PEEK | MSG_DONTWAIT, the one system call of this opt-in
 * mode's release): anything waiting there closes the connection.
 */
static int qr_needs_recycle(void *ctx, void *conn) {
  const qr_cfg_t *cfg = ctx;
  qr_conn_t *k = conn;
  int rc;

  if ((rc = qr_state_error(k)) != 0) return rc;
  if (cfg->recycle == QORB_REDIS_RECYCLE_NONE) {
    rc = qr_peek_socket(qr_fd(k));
    if (rc != 0) return rc == QORB_EPROTO ? QORB_EBROKEN : rc;
    /* Straight back to idle with no op: pause reading here (the async
     * flavour is released on the loop thread, the exception that
     * needs_recycle's doc in <qorb/connector.h> allows). */
    if (k->ac != NULL) qorb__redis_async_pause(k);
    return 0;
  }
  return 1;
}

static int qr_reset_send(void *ctx, void *conn) {
  (void)ctx;
  return qorb__redis_blk_reset_send(conn);
}

static int qr_reset_finish(void *ctx, void *conn, int wait_ms, char *err,
                           size_t errlen) {
  (void)ctx;
  return qorb__redis_blk_reset_finish(conn, wait_ms, err, errlen);
}

static int qr_idle_fd(void *ctx, void *conn) {
  (void)ctx;
  return qr_fd(conn);
}

/* The async flavour's own read watcher is paused while the connection is
 * idle (qorb__redis_async_pause), so this look is the only one. */
int qorb__redis_peek(void *ctx, void *conn) {
  qr_conn_t *k = conn;
  int rc;
  (void)ctx;

  if (k->op != NULL) return 0; /* not idle: the op reads the socket */
  /* What the state shows is input nobody asked for, unless an earlier
   * failure already condemned the connection. */
  if ((rc = qr_state_error(k)) != 0)
    return rc == QORB_EBROKEN && !k->broken ? QORB_EPROTO : rc;
  return qr_peek_socket(qr_fd(k));
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
  qorb_free(cfg->password);
  qorb_free(cfg->user);
  qorb_free(cfg->client_name);
  qorb_free(cfg);
}

const qorb_connector_ops_t qorb__redis_ops = {
    .version = QORB_CONNECTOR_OPS_VERSION,
    .name = "redis",
    .connect = qr_connect,
    .check = qr_check,
    .prepare = NULL, /* connect and recycle leave the connection ready */
    .recycle = qr_recycle,
    .needs_recycle = qr_needs_recycle,
    .close = qr_close,
    .destroy = qr_destroy,
    .idle_fd = qr_idle_fd,
    .peek = qorb__redis_peek,
    .reset_send = qr_reset_send,
    .reset_finish = qr_reset_finish,
};

/* ------------------------------------------------------------------------
 * Options and the constructor
 * ------------------------------------------------------------------------ */

/*
 * The options struct grows at its end, and a caller may be built against
 * another version than this library: `size` is the caller's sizeof. A
 * shorter (older) struct gets the defaults of the fields it has and
 * nothing is written past its end; a longer (newer) one is zeroed beyond
 * the fields this library knows, which it then ignores. `size` records the
 * caller's size either way.
 */
void qorb_redis_options_init_(qorb_redis_options_t *o, size_t size) {
  qorb_redis_options_t d;

  if (o == NULL || size < sizeof(d.size)) return;
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
  memset(o, 0, size);
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
    /* The caller's fields over our defaults: an older caller's shorter
     * struct leaves the rest at their defaults, a newer caller's longer
     * one has fields beyond ours, which are ignored. */
    if (opts->size < sizeof(opts->size))
      return qr_bad(err, errlen, QORB_EINVAL,
                    "options not initialised with qorb_redis_options_init()");
    memcpy(&o, opts, opts->size < sizeof(o) ? opts->size : sizeof(o));
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

  cfg = qorb_calloc(1, sizeof(*cfg));
  if (cfg == NULL) return QORB_ENOMEM;
  cfg->flavour = o.flavour;
  cfg->role = o.role;
  cfg->recycle = o.recycle;
  cfg->keepalive = o.keepalive;
  cfg->database = o.database;
  cfg->command_timeout_ms = o.command_timeout_ms;
  cfg->tls = o.tls;
  snprintf(cfg->dbtext, sizeof(cfg->dbtext), "%d", o.database);
  rc = QORB_ENOMEM;
  if (o.password != NULL && (cfg->password = qorb_strdup(o.password)) == NULL)
    goto fail;
  if (o.user != NULL && (cfg->user = qorb_strdup(o.user)) == NULL) goto fail;
  if (o.client_name != NULL &&
      (cfg->client_name = qorb_strdup(o.client_name)) == NULL)
    goto fail;
  if ((rc = qorb_connector_new(out, &qorb__redis_ops, cfg)) != 0) goto fail;
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

/* ------------------------------------------------------------------------
 * Hook helpers
 * ------------------------------------------------------------------------ */

static qr_conn_t *qr_hook_self(void *conn) {
  qr_conn_t *k = conn;
  return (k != NULL && k->magic == QR_MAGIC) ? k : NULL;
}

struct redisContext *qorb_redis_hook_ctx(void *conn) {
  qr_conn_t *k = qr_hook_self(conn);
  return k != NULL ? k->c : NULL;
}

int qorb_redis_hook_command(qorb_op_t *op, void *conn, int argc,
                            const char **argv, const size_t *argvlen,
                            qorb_redis_hook_reply_cb judge, void *arg) {
  qr_conn_t *k = qr_hook_self(conn);
  int i, rc;

  if (op == NULL || k == NULL || argc < 1 || argc > QORB_REDIS_HOOK_MAX_ARGS ||
      argv == NULL || argvlen == NULL)
    return QORB_EINVAL;
  for (i = 0; i < argc; i++)
    if (argv[i] == NULL) return QORB_EINVAL;
  /* One at a time, and only while no op of the connector's is running. */
  if (k->op != NULL || k->reset_pending) return QORB_EBUSY;
  k->hook_argc = argc;
  k->hook_argv = argv;
  k->hook_len = argvlen;
  k->hook_judge = judge;
  k->hook_arg = arg;
  /* The command is formatted here: the arrays are not kept. */
  rc = k->c != NULL ? qorb__redis_blk_start(k, op, QR_OP_HOOK)
                    : qorb__redis_async_start(k, op, QR_OP_HOOK);
  k->hook_argv = NULL;
  k->hook_len = NULL;
  return rc;
}

