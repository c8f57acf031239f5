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
 * The template (conninfo and/or keyword arrays) is compiled once, when the
 * connector is made, by pg_conninfo.c, into the keyword/value arrays handed
 * to PQconnectStartParams; the per-backend values (hostaddr, port and maybe
 * host) are filled into buffers of the context just before each connect,
 * which is safe because every connect runs on the one pool loop and libpq
 * copies the values at once.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "../conn_wait.h"
#include "pg_int.h"

/* A tag at the start of every connection, so that qorb_pg_conn() refuses a
   claim that does not come from a qorb-pg pool instead of misreading it. */
#define PG_MAGIC 0x71706763u /* "qpgc" */

/*
 * The phases of the ops, in order ([...]: only when configured):
 *
 *   connect  CONNECT -> [ROLE] -> [CONNECT_ACQUIRE] -> DRAIN -> done
 *   check    CHECK (role query when a role is set) -> DRAIN -> done
 *   prepare  ACQUIRE -> DRAIN -> done   (nothing, after a connect that ran it)
 *   recycle  [ROLLBACK] -> [RESET] -> DRAIN -> done
 *
 * ROLE runs when the options ask for a primary or a standby;
 * CONNECT_ACQUIRE and ACQUIRE when there is acquire SQL; ROLLBACK when the
 * claimant left a transaction open; RESET when there is reset SQL. DRAIN
 * comes only after success, and only on a loop backend that keeps stopped
 * descriptors registered (pg_lazy_backend); elsewhere the op completes at
 * once. A failure in any phase completes at once with that phase's code
 * (pg_phase_error).
 */
typedef enum pg_phase {
  PH_NONE = 0,   /* no op in flight: no watcher, the claimant's if claimed */
  PH_CONNECT,    /* PQconnectPoll */
  PH_ROLE,       /* connect: role query after the handshake */
  PH_CHECK,      /* health check round trip */
  PH_ROLLBACK,   /* recycle: ROLLBACK of a left-over transaction */
  PH_RESET,      /* recycle: reset SQL */
  PH_ACQUIRE,    /* prepare: acquire SQL */
  PH_CONNECT_ACQUIRE, /* connect: acquire SQL as its last step */
  PH_HOOK,       /* a pool hook's SQL (qorb_pg_hook_exec) */
  PH_DRAIN       /* done; waiting for the loop to drop the socket */
} pg_phase_t;

typedef struct pg_conn {
  uint32_t magic;     /* PG_MAGIC while the connection exists */
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
  int gone;           /* ... whose SQLSTATE says the backend went away */
  int in_recovery;    /* from the role query: 1, 0, -1 unknown */
  int fresh;          /* connected, acquire SQL already run: the prepare
                         that follows a connect has nothing to do */
  int reset_pending;  /* pg_reset_send sent the reset SQL; its answer is
                         still to be read (pg_reset_finish) */
  qorb_pg_hook_result_cb hook_judge; /* PH_HOOK: looks at each row set */
  void *hook_arg;
  int hook_rc;        /* PH_HOOK: the judge's verdict, 0 or < 0 */
  /* libpq's defaults, put back at each release */
  PQnoticeReceiver notice_receiver;
  PQnoticeProcessor notice_processor;
} pg_conn_t;

/* ---- small helpers ---------------------------------------------------- */

static void pg_op_error(pg_conn_t *c, const char *what, const char *msg) {
  if (!msg || !*msg) msg = PQerrorMessage(c->pg);
  if (msg && *msg)
    qorb_op_set_error(c->op, "%s%.*s", what, qorb__pg_first_line_len(msg),
                      msg);
  else
    qorb_op_set_error(c->op, "%sconnection lost", what);
}

/* ---- the watcher ------------------------------------------------------ */

static void pg_on_io(struct ev_loop *loop, ev_io *w, int revents);

