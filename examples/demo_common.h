/* SPDX-License-Identifier: MIT */
/*
 * demo_common.h: what the example programs share, so that each of them
 * shows only what is particular to its connector.
 *
 *   demo_parse_args()   command-line options from a small table (getopt)
 *   demo_pool_new()     a pool over the static resolver for a backend list
 *   demo_print_stats()  the pool's statistics as a table, one backend a row,
 *                       with a line of the resolver's figures when it is
 *                       not the static one
 *   demo_run()          the demos' workload: a pool, worker threads that
 *                       claim, run one request and release, for --seconds,
 *                       with the stats table printed once a second and
 *                       totals at the end (qorb-echo-demo, qorb-pg-demo,
 *                       qorb-redis-demo); optionally a stats endpoint for
 *                       tools/qorbtop (--endpoint, with libqorb-endpoint)
 *                       and the last stats as JSON (--stats-json)
 *
 * The demos find their backends either in a numeric --backends list (the
 * static resolver, here) or, for the programs that take DEMO_OPTS_DNS,
 * through DNS (--service, --dns-server; the resolver comes from
 * demo_dns.h, which is built only with libqorb-dns).
 *
 * These are example symbols, so they use a `demo_` prefix: the `qorb_`
 * prefix belongs to the library.
 */
#ifndef QORB_DEMO_COMMON_H
#define QORB_DEMO_COMMON_H

#include <stddef.h>
#include <stdio.h>

#include <qorb/qorb.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ options */

/*
 * One command-line option, `--name ARG` (or `-k ARG`). Exactly one of
 * `str` and `num` is set: a string option stores optarg in *str; a number
 * option accepts a decimal in [min, max] and stores it in *num; a flag
 * (`arg` NULL, `num` set) takes no value and stores 1 in *num. Defaults
 * are whatever the targets hold before parsing.
 */
typedef struct demo_opt {
  const char *name; /* long name, without the dashes */
  char key;         /* short option letter */
  const char *arg;  /* the value's name in the usage text: "LIST", "N";
                       NULL for a flag */
  const char **str;
  unsigned *num;
  unsigned min, max;
  int required;     /* the program cannot run without it */
  const char *help; /* the usage line's text (say the default there) */
} demo_opt_t;

/*
 * Parse argv by `opts` (`n` entries; --help/-h is added). Returns 0; -1
 * after printing why and the usage on stderr (the caller exits with 2).
 * --help prints the usage on stdout and exits 0.
 */
int demo_parse_args(const char *prog, int argc, char **argv,
                    const demo_opt_t *opts, size_t n);

/* ------------------------------------------------------------ the pool */

/*
 * A pool over a static resolver for `backends` (numeric host:port list)
 * and `connector`, on `loop` (NULL: a loop thread of the pool's own).
 * Ownership: `connector` is transferred: the pool owns it on success, and
 * it is freed here on failure, as is the resolver (qorb_pool_new() leaves
 * both with the caller when it fails). Failures are printed on stderr,
 * prefixed with `prog`. Returns 0 or a negative qorb code.
 */
int demo_pool_new(const char *prog, qorb_pool_t **pool, struct ev_loop *loop,
                  const char *backends, qorb_connector_t *connector,
                  const qorb_policy_t *policy);

/*
 * Print the pool's statistics to `f`: one line for the pool (backends
 * online, slots by state, waiters, claims, timeouts), then a table with a
 * row per backend (online, slots, claims, failures, last error). The last
 * error is cut to `error_width` characters (0: printed whole, e.g. libpq's
 * text when it says why no backend is online). A resolver other than the
 * static one gets a line of its own, from the pool's snapshot
 * (qorb_pool_stats_t.resolver): what it resolves, its servers, backends,
 * queries, failures, changes, the time until its next lookup and its last
 * error. The lines go out under flockfile(f), so that another thread's
 * output (the DNS log lines of demo_dns.c) never lands inside the table.
 * Thread: any (qorb_pool_stats() is).
 */
void demo_print_stats(FILE *f, qorb_pool_t *pool, size_t error_width);

/* ------------------------------------------------------- the demos' run */

