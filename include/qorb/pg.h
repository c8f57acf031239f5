/* SPDX-License-Identifier: MIT */
/**
 * @file
 * pg.h: qorb-pg, the PostgreSQL connector (libpq). Link libqorb-pg
 * (pkg-config qorb-pg, CMake qorb::pg). A pool built with it hands out
 * PGconn handles that are connected, recently checked, of the wanted role
 * (primary or standby) and clean: no transaction, no session state left
 * by the previous claimant.
 *
 * What qorb-pg does with each connection:
 *   connect   PQconnectStartParams + PQconnectPoll on the pool loop, with
 *             the template's parameters plus the backend's hostaddr and
 *             port; TCP keepalives and tcp_user_timeout on. When a role is
 *             required, `SELECT pg_is_in_recovery()` before it is usable
 *             (a wrong role fails the connect with QORB_EROLE); then the
 *             acquire SQL, if any, so that SQL which cannot succeed fails
 *             the connect and the pool fails claims at once. The pool's
 *             connect_timeout_ms bounds the whole of it.
 *   check     a round trip (`SELECT 1`, or the role query when a role is
 *             required), bounded by the pool's health_check_timeout_ms.
 *   prepare   the options' acquire_sql, if any, before every claim (the
 *             connect already ran it for the first one).
 *   recycle   ROLLBACK when a transaction is open or failed, then the
 *             reset SQL (`DISCARD ALL` by default), after each release that
 *             needs it. A release with nothing to clean costs no round
 *             trip.
 *   idle      the pool watches the socket of every idle connection
 *             (PQsocket). When it becomes readable, qorb-pg's peek reads
 *             what has arrived (PQconsumeInput on libpq's socket, which is
 *             non-blocking from PQconnectStartParams on) without waiting
 *             and without sending: a NOTIFY stays queued for the next
 *             claimant (PQnotifies); EOF, a FATAL (pg_terminate_backend, a
 *             shutdown: SQLSTATE 57P01) or a crash-shutdown warning closes
 *             and replaces the connection at once and has the pool check
 *             the backend's other idle connections (QORB_EGONE); any other
 *             error or message libpq does not expect while idle closes it
 *             too (QORB_EPROTO). Notices that arrive while idle are not
 *             printed.
 *
 * Using a claimed PGconn. It is yours from the claim until qorb_release():
 *   - Blocking use from the claiming thread (PQexec, PQexecParams, ...)
 *     works: the connection is handed out in blocking mode.
 *   - Asynchronous use (PQsendQuery, PQconsumeInput, PQgetResult) works on
 *     the pool loop, with an ev_io of your own on PQsocket(): qorb keeps no
 *     watcher on the socket while the connection is claimed. Stop your
 *     watcher before releasing.
 *   - Never call PQfinish(), PQreset() or PQresetStart() on it: the pool
 *     owns the PGconn. To get rid of a connection, qorb_release_broken().
 *   - Release it idle: read every result until PQgetResult() returns NULL,
 *     finish COPY, leave pipeline mode. A connection released with a query
 *     in flight, in COPY or in pipeline mode is closed, not reused. An
 *     open or failed transaction is rolled back for you.
 *   - PQsetnonblocking(), notice receivers and processors, error verbosity
 *     and context visibility, and PQtrace() may be changed while claimed;
 *     qorb puts them back to libpq's defaults at release, so do not rely on
 *     them outliving the claim.
 *   - Session state (SET, SET ROLE, temporary tables, prepared statements,
 *     LISTEN, advisory locks, ...) is cleared by the default reset
 *     (`DISCARD ALL`). With `reset_sql` NULL it is kept and the next
 *     claimant sees it: choose that only when every claimant leaves the
 *     session as it found it (the same contract as PgBouncer's transaction
 *     mode). Notifications that libpq had queued are dropped when a reset
 *     runs.
 *   - When in doubt (an error you do not understand, a timeout of your own,
 *     an interrupted protocol exchange), release it as broken.
 *
 * Errors. A failed connect, check, prepare or recycle is recorded with
 * libpq's own text (PQerrorMessage() or the server's error), readable in
 * the pool's stats snapshot (qorb_backend_stats_t.last_error). Claims fail
 * with the pool's codes (QORB_ENOTONLINE when no backend can be reached,
 * ...); the text says why. A failure that means the backend went away is
 * QORB_EGONE, which makes the pool check the backend's other idle
 * connections at once: an error of SQLSTATE class 08 (connection
 * exception), 57P01 (admin shutdown), 57P02 (crash shutdown) or 57P03
 * (cannot connect now) in any query qorb-pg runs, a connection that died
 * (CONNECTION_BAD) after its handshake, and, at release, a claimed PGconn
 * that is CONNECTION_BAD. A handshake that fails stays QORB_ECONNECT (or
 * QORB_EAUTH): libpq 15 does not expose the SQLSTATE of a startup error.
 *
 * Memory: libpq has no allocator hook, and neither has this connector: both
 * use malloc(3).
 */
