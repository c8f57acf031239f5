/* SPDX-License-Identifier: MIT */
/*
 * test_dns_changes.c: records changed at run time through unbound-control.
 * An SRV target added joins the set within the query interval and a
 * removed one leaves it; an address that answers stop listing stays until
 * its TTL runs out and is then removed; a name that vanishes (NXDOMAIN)
 * empties the set only once a second lookup confirms it.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "dns_testlib.h"

static void test_srv_target_added_removed(void **state) {
  qorb_dns_options_t o;
  dt_t t;

  (void)state;
  dt_script("remove _dyn._tcp.test.local.");
  dt_script("add '_dyn._tcp.test.local. 1 IN SRV 1 1 7001 dyn1.test.local.'");
  dt_script("add 'dyn1.test.local. 1 IN A 127.0.0.10'");
  dt_script("add 'dyn2.test.local. 1 IN A 127.0.0.11'");
  dt_options(&o, "_dyn._tcp.test.local.");
  dt_start(&t, &o);
  PUMP_UNTIL(t.loop, dt_has(&t, "127.0.0.10:7001"), 10000);
  assert_int_equal(dt_backends(&t), 1);

  dt_script("add '_dyn._tcp.test.local. 1 IN SRV 1 1 7002 dyn2.test.local.'");
  PUMP_UNTIL(t.loop, dt_has(&t, "127.0.0.11:7002"), 5000);
  assert_true(dt_has(&t, "127.0.0.10:7001"));

  /* One SRV record cannot be removed alone: remove the name, re-add. */
  dt_script("remove _dyn._tcp.test.local.");
  dt_script("add '_dyn._tcp.test.local. 1 IN SRV 1 1 7002 dyn2.test.local.'");
  PUMP_UNTIL(t.loop, !dt_has(&t, "127.0.0.10:7001"), 10000);
  assert_true(dt_has(&t, "127.0.0.11:7002"));
  assert_int_equal(dt_backends(&t), 1);
  dt_finish(&t);
}

static void test_ttl_expiry(void **state) {
  qorb_dns_options_t o;
  uint64_t changed, gone;
  dt_t t;

  (void)state;
  dt_script("remove ttl.test.local.");
  dt_script("add 'ttl.test.local. 2 IN A 127.0.0.20'");
  dt_options(&o, "ttl.test.local:7100");
  dt_start(&t, &o);
  PUMP_UNTIL(t.loop, dt_has(&t, "127.0.0.20:7100"), 10000);

  /* Answers now list only .21: .20 is not renewed and must go once its
   * 2 s TTL has run out, not at once. */
  dt_script("remove ttl.test.local.");
  dt_script("add 'ttl.test.local. 2 IN A 127.0.0.21'");
  changed = itest_now_ms();
  PUMP_UNTIL(t.loop, dt_has(&t, "127.0.0.21:7100"), 5000);
  assert_true(dt_has(&t, "127.0.0.20:7100"));
  PUMP_UNTIL(t.loop, !dt_has(&t, "127.0.0.20:7100"), 10000);
  gone = itest_now_ms();
  assert_true(gone - changed >= 1000); /* the TTL was honoured */
  assert_true(dt_has(&t, "127.0.0.21:7100"));
  assert_true(dt_logged("127.0.0.20:7100 expired") >= 1);
  dt_finish(&t);
}

static void test_nxdomain_confirmed(void **state) {
  qorb_dns_options_t o;
  qorb_dns_stats_t st;
  dt_t t;

  (void)state;
  dt_script("add 'gone.test.local. 30 IN A 127.0.0.30'");
  dt_options(&o, "gone.test.local:7200");
  dt_start(&t, &o);
  PUMP_UNTIL(t.loop, dt_has(&t, "127.0.0.30:7200"), 10000);
  dt_script("remove gone.test.local.");
  PUMP_UNTIL(t.loop, dt_logged("asking again before removing") >= 1, 5000);
  PUMP_UNTIL(t.loop, dt_backends(&t) == 0, 5000);
  dt_stats(&t, &st);
  assert_int_equal(st.backends, 0);
  assert_int_equal(st.failures, 0); /* "no such name" is an answer */
  assert_true(st.changes >= 2);
  assert_true(dt_logged("0 backends (was 1)") >= 1);
  dt_finish(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_srv_target_added_removed),
      cmocka_unit_test(test_ttl_expiry),
      cmocka_unit_test(test_nxdomain_confirmed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
