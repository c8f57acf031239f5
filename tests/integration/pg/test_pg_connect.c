/* SPDX-License-Identifier: MIT */
/*
 * test_pg_connect.c: what a connection looks like once connected. The pool
 * supplies the address (the template's hostaddr and port are replaced, its
 * host is kept for TLS), TCP keepalives and tcp_user_timeout are on by
 * default and the template can override them, and a claimed PGconn is in
 * blocking mode with nothing in flight. TLS: with sslmode=verify-full the
 * certificate is checked against the template's host, not the address the
 * pool connects to; and a connect during which libpq changes its socket
 * (TLS refused by the server, retried without) completes on the loop.
 * qorb_pg_conn() gives NULL, not a misread pointer, for a claim from a
 * pool whose connector is not qorb-pg.
 */
#define _GNU_SOURCE

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "pg_testlib.h"

static int sockopt(PGconn *pg, int level, int name) {
  int v = -1;
  socklen_t len = sizeof(v);
  assert_int_equal(getsockopt(PQsocket(pg), level, name, &v, &len), 0);
  return v;
}

static void test_address_from_pool(void **state) {
  qorb_pg_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  PGconn *pg;
  char buf[128];
  (void)state;
  qorb_pg_options_init(&o);
  /* Wrong hostaddr and port on purpose: the pool's address wins. */
  o.conninfo = "host=localhost hostaddr=10.255.255.1 port=1 user=postgres "
               "dbname=postgres application_name=qorb_connect";
  pool = pgt_pool(PGT_A, &o, NULL);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  pg = qorb_pg_conn(cl);
  assert_non_null(pg);
  assert_int_equal(PQstatus(pg), CONNECTION_OK);
  assert_string_equal(PQhost(pg), "localhost"); /* kept for TLS */
  assert_int_equal(atoi(PQport(pg)), pgt_addrs()->a.port);
  assert_int_equal(pgt_value(pg, "SELECT host(inet_server_addr())", buf,
                             sizeof(buf)), 0);
  assert_string_equal(buf, pgt_addrs()->a.host);
  assert_int_equal(pgt_value(pg, "SELECT inet_server_port()", buf,
                             sizeof(buf)), 0);
  assert_int_equal(atoi(buf), pgt_addrs()->a.port);
  assert_string_equal(qorb_claim_addr(cl)->text, PGT_A);
  /* Handed out idle, in blocking mode, nothing in flight. */
  assert_int_equal(PQisnonblocking(pg), 0);
  assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
  assert_int_equal(PQisBusy(pg), 0);
  assert_int_equal(qorb_release(cl), 0);
  itest_close(pool);
}

static void test_no_host_in_template(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  (void)state;
  /* No host: named by the backend's address (PGHOST cannot interfere). */
  setenv("PGHOST", "/nonexistent,elsewhere", 1);
  pool = pgt_pool(PGT_B, NULL, NULL);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_string_equal(PQhost(qorb_pg_conn(cl)), pgt_addrs()->b.host);
  assert_int_equal(pgt_exec(qorb_pg_conn(cl), "SELECT 1"), 0);
  assert_int_equal(qorb_release(cl), 0);
  itest_close(pool);
  unsetenv("PGHOST");
}

static void test_keepalive_defaults(void **state) {
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  PGconn *pg;
  (void)state;
  pool = pgt_pool(PGT_A, NULL, NULL);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  pg = qorb_pg_conn(cl);
  assert_int_equal(sockopt(pg, SOL_SOCKET, SO_KEEPALIVE), 1);
  assert_int_equal(sockopt(pg, IPPROTO_TCP, TCP_KEEPIDLE), 5);
  assert_int_equal(sockopt(pg, IPPROTO_TCP, TCP_KEEPINTVL), 2);
  assert_int_equal(sockopt(pg, IPPROTO_TCP, TCP_KEEPCNT), 3);
  assert_int_equal(sockopt(pg, IPPROTO_TCP, TCP_USER_TIMEOUT), 10000);
  assert_int_equal(qorb_release(cl), 0);
  itest_close(pool);
}

