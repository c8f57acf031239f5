/* SPDX-License-Identifier: MIT */
/*
 * test_pg_session.c: nothing crosses from one claimant to the next. Each
 * test runs on a pool of exactly one connection, so the second claim gets
 * the same server session (same backend pid, checked) that the first one
 * dirtied: settings, SET ROLE, SET SESSION AUTHORIZATION, a temporary
 * table, prepared statements (SQL and protocol level), LISTEN with a
 * notification already queued, an advisory lock, an open transaction, a
 * failed transaction, and libpq's client-side settings. Then the
 * configurable parts: reset none (state is kept, the release costs no
 * round trip, an open transaction is still rolled back), a reset of the
 * user's own, acquire SQL, failing reset and acquire SQL, and the states
 * that cannot be cleaned (query in flight, COPY, pipeline mode), which
 * close the connection.
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

static void one_slot(qorb_policy_t *p) {
  p->max_slots = 1;
  p->spares_wanted = 1;
  p->health_interval_ms = 0; /* no check between the claims */
}

typedef struct fx {
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  PGconn *pg;
  int pid;
} fx_t;

static void fx_open(fx_t *f, const qorb_pg_options_t *o) {
  memset(f, 0, sizeof(*f));
  f->pool = pgt_pool(PGT_A, o, one_slot);
}

static PGconn *fx_claim(fx_t *f) {
  assert_null(f->cl);
  assert_int_equal(qorb_pool_claim_wait(f->pool, 10000, &f->cl), 0);
  f->pg = qorb_pg_conn(f->cl);
  assert_non_null(f->pg);
  assert_int_equal(PQstatus(f->pg), CONNECTION_OK);
  return f->pg;
}

static void fx_release(fx_t *f) {
  assert_int_equal(qorb_release(f->cl), 0);
  f->cl = NULL;
  f->pg = NULL;
}

/* Claim, and assert it is the very session of the previous claim. */
static PGconn *fx_claim_same(fx_t *f, int pid) {
  fx_claim(f);
  assert_int_equal(PQbackendPID(f->pg), pid);
  return f->pg;
}

static void fx_close(fx_t *f) {
  if (f->cl) fx_release(f);
  itest_close(f->pool);
  f->pool = NULL;
}

static const char *val(PGconn *pg, const char *sql) {
  static char buf[512];
  if (pgt_value(pg, sql, buf, sizeof(buf)) != 0)
    fail_msg("%s: %s", sql, buf);
  return buf;
}

static void run(PGconn *pg, const char *sql) {
  char buf[512];
  if (pgt_value(pg, sql, buf, sizeof(buf)) != 0) fail_msg("%s: %s", sql, buf);
}

/* The default reset: every kind of session state, one claim after another
   on the same session. */
