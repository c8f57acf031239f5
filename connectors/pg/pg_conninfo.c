/* SPDX-License-Identifier: MIT */
/*
 * pg_conninfo.c: qorb-pg's conninfo compiler. The user's template (a
 * conninfo string or URI, and/or keyword arrays) is parsed once, when the
 * connector is made, with libpq's own parser (PQconninfoParse), so that a
 * bad template is refused then with libpq's message. The result is the
 * keyword/value arrays that pg.c hands to PQconnectStartParams on every
 * connect, with qorb's TCP defaults for what the template leaves unset and
 * three entries last: host, hostaddr and port, whose values are buffers of
 * the context, filled per backend just before each connect. Pure: no I/O,
 * no loop.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pg_int.h"

/* The keywords qorb sets itself or gives defaults for. */
#define KW_HOST "host"
#define KW_HOSTADDR "hostaddr"
#define KW_PORT "port"

void qorb__pg_set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (!err || errlen == 0) return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* libpq's messages end in a newline and may go on with more lines (the
   server's LINE/HINT context, "Is the server running...?"): the first line
   says what happened and fits the backend's bounded error buffer. */
int qorb__pg_first_line_len(const char *msg) {
  size_t n = msg ? strcspn(msg, "\n") : 0;
  while (n > 0 && (msg[n - 1] == ' ' || msg[n - 1] == '\r' ||
                   msg[n - 1] == '\t'))
    n--;
  return n > 4096 ? 4096 : (int)n;
}

/*
 * The options struct grows at its end, and a caller may be built against
 * another version than this library: `size` is the caller's sizeof. A
 * shorter (older) struct gets the defaults of the fields it has and
 * nothing is written past its end; a longer (newer) one is zeroed beyond
 * the fields this library knows, which it then ignores. `size` records the
 * caller's size either way.
 */
void qorb_pg_options_init_(qorb_pg_options_t *o, size_t size) {
  qorb_pg_options_t d;
  if (!o || size < sizeof(d.size)) return;
  memset(&d, 0, sizeof(d));
  d.size = size;
  d.role = QORB_PG_ROLE_ANY;
  d.reset_sql = QORB_PG_DISCARD_ALL;
  d.keepalives = 1;
  d.keepalives_idle_s = 5;
  d.keepalives_interval_s = 2;
  d.keepalives_count = 3;
  d.tcp_user_timeout_ms = 10000;
  memset(o, 0, size);
  memcpy(o, &d, size < sizeof(d) ? size : sizeof(d));
}

/* A growing list of keyword/value pairs; the strings are owned. */
typedef struct kvlist {
  char **kw, **val;
  size_t n, cap;
} kvlist_t;

static void kv_free(kvlist_t *l) {
  size_t i;
  for (i = 0; i < l->n; i++) {
    qorb_free(l->kw[i]);
    qorb_free(l->val[i]);
  }
  qorb_free(l->kw);
  qorb_free(l->val);
  memset(l, 0, sizeof(*l));
}

static int kv_find(const kvlist_t *l, const char *kw) {
  size_t i;
  for (i = 0; i < l->n; i++)
    if (strcmp(l->kw[i], kw) == 0) return (int)i;
  return -1;
}

/* Set kw=val, replacing an earlier value of the same keyword. */
static int kv_set(kvlist_t *l, const char *kw, const char *val) {
  int i = kv_find(l, kw);
  char *v = qorb_strdup(val);
  if (!v) return QORB_ENOMEM;
  if (i >= 0) {
    qorb_free(l->val[i]);
    l->val[i] = v;
    return 0;
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    char **kwn = qorb_realloc(l->kw, cap * sizeof(*kwn));
    char **valn;
    if (!kwn) goto nomem;
    l->kw = kwn;
    valn = qorb_realloc(l->val, cap * sizeof(*valn));
    if (!valn) goto nomem;
    l->val = valn;
    l->cap = cap;
  }
  l->kw[l->n] = qorb_strdup(kw);
  if (!l->kw[l->n]) goto nomem;
  l->val[l->n] = v;
  l->n++;
  return 0;
nomem:
  qorb_free(v);
  return QORB_ENOMEM;
}

/* Parse a conninfo string or URI with libpq and add what it sets. */
static int kv_parse(kvlist_t *l, const char *conninfo, char *err,
                    size_t errlen) {
  char *msg = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo, &msg), *o;
  int rc = 0;
  if (!opts) {
    if (msg) {
      qorb__pg_set_err(err, errlen, "%.*s", qorb__pg_first_line_len(msg), msg);
      PQfreemem(msg);
      return QORB_ECONFIG;
    }
    return QORB_ENOMEM; /* libpq gives no message only when out of memory */
  }
  for (o = opts; o->keyword && rc == 0; o++)
    if (o->val && o->val[0]) rc = kv_set(l, o->keyword, o->val);
  PQconninfoFree(opts);
  return rc;
}

