/* SPDX-License-Identifier: MIT */
/**
 * @file
 * dns.h: the DNS resolver (libqorb-dns, on c-ares). It finds a service's
 * backends either through an SRV name ("_pg._tcp.db.example."), whose
 * targets are then looked up for A and AAAA records, or through a
 * "host:port", every address of `host` becoming a backend on `port`.
 *
 * It runs on the pool loop (c-ares sockets and timers are libev watchers
 * there; nothing blocks and no thread is started), honours TTLs, asks again
 * before they run out and sooner while nothing is found, talks to several
 * DNS servers and prefers those that fail least.
 *
 * Failure semantics: timeouts, refusals and server failures keep the last
 * good set (a DNS outage never empties a pool). An authoritative "no such
 * name" or an empty answer removes backends only once a second query
 * confirms it. A backend that an answer no longer lists stays until its
 * records' TTL has run out.
 */
#ifndef QORB_DNS_H
#define QORB_DNS_H

#include "resolver.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Address families to look up (qorb_dns_options_t.families). */
#define QORB_DNS_INET 1u  /**< A records */
#define QORB_DNS_INET6 2u /**< AAAA records */

/** Most DNS servers one resolver uses (and reports in its stats). */
#define QORB_DNS_MAX_SERVERS 8

/**
 * Options of a DNS resolver, with defaults from qorb_dns_options_init().
 * Plain data; fields are only ever appended, and `size` says which the
 * caller knows. Times are in milliseconds.
 */
typedef struct qorb_dns_options {
  size_t size;              /**< set by qorb_dns_options_init() */
  const char *name;         /**< "host:port" ("db.example:5432",
                                 "[::1]:5432") or an SRV name
                                 ("_pg._tcp.db.example."); required, copied */
  const char *servers;      /**< DNS servers, "host:port" separated by
                                 commas or spaces ("127.0.0.1:53,[::1]:53",
                                 at most QORB_DNS_MAX_SERVERS); NULL: the
                                 system's (/etc/resolv.conf). Copied. */
  unsigned families;        /**< QORB_DNS_INET | QORB_DNS_INET6 (both) */
  unsigned min_interval_ms; /**< never query more often than this (1000) */
  unsigned max_interval_ms; /**< always query at least this often, whatever
                                 the TTL (300000) */
  unsigned query_timeout_ms; /**< one try on one server (2000) */
  unsigned tries;           /**< tries per server before the next (2) */
  unsigned max_backends;    /**< backends kept at most; further addresses
                                 are skipped and logged (256) */
  qorb_log_cb log_cb;       /**< every query, answer, change and failure;
                                 NULL: none. Its `pool_name` argument is
                                 the resolver's `name`. */
  void *log_arg;            /**< its argument */
} qorb_dns_options_t;

/** Fill `o` with the defaults. Thread: any. */
#define qorb_dns_options_init(o) qorb_dns_options_init_((o), sizeof(*(o)))
QORB_EXTERN void qorb_dns_options_init_(qorb_dns_options_t *o, size_t size);

/** One DNS server in qorb_dns_stats_t. */
typedef struct qorb_dns_server_stats {
  char addr[56];             /**< "host:port" */
  uint64_t queries;          /**< queries sent to it */
  uint64_t failures;         /**< of those, timed out, refused or failed */
  unsigned consecutive_failures; /**< since its last answer; the server
                                      list is ordered by this */
} qorb_dns_server_stats_t;

/** Resolver statistics. Plain data; appended to only. */
typedef struct qorb_dns_stats {
  size_t size;               /**< set by qorb_dns_stats_init() */
  uint64_t queries;          /**< DNS queries sent (all servers) */
  uint64_t failures;         /**< lookups that failed on every server */
  uint64_t changes;          /**< backend sets reported to the pool */
  int last_error;            /**< QORB_E* / -errno code of the last
                                  failure, 0 when none */
  char last_error_text[128]; /**< its text (from c-ares), "" when none */
  int64_t last_error_age_ms; /**< how long ago; -1 when none */
  unsigned backends;         /**< backends reported now */
  int64_t next_query_ms;     /**< time until the next lookup; 0 while one
                                  runs, -1 when stopped */
  unsigned nservers;         /**< entries used in `servers` */
  qorb_dns_server_stats_t servers[QORB_DNS_MAX_SERVERS]; /**< in the
                                  configured order */
} qorb_dns_stats_t;

/** Zero `st` and set its `size` field. Thread: any. */
#define qorb_dns_stats_init(st) qorb_dns_stats_init_((st), sizeof(*(st)))
QORB_EXTERN void qorb_dns_stats_init_(qorb_dns_stats_t *st, size_t size);

/**
 * Check options without making a resolver.
 * @param err     if not NULL, receives a message naming the bad field.
 * @return 0; QORB_EINVAL (NULL `o`, or `size` not set by
 *         qorb_dns_options_init()); QORB_EBADADDR (no or empty name, a
 *         malformed "host:port" or SRV name, a bad server list);
 *         QORB_ECONFIG (min_interval_ms 0 or over max_interval_ms, no
 *         family, a zero timeout, tries or max_backends).
 * Thread: any.
 */
QORB_EXTERN int qorb_dns_options_validate(const qorb_dns_options_t *o,
                                          char *err, size_t errlen);

/**
 * Make a DNS resolver. The first lookup starts when the pool starts it.
 * @param out     receives the resolver.
 * @param o       the options.
 * @param err     if not NULL, receives a message on failure.
 * @return 0, the codes of qorb_dns_options_validate(), QORB_ENOMEM, or
 *         QORB_ECONFIG when c-ares cannot be set up (its text in `err`).
 * Ownership: the options and their strings are copied (`log_arg` is kept
 * as given). Give the resolver to qorb_pool_new(), or free it with
 * qorb_resolver_free(). c-ares allocates through qorb_malloc() and friends
 * while a DNS resolver exists.
 * Thread: any.
 */
QORB_EXTERN int qorb_dns_resolver_new(qorb_resolver_t **out,
                                      const qorb_dns_options_t *o, char *err,
                                      size_t errlen);

/**
 * Take a snapshot of the resolver's statistics.
 * @param st  initialised with qorb_dns_stats_init().
 * @return 0, QORB_EINVAL (NULL, `size` not set, or `r` is not a DNS
 *         resolver). Allocates nothing.
 * Thread: the pool loop (or any thread while the pool loop is not running).
 */
QORB_EXTERN int qorb_dns_resolver_stats(const qorb_resolver_t *r,
                                        qorb_dns_stats_t *st);

#ifdef __cplusplus
}
#endif
#endif /* QORB_DNS_H */
