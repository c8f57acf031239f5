/* SPDX-License-Identifier: MIT */
/*
 * test_format.c: the formatters of <qorb/stats.h>. Scripted snapshots
 * (format_samples.c, with nasty names) come out as the exact Prometheus
 * series and JSON fields expected, escaped and with invalid UTF-8
 * replaced; each family has one # HELP and # TYPE and its series stay
 * together across pools; a buffer that is too small gives QORB_ENOMEM and
 * the size, and that size works; NULL and malformed arguments give
 * QORB_EINVAL; a snapshot of an older, shorter layout is read within its
 * size. Over live pools: the figures of a fixture pool, the one allocation
 * per call (and QORB_ENOMEM with *needed 0 when it fails), and the bound
 * of QORB_STATS_MAX_BACKENDS backends listed per pool.
 *
 * That the output parses is proven by test_format_parsers (promtool and
 * Python's json), over what format_dump writes.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "count_alloc.h"
#include "format_samples.h"

#define NP "{pool=\"" SAMPLE_NASTY_PROM "\""
#define NJ SAMPLE_NASTY_JSON

static unsigned count(const char *hay, const char *needle) {
  unsigned n = 0;
  size_t len = strlen(needle);
  for (const char *p = strstr(hay, needle); p != NULL;
       p = strstr(p + len, needle))
    n++;
  return n;
}

/* Each of `needles` (NULL-terminated) is in `text` (`want` 1) or not. */
static void expect(const char *text, const char *const *needles, int want) {
  for (; *needles != NULL; needles++) {
    if ((strstr(text, *needles) != NULL) != want) {
      print_message("%s: [%s]\n", want ? "missing" : "unexpected", *needles);
      fail();
    }
  }
}

#define HAS(text, ...)                                                         \
  expect((text), (const char *const[]){__VA_ARGS__, NULL}, 1)
#define LACKS(text, ...)                                                       \
  expect((text), (const char *const[]){__VA_ARGS__, NULL}, 0)

/* ---- scripted snapshots ------------------------------------------------ */

