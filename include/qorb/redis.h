/* SPDX-License-Identifier: MIT */
/**
 * @file
 * redis.h: qorb-redis, the Redis connector (hiredis). Link libqorb-redis
 * (pkg-config qorb-redis, CMake qorb::redis). A pool built with it hands
 * out hiredis contexts that are connected, authenticated, in the configured
 * database, of the wanted role (master or replica) and clean: nothing that
 * the previous claimant left (MULTI, WATCH, another database, a client
 * name, subscriptions) reaches the next one.
 *
 * Two flavours, chosen per connector:
 *   QORB_REDIS_BLOCKING  a `redisContext *` for thread-per-request code:
 *                        claim (qorb_pool_claim_wait), redisCommand(),
 *                        release. The context is connected without
 *                        blocking the pool loop and handed out in blocking
 *                        mode.
 *   QORB_REDIS_ASYNC     a `redisAsyncContext *` attached to the pool loop,
 *                        for event-driven code: claim (qorb_pool_claim, or
 *                        try_claim on the loop), redisAsyncCommand(), and
 *                        release from a reply callback, all on the loop.
 *
 * What qorb-redis does with each connection:
 *   connect   a non-blocking TCP connect (keepalive on by default), then
 *             one pipelined round trip: RESET (to learn whether the server
 *             has it), AUTH, SELECT and CLIENT SETNAME as configured,
 *             CLIENT NO-EVICT off and CLIENT NO-TOUCH off (to learn
 *             whether the server has them; skipped with
 *             QORB_REDIS_RECYCLE_NONE), ROLE when a role is required, and
 *             a PING. Any error fails the connect with the server's text
 *             (an error to a probe only says the server lacks the
 *             command). The pool's connect_timeout_ms bounds the whole of
 *             it.
 *   check     PING (and ROLE when a role is required), bounded by the
 *             pool's health_check_timeout_ms. A backend whose role no
 *             longer matches fails its checks, so role-limited pools follow
 *             a failover.
 *   recycle   on Redis 6.2 and later: RESET, then AUTH, SELECT and CLIENT
 *             SETNAME again. On older servers: DISCARD, UNWATCH, AUTH,
 *             SELECT and CLIENT SETNAME (a connection that is subscribed
 *             fails these and is closed). Either way, in the same round
 *             trip, CLIENT NO-EVICT off and CLIENT NO-TOUCH off where the
 *             server has them: RESET leaves them on (Redis 7.0.15 keeps
 *             NO-EVICT; it clears CLIENT TRACKING, CLIENT REPLY OFF,
 *             READONLY, ASKING, MULTI, WATCH, subscriptions, MONITOR, the
 *             user, the database, the name and RESP3). A claimant that
 *             left CLIENT REPLY SKIP pending makes RESET's own reply go
 *             missing: the recycle then fails and the connection is
 *             closed. Bounded by recycle_timeout_ms. Runs on the pool loop
 *             after the release: qorb_release() never waits for it.
 *   idle      the pool watches the socket of every idle connection. In
 *             the async flavour hiredis's own read watcher is paused
 *             meanwhile, so the two never compete and hiredis never frees
 *             an idle context. When the socket becomes readable, qorb-redis
 *             peeks (recv with MSG_PEEK | MSG_DONTWAIT: nothing is read,
 *             nothing waits, nothing is sent): EOF or a reset closes and
 *             replaces the connection at once and has the pool check the
 *             backend's other idle connections (QORB_EGONE); bytes that
 *             nobody asked for (a reply left unread, a push) close it too
 *             (QORB_EPROTO).
 *   closed    instead of recycled: a connection released with replies
 *             pending (commands appended and not read, a reply half read,
 *             async callbacks outstanding), with an error on the context,
 *             in subscriber or monitor mode (async flavour), or in any
 *             state that recycling cannot prove clean.
 *
 * Timeouts. Connect and health-check timeouts are the pool's
 * (qorb_policy_t.connect_timeout_ms and .health_check_timeout_ms); qorb
 * enforces them on the loop, also with hiredis 0.14, which has no async
 * timeouts of its own. The claimant's own commands on a blocking context
 * are bounded by `command_timeout_ms` below (none by default).
 *
 * Using a claimed blocking context (qorb_redis_ctx()). It is yours from the
 * claim until qorb_release():
 *   - redisCommand(), redisCommandArgv(), redisAppendCommand() +
 *     redisGetReply() all work; read every reply you asked for. A context
 *     released with appended commands or unread replies is closed.
 *   - Never redisFree(), redisReconnect() or redisSetTimeout() it: the pool
 *     owns it. When a call fails (the context's `err` is set), just release
 *     it: the pool sees the error and closes it. qorb_release_broken() says
 *     the same thing explicitly.
 *   - hiredis writes with write(2): a server that went away raises SIGPIPE
 *     on the claimant's thread. Ignore SIGPIPE in the process, as every
 *     hiredis program should. (The connector's own writes on the pool loop
 *     are protected.)
 *
 * Using a claimed async context (qorb_redis_async()). Only on the pool
 * loop thread:
 *   - redisAsyncCommand() and friends work; release from a reply callback
 *     (or later), with no command of yours outstanding. A context released
 *     with callbacks outstanding, subscribed or in MONITOR is closed, and
 *     its outstanding callbacks then run with a NULL reply.
 *   - The context may be freed under you by hiredis when the server goes
 *     away (hiredis 0.14 frees an async context on disconnect): your
 *     callbacks then get a NULL reply; do not touch the context after
 *     that; release the claim.
 *   - Never redisAsyncFree(), redisAsyncDisconnect() it, and do not set
 *     its `data` field or its connect and disconnect callbacks: they are
 *     qorb's.
 *
 * Errors. A failed connect, check or recycle is recorded with the server's
 * or hiredis's text (for example "AUTH: WRONGPASS invalid username-password
 * pair or user is disabled."), readable in the pool's stats snapshot
 * (qorb_backend_stats_t.last_error). Codes: QORB_EAUTH (AUTH refused),
 * QORB_EROLE (wrong role), QORB_EGONE (the server went away: it closed
 * the connection or reset it, or answered -LOADING or -SHUTDOWN; the pool
 * then checks the backend's other idle connections at once; a claimed
 * connection that died that way is reported the same at its release),
 * QORB_EPROTO (an unexpected reply), QORB_ECONNECT / QORB_ECHECK /
 * QORB_ERECYCLE (other failures of that step).
 *
 * TLS. With hiredis 1.x built with TLS (hiredis_ssl), `tls` takes a
 * `redisSSLContext *` made by redisCreateSSLContext(). With hiredis 0.14 a
 * non-NULL `tls` is refused with QORB_ENOTSUP.
 *
 * Memory: hiredis objects use hiredis's allocator; the connector's own use
 * malloc(3).
 */