static void test_discard_all_clears_everything(void **state) {
  fx_t f;
  PGconn *pg, *admin;
  PGresult *res;
  PGnotify *n;
  int pid;
  (void)state;
  fx_open(&f, NULL);
  pg = fx_claim(&f);
  pid = PQbackendPID(pg);
  assert_string_equal(val(pg, "SHOW work_mem"), "4MB");

  /* 1. settings */
  run(pg, "SET work_mem = '7MB'");
  run(pg, "SET search_path = pg_catalog");
  run(pg, "SET statement_timeout = '1s'");
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_string_equal(val(pg, "SHOW work_mem"), "4MB");
  assert_string_equal(val(pg, "SHOW search_path"), "\"$user\", public");
  assert_string_equal(val(pg, "SHOW statement_timeout"), "0");
  fx_release(&f);

  /* 2. SET ROLE */
  pg = fx_claim_same(&f, pid);
  run(pg, "SET ROLE qorb_other");
  assert_string_equal(val(pg, "SELECT current_user"), "qorb_other");
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_string_equal(val(pg, "SELECT current_user"), "postgres");
  fx_release(&f);

  /* 3. SET SESSION AUTHORIZATION */
  pg = fx_claim_same(&f, pid);
  run(pg, "SET SESSION AUTHORIZATION qorb_pw");
  assert_string_equal(val(pg, "SELECT session_user"), "qorb_pw");
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_string_equal(val(pg, "SELECT session_user"), "postgres");
  assert_string_equal(val(pg, "SELECT current_user"), "postgres");
  fx_release(&f);

  /* 4. temporary table */
  pg = fx_claim_same(&f, pid);
  run(pg, "CREATE TEMP TABLE qorb_tmp (x int)");
  run(pg, "INSERT INTO qorb_tmp VALUES (1)");
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_string_equal(val(pg, "SELECT to_regclass('qorb_tmp') IS NULL"), "t");
  run(pg, "CREATE TEMP TABLE qorb_tmp (x int)"); /* the name is free */
  fx_release(&f);

  /* 5. prepared statements, SQL and protocol level */
  pg = fx_claim_same(&f, pid);
  run(pg, "PREPARE qorb_ps AS SELECT 1");
  res = PQprepare(pg, "qorb_ps2", "SELECT $1::int", 1, NULL);
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
  PQclear(res);
  assert_string_equal(val(pg, "SELECT count(*) FROM pg_prepared_statements"),
                      "2");
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_string_equal(val(pg, "SELECT count(*) FROM pg_prepared_statements"),
                      "0");
  res = PQprepare(pg, "qorb_ps2", "SELECT $1::int", 1, NULL);
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK); /* name free */
  PQclear(res);
  fx_release(&f);

  /* 6. LISTEN, with a notification already queued in libpq */
  pg = fx_claim_same(&f, pid);
  run(pg, "LISTEN qorb_ch");
  admin = pgt_admin(PGT_A);
  run(admin, "NOTIFY qorb_ch, 'one'");
  /* The notification arrives with the next exchange; leave it unread. */
  ITEST_WAIT((PQconsumeInput(pg), pgt_exec(pg, "SELECT 1"),
              (n = PQnotifies(pg)) != NULL),
             5000);
  assert_non_null(n);
  PQfreemem(n);
  run(admin, "NOTIFY qorb_ch, 'two'");
  run(pg, "SELECT pg_sleep(0.05)"); /* 'two' now sits in libpq's queue */
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_null(PQnotifies(pg)); /* the queued one was dropped */
  assert_string_equal(val(pg, "SELECT count(*) FROM pg_listening_channels()"),
                      "0");
  run(admin, "NOTIFY qorb_ch, 'three'");
  run(pg, "SELECT pg_sleep(0.05)");
  PQconsumeInput(pg);
  assert_null(PQnotifies(pg)); /* not listening any more */
  fx_release(&f);

  /* 7. advisory locks, session level */
  pg = fx_claim_same(&f, pid);
  run(pg, "SELECT pg_advisory_lock(4242)");
  assert_string_equal(val(admin, "SELECT pg_try_advisory_lock(4242)"), "f");
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_string_equal(val(pg, "SELECT count(*) FROM pg_locks WHERE "
                              "locktype = 'advisory' AND pid = "
                              "pg_backend_pid()"),
                      "0");
  assert_string_equal(val(admin, "SELECT pg_try_advisory_lock(4242)"), "t");
  run(admin, "SELECT pg_advisory_unlock(4242)");
  fx_release(&f);

  /* 8. a transaction left open, with a write in it */
  pg = fx_claim_same(&f, pid);
  run(pg, "BEGIN");
  run(pg, "INSERT INTO qorb_t VALUES (4242)");
  run(pg, "SET LOCAL work_mem = '9MB'");
  assert_int_equal(PQtransactionStatus(pg), PQTRANS_INTRANS);
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
  assert_string_equal(val(pg, "SELECT count(*) FROM qorb_t WHERE id = 4242"),
                      "0");
  assert_string_equal(val(admin, "SELECT count(*) FROM qorb_t WHERE id = 4242"),
                      "0");
  fx_release(&f);

  /* 9. a failed transaction */
  pg = fx_claim_same(&f, pid);
  run(pg, "BEGIN");
  assert_int_not_equal(pgt_exec(pg, "SELECT 1/0"), 0);
  assert_int_equal(PQtransactionStatus(pg), PQTRANS_INERROR);
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
  assert_string_equal(val(pg, "SELECT 40 + 2"), "42");
  fx_release(&f);

  /* 10. all of it at once, inside a transaction that failed */
  pg = fx_claim_same(&f, pid);
  run(pg, "SET work_mem = '7MB'");
  run(pg, "SET ROLE qorb_other");
  run(pg, "PREPARE qorb_ps AS SELECT 1");
  run(pg, "LISTEN qorb_ch");
  run(pg, "SELECT pg_advisory_lock(4243)");
  run(pg, "BEGIN");
  run(pg, "CREATE TEMP TABLE qorb_tmp2 (x int)");
  assert_int_not_equal(pgt_exec(pg, "SELECT no_such_column"), 0);
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_string_equal(
      val(pg, "SELECT current_setting('work_mem') || current_user || "
              "(SELECT count(*) FROM pg_prepared_statements) || "
              "(SELECT count(*) FROM pg_listening_channels()) || "
              "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
              "AND pid = pg_backend_pid()) || "
              "(to_regclass('qorb_tmp2') IS NULL)"),
      "4MBpostgres000true");
  fx_release(&f);

  PQfinish(admin);
  fx_close(&f);
}

