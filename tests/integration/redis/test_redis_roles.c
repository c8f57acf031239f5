/* SPDX-License-Identifier: MIT */
/*
 * test_redis_roles.c: role-limited pools over a master (a) and its replica
 * (r). A master-only pool claims only a, a replica-only pool only r, an
 * any-role pool both. After `REPLICAOF NO ONE` on r, the pools follow at
 * their next health checks: the master pool takes r too, the replica pool
 * has nothing left (claims fail at once with QORB_ENOTONLINE, and r's
 * last_error says why). After r becomes a replica again, both come back.
 * The test leaves r a replica of a, as the fixture made it.
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_testlib.h"

#define AR RT_AR

static void tweak_roles(qorb_policy_t *p) {
  p->max_slots = 4;
  p->spares_wanted = 4;
  p->health_interval_ms = 200;
  p->health_check_timeout_ms = 1000;
  p->max_backoff_ms = 300;
}

static qorb_pool_t *role_pool(qorb_redis_role_t role, const char *name) {
  qorb_redis_options_t o;
  rt_options(&o, name);
  o.role = role;
  return rt_pool(AR, &o, NULL, tweak_roles);
}

/* n claims; returns how many came from `addr`. Each runs a PING. */
static int claims_from(qorb_pool_t *pool, int n, const char *addr) {
  int i, from = 0;
  for (i = 0; i < n; i++) {
    qorb_claim_t *cl;
    redisReply *r;
    assert_int_equal(qorb_pool_claim_wait(pool, 5000, &cl), 0);
    r = rt_cmd(qorb_redis_ctx(cl), "PING");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    if (strcmp(qorb_claim_addr(cl)->text, addr) == 0) from++;
    qorb_release(cl);
  }
  return from;
}

/* A claim that does not wait: its status (a claim got is released). */
static int try_claim_status(qorb_pool_t *pool) {
  qorb_claim_t *cl;
  int rc = qorb_pool_claim_wait(pool, 0, &cl);
  if (rc == 0) qorb_release(cl);
  return rc;
}

static void set_replica(int replica) {
  redisContext *c = rt_admin(RT_R);
  redisReply *r;
  if (replica)
    rt_cmd_status(c, "OK", "REPLICAOF 127.0.0.2 56391");
  else
    rt_cmd_status(c, "OK", "REPLICAOF NO ONE");
  r = rt_cmd(c, "ROLE");
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  assert_string_equal(r->element[0]->str, replica ? "slave" : "master");
  freeReplyObject(r);
  redisFree(c);
}

static void test_roles(void **state) {
  qorb_pool_t *master, *replica, *any;
  qorb_claim_t *cl;
  char err[200];
  int rc;
  (void)state;

  master = role_pool(QORB_REDIS_ROLE_MASTER, "qorb-role-master");
  replica = role_pool(QORB_REDIS_ROLE_REPLICA, "qorb-role-replica");
  any = role_pool(QORB_REDIS_ROLE_ANY, "qorb-role-any");

  ITEST_WAIT(itest_online(master, RT_A) && itest_failures(master, RT_R) > 0 &&
                 itest_online(replica, RT_R) &&
                 itest_failures(replica, RT_A) > 0 && itest_online(any, RT_A) &&
                 itest_online(any, RT_R),
             10000);
  assert_true(itest_online(master, RT_A));
  assert_false(itest_online(master, RT_R));
  assert_true(itest_online(replica, RT_R));
  assert_false(itest_online(replica, RT_A));
  assert_true(itest_online(any, RT_A));
  assert_true(itest_online(any, RT_R));
  itest_last_error(master, RT_R, err, sizeof(err));
  assert_non_null(strstr(err, "wants a master"));
  itest_last_error(replica, RT_A, err, sizeof(err));
  assert_non_null(strstr(err, "wants a replica"));

  assert_int_equal(claims_from(master, 40, RT_A), 40);
  assert_int_equal(claims_from(replica, 40, RT_R), 40);

  /* Promote r: the master pool follows, the replica pool is left with
   * nothing. */
  if (rt_external()) {
    itest_close(master);
    itest_close(replica);
    itest_close(any);
    rt_skip_if_external("passed the role checks, and would now promote "
                        "the replica r");
  }
  set_replica(0);
  ITEST_WAIT(itest_online(master, RT_R) && !itest_online(replica, RT_R), 10000);
  assert_true(itest_online(master, RT_R));
  assert_true(itest_online(master, RT_A));
  assert_false(itest_online(replica, RT_R));
  ITEST_WAIT(try_claim_status(replica) == QORB_ENOTONLINE, 10000);
  rc = qorb_pool_claim_wait(replica, 1000, &cl);
  assert_int_equal(rc, QORB_ENOTONLINE);
  itest_last_error(replica, RT_R, err, sizeof(err));
  assert_non_null(strstr(err, "wants a replica"));
  /* The master pool may now claim from both. */
  assert_true(claims_from(master, 40, RT_A) <= 40);

  /* Back to a replica: both pools recover. */
  set_replica(1);
  ITEST_WAIT(itest_online(replica, RT_R) && !itest_online(master, RT_R), 10000);
  assert_true(itest_online(replica, RT_R));
  assert_false(itest_online(master, RT_R));
  assert_int_equal(claims_from(replica, 20, RT_R), 20);
  assert_int_equal(claims_from(master, 20, RT_A), 20);

  itest_close(master);
  itest_close(replica);
  itest_close(any);
}

/* The async flavour checks the role the same way. */
static void test_roles_async(void **state) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  qorb_redis_options_t o;
  qorb_pool_t *pool;
  uint64_t end;
  int i;
  (void)state;

  rt_options(&o, "qorb-role-async");
  o.flavour = QORB_REDIS_ASYNC;
  o.role = QORB_REDIS_ROLE_REPLICA;
  pool = rt_pool(AR, &o, loop, tweak_roles);
  end = itest_now_ms() + 10000;
  while (!(itest_online(pool, RT_R) && itest_failures(pool, RT_A) > 0) &&
         itest_now_ms() < end)
    rt_loop_for(loop, 10);
  assert_true(itest_online(pool, RT_R));
  assert_false(itest_online(pool, RT_A));
  for (i = 0; i < 20; i++) {
    qorb_claim_t *cl;
    rt_reply_t r;
    assert_int_equal(rt_loop_claim(pool, loop, 5000, &cl), 0);
    assert_string_equal(qorb_claim_addr(cl)->text, RT_R);
    assert_int_equal(
        rt_loop_cmd(loop, qorb_redis_async(cl), 5000, &r, "ROLE"), 0);
    assert_string_equal(r.first, "slave");
    assert_int_equal(qorb_release(cl), 0);
  }
  rt_close_on_loop(pool, loop);
  ev_loop_destroy(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roles),
      cmocka_unit_test(test_roles_async),
  };
  rt_block_sigpipe();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
