/* SPDX-License-Identifier: MIT */
/*
 * test_pg_hooks.c: the pool's lifecycle hooks against a real PostgreSQL,
 * with qorb_pg_hook_exec() running their SQL on the pool loop:
 * after_connect prepares a statement once per connection and every
 * claimant can EXECUTE it; after_connect SQL that fails keeps the backend
 * from being used and says why; before_acquire rejects one server session
 * (by its pid), which is closed and never handed out; after_release
 * rejects a session its claimant poisoned; a before_acquire that takes
 * longer than hook_timeout_ms closes the connection and claims are served
 * once the hook answers in time again.
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg_testlib.h"

/* What the hooks of the current test do; the pool loop reads it. */
static struct {
  _Atomic unsigned long connects, acquires, releases;
  _Atomic int banned_pid;   /* before_acquire rejects this session */
  _Atomic int slow;         /* before_acquire sleeps past its bound */
  const char *connect_sql;  /* after_connect's SQL */
} H;

/* Keeps what after_connect prepares: no DEALLOCATE, no RESET ALL. */
#define KEEPING_RESET \
  "CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP"

static int after_connect(void *arg, qorb_op_t *op, void *conn) {
  (void)arg;
  atomic_fetch_add(&H.connects, 1);
  return qorb_pg_hook_exec(op, conn, H.connect_sql, NULL, NULL);
}

static int judge_pid(void *arg, qorb_op_t *op, const PGresult *res) {
  int pid = atoi(PQgetvalue(res, 0, 0));
  (void)arg;
  if (pid != atomic_load(&H.banned_pid)) return 0;
  qorb_op_set_error(op, "session %d is banned", pid);
  return QORB_EREJECTED;
}

static int before_acquire(void *arg, qorb_op_t *op, void *conn) {
  (void)arg;
  atomic_fetch_add(&H.acquires, 1);
  /* The hook sees the connection idle, between claimants. */
  assert_int_equal(PQtransactionStatus(qorb_pg_hook_conn(conn)), PQTRANS_IDLE);
  return qorb_pg_hook_exec(op, conn,
                           atomic_load(&H.slow)
                               ? "SELECT pg_backend_pid() FROM pg_sleep(3)"
                               : "SELECT pg_backend_pid()",
                           judge_pid, NULL);
}

static int judge_poison(void *arg, qorb_op_t *op, const PGresult *res) {
  (void)arg;
  if (PQgetisnull(res, 0, 0) || strcmp(PQgetvalue(res, 0, 0), "yes") != 0)
    return 0;
  qorb_op_set_error(op, "claimant poisoned the session");
  return QORB_EREJECTED;
}

static int after_release(void *arg, qorb_op_t *op, void *conn) {
  (void)arg;
  atomic_fetch_add(&H.releases, 1);
  return qorb_pg_hook_exec(op, conn,
                           "SELECT current_setting('app.poisoned', true)",
                           judge_poison, NULL);
}

static void hooked(qorb_policy_t *p) {
  p->max_slots = 2;
  p->spares_wanted = 2;
  p->health_interval_ms = 0;
  p->after_connect = after_connect;
  p->before_acquire = before_acquire;
  p->after_release = after_release;
  p->hook_timeout_ms = 400;
}

static qorb_pool_t *open_pool(const char *connect_sql) {
  qorb_pg_options_t o;
  memset(&H, 0, sizeof(H));
  H.connect_sql = connect_sql;
  pgt_options(&o);
  o.reset_sql = KEEPING_RESET;
  return pgt_pool(PGT_A, &o, hooked);
}

static int claim_pid(qorb_pool_t *pool, qorb_claim_t **cl) {
  char buf[32];
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, cl), 0);
  assert_int_equal(pgt_value(qorb_pg_conn(*cl), "SELECT pg_backend_pid()",
                             buf, sizeof(buf)),
                   0);
  return atoi(buf);
}

/* The statement after_connect prepared is there for every claimant; the
   hook ran once per connection and before_acquire before each hand-out. */
