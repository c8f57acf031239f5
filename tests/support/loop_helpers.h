/* SPDX-License-Identifier: MIT */
/*
 * loop_helpers.h: bounded waiting. Tests never sleep blindly: they run the
 * loop (application-loop mode) or poll a condition (thread mode) until the
 * condition holds or a generous deadline passes, and then fail with the
 * condition's text. A guard timer wakes the loop every few milliseconds so
 * that a wait never blocks past its deadline, and it is stopped again
 * before the wait returns (the loop holds nothing of ours afterwards).
 */
#ifndef QORB_TEST_LOOP_HELPERS_H
#define QORB_TEST_LOOP_HELPERS_H

#include <ev.h>
#include <stdint.h>

typedef struct pump {
  struct ev_loop *loop;
  ev_timer guard;
  uint64_t deadline_ns;
} pump_t;

void pump_start(pump_t *p, struct ev_loop *loop, unsigned ms);
/* One loop iteration (blocks at most a few ms); 0 once the deadline passed. */
int pump_step(pump_t *p);
void pump_stop(pump_t *p);

/* Run the loop for `ms` milliseconds (to see that something does NOT happen). */
void pump_for(struct ev_loop *loop, unsigned ms);

/* Run the loop until cond(arg) is true or `ms` pass; returns cond's value. */
int pump_until_fn(struct ev_loop *loop, int (*cond)(void *), void *arg,
                  unsigned ms);

/*
 * The number of active watchers left on `loop` (what ev_run() returns with
 * EVRUN_NOWAIT: 0 when nothing is active). Use it at the end of a test.
 */
int loop_active(struct ev_loop *loop);

/* Monotonic milliseconds (double) since an arbitrary origin. */
double now_ms(void);

/* Sleep ~1 ms: only for polling a condition another thread changes. */
void poll_pause(void);

/* Run the loop until `cond` holds; fail the test after `ms`. */
#define PUMP_UNTIL(loop, cond, ms)                                         \
  do {                                                                     \
    pump_t pump__;                                                         \
    int ok__;                                                              \
    pump_start(&pump__, (loop), (unsigned)(ms));                           \
    while (!(ok__ = !!(cond)) && pump_step(&pump__)) {                     \
    }                                                                      \
    if (!ok__) ok__ = !!(cond);                                            \
    pump_stop(&pump__);                                                    \
    if (!ok__)                                                             \
      fail_msg("%s:%d: timed out after %u ms waiting for: %s", __FILE__,   \
               __LINE__, (unsigned)(ms), #cond);                           \
  } while (0)

/* Poll (no loop: another thread runs it) until `cond`; fail after `ms`. */
#define WAIT_UNTIL(cond, ms)                                               \
  do {                                                                     \
    double end__ = now_ms() + (double)(ms);                                \
    int ok__;                                                              \
    while (!(ok__ = !!(cond)) && now_ms() < end__) poll_pause();           \
    if (!ok__) ok__ = !!(cond);                                            \
    if (!ok__)                                                             \
      fail_msg("%s:%d: timed out after %u ms waiting for: %s", __FILE__,   \
               __LINE__, (unsigned)(ms), #cond);                           \
  } while (0)

#endif /* QORB_TEST_LOOP_HELPERS_H */