#ifndef QORB_PG_H
#define QORB_PG_H

#include <libpq-fe.h>

#include "common.h"
#include "connector.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Which backends a pool may use. */
typedef enum qorb_pg_role {
  QORB_PG_ROLE_ANY = 0,     /**< any backend (no role query) */
  QORB_PG_ROLE_PRIMARY = 1, /**< only primaries: pg_is_in_recovery() false */
  QORB_PG_ROLE_STANDBY = 2  /**< only standbys: pg_is_in_recovery() true */
} qorb_pg_role_t;

/** The default reset_sql. */
#define QORB_PG_DISCARD_ALL "DISCARD ALL"

/**
 * Connector options: plain data, initialised by qorb_pg_options_init();
 * new fields are only ever appended. Strings are copied by
 * qorb_pg_connector_new(). The leading `size` (the caller's sizeof) makes
 * the struct safe across versions both ways: a caller built against an
 * older, shorter struct gets the defaults for the fields it lacks, and
 * nothing past its size is read or written; a caller built against a
 * newer, longer struct is accepted, and the fields this library does not
 * know are ignored.
 *
 * The connection template is `conninfo` and/or `keywords`/`values`, in
 * libpq's own syntax (see "Connection Strings" in the libpq manual). When
 * both are given, `keywords` override `conninfo`. For every connection,
 * qorb replaces `hostaddr` and `port` with the backend's address, which the
 * pool's resolver supplies. `host` is kept when it names one host (it is
 * then what TLS verify-full checks and what password files match);
 * otherwise (no host, a socket folder, a list of hosts) host is set to the
 * backend's numeric address. Every other keyword (user, dbname, password,
 * sslmode, application_name, options, target_session_attrs, ...) is used as
 * written; libpq's environment variables apply to keywords not given.
 * `connect_timeout` is not applied by libpq to non-blocking connects: the
 * pool's connect_timeout_ms bounds connects instead.
 */
typedef struct qorb_pg_options {
  size_t size; /**< set by qorb_pg_options_init() */

  /** conninfo string ("user=app dbname=app sslmode=require") or URI
      ("postgresql://app@db.example/app?sslmode=require"); NULL or "":
      none (default NULL). */
  const char *conninfo;
  /** NULL-terminated keyword array, as for PQconnectdbParams(), or NULL
      (default). Entries whose value is NULL or "" are skipped. `dbname` is
      not expanded as a connection string. */
  const char *const *keywords;
  /** the values, index for index with `keywords` (required with them) */
  const char *const *values;

  /** which backends to use (default QORB_PG_ROLE_ANY) */
  qorb_pg_role_t role;

  /** SQL run on release to clear session state, after a ROLLBACK when a
      transaction was left open (default QORB_PG_DISCARD_ALL). NULL or "":
      no reset; a release with the transaction idle then costs nothing. */
  const char *reset_sql;
  /** SQL run on every connection before it is handed to a claimant, such
      as "SET application_name = 'api'" (default NULL: none). It runs after
      the reset, so it may set what the reset clears. When set, every
      release is followed by a round trip. A failure closes the connection
      and, at connect, counts as a failed connect. */
  const char *acquire_sql;

  /* TCP settings, so that a peer that vanished (power loss, partition) is
     noticed in seconds rather than in the kernel's two hours. A keyword of
     the same name in the template wins over these fields. */
  int keepalives;                 /**< 1 on (default), 0 off */
  unsigned keepalives_idle_s;     /**< idle time before probing (5);
                                       0: the system's default */
  unsigned keepalives_interval_s; /**< between probes (2); 0: system's */
  unsigned keepalives_count;      /**< probes before giving up (3);
                                       0: system's */
  unsigned tcp_user_timeout_ms;   /**< unacknowledged data timeout (10000);
                                       0: the system's default */
} qorb_pg_options_t;

