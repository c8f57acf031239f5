/* SPDX-License-Identifier: MIT */
/*
 * test_hooks.c: the pool's lifecycle hooks (policy.after_connect,
 * before_acquire, after_release) over the fake connector, on a pool with
 * its own loop thread: where each runs (after_connect once per connection,
 * before_acquire before every hand-out, after_release after every release
 * but a broken one), and that a rejection, a failure to start, a timeout
 * or a pool closing under a hook closes the connection and never hands it
 * out. The hooks keep, reject or hang as each test scripts them; the fake
 * connector flags a claim of a connection that is dirty or not prepared.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"

#define A "127.0.0.1:1"

enum { H_CONNECT = 0, H_ACQUIRE, H_RELEASE, H_N };

/* How a hook answers. */
enum hk_mode {
  HK_KEEP = 0,  /* qorb_op_done(op, 0) inside the hook */
  HK_LATER,     /* qorb_op_done(op, 0) from a timer on the pool loop */
  HK_REJECT,    /* qorb_op_done(op, QORB_EREJECTED) inside the hook */
  HK_REFUSE,    /* return QORB_EPROTO without starting */
  HK_HANG       /* never answers: the pool's timeout must end it */
};

#define HK_MAX_LATER 16

typedef struct hk_later {
  ev_timer timer;
  qorb_op_t *op;     /* NULL: the entry is free */
} hk_later_t;

typedef struct hk {
  _Atomic int mode[H_N];
  _Atomic int next_mode[H_N];  /* the mode after `times` runs in `mode` */
  _Atomic int times[H_N];      /* runs left in `mode`; < 0: forever */
  _Atomic unsigned long calls[H_N];
  _Atomic unsigned long cancels;
  _Atomic unsigned long seq;
  /* For each fake connection id (1 ...): the sequence numbers of its
     after_connect, its first before_acquire, and its hook runs. */
  _Atomic unsigned long connect_seq[64], acquire_seq[64];
  _Atomic unsigned long rejected[64];
  hk_later_t later[HK_MAX_LATER]; /* pool loop only */
} hk_t;

static fc_counts_t *total(fx_t *fx) { return fake_connector_total(fx->fc); }

static void later_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  hk_later_t *l = (hk_later_t *)t;
  qorb_op_t *op = l->op;
  (void)revents;
  ev_timer_stop(loop, t);
  l->op = NULL;
  qorb_op_done(op, 0);
}

static int hook_mode(hk_t *h, int which) {
  int m = atomic_load(&h->mode[which]);
  int left = atomic_load(&h->times[which]);
  if (left > 0 && atomic_fetch_sub(&h->times[which], 1) == 1)
    atomic_store(&h->mode[which], atomic_load(&h->next_mode[which]));
  return m;
}

static int hook_run(hk_t *h, int which, qorb_op_t *op, void *conn) {
  fake_conn_t *c = conn;
  unsigned long seq = atomic_fetch_add(&h->seq, 1) + 1;
  unsigned id = c->id < 64 ? c->id : 63;
  int i;
  atomic_fetch_add(&h->calls[which], 1);
  /* The pool owns the connection while a hook runs. */
  assert_int_equal(atomic_load(&c->holder), 0);
  if (which == H_CONNECT) atomic_store(&h->connect_seq[id], seq);
  if (which == H_ACQUIRE && atomic_load(&h->acquire_seq[id]) == 0)
    atomic_store(&h->acquire_seq[id], seq);
  switch (hook_mode(h, which)) {
  case HK_KEEP:
    qorb_op_done(op, 0);
    return 0;
  case HK_LATER:
    for (i = 0; i < HK_MAX_LATER; i++) {
      if (h->later[i].op != NULL) continue;
      h->later[i].op = op;
      ev_timer_init(&h->later[i].timer, later_cb, 0.001, 0.);
      ev_timer_start(qorb_op_loop(op), &h->later[i].timer);
      return 0;
    }
    fail_msg("too many hooks in flight");
    return QORB_ENOMEM;
  case HK_REJECT:
    atomic_fetch_add(&h->rejected[id], 1);
    qorb_op_set_error(op, "hook %d rejected connection %u", which, c->id);
    qorb_op_done(op, QORB_EREJECTED);
    return 0;
  case HK_REFUSE:
    atomic_fetch_add(&h->rejected[id], 1);
    return QORB_EPROTO;
  default:
    return 0; /* HK_HANG */
  }
}

