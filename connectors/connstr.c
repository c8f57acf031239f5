/* SPDX-License-Identifier: MIT */
/*
 * connstr.c: what the connection-string parsers of qorb-pg and qorb-redis
 * share (see connstr.h): the pool_* keys with pgxpool's names and units,
 * Go-style durations, percent-decoding, URI host lists, hosts sorted into
 * numeric addresses and names, and the resolver they make. Compiled into
 * both libraries; pure but for qorb__connstr_pool(), no I/O. Built with
 * QORB_CONNSTR_HAVE_DNS when libqorb-dns is there to resolve host names.
 */
#define _POSIX_C_SOURCE 200809L

#include "connstr.h"
#include "qorb/connector.h"
#include "qorb/resolver.h"
#include "qorb/static.h"
#if defined(QORB_CONNSTR_HAVE_DNS)
#include "qorb/dns.h"
#endif

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void qorb__connstr_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (!err || errlen == 0) return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int qorb__sbuf_addn(qorb__sbuf_t *b, const char *s, size_t n) {
  if (n >= SIZE_MAX / 2 - b->len) return QORB_ENOMEM;
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->len + n + 1) * 2;
    char *ns = qorb_realloc(b->s, cap);
    if (!ns) return QORB_ENOMEM;
    b->s = ns;
    b->cap = cap;
  }
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
  return 0;
}

int qorb__sbuf_add(qorb__sbuf_t *b, const char *s) {
  return qorb__sbuf_addn(b, s, strlen(s));
}

void qorb__sbuf_free(qorb__sbuf_t *b) {
  qorb_free(b->s);
  memset(b, 0, sizeof(*b));
}

/* ------------------------------------------------------------ durations */

static const struct {
  const char *name;
  uint64_t ns;
} duration_units[] = {
    {"ns", 1ull},
    {"us", 1000ull},
    {"\xc2\xb5s", 1000ull}, /* U+00B5 micro sign, as Go accepts */
    {"\xce\xbcs", 1000ull}, /* U+03BC Greek mu, as Go accepts */
    {"ms", 1000000ull},
    {"s", 1000000000ull},
    {"m", 60ull * 1000000000ull},
    {"h", 3600ull * 1000000000ull},
};

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/*
 * Go's grammar: [+]?([0-9]*(\.[0-9]*)?unit)+, or "0" alone. The sum is
 * kept in nanoseconds, with overflow refused; fractions are scaled in
 * double precision as Go does.
 */
