/* SPDX-License-Identifier: MIT */
/*
 * fake_connector.c: the scripted connector of the unit tests (see
 * fake_connector.h). Connection objects are never freed before the fake
 * itself, so that a second close or an op on a closed connection is
 * reported as a violation instead of becoming a use-after-free.
 */
#define _POSIX_C_SOURCE 200809L
#include "fake_connector.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

struct fake_connector {
  pthread_mutex_t mu;
  qorb_connector_ops_t ops;
  unsigned flags;
  fc_backend_t **backends;
  unsigned nbackends, cap_backends;
  fc_backend_t any; /* scripts for every backend (NULL) */
  fc_counts_t total;
  fake_conn_t **conns;
  unsigned nconns, cap_conns;
  _Atomic unsigned long violations;
  _Atomic int destroyed;
  _Atomic int reset_send_rc, reset_finish_rc, reset_late; /* FC_RESET_SEND */
};

static const char *const op_names[FC_NOPS] = {"connect", "check", "prepare",
                                              "recycle"};

uint64_t fc_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n, size);
  if (p == NULL) {
    fprintf(stderr, "fake_connector: out of memory\n");
    abort();
  }
  return p;
}

static void violation(fake_connector_t *fc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void violation(fake_connector_t *fc, const char *fmt, ...) {
  va_list ap;
  atomic_fetch_add(&fc->violations, 1);
  fprintf(stderr, "fake_connector: CONTRACT VIOLATION: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static void update_max(_Atomic long *max, long v) {
  long cur = atomic_load(max);
  while (v > cur && !atomic_compare_exchange_weak(max, &cur, v)) {
  }
}

/* Count in the backend's counters and in the totals. */
#define FC_INC(fc, b, field)                 \
  do {                                       \
    atomic_fetch_add(&(b)->n.field, 1);      \
    atomic_fetch_add(&(fc)->total.field, 1); \
  } while (0)

static void add_live(fake_connector_t *fc, fc_backend_t *b, long d) {
  long v = atomic_fetch_add(&b->n.live, d) + d;
  long t = atomic_fetch_add(&fc->total.live, d) + d;
  update_max(&b->n.max_live, v);
  update_max(&fc->total.max_live, t);
}

static void add_inflight(fake_connector_t *fc, fc_backend_t *b, long d) {
  long v = atomic_fetch_add(&b->n.inflight_connects, d) + d;
  long t = atomic_fetch_add(&fc->total.inflight_connects, d) + d;
  update_max(&b->n.max_inflight_connects, v);
  update_max(&fc->total.max_inflight_connects, t);
}

/* The record of a backend by its address text; mu held. */
static fc_backend_t *backend_locked(fake_connector_t *fc, const char *addr) {
  fc_backend_t *b;
  unsigned i;
  for (i = 0; i < fc->nbackends; i++)
    if (strcmp(fc->backends[i]->addr, addr) == 0) return fc->backends[i];
  if (fc->nbackends == fc->cap_backends) {
    unsigned cap = fc->cap_backends ? fc->cap_backends * 2 : 8;
    fc_backend_t **nb = realloc(fc->backends, cap * sizeof(*nb));
    if (nb == NULL) abort();
    fc->backends = nb;
    fc->cap_backends = cap;
  }
  b = xcalloc(1, sizeof(*b));
  snprintf(b->addr, sizeof(b->addr), "%s", addr);
  fc->backends[fc->nbackends++] = b;
  return b;
}

fc_backend_t *fake_connector_backend(fake_connector_t *fc,
                                     const char *backend) {
  fc_backend_t *b;
  pthread_mutex_lock(&fc->mu);
  b = backend_locked(fc, backend);
  pthread_mutex_unlock(&fc->mu);
  return b;
}

fc_counts_t *fake_connector_total(fake_connector_t *fc) { return &fc->total; }

static int queue_pop(fc_backend_t *b, fc_op_t op, fc_action_t *a) {
  if (b->qlen[op] == 0) return 0;
  *a = b->queue[op][b->qhead[op]];
  b->qhead[op] = (b->qhead[op] + 1) % 32u;
  b->qlen[op]--;
  return 1;
}

/* The next scripted action of `op` on backend `b`. */
static fc_action_t next_action(fake_connector_t *fc, fc_backend_t *b,
                               fc_op_t op) {
  fc_action_t a = fc_ok();
  pthread_mutex_lock(&fc->mu);
  if (queue_pop(b, op, &a)) {
  } else if (b->has_default[op]) {
    a = b->dflt[op];
  } else if (queue_pop(&fc->any, op, &a)) {
  } else if (fc->any.has_default[op]) {
    a = fc->any.dflt[op];
  }
  pthread_mutex_unlock(&fc->mu);
  return a;
}

void fake_connector_set(fake_connector_t *fc, const char *backend, fc_op_t op,
                        fc_action_t a) {
  fc_backend_t *b;
  pthread_mutex_lock(&fc->mu);
  b = backend != NULL ? backend_locked(fc, backend) : &fc->any;
  b->has_default[op] = 1;
  b->dflt[op] = a;
  pthread_mutex_unlock(&fc->mu);
}

void fake_connector_push(fake_connector_t *fc, const char *backend,
                         fc_op_t op, fc_action_t a) {
  fc_backend_t *b;
  pthread_mutex_lock(&fc->mu);
  b = backend != NULL ? backend_locked(fc, backend) : &fc->any;
  if (b->qlen[op] >= 32) {
    pthread_mutex_unlock(&fc->mu);
    fprintf(stderr, "fake_connector_push: queue full\n");
    abort();
  }
  b->queue[op][(b->qhead[op] + b->qlen[op]) % 32u] = a;
  b->qlen[op]++;
  pthread_mutex_unlock(&fc->mu);
}

static void record_time(uint64_t *arr, _Atomic unsigned *n) {
  unsigned i = atomic_load(n);
  if (i < FC_MAX_TIMES) {
    arr[i] = fc_now_ns();
    atomic_store(n, i + 1);
  }
}

/* The op in flight on `c` has finished: count it and tell the pool. */
static void finish(fake_conn_t *c) {
  fake_connector_t *fc = c->fc;
  fc_backend_t *b = c->backend;
  int p = atomic_load(&c->pending);
  int st = c->pending_status;
  fc_op_t op;
  if (p == 0) {
    violation(fc, "conn %u: completion with no op in flight", c->id);
    return;
  }
  op = (fc_op_t)(p - 1);
  atomic_store(&c->pending, 0);
  switch (op) {
    case FC_CONNECT:
      add_inflight(fc, b, -1);
      if (st == 0) {
        FC_INC(fc, b, connects_ok);
        c->connected_ns = fc_now_ns();
        atomic_store(&c->connected, 1);
        if (!(fc->flags & FC_NO_PREPARE)) atomic_store(&c->needs_prepare, 1);
      } else {
        FC_INC(fc, b, connects_failed);
      }
      break;
    case FC_CHECK:
      if (st != 0) FC_INC(fc, b, checks_failed);
      break;
    case FC_PREPARE:
      if (st == 0)
        atomic_store(&c->needs_prepare, 0);
      else
        FC_INC(fc, b, prepares_failed);
      break;
    case FC_RECYCLE:
      if (st == 0) {
        atomic_store(&c->dirty, 0);
        if (!(fc->flags & FC_NO_PREPARE)) atomic_store(&c->needs_prepare, 1);
      } else {
        FC_INC(fc, b, recycles_failed);
      }
      break;
    default:
      break;
  }
  if (st != 0) {
    record_time(b->fail_done_ns, &b->nfail_done);
    qorb_op_set_error(c->op, "fake %s failed on %s (conn %u, status %d)",
                      op_names[op], b->addr, c->id, st);
  }
  /* The pool may close `c` from inside qorb_op_done(): touch nothing after. */
  qorb_op_done(c->op, st);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  fake_conn_t *c = w->data;
  (void)loop;
  (void)revents;
  c->timer_armed = 0;
  finish(c);
}

static void arm(fake_conn_t *c, double after) {
  if (c->timer_armed) ev_timer_stop(c->loop, &c->timer);
  ev_timer_set(&c->timer, after, 0.);
  ev_timer_start(c->loop, &c->timer);
  c->timer_armed = 1;
}

/* Run `a` for the op just set pending on `c`; returns what the op returns. */
static int run_action(fake_conn_t *c, fc_op_t op, fc_action_t a) {
  c->pending_status = a.status;
  atomic_store(&c->pending, (int)op + 1);
  switch (a.mode) {
    case FC_SYNC:
      finish(c);
      return 0;
    case FC_HANG:
      return 0;
    case FC_DELAY:
      arm(c, (double)a.delay_ms / 1000.0);
      return 0;
    case FC_LATER:
    default:
      arm(c, 0.);
      return 0;
  }
}

static int fc_connect(void *ctx, qorb_op_t *op, const qorb_addr_t *addr,
                      void **conn) {
  fake_connector_t *fc = ctx;
  fc_backend_t *b;
  fake_conn_t *c;
  fc_action_t a;
  const qorb_addr_t *opaddr;

  if (addr == NULL || conn == NULL || op == NULL) {
    violation(fc, "connect with NULL arguments");
    return QORB_EINVAL;
  }
  opaddr = qorb_op_addr(op);
  if (opaddr == NULL || !qorb_addr_equal(opaddr, addr))
    violation(fc, "connect to %s: qorb_op_addr() disagrees", addr->text);
  if (qorb_op_loop(op) == NULL) violation(fc, "connect: qorb_op_loop() NULL");
  if (atomic_load(&fc->destroyed))
    violation(fc, "connect after the connector was destroyed");
  b = fake_connector_backend(fc, addr->text);
  a = next_action(fc, b, FC_CONNECT);
  record_time(b->connect_start_ns, &b->nconnect_start);
  if (a.mode == FC_REFUSE) {
    FC_INC(fc, b, connects_refused);
    record_time(b->fail_done_ns, &b->nfail_done);
    return a.status < 0 ? a.status : QORB_ECONNECT;
  }

  c = xcalloc(1, sizeof(*c));
  c->fc = fc;
  c->backend = b;
  c->op = op;
  c->loop = qorb_op_loop(op);
  c->opened_ns = fc_now_ns();
  c->sock[0] = c->sock[1] = -1;
  if ((fc->flags & FC_WATCH) &&
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                 c->sock) != 0)
    abort();
  ev_timer_init(&c->timer, timer_cb, 0., 0.);
  c->timer.data = c;
  atomic_store(&c->open, 1);
  pthread_mutex_lock(&fc->mu);
  if (fc->nconns == fc->cap_conns) {
    unsigned cap = fc->cap_conns ? fc->cap_conns * 2 : 64;
    fake_conn_t **nc = realloc(fc->conns, cap * sizeof(*nc));
    if (nc == NULL) abort();
    fc->conns = nc;
    fc->cap_conns = cap;
  }
  fc->conns[fc->nconns++] = c;
  c->id = fc->nconns;
  pthread_mutex_unlock(&fc->mu);

  FC_INC(fc, b, connects_started);
  add_live(fc, b, 1);
  add_inflight(fc, b, 1);
  /* Set before a synchronous completion: the pool may look at it then. */
  *conn = c;
  return run_action(c, FC_CONNECT, a);
}

/* Common entry checks of check, prepare and recycle. */
static int op_entry(fake_connector_t *fc, fake_conn_t *c, fc_op_t op,
                    qorb_op_t *qop) {
  if (c == NULL || qop == NULL) {
    violation(fc, "%s with a NULL conn or op", op_names[op]);
    return -1;
  }
  if (!atomic_load(&c->open)) {
    violation(fc, "%s on closed conn %u", op_names[op], c->id);
    return -1;
  }
  if (!atomic_load(&c->connected)) {
    violation(fc, "%s on conn %u that never connected", op_names[op], c->id);
    return -1;
  }
  if (atomic_load(&c->pending)) {
    violation(fc, "%s on conn %u while %s is in flight", op_names[op], c->id,
              op_names[atomic_load(&c->pending) - 1]);
    return -1;
  }
  if (atomic_load(&c->holder) != 0) {
    violation(fc, "%s on conn %u while it is claimed", op_names[op], c->id);
    return -1;
  }
  c->op = qop;
  return 0;
}

static int fc_check(void *ctx, qorb_op_t *op, void *conn) {
  fake_connector_t *fc = ctx;
  fake_conn_t *c = conn;
  fc_action_t a;
  if (op_entry(fc, c, FC_CHECK, op) < 0) return QORB_EINVAL;
  FC_INC(fc, c->backend, checks);
  a = next_action(fc, c->backend, FC_CHECK);
  if (a.mode == FC_REFUSE) {
    FC_INC(fc, c->backend, checks_failed);
    return a.status < 0 ? a.status : QORB_ECHECK;
  }
  return run_action(c, FC_CHECK, a);
}

static int fc_prepare(void *ctx, qorb_op_t *op, void *conn) {
  fake_connector_t *fc = ctx;
  fake_conn_t *c = conn;
  fc_action_t a;
  if (op_entry(fc, c, FC_PREPARE, op) < 0) return QORB_EINVAL;
  FC_INC(fc, c->backend, prepares);
  a = next_action(fc, c->backend, FC_PREPARE);
  if (a.mode == FC_REFUSE) {
    FC_INC(fc, c->backend, prepares_failed);
    return a.status < 0 ? a.status : QORB_EACQUIRE;
  }
  return run_action(c, FC_PREPARE, a);
}

static int fc_recycle(void *ctx, qorb_op_t *op, void *conn) {
  fake_connector_t *fc = ctx;
  fake_conn_t *c = conn;
  fc_action_t a;
  if (op_entry(fc, c, FC_RECYCLE, op) < 0) return QORB_EINVAL;
  FC_INC(fc, c->backend, recycles);
  a = next_action(fc, c->backend, FC_RECYCLE);
  if (a.mode == FC_REFUSE) {
    FC_INC(fc, c->backend, recycles_failed);
    return a.status < 0 ? a.status : QORB_ERECYCLE;
  }
  return run_action(c, FC_RECYCLE, a);
}

static int fc_idle_fd(void *ctx, void *conn) {
  fake_conn_t *c = conn;
  (void)ctx;
  return c != NULL ? c->sock[0] : -1;
}

static int fc_peek(void *ctx, void *conn) {
  fake_connector_t *fc = ctx;
  fake_conn_t *c = conn;
  char b;
  ssize_t n;
  if (c == NULL || !atomic_load(&c->open)) {
    violation(fc, "peek on a NULL or closed conn");
    return QORB_EINVAL;
  }
  if (atomic_load(&c->holder) != 0)
    violation(fc, "peek on conn %u while it is claimed", c->id);
  if (atomic_load(&c->pending))
    violation(fc, "peek on conn %u while an op is in flight", c->id);
  FC_INC(fc, c->backend, peeks);
  n = recv(c->sock[0], &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
  FC_INC(fc, c->backend, peeks_dead);
  return n > 0 ? QORB_EPROTO : QORB_EGONE;
}

void fake_conn_kill(fake_conn_t *c) {
  if (c->sock[1] >= 0) shutdown(c->sock[1], SHUT_WR);
}

void fake_conn_poke(fake_conn_t *c) {
  if (c->sock[1] >= 0 && write(c->sock[1], "x", 1) != 1) abort();
}

static int fc_needs_recycle(void *ctx, void *conn) {
  fake_connector_t *fc = ctx;
  fake_conn_t *c = conn;
  if (c == NULL) {
    violation(fc, "needs_recycle with a NULL conn");
    return QORB_EINVAL;
  }
  if (!atomic_load(&c->open))
    violation(fc, "needs_recycle on closed conn %u", c->id);
  FC_INC(fc, c->backend, needs_recycle_calls);
  return atomic_load(&c->dirty);
}

void fake_connector_reset_script(fake_connector_t *fc, int send_rc,
                                 int finish_rc, int late) {
  atomic_store(&fc->reset_send_rc, send_rc);
  atomic_store(&fc->reset_finish_rc, finish_rc);
  atomic_store(&fc->reset_late, late);
}

void fake_conn_answer(fake_conn_t *c) {
  if (c->sock[1] >= 0 && write(c->sock[1], "r", 1) != 1) abort();
}

/* Releasing thread: "send" the reset of a dirty connection. */
static int fc_reset_send(void *ctx, void *conn) {
  fake_connector_t *fc = ctx;
  fake_conn_t *c = conn;
  int rc = atomic_load(&fc->reset_send_rc);
  if (!atomic_load(&c->open)) violation(fc, "reset_send on closed conn %u", c->id);
  if (atomic_load(&c->holder) != 0)
    violation(fc, "reset_send on conn %u while it is claimed", c->id);
  if (atomic_load(&c->reset_sent))
    violation(fc, "reset_send on conn %u twice", c->id);
  if (rc != 0) return rc;
  FC_INC(fc, c->backend, reset_sends);
  atomic_store(&c->reset_sent, 1);
  if (c->sock[1] >= 0 && !atomic_load(&fc->reset_late)) fake_conn_answer(c);
  return 0;
}

/* Whoever owns it now: read the answer. */
static int fc_reset_finish(void *ctx, void *conn, int wait_ms, char *err,
                           size_t errlen) {
  fake_connector_t *fc = ctx;
  fake_conn_t *c = conn;
  int rc = atomic_load(&fc->reset_finish_rc);
  char b;
  if (!atomic_load(&c->reset_sent))
    violation(fc, "reset_finish on conn %u with no reset sent", c->id);
  if (atomic_load(&c->holder) != 0)
    violation(fc, "reset_finish on conn %u while it is claimed", c->id);
  FC_INC(fc, c->backend, reset_finishes);
  if (wait_ms == 0) FC_INC(fc, c->backend, reset_finishes_nowait);
  if (c->sock[0] >= 0) {
    ssize_t n = recv(c->sock[0], &b, 1, MSG_DONTWAIT);
    if (n != 1 && wait_ms == 0) return QORB_EAGAIN;
  }
  atomic_store(&c->reset_sent, 0);
  if (rc != 0) {
    snprintf(err, errlen, "reset: scripted failure on conn %u", c->id);
    return rc;
  }
  atomic_store(&c->dirty, 0);
  return 0;
}

static void fc_close(void *ctx, void *conn) {
  fake_connector_t *fc = ctx;
  fake_conn_t *c = conn;
  int p;
  if (c == NULL) {
    violation(fc, "close with a NULL conn");
    return;
  }
  if (atomic_fetch_add(&c->close_count, 1) != 0) {
    violation(fc, "conn %u (%s) closed twice", c->id, c->backend->addr);
    return;
  }
  if (atomic_load(&c->holder) != 0)
    violation(fc, "conn %u closed while claimed", c->id);
  p = atomic_load(&c->pending);
  if (p != 0) {
    FC_INC(fc, c->backend, aborts);
    FC_INC(fc, c->backend, aborts_by_op[p - 1]);
    if (p - 1 == FC_CONNECT) add_inflight(fc, c->backend, -1);
    atomic_store(&c->pending, 0);
  }
  /* The pool aborts ops by closing: no completion may follow. */
  if (c->timer_armed) {
    ev_timer_stop(c->loop, &c->timer);
    c->timer_armed = 0;
  }
  c->closed_ns = fc_now_ns();
  if (c->sock[0] >= 0) {
    close(c->sock[0]);
    close(c->sock[1]);
    c->sock[0] = c->sock[1] = -1;
  }
  atomic_store(&c->open, 0);
  FC_INC(fc, c->backend, closes);
  add_live(fc, c->backend, -1);
}

static void fc_destroy(void *ctx) {
  fake_connector_t *fc = ctx;
  unsigned i;
  if (atomic_fetch_add(&fc->destroyed, 1) != 0)
    violation(fc, "connector destroyed twice");
  pthread_mutex_lock(&fc->mu);
  for (i = 0; i < fc->nconns; i++)
    if (atomic_load(&fc->conns[i]->open))
      violation(fc, "connector destroyed with conn %u still open",
                fc->conns[i]->id);
  pthread_mutex_unlock(&fc->mu);
}

fake_connector_t *fake_connector_new(unsigned flags) {
  fake_connector_t *fc = xcalloc(1, sizeof(*fc));
  pthread_mutex_init(&fc->mu, NULL);
  fc->flags = flags;
  fc->ops.version = QORB_CONNECTOR_OPS_VERSION;
  fc->ops.name = "fake";
  fc->ops.connect = fc_connect;
  fc->ops.check = (flags & FC_NO_CHECK) ? NULL : fc_check;
  fc->ops.prepare = (flags & FC_NO_PREPARE) ? NULL : fc_prepare;
  fc->ops.recycle = (flags & FC_NO_RECYCLE) ? NULL : fc_recycle;
  fc->ops.needs_recycle = (flags & FC_NO_NEEDS_RECYCLE) ? NULL : fc_needs_recycle;
  fc->ops.close = fc_close;
  fc->ops.destroy = fc_destroy;
  fc->ops.idle_fd =
      (flags & FC_WATCH) && !(flags & FC_PEEK_ONLY) ? fc_idle_fd : NULL;
  fc->ops.peek = (flags & FC_WATCH) ? fc_peek : NULL;
  fc->ops.reset_send = (flags & FC_RESET_SEND) ? fc_reset_send : NULL;
  fc->ops.reset_finish = (flags & FC_RESET_SEND) ? fc_reset_finish : NULL;
  return fc;
}

const qorb_connector_ops_t *fake_connector_ops(fake_connector_t *fc) {
  return &fc->ops;
}

qorb_connector_t *fake_connector_make(fake_connector_t *fc) {
  qorb_connector_t *c = NULL;
  int rc = qorb_connector_new(&c, &fc->ops, fc);
  if (rc != 0) return NULL;
  return c;
}

unsigned fake_connector_nconns(fake_connector_t *fc) {
  unsigned n;
  pthread_mutex_lock(&fc->mu);
  n = fc->nconns;
  pthread_mutex_unlock(&fc->mu);
  return n;
}

fake_conn_t *fake_connector_conn(fake_connector_t *fc, unsigned id) {
  fake_conn_t *c = NULL;
  pthread_mutex_lock(&fc->mu);
  if (id >= 1 && id <= fc->nconns) c = fc->conns[id - 1];
  pthread_mutex_unlock(&fc->mu);
  return c;
}

fake_conn_t *fake_connector_pending(fake_connector_t *fc, const char *backend,
                                    fc_op_t op) {
  fake_conn_t *c = NULL;
  unsigned i;
  pthread_mutex_lock(&fc->mu);
  for (i = 0; i < fc->nconns; i++) {
    fake_conn_t *x = fc->conns[i];
    if (atomic_load(&x->open) && atomic_load(&x->pending) == (int)op + 1 &&
        (backend == NULL || strcmp(x->backend->addr, backend) == 0)) {
      c = x;
      break;
    }
  }
  pthread_mutex_unlock(&fc->mu);
  return c;
}

unsigned fake_connector_open(fake_connector_t *fc, const char *backend) {
  unsigned i, n = 0;
  pthread_mutex_lock(&fc->mu);
  for (i = 0; i < fc->nconns; i++) {
    fake_conn_t *x = fc->conns[i];
    if (atomic_load(&x->open) &&
        (backend == NULL || strcmp(x->backend->addr, backend) == 0))
      n++;
  }
  pthread_mutex_unlock(&fc->mu);
  return n;
}

unsigned long fake_connector_violations(fake_connector_t *fc) {
  return atomic_load(&fc->violations);
}

int fake_connector_destroyed(fake_connector_t *fc) {
  return atomic_load(&fc->destroyed);
}

void fake_connector_verify(fake_connector_t *fc, int expect_destroyed) {
  unsigned i, bad = 0;
  pthread_mutex_lock(&fc->mu);
  for (i = 0; i < fc->nconns; i++) {
    fake_conn_t *c = fc->conns[i];
    int n = atomic_load(&c->close_count);
    if (n != 1) {
      fprintf(stderr,
              "fake_connector_verify: conn %u (%s) closed %d times "
              "(expected exactly once)\n",
              c->id, c->backend->addr, n);
      bad++;
    }
  }
  pthread_mutex_unlock(&fc->mu);
  assert_int_equal(bad, 0);
  assert_int_equal(fake_connector_violations(fc), 0);
  assert_int_equal(atomic_load(&fc->total.live), 0);
  if (expect_destroyed) assert_int_equal(fake_connector_destroyed(fc), 1);
}

void fake_connector_free(fake_connector_t *fc) {
  unsigned i;
  if (fc == NULL) return;
  for (i = 0; i < fc->nconns; i++) {
    fake_conn_t *c = fc->conns[i];
    /* A connection the pool never closed may still have a timer. */
    if (c->timer_armed && c->loop != NULL) ev_timer_stop(c->loop, &c->timer);
    free(c);
  }
  free(fc->conns);
  for (i = 0; i < fc->nbackends; i++) free(fc->backends[i]);
  free(fc->backends);
  pthread_mutex_destroy(&fc->mu);
  free(fc);
}

void fake_conn_complete(fake_conn_t *c, int status) {
  if (c == NULL || !atomic_load(&c->open) || atomic_load(&c->pending) == 0) {
    fail_msg("fake_conn_complete: conn has no op in flight");
    return;
  }
  c->pending_status = status;
  arm(c, 0.);
}

int fake_conn_acquire(fake_conn_t *c, uintptr_t token) {
  uintptr_t expect = 0;
  if (c == NULL) return -1;
  if (!atomic_compare_exchange_strong(&c->holder, &expect, token)) {
    violation(c->fc, "conn %u claimed by %#lx while held by %#lx", c->id,
              (unsigned long)token, (unsigned long)expect);
    return -1;
  }
  if (!atomic_load(&c->open) || !atomic_load(&c->connected))
    violation(c->fc, "conn %u handed out while not connected and open",
              c->id);
  if (atomic_load(&c->pending))
    violation(c->fc, "conn %u handed out with %s in flight", c->id,
              op_names[atomic_load(&c->pending) - 1]);
  if (atomic_load(&c->needs_prepare))
    violation(c->fc, "conn %u handed out without prepare", c->id);
  if (atomic_load(&c->dirty) != 0)
    violation(c->fc, "conn %u handed out dirty or broken (%d)", c->id,
              atomic_load(&c->dirty));
  /* A plain write: ThreadSanitizer reports it if two holders overlap. */
  c->uses++;
  atomic_fetch_add(&c->claims, 1);
  return 0;
}

int fake_conn_release(fake_conn_t *c, uintptr_t token) {
  uintptr_t expect = token;
  if (c == NULL) return -1;
  if (!atomic_compare_exchange_strong(&c->holder, &expect, 0)) {
    violation(c->fc, "conn %u released by %#lx but held by %#lx", c->id,
              (unsigned long)token, (unsigned long)expect);
    return -1;
  }
  return 0;
}

void fake_conn_set_dirty(fake_conn_t *c, int v) {
  if (c != NULL) atomic_store(&c->dirty, v);
}
