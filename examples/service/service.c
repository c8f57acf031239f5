/* SPDX-License-Identifier: MIT */
/*
 * service.c: a thread-per-request service over a qorb pool, minus the
 * part that talks to the server (that is pg_service.c or redis_service.c;
 * see service.h).
 *
 * The main thread plays the acceptor. Where a network service would
 * accept() a connection and start a thread to handle it, this one makes
 * up request number n and starts a thread for it, at most --concurrency
 * at once. Each request thread does what a handler does with a pool:
 *
 *     qorb_pool_claim_wait() -> the request's query -> qorb_release()
 *
 * The pool runs its own loop on a thread of its own (loop NULL), so nothing
 * here touches libev. After --requests requests, or at the first one that
 * fails, the program waits for the requests still running, prints a
 * summary (and, after a failure, what each backend last failed with),
 * closes the pool and exits.
 */
#define _GNU_SOURCE /* getopt_long */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "service.h"

#define MAX_CONCURRENCY 256
#define MAX_BACKENDS 16

/* What the request threads share with the acceptor. */
static struct {
  const service_t *svc;
  qorb_pool_t *pool;
  int timeout_ms;   /* for qorb_pool_claim_wait() */
  sem_t free_slots; /* requests that may still start */
  atomic_ulong served;
  atomic_ulong failed;
  atomic_int stop;       /* set by the first failure */
  char first_error[320]; /* written once, by whoever set stop */
} g;

static void usage(const service_t *svc, FILE *out) {
  fprintf(out,
          "usage: %s [--requests N] [--concurrency N] [--timeout MS] "
          "[CONNSTR]\n"
          "\n"
          "A thread-per-request service over a qorb pool made from one %s\n"
          "connection string: each request runs on its own thread, claims a\n"
          "connection, runs one query and releases it.\n"
          "\n"
          "  CONNSTR              default %s\n"
          "                       (pool_max_conns=N and the other pool_*\n"
          "                       keys set the pool; numeric addresses or\n"
          "                       host names, looked up in DNS)\n"
          "  -n, --requests N     requests to serve, then exit (default 100)\n"
          "  -c, --concurrency N  requests at once, one thread each "
          "(default 8, at most %d)\n"
          "  -t, --timeout MS     how long a request waits for a connection\n"
          "                       (default 2000)\n"
          "  -h, --help           print this and exit\n"
          "\n"
          "Exit status: 0 when every request succeeded, 1 when one failed,\n"
          "2 for bad options.\n",
          svc->prog, svc->server, svc->default_connstr, MAX_CONCURRENCY);
}

