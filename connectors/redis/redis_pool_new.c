/* SPDX-License-Identifier: MIT */
/*
 * redis_pool_new.c: qorb_redis_pool_new(), a pool from one URL,
 * "redis://[[user]:password@]host:port[,host:port...][/db][?k=v&...]".
 * The user information is percent-decoded and becomes AUTH; the path the
 * database; the query the pool_* settings (shared with qorb-pg, see
 * ../connstr.c), the flavour and the client name. The hosts become the
 * resolver: numeric addresses a static resolver's list, each host name a
 * DNS resolver. qorb_redis_pool_new_with() starts from the caller's policy.
 */
#define _POSIX_C_SOURCE 200809L

#include <string.h>

#include "../connstr.h"
#include "qorb/redis.h"
#include "qorb/static.h"

#define REDIS_DEFAULT_PORT 6379u

void qorb__redis_url_free(qorb__redis_url_t *u) {
  if (!u) return;
  qorb_free(u->backends);
  qorb_free(u->names);
  qorb_free(u->dns_servers);
  qorb_free(u->user);
  qorb_free(u->password);
  qorb_free(u->client_name);
  qorb_free(u->name);
  memset(u, 0, sizeof(*u));
}

typedef struct hosts_acc {
  qorb__connstr_hosts_t hosts;
  char *err;
  size_t errlen;
} hosts_acc_t;

static int host_cb(void *arg, const char *h, size_t hlen, const char *port,
                   size_t portlen) {
  hosts_acc_t *a = arg;
  unsigned p = REDIS_DEFAULT_PORT;
  if (portlen > 0 && qorb__connstr_port(port, portlen, &p) != 0) {
    qorb__connstr_err(a->err, a->errlen, "invalid port \"%.*s\"",
                      (int)(portlen > 20 ? 20 : portlen), port);
    return QORB_ECONFIG;
  }
  return qorb__connstr_add_host(&a->hosts, h, hlen, p, 0, a->err, a->errlen);
}

static int parse_db(const char *s, size_t n, int *db) {
  long v = 0;
  size_t i;
  if (n == 0 || n > 9) return QORB_ECONFIG;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return QORB_ECONFIG;
    v = v * 10 + (s[i] - '0');
  }
  *db = (int)v;
  return 0;
}

/* One query parameter, decoded. */
static int url_param(qorb__redis_url_t *u, const char *k, const char *v,
                     char *err, size_t errlen) {
  if (strncmp(k, "pool_", 5) == 0)
    return qorb__connstr_pool_key(&u->policy, &u->name, &u->dns_servers, k, v,
                                  err, errlen);
  if (strcmp(k, "flavour") == 0 || strcmp(k, "flavor") == 0) {
    if (strcmp(v, "blocking") == 0) {
      u->flavour = QORB_REDIS_BLOCKING;
    } else if (strcmp(v, "async") == 0) {
      u->flavour = QORB_REDIS_ASYNC;
    } else {
      qorb__connstr_err(err, errlen,
                        "%s: unknown value \"%s\" (blocking or async)", k, v);
      return QORB_ECONFIG;
    }
    return 0;
  }
  if (strcmp(k, "client_name") == 0) {
    char *c = qorb_strdup(v);
    if (!c) return QORB_ENOMEM;
    qorb_free(u->client_name);
    u->client_name = c;
    return 0;
  }
  qorb__connstr_err(err, errlen,
                    "unknown URL parameter \"%s\" (pool_* settings, flavour, "
                    "client_name)",
                    k);
  return QORB_ECONFIG;
}