static void pg_io_stop(pg_conn_t *c) {
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
static int pg_io_watch(pg_conn_t *c, int events, int force) {
  int fd = PQsocket(c->pg);
  if (fd < 0) return -1;
  if (!force && fd == c->io_fd && events == c->io_events) return 0;
  pg_io_stop(c);
  ev_io_set(&c->io, fd, events);
  ev_io_start(c->loop, &c->io);
  c->io_fd = fd;
  c->io_events = events;
  return 0;
}

static int pg_io_arm(pg_conn_t *c, int events) {
  return pg_io_watch(c, events, 0);
}

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
static int pg_lazy_backend(struct ev_loop *loop) {
  return !(ev_backend(loop) & (EVBACKEND_SELECT | EVBACKEND_POLL));
}

/*
 * Did the op fail because the backend went away, rather than for a reason
 * of this connection's own? A result said so by its SQLSTATE (see
 * qorb__pg_sqlstate_gone), or the connection died after its handshake had
 * worked (EOF, a reset: libpq's own errors carry no SQLSTATE). A handshake
 * that fails stays a failed connect: libpq 15 keeps the SQLSTATE of a
 * startup error to itself.
 */
static int pg_went_away(const pg_conn_t *c) {
  return c->gone ||
         (c->phase != PH_CONNECT && PQstatus(c->pg) == CONNECTION_BAD);
}

/* Hand the op's result to the pool now, with no drain (pg_finish decides
   whether one is due). The watcher is stopped and the op cleared first:
   qorb_op_done() is the op's last word (its contract is in
   <qorb/connector.h>), so `c` is not touched after it. */
static void pg_complete_now(pg_conn_t *c, int status) {
  qorb_op_t *op = c->op;
  pg_io_stop(c);
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
static void pg_finish(pg_conn_t *c, int status) {
  if (status < 0 && pg_went_away(c)) status = QORB_EGONE;
  if (status == 0 && PQsetnonblocking(c->pg, 0) != 0) {
    qorb_op_set_error(c->op, "cannot leave non-blocking mode: %.*s",
                      qorb__pg_first_line_len(PQerrorMessage(c->pg)),
                      PQerrorMessage(c->pg));
    status = PQstatus(c->pg) == CONNECTION_BAD ? QORB_EGONE : QORB_ECLOSED;
  }
  if (status == 0 && pg_lazy_backend(c->loop)) {
    c->phase = PH_DRAIN;
    if (pg_io_watch(c, EV_WRITE, 1) == 0) return;
  }
  pg_complete_now(c, status);
}

static void pg_on_drained(struct ev_loop *loop, ev_check *w, int revents) {
  pg_conn_t *c = w->data;
  (void)revents;
  ev_check_stop(loop, w);
  pg_complete_now(c, 0);
}

/* The qorb code for a failure in the current phase. */
static int pg_phase_error(pg_phase_t ph) {
  switch (ph) {
    case PH_CONNECT:
    case PH_ROLE: return QORB_ECONNECT;
    case PH_CHECK: return QORB_ECHECK;
    case PH_ROLLBACK:
    case PH_RESET: return QORB_ERECYCLE;
    case PH_ACQUIRE:
    case PH_CONNECT_ACQUIRE: return QORB_EACQUIRE;
    case PH_HOOK: return QORB_EREJECTED;
    case PH_DRAIN:
    case PH_NONE: break;
  }
  return QORB_EPROTO;
}

static void pg_fail(pg_conn_t *c, const char *what, const char *msg) {
  int code = pg_phase_error(c->phase);
  pg_op_error(c, what, msg);
  pg_finish(c, code);
}

/* ---- queries ---------------------------------------------------------- */

/* Send one query in non-blocking mode and watch for its results. */
static int pg_query_start(pg_conn_t *c, pg_phase_t phase, const char *sql) {
  int r;
  c->phase = phase;
  c->failed = 0;
  c->gone = 0;
  if (PQstatus(c->pg) != CONNECTION_OK || PQsetnonblocking(c->pg, 1) != 0 ||
      !PQsendQuery(c->pg, sql))
    return -1;
  r = PQflush(c->pg);
  if (r < 0) return -1;
  /* While output is pending, read too: the server may be sending an error
     and waiting for us to read it before it reads more. */
  return pg_io_arm(c, r == 1 ? EV_READ | EV_WRITE : EV_READ);
}

/* An op that cannot start. On a connection that died (the server closed
   it), say so through qorb_op_done() as QORB_EGONE, so that the pool warns
   the backend's other connections; otherwise refuse with `code` (the op
   has then not started). */
static int pg_refuse(pg_conn_t *c, qorb_op_t *op, int code) {
  if (PQstatus(c->pg) != CONNECTION_BAD) return code;
  c->op = op;
  pg_complete_now(c, QORB_EGONE);
  return 0;
}

/* Start a query for an op; on an immediate failure, record libpq's text and
   return the phase's code (or report QORB_EGONE, see pg_refuse). */
static int pg_op_query(pg_conn_t *c, qorb_op_t *op, pg_phase_t phase,
                       const char *sql) {
  c->op = op;
  if (pg_query_start(c, phase, sql) == 0) return 0;
  pg_op_error(c, "", NULL);
  pg_io_stop(c);
  c->op = NULL;
  c->phase = PH_NONE;
  return pg_refuse(c, op, pg_phase_error(phase));
}

static void pg_role_result(pg_conn_t *c, const PGresult *res) {
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
static void pg_connect_ready(pg_conn_t *c) {
  if (!c->ctx->acquire_sql) {
    pg_finish(c, 0);
    return;
  }
  if (pg_query_start(c, PH_CONNECT_ACQUIRE, c->ctx->acquire_sql) != 0)
    pg_fail(c, "acquire: ", NULL);
}

/* Both the connect and the health check end here when a role is wanted. */
static void pg_role_verdict(pg_conn_t *c) {
  qorb_pg_role_t want = c->ctx->role;
  int connecting = c->phase == PH_ROLE;
  if (c->in_recovery < 0) {
    qorb_op_set_error(c->op, "pg_is_in_recovery() gave no answer");
    pg_finish(c, QORB_EPROTO);
  } else if (want == QORB_PG_ROLE_PRIMARY && c->in_recovery) {
    qorb_op_set_error(c->op,
                      "backend is a standby (in recovery); the pool "
                      "wants a primary");
    pg_finish(c, QORB_EROLE);
  } else if (want == QORB_PG_ROLE_STANDBY && !c->in_recovery) {
    qorb_op_set_error(c->op,
                      "backend is a primary (not in recovery); the pool "
                      "wants a standby");
    pg_finish(c, QORB_EROLE);
  } else if (connecting) {
    pg_connect_ready(c);
  } else {
    pg_finish(c, 0);
  }
}

/* Drop whatever notifications libpq queued: after a reset, they belong to
   a LISTEN that no longer exists. */
static void pg_drop_notifies(pg_conn_t *c) {
  PGnotify *n;
  int guard = 100000;
  while (guard-- > 0 && (n = PQnotifies(c->pg)) != NULL) PQfreemem(n);
}

/* The current query has returned all its results. */
static void pg_query_done(pg_conn_t *c) {
  pg_ctx_t *ctx = c->ctx;
  if (c->failed) {
    /* the error text was recorded with the result */
    pg_finish(c, c->phase == PH_HOOK && c->hook_rc < 0
                     ? c->hook_rc
                     : pg_phase_error(c->phase));
    return;
  }
  switch (c->phase) {
    case PH_ROLE:
      pg_role_verdict(c);
      return;
    case PH_CHECK:
      if (ctx->role != QORB_PG_ROLE_ANY)
        pg_role_verdict(c);
      else
        pg_finish(c, 0);
      return;
    case PH_ROLLBACK:
      if (ctx->reset_sql) {
        if (pg_query_start(c, PH_RESET, ctx->reset_sql) != 0)
          pg_fail(c, "reset: ", NULL);
        return;
      }
      pg_finish(c, 0);
      return;
    case PH_RESET:
      pg_drop_notifies(c);
      pg_finish(c, 0);
      return;
    case PH_ACQUIRE:
      pg_finish(c, 0);
      return;
    case PH_CONNECT_ACQUIRE:
      c->fresh = 1;
      pg_finish(c, 0);
      return;
    case PH_HOOK:
      pg_finish(c, 0);
      return;
    case PH_CONNECT:
    case PH_DRAIN:
    case PH_NONE:
      break;
  }
  qorb_op_set_error(c->op, "qorb-pg: query done in phase %d", (int)c->phase);
  pg_finish(c, QORB_EPROTO);
}

/* One result of the current query. Returns -1 when the op must end now. */
static int pg_query_result(pg_conn_t *c, PGresult *res) {
  switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY:
      return 0;
    case PGRES_TUPLES_OK:
      if (c->phase == PH_ROLE || (c->phase == PH_CHECK &&
                                  c->ctx->role != QORB_PG_ROLE_ANY))
        pg_role_result(c, res);
      if (c->phase == PH_HOOK && c->hook_judge != NULL && !c->failed) {
        int r = c->hook_judge(c->hook_arg, c->op, res);
        if (r < 0) {
          c->hook_rc = r;
          c->failed = 1;
        }
      }
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
      if (qorb__pg_sqlstate_gone(PQresultErrorField(res, PG_DIAG_SQLSTATE)))
        c->gone = 1;
      if (!c->failed) {
        const char *m = PQresultErrorMessage(res);
        const char *what = c->phase == PH_RESET      ? "reset: "
                           : c->phase == PH_ROLLBACK ? "rollback: "
                           : c->phase == PH_ACQUIRE ||
                                   c->phase == PH_CONNECT_ACQUIRE
                               ? "acquire: "
                           : c->phase == PH_HOOK ? "hook SQL: "
                                                 : "";
        pg_op_error(c, what, m);
      }
      c->failed = 1;
      return 0;
  }
}

static void pg_query_io(pg_conn_t *c, int revents) {
  if (revents & EV_READ) {
    if (!PQconsumeInput(c->pg)) {
      pg_fail(c, "", NULL);
      return;
    }
  }
  if (c->io_events & EV_WRITE) {
    int r = PQflush(c->pg);
    if (r < 0) {
      pg_fail(c, "", NULL);
      return;
    }
    if (pg_io_arm(c, r == 1 ? EV_READ | EV_WRITE : EV_READ) != 0) {
      pg_fail(c, "", NULL);
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
      pg_query_done(c);
      return;
    }
    stop = pg_query_result(c, res);
    PQclear(res);
    if (stop) {
      pg_finish(c, pg_phase_error(c->phase));
      return;
    }
  }
  if (PQstatus(c->pg) == CONNECTION_BAD) pg_fail(c, "", NULL);
}

/* ---- connect ---------------------------------------------------------- */

static void pg_connected(pg_conn_t *c) {
  /* Remember libpq's notice hooks to put them back at each release (a NULL
     function reads the current one without changing it). */
  c->notice_receiver = PQsetNoticeReceiver(c->pg, NULL, NULL);
  c->notice_processor = PQsetNoticeProcessor(c->pg, NULL, NULL);
  if (c->ctx->role == QORB_PG_ROLE_ANY) {
    pg_connect_ready(c);
    return;
  }
  c->in_recovery = -1;
  if (pg_query_start(c, PH_ROLE, "SELECT pg_is_in_recovery()") != 0)
    pg_fail(c, "", NULL);
}

static void pg_connect_poll(pg_conn_t *c) {
  int ev;
  switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_OK:
      pg_io_stop(c);
      pg_connected(c);
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
      pg_op_error(c, "", NULL);
      pg_finish(c, code);
      return;
    }
  }
  if (pg_io_watch(c, ev, 1) != 0) pg_fail(c, "", NULL);
}

