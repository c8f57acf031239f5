/* SPDX-License-Identifier: MIT */
/*
 * test_dns_options.c: the DNS resolver's options without a server. Bad
 * input is refused with a clear code and a message naming the field (NULL,
 * no size, empty or malformed names, bad server lists, intervals the wrong
 * way round); good input makes a resolver. And the reading of SRV TTLs from
 * raw answers, including truncated and malformed ones.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "dns_int.h"
#include "qorb/static.h"

static int check(const char *name, const char *servers, int want,
                 const char *needle) {
  qorb_dns_options_t o;
  qorb_resolver_t *r = NULL;
  char err[256];
  int rc;

  qorb_dns_options_init(&o);
  o.name = name;
  o.servers = servers;
  rc = qorb_dns_resolver_new(&r, &o, err, sizeof(err));
  if (rc != want)
    fail_msg("name \"%s\" servers \"%s\": got %s, want %s (%s)",
             name ? name : "(null)", servers ? servers : "(null)",
             qorb_err_name(rc), qorb_err_name(want), err);
  if (rc == 0) {
    assert_non_null(r);
    qorb_resolver_free(r);
  } else {
    assert_null(r);
    assert_true(err[0] != '\0');
    if (needle != NULL && strstr(err, needle) == NULL)
      fail_msg("message \"%s\" lacks \"%s\"", err, needle);
  }
  return rc;
}

static void test_bad_names(void **state) {
  (void)state;
  check(NULL, NULL, QORB_EBADADDR, "name");
  check("", NULL, QORB_EBADADDR, "name");
  check("db.example", NULL, QORB_EBADADDR, "name"); /* no port, not SRV */
  check("db.example:", NULL, QORB_EBADADDR, "name");
  check("db.example:0", NULL, QORB_EBADADDR, "name");
  check("db.example:70000", NULL, QORB_EBADADDR, "name");
  check("db.example:54x", NULL, QORB_EBADADDR, "name");
  check(":5432", NULL, QORB_EBADADDR, "name");
  check("::1:5432", NULL, QORB_EBADADDR, "name"); /* IPv6 needs [] */
  check("[::1]", NULL, QORB_EBADADDR, "name");
  check("db example:5432", NULL, QORB_EBADADDR, "name");
  check("a..b:5432", NULL, QORB_EBADADDR, "name");
  check("_pg._tcp..example.", NULL, QORB_EBADADDR, "name");
  check("_pg", NULL, QORB_EBADADDR, "name");
  {
    char longlabel[80], longname[300];
    memset(longlabel, 'a', 64);
    strcpy(longlabel + 64, ".example:1");
    check(longlabel, NULL, QORB_EBADADDR, "name");
    memset(longname, 0, sizeof(longname));
    for (int i = 0; i < 26; i++) memcpy(longname + i * 10, "abcdefghi.", 10);
    strcat(longname, "x:1");
    check(longname, NULL, QORB_EBADADDR, "...");
  }
}

static void test_bad_servers(void **state) {
  (void)state;
  check("db.example:5432", "", QORB_EBADADDR, "servers");
  check("db.example:5432", " , ", QORB_EBADADDR, "servers");
  check("db.example:5432", "127.0.0.1", QORB_EBADADDR, "servers");
  check("db.example:5432", "ns.example:53", QORB_EBADADDR, "servers");
  check("db.example:5432", "::1:53", QORB_EBADADDR, "servers");
  check("db.example:5432",
        "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4,127.0.0.1:5,"
        "127.0.0.1:6,127.0.0.1:7,127.0.0.1:8,127.0.0.1:9",
        QORB_EBADADDR, "too many");
}

static void test_bad_fields(void **state) {
  qorb_dns_options_t o;
  qorb_resolver_t *r = NULL;
  char err[256];

  (void)state;
  assert_int_equal(qorb_dns_resolver_new(NULL, NULL, NULL, 0), QORB_EINVAL);
  assert_int_equal(qorb_dns_resolver_new(&r, NULL, err, sizeof(err)),
                   QORB_EINVAL);
  assert_non_null(strstr(err, "qorb_dns_options_init"));
  memset(&o, 0, sizeof(o)); /* no size */
  o.name = "db.example:5432";
  assert_int_equal(qorb_dns_options_validate(&o, err, sizeof(err)),
                   QORB_EINVAL);

#define BAD_FIELD(stmt, needle)                                              \
  do {                                                                       \
    qorb_dns_options_init(&o);                                               \
    o.name = "db.example:5432";                                              \
    stmt;                                                                    \
    assert_int_equal(qorb_dns_resolver_new(&r, &o, err, sizeof(err)),        \
                     QORB_ECONFIG);                                          \
    assert_null(r);                                                          \
    assert_non_null(strstr(err, needle));                                    \
  } while (0)
  BAD_FIELD(o.min_interval_ms = 5000; o.max_interval_ms = 1000,
            "min_interval_ms exceeds max_interval_ms");
  BAD_FIELD(o.min_interval_ms = 0, "min_interval_ms");
  BAD_FIELD(o.families = 0, "families");
  BAD_FIELD(o.families = 4, "families");
  BAD_FIELD(o.tries = 0, "tries");
  BAD_FIELD(o.query_timeout_ms = 0, "query_timeout_ms");
  BAD_FIELD(o.max_backends = 0, "max_backends");
#undef BAD_FIELD
}