/* Quote a value for a conninfo string: 'value' with \ and ' escaped. */
static int pg_append_quoted(char **buf, size_t *len, size_t *cap,
                            const char *kw, const char *val) {
  size_t need = strlen(kw) + 2 * strlen(val) + 8;
  const char *p;
  char *b;
  if (*len + need > *cap) {
    size_t ncap = (*cap + need) * 2;
    char *nb = qorb_realloc(*buf, ncap);
    if (!nb) return QORB_ENOMEM;
    *buf = nb;
    *cap = ncap;
  }
  b = *buf + *len;
  b += sprintf(b, "%s='", kw);
  for (p = val; *p; p++) {
    if (*p == '\\' || *p == '\'') *b++ = '\\';
    *b++ = *p;
  }
  *b++ = '\'';
  *b++ = ' ';
  *b = '\0';
  *len = (size_t)(b - *buf);
  return 0;
}

/* Keyword arrays go through the same parser as conninfo strings, so that an
   unknown keyword gets libpq's own message. */
static int kv_parse_arrays(kvlist_t *l, const char *const *keywords,
                           const char *const *values, char *err,
                           size_t errlen) {
  char *buf = NULL;
  size_t len = 0, cap = 0, i;
  int rc = 0;
  for (i = 0; keywords[i] && rc == 0; i++) {
    if (!values[i] || !values[i][0]) continue;
    if (!keywords[i][0]) {
      qorb__pg_set_err(err, errlen, "empty keyword at index %zu", i);
      rc = QORB_ECONFIG;
      break;
    }
    /* A keyword with a space or '=' would parse as something else. */
    if (strpbrk(keywords[i], " \t\n\r='\\")) {
      qorb__pg_set_err(err, errlen, "invalid connection option \"%s\"",
                       keywords[i]);
      rc = QORB_ECONFIG;
      break;
    }
    rc = pg_append_quoted(&buf, &len, &cap, keywords[i], values[i]);
  }
  if (rc == 0 && buf) rc = kv_parse(l, buf, err, errlen);
  qorb_free(buf);
  return rc;
}

/* Take the pairs over into the context's NULL-terminated arrays, with three
   more entries at the end for host, hostaddr and port. */
static int pg_ctx_build(pg_ctx_t *ctx, kvlist_t *l, const char *host) {
  size_t i, k = 0, total = l->n + 4;
  char *h = NULL;
  ctx->keywords = qorb_calloc(total, sizeof(*ctx->keywords));
  ctx->values = qorb_calloc(total, sizeof(*ctx->values));
  ctx->owned = qorb_calloc(2 * l->n + 1, sizeof(*ctx->owned));
  if (!ctx->keywords || !ctx->values || !ctx->owned) return QORB_ENOMEM;
  /* `host` points into the list, which the loop below empties. */
  if (host) {
    h = qorb_strdup(host);
    if (!h) return QORB_ENOMEM;
    ctx->owned[ctx->nowned++] = h;
  }
  for (i = 0; i < l->n; i++) {
    if (strcmp(l->kw[i], KW_HOST) == 0 || strcmp(l->kw[i], KW_HOSTADDR) == 0 ||
        strcmp(l->kw[i], KW_PORT) == 0) {
      qorb_free(l->kw[i]);
      qorb_free(l->val[i]);
    } else {
      ctx->keywords[k] = l->kw[i];
      ctx->values[k] = l->val[i];
      ctx->owned[ctx->nowned++] = l->kw[i];
      ctx->owned[ctx->nowned++] = l->val[i];
      k++;
    }
    l->kw[i] = l->val[i] = NULL;
  }
  l->n = 0;
  ctx->keywords[k] = KW_HOST;
  if (h) {
    ctx->values[k] = h;
  } else {
    /* No usable host in the template: name the backend by its address, so
       that PGHOST from the environment cannot disagree with hostaddr. */
    ctx->values[k] = ctx->hostaddr;
  }
  k++;
  ctx->keywords[k] = KW_HOSTADDR;
  ctx->values[k] = ctx->hostaddr;
  k++;
  ctx->keywords[k] = KW_PORT;
  ctx->values[k] = ctx->port;
  k++;
  ctx->keywords[k] = NULL;
  ctx->values[k] = NULL;
  return 0;
}

/* qorb's TCP defaults, for the keywords the template does not set. */
static int pg_add_tcp_defaults(kvlist_t *l, const qorb_pg_options_t *o) {
  char num[24];
  int rc = 0, on = o->keepalives;
  if (kv_find(l, "keepalives") < 0) rc = kv_set(l, "keepalives", on ? "1" : "0");
  if (rc == 0 && on && o->keepalives_idle_s &&
      kv_find(l, "keepalives_idle") < 0) {
    snprintf(num, sizeof(num), "%u", o->keepalives_idle_s);
    rc = kv_set(l, "keepalives_idle", num);
  }
  if (rc == 0 && on && o->keepalives_interval_s &&
      kv_find(l, "keepalives_interval") < 0) {
    snprintf(num, sizeof(num), "%u", o->keepalives_interval_s);
    rc = kv_set(l, "keepalives_interval", num);
  }
  if (rc == 0 && on && o->keepalives_count &&
      kv_find(l, "keepalives_count") < 0) {
    snprintf(num, sizeof(num), "%u", o->keepalives_count);
    rc = kv_set(l, "keepalives_count", num);
  }
  if (rc == 0 && o->tcp_user_timeout_ms &&
      kv_find(l, "tcp_user_timeout") < 0) {
    snprintf(num, sizeof(num), "%u", o->tcp_user_timeout_ms);
    rc = kv_set(l, "tcp_user_timeout", num);
  }
  return rc;
}

