/* SPDX-License-Identifier: MIT */
/*
 * fixture.h: one pool over the fake connector and the fake resolver, with
 * the checks every test ends with. fx_init() makes a loop (or none, for a
 * pool on its own thread), the fakes and a policy with small times;
 * the test adjusts the policy and scripts, calls fx_start(), works, and
 * ends with fx_finish(): the pool is closed (its callback exactly once,
 * never inside the call), every connection opened was closed exactly once,
 * no contract violation happened, the resolver was stopped and freed, the
 * connector freed, and the loop holds no active watcher.
 *
 * Also: claim helpers that keep the double-claim check (the fake
 * connection's holder) and an asynchronous claim recorder.
 */
#ifndef QORB_TEST_FIXTURE_H
#define QORB_TEST_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>
#include <ev.h>

#include "fake_connector.h"
#include "fake_resolver.h"
#include "loop_helpers.h"
#include "qorb/qorb.h"

typedef struct fx {
  struct ev_loop *loop;    /* NULL in thread mode */
  int threaded;            /* the pool runs its own loop thread */
  fake_connector_t *fc;
  fake_resolver_t *fr;
  qorb_resolver_t *resolver;   /* NULL: make one over `fr` in fx_start() */
  qorb_pool_t *pool;
  qorb_policy_t policy;
  char err[256];
  int started;
  int uses_fake_resolver;  /* fx_start() made the resolver over `fr` */
  int close_requested;
  _Atomic int close_calls;
  int close_status;
  int close_inside;        /* close callback ran inside qorb_pool_close() */
  int in_close;
} fx_t;

/* Loop (unless `threaded`), fakes and the test policy. */
void fx_init(fx_t *fx, unsigned fc_flags, int threaded);
/* Make the pool; asserts success. */
void fx_start(fx_t *fx);
/* Make the pool; returns qorb_pool_new()'s result (fx->pool set on 0). */
int fx_try_start(fx_t *fx);
/* qorb_pool_close(): asserts 0 and that the callback did not run inside. */
void fx_close_begin(fx_t *fx);
/* Wait (bounded) for the close callback; asserts exactly one call. */
void fx_close_wait(fx_t *fx);
/* Both. */
void fx_close(fx_t *fx);
/* Close (if not yet), verify everything, free the fakes and the loop. */
void fx_finish(fx_t *fx);

/* Report a backend set through the fake resolver; asserts 0. */
void fx_set(fx_t *fx, const char *list);

/* Pump until try_claim succeeds (bounded); takes the holder. */
qorb_claim_t *fx_claim(fx_t *fx);
/* try_claim once: 0 and the claim (holder taken), or the error. */
int fx_try_claim(fx_t *fx, qorb_claim_t **out);
/* The fake connection of a claim. */
fake_conn_t *fx_conn(qorb_claim_t *c);
/* Give the holder back and release (asserts 0). */
void fx_release(qorb_claim_t *c);
void fx_release_broken(qorb_claim_t *c);

/* Stats snapshot; asserts 0. */
void fx_stats(fx_t *fx, qorb_pool_stats_t *st);
/*
 * Per-backend stats of `addr` ("host:port"); returns 1 if the pool lists
 * it (then *out is filled), 0 if not.
 */
int fx_backend(fx_t *fx, const char *addr, qorb_backend_stats_t *out);
/* Slots of `addr` in any state (0 if unknown). */
unsigned fx_slots(fx_t *fx, const char *addr);
/* Idle slots over the whole pool. */
unsigned fx_idle(fx_t *fx);
/* Slots over the whole pool in any state. */
unsigned fx_total_slots(fx_t *fx);

/* An asynchronous claim and what happened to it. */
typedef struct claim_rec {
  fx_t *fx;
  _Atomic int calls;
  int status;
  qorb_claim_t *claim;
  fake_conn_t *conn;
  int seq;               /* order in which callbacks ran (1, 2, ...) */
  int release_in_cb;     /* release the claim from inside the callback */
  int in_call;           /* qorb_pool_claim() is running */
  int called_inside;     /* the callback ran inside qorb_pool_claim() */
  uint64_t id;
  double start_ms, done_ms;
  void (*then)(struct claim_rec *rec); /* optional hook after recording */
  void *user;
} claim_rec_t;

void claim_rec_init(claim_rec_t *rec, fx_t *fx);
/* qorb_pool_claim() with the recorder; returns its result. */
int fx_claim_async(fx_t *fx, claim_rec_t *rec, int timeout_ms);
/* The callback fx_claim_async() registers (for direct qorb_pool_claim use). */
void claim_rec_cb(qorb_pool_t *pool, int status, qorb_claim_t *claim,
                  void *arg);
/* Release the claim the recorder holds (asserts it holds one). */
void claim_rec_release(claim_rec_t *rec);
/* Reset the callback order counter. */
void claim_rec_reset_seq(void);

#endif /* QORB_TEST_FIXTURE_H */
