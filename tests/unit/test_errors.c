/* SPDX-License-Identifier: MIT */
/*
 * test_errors.c: the error codes (one list makes the enum, the texts and the
 * names, so each must agree with it), the version calls, and NULL arguments
 * to every public function: a clear code (or NULL from a getter), never a
 * crash.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

typedef struct err_entry {
  int code;
  const char *name;
  const char *text;
} err_entry_t;

static const err_entry_t all_errors[] = {
#define ERR_ENTRY(name, code, text) {QORB_##name, "QORB_" #name, text},
    QORB_ERRNO_MAP(ERR_ENTRY)
#undef ERR_ENTRY
};
#define NERRORS (sizeof(all_errors) / sizeof(all_errors[0]))

static void test_every_code_has_text_and_name(void **state) {
  size_t i, j;
  (void)state;
  for (i = 0; i < NERRORS; i++) {
    const err_entry_t *e = &all_errors[i];
    /* qorb's own range, clear of every errno. */
    assert_true(e->code <= -4000 && e->code >= -4099);
    assert_non_null(qorb_strerror(e->code));
    assert_string_equal(qorb_strerror(e->code), e->text);
    assert_non_null(qorb_err_name(e->code));
    assert_string_equal(qorb_err_name(e->code), e->name);
    for (j = 0; j < i; j++) assert_int_not_equal(e->code, all_errors[j].code);
  }
}

static void test_unknown_codes(void **state) {
  static const int odd[] = {-4099, -4098, -3999, 1, 4000, -2147483647 - 1,
                            2147483647, -99999};
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
    const char *s = qorb_strerror(odd[i]);
    const char *n = qorb_err_name(odd[i]);
    assert_non_null(s);
    assert_non_null(n);
  }
  assert_string_equal(qorb_strerror(-4099), "unknown error");
  /* 0 is success, not an error: still a string. */
  assert_non_null(qorb_strerror(0));
  assert_non_null(qorb_err_name(0));
}

static void test_errno_passthrough(void **state) {
  static const int errs[] = {ECONNREFUSED, ECONNRESET, ETIMEDOUT,
                             EHOSTUNREACH, ENETUNREACH, EPIPE, ENOMEM,
                             EINVAL, EAGAIN, EMFILE};
  size_t i;
  (void)state;
  assert_string_equal(qorb_err_name(-ECONNREFUSED), "ECONNREFUSED");
  assert_string_equal(qorb_err_name(-ETIMEDOUT), "ETIMEDOUT");
  assert_string_equal(qorb_err_name(-ECONNRESET), "ECONNRESET");
  for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
    const char *s = qorb_strerror(-errs[i]);
    assert_non_null(s);
    /* A system error reads like the system's text, not "unknown". */
    assert_string_not_equal(s, "unknown error");
    assert_true(strlen(s) > 0);
    assert_non_null(qorb_err_name(-errs[i]));
    assert_true(strlen(qorb_err_name(-errs[i])) > 0);
  }
}

static void test_version(void **state) {
  char buf[32];
  (void)state;
  assert_int_equal(qorb_version(),
                   (unsigned)(QORB_VERSION_MAJOR * 0x10000 +
                              QORB_VERSION_MINOR * 0x100 +
                              QORB_VERSION_PATCH));
  assert_string_equal(qorb_version_string(), QORB_VERSION_STRING);
  snprintf(buf, sizeof(buf), "%d.%d.%d", QORB_VERSION_MAJOR,
           QORB_VERSION_MINOR, QORB_VERSION_PATCH);
  assert_string_equal(qorb_version_string(), buf);
}

static void test_set_allocator_defaults(void **state) {
  (void)state;
  /* NULL restores libc's functions; nothing has been allocated yet here. */
  assert_int_equal(qorb_set_allocator(NULL, NULL, NULL, NULL), 0);
}

/* ---- NULL arguments ---------------------------------------------------- */

static int dummy_connect(void *ctx, qorb_op_t *op, const qorb_addr_t *addr,
                         void **conn) {
  (void)ctx;
  (void)op;
  (void)addr;
  (void)conn;
  return QORB_ECONNECT;
}
static void dummy_close(void *ctx, void *conn) {
  (void)ctx;
  (void)conn;
}
static int dummy_start(void *ctx, qorb_resolver_t *r) {
  (void)ctx;
  (void)r;
  return 0;
}
static void dummy_stop(void *ctx) { (void)ctx; }

static void dummy_claim_cb(qorb_pool_t *pool, int status, qorb_claim_t *c,
                           void *arg) {
  (void)pool;
  (void)status;
  (void)c;
  (*(int *)arg)++;
}

