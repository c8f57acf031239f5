/* SPDX-License-Identifier: MIT */
/*
 * redis_bench.c: Redis round trips through a qorb-redis pool, against
 * dedicated connections and against twemproxy (nutcracker), in one run.
 *
 * The program starts its own redis-server (127.0.0.2:56397) and nutcracker
 * (127.0.0.2:56380, stats on 56399) in a throwaway folder, and stops them
 * when it ends (also on Ctrl-C or an error). Then, for PING and GET (a
 * 100-byte value) and for 1, 8 and 32 client threads:
 *
 *   direct     each thread has a connection of its own (redisConnect);
 *   qorb       the threads share a qorb-redis pool of 8 (blocking flavour,
 *              default options: every release is followed by a RESET on
 *              the pool loop) and do claim_wait + command + release;
 *   qorb-noreset  the same with recycle = QORB_REDIS_RECYCLE_NONE (for
 *              claimants that leave no session state behind);
 *   twemproxy  each thread has a connection of its own to nutcracker,
 *              which forwards over one server connection (its default).
 *              nutcracker answers PING itself, so PING compares qorb with
 *              direct only.
 *
 * plus the async flavour: one libev loop, the pool of 8 on it, 32
 * concurrent claimants (claim, command, release from the reply callback).
 *
 * Each point runs for --seconds (default 2) after every connection is
 * made. Output, one line per point:
 *   bench=redis path=P op=O clients=N ops_per_s=X p50_us=Y p99_us=Z
 * (" errors=E" is appended when there were any), where a qorb operation is
 * timed from the claim to the end of the release; one line per qorb point
 * with the release alone:
 *   bench=redis-release path=P op=O clients=N p50_us=Y p99_us=Z max_us=M
 * (a release never waits for the RESET round trip: it runs on the loop),
 * and the ratios with the goals:
 *   bench=redis ratio=qorb/direct op=O clients=N value=R goal=0.95 met=yes
 *   bench=redis ratio=qorb/twemproxy op=get clients=N value=R goal=1.5 met=no
 *
 *   redis_bench [--seconds S] [--clients 1,8,32] [--no-twemproxy]
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <qorb/qorb.h>
#include <qorb/redis.h>

#include "bench_common.h"

#define HOST "127.0.0.2"
#define REDIS_PORT 56397
#define PROXY_PORT 56380
#define PROXY_STATS_PORT 56399
#define POOL_SIZE 8
#define ASYNC_CLAIMANTS 32
#define MAX_CLIENTS 64
#define MAX_LIST 8

enum path { P_DIRECT, P_QORB, P_QORB_NORESET, P_TWEMPROXY, P_COUNT };
static const char *const path_names[P_COUNT] = {"direct", "qorb",
                                                "qorb-noreset", "twemproxy"};
enum op { OP_PING, OP_GET, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"ping", "get"};

/* ------------------------------------------------------------------------
 * Servers
 * ------------------------------------------------------------------------ */

static char workdir[256];
static volatile pid_t redis_pid = -1, proxy_pid = -1;

/* Stop one child: TERM, a bounded wait, then KILL. */
static void stop_child(volatile pid_t *pid) {
  int i, status;
  pid_t p = *pid;

  if (p <= 0) return;
  kill(p, SIGCONT);
  kill(p, SIGTERM);
  for (i = 0; i < 100; i++) {
    if (waitpid(p, &status, WNOHANG) == p) break;
    bench_nap_ms(50);
  }
  if (i == 100) {
    kill(p, SIGKILL);
    waitpid(p, &status, 0);
  }
  *pid = -1;
}

static void remove_workdir(void) {
  char cmd[400];
  if (workdir[0] == '\0') return;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
  if (system(cmd) != 0) fprintf(stderr, "redis_bench: could not remove %s\n", workdir);
  workdir[0] = '\0';
}

static void stop_servers(void) {
  stop_child(&proxy_pid);
  stop_child(&redis_pid);
  remove_workdir();
}

