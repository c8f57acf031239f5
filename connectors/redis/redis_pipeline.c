/* SPDX-License-Identifier: MIT */
/*
 * redis_pipeline.c: the pipeline that every qorb-redis op is, shared by the
 * blocking and the async driver. qorb__redis_build() queues the op's
 * commands ("steps") in one go; qorb__redis_reply() checks each reply, in
 * order, against the step it answers. The last step is always a PING with
 * a token of the op's own, so a reply that is out of step (a claimant left
 * one unread on the socket) can never pass as ours. Also here: recording
 * an op's error and failing it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "redis_int.h"

/* Pub/sub messages skipped while waiting for RESET's reply. A connection
 * that keeps producing more than this is not worth saving. */
#define QR_MAX_SKIP 65536

/* ------------------------------------------------------------------------
 * Errors and finishing an op
 * ------------------------------------------------------------------------ */

static const char *qr_opname(enum qr_op kind) {
  switch (kind) {
    case QR_OP_CONNECT: return "connect";
    case QR_OP_CHECK: return "check";
    case QR_OP_RECYCLE: return "recycle";
    case QR_OP_HOOK: return "hook command";
  }
  return "op";
}

/* The code for a failure that has no more precise one. */
int qorb__redis_opcode(enum qr_op kind) {
  switch (kind) {
    case QR_OP_CONNECT: return QORB_ECONNECT;
    case QR_OP_CHECK: return QORB_ECHECK;
    case QR_OP_RECYCLE: return QORB_ERECYCLE;
    case QR_OP_HOOK: return QORB_EREJECTED;
  }
  return QORB_EPROTO;
}

/* Record the detail of a failure, prefixed with the op's name. */
void qorb__redis_err(qr_conn_t *k, const char *fmt, ...) {
  char buf[256];
  va_list ap;

  if (k->op == NULL && (k->errout == NULL || k->errout_len == 0 ||
                        k->errout[0] != '\0'))
    return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (k->op != NULL)
    qorb_op_set_error(k->op, "%s: %s", qr_opname(k->opkind), buf);
  else
    snprintf(k->errout, k->errout_len, "%s: %s", qr_opname(k->opkind), buf);
}

/*
 * End the op in flight with a failure. The connection is marked broken
 * (qorb closes it; any op started on it meanwhile fails at once).
 * qorb_op_done() is the op's last word (see its contract in
 * <qorb/connector.h>): nothing touches `k` after it.
 */
void qorb__redis_fail(qr_conn_t *k, int status) {
  qorb_op_t *op = k->op;

  k->broken = 1;
  if (status == QORB_EGONE) k->gone = 1;
  if (k->c != NULL) qorb__redis_blk_unwatch(k);
  k->op = NULL;
  if (op != NULL) qorb_op_done(op, status);
}

int qorb__redis_errno_gone(int e) {
  switch (e) {
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return 1;
    default:
      return 0;
  }
}