/* The template's host, if it is one name fit for TLS and password files. */
static const char *pg_single_host(const kvlist_t *l) {
  int i = kv_find(l, KW_HOST);
  const char *h;
  if (i < 0) return NULL;
  h = l->val[i];
  if (!h[0] || strchr(h, ',') || h[0] == '/' || h[0] == '@') return NULL;
  return h;
}

void qorb__pg_ctx_free(pg_ctx_t *ctx) {
  size_t i;
  if (!ctx) return;
  for (i = 0; i < ctx->nowned; i++) qorb_free(ctx->owned[i]);
  qorb_free(ctx->owned);
  qorb_free((void *)ctx->keywords);
  qorb_free((void *)ctx->values);
  qorb_free(ctx->reset_sql);
  qorb_free(ctx->acquire_sql);
  qorb_free(ctx);
}

/*
 * Read the caller's options into a whole struct of this library's size:
 * the defaults, overlaid with the caller's fields. An older caller's
 * shorter struct leaves what it lacks at the defaults, and nothing past its
 * end is read; a newer caller's longer struct has fields beyond ours, which
 * are ignored. The oldest struct had the template and the role.
 */
static int pg_options_read(qorb_pg_options_t *o, const qorb_pg_options_t *opts,
                           char *err, size_t errlen) {
  qorb_pg_options_init(o);
  if (!opts) return 0;
  if (opts->size < offsetof(qorb_pg_options_t, role) + sizeof(opts->role)) {
    qorb__pg_set_err(err, errlen,
                     "options not initialised with qorb_pg_options_init()");
    return QORB_EINVAL;
  }
  memcpy(o, opts, opts->size < sizeof(*o) ? opts->size : sizeof(*o));
  o->size = sizeof(*o);
  return 0;
}

int qorb__pg_ctx_new(pg_ctx_t **out, const qorb_pg_options_t *caller,
                     char *err, size_t errlen) {
  qorb_pg_options_t o, *opts = &o;
  kvlist_t l;
  pg_ctx_t *ctx = NULL;
  const char *host;
  int rc;

  memset(&l, 0, sizeof(l));
  *out = NULL;
  if ((rc = pg_options_read(&o, caller, err, errlen)) != 0) return rc;
  if (opts->keywords && !opts->values) {
    qorb__pg_set_err(err, errlen, "keywords given without values");
    return QORB_EINVAL;
  }
  if (opts->role != QORB_PG_ROLE_ANY && opts->role != QORB_PG_ROLE_PRIMARY &&
      opts->role != QORB_PG_ROLE_STANDBY) {
    qorb__pg_set_err(err, errlen, "unknown role %d", (int)opts->role);
    return QORB_EINVAL;
  }

  ctx = qorb_calloc(1, sizeof(*ctx));
  if (!ctx) return QORB_ENOMEM;
  ctx->role = opts->role;
  rc = QORB_ENOMEM;
  if (opts->reset_sql && opts->reset_sql[0] &&
      !(ctx->reset_sql = qorb_strdup(opts->reset_sql)))
    goto fail;
  if (opts->acquire_sql && opts->acquire_sql[0] &&
      !(ctx->acquire_sql = qorb_strdup(opts->acquire_sql)))
    goto fail;

  rc = 0;
  if (opts->conninfo && opts->conninfo[0])
    rc = kv_parse(&l, opts->conninfo, err, errlen);
  if (rc == 0 && opts->keywords)
    rc = kv_parse_arrays(&l, opts->keywords, opts->values, err, errlen);
  if (rc == 0) rc = pg_add_tcp_defaults(&l, opts);
  if (rc != 0) goto fail;
  host = pg_single_host(&l);
  rc = pg_ctx_build(ctx, &l, host);
  if (rc != 0) goto fail;
  kv_free(&l);
  *out = ctx;
  return 0;

fail:
  if (rc == QORB_ENOMEM) qorb__pg_set_err(err, errlen, "out of memory");
  kv_free(&l);
  qorb__pg_ctx_free(ctx);
  return rc;
}

int qorb__pg_ctx_set_backend(pg_ctx_t *ctx, const qorb_addr_t *addr) {
  size_t n = strlen(addr->host);
  if (n == 0 || n >= sizeof(ctx->hostaddr)) return QORB_EBADADDR;
  memcpy(ctx->hostaddr, addr->host, n + 1);
  snprintf(ctx->port, sizeof(ctx->port), "%u", (unsigned)addr->port);
  return 0;
}
