/* SPDX-License-Identifier: MIT */
/*
 * test_dns_modes.c: what the pool sees from the DNS resolver's two modes,
 * against the test unbound: an SRV name (targets with A and AAAA, A only,
 * AAAA only; one family only), a host:port with several A records, names
 * answered without a server (localhost, numeric), odd answers (a target
 * without an address, port 0) and an answer of 300 records bounded by
 * max_backends.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "dns_testlib.h"

static void test_srv_three_targets(void **state) {
  qorb_dns_options_t o;
  qorb_dns_stats_t st;
  qorb_resolver_stats_t rs;
  dt_t t;

  (void)state;
  dt_options(&o, "_pg._tcp.test.local.");
  dt_start(&t, &o);
  PUMP_UNTIL(t.loop, dt_backends(&t) == 4, 10000);
  assert_true(dt_has(&t, "127.0.0.2:5432"));
  assert_true(dt_has(&t, "[::1]:5432"));
  assert_true(dt_has(&t, "127.0.0.3:5433"));     /* A only */
  assert_true(dt_has(&t, "[::ffff:127.0.0.4]:5434")); /* AAAA only */
  dt_stats(&t, &st);
  assert_int_equal(st.backends, 4);
  assert_true(st.queries >= 4); /* the SRV and three targets */
  assert_int_equal(st.failures, 0);
  assert_int_equal(st.last_error, 0);
  assert_int_equal(st.last_error_age_ms, -1);
  assert_int_equal(st.nservers, 2);
  assert_string_equal(st.servers[0].addr, "127.0.0.1:55353");
  assert_string_equal(st.servers[1].addr, "[::1]:55353");
  assert_true(st.next_query_ms >= 0 && st.next_query_ms <= 2000);
  assert_true(dt_logged("4 backends (was 0)") >= 1);
  /* The same figures in the pool's own snapshot. */
  dt_pool_resolver(&t, &rs);
  assert_string_equal(rs.kind, "dns");
  assert_string_equal(rs.name, "_pg._tcp.test.local.");
  assert_int_equal(rs.backends, 4);
  assert_true(rs.queries >= 4);
  assert_int_equal(rs.failures, 0);
  assert_int_equal(rs.last_error_age_ms, -1);
  assert_int_equal(rs.servers, 2);
  assert_int_equal(rs.servers_failing, 0);
  assert_true(rs.next_query_ms >= 0 && rs.next_query_ms <= 2000);
  dt_finish(&t);
}

static void test_srv_one_family(void **state) {
  qorb_dns_options_t o;
  dt_t t;

  (void)state;
  dt_options(&o, "_pg._tcp.test.local.");
  o.families = QORB_DNS_INET;
  dt_start(&t, &o);
  PUMP_UNTIL(t.loop, dt_backends(&t) == 2, 10000);
  assert_true(dt_has(&t, "127.0.0.2:5432"));
  assert_true(dt_has(&t, "127.0.0.3:5433"));
  PUMP_UNTIL(t.loop, dt_logged("pg3.test.local has no address") >= 1, 5000);
  dt_finish(&t);

  o.families = QORB_DNS_INET6;
  dt_start(&t, &o);
  PUMP_UNTIL(t.loop, dt_backends(&t) == 2, 10000);
  assert_true(dt_has(&t, "[::1]:5432"));
  assert_true(dt_has(&t, "[::ffff:127.0.0.4]:5434"));
  dt_finish(&t);
}

static void test_host_several_a(void **state) {
  qorb_dns_options_t o;
  dt_t t;

  (void)state;
  dt_options(&o, "multi.test.local:6000");
  o.servers = "[::1]:55353"; /* over IPv6 alone */
  dt_start(&t, &o);
  PUMP_UNTIL(t.loop, dt_backends(&t) == 3, 10000);
  assert_true(dt_has(&t, "127.0.0.5:6000"));
  assert_true(dt_has(&t, "127.0.0.6:6000"));
  assert_true(dt_has(&t, "127.0.0.7:6000"));
  dt_finish(&t);
}

static void test_host_without_server(void **state) {
  static const char *const names[][2] = {
      {"localhost:5432", "127.0.0.1:5432"},
      {"127.0.0.9:7000", "127.0.0.9:7000"},
      {"[::1]:7001", "[::1]:7001"},
  };
  qorb_dns_options_t o;
  dt_t t;

  (void)state;
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    dt_options(&o, names[i][0]);
    dt_start(&t, &o);
    PUMP_UNTIL(t.loop, dt_has(&t, names[i][1]), 10000);
    dt_finish(&t);
  }
}

static void test_odd_answers(void **state) {
  qorb_dns_options_t o;
  dt_t t;

  (void)state;
  dt_options(&o, "_odd._tcp.test.local.");
  dt_start(&t, &o);
  PUMP_UNTIL(t.loop, dt_backends(&t) == 1, 10000);
  assert_true(dt_has(&t, "127.0.0.3:5440"));
  PUMP_UNTIL(t.loop, dt_logged("port 0") >= 1, 5000);
  PUMP_UNTIL(t.loop, dt_logged("noaddr.test.local has no address") >= 1,
             5000);
  dt_finish(&t);
}

static void test_many_records(void **state) {
  qorb_dns_options_t o;
  qorb_dns_stats_t st;
  dt_t t;

  (void)state;
  dt_options(&o, "many.test.local:7000");
  o.max_backends = 100;
  dt_start(&t, &o);
  PUMP_UNTIL(t.loop, dt_backends(&t) == 100, 10000);
  PUMP_UNTIL(t.loop, dt_logged("over max_backends") >= 1, 5000);
  dt_stats(&t, &st);
  assert_int_equal(st.backends, 100);
  dt_finish(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_srv_three_targets),
      cmocka_unit_test(test_srv_one_family),
      cmocka_unit_test(test_host_several_a),
      cmocka_unit_test(test_host_without_server),
      cmocka_unit_test(test_odd_answers),
      cmocka_unit_test(test_many_records),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
