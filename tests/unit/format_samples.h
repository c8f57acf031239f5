/* SPDX-License-Identifier: MIT */
/*
 * format_samples.h: what test_format and format_dump give the formatters
 * of <qorb/stats.h>. A scripted snapshot of two pools filled by hand (a
 * pool, resolver and backend whose names and error texts hold quotes,
 * backslashes, newlines, control characters, non-ASCII and invalid UTF-8;
 * and a plain pool with no backend whose resolver never reported), and a
 * live pool over the fake connector that has served, waited, timed out,
 * closed a broken connection and has one backend refusing connections.
 */
#ifndef QORB_TEST_FORMAT_SAMPLES_H
#define QORB_TEST_FORMAT_SAMPLES_H

#include "fixture.h"
#include "qorb/stats.h"

/* The nasty pool name as written (pool.h: char name[64]). */
#define SAMPLE_NASTY_NAME "we\"ird\\po\nol \xc3\xa9\xe2\x82\xac \xff!"
/* ... as a Prometheus label value and as a JSON string: the bad byte is
 * U+FFFD. */
#define SAMPLE_NASTY_PROM                                                      \
  "we\\\"ird\\\\po\\nol \xc3\xa9\xe2\x82\xac \xef\xbf\xbd!"
#define SAMPLE_NASTY_JSON                                                      \
  "we\\\"ird\\\\po\\u000aol \xc3\xa9\xe2\x82\xac \xef\xbf\xbd!"

typedef struct sample {
  qorb_pool_stats_t st[2];
  qorb_backend_stats_t b[2];
  qorb_stats_snapshot_t snaps[2];
} sample_t;

/* Fill both pools; snaps[0] has two backends, snaps[1] none. */
void sample_fill(sample_t *s);

/* The live pool: a fixture on an application loop named `name` (copied
 * by the pool) with backends
 * SAMPLE_LIVE_OK and SAMPLE_LIVE_DEAD (which refuses every connect), after
 * claims, one that waited, one that timed out and a broken release. End
 * it with fx_finish(). */
#define SAMPLE_LIVE_OK "127.0.0.1:1"
#define SAMPLE_LIVE_DEAD "127.0.0.3:1"
#define SAMPLE_LIVE_NAME "live \"pool\"\\ \xc3\xa9"
void sample_live(fx_t *fx, const char *name);

/* Format into a buffer of qorb_malloc()'s sized by a first call; asserts
 * success. `live` selects qorb_stats_prometheus()/json() over `pools`,
 * else the format calls over `snaps`. Free with qorb_free(). */
typedef int (*sample_format_fn)(const qorb_stats_snapshot_t *, size_t, char *,
                                size_t, size_t *);
typedef int (*sample_live_fn)(qorb_pool_t *const *, size_t, char *, size_t,
                              size_t *);
char *sample_format(sample_format_fn fn, const qorb_stats_snapshot_t *snaps,
                    size_t n);
char *sample_format_live(sample_live_fn fn, qorb_pool_t *const *pools,
                         size_t n);

#endif /* QORB_TEST_FORMAT_SAMPLES_H */