int qorb__redis_ctx_gone(int err, const char *errstr) {
  static const int gone[] = {ECONNRESET, ECONNABORTED, EPIPE,
                             ETIMEDOUT,  EHOSTUNREACH, ENETUNREACH};
  size_t i;

  if (err == REDIS_ERR_EOF) return 1;
  /* hiredis keeps only the text of an I/O error's errno (strerror). */
  if (err != REDIS_ERR_IO || errstr == NULL) return 0;
  for (i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
    if (strcmp(errstr, strerror(gone[i])) == 0) return 1;
  return 0;
}

/* ------------------------------------------------------------------------
 * The pipeline: which commands an op sends
 * ------------------------------------------------------------------------ */

/* Append to the raw output buffer, growing it. */
static int qr_wbuf_add(qr_conn_t *k, const char *data, size_t n) {
  if (k->wlen + n > k->wcap) {
    size_t cap = k->wcap ? k->wcap : 256;
    char *b;
    while (cap < k->wlen + n) cap *= 2;
    b = qorb_realloc(k->wbuf, cap);
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

/* Queue one command of `argc` arguments of lengths `len`. */
static int qr_push_len(qr_conn_t *k, enum qr_step step, int argc,
                       const char **argv, const size_t *len) {
  int rc;

  if (k->nsteps >= QR_MAX_STEPS) return QORB_EPROTO;
  if (k->c != NULL && k->raw) {
    if ((rc = qr_wbuf_command(k, argc, argv, len)) != 0) return rc;
  } else {
    if (k->c != NULL)
      rc = redisAppendCommandArgv(k->c, argc, argv, len);
    else
      rc = redisAsyncCommandArgv(k->ac, qorb__redis_async_reply, NULL, argc,
                                 argv, len);
    if (rc != REDIS_OK) return QORB_ENOMEM;
  }
  k->steps[k->nsteps++] = (unsigned char)step;
  return 0;
}

/* Queue one command (argv form: binary safe, no format parsing). */
static int qr_push(qr_conn_t *k, enum qr_step step, int argc,
                   const char **argv) {
  size_t len[4];
  int i;

  if (argc > 4) return QORB_EPROTO;
  for (i = 0; i < argc; i++) len[i] = strlen(argv[i]);
  return qr_push_len(k, step, argc, argv, len);
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

/* Client flags that RESET leaves on where the server has the command
 * (Redis 7.0 keeps CLIENT NO-EVICT; CLIENT NO-TOUCH came in 7.2): turn
 * them off, or, on connect, learn which commands the server has. They go
 * after AUTH, which a server with requirepass wants first. */
static int qr_push_flags(qr_conn_t *k, int probe) {
  if (probe || k->has_noevict)
    QR_PUSH(k, probe ? QR_PROBE_NOEVICT : QR_NOEVICT, "CLIENT", "NO-EVICT",
            "off");
  if (probe || k->has_notouch)
    QR_PUSH(k, probe ? QR_PROBE_NOTOUCH : QR_NOTOUCH, "CLIENT", "NO-TOUCH",
            "off");
  return 0;
}

/*
 * Build the op's pipeline ({FLAGS}: CLIENT NO-EVICT off and CLIENT
 * NO-TOUCH off, each where the server has it, learnt at connect):
 *   connect  [RESET] [AUTH] [SELECT] [CLIENT SETNAME] [{FLAGS}] [ROLE] PING
 *   check    [ROLE] PING
 *   recycle  RESET [AUTH] [SELECT] [CLIENT SETNAME] {FLAGS} PING     (6.2+)
 *            DISCARD UNWATCH [AUTH] SELECT CLIENT SETNAME {FLAGS} PING
 *                                                                  (older)
 * RESET comes first on connect because it de-authenticates: on a fresh
 * connection it changes nothing, and its reply tells us whether the
 * server has it (Redis answers RESET before AUTH). The flag probes are
 * sent on connect in every mode that recycles; their answers (OK, or an
 * error from a server without the command) say what recycle must send.
 */
int qorb__redis_build(qr_conn_t *k, enum qr_op kind) {
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
      if (cfg->recycle != QORB_REDIS_RECYCLE_NONE &&
          (rc = qr_push_flags(k, 1)) != 0)
        return rc;
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
      if ((rc = qr_push_flags(k, 0)) != 0) return rc;
      break;

    case QR_OP_HOOK:
      if ((rc = qr_push_len(k, QR_USER, k->hook_argc, k->hook_argv,
                            k->hook_len)) != 0)
        return rc;
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
    qorb__redis_err(k, "%s: %s", what, r->str != NULL ? r->str : "");
  else
    qorb__redis_err(k, "%s: unexpected %s reply", what, qr_type_name(r->type));
}

/* An error reply that says the server is going away or not serving yet
 * (-LOADING while it loads its data set, -SHUTDOWN while it stops), as
 * opposed to one command's trouble. */
static int qr_is_gone_reply(const redisReply *r) {
  static const char *const words[] = {"LOADING", "SHUTDOWN"};
  size_t i, n;

  if (r->type != REDIS_REPLY_ERROR || r->str == NULL) return 0;
  for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
    n = strlen(words[i]);
    if (strncmp(r->str, words[i], n) == 0 &&
        (r->str[n] == '\0' || r->str[n] == ' '))
      return 1;
  }
  return 0;
}

/* The error code for a server error reply to a step. */
static int qr_err_code(qr_conn_t *k, const redisReply *r) {
  return r->type == REDIS_REPLY_ERROR ? qorb__redis_opcode(k->opkind)
                                      : QORB_EPROTO;
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
    qorb__redis_err(k, "ROLE: backend is a %s, the pool wants a master",
                    e->str);
    return QORB_EROLE;
  }
  if (cfg->role == QORB_REDIS_ROLE_REPLICA && !is_replica) {
    qorb__redis_err(k, "ROLE: backend is a %s, the pool wants a replica",
                    e->str);
    return QORB_EROLE;
  }
  return 0;
}

/*
 * Check one reply against the step it answers.
 * @return 0 (the step is done), 1 (the reply was skipped: the step still
 *         waits), or a negative code with the error text recorded.
 */
int qorb__redis_reply(qr_conn_t *k, enum qr_step step, const redisReply *r) {
  if (qr_is_gone_reply(r)) {
    qorb__redis_err(k, "%s", r->str);
    return QORB_EGONE;
  }
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
        qorb__redis_err(k, "RESET (required by the recycle mode): %s",
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

    case QR_PROBE_NOEVICT:
    case QR_PROBE_NOTOUCH:
      /* OK: the server has it; an error: it has not (older, renamed,
       * or not allowed to this user, who then cannot set it either). */
      if (qr_is_status(r, "OK") || r->type == REDIS_REPLY_ERROR) {
        int has = r->type != REDIS_REPLY_ERROR;
        if (step == QR_PROBE_NOEVICT)
          k->has_noevict = has;
        else
          k->has_notouch = has;
        return 0;
      }
      qr_err_reply(k, "CLIENT", r);
      return QORB_EPROTO;

    case QR_NOEVICT:
    case QR_NOTOUCH:
      if (qr_is_status(r, "OK")) return 0;
      qr_err_reply(k, step == QR_NOEVICT ? "CLIENT NO-EVICT" : "CLIENT NO-TOUCH",
                   r);
      return qr_err_code(k, r);

    case QR_ROLE:
      return qr_check_role(k, r);

    case QR_USER:
      if (k->hook_judge != NULL) {
        int v = k->hook_judge(k->hook_arg, k->op, r);
        return v < 0 ? v : 0;
      }
      if (r->type != REDIS_REPLY_ERROR) return 0;
      qr_err_reply(k, "reply", r);
      return QORB_EREJECTED;

    case QR_PING:
      if (r->type == REDIS_REPLY_STRING && r->str != NULL &&
          strcmp(r->str, k->token) == 0)
        return 0;
      if (r->type == REDIS_REPLY_ERROR) {
        qr_err_reply(k, "PING", r);
        return qorb__redis_opcode(k->opkind);
      }
      /* Someone else's reply where ours should be: the stream is out of
       * step, and only closing the connection makes it safe. */
      qorb__redis_err(k, "PING: reply out of step (%s)", qr_type_name(r->type));
      return QORB_EPROTO;
  }
  return QORB_EPROTO;
}
