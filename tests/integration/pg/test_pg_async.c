/* SPDX-License-Identifier: MIT */
/*
 * test_pg_async.c: the event-driven shape. The application owns the libev
 * loop and gives it to the pool; claims come back through callbacks on that
 * loop; each claimant sends its query with PQsendQuery() and reads the
 * answer from an ev_io of its own on PQsocket(), then releases. Four such
 * clients run interleaved over two backends. When the pool has closed, the
 * loop holds no qorb watcher: ev_run() returns by itself.
 */
#define _GNU_SOURCE

#include <ev.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg_testlib.h"

#define NCLIENTS 4
#define PER_CLIENT 40

typedef struct app app_t;

typedef struct client {
  app_t *app;
  int n;              /* requests done */
  qorb_claim_t *claim;
  PGconn *pg;
  ev_io io;
  int expect;
  char error[256];
} client_t;

struct app {
  struct ev_loop *loop;
  qorb_pool_t *pool;
  client_t clients[NCLIENTS];
  int done_clients;
  int closed;
  int guard_fired;
  int errors;
  int on_a, on_b;
  ev_timer guard;
};

static void client_next(client_t *c);
static void app_close(app_t *a);

static void client_fail(client_t *c, const char *what, const char *detail) {
  c->app->errors++;
  snprintf(c->error, sizeof(c->error), "%s: %s", what, detail);
  fprintf(stderr, "client %d: %s\n", (int)(c - c->app->clients), c->error);
}

static void client_finished(client_t *c) {
  app_t *a = c->app;
  if (++a->done_clients == NCLIENTS) {
    /* Everyone is done: close; on_closed runs on this loop when finished. */
    app_close(a);
  }
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents) {
  client_t *c = w->data;
  PGresult *res;
  int broken = 0;
  (void)revents;
  if (!PQconsumeInput(c->pg)) {
    client_fail(c, "consume", PQerrorMessage(c->pg));
    broken = 1;
    goto release;
  }
  while (!PQisBusy(c->pg)) {
    res = PQgetResult(c->pg);
    if (!res) goto release; /* all results read: the connection is idle */
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      client_fail(c, "query", PQresultErrorMessage(res));
    } else if (atoi(PQgetvalue(res, 0, 0)) != c->expect) {
      client_fail(c, "answer", PQgetvalue(res, 0, 0));
    } else {
      const char *port = PQgetvalue(res, 0, 1);
      if (atoi(port) == pgt_addrs()->a.port) c->app->on_a++;
      else c->app->on_b++;
    }
    PQclear(res);
  }
  return; /* more to read */
release:
  /* Our watcher goes before the claim does: the pool owns the socket
     again from the release on. */
  ev_io_stop(loop, w);
  if (broken)
    qorb_release_broken(c->claim);
  else
    qorb_release(c->claim);
  c->claim = NULL;
  c->pg = NULL;
  c->n++;
  client_next(c);
}

static void on_claim(qorb_pool_t *pool, int status, qorb_claim_t *claim,
                     void *arg) {
  client_t *c = arg;
  char sql[128];
  (void)pool;
  if (status != 0) {
    client_fail(c, "claim", qorb_strerror(status));
    c->n++;
    client_next(c);
    return;
  }
  c->claim = claim;
  c->pg = qorb_pg_conn(claim);
  c->expect = (int)(c - c->app->clients) * 1000 + c->n;
  snprintf(sql, sizeof(sql), "SELECT %d, inet_server_port()", c->expect);
  /* Non-blocking for the send; the pool puts blocking mode back. */
  if (PQsetnonblocking(c->pg, 1) != 0 || !PQsendQuery(c->pg, sql) ||
      PQflush(c->pg) < 0) {
    client_fail(c, "send", PQerrorMessage(c->pg));
    qorb_release_broken(claim);
    c->claim = NULL;
    c->n++;
    client_next(c);
    return;
  }
  ev_io_init(&c->io, on_readable, PQsocket(c->pg), EV_READ);
  c->io.data = c;
  ev_io_start(c->app->loop, &c->io);
}

static void client_next(client_t *c) {
  int rc;
  if (c->n >= PER_CLIENT) {
    client_finished(c);
    return;
  }
  rc = qorb_pool_claim(c->app->pool, 10000, on_claim, c, NULL);
  if (rc != 0) {
    client_fail(c, "qorb_pool_claim", qorb_strerror(rc));
    c->n = PER_CLIENT;
    client_finished(c);
  }
}

static void on_closed(qorb_pool_t *pool, int status, void *arg) {
  app_t *a = arg;
  (void)pool;
  assert_int_equal(status, 0);
  a->closed = 1;
  a->pool = NULL;
}

static void app_close(app_t *a) {
  assert_int_equal(qorb_pool_close(a->pool, on_closed, a), 0);
}

static void on_guard(struct ev_loop *loop, ev_timer *t, int revents) {
  app_t *a = t->data;
  (void)revents;
  a->guard_fired = 1;
  ev_break(loop, EVBREAK_ALL);
}

static void test_event_driven_clients(void **state) {
  app_t a;
  qorb_policy_t pol;
  qorb_pg_options_t o;
  qorb_resolver_t *r;
  qorb_connector_t *c;
  char err[256];
  int i;
  (void)state;
  memset(&a, 0, sizeof(a));
  a.loop = ev_loop_new(EVFLAG_AUTO);
  assert_non_null(a.loop);

  qorb_policy_init(&pol);
  pol.name = "pgasync";
  pol.max_slots = 4;
  pol.spares_wanted = 2;
  pgt_options(&o);
  assert_int_equal(qorb_static_resolver_new(&r, PGT_AB, err, sizeof(err)), 0);
  assert_int_equal(qorb_pg_connector_new(&c, &o, err, sizeof(err)), 0);
  assert_int_equal(
      qorb_pool_new(&a.pool, a.loop, &pol, r, c, err, sizeof(err)), 0);
  assert_ptr_equal(qorb_pool_loop(a.pool), a.loop);

  for (i = 0; i < NCLIENTS; i++) {
    a.clients[i].app = &a;
    client_next(&a.clients[i]);
  }
  /* The guard does not keep the loop alive (ev_unref): ev_run returns as
     soon as nothing else is active, i.e. when the pool has closed and left
     no watcher behind. If something stays, the guard ends the run. */
  ev_timer_init(&a.guard, on_guard, 30., 0.);
  a.guard.data = &a;
  ev_timer_start(a.loop, &a.guard);
  ev_unref(a.loop);
  ev_run(a.loop, 0);
  ev_ref(a.loop);
  ev_timer_stop(a.loop, &a.guard);

  assert_int_equal(a.guard_fired, 0);
  assert_int_equal(a.closed, 1);
  assert_int_equal(a.errors, 0);
  assert_int_equal(a.done_clients, NCLIENTS);
  assert_int_equal(a.on_a + a.on_b, NCLIENTS * PER_CLIENT);
  fprintf(stderr, "answers: %d from a, %d from b\n", a.on_a, a.on_b);
  assert_true(a.on_a > 0 && a.on_b > 0);
  ev_loop_destroy(a.loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_event_driven_clients),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