static void test_after_connect_prepares_once(void **state) {
  qorb_pool_t *pool;
  int i;
  (void)state;
  pool = open_pool("PREPARE twice(int) AS SELECT $1 * 2");
  for (i = 0; i < 20; i++) {
    qorb_claim_t *cl;
    char buf[32];
    assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
    assert_int_equal(pgt_value(qorb_pg_conn(cl), "EXECUTE twice(21)", buf,
                               sizeof(buf)),
                     0);
    assert_string_equal(buf, "42");
    assert_int_equal(qorb_release(cl), 0);
  }
  ITEST_WAIT(itest_total_idle(pool) == 2, 10000);
  assert_int_equal(atomic_load(&H.connects), itest_connects(pool, PGT_A));
  assert_int_equal(atomic_load(&H.releases), 20);
  assert_int_equal(atomic_load(&H.acquires), 20 + atomic_load(&H.connects));
  itest_close(pool);
}

/* after_connect SQL that cannot succeed: no connection is handed out, and
   the backend's last error names the hook and quotes the server. */
static void test_after_connect_sql_fails(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl = NULL;
  (void)state;
  pool = open_pool("PREPARE bad AS SELECT * FROM no_such_table_qorb");
  assert_int_not_equal(qorb_pool_claim_wait(pool, 1500, &cl), 0);
  assert_null(cl);
  assert_true(atomic_load(&H.connects) >= 1);
  assert_int_equal(atomic_load(&H.acquires), 0);
  itest_wait_error(pool, PGT_A, "after_connect hook", "no_such_table_qorb", 1);
  itest_close(pool);
}

/* before_acquire rejects one server session: it is closed (gone from the
   server) and every later claim gets another session. */
static void test_before_acquire_rejects_a_session(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  int banned, i;
  char sql[96];
  (void)state;
  pool = open_pool("SELECT 1");
  banned = claim_pid(pool, &cl);
  atomic_store(&H.banned_pid, banned);
  assert_int_equal(qorb_release(cl), 0);
  for (i = 0; i < 10; i++) {
    assert_int_not_equal(claim_pid(pool, &cl), banned);
    assert_int_equal(qorb_release(cl), 0);
  }
  snprintf(sql, sizeof(sql),
           "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", banned);
  ITEST_WAIT(pgt_admin_long(PGT_A, sql) == 0, 10000);
  itest_close(pool);
}

/* after_release rejects the session its claimant poisoned. */
static void test_after_release_rejects_poisoned(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  int poisoned, i;
  (void)state;
  pool = open_pool("SELECT 1");
  poisoned = claim_pid(pool, &cl);
  assert_int_equal(pgt_exec(qorb_pg_conn(cl), "SET app.poisoned = 'yes'"), 0);
  assert_int_equal(qorb_release(cl), 0);
  for (i = 0; i < 10; i++) {
    assert_int_not_equal(claim_pid(pool, &cl), poisoned);
    assert_int_equal(qorb_release(cl), 0);
  }
  itest_wait_error(pool, PGT_A, "after_release hook", "poisoned", 1);
  itest_close(pool);
}

/* A before_acquire slower than hook_timeout_ms (400 ms) closes each
   connection it runs on: nothing is handed out. Once it is quick again,
   claims are served. */
static void test_before_acquire_timeout(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl = NULL;
  (void)state;
  pool = open_pool("SELECT 1");
  ITEST_WAIT(itest_total_idle(pool) == 2, 10000);
  /* Push both through before_acquire again, slowly. */
  atomic_store(&H.slow, 1);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_int_equal(qorb_release(cl), 0);
  itest_wait_error(pool, PGT_A, "before_acquire", "timed out", 10000);
  atomic_store(&H.slow, 0);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_int_equal(pgt_exec(qorb_pg_conn(cl), "SELECT 1"), 0);
  assert_int_equal(qorb_release(cl), 0);
  itest_close(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_after_connect_prepares_once),
      cmocka_unit_test(test_after_connect_sql_fails),
      cmocka_unit_test(test_before_acquire_rejects_a_session),
      cmocka_unit_test(test_after_release_rejects_poisoned),
      cmocka_unit_test(test_before_acquire_timeout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