static void pg_on_io(struct ev_loop *loop, ev_io *w, int revents) {
  pg_conn_t *c = w->data;
  if (c->phase == PH_DRAIN) {
    pg_io_stop(c);
    ev_check_start(loop, &c->drain);
  } else if (c->phase == PH_CONNECT)
    pg_connect_poll(c);
  else if (c->phase != PH_NONE)
    pg_query_io(c, revents);
  else
    pg_io_stop(c); /* cannot happen: the watcher runs only during an op */
}

static int pg_connect(void *vctx, qorb_op_t *op, const qorb_addr_t *addr,
                      void **out) {
  pg_ctx_t *ctx = vctx;
  pg_conn_t *c;
  int rc;

  if ((rc = qorb__pg_ctx_set_backend(ctx, addr)) != 0) return rc;
  c = qorb_calloc(1, sizeof(*c));
  if (!c) return QORB_ENOMEM;
  c->magic = PG_MAGIC;
  c->ctx = ctx;
  c->loop = qorb_op_loop(op);
  c->io_fd = -1;
  c->in_recovery = -1;
  ev_init(&c->io, pg_on_io);
  c->io.data = c;
  ev_check_init(&c->drain, pg_on_drained);
  c->drain.data = c;

  /* libpq copies every value before this returns, so the buffers of the
     context are free again for the next connect. */
  c->pg = PQconnectStartParams(ctx->keywords, ctx->values, 0);
  if (!c->pg) {
    qorb_free(c);
    return QORB_ENOMEM;
  }
  c->op = op;
  c->phase = PH_CONNECT;
  *out = c;
  /* libpq says: poll as though PQconnectPoll had returned WRITING. */
  if (PQstatus(c->pg) == CONNECTION_BAD || pg_io_watch(c, EV_WRITE, 1) != 0) {
    /* Failed already (a refused loopback connect fails inside
       PQconnectStartParams). Report it as a finished op rather than a
       negative return, so that libpq's text is what the backend's
       last_error shows; the pool then closes `c`. qorb_op_done() only
       queues the completion (<qorb/connector.h>), so calling it from here
       is allowed. */
    int code = PQconnectionNeedsPassword(c->pg) ? QORB_EAUTH : QORB_ECONNECT;
    pg_op_error(c, "", NULL);
    pg_finish(c, code);
  }
  return 0;
}