/* The options every demo takes (see demo_parse_opts()). */
typedef struct demo_opts {
  const char *backends;   /* --backends: numeric host:port list (static) */
  const char *service;    /* --service: an SRV name or "host:port" to
                             find in DNS (DEMO_OPTS_DNS) */
  const char *dns_server; /* --dns-server: DNS servers for --service
                             (NULL: the system's) */
  unsigned seconds;   /* --seconds: run time (default 10) */
  unsigned threads;   /* --threads: worker threads (default 4) */
  unsigned think_ms;  /* --think-ms: pause between requests (default 2) */
  unsigned max_slots; /* --max-slots: pool size (default 8) */
  const char *endpoint;   /* --endpoint: serve the pool's stats there
                             (<qorb/endpoint.h>, for tools/qorbtop);
                             NULL: none */
  const char *stats_json; /* --stats-json: write the pool's last stats
                             there as JSON (/stats.json's document) */
  unsigned quiet;     /* --quiet: no stats table each second */
} demo_opts_t;

/*
 * For the examples that take positional arguments: with -h or --help among
 * them, print `usage` and return 0; with another argument that starts with
 * '-', print `usage` and the complaint to stderr and return 2; otherwise
 * -1 (read the arguments). The caller exits with what it returns.
 */
int demo_positional_usage(const char *prog, int argc, char **argv,
                          const char *usage);

/* demo_parse_opts() flags. */
#define DEMO_OPTS_DNS 1u /* take --service and --dns-server as well */

/*
 * demo_parse_args() over the demos' options: --backends (`backends_help`
 * describes it), --seconds, --threads, --think-ms, --max-slots (at most
 * `max_slots_cap`), --endpoint, --stats-json, --quiet, and `extra` options
 * of the program's own (`n_extra`, may be 0). Without DEMO_OPTS_DNS in
 * `flags`, --backends is required; with it, --service NAME and
 * --dns-server LIST are taken too and exactly one of --backends and
 * --service must be given.
 */
int demo_parse_opts(const char *prog, int argc, char **argv, demo_opts_t *o,
                    const char *backends_help, unsigned max_slots_cap,
                    unsigned flags, const demo_opt_t *extra, size_t n_extra);

/*
 * The demos' policy: `name`, `max_slots`, up to two spares, and times
 * short enough that a demo of a few seconds shows a backend failing and
 * coming back (claim and connect timeouts 1 s, backoff 100 ms to 1 s,
 * health checks every second with a 500 ms timeout, rebalancing every
 * 500 ms, a 2 s failure window).
 */
void demo_policy(qorb_policy_t *p, const char *name, unsigned max_slots);

/*
 * One request on a claimed connection, by worker `worker` (its `n`th).
 * Returns 0, or a negative qorb code that says what went wrong (counted
 * and shown in the totals). The runner releases the claim afterwards with
 * a plain qorb_release(): a connector notices a broken connection there.
 */
typedef int (*demo_request_fn)(qorb_claim_t *claim, unsigned worker,
                               unsigned long n, void *arg);

/*
 * Make the resolver for o->service (a DNS name). Returns 0 with *out set,
 * or non-zero after printing why on stderr, prefixed with `prog`.
 * demo_dns_resolver_new() (demo_dns.h) is one.
 */
typedef int (*demo_resolver_fn)(const char *prog, const demo_opts_t *o,
                                qorb_resolver_t **out);

typedef struct demo_workload {
  const char *prog; /* prefix for messages */
  const char *noun; /* what the output calls requests ("transactions") */
  demo_request_fn request;
  void *arg;                     /* the request's `arg` */
  demo_resolver_fn resolver_new; /* for --service; NULL: --backends only */
} demo_workload_t;

/*
 * Make a pool with `connector` and `policy`, over o->backends (the static
 * resolver) or o->service (wl->resolver_new's resolver), on a loop thread
 * of its own (the connector's ownership is transferred, also on failure),
 * and run the workload on it as `o` says: o->threads workers
 * claim (waiting up to a second), run one request, release, and pause
 * o->think_ms, until o->seconds are over or SIGINT/SIGTERM arrives; the
 * stats are printed once a second (not with o->quiet) and at the end, with
 * the totals and the failures by code. With o->endpoint, a stats endpoint
 * (its own thread) serves the pool meanwhile and the program prints
 * "stats endpoint: http://HOST:PORT" once it listens; this needs
 * libqorb-endpoint (otherwise the run fails, saying it is not built).
 * With o->stats_json, the pool's stats once the workers have stopped are
 * written there as JSON. Closes the pool. Returns the exit status: 0 if
 * any request succeeded.
 */
int demo_run(const demo_opts_t *o, qorb_connector_t *connector,
             const qorb_policy_t *policy, const demo_workload_t *wl);

#ifdef __cplusplus
}
#endif
#endif /* QORB_DEMO_COMMON_H */
