/* SPDX-License-Identifier: MIT */
/*
 * test_addr.c: backend addresses. qorb_addr_parse() takes only numeric
 * "host:port" (IPv6 in brackets) and refuses everything else with
 * QORB_EBADADDR; qorb_addr_set() builds the same from parts;
 * qorb_addr_equal() compares backends.
 */
#define _POSIX_C_SOURCE 200809L
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "fixture.h"

static void test_parse_ipv4(void **state) {
  qorb_addr_t a;
  (void)state;
  memset(&a, 0xa5, sizeof(a));
  assert_int_equal(qorb_addr_parse("127.0.0.1:5432", &a), 0);
  assert_int_equal(a.family, AF_INET);
  assert_int_equal(a.port, 5432);
  assert_string_equal(a.host, "127.0.0.1");
  assert_string_equal(a.text, "127.0.0.1:5432");

  assert_int_equal(qorb_addr_parse("255.255.255.255:65535", &a), 0);
  assert_int_equal(a.port, 65535);
  assert_string_equal(a.text, "255.255.255.255:65535");

  assert_int_equal(qorb_addr_parse("10.0.0.2:1", &a), 0);
  assert_int_equal(a.port, 1);
  assert_string_equal(a.host, "10.0.0.2");
}

static void test_parse_ipv6(void **state) {
  qorb_addr_t a;
  (void)state;
  assert_int_equal(qorb_addr_parse("[::1]:5432", &a), 0);
  assert_int_equal(a.family, AF_INET6);
  assert_int_equal(a.port, 5432);
  assert_string_equal(a.host, "::1");
  assert_string_equal(a.text, "[::1]:5432");

  assert_int_equal(qorb_addr_parse("[fe80::1:2]:6379", &a), 0);
  assert_int_equal(a.family, AF_INET6);
  assert_int_equal(a.port, 6379);
  assert_string_equal(a.text, "[fe80::1:2]:6379");

  /* The longest IPv6 text (45 characters) still fits host and text. */
  assert_int_equal(
      qorb_addr_parse("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535",
                      &a),
      0);
  assert_int_equal(a.family, AF_INET6);
  assert_int_equal(a.port, 65535);
  assert_true(strlen(a.host) < sizeof(a.host));
  assert_true(strlen(a.text) < sizeof(a.text));
  assert_non_null(strstr(a.text, "]:65535"));
  assert_int_equal(a.text[0], '[');
}

static void test_parse_bad(void **state) {
  static const char *const bad[] = {
      "",
      ":",
      "127.0.0.1",           /* no port */
      "127.0.0.1:",          /* empty port */
      "127.0.0.1:0",         /* port 0 */
      "127.0.0.1:65536",     /* port too big */
      "127.0.0.1:99999999999999999999",
      "127.0.0.1:-1",
      "127.0.0.1:80x",       /* trailing characters */
      "127.0.0.1:80 ",
      "127.0.0.1:80:80",
      "127.0.0.1:0x50",
      ":5432",               /* no host */
      "localhost:5432",      /* names are a resolver's work */
      "db.example:5432",
      "256.0.0.1:80",
      "1.2.3:80",
      "::1:5432",            /* IPv6 without brackets */
      "[::1]",               /* no port */
      "[::1]:",
      "[::1:5432",           /* unclosed bracket */
      "::1]:5432",
      "[]:5432",
      "[::1]:0",
      "[::1]:70000",
      "[::1]x:5432",
      "[127.0.0.1:80",
      "[::g]:80",
  };
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    qorb_addr_t a;
    int rc = qorb_addr_parse(bad[i], &a);
    if (rc != QORB_EBADADDR)
      fail_msg("qorb_addr_parse(\"%s\") = %s, expected QORB_EBADADDR", bad[i],
               qorb_err_name(rc));
  }
}

