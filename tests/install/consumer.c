/* SPDX-License-Identifier: MIT */
/*
 * consumer.c: a program that uses an *installed* qorb, as a user's would
 * (tests/install/run.sh builds it with pkg-config and with
 * find_package(qorb)). It touches the core (version, errors, policy, the
 * static resolver's address parser) and, when QORB_CONSUMER_PG is defined,
 * qorb-pg (a connector made from a conninfo template, which libpq parses
 * without connecting). No network, no server.
 */
#include <stdio.h>
#include <string.h>

#include <qorb/qorb.h>
#ifdef QORB_CONSUMER_PG
#include <qorb/pg.h>
#endif

int main(void) {
  qorb_policy_t policy;
  qorb_addr_t addr;
  char err[256];

  if (strcmp(qorb_version_string(), QORB_VERSION_STRING) != 0) {
    fprintf(stderr, "consumer: library %s, header %s\n", qorb_version_string(),
            QORB_VERSION_STRING);
    return 1;
  }
  qorb_policy_init(&policy);
  if (qorb_policy_validate(&policy, err, sizeof(err)) != 0) {
    fprintf(stderr, "consumer: default policy refused: %s\n", err);
    return 1;
  }
  if (qorb_addr_parse("127.0.0.1:5432", &addr) != 0) {
    fprintf(stderr, "consumer: qorb_addr_parse failed\n");
    return 1;
  }
  if (strcmp(qorb_err_name(QORB_ETIMEDOUT), "QORB_ETIMEDOUT") != 0) {
    fprintf(stderr, "consumer: qorb_err_name(QORB_ETIMEDOUT) = %s\n",
            qorb_err_name(QORB_ETIMEDOUT));
    return 1;
  }
#ifdef QORB_CONSUMER_PG
  {
    qorb_pg_options_t o;
    qorb_connector_t *c = NULL;
    int rc;

    qorb_pg_options_init(&o);
    o.conninfo = "user=app dbname=app connect_timeout=2";
    rc = qorb_pg_connector_new(&c, &o, err, sizeof(err));
    if (rc != 0) {
      fprintf(stderr, "consumer: qorb_pg_connector_new: %s (%s)\n",
              qorb_strerror(rc), err);
      return 1;
    }
    qorb_connector_free(c);
    printf("qorb %s (pg)\n", qorb_version_string());
    return 0;
  }
#else
  printf("qorb %s\n", qorb_version_string());
  return 0;
#endif
}