static int after_connect(void *arg, qorb_op_t *op, void *conn) {
  return hook_run(arg, H_CONNECT, op, conn);
}
static int before_acquire(void *arg, qorb_op_t *op, void *conn) {
  return hook_run(arg, H_ACQUIRE, op, conn);
}
static int after_release(void *arg, qorb_op_t *op, void *conn) {
  return hook_run(arg, H_RELEASE, op, conn);
}
static void hook_cancel(void *arg, qorb_op_t *op, void *conn) {
  hk_t *h = arg;
  int i;
  (void)conn;
  atomic_fetch_add(&h->cancels, 1);
  for (i = 0; i < HK_MAX_LATER; i++) {
    if (h->later[i].op != op) continue;
    ev_timer_stop(qorb_op_loop(op), &h->later[i].timer);
    h->later[i].op = NULL;
  }
}

/* Run hook `which` in `mode` `times` times (< 0: always), then `then`. */
static void hk_script(hk_t *h, int which, int mode, int times, int then) {
  atomic_store(&h->next_mode[which], then);
  atomic_store(&h->times[which], times);
  atomic_store(&h->mode[which], mode);
}

/* A pool on its own thread with every hook set and `slots` connections. */
static void start(fx_t *fx, hk_t *h, unsigned flags, unsigned slots) {
  memset(h, 0, sizeof(*h));
  fx_init(fx, flags | FC_NO_CHECK, 1);
  fx->policy.max_slots = slots;
  fx->policy.spares_wanted = slots;
  fx->policy.after_connect = after_connect;
  fx->policy.before_acquire = before_acquire;
  fx->policy.after_release = after_release;
  fx->policy.hook_cancel = hook_cancel;
  fx->policy.hook_arg = h;
  fx->policy.hook_timeout_ms = 200;
  fake_resolver_set_initial(fx->fr, A);
}

static qorb_claim_t *claim_blocking(fx_t *fx) {
  qorb_claim_t *c = NULL;
  assert_int_equal(qorb_pool_claim_wait(fx->pool, 5000, &c), 0);
  assert_int_equal(fake_conn_acquire(fx_conn(c), (uintptr_t)c), 0);
  return c;
}

static uint64_t closed(fx_t *fx, int cause) {
  qorb_pool_stats_t st;
  fx_stats(fx, &st);
  return st.closed[cause];
}

/* Where each hook runs, and how often, over clean and dirty releases. */
static void test_hooks_run_where_they_belong(void **state) {
  fx_t fx;
  hk_t h;
  int i;
  (void)state;
  start(&fx, &h, 0, 2);
  hk_script(&h, H_CONNECT, HK_LATER, -1, HK_LATER);
  fx_start(&fx);
  WAIT_UNTIL(fx_idle(&fx) == 2, 5000);
  assert_int_equal(atomic_load(&h.calls[H_CONNECT]), 2);
  assert_int_equal(atomic_load(&h.calls[H_ACQUIRE]), 2);
  assert_int_equal(atomic_load(&h.calls[H_RELEASE]), 0);
  /* after_connect came before the connector's prepare was done with it,
     and before the first before_acquire. */
  for (i = 1; i <= 2; i++)
    assert_true(atomic_load(&h.connect_seq[i]) <
                atomic_load(&h.acquire_seq[i]));
  for (i = 0; i < 10; i++) {
    qorb_claim_t *c = claim_blocking(&fx);
    if (i % 2) fake_conn_set_dirty(fx_conn(c), 1);
    fx_release(c);
    /* Back through the hooks before anyone may have it again. */
    WAIT_UNTIL(atomic_load(&h.calls[H_ACQUIRE]) == (unsigned long)(3 + i),
               5000);
  }
  WAIT_UNTIL(fx_idle(&fx) == 2, 5000);
  assert_int_equal(atomic_load(&h.calls[H_RELEASE]), 10);
  assert_int_equal(atomic_load(&h.calls[H_ACQUIRE]), 12);
  /* Once per connection: still the two connects. */
  assert_int_equal(atomic_load(&h.calls[H_CONNECT]), 2);
  assert_int_equal(atomic_load(&total(&fx)->connects_ok), 2);
  /* Only the dirty releases were recycled. */
  assert_int_equal(atomic_load(&total(&fx)->recycles), 5);
  assert_int_equal(atomic_load(&h.cancels), 0);
  fx_finish(&fx);
}

