/* SPDX-License-Identifier: MIT */
/*
 * test_threads.c: pools on their own loop thread, used from many threads.
 * The big one: 8 threads claim and release 100 000 times each and no
 * connection is ever held by two claimants (a compare-and-swap on the fake
 * connection's holder, and a plain counter that ThreadSanitizer watches).
 * Also: claim_wait's failure reasons, EBUSY on the pool's own thread, FIFO
 * across threads, a blocking close that waits for the last release, close
 * from the pool's own thread, and stats and resolver changes from other
 * threads. Label `threads`: CI runs these under ThreadSanitizer.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#define A "127.0.0.1:1"
#define B "127.0.0.2:1"

static void start_threaded(fx_t *fx, const char *initial) {
  fake_resolver_set_initial(fx->fr, initial);
  fx_start(fx);
  assert_non_null(qorb_pool_loop(fx->pool));
}

static unsigned idle_now(fx_t *fx) { return fx_idle(fx); }

/* ---- 8 threads x 100 000 ------------------------------------------------ */

typedef struct worker {
  fx_t *fx;
  pthread_t th;
  unsigned idx;
  long iters;
  long failures;    /* claims that did not succeed */
  long violations;  /* holder CAS failures */
  long try_hits;
  int first_error;
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  uintptr_t token = (uintptr_t)w->idx + 1;
  long i;
  for (i = 0; i < w->iters; i++) {
    qorb_claim_t *c = NULL;
    fake_conn_t *conn;
    int rc = QORB_EAGAIN;
    if (i % 3 == 0) {
      rc = qorb_pool_try_claim(w->fx->pool, &c);
      if (rc == 0) w->try_hits++;
    }
    if (rc != 0) rc = qorb_pool_claim_wait(w->fx->pool, 10000, &c);
    if (rc != 0) {
      if (w->failures++ == 0) w->first_error = rc;
      continue;
    }
    conn = qorb_claim_conn(c);
    if (conn == NULL || fake_conn_acquire(conn, token) != 0) {
      w->violations++;
      continue; /* leave it claimed: the test fails anyway */
    }
    if (i % 1000 == 999) fake_conn_set_dirty(conn, 1); /* needs a recycle */
    if (fake_conn_release(conn, token) != 0) w->violations++;
    if (i % 20000 == 19999)
      rc = qorb_release_broken(c);
    else
      rc = qorb_release(c);
    if (rc != 0 && w->failures++ == 0) w->first_error = rc;
  }
  return NULL;
}

static long iterations(void) {
  const char *e = getenv("QORB_TEST_ITERATIONS");
  long n = e != NULL ? strtol(e, NULL, 10) : 0;
  return n > 0 ? n : 100000;
}