static void on_signal(int sig) {
  /* Only async-signal-safe calls: kill the children, leave. */
  if (proxy_pid > 0) kill(proxy_pid, SIGKILL);
  if (redis_pid > 0) kill(redis_pid, SIGKILL);
  _exit(128 + sig);
}

static const char *find_program(const char *name, char *buf, size_t len) {
  const char *path = getenv("PATH");
  const char *extra[] = {"/usr/sbin", "/usr/local/sbin", "/usr/bin",
                         "/usr/local/bin", "/sbin"};
  char dirs[2048];
  char *d, *save = NULL;
  size_t i;

  snprintf(dirs, sizeof(dirs), "%s", path ? path : "");
  for (d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    snprintf(buf, len, "%s/%s", d, name);
    if (access(buf, X_OK) == 0) return buf;
  }
  for (i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
    snprintf(buf, len, "%s/%s", extra[i], name);
    if (access(buf, X_OK) == 0) return buf;
  }
  return NULL;
}

static pid_t spawn(const char *prog, char *const argv[], const char *log) {
  pid_t p = fork();
  if (p == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execv(prog, argv);
    _exit(127);
  }
  return p;
}

/* Wait (bounded) until a PING or GET through host:port answers. */
static int wait_ready(int port, const char *cmd) {
  int i;
  for (i = 0; i < 200; i++) {
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout(HOST, port, tv);
    if (c != NULL && !c->err) {
      redisReply *r;
      redisSetTimeout(c, tv);
      r = redisCommand(c, cmd);
      if (r != NULL && r->type != REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        redisFree(c);
        return 0;
      }
      if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    bench_nap_ms(50);
  }
  return -1;
}

static int start_servers(int with_proxy) {
  char prog[512], log[400], conf[400], port[16];
  FILE *f;

  snprintf(workdir, sizeof(workdir), "%s/qorb-redis-bench.XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(workdir) == NULL) {
    perror("redis_bench: mkdtemp");
    workdir[0] = '\0';
    return -1;
  }
  if (find_program("redis-server", prog, sizeof(prog)) == NULL) {
    fprintf(stderr, "redis_bench: redis-server not found\n");
    return -1;
  }
  snprintf(log, sizeof(log), "%s/redis.log", workdir);
  snprintf(port, sizeof(port), "%d", REDIS_PORT);
  {
    char *argv[] = {prog,      "--bind",       HOST,  "--port",
                    port,      "--save",       "",    "--appendonly",
                    "no",      "--daemonize",  "no",  "--dir",
                    workdir,   NULL};
    redis_pid = spawn(prog, argv, log);
  }
  if (redis_pid < 0 || wait_ready(REDIS_PORT, "PING") != 0) {
    fprintf(stderr, "redis_bench: redis-server did not start (see %s)\n",
            log);
    return -1;
  }
  if (!with_proxy) return 0;

  if (find_program("nutcracker", prog, sizeof(prog)) == NULL) {
    fprintf(stderr, "redis_bench: nutcracker not found (twemproxy skipped)\n");
    return 1;
  }
  snprintf(conf, sizeof(conf), "%s/nutcracker.yml", workdir);
  f = fopen(conf, "w");
  if (f == NULL) return -1;
  fprintf(f,
          "bench:\n"
          "  listen: %s:%d\n"
          "  hash: fnv1a_64\n"
          "  distribution: ketama\n"
          "  redis: true\n"
          "  auto_eject_hosts: false\n"
          "  timeout: 5000\n"
          "  servers:\n"
          "   - %s:%d:1\n",
          HOST, PROXY_PORT, HOST, REDIS_PORT);
  fclose(f);
  snprintf(log, sizeof(log), "%s/nutcracker.log", workdir);
  snprintf(port, sizeof(port), "%d", PROXY_STATS_PORT);
  {
    char pidfile[400];
    char *argv[] = {prog, "-c", conf, "-s", port, "-a", HOST, "-o", log,
                    "-p", pidfile, NULL};
    snprintf(pidfile, sizeof(pidfile), "%s/nutcracker.pid", workdir);
    proxy_pid = spawn(prog, argv, log);
  }
  if (proxy_pid < 0 || wait_ready(PROXY_PORT, "GET bench:key") != 0) {
    fprintf(stderr, "redis_bench: nutcracker did not start (see %s)\n", log);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Threaded points
 * ------------------------------------------------------------------------ */

typedef struct point {
  enum path path;
  enum op op;
  unsigned clients;
  qorb_pool_t *pool;
  bench_run_t run;
} point_t;

typedef struct worker {
  point_t *pt;
  redisContext *c; /* direct and twemproxy */
  uint64_t ops, errors;
  bench_hist_t lat, rel;
} worker_t;

static int reply_ok(redisReply *r, enum op op) {
  if (r == NULL) return 0;
  if (op == OP_PING) return r->type == REDIS_REPLY_STATUS;
  return r->type == REDIS_REPLY_STRING && r->len == 100;
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  point_t *pt = w->pt;
  const char *cmd = pt->op == OP_PING ? "PING" : "GET bench:key";
  int qorb = pt->path == P_QORB || pt->path == P_QORB_NORESET;

  bench_ready(&pt->run);
  while (!bench_stopping(&pt->run)) {
    int measuring = bench_measuring(&pt->run);
    uint64_t t0 = bench_now_ns(), t1;
    redisReply *r;
    if (qorb) {
      qorb_claim_t *cl;
      int rc = qorb_pool_claim_wait(pt->pool, 5000, &cl);
      if (rc != 0) {
        if (measuring)
          w->errors++;
        continue;
      }
      r = redisCommand(qorb_redis_ctx(cl), cmd);
      if (!reply_ok(r, pt->op) && measuring)
        w->errors++;
      if (r) freeReplyObject(r);
      t1 = bench_now_ns();
      qorb_release(cl);
      if (measuring)
        bench_hist_add(&w->rel, bench_now_ns() - t1);
    } else {
      r = redisCommand(w->c, cmd);
      if (!reply_ok(r, pt->op) && measuring)
        w->errors++;
      if (r) freeReplyObject(r);
    }
    if (measuring) {
      bench_hist_add(&w->lat, bench_now_ns() - t0);
      w->ops++;
    }
  }
  return NULL;
}

static qorb_pool_t *make_pool(qorb_redis_recycle_t recycle,
                              qorb_redis_flavour_t flavour,
                              struct ev_loop *loop) {
  qorb_redis_options_t o;
  qorb_policy_t pol;
  qorb_resolver_t *r = NULL;
  qorb_connector_t *c = NULL;
  qorb_pool_t *pool = NULL;
  char err[256], list[64];
  int rc;

  qorb_redis_options_init(&o);
  o.recycle = recycle;
  o.flavour = flavour;
  o.client_name = "qorb-bench";
  qorb_policy_init(&pol);
  pol.name = "redis-bench";
  pol.max_slots = POOL_SIZE;
  pol.spares_wanted = POOL_SIZE;
  pol.max_waiters = 4096;
  snprintf(list, sizeof(list), "%s:%d", HOST, REDIS_PORT);
  if ((rc = qorb_redis_connector_new(&c, &o, err, sizeof(err))) != 0 ||
      (rc = qorb_static_resolver_new(&r, list, err, sizeof(err))) != 0 ||
      (rc = qorb_pool_new(&pool, loop, &pol, r, c, err, sizeof(err))) != 0) {
    fprintf(stderr, "redis_bench: pool: %s %s\n", qorb_strerror(rc), err);
    qorb_connector_free(c);
    qorb_resolver_free(r);
    return NULL;
  }
  return pool;
}

typedef struct result {
  double ops_per_s;
  unsigned p50, p99;
  uint64_t errors;
  int valid;
} result_t;

static void print_result(const char *path, enum op op, unsigned clients,
                         const result_t *r) {
  printf("bench=redis path=%s op=%s clients=%u ops_per_s=%.0f p50_us=%u "
         "p99_us=%u",
         path, op_names[op], clients, r->ops_per_s, r->p50, r->p99);
  if (r->errors > 0) printf(" errors=%llu", (unsigned long long)r->errors);
  printf("\n");
  fflush(stdout);
}

static int run_point(enum path path, enum op op, unsigned clients,
                     qorb_pool_t *pool, double seconds, result_t *out) {
  static worker_t workers[MAX_CLIENTS];
  bench_hist_t *lat = calloc(1, sizeof(bench_hist_t));
  bench_hist_t *rel = calloc(1, sizeof(bench_hist_t));
  point_t pt;
  uint64_t window_ns = 0, ops = 0, errors = 0;
  unsigned i;
  int port = path == P_TWEMPROXY ? PROXY_PORT : REDIS_PORT;

  memset(out, 0, sizeof(*out));
  if (lat == NULL || rel == NULL) {
    free(lat);
    free(rel);
    return -1;
  }
  memset(&pt, 0, sizeof(pt));
  pt.path = path;
  pt.op = op;
  pt.clients = clients;
  pt.pool = pool;
  for (i = 0; i < clients; i++) {
    worker_t *w = &workers[i];
    memset(w, 0, sizeof(*w));
    w->pt = &pt;
    if (path == P_DIRECT || path == P_TWEMPROXY) {
      struct timeval tv = {5, 0};
      w->c = redisConnectWithTimeout(HOST, port, tv);
      if (w->c == NULL || w->c->err) {
        fprintf(stderr, "redis_bench: connect: %s\n",
                w->c ? w->c->errstr : "out of memory");
        exit(1);
      }
      redisSetTimeout(w->c, tv);
    }
  }
  /* Every connection is made before the clocks start; no warm-up. */
  if (bench_run_threads(&pt.run, clients, worker_main, workers,
                        sizeof(workers[0]), 0.0, seconds, NULL,
                        &window_ns) != 0) {
    fprintf(stderr, "redis_bench: could not start %u threads\n", clients);
    exit(1);
  }
  for (i = 0; i < clients; i++) {
    worker_t *w = &workers[i];
    ops += w->ops;
    errors += w->errors;
    bench_hist_merge(lat, &w->lat);
    bench_hist_merge(rel, &w->rel);
    if (w->c) redisFree(w->c);
  }
  out->ops_per_s = (double)ops / ((double)window_ns / 1e9);
  out->p50 = (unsigned)bench_hist_pct(lat, 50);
  out->p99 = (unsigned)bench_hist_pct(lat, 99);
  out->errors = errors;
  out->valid = 1;
  print_result(path_names[path], op, clients, out);
  if (path == P_QORB || path == P_QORB_NORESET)
    printf("bench=redis-release path=%s op=%s clients=%u p50_us=%u "
           "p99_us=%u max_us=%llu\n",
           path_names[path], op_names[op], clients,
           (unsigned)bench_hist_pct(rel, 50), (unsigned)bench_hist_pct(rel, 99),
           (unsigned long long)(rel->max_ns / 1000));
  free(lat);
  free(rel);
  return 0;
}

/* ------------------------------------------------------------------------
 * The async flavour: one loop, 32 claimants
 * ------------------------------------------------------------------------ */

typedef struct async_run {
  qorb_pool_t *pool;
  struct ev_loop *loop;
  enum op op;
  int stopping;
  int active;
  uint64_t ops, errors;
  bench_hist_t *lat;
} async_run_t;

typedef struct claimant {
  async_run_t *run;
  qorb_claim_t *claim;
  uint64_t t0;
} claimant_t;

static void claimant_go(claimant_t *k);

static void claimant_reply(redisAsyncContext *ac, void *r, void *privdata) {
  claimant_t *k = privdata;
  async_run_t *run = k->run;
  (void)ac;

  if (!reply_ok(r, run->op)) run->errors++;
  qorb_release(k->claim);
  k->claim = NULL;
  bench_hist_add(run->lat, bench_now_ns() - k->t0);
  run->ops++;
  claimant_go(k);
}

static void claimant_claimed(qorb_pool_t *pool, int status, qorb_claim_t *cl,
                             void *arg) {
  claimant_t *k = arg;
  async_run_t *run = k->run;
  (void)pool;

  if (status != 0) {
    run->errors++;
    claimant_go(k);
    return;
  }
  k->claim = cl;
  if (redisAsyncCommand(qorb_redis_async(cl), claimant_reply, k,
                        run->op == OP_PING ? "PING" : "GET bench:key") !=
      REDIS_OK) {
    run->errors++;
    qorb_release_broken(cl);
    k->claim = NULL;
    claimant_go(k);
  }
}

static void claimant_go(claimant_t *k) {
  async_run_t *run = k->run;
  if (run->stopping) {
    run->active--;
    return;
  }
  k->t0 = bench_now_ns();
  if (qorb_pool_claim(run->pool, 5000, claimant_claimed, k, NULL) != 0) {
    run->errors++;
    run->active--;
  }
}

static void stop_cb(struct ev_loop *loop, ev_timer *t, int revents) {
  async_run_t *run = t->data;
  (void)loop;
  (void)revents;
  run->stopping = 1;
}

static void closed_cb(qorb_pool_t *pool, int status, void *arg) {
  (void)pool;
  (void)status;
  *(int *)arg = 1;
}

static int run_async(enum op op, qorb_redis_recycle_t recycle,
                     const char *name, double seconds, result_t *out) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  claimant_t ks[ASYNC_CLAIMANTS];
  async_run_t run;
  ev_timer stop;
  uint64_t t0, t1, end;
  int closed = 0;
  unsigned i;

  memset(out, 0, sizeof(*out));
  memset(&run, 0, sizeof(run));
  run.loop = loop;
  run.op = op;
  run.lat = calloc(1, sizeof(bench_hist_t));
  run.pool = make_pool(recycle, QORB_REDIS_ASYNC, loop);
  if (run.pool == NULL || run.lat == NULL ||
      bench_wait_idle("redis_bench", run.pool, POOL_SIZE, 10000, loop) != 0)
    return -1;
  ev_timer_init(&stop, stop_cb, seconds, 0.);
  stop.data = &run;
  ev_timer_start(loop, &stop);
  t0 = bench_now_ns();
  for (i = 0; i < ASYNC_CLAIMANTS; i++) {
    ks[i].run = &run;
    ks[i].claim = NULL;
    run.active++;
    claimant_go(&ks[i]);
  }
  end = bench_now_ns() + (uint64_t)((seconds + 10) * 1e9);
  while (run.active > 0 && bench_now_ns() < end)
    ev_run(loop, EVRUN_ONCE);
  t1 = bench_now_ns();
  ev_timer_stop(loop, &stop);
  qorb_pool_close(run.pool, closed_cb, &closed);
  end = bench_now_ns() + 10000000000ull;
  while (!closed && bench_now_ns() < end)
    ev_run(loop, EVRUN_ONCE);
  ev_loop_destroy(loop);
  out->ops_per_s = (double)run.ops / ((double)(t1 - t0) / 1e9);
  out->p50 = (unsigned)bench_hist_pct(run.lat, 50);
  out->p99 = (unsigned)bench_hist_pct(run.lat, 99);
  out->errors = run.errors;
  out->valid = 1;
  print_result(name, op, ASYNC_CLAIMANTS, out);
  free(run.lat);
  return 0;
}

/* ------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------ */

static void ratio(const char *what, enum op op, unsigned clients,
                  const result_t *a, const result_t *b, double goal) {
  double v;
  if (!a->valid || !b->valid || b->ops_per_s <= 0) return;
  v = a->ops_per_s / b->ops_per_s;
  printf("bench=redis ratio=%s op=%s clients=%u value=%.2f", what,
         op_names[op], clients, v);
  if (goal > 0) printf(" goal=%.2f met=%s", goal, v >= goal ? "yes" : "no");
  printf("\n");
}

int main(int argc, char **argv) {
  unsigned clients[MAX_LIST] = {1, 8, 32}, nclients = 3, ci;
  static result_t res[P_COUNT][OP_COUNT][MAX_LIST];
  result_t ares[OP_COUNT], anores[OP_COUNT];
  double seconds = 2.0;
  int with_proxy = 1, rc, i;
  struct sigaction sa;
  qorb_pool_t *pool = NULL, *pool_noreset = NULL;
  enum op op;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = atof(argv[++i]);
      if (seconds < 0.1 || seconds > 600) seconds = 2.0;
    } else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc) {
      if (bench_parse_list(argv[++i], clients, MAX_LIST, MAX_CLIENTS,
                           &nclients) != 0) {
        fprintf(stderr, "redis_bench: bad --clients (1..%d, comma list)\n",
                MAX_CLIENTS);
        return 2;
      }
    } else if (strcmp(argv[i], "--no-twemproxy") == 0) {
      with_proxy = 0;
    } else {
      fprintf(stderr,
              "usage: redis_bench [--seconds S] [--clients 1,8,32] "
              "[--no-twemproxy]\n");
      return 2;
    }
  }

  signal(SIGPIPE, SIG_IGN);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  atexit(stop_servers);

  rc = start_servers(with_proxy);
  if (rc < 0) return 1;
  if (rc > 0) with_proxy = 0;
  {
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(HOST, REDIS_PORT, tv);
    redisReply *r;
    char value[101];
    if (c == NULL || c->err) return 1;
    memset(value, 'v', 100);
    value[100] = '\0';
    r = redisCommand(c, "SET bench:key %s", value);
    if (r) freeReplyObject(r);
    redisFree(c);
  }

  pool = make_pool(QORB_REDIS_RECYCLE_AUTO, QORB_REDIS_BLOCKING, NULL);
  pool_noreset = make_pool(QORB_REDIS_RECYCLE_NONE, QORB_REDIS_BLOCKING, NULL);
  if (pool == NULL || pool_noreset == NULL ||
      bench_wait_idle("redis_bench", pool, POOL_SIZE, 10000, NULL) != 0 ||
      bench_wait_idle("redis_bench", pool_noreset, POOL_SIZE, 10000, NULL) != 0)
    return 1;

  printf("# redis_bench: %.1f s per point; pool of %d; redis-server %s:%d%s\n",
         seconds, POOL_SIZE, HOST, REDIS_PORT,
         with_proxy ? "; nutcracker 127.0.0.2:56380 (1 server connection)"
                    : "; no twemproxy");
  for (op = OP_PING; op < OP_COUNT; op++) {
    for (ci = 0; ci < nclients; ci++) {
      enum path p;
      for (p = P_DIRECT; p < P_COUNT; p++) {
        qorb_pool_t *use = p == P_QORB ? pool
                           : p == P_QORB_NORESET ? pool_noreset : NULL;
        if (p == P_TWEMPROXY && !with_proxy) continue;
        run_point(p, op, clients[ci], use, seconds, &res[p][op][ci]);
      }
    }
  }
  qorb_pool_close(pool, NULL, NULL);
  qorb_pool_close(pool_noreset, NULL, NULL);

  for (op = OP_PING; op < OP_COUNT; op++) {
    run_async(op, QORB_REDIS_RECYCLE_AUTO, "qorb-async", seconds, &ares[op]);
    run_async(op, QORB_REDIS_RECYCLE_NONE, "qorb-async-noreset", seconds,
              &anores[op]);
  }

  for (op = OP_PING; op < OP_COUNT; op++) {
    for (ci = 0; ci < nclients; ci++) {
      unsigned n = clients[ci];
      ratio("qorb/direct", op, n, &res[P_QORB][op][ci],
            &res[P_DIRECT][op][ci], 0.95);
      ratio("qorb-noreset/direct", op, n, &res[P_QORB_NORESET][op][ci],
            &res[P_DIRECT][op][ci], 0.95);
      if (op == OP_GET && with_proxy) {
        double goal = n >= 8 ? 1.5 : 0;
        ratio("qorb/twemproxy", op, n, &res[P_QORB][op][ci],
              &res[P_TWEMPROXY][op][ci], goal);
        ratio("qorb-noreset/twemproxy", op, n,
              &res[P_QORB_NORESET][op][ci], &res[P_TWEMPROXY][op][ci], goal);
      }
    }
  }
  fflush(stdout);
  stop_servers();
  return 0;
}
