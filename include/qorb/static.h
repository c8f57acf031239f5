/* SPDX-License-Identifier: MIT */
/**
 * @file
 * static.h: the static resolver, a fixed list of "host:port" backends that
 * the application may replace at run time.
 */
#ifndef QORB_STATIC_H
#define QORB_STATIC_H

#include "resolver.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Make a static resolver from a list of numeric "host:port" entries
 * separated by commas or white space: "127.0.0.1:5432, [::1]:5432".
 * An empty list is allowed (no backends until qorb_static_resolver_set()).
 * @param out     receives the resolver.
 * @param list    the entries.
 * @param err     if not NULL, receives a message naming the first bad entry.
 * @param errlen  size of `err`.
 * @return 0, QORB_EINVAL (NULL `out` or `list`), QORB_EBADADDR (a malformed
 *         entry), QORB_ENOMEM.
 * Ownership: the list is copied. Give the resolver to qorb_pool_new(), or
 * free it with qorb_resolver_free(). Thread: any.
 */
QORB_EXTERN int qorb_static_resolver_new(qorb_resolver_t **out,
                                         const char *list, char *err,
                                         size_t errlen);

/**
 * Replace the list at run time. The pool sees the new set on its next loop
 * iteration: removed backends are drained, new ones connected.
 * @return 0, QORB_EINVAL (NULL, or `r` is not a static resolver),
 *         QORB_EBADADDR (nothing is changed then), QORB_ENOMEM.
 * Ownership: copied. Thread: any, including from qorb callbacks.
 */
QORB_EXTERN int qorb_static_resolver_set(qorb_resolver_t *r, const char *list,
                                         char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* QORB_STATIC_H */
