/* SPDX-License-Identifier: MIT */
/*
 * test_dns_oom.c: the out-of-memory sweep over the DNS resolver's creation
 * (its own allocations and c-ares's, which go through qorb's allocator):
 * fail allocation N, once and from N on, for N = 1, 2, ... until creation
 * succeeds with no failure injected. Every attempt returns 0 or
 * QORB_ENOMEM and leaves nothing allocated.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include <qorb/dns.h>
#include <qorb/qorb.h>

#include "count_alloc.h"

static void sweep(const char *name, const char *servers) {
  count_alloc_install();
  for (int persistent = 0; persistent < 2; persistent++) {
    for (unsigned long n = 1; n < 100000; n++) {
      qorb_dns_options_t o;
      qorb_resolver_t *r = NULL;
      char err[256];
      int rc;

      qorb_dns_options_init(&o);
      o.name = name;
      o.servers = servers;
      count_alloc_reset();
      count_alloc_fail_at(n, persistent);
      rc = qorb_dns_resolver_new(&r, &o, err, sizeof(err));
      int failed = count_alloc_failed();
      count_alloc_fail_at(0, 0);
      if (rc != 0 && rc != QORB_ENOMEM)
        fail_msg("%s, failing allocation %lu%s: %s (%s)", name, n,
                 persistent ? " and after" : "", qorb_err_name(rc), err);
      if (rc == 0) qorb_resolver_free(r);
      if (count_alloc_live() != 0)
        fail_msg("%s, failing allocation %lu: %ld blocks leaked", name, n,
                 count_alloc_live());
      assert_int_equal(count_alloc_bad_frees(), 0);
      if (!failed) {
        printf("%s%s: succeeded after %lu allocations\n", name,
               persistent ? " (persistent)" : "", n - 1);
        assert_int_equal(rc, 0);
        break;
      }
    }
  }
  count_alloc_uninstall();
}

static void test_oom_host(void **state) {
  (void)state;
  sweep("db.example:5432", "127.0.0.1:53,[::1]:53");
}

static void test_oom_srv(void **state) {
  (void)state;
  sweep("_pg._tcp.db.example.", "127.0.0.1:53");
}

static void test_oom_system_servers(void **state) {
  (void)state;
  sweep("localhost:5432", NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_oom_host),
      cmocka_unit_test(test_oom_srv),
      cmocka_unit_test(test_oom_system_servers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
