/* SPDX-License-Identifier: MIT */
/**
 * @file
 * stats.h: the statistics of one or several pools as text, written into a
 * buffer of the caller's: the Prometheus text exposition format (0.0.4)
 * and JSON. docs/stats.md lists every metric and every JSON field.
 *
 * Two layers:
 *   - qorb_stats_format_prometheus() / qorb_stats_format_json() format
 *     snapshots the caller already took with qorb_pool_stats(); they read
 *     nothing else and allocate nothing.
 *   - qorb_stats_prometheus() / qorb_stats_json() take the snapshots of
 *     live pools themselves (one allocation per call, for the snapshots;
 *     at most QORB_STATS_MAX_BACKENDS backends per pool are listed) and
 *     format them.
 *
 * All four share one contract for the buffer, snprintf()'s with an error
 * code: the text and its terminating NUL go into `buf` (`len` bytes);
 * *needed receives the size the whole text needs, NUL included. When that
 * is more than `len`, nothing is written but an empty string (when
 * len > 0) and QORB_ENOMEM is returned; call again with a buffer of at
 * least *needed bytes. `buf` may be NULL when `len` is 0, to ask for the
 * size. A real allocation failure (the live calls only) is QORB_ENOMEM
 * with *needed 0, so `*needed > len` tells the two apart.
 *
 * Names. Pool names label every Prometheus series (`pool`): give each
 * pool on one endpoint its own name (qorb_policy_t.name), or their series
 * collide. Text that is not valid UTF-8 (a name cut in the middle of a
 * character, say) is written with U+FFFD in place of each bad byte, so the
 * output always parses.
 */
#ifndef QORB_STATS_H
#define QORB_STATS_H

#include "common.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Backends listed per pool by qorb_stats_prometheus() and qorb_stats_json().
 */
#define QORB_STATS_MAX_BACKENDS 256

/**
 * One pool's snapshot, as qorb_pool_stats() filled it. Plain data of three
 * borrowed pointers-and-counts that is never extended (the snapshot
 * structs it points to carry their own `size`), so it has no `size` field
 * and needs no init: arrays of it keep one stride in every release.
 */
typedef struct qorb_stats_snapshot {
  const qorb_pool_stats_t *st;          /**< from qorb_pool_stats_init() and
                                             qorb_pool_stats() */
  const qorb_backend_stats_t *backends; /**< `nbackends` entries, with the
                                             stride st->backend_size; NULL
                                             when nbackends is 0 */
  size_t nbackends;                     /**< entries filled (at most the
                                             `cap` given to qorb_pool_stats) */
} qorb_stats_snapshot_t;

/**
 * Format snapshots in the Prometheus text exposition format (0.0.4):
 * `# HELP` and `# TYPE` once per metric family, then that family's series
 * for every pool, labelled `pool` (and `backend`, `state`, `reason`,
 * `cause`, `resolver`, `name` where they apply; see docs/stats.md).
 * Counters end in `_total`, durations are in seconds, and the claim wait
 * is the histogram `qorb_claim_wait_seconds`. Error texts are not labels:
 * they are only in the JSON.
 * @param snaps   `n` snapshots; NULL allowed when `n` is 0.
 * @param buf     receives the text, NUL-terminated when len > 0; NULL
 *                allowed when `len` is 0.
 * @param needed  if not NULL, receives the bytes the text needs, NUL
 *                included (0 on QORB_EINVAL).
 * @return 0; QORB_ENOMEM when `buf` is too small (then *needed > len and
 *         `buf` holds ""); QORB_EINVAL (NULL `snaps` with n > 0, a NULL
 *         `st`, NULL `backends` with nbackends > 0, NULL `buf` with
 *         len > 0, or a size or backend_size that qorb_pool_stats_init()
 *         cannot have set).
 * Ownership: everything is borrowed for the call. Allocates nothing.
 * Thread: any.
 */
QORB_EXTERN int qorb_stats_format_prometheus(const qorb_stats_snapshot_t *snaps,
                                             size_t n, char *buf, size_t len,
                                             size_t *needed);

/**
 * Format snapshots as one JSON object, `{"pools":[{...},...]}`, with every
 * figure of the snapshots: the pool's, its resolver's (`"resolver":{...}`)
 * and each backend's (`"backends":[...]`), error texts and the oldest
 * claim's call site included. Keys are the struct fields' names; times
 * keep their units (`_ms`, `_ns`) and -1 for "none", as in pool.h. Strings
 * are escaped (quote, backslash, control characters as `\u00XX`) and
 * invalid UTF-8 is replaced, so the text always parses. Compact: no
 * whitespace between tokens.
 * @param snaps, buf, needed  as for qorb_stats_format_prometheus().
 * @return as qorb_stats_format_prometheus().
 * Ownership: everything is borrowed for the call. Allocates nothing.
 * Thread: any.
 */
QORB_EXTERN int qorb_stats_format_json(const qorb_stats_snapshot_t *snaps,
                                       size_t n, char *buf, size_t len,
                                       size_t *needed);

/**
 * Take a snapshot of each pool (qorb_pool_stats()) and format them all
 * with qorb_stats_format_prometheus(). The snapshots live in one
 * allocation for the call, sized for the largest pool's backends (up to
 * QORB_STATS_MAX_BACKENDS each; a pool with more lists that many, while
 * its pool-wide figures still count them all).
 * @param pools   `n` pools; NULL allowed when `n` is 0 (the text then has
 *                only the `# HELP` and `# TYPE` lines).
 * @param buf, len, needed  as for qorb_stats_format_prometheus(). The
 *                figures move between calls, so a retry with *needed bytes
 *                may find the text grown: allow some room, or loop.
 * @return 0; QORB_ENOMEM (buffer too small: *needed > len; or the
 *         snapshot allocation failed: *needed 0); QORB_EINVAL (NULL
 *         `pools` with n > 0, a NULL pool, NULL `buf` with len > 0).
 * Ownership: the pools are borrowed for the call (they must stay open
 * until it returns). Thread: any (as qorb_pool_stats()).
 */
QORB_EXTERN int qorb_stats_prometheus(qorb_pool_t *const *pools, size_t n,
                                      char *buf, size_t len, size_t *needed);

/**
 * Take a snapshot of each pool and format them all with
 * qorb_stats_format_json(), as qorb_stats_prometheus() does.
 * @return as qorb_stats_prometheus().
 * Ownership: the pools are borrowed for the call. Thread: any.
 */
QORB_EXTERN int qorb_stats_json(qorb_pool_t *const *pools, size_t n, char *buf,
                                size_t len, size_t *needed);

#ifdef __cplusplus
}
#endif
#endif /* QORB_STATS_H */