static void my_notice_processor(void *arg, const char *msg) {
  (void)arg;
  (void)msg;
}

/* libpq's client-side settings go back to the defaults at release. */
static void test_client_settings_restored(void **state) {
  fx_t f;
  PGconn *pg;
  int pid;
  (void)state;
  fx_open(&f, NULL);
  pg = fx_claim(&f);
  pid = PQbackendPID(pg);
  assert_int_equal(PQsetnonblocking(pg, 1), 0);
  PQsetNoticeProcessor(pg, my_notice_processor, &f);
  PQsetErrorVerbosity(pg, PQERRORS_VERBOSE);
  PQsetErrorContextVisibility(pg, PQSHOW_CONTEXT_ALWAYS);
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_int_equal(PQisnonblocking(pg), 0);
  assert_ptr_not_equal(PQsetNoticeProcessor(pg, NULL, NULL),
                       my_notice_processor);
  assert_int_equal(PQsetErrorVerbosity(pg, PQERRORS_DEFAULT),
                   PQERRORS_DEFAULT);
  assert_int_equal(PQsetErrorContextVisibility(pg, PQSHOW_CONTEXT_ERRORS),
                   PQSHOW_CONTEXT_ERRORS);
  fx_release(&f);
  fx_close(&f);
}

/* The last statement the server saw on session `pid`. */
static void last_query(int pid, char *buf, size_t len) {
  char sql[128];
  PGconn *admin = pgt_admin(PGT_A);
  snprintf(sql, sizeof(sql),
           "SELECT query FROM pg_stat_activity WHERE pid = %d", pid);
  assert_int_equal(pgt_value(admin, sql, buf, len), 0);
  PQfinish(admin);
}

/* With the default reset, the server sees DISCARD ALL after each release. */
static void test_default_reset_runs(void **state) {
  fx_t f;
  PGconn *pg;
  char q[256];
  int pid;
  (void)state;
  fx_open(&f, NULL);
  pg = fx_claim(&f);
  pid = PQbackendPID(pg);
  run(pg, "SELECT 42");
  fx_release(&f);
  fx_claim_same(&f, pid);
  last_query(pid, q, sizeof(q));
  assert_string_equal(q, "DISCARD ALL");
  fx_close(&f);
}

/* Reset none: session state stays (the documented contract), a clean
   release costs no round trip, and an open transaction is still rolled
   back. */
