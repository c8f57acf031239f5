/* SPDX-License-Identifier: MIT */
/*
 * internal.h: helpers shared by the core's files and the static resolver
 * (the code built into libqorb; the connectors see only the public
 * headers): the allocator, assertions for defensive branches, an intrusive
 * list, monotonic time and the probe macro. Nothing here is part of the
 * public API.
 */
#ifndef QORB_INTERNAL_H
#define QORB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "qorb/common.h"

/* Allocation through the hook set by qorb_set_allocator(). */
void *qorb__malloc(size_t size);
void *qorb__calloc(size_t n, size_t size);
void *qorb__realloc(void *p, size_t size);
void qorb__free(void *p);
char *qorb__strdup(const char *s);

/* Copy a string into a bounded buffer, always terminated. */
void qorb__strlcpy(char *dst, const char *src, size_t len);

/* The op table of a resolver (built-in resolvers recognise their own). */
struct qorb_resolver;
struct qorb_resolver_ops;
const struct qorb_resolver_ops *qorb__resolver_ops(const struct qorb_resolver *r);

/*
 * A caller's policy (any size from the first release's on) as one of ours:
 * defaults for the fields it lacks. QORB_EINVAL if its size is not one
 * qorb_policy_init() could have set.
 */
struct qorb_policy;
int qorb__policy_import(struct qorb_policy *out, const struct qorb_policy *in);

/* Monotonic time in nanoseconds (not for the claim fast path). clock.c */
uint64_t qorb__now_ns(void);

/* Coarse monotonic milliseconds (no system call), for validate_idle_ms. */
int64_t qorb__coarse_ms(void);

/*
 * Defensive branches: conditions that cannot happen unless qorb itself is
 * wrong. In debug builds they abort; in release builds they evaluate to the
 * condition so the code can recover.
 */
#ifdef NDEBUG
#define QORB_ALWAYS(x) (x)
#define QORB_NEVER(x) (x)
#else
#include <assert.h>
#define QORB_ALWAYS(x) (assert(x), 1)
#define QORB_NEVER(x) (assert(!(x)), 0)
#endif

#define QORB_CONTAINER_OF(ptr, type, member) \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Intrusive doubly linked list with a sentinel head. */
typedef struct qorb__list {
  struct qorb__list *next, *prev;
} qorb__list_t;

static inline void qorb__list_init(qorb__list_t *h) { h->next = h->prev = h; }
static inline int qorb__list_empty(const qorb__list_t *h) {
  return h->next == h;
}
static inline void qorb__list_push_back(qorb__list_t *h, qorb__list_t *n) {
  n->prev = h->prev;
  n->next = h;
  h->prev->next = n;
  h->prev = n;
}
/* Move every node of `src` to `dst` (initialised here); `src` ends empty. */
static inline void qorb__list_splice(qorb__list_t *dst, qorb__list_t *src) {
  if (qorb__list_empty(src)) {
    qorb__list_init(dst);
    return;
  }
  dst->next = src->next;
  dst->prev = src->prev;
  dst->next->prev = dst;
  dst->prev->next = dst;
  qorb__list_init(src);
}
static inline void qorb__list_remove(qorb__list_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = n;
}

/* USDT probes: a disabled probe costs one test of a global semaphore. */
#if defined(QORB_HAVE_PROBES)
/* The semaphores are defined inside the library (dtrace -G): hidden, they
 * are read PC-relative instead of through the GOT. Tracers find them by the
 * probe notes, not by symbol. */
#pragma GCC visibility push(hidden)
#include "qorb_probes.h"
#pragma GCC visibility pop
#define QORB_PROBE(name, ...)                                                 \
  do {                                                                        \
    if (QORB_##name##_ENABLED()) QORB_##name(__VA_ARGS__);                    \
  } while (0)
#define QORB_PROBE_ENABLED(name) QORB_##name##_ENABLED()
#else
#define QORB_PROBE(name, ...) \
  do {                        \
  } while (0)
#define QORB_PROBE_ENABLED(name) 0
#endif

#endif /* QORB_INTERNAL_H */