int qorb__connstr_duration_ms(const char *s, unsigned *ms, char *why,
                              size_t whylen) {
  const char *orig = s, *p;
  uint64_t total = 0;
  const uint64_t max_ns = (uint64_t)UINT_MAX * 1000000ull;

  if (*s == '-') {
    qorb__connstr_err(why, whylen, "negative duration \"%s\"", orig);
    return QORB_ECONFIG;
  }
  if (*s == '+') s++;
  if (strcmp(s, "0") == 0) {
    *ms = 0;
    return 0;
  }
  if (*s == '\0') goto invalid;
  /* A bare number: say what is missing, as Go's "missing unit" does. */
  for (p = s; is_digit(*p) || *p == '.'; p++) {
  }
  if (*p == '\0') {
    qorb__connstr_err(why, whylen,
                      "duration \"%s\" needs a unit (ns, us, ms, s, m or h), "
                      "as in \"%ss\"",
                      orig, s);
    return QORB_ECONFIG;
  }
  while (*s) {
    uint64_t v = 0, f = 0, unit = 0, add;
    double scale = 1.0;
    int pre = 0, post = 0;
    size_t i, ulen;
    if (!(*s == '.' || is_digit(*s))) goto invalid;
    for (; is_digit(*s); s++, pre = 1) {
      if (v > (UINT64_MAX - 9) / 10) goto toolarge;
      v = v * 10 + (uint64_t)(*s - '0');
    }
    if (*s == '.') {
      s++;
      for (; is_digit(*s); s++, post = 1) {
        /* Digits beyond what 64 bits hold change nothing that matters. */
        if (f > (UINT64_MAX - 9) / 10) continue;
        f = f * 10 + (uint64_t)(*s - '0');
        scale *= 10.0;
      }
    }
    if (!pre && !post) goto invalid;
    for (ulen = 0; s[ulen] && s[ulen] != '.' && !is_digit(s[ulen]); ulen++) {
    }
    if (ulen == 0) {
      qorb__connstr_err(why, whylen,
                        "duration \"%s\" needs a unit (ns, us, ms, s, m or h)",
                        orig);
      return QORB_ECONFIG;
    }
    for (i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++)
      if (strlen(duration_units[i].name) == ulen &&
          memcmp(duration_units[i].name, s, ulen) == 0)
        unit = duration_units[i].ns;
    if (unit == 0) {
      qorb__connstr_err(why, whylen,
                        "unknown unit \"%.*s\" in duration \"%s\" (use ns, "
                        "us, ms, s, m or h)",
                        (int)ulen, s, orig);
      return QORB_ECONFIG;
    }
    s += ulen;
    if (v > max_ns / unit) goto toolarge;
    add = v * unit;
    if (f > 0) {
      double frac = (double)f * ((double)unit / scale);
      if (frac >= (double)max_ns) goto toolarge;
      add += (uint64_t)frac;
    }
    if (add > max_ns - total) goto toolarge;
    total += add;
  }
  total = total / 1000000ull + (total % 1000000ull != 0);
  if (total > UINT_MAX) goto toolarge;
  *ms = (unsigned)total;
  return 0;
invalid:
  qorb__connstr_err(why, whylen,
                    "invalid duration \"%s\" (write it as Go does: \"1h30m\", "
                    "\"500ms\", \"2s\", \"1.5h\")",
                    orig);
  return QORB_ECONFIG;
toolarge:
  qorb__connstr_err(why, whylen,
                    "duration \"%s\" is too large (at most %u ms)", orig,
                    UINT_MAX);
  return QORB_ECONFIG;
}

/* ------------------------------------------------------------ pool keys */

static int parse_uint(const char *s, unsigned *out) {
  uint64_t v = 0;
  if (!*s) return QORB_ECONFIG;
  for (; *s; s++) {
    if (!is_digit(*s)) return QORB_ECONFIG;
    v = v * 10 + (uint64_t)(*s - '0');
    if (v > UINT_MAX) return QORB_ECONFIG;
  }
  *out = (unsigned)v;
  return 0;
}

/* The pool_* keys and where they go; `dur` marks durations. */
enum pool_field {
  PF_MAX_CONNS,
  PF_MIN_CONNS,
  PF_MIN_IDLE,
  PF_LIFETIME,
  PF_JITTER,
  PF_IDLE_TIME,
  PF_HEALTH,
  PF_NAME,
  PF_DNS_SERVERS
};

static const struct {
  const char *key;
  enum pool_field field;
  int dur;
} pool_keys[] = {
    {"pool_max_conns", PF_MAX_CONNS, 0},
    {"pool_min_conns", PF_MIN_CONNS, 0},
    {"pool_min_idle", PF_MIN_IDLE, 0},
    {"pool_max_conn_lifetime", PF_LIFETIME, 1},
    {"pool_max_conn_lifetime_jitter", PF_JITTER, 1},
    {"pool_max_conn_idle_time", PF_IDLE_TIME, 1},
    {"pool_health_check_period", PF_HEALTH, 1},
    {"pool_name", PF_NAME, 0},
    {"pool_dns_servers", PF_DNS_SERVERS, 0},
};

/* As QORB_DNS_MAX_SERVERS (qorb/dns.h, which a build without libqorb-dns
   may not have). */
#define CONNSTR_MAX_DNS_SERVERS 8

/* pool_dns_servers: "a.b.c.d:port" or "[ipv6]:port", separated by commas
   or spaces, as qorb_dns_options_t.servers reads them. */