/* A broken release closes the connection without after_release. */
static void test_broken_release_skips_after_release(void **state) {
  fx_t fx;
  hk_t h;
  qorb_claim_t *c;
  (void)state;
  start(&fx, &h, 0, 1);
  fx_start(&fx);
  WAIT_UNTIL(fx_idle(&fx) == 1, 5000);
  c = claim_blocking(&fx);
  fx_release_broken(c);
  WAIT_UNTIL(fx_idle(&fx) == 1, 5000);
  assert_int_equal(atomic_load(&h.calls[H_RELEASE]), 0);
  assert_int_equal(atomic_load(&h.calls[H_CONNECT]), 2);
  fx_finish(&fx);
}

/* before_acquire rejects the first three connections: each is closed and
   never claimed; the fourth is handed out. */
static void test_before_acquire_rejects(void **state) {
  fx_t fx;
  hk_t h;
  qorb_claim_t *c;
  qorb_backend_stats_t b;
  fake_conn_t *conn;
  (void)state;
  start(&fx, &h, 0, 1);
  hk_script(&h, H_ACQUIRE, HK_REJECT, 3, HK_KEEP);
  fx_start(&fx);
  c = claim_blocking(&fx);
  conn = fx_conn(c);
  assert_int_equal(atomic_load(&h.rejected[conn->id]), 0);
  assert_int_equal(conn->id, 4);
  assert_int_equal(atomic_load(&total(&fx)->connects_ok), 4);
  assert_int_equal(closed(&fx, QORB_CLOSE_PREPARE), 3);
  assert_true(fx_backend(&fx, A, &b));
  assert_non_null(strstr(b.last_error, "rejected connection 3"));
  fx_release(c);
  fx_finish(&fx);
}

/* after_release rejects: the connection is closed and replaced at once,
   and the next claimant gets the new one. */
static void test_after_release_rejects(void **state) {
  fx_t fx;
  hk_t h;
  qorb_claim_t *c;
  fake_conn_t *first;
  (void)state;
  start(&fx, &h, 0, 1);
  fx_start(&fx);
  c = claim_blocking(&fx);
  first = fx_conn(c);
  hk_script(&h, H_RELEASE, HK_REJECT, 1, HK_KEEP);
  fx_release(c);
  c = claim_blocking(&fx);
  assert_ptr_not_equal(fx_conn(c), first);
  assert_int_equal(atomic_load(&first->open), 0);
  assert_int_equal(closed(&fx, QORB_CLOSE_RECYCLE), 1);
  fx_release(c);
  /* The replacement goes on being reused. */
  c = claim_blocking(&fx);
  assert_int_equal(fx_conn(c)->id, 2);
  fx_release(c);
  fx_finish(&fx);
}

/* A hook that never answers is ended by hook_timeout_ms: hook_cancel
   runs, the connection closes, and the last error says which hook. */
static void test_hook_timeout_cancels(void **state) {
  fx_t fx;
  hk_t h;
  qorb_claim_t *c;
  qorb_backend_stats_t b;
  double t0;
  (void)state;
  start(&fx, &h, 0, 1);
  hk_script(&h, H_ACQUIRE, HK_HANG, 1, HK_KEEP);
  t0 = now_ms();
  fx_start(&fx);
  c = claim_blocking(&fx);
  /* At least the bound (200 ms) passed before the replacement. */
  assert_true(now_ms() - t0 >= 150);
  assert_int_equal(fx_conn(c)->id, 2);
  assert_int_equal(atomic_load(&h.cancels), 1);
  assert_true(fx_backend(&fx, A, &b));
  assert_non_null(strstr(b.last_error, "before_acquire"));
  assert_non_null(strstr(b.last_error, "timed out"));
  fx_release(c);
  fx_finish(&fx);
}

