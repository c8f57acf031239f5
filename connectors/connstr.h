/* SPDX-License-Identifier: MIT */
/*
 * connstr.h: the connection-string parsers behind qorb_pg_pool_new() and
 * qorb_redis_pool_new(). The parsers are pure (no I/O, no loop, no server)
 * so that tests/unit/test_connstr.c can prove them on their own: each turns
 * one string into a policy, its hosts (numeric addresses for a static
 * resolver, host names for DNS resolvers) and the connector's settings.
 * connstr.c holds what both share (pool_* keys, Go-style durations,
 * percent-decoding, host lists, the resolvers, a string builder); it is compiled into libqorb-pg and libqorb-redis alike, whose
 * symbols stay hidden (qorb__ names, -fvisibility=hidden). Private to those
 * libraries and their unit tests.
 */
#ifndef QORB_CONNSTR_H
#define QORB_CONNSTR_H

#include <stddef.h>

#include "qorb/pool.h"

/* A growing string; `s` is NULL until the first append, always
   NUL-terminated after one. Owned; qorb__sbuf_free() it. */
typedef struct qorb__sbuf {
  char *s;
  size_t len, cap;
} qorb__sbuf_t;

int qorb__sbuf_addn(qorb__sbuf_t *b, const char *s, size_t n);
int qorb__sbuf_add(qorb__sbuf_t *b, const char *s);
void qorb__sbuf_free(qorb__sbuf_t *b);

