/* SPDX-License-Identifier: MIT */
/*
 * pg.c: the qorb-pg connector. Each connection is a pg_conn_t: a PGconn, one
 * ev_io on its socket and the op in flight. Every op is a small state
 * machine driven from that ev_io on the pool loop, through libpq's
 * non-blocking API only (PQconnectPoll while connecting, then PQsendQuery /
 * PQflush / PQconsumeInput / PQgetResult). The watcher runs only while an
 * op is in flight: a claimed connection belongs to its claimant, who may
 * put a watcher of their own on the socket.
 *
 * The template (conninfo and/or keyword arrays) is parsed once, here, with
 * PQconninfoParse, into the keyword/value arrays handed to
 * PQconnectStartParams; the per-backend values (hostaddr, port and maybe
 * host) are filled into buffers of the context just before each connect,
 * which is safe because every connect runs on the one pool loop and libpq
 * copies the values at once.
 */
#define _POSIX_C_SOURCE 200809L

#include <ev.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qorb/pg.h"

/* The keywords qorb sets itself or gives defaults for. */
#define KW_HOST "host"
#define KW_HOSTADDR "hostaddr"
#define KW_PORT "port"

typedef struct pg_ctx {
  qorb_pg_role_t role;
  char *reset_sql;   /* NULL: no reset */
  char *acquire_sql; /* NULL: none */
  const char **keywords; /* NULL-terminated, for PQconnectStartParams */
  const char **values;
  char **owned;          /* the strings of keywords/values that we own */
  size_t nowned;
  char hostaddr[sizeof(((qorb_addr_t *)0)->host)];
  char port[8];
} pg_ctx_t;

typedef enum pg_phase {
  PH_NONE = 0,   /* no op in flight: no watcher, the claimant's if claimed */
  PH_CONNECT,    /* PQconnectPoll */
  PH_ROLE,       /* connect: role query after the handshake */
  PH_CHECK,      /* health check round trip */
  PH_ROLLBACK,   /* recycle: ROLLBACK of a left-over transaction */
  PH_RESET,      /* recycle: reset SQL */
  PH_ACQUIRE,    /* prepare: acquire SQL */
  PH_CONNECT_ACQUIRE, /* connect: acquire SQL as its last step */
  PH_DRAIN       /* done; waiting for the loop to drop the socket */
} pg_phase_t;

typedef struct pg_conn {
  PGconn *pg;
  pg_ctx_t *ctx;
  struct ev_loop *loop;
  qorb_op_t *op;      /* the op in flight, NULL in PH_NONE */
  ev_io io;
  ev_check drain;     /* PH_DRAIN: completes the op one iteration later */
  int io_fd;          /* what `io` is armed with, -1 when stopped */
  int io_events;
  pg_phase_t phase;
  int failed;         /* a result of the current query was an error */
  int in_recovery;    /* from the role query: 1, 0, -1 unknown */
  int fresh;          /* connected, acquire SQL already run: the prepare
                         that follows a connect has nothing to do */
  /* libpq's defaults, put back at each release */
  PQnoticeReceiver notice_receiver;
  PQnoticeProcessor notice_processor;
} pg_conn_t;

/* ---- small helpers ---------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (!err || errlen == 0) return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* libpq's messages end in a newline and may go on with more lines (the
   server's LINE/HINT context, "Is the server running...?"): the first line
   says what happened and fits the backend's bounded error buffer. */
static int first_line_len(const char *msg) {
  size_t n = msg ? strcspn(msg, "\n") : 0;
  while (n > 0 && (msg[n - 1] == ' ' || msg[n - 1] == '\r' ||
                   msg[n - 1] == '\t'))
    n--;
  return n > 4096 ? 4096 : (int)n;
}