/* ---- check, prepare, recycle ------------------------------------------ */

static int pg_check(void *vctx, qorb_op_t *op, void *vconn) {
  pg_ctx_t *ctx = vctx;
  pg_conn_t *c = vconn;
  if (ctx->role != QORB_PG_ROLE_ANY) {
    c->in_recovery = -1;
    return pg_op_query(c, op, PH_CHECK, "SELECT pg_is_in_recovery()");
  }
  return pg_op_query(c, op, PH_CHECK, "SELECT 1");
}

static int pg_prepare(void *vctx, qorb_op_t *op, void *vconn) {
  pg_ctx_t *ctx = vctx;
  pg_conn_t *c = vconn;
  if (!ctx->acquire_sql || c->fresh) {
    /* Just connected: the connect ran the acquire SQL already, and nothing
       touched the connection since (no drain needed either). */
    c->fresh = 0;
    c->op = op;
    pg_complete_now(c, 0);
    return 0;
  }
  return pg_op_query(c, op, PH_ACQUIRE, ctx->acquire_sql);
}

/* Why a released connection cannot be cleaned, or NULL if it can. */
static const char *pg_unusable(const pg_conn_t *c) {
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
  const char *why = pg_unusable(c);
  PGTransactionStatusType ts;

  if (why) {
    qorb_op_set_error(op, "%s", why);
    return pg_refuse(c, op, QORB_ERECYCLE);
  }
  ts = PQtransactionStatus(c->pg);
  /* DISCARD ALL cannot run inside a transaction block (and an aborted one
     rejects everything), so roll back first, as its own statement. */
  if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
    return pg_op_query(c, op, PH_ROLLBACK, "ROLLBACK");
  if (ctx->reset_sql) return pg_op_query(c, op, PH_RESET, ctx->reset_sql);
  /* Nothing to send: only the blocking mode may need putting back. */
  c->op = op;
  c->phase = PH_RESET;
  pg_finish(c, 0);
  return 0;
}

