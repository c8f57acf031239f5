/* SPDX-License-Identifier: MIT */
/*
 * pg_int.h: what pg.c (the connection state machine) and pg_conninfo.c (the
 * conninfo compiler) share. The compiler turns the user's options into a
 * pg_ctx_t, whose keyword/value arrays go to PQconnectStartParams on every
 * connect. Private to libqorb-pg (and its unit tests).
 */
#ifndef QORB_PG_INT_H
#define QORB_PG_INT_H

#include <stddef.h>

#include "qorb/pg.h"

/* The connector's context: the compiled template and the op settings. */
typedef struct pg_ctx {
  qorb_pg_role_t role;
  char *reset_sql;       /* NULL: no reset */
  char *acquire_sql;     /* NULL: none */
  const char **keywords; /* NULL-terminated, for PQconnectStartParams */
  const char **values;
  char **owned;          /* the strings of keywords/values that we own */
  size_t nowned;
  /* The backend of the next connect; `values` points at these two. */
  char hostaddr[sizeof(((qorb_addr_t *)0)->host)];
  char port[8];
} pg_ctx_t;

/*
 * Check the options and compile them into a new context: the conninfo
 * string or URI and the keyword arrays, both parsed by libpq
 * (PQconninfoParse), qorb's TCP defaults for what they leave unset, and
 * host, hostaddr and port last, filled per backend by
 * qorb__pg_ctx_set_backend().
 * @return 0, QORB_EINVAL (options not initialised, keywords without values,
 *         an unknown role), QORB_ECONFIG (a template libpq refuses, with its
 *         message in `err`) or QORB_ENOMEM.
 */
int qorb__pg_ctx_new(pg_ctx_t **out, const qorb_pg_options_t *opts,
                     char *err, size_t errlen);
void qorb__pg_ctx_free(pg_ctx_t *ctx);

/*
 * Point the context's hostaddr and port at `addr`, for the connect about to
 * start. Safe because every connect runs on the one pool loop and libpq
 * copies the values before PQconnectStartParams returns.
 * @return 0 or QORB_EBADADDR.
 */
int qorb__pg_ctx_set_backend(pg_ctx_t *ctx, const qorb_addr_t *addr);

/* The length of the first line of a libpq message, without trailing
   blanks, at most 4096: what fits a backend's bounded error buffer. */
int qorb__pg_first_line_len(const char *msg);

/* 1 when an SQLSTATE says the backend went away (class 08, 57P01, 57P02,
   57P03), 0 otherwise and for NULL. */
int qorb__pg_sqlstate_gone(const char *sqlstate);

/*
 * The peek op on a PGconn that nobody uses (connected, no query in
 * flight, libpq's default notice receiver): 0 when it is alive and clean
 * (a NOTIFY that arrived stays queued), QORB_EGONE when the server closed
 * it or is ending the session (EOF, a FATAL, a shutdown), QORB_EPROTO for
 * any other input that leaves it unusable. Never waits, never sends.
 */
int qorb__pg_peek_conn(PGconn *pg);

/* The op table for a context (with or without a prepare op), as
   qorb_pg_connector_new() uses it; tests build connectors of their own
   from it. */
const qorb_connector_ops_t *qorb__pg_ops(const pg_ctx_t *ctx);

/* snprintf into the caller's error buffer, if there is one. */
void qorb__pg_set_err(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif /* QORB_PG_INT_H */