static void op_error(pg_conn_t *c, const char *what, const char *msg) {
  if (!msg || !*msg) msg = PQerrorMessage(c->pg);
  if (msg && *msg)
    qorb_op_set_error(c->op, "%s%.*s", what, first_line_len(msg), msg);
  else
    qorb_op_set_error(c->op, "%sconnection lost", what);
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* ---- the watcher ------------------------------------------------------ */

static void on_io(struct ev_loop *loop, ev_io *w, int revents);

static void io_stop(pg_conn_t *c) {
  if (c->io_fd >= 0) {
    ev_io_stop(c->loop, &c->io);
    c->io_fd = -1;
    c->io_events = 0;
  }
}

/* Arm the watcher on the connection's current socket, read anew each time.
   While connecting, libpq may close its socket and open another (the next
   address, a retry without SSL or GSS encryption) that often gets the same
   descriptor number; `force` re-registers the watcher even then, since
   libev (epoll) cannot tell a reused number from the old socket unless the
   watcher is stopped, set and started again. Queries never change the
   socket, so they re-arm only when the events change. */
static int io_watch(pg_conn_t *c, int events, int force) {
  int fd = PQsocket(c->pg);
  if (fd < 0) return -1;
  if (!force && fd == c->io_fd && events == c->io_events) return 0;
  io_stop(c);
  ev_io_set(&c->io, fd, events);
  ev_io_start(c->loop, &c->io);
  c->io_fd = fd;
  c->io_events = events;
  return 0;
}

static int io_arm(pg_conn_t *c, int events) { return io_watch(c, events, 0); }

/*
 * Does stopping a watcher leave the socket in the loop's kernel interest
 * set? libev's epoll backend (and the backends built on it) leaves a
 * stopped descriptor registered and removes it only when the kernel next
 * reports an event for it that no watcher wants. If the connection were
 * handed out like that, the claimant's traffic would wake the pool loop,
 * which would then call epoll_ctl() on a socket that another thread is
 * using (and may be closing): harmless in the kernel, but a data race in
 * the eyes of ThreadSanitizer and a wasted wakeup per claim. select and
 * poll drop the descriptor when the watcher stops.
 */
static int lazy_backend(struct ev_loop *loop) {
  return !(ev_backend(loop) & (EVBACKEND_SELECT | EVBACKEND_POLL));
}

/* Let the op's completion reach the pool. The watcher is stopped first:
   qorb_op_done() may lead to the connection being closed and freed, so `c`
   is not touched after it. */
static void complete(pg_conn_t *c, int status) {
  qorb_op_t *op = c->op;
  io_stop(c);
  c->phase = PH_NONE;
  c->op = NULL;
  qorb_op_done(op, status);
}

/*
 * Finish the op in flight. On success the connection is handed on in
 * blocking mode, as libpq makes it, for claimants that PQexec; and, on a
 * lazy backend, only once the loop has dropped the socket: the watcher
 * waits for the socket to be writable (an idle connection's always is),
 * stops, and the op completes from an ev_check on the next iteration,
 * after the poll in which the kernel reported the now unwanted descriptor
 * and libev removed it. Two loop iterations, no extra system call on the
 * claimant's side.
 */
static void finish(pg_conn_t *c, int status) {
  if (status == 0 && PQsetnonblocking(c->pg, 0) != 0) {
    qorb_op_set_error(c->op, "cannot leave non-blocking mode: %.*s",
                      first_line_len(PQerrorMessage(c->pg)),
                      PQerrorMessage(c->pg));
    status = QORB_ECLOSED;
  }
  if (status == 0 && lazy_backend(c->loop)) {
    c->phase = PH_DRAIN;
    if (io_watch(c, EV_WRITE, 1) == 0) return;
  }
  complete(c, status);
}

static void on_drained(struct ev_loop *loop, ev_check *w, int revents) {
  pg_conn_t *c = w->data;
  (void)revents;
  ev_check_stop(loop, w);
  complete(c, 0);
}

/* The qorb code for a failure in the current phase. */
static int phase_error(pg_phase_t ph) {
  switch (ph) {
    case PH_CONNECT:
    case PH_ROLE: return QORB_ECONNECT;
    case PH_CHECK: return QORB_ECHECK;
    case PH_ROLLBACK:
    case PH_RESET: return QORB_ERECYCLE;
    case PH_ACQUIRE:
    case PH_CONNECT_ACQUIRE: return QORB_EACQUIRE;
    case PH_DRAIN:
    case PH_NONE: break;
  }
  return QORB_EPROTO;
}

static void fail(pg_conn_t *c, const char *what, const char *msg) {
  int code = phase_error(c->phase);
  op_error(c, what, msg);
  finish(c, code);
}

/* ---- queries ---------------------------------------------------------- */

/* Send one query in non-blocking mode and watch for its results. */
static int query_start(pg_conn_t *c, pg_phase_t phase, const char *sql) {
  int r;
  c->phase = phase;
  c->failed = 0;
  if (PQstatus(c->pg) != CONNECTION_OK || PQsetnonblocking(c->pg, 1) != 0 ||
      !PQsendQuery(c->pg, sql))
    return -1;
  r = PQflush(c->pg);
  if (r < 0) return -1;
  /* While output is pending, read too: the server may be sending an error
     and waiting for us to read it before it reads more. */
  return io_arm(c, r == 1 ? EV_READ | EV_WRITE : EV_READ);
}

/* Start a query for an op; on an immediate failure, record libpq's text and
   return the phase's code (the op has then not started). */
static int op_query(pg_conn_t *c, qorb_op_t *op, pg_phase_t phase,
                    const char *sql) {
  c->op = op;
  if (query_start(c, phase, sql) == 0) return 0;
  {
    int code = phase_error(phase);
    op_error(c, "", NULL);
    io_stop(c);
    c->op = NULL;
    c->phase = PH_NONE;
    return code;
  }
}

static void role_result(pg_conn_t *c, const PGresult *res) {
  if (PQntuples(res) == 1 && PQnfields(res) == 1 &&
      !PQgetisnull(res, 0, 0)) {
    const char *v = PQgetvalue(res, 0, 0);
    c->in_recovery = v[0] == 't' ? 1 : v[0] == 'f' ? 0 : -1;
  }
}

/*
 * The last step of a connect. With acquire SQL, it runs now, as part of the
 * connect: SQL that cannot succeed (a missing table, a privilege) then
 * fails the connect itself, so the pool judges the backend unusable and
 * fails claims at once instead of letting them wait for a connection that
 * will never be handed out. The prepare op that follows has nothing left
 * to do.
 */
static void connect_ready(pg_conn_t *c) {
  if (!c->ctx->acquire_sql) {
    finish(c, 0);
    return;
  }
  if (query_start(c, PH_CONNECT_ACQUIRE, c->ctx->acquire_sql) != 0)
    fail(c, "acquire: ", NULL);
}

/* Both the connect and the health check end here when a role is wanted. */
static void role_verdict(pg_conn_t *c) {
  qorb_pg_role_t want = c->ctx->role;
  int connecting = c->phase == PH_ROLE;
  if (c->in_recovery < 0) {
    qorb_op_set_error(c->op, "pg_is_in_recovery() gave no answer");
    finish(c, QORB_EPROTO);
  } else if (want == QORB_PG_ROLE_PRIMARY && c->in_recovery) {
    qorb_op_set_error(c->op,
                      "backend is a standby (in recovery); the pool "
                      "wants a primary");
    finish(c, QORB_EROLE);
  } else if (want == QORB_PG_ROLE_STANDBY && !c->in_recovery) {
    qorb_op_set_error(c->op,
                      "backend is a primary (not in recovery); the pool "
                      "wants a standby");
    finish(c, QORB_EROLE);
  } else if (connecting) {
    connect_ready(c);
  } else {
    finish(c, 0);
  }
}

/* Drop whatever notifications libpq queued: after a reset, they belong to
   a LISTEN that no longer exists. */
static void drop_notifies(pg_conn_t *c) {
  PGnotify *n;
  int guard = 100000;
  while (guard-- > 0 && (n = PQnotifies(c->pg)) != NULL) PQfreemem(n);
}

/* The current query has returned all its results. */
static void query_done(pg_conn_t *c) {
  pg_ctx_t *ctx = c->ctx;
  if (c->failed) {
    /* the error text was recorded with the result */
    finish(c, phase_error(c->phase));
    return;
  }
  switch (c->phase) {
    case PH_ROLE:
      role_verdict(c);
      return;
    case PH_CHECK:
      if (ctx->role != QORB_PG_ROLE_ANY)
        role_verdict(c);
      else
        finish(c, 0);
      return;
    case PH_ROLLBACK:
      if (ctx->reset_sql) {
        if (query_start(c, PH_RESET, ctx->reset_sql) != 0)
          fail(c, "reset: ", NULL);
        return;
      }
      finish(c, 0);
      return;
    case PH_RESET:
      drop_notifies(c);
      finish(c, 0);
      return;
    case PH_ACQUIRE:
      finish(c, 0);
      return;
    case PH_CONNECT_ACQUIRE:
      c->fresh = 1;
      finish(c, 0);
      return;
    case PH_CONNECT:
    case PH_DRAIN:
    case PH_NONE:
      break;
  }
  qorb_op_set_error(c->op, "qorb-pg: query done in phase %d", (int)c->phase);
  finish(c, QORB_EPROTO);
}

/* One result of the current query. Returns -1 when the op must end now. */
static int query_result(pg_conn_t *c, PGresult *res) {
  switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY:
      return 0;
    case PGRES_TUPLES_OK:
      if (c->phase == PH_ROLE || (c->phase == PH_CHECK &&
                                  c->ctx->role != QORB_PG_ROLE_ANY))
        role_result(c, res);
      return 0;
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
      /* Only user SQL can do this; the connection cannot be brought back
         to idle without knowing the data, so it is given up. */
      qorb_op_set_error(c->op, "SQL started COPY; connection dropped");
      c->failed = 1;
      return -1;
    default:
      /* Keep the first error: it is the cause, later ones are echoes. */
      if (!c->failed) {
        const char *m = PQresultErrorMessage(res);
        const char *what = c->phase == PH_RESET      ? "reset: "
                           : c->phase == PH_ROLLBACK ? "rollback: "
                           : c->phase == PH_ACQUIRE ||
                                   c->phase == PH_CONNECT_ACQUIRE
                               ? "acquire: "
                               : "";
        op_error(c, what, m);
      }
      c->failed = 1;
      return 0;
  }
}

