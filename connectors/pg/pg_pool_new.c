/* SPDX-License-Identifier: MIT */
/*
 * pg_pool_new.c: qorb_pg_pool_new(), a pool from one string, as pgxpool.New
 * makes one. The string, a "postgresql://" URI or a key=value conninfo, is
 * first split into keyword/value pairs here (libpq's own parser would
 * refuse the pool_* keys), so that the pool settings, the hosts and the
 * role can be taken out. What is left is written back as a key='value'
 * conninfo and handed to libpq's parser (PQconninfoParse) to be checked,
 * then to qorb_pg_connector_new(). The hosts become the resolver: numeric
 * addresses a static resolver's list, each host name a DNS resolver
 * (../connstr.c). qorb_pg_pool_new_with() starts from the caller's policy.
 */
#define _POSIX_C_SOURCE 200809L

#include <string.h>

#include "../connstr.h"
#include "pg_int.h"
#include "qorb/static.h"

#define PG_DEFAULT_PORT 5432u

/* Keyword/value pairs, in first-seen order; a later value of a keyword
   replaces the earlier one, as in libpq. Strings owned. */
typedef struct pairs {
  char **k, **v;
  size_t n, cap;
} pairs_t;

static void pairs_free(pairs_t *l) {
  size_t i;
  for (i = 0; i < l->n; i++) {
    qorb_free(l->k[i]);
    qorb_free(l->v[i]);
  }
  qorb_free(l->k);
  qorb_free(l->v);
  memset(l, 0, sizeof(*l));
}

static const char *pairs_get(const pairs_t *l, const char *k) {
  size_t i;
  for (i = 0; i < l->n; i++)
    if (strcmp(l->k[i], k) == 0) return l->v[i];
  return NULL;
}

