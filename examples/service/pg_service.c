/* SPDX-License-Identifier: MIT */
/*
 * pg_service.c: a thread-per-request service over a qorb-pg pool, built
 * from the installed package only (pkg-config qorb-pg; see Makefile).
 * The skeleton (options, one thread per request, the summary) is
 * service.c; this file is what is particular to PostgreSQL: the pool from
 * one connection string, and what a request does with its PGconn.
 *
 *   pg_service --requests 200 --concurrency 8 \
 *     'postgresql://postgres@127.0.0.1:5432/postgres?pool_max_conns=4'
 */
#include <stdio.h>
#include <stdlib.h>

#include <qorb/pg.h>
#include <qorb/qorb.h>

#include "service.h"

/*
 * One request: `SELECT $1 * 2` for request number n, and a check of the
 * answer. The PGconn is the claimant's until the release: blocking calls
 * are fine here; PQfinish() never is.
 */
static int handle(qorb_claim_t *claim, unsigned long n, char *err,
                  size_t errlen, int *broken) {
  PGconn *pg = qorb_pg_conn(claim); /* connected, checked, clean */
  char arg[24];
  const char *params[1] = {arg};
  PGresult *res;
  int rc = 0;

  snprintf(arg, sizeof(arg), "%lu", n);
  res =
      PQexecParams(pg, "SELECT $1::bigint * 2", 1, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    snprintf(err, errlen, "query: %s", PQerrorMessage(pg));
    /* A session the server ended: the pool must not keep it. */
    *broken = PQstatus(pg) != CONNECTION_OK;
    rc = -1;
  } else if (strtoull(PQgetvalue(res, 0, 0), NULL, 10) != 2ull * n) {
    snprintf(err, errlen, "query: wrong answer '%s'", PQgetvalue(res, 0, 0));
    rc = -1;
  }
  PQclear(res); /* read every result before the release */
  return rc;
}

int main(int argc, char **argv) {
  static const service_t pg = {
      .prog = "pg_service",
      .server = "PostgreSQL",
      .default_connstr = "postgresql://postgres@127.0.0.1:5432/postgres",
      .pool_new = qorb_pg_pool_new,
      .handle = handle,
  };
  return service_main(&pg, argc, argv);
}