#ifndef QORB_REDIS_H
#define QORB_REDIS_H

#include "common.h"
#include "connector.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* hiredis types, declared here so that this header does not depend on
 * where hiredis's headers are installed (<hiredis/hiredis.h> or
 * <hiredis.h>). They are the same types as hiredis's typedefs. */
struct redisContext;
struct redisAsyncContext;
struct redisSSLContext;

/** The kind of hiredis context a pool hands out. */
typedef enum qorb_redis_flavour {
  QORB_REDIS_BLOCKING = 0, /**< redisContext, blocking mode (default) */
  QORB_REDIS_ASYNC = 1     /**< redisAsyncContext on the pool loop */
} qorb_redis_flavour_t;

/** Which backends a pool may use, by their ROLE. */
typedef enum qorb_redis_role {
  QORB_REDIS_ROLE_ANY = 0,    /**< any backend, no ROLE query (default) */
  QORB_REDIS_ROLE_MASTER = 1, /**< only masters */
  QORB_REDIS_ROLE_REPLICA = 2 /**< only replicas ("slave") */
} qorb_redis_role_t;

/** How a released connection is cleaned. */
typedef enum qorb_redis_recycle {
  /** RESET where the server has it (learnt at connect), else the legacy
      sequence. The default. */
  QORB_REDIS_RECYCLE_AUTO = 0,
  /** RESET only: a server without it fails the connect. */
  QORB_REDIS_RECYCLE_RESET = 1,
  /** DISCARD, UNWATCH, AUTH, SELECT, CLIENT SETNAME, even where RESET
      exists. Does not undo CLIENT TRACKING, CLIENT REPLY or other state
      that only RESET clears. */
  QORB_REDIS_RECYCLE_LEGACY = 2,
  /** No cleaning: a release costs no round trip. Choose it only when every
      claimant leaves the connection as it found it (plain reads and writes:
      no SELECT, MULTI left open, WATCH, SUBSCRIBE, CLIENT SETNAME, AUTH,
      CLIENT NO-EVICT). Connections left with replies pending or an error
      are still closed, never handed to the next claimant: replies already
      in hiredis's buffer, callbacks outstanding (async), and, since no
      recycle's PING stands between a stale reply and the next claimant,
      replies waiting on the socket, found by one recv(MSG_PEEK |
      MSG_DONTWAIT) at release (this mode's release makes that one system
      call). A reply that arrives only after the release (the claimant
      sent a command and let go without waiting for it) is found by the
      pool's watch of the idle socket, which closes the connection; a claim
      in the instant between the two can still get it, so claimants in this
      mode must read every reply they asked for. */
  QORB_REDIS_RECYCLE_NONE = 3
} qorb_redis_recycle_t;