static void test_null_connector_and_resolver(void **state) {
  qorb_connector_t *c = (qorb_connector_t *)&c; /* must be overwritten */
  qorb_resolver_t *r = NULL;
  qorb_connector_ops_t cops;
  qorb_resolver_ops_t rops;
  qorb_addr_t a;
  int x = 0;
  (void)state;

  memset(&cops, 0, sizeof(cops));
  cops.version = QORB_CONNECTOR_OPS_VERSION;
  cops.name = "dummy";
  cops.connect = dummy_connect;
  cops.close = dummy_close;
  assert_int_equal(qorb_connector_new(NULL, &cops, NULL), QORB_EINVAL);
  assert_int_equal(qorb_connector_new(&c, NULL, NULL), QORB_EINVAL);
  cops.version = QORB_CONNECTOR_OPS_VERSION + 1;
  assert_int_equal(qorb_connector_new(&c, &cops, NULL), QORB_EINVAL);
  cops.version = QORB_CONNECTOR_OPS_VERSION;
  cops.connect = NULL;
  assert_int_equal(qorb_connector_new(&c, &cops, NULL), QORB_EINVAL);
  cops.connect = dummy_connect;
  cops.close = NULL;
  assert_int_equal(qorb_connector_new(&c, &cops, NULL), QORB_EINVAL);
  cops.close = dummy_close;
  assert_int_equal(qorb_connector_new(&c, &cops, &x), 0);
  assert_non_null(c);
  assert_ptr_equal(qorb_connector_ctx(c), &x);
  qorb_connector_free(c);
  assert_null(qorb_connector_ctx(NULL));
  qorb_connector_free(NULL);

  memset(&rops, 0, sizeof(rops));
  rops.version = QORB_RESOLVER_OPS_VERSION;
  rops.name = "dummy";
  rops.start = dummy_start;
  rops.stop = dummy_stop;
  assert_int_equal(qorb_resolver_new(NULL, &rops, NULL), QORB_EINVAL);
  assert_int_equal(qorb_resolver_new(&r, NULL, NULL), QORB_EINVAL);
  rops.version = 99;
  assert_int_equal(qorb_resolver_new(&r, &rops, NULL), QORB_EINVAL);
  rops.version = QORB_RESOLVER_OPS_VERSION;
  rops.start = NULL;
  assert_int_equal(qorb_resolver_new(&r, &rops, NULL), QORB_EINVAL);
  rops.start = dummy_start;
  rops.stop = NULL;
  assert_int_equal(qorb_resolver_new(&r, &rops, NULL), QORB_EINVAL);
  rops.stop = dummy_stop;
  assert_int_equal(qorb_resolver_new(&r, &rops, &x), 0);
  assert_ptr_equal(qorb_resolver_ctx(r), &x);
  /* Not started: no loop, and no update. */
  assert_null(qorb_resolver_loop(r));
  assert_int_equal(qorb_addr_parse("127.0.0.1:1", &a), 0);
  assert_int_equal(qorb_resolver_update(r, &a, 1), QORB_EBUSY);
  assert_int_equal(qorb_resolver_update(NULL, &a, 1), QORB_EINVAL);
  assert_int_equal(qorb_resolver_update(r, NULL, 1), QORB_EINVAL);
  {
    qorb_resolver_stats_t rs, bad;
    qorb_resolver_stats_init(&rs);
    memset(&bad, 0, sizeof(bad));
    assert_int_equal(qorb_resolver_report(r, &rs), QORB_EBUSY);
    assert_int_equal(qorb_resolver_report(NULL, &rs), QORB_EINVAL);
    assert_int_equal(qorb_resolver_report(r, NULL), QORB_EINVAL);
    assert_int_equal(qorb_resolver_report(r, &bad), QORB_EINVAL);
    qorb_resolver_stats_init_(NULL, sizeof(rs)); /* ignored */
  }
  qorb_resolver_free(r);
  qorb_resolver_free(NULL);
  assert_null(qorb_resolver_ctx(NULL));
  assert_null(qorb_resolver_loop(NULL));

  /* The op calls are for connectors; a NULL op must not crash either. */
  qorb_op_done(NULL, 0);
  qorb_op_set_error(NULL, "%s", "nothing");
  assert_null(qorb_op_loop(NULL));
  assert_null(qorb_op_addr(NULL));
  assert_int_equal(x, 0);
}