static void test_prometheus_scripted(void **state) {
  sample_t s;
  char *t;
  const char *a, *b;
  (void)state;
  sample_fill(&s);
  t = sample_format(qorb_stats_format_prometheus, s.snaps, 2);

  /* One # HELP and # TYPE per family, before its series, whose pools stay
     together. */
  assert_int_equal(count(t, "# HELP qorb_claims_total "), 1);
  assert_int_equal(count(t, "# TYPE qorb_claims_total counter\n"), 1);
  assert_int_equal(count(t, "# TYPE qorb_claim_wait_seconds histogram\n"), 1);
  assert_int_equal(count(t, "# TYPE qorb_pool_slots gauge\n"), 1);
  a = strstr(t, "qorb_claims_total" NP "} 1234\n");
  b = strstr(t, "qorb_claims_total{pool=\"second\"} 0\n");
  assert_non_null(a);
  assert_non_null(b);
  assert_ptr_equal(strchr(a, '\n') + 1, b);
  assert_true(strstr(t, "# TYPE qorb_claims_total") < a);

  /* Pool figures. */
  HAS(t, "qorb_pool_backends" NP "} 2\n",
      "qorb_pool_backends_online" NP "} 1\n",
      "qorb_pool_slots" NP ",state=\"connecting\"} 1\n",
      "qorb_pool_slots" NP ",state=\"idle\"} 2\n",
      "qorb_pool_slots" NP ",state=\"checking\"} 0\n",
      "qorb_pool_slots" NP ",state=\"claimed\"} 1\n",
      "qorb_pool_waiters" NP "} 3\n", "qorb_pool_closing" NP "} 0\n",
      "qorb_pool_uptime_seconds" NP "} 61\n",
      "qorb_pool_uptime_seconds{pool=\"second\"} 0.005\n",
      "qorb_claim_failures_total" NP ",reason=\"timeout\"} 5\n",
      "qorb_claim_failures_total" NP ",reason=\"queue_full\"} 2\n",
      "qorb_claim_failures_total" NP ",reason=\"other\"} 0\n",
      "qorb_claim_timeouts_total" NP "} 5\n",
      "qorb_claim_leaks_total" NP "} 1\n",
      "qorb_claim_wait_max_seconds" NP "} 0.001\n",
      "qorb_claim_oldest_seconds" NP "} 2.25\n",
      "qorb_claim_oldest_seconds{pool=\"second\"} 0\n",
      "qorb_connections_opened_total" NP "} 12\n",
      "qorb_connections_closed_total" NP ",cause=\"broken\"} 3\n",
      "qorb_connections_closed_total" NP ",cause=\"pool_closed\"} 0\n");

  /* The histogram: cumulative buckets in seconds, sum, count. */
  HAS(t, "qorb_claim_wait_seconds_bucket" NP ",le=\"0.00001\"} 1\n",
      "qorb_claim_wait_seconds_bucket" NP ",le=\"0.000025\"} 1\n",
      "qorb_claim_wait_seconds_bucket" NP ",le=\"0.0001\"} 3\n",
      "qorb_claim_wait_seconds_bucket" NP ",le=\"0.001\"} 6\n",
      "qorb_claim_wait_seconds_bucket" NP ",le=\"10\"} 6\n",
      "qorb_claim_wait_seconds_bucket" NP ",le=\"+Inf\"} 7\n",
      "qorb_claim_wait_seconds_sum" NP "} 0.0015\n",
      "qorb_claim_wait_seconds_count" NP "} 7\n",
      "qorb_claim_wait_seconds_count{pool=\"second\"} 0\n");
  assert_int_equal(count(t, "qorb_claim_wait_seconds_bucket" NP),
                   QORB_WAIT_BUCKETS);

  /* Backends. */
#define B0 NP ",backend=\"127.0.0.1:5432\""
#define B1 NP ",backend=\"[::1]:5433\""
  HAS(t, "qorb_backend_online" B0 "} 1\n", "qorb_backend_online" B1 "} 0\n",
      "qorb_backend_slots" B1 ",state=\"connecting\"} 1\n",
      "qorb_backend_slots" B0 ",state=\"claimed\"} 1\n",
      "qorb_backend_claims_total" B0 "} 1200\n",
      "qorb_backend_connects_total" B1 "} 2\n",
      "qorb_backend_failures_total" B1 "} 7\n",
      "qorb_backend_connect_failures_total" B1 "} 6\n",
      "qorb_backend_recent_failures" B1 "} 4\n",
      "qorb_backend_connections_closed_total" B0 "} 5\n",
      "qorb_backend_online_seconds" B0 "} 60\n",
      "qorb_backend_online_seconds" B1 "} 0\n",
      "qorb_backend_last_error_age_seconds" B1 "} 0.3\n");
  LACKS(t, "qorb_backend_last_error_age_seconds" B0);
  HAS(t, "qorb_backend_last_error_current" B0 "} 0\n",
      "qorb_backend_last_error_current" B1 "} 1\n");
  LACKS(t, "backend=\"\""); /* the second pool has no backend */

  /* The resolver, its name escaped. */
#define R0 NP ",resolver=\"dns\",name=\"_pg._tcp.\\\"db\\\"\\\\x.\""
#define R1 "{pool=\"second\",resolver=\"static\",name=\"\""
  HAS(t, "qorb_resolver_queries_total" R0 "} 10\n",
      "qorb_resolver_failures_total" R0 "} 2\n",
      "qorb_resolver_changes_total" R0 "} 3\n",
      "qorb_resolver_backends" R0 "} 2\n",
      "qorb_resolver_next_query_seconds" R0 "} 0.25\n",
      "qorb_resolver_servers" R0 "} 2\n",
      "qorb_resolver_servers_failing" R0 "} 1\n",
      "qorb_resolver_last_error_age_seconds" R0 "} 1.5\n",
      "qorb_resolver_queries_total" R1 "} 0\n");
  LACKS(t, "qorb_resolver_next_query_seconds" R1,
        "qorb_resolver_last_error_age_seconds" R1);

  /* Error texts are not labels. */
  LACKS(t, "refused", "\x01", "app/");
  /* Every line is a comment or a qorb_ sample. */
  for (const char *l = t; *l != '\0'; l = strchr(l, '\n') + 1)
    assert_true(strncmp(l, "# HELP qorb_", 12) == 0 ||
                strncmp(l, "# TYPE qorb_", 12) == 0 ||
                strncmp(l, "qorb_", 5) == 0);
  qorb_free(t);
}