static void query_io(pg_conn_t *c, int revents) {
  if (revents & EV_READ) {
    if (!PQconsumeInput(c->pg)) {
      fail(c, "", NULL);
      return;
    }
  }
  if (c->io_events & EV_WRITE) {
    int r = PQflush(c->pg);
    if (r < 0) {
      fail(c, "", NULL);
      return;
    }
    if (io_arm(c, r == 1 ? EV_READ | EV_WRITE : EV_READ) != 0) {
      fail(c, "", NULL);
      return;
    }
    if (r == 1) return;
  }
  /* Bounded: each pass consumes one result; libpq holds at most what was
     read, and a result status that repeats (COPY) ends the op. */
  while (!PQisBusy(c->pg)) {
    PGresult *res = PQgetResult(c->pg);
    int stop;
    if (!res) {
      query_done(c);
      return;
    }
    stop = query_result(c, res);
    PQclear(res);
    if (stop) {
      finish(c, phase_error(c->phase));
      return;
    }
  }
  if (PQstatus(c->pg) == CONNECTION_BAD) fail(c, "", NULL);
}

/* ---- connect ---------------------------------------------------------- */

static void connected(pg_conn_t *c) {
  /* Remember libpq's notice hooks to put them back at each release (a NULL
     function reads the current one without changing it). */
  c->notice_receiver = PQsetNoticeReceiver(c->pg, NULL, NULL);
  c->notice_processor = PQsetNoticeProcessor(c->pg, NULL, NULL);
  if (c->ctx->role == QORB_PG_ROLE_ANY) {
    connect_ready(c);
    return;
  }
  c->in_recovery = -1;
  if (query_start(c, PH_ROLE, "SELECT pg_is_in_recovery()") != 0)
    fail(c, "", NULL);
}