int qorb__redis_url_parse(qorb__redis_url_t *out, const char *url,
                          const qorb_policy_t *base, char *err,
                          size_t errlen) {
  const char *start, *p, *end;
  hosts_acc_t acc;
  int rc = 0;

  if (err && errlen) err[0] = '\0';
  if (out) memset(out, 0, sizeof(*out));
  if (!out || !url) {
    qorb__connstr_err(err, errlen, "NULL argument");
    return QORB_EINVAL;
  }
  memset(&acc, 0, sizeof(acc));
  acc.err = err;
  acc.errlen = errlen;
  out->flavour = QORB_REDIS_BLOCKING;
  rc = qorb__connstr_policy_base(&out->policy, base, err, errlen);
  if (rc != 0) goto fail;

  if (strncmp(url, "rediss://", 9) == 0) {
#if defined(QORB_REDIS_HAVE_TLS)
    qorb__connstr_err(err, errlen,
                      "rediss://: qorb_redis_pool_new() makes no TLS context; "
                      "make a redisSSLContext and give it to "
                      "qorb_redis_connector_new() (options.tls)");
#else
    qorb__connstr_err(err, errlen,
                      "rediss://: this libqorb-redis was built without TLS "
                      "(it needs hiredis 1.x with hiredis_ssl)");
#endif
    return QORB_ENOTSUP;
  }
  if (strncmp(url, "redis://", 8) != 0) {
    qorb__connstr_err(err, errlen, "not a redis:// URL");
    return QORB_ECONFIG;
  }
  start = p = url + 8;

  /* User information ends at the last '@' before the first '/' or '?', so
     a password may hold an unencoded '@'; '/' and '?' must be encoded
     (%2F, %3F). */
  end = start + strcspn(start, "/?");
  for (p = end; p > start && p[-1] != '@'; p--) {
  }
  if (p > start) {
    const char *at = p - 1;
    const char *colon = memchr(start, ':', (size_t)(at - start));
    if (colon) {
      if (colon > start)
        rc = qorb__connstr_pct_decode(start, (size_t)(colon - start),
                                      &out->user, "user", err, errlen);
      if (rc == 0 && at > colon + 1)
        rc = qorb__connstr_pct_decode(colon + 1, (size_t)(at - colon - 1),
                                      &out->password, "password", err, errlen);
    } else if (at > start) {
      /* "redis://secret@host": a password alone, as redis-cli reads it. */
      rc = qorb__connstr_pct_decode(start, (size_t)(at - start),
                                    &out->password, "password", err, errlen);
    }
    if (rc != 0) goto fail;
    if (out->user && !out->password) {
      qorb__connstr_err(err, errlen, "user \"%s\" given without a password",
                        out->user);
      rc = QORB_ECONFIG;
      goto fail;
    }
    start = p;
  }
  if (end == start) {
    qorb__connstr_err(err, errlen, "no host in the URL");
    rc = QORB_ECONFIG;
    goto fail;
  }
  rc = qorb__connstr_netloc(start, (size_t)(end - start), host_cb, &acc, err,
                            errlen);
  if (rc != 0) goto fail;

  p = end;
  if (*p == '/') {
    const char *d = ++p;
    p += strcspn(p, "?");
    if (p > d && parse_db(d, (size_t)(p - d), &out->database) != 0) {
      qorb__connstr_err(err, errlen, "database: \"%.*s\" is not a number",
                        (int)(p - d > 20 ? 20 : p - d), d);
      rc = QORB_ECONFIG;
      goto fail;
    }
  }
  if (*p == '?') p++;
  while (*p && rc == 0) {
    const char *item = p, *eq, *iend = p + strcspn(p, "&");
    char *k = NULL, *v = NULL;
    p = *iend ? iend + 1 : iend;
    if (iend == item) continue;
    eq = memchr(item, '=', (size_t)(iend - item));
    if (!eq) {
      qorb__connstr_err(err, errlen, "URL parameter \"%.*s\" has no \"=\"",
                        (int)(iend - item > 40 ? 40 : iend - item), item);
      rc = QORB_ECONFIG;
      goto fail;
    }
    rc = qorb__connstr_pct_decode(item, (size_t)(eq - item), &k, "URL query",
                                  err, errlen);
    if (rc == 0)
      rc = qorb__connstr_pct_decode(eq + 1, (size_t)(iend - eq - 1), &v, k,
                                    err, errlen);
    if (rc == 0) rc = url_param(out, k, v, err, errlen);
    qorb_free(k);
    qorb_free(v);
  }
  if (rc != 0) goto fail;
  rc = qorb__connstr_policy_check(&out->policy, err, errlen);
  if (rc != 0) goto fail;
  out->backends = acc.hosts.addrs.s;
  out->names = acc.hosts.names.s;
  return 0;

fail:
  if (rc == QORB_ENOMEM) qorb__connstr_err(err, errlen, "out of memory");
  qorb__connstr_hosts_free(&acc.hosts);
  qorb__redis_url_free(out);
  return rc;
}

static int redis_make(void *arg, qorb_connector_t **out, char *err,
                      size_t errlen) {
  const qorb__redis_url_t *u = arg;
  qorb_redis_options_t o;
  qorb_redis_options_init(&o);
  o.flavour = (qorb_redis_flavour_t)u->flavour;
  o.user = u->user;
  o.password = u->password;
  o.client_name = u->client_name;
  o.database = u->database;
  return qorb_redis_connector_new(out, &o, err, errlen);
}

int qorb_redis_pool_new_with(qorb_pool_t **out, struct ev_loop *loop,
                             const char *url, const qorb_policy_t *base,
                             char *err, size_t errlen) {
  qorb__redis_url_t u;
  int rc;

  if (!out || !url) {
    qorb__connstr_err(err, errlen, "NULL argument");
    if (out) *out = NULL;
    return QORB_EINVAL;
  }
  *out = NULL;
  rc = qorb__redis_url_parse(&u, url, base, err, errlen);
  if (rc != 0) return rc;
  rc = qorb__connstr_pool(out, loop, &u.policy, u.backends, u.names,
                          u.dns_servers, redis_make, &u, err, errlen);
  qorb__redis_url_free(&u);
  return rc;
}

int qorb_redis_pool_new(qorb_pool_t **out, struct ev_loop *loop,
                        const char *url, char *err, size_t errlen) {
  return qorb_redis_pool_new_with(out, loop, url, NULL, err, errlen);
}