static void test_keepalive_overrides(void **state) {
  qorb_pg_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  PGconn *pg;
  (void)state;
  /* The template's keywords win over the option fields. */
  pgt_options(&o);
  o.conninfo = "user=postgres dbname=postgres keepalives_idle=7 "
               "tcp_user_timeout=4000";
  o.keepalives_count = 9;
  o.keepalives_interval_s = 0; /* the system's default */
  pool = pgt_pool(PGT_A, &o, NULL);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  pg = qorb_pg_conn(cl);
  assert_int_equal(sockopt(pg, SOL_SOCKET, SO_KEEPALIVE), 1);
  assert_int_equal(sockopt(pg, IPPROTO_TCP, TCP_KEEPIDLE), 7);
  assert_int_equal(sockopt(pg, IPPROTO_TCP, TCP_KEEPCNT), 9);
  assert_int_equal(sockopt(pg, IPPROTO_TCP, TCP_USER_TIMEOUT), 4000);
  assert_int_equal(qorb_release(cl), 0);
  itest_close(pool);

  /* Off altogether. */
  pgt_options(&o);
  o.keepalives = 0;
  o.tcp_user_timeout_ms = 0;
  pool = pgt_pool(PGT_A, &o, NULL);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  pg = qorb_pg_conn(cl);
  assert_int_equal(sockopt(pg, SOL_SOCKET, SO_KEEPALIVE), 0);
  assert_int_equal(sockopt(pg, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
  assert_int_equal(qorb_release(cl), 0);
  itest_close(pool);
}

/* The URI form and keyword arrays reach the server as written. */
static void test_uri_and_arrays(void **state) {
  qorb_pg_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl;
  char buf[128];
  static const char *const kw[] = {"application_name", "options", NULL};
  static const char *const val[] = {"it's qorb", "-c work_mem=5MB", NULL};
  (void)state;
  qorb_pg_options_init(&o);
  o.conninfo = "postgresql://postgres@db.invalid:1/postgres";
  o.keywords = kw;
  o.values = val;
  pool = pgt_pool(PGT_B, &o, NULL);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_int_equal(pgt_value(qorb_pg_conn(cl), "SHOW application_name", buf,
                             sizeof(buf)), 0);
  assert_string_equal(buf, "it's qorb");
  assert_int_equal(pgt_value(qorb_pg_conn(cl), "SHOW work_mem", buf,
                             sizeof(buf)), 0);
  assert_string_equal(buf, "5MB");
  assert_string_equal(PQhost(qorb_pg_conn(cl)), "db.invalid");
  assert_int_equal(qorb_release(cl), 0);
  itest_close(pool);
}

static void test_tls_verify_full(void **state) {
  qorb_pg_options_t o;
  qorb_pool_t *pool;
  qorb_claim_t *cl = NULL;
  char info[512], e[256];
  uint64_t t0;
  (void)state;
  /* The certificate names qorb-test.invalid; the pool dials a's address. */
  snprintf(info, sizeof(info),
           "host=qorb-test.invalid sslmode=verify-full sslrootcert=%s "
           "user=postgres dbname=postgres",
           pgt_server_cert());
  qorb_pg_options_init(&o);
  o.conninfo = info;
  pool = pgt_pool(PGT_A, &o, NULL);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_int_equal(PQsslInUse(qorb_pg_conn(cl)), 1);
  assert_string_equal(PQhost(qorb_pg_conn(cl)), "qorb-test.invalid");
  assert_int_equal(pgt_exec(qorb_pg_conn(cl), "SELECT 1"), 0);
  qorb_release(cl);
  itest_close(pool);

  /* Another name: the certificate does not match, the claim fails fast. */
  snprintf(info, sizeof(info),
           "host=other.invalid sslmode=verify-full sslrootcert=%s "
           "user=postgres dbname=postgres",
           pgt_server_cert());
  pool = pgt_pool(PGT_A, &o, NULL);
  t0 = itest_now_ms();
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), QORB_ENOTONLINE);
  assert_true(itest_now_ms() - t0 < 3000);
  itest_last_error(pool, PGT_A, e, sizeof(e));
  fprintf(stderr, "verify-full, wrong name: %s\n", e);
  assert_non_null(strstr(e, "other.invalid"));
  itest_close(pool);
}

/* TLS first, refused by pg_hba for this user, then libpq retries on a new
   socket without TLS (sslmode=prefer): the connector follows the switch. */
static void test_socket_switch_during_connect(void **state) {
  qorb_pg_options_t o;
  qorb_pool_t *pool;
  int i;
  (void)state;
  qorb_pg_options_init(&o);
  o.conninfo = "user=qorb_nossl dbname=postgres sslmode=prefer";
  pool = pgt_pool(PGT_B, &o, NULL);
  for (i = 0; i < 10; i++) {
    qorb_claim_t *cl;
    assert_int_equal(qorb_pool_claim_wait(pool, 5000, &cl), 0);
    assert_int_equal(PQsslInUse(qorb_pg_conn(cl)), 0);
    assert_int_equal(pgt_exec(qorb_pg_conn(cl), "SELECT 1"), 0);
    /* broken: the next claim needs a new connection, a new switch */
    qorb_release_broken(cl);
  }
  assert_true(itest_connects(pool, PGT_B) >= 10);
  itest_close(pool);
}

/* Another connector's connection: a struct of its own, connected at once,
   with no I/O. */
typedef struct other_conn {
  uint32_t word;
  void *pg; /* where qorb-pg keeps its PGconn, give or take */
} other_conn_t;

static int other_connect(void *ctx, qorb_op_t *op, const qorb_addr_t *addr,
                         void **conn) {
  other_conn_t *o = qorb_calloc(1, sizeof(*o));
  (void)ctx;
  (void)addr;
  if (o == NULL) return QORB_ENOMEM;
  o->word = 0x71706763u ^ 1u; /* close to qorb-pg's tag, not it */
  o->pg = o;
  *conn = o;
  qorb_op_done(op, 0);
  return 0;
}

static void other_close(void *ctx, void *conn) {
  (void)ctx;
  qorb_free(conn);
}

static void test_conn_of_other_connector(void **state) {
  static const qorb_connector_ops_t ops = {
      .version = QORB_CONNECTOR_OPS_VERSION,
      .name = "other",
      .connect = other_connect,
      .close = other_close,
  };
  qorb_connector_t *c = NULL;
  qorb_policy_t pol;
  qorb_pool_t *pool = NULL;
  qorb_claim_t *cl;
  (void)state;
  assert_int_equal(qorb_connector_new(&c, &ops, NULL), 0);
  itest_policy(&pol, "pgtest", "PGT_VERBOSE");
  assert_int_equal(itest_pool_new(&pool, PGT_REFUSED, c, NULL, &pol), 0);
  assert_int_equal(qorb_pool_claim_wait(pool, 10000, &cl), 0);
  assert_non_null(qorb_claim_conn(cl));
  assert_null(qorb_pg_conn(cl));
  assert_int_equal(qorb_release(cl), 0);
  itest_close(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_address_from_pool),
      cmocka_unit_test(test_no_host_in_template),
      cmocka_unit_test(test_keepalive_defaults),
      cmocka_unit_test(test_keepalive_overrides),
      cmocka_unit_test(test_uri_and_arrays),
      cmocka_unit_test(test_tls_verify_full),
      cmocka_unit_test(test_socket_switch_during_connect),
      cmocka_unit_test(test_conn_of_other_connector),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
