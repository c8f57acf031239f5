/* SPDX-License-Identifier: MIT */
/*
 * redis_testlib.h: helpers shared by the qorb-redis integration tests: the
 * server script (redis_servers.sh, whose path CMake passes in), pools over
 * the fixture's servers, an admin connection of the test's own (plain
 * blocking hiredis, never through a pool) for CLIENT KILL and friends, and
 * a few steps for driving an application loop from the test (async claims
 * and commands). Bounded waits (ITEST_WAIT), closing pools on their own
 * thread and stats lookups (itest_online() ...) come from
 * tests/support/itest.h, which the pg suite uses too.
 *
 * Servers (see redis_servers.sh), all started by the CTest fixture:
 * a 127.0.0.2:56391 and b 127.0.0.3:56392 (masters; b also on
 * [::1]:56392), r 127.0.0.3:56393
 * (replica of a), p 127.0.0.2:56394 (requirepass, ACL user).
 *
 * External servers (docs/docker.md; docker/ sets them): with
 *   QORB_TEST_REDIS_MASTER=host:port    a master: server a
 *   QORB_TEST_REDIS_REPLICA=host:port   a replica of it: server r
 * redis_servers.sh starts nothing and the tests use those two servers
 * (numeric addresses, the servers' own). There is no b, p or t then: the
 * tests that need one, or that restart, freeze or promote a server, skip
 * (rt_skip_if_external()).
 */
#ifndef QORB_REDIS_TESTLIB_H
#define QORB_REDIS_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <qorb/qorb.h>
#include <qorb/redis.h>

/* Waits, closing pools, stats lookups: shared with the other suites. */
#include "itest.h"

/* The servers' addresses and the backend lists the tests use. */
typedef struct rt_addrs {
  int external;              /* QORB_TEST_REDIS_MASTER/REPLICA are set */
  qorb_addr_t a, b, b6, r, p; /* .text "host:port", .host, .port */
  char ab[128];              /* "a,b" */
  char ar[128];              /* "a,r" */
} rt_addrs_t;

/* Read from the environment once; any thread. An unusable variable ends
   the program with a message. */
const rt_addrs_t *rt_addrs(void);

#define RT_A (rt_addrs()->a.text)
#define RT_B (rt_addrs()->b.text)
#define RT_B6 (rt_addrs()->b6.text) /* b again, over IPv6 */
#define RT_R (rt_addrs()->r.text)
#define RT_P (rt_addrs()->p.text)
#define RT_AB (rt_addrs()->ab)
#define RT_AR (rt_addrs()->ar)
#define RT_REFUSED "127.0.0.2:56398" /* nothing listens there */
#define RT_PASSWORD "qorb-secret"
#define RT_USER "qorbuser"
#define RT_USER_PASSWORD "qorb-user-pw"

/* 1 when the tests run against external servers (see above). */
int rt_external(void);

/*
 * With external servers, say why on stderr and skip the calling test
 * (cmocka skip()); otherwise return. `why` completes "this test ...",
 * e.g. "freezes server b". Call it before making anything the test would
 * have to free.
 */
void rt_skip_if_external(const char *why);

/* Run `redis_servers.sh ROOT <args>`; returns its exit status. */
int rt_servers(const char *args);

/*
 * Block SIGPIPE on the calling thread: a claimant's write to a connection
 * that the test killed must not end the test. Pools made by rt_pool()
 * still start their threads with SIGPIPE unblocked, so the connector's own
 * guard is exercised.
 */
void rt_block_sigpipe(void);

/* Test options: the library defaults plus a client name. */
void rt_options(qorb_redis_options_t *o, const char *client_name);

/*
 * A pool over `backends` with options `o`, on `loop` (NULL: a thread of
 * the pool's own). `tweak`, if not NULL, adjusts the policy, which starts
 * from itest_policy() (quick backoff; RT_VERBOSE=1 shows the pool's log).
 * Fails the test on error.
 */
qorb_pool_t *rt_pool(const char *backends, const qorb_redis_options_t *o,
                     struct ev_loop *loop, void (*tweak)(qorb_policy_t *));

/* Close a pool on the application's `loop` and run the loop until it has
 * closed. Asserts that the loop then has no active watcher left (ev_run
 * returned on its own) within a bound. */
void rt_close_on_loop(qorb_pool_t *pool, struct ev_loop *loop);

/* An admin connection to "host:port" (blocking, 5 s timeouts, AUTH for
 * server p). Fails the test if it cannot connect. */
redisContext *rt_admin(const char *addr);

/* A command on a blocking context; fails the test on a NULL reply. */
redisReply *rt_cmd(redisContext *c, const char *fmt, ...);

/* A command whose reply must be the status `status` ("OK", "PONG"). */
void rt_cmd_status(redisContext *c, const char *status, const char *fmt, ...);

/* A command whose reply must be an integer; returns it. */
long long rt_cmd_int(redisContext *c, const char *fmt, ...);

/* Connections on the server at `addr` whose client name is `name`. */
int rt_count_clients(const char *addr, const char *name);

/* The CLIENT IDs of those connections (at most `cap`); returns how many. */
int rt_client_ids(const char *addr, const char *name, long long *ids,
                  int cap);

/* CLIENT KILL ID `id` on the server at `addr`; 1 if it killed one. */
int rt_kill_client(const char *addr, long long id);

/* A field of a CLIENT INFO line ("db", "name", "sub", "multi", ...). */
int rt_info_field(const char *info, const char *field, char *buf, size_t len);

/* ---------------------------------------------------------------------
 * Driving an application loop from the test thread (async flavour). Each
 * runs the loop until its result is in, at most `ms` milliseconds.
 * --------------------------------------------------------------------- */

/* Claim through qorb_pool_claim(); returns the status. */
int rt_loop_claim(qorb_pool_t *pool, struct ev_loop *loop, unsigned ms,
                  qorb_claim_t **claim);

/* Run one command on an async context and copy the reply into `out`.
 * Returns 0; -1 when the reply was NULL (the connection failed); -2 on a
 * timeout (the command may still be outstanding). */
typedef struct rt_reply {
  int type;
  long long integer;
  char str[512];
  size_t elements;
  char first[64]; /* first element's string, for arrays */
} rt_reply_t;

int rt_loop_cmd(struct ev_loop *loop, redisAsyncContext *ac, unsigned ms,
                rt_reply_t *out, const char *fmt, ...);

/* Run the loop for about `ms` milliseconds. */
void rt_loop_for(struct ev_loop *loop, unsigned ms);

/*
 * ITEST_WAIT for a pool on `loop` (NULL: the pool's own thread): wait
 * until `cond` is true, at most `ms` milliseconds, running the loop
 * meanwhile when there is one. The caller asserts the condition afterwards.
 */
#define RT_WAIT(loop, cond, ms)                                                \
  do {                                                                         \
    uint64_t rt_end_ = itest_now_ms() + (uint64_t)(ms);                        \
    while (!(cond) && itest_now_ms() < rt_end_) {                              \
      if ((loop) != NULL)                                                      \
        rt_loop_for((loop), 10);                                               \
      else                                                                     \
        itest_nap_ms(10);                                                      \
    }                                                                          \
  } while (0)

#endif /* QORB_REDIS_TESTLIB_H */
