/* SPDX-License-Identifier: MIT */
/*
 * fake_resolver.h: a resolver the test drives by hand. start() keeps the
 * qorb_resolver_t (and reports an initial set if one was given); the test
 * then reports sets with fake_resolver_set(), which calls
 * qorb_resolver_update() directly, so it must run on the pool loop thread
 * (in application-loop mode the test thread is that thread). The fake is
 * the test's: the pool's destroy only records that it happened.
 */
#ifndef QORB_TEST_FAKE_RESOLVER_H
#define QORB_TEST_FAKE_RESOLVER_H

#include <stdatomic.h>

#include "qorb/qorb.h"

typedef struct fake_resolver {
  qorb_resolver_t *r;       /* while started */
  _Atomic int starts, stops, destroys;
  int start_result;         /* what start returns (default 0) */
  char *initial;            /* reported from inside start when set */
  int initial_rc;           /* what that update returned */
  _Atomic int updates;      /* successful qorb_resolver_update() calls */
} fake_resolver_t;

fake_resolver_t *fake_resolver_new(void);
/* A set to report from inside start ("a,b,c"; NULL: none). */
void fake_resolver_set_initial(fake_resolver_t *fr, const char *list);
/* The qorb resolver over it (qorb_resolver_new), or NULL on failure. */
qorb_resolver_t *fake_resolver_make(fake_resolver_t *fr);
const qorb_resolver_ops_t *fake_resolver_ops(void);
/*
 * Report the set in `list` (comma-separated "host:port"; "" for none).
 * @return what qorb_resolver_update() returned, QORB_EBUSY when not started,
 *         or QORB_EBADADDR for a bad entry in `list` (a test bug).
 */
int fake_resolver_set(fake_resolver_t *fr, const char *list);
/* Parse a comma-separated list into `out` (cap entries); returns n or < 0. */
int fake_resolver_parse(const char *list, qorb_addr_t *out, size_t cap);
void fake_resolver_free(fake_resolver_t *fr);

#endif /* QORB_TEST_FAKE_RESOLVER_H */