static void test_parse_overlong(void **state) {
  char buf[4096];
  qorb_addr_t a;
  (void)state;
  /* A very long host never overruns the fixed buffers. */
  memset(buf, '1', sizeof(buf));
  buf[sizeof(buf) - 1] = '\0';
  buf[sizeof(buf) - 6] = ':';
  assert_int_equal(qorb_addr_parse(buf, &a), QORB_EBADADDR);
  buf[0] = '[';
  buf[sizeof(buf) - 7] = ']';
  assert_int_equal(qorb_addr_parse(buf, &a), QORB_EBADADDR);
}

static void test_parse_null(void **state) {
  qorb_addr_t a;
  (void)state;
  assert_int_equal(qorb_addr_parse(NULL, &a), QORB_EINVAL);
  assert_int_equal(qorb_addr_parse("127.0.0.1:1", NULL), QORB_EINVAL);
}

static void test_set(void **state) {
  qorb_addr_t a, b;
  (void)state;
  assert_int_equal(qorb_addr_set(&a, "127.0.0.2", 6379), 0);
  assert_int_equal(a.family, AF_INET);
  assert_int_equal(a.port, 6379);
  assert_string_equal(a.host, "127.0.0.2");
  assert_string_equal(a.text, "127.0.0.2:6379");
  assert_int_equal(qorb_addr_parse("127.0.0.2:6379", &b), 0);
  assert_true(qorb_addr_equal(&a, &b));

  assert_int_equal(qorb_addr_set(&a, "::1", 5432), 0);
  assert_int_equal(a.family, AF_INET6);
  assert_string_equal(a.host, "::1");
  assert_string_equal(a.text, "[::1]:5432");

  assert_int_equal(qorb_addr_set(&a, "localhost", 5432), QORB_EBADADDR);
  assert_int_equal(qorb_addr_set(&a, "127.0.0.1", 0), QORB_EBADADDR);
  assert_int_equal(qorb_addr_set(&a, "", 80), QORB_EBADADDR);
  assert_int_equal(qorb_addr_set(&a, "[::1]", 80), QORB_EBADADDR);
  assert_int_equal(qorb_addr_set(&a, "127.0.0.1:80", 80), QORB_EBADADDR);
  assert_int_equal(qorb_addr_set(NULL, "127.0.0.1", 80), QORB_EINVAL);
  assert_int_equal(qorb_addr_set(&a, NULL, 80), QORB_EINVAL);
}

static void test_equal(void **state) {
  qorb_addr_t a, b, c, d, e, f;
  (void)state;
  assert_int_equal(qorb_addr_parse("127.0.0.1:1", &a), 0);
  assert_int_equal(qorb_addr_parse("127.0.0.1:1", &b), 0);
  assert_int_equal(qorb_addr_parse("127.0.0.1:2", &c), 0);
  assert_int_equal(qorb_addr_parse("127.0.0.2:1", &d), 0);
  assert_int_equal(qorb_addr_parse("[::1]:1", &e), 0);
  assert_true(qorb_addr_equal(&a, &b) == 1);
  assert_true(qorb_addr_equal(&a, &a) == 1);
  assert_true(qorb_addr_equal(&a, &c) == 0);
  assert_true(qorb_addr_equal(&a, &d) == 0);
  assert_true(qorb_addr_equal(&a, &e) == 0);
  /* The same IPv6 address written two ways names the same backend. */
  assert_int_equal(qorb_addr_parse("[0:0:0:0:0:0:0:1]:1", &f), 0);
  assert_true(qorb_addr_equal(&e, &f) == 1);
  assert_true(qorb_addr_equal(&a, NULL) == 0);
  assert_true(qorb_addr_equal(NULL, &a) == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_ipv4),    cmocka_unit_test(test_parse_ipv6),
      cmocka_unit_test(test_parse_bad),     cmocka_unit_test(test_parse_overlong),
      cmocka_unit_test(test_parse_null),    cmocka_unit_test(test_set),
      cmocka_unit_test(test_equal),
  };
  return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
