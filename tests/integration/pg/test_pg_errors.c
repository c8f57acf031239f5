/* SPDX-License-Identifier: MIT */
/*
 * test_pg_errors.c: backends that cannot succeed. A wrong password, no
 * password, a refused port, an unknown database and a server shutting down
 * each make claims fail quickly with QORB_ENOTONLINE (never after the whole
 * claim timeout) with libpq's text in the backend's last_error; the pool
 * closes cleanly and leaks nothing (the ASan build checks that). A good
 * backend next to a bad one serves every claim.
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg_testlib.h"

static int group_setup(void **state) {
  (void)state;
  /* No ~/.pgpass may supply a password behind the test's back. */
  setenv("PGPASSFILE", "/nonexistent/qorb-pgpass", 1);
  unsetenv("PGPASSWORD");
  return 0;
}

static void tweak(qorb_policy_t *p) {
  p->max_slots = 4;
  p->spares_wanted = 2;
  p->claim_timeout_ms = 10000;
  p->connect_timeout_ms = 3000;
}

/*
 * A pool over `backend` with `conninfo`: the first claim fails with
 * QORB_ENOTONLINE within `bound_ms`, and last_error contains `want`.
 */
static void expect_failure(const char *backend, const char *conninfo,
                           const char *want) {
  qorb_pg_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl = NULL;
  char e[256];
  uint64_t t0, dt;
  int rc;
  qorb_pg_options_init(&o);
  o.conninfo = conninfo;
  pool = pgt_pool(backend, &o, tweak);
  t0 = itest_now_ms();
  rc = qorb_pool_claim_wait(pool, 10000, &cl);
  dt = itest_now_ms() - t0;
  itest_last_error(pool, backend, e, sizeof(e));
  fprintf(stderr, "%s: %s after %llu ms: %s\n", conninfo, qorb_err_name(rc),
          (unsigned long long)dt, e);
  assert_int_equal(rc, QORB_ENOTONLINE);
  assert_null(cl);
  assert_true(dt < 2000);
  assert_non_null(strstr(e, want));
  /* Later claims fail at once. */
  t0 = itest_now_ms();
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), QORB_ENOTONLINE);
  assert_true(itest_now_ms() - t0 < 500);
  assert_int_equal(qorb_pool_try_claim(pool, &cl), QORB_ENOTONLINE);
  itest_close(pool);
}

static void test_wrong_password(void **state) {
  (void)state;
  expect_failure(PGT_A, "user=qorb_pw password=wrong dbname=postgres",
                 "password authentication failed for user \"qorb_pw\"");
}

static void test_no_password(void **state) {
  (void)state;
  expect_failure(PGT_A, "user=qorb_pw dbname=postgres", "no password supplied");
}

static void test_right_password(void **state) {
  qorb_pg_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  char buf[64];
  (void)state;
  qorb_pg_options_init(&o);
  o.conninfo = "user=qorb_pw password=secret dbname=postgres";
  pool = pgt_pool(PGT_A, &o, tweak);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_int_equal(pgt_value(qorb_pg_conn(cl), "SELECT current_user", buf,
                             sizeof(buf)), 0);
  assert_string_equal(buf, "qorb_pw");
  qorb_release(cl);
  itest_close(pool);
}

static void test_refused(void **state) {
  (void)state;
  expect_failure(PGT_REFUSED, "user=postgres dbname=postgres",
                 "Connection refused");
}

static void test_unknown_database(void **state) {
  (void)state;
  expect_failure(PGT_A, "user=postgres dbname=qorb_no_such_db",
                 "database \"qorb_no_such_db\" does not exist");
}

static void test_unknown_user(void **state) {
  (void)state;
  expect_failure(PGT_B, "user=qorb_nobody dbname=postgres",
                 "role \"qorb_nobody\" does not exist");
}

static int restart_a(void **state) {
  (void)state;
  pgt_servers("stop a");
  pgt_servers("start a");
  return 0;
}

/* A smart shutdown in progress: the server is up but refuses sessions. */
static void test_shutting_down(void **state) {
  PGconn *admin;
  (void)state;
  pgt_skip_if_external("begins a smart shutdown of server a");
  admin = pgt_admin(PGT_A); /* keeps the smart shutdown from finishing */
  assert_int_equal(pgt_servers("shutdown-smart a"), 0);
  itest_nap_ms(200);
  expect_failure(PGT_A, "user=postgres dbname=postgres",
                 "the database system is shutting down");
  PQfinish(admin);
}

/* One bad backend beside a good one: every claim is served by the good
   one, quickly; the bad one's reason is there to read. */
static void test_bad_beside_good(void **state) {
  qorb_pg_options_t o;
  qorb_pool_t *pool;
  char e[256];
  int i;
  (void)state;
  pgt_options(&o);
  pool = pgt_pool(PGT_REFUSED_B, &o, tweak);
  for (i = 0; i < 50; i++) {
    qorb_claim_t *cl;
    assert_int_equal(qorb_pool_claim_wait(pool, 5000, &cl), 0);
    assert_string_equal(qorb_claim_addr(cl)->text, PGT_B);
    assert_int_equal(pgt_exec(qorb_pg_conn(cl), "SELECT 1"), 0);
    qorb_release(cl);
  }
  ITEST_WAIT(itest_failures(pool, PGT_REFUSED) > 0, 5000);
  itest_last_error(pool, PGT_REFUSED, e, sizeof(e));
  assert_non_null(strstr(e, "Connection refused"));
  assert_false(itest_online(pool, PGT_REFUSED));
  itest_close(pool);
}

/* Pools over failing backends, made and closed in a row: no leak, no
   crash, and each close is quick. */
static void test_repeat_close(void **state) {
  static const char *const infos[] = {
      "user=qorb_pw password=wrong dbname=postgres",
      "user=postgres dbname=qorb_no_such_db",
  };
  int i;
  (void)state;
  for (i = 0; i < 10; i++) {
    qorb_pg_options_t o;
    qorb_pool_t *pool;
    uint64_t t0;
    qorb_pg_options_init(&o);
    o.conninfo = infos[i % 2];
    pool = pgt_pool(i % 3 == 0 ? PGT_REFUSED_A : PGT_A, &o, tweak);
    itest_nap_ms((unsigned)(i * 7 % 40));
    t0 = itest_now_ms();
    itest_close(pool);
    assert_true(itest_now_ms() - t0 < 1000);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wrong_password),
      cmocka_unit_test(test_no_password),
      cmocka_unit_test(test_right_password),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_unknown_database),
      cmocka_unit_test(test_unknown_user),
      cmocka_unit_test_teardown(test_shutting_down, restart_a),
      cmocka_unit_test(test_bad_beside_good),
      cmocka_unit_test(test_repeat_close),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
