/* SPDX-License-Identifier: MIT */
/*
 * pool.c: the pool's own life. qorb_pool_new() and the pool-owned loop
 * thread; the wake pass, where the loop takes in what finished or was
 * handed to it (op completions, released slots, asynchronous claims) and
 * runs the rebalance that slots and backends asked for; and closing:
 * stop the resolver, fail the waiters, close what nobody holds, wait for
 * the rest, free.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "private.h"

void qorb__pool_log(qorb_pool_t *p, qorb_log_level_t lvl, const char *fmt,
                    ...) {
  char buf[512];
  va_list ap;
  if (p->policy.log_cb == NULL) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  p->policy.log_cb(p->name, lvl, buf, p->policy.log_arg);
}

/* ---------------------------------------------------------------------- */
/* The wake pass                                                           */

void qorb__pool_kick(qorb_pool_t *p) {
  ev_feed_event(p->loop, &p->wake, EV_ASYNC);
}

/*
 * Housekeeping watchers are unref'd so that they alone do not keep the
 * loop running; take those references back before stopping them (libev
 * wants that) and so that the loop runs until closing has finished.
 */
static void pool_ref_loop(qorb_pool_t *p) {
  while (p->unrefs > 0) {
    ev_ref(p->loop);
    p->unrefs--;
  }
}

static void pool_begin_close(qorb_pool_t *p) {
  qorb__list_t *it, *next;
  p->closing_loop = 1;
  pool_ref_loop(p);
  atomic_store(&p->closing, 1);
  qorb__resolver_stop(p->resolver);
  ev_timer_stop(p->loop, &p->rebalance_timer);
  ev_timer_stop(p->loop, &p->leak_timer);
  ev_timer_stop(p->loop, &p->failfast_timer);
  pthread_mutex_lock(&p->mu);
  qorb__fail_waiters_locked(p, QORB_ESHUTDOWN);
  qorb__pool_unlock(p);
  for (it = p->backends.next; it != &p->backends; it = next) {
    struct qorb__backend *b = QORB_CONTAINER_OF(it, struct qorb__backend, link);
    next = it->next;
    b->removed = 1;
    b->target = 0;
    qorb__backend_shrink(p, b); /* claimed slots close when released */
  }
  qorb__pool_publish(p);
}

static void pool_finish(qorb_pool_t *p);

/*
 * The wake pass: the loop's inbox, run when another thread sends the
 * ev_async and when the loop itself feeds it (an op finished, a claim was
 * given or timed out, a rebalance was asked for). It takes in, in order:
 * a close request, finished ops, released slots, asynchronous claims to
 * arm; then runs the rebalance that was asked for (or a grow that a missed
 * claim wants), delivers asynchronous results, and checks whether closing
 * has finished.
 */
static void wake_cb(struct ev_loop *loop, ev_async *w, int revents) {
  qorb_pool_t *p = (qorb_pool_t *)w->data;
  qorb__list_t released;
  int close_now, grow;
  (void)loop;
  (void)revents;

  p->in_wake = 1;
  pthread_mutex_lock(&p->mu);
  close_now = p->close_requested && !p->closing_loop;
  grow = p->grow_wanted;
  p->grow_wanted = 0;
  qorb__pool_unlock(p);
  if (close_now) pool_begin_close(p);

  /* Ops that finished. */
  while (!qorb__list_empty(&p->done_ops)) {
    qorb_claim_t *s = QORB_CONTAINER_OF(p->done_ops.next, qorb_claim_t, plink);
    qorb__list_remove(&s->plink);
    s->op_done_queued = 0;
    qorb__slot_op_finished(s);
  }

  /* Released slots that need the loop, taken in one lock. */
  pthread_mutex_lock(&p->mu);
  qorb__list_splice(&released, &p->released);
  qorb__pool_unlock(p);
  while (!qorb__list_empty(&released)) {
    qorb_claim_t *s = QORB_CONTAINER_OF(released.next, qorb_claim_t, plink);
    qorb__list_remove(&s->plink);
    qorb__slot_released(s);
  }

  qorb__waiters_arm(p);
  if (p->rebalance_wanted || (grow && !p->closing_loop)) qorb__rebalance(p);
  p->in_wake = 0;
  qorb__waiters_deliver(p);
  qorb__pool_check_closed(p);
  if (p->finished) pool_finish(p);
}