static void test_8_threads_no_double_claim(void **state) {
  fx_t fx;
  worker_t w[8];
  qorb_pool_stats_t st;
  long iters = iterations(), total_try = 0;
  double t0, secs;
  unsigned i;
  (void)state;
  fx_init(&fx, 0, 1);
  fx.policy.max_slots = 4;
  fx.policy.spares_wanted = 4;
  fx.policy.claim_timeout_ms = 10000;
  fx.policy.max_waiters = 64;
  start_threaded(&fx, A "," B);
  WAIT_UNTIL(idle_now(&fx) == 4, 5000);
  t0 = now_ms();
  for (i = 0; i < 8; i++) {
    memset(&w[i], 0, sizeof(w[i]));
    w[i].fx = &fx;
    w[i].idx = i;
    w[i].iters = iters;
    assert_int_equal(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
  }
  for (i = 0; i < 8; i++) assert_int_equal(pthread_join(w[i].th, NULL), 0);
  secs = (now_ms() - t0) / 1000.0;
  for (i = 0; i < 8; i++) {
    if (w[i].failures != 0)
      fail_msg("thread %u: %ld failed claims (first %s)", i, w[i].failures,
               qorb_err_name(w[i].first_error));
    assert_int_equal(w[i].violations, 0);
    total_try += w[i].try_hits;
  }
  /* Releases finish on the loop (recycles, closes): let it settle. */
  WAIT_UNTIL((fx_stats(&fx, &st), st.claimed == 0 && st.checking == 0 &&
                                      st.connecting == 0 && st.idle == 4),
             5000);
  assert_true(st.claims >= (uint64_t)(8 * iters));
  assert_int_equal(fake_connector_violations(fx.fc), 0);
  /* Recycles and broken releases went through the loop (a release every
     1000th is dirty; every 20000th, also a 1000th, is broken instead). */
  {
    fc_counts_t *t = fake_connector_total(fx.fc);
    unsigned long dirty = (unsigned long)(8 * (iters / 1000 - iters / 20000));
    unsigned long broken = (unsigned long)(8 * (iters / 20000));
    unsigned long rec = atomic_load(&t->recycles);
    /* Each dirty release was recycled or (when the pool had no use for the
       slot just then) closed; each broken one closed, and made its (at most
       3) claimed siblings suspect: their next release is recycled too. */
    assert_true(rec > 0 && rec <= dirty + 3 * broken);
    assert_true(atomic_load(&t->closes) >= broken);
    assert_int_equal(atomic_load(&t->recycles_failed), 0);
  }
  print_message("8 threads x %ld claim+release: %.2f s, %.0f/s, %ld try hits\n",
                iters, secs, (double)(8 * iters) / secs, total_try);
  fx_finish(&fx);
}

/* ---- claim_wait's answers ------------------------------------------------ */

static void test_claim_wait_reasons(void **state) {
  fx_t fx;
  qorb_claim_t *c = NULL, *d = NULL;
  double t0, dt;
  int rc;
  (void)state;

  /* No backends: waits the timeout, then ENOBACKENDS. */
  fx_init(&fx, 0, 1);
  fx.policy.max_slots = 1;
  start_threaded(&fx, NULL);
  t0 = now_ms();
  rc = qorb_pool_claim_wait(fx.pool, 60, &c);
  dt = now_ms() - t0;
  assert_int_equal(rc, QORB_ENOBACKENDS);
  assert_null(c);
  assert_true(dt >= 55.0 && dt < 3000.0);
  fx_finish(&fx);

  /* Every backend failing: ENOTONLINE at once, not after 5 s. */
  fx_init(&fx, 0, 1);
  fake_connector_set(fx.fc, NULL, FC_CONNECT, fc_fail(-111));
  start_threaded(&fx, A);
  WAIT_UNTIL(atomic_load(&fake_connector_total(fx.fc)->connects_failed) >= 1,
             3000);
  t0 = now_ms();
  rc = qorb_pool_claim_wait(fx.pool, 5000, &c);
  dt = now_ms() - t0;
  assert_int_equal(rc, QORB_ENOTONLINE);
  assert_true(dt < 1000.0);
  fx_finish(&fx);

  /* All in use: EALLINUSE at the timeout; 0 = do not wait. */
  fx_init(&fx, 0, 1);
  fx.policy.max_slots = 1;
  start_threaded(&fx, A);
  assert_int_equal(qorb_pool_claim_wait(fx.pool, 3000, &c), 0);
  assert_non_null(c);
  t0 = now_ms();
  rc = qorb_pool_claim_wait(fx.pool, 60, &d);
  dt = now_ms() - t0;
  assert_int_equal(rc, QORB_EALLINUSE);
  assert_true(dt >= 55.0 && dt < 3000.0);
  t0 = now_ms();
  rc = qorb_pool_claim_wait(fx.pool, 0, &d);
  assert_true(rc < 0);
  assert_null(d);
  assert_true(now_ms() - t0 < 500.0);
  assert_int_equal(qorb_release(c), 0);
  /* Free again: timeout 0 succeeds when something is idle. */
  WAIT_UNTIL(idle_now(&fx) == 1, 2000);
  assert_int_equal(qorb_pool_claim_wait(fx.pool, 0, &d), 0);
  assert_int_equal(qorb_release(d), 0);
  fx_finish(&fx);
}

/* ---- callbacks on the pool's thread ----------------------------------------- */

typedef struct cb_state {
  _Atomic int calls;
  _Atomic int wait_rc;
  _Atomic int status;
  pthread_t main_thread;
  _Atomic int on_main;
  _Atomic int close_rc;
  _Atomic int close_cb_calls;
  int do_close;
} cb_state_t;

static void close_cb(qorb_pool_t *pool, int status, void *arg) {
  cb_state_t *s = arg;
  (void)pool;
  (void)status;
  atomic_fetch_add(&s->close_cb_calls, 1);
}

static void on_pool_thread_cb(qorb_pool_t *pool, int status,
                              qorb_claim_t *claim, void *arg) {
  cb_state_t *s = arg;
  qorb_claim_t *other = NULL;
  if (pthread_equal(pthread_self(), s->main_thread)) atomic_store(&s->on_main, 1);
  atomic_store(&s->status, status);
  /* Blocking here would wait for itself. */
  atomic_store(&s->wait_rc, qorb_pool_claim_wait(pool, 100, &other));
  if (other != NULL) qorb_release(other);
  if (s->do_close) atomic_store(&s->close_rc, qorb_pool_close(pool, close_cb, s));
  if (claim != NULL) qorb_release(claim);
  atomic_fetch_add(&s->calls, 1);
}

static void test_claim_wait_on_pool_thread(void **state) {
  fx_t fx;
  cb_state_t s;
  (void)state;
  memset(&s, 0, sizeof(s));
  s.main_thread = pthread_self();
  fx_init(&fx, 0, 1);
  start_threaded(&fx, A);
  /* qorb_pool_claim from a foreign thread: the callback runs on the pool's. */
  assert_int_equal(qorb_pool_claim(fx.pool, 3000, on_pool_thread_cb, &s, NULL), 0);
  WAIT_UNTIL(atomic_load(&s.calls) == 1, 3000);
  assert_int_equal(atomic_load(&s.status), 0);
  assert_int_equal(atomic_load(&s.on_main), 0);
  assert_int_equal(atomic_load(&s.wait_rc), QORB_EBUSY);
  fx_finish(&fx);
}

static void test_close_from_pool_thread(void **state) {
  fx_t fx;
  cb_state_t s;
  (void)state;
  memset(&s, 0, sizeof(s));
  s.main_thread = pthread_self();
  s.do_close = 1;
  fx_init(&fx, 0, 1);
  start_threaded(&fx, A);
  assert_int_equal(qorb_pool_claim(fx.pool, 3000, on_pool_thread_cb, &s, NULL), 0);
  WAIT_UNTIL(atomic_load(&s.calls) == 1, 3000);
  assert_int_equal(atomic_load(&s.close_rc), 0);
  /* The pool's thread finishes closing and frees itself. */
  WAIT_UNTIL(atomic_load(&s.close_cb_calls) == 1, 3000);
  WAIT_UNTIL(fake_connector_destroyed(fx.fc) &&
                 atomic_load(&fx.fr->destroys) == 1,
             3000);
  fx.pool = NULL;
  fx.close_requested = 1;
  atomic_store(&fx.close_calls, 1);
  fx_finish(&fx);
  assert_int_equal(atomic_load(&s.close_cb_calls), 1);
}

/* ---- close blocks until the last claim comes back --------------------------- */

typedef struct holder {
  fx_t *fx;
  qorb_claim_t *claim;
  _Atomic int go;
  double released_at;
} holder_t;

static void *holder_main(void *arg) {
  holder_t *h = arg;
  double until;
  while (!atomic_load(&h->go)) poll_pause();
  until = now_ms() + 150.0;
  while (now_ms() < until) poll_pause();
  h->released_at = now_ms();
  qorb_release(h->claim);
  return NULL;
}

typedef struct close_probe {
  pthread_t caller;
  _Atomic int calls;
  _Atomic int on_caller;
  _Atomic int status;
} close_probe_t;

static void thread_close_cb(qorb_pool_t *pool, int status, void *arg) {
  close_probe_t *p = arg;
  (void)pool;
  atomic_store(&p->status, status);
  /* From the thread that called close. */
  if (pthread_equal(p->caller, pthread_self())) atomic_store(&p->on_caller, 1);
  atomic_fetch_add(&p->calls, 1);
}

static void test_blocking_close_waits_for_release(void **state) {
  fx_t fx;
  holder_t h;
  pthread_t th;
  close_probe_t probe;
  double returned_at;
  (void)state;
  fx_init(&fx, 0, 1);
  start_threaded(&fx, A);
  memset(&h, 0, sizeof(h));
  h.fx = &fx;
  assert_int_equal(qorb_pool_claim_wait(fx.pool, 3000, &h.claim), 0);
  assert_int_equal(pthread_create(&th, NULL, holder_main, &h), 0);
  memset(&probe, 0, sizeof(probe));
  probe.caller = pthread_self();
  atomic_store(&h.go, 1);
  assert_int_equal(qorb_pool_close(fx.pool, thread_close_cb, &probe), 0);
  returned_at = now_ms();
  /* Returned only after the callback, which ran here, once. */
  assert_int_equal(atomic_load(&probe.calls), 1);
  assert_int_equal(atomic_load(&probe.on_caller), 1);
  assert_int_equal(atomic_load(&probe.status), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_true(returned_at >= h.released_at);
  assert_int_equal(fake_connector_destroyed(fx.fc), 1);
  fx.pool = NULL;
  fx.close_requested = 1;
  atomic_store(&fx.close_calls, 1);
  fx_finish(&fx);
}

/* ---- FIFO across threads ------------------------------------------------------ */

typedef struct fifo_waiter {
  fx_t *fx;
  pthread_t th;
  _Atomic int *seq;
  int order;
  int rc;
} fifo_waiter_t;

static void *fifo_main(void *arg) {
  fifo_waiter_t *f = arg;
  qorb_claim_t *c = NULL;
  f->rc = qorb_pool_claim_wait(f->fx->pool, 5000, &c);
  if (f->rc == 0) {
    f->order = atomic_fetch_add(f->seq, 1) + 1;
    qorb_release(c);
  }
  return NULL;
}

static unsigned waiters_now(fx_t *fx) {
  qorb_pool_stats_t st;
  fx_stats(fx, &st);
  return st.waiters;
}

static void test_fifo_across_threads(void **state) {
  fx_t fx;
  fifo_waiter_t f[4];
  _Atomic int seq = 0;
  qorb_claim_t *c = NULL;
  unsigned i;
  (void)state;
  fx_init(&fx, 0, 1);
  fx.policy.max_slots = 1;
  fx.policy.waiter_priority_us = 0; /* strict FIFO: nobody passes */
  start_threaded(&fx, A);
  assert_int_equal(qorb_pool_claim_wait(fx.pool, 3000, &c), 0);
  for (i = 0; i < 4; i++) {
    memset(&f[i], 0, sizeof(f[i]));
    f[i].fx = &fx;
    f[i].seq = &seq;
    assert_int_equal(pthread_create(&f[i].th, NULL, fifo_main, &f[i]), 0);
    /* Start the next only once this one is queued. */
    WAIT_UNTIL(waiters_now(&fx) == i + 1, 3000);
  }
  assert_int_equal(qorb_release(c), 0);
  for (i = 0; i < 4; i++) assert_int_equal(pthread_join(f[i].th, NULL), 0);
  for (i = 0; i < 4; i++) {
    assert_int_equal(f[i].rc, 0);
    assert_int_equal(f[i].order, (int)i + 1);
  }
  fx_finish(&fx);
}

/* ---- the barging bound ------------------------------------------------------ */

typedef struct barge_waiter {
  fx_t *fx;
  pthread_t th;
  int rc;
  _Atomic int served;
  qorb_claim_t *c;
} barge_waiter_t;

static void *barge_main(void *arg) {
  barge_waiter_t *b = arg;
  b->rc = qorb_pool_claim_wait(b->fx->pool, 10000, &b->c);
  atomic_store(&b->served, 1);
  return NULL;
}

static unsigned due_now(fx_t *fx) {
  qorb_pool_stats_t st;
  fx_stats(fx, &st);
  return st.waiters_due;
}

/* One slot, held by this thread; a second thread queued behind it. */
static void barge_setup(fx_t *fx, barge_waiter_t *b, unsigned priority_us,
                        qorb_claim_t **held) {
  fx_init(fx, 0, 1);
  fx->policy.max_slots = 1;
  fx->policy.waiter_priority_us = priority_us;
  start_threaded(fx, A);
  assert_int_equal(qorb_pool_claim_wait(fx->pool, 3000, held), 0);
  memset(b, 0, sizeof(*b));
  b->fx = fx;
  assert_int_equal(pthread_create(&b->th, NULL, barge_main, b), 0);
  WAIT_UNTIL(waiters_now(fx) == 1, 3000);
}

/* Before the bound, a thread that releases and claims again keeps the
   connection (no hand-off, no wake-up); the waiter, woken at the bound,
   takes it once it is left idle. */
static void test_barging_before_the_bound(void **state) {
  fx_t fx;
  barge_waiter_t b;
  qorb_claim_t *c = NULL;
  int round;
  (void)state;
  barge_setup(&fx, &b, 1000000, &c); /* a second: far off for this test */
  for (round = 0; round < 20; round++) {
    assert_int_equal(qorb_release(c), 0);
    assert_int_equal(qorb_pool_try_claim(fx.pool, &c), 0);
  }
  assert_int_equal(atomic_load(&b.served), 0);
  assert_int_equal(waiters_now(&fx), 1);
  assert_int_equal(qorb_release(c), 0);
  /* Nobody claims again: the waiter takes it when it wakes at the bound. */
  WAIT_UNTIL(atomic_load(&b.served) == 1, 5000);
  assert_int_equal(pthread_join(b.th, NULL), 0);
  assert_int_equal(b.rc, 0);
  assert_int_equal(qorb_release(b.c), 0);
  fx_finish(&fx);
}

/* Past the bound, the waiter is due: the next release is handed to it,
   and neither a thread that claims again nor a newcomer gets it first. */
static void test_due_waiter_served_next(void **state) {
  fx_t fx;
  barge_waiter_t b;
  qorb_claim_t *c = NULL, *c2 = NULL;
  (void)state;
  barge_setup(&fx, &b, 1000, &c);
  WAIT_UNTIL(due_now(&fx) == 1, 3000);
  assert_int_equal(qorb_release(c), 0);
  c = NULL;
  assert_int_equal(qorb_pool_try_claim(fx.pool, &c2), QORB_EAGAIN);
  assert_null(c2);
  WAIT_UNTIL(atomic_load(&b.served) == 1, 5000);
  assert_int_equal(pthread_join(b.th, NULL), 0);
  assert_int_equal(b.rc, 0);
  assert_int_equal(due_now(&fx), 0);
  assert_int_equal(qorb_release(b.c), 0);
  fx_finish(&fx);
}

/* ---- stats and resolver changes from other threads ----------------------------- */

typedef struct churn {
  fx_t *fx;
  pthread_t th;
  _Atomic int *stop;
  _Atomic long n;
} churn_t;

static void *churn_main(void *arg) {
  churn_t *c = arg;
  while (!atomic_load(c->stop) && atomic_load(&c->n) < 200000) {
    qorb_claim_t *cl = NULL;
    if (qorb_pool_claim_wait(c->fx->pool, 5000, &cl) == 0) {
      qorb_release(cl);
      atomic_fetch_add(&c->n, 1);
    }
  }
  return NULL;
}

static void test_stats_and_resolver_from_threads(void **state) {
  fx_t fx;
  churn_t ch[4];
  _Atomic int stop = 0;
  qorb_resolver_t *r = NULL;
  qorb_pool_stats_t st;
  qorb_backend_stats_t bs[4];
  size_t n;
  int i;
  (void)state;
  fx_init(&fx, 0, 1);
  fx.policy.max_slots = 4;
  fx.policy.spares_wanted = 4;
  assert_int_equal(qorb_static_resolver_new(&r, A, NULL, 0), 0);
  fx.resolver = r;
  fx_start(&fx);
  WAIT_UNTIL(idle_now(&fx) == 4, 3000);
  for (i = 0; i < 4; i++) {
    ch[i].fx = &fx;
    ch[i].stop = &stop;
    atomic_store(&ch[i].n, 0);
    assert_int_equal(pthread_create(&ch[i].th, NULL, churn_main, &ch[i]), 0);
  }
  for (i = 0; i < 4; i++) WAIT_UNTIL(atomic_load(&ch[i].n) > 0, 5000);
  for (i = 0; i < 2000; i++) {
    qorb_pool_stats_init(&st);
    assert_int_equal(qorb_pool_stats(fx.pool, &st, bs, 4, &n), 0);
    assert_true(st.claimed <= 4);
  }
  /* Swap the backend from this thread while claims run. */
  assert_int_equal(qorb_static_resolver_set(r, B, NULL, 0), 0);
  WAIT_UNTIL(fake_connector_open(fx.fc, A) == 0 &&
                 fake_connector_open(fx.fc, B) >= 1,
             5000);
  atomic_store(&stop, 1);
  for (i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(ch[i].th, NULL), 0);
    assert_true(atomic_load(&ch[i].n) > 0);
  }
  assert_int_equal(fake_connector_violations(fx.fc), 0);
  fx_finish(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_8_threads_no_double_claim),
      cmocka_unit_test(test_claim_wait_reasons),
      cmocka_unit_test(test_claim_wait_on_pool_thread),
      cmocka_unit_test(test_close_from_pool_thread),
      cmocka_unit_test(test_blocking_close_waits_for_release),
      cmocka_unit_test(test_fifo_across_threads),
      cmocka_unit_test(test_barging_before_the_bound),
      cmocka_unit_test(test_due_waiter_served_next),
      cmocka_unit_test(test_stats_and_resolver_from_threads),
  };
  return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}