/**
 * Connector options: plain data, initialised by qorb_redis_options_init();
 * new fields are only ever appended. Strings are copied by
 * qorb_redis_connector_new(). The leading `size` (the caller's sizeof)
 * makes the struct safe across versions both ways: a caller built against
 * an older, shorter struct gets the defaults for the fields it lacks, and
 * nothing past its size is read or written; a caller built against a
 * newer, longer struct is accepted, and the fields this library does not
 * know are ignored.
 */
typedef struct qorb_redis_options {
  size_t size; /**< set by qorb_redis_options_init() */

  /** blocking or async (default QORB_REDIS_BLOCKING) */
  qorb_redis_flavour_t flavour;

  /** password for AUTH; NULL: no AUTH (default). Not empty. */
  const char *password;
  /** ACL user name (Redis 6+): AUTH user password; NULL: AUTH password
      alone, i.e. the default user (default). Needs `password`. No
      spaces or control characters. */
  const char *user;
  /** database for SELECT, 0 or more; 0 is the server's default, so no
      SELECT is sent on connect (default 0) */
  int database;
  /** CLIENT SETNAME; NULL: none (default). 1 to 128 printable
      characters, no spaces. */
  const char *client_name;

  /** which backends to use (default QORB_REDIS_ROLE_ANY) */
  qorb_redis_role_t role;

  /** how released connections are cleaned (default
      QORB_REDIS_RECYCLE_AUTO) */
  qorb_redis_recycle_t recycle;

  /** TCP keepalive: 1 on (default), 0 off */
  int keepalive;

  /** blocking flavour: bound on each of the claimant's socket reads and
      writes (hiredis's redisSetTimeout); after it expires the context has
      an error and is closed at release. 0: none (default). Ignored by the
      async flavour. */
  unsigned command_timeout_ms;

  /** hiredis 1.x with TLS only: the redisSSLContext for every connection
      (borrowed: it must outlive the pool). NULL: plain TCP (default). */
  struct redisSSLContext *tls;
} qorb_redis_options_t;

/** Fill `o` with the defaults. Thread: any. */
#define qorb_redis_options_init(o) qorb_redis_options_init_((o), sizeof(*(o)))
QORB_EXTERN void qorb_redis_options_init_(qorb_redis_options_t *o,
                                          size_t size);

/**
 * Make a Redis connector, to be given to qorb_pool_new().
 * @param out     receives the connector.
 * @param opts    initialised with qorb_redis_options_init(); NULL for the
 *                defaults (blocking, no AUTH, database 0, any role).
 * @param err     if not NULL, receives a message naming the bad field on
 *                QORB_ECONFIG or QORB_ENOTSUP.
 * @param errlen  size of `err`.
 * @return 0, QORB_EINVAL (NULL `out`, `size` not set by
 *         qorb_redis_options_init()), QORB_ECONFIG (a bad value: negative
 *         database, a client name with spaces, a user without a password,
 *         an empty password, an unknown flavour, role or recycle mode,
 *         keepalive not 0 or 1), QORB_ENOTSUP (`tls` without hiredis TLS
 *         support), QORB_ENOMEM.
 * Ownership: every string is copied; nothing of `opts` is kept except the
 * `tls` pointer. The pool that takes the connector frees it; otherwise
 * qorb_connector_free().
 * Thread: any.
 */
QORB_EXTERN int qorb_redis_connector_new(qorb_connector_t **out,
                                         const qorb_redis_options_t *opts,
                                         char *err, size_t errlen);

