/* SPDX-License-Identifier: MIT */
/*
 * qorbtop_target.c: something for tools/qorbtop to look at. A pool named
 * "qorbtop-test" over the fake connector with three backends, of which
 * 127.0.0.3:1 refuses every connection (so it is down, with a last error),
 * and a stats endpoint serving it on 127.0.0.1, port 0 (or on the Unix
 * socket given with --unix PATH). Its first claim is made before any
 * connection is up, so it waits (the wait figures are not empty), and is
 * held to the end (the oldest claim, with this file as its site). It prints
 * "port N" once the pool has connections, then claims and releases about a
 * thousand times a second until SIGTERM or SIGINT (or 120 s pass), and
 * exits 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_connector.h"
#include "loop_helpers.h"
#include "qorb/endpoint.h"
#include "qorb/qorb.h"

#define BACKENDS "127.0.0.1:1,127.0.0.2:1,127.0.0.3:1"
#define DEAD "127.0.0.3:1"

static int die(const char *what, int rc, const char *err) {
  fprintf(stderr, "qorbtop_target: %s: %s %s\n", what, qorb_err_name(rc),
          err != NULL ? err : "");
  return 1;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void pause_1ms(void) {
  struct timespec ts = {0, 1000000L};
  nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
  qorb_endpoint_options_t eo;
  qorb_endpoint_t *ep = NULL;
  qorb_resolver_t *r = NULL;
  qorb_pool_t *pool = NULL;
  qorb_claim_t *held = NULL;
  fake_connector_t *fc;
  qorb_connector_t *c;
  qorb_policy_t pol;
  char err[256];
  double end;
  int rc;

  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  qorb_endpoint_options_init(&eo);
  eo.listen = "127.0.0.1:0";
  if (argc == 3 && strcmp(argv[1], "--unix") == 0) {
    static char listen[200];
    snprintf(listen, sizeof(listen), "unix:%s", argv[2]);
    eo.listen = listen;
  } else if (argc != 1) {
    fprintf(stderr, "usage: qorbtop_target [--unix PATH]\n");
    return 2;
  }

  fc = fake_connector_new(0);
  /* Connections take 100 ms, so the first claim surely queues. */
  fake_connector_set(fc, NULL, FC_CONNECT, fc_delay(100, 0));
  fake_connector_set(fc, DEAD, FC_CONNECT, fc_fail(QORB_ECONNECT));
  c = fake_connector_make(fc);
  rc = qorb_static_resolver_new(&r, BACKENDS, err, sizeof(err));
  if (rc != 0) return die("resolver", rc, err);
  qorb_policy_init(&pol);
  pol.name = "qorbtop-test";
  pol.spares_wanted = 2;
  pol.max_slots = 6;
  pol.min_backoff_ms = 200;
  pol.max_backoff_ms = 1000;
  rc = qorb_pool_new(&pool, NULL, &pol, r, c, err, sizeof(err));
  if (rc != 0) return die("pool", rc, err);
  rc = qorb_pool_claim_wait(pool, 5000, &held);
  if (rc != 0) return die("first claim", rc, NULL);
  rc = qorb_endpoint_new(&ep, NULL, &eo, err, sizeof(err));
  if (rc != 0) return die("endpoint", rc, err);
  rc = qorb_endpoint_add_pool(ep, pool);
  if (rc != 0) return die("add_pool", rc, NULL);

  /* Ready when both live backends serve and the dead one has failed. */
  end = now_ms() + 10000;
  for (;;) {
    qorb_pool_stats_t st;
    qorb_pool_stats_init(&st);
    qorb_pool_stats(pool, &st, NULL, 0, NULL);
    if (st.backends_online == 2 && fake_connector_backend(fc, DEAD)
                                           ->n.connects_failed > 0)
      break;
    if (now_ms() > end) return die("waiting for the pool", QORB_ETIMEDOUT, NULL);
    poll_pause();
  }
  printf("port %d\n", qorb_endpoint_port(ep));
  fflush(stdout);

  end = now_ms() + 120000;
  while (now_ms() < end && !stop) {
    qorb_claim_t *cl = NULL;
    if (qorb_pool_claim_wait(pool, 1000, &cl) == 0) qorb_release(cl);
    pause_1ms();
  }

  qorb_release(held);
  qorb_endpoint_remove_pool(ep, pool);
  qorb_endpoint_free(ep);
  qorb_pool_close(pool, NULL, NULL);
  fake_connector_free(fc);
  return 0;
}
