/* SPDX-License-Identifier: MIT */
/*
 * policy.c: the pool's knobs, their defaults and their validation. A bad
 * policy is refused with a message that names the field. A caller's policy
 * may be older (shorter) or newer (longer) than ours: `size` says which,
 * and qorb__policy_import() turns it into one of ours.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "qorb/pool.h"

/* The policy as first released: every caller's struct is at least this. */
#define POLICY_V1_SIZE \
  (offsetof(qorb_policy_t, log_arg) + sizeof(((qorb_policy_t *)0)->log_arg))
/* Anything larger than this is not a policy from qorb_policy_init(). */
#define POLICY_MAX_SIZE 65536

static void policy_defaults(qorb_policy_t *p) {
  memset(p, 0, sizeof(*p));
  p->size = sizeof(*p);
  p->name = "qorb";
  p->spares_wanted = 2;
  p->max_slots = 16;
  p->max_slots_per_backend = 0;
  p->max_connecting_per_backend = 2;
  p->max_waiters = 1024;
  p->claim_timeout_ms = 5000;
  p->connect_timeout_ms = 5000;
  p->min_backoff_ms = 50;
  p->max_backoff_ms = 500;
  p->backoff_spread_ms = 100;
  p->health_interval_ms = 30000;
  p->health_check_timeout_ms = 2000;
  p->prepare_timeout_ms = 5000;
  p->recycle_timeout_ms = 5000;
  p->rebalance_interval_ms = 1000;
  p->failure_window_ms = 60000;
  p->max_lifetime_ms = 1800000;
  p->idle_timeout_ms = 600000;
  p->leak_threshold_ms = 0;
  p->fail_fast_after_ms = 10000;
  p->validate_idle_ms = 0;
  p->waiter_priority_us = 1000;
  p->min_conns = 0;
  p->max_lifetime_jitter_ms = QORB_LIFETIME_JITTER_AUTO;
  p->hook_timeout_ms = 5000;
}

void qorb_policy_init_(qorb_policy_t *p, size_t size) {
  qorb_policy_t d;
  if (p == NULL || size < sizeof(p->size)) return;
  policy_defaults(&d);
  d.size = size;
  /* The caller's struct is `size` bytes: ours may be longer or shorter. */
  if (size > sizeof(d)) memset((char *)p + sizeof(d), 0, size - sizeof(d));
  memcpy(p, &d, size < sizeof(d) ? size : sizeof(d));
}

int qorb__policy_import(qorb_policy_t *out, const qorb_policy_t *in) {
  size_t n;
  if (in == NULL || in->size < POLICY_V1_SIZE || in->size > POLICY_MAX_SIZE)
    return QORB_EINVAL;
  policy_defaults(out);
  n = in->size < sizeof(*out) ? in->size : sizeof(*out);
  memcpy(out, in, n);
  out->size = sizeof(*out);
  return 0;
}

static int policy_bad(char *err, size_t errlen, const char *what) {
  if (err != NULL && errlen > 0) snprintf(err, errlen, "invalid policy: %s", what);
  return QORB_EPOLICY;
}

int qorb_policy_validate(const qorb_policy_t *in, char *err, size_t errlen) {
  qorb_policy_t full;
  const qorb_policy_t *p = &full;
  if (err != NULL && errlen > 0) err[0] = '\0';
  if (in == NULL) return QORB_EINVAL;
  if (qorb__policy_import(&full, in) != 0) {
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "policy not initialised with qorb_policy_init()");
    return QORB_EINVAL;
  }
  if (p->name == NULL || p->name[0] == '\0' || strlen(p->name) > 63)
    return policy_bad(err, errlen, "name must be 1 to 63 characters");
  if (p->max_slots == 0 || p->max_slots > 4096)
    return policy_bad(err, errlen, "max_slots must be 1 to 4096");
  if (p->spares_wanted > p->max_slots)
    return policy_bad(err, errlen, "spares_wanted exceeds max_slots");
  if (p->max_slots_per_backend > p->max_slots)
    return policy_bad(err, errlen, "max_slots_per_backend exceeds max_slots");
  if (p->max_connecting_per_backend == 0)
    return policy_bad(err, errlen, "max_connecting_per_backend must be at least 1");
  if (p->max_waiters == 0)
    return policy_bad(err, errlen, "max_waiters must be at least 1");
  if (p->claim_timeout_ms == 0 || p->claim_timeout_ms > 2147483647u)
    return policy_bad(err, errlen, "claim_timeout_ms must be 1 to 2^31-1");
  if (p->connect_timeout_ms == 0)
    return policy_bad(err, errlen, "connect_timeout_ms must be at least 1");
  if (p->min_backoff_ms == 0)
    return policy_bad(err, errlen, "min_backoff_ms must be at least 1");
  if (p->max_backoff_ms < p->min_backoff_ms)
    return policy_bad(err, errlen, "max_backoff_ms is below min_backoff_ms");
  if (p->health_check_timeout_ms == 0)
    return policy_bad(err, errlen, "health_check_timeout_ms must be at least 1");
  if (p->prepare_timeout_ms == 0)
    return policy_bad(err, errlen,
                      "prepare_timeout_ms (acquire_timeout_ms) must be at "
                      "least 1");
  if (p->recycle_timeout_ms == 0)
    return policy_bad(err, errlen, "recycle_timeout_ms must be at least 1");
  if (p->rebalance_interval_ms == 0)
    return policy_bad(err, errlen, "rebalance_interval_ms must be at least 1");
  if (p->failure_window_ms == 0)
    return policy_bad(err, errlen, "failure_window_ms must be at least 1");
  if (p->max_lifetime_ms != 0 && p->max_lifetime_ms < 100)
    return policy_bad(err, errlen, "max_lifetime_ms must be 0 or at least 100");
  if (p->min_conns > p->max_slots)
    return policy_bad(err, errlen, "min_conns exceeds max_slots");
  if (p->max_lifetime_ms != 0 &&
      p->max_lifetime_jitter_ms != QORB_LIFETIME_JITTER_AUTO &&
      p->max_lifetime_jitter_ms > p->max_lifetime_ms)
    return policy_bad(err, errlen,
                      "max_lifetime_jitter_ms exceeds max_lifetime_ms");
  if (p->hook_timeout_ms == 0)
    return policy_bad(err, errlen, "hook_timeout_ms must be at least 1");
  if (p->waiter_priority_us > 1000000)
    return policy_bad(err, errlen, "waiter_priority_us must be 0 to 1000000");
  return 0;
}