/** Fill `o` with the defaults. Thread: any. */
#define qorb_pg_options_init(o) qorb_pg_options_init_((o), sizeof(*(o)))
QORB_EXTERN void qorb_pg_options_init_(qorb_pg_options_t *o, size_t size);

/**
 * Make a PostgreSQL connector, to be given to qorb_pool_new().
 * The template is parsed with libpq's own parser here, so that a mistake
 * shows now rather than at the first connect.
 * @param out     receives the connector.
 * @param opts    initialised with qorb_pg_options_init(); NULL for the
 *                defaults (libpq's environment variables and defaults).
 * @param err     if not NULL, receives the reason on QORB_ECONFIG (libpq's
 *                message for a malformed conninfo, URI or keyword).
 * @param errlen  size of `err`.
 * @return 0, QORB_EINVAL (NULL `out`, `size` not set by
 *         qorb_pg_options_init(), `keywords` without `values`, an unknown
 *         role), QORB_ECONFIG (malformed template), QORB_ENOMEM.
 * Ownership: every string is copied; nothing of `opts` is kept. The pool
 * that takes the connector frees it; otherwise qorb_connector_free().
 * Thread: any.
 */
QORB_EXTERN int qorb_pg_connector_new(qorb_connector_t **out,
                                      const qorb_pg_options_t *opts,
                                      char *err, size_t errlen);

/**
 * The PGconn of a claim from a pool whose connector is qorb-pg.
 * @return the connection, or NULL for a NULL claim or a claim from a pool
 *         with another connector (qorb-redis, or one of your own: qorb-pg
 *         recognises its connections by a tag at the start of each, so the
 *         other connector's connection object must be at least 4 readable
 *         bytes, as any struct of a pointer or an int is).
 * Ownership: the pool's; borrowed until qorb_release() or
 * qorb_release_broken(). Never PQfinish() it (see the top of this file for
 * what may be done with it).
 * Thread: the claimant's.
 */
QORB_EXTERN PGconn *qorb_pg_conn(const qorb_claim_t *claim);

/**
 * A pool hook's look at one row set of the SQL it runs with
 * qorb_pg_hook_exec(): 0 to keep the connection, a negative code (such as
 * QORB_EREJECTED) to close it; qorb_op_set_error(op, ...) may say why.
 * @param res  one result with rows (PGRES_TUPLES_OK); borrowed for the
 *             call, never PQclear() it.
 * Thread: the pool loop.
 */
typedef int (*qorb_pg_hook_result_cb)(void *arg, qorb_op_t *op,
                                      const PGresult *res);

