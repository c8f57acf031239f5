/* SPDX-License-Identifier: MIT */
/*
 * fake_connector.h: a scripted connector for the unit tests. Every op
 * (connect, check, prepare, recycle) of every backend follows a script:
 * succeed or fail later (next loop iteration), after a delay, at once inside
 * the op, never ("hang", until the pool's timeout closes the connection or
 * the test completes it by hand), or refuse to start. It counts what the
 * pool asked for, per backend and in total, and it checks the contract from
 * the connector's side: every connection opened is closed exactly once, no
 * op runs on a closed, busy or claimed connection, no connection is held by
 * two claimants at once.
 *
 * Threads: the ops run on the pool loop (the pool's own thread in thread
 * mode), needs_recycle on releasing threads; counters are atomics and the
 * tables are behind one mutex, so the test thread may read counters at any
 * time. Scripts are best set before the pool starts or, in application-loop
 * mode, from the loop thread.
 */
#ifndef QORB_TEST_FAKE_CONNECTOR_H
#define QORB_TEST_FAKE_CONNECTOR_H

#include <ev.h>
#include <stdatomic.h>
#include <stdint.h>

#include "qorb/qorb.h"

/* The four asynchronous ops a script can steer. */
typedef enum fc_op {
  FC_CONNECT = 0,
  FC_CHECK,
  FC_PREPARE,
  FC_RECYCLE,
  FC_NOPS
} fc_op_t;

/* How an op completes. */
typedef enum fc_mode {
  FC_LATER = 0, /* qorb_op_done(status) from an ev_timer of 0 s */
  FC_DELAY,     /* qorb_op_done(status) after delay_ms (ev_timer) */
  FC_SYNC,      /* qorb_op_done(status) inside the op, before it returns */
  FC_HANG,      /* never completes on its own (fake_conn_complete()) */
  FC_REFUSE     /* the op returns `status` (< 0) without starting */
} fc_mode_t;

typedef struct fc_action {
  fc_mode_t mode;
  int status;
  unsigned delay_ms;
} fc_action_t;

static inline fc_action_t fc_ok(void) {
  fc_action_t a = {FC_LATER, 0, 0};
  return a;
}
static inline fc_action_t fc_fail(int status) {
  fc_action_t a = {FC_LATER, status, 0};
  return a;
}
static inline fc_action_t fc_delay(unsigned ms, int status) {
  fc_action_t a = {FC_DELAY, status, ms};
  return a;
}
static inline fc_action_t fc_sync(int status) {
  fc_action_t a = {FC_SYNC, status, 0};
  return a;
}
static inline fc_action_t fc_hang(void) {
  fc_action_t a = {FC_HANG, 0, 0};
  return a;
}
static inline fc_action_t fc_refuse(int status) {
  fc_action_t a = {FC_REFUSE, status, 0};
  return a;
}

/* Counters, per backend and in total. */
typedef struct fc_counts {
  _Atomic unsigned long connects_started; /* connect returned 0 */
  _Atomic unsigned long connects_ok;
  _Atomic unsigned long connects_failed;  /* completed with status < 0 */
  _Atomic unsigned long connects_refused; /* connect returned < 0 */
  _Atomic unsigned long closes;
  _Atomic unsigned long aborts;           /* close with an op in flight */
  _Atomic unsigned long aborts_by_op[FC_NOPS];
  _Atomic unsigned long checks, checks_failed;
  _Atomic unsigned long prepares, prepares_failed;
  _Atomic unsigned long recycles, recycles_failed;
  _Atomic unsigned long needs_recycle_calls;
  _Atomic unsigned long reset_sends;     /* FC_RESET_SEND: reset_send calls
                                           that sent */
  _Atomic unsigned long reset_finishes;  /* reset_finish calls ... */
  _Atomic unsigned long reset_finishes_nowait; /* ... of them wait_ms 0 */
  _Atomic unsigned long peeks, peeks_dead;  /* FC_WATCH: peek calls, and
                                               those that found it dead */
  _Atomic long live;                      /* connections open now */
  _Atomic long max_live;
  _Atomic long inflight_connects;         /* connect ops in flight now */
  _Atomic long max_inflight_connects;
} fc_counts_t;

#define FC_MAX_TIMES 256

typedef struct fc_backend fc_backend_t;
typedef struct fake_conn fake_conn_t;
typedef struct fake_connector fake_connector_t;

/* Flags for fake_connector_new(): leave ops out of the table. */
#define FC_NO_CHECK 1u
#define FC_NO_PREPARE 2u
#define FC_NO_RECYCLE 4u
#define FC_NO_NEEDS_RECYCLE 8u
/*
 * Give every connection a socket pair and the idle_fd and peek ops, so
 * that the pool watches idle connections: fake_conn_kill() and
 * fake_conn_poke() act as a server that closes the connection or sends
 * something unsolicited. peek on a claimed or busy connection is a
 * violation.
 */
#define FC_WATCH 16u
/* With FC_WATCH: peek only, no idle_fd (nothing watched; claims validate). */
#define FC_PEEK_ONLY 32u
/*
 * The reset_send and reset_finish ops: a dirty release (needs_recycle 1)
 * is "sent" by the releasing thread and the connection stays dirty until
 * reset_finish runs, so that a claim of it before then is a violation.
 * With FC_WATCH the send also writes the "server's answer" (one byte) on
 * the connection's socket, which reset_finish reads: the pool's idle watch
 * sees it. fake_connector_reset_script() scripts the outcomes.
 */
#define FC_RESET_SEND 64u

