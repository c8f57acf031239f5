/* SPDX-License-Identifier: MIT */
/*
 * format.c: the statistics as text, <qorb/stats.h>. Snapshots (what
 * qorb_pool_stats() filled) become the Prometheus text exposition format or
 * one JSON document, written into the caller's buffer.
 *
 * Both formats are driven by tables: one row per Prometheus metric family
 * and one per JSON field, each naming a field of qorb_pool_stats_t,
 * qorb_backend_stats_t or qorb_resolver_stats_t by its offset. Adding a
 * figure is adding a row. The writer counts every byte it would write, past
 * the end of the buffer too, so one pass gives both the text and the size
 * it needs.
 *
 * Prometheus wants all series of one family together, under one # HELP and
 * # TYPE, whatever the number of pools: the outer loop is over families and
 * the inner one over pools, so every pool's snapshot must be at hand at
 * once. That is why the live calls snapshot every pool first, into one
 * allocation, and only then format.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"
#include "qorb/stats.h"

/* Larger than this is not a size qorb_pool_stats_init() set (as stats.c). */
#define STATS_MAX_SIZE 65536
/* Backends a pool may gain between the live calls' count and snapshot. */
#define BACKENDS_SLACK 8

/* ---------------------------------------------------------------------- */
/* The writer                                                              */

typedef struct out {
  char *buf;
  size_t len;
  size_t pos; /* bytes of text so far, including those that did not fit */
} out_t;

static void put(out_t *o, const char *s, size_t n) {
  if (o->pos < o->len) {
    size_t room = o->len - o->pos;
    memcpy(o->buf + o->pos, s, n < room ? n : room);
  }
  o->pos += n;
}

static void put_str(out_t *o, const char *s) { put(o, s, strlen(s)); }

