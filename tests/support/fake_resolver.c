/* SPDX-License-Identifier: MIT */
/*
 * fake_resolver.c: the hand-driven resolver of the unit tests (see
 * fake_resolver.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "fake_resolver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fake_resolver_parse(const char *list, qorb_addr_t *out, size_t cap) {
  char buf[1024];
  char *save = NULL, *tok;
  size_t n = 0;
  if (list == NULL) return 0;
  if (strlen(list) >= sizeof(buf)) return QORB_EINVAL;
  strcpy(buf, list);
  for (tok = strtok_r(buf, ", ", &save); tok != NULL;
       tok = strtok_r(NULL, ", ", &save)) {
    int rc;
    if (n == cap) return QORB_EINVAL;
    rc = qorb_addr_parse(tok, &out[n]);
    if (rc != 0) {
      fprintf(stderr, "fake_resolver: bad entry \"%s\": %s\n", tok,
              qorb_strerror(rc));
      return rc;
    }
    n++;
  }
  return (int)n;
}

static int report(fake_resolver_t *fr, const char *list) {
  qorb_addr_t addrs[64];
  int n = fake_resolver_parse(list, addrs, 64);
  int rc;
  if (n < 0) return n;
  rc = qorb_resolver_update(fr->r, n > 0 ? addrs : NULL, (size_t)n);
  if (rc == 0) atomic_fetch_add(&fr->updates, 1);
  return rc;
}

static int fr_start(void *ctx, qorb_resolver_t *r) {
  fake_resolver_t *fr = ctx;
  atomic_fetch_add(&fr->starts, 1);
  if (fr->start_result != 0) return fr->start_result;
  fr->r = r;
  if (fr->initial != NULL) fr->initial_rc = report(fr, fr->initial);
  return 0;
}

static void fr_stop(void *ctx) {
  fake_resolver_t *fr = ctx;
  atomic_fetch_add(&fr->stops, 1);
  fr->r = NULL;
}

static void fr_destroy(void *ctx) {
  fake_resolver_t *fr = ctx;
  atomic_fetch_add(&fr->destroys, 1);
  fr->r = NULL;
}

static const qorb_resolver_ops_t fr_ops = {
    QORB_RESOLVER_OPS_VERSION, "fake", fr_start, fr_stop, fr_destroy};

const qorb_resolver_ops_t *fake_resolver_ops(void) { return &fr_ops; }

fake_resolver_t *fake_resolver_new(void) {
  fake_resolver_t *fr = calloc(1, sizeof(*fr));
  if (fr == NULL) abort();
  return fr;
}

void fake_resolver_set_initial(fake_resolver_t *fr, const char *list) {
  free(fr->initial);
  fr->initial = NULL;
  if (list != NULL) {
    fr->initial = strdup(list);
    if (fr->initial == NULL) abort();
  }
}

qorb_resolver_t *fake_resolver_make(fake_resolver_t *fr) {
  qorb_resolver_t *r = NULL;
  if (qorb_resolver_new(&r, &fr_ops, fr) != 0) return NULL;
  return r;
}

int fake_resolver_set(fake_resolver_t *fr, const char *list) {
  if (fr->r == NULL) return QORB_EBUSY;
  return report(fr, list);
}

void fake_resolver_free(fake_resolver_t *fr) {
  if (fr == NULL) return;
  free(fr->initial);
  free(fr);
}