static void test_reset_none(void **state) {
  qorb_pg_options_t o;
  fx_t f;
  PGconn *pg;
  char q[256];
  int pid;
  (void)state;
  pgt_options(&o);
  o.reset_sql = NULL;
  fx_open(&f, &o);
  pg = fx_claim(&f);
  pid = PQbackendPID(pg);
  run(pg, "SELECT 42");
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  last_query(pid, q, sizeof(q));
  assert_string_equal(q, "SELECT 42"); /* nothing ran in between */

  run(pg, "SET work_mem = '7MB'");
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_string_equal(val(pg, "SHOW work_mem"), "7MB"); /* kept: reset none */

  run(pg, "BEGIN");
  run(pg, "INSERT INTO qorb_t VALUES (4244)");
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  last_query(pid, q, sizeof(q));
  assert_string_equal(q, "ROLLBACK"); /* and nothing after it */
  assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
  assert_string_equal(val(pg, "SELECT count(*) FROM qorb_t WHERE id = 4244"),
                      "0");

  run(pg, "BEGIN");
  assert_int_not_equal(pgt_exec(pg, "SELECT 1/0"), 0);
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
  assert_string_equal(val(pg, "SELECT 1"), "1");
  fx_close(&f);
}

/* A reset of the user's own runs instead of DISCARD ALL. */
static void test_custom_reset(void **state) {
  qorb_pg_options_t o;
  fx_t f;
  PGconn *pg;
  int pid;
  (void)state;
  pgt_options(&o);
  o.reset_sql = "RESET ALL; DEALLOCATE ALL";
  fx_open(&f, &o);
  pg = fx_claim(&f);
  pid = PQbackendPID(pg);
  run(pg, "SET work_mem = '7MB'");
  run(pg, "PREPARE qorb_ps AS SELECT 1");
  run(pg, "CREATE TEMP TABLE qorb_keep (x int)");
  run(pg, "BEGIN");
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_string_equal(val(pg, "SHOW work_mem"), "4MB");
  assert_string_equal(val(pg, "SELECT count(*) FROM pg_prepared_statements"),
                      "0");
  /* not part of this reset: the temporary table stays */
  assert_string_equal(val(pg, "SELECT to_regclass('qorb_keep') IS NULL"), "f");
  fx_close(&f);
}

/* acquire SQL runs before every claim, after the reset. */
static void test_acquire_sql(void **state) {
  qorb_pg_options_t o;
  fx_t f;
  PGconn *pg;
  int pid, i;
  (void)state;
  pgt_options(&o);
  o.acquire_sql = "SET application_name = 'qorb_acquired'; "
                  "SET statement_timeout = '30s'";
  fx_open(&f, &o);
  pg = fx_claim(&f);
  pid = PQbackendPID(pg);
  for (i = 0; i < 3; i++) {
    assert_string_equal(val(pg, "SHOW application_name"), "qorb_acquired");
    assert_string_equal(val(pg, "SHOW statement_timeout"), "30s");
    run(pg, "SET application_name = 'changed'");
    run(pg, "RESET statement_timeout");
    fx_release(&f);
    pg = fx_claim_same(&f, pid);
  }
  fx_close(&f);

  /* With reset none too: acquire alone puts it back. */
  o.reset_sql = NULL;
  fx_open(&f, &o);
  pg = fx_claim(&f);
  pid = PQbackendPID(pg);
  run(pg, "SET application_name = 'changed'");
  fx_release(&f);
  pg = fx_claim_same(&f, pid);
  assert_string_equal(val(pg, "SHOW application_name"), "qorb_acquired");
  fx_close(&f);
}

/* Failing acquire SQL: no claim is ever handed out, the claim fails with a
   pool error, and the server's text is in the backend's last_error. */
static void test_acquire_sql_fails(void **state) {
  qorb_pg_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl = NULL;
  char e[256];
  uint64_t t0;
  int rc;
  (void)state;
  pgt_options(&o);
  o.acquire_sql = "SELECT * FROM qorb_no_such_table";
  pool = pgt_pool(PGT_A, &o, one_slot);
  ITEST_WAIT(itest_failures(pool, PGT_A) >= 1, 5000);
  t0 = itest_now_ms();
  rc = qorb_pool_claim_wait(pool, 8000, &cl);
  assert_int_equal(rc, QORB_ENOTONLINE);
  assert_null(cl);
  assert_true(itest_now_ms() - t0 < 4000);
  itest_last_error(pool, PGT_A, e, sizeof(e));
  assert_non_null(strstr(e, "qorb_no_such_table"));
  assert_non_null(strstr(e, "does not exist"));
  itest_close(pool);
}

