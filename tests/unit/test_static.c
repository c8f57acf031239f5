/* SPDX-License-Identifier: MIT */
/*
 * test_static.c: the static resolver. A list of numeric "host:port"
 * entries (commas or white space between them), replaceable at run time;
 * a malformed entry is refused with QORB_EBADADDR and a message naming it,
 * and a refused replacement changes nothing.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "fixture.h"

static void start_static(fx_t *fx, const char *list) {
  char err[128] = "";
  qorb_resolver_t *r = NULL;
  int rc = qorb_static_resolver_new(&r, list, err, sizeof(err));
  if (rc != 0) fail_msg("static resolver \"%s\": %s %s", list, qorb_err_name(rc), err);
  assert_non_null(r);
  fx->resolver = r;
  fx_start(fx);
}

static void test_list_separators(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  qorb_backend_stats_t b;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.max_slots = 8;
  start_static(&fx, "127.0.0.1:1, [::1]:2  127.0.0.2:3\t127.0.0.3:4,127.0.0.4:5");
  PUMP_UNTIL(fx.loop, (fx_stats(&fx, &st), st.backends == 5), 2000);
  assert_true(fx_backend(&fx, "127.0.0.1:1", &b));
  assert_true(fx_backend(&fx, "[::1]:2", &b));
  assert_int_equal(b.addr.family, AF_INET6);
  assert_int_equal(b.addr.port, 2);
  assert_true(fx_backend(&fx, "127.0.0.2:3", &b));
  assert_true(fx_backend(&fx, "127.0.0.3:4", &b));
  assert_true(fx_backend(&fx, "127.0.0.4:5", &b));
  /* Every backend gets connected. */
  PUMP_UNTIL(fx.loop, (fx_stats(&fx, &st), st.backends_online == 5), 2000);
  fx_finish(&fx);
}

static void test_duplicates_ignored(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  (void)state;
  fx_init(&fx, 0, 0);
  start_static(&fx, "127.0.0.1:1,127.0.0.1:1 127.0.0.1:1,127.0.0.2:1");
  PUMP_UNTIL(fx.loop, (fx_stats(&fx, &st), st.backends_online == 2), 2000);
  pump_for(fx.loop, 20);
  fx_stats(&fx, &st);
  assert_int_equal(st.backends, 2);
  fx_finish(&fx);
}

static void test_empty_list(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  claim_rec_t rec;
  (void)state;
  fx_init(&fx, 0, 0);
  start_static(&fx, "");
  claim_rec_init(&rec, &fx);
  assert_int_equal(fx_claim_async(&fx, &rec, 50), 0);
  PUMP_UNTIL(fx.loop, atomic_load(&rec.calls) == 1, 2000);
  assert_int_equal(rec.status, QORB_ENOBACKENDS);
  fx_stats(&fx, &st);
  assert_int_equal(st.backends, 0);
  assert_int_equal(fake_connector_nconns(fx.fc), 0);
  fx_finish(&fx);
}

static void check_bad(const char *list, const char *entry) {
  char err[256];
  qorb_resolver_t *r = NULL;
  int rc;
  memset(err, 0, sizeof(err));
  rc = qorb_static_resolver_new(&r, list, err, sizeof(err));
  if (rc != QORB_EBADADDR)
    fail_msg("static \"%s\": %s, expected QORB_EBADADDR", list,
             qorb_err_name(rc));
  if (strstr(err, entry) == NULL)
    fail_msg("static \"%s\": message \"%s\" does not name \"%s\"", list, err,
             entry);
  assert_null(r);
}

static void test_bad_entry_named(void **state) {
  (void)state;
  check_bad("127.0.0.1:1, bogus:5, 127.0.0.2:1", "bogus:5");
  check_bad("127.0.0.1", "127.0.0.1");
  check_bad("127.0.0.1:1 [::1]:99999", "[::1]:99999");
  check_bad("::1:5432", "::1:5432");
  check_bad("127.0.0.1:1,127.0.0.1:0", "127.0.0.1:0");
  check_bad("localhost:6379", "localhost:6379");
}

