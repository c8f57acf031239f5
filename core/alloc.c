/* SPDX-License-Identifier: MIT */
/*
 * alloc.c: every allocation qorb makes goes through these hooks, so that a
 * program can supply its own allocator and tests can fail the Nth
 * allocation (the out-of-memory sweeps in tests/unit). The core calls the
 * qorb__ functions; connectors and resolvers outside it call the exported
 * qorb_malloc() family, which forwards to them.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void *(*qorb__malloc_fn)(size_t) = malloc;
static void *(*qorb__calloc_fn)(size_t, size_t) = calloc;
static void *(*qorb__realloc_fn)(void *, size_t) = realloc;
static void (*qorb__free_fn)(void *) = free;

int qorb_set_allocator(void *(*malloc_fn)(size_t),
                       void *(*calloc_fn)(size_t, size_t),
                       void *(*realloc_fn)(void *, size_t),
                       void (*free_fn)(void *)) {
  qorb__malloc_fn = malloc_fn ? malloc_fn : malloc;
  qorb__calloc_fn = calloc_fn ? calloc_fn : calloc;
  qorb__realloc_fn = realloc_fn ? realloc_fn : realloc;
  qorb__free_fn = free_fn ? free_fn : free;
  return 0;
}

void *qorb__malloc(size_t size) { return qorb__malloc_fn(size ? size : 1); }

void *qorb__calloc(size_t n, size_t size) {
  return qorb__calloc_fn(n ? n : 1, size ? size : 1);
}

void *qorb__realloc(void *p, size_t size) {
  return qorb__realloc_fn(p, size ? size : 1);
}

void qorb__free(void *p) {
  if (p != NULL) qorb__free_fn(p);
}

char *qorb__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = qorb__malloc(n);
  if (d != NULL) memcpy(d, s, n);
  return d;
}

/* The public face of the same hook, for connectors and resolvers outside
   the core (which cannot see internal.h). */
void *qorb_malloc(size_t size) { return qorb__malloc(size); }

void *qorb_calloc(size_t n, size_t size) { return qorb__calloc(n, size); }

void *qorb_realloc(void *p, size_t size) { return qorb__realloc(p, size); }

void qorb_free(void *p) { qorb__free(p); }

char *qorb_strdup(const char *s) { return qorb__strdup(s); }

void qorb__strlcpy(char *dst, const char *src, size_t len) {
  size_t n;
  if (len == 0) return;
  n = strlen(src);
  if (n >= len) n = len - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}