/**
 * Run SQL for a pool hook (policy.after_connect, before_acquire,
 * after_release; see qorb_hook_fn in <qorb/pool.h>) on the pool loop,
 * without blocking it, and finish the hook with its outcome: the hook
 * returns what this returns, and qorb-pg calls qorb_op_done(op, ...) when
 * the SQL has run: 0 when every statement succeeded and `judge` (if
 * given) kept each row set; otherwise the judge's code, or QORB_EREJECTED
 * for an SQL error (whose text becomes the backend's last error). The
 * pool's hook_timeout_ms bounds it: a timeout closes the connection,
 * which aborts the SQL.
 *
 * Example, once per connection (policy.after_connect):
 * @code
 * static int prep(void *arg, qorb_op_t *op, void *conn) {
 *   return qorb_pg_hook_exec(op, conn,
 *       "PREPARE get_user(int) AS SELECT name FROM users WHERE id = $1",
 *       NULL, NULL);
 * }
 * @endcode
 * Note that the default reset (`DISCARD ALL`) undoes SET and PREPARE at
 * each release: to keep what after_connect sets up, give reset_sql a reset
 * that keeps it (for example "CLOSE ALL; UNLISTEN *; SELECT
 * pg_advisory_unlock_all(); DISCARD TEMP"), or set it with acquire_sql,
 * which runs before every claim.
 *
 * @param op     the hook's op handle.
 * @param conn   the hook's connection object (a qorb-pg one).
 * @param sql    one or more statements (a simple query); copied by libpq.
 * @param judge  looks at each row set, or NULL.
 * @param arg    its first argument.
 * @return 0 (started: qorb_op_done() follows; do not call it yourself),
 *         QORB_EINVAL (NULL or empty arguments, or `conn` is not a qorb-pg
 *         connection), QORB_EBUSY (SQL of this connection already running),
 *         or the code of a send that failed (then nothing follows).
 * Thread: the pool loop, inside or after a hook.
 */
QORB_EXTERN int qorb_pg_hook_exec(qorb_op_t *op, void *conn, const char *sql,
                                  qorb_pg_hook_result_cb judge, void *arg);

/**
 * The PGconn of a hook's connection object, for a hook that only looks at
 * it (PQtransactionStatus(), PQparameterStatus(), ...) and then calls
 * qorb_op_done() itself. Use qorb_pg_hook_exec() for SQL: blocking calls
 * (PQexec) on the pool loop would stall every other connection.
 * @return the PGconn, or NULL when `conn` is not a qorb-pg connection.
 * Ownership: the pool's. Thread: the pool loop, inside a hook.
 */
QORB_EXTERN PGconn *qorb_pg_hook_conn(void *conn);