/* A connection object, as the pool's claims hand it out. */
struct fake_conn {
  unsigned id;                  /* 1, 2, ... in connect order */
  fake_connector_t *fc;
  fc_backend_t *backend;
  qorb_op_t *op;                /* the slot, from connect */
  struct ev_loop *loop;
  _Atomic int open;             /* 1 from connect until close */
  _Atomic int close_count;
  _Atomic int connected;        /* connect completed with 0 */
  _Atomic int pending;          /* fc_op_t + 1 while an op is in flight */
  int pending_status;
  int timer_armed;
  ev_timer timer;               /* completion of the op in flight */
  _Atomic uintptr_t holder;     /* claimant token, 0 when not claimed */
  _Atomic unsigned long claims; /* fake_conn_acquire() successes */
  _Atomic int dirty;            /* what needs_recycle returns; a claim of
                                   a conn that is not 0 is a violation */
  _Atomic int needs_prepare;    /* connected or recycled, not yet prepared
                                   (a claim now is a violation) */
  unsigned long uses;           /* plain: touched only by the holder */
  _Atomic int reset_sent;       /* FC_RESET_SEND: sent, not finished */
  int sock[2];                  /* FC_WATCH: [0] the pool's, [1] the
                                   "server's"; -1 otherwise */
  uint64_t opened_ns, connected_ns, closed_ns;
};

/* One backend as the fake connector sees it (by address text). */
struct fc_backend {
  char addr[64];
  fc_counts_t n;
  int has_default[FC_NOPS];
  fc_action_t dflt[FC_NOPS];
  fc_action_t queue[FC_NOPS][32];
  unsigned qhead[FC_NOPS], qlen[FC_NOPS];
  /* monotonic ns of connect starts and of failed-op completions */
  uint64_t connect_start_ns[FC_MAX_TIMES];
  _Atomic unsigned nconnect_start;
  uint64_t fail_done_ns[FC_MAX_TIMES];
  _Atomic unsigned nfail_done;
};

/*
 * FC_RESET_SEND's script: what reset_send returns (0 sent, 1 decline, < 0
 * broken), what reset_finish returns once the answer is there (0, or a
 * failure), and `late`: the send writes no answer (FC_WATCH): reset_finish
 * without waiting says QORB_EAGAIN until fake_conn_answer() writes it.
 */
void fake_connector_reset_script(fake_connector_t *fc, int send_rc,
                                 int finish_rc, int late);
/* Write the answer of a late reset (FC_WATCH, FC_RESET_SEND). */
void fake_conn_answer(fake_conn_t *c);

/* Make an (idle) fake connector; `flags` as above. Never NULL (aborts). */
fake_connector_t *fake_connector_new(unsigned flags);

/*
 * A qorb connector over it (qorb_connector_new). The pool frees the qorb
 * connector; the fake itself stays the test's and records the destroy.
 */
qorb_connector_t *fake_connector_make(fake_connector_t *fc);

/* The op table in use (to build a qorb connector by hand). */
const qorb_connector_ops_t *fake_connector_ops(fake_connector_t *fc);

/*
 * Script: the default action of `op` for `backend` ("host:port"), or for
 * every backend without one of its own when `backend` is NULL.
 */
void fake_connector_set(fake_connector_t *fc, const char *backend, fc_op_t op,
                        fc_action_t a);
/* Script: a one-shot action, used before the defaults (FIFO, up to 32). */
void fake_connector_push(fake_connector_t *fc, const char *backend,
                         fc_op_t op, fc_action_t a);

/* The backend record (created if needed), for its counters. */
fc_backend_t *fake_connector_backend(fake_connector_t *fc,
                                     const char *backend);
/* Counters over all backends. */
fc_counts_t *fake_connector_total(fake_connector_t *fc);
/* Number of connection objects made so far. */
unsigned fake_connector_nconns(fake_connector_t *fc);
/* Connection `id` (1-based), or NULL. */
fake_conn_t *fake_connector_conn(fake_connector_t *fc, unsigned id);
/* The first open connection of `backend` (NULL: any) with `op` in flight. */
fake_conn_t *fake_connector_pending(fake_connector_t *fc, const char *backend,
                                    fc_op_t op);
/* Open connections of `backend` (NULL: all). */
unsigned fake_connector_open(fake_connector_t *fc, const char *backend);
/* Contract violations seen so far (each also printed to stderr). */
unsigned long fake_connector_violations(fake_connector_t *fc);
/* 1 once the connector's destroy op has run. */
int fake_connector_destroyed(fake_connector_t *fc);

/*
 * End-of-test checks (cmocka assertions): no violations, every connection
 * closed exactly once, and (when `expect_destroyed`) the pool destroyed the
 * connector.
 */
void fake_connector_verify(fake_connector_t *fc, int expect_destroyed);

/* Free the fake and every connection object it made. */
void fake_connector_free(fake_connector_t *fc);

/* Finish a hung op on `c` with `status` (from the next loop iteration). */
void fake_conn_complete(fake_conn_t *c, int status);

/*
 * The claimant's side of the double-claim check: take `c` for `token`
 * (a compare-and-swap of the holder from 0), and give it back. A failure is
 * recorded as a violation and returns -1.
 */
int fake_conn_acquire(fake_conn_t *c, uintptr_t token);
int fake_conn_release(fake_conn_t *c, uintptr_t token);

/* FC_WATCH: the "server" closes `c` (EOF on its socket). Any thread. */
void fake_conn_kill(fake_conn_t *c);
/* FC_WATCH: the "server" sends `c` a byte nobody asked for. Any thread. */
void fake_conn_poke(fake_conn_t *c);

/* What needs_recycle will answer for `c`: 0 clean, 1 recycle, < 0 broken. */
void fake_conn_set_dirty(fake_conn_t *c, int v);

/* Monotonic clock in ns and ms, shared by the support code. */
uint64_t fc_now_ns(void);

#endif /* QORB_TEST_FAKE_CONNECTOR_H */
