/* SPDX-License-Identifier: MIT */
/*
 * fixture.c: the pool fixture and claim helpers shared by the unit tests
 * (see fixture.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "fixture.h"

#include <stdio.h>
#include <string.h>

void fx_init(fx_t *fx, unsigned fc_flags, int threaded) {
  memset(fx, 0, sizeof(*fx));
  fx->threaded = threaded;
  if (!threaded) {
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(fx->loop);
  }
  fx->fc = fake_connector_new(fc_flags);
  fx->fr = fake_resolver_new();
  qorb_policy_init(&fx->policy);
  /* Small times: tests wait on real time, bounded. */
  fx->policy.name = "test";
  fx->policy.spares_wanted = 1;
  fx->policy.max_slots = 4;
  fx->policy.max_slots_per_backend = 0;
  fx->policy.max_connecting_per_backend = 2;
  fx->policy.max_waiters = 64;
  fx->policy.claim_timeout_ms = 2000;
  fx->policy.connect_timeout_ms = 2000;
  fx->policy.min_backoff_ms = 5;
  fx->policy.max_backoff_ms = 50;
  fx->policy.backoff_spread_ms = 2;
  fx->policy.health_interval_ms = 0;
  fx->policy.health_check_timeout_ms = 500;
  fx->policy.acquire_timeout_ms = 1000;
  fx->policy.recycle_timeout_ms = 1000;
  fx->policy.rebalance_interval_ms = 20;
  fx->policy.failure_window_ms = 60000;
  fx->policy.max_lifetime_ms = 0;
  fx->policy.idle_timeout_ms = 0;
  fx->policy.leak_threshold_ms = 0;
  /* Claims fail at once when every backend has failed, unless a test asks
     for the fail-fast bound. */
  fx->policy.fail_fast_after_ms = 0;
  fx->policy.validate_idle_ms = 0;
}

int fx_try_start(fx_t *fx) {
  qorb_connector_t *c = fake_connector_make(fx->fc);
  qorb_resolver_t *r = fx->resolver;
  int rc;
  assert_non_null(c);
  fx->uses_fake_resolver = (r == NULL);
  if (r == NULL) r = fake_resolver_make(fx->fr);
  assert_non_null(r);
  fx->err[0] = '\0';
  rc = qorb_pool_new(&fx->pool, fx->loop, &fx->policy, r, c, fx->err,
                     sizeof(fx->err));
  if (rc != 0) {
    /* On failure the resolver and connector stay ours. */
    fx->pool = NULL;
    qorb_resolver_free(r);
    qorb_connector_free(c);
    fx->resolver = NULL;
    return rc;
  }
  fx->started = 1;
  fx->resolver = r;
  return 0;
}

void fx_start(fx_t *fx) {
  int rc = fx_try_start(fx);
  if (rc != 0)
    fail_msg("qorb_pool_new: %s (%s) %s", qorb_err_name(rc),
             qorb_strerror(rc), fx->err);
  assert_non_null(fx->pool);
}

static void fx_close_cb(qorb_pool_t *pool, int status, void *arg) {
  fx_t *fx = arg;
  (void)pool;
  if (fx->in_close && !fx->threaded) fx->close_inside = 1;
  fx->close_status = status;
  atomic_fetch_add(&fx->close_calls, 1);
}

void fx_close_begin(fx_t *fx) {
  int rc;
  assert_non_null(fx->pool);
  assert_false(fx->close_requested);
  fx->close_requested = 1;
  fx->in_close = 1;
  rc = qorb_pool_close(fx->pool, fx_close_cb, fx);
  fx->in_close = 0;
  assert_int_equal(rc, 0);
  if (!fx->threaded) {
    /* With the application's loop, close returns at once. */
    assert_int_equal(fx->close_inside, 0);
  }
}

void fx_close_wait(fx_t *fx) {
  if (fx->threaded) {
    /* The blocking close has called the callback before returning. */
    assert_int_equal(atomic_load(&fx->close_calls), 1);
  } else {
    PUMP_UNTIL(fx->loop, atomic_load(&fx->close_calls) > 0, 5000);
    /* Exactly once: nothing more after a few more iterations. */
    pump_for(fx->loop, 5);
    assert_int_equal(atomic_load(&fx->close_calls), 1);
  }
  assert_int_equal(fx->close_status, 0);
  fx->pool = NULL;
}

void fx_close(fx_t *fx) {
  fx_close_begin(fx);
  fx_close_wait(fx);
}

void fx_finish(fx_t *fx) {
  if (fx->pool != NULL && !fx->close_requested) fx_close(fx);
  else if (fx->pool != NULL) fx_close_wait(fx);
  fake_connector_verify(fx->fc, fx->started);
  if (fx->started && fx->uses_fake_resolver) {
    assert_int_equal(atomic_load(&fx->fr->starts), 1);
    assert_int_equal(atomic_load(&fx->fr->stops), 1);
    assert_int_equal(atomic_load(&fx->fr->destroys), 1);
  }
  if (fx->loop != NULL) {
    assert_int_equal(loop_active(fx->loop), 0);
    ev_loop_destroy(fx->loop);
    fx->loop = NULL;
  }
  fake_connector_free(fx->fc);
  fake_resolver_free(fx->fr);
  fx->fc = NULL;
  fx->fr = NULL;
}

