/* SPDX-License-Identifier: MIT */
/**
 * @file
 * resolver.h: the interface for resolver authors. A resolver finds the
 * backends of a service and reports the whole current set each time it
 * changes (a snapshot, not a diff). It does not judge health: the pool does.
 * resolvers/static is the simplest one.
 */
#ifndef QORB_RESOLVER_H
#define QORB_RESOLVER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;

/** A resolver instance: an op table, its context and the pool it feeds. */
typedef struct qorb_resolver qorb_resolver_t;

/** The resolver op table's version: set `version` to it. */
#define QORB_RESOLVER_OPS_VERSION 1

/**
 * The resolver op table. Keep it `static const`. `start` runs inside
 * qorb_pool_new(), before the pool loop runs anything of the pool's (on the
 * loop's thread for an application loop; before the pool's own thread
 * starts otherwise), so it may start watchers on qorb_resolver_loop(r).
 * `stop` runs on the pool loop thread.
 */
typedef struct qorb_resolver_ops {
  unsigned version; /**< QORB_RESOLVER_OPS_VERSION */
  const char *name; /**< short name, e.g. "static" or "dns" */

  /**
   * Begin reporting backends through qorb_resolver_update(), now (inside
   * start) or later from the pool loop. qorb_resolver_loop(r) gives the loop.
   * @return 0 or a negative code (the pool then fails to start).
   */
  int (*start)(void *ctx, qorb_resolver_t *r);

  /** Stop all work: no update after this returns. Stop every watcher. */
  void (*stop)(void *ctx);

  /** Free `ctx` when the resolver is freed. NULL: nothing to free. */
  void (*destroy)(void *ctx);
} qorb_resolver_ops_t;

/**
 * Make a resolver from an op table and a context.
 * @return 0, QORB_EINVAL (NULL `out` or `ops`, wrong version, no `start`
 *         or `stop`), QORB_ENOMEM.
 * Ownership: keeps `ops` and `ctx`; ops->destroy(ctx) runs when the resolver
 * is freed. If this call fails, `ctx` stays the caller's. Thread: any.
 */
QORB_EXTERN int qorb_resolver_new(qorb_resolver_t **out,
                                  const qorb_resolver_ops_t *ops, void *ctx);

/**
 * Free a resolver that no pool owns. A pool frees its own resolver.
 * Thread: any. NULL is ignored.
 */
QORB_EXTERN void qorb_resolver_free(qorb_resolver_t *r);

/** The context given to qorb_resolver_new(). Thread: any. */
QORB_EXTERN void *qorb_resolver_ctx(const qorb_resolver_t *r);

/**
 * Report the complete current set of backends. Backends not in the set are
 * removed from the pool (idle connections closed at once, claimed ones when
 * released); new ones get a slot set. Duplicates are ignored.
 * @param addrs  `n` addresses; NULL allowed when `n` is 0 (no backends).
 * @return 0, QORB_EINVAL (NULL `r`, or NULL `addrs` with n > 0), QORB_EBUSY
 *         (the resolver is not started), QORB_ENOMEM.
 * Ownership: the addresses are copied. Thread: the pool loop (or inside
 * `start`).
 */
QORB_EXTERN int qorb_resolver_update(qorb_resolver_t *r,
                                     const qorb_addr_t *addrs, size_t n);

/**
 * What a resolver tells about itself; the pool's stats snapshot carries the
 * last report (qorb_pool_stats_t.resolver). Plain data; appended to only.
 * A resolver that never reports shows its op table's name, the pool's
 * backend count and next_query_ms -1.
 */
typedef struct qorb_resolver_stats {
  size_t size;               /**< set by qorb_resolver_stats_init() */
  char kind[16];             /**< the op table's name: "static", "dns" */
  char name[128];            /**< what it resolves, e.g. "_pg._tcp.db." */
  uint64_t queries;          /**< lookups or queries sent */
  uint64_t failures;         /**< lookups that failed */
  uint64_t changes;          /**< backend sets reported to the pool */
  int last_error;            /**< code of the last failure, 0 when none */
  char last_error_text[128]; /**< its text, "" when none */
  int64_t last_error_age_ms; /**< how long ago; -1 when none */
  unsigned backends;         /**< backends reported now */
  int64_t next_query_ms;     /**< time until the next lookup; 0 while one
                                  runs, -1 when none is planned */
  unsigned servers;          /**< servers it asks (DNS) */
  unsigned servers_failing;  /**< of those, failing since their last answer */
} qorb_resolver_stats_t;

/** Zero `st` and set its `size` field. Thread: any. */
#define qorb_resolver_stats_init(st) \
  qorb_resolver_stats_init_((st), sizeof(*(st)))
QORB_EXTERN void qorb_resolver_stats_init_(qorb_resolver_stats_t *st,
                                           size_t size);

/**
 * Give the pool the resolver's current figures, for its stats snapshot.
 * Ages and times in `st` are taken as of this call; the snapshot moves them
 * on. `kind` is filled from the op table when left empty.
 * @return 0, QORB_EINVAL (NULL, or `size` not set by
 *         qorb_resolver_stats_init()), QORB_EBUSY (not started).
 * Allocates nothing. Thread: the pool loop (or inside `start`).
 */
QORB_EXTERN int qorb_resolver_report(qorb_resolver_t *r,
                                     const qorb_resolver_stats_t *st);

/** The pool loop, or NULL when not started. Thread: the pool loop. */
QORB_EXTERN struct ev_loop *qorb_resolver_loop(const qorb_resolver_t *r);

/**
 * Make one resolver over several: the backends it reports are the union
 * of its parts' current sets, each address once. A pool takes one
 * resolver; this gives it, say, a DNS resolver per host name and a static
 * resolver for numeric addresses (qorb_pg_pool_new() does so for a string
 * with several hosts).
 *
 * The pool starts the merged resolver, which starts every part on the pool
 * loop; each time a part reports a set, the union of the latest sets goes
 * to the pool. A part that has not reported yet adds nothing; a part
 * keeps its own failure rules (a DNS part keeps its last good set through
 * an outage). The pool's stats snapshot shows kind "merge", the parts'
 * names joined with commas, the sums of their queries and failures, the
 * latest error of any part, the soonest next lookup, and the most DNS
 * servers (and failing servers) of any one part.
 *
 * @param out    receives the merged resolver.
 * @param parts  `n` distinct resolvers: none started, none owned by a
 *               pool, none itself a merged resolver.
 * @param n      1 or more.
 * @return 0, QORB_EINVAL (NULL `out` or `parts`, `n` 0, a NULL, repeated,
 *         pool-owned or merged part), QORB_ENOMEM.
 * Ownership: on success the parts are transferred to the merged resolver,
 * which frees them when it is freed (by its pool, or by
 * qorb_resolver_free()). Until then a part's pointer stays valid for
 * reading (qorb_dns_resolver_stats() on a DNS part, on the pool loop), but
 * must not be freed or given to a pool. On failure they stay the
 * caller's. The `parts` array itself is borrowed for the call.
 * Thread: any.
 */
QORB_EXTERN int qorb_resolver_merge_new(qorb_resolver_t **out,
                                        qorb_resolver_t *const *parts,
                                        size_t n);

#ifdef __cplusplus
}
#endif
#endif /* QORB_RESOLVER_H */