static void test_json_scripted(void **state) {
  sample_t s;
  char *t;
  (void)state;
  sample_fill(&s);
  t = sample_format(qorb_stats_format_json, s.snaps, 2);

  HAS(t,
      "{\"pools\":[{\"name\":\"" NJ "\",\"closing\":false,\"uptime_ms\":61000,",
      "\"backends_known\":2,\"backends_online\":1,\"connecting\":1,"
      "\"idle\":2,\"checking\":0,\"claimed\":1,\"waiters\":3,"
      "\"claims\":1234,\"claim_failures\":9,",
      "\"failed\":{\"timeout\":5,\"not_online\":1,\"queue_full\":2,"
      "\"shutdown\":0,\"canceled\":1,\"other\":0}",
      "\"timeouts\":5,\"queue_full\":2,\"leaks\":1,\"waited\":7,"
      "\"wait_ns_total\":1500000,\"wait_ns_max\":1000000,",
      "\"wait_hist\":[{\"le_ns\":10000,\"count\":1},"
      "{\"le_ns\":25000,\"count\":0},",
      "{\"le_ns\":10000000000,\"count\":0},{\"le_ns\":null,\"count\":1}]",
      "\"opened\":12,\"closed\":{\"lifetime\":1,\"idle\":2,\"health\":0,"
      "\"broken\":3,",
      "\"oldest_claim_ms\":2250,\"oldest_claim_site\":\"app/\\\"x\\\".c:42\","
      "\"oldest_claim_backend\":\"127.0.0.1:5432\"");
  /* The resolver, its texts escaped; the bytes of a character cut short
     are replaced one by one. */
  HAS(t,
      "\"resolver\":{\"kind\":\"dns\",\"name\":\"_pg._tcp.\\\"db\\\"\\\\x.\","
      "\"queries\":10,\"failures\":2,\"changes\":3,\"last_error\":-4003,",
      "\"last_error_name\":\"QORB_ETIMEDOUT\",\"last_error_text\":"
      "\"timed out\\u000a\\u0001 \xef\xbf\xbd\xef\xbf\xbd\","
      "\"last_error_age_ms\":1500,\"backends\":2,\"next_query_ms\":250,"
      "\"servers\":2,\"servers_failing\":1}");
  /* Backends. */
  HAS(t, "\"backends\":[{\"addr\":\"127.0.0.1:5432\",\"online\":true,",
      "\"online_ms\":60000,\"last_error\":\"\",\"last_error_age_ms\":-1,"
      "\"last_error_current\":false}",
      "{\"addr\":\"[::1]:5433\",\"online\":false,\"connecting\":1,\"idle\":0,"
      "\"checking\":0,\"claimed\":0,\"claims\":34,\"connects\":2,"
      "\"failures\":7,\"connect_failures\":6,\"recent_failures\":4,"
      "\"closed\":2,\"online_ms\":-1,\"last_error\":\"refused: "
      "\\\"[::1]\\\"\\u000a\\u0009next \xc3\xa9 \xef\xbf\xbd\","
      "\"last_error_age_ms\":300,\"last_error_current\":true}]}");
  /* The second pool: no backend, a resolver that never reported. */
  HAS(t, ",{\"name\":\"second\",",
      "\"resolver\":{\"kind\":\"static\",\"name\":\"\",\"queries\":0,"
      "\"failures\":0,\"changes\":0,\"last_error\":0,\"last_error_name\":\"\","
      "\"last_error_text\":\"\",\"last_error_age_ms\":-1,\"backends\":0,"
      "\"next_query_ms\":-1,",
      "\"backends\":[]}]}\n");
  /* No raw control character anywhere but the final newline. */
  for (const char *p = t; *p != '\0'; p++)
    assert_true((unsigned char)*p >= 0x20 || (*p == '\n' && p[1] == '\0'));
  qorb_free(t);
}

/* Zero pools: the families' comments only, and an empty list. */
static void test_no_pools(void **state) {
  char buf[8192];
  size_t need = 0;
  (void)state;
  assert_int_equal(qorb_stats_format_json(NULL, 0, buf, sizeof(buf), &need), 0);
  assert_string_equal(buf, "{\"pools\":[]}\n");
  assert_int_equal(need, strlen(buf) + 1);
  assert_int_equal(qorb_stats_json(NULL, 0, buf, sizeof(buf), &need), 0);
  assert_string_equal(buf, "{\"pools\":[]}\n");
  assert_int_equal(qorb_stats_prometheus(NULL, 0, buf, sizeof(buf), &need), 0);
  assert_int_equal(need, strlen(buf) + 1);
  HAS(buf, "# TYPE qorb_claim_wait_seconds histogram\n");
  for (const char *l = buf; *l != '\0'; l = strchr(l, '\n') + 1)
    assert_int_equal(l[0], '#');
}