/* snprintf into the caller's error buffer, if there is one. */
void qorb__connstr_err(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * A Go time.ParseDuration string ("1h30m", "500ms", "1.5h", "0") in whole
 * milliseconds, rounded up so that a small non-zero duration never turns
 * into 0 (which means "off" for several policy fields). Negative durations
 * and ones over UINT_MAX ms (about 49 days) are refused.
 * @return 0, or QORB_ECONFIG with the reason in `why` (a bare number says
 *         a unit is needed).
 */
int qorb__connstr_duration_ms(const char *s, unsigned *ms, char *why,
                              size_t whylen);

/*
 * Start a string's policy from the caller's `base` (NULL: qorb_policy_init()
 * defaults), read as a policy of any size qorb_policy_init() has set: the
 * fields an older caller's struct lacks keep their defaults.
 * @return 0, or QORB_EINVAL (`size` not set by qorb_policy_init()).
 */
int qorb__connstr_policy_base(qorb_policy_t *p, const qorb_policy_t *base,
                              char *err, size_t errlen);

/*
 * Apply one pool_* key (pgxpool's names and units, and pool_dns_servers) to
 * `p`. For pool_name, `*name` is replaced with a copy (owned by the caller,
 * qorb_free()) that p->name points at; for pool_dns_servers, `*dns_servers`
 * with a copy of the checked list.
 * @return 0, or QORB_ECONFIG (unknown pool_ key, bad value) with a message
 *         naming the key, or QORB_ENOMEM.
 */
int qorb__connstr_pool_key(qorb_policy_t *p, char **name, char **dns_servers,
                           const char *key, const char *val, char *err,
                           size_t errlen);

/* qorb_policy_validate() with its complaint told in pool_* keys:
   0 or QORB_ECONFIG. */
int qorb__connstr_policy_check(const qorb_policy_t *p, char *err,
                               size_t errlen);

/* Percent-decode s[0..n) into a new string ("%2F" -> "/"; '+' is kept).
   @return 0, QORB_ECONFIG (a bad escape or %00, `what` named in `err`),
   QORB_ENOMEM. */
int qorb__connstr_pct_decode(const char *s, size_t n, char **out,
                             const char *what, char *err, size_t errlen);

/* Parse a port ("5432"): 0 or QORB_ECONFIG. */
int qorb__connstr_port(const char *s, size_t n, unsigned *port);

/*
 * A string's hosts, split by how they are found: numeric addresses (for a
 * static resolver) and host names (a DNS resolver each). Each list is
 * "h:p,h:p" (IPv6 "[h]:p"); `s` stays NULL while a list is empty.
 */
typedef struct qorb__connstr_hosts {
  qorb__sbuf_t addrs; /* "127.0.0.2:5432,[::1]:5432" */
  qorb__sbuf_t names; /* "db1.internal:5432,db2.internal:5432" */
  size_t n;           /* entries in both */
} qorb__connstr_hosts_t;

/*
 * Add host h[0..hlen) (a numeric IPv4 or IPv6 address, brackets optional,
 * or a host name: letters, digits, '-' and '_' in dot-separated labels of
 * at most 63, 253 in all, a final dot allowed) with `port` to `hs`.
 * `numeric_only` refuses names (hostaddr=).
 * @return 0, QORB_ECONFIG (empty host, a path, a malformed name or
 *         address, a bad port), QORB_ENOMEM.
 */
int qorb__connstr_add_host(qorb__connstr_hosts_t *hs, const char *h,
                           size_t hlen, unsigned port, int numeric_only,
                           char *err, size_t errlen);
void qorb__connstr_hosts_free(qorb__connstr_hosts_t *hs);

/*
 * Split a URI's host list (between "//" and userinfo-less "/" or "?"):
 * "h1:p1,[::1]:p2,h3". Calls `fn` once per entry with the host (brackets
 * removed) and the port text (empty when none).
 * @return 0, QORB_ECONFIG (an unclosed '[', text after ']'), or what `fn`
 *         returned.
 */
int qorb__connstr_netloc(const char *s, size_t n,
                         int (*fn)(void *arg, const char *h, size_t hlen,
                                   const char *port, size_t portlen),
                         void *arg, char *err, size_t errlen);

/* What qorb_pg_pool_new() makes of its string (pg_pool_new.c). */
typedef struct qorb__pg_connstr {
  qorb_policy_t policy; /* policy.name points at `name` when set */
  char *name;           /* pool_name's copy, or NULL */
  char *backends;       /* numeric "h:p,h:p", or NULL when none */
  char *names;          /* host names "h:p,h:p", or NULL when none */
  char *dns_servers;    /* pool_dns_servers, or NULL: the system's */
  int role;             /* a qorb_pg_role_t */
  char *conninfo;       /* key='value' ... for qorb_pg_options_t.conninfo,
                           without pool_*, hostaddr, port and
                           target_session_attrs, and without host unless it
                           names the one backend ("" when nothing is left) */
} qorb__pg_connstr_t;

/*
 * The constructors' common end: the resolver (a static one over
 * `backends`, a DNS one per entry of `names` asking `dns_servers`, merged
 * when there are several), the connector that make(arg, &connector, err,
 * errlen) makes, then the pool with `policy`, whose log callback the DNS
 * resolvers share. On failure nothing is left to free, *out is NULL, and a
 * policy refusal is reported as QORB_ECONFIG (it came from the string).
 * Host names in a build without libqorb-dns: QORB_ECONFIG.
 */
typedef int (*qorb__connstr_make_fn)(void *arg, qorb_connector_t **out,
                                     char *err, size_t errlen);
int qorb__connstr_pool(qorb_pool_t **out, struct ev_loop *loop,
                       const qorb_policy_t *policy, const char *backends,
                       const char *names, const char *dns_servers,
                       qorb__connstr_make_fn make, void *arg, char *err,
                       size_t errlen);

/*
 * Parse a "postgresql://" / "postgres://" URI or a key=value string over
 * the policy `base` (NULL: the defaults).
 * @return 0 (then qorb__pg_connstr_free() `out`), QORB_EINVAL (NULL, a
 *         `base` not from qorb_policy_init()), QORB_ECONFIG (message in
 *         `err`), QORB_ENOMEM. On failure `out` holds nothing to free.
 */
int qorb__pg_connstr_parse(qorb__pg_connstr_t *out, const char *connstr,
                           const qorb_policy_t *base, char *err,
                           size_t errlen);
void qorb__pg_connstr_free(qorb__pg_connstr_t *c);

/* What qorb_redis_pool_new() makes of its URL (redis_pool_new.c). */
typedef struct qorb__redis_url {
  qorb_policy_t policy; /* policy.name points at `name` when set */
  char *name;           /* pool_name's copy, or NULL */
  char *backends;       /* numeric "h:p,h:p", or NULL when none */
  char *names;          /* host names "h:p,h:p", or NULL when none */
  char *dns_servers;    /* pool_dns_servers, or NULL: the system's */
  char *user;           /* NULL: the default user */
  char *password;       /* NULL: no AUTH */
  char *client_name;    /* NULL: none */
  int database;
  int flavour;          /* a qorb_redis_flavour_t */
} qorb__redis_url_t;

/*
 * Parse "redis://[[user]:password@]h:p[,h:p...][/db][?k=v&...]".
 * @return as qorb__pg_connstr_parse(); QORB_ENOTSUP for "rediss://".
 */
int qorb__redis_url_parse(qorb__redis_url_t *out, const char *url,
                          const qorb_policy_t *base, char *err,
                          size_t errlen);
void qorb__redis_url_free(qorb__redis_url_t *u);

#endif /* QORB_CONNSTR_H */