static void connect_poll(pg_conn_t *c) {
  int ev;
  switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_OK:
      io_stop(c);
      connected(c);
      return;
    case PGRES_POLLING_READING:
      ev = EV_READ;
      break;
    case PGRES_POLLING_WRITING:
      ev = EV_WRITE;
      break;
    case PGRES_POLLING_FAILED:
    default: {
      int code = PQconnectionNeedsPassword(c->pg) ? QORB_EAUTH : QORB_ECONNECT;
      op_error(c, "", NULL);
      finish(c, code);
      return;
    }
  }
  if (io_watch(c, ev, 1) != 0) fail(c, "", NULL);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents) {
  pg_conn_t *c = w->data;
  if (c->phase == PH_DRAIN) {
    io_stop(c);
    ev_check_start(loop, &c->drain);
  } else if (c->phase == PH_CONNECT)
    connect_poll(c);
  else if (c->phase != PH_NONE)
    query_io(c, revents);
  else
    io_stop(c); /* cannot happen: the watcher runs only during an op */
}

static int pg_connect(void *vctx, qorb_op_t *op, const qorb_addr_t *addr,
                      void **out) {
  pg_ctx_t *ctx = vctx;
  pg_conn_t *c;
  size_t n;

  n = strlen(addr->host);
  if (n == 0 || n >= sizeof(ctx->hostaddr)) return QORB_EBADADDR;
  memcpy(ctx->hostaddr, addr->host, n + 1);
  snprintf(ctx->port, sizeof(ctx->port), "%u", (unsigned)addr->port);

  c = calloc(1, sizeof(*c));
  if (!c) return QORB_ENOMEM;
  c->ctx = ctx;
  c->loop = qorb_op_loop(op);
  c->io_fd = -1;
  c->in_recovery = -1;
  ev_init(&c->io, on_io);
  c->io.data = c;
  ev_check_init(&c->drain, on_drained);
  c->drain.data = c;

  /* libpq copies every value before this returns, so the buffers of the
     context are free again for the next connect. */
  c->pg = PQconnectStartParams(ctx->keywords, ctx->values, 0);
  if (!c->pg) {
    free(c);
    return QORB_ENOMEM;
  }
  c->op = op;
  c->phase = PH_CONNECT;
  *out = c;
  /* libpq says: poll as though PQconnectPoll had returned WRITING. */
  if (PQstatus(c->pg) == CONNECTION_BAD || io_watch(c, EV_WRITE, 1) != 0) {
    /* Failed already (a refused loopback connect fails inside
       PQconnectStartParams). Report it as a finished op rather than a
       negative return, so that libpq's text is what the backend's
       last_error shows; the pool then closes `c`. qorb_op_done() only
       queues the completion, so calling it from here is allowed. */
    int code = PQconnectionNeedsPassword(c->pg) ? QORB_EAUTH : QORB_ECONNECT;
    op_error(c, "", NULL);
    finish(c, code);
  }
  return 0;
}