void fx_set(fx_t *fx, const char *list) {
  int rc = fake_resolver_set(fx->fr, list);
  if (rc != 0)
    fail_msg("fake_resolver_set(\"%s\"): %s", list, qorb_err_name(rc));
}

fake_conn_t *fx_conn(qorb_claim_t *c) {
  fake_conn_t *conn;
  assert_non_null(c);
  conn = qorb_claim_conn(c);
  assert_non_null(conn);
  return conn;
}

int fx_try_claim(fx_t *fx, qorb_claim_t **out) {
  qorb_claim_t *c = NULL;
  int rc = qorb_pool_try_claim(fx->pool, &c);
  if (rc == 0) {
    assert_non_null(c);
    assert_int_equal(fake_conn_acquire(fx_conn(c), (uintptr_t)c), 0);
  }
  *out = rc == 0 ? c : NULL;
  return rc;
}

static int try_claim_cond(void *arg) {
  void **a = arg;
  fx_t *fx = a[0];
  return fx_try_claim(fx, (qorb_claim_t **)&a[1]) == 0;
}

qorb_claim_t *fx_claim(fx_t *fx) {
  void *a[2] = {fx, NULL};
  if (!pump_until_fn(fx->loop, try_claim_cond, a, 5000))
    fail_msg("fx_claim: no idle connection within 5 s");
  return a[1];
}

void fx_release(qorb_claim_t *c) {
  assert_int_equal(fake_conn_release(fx_conn(c), (uintptr_t)c), 0);
  assert_int_equal(qorb_release(c), 0);
}

void fx_release_broken(qorb_claim_t *c) {
  assert_int_equal(fake_conn_release(fx_conn(c), (uintptr_t)c), 0);
  assert_int_equal(qorb_release_broken(c), 0);
}

void fx_stats(fx_t *fx, qorb_pool_stats_t *st) {
  qorb_pool_stats_init(st);
  assert_int_equal(qorb_pool_stats(fx->pool, st, NULL, 0, NULL), 0);
}

int fx_backend(fx_t *fx, const char *addr, qorb_backend_stats_t *out) {
  qorb_pool_stats_t st;
  qorb_backend_stats_t bs[16];
  size_t n = 0, i;
  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(fx->pool, &st, bs, 16, &n), 0);
  if (n > 16) n = 16;
  for (i = 0; i < n; i++) {
    if (strcmp(bs[i].addr.text, addr) == 0) {
      if (out != NULL) *out = bs[i];
      return 1;
    }
  }
  return 0;
}

unsigned fx_slots(fx_t *fx, const char *addr) {
  qorb_backend_stats_t b;
  if (!fx_backend(fx, addr, &b)) return 0;
  return b.connecting + b.idle + b.checking + b.claimed;
}

unsigned fx_idle(fx_t *fx) {
  qorb_pool_stats_t st;
  fx_stats(fx, &st);
  return st.idle;
}

unsigned fx_total_slots(fx_t *fx) {
  qorb_pool_stats_t st;
  fx_stats(fx, &st);
  return st.connecting + st.idle + st.checking + st.claimed;
}

static int claim_seq;

void claim_rec_reset_seq(void) { claim_seq = 0; }

void claim_rec_init(claim_rec_t *rec, fx_t *fx) {
  memset(rec, 0, sizeof(*rec));
  rec->fx = fx;
  rec->status = 1; /* not a qorb result: "not called" */
}

void claim_rec_cb(qorb_pool_t *pool, int status, qorb_claim_t *claim,
                  void *arg) {
  claim_rec_t *rec = arg;
  (void)pool;
  if (rec->in_call) rec->called_inside = 1;
  if (atomic_fetch_add(&rec->calls, 1) != 0) {
    fprintf(stderr, "claim callback ran twice (status %s)\n",
            qorb_err_name(status));
    return;
  }
  rec->status = status;
  rec->claim = claim;
  rec->seq = ++claim_seq;
  rec->done_ms = now_ms();
  if (status == 0 && claim != NULL) {
    rec->conn = qorb_claim_conn(claim);
    if (rec->conn == NULL || fake_conn_acquire(rec->conn, (uintptr_t)rec) != 0)
      fprintf(stderr, "claim callback: bad connection\n");
    if (rec->release_in_cb) {
      fake_conn_release(rec->conn, (uintptr_t)rec);
      qorb_release(claim);
      rec->claim = NULL;
    }
  } else if (claim != NULL) {
    fprintf(stderr, "claim callback: failure %s with a claim\n",
            qorb_err_name(status));
  }
  if (rec->then != NULL) rec->then(rec);
}

int fx_claim_async(fx_t *fx, claim_rec_t *rec, int timeout_ms) {
  int rc;
  rec->fx = fx;
  rec->start_ms = now_ms();
  rec->in_call = 1;
  rc = qorb_pool_claim(fx->pool, timeout_ms, claim_rec_cb, rec, &rec->id);
  rec->in_call = 0;
  return rc;
}

void claim_rec_release(claim_rec_t *rec) {
  assert_int_equal(rec->status, 0);
  assert_non_null(rec->claim);
  assert_int_equal(fake_conn_release(rec->conn, (uintptr_t)rec), 0);
  assert_int_equal(qorb_release(rec->claim), 0);
  rec->claim = NULL;
}
