/* SPDX-License-Identifier: MIT */
/*
 * static.c: the static resolver. It reports a fixed list of numeric
 * backends once when the pool starts it, and again each time the
 * application replaces the list with qorb_static_resolver_set().
 *
 * set() may be called from any thread, but qorb_resolver_update() must run
 * on the pool loop. So a running resolver hands the new list over under a
 * mutex and wakes the loop with an ev_async; the loop takes the list and
 * reports it. Before start (and after stop) set() just replaces the list,
 * which the next start reports.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <ev.h>

#include "internal.h"
#include "qorb/static.h"

/*
 * set() tells a static resolver from any other by its op table
 * (qorb__resolver_ops); this value at the start of the context is a
 * second check, against a context that was freed or overwritten.
 */
#define STATIC_MAGIC UINT64_C(0x71726273746174ff) /* "qrbstat" */

/* Retry a report that failed (out of memory in the pool) this much later. */
#define STATIC_RETRY_S 1.0

/* Longest entry we try to parse; longer ones are malformed anyway. */
#define STATIC_ENTRY_MAX 64

typedef enum static_state {
  STATIC_NEW,     /* not started: set() replaces `addrs` */
  STATIC_RUNNING, /* started: set() replaces `addrs`, wakes the loop */
  STATIC_STOPPED  /* stopped: like NEW, nothing reaches the loop */
} static_state_t;

typedef struct static_ctx {
  uint64_t magic; /* STATIC_MAGIC; must stay the first field */

  /* Guarded by `mu`: everything set() touches from a foreign thread. */
  pthread_mutex_t mu;
  static_state_t state;
  qorb_addr_t *addrs; /* the current list (NULL when empty) */
  size_t naddrs;
  int dirty; /* `addrs` changed since it was last reported */

  /* Loop thread only (set() reads `loop` under `mu` once RUNNING). */
  qorb_resolver_t *r;
  struct ev_loop *loop;
  ev_async wake;   /* set() -> loop: a new list is waiting */
  ev_timer retry;  /* a failed report is tried again */
} static_ctx_t;

/* --- parsing ------------------------------------------------------------ */

static int static_is_sep(char c) {
  return c == ',' || isspace((unsigned char)c);
}

/*
 * Walk the entries of `list`. With `out` NULL, only count and validate
 * them (so that a bad list fails before anything is allocated); otherwise
 * store them in `out`, which has room for the count.
 */
static int static_parse(const char *list, qorb_addr_t *out, size_t *count,
                        char *err, size_t errlen) {
  const char *p = list;
  size_t n = 0;

  for (;;) {
    char entry[STATIC_ENTRY_MAX + 1];
    qorb_addr_t addr;
    size_t len = 0;
    int rc;

    while (*p != '\0' && static_is_sep(*p)) p++;
    if (*p == '\0') break;
    while (p[len] != '\0' && !static_is_sep(p[len])) len++;

    /* An overlong entry is copied truncated only to be named in the
     * message; qorb_addr_parse() rejects it for its length. */
    memcpy(entry, p, len < sizeof(entry) ? len : sizeof(entry) - 1);
    entry[len < sizeof(entry) ? len : sizeof(entry) - 1] = '\0';
    rc = len < sizeof(entry) ? qorb_addr_parse(entry, &addr) : QORB_EBADADDR;
    if (rc != 0) {
      if (err != NULL && errlen > 0)
        snprintf(err, errlen,
                 "bad backend address \"%s%s\": want a numeric "
                 "\"a.b.c.d:port\" or \"[ipv6]:port\", port 1-65535",
                 entry, len < sizeof(entry) ? "" : "...");
      return QORB_EBADADDR;
    }
    if (out != NULL) out[n] = addr;
    n++;
    p += len;
  }
  *count = n;
  return 0;
}

/* Parse `list` into a new array; *addrs is NULL for an empty list. */
static int static_parse_alloc(const char *list, qorb_addr_t **addrs,
                              size_t *n, char *err, size_t errlen) {
  qorb_addr_t *a = NULL;
  size_t count, check;
  int rc;

  if (err != NULL && errlen > 0) err[0] = '\0';
  rc = static_parse(list, NULL, &count, err, errlen);
  if (rc != 0) return rc;
  if (count > 0) {
    a = qorb__calloc(count, sizeof(*a));
    if (a == NULL) return QORB_ENOMEM;
    rc = static_parse(list, a, &check, NULL, 0);
    if (QORB_NEVER(rc != 0 || check != count)) {
      qorb__free(a);
      return QORB_EBADADDR;
    }
  }
  *addrs = a;
  *n = count;
  return 0;
}

/* --- the loop side ------------------------------------------------------ */

/*
 * Report the list if it changed, and return the update's result. The
 * lock is not held across qorb_resolver_update(): the pool may call the
 * application back from inside it (a log callback), and that callback may
 * call qorb_static_resolver_set(). So the array is taken out of the
 * context for the call (a racing set() then installs a new array instead
 * of freeing this one) and put back afterwards unless a newer list
 * arrived meanwhile.
 */
