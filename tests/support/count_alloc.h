/* SPDX-License-Identifier: MIT */
/*
 * count_alloc.h: the allocator of the out-of-memory sweeps. Installed with
 * qorb_set_allocator(), it counts allocations and live blocks, fails the
 * Nth allocation (once, or that one and every later one), and checks that
 * every block qorb frees is one it allocated and has not freed yet.
 * Thread-safe (atomics), so a pool on its own thread may use it.
 */
#ifndef QORB_TEST_COUNT_ALLOC_H
#define QORB_TEST_COUNT_ALLOC_H

/* Route qorb's allocations through the counting allocator / back to libc. */
void count_alloc_install(void);
void count_alloc_uninstall(void);

/*
 * Fail allocation number `n` (1-based, counted from the last reset); when
 * `persistent`, fail every one after it too. n = 0: never fail.
 */
void count_alloc_fail_at(unsigned long n, int persistent);
/* Start counting allocations from 1 again, and clear the failure flag. */
void count_alloc_reset(void);

/* Allocation calls since the reset (failed ones included). */
unsigned long count_alloc_calls(void);
/* 1 when a failure was injected since the reset. */
int count_alloc_failed(void);
/* Blocks allocated and not freed (since install). */
long count_alloc_live(void);
/* Frees of blocks this allocator did not hand out (or freed twice). */
unsigned long count_alloc_bad_frees(void);

/*
 * As cmocka setup and teardown functions: install; and check that no block
 * is left (else print the count and fail the teardown), then uninstall.
 */
int count_alloc_setup(void **state);
int count_alloc_teardown(void **state);

#endif /* QORB_TEST_COUNT_ALLOC_H */