/**
 * The blocking context of a claim from a QORB_REDIS_BLOCKING pool.
 * @return the context (in blocking mode), or NULL for a NULL claim, a
 *         claim from an async pool, or a claim from a pool with another
 *         connector (recognised by a tag at the start of qorb-redis's
 *         connection object).
 * Ownership: the pool's; borrowed until qorb_release() or
 * qorb_release_broken(). See the top of this file for what may be done
 * with it.
 * Thread: the claimant's.
 */
QORB_EXTERN struct redisContext *qorb_redis_ctx(const qorb_claim_t *claim);

/**
 * The async context of a claim from a QORB_REDIS_ASYNC pool, attached to
 * the pool loop.
 * @return the context, or NULL for a NULL claim, a claim from a blocking
 *         pool or a pool with another connector, or when hiredis has
 *         already freed the context because the server went away (then
 *         just release the claim).
 * Ownership: the pool's; borrowed until qorb_release() or
 * qorb_release_broken(). See the top of this file for what may be done
 * with it.
 * Thread: the pool loop.
 */
QORB_EXTERN struct redisAsyncContext *qorb_redis_async(
    const qorb_claim_t *claim);

/** Most arguments of one qorb_redis_hook_command() command. */
#define QORB_REDIS_HOOK_MAX_ARGS 1024

struct redisReply;

/**
 * A pool hook's look at the reply to its command (qorb_redis_hook_command()):
 * 0 to keep the connection, a negative code (such as QORB_EREJECTED) to
 * close it; qorb_op_set_error(op, ...) may say why.
 * @param reply  borrowed for the call; never free it.
 * Thread: the pool loop.
 */
typedef int (*qorb_redis_hook_reply_cb)(void *arg, qorb_op_t *op,
                                        const struct redisReply *reply);

/**
 * Send one command for a pool hook (policy.after_connect, before_acquire,
 * after_release; see qorb_hook_fn in <qorb/pool.h>) on the pool loop,
 * without blocking it, in either flavour, and finish the hook with its
 * outcome: the hook returns what this returns, and qorb-redis calls
 * qorb_op_done(op, ...) once the reply is in: 0 when `judge` keeps it
 * (without a judge: any reply but an error), else the judge's code, or
 * QORB_EREJECTED for an error reply (whose text becomes the backend's last
 * error). A PING with a token of its own follows the command, as after
 * every qorb-redis op, so a reply out of step never passes. The pool's
 * hook_timeout_ms bounds it: a timeout closes the connection.
 *
 * The recycle (RESET, or DISCARD/UNWATCH/SELECT) runs after each release:
 * what after_connect sets that RESET clears (CLIENT TRACKING, a READONLY
 * cluster mode) lasts only until the first release. Keep hooks to what
 * survives it, or check before each hand-out (before_acquire).
 *
 * @param op       the hook's op handle.
 * @param conn     the hook's connection object (a qorb-redis one).
 * @param argc     1 to QORB_REDIS_HOOK_MAX_ARGS arguments.
 * @param argv     the arguments (binary safe), copied before this returns.
 * @param argvlen  their lengths.
 * @param judge    looks at the reply, or NULL.
 * @param arg      its first argument.
 * @return 0 (started: qorb_op_done() follows; do not call it yourself),
 *         QORB_EINVAL (NULL or out-of-range arguments, or `conn` is not a
 *         qorb-redis connection), QORB_EBUSY (a command of this connection
 *         already running), QORB_ECLOSED (the connection is broken), or
 *         QORB_ENOMEM (then nothing follows).
 * Thread: the pool loop, inside or after a hook.
 */
QORB_EXTERN int qorb_redis_hook_command(qorb_op_t *op, void *conn, int argc,
                                        const char **argv,
                                        const size_t *argvlen,
                                        qorb_redis_hook_reply_cb judge,
                                        void *arg);

/**
 * The redisContext of a hook's connection object in the blocking flavour
 * (NULL in the async flavour or for another connector's object), for a
 * hook that only looks at it and then calls qorb_op_done() itself. Use
 * qorb_redis_hook_command() for commands: blocking calls on the pool loop
 * would stall every other connection.
 * Ownership: the pool's. Thread: the pool loop, inside a hook.
 */
QORB_EXTERN struct redisContext *qorb_redis_hook_ctx(void *conn);