static void test_null_pool_calls(void **state) {
  qorb_claim_t *claim = NULL;
  qorb_pool_stats_t st;
  qorb_policy_t pol;
  char err[128];
  int calls = 0;
  uint64_t id = 0;
  (void)state;

  assert_int_equal(qorb_pool_try_claim(NULL, &claim), QORB_EINVAL);
  assert_int_equal(qorb_pool_claim_wait(NULL, 10, &claim), QORB_EINVAL);
  assert_int_equal(qorb_pool_claim(NULL, 10, dummy_claim_cb, &calls, &id),
                   QORB_EINVAL);
  assert_int_equal(qorb_pool_claim_cancel(NULL, 1), QORB_EINVAL);
  assert_int_equal(qorb_release(NULL), QORB_EINVAL);
  assert_int_equal(qorb_release_broken(NULL), QORB_EINVAL);
  assert_null(qorb_claim_conn(NULL));
  assert_null(qorb_claim_addr(NULL));
  assert_int_equal(qorb_pool_close(NULL, NULL, NULL), QORB_EINVAL);
  assert_null(qorb_pool_loop(NULL));
  assert_null(qorb_pool_name(NULL));
  qorb_pool_stats_init(&st);
  assert_int_equal(qorb_pool_stats(NULL, &st, NULL, 0, NULL), QORB_EINVAL);
  qorb_pool_stats_init_(NULL, sizeof(st), sizeof(qorb_backend_stats_t));
  qorb_policy_init_(NULL, sizeof(pol));
  assert_int_equal(qorb_policy_validate(NULL, err, sizeof(err)), QORB_EINVAL);
  assert_int_equal(qorb_policy_validate(NULL, NULL, 0), QORB_EINVAL);
  assert_int_equal(calls, 0);
}

static void test_null_pool_new(void **state) {
  fx_t fx;
  qorb_pool_t *pool = NULL;
  qorb_connector_t *c;
  qorb_resolver_t *r;
  (void)state;
  fx_init(&fx, 0, 0);
  c = fake_connector_make(fx.fc);
  r = fake_resolver_make(fx.fr);
  assert_int_equal(qorb_pool_new(NULL, fx.loop, NULL, r, c, NULL, 0),
                   QORB_EINVAL);
  assert_int_equal(qorb_pool_new(&pool, fx.loop, NULL, NULL, c, NULL, 0),
                   QORB_EINVAL);
  assert_int_equal(qorb_pool_new(&pool, fx.loop, NULL, r, NULL, NULL, 0),
                   QORB_EINVAL);
  assert_null(pool);
  /* Failed calls leave both with us, untouched: nothing started. */
  assert_int_equal(atomic_load(&fx.fr->starts), 0);
  assert_int_equal(fake_connector_destroyed(fx.fc), 0);
  qorb_resolver_free(r);
  qorb_connector_free(c);
  assert_int_equal(atomic_load(&fx.fr->destroys), 1);
  assert_int_equal(fake_connector_destroyed(fx.fc), 1);
  fake_connector_verify(fx.fc, 1);
  assert_int_equal(loop_active(fx.loop), 0);
  ev_loop_destroy(fx.loop);
  fake_connector_free(fx.fc);
  fake_resolver_free(fx.fr);
}

/* NULL out-pointers and callbacks on a live pool. */
static void test_null_args_live_pool(void **state) {
  fx_t fx;
  qorb_pool_stats_t st;
  int calls = 0;
  (void)state;
  fx_init(&fx, 0, 0);
  fx_start(&fx);
  fx_set(&fx, "127.0.0.1:1");
  assert_int_equal(qorb_pool_try_claim(fx.pool, NULL), QORB_EINVAL);
  assert_int_equal(qorb_pool_claim(fx.pool, 10, NULL, &calls, NULL),
                   QORB_EINVAL);
  assert_int_equal(qorb_pool_stats(fx.pool, NULL, NULL, 0, NULL), QORB_EINVAL);
  /* A stats struct that qorb_pool_stats_init() did not set. */
  memset(&st, 0, sizeof(st));
  assert_int_equal(qorb_pool_stats(fx.pool, &st, NULL, 0, NULL), QORB_EINVAL);
  /* A claim id that was never issued is not queued. */
  assert_true(qorb_pool_claim_cancel(fx.pool, 987654321u) < 0);
  assert_ptr_equal(qorb_pool_loop(fx.pool), fx.loop);
  assert_string_equal(qorb_pool_name(fx.pool), "test");
  pump_for(fx.loop, 20);
  assert_int_equal(calls, 0);
  fx_finish(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_code_has_text_and_name),
      cmocka_unit_test(test_unknown_codes),
      cmocka_unit_test(test_errno_passthrough),
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_set_allocator_defaults),
      cmocka_unit_test(test_null_connector_and_resolver),
      cmocka_unit_test(test_null_pool_calls),
      cmocka_unit_test(test_null_pool_new),
      cmocka_unit_test(test_null_args_live_pool),
  };
  return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