static int dns_servers_check(const char *key, const char *val, char *err,
                             size_t errlen) {
  const char *p = val;
  unsigned count = 0;
  for (;;) {
    char entry[64];
    qorb_addr_t a;
    size_t len;
    p += strspn(p, ", \t");
    if (*p == '\0') break;
    len = strcspn(p, ", \t");
    if (len >= sizeof(entry) || ++count > CONNSTR_MAX_DNS_SERVERS) {
      qorb__connstr_err(err, errlen, "%s: %s", key,
                        len >= sizeof(entry) ? "an entry is too long"
                                             : "more than 8 servers");
      return QORB_ECONFIG;
    }
    memcpy(entry, p, len);
    entry[len] = '\0';
    if (qorb_addr_parse(entry, &a) != 0) {
      qorb__connstr_err(err, errlen,
                        "%s: bad entry \"%s\" (want \"a.b.c.d:port\" or "
                        "\"[ipv6]:port\", numeric)",
                        key, entry);
      return QORB_ECONFIG;
    }
    p += len;
  }
  if (count == 0) {
    qorb__connstr_err(err, errlen,
                      "%s: empty (leave it out for the system's servers)",
                      key);
    return QORB_ECONFIG;
  }
  return 0;
}

/* Replace *slot with a copy of `val`. */
static int replace_copy(char **slot, const char *val) {
  char *copy = qorb_strdup(val);
  if (!copy) return QORB_ENOMEM;
  qorb_free(*slot);
  *slot = copy;
  return 0;
}

int qorb__connstr_policy_base(qorb_policy_t *p, const qorb_policy_t *base,
                              char *err, size_t errlen) {
  /* The policy as first released: every caller's struct is at least this
     (core/policy.c says the same). */
  const size_t v1 = offsetof(qorb_policy_t, log_arg) + sizeof(p->log_arg);
  qorb_policy_init(p);
  if (!base) return 0;
  if (base->size < v1 || base->size > 65536) {
    qorb__connstr_err(err, errlen,
                      "base policy not initialised with qorb_policy_init()");
    return QORB_EINVAL;
  }
  memcpy(p, base, base->size < sizeof(*p) ? base->size : sizeof(*p));
  p->size = sizeof(*p);
  return 0;
}

int qorb__connstr_pool_key(qorb_policy_t *p, char **name, char **dns_servers,
                           const char *key, const char *val, char *err,
                           size_t errlen) {
  size_t i, n = sizeof(pool_keys) / sizeof(pool_keys[0]);
  unsigned v = 0;
  char why[160];
  for (i = 0; i < n; i++)
    if (strcmp(pool_keys[i].key, key) == 0) break;
  if (i == n) {
    qorb__connstr_err(err, errlen,
                      "unknown pool setting \"%s\" (known: pool_max_conns, "
                      "pool_min_conns, pool_min_idle, pool_max_conn_lifetime, "
                      "pool_max_conn_lifetime_jitter, pool_max_conn_idle_time, "
                      "pool_health_check_period, pool_name, "
                      "pool_dns_servers)",
                      key);
    return QORB_ECONFIG;
  }
  if (pool_keys[i].field == PF_NAME) {
    size_t len = strlen(val);
    int rc;
    if (len == 0 || len > 63) {
      qorb__connstr_err(err, errlen, "%s: must be 1 to 63 characters", key);
      return QORB_ECONFIG;
    }
    if ((rc = replace_copy(name, val)) != 0) return rc;
    p->name = *name;
    return 0;
  }
  if (pool_keys[i].field == PF_DNS_SERVERS) {
    int rc = dns_servers_check(key, val, err, errlen);
    return rc != 0 ? rc : replace_copy(dns_servers, val);
  }
  if (pool_keys[i].dur) {
    if (qorb__connstr_duration_ms(val, &v, why, sizeof(why)) != 0) {
      qorb__connstr_err(err, errlen, "%s: %s", key, why);
      return QORB_ECONFIG;
    }
  } else if (parse_uint(val, &v) != 0) {
    qorb__connstr_err(err, errlen,
                      "%s: \"%s\" is not a whole number of connections", key,
                      val);
    return QORB_ECONFIG;
  }
  switch (pool_keys[i].field) {
    case PF_MAX_CONNS:
      if (v == 0) {
        qorb__connstr_err(err, errlen, "%s: must be at least 1", key);
        return QORB_ECONFIG;
      }
      p->max_slots = v;
      break;
    case PF_MIN_CONNS: p->min_conns = v; break;
    case PF_MIN_IDLE: p->spares_wanted = v; break;
    case PF_LIFETIME: p->max_lifetime_ms = v; break;
    case PF_JITTER: p->max_lifetime_jitter_ms = v; break;
    case PF_IDLE_TIME: p->idle_timeout_ms = v; break;
    case PF_HEALTH: p->health_interval_ms = v; break;
    case PF_NAME:
    case PF_DNS_SERVERS: break;
  }
  return 0;
}

