/* SPDX-License-Identifier: MIT */
/*
 * count_alloc.c: counting, failing allocator for the OOM sweeps (see
 * count_alloc.h). Each block carries a 16-byte header with a magic number,
 * so a free of a foreign or already freed block is caught.
 */
#include "count_alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qorb/common.h"

#define CA_MAGIC 0x51f0c0de5eedbeefull
#define CA_DEAD 0xdeadf4eedeadf4eeull
#define CA_HDR 16u

static _Atomic unsigned long ca_calls;
static _Atomic unsigned long ca_fail_at;
static _Atomic int ca_persistent;
static _Atomic int ca_failed;
static _Atomic long ca_live;
static _Atomic unsigned long ca_bad_frees;

/* Should this allocation fail? Counts the call. */
static int ca_should_fail(void) {
  unsigned long n = atomic_fetch_add(&ca_calls, 1) + 1;
  unsigned long at = atomic_load(&ca_fail_at);
  if (at == 0) return 0;
  if (n == at || (atomic_load(&ca_persistent) && n > at)) {
    atomic_store(&ca_failed, 1);
    return 1;
  }
  return 0;
}

static void *ca_wrap(unsigned char *base, size_t size) {
  uint64_t magic = CA_MAGIC, sz = size;
  if (base == NULL) return NULL;
  memcpy(base, &magic, 8);
  memcpy(base + 8, &sz, 8);
  return base + CA_HDR;
}

/* The header of a block, or NULL (and a bad free counted) if it is not ours. */
static unsigned char *ca_base(void *p) {
  unsigned char *base = (unsigned char *)p - CA_HDR;
  uint64_t magic;
  memcpy(&magic, base, 8);
  if (magic != CA_MAGIC) {
    atomic_fetch_add(&ca_bad_frees, 1);
    fprintf(stderr, "count_alloc: free/realloc of a block not allocated by "
                    "qorb's allocator (or freed twice): %p\n", p);
    return NULL;
  }
  return base;
}

static void *ca_malloc(size_t size) {
  unsigned char *base;
  if (ca_should_fail()) return NULL;
  if (size > SIZE_MAX - CA_HDR) return NULL;
  base = malloc(size + CA_HDR);
  if (base == NULL) return NULL;
  atomic_fetch_add(&ca_live, 1);
  return ca_wrap(base, size);
}

static void *ca_calloc(size_t n, size_t size) {
  unsigned char *base;
  if (ca_should_fail()) return NULL;
  if (size != 0 && n > (SIZE_MAX - CA_HDR) / size) return NULL;
  base = calloc(1, n * size + CA_HDR);
  if (base == NULL) return NULL;
  atomic_fetch_add(&ca_live, 1);
  return ca_wrap(base, n * size);
}

static void *ca_realloc(void *p, size_t size) {
  unsigned char *base, *nb;
  if (p == NULL) return ca_malloc(size);
  if (ca_should_fail()) return NULL;
  base = ca_base(p);
  if (base == NULL) return NULL;
  if (size > SIZE_MAX - CA_HDR) return NULL;
  nb = realloc(base, size + CA_HDR);
  if (nb == NULL) return NULL;
  return ca_wrap(nb, size);
}

static void ca_free(void *p) {
  unsigned char *base;
  uint64_t dead = CA_DEAD;
  if (p == NULL) return;
  base = ca_base(p);
  if (base == NULL) return;
  memcpy(base, &dead, 8);
  atomic_fetch_sub(&ca_live, 1);
  free(base);
}

void count_alloc_install(void) {
  qorb_set_allocator(ca_malloc, ca_calloc, ca_realloc, ca_free);
}

void count_alloc_uninstall(void) { qorb_set_allocator(NULL, NULL, NULL, NULL); }

int count_alloc_setup(void **state) {
  (void)state;
  count_alloc_install();
  return 0;
}

int count_alloc_teardown(void **state) {
  long live = count_alloc_live();
  (void)state;
  count_alloc_uninstall();
  if (live == 0) return 0;
  fprintf(stderr, "count_alloc: %ld blocks not freed\n", live);
  return -1;
}

void count_alloc_fail_at(unsigned long n, int persistent) {
  atomic_store(&ca_persistent, persistent);
  atomic_store(&ca_fail_at, n);
}

void count_alloc_reset(void) {
  atomic_store(&ca_calls, 0);
  atomic_store(&ca_failed, 0);
}

unsigned long count_alloc_calls(void) { return atomic_load(&ca_calls); }
int count_alloc_failed(void) { return atomic_load(&ca_failed); }
long count_alloc_live(void) { return atomic_load(&ca_live); }
unsigned long count_alloc_bad_frees(void) { return atomic_load(&ca_bad_frees); }
