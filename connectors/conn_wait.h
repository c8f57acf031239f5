/* SPDX-License-Identifier: MIT */
/*
 * conn_wait.h: the connectors' one blocking wait, for reset_finish on a
 * claimant's thread: a socket's readiness, up to a deadline on the
 * monotonic clock. Header-only (static inline): each connector library
 * has its own copy, and none exports it.
 */
#ifndef QORB_CONN_WAIT_H
#define QORB_CONN_WAIT_H

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <time.h>

static inline int64_t qorb__conn_mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*
 * Wait until `fd` is ready for `events` (POLLIN, POLLOUT) or the clock
 * reaches `deadline_ms`. Returns 1 (ready, or interrupted: look again), 0
 * (the deadline has passed) or -1 (poll failed; errno says why).
 */
static inline int qorb__conn_wait(int fd, short events, int64_t deadline_ms) {
  int64_t left = deadline_ms - qorb__conn_mono_ms();
  struct pollfd pfd;
  if (left <= 0) return 0;
  pfd.fd = fd;
  pfd.events = events;
  pfd.revents = 0;
  if (poll(&pfd, 1, left > 2147483647 ? 2147483647 : (int)left) < 0)
    return errno == EINTR ? 1 : -1;
  return 1;
}

#endif /* QORB_CONN_WAIT_H */