int qorb__connstr_policy_check(const qorb_policy_t *p, char *err,
                               size_t errlen) {
  /* The policy fields these strings set, and their keys: the complaint
     names the field it found first, so name that field's key. */
  static const struct {
    const char *field, *key;
  } map[] = {
      {"name", "pool_name"},
      {"max_slots", "pool_max_conns"},
      {"spares_wanted", "pool_min_idle"},
      {"min_conns", "pool_min_conns"},
      {"max_lifetime_ms", "pool_max_conn_lifetime"},
      {"max_lifetime_jitter_ms", "pool_max_conn_lifetime_jitter"},
  };
  char msg[200];
  const char *key = "pool settings", *best = NULL;
  size_t i;
  if (qorb_policy_validate(p, msg, sizeof(msg)) == 0) return 0;
  for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
    const char *at = strstr(msg, map[i].field);
    if (at && (!best || at < best)) {
      best = at;
      key = map[i].key;
    }
  }
  qorb__connstr_err(err, errlen, "%s: %s", key, msg);
  return QORB_ECONFIG;
}

/* ------------------------------------------------------- URI pieces */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int qorb__connstr_pct_decode(const char *s, size_t n, char **out,
                             const char *what, char *err, size_t errlen) {
  char *d = qorb_malloc(n + 1);
  size_t i, k = 0;
  *out = NULL;
  if (!d) return QORB_ENOMEM;
  for (i = 0; i < n; i++) {
    if (s[i] != '%') {
      d[k++] = s[i];
      continue;
    }
    if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
      goto bad;
    d[k] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
    if (d[k] == '\0') {
      qorb__connstr_err(err, errlen, "%s: %%00 is not allowed", what);
      qorb_free(d);
      return QORB_ECONFIG;
    }
    k++;
    i += 2;
  }
  d[k] = '\0';
  *out = d;
  return 0;
bad:
  qorb__connstr_err(err, errlen, "%s: invalid percent-encoding", what);
  qorb_free(d);
  return QORB_ECONFIG;
}

int qorb__connstr_port(const char *s, size_t n, unsigned *port) {
  unsigned v = 0;
  size_t i;
  if (n == 0 || n > 5) return QORB_ECONFIG;
  for (i = 0; i < n; i++) {
    if (!is_digit(s[i])) return QORB_ECONFIG;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v == 0 || v > 65535) return QORB_ECONFIG;
  *port = v;
  return 0;
}

/* A host name as DNS has it: labels of letters, digits, '-' (not first)
   and '_', 1 to 63 each, 253 in all, a final dot allowed. */
static int is_host_name(const char *h, size_t n) {
  size_t i, label = 0;
  if (n > 0 && h[n - 1] == '.') n--;
  if (n == 0 || n > 253) return 0;
  for (i = 0; i < n; i++) {
    char c = h[i];
    if (c == '.') {
      if (label == 0) return 0;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
          c == '_' || (c == '-' && label > 0)))
      return 0;
    if (++label > 63) return 0;
  }
  return label > 0;
}

