/* SPDX-License-Identifier: MIT */
/*
 * resolver_merge.h: how the resolver's face (backend.c) hands a merged
 * resolver's parts over to it (resolver_merge.c). A part is started with
 * the pool's pointer, so that qorb_resolver_loop() gives it the pool loop,
 * but it is not the pool's resolver: its reports go to the merged resolver,
 * which is. Loop thread.
 */
#ifndef QORB_RESOLVER_MERGE_H
#define QORB_RESOLVER_MERGE_H

#include <stddef.h>

#include "qorb/resolver.h"

/*
 * `part` reported its whole set: keep it and report the union of every
 * part's set through `merged`.
 * @return 0, QORB_ENOMEM (the part's previous set is kept; it should report
 *         again), QORB_EBUSY (`merged` is not a merged resolver holding
 *         `part`), or what qorb_resolver_update(merged) returned.
 */
int qorb__merge_part_update(qorb_resolver_t *merged, qorb_resolver_t *part,
                            const qorb_addr_t *addrs, size_t n);

/* `part` reported its figures, already read into a whole struct of ours
   by qorb_resolver_report(): keep them and report the sum through
   `merged`. @return 0, or QORB_EBUSY as qorb_resolver_report(). */
int qorb__merge_part_report(qorb_resolver_t *merged, qorb_resolver_t *part,
                            const qorb_resolver_stats_t *st);

#endif /* QORB_RESOLVER_MERGE_H */