/**
 * Make a pool from one connection string, as pgxpool.New() does: a
 * resolver for the string's hosts, a qorb-pg connector with the rest of
 * the string as its template, and the pool settings from its pool_* keys.
 * The same as qorb_pg_pool_new_with() with a NULL base policy.
 *
 * Forms: a URI, "postgresql://" or "postgres://"
 * ("postgresql://app@db1.internal,db2.internal:5432/app?pool_max_conns=16
 * &pool_min_idle=4&target_session_attrs=read-write"; user, password,
 * database and query values percent-decoded; IPv6 in brackets), or libpq's
 * key=value form ("host=127.0.0.2,127.0.0.3 port=5432 dbname=app
 * pool_max_conns=8"; values plain or in single quotes, backslash escapes).
 *
 * Pool keys (pgxpool's names; removed before libpq sees the string):
 *   pool_max_conns                 policy.max_slots (1 or more)
 *   pool_min_conns                 policy.min_conns
 *   pool_min_idle                  policy.spares_wanted
 *   pool_max_conn_lifetime         policy.max_lifetime_ms
 *   pool_max_conn_lifetime_jitter  policy.max_lifetime_jitter_ms
 *   pool_max_conn_idle_time        policy.idle_timeout_ms
 *   pool_health_check_period       policy.health_interval_ms
 *   pool_name                      policy.name (1 to 63 characters)
 *   pool_dns_servers               the DNS servers that host names are
 *                                  looked up on: numeric "a.b.c.d:port" or
 *                                  "[ipv6]:port", separated by commas or
 *                                  spaces, at most 8 (qorb's key; default
 *                                  the system's, /etc/resolv.conf, with
 *                                  /etc/hosts first)
 * Durations are written as Go's time.ParseDuration reads them ("1h30m",
 * "500ms", "2s", "1.5h"; units ns, us, µs, ms, s, m, h; "0" alone is 0):
 * a bare number is refused. They are rounded up to whole milliseconds.
 * Settings not given keep qorb_policy_init()'s defaults (not pgxpool's).
 *
 * Hosts: `host` is a comma-separated list of numeric IPv4 or IPv6
 * addresses and host names; `port` is one port for all or one per host,
 * 5432 where empty or not given. Numeric addresses are backends as they
 * are (a static resolver). Each host name is looked up by a DNS resolver
 * (libqorb-dns: A and AAAA records, every address a backend, looked up
 * again as the records' TTLs run out); several hosts make one merged
 * resolver (qorb_resolver_merge_new()). A single host name stays in the
 * template as `host`, so that libpq checks it for sslmode=verify-full and
 * matches it in password files, while each connection goes to a resolved
 * address (`hostaddr`); with several hosts each backend goes under its
 * address, so verify-full with a host name among several hosts is refused.
 * `hostaddr`, when given, wins over `host` and must be numeric (then a
 * single host name next to it stays in the template, as above, and is not
 * looked up). Unix-domain sockets are refused. In a build without
 * libqorb-dns (QORB_WITH_DNS off), host names are refused (QORB_ECONFIG,
 * "host names need libqorb-dns"). hostaddr and port are removed from the
 * template; the connector sets them per backend.
 *
 * target_session_attrs (removed from the template) sets the connector's
 * role: any -> QORB_PG_ROLE_ANY, read-write or primary -> PRIMARY,
 * read-only or standby -> STANDBY; prefer-standby is refused (a pool has
 * one role). Every other keyword goes to libpq, whose parser
 * (PQconninfoParse) checks it here.
 *
 * @param out      receives the pool.
 * @param loop     as for qorb_pool_new(): the application's loop, or NULL
 *                 for a loop on a thread the pool owns.
 * @param connstr  the connection string.
 * @param err      if not NULL, receives a message naming the bad key or
 *                 host, or libpq's message.
 * @param errlen   size of `err`.
 * @return 0; QORB_EINVAL (NULL `out` or `connstr`); QORB_ECONFIG (a bad
 *         pool_* key or value, an unknown target_session_attrs, no host, an
 *         empty or malformed host, a host name without libqorb-dns, a bad
 *         port, a host name the DNS resolver refuses, verify-full over
 *         several hosts, unterminated quotes, a malformed URI, anything
 *         libpq refuses, or pool settings that do not fit together);
 *         QORB_ENOMEM; or qorb_pool_new()'s other codes.
 * Ownership: `connstr` is borrowed for the call (everything needed is
 * copied). Close the pool with qorb_pool_close(). On failure nothing is
 * left to free and `*out` is NULL.
 * Thread: as qorb_pool_new().
 */
QORB_EXTERN int qorb_pg_pool_new(qorb_pool_t **out, struct ev_loop *loop,
                                 const char *connstr, char *err,
                                 size_t errlen);

/**
 * qorb_pg_pool_new() over a policy of the caller's, as pgxpool's
 * ParseConfig() then NewWithConfig(): the string's pool_* keys set their
 * fields of a copy of `base`, and everything else of `base` is kept as
 * given: the log callback (which the DNS resolvers of host names log
 * through as well), the lifecycle hooks, and every field the string has
 * no key for (claim_timeout_ms, backoff, ...).
 *
 * @param out      receives the pool.
 * @param loop     as for qorb_pool_new().
 * @param connstr  the connection string, as for qorb_pg_pool_new().
 * @param base     a policy from qorb_policy_init(), or NULL for its
 *                 defaults (then this is qorb_pg_pool_new()).
 * @param err      if not NULL, receives a message naming the bad key or
 *                 host, or libpq's message.
 * @param errlen   size of `err`.
 * @return as qorb_pg_pool_new(), and QORB_EINVAL for a `base` whose `size`
 *         qorb_policy_init() did not set. Settings that do not fit
 *         together once the string's are applied: QORB_ECONFIG, naming
 *         the string's key for the field.
 * Ownership: `connstr` and `base` are borrowed for the call (the pool
 * copies the policy and its name); `base->log_arg` and the hooks'
 * arguments are kept as given, for the pool's life.
 * Thread: as qorb_pool_new().
 */
QORB_EXTERN int qorb_pg_pool_new_with(qorb_pool_t **out, struct ev_loop *loop,
                                      const char *connstr,
                                      const qorb_policy_t *base, char *err,
                                      size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* QORB_PG_H */