/* Append an entry "h" (or "h:port" when `port` is not 0) to a
   comma-separated list. */
static int list_add(qorb__sbuf_t *list, const char *h, size_t hlen,
                    unsigned port) {
  char num[12];
  int rc = 0;
  if (list->len > 0) rc = qorb__sbuf_add(list, ",");
  if (rc == 0) rc = qorb__sbuf_addn(list, h, hlen);
  if (rc == 0 && port != 0) {
    snprintf(num, sizeof(num), ":%u", port);
    rc = qorb__sbuf_add(list, num);
  }
  return rc;
}

int qorb__connstr_add_host(qorb__connstr_hosts_t *hs, const char *h,
                           size_t hlen, unsigned port, int numeric_only,
                           char *err, size_t errlen) {
  char host[sizeof(((qorb_addr_t *)0)->host)];
  int shown = (int)(hlen > 200 ? 200 : hlen), rc;
  qorb_addr_t a;
  if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
    h++;
    hlen -= 2;
  }
  if (hlen == 0) {
    qorb__connstr_err(err, errlen, "empty host");
    return QORB_ECONFIG;
  }
  if (h[0] == '/' || h[0] == '@') {
    qorb__connstr_err(err, errlen,
                      "host \"%.*s\": Unix-domain sockets are not supported "
                      "(the pool needs TCP addresses)",
                      shown, h);
    return QORB_ECONFIG;
  }
  if (port == 0 || port > 65535) {
    qorb__connstr_err(err, errlen, "host \"%.*s\": bad port %u", shown, h,
                      port);
    return QORB_ECONFIG;
  }
  if (hlen < sizeof(host) && !memchr(h, '\0', hlen)) {
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (qorb_addr_set(&a, host, (uint16_t)port) == 0) {
      /* a.text has the port already. */
      rc = list_add(&hs->addrs, a.text, strlen(a.text), 0);
      hs->n += rc == 0;
      return rc;
    }
  }
  if (numeric_only || !is_host_name(h, hlen)) {
    qorb__connstr_err(err, errlen,
                      numeric_only ? "hostaddr \"%.*s\": not a numeric IPv4 "
                                     "or IPv6 address"
                                   : "host \"%.*s\": neither a numeric "
                                     "address nor a host name",
                      shown, h);
    return QORB_ECONFIG;
  }
  rc = list_add(&hs->names, h, hlen, port);
  hs->n += rc == 0;
  return rc;
}

void qorb__connstr_hosts_free(qorb__connstr_hosts_t *hs) {
  qorb__sbuf_free(&hs->addrs);
  qorb__sbuf_free(&hs->names);
  hs->n = 0;
}

int qorb__connstr_netloc(const char *s, size_t n,
                         int (*fn)(void *arg, const char *h, size_t hlen,
                                   const char *port, size_t portlen),
                         void *arg, char *err, size_t errlen) {
  const char *p = s, *end = s + n;
  for (;;) {
    const char *h, *hend, *port = NULL, *pend = NULL;
    int rc;
    if (p < end && *p == '[') {
      h = p + 1;
      hend = memchr(h, ']', (size_t)(end - h));
      if (!hend) {
        qorb__connstr_err(err, errlen, "unterminated \"[\" in host list");
        return QORB_ECONFIG;
      }
      p = hend + 1;
      if (p < end && *p != ':' && *p != ',') {
        qorb__connstr_err(err, errlen, "unexpected text after \"]\" in host "
                                       "list");
        return QORB_ECONFIG;
      }
    } else {
      h = p;
      while (p < end && *p != ':' && *p != ',') p++;
      hend = p;
    }
    if (p < end && *p == ':') {
      port = ++p;
      while (p < end && *p != ',') p++;
      pend = p;
    }
    rc = fn(arg, h, (size_t)(hend - h), port ? port : "",
            port ? (size_t)(pend - port) : 0);
    if (rc != 0) return rc;
    if (p >= end) return 0;
    p++; /* the comma */
  }
}

