/* SPDX-License-Identifier: MIT */
/*
 * format_samples.c: the snapshots and the live pool of format_samples.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "format_samples.h"

static void set_addr(qorb_addr_t *a, const char *host, uint16_t port) {
  assert_int_equal(qorb_addr_set(a, host, port), 0);
}

void sample_fill(sample_t *s) {
  qorb_pool_stats_t *st = &s->st[0];
  qorb_backend_stats_t *b = s->b;
  static const char rname[] = "_pg._tcp.\"db\"\\x.";
  static const char rerr[] = "timed out\n\x01 \xe2\x82";
  static const char berr[] = "refused: \"[::1]\"\n\tnext \xc3\xa9 \x80";

  memset(s, 0, sizeof(*s));
  qorb_pool_stats_init(&s->st[0]);
  qorb_pool_stats_init(&s->st[1]);

  memcpy(st->name, SAMPLE_NASTY_NAME, sizeof(SAMPLE_NASTY_NAME));
  st->backends = 2;
  st->backends_online = 1;
  st->connecting = 1;
  st->idle = 2;
  st->claimed = 1;
  st->waiters = 3;
  st->claims = 1234;
  st->timeouts = 5;
  st->claim_failures = 9;
  st->queue_full = 2;
  st->leaks = 1;
  qorb_resolver_stats_init(&st->resolver);
  strcpy(st->resolver.kind, "dns");
  memcpy(st->resolver.name, rname, sizeof(rname));
  st->resolver.queries = 10;
  st->resolver.failures = 2;
  st->resolver.changes = 3;
  st->resolver.last_error = QORB_ETIMEDOUT;
  memcpy(st->resolver.last_error_text, rerr, sizeof(rerr));
  st->resolver.last_error_age_ms = 1500;
  st->resolver.backends = 2;
  st->resolver.next_query_ms = 250;
  st->resolver.servers = 2;
  st->resolver.servers_failing = 1;
  st->waited = 7;
  st->wait_ns_total = 1500000;
  st->wait_ns_max = 1000000;
  st->wait_hist[0] = 1;
  st->wait_hist[3] = 2;
  st->wait_hist[6] = 3;
  st->wait_hist[QORB_WAIT_BUCKETS - 1] = 1;
  st->failed[QORB_CLAIM_FAIL_TIMEOUT] = 5;
  st->failed[QORB_CLAIM_FAIL_NOTONLINE] = 1;
  st->failed[QORB_CLAIM_FAIL_QUEUEFULL] = 2;
  st->failed[QORB_CLAIM_FAIL_CANCELED] = 1;
  st->opened = 12;
  st->closed[QORB_CLOSE_LIFETIME] = 1;
  st->closed[QORB_CLOSE_IDLE] = 2;
  st->closed[QORB_CLOSE_BROKEN] = 3;
  st->closed[QORB_CLOSE_REMOVED] = 1;
  st->oldest_claim_ms = 2250;
  strcpy(st->oldest_claim_site, "app/\"x\".c:42");
  set_addr(&st->oldest_claim_backend, "127.0.0.1", 5432);
  st->uptime_ms = 61000;

  set_addr(&b[0].addr, "127.0.0.1", 5432);
  b[0].online = 1;
  b[0].idle = 2;
  b[0].claimed = 1;
  b[0].claims = 1200;
  b[0].connects = 8;
  b[0].failures = 1;
  b[0].last_error_age_ms = -1;
  b[0].online_ms = 60000;
  b[0].closed = 5;

  set_addr(&b[1].addr, "::1", 5433);
  b[1].connecting = 1;
  b[1].claims = 34;
  b[1].connects = 2;
  b[1].failures = 7;
  b[1].recent_failures = 4;
  memcpy(b[1].last_error, berr, sizeof(berr));
  b[1].last_error_age_ms = 300;
  b[1].last_error_current = 1;
  b[1].connect_failures = 6;
  b[1].online_ms = -1;
  b[1].closed = 2;

  strcpy(s->st[1].name, "second");
  qorb_resolver_stats_init(&s->st[1].resolver);
  strcpy(s->st[1].resolver.kind, "static");
  s->st[1].oldest_claim_ms = -1;
  s->st[1].uptime_ms = 5;

  s->snaps[0].st = &s->st[0];
  s->snaps[0].backends = s->b;
  s->snaps[0].nbackends = 2;
  s->snaps[1].st = &s->st[1];
}

static int dead_failed(fx_t *fx) {
  qorb_backend_stats_t b;
  return fx_backend(fx, SAMPLE_LIVE_DEAD, &b) && b.connect_failures > 0 &&
         b.last_error[0] != '\0';
}

void sample_live(fx_t *fx, const char *name) {
  claim_rec_t waited, timed_out;
  qorb_claim_t *c1, *c2;

  fx_init(fx, 0, 0);
  fx->policy.name = name;
  /* Two connections to the live backend; the dead one keeps one slot
     trying. */
  fx->policy.max_slots = 3;
  fx->policy.spares_wanted = 2;
  fx->policy.max_slots_per_backend = 2;
  fake_connector_set(fx->fc, SAMPLE_LIVE_DEAD, FC_CONNECT,
                     fc_fail(QORB_ECONNECT));
  fx_start(fx);
  fx_set(fx, SAMPLE_LIVE_OK "," SAMPLE_LIVE_DEAD);
  PUMP_UNTIL(fx->loop, fx_idle(fx) == 2 && dead_failed(fx), 5000);

  c1 = fx_claim(fx);
  c2 = fx_claim(fx);
  /* One claim waits ~20 ms and is served... */
  claim_rec_init(&waited, fx);
  assert_int_equal(fx_claim_async(fx, &waited, 5000), 0);
  pump_for(fx->loop, 20);
  fx_release(c1);
  PUMP_UNTIL(fx->loop, atomic_load(&waited.calls) == 1, 2000);
  assert_int_equal(waited.status, 0);
  /* ... one times out ... */
  claim_rec_init(&timed_out, fx);
  assert_int_equal(fx_claim_async(fx, &timed_out, 30), 0);
  PUMP_UNTIL(fx->loop, atomic_load(&timed_out.calls) == 1, 2000);
  assert_true(timed_out.status < 0);
  /* ... and a connection is released broken. */
  fx_release_broken(c2);
  claim_rec_release(&waited);
  PUMP_UNTIL(fx->loop, fx_idle(fx) == 2, 3000);
}