/* Runs on the releasing thread, on a connection nobody else touches now:
   no socket I/O, only libpq's in-memory state (and the claimant's trace
   FILE, which PQuntrace flushes). */
static int pg_needs_recycle(void *vctx, void *vconn) {
  pg_ctx_t *ctx = vctx;
  pg_conn_t *c = vconn;
  PGTransactionStatusType ts;

  /* A connection that died under its claimant: the server closed it or
     went away, which may concern the backend's other connections too. */
  if (PQstatus(c->pg) == CONNECTION_BAD) return QORB_EGONE;
  if (pg_unusable(c)) return QORB_EBROKEN;
  /* Client-side settings a claimant may have changed: put libpq's defaults
     back, so the next claimant gets what a fresh PGconn has. These are
     field writes, except PQuntrace, which flushes (fflush) the trace FILE
     a claimant set with PQtrace before it lets go of it. */
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

/*
 * The reset without the pool loop: the releasing thread sends the reset SQL
 * (DISCARD ALL by default) and returns; the next owner reads the answer
 * (pg_reset_finish) before the connection is used. Only for the common
 * case: an idle session in blocking mode with no acquire SQL to run after
 * the reset. An open transaction (ROLLBACK first, as its own statement)
 * or acquire SQL goes through pg_recycle on the loop, as before.
 */
static int pg_reset_send(void *vctx, void *vconn) {
  pg_ctx_t *ctx = vctx;
  pg_conn_t *c = vconn;

  if (!ctx->reset_sql || ctx->acquire_sql || PQisnonblocking(c->pg) ||
      PQtransactionStatus(c->pg) != PQTRANS_IDLE)
    return 1;
  /* Blocking mode: the few bytes go out at once (the socket's buffer is
     empty on an idle connection); the answer is not waited for. */
  if (!PQsendQuery(c->pg, ctx->reset_sql))
    return PQstatus(c->pg) == CONNECTION_BAD ? QORB_EGONE : QORB_EBROKEN;
  c->reset_pending = 1;
  return 0;
}

/* "reset: " and the first line of `msg` (libpq's own error when NULL). */
static void pg_reset_error(pg_conn_t *c, const char *msg, char *err,
                           size_t errlen) {
  if (err == NULL || errlen == 0 || err[0] != '\0') return; /* keep the first */
  if (!msg || !*msg) msg = PQerrorMessage(c->pg);
  if (msg && *msg)
    snprintf(err, errlen, "reset: %.*s", qorb__pg_first_line_len(msg), msg);
  else
    snprintf(err, errlen, "reset: connection lost");
}

/* Read the reset's answer: every result, without waiting when wait_ms is
   0 (QORB_EAGAIN while it is not all there), else up to wait_ms. */
static int pg_reset_finish(void *vctx, void *vconn, int wait_ms, char *err,
                           size_t errlen) {
  pg_conn_t *c = vconn;
  int failed = 0, gone = 0;
  int64_t deadline = wait_ms > 0 ? qorb__conn_mono_ms() + wait_ms : 0;
  (void)vctx;

  if (!c->reset_pending) return 0;
  for (;;) {
    PGresult *res;
    int w;

    if (!PQconsumeInput(c->pg)) break; /* the connection failed */
    while (!PQisBusy(c->pg)) {
      res = PQgetResult(c->pg);
      if (res == NULL) {
        c->reset_pending = 0;
        pg_drop_notifies(c);
        if (gone) return QORB_EGONE;
        return failed ? QORB_ERECYCLE : 0;
      }
      switch (PQresultStatus(res)) {
        case PGRES_COMMAND_OK:
        case PGRES_TUPLES_OK:
        case PGRES_EMPTY_QUERY:
          break;
        default:
          failed = 1;
          if (qorb__pg_sqlstate_gone(PQresultErrorField(res, PG_DIAG_SQLSTATE)))
            gone = 1;
          pg_reset_error(c, PQresultErrorMessage(res), err, errlen);
          break;
      }
      PQclear(res);
    }
    if (wait_ms <= 0) return QORB_EAGAIN;
    if (PQsocket(c->pg) < 0) break;
    w = qorb__conn_wait(PQsocket(c->pg), POLLIN, deadline);
    if (w == 0) {
      if (err != NULL && errlen > 0)
        snprintf(err, errlen, "reset: no answer in %d ms", wait_ms);
      return QORB_ETIMEDOUT;
    }
    if (w < 0) break;
  }
  pg_reset_error(c, NULL, err, errlen);
  return PQstatus(c->pg) == CONNECTION_BAD ? QORB_EGONE : QORB_ERECYCLE;
}

static void pg_close(void *vctx, void *vconn) {
  pg_conn_t *c = vconn;
  (void)vctx;
  if (!c) return;
  pg_io_stop(c);
  ev_check_stop(c->loop, &c->drain);
  if (c->pg) {
    /* PQfinish sends a Terminate message on a live connection; in
       non-blocking mode that never waits for a stuck peer. */
    (void)PQsetnonblocking(c->pg, 1);
    PQfinish(c->pg);
  }
  c->magic = 0;
  qorb_free(c);
}

/* ---- the idle watch ---------------------------------------------------- */

/*
 * SQLSTATEs that say the backend went away rather than that one statement
 * or one connection failed: class 08 (connection exception), 57P01
 * (admin_shutdown: pg_terminate_backend, a fast shutdown), 57P02
 * (crash_shutdown: another server process crashed) and 57P03
 * (cannot_connect_now: starting up, shutting down).
 */
int qorb__pg_sqlstate_gone(const char *sqlstate) {
  if (!sqlstate || strlen(sqlstate) != 5) return 0;
  return strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 ||
         strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0;
}

/* What the notices that arrived while idle came to. */
typedef struct pg_peek_seen {
  int gone; /* the server is ending the session, or went away */
  int bad;  /* an error, or input that libpq could not place */
} pg_peek_seen_t;

/*
 * The notice receiver while peeking. An idle connection gets what the
 * server sends unasked as notices: a FATAL (or a WARNING of crash
 * shutdown) just before the server closes the session, and libpq's own
 * notice, without an SQLSTATE, for a message it did not expect while idle
 * (the stream is out of step). Ordinary notices and warnings do no harm.
 */
static void pg_peek_notice(void *arg, const PGresult *res) {
  pg_peek_seen_t *seen = arg;
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (!sev) sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
  if (qorb__pg_sqlstate_gone(state) ||
      (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)))
    seen->gone = 1;
  else if (!state || (sev && strcmp(sev, "ERROR") == 0))
    seen->bad = 1;
}