static void put_u64(out_t *o, uint64_t v) {
  char t[20];
  size_t i = sizeof(t);
  do {
    t[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  put(o, t + i, sizeof(t) - i);
}

/* v / 10^digits as an exact decimal without trailing zeros: (1500, 3) is
 * "1.5", (10000, 9) is "0.00001". No floating point, so no rounding. */
static void put_fixed(out_t *o, uint64_t v, unsigned digits) {
  uint64_t scale = 1, frac;
  char t[20];
  unsigned i, n = digits;
  for (i = 0; i < digits; i++)
    scale *= 10;
  put_u64(o, v / scale);
  frac = v % scale;
  if (frac == 0)
    return;
  for (i = digits; i > 0; i--) {
    t[i - 1] = (char)('0' + frac % 10);
    frac /= 10;
  }
  while (n > 0 && t[n - 1] == '0')
    n--;
  put(o, ".", 1);
  put(o, t, n);
}

/* The terminating NUL, *needed, and the too-small rule of <qorb/stats.h>. */
static int finish(out_t *o, size_t *needed) {
  size_t need = o->pos + 1;
  if (needed != NULL)
    *needed = need;
  if (need > o->len) {
    if (o->len > 0)
      o->buf[0] = '\0';
    return QORB_ENOMEM;
  }
  o->buf[o->pos] = '\0';
  return 0;
}

/* A failure before anything was formatted: "" in the buffer, *needed 0. */
static int fail(char *buf, size_t len, size_t *needed, int rc) {
  if (needed != NULL)
    *needed = 0;
  if (buf != NULL && len > 0)
    buf[0] = '\0';
  return rc;
}

/* ---------------------------------------------------------------------- */
/* Text                                                                    */

enum { ESC_PROM, ESC_JSON };

/* The length of the well-formed UTF-8 sequence at `s` (`n` bytes left), or
 * 0: no continuation byte first, no overlong form, no surrogate, nothing
 * over U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  uint32_t cp;
  size_t need, i;
  if (s[0] < 0x80)
    return 1;
  if (s[0] < 0xC2)
    return 0;
  if (s[0] < 0xE0) {
    need = 2;
    cp = s[0] & 0x1Fu;
  } else if (s[0] < 0xF0) {
    need = 3;
    cp = s[0] & 0x0Fu;
  } else if (s[0] < 0xF5) {
    need = 4;
    cp = s[0] & 0x07u;
  } else {
    return 0;
  }
  if (n < need)
    return 0;
  for (i = 1; i < need; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3Fu);
  }
  if (need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
    return 0;
  if (need == 4 && (cp < 0x10000 || cp > 0x10FFFF))
    return 0;
  return need;
}

/*
 * A string of at most `max` bytes (a char array of a snapshot need not be
 * terminated) as the inside of a quoted Prometheus label value or JSON
 * string. Both escape the quote and the backslash. Prometheus has escapes
 * for nothing else but the newline, so other control characters stay as
 * they are (its parser takes them); JSON must escape every one. Each byte
 * that is not part of well-formed UTF-8 becomes U+FFFD.
 */
static void put_text(out_t *o, const char *s, size_t max, int esc) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strnlen(s, max), i = 0, j, k;

  while (i < n) {
    for (j = i;
         j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' && p[j] != '\\';
         j++) {
    }
    put(o, s + i, j - i);
    if (j == n)
      break;
    i = j;
    if (p[i] >= 0x80) {
      k = utf8_len(p + i, n - i);
      if (k > 0)
        put(o, s + i, k);
      else
        put(o, "\xEF\xBF\xBD", 3);
      i += k > 0 ? k : 1;
      continue;
    }
    if (p[i] == '"' || p[i] == '\\') {
      char e[2] = {'\\', (char)p[i]};
      put(o, e, 2);
    } else if (esc == ESC_JSON) {
      char e[6] = {'\\', 'u', '0', '0', hex[p[i] >> 4], hex[p[i] & 15]};
      put(o, e, 6);
    } else if (p[i] == '\n') {
      put(o, "\\n", 2);
    } else {
      put(o, s + i, 1);
    }
    i++;
  }
}

/* ---------------------------------------------------------------------- */
/* Snapshots                                                               */

/*
 * The caller's structs may be of an older, shorter layout (their `size`
 * and `backend_size` say): read them through a copy of ours whose missing
 * fields hold their "none" values, unless they already are at least ours.
 */
static const qorb_pool_stats_t *pool_view(const qorb_stats_snapshot_t *s,
                                          qorb_pool_stats_t *tmp) {
  if (s->st->size >= sizeof(*tmp))
    return s->st;
  memset(tmp, 0, sizeof(*tmp));
  tmp->resolver.last_error_age_ms = -1;
  tmp->resolver.next_query_ms = -1;
  tmp->oldest_claim_ms = -1;
  memcpy(tmp, s->st, s->st->size);
  return tmp;
}

static const qorb_backend_stats_t *backend_view(const qorb_stats_snapshot_t *s,
                                                size_t i,
                                                qorb_backend_stats_t *tmp) {
  size_t stride = s->st->backend_size;
  const char *at = (const char *)s->backends + i * stride;
  if (stride >= sizeof(*tmp) && stride % alignof(qorb_backend_stats_t) == 0)
    return (const qorb_backend_stats_t *)(const void *)at;
  memset(tmp, 0, sizeof(*tmp));
  tmp->last_error_age_ms = -1;
  tmp->online_ms = -1;
  memcpy(tmp, at, stride < sizeof(*tmp) ? stride : sizeof(*tmp));
  return tmp;
}

static int check_snaps(const qorb_stats_snapshot_t *snaps, size_t n) {
  size_t i;
  if (n > 0 && snaps == NULL)
    return QORB_EINVAL;
  for (i = 0; i < n; i++) {
    const qorb_pool_stats_t *st = snaps[i].st;
    if (st == NULL || st->size < offsetof(qorb_pool_stats_t, closing) ||
        st->size > STATS_MAX_SIZE)
      return QORB_EINVAL;
    if (snaps[i].nbackends > 0 &&
        (snaps[i].backends == NULL || st->backend_size < sizeof(qorb_addr_t) ||
         st->backend_size > STATS_MAX_SIZE))
      return QORB_EINVAL;
  }
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Fields                                                                  */

/* The type of a field, as read from its struct. */
enum {
  T_UINT,    /* unsigned */
  T_U64,     /* uint64_t */
  T_BOOL,    /* int, 0 or 1 */
  T_INT,     /* int */
  T_I64,     /* int64_t; negative means "none" */
  T_STR,     /* char[size] */
  T_ADDR,    /* qorb_addr_t: its text */
  T_ERRNAME, /* int error code: its name, "" for 0 */
  T_HIST,    /* uint64_t[QORB_WAIT_BUCKETS], the wait histogram */
  T_RESOLVER /* qorb_resolver_stats_t */
};

/* Where a field lives. */
enum { S_POOL, S_BACKEND, S_RESOLVER };

/* A field that is an array over one of these, labelled by its names. */
enum { D_NONE, D_STATE, D_REASON, D_CAUSE };

static const char *state_name(unsigned i) {
  static const char *const names[] = {"connecting", "idle", "checking",
                                      "claimed"};
  return i < 4 ? names[i] : "?";
}

/* The slot counts are four consecutive unsigned fields in both structs,
 * read as an array. */
#define QORB__STATES_IN_ROW(T)                                                 \
  _Static_assert(                                                              \
      offsetof(T, idle) == offsetof(T, connecting) + sizeof(unsigned) &&       \
          offsetof(T, checking) == offsetof(T, idle) + sizeof(unsigned) &&     \
          offsetof(T, claimed) == offsetof(T, checking) + sizeof(unsigned),    \
      #T ": slot states not in a row")
QORB__STATES_IN_ROW(qorb_pool_stats_t);
QORB__STATES_IN_ROW(qorb_backend_stats_t);

typedef struct dim {
  const char *label; /* the Prometheus label (JSON: the object's keys) */
  unsigned n;
  size_t step;
  const char *(*name)(unsigned i);
} dim_t;

static const dim_t dims[] = {
    [D_NONE] = {NULL, 1, 0, NULL},
    [D_STATE] = {"state", 4, sizeof(unsigned), state_name},
    [D_REASON] = {"reason", QORB_CLAIM_FAIL__COUNT, sizeof(uint64_t),
                  qorb_claim_fail_name},
    [D_CAUSE] = {"cause", QORB_CLOSE__COUNT, sizeof(uint64_t),
                 qorb_close_cause_name},
};

/* A number field: 0 and the value, or -1 when negative ("none"). */
static int read_num(const void *base, size_t off, unsigned type, uint64_t *v) {
  const char *at = (const char *)base + off;
  unsigned u;
  int i;
  int64_t l;
  switch (type) {
  case T_UINT:
    memcpy(&u, at, sizeof(u));
    *v = u;
    return 0;
  case T_U64:
    memcpy(v, at, sizeof(*v));
    return 0;
  case T_BOOL:
  case T_INT:
    memcpy(&i, at, sizeof(i));
    *v = i < 0 ? (uint64_t)0 - (uint64_t)(int64_t)i : (uint64_t)i;
    return i < 0 ? -1 : 0;
  case T_I64:
    memcpy(&l, at, sizeof(l));
    *v = l < 0 ? (uint64_t)0 - (uint64_t)l : (uint64_t)l;
    return l < 0 ? -1 : 0;
  default:
    (void)QORB_NEVER(1);
    *v = 0;
    return 0;
  }
}

/* ---------------------------------------------------------------------- */
/* Prometheus                                                              */

enum { U_COUNT, U_MS, U_NS }; /* shown as is, or in seconds */
enum { NEG_ZERO, NEG_SKIP };  /* "none": a 0 sample, or no sample */

typedef struct family {
  const char *name;
  const char *type; /* "counter", "gauge", "histogram" */
  const char *help;
  unsigned char scope, ftype, unit, neg, dim;
  size_t off;
} family_t;

#define FP(name, type, field, ftype, unit, neg, dim, help)                     \
  {                                                                            \
    name, type, help, S_POOL, ftype, unit, neg, dim,                           \
        offsetof(qorb_pool_stats_t, field)                                     \
  }
#define FB(name, type, field, ftype, unit, neg, dim, help)                     \
  {                                                                            \
    name, type, help, S_BACKEND, ftype, unit, neg, dim,                        \
        offsetof(qorb_backend_stats_t, field)                                  \
  }
#define FR(name, type, field, ftype, unit, neg, help)                          \
  {                                                                            \
    name, type, help, S_RESOLVER, ftype, unit, neg, D_NONE,                    \
        offsetof(qorb_resolver_stats_t, field)                                 \
  }

/* Every metric family, in the order they are written; docs/stats.md lists
 * the same. */
static const family_t families[] = {
    FP("qorb_pool_backends", "gauge", backends, T_UINT, U_COUNT, NEG_ZERO,
       D_NONE, "Backends the pool knows (the resolver's current set)."),
    FP("qorb_pool_backends_online", "gauge", backends_online, T_UINT, U_COUNT,
       NEG_ZERO, D_NONE, "Known backends with at least one connection open."),
    FP("qorb_pool_slots", "gauge", connecting, T_UINT, U_COUNT, NEG_ZERO,
       D_STATE,
       "Connections by state: connecting (or waiting to reconnect), idle, "
       "checking (health check, prepare or recycle), claimed."),
    FP("qorb_pool_waiters", "gauge", waiters, T_UINT, U_COUNT, NEG_ZERO, D_NONE,
       "Claims queued now."),
    FP("qorb_pool_closing", "gauge", closing, T_BOOL, U_COUNT, NEG_ZERO, D_NONE,
       "1 once the pool is closing."),
    FP("qorb_pool_uptime_seconds", "gauge", uptime_ms, T_I64, U_MS, NEG_ZERO,
       D_NONE, "Time since the pool was made."),
    FP("qorb_claims_total", "counter", claims, T_U64, U_COUNT, NEG_ZERO, D_NONE,
       "Claims served."),
    FP("qorb_claim_failures_total", "counter", failed, T_U64, U_COUNT, NEG_ZERO,
       D_REASON, "Claims that failed, by reason."),
    FP("qorb_claim_timeouts_total", "counter", timeouts, T_U64, U_COUNT,
       NEG_ZERO, D_NONE, "Claims that timed out."),
    FP("qorb_claim_leaks_total", "counter", leaks, T_U64, U_COUNT, NEG_ZERO,
       D_NONE, "Claims held longer than the policy's leak_threshold_ms."),
    FP("qorb_claim_wait_seconds", "histogram", wait_hist, T_HIST, U_NS,
       NEG_ZERO, D_NONE,
       "How long claims that queued waited, served or not (claims served at "
       "once do not count)."),
    FP("qorb_claim_wait_max_seconds", "gauge", wait_ns_max, T_U64, U_NS,
       NEG_ZERO, D_NONE, "The longest claim wait since the pool was made."),
    FP("qorb_claim_oldest_seconds", "gauge", oldest_claim_ms, T_I64, U_MS,
       NEG_ZERO, D_NONE,
       "How long the longest-held claim has been held (to 250 ms); 0 when "
       "nothing is claimed."),
    FP("qorb_connections_opened_total", "counter", opened, T_U64, U_COUNT,
       NEG_ZERO, D_NONE, "Connections opened."),
    FP("qorb_connections_closed_total", "counter", closed, T_U64, U_COUNT,
       NEG_ZERO, D_CAUSE, "Connections closed, by cause."),

    FB("qorb_backend_online", "gauge", online, T_BOOL, U_COUNT, NEG_ZERO,
       D_NONE, "1 while the backend has at least one connection open."),
    FB("qorb_backend_slots", "gauge", connecting, T_UINT, U_COUNT, NEG_ZERO,
       D_STATE, "The backend's connections by state (as qorb_pool_slots)."),
    FB("qorb_backend_claims_total", "counter", claims, T_U64, U_COUNT, NEG_ZERO,
       D_NONE, "Claims served from the backend."),
    FB("qorb_backend_connects_total", "counter", connects, T_U64, U_COUNT,
       NEG_ZERO, D_NONE, "Connections made to the backend."),
    FB("qorb_backend_failures_total", "counter", failures, T_U64, U_COUNT,
       NEG_ZERO, D_NONE,
       "Failed connects, health checks, recycles and prepares."),
    FB("qorb_backend_connect_failures_total", "counter", connect_failures,
       T_U64, U_COUNT, NEG_ZERO, D_NONE, "Failed connects."),
    FB("qorb_backend_recent_failures", "gauge", recent_failures, T_UINT,
       U_COUNT, NEG_ZERO, D_NONE,
       "Failures within the policy's failure_window_ms (ranks backends)."),
    FB("qorb_backend_connections_closed_total", "counter", closed, T_U64,
       U_COUNT, NEG_ZERO, D_NONE, "The backend's connections closed."),
    FB("qorb_backend_online_seconds", "gauge", online_ms, T_I64, U_MS, NEG_ZERO,
       D_NONE, "How long the backend has been online; 0 while offline."),
    FB("qorb_backend_last_error_age_seconds", "gauge", last_error_age_ms, T_I64,
       U_MS, NEG_SKIP, D_NONE,
       "Time since the backend's last failure; no sample when it never "
       "failed (the text is in the JSON)."),
    FB("qorb_backend_last_error_current", "gauge", last_error_current, T_BOOL,
       U_COUNT, NEG_ZERO, D_NONE,
       "1 while the last failure still holds: the backend is offline, or "
       "failed since it last served."),

    FR("qorb_resolver_queries_total", "counter", queries, T_U64, U_COUNT,
       NEG_ZERO, "Lookups or queries the resolver sent."),
    FR("qorb_resolver_failures_total", "counter", failures, T_U64, U_COUNT,
       NEG_ZERO, "Lookups that failed."),
    FR("qorb_resolver_changes_total", "counter", changes, T_U64, U_COUNT,
       NEG_ZERO, "Backend sets the resolver reported to the pool."),
    FR("qorb_resolver_backends", "gauge", backends, T_UINT, U_COUNT, NEG_ZERO,
       "Backends the resolver reports now."),
    FR("qorb_resolver_next_query_seconds", "gauge", next_query_ms, T_I64, U_MS,
       NEG_SKIP,
       "Time until the next lookup; 0 while one runs, no sample when none "
       "is planned."),
    FR("qorb_resolver_servers", "gauge", servers, T_UINT, U_COUNT, NEG_ZERO,
       "Servers the resolver asks (DNS)."),
    FR("qorb_resolver_servers_failing", "gauge", servers_failing, T_UINT,
       U_COUNT, NEG_ZERO, "Of those, servers failing since their last answer."),
    FR("qorb_resolver_last_error_age_seconds", "gauge", last_error_age_ms,
       T_I64, U_MS, NEG_SKIP,
       "Time since the resolver's last failure; no sample when none."),
};

static void prom_label(out_t *o, const char *name, const char *value,
                       size_t max) {
  put_str(o, name);
  put(o, "=\"", 2);
  put_text(o, value, max, ESC_PROM);
  put(o, "\"", 1);
}

/* `{pool="..."` and the labels of the scope, without the closing brace. */
static void prom_labels(out_t *o, unsigned scope, const qorb_pool_stats_t *st,
                        const qorb_backend_stats_t *b) {
  put(o, "{", 1);
  prom_label(o, "pool", st->name, sizeof(st->name));
  if (scope == S_BACKEND) {
    put(o, ",", 1);
    prom_label(o, "backend", b->addr.text, sizeof(b->addr.text));
  } else if (scope == S_RESOLVER) {
    put(o, ",", 1);
    prom_label(o, "resolver", st->resolver.kind, sizeof(st->resolver.kind));
    put(o, ",", 1);
    prom_label(o, "name", st->resolver.name, sizeof(st->resolver.name));
  }
}

static void prom_value(out_t *o, uint64_t v, unsigned unit) {
  put(o, " ", 1);
  if (unit == U_MS)
    put_fixed(o, v, 3);
  else if (unit == U_NS)
    put_fixed(o, v, 9);
  else
    put_u64(o, v);
  put(o, "\n", 1);
}

/* The samples of one family for one pool, or one backend of it. */
static void prom_samples(out_t *o, const family_t *f,
                         const qorb_pool_stats_t *st,
                         const qorb_backend_stats_t *b, const void *base) {
  const dim_t *d = &dims[f->dim];
  uint64_t v;
  unsigned j;
  for (j = 0; j < d->n; j++) {
    if (read_num(base, f->off + j * d->step, f->ftype, &v) < 0) {
      if (f->neg == NEG_SKIP)
        continue;
      v = 0;
    }
    put_str(o, f->name);
    prom_labels(o, f->scope, st, b);
    if (d->label != NULL) {
      put(o, ",", 1);
      prom_label(o, d->label, d->name(j), (size_t)-1);
    }
    put(o, "}", 1);
    prom_value(o, v, f->unit);
  }
}

/* The wait histogram: cumulative buckets, the sum, and the count (the +Inf
 * bucket, so that the two always agree even when `waited` moved on while
 * the snapshot was read). */
static void prom_hist(out_t *o, const family_t *f,
                      const qorb_pool_stats_t *st) {
  uint64_t run = 0, le;
  unsigned i;
  for (i = 0; i < QORB_WAIT_BUCKETS; i++) {
    run += st->wait_hist[i];
    put_str(o, f->name);
    put_str(o, "_bucket");
    prom_labels(o, S_POOL, st, NULL);
    put(o, ",le=\"", 5);
    le = qorb_wait_bucket_le_ns(i);
    if (le == UINT64_MAX)
      put_str(o, "+Inf");
    else
      put_fixed(o, le, 9);
    put(o, "\"}", 2);
    prom_value(o, run, U_COUNT);
  }
  put_str(o, f->name);
  put_str(o, "_sum");
  prom_labels(o, S_POOL, st, NULL);
  put(o, "}", 1);
  prom_value(o, st->wait_ns_total, U_NS);
  put_str(o, f->name);
  put_str(o, "_count");
  prom_labels(o, S_POOL, st, NULL);
  put(o, "}", 1);
  prom_value(o, run, U_COUNT);
}

int qorb_stats_format_prometheus(const qorb_stats_snapshot_t *snaps, size_t n,
                                 char *buf, size_t len, size_t *needed) {
  out_t o = {buf, len, 0};
  qorb_pool_stats_t ptmp;
  qorb_backend_stats_t btmp;
  size_t f, i, k;

  if ((buf == NULL && len > 0) || check_snaps(snaps, n) != 0)
    return fail(buf, len, needed, QORB_EINVAL);
  for (f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
    const family_t *fam = &families[f];
    put_str(&o, "# HELP ");
    put_str(&o, fam->name);
    put(&o, " ", 1);
    put_str(&o, fam->help);
    put_str(&o, "\n# TYPE ");
    put_str(&o, fam->name);
    put(&o, " ", 1);
    put_str(&o, fam->type);
    put(&o, "\n", 1);
    for (i = 0; i < n; i++) {
      const qorb_pool_stats_t *st = pool_view(&snaps[i], &ptmp);
      if (fam->ftype == T_HIST) {
        prom_hist(&o, fam, st);
      } else if (fam->scope == S_BACKEND) {
        for (k = 0; k < snaps[i].nbackends; k++) {
          const qorb_backend_stats_t *b = backend_view(&snaps[i], k, &btmp);
          prom_samples(&o, fam, st, b, b);
        }
      } else {
        prom_samples(&o, fam, st, NULL,
                     fam->scope == S_RESOLVER ? (const void *)&st->resolver
                                              : (const void *)st);
      }
    }
  }
  return finish(&o, needed);
}

/* ---------------------------------------------------------------------- */
/* JSON                                                                    */

typedef struct jfield {
  const char *key;
  unsigned char type, dim;
  size_t off, size;
} jfield_t;

#define JF(T, key, field, type, dim)                                           \
  { key, type, dim, offsetof(T, field), sizeof(((T *)0)->field) }
/* The usual case: the key is the field's name. */
#define JP(field, type) JF(qorb_pool_stats_t, #field, field, type, D_NONE)
#define JB(field, type) JF(qorb_backend_stats_t, #field, field, type, D_NONE)
#define JR(field, type) JF(qorb_resolver_stats_t, #field, field, type, D_NONE)

/* Every field, keyed by its struct field's name (but "backends_known":
 * "backends" is the list). docs/stats.md lists the same. */
static const jfield_t json_pool[] = {
    JP(name, T_STR),
    JP(closing, T_BOOL),
    JP(uptime_ms, T_I64),
    JF(qorb_pool_stats_t, "backends_known", backends, T_UINT, D_NONE),
    JP(backends_online, T_UINT),
    JP(connecting, T_UINT),
    JP(idle, T_UINT),
    JP(checking, T_UINT),
    JP(claimed, T_UINT),
    JP(waiters, T_UINT),
    JP(claims, T_U64),
    JP(claim_failures, T_U64),
    JF(qorb_pool_stats_t, "failed", failed, T_U64, D_REASON),
    JP(timeouts, T_U64),
    JP(queue_full, T_U64),
    JP(leaks, T_U64),
    JP(waited, T_U64),
    JP(wait_ns_total, T_U64),
    JP(wait_ns_max, T_U64),
    JP(wait_hist, T_HIST),
    JP(opened, T_U64),
    JF(qorb_pool_stats_t, "closed", closed, T_U64, D_CAUSE),
    JP(oldest_claim_ms, T_I64),
    JP(oldest_claim_site, T_STR),
    JP(oldest_claim_backend, T_ADDR),
    JP(resolver, T_RESOLVER),
};

static const jfield_t json_resolver[] = {
    JR(kind, T_STR),
    JR(name, T_STR),
    JR(queries, T_U64),
    JR(failures, T_U64),
    JR(changes, T_U64),
    JR(last_error, T_INT),
    JF(qorb_resolver_stats_t, "last_error_name", last_error, T_ERRNAME, D_NONE),
    JR(last_error_text, T_STR),
    JR(last_error_age_ms, T_I64),
    JR(backends, T_UINT),
    JR(next_query_ms, T_I64),
    JR(servers, T_UINT),
    JR(servers_failing, T_UINT),
};

static const jfield_t json_backend[] = {
    JB(addr, T_ADDR),
    JB(online, T_BOOL),
    JB(connecting, T_UINT),
    JB(idle, T_UINT),
    JB(checking, T_UINT),
    JB(claimed, T_UINT),
    JB(claims, T_U64),
    JB(connects, T_U64),
    JB(failures, T_U64),
    JB(connect_failures, T_U64),
    JB(recent_failures, T_UINT),
    JB(closed, T_U64),
    JB(online_ms, T_I64),
    JB(last_error, T_STR),
    JB(last_error_age_ms, T_I64),
    JB(last_error_current, T_BOOL),
};

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static void json_str(out_t *o, const char *s, size_t max) {
  put(o, "\"", 1);
  put_text(o, s, max, ESC_JSON);
  put(o, "\"", 1);
}

static void json_key(out_t *o, const char *key, int first) {
  if (!first)
    put(o, ",", 1);
  json_str(o, key, (size_t)-1);
  put(o, ":", 1);
}

static void json_num(out_t *o, const void *base, size_t off, unsigned type) {
  uint64_t v;
  int neg = read_num(base, off, type, &v) < 0;
  if (type == T_BOOL) {
    put_str(o, v != 0 ? "true" : "false");
    return;
  }
  if (neg)
    put(o, "-", 1);
  put_u64(o, v);
}

/* The histogram's buckets as they are counted (not cumulative), each with
 * its upper bound; null for the last, unbounded one. */
static void json_hist(out_t *o, const uint64_t *hist) {
  unsigned i;
  uint64_t le;
  put(o, "[", 1);
  for (i = 0; i < QORB_WAIT_BUCKETS; i++) {
    put_str(o, i == 0 ? "{\"le_ns\":" : ",{\"le_ns\":");
    le = qorb_wait_bucket_le_ns(i);
    if (le == UINT64_MAX)
      put_str(o, "null");
    else
      put_u64(o, le);
    put_str(o, ",\"count\":");
    put_u64(o, hist[i]);
    put(o, "}", 1);
  }
  put(o, "]", 1);
}

static void json_fields(out_t *o, const void *base, const jfield_t *fields,
                        size_t n);

static void json_object(out_t *o, const void *base, const jfield_t *fields,
                        size_t n) {
  put(o, "{", 1);
  json_fields(o, base, fields, n);
  put(o, "}", 1);
}

/* `"key":value` for each field, comma-separated, without the braces. */
static void json_fields(out_t *o, const void *base, const jfield_t *fields,
                        size_t n) {
  const char *b = base;
  size_t i;
  unsigned j;
  int code;
  for (i = 0; i < n; i++) {
    const jfield_t *f = &fields[i];
    const dim_t *d = &dims[f->dim];
    json_key(o, f->key, i == 0);
    if (f->dim != D_NONE) {
      put(o, "{", 1);
      for (j = 0; j < d->n; j++) {
        json_key(o, d->name(j), j == 0);
        json_num(o, base, f->off + j * d->step, f->type);
      }
      put(o, "}", 1);
      continue;
    }
    switch (f->type) {
    case T_STR:
      json_str(o, b + f->off, f->size);
      break;
    case T_ADDR: {
      const qorb_addr_t *a = (const qorb_addr_t *)(const void *)(b + f->off);
      json_str(o, a->text, sizeof(a->text));
      break;
    }
    case T_ERRNAME:
      memcpy(&code, b + f->off, sizeof(code));
      json_str(o, code != 0 ? qorb_err_name(code) : "", (size_t)-1);
      break;
    case T_HIST:
      json_hist(o, (const uint64_t *)(const void *)(b + f->off));
      break;
    case T_RESOLVER:
      json_object(o, b + f->off, json_resolver, NFIELDS(json_resolver));
      break;
    default:
      json_num(o, base, f->off, f->type);
      break;
    }
  }
}

int qorb_stats_format_json(const qorb_stats_snapshot_t *snaps, size_t n,
                           char *buf, size_t len, size_t *needed) {
  out_t o = {buf, len, 0};
  qorb_pool_stats_t ptmp;
  qorb_backend_stats_t btmp;
  size_t i, k;

  if ((buf == NULL && len > 0) || check_snaps(snaps, n) != 0)
    return fail(buf, len, needed, QORB_EINVAL);
  put_str(&o, "{\"pools\":[");
  for (i = 0; i < n; i++) {
    const qorb_pool_stats_t *st = pool_view(&snaps[i], &ptmp);
    if (i > 0)
      put(&o, ",", 1);
    put(&o, "{", 1);
    json_fields(&o, st, json_pool, NFIELDS(json_pool));
    put_str(&o, ",\"backends\":[");
    for (k = 0; k < snaps[i].nbackends; k++) {
      if (k > 0)
        put(&o, ",", 1);
      json_object(&o, backend_view(&snaps[i], k, &btmp), json_backend,
                  NFIELDS(json_backend));
    }
    put_str(&o, "]}");
  }
  put_str(&o, "]}\n");
  return finish(&o, needed);
}

/* ---------------------------------------------------------------------- */
/* Live pools                                                              */

typedef int (*format_fn)(const qorb_stats_snapshot_t *snaps, size_t n,
                         char *buf, size_t len, size_t *needed);

static size_t round_up(size_t n) {
  size_t a = alignof(max_align_t);
  return (n + a - 1) / a * a;
}

/*
 * Snapshot every pool into one block (each pool's stats, then room for
 * `cap` backends per pool, then the snapshot array), format, free. `cap`
 * comes from a first pass that only counts backends: the largest count
 * plus a little for backends that arrive meanwhile, at most
 * QORB_STATS_MAX_BACKENDS.
 */
static int live(qorb_pool_t *const *pools, size_t n, char *buf, size_t len,
                size_t *needed, format_fn fn) {
  qorb_pool_stats_t probe, *sts;
  qorb_backend_stats_t *bs;
  qorb_stats_snapshot_t *snaps;
  size_t i, cnt, most = 0, cap, per, a, b;
  char *block;
  int rc;

  if ((n > 0 && pools == NULL) || (buf == NULL && len > 0))
    return fail(buf, len, needed, QORB_EINVAL);
  if (n == 0)
    return fn(NULL, 0, buf, len, needed);
  for (i = 0; i < n; i++) {
    if (pools[i] == NULL)
      return fail(buf, len, needed, QORB_EINVAL);
    qorb_pool_stats_init(&probe);
    rc = qorb_pool_stats(pools[i], &probe, NULL, 0, &cnt);
    if (rc != 0)
      return fail(buf, len, needed, rc);
    if (cnt > most)
      most = cnt;
  }
  cap = most + BACKENDS_SLACK;
  if (cap > QORB_STATS_MAX_BACKENDS)
    cap = QORB_STATS_MAX_BACKENDS;
  per = sizeof(*sts) + cap * sizeof(*bs) + sizeof(*snaps);
  if (n > (SIZE_MAX - 3 * alignof(max_align_t)) / per)
    return fail(buf, len, needed, QORB_ENOMEM);
  a = round_up(n * sizeof(*sts));
  b = round_up(n * cap * sizeof(*bs));
  block = qorb__malloc(a + b + n * sizeof(*snaps));
  if (block == NULL)
    return fail(buf, len, needed, QORB_ENOMEM);
  sts = (qorb_pool_stats_t *)(void *)block;
  bs = (qorb_backend_stats_t *)(void *)(block + a);
  snaps = (qorb_stats_snapshot_t *)(void *)(block + a + b);
  for (i = 0; i < n; i++) {
    qorb_pool_stats_init(&sts[i]);
    rc = qorb_pool_stats(pools[i], &sts[i], bs + i * cap, cap, &cnt);
    if (rc != 0) {
      fail(buf, len, needed, rc);
      goto done;
    }
    snaps[i].st = &sts[i];
    snaps[i].backends = bs + i * cap;
    snaps[i].nbackends = cnt < cap ? cnt : cap;
  }
  rc = fn(snaps, n, buf, len, needed);
done:
  qorb__free(block);
  return rc;
}

int qorb_stats_prometheus(qorb_pool_t *const *pools, size_t n, char *buf,
                          size_t len, size_t *needed) {
  return live(pools, n, buf, len, needed, qorb_stats_format_prometheus);
}

int qorb_stats_json(qorb_pool_t *const *pools, size_t n, char *buf, size_t len,
                    size_t *needed) {
  return live(pools, n, buf, len, needed, qorb_stats_format_json);
}