char *sample_format(sample_format_fn fn, const qorb_stats_snapshot_t *snaps,
                    size_t n) {
  size_t need = 0, again = 0;
  char *buf;
  assert_int_equal(fn(snaps, n, NULL, 0, &need), QORB_ENOMEM);
  assert_true(need > 0);
  buf = qorb_malloc(need);
  assert_non_null(buf);
  assert_int_equal(fn(snaps, n, buf, need, &again), 0);
  assert_int_equal(again, need);
  assert_int_equal(strlen(buf) + 1, need);
  return buf;
}

char *sample_format_live(sample_live_fn fn, qorb_pool_t *const *pools,
                         size_t n) {
  size_t need = 0, len, tries;
  char *buf = NULL;
  int rc = QORB_ENOMEM;
  assert_int_equal(fn(pools, n, NULL, 0, &need), QORB_ENOMEM);
  /* The figures move (uptime), so allow some room and retry. */
  for (tries = 0; tries < 4 && rc != 0; tries++) {
    len = need + 256;
    qorb_free(buf);
    buf = qorb_malloc(len);
    assert_non_null(buf);
    rc = fn(pools, n, buf, len, &need);
    if (rc != 0)
      assert_int_equal(rc, QORB_ENOMEM);
  }
  assert_int_equal(rc, 0);
  assert_int_equal(strlen(buf) + 1, need);
  return buf;
}
