/* SPDX-License-Identifier: MIT */
/*
 * format_dump.c: writes what the formatters of <qorb/stats.h> make, for
 * real parsers to read (check_format.sh: promtool and Python's json).
 * `format_dump DIR` writes DIR/scripted.{prom,json} (the scripted
 * snapshots of format_samples.c), DIR/live.{prom,json} (the live fixture
 * pool, twice over: two pools on one endpoint, one with a claim held) and
 * DIR/empty.{prom,json} (no pool). A cmocka program, so that the fixture's
 * checks report as in the other tests.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "format_samples.h"

static const char *dir;

static void write_file(const char *name, char *text) {
  char path[4096];
  FILE *f;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "w");
  if (f == NULL)
    fail_msg("cannot write %s", path);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
  qorb_free(text);
}

static void test_dump(void **state) {
  sample_t s;
  fx_t a, b;
  qorb_pool_t *pools[2];
  qorb_claim_t *held;
  (void)state;

  sample_fill(&s);
  write_file("scripted.prom",
             sample_format(qorb_stats_format_prometheus, s.snaps, 2));
  write_file("scripted.json",
             sample_format(qorb_stats_format_json, s.snaps, 2));
  write_file("empty.prom",
             sample_format(qorb_stats_format_prometheus, NULL, 0));
  write_file("empty.json", sample_format(qorb_stats_format_json, NULL, 0));

  /* Two live pools (distinct names: their series must not collide). */
  sample_live(&a, SAMPLE_LIVE_NAME);
  sample_live(&b, "live-2");
  pools[0] = a.pool;
  pools[1] = b.pool;
  held = fx_claim(&b); /* an oldest claim, with its site, once the stats
                         tick (250 ms) has seen it */
  pump_for(b.loop, 600);
  write_file("live.prom", sample_format_live(qorb_stats_prometheus, pools, 2));
  write_file("live.json", sample_format_live(qorb_stats_json, pools, 2));
  fx_release(held);
  fx_finish(&a);
  fx_finish(&b);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_dump)};
  if (argc != 2) {
    fprintf(stderr, "usage: format_dump DIR\n");
    return 2;
  }
  dir = argv[1];
  return cmocka_run_group_tests(tests, NULL, NULL);
}