static void test_good(void **state) {
  qorb_dns_stats_t st;
  qorb_dns_options_t o;
  qorb_resolver_t *r = NULL;

  (void)state;
  check("localhost:5432", NULL, 0, NULL);
  check("127.0.0.1:5432", "127.0.0.1:53", 0, NULL);
  check("[::1]:5432", "[::1]:53 127.0.0.1:5353", 0, NULL);
  check("db.example.:5432", "127.0.0.1:53", 0, NULL);
  check("_pg._tcp.db.example.", "127.0.0.1:53,[::1]:53", 0, NULL);
  check("_pg._tcp.db.example", "127.0.0.1:53", 0, NULL);

  qorb_dns_options_init(&o);
  o.name = "_pg._tcp.db.example.";
  o.servers = "127.0.0.1:53,[::1]:5353";
  assert_int_equal(qorb_dns_resolver_new(&r, &o, NULL, 0), 0);
  qorb_dns_stats_init(&st);
  assert_int_equal(qorb_dns_resolver_stats(r, &st), 0);
  assert_int_equal(st.nservers, 2);
  assert_string_equal(st.servers[1].addr, "[::1]:5353");
  assert_int_equal(st.next_query_ms, -1); /* not started */
  assert_int_equal(st.last_error_age_ms, -1);
  st.size = 0;
  assert_int_equal(qorb_dns_resolver_stats(r, &st), QORB_EINVAL);
  qorb_resolver_free(r);

  /* Not a DNS resolver. */
  assert_int_equal(qorb_static_resolver_new(&r, "127.0.0.1:1", NULL, 0), 0);
  qorb_dns_stats_init(&st);
  assert_int_equal(qorb_dns_resolver_stats(r, &st), QORB_EINVAL);
  qorb_resolver_free(r);
}

/* An answer for _pg._tcp.x. with two SRV RRs (TTL 30 and 7), the second
 * owner name compressed. */
static const unsigned char srv_answer[] = {
    0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0,
    /* question: _pg._tcp.x. SRV IN */
    3, '_', 'p', 'g', 4, '_', 't', 'c', 'p', 1, 'x', 0, 0, 33, 0, 1,
    /* answer 1: pointer to 12, SRV IN TTL 30, rdata 9 */
    0xC0, 12, 0, 33, 0, 1, 0, 0, 0, 30, 0, 9, 0, 1, 0, 1, 0x15, 0x38, 1,
    'a', 0,
    /* answer 2: TTL 7 */
    0xC0, 12, 0, 33, 0, 1, 0, 0, 0, 7, 0, 9, 0, 1, 0, 1, 0x15, 0x39, 1, 'b',
    0,
};

static void test_answer_ttl(void **state) {
  unsigned ttl = 99;
  unsigned char bad[sizeof(srv_answer)];

  (void)state;
  assert_int_equal(qorb__dns_answer_ttl(srv_answer, (int)sizeof(srv_answer),
                                        33, &ttl), 0);
  assert_int_equal(ttl, 7);
  /* No RR of that type. */
  assert_int_equal(qorb__dns_answer_ttl(srv_answer, (int)sizeof(srv_answer),
                                        1, &ttl), QORB_EPROTO);
  /* Every truncation is refused, never read past. */
  for (int len = 0; len < (int)sizeof(srv_answer) - 1; len++) {
    ttl = 99;
    int rc = qorb__dns_answer_ttl(srv_answer, len, 33, &ttl);
    assert_true(rc == QORB_EPROTO || (rc == 0 && ttl == 30));
  }
  /* A label length running off the end, a bad label type. */
  memcpy(bad, srv_answer, sizeof(bad));
  bad[12] = 60;
  assert_int_equal(qorb__dns_answer_ttl(bad, (int)sizeof(bad), 33, &ttl),
                   QORB_EPROTO);
  bad[12] = 0x80;
  assert_int_equal(qorb__dns_answer_ttl(bad, (int)sizeof(bad), 33, &ttl),
                   QORB_EPROTO);
  assert_int_equal(qorb__dns_answer_ttl(NULL, 0, 33, &ttl), QORB_EPROTO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_names),
      cmocka_unit_test(test_bad_servers),
      cmocka_unit_test(test_bad_fields),
      cmocka_unit_test(test_good),
      cmocka_unit_test(test_answer_ttl),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