/* Failing reset SQL: that connection is closed, never handed out dirty;
   the next claim gets a fresh session. */
static void test_reset_sql_fails(void **state) {
  qorb_pg_options_t o;
  fx_t f;
  PGconn *pg;
  char e[256];
  int pid;
  (void)state;
  pgt_options(&o);
  o.reset_sql = "SELECT * FROM qorb_no_such_table";
  fx_open(&f, &o);
  pg = fx_claim(&f);
  pid = PQbackendPID(pg);
  run(pg, "SET work_mem = '7MB'");
  fx_release(&f);
  pg = fx_claim(&f);
  assert_int_not_equal(PQbackendPID(pg), pid);
  assert_string_equal(val(pg, "SHOW work_mem"), "4MB");
  itest_last_error(f.pool, PGT_A, e, sizeof(e));
  assert_non_null(strstr(e, "reset: "));
  assert_non_null(strstr(e, "qorb_no_such_table"));
  fx_close(&f);
}

/* States that cannot be cleaned close the connection. */
static void test_unclean_states_close(void **state) {
  fx_t f;
  PGconn *pg;
  PGresult *res;
  int pid;
  (void)state;
  fx_open(&f, NULL);

  /* a query in flight */
  pg = fx_claim(&f);
  pid = PQbackendPID(pg);
  assert_int_equal(PQsendQuery(pg, "SELECT pg_sleep(0.2)"), 1);
  fx_release(&f);
  pg = fx_claim(&f);
  assert_int_not_equal(PQbackendPID(pg), pid);
  assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
  assert_string_equal(val(pg, "SELECT 1"), "1");

  /* COPY IN, abandoned */
  pid = PQbackendPID(pg);
  res = PQexec(pg, "COPY qorb_t FROM STDIN");
  assert_int_equal(PQresultStatus(res), PGRES_COPY_IN);
  PQclear(res);
  fx_release(&f);
  pg = fx_claim(&f);
  assert_int_not_equal(PQbackendPID(pg), pid);
  assert_string_equal(val(pg, "SELECT 1"), "1");

  /* COPY OUT, half read */
  pid = PQbackendPID(pg);
  res = PQexec(pg, "COPY (SELECT generate_series(1, 1000)) TO STDOUT");
  assert_int_equal(PQresultStatus(res), PGRES_COPY_OUT);
  PQclear(res);
  fx_release(&f);
  pg = fx_claim(&f);
  assert_int_not_equal(PQbackendPID(pg), pid);

  /* pipeline mode */
  pid = PQbackendPID(pg);
  assert_int_equal(PQenterPipelineMode(pg), 1);
  fx_release(&f);
  pg = fx_claim(&f);
  assert_int_not_equal(PQbackendPID(pg), pid);
  assert_int_equal(PQpipelineStatus(pg), PQ_PIPELINE_OFF);
  assert_string_equal(val(pg, "SELECT 1"), "1");

  /* results of a query read only up to the last one (not the final NULL) */
  pid = PQbackendPID(pg);
  assert_int_equal(PQsendQuery(pg, "SELECT 1"), 1);
  res = PQgetResult(pg);
  assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
  PQclear(res);
  fx_release(&f);
  pg = fx_claim(&f);
  assert_int_not_equal(PQbackendPID(pg), pid);
  assert_string_equal(val(pg, "SELECT 1"), "1");

  fx_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_discard_all_clears_everything),
      cmocka_unit_test(test_client_settings_restored),
      cmocka_unit_test(test_default_reset_runs),
      cmocka_unit_test(test_reset_none),
      cmocka_unit_test(test_custom_reset),
      cmocka_unit_test(test_acquire_sql),
      cmocka_unit_test(test_acquire_sql_fails),
      cmocka_unit_test(test_reset_sql_fails),
      cmocka_unit_test(test_unclean_states_close),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