/* ---- check, prepare, recycle ------------------------------------------ */

static int pg_check(void *vctx, qorb_op_t *op, void *vconn) {
  pg_ctx_t *ctx = vctx;
  pg_conn_t *c = vconn;
  if (ctx->role != QORB_PG_ROLE_ANY) {
    c->in_recovery = -1;
    return op_query(c, op, PH_CHECK, "SELECT pg_is_in_recovery()");
  }
  return op_query(c, op, PH_CHECK, "SELECT 1");
}

static int pg_prepare(void *vctx, qorb_op_t *op, void *vconn) {
  pg_ctx_t *ctx = vctx;
  pg_conn_t *c = vconn;
  if (!ctx->acquire_sql || c->fresh) {
    /* Just connected: the connect ran the acquire SQL already, and nothing
       touched the connection since (no drain needed either). */
    c->fresh = 0;
    c->op = op;
    complete(c, 0);
    return 0;
  }
  return op_query(c, op, PH_ACQUIRE, ctx->acquire_sql);
}

/* Why a released connection cannot be cleaned, or NULL if it can. */
static const char *unusable(const pg_conn_t *c) {
  if (PQstatus(c->pg) != CONNECTION_OK) return "connection is broken";
  switch (PQtransactionStatus(c->pg)) {
    case PQTRANS_ACTIVE: return "released with a query in flight or in COPY";
    case PQTRANS_UNKNOWN: return "connection is broken";
    default: break;
  }
#ifdef LIBPQ_HAS_PIPELINING
  if (PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF)
    return "released in pipeline mode";
#endif
  return NULL;
}

static int pg_recycle(void *vctx, qorb_op_t *op, void *vconn) {
  pg_ctx_t *ctx = vctx;
  pg_conn_t *c = vconn;
  const char *why = unusable(c);
  PGTransactionStatusType ts;

  if (why) {
    qorb_op_set_error(op, "%s", why);
    return QORB_ERECYCLE;
  }
  ts = PQtransactionStatus(c->pg);
  /* DISCARD ALL cannot run inside a transaction block (and an aborted one
     rejects everything), so roll back first, as its own statement. */
  if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
    return op_query(c, op, PH_ROLLBACK, "ROLLBACK");
  if (ctx->reset_sql) return op_query(c, op, PH_RESET, ctx->reset_sql);
  /* Nothing to send: only the blocking mode may need putting back. */
  c->op = op;
  c->phase = PH_RESET;
  finish(c, 0);
  return 0;
}

/* Runs on the releasing thread, on a connection nobody else touches now:
   no I/O, only libpq's in-memory state. */
static int pg_needs_recycle(void *vctx, void *vconn) {
  pg_ctx_t *ctx = vctx;
  pg_conn_t *c = vconn;
  PGTransactionStatusType ts;

  if (unusable(c)) return QORB_EBROKEN;
  /* Client-side settings a claimant may have changed: put libpq's defaults
     back, so the next claimant gets what a fresh PGconn has. These are
     plain field writes. */
  PQsetNoticeReceiver(c->pg, c->notice_receiver, NULL);
  PQsetNoticeProcessor(c->pg, c->notice_processor, NULL);
  PQsetErrorVerbosity(c->pg, PQERRORS_DEFAULT);
  PQsetErrorContextVisibility(c->pg, PQSHOW_CONTEXT_ERRORS);
  PQuntrace(c->pg);

  ts = PQtransactionStatus(c->pg);
  if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) return 1;
  if (ctx->reset_sql || ctx->acquire_sql) return 1;
  /* Blocking mode takes a flush to change: leave it to recycle. */
  if (PQisnonblocking(c->pg)) return 1;
  return 0;
}