/* A hook that cannot start closes the connection, as a rejection does. */
static void test_hook_that_cannot_start(void **state) {
  fx_t fx;
  hk_t h;
  qorb_claim_t *c;
  qorb_backend_stats_t b;
  (void)state;
  start(&fx, &h, 0, 1);
  hk_script(&h, H_CONNECT, HK_REFUSE, 2, HK_KEEP);
  fx_start(&fx);
  c = claim_blocking(&fx);
  assert_int_equal(fx_conn(c)->id, 3);
  assert_int_equal(closed(&fx, QORB_CLOSE_PREPARE), 2);
  assert_true(fx_backend(&fx, A, &b));
  assert_non_null(strstr(b.last_error, "after_connect hook"));
  fx_release(c);
  fx_finish(&fx);
}

/* after_connect failing every time: no claim ever gets a connection, the
   backend's failures count, and the slot backs off rather than spin. Once
   the hook keeps connections, claims succeed. */
static void test_after_connect_failure_backs_off(void **state) {
  fx_t fx;
  hk_t h;
  qorb_claim_t *c = NULL;
  qorb_backend_stats_t b;
  unsigned long n;
  (void)state;
  start(&fx, &h, 0, 1);
  fx.policy.min_backoff_ms = 50;
  fx.policy.max_backoff_ms = 100;
  hk_script(&h, H_CONNECT, HK_REJECT, -1, HK_REJECT);
  fx_start(&fx);
  assert_int_not_equal(qorb_pool_claim_wait(fx.pool, 500, &c), 0);
  assert_null(c);
  n = atomic_load(&total(&fx)->connects_ok);
  assert_true(n >= 2);
  /* 500 ms at 50 ms or more between tries: far fewer than a spin. */
  assert_true(n <= 20);
  assert_int_equal(atomic_load(&h.calls[H_ACQUIRE]), 0);
  assert_true(fx_backend(&fx, A, &b));
  assert_true(b.failures >= 2);
  hk_script(&h, H_CONNECT, HK_KEEP, -1, HK_KEEP);
  c = claim_blocking(&fx);
  fx_release(c);
  fx_finish(&fx);
}

/* Closing the pool while a hook runs: hook_cancel, then the close ends. */
static void test_close_during_hook(void **state) {
  fx_t fx;
  hk_t h;
  (void)state;
  start(&fx, &h, 0, 2);
  fx.policy.hook_timeout_ms = 60000;
  hk_script(&h, H_CONNECT, HK_HANG, -1, HK_HANG);
  fx_start(&fx);
  WAIT_UNTIL(atomic_load(&h.calls[H_CONNECT]) == 2, 5000);
  fx_close(&fx);
  assert_int_equal(atomic_load(&h.cancels), 2);
  assert_int_equal(atomic_load(&h.calls[H_ACQUIRE]), 0);
  fx_finish(&fx);
}

/* hook_timeout_ms: 5000 by default, and 0 is refused by name. */
static void test_policy_hook_timeout_checked(void **state) {
  qorb_policy_t p;
  char err[128];
  (void)state;
  qorb_policy_init(&p);
  assert_int_equal(p.hook_timeout_ms, 5000);
  assert_null(p.after_connect);
  p.hook_timeout_ms = 0;
  assert_int_equal(qorb_policy_validate(&p, err, sizeof(err)), QORB_EPOLICY);
  assert_non_null(strstr(err, "hook_timeout_ms"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hooks_run_where_they_belong),
      cmocka_unit_test(test_broken_release_skips_after_release),
      cmocka_unit_test(test_before_acquire_rejects),
      cmocka_unit_test(test_after_release_rejects),
      cmocka_unit_test(test_hook_timeout_cancels),
      cmocka_unit_test(test_hook_that_cannot_start),
      cmocka_unit_test(test_after_connect_failure_backs_off),
      cmocka_unit_test(test_close_during_hook),
      cmocka_unit_test(test_policy_hook_timeout_checked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
