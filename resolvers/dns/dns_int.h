/* SPDX-License-Identifier: MIT */
/*
 * dns_int.h: what the files of libqorb-dns share. dns.c holds the options,
 * the public calls and the resolver ops; dns_server.c one c-ares channel per
 * DNS server on the pool loop, and the failover of one query across them;
 * dns_lookup.c one lookup (the SRV or host query, then the targets'
 * addresses) and how its answers change the backend set; dns_wire.c the
 * parsing of names, server lists and raw answers.
 */
#ifndef QORB_DNS_INT_H
#define QORB_DNS_INT_H

#include <stdint.h>

#include <sys/select.h> /* fd_set, which ares.h uses */

#include <ares.h>
#include <ev.h>

#include "qorb/dns.h"

#if defined(QORB_HAVE_PROBES)
/*
 * The probes are declared in core/probes.d, but their semaphores live in
 * libqorb, which a separate library cannot own. So libqorb-dns fires them
 * without semaphores: the same provider and names, always-on notes (the
 * arguments are a pointer and a few integers, cheap to pass).
 */
#include <sys/sdt.h>
#define DNS_PROBE2(n, a, b) STAP_PROBE2(qorb, n, a, b)
#define DNS_PROBE3(n, a, b, c) STAP_PROBE3(qorb, n, a, b, c)
#else
#define DNS_PROBE2(n, a, b) ((void)(a), (void)(b))
#define DNS_PROBE3(n, a, b, c) ((void)(a), (void)(b), (void)(c))
#endif

#define DNS_NAME_MAX 254     /* 253 characters and a NUL */
#define DNS_MAX_TARGETS 64   /* SRV targets looked up per answer */
#define DNS_MAX_RECORDS 512  /* RRs read from one answer */
#define DNS_MAX_SOCKS 8      /* sockets one channel may have at once */

typedef struct dns_resolver dns_resolver_t;
typedef struct dns_query dns_query_t;

/* One DNS server: a c-ares channel that talks to it alone. */
typedef struct dns_server {
  dns_resolver_t *d;
  char text[56];
  ares_channel ch;
  ev_io io[DNS_MAX_SOCKS];    /* a watcher per socket c-ares reports */
  ares_socket_t fd[DNS_MAX_SOCKS]; /* ARES_SOCKET_BAD: slot free */
  ev_timer timer;             /* c-ares timeouts (ares_timeout) */
  uint64_t queries, failures;
  unsigned consecutive;
} dns_server_t;

typedef enum dns_kind { DNS_Q_SRV, DNS_Q_ADDR } dns_kind_t;

/* Outcome of a query over every server. */
typedef enum dns_outcome {
  DNS_OK,    /* records */
  DNS_EMPTY, /* NXDOMAIN or no records of the type */
  DNS_FAIL   /* timed out, refused, failed on every server */
} dns_outcome_t;

/* One query of a lookup, tried on the servers in order until one answers. */
struct dns_query {
  dns_resolver_t *d;
  dns_kind_t kind;
  char name[DNS_NAME_MAX];
  uint16_t port;              /* DNS_Q_ADDR: the backends' port */
  unsigned srv_ttl;           /* DNS_Q_ADDR from SRV: the SRV record's TTL */
  unsigned attempt;           /* index into the resolver's server order */
  unsigned gen;               /* the lookup it belongs to */
  dns_outcome_t outcome;
  int status;                 /* the last ARES_* status */
};

/* A backend and why we have it. */
typedef struct dns_entry {
  qorb_addr_t addr;
  char target[DNS_NAME_MAX];  /* the name looked up for its address */
  uint64_t expires_ms;        /* its records' TTL ends (monotonic ms) */
} dns_entry_t;

#define DNS_MAGIC UINT64_C(0x7172626464e5ff01)

struct dns_resolver {
  uint64_t magic;             /* DNS_MAGIC; the first field */
  qorb_dns_options_t o;       /* strings point into `name`/`servers` */
  char name[DNS_NAME_MAX + 8];
  char *servers_text;
  char host[DNS_NAME_MAX];    /* host mode: the host; SRV mode: "" */
  uint16_t port;              /* host mode: the port */
  int srv;                    /* 1: SRV mode */

  qorb_resolver_t *r;
  struct ev_loop *loop;
  int running;                /* between start and stop */
  ev_timer next;              /* the next lookup */
  int library_init;           /* ares_library_init done */

  dns_server_t servers[QORB_DNS_MAX_SERVERS];
  unsigned nservers;
  unsigned order[QORB_DNS_MAX_SERVERS]; /* servers, least failing first */

  /* The lookup in flight. */
  unsigned gen;
  int busy;
  dns_query_t *q;             /* q[0] SRV or host; q[1..] SRV targets */
  unsigned nq, pending;
  dns_entry_t *found;         /* addresses found so far */
  unsigned nfound;
  unsigned min_ttl;           /* smallest TTL of the answer, s */

  /* The backend set reported to the pool. */
  dns_entry_t *set;
  qorb_addr_t *addrs;         /* `set` as the pool takes it */
  unsigned nset;
  int unreported;             /* the last report failed (out of memory) */
  unsigned empty_streak;      /* lookups in a row that found no name */
  unsigned fail_streak;       /* lookups in a row that failed */

  uint64_t queries, failures, changes;
  int last_error;
  char last_error_text[128];
  uint64_t last_error_ms;     /* 0: none */
};

/* dns.c */
uint64_t qorb__dns_now_ms(const dns_resolver_t *d);
void qorb__dns_report(dns_resolver_t *d);
void qorb__dns_log(dns_resolver_t *d, qorb_log_level_t level,
                   const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void qorb__dns_error(dns_resolver_t *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* dns_server.c */
int qorb__dns_servers_init(dns_resolver_t *d, char *err, size_t errlen);
void qorb__dns_servers_destroy(dns_resolver_t *d);
void qorb__dns_query_send(dns_query_t *q);
void qorb__dns_server_order(dns_resolver_t *d);

/* dns_lookup.c */
void qorb__dns_lookup_start(dns_resolver_t *d);
void qorb__dns_query_done(dns_query_t *q, const unsigned char *abuf,
                          int alen, struct ares_addrinfo *ai);

/* dns_wire.c */
int qorb__dns_check_name(const char *name, int allow_trailing_dot);
int qorb__dns_parse_name(const char *text, char *host, size_t hostlen,
                         uint16_t *port, int *srv);
int qorb__dns_parse_servers(const char *list, qorb_addr_t *out,
                            unsigned cap, unsigned *n, char *err,
                            size_t errlen);
int qorb__dns_answer_ttl(const unsigned char *abuf, int alen, int type,
                         unsigned *ttl);

#endif /* QORB_DNS_INT_H */