static void test_new_arguments(void **state) {
  char err[8];
  qorb_resolver_t *r = NULL;
  (void)state;
  assert_int_equal(qorb_static_resolver_new(NULL, "127.0.0.1:1", NULL, 0),
                   QORB_EINVAL);
  assert_int_equal(qorb_static_resolver_new(&r, NULL, NULL, 0), QORB_EINVAL);
  /* No message buffer: still the code. */
  assert_int_equal(qorb_static_resolver_new(&r, "bad", NULL, 0),
                   QORB_EBADADDR);
  /* A zero length buffer is not written. */
  memset(err, 'x', sizeof(err));
  assert_int_equal(qorb_static_resolver_new(&r, "bad", err, 0), QORB_EBADADDR);
  assert_int_equal(err[0], 'x');
  /* A short one is cut and terminated. */
  memset(err, 'x', sizeof(err));
  assert_int_equal(qorb_static_resolver_new(&r, "bad-entry-name", err, 5),
                   QORB_EBADADDR);
  assert_true(memchr(err, '\0', 5) != NULL);
  assert_int_equal(err[5], 'x');
  /* A resolver no pool owns is freed by its maker. */
  assert_int_equal(qorb_static_resolver_new(&r, "127.0.0.1:1", NULL, 0), 0);
  assert_non_null(r);
  assert_non_null(qorb_resolver_ctx(r));
  qorb_resolver_free(r);
}

static void test_set_arguments(void **state) {
  char err[128];
  qorb_resolver_t *r = NULL, *fake;
  fake_resolver_t *fr = fake_resolver_new();
  (void)state;
  assert_int_equal(qorb_static_resolver_set(NULL, "127.0.0.1:1", NULL, 0),
                   QORB_EINVAL);
  assert_int_equal(qorb_static_resolver_new(&r, "127.0.0.1:1", NULL, 0), 0);
  assert_int_equal(qorb_static_resolver_set(r, NULL, NULL, 0), QORB_EINVAL);
  /* Before any pool owns it, a replacement is simply kept. */
  assert_int_equal(qorb_static_resolver_set(r, "127.0.0.2:1", err, sizeof(err)), 0);
  assert_int_equal(
      qorb_static_resolver_set(r, "127.0.0.2:1,nope", err, sizeof(err)),
      QORB_EBADADDR);
  assert_non_null(strstr(err, "nope"));
  qorb_resolver_free(r);
  /* Not a static resolver. */
  fake = fake_resolver_make(fr);
  assert_non_null(fake);
  assert_int_equal(qorb_static_resolver_set(fake, "127.0.0.1:1", NULL, 0),
                   QORB_EINVAL);
  qorb_resolver_free(fake);
  fake_resolver_free(fr);
}

static void test_set_before_start(void **state) {
  fx_t fx;
  qorb_resolver_t *r = NULL;
  qorb_pool_stats_t st;
  (void)state;
  fx_init(&fx, 0, 0);
  assert_int_equal(qorb_static_resolver_new(&r, "127.0.0.1:1", NULL, 0), 0);
  assert_int_equal(qorb_static_resolver_set(r, "127.0.0.9:9", NULL, 0), 0);
  fx.resolver = r;
  fx_start(&fx);
  PUMP_UNTIL(fx.loop, (fx_stats(&fx, &st), st.backends_online == 1), 2000);
  assert_true(fx_backend(&fx, "127.0.0.9:9", NULL));
  assert_false(fx_backend(&fx, "127.0.0.1:1", NULL));
  fx_finish(&fx);
}