/* Reads a whole decimal number in [min, max] into *out; -1 otherwise. */
static int parse_number(const char *s, unsigned long min, unsigned long max,
                        unsigned long *out) {
  char *end;
  unsigned long v;

  if (s[0] < '0' || s[0] > '9')
    return -1;
  errno = 0;
  v = strtoul(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

static double seconds_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) +
         (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The first failure stops the acceptor and keeps its message. */
static void request_failed(unsigned long n, const char *why) {
  atomic_fetch_add(&g.failed, 1);
  if (atomic_exchange(&g.stop, 1) == 0)
    snprintf(g.first_error, sizeof(g.first_error), "request %lu: %s", n, why);
}

/* One request's thread: claim, handle, release, give the slot back. */
static void *request_main(void *arg) {
  unsigned long n = (unsigned long)(uintptr_t)arg;
  qorb_claim_t *claim;
  char err[256] = "";
  int broken = 0;
  int rc;

  /* Blocks up to --timeout. A failure says why: QORB_EALLINUSE (every
     connection stayed busy), QORB_ENOTONLINE (every backend has been down
     for a while), QORB_ESHUTDOWN, ... */
  rc = qorb_pool_claim_wait(g.pool, g.timeout_ms, &claim);
  if (rc != 0) {
    snprintf(err, sizeof(err), "claim: %s", qorb_strerror(rc));
  } else {
    rc = g.svc->handle(claim, n, err, sizeof(err), &broken);
    /* Never close the connection yourself: give it back, and say so when
       it is broken (the pool replaces it). */
    if (broken)
      qorb_release_broken(claim);
    else
      qorb_release(claim);
  }
  if (rc == 0)
    atomic_fetch_add(&g.served, 1);
  else
    request_failed(n, err);
  sem_post(&g.free_slots);
  return NULL;
}

static void sem_wait_uninterrupted(sem_t *s) {
  while (sem_wait(s) != 0 && errno == EINTR) {
  }
}

/* After a failure: each backend's last error, which usually says why
   (connection refused, authentication failed, no such database, ...). */
static void print_backend_errors(const char *prog) {
  qorb_pool_stats_t st;
  qorb_backend_stats_t bs[MAX_BACKENDS];
  size_t i, n = 0;

  qorb_pool_stats_init(&st);
  if (qorb_pool_stats(g.pool, &st, bs, MAX_BACKENDS, &n) != 0)
    return;
  for (i = 0; i < n && i < MAX_BACKENDS; i++) {
    if (bs[i].last_error[0] != '\0')
      fprintf(stderr, "%s: backend %s: %s\n", prog, bs[i].addr.text,
              bs[i].last_error);
  }
}

static void print_summary(const char *prog, unsigned long started,
                          unsigned long concurrency, double secs) {
  qorb_pool_stats_t st;

  printf("%s: %lu requests, %lu at a time, in %.2f s: %lu served, %lu "
         "failed\n",
         prog, started, concurrency, secs, atomic_load(&g.served),
         atomic_load(&g.failed));
  qorb_pool_stats_init(&st);
  if (qorb_pool_stats(g.pool, &st, NULL, 0, NULL) == 0)
    printf("%s: pool %s: %llu claims, %llu waited, %llu connections "
           "opened\n",
           prog, st.name, (unsigned long long)st.claims,
           (unsigned long long)st.waited, (unsigned long long)st.opened);
  fflush(stdout); /* before any message on stderr */
}

int service_main(const service_t *svc, int argc, char **argv) {
  static const struct option longopts[] = {
      {"requests", required_argument, NULL, 'n'},
      {"concurrency", required_argument, NULL, 'c'},
      {"timeout", required_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  unsigned long requests = 100, concurrency = 8, timeout_ms = 2000;
  unsigned long n, started = 0, i;
  const char *connstr = svc->default_connstr;
  pthread_attr_t attr;
  struct timespec t0;
  char err[256] = "";
  int opt, rc;

  while ((opt = getopt_long(argc, argv, "n:c:t:h", longopts, NULL)) != -1) {
    switch (opt) {
    case 'n':
      if (parse_number(optarg, 0, ULONG_MAX, &requests) != 0) {
        fprintf(stderr, "%s: --requests: not a number: '%s'\n", svc->prog,
                optarg);
        return 2;
      }
      break;
    case 'c':
      if (parse_number(optarg, 1, MAX_CONCURRENCY, &concurrency) != 0) {
        fprintf(stderr, "%s: --concurrency: want 1 to %d, not '%s'\n",
                svc->prog, MAX_CONCURRENCY, optarg);
        return 2;
      }
      break;
    case 't':
      if (parse_number(optarg, 1, INT_MAX, &timeout_ms) != 0) {
        fprintf(stderr, "%s: --timeout: want milliseconds, not '%s'\n",
                svc->prog, optarg);
        return 2;
      }
      break;
    case 'h':
      usage(svc, stdout);
      return 0;
    default: /* getopt_long has said what is wrong */
      fprintf(stderr, "%s: --help lists the options\n", svc->prog);
      return 2;
    }
  }
  if (optind < argc)
    connstr = argv[optind++];
  if (optind < argc) {
    fprintf(stderr, "%s: one connection string only, not also '%s'\n",
            svc->prog, argv[optind]);
    return 2;
  }

  /* loop NULL: the pool runs on a thread it owns. A bad string is refused
     here, with a message naming the bad part. */
  rc = svc->pool_new(&g.pool, NULL, connstr, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "%s: %s: %s\n", svc->prog, connstr,
            err[0] ? err : qorb_strerror(rc));
    return 1;
  }
  g.svc = svc;
  g.timeout_ms = (int)timeout_ms;
  sem_init(&g.free_slots, 0, (unsigned)concurrency);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (n = 0; n < requests; n++) {
    pthread_t tid;

    sem_wait_uninterrupted(&g.free_slots);
    if (atomic_load(&g.stop)) {
      sem_post(&g.free_slots);
      break;
    }
    rc = pthread_create(&tid, &attr, request_main, (void *)(uintptr_t)n);
    if (rc != 0) {
      request_failed(n, strerror(rc));
      sem_post(&g.free_slots);
      break;
    }
    started++;
  }
  /* Every running request gives its slot back when it is done. */
  for (i = 0; i < concurrency; i++)
    sem_wait_uninterrupted(&g.free_slots);

  print_summary(svc->prog, started, concurrency, seconds_since(&t0));
  if (atomic_load(&g.failed) != 0) {
    fprintf(stderr, "%s: %s\n", svc->prog, g.first_error);
    print_backend_errors(svc->prog);
  }
  /* Every claim is back: this closes the connections and joins the pool's
     thread. */
  qorb_pool_close(g.pool, NULL, NULL);
  pthread_attr_destroy(&attr);
  sem_destroy(&g.free_slots);
  return atomic_load(&g.failed) == 0 ? 0 : 1;
}
