/* SPDX-License-Identifier: MIT */
/*
 * clock.c: the core's clock reads outside the pool loop (which uses
 * ev_now()): a precise monotonic time for seeding and measuring, and a
 * coarse one (a vDSO read, no system call) for validate_idle_ms.
 */
#define _GNU_SOURCE
#include <time.h>

#include "internal.h"

uint64_t qorb__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t qorb__coarse_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