static void test_swap_at_run_time(void **state) {
  fx_t fx;
  qorb_claim_t *c;
  qorb_pool_stats_t st;
  fc_backend_t *old_b, *new_b;
  char err[128];
  int i;
  (void)state;
  fx_init(&fx, 0, 0);
  fx.policy.spares_wanted = 2;
  start_static(&fx, "127.0.0.1:1");
  c = fx_claim(&fx);
  assert_string_equal(qorb_claim_addr(c)->text, "127.0.0.1:1");
  fx_release(c);
  old_b = fake_connector_backend(fx.fc, "127.0.0.1:1");
  PUMP_UNTIL(fx.loop, atomic_load(&old_b->n.connects_ok) == 2, 2000);

  /* A malformed replacement changes nothing. */
  assert_int_equal(
      qorb_static_resolver_set(fx.resolver, "127.0.0.2:1, 300.1.1.1:1", err,
                               sizeof(err)),
      QORB_EBADADDR);
  assert_non_null(strstr(err, "300.1.1.1:1"));
  pump_for(fx.loop, 30);
  assert_true(fx_backend(&fx, "127.0.0.1:1", NULL));
  assert_false(fx_backend(&fx, "127.0.0.2:1", NULL));
  assert_int_equal(atomic_load(&old_b->n.closes), 0);

  /* The swap: the old backend's idle connections close, the new one serves. */
  assert_int_equal(
      qorb_static_resolver_set(fx.resolver, "127.0.0.2:1", NULL, 0), 0);
  PUMP_UNTIL(fx.loop, fake_connector_open(fx.fc, "127.0.0.1:1") == 0, 2000);
  PUMP_UNTIL(fx.loop, !fx_backend(&fx, "127.0.0.1:1", NULL), 2000);
  new_b = fake_connector_backend(fx.fc, "127.0.0.2:1");
  for (i = 0; i < 10; i++) {
    c = fx_claim(&fx);
    assert_string_equal(qorb_claim_addr(c)->text, "127.0.0.2:1");
    assert_ptr_equal(fx_conn(c)->backend, new_b);
    fx_release(c);
  }
  fx_stats(&fx, &st);
  assert_int_equal(st.backends, 1);
  assert_int_equal(atomic_load(&old_b->n.closes),
                   atomic_load(&old_b->n.connects_started));
  fx_finish(&fx);
}

/* A resolver that never reports shows its kind and the backend count; a
 * report shows as given, its times moving on. */
static void test_resolver_in_snapshot(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  qorb_resolver_stats_t rs;
  (void)state;
  fx_init(&fx, 0, 0);
  start_static(&fx, "127.0.0.1:1 127.0.0.2:1");
  PUMP_UNTIL(fx.loop, (fx_stats(&fx, &st), st.backends == 2), 2000);
  assert_string_equal(st.resolver.kind, "static");
  assert_string_equal(st.resolver.name, "");
  assert_int_equal(st.resolver.backends, 2);
  assert_int_equal(st.resolver.next_query_ms, -1);
  assert_int_equal(st.resolver.last_error_age_ms, -1);
  assert_int_equal(st.resolver.size, sizeof(qorb_resolver_stats_t));

  qorb_resolver_stats_init(&rs);
  snprintf(rs.name, sizeof(rs.name), "svc.example:1");
  rs.queries = 7;
  rs.failures = 2;
  rs.last_error = QORB_ETIMEDOUT;
  snprintf(rs.last_error_text, sizeof(rs.last_error_text), "timed out");
  rs.last_error_age_ms = 5;
  rs.backends = 2;
  rs.next_query_ms = 100000;
  assert_int_equal(qorb_resolver_report(fx.resolver, &rs), 0);
  pump_for(fx.loop, 30);
  fx_stats(&fx, &st);
  assert_string_equal(st.resolver.kind, "static"); /* filled in */
  assert_string_equal(st.resolver.name, "svc.example:1");
  assert_int_equal(st.resolver.queries, 7);
  assert_int_equal(st.resolver.failures, 2);
  assert_int_equal(st.resolver.last_error, QORB_ETIMEDOUT);
  assert_string_equal(st.resolver.last_error_text, "timed out");
  assert_true(st.resolver.last_error_age_ms >= 5 + 25);
  assert_true(st.resolver.next_query_ms <= 100000 - 25 &&
              st.resolver.next_query_ms > 0);
  fx_finish(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_list_separators),
      cmocka_unit_test(test_duplicates_ignored),
      cmocka_unit_test(test_empty_list),
      cmocka_unit_test(test_bad_entry_named),
      cmocka_unit_test(test_new_arguments),
      cmocka_unit_test(test_set_arguments),
      cmocka_unit_test(test_set_before_start),
      cmocka_unit_test(test_swap_at_run_time),
      cmocka_unit_test(test_resolver_in_snapshot),
  };
  return cmocka_run_group_tests_name("static", tests, NULL, NULL);
}