static void too_small(sample_format_fn fn, const sample_t *s) {
  size_t need = 0, n2 = 0, len;
  char *buf;
  assert_int_equal(fn(s->snaps, 2, NULL, 0, &need), QORB_ENOMEM);
  assert_true(need > 100);
  buf = qorb_malloc(need);
  assert_non_null(buf);
  /* Short by one byte, by most, and a single byte: "" and the size. */
  for (len = 1; len < need;
       len = len < 64 ? len * 8 : len + (need - len + 1) / 2) {
    memset(buf, 'x', need);
    n2 = 0;
    assert_int_equal(fn(s->snaps, 2, buf, len, &n2), QORB_ENOMEM);
    assert_int_equal(n2, need);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(buf[len], 'x'); /* nothing beyond len */
  }
  memset(buf, 'x', need);
  assert_int_equal(fn(s->snaps, 2, buf, need - 1, NULL), QORB_ENOMEM);
  assert_int_equal(buf[0], '\0');
  /* Exactly the size works, with or without `needed`. */
  assert_int_equal(fn(s->snaps, 2, buf, need, NULL), 0);
  assert_int_equal(strlen(buf) + 1, need);
  qorb_free(buf);
}

static void test_too_small(void **state) {
  sample_t s;
  (void)state;
  sample_fill(&s);
  too_small(qorb_stats_format_prometheus, &s);
  too_small(qorb_stats_format_json, &s);
}

static void bad_args(sample_format_fn fn) {
  sample_t s;
  qorb_stats_snapshot_t bad[1];
  qorb_pool_stats_t st;
  char buf[64];
  size_t need;

#define EXPECT_EINVAL(snaps, n, b, len)                                        \
  do {                                                                         \
    char *bp = (b);                                                            \
    need = 99;                                                                 \
    strcpy(buf, "junk");                                                       \
    assert_int_equal(fn((snaps), (n), bp, (len), &need), QORB_EINVAL);         \
    assert_int_equal(need, 0);                                                 \
    assert_int_equal(buf[0], bp != NULL ? '\0' : 'j');                         \
  } while (0)

  sample_fill(&s);
  EXPECT_EINVAL(NULL, 1, buf, sizeof(buf));
  EXPECT_EINVAL(s.snaps, 2, NULL, sizeof(buf));
  bad[0] = s.snaps[0];
  bad[0].st = NULL;
  EXPECT_EINVAL(bad, 1, buf, sizeof(buf));
  bad[0] = s.snaps[0];
  bad[0].backends = NULL;
  EXPECT_EINVAL(bad, 1, buf, sizeof(buf));
  /* Sizes qorb_pool_stats_init() cannot have set. */
  st = s.st[0];
  st.size = 0;
  bad[0] = s.snaps[0];
  bad[0].st = &st;
  EXPECT_EINVAL(bad, 1, buf, sizeof(buf));
  st.size = 1u << 20;
  EXPECT_EINVAL(bad, 1, buf, sizeof(buf));
  st = s.st[0];
  st.backend_size = 4;
  EXPECT_EINVAL(bad, 1, buf, sizeof(buf));
  /* ... but a bad backend_size does not matter without backends. */
  bad[0].nbackends = 0;
  assert_int_equal(fn(bad, 1, NULL, 0, &need), QORB_ENOMEM);
  assert_true(need > 1);
#undef EXPECT_EINVAL
}

static void test_bad_args(void **state) {
  char buf[16];
  size_t need = 7;
  qorb_pool_t *none[1] = {NULL};
  (void)state;
  bad_args(qorb_stats_format_prometheus);
  bad_args(qorb_stats_format_json);
  assert_int_equal(qorb_stats_prometheus(NULL, 1, buf, sizeof(buf), &need),
                   QORB_EINVAL);
  assert_int_equal(need, 0);
  assert_int_equal(qorb_stats_json(none, 1, buf, sizeof(buf), &need),
                   QORB_EINVAL);
  assert_int_equal(qorb_stats_json(none, 0, NULL, 1, &need), QORB_EINVAL);
  assert_int_equal(qorb_stats_prometheus(none, 1, NULL, 0, NULL), QORB_EINVAL);
}