static void pg_close(void *vctx, void *vconn) {
  pg_conn_t *c = vconn;
  (void)vctx;
  if (!c) return;
  io_stop(c);
  ev_check_stop(c->loop, &c->drain);
  if (c->pg) {
    /* PQfinish sends a Terminate message on a live connection; in
       non-blocking mode that never waits for a stuck peer. */
    (void)PQsetnonblocking(c->pg, 1);
    PQfinish(c->pg);
  }
  free(c);
}

/* ---- context ---------------------------------------------------------- */

static void ctx_free(pg_ctx_t *ctx) {
  size_t i;
  if (!ctx) return;
  for (i = 0; i < ctx->nowned; i++) free(ctx->owned[i]);
  free(ctx->owned);
  free((void *)ctx->keywords);
  free((void *)ctx->values);
  free(ctx->reset_sql);
  free(ctx->acquire_sql);
  free(ctx);
}

static void pg_destroy(void *vctx) { ctx_free(vctx); }

static const qorb_connector_ops_t pg_ops = {
    QORB_CONNECTOR_OPS_VERSION, "pg",      pg_connect,       pg_check,
    pg_prepare,                 pg_recycle, pg_needs_recycle, pg_close,
    pg_destroy};

/* Without acquire SQL there is nothing to prepare: no op, no trip through
   the core after each connect and recycle. */
static const qorb_connector_ops_t pg_ops_noprepare = {
    QORB_CONNECTOR_OPS_VERSION, "pg",      pg_connect,       pg_check,
    NULL,                       pg_recycle, pg_needs_recycle, pg_close,
    pg_destroy};

void qorb_pg_options_init_(qorb_pg_options_t *o, size_t size) {
  qorb_pg_options_t d;
  if (!o || size == 0) return;
  memset(&d, 0, sizeof(d));
  d.size = size < sizeof(d) ? size : sizeof(d);
  d.role = QORB_PG_ROLE_ANY;
  d.reset_sql = QORB_PG_DISCARD_ALL;
  d.keepalives = 1;
  d.keepalives_idle_s = 5;
  d.keepalives_interval_s = 2;
  d.keepalives_count = 3;
  d.tcp_user_timeout_ms = 10000;
  /* A caller built against an older, shorter struct gets its prefix. */
  memset(o, 0, size);
  memcpy(o, &d, d.size);
}

/* The field is inside the caller's struct (an older caller's is shorter). */
#define HAS_FIELD(o, f) \
  (offsetof(qorb_pg_options_t, f) + sizeof((o)->f) <= (o)->size)

/* A growing list of keyword/value pairs; the strings are owned. */
typedef struct kvlist {
  char **kw, **val;
  size_t n, cap;
} kvlist_t;

static void kv_free(kvlist_t *l) {
  size_t i;
  for (i = 0; i < l->n; i++) {
    free(l->kw[i]);
    free(l->val[i]);
  }
  free(l->kw);
  free(l->val);
  memset(l, 0, sizeof(*l));
}

static int kv_find(const kvlist_t *l, const char *kw) {
  size_t i;
  for (i = 0; i < l->n; i++)
    if (strcmp(l->kw[i], kw) == 0) return (int)i;
  return -1;
}

/* Set kw=val, replacing an earlier value of the same keyword. */
static int kv_set(kvlist_t *l, const char *kw, const char *val) {
  int i = kv_find(l, kw);
  char *v = dupstr(val);
  if (!v) return QORB_ENOMEM;
  if (i >= 0) {
    free(l->val[i]);
    l->val[i] = v;
    return 0;
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    char **kwn = realloc(l->kw, cap * sizeof(*kwn));
    char **valn;
    if (!kwn) goto nomem;
    l->kw = kwn;
    valn = realloc(l->val, cap * sizeof(*valn));
    if (!valn) goto nomem;
    l->val = valn;
    l->cap = cap;
  }
  l->kw[l->n] = dupstr(kw);
  if (!l->kw[l->n]) goto nomem;
  l->val[l->n] = v;
  l->n++;
  return 0;
nomem:
  free(v);
  return QORB_ENOMEM;
}

/* Parse a conninfo string or URI with libpq and add what it sets. */
static int kv_parse(kvlist_t *l, const char *conninfo, char *err,
                    size_t errlen) {
  char *msg = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo, &msg), *o;
  int rc = 0;
  if (!opts) {
    if (msg) {
      set_err(err, errlen, "%.*s", first_line_len(msg), msg);
      PQfreemem(msg);
      return QORB_ECONFIG;
    }
    return QORB_ENOMEM; /* libpq gives no message only when out of memory */
  }
  for (o = opts; o->keyword && rc == 0; o++)
    if (o->val && o->val[0]) rc = kv_set(l, o->keyword, o->val);
  PQconninfoFree(opts);
  return rc;
}