/**
 * Make a pool from one URL: a resolver for the URL's hosts, a qorb-redis
 * connector and the pool settings from its pool_* parameters. The same as
 * qorb_redis_pool_new_with() with a NULL base policy.
 *
 * Form: "redis://[[user]:password@]host[:port][,host[:port]...][/db]
 * [?key=value&...]", for example
 * "redis://user:pass@cache.internal:6379/2?pool_max_conns=8".
 *   user, password  percent-decoded; AUTH user password, or AUTH password
 *                   for ":password@" or "password@" (as redis-cli reads
 *                   it). A user needs a password. None: no AUTH.
 *   hosts           numeric IPv4 or IPv6 (in brackets) addresses and host
 *                   names, port 6379 when not given. A numeric address is
 *                   one backend; a host name is looked up by a DNS
 *                   resolver (libqorb-dns: every A and AAAA address a
 *                   backend, looked up again as the TTLs run out); several
 *                   hosts make one merged resolver
 *                   (qorb_resolver_merge_new()). In a build without
 *                   libqorb-dns, host names are refused (QORB_ECONFIG,
 *                   "host names need libqorb-dns").
 *   /db             the database for SELECT (default 0).
 * Parameters (percent-decoded):
 *   pool_max_conns, pool_min_conns, pool_min_idle, pool_max_conn_lifetime,
 *   pool_max_conn_lifetime_jitter, pool_max_conn_idle_time,
 *   pool_health_check_period, pool_name, pool_dns_servers
 *                   the pool settings and the DNS servers for host names,
 *                   with the names, units and meaning of qorb_pg_pool_new()
 *                   (durations as Go writes them: "30s", "1h30m"; a bare
 *                   number is refused).
 *   flavour         blocking (default: a redisContext) or async
 *                   ("flavor" is read the same).
 *   client_name     CLIENT SETNAME.
 * "rediss://" is refused with QORB_ENOTSUP: this function makes no TLS
 * context (with hiredis TLS, give a redisSSLContext to
 * qorb_redis_connector_new() instead).
 *
 * @param out     receives the pool.
 * @param loop    as for qorb_pool_new(): the application's loop, or NULL
 *                for a loop on a thread the pool owns.
 * @param url     the URL.
 * @param err     if not NULL, receives a message naming the bad part.
 * @param errlen  size of `err`.
 * @return 0; QORB_EINVAL (NULL `out` or `url`); QORB_ECONFIG (not a
 *         redis:// URL, a bad pool_* key or value, an unknown parameter, no
 *         host, an empty or malformed host, a host name without
 *         libqorb-dns or that the DNS resolver refuses, a bad port or
 *         database, bad percent-encoding, settings that do not fit
 *         together, or what qorb_redis_connector_new() refuses);
 *         QORB_ENOTSUP (rediss://); QORB_ENOMEM; or qorb_pool_new()'s other
 *         codes.
 * Ownership: `url` is borrowed for the call (everything needed is copied).
 * Close the pool with qorb_pool_close(). On failure nothing is left to
 * free and `*out` is NULL.
 * Thread: as qorb_pool_new().
 */
QORB_EXTERN int qorb_redis_pool_new(qorb_pool_t **out, struct ev_loop *loop,
                                    const char *url, char *err,
                                    size_t errlen);

/**
 * qorb_redis_pool_new() over a policy of the caller's: the URL's pool_*
 * parameters set their fields of a copy of `base`, and everything else of
 * `base` is kept as given: the log callback (which the DNS resolvers of
 * host names log through as well), the lifecycle hooks, and every field
 * the URL has no parameter for.
 *
 * @param out     receives the pool.
 * @param loop    as for qorb_pool_new().
 * @param url     the URL, as for qorb_redis_pool_new().
 * @param base    a policy from qorb_policy_init(), or NULL for its defaults
 *                (then this is qorb_redis_pool_new()).
 * @param err     if not NULL, receives a message naming the bad part.
 * @param errlen  size of `err`.
 * @return as qorb_redis_pool_new(), and QORB_EINVAL for a `base` whose
 *         `size` qorb_policy_init() did not set.
 * Ownership: `url` and `base` are borrowed for the call (the pool copies
 * the policy and its name); `base->log_arg` and the hooks' arguments are
 * kept as given, for the pool's life.
 * Thread: as qorb_pool_new().
 */
QORB_EXTERN int qorb_redis_pool_new_with(qorb_pool_t **out,
                                         struct ev_loop *loop,
                                         const char *url,
                                         const qorb_policy_t *base, char *err,
                                         size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* QORB_REDIS_H */