/*
 * A caller built against an older, shorter layout: a pool struct that ends
 * before `name` (0.1) and backends of a stride that ends before
 * last_error_age_ms, each in a block of exactly that size, so that ASan
 * catches any read beyond. The missing fields read as "none".
 */
static void test_old_layout(void **state) {
  sample_t s;
  size_t psize = offsetof(qorb_pool_stats_t, name);
  size_t bsize = offsetof(qorb_backend_stats_t, last_error_age_ms);
  char *st = malloc(psize); /* a qorb_pool_stats_t cut short */
  char *bs = malloc(2 * bsize);
  qorb_stats_snapshot_t snap;
  char *t;
  (void)state;
  assert_non_null(st);
  assert_non_null(bs);
  sample_fill(&s);
  memcpy(st, &s.st[0], psize);
  /* Through memcpy: the compiler may not see a cut struct's members. */
  memcpy(st + offsetof(qorb_pool_stats_t, size), &psize, sizeof(psize));
  memcpy(st + offsetof(qorb_pool_stats_t, backend_size), &bsize,
         sizeof(bsize));
  memcpy(bs, &s.b[0], bsize);
  memcpy(bs + bsize, &s.b[1], bsize);
  snap.st = (const qorb_pool_stats_t *)(void *)st;
  snap.backends = (const qorb_backend_stats_t *)(void *)bs;
  snap.nbackends = 2;

  t = sample_format(qorb_stats_format_prometheus, &snap, 1);
  HAS(t, "qorb_claims_total{pool=\"\"} 1234\n",
      "qorb_claim_oldest_seconds{pool=\"\"} 0\n",
      "qorb_backend_claims_total{pool=\"\",backend=\"[::1]:5433\"} 34\n",
      "qorb_backend_online_seconds{pool=\"\",backend=\"[::1]:5433\"} 0\n");
  LACKS(t, "qorb_backend_last_error_age_seconds{");
  qorb_free(t);
  t = sample_format(qorb_stats_format_json, &snap, 1);
  HAS(t, "\"oldest_claim_ms\":-1,", "\"last_error\":\"refused: ",
      "\"last_error_age_ms\":-1,\"last_error_current\":false}");
  qorb_free(t);
  free(st);
  free(bs);
}

/* ---- live pools -------------------------------------------------------- */

static void test_live(void **state) {
  fx_t fx;
  char *t, *j;
  const char *dead;
  qorb_pool_t *pools[1];
  (void)state;
  sample_live(&fx, SAMPLE_LIVE_NAME);
  pools[0] = fx.pool;

  t = sample_format_live(qorb_stats_prometheus, pools, 1);
#define LP "{pool=\"live \\\"pool\\\"\\\\ \xc3\xa9\""
  HAS(t, "qorb_pool_backends" LP "} 2\n",
      "qorb_pool_backends_online" LP "} 1\n",
      "qorb_pool_slots" LP ",state=\"idle\"} 2\n",
      "qorb_claims_total" LP "} 3\n", "qorb_claim_timeouts_total" LP "} 1\n",
      "qorb_claim_failures_total" LP ",reason=\"timeout\"} 1\n",
      "qorb_connections_closed_total" LP ",cause=\"broken\"} 1\n",
      "qorb_claim_wait_seconds_count" LP "} 2\n",
      "qorb_backend_online" LP ",backend=\"" SAMPLE_LIVE_OK "\"} 1\n",
      "qorb_backend_online" LP ",backend=\"" SAMPLE_LIVE_DEAD "\"} 0\n",
      "qorb_backend_last_error_current" LP ",backend=\"" SAMPLE_LIVE_DEAD
      "\"} 1\n",
      "qorb_backend_last_error_age_seconds" LP ",backend=\"" SAMPLE_LIVE_DEAD
      "\"} ",
      "qorb_resolver_backends" LP ",resolver=\"");

  j = sample_format_live(qorb_stats_json, pools, 1);
  HAS(j, "{\"pools\":[{\"name\":\"live \\\"pool\\\"\\\\ \xc3\xa9\",",
      "\"backends_known\":2,\"backends_online\":1,", "\"claims\":3,",
      "{\"addr\":\"" SAMPLE_LIVE_DEAD "\",\"online\":false,",
      "\"last_error_current\":true}");
  /* The dead backend's error text is in the JSON. */
  dead = strstr(j, "{\"addr\":\"" SAMPLE_LIVE_DEAD "\"");
  assert_non_null(dead);
  dead = strstr(dead, "\"last_error\":\"");
  assert_non_null(dead);
  assert_true(dead[strlen("\"last_error\":\"")] != '"');
  qorb_free(t);
  qorb_free(j);
  fx_finish(&fx);
}