/*
 * Peek at an idle PGconn. Nothing waits: the socket has been non-blocking
 * since PQconnectStartParams (libpq sets O_NONBLOCK on every socket it
 * opens, and emulates blocking mode with poll), the first look is a
 * recv(MSG_PEEK | MSG_DONTWAIT), and PQconsumeInput reads only what has
 * arrived (its own readiness test polls with a zero timeout). Nothing is
 * sent: PQconsumeInput flushes only in non-blocking mode, an idle
 * connection is in blocking mode, and its output buffer is empty anyway.
 * A NOTIFY is parsed into libpq's queue (PQnotifies) and stays there.
 */
int qorb__pg_peek_conn(PGconn *pg) {
  pg_peek_seen_t seen = {0, 0};
  PQnoticeReceiver prev;
  ssize_t n;
  char byte;
  int fd, ok;

  if (PQstatus(pg) != CONNECTION_OK || (fd = PQsocket(pg)) < 0)
    return QORB_EGONE;
  do {
    n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return QORB_EGONE; /* the server closed the connection */
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : QORB_EGONE;

  /* Something arrived: let libpq read and parse it (PQisBusy parses,
     calling the notice receiver for notices and errors sent while idle).
     The receiver of an idle connection is libpq's default, put back at
     every release, whose argument is NULL. */
  prev = PQsetNoticeReceiver(pg, pg_peek_notice, &seen);
  ok = PQconsumeInput(pg);
  (void)PQisBusy(pg);
  PQsetNoticeReceiver(pg, prev, NULL);
  if (!ok || seen.gone || PQstatus(pg) == CONNECTION_BAD) return QORB_EGONE;
  if (seen.bad || PQtransactionStatus(pg) != PQTRANS_IDLE) return QORB_EPROTO;
  return 0;
}

static int pg_idle_fd(void *vctx, void *vconn) {
  const pg_conn_t *c = vconn;
  (void)vctx;
  return PQsocket(c->pg);
}

static int pg_peek(void *vctx, void *vconn) {
  pg_conn_t *c = vconn;
  (void)vctx;
  if (c->op) return 0; /* not idle: the op in flight reads the socket */
  return qorb__pg_peek_conn(c->pg);
}

/* ---- context ---------------------------------------------------------- */

static void pg_destroy(void *vctx) { qorb__pg_ctx_free(vctx); }

#define PG_OPS(prepare_op)                                                \
  {                                                                       \
    .version = QORB_CONNECTOR_OPS_VERSION, .name = "pg",                  \
    .connect = pg_connect, .check = pg_check, .prepare = (prepare_op),    \
    .recycle = pg_recycle, .needs_recycle = pg_needs_recycle,             \
    .close = pg_close, .destroy = pg_destroy, .idle_fd = pg_idle_fd,      \
    .peek = pg_peek, .reset_send = pg_reset_send,                         \
    .reset_finish = pg_reset_finish                                       \
  }

static const qorb_connector_ops_t pg_ops = PG_OPS(pg_prepare);

/* Without acquire SQL there is nothing to prepare: no op, no trip through
   the core after each connect and recycle. */
static const qorb_connector_ops_t pg_ops_noprepare = PG_OPS(NULL);

/* ---- hook helpers ---------------------------------------------------- */

/* `conn` as a qorb-pg connection, or NULL for anything else. */
static pg_conn_t *pg_hook_self(void *conn) {
  pg_conn_t *c = conn;
  if (c == NULL || c->magic != PG_MAGIC) return NULL;
  return c;
}

PGconn *qorb_pg_hook_conn(void *conn) {
  pg_conn_t *c = pg_hook_self(conn);
  return c != NULL ? c->pg : NULL;
}

int qorb_pg_hook_exec(qorb_op_t *op, void *conn, const char *sql,
                      qorb_pg_hook_result_cb judge, void *arg) {
  pg_conn_t *c = pg_hook_self(conn);
  if (op == NULL || c == NULL || sql == NULL || sql[0] == '\0')
    return QORB_EINVAL;
  /* One at a time, and only while no op of the connector's is running. */
  if (c->op != NULL || c->phase != PH_NONE || c->reset_pending)
    return QORB_EBUSY;
  c->hook_judge = judge;
  c->hook_arg = arg;
  c->hook_rc = 0;
  return pg_op_query(c, op, PH_HOOK, sql);
}

const qorb_connector_ops_t *qorb__pg_ops(const pg_ctx_t *ctx) {
  return ctx->acquire_sql ? &pg_ops : &pg_ops_noprepare;
}

int qorb_pg_connector_new(qorb_connector_t **out,
                          const qorb_pg_options_t *opts, char *err,
                          size_t errlen) {
  pg_ctx_t *ctx;
  int rc;

  if (err && errlen) err[0] = '\0';
  if (!out) return QORB_EINVAL;
  *out = NULL;
  rc = qorb__pg_ctx_new(&ctx, opts, err, errlen);
  if (rc != 0) return rc;
  rc = qorb_connector_new(out, qorb__pg_ops(ctx), ctx);
  if (rc != 0) {
    if (rc == QORB_ENOMEM) qorb__pg_set_err(err, errlen, "out of memory");
    qorb__pg_ctx_free(ctx);
  }
  return rc;
}

PGconn *qorb_pg_conn(const qorb_claim_t *claim) {
  const pg_conn_t *c;
  if (!claim) return NULL;
  c = qorb_claim_conn(claim);
  return c && c->magic == PG_MAGIC ? c->pg : NULL;
}