/* Quote a value for a conninfo string: 'value' with \ and ' escaped. */
static int append_quoted(char **buf, size_t *len, size_t *cap,
                         const char *kw, const char *val) {
  size_t need = strlen(kw) + 2 * strlen(val) + 8;
  const char *p;
  char *b;
  if (*len + need > *cap) {
    size_t ncap = (*cap + need) * 2;
    char *nb = realloc(*buf, ncap);
    if (!nb) return QORB_ENOMEM;
    *buf = nb;
    *cap = ncap;
  }
  b = *buf + *len;
  b += sprintf(b, "%s='", kw);
  for (p = val; *p; p++) {
    if (*p == '\\' || *p == '\'') *b++ = '\\';
    *b++ = *p;
  }
  *b++ = '\'';
  *b++ = ' ';
  *b = '\0';
  *len = (size_t)(b - *buf);
  return 0;
}

/* Keyword arrays go through the same parser as conninfo strings, so that an
   unknown keyword gets libpq's own message. */
static int kv_parse_arrays(kvlist_t *l, const char *const *keywords,
                           const char *const *values, char *err,
                           size_t errlen) {
  char *buf = NULL;
  size_t len = 0, cap = 0, i;
  int rc = 0;
  for (i = 0; keywords[i] && rc == 0; i++) {
    if (!values[i] || !values[i][0]) continue;
    if (!keywords[i][0]) {
      set_err(err, errlen, "empty keyword at index %zu", i);
      rc = QORB_ECONFIG;
      break;
    }
    /* A keyword with a space or '=' would parse as something else. */
    if (strpbrk(keywords[i], " \t\n\r='\\")) {
      set_err(err, errlen, "invalid connection option \"%s\"", keywords[i]);
      rc = QORB_ECONFIG;
      break;
    }
    rc = append_quoted(&buf, &len, &cap, keywords[i], values[i]);
  }
  if (rc == 0 && buf) rc = kv_parse(l, buf, err, errlen);
  free(buf);
  return rc;
}

/* Take the pairs over into the context's NULL-terminated arrays, with three
   more entries at the end for host, hostaddr and port. */
static int ctx_build(pg_ctx_t *ctx, kvlist_t *l, const char *host) {
  size_t i, k = 0, total = l->n + 4;
  char *h = NULL;
  ctx->keywords = calloc(total, sizeof(*ctx->keywords));
  ctx->values = calloc(total, sizeof(*ctx->values));
  ctx->owned = calloc(2 * l->n + 1, sizeof(*ctx->owned));
  if (!ctx->keywords || !ctx->values || !ctx->owned) return QORB_ENOMEM;
  /* `host` points into the list, which the loop below empties. */
  if (host) {
    h = dupstr(host);
    if (!h) return QORB_ENOMEM;
    ctx->owned[ctx->nowned++] = h;
  }
  for (i = 0; i < l->n; i++) {
    if (strcmp(l->kw[i], KW_HOST) == 0 || strcmp(l->kw[i], KW_HOSTADDR) == 0 ||
        strcmp(l->kw[i], KW_PORT) == 0) {
      free(l->kw[i]);
      free(l->val[i]);
    } else {
      ctx->keywords[k] = l->kw[i];
      ctx->values[k] = l->val[i];
      ctx->owned[ctx->nowned++] = l->kw[i];
      ctx->owned[ctx->nowned++] = l->val[i];
      k++;
    }
    l->kw[i] = l->val[i] = NULL;
  }
  l->n = 0;
  ctx->keywords[k] = KW_HOST;
  if (h) {
    ctx->values[k] = h;
  } else {
    /* No usable host in the template: name the backend by its address, so
       that PGHOST from the environment cannot disagree with hostaddr. */
    ctx->values[k] = ctx->hostaddr;
  }
  k++;
  ctx->keywords[k] = KW_HOSTADDR;
  ctx->values[k] = ctx->hostaddr;
  k++;
  ctx->keywords[k] = KW_PORT;
  ctx->values[k] = ctx->port;
  k++;
  ctx->keywords[k] = NULL;
  ctx->values[k] = NULL;
  return 0;
}