/* One allocation per live call, and QORB_ENOMEM with *needed 0 when it
 * fails (the buffer emptied). */
static void test_live_oom(void **state) {
  fx_t fx;
  char buf[256];
  size_t need = 5;
  qorb_pool_t *pools[2];
  (void)state;
  sample_live(&fx, SAMPLE_LIVE_NAME);
  pools[0] = pools[1] = fx.pool;
  count_alloc_reset();
  assert_int_equal(qorb_stats_json(pools, 2, NULL, 0, &need), QORB_ENOMEM);
  assert_true(need > sizeof(buf));
  assert_int_equal(count_alloc_calls(), 1);

  count_alloc_reset();
  count_alloc_fail_at(1, 0);
  strcpy(buf, "junk");
  assert_int_equal(qorb_stats_prometheus(pools, 2, buf, sizeof(buf), &need),
                   QORB_ENOMEM);
  assert_true(count_alloc_failed());
  assert_int_equal(need, 0);
  assert_string_equal(buf, "");
  count_alloc_reset();
  count_alloc_fail_at(1, 0);
  assert_int_equal(qorb_stats_json(pools, 1, buf, sizeof(buf), &need),
                   QORB_ENOMEM);
  assert_int_equal(need, 0);
  count_alloc_fail_at(0, 0);
  fx_finish(&fx);
}

/* More backends than QORB_STATS_MAX_BACKENDS, from a resolver of our own
 * (the fake one takes 64): that many are listed, the pool's figures count
 * them all. */
enum { MANY = QORB_STATS_MAX_BACKENDS + 44 };

static int many_start(void *ctx, qorb_resolver_t *r) {
  static qorb_addr_t addrs[MANY];
  char host[32];
  (void)ctx;
  for (unsigned i = 0; i < MANY; i++) {
    snprintf(host, sizeof(host), "127.0.%u.%u", 1 + i / 200, 1 + i % 200);
    assert_int_equal(qorb_addr_set(&addrs[i], host, 1), 0);
  }
  return qorb_resolver_update(r, addrs, MANY);
}

static void many_stop(void *ctx) { (void)ctx; }

static const qorb_resolver_ops_t many_ops = {QORB_RESOLVER_OPS_VERSION, "many",
                                             many_start, many_stop, NULL};

static void test_live_many_backends(void **state) {
  fx_t fx;
  char *t, want[64];
  qorb_pool_t *pools[1];
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 2;
  assert_int_equal(qorb_resolver_new(&fx.resolver, &many_ops, NULL), 0);
  fx_start(&fx);
  pools[0] = fx.pool;
  t = sample_format_live(qorb_stats_json, pools, 1);
  snprintf(want, sizeof(want), "\"backends_known\":%u,", (unsigned)MANY);
  HAS(t, want);
  assert_int_equal(count(t, "{\"addr\":"), QORB_STATS_MAX_BACKENDS);
  qorb_free(t);
  t = sample_format_live(qorb_stats_prometheus, pools, 1);
  snprintf(want, sizeof(want), "qorb_pool_backends{pool=\"test\"} %u\n",
           (unsigned)MANY);
  HAS(t, want);
  assert_int_equal(count(t, "qorb_backend_claims_total{"),
                   QORB_STATS_MAX_BACKENDS);
  qorb_free(t);
  fx_finish(&fx);
  assert_int_equal(count_alloc_bad_frees(), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_prometheus_scripted),
      cmocka_unit_test(test_json_scripted),
      cmocka_unit_test(test_no_pools),
      cmocka_unit_test(test_too_small),
      cmocka_unit_test(test_bad_args),
      cmocka_unit_test(test_old_layout),
      cmocka_unit_test(test_live),
      cmocka_unit_test(test_live_oom),
      cmocka_unit_test(test_live_many_backends),
  };
  return cmocka_run_group_tests(tests, count_alloc_setup, count_alloc_teardown);
}