/* Closing is complete when no slot is bound and no callback is pending. */
void qorb__pool_check_closed(qorb_pool_t *p) {
  int empty;
  if (!p->closing_loop || p->finished) return;
  if (p->nbound != 0 || !qorb__list_empty(&p->done_ops)) return;
  pthread_mutex_lock(&p->mu);
  empty = qorb__list_empty(&p->released) && qorb__list_empty(&p->completed) &&
          qorb__list_empty(&p->waiters) && p->inflight == 0;
  qorb__pool_unlock(p);
  if (!empty) return;
  p->finished = 1;
  qorb__pool_kick(p);
}

static void pool_free(qorb_pool_t *p) {
  qorb__waiters_free(p);
  qorb__backends_free(p);
  if (p->resolver != NULL) {
    p->resolver->pool = NULL;
    qorb_resolver_free(p->resolver);
  }
  if (p->connector != NULL) qorb_connector_free(p->connector);
  pthread_mutex_destroy(&p->mu);
  qorb__free(p->order);
  qorb__free(p->slots_raw);
  qorb__free(p);
}

/* Stop the last watchers; with an application loop, free and call back. */
static void pool_finish(qorb_pool_t *p) {
  qorb_close_cb cb;
  void *arg;
  ev_async_stop(p->loop, &p->wake);
  ev_timer_stop(p->loop, &p->rebalance_timer);
  ev_timer_stop(p->loop, &p->leak_timer);
  ev_timer_stop(p->loop, &p->failfast_timer);
  if (p->own_loop) {
    /* The thread's ev_run returns now; the closer (or the thread) frees. */
    ev_break(p->loop, EVBREAK_ALL);
    return;
  }
  pthread_mutex_lock(&p->mu);
  cb = p->close_cb;
  arg = p->close_arg;
  qorb__pool_unlock(p);
  pool_free(p);
  if (cb != NULL) cb(p, 0, arg);
}

/* ---------------------------------------------------------------------- */
/* Lifecycle                                                               */

static void *pool_thread_main(void *arg) {
  qorb_pool_t *p = arg;
  struct ev_loop *loop = p->loop;
  qorb_close_cb cb;
  void *cb_arg;
  qorb__tl_own_pool = p;
  ev_run(loop, 0);
  qorb__tl_own_pool = NULL;
  if (p->detach_on_finish) {
    pthread_mutex_lock(&p->mu);
    cb = p->close_cb;
    cb_arg = p->close_arg;
    qorb__pool_unlock(p);
    pool_free(p);
    ev_loop_destroy(loop);
    if (cb != NULL) cb(p, 0, cb_arg);
  }
  return NULL;
}