/* qorb's TCP defaults, for the keywords the template does not set. */
static int add_tcp_defaults(kvlist_t *l, const qorb_pg_options_t *o) {
  char num[24];
  int rc = 0, on = HAS_FIELD(o, keepalives) ? o->keepalives : 1;
  if (kv_find(l, "keepalives") < 0) rc = kv_set(l, "keepalives", on ? "1" : "0");
  if (rc == 0 && on && HAS_FIELD(o, keepalives_idle_s) &&
      o->keepalives_idle_s && kv_find(l, "keepalives_idle") < 0) {
    snprintf(num, sizeof(num), "%u", o->keepalives_idle_s);
    rc = kv_set(l, "keepalives_idle", num);
  }
  if (rc == 0 && on && HAS_FIELD(o, keepalives_interval_s) &&
      o->keepalives_interval_s && kv_find(l, "keepalives_interval") < 0) {
    snprintf(num, sizeof(num), "%u", o->keepalives_interval_s);
    rc = kv_set(l, "keepalives_interval", num);
  }
  if (rc == 0 && on && HAS_FIELD(o, keepalives_count) && o->keepalives_count &&
      kv_find(l, "keepalives_count") < 0) {
    snprintf(num, sizeof(num), "%u", o->keepalives_count);
    rc = kv_set(l, "keepalives_count", num);
  }
  if (rc == 0 && HAS_FIELD(o, tcp_user_timeout_ms) && o->tcp_user_timeout_ms &&
      kv_find(l, "tcp_user_timeout") < 0) {
    snprintf(num, sizeof(num), "%u", o->tcp_user_timeout_ms);
    rc = kv_set(l, "tcp_user_timeout", num);
  }
  return rc;
}

/* The template's host, if it is one name fit for TLS and password files. */
static const char *single_host(const kvlist_t *l) {
  int i = kv_find(l, KW_HOST);
  const char *h;
  if (i < 0) return NULL;
  h = l->val[i];
  if (!h[0] || strchr(h, ',') || h[0] == '/' || h[0] == '@') return NULL;
  return h;
}

int qorb_pg_connector_new(qorb_connector_t **out,
                          const qorb_pg_options_t *opts, char *err,
                          size_t errlen) {
  qorb_pg_options_t defaults;
  kvlist_t l;
  pg_ctx_t *ctx = NULL;
  const char *reset, *acquire, *host;
  int rc;

  memset(&l, 0, sizeof(l));
  if (err && errlen) err[0] = '\0';
  if (!out) return QORB_EINVAL;
  *out = NULL;
  if (!opts) {
    qorb_pg_options_init(&defaults);
    opts = &defaults;
  }
  if (opts->size < offsetof(qorb_pg_options_t, role) + sizeof(opts->role) ||
      opts->size > sizeof(*opts)) {
    set_err(err, errlen, "options not initialised with qorb_pg_options_init()");
    return QORB_EINVAL;
  }
  if (opts->keywords && !opts->values) {
    set_err(err, errlen, "keywords given without values");
    return QORB_EINVAL;
  }
  if (opts->role != QORB_PG_ROLE_ANY && opts->role != QORB_PG_ROLE_PRIMARY &&
      opts->role != QORB_PG_ROLE_STANDBY) {
    set_err(err, errlen, "unknown role %d", (int)opts->role);
    return QORB_EINVAL;
  }
  reset = HAS_FIELD(opts, reset_sql) ? opts->reset_sql : QORB_PG_DISCARD_ALL;
  acquire = HAS_FIELD(opts, acquire_sql) ? opts->acquire_sql : NULL;

  ctx = calloc(1, sizeof(*ctx));
  if (!ctx) return QORB_ENOMEM;
  ctx->role = opts->role;
  rc = QORB_ENOMEM;
  if (reset && reset[0] && !(ctx->reset_sql = dupstr(reset))) goto fail;
  if (acquire && acquire[0] && !(ctx->acquire_sql = dupstr(acquire)))
    goto fail;

  rc = 0;
  if (opts->conninfo && opts->conninfo[0])
    rc = kv_parse(&l, opts->conninfo, err, errlen);
  if (rc == 0 && opts->keywords)
    rc = kv_parse_arrays(&l, opts->keywords, opts->values, err, errlen);
  if (rc == 0) rc = add_tcp_defaults(&l, opts);
  if (rc != 0) goto fail;
  host = single_host(&l);
  rc = ctx_build(ctx, &l, host);
  if (rc != 0) goto fail;
  kv_free(&l);

  rc = qorb_connector_new(out, ctx->acquire_sql ? &pg_ops : &pg_ops_noprepare,
                          ctx);
  if (rc != 0) goto fail;
  return 0;

fail:
  if (rc == QORB_ENOMEM) set_err(err, errlen, "out of memory");
  kv_free(&l);
  ctx_free(ctx);
  return rc;
}

PGconn *qorb_pg_conn(const qorb_claim_t *claim) {
  const pg_conn_t *c;
  if (!claim) return NULL;
  c = qorb_claim_conn(claim);
  return c ? c->pg : NULL;
}
