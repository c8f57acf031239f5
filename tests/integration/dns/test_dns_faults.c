/* SPDX-License-Identifier: MIT */
/*
 * test_dns_faults.c: DNS failures. With the server stopped, lookups fail
 * (refused at once) and the pool keeps every backend; with the server
 * back, lookups succeed again. With two servers of which one is dead (a
 * closed port), names still resolve and the dead one is tried less.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "dns_testlib.h"

/* Whatever happened, the next test finds the server running. */
static int restart_server(void **state) {
  (void)state;
  dt_script("start");
  return 0;
}

static void test_outage_keeps_backends(void **state) {
  qorb_dns_options_t o;
  qorb_dns_stats_t st;
  qorb_resolver_stats_t rs;
  uint64_t failures;
  dt_t t;

  (void)state;
  dt_options(&o, "multi.test.local:6000");
  dt_start(&t, &o);
  PUMP_UNTIL(t.loop, dt_backends(&t) == 3, 10000);

  dt_script("stop");
  PUMP_UNTIL(t.loop, (dt_stats(&t, &st), st.failures >= 3), 20000);
  assert_int_equal(dt_backends(&t), 3);
  assert_int_equal(st.backends, 3);
  assert_int_not_equal(st.last_error, 0);
  assert_true(st.last_error_text[0] != '\0');
  assert_true(st.last_error_age_ms >= 0);
  assert_true(st.servers[0].failures >= 1 && st.servers[1].failures >= 1);
  assert_true(dt_logged("keeping 3 backends") >= 1);
  dt_pool_resolver(&t, &rs);
  assert_true(rs.failures >= 3);
  assert_int_equal(rs.backends, 3);
  assert_int_not_equal(rs.last_error, 0);
  assert_true(strstr(rs.last_error_text, "lookup failed") != NULL);
  assert_true(rs.last_error_age_ms >= 0);
  assert_true(rs.servers_failing >= 1);

  dt_script("start");
  dt_stats(&t, &st);
  failures = st.failures;
  /* Back: the servers answer again (their failure streaks end). */
  PUMP_UNTIL(t.loop, (dt_stats(&t, &st), st.servers[0].consecutive_failures
                      == 0 || st.servers[1].consecutive_failures == 0),
             20000);
  assert_int_equal(dt_backends(&t), 3);
  assert_true(st.failures >= failures);
  dt_finish(&t);
}

static void test_dead_server_tried_less(void **state) {
  qorb_dns_options_t o;
  qorb_dns_stats_t st;
  dt_t t;

  (void)state;
  dt_options(&o, "multi.test.local:6000");
  o.servers = DT_DEAD ",127.0.0.1:55353";
  dt_start(&t, &o);
  PUMP_UNTIL(t.loop, dt_backends(&t) == 3, 10000);
  PUMP_UNTIL(t.loop, (dt_stats(&t, &st), st.servers[1].queries >= 10), 20000);
  assert_string_equal(st.servers[0].addr, DT_DEAD);
  assert_true(st.servers[0].failures >= 1);
  assert_true(st.servers[0].queries < st.servers[1].queries / 2);
  assert_int_equal(st.servers[1].failures, 0);
  assert_int_equal(st.failures, 0); /* every lookup succeeded */
  assert_int_equal(dt_backends(&t), 3);
  assert_true(dt_logged("server " DT_DEAD " failed") >= 1);
  dt_finish(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_outage_keeps_backends, restart_server),
      cmocka_unit_test(test_dead_server_tried_less),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