/* Take over `k` and `v` (both from qorb_malloc), whatever happens. */
static int pairs_put(pairs_t *l, char *k, char *v) {
  size_t i;
  if (!k || !v) goto nomem;
  for (i = 0; i < l->n; i++) {
    if (strcmp(l->k[i], k) == 0) {
      qorb_free(l->v[i]);
      l->v[i] = v;
      qorb_free(k);
      return 0;
    }
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    char **nk = qorb_realloc(l->k, cap * sizeof(*nk)), **nv;
    if (!nk) goto nomem;
    l->k = nk;
    nv = qorb_realloc(l->v, cap * sizeof(*nv));
    if (!nv) goto nomem;
    l->v = nv;
    l->cap = cap;
  }
  l->k[l->n] = k;
  l->v[l->n] = v;
  l->n++;
  return 0;
nomem:
  qorb_free(k);
  qorb_free(v);
  return QORB_ENOMEM;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

/*
 * The key=value form, tokenised by libpq's rules (conninfo_parse in
 * fe-connect.c): white space around '=', values plain or in single quotes,
 * a backslash escaping the next character in either.
 */
static int parse_kv(pairs_t *l, const char *s, char *err, size_t errlen) {
  char *buf = qorb_strdup(s), *cp;
  int rc = 0;
  if (!buf) return QORB_ENOMEM;
  cp = buf;
  while (*cp && rc == 0) {
    char *name, *val, *out;
    if (is_space(*cp)) {
      cp++;
      continue;
    }
    name = cp;
    while (*cp && *cp != '=' && !is_space(*cp)) cp++;
    if (is_space(*cp)) {
      *cp++ = '\0';
      while (is_space(*cp)) cp++;
    }
    if (*cp != '=') {
      qorb__connstr_err(err, errlen,
                        "missing \"=\" after \"%.*s\" in connection info "
                        "string",
                        (int)strcspn(name, " \t\n\r\f\v"), name);
      rc = QORB_ECONFIG;
      break;
    }
    *cp++ = '\0';
    while (is_space(*cp)) cp++;
    val = out = cp;
    if (*cp != '\'') {
      while (*cp) {
        if (is_space(*cp)) {
          cp++;
          break;
        }
        if (*cp == '\\') {
          cp++;
          if (*cp) *out++ = *cp++;
        } else {
          *out++ = *cp++;
        }
      }
    } else {
      cp++;
      for (;;) {
        if (*cp == '\0') {
          qorb__connstr_err(err, errlen,
                            "unterminated quoted string in connection info "
                            "string");
          rc = QORB_ECONFIG;
          break;
        }
        if (*cp == '\\') {
          cp++;
          if (*cp) *out++ = *cp++;
          continue;
        }
        if (*cp == '\'') {
          cp++;
          break;
        }
        *out++ = *cp++;
      }
      if (rc != 0) break;
    }
    /* `out` may have caught up with `cp` only when nothing was escaped or
       quoted; it never passes it, so this overwrites only what was read. */
    *out = '\0';
    rc = pairs_put(l, qorb_strdup(name), qorb_strdup(val));
  }
  qorb_free(buf);
  return rc;
}

/* URI hosts collected into libpq's own host and port lists. */
typedef struct netloc_acc {
  qorb__sbuf_t hosts, ports;
  size_t n;
} netloc_acc_t;

static int netloc_cb(void *arg, const char *h, size_t hlen, const char *port,
                     size_t portlen) {
  netloc_acc_t *a = arg;
  int rc = 0;
  if (a->n > 0) {
    rc = qorb__sbuf_add(&a->hosts, ",");
    if (rc == 0) rc = qorb__sbuf_add(&a->ports, ",");
  }
  if (rc == 0) rc = qorb__sbuf_addn(&a->hosts, h, hlen);
  if (rc == 0) rc = qorb__sbuf_addn(&a->ports, port, portlen);
  a->n++;
  return rc;
}

/* Add a percent-encoded value under keyword `k`. */
static int put_decoded(pairs_t *l, const char *k, const char *s, size_t n,
                       char *err, size_t errlen) {
  char *v;
  int rc = qorb__connstr_pct_decode(s, n, &v, k, err, errlen);
  if (rc != 0) return rc;
  return pairs_put(l, qorb_strdup(k), v);
}

/*
 * The URI form, split as libpq does (conninfo_uri_parse_options):
 * scheme://[user[:password]@][host[:port][,...]][/dbname][?k=v[&...]],
 * percent-decoded; an IPv6 address in brackets.
 */
static int parse_uri(pairs_t *l, const char *s, size_t schemelen, char *err,
                     size_t errlen) {
  const char *start = s + schemelen, *p = start, *end;
  netloc_acc_t acc;
  int rc = 0;

  memset(&acc, 0, sizeof(acc));
  while (*p && *p != '@' && *p != '/') p++;
  if (*p == '@') {
    const char *colon = memchr(start, ':', (size_t)(p - start));
    const char *uend = colon ? colon : p;
    if (uend > start) rc = put_decoded(l, "user", start, (size_t)(uend - start),
                                       err, errlen);
    if (rc == 0 && colon && p > colon + 1)
      rc = put_decoded(l, "password", colon + 1, (size_t)(p - colon - 1), err,
                       errlen);
    if (rc != 0) return rc;
    start = p + 1;
  }
  end = start + strcspn(start, "/?");
  if (end > start) {
    rc = qorb__connstr_netloc(start, (size_t)(end - start), netloc_cb, &acc,
                              err, errlen);
    if (rc == 0) rc = pairs_put(l, qorb_strdup("host"), qorb_strdup(acc.hosts.s));
    if (rc == 0 && acc.ports.len > 0)
      rc = pairs_put(l, qorb_strdup("port"), qorb_strdup(acc.ports.s));
    qorb__sbuf_free(&acc.hosts);
    qorb__sbuf_free(&acc.ports);
    if (rc != 0) return rc;
  }
  p = end;
  if (*p == '/') {
    const char *d = ++p;
    p += strcspn(p, "?");
    if (p > d) rc = put_decoded(l, "dbname", d, (size_t)(p - d), err, errlen);
    if (rc != 0) return rc;
  }
  if (*p != '?') return 0;
  p++;
  while (*p) {
    const char *item = p, *eq, *iend;
    char *k = NULL, *v = NULL;
    iend = item + strcspn(item, "&");
    p = *iend ? iend + 1 : iend;
    if (iend == item) continue;
    eq = memchr(item, '=', (size_t)(iend - item));
    if (!eq) {
      qorb__connstr_err(err, errlen,
                        "missing key/value separator \"=\" in URI query "
                        "parameter \"%.*s\"",
                        (int)(iend - item), item);
      return QORB_ECONFIG;
    }
    if (memchr(eq + 1, '=', (size_t)(iend - eq - 1))) {
      qorb__connstr_err(err, errlen,
                        "extra key/value separator \"=\" in URI query "
                        "parameter \"%.*s\"",
                        (int)(iend - item), item);
      return QORB_ECONFIG;
    }
    rc = qorb__connstr_pct_decode(item, (size_t)(eq - item), &k, "URI query",
                                  err, errlen);
    if (rc == 0)
      rc = qorb__connstr_pct_decode(eq + 1, (size_t)(iend - eq - 1), &v, k,
                                    err, errlen);
    if (rc != 0) {
      qorb_free(k);
      return rc;
    }
    rc = pairs_put(l, k, v);
    if (rc != 0) return rc;
  }
  return 0;
}

/* Append kw='value' with \ and ' escaped. */
static int append_quoted(qorb__sbuf_t *b, const char *kw, const char *val) {
  int rc = 0;
  const char *p;
  if (b->len > 0) rc = qorb__sbuf_add(b, " ");
  if (rc == 0) rc = qorb__sbuf_add(b, kw);
  if (rc == 0) rc = qorb__sbuf_add(b, "='");
  for (p = val; *p && rc == 0; p++) {
    if (*p == '\\' || *p == '\'') rc = qorb__sbuf_add(b, "\\");
    if (rc == 0) rc = qorb__sbuf_addn(b, p, 1);
  }
  if (rc == 0) rc = qorb__sbuf_add(b, "'");
  return rc;
}

static int parse_role(const char *v, int *role, char *err, size_t errlen) {
  if (strcmp(v, "any") == 0) {
    *role = QORB_PG_ROLE_ANY;
  } else if (strcmp(v, "read-write") == 0 || strcmp(v, "primary") == 0) {
    *role = QORB_PG_ROLE_PRIMARY;
  } else if (strcmp(v, "read-only") == 0 || strcmp(v, "standby") == 0) {
    *role = QORB_PG_ROLE_STANDBY;
  } else if (strcmp(v, "prefer-standby") == 0) {
    qorb__connstr_err(err, errlen,
                      "target_session_attrs: prefer-standby is not supported "
                      "(a pool uses one role: standby, primary or any)");
    return QORB_ECONFIG;
  } else {
    qorb__connstr_err(err, errlen,
                      "target_session_attrs: unknown value \"%s\" (any, "
                      "read-write, primary, read-only, standby)",
                      v);
    return QORB_ECONFIG;
  }
  return 0;
}

/* The number of comma-separated entries in `s`. */
static size_t count_entries(const char *s) {
  size_t n = 1;
  for (; *s; s++) n += *s == ',';
  return n;
}

/* Pair the address list with the port list, as libpq does: one port for
   all, or one per host; an empty entry is the default port. */
static int build_backends(qorb__connstr_hosts_t *hs, const char *addrs,
                          int numeric_only, const char *ports, char *err,
                          size_t errlen) {
  size_t nh = count_entries(addrs), np = ports ? count_entries(ports) : 0, i;
  const char *h = addrs, *pp = ports;
  if (np > 1 && np != nh) {
    qorb__connstr_err(err, errlen, "could not match %zu port numbers to %zu "
                                   "hosts", np, nh);
    return QORB_ECONFIG;
  }
  for (i = 0; i < nh; i++) {
    size_t hl = strcspn(h, ","), pl = 0;
    unsigned port = PG_DEFAULT_PORT;
    int rc;
    if (pp) {
      pl = strcspn(pp, ",");
      if (pl > 0 && qorb__connstr_port(pp, pl, &port) != 0) {
        qorb__connstr_err(err, errlen, "port: invalid port \"%.*s\"",
                          (int)(pl > 20 ? 20 : pl), pp);
        return QORB_ECONFIG;
      }
      if (np > 1) pp += pl + (pp[pl] == ',');
    }
    rc = qorb__connstr_add_host(hs, h, hl, port, numeric_only, err, errlen);
    if (rc != 0) return rc;
    h += hl + (h[hl] == ',');
  }
  return 0;
}

void qorb__pg_connstr_free(qorb__pg_connstr_t *c) {
  if (!c) return;
  qorb_free(c->backends);
  qorb_free(c->names);
  qorb_free(c->dns_servers);
  qorb_free(c->conninfo);
  qorb_free(c->name);
  memset(c, 0, sizeof(*c));
}

int qorb__pg_connstr_parse(qorb__pg_connstr_t *out, const char *connstr,
                           const qorb_policy_t *base, char *err,
                           size_t errlen) {
  pairs_t l;
  qorb__sbuf_t ci;
  qorb__connstr_hosts_t hs;
  const char *host, *hostaddr, *port, *addrs, *sslmode;
  PQconninfoOption *opts;
  char *msg = NULL;
  size_t i;
  int rc;

  if (err && errlen) err[0] = '\0';
  if (out) memset(out, 0, sizeof(*out));
  if (!out || !connstr) {
    qorb__connstr_err(err, errlen, "NULL argument");
    return QORB_EINVAL;
  }
  memset(&l, 0, sizeof(l));
  memset(&ci, 0, sizeof(ci));
  memset(&hs, 0, sizeof(hs));
  out->role = QORB_PG_ROLE_ANY;
  rc = qorb__connstr_policy_base(&out->policy, base, err, errlen);
  if (rc != 0) goto fail;

  if (strncmp(connstr, "postgresql://", 13) == 0)
    rc = parse_uri(&l, connstr, 13, err, errlen);
  else if (strncmp(connstr, "postgres://", 11) == 0)
    rc = parse_uri(&l, connstr, 11, err, errlen);
  else
    rc = parse_kv(&l, connstr, err, errlen);
  if (rc != 0) goto fail;

  host = pairs_get(&l, "host");
  hostaddr = pairs_get(&l, "hostaddr");
  port = pairs_get(&l, "port");
  sslmode = pairs_get(&l, "sslmode");
  for (i = 0; i < l.n && rc == 0; i++) {
    const char *k = l.k[i], *v = l.v[i];
    if (strncmp(k, "pool_", 5) == 0) {
      rc = qorb__connstr_pool_key(&out->policy, &out->name, &out->dns_servers,
                                  k, v, err, errlen);
    } else if (strcmp(k, "target_session_attrs") == 0) {
      rc = parse_role(v, &out->role, err, errlen);
    } else if (strcmp(k, "host") == 0 || strcmp(k, "hostaddr") == 0 ||
               strcmp(k, "port") == 0) {
      /* Taken below. */
    } else if (!k[0] || strpbrk(k, " \t\n\r\f\v='\\")) {
      qorb__connstr_err(err, errlen, "invalid connection option \"%s\"", k);
      rc = QORB_ECONFIG;
    } else {
      rc = append_quoted(&ci, k, v);
    }
  }
  if (rc != 0) goto fail;

  /* hostaddr, when given, says where to connect (numeric addresses only,
     as in libpq); a single host name next to it stays in the conninfo, for
     TLS verify-full and password files (pg_conninfo.c keeps a single
     host). Without hostaddr, host names are looked up in DNS. */
  addrs = hostaddr && hostaddr[0] ? hostaddr : host;
  if (!addrs || !addrs[0]) {
    qorb__connstr_err(err, errlen,
                      "no host: give host= (or hostaddr=), or a host in the "
                      "URI");
    rc = QORB_ECONFIG;
    goto fail;
  }
  if (addrs == hostaddr && host && host[0] && !strchr(host, ',') &&
      host[0] != '/' && host[0] != '@')
    rc = append_quoted(&ci, "host", host);
  if (rc == 0)
    rc = build_backends(&hs, addrs, addrs == hostaddr,
                        port && port[0] ? port : NULL, err, errlen);
  if (rc != 0) goto fail;
  if (hs.names.s && hs.n == 1) {
    /* One host name, one DNS lookup: libpq connects to each address found
       (hostaddr) under that name (host), so that verify-full checks the
       name and password files match it. */
    rc = append_quoted(&ci, "host", host);
    if (rc != 0) goto fail;
  } else if (hs.names.s && sslmode && strcmp(sslmode, "verify-full") == 0) {
    /* Several hosts: the connector has one template, so each backend goes
       under its address, which a certificate for a name does not match. */
    qorb__connstr_err(err, errlen,
                      "sslmode=verify-full needs the pool's one host name "
                      "(a string with several hosts connects to each by its "
                      "address): make one pool per host name, or give "
                      "host=NAME with hostaddr=");
    rc = QORB_ECONFIG;
    goto fail;
  }

  /* libpq checks the rest: an unknown keyword is refused now. */
  opts = PQconninfoParse(ci.s ? ci.s : "", &msg);
  if (!opts) {
    if (msg) {
      qorb__connstr_err(err, errlen, "%.*s", qorb__pg_first_line_len(msg),
                        msg);
      PQfreemem(msg);
      rc = QORB_ECONFIG;
    } else {
      rc = QORB_ENOMEM;
    }
    goto fail;
  }
  PQconninfoFree(opts);

  rc = qorb__connstr_policy_check(&out->policy, err, errlen);
  if (rc != 0) goto fail;

  out->conninfo = ci.s ? ci.s : qorb_strdup("");
  if (!out->conninfo) {
    rc = QORB_ENOMEM;
    goto fail;
  }
  out->backends = hs.addrs.s;
  out->names = hs.names.s;
  pairs_free(&l);
  return 0;

fail:
  if (rc == QORB_ENOMEM) qorb__connstr_err(err, errlen, "out of memory");
  pairs_free(&l);
  qorb__sbuf_free(&ci);
  qorb__connstr_hosts_free(&hs);
  qorb__pg_connstr_free(out);
  return rc;
}

static int pg_make(void *arg, qorb_connector_t **out, char *err,
                   size_t errlen) {
  const qorb__pg_connstr_t *c = arg;
  qorb_pg_options_t o;
  qorb_pg_options_init(&o);
  o.conninfo = c->conninfo;
  o.role = (qorb_pg_role_t)c->role;
  return qorb_pg_connector_new(out, &o, err, errlen);
}

int qorb_pg_pool_new_with(qorb_pool_t **out, struct ev_loop *loop,
                          const char *connstr, const qorb_policy_t *base,
                          char *err, size_t errlen) {
  qorb__pg_connstr_t c;
  int rc;

  if (!out || !connstr) {
    qorb__connstr_err(err, errlen, "NULL argument");
    if (out) *out = NULL;
    return QORB_EINVAL;
  }
  *out = NULL;
  rc = qorb__pg_connstr_parse(&c, connstr, base, err, errlen);
  if (rc != 0) return rc;
  rc = qorb__connstr_pool(out, loop, &c.policy, c.backends, c.names,
                          c.dns_servers, pg_make, &c, err, errlen);
  qorb__pg_connstr_free(&c);
  return rc;
}

int qorb_pg_pool_new(qorb_pool_t **out, struct ev_loop *loop,
                     const char *connstr, char *err, size_t errlen) {
  return qorb_pg_pool_new_with(out, loop, connstr, NULL, err, errlen);
}