static int static_report(static_ctx_t *s) {
  qorb_addr_t *a;
  size_t n;
  int rc;

  pthread_mutex_lock(&s->mu);
  if (s->state != STATIC_RUNNING || !s->dirty) {
    pthread_mutex_unlock(&s->mu);
    return 0;
  }
  a = s->addrs;
  n = s->naddrs;
  s->addrs = NULL;
  s->naddrs = 0;
  s->dirty = 0;
  pthread_mutex_unlock(&s->mu);

  rc = qorb_resolver_update(s->r, a, n);

  pthread_mutex_lock(&s->mu);
  if (s->addrs == NULL && !s->dirty) {
    s->addrs = a; /* no newer list: this one stays the current list */
    s->naddrs = n;
    a = NULL;
    if (rc != 0) s->dirty = 1; /* not reported yet */
  }
  pthread_mutex_unlock(&s->mu);
  qorb__free(a);
  return rc;
}

/* Report from the loop; a report the pool could not take (out of memory)
 * is tried again later rather than left stale until the next set(). */
static void static_report_or_retry(static_ctx_t *s) {
  if (static_report(s) != 0 && !ev_is_active(&s->retry)) {
    ev_timer_set(&s->retry, STATIC_RETRY_S, 0.);
    ev_timer_start(s->loop, &s->retry);
  }
}

static void static_wake_cb(struct ev_loop *loop, ev_async *w, int revents) {
  (void)loop;
  (void)revents;
  static_report_or_retry((static_ctx_t *)w->data);
}

static void static_retry_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  static_report_or_retry((static_ctx_t *)w->data);
}

/* --- resolver ops ------------------------------------------------------- */

static void static_stop(void *ctx) {
  static_ctx_t *s = ctx;

  /* Under the lock, so that no set() sends to a watcher being stopped. */
  pthread_mutex_lock(&s->mu);
  s->state = STATIC_STOPPED;
  pthread_mutex_unlock(&s->mu);
  if (s->loop != NULL) {
    ev_async_stop(s->loop, &s->wake);
    ev_timer_stop(s->loop, &s->retry);
  }
}

static int static_start(void *ctx, qorb_resolver_t *r) {
  static_ctx_t *s = ctx;
  int rc;

  s->r = r;
  s->loop = qorb_resolver_loop(r);
  if (QORB_NEVER(s->loop == NULL)) return QORB_EINVAL;
  ev_async_start(s->loop, &s->wake);

  /* Report the list now, so the pool can connect on its first iteration.
   * From here on set() hands lists to the loop. */
  pthread_mutex_lock(&s->mu);
  s->state = STATIC_RUNNING;
  s->dirty = 1;
  pthread_mutex_unlock(&s->mu);
  rc = static_report(s);
  if (rc != 0) {
    static_stop(s); /* the pool fails to start and never calls stop() */
    return rc;
  }
  return 0;
}

static void static_destroy(void *ctx) {
  static_ctx_t *s = ctx;

  s->magic = 0;
  pthread_mutex_destroy(&s->mu);
  qorb__free(s->addrs);
  qorb__free(s);
}

static const qorb_resolver_ops_t static_ops = {
    QORB_RESOLVER_OPS_VERSION,
    "static",
    static_start,
    static_stop,
    static_destroy,
};

/* --- public ------------------------------------------------------------- */

int qorb_static_resolver_new(qorb_resolver_t **out, const char *list,
                             char *err, size_t errlen) {
  static_ctx_t *s;
  qorb_addr_t *addrs = NULL;
  size_t n = 0;
  int rc;

  if (out == NULL || list == NULL) return QORB_EINVAL;
  rc = static_parse_alloc(list, &addrs, &n, err, errlen);
  if (rc != 0) return rc;

  s = qorb__calloc(1, sizeof(*s));
  if (s == NULL) {
    qorb__free(addrs);
    return QORB_ENOMEM;
  }
  rc = pthread_mutex_init(&s->mu, NULL);
  if (rc != 0) {
    qorb__free(addrs);
    qorb__free(s);
    return rc == ENOMEM ? QORB_ENOMEM : -rc;
  }
  s->magic = STATIC_MAGIC;
  s->state = STATIC_NEW;
  s->addrs = addrs;
  s->naddrs = n;
  ev_async_init(&s->wake, static_wake_cb);
  s->wake.data = s;
  ev_timer_init(&s->retry, static_retry_cb, STATIC_RETRY_S, 0.);
  s->retry.data = s;

  rc = qorb_resolver_new(out, &static_ops, s);
  if (rc != 0) {
    static_destroy(s); /* the context stays ours when new() fails */
    return rc;
  }
  return 0;
}

int qorb_static_resolver_set(qorb_resolver_t *r, const char *list, char *err,
                             size_t errlen) {
  static_ctx_t *s;
  qorb_addr_t *addrs = NULL, *old;
  size_t n = 0;
  int rc;

  if (r == NULL || list == NULL) return QORB_EINVAL;
  /* Only our own op table says this is a static resolver. */
  if (qorb__resolver_ops(r) != &static_ops) return QORB_EINVAL;
  s = qorb_resolver_ctx(r);
  if (s == NULL || s->magic != STATIC_MAGIC) return QORB_EINVAL;

  /* Parse and allocate outside the lock; a bad list changes nothing. */
  rc = static_parse_alloc(list, &addrs, &n, err, errlen);
  if (rc != 0) return rc;

  pthread_mutex_lock(&s->mu);
  old = s->addrs;
  s->addrs = addrs;
  s->naddrs = n;
  s->dirty = 1;
  /* ev_async_send is safe from any thread; sending under the lock keeps
   * it from racing with stop(). Several sends before the loop wakes
   * collapse into one report of the newest list. */
  if (s->state == STATIC_RUNNING) ev_async_send(s->loop, &s->wake);
  pthread_mutex_unlock(&s->mu);
  qorb__free(old);
  return 0;
}
