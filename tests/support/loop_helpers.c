/* SPDX-License-Identifier: MIT */
/*
 * loop_helpers.c: bounded loop pumping and polling for the unit tests (see
 * loop_helpers.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "loop_helpers.h"

#include <time.h>

#include "fake_connector.h"

static void guard_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)w;
  (void)revents;
}

void pump_start(pump_t *p, struct ev_loop *loop, unsigned ms) {
  p->loop = loop;
  p->deadline_ns = fc_now_ns() + (uint64_t)ms * 1000000u;
  ev_timer_init(&p->guard, guard_cb, 0.002, 0.002);
  ev_timer_start(loop, &p->guard);
}

int pump_step(pump_t *p) {
  if (fc_now_ns() >= p->deadline_ns) return 0;
  ev_run(p->loop, EVRUN_ONCE);
  return 1;
}

void pump_stop(pump_t *p) { ev_timer_stop(p->loop, &p->guard); }

void pump_for(struct ev_loop *loop, unsigned ms) {
  pump_t p;
  pump_start(&p, loop, ms);
  while (pump_step(&p)) {
  }
  pump_stop(&p);
}

int pump_until_fn(struct ev_loop *loop, int (*cond)(void *), void *arg,
                  unsigned ms) {
  pump_t p;
  int ok;
  pump_start(&p, loop, ms);
  while (!(ok = cond(arg)) && pump_step(&p)) {
  }
  if (!ok) ok = cond(arg);
  pump_stop(&p);
  return ok;
}

int loop_active(struct ev_loop *loop) { return ev_run(loop, EVRUN_NOWAIT); }

double now_ms(void) { return (double)fc_now_ns() / 1e6; }

void poll_pause(void) {
  struct timespec ts = {0, 1000000};
  nanosleep(&ts, NULL);
}