int qorb_pool_new(qorb_pool_t **out, struct ev_loop *loop,
                  const qorb_policy_t *policy, qorb_resolver_t *resolver,
                  qorb_connector_t *connector, char *err, size_t errlen) {
  qorb_pool_t *p = NULL;
  qorb_policy_t def;
  unsigned reserve;
  int rc;

  if (err != NULL && errlen > 0) err[0] = '\0';
  if (out == NULL || resolver == NULL || connector == NULL) return QORB_EINVAL;
  *out = NULL;
  if (resolver->pool != NULL) return QORB_EINVAL; /* owned by another pool */
  if (policy == NULL) {
    qorb_policy_init(&def);
    policy = &def;
  }
  if ((rc = qorb_policy_validate(policy, err, errlen)) < 0) return rc;

  p = qorb__calloc(1, sizeof(*p));
  if (p == NULL) return QORB_ENOMEM;
  /* The caller's policy may be shorter or longer than ours. */
  (void)qorb__policy_import(&p->policy, policy);
  policy = &p->policy;
  qorb__strlcpy(p->name, policy->name, sizeof(p->name));
  p->policy.name = p->name;
  reserve = policy->max_slots / 8 + 1; /* room for lifetime replacements */
  p->cap = policy->max_slots + reserve;
  p->slots_raw = qorb__calloc(1, (size_t)p->cap * sizeof(qorb_claim_t) + 64);
  p->order = qorb__calloc(p->cap, sizeof(*p->order));
  if (p->slots_raw == NULL || p->order == NULL) {
    qorb__free(p->slots_raw);
    qorb__free(p->order);
    qorb__free(p);
    return QORB_ENOMEM;
  }
  p->slots = (qorb_claim_t *)(((uintptr_t)p->slots_raw + 63) & ~(uintptr_t)63);
  pthread_mutex_init(&p->mu, NULL);
  qorb__list_init(&p->waiters);
  qorb__list_init(&p->completed);
  qorb__list_init(&p->to_arm);
  qorb__list_init(&p->released);
  qorb__list_init(&p->free_waiters);
  qorb__list_init(&p->to_post);
  qorb__list_init(&p->done_ops);
  qorb__list_init(&p->backends);
  p->cops = &connector->ops;
  p->validate_ms = p->cops->peek != NULL ? policy->validate_idle_ms : 0;
  p->reset_wait_ms = policy->recycle_timeout_ms;
  p->hooked_release =
      policy->before_acquire != NULL || policy->after_release != NULL;
  p->cctx = connector->ctx;
  p->created_ns = qorb__now_ns();
  p->rng = (p->created_ns ^ (uint64_t)(uintptr_t)p) | 1;
  /* Not 0: a thread's hint from an earlier pool at this address must not
     match. */
  atomic_store_explicit(&p->order_epoch, (unsigned)(p->rng >> 17) | 1u,
                        RELAXED);

  if (loop == NULL) {
    loop = ev_loop_new(EVFLAG_AUTO);
    if (loop == NULL) {
      rc = -ENOMEM;
      goto fail;
    }
    p->own_loop = 1;
  }
  p->loop = loop;
  /* The loop may have been idle a while: timers start from a fresh now. */
  ev_now_update(loop);
  qorb__slots_init(p);
  ev_async_init(&p->wake, wake_cb);
  p->wake.data = p;
  ev_async_start(loop, &p->wake);
  qorb__rebalance_timer_init(p);
  qorb__failfast_timer_init(p);
  ev_unref(loop); /* housekeeping alone does not keep the loop running */
  p->unrefs++;
  qorb__leak_timer_init(p);
  ev_unref(loop);
  p->unrefs++;
  if (!p->own_loop) {
    ev_unref(loop); /* nor does the wake watcher */
    p->unrefs++;
  }

  p->resolver = resolver;
  p->connector = connector;
  rc = qorb__resolver_start(resolver, p);
  if (rc < 0) goto fail_stop;
  if (p->own_loop) {
    rc = pthread_create(&p->thread, NULL, pool_thread_main, p);
    if (rc != 0) {
      rc = -rc;
      qorb__resolver_stop(resolver);
      goto fail_stop;
    }
    p->thread_started = 1;
  }
  *out = p;
  return 0;

fail_stop:
  /* Undo everything the resolver's updates did; give both back. */
  resolver->pool = NULL;
  p->closing_loop = 1;
  while (!qorb__list_empty(&p->backends)) {
    struct qorb__backend *b =
        QORB_CONTAINER_OF(p->backends.next, struct qorb__backend, link);
    b->removed = 1;
    if (b->nslots == 0) {
      qorb__list_remove(&b->link);
      qorb__free(b);
      continue;
    }
    qorb__backend_shrink(p, b); /* nothing is claimed yet: frees b */
  }
  p->resolver = NULL;
  p->connector = NULL;
  pool_ref_loop(p);
  ev_async_stop(loop, &p->wake);
  ev_timer_stop(loop, &p->rebalance_timer);
  ev_timer_stop(loop, &p->leak_timer);
  ev_timer_stop(loop, &p->failfast_timer);
fail:
  if (p->own_loop && p->loop != NULL) ev_loop_destroy(p->loop);
  pthread_mutex_destroy(&p->mu);
  qorb__free(p->order);
  qorb__free(p->slots_raw);
  qorb__free(p);
  return rc;
}

int qorb_pool_close(qorb_pool_t *p, qorb_close_cb cb, void *arg) {
  int on_own_thread;
  if (p == NULL) return QORB_EINVAL;
  pthread_mutex_lock(&p->mu);
  if (p->close_requested) {
    qorb__pool_unlock(p);
    return QORB_EBUSY;
  }
  p->close_requested = 1;
  p->close_cb = cb;
  p->close_arg = arg;
  atomic_store(&p->closing, 1);
  on_own_thread = p->own_loop && pthread_equal(pthread_self(), p->thread);
  if (on_own_thread) p->detach_on_finish = 1;
  qorb__pool_unlock(p);

  if (!p->own_loop) {
    /* On the loop's thread: keep the loop alive until closing has finished. */
    pool_ref_loop(p);
    ev_async_send(p->loop, &p->wake);
    return 0;
  }
  if (on_own_thread) {
    pthread_detach(p->thread);
    qorb__pool_kick(p);
    return 0;
  }
  ev_async_send(p->loop, &p->wake);
  pthread_join(p->thread, NULL);
  {
    struct ev_loop *loop = p->loop;
    pool_free(p);
    ev_loop_destroy(loop);
  }
  if (cb != NULL) cb(p, 0, arg);
  return 0;
}

struct ev_loop *qorb_pool_loop(const qorb_pool_t *p) {
  return p != NULL ? p->loop : NULL;
}

const char *qorb_pool_name(const qorb_pool_t *p) {
  return p != NULL ? p->name : NULL;
}