#if defined(QORB_CONNSTR_HAVE_DNS)
/* A DNS resolver for one "name:port" entry of a host list. */
static int dns_part(qorb_resolver_t **out, const char *entry, size_t len,
                    const char *servers, const qorb_policy_t *policy,
                    char *err, size_t errlen) {
  char name[272], why[200] = "";
  qorb_dns_options_t o;
  int rc;
  /* A checked name (253) and ":65535" always fit. */
  if (len >= sizeof(name)) len = sizeof(name) - 1;
  memcpy(name, entry, len);
  name[len] = '\0';
  qorb_dns_options_init(&o);
  o.name = name;
  o.servers = servers;
  o.log_cb = policy->log_cb;
  o.log_arg = policy->log_arg;
  rc = qorb_dns_resolver_new(out, &o, why, sizeof(why));
  if (rc == 0 || rc == QORB_ENOMEM) return rc;
  qorb__connstr_err(err, errlen, "host \"%s\": %s", name, why);
  return QORB_ECONFIG;
}
#endif

/* The resolver of a string's hosts: a static one over the numeric
   addresses, a DNS one per host name, merged when there are several. */
static int hosts_resolver(qorb_resolver_t **out, const qorb_policy_t *policy,
                          const char *backends, const char *names,
                          const char *dns_servers, char *err, size_t errlen) {
#if defined(QORB_CONNSTR_HAVE_DNS)
  qorb_resolver_t **parts;
  const char *p;
  size_t n = 0, cap = backends ? 2 : 1, i;
  int rc = 0;

  if (!names) return qorb_static_resolver_new(out, backends, err, errlen);
  for (p = names; *p; p++) cap += *p == ',';
  parts = qorb_calloc(cap, sizeof(*parts));
  if (!parts) return QORB_ENOMEM;
  if (backends) {
    rc = qorb_static_resolver_new(&parts[n], backends, err, errlen);
    n += rc == 0;
  }
  for (p = names; rc == 0 && *p;) {
    size_t len = strcspn(p, ",");
    rc = dns_part(&parts[n], p, len, dns_servers, policy, err, errlen);
    n += rc == 0;
    p += len + (p[len] == ',');
  }
  if (rc == 0 && n == 1) {
    *out = parts[0];
    n = 0;
  } else if (rc == 0 && (rc = qorb_resolver_merge_new(out, parts, n)) == 0) {
    n = 0;
  }
  for (i = 0; i < n; i++) qorb_resolver_free(parts[i]);
  qorb_free(parts);
  return rc;
#else
  (void)policy;
  (void)dns_servers;
  if (names) {
    qorb__connstr_err(err, errlen,
                      "host \"%.*s\": host names need libqorb-dns, and this "
                      "qorb was built without it (QORB_WITH_DNS=OFF); give "
                      "numeric addresses",
                      (int)strcspn(names, ","), names);
    return QORB_ECONFIG;
  }
  return qorb_static_resolver_new(out, backends, err, errlen);
#endif
}

int qorb__connstr_pool(qorb_pool_t **out, struct ev_loop *loop,
                       const qorb_policy_t *policy, const char *backends,
                       const char *names, const char *dns_servers,
                       qorb__connstr_make_fn make, void *arg, char *err,
                       size_t errlen) {
  qorb_resolver_t *r = NULL;
  qorb_connector_t *conn = NULL;
  int rc;

  *out = NULL;
  rc = hosts_resolver(&r, policy, backends, names, dns_servers, err, errlen);
  if (rc == 0) rc = make(arg, &conn, err, errlen);
  if (rc == 0) rc = qorb_pool_new(out, loop, policy, r, conn, err, errlen);
  if (rc == QORB_EPOLICY) rc = QORB_ECONFIG;
  if (rc != 0) {
    /* On failure qorb_pool_new() leaves both with us. */
    qorb_connector_free(conn);
    qorb_resolver_free(r);
    *out = NULL;
  }
  return rc;
}
