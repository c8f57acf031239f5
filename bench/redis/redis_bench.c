/* SPDX-License-Identifier: MIT */
/*
 * redis_bench.c: Redis round trips through a qorb-redis pool, against
 * dedicated connections and against twemproxy (nutcracker), in one run.
 *
 * The program starts its own redis-server (127.0.0.2:56397) and nutcracker
 * (127.0.0.2:56380, stats on 56399) once, in a throwaway folder, and stops
 * them when it ends (also on Ctrl-C or an error). Then, for PING and GET (a
 * 100-byte value) and for 1, 8, 16 and 32 client threads:
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
 * plus the async flavour: one libev loop, a pool of 8 with the reset and
 * one without on it, 32 concurrent claimants (claim, command, release from
 * the reply callback): qorb-async and qorb-async-noreset.
 *
 * This machine's speed drifts by tens of percent from one second to the
 * next, so no path runs in one long window: per client count and op the
 * same threads, after a warm-up of every path, run `--rounds` short rounds
 * of each path, alternating them in ABBA order (direct, qorb, qorb-noreset,
 * twemproxy, then the reverse); the async pair alternates the same way.
 * Figures are medians over rounds, and a ratio is the median of the
 * per-round ratios of two paths measured within the same second. Output:
 *
 *   bench=redis path=P op=O clients=N ops_per_s=X p50_us=Y p99_us=Z
 *       rounds=R timeouts=T errors=E [wait_max_ms=W] min_share=A
 *       max_share=B starved=K check=ok|noisy|FAILED
 *   bench=redis-release path=P op=O clients=N p50_us=Y p99_us=Z max_us=M
 *   bench=redis ratio=A/B op=O clients=N value=R [goal=G status=met|MISSED]
 *   bench=redis summary goals_met=M goals_missed=K checks=ok|FAILED
 *       noisy=P elapsed_s=T
 *
 * where a qorb operation is timed from the claim to the end of the release
 * and the release lines time qorb_release() alone (it never waits for the
 * RESET round trip: that runs on the loop). See README.md.
 *
 *   redis_bench [--seconds S] [--rounds R] [--clients 1,8,16,32]
 *               [--ops ping,get] [--paths LIST] [--no-twemproxy] [--verbose]
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
#define MAX_ROUNDS 50
/* A claim that waits this long has failed: a round trip takes ~20-50 us. */
#define CLAIM_TIMEOUT_MS 1000

/* The threaded paths, in their ABBA order, then the async pair. */
enum path {
  P_DIRECT,
  P_QORB,
  P_QORB_NORESET,
  P_TWEMPROXY,
  P_THREADED, /* the paths above run on client threads */
  P_ASYNC = P_THREADED,
  P_ASYNC_NORESET,
  P_COUNT
};
static const char *const path_names[P_COUNT] = {
    "direct", "qorb", "qorb-noreset", "twemproxy", "qorb-async",
    "qorb-async-noreset"};
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
 * What a path measured, over its rounds
 * ------------------------------------------------------------------------ */

static int g_verbose;
static double g_seconds = 3.0, g_warmup = 0.25;
static unsigned g_rounds = 8;
static unsigned g_noisy; /* points whose check said "noisy" */

static int is_qorb(int p) { return p != P_DIRECT && p != P_TWEMPROXY; }

typedef struct acc {
  unsigned nrounds;
  double ops_per_s[MAX_ROUNDS], p50[MAX_ROUNDS], p99[MAX_ROUNDS];
  uint64_t timeouts, errors, wait_max_ns;
  bench_hist_t *rel; /* qorb: the release call, all rounds */
} acc_t;

/* One round's figures into `a` (the warm-up's are dropped). */
static void acc_round(acc_t *a, int path, enum op op, unsigned clients,
                      unsigned round, uint64_t ops, uint64_t window_ns,
                      const bench_hist_t *lat) {
  double v = window_ns ? (double)ops * 1e9 / (double)window_ns : 0.0;
  if (a->nrounds >= MAX_ROUNDS) return;
  a->ops_per_s[a->nrounds] = v;
  a->p50[a->nrounds] = bench_hist_pct(lat, 50);
  a->p99[a->nrounds] = bench_hist_pct(lat, 99);
  a->nrounds++;
  if (g_verbose)
    printf("# round=%u path=%s op=%s clients=%u ops_per_s=%.0f p50_us=%.0f "
           "p99_us=%.0f\n",
           round, path_names[path], op_names[op], clients, v,
           bench_hist_pct(lat, 50), bench_hist_pct(lat, 99));
}

/* The point's line; returns 1 when a check failed. */
static int print_point(int path, enum op op, unsigned clients, const acc_t *a,
                       const uint64_t *client_ops, unsigned n) {
  double v[MAX_ROUNDS], p50[MAX_ROUNDS], p99[MAX_ROUNDS];
  double min_share, max_share;
  unsigned starved = bench_shares(client_ops, n, &min_share, &max_share);
  const char *check;

  /* FAILED for a claim that timed out or waited longer than its timeout,
     an error, or a qorb client outside [mean / 2, 2 x mean]; "noisy" when
     only a direct or twemproxy client was: it has its own connection, so
     only the scheduler can have starved it (a machine too busy for the
     figures; the pool is not involved). */
  if (a->timeouts || a->errors ||
      a->wait_max_ns > (uint64_t)CLAIM_TIMEOUT_MS * 1000000u)
    check = "FAILED";
  else if (starved)
    check = is_qorb(path) ? "FAILED" : "noisy";
  else
    check = "ok";
  if (strcmp(check, "noisy") == 0) g_noisy++;

  memcpy(v, a->ops_per_s, sizeof(v));
  memcpy(p50, a->p50, sizeof(p50));
  memcpy(p99, a->p99, sizeof(p99));
  printf("bench=redis path=%s op=%s clients=%u ops_per_s=%.0f p50_us=%.0f "
         "p99_us=%.0f rounds=%u timeouts=%llu errors=%llu",
         path_names[path], op_names[op], clients,
         bench_median(v, a->nrounds), bench_median(p50, a->nrounds),
         bench_median(p99, a->nrounds), a->nrounds,
         (unsigned long long)a->timeouts, (unsigned long long)a->errors);
  if (is_qorb(path))
    printf(" wait_max_ms=%.1f", (double)a->wait_max_ns / 1e6);
  printf(" min_share=%.2f max_share=%.2f starved=%u check=%s\n", min_share,
         max_share, starved, check);
  if (a->rel != NULL && a->rel->n > 0)
    printf("bench=redis-release path=%s op=%s clients=%u p50_us=%.1f "
           "p99_us=%.1f max_us=%.0f\n",
           path_names[path], op_names[op], clients, bench_hist_pct(a->rel, 50),
           bench_hist_pct(a->rel, 99), (double)a->rel->max_ns / 1000.0);
  return strcmp(check, "FAILED") == 0;
}

static unsigned goals_met, goals_missed;

/*
 * The median of the per-round ratios a/b, printed with its goal when one
 * applies here (goal > 0): met or MISSED, counted for the summary.
 */
static void ratio(const char *what, enum op op, unsigned clients,
                  const acc_t *a, const acc_t *b, double goal) {
  double r[MAX_ROUNDS], v;
  unsigned k, n = 0;
  for (k = 0; k < a->nrounds && k < b->nrounds; k++)
    if (b->ops_per_s[k] > 0) r[n++] = a->ops_per_s[k] / b->ops_per_s[k];
  if (n == 0) return;
  v = bench_median(r, n);
  printf("bench=redis ratio=%s op=%s clients=%u value=%.2f", what,
         op_names[op], clients, v);
  if (goal > 0) {
    printf(" goal=%.2f status=%s", goal, v >= goal ? "met" : "MISSED");
    if (v >= goal)
      goals_met++;
    else
      goals_missed++;
  }
  printf("\n");
}

/* ------------------------------------------------------------------------
 * Threaded paths
 * ------------------------------------------------------------------------ */

static qorb_pool_t *g_pools[P_COUNT]; /* the qorb paths' pools */
static bench_group_t *g_group;        /* the client threads of a point */

/*
 * One client thread. What it counts is this round's; the main thread reads
 * and resets it between rounds, while the client is parked on the barrier.
 */
typedef struct worker {
  redisContext *c[P_THREADED]; /* direct and twemproxy */
  bench_hist_t *lat, *rel;
  uint64_t ops, timeouts, errors, wait_max_ns;
  uint64_t total_ops[OP_COUNT][P_THREADED]; /* measured rounds: shares */
} worker_t;

static int reply_ok(redisReply *r, enum op op) {
  if (r == NULL) return 0;
  if (op == OP_PING) return r->type == REDIS_REPLY_STATUS;
  return r->type == REDIS_REPLY_STRING && r->len == 100;
}

/* A round's `code` is op * P_THREADED + path. */
static void worker_round(void *arg, int code) {
  worker_t *w = arg;
  enum op op = (enum op)(code / P_THREADED);
  int path = code % P_THREADED;
  const char *cmd = op == OP_PING ? "PING" : "GET bench:key";
  uint64_t i;

  /* Bounded by the stop flag and, as a backstop, by a count. */
  for (i = 0; i < 100000000u && !bench_group_stopping(g_group); i++) {
    uint64_t t0 = bench_now_ns(), t1;
    redisReply *r;
    if (is_qorb(path)) {
      qorb_claim_t *cl;
      int rc = qorb_pool_claim_wait(g_pools[path], CLAIM_TIMEOUT_MS, &cl);
      t1 = bench_now_ns();
      if (rc == QORB_EALLINUSE || rc == QORB_ETIMEDOUT) {
        w->timeouts++;
        continue;
      }
      if (rc != 0) {
        w->errors++;
        bench_nap_ms(1);
        continue;
      }
      if (t1 - t0 > w->wait_max_ns) w->wait_max_ns = t1 - t0;
      r = redisCommand(qorb_redis_ctx(cl), cmd);
      if (!reply_ok(r, op)) w->errors++;
      if (r) freeReplyObject(r);
      t1 = bench_now_ns();
      if (r)
        qorb_release(cl);
      else
        qorb_release_broken(cl);
      bench_hist_add(w->rel, bench_now_ns() - t1);
    } else {
      r = redisCommand(w->c[path], cmd);
      if (!reply_ok(r, op)) {
        w->errors++;
        if (r == NULL) bench_nap_ms(1);
      }
      if (r) freeReplyObject(r);
    }
    bench_hist_add(w->lat, bench_now_ns() - t0);
    w->ops++;
  }
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
  pol.name = recycle == QORB_REDIS_RECYCLE_NONE ? "redis-bench-noreset"
                                                : "redis-bench";
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

/*
 * After a round: what every worker counted into `a` (when keep) and the
 * shares, then reset. `scratch` takes the round's merged latencies.
 */
static void collect(worker_t *ws, unsigned n, int path, enum op op,
                    uint64_t window_ns, int keep, acc_t *a,
                    bench_hist_t *scratch, unsigned round) {
  uint64_t ops = 0;
  unsigned i;

  memset(scratch, 0, sizeof(*scratch));
  for (i = 0; i < n; i++) {
    worker_t *w = &ws[i];
    if (keep) {
      bench_hist_merge(scratch, w->lat);
      if (a->rel != NULL) bench_hist_merge(a->rel, w->rel);
      ops += w->ops;
      w->total_ops[op][path] += w->ops;
      a->timeouts += w->timeouts;
      a->errors += w->errors;
      if (w->wait_max_ns > a->wait_max_ns) a->wait_max_ns = w->wait_max_ns;
    }
    memset(w->lat, 0, sizeof(*w->lat));
    memset(w->rel, 0, sizeof(*w->rel));
    w->ops = w->timeouts = w->errors = w->wait_max_ns = 0;
  }
  if (keep) acc_round(a, path, op, n, round, ops, window_ns, scratch);
}

/* The reset pool is not idle until its RESETs ran: let them finish. */
static int settle(int path) {
  if (!is_qorb(path)) return 0;
  return bench_wait_idle("redis_bench", g_pools[path], POOL_SIZE, 2000, NULL);
}

/*
 * One client count: connect, start the threads, warm every enabled path
 * up, then per op the rounds, the lines and the ratios. Returns 0, 1 when
 * a check failed, -1 when it could not run.
 */
static int run_clients(unsigned n, const int *enabled, const int *ops_on) {
  worker_t *ws = calloc(n, sizeof(*ws));
  acc_t *acc = calloc(OP_COUNT * P_THREADED, sizeof(*acc));
  bench_hist_t *scratch = calloc(1, sizeof(*scratch));
  uint64_t shares[MAX_CLIENTS];
  unsigned i, k, j;
  int p, rc = -1, failed = 0;
  enum op op, first_op = ops_on[OP_PING] ? OP_PING : OP_GET;

  if (ws == NULL || acc == NULL || scratch == NULL) goto out;
  for (i = 0; i < OP_COUNT * P_THREADED; i++)
    if (is_qorb((int)(i % P_THREADED)) &&
        (acc[i].rel = calloc(1, sizeof(bench_hist_t))) == NULL)
      goto out;
  for (i = 0; i < n; i++) {
    worker_t *w = &ws[i];
    w->lat = calloc(1, sizeof(bench_hist_t));
    w->rel = calloc(1, sizeof(bench_hist_t));
    if (w->lat == NULL || w->rel == NULL) goto out;
    for (p = 0; p < P_THREADED; p++) {
      struct timeval tv = {5, 0};
      if (!enabled[p] || is_qorb(p)) continue;
      w->c[p] = redisConnectWithTimeout(
          HOST, p == P_TWEMPROXY ? PROXY_PORT : REDIS_PORT, tv);
      if (w->c[p] == NULL || w->c[p]->err) {
        fprintf(stderr, "redis_bench: %s connect: %s\n", path_names[p],
                w->c[p] ? w->c[p]->errstr : "out of memory");
        goto out;
      }
      /* A reply that takes this long is an error, not a hang. */
      redisSetTimeout(w->c[p], tv);
    }
  }
  g_group = bench_group_start(n, worker_round, ws, sizeof(ws[0]));
  if (g_group == NULL) goto out;

  /* Warm up every path once (connections, caches), not counted. */
  for (p = 0; p < P_THREADED && g_warmup > 0; p++) {
    if (!enabled[p]) continue;
    collect(ws, n, p, first_op,
            bench_group_round(g_group, (int)first_op * P_THREADED + p,
                              g_warmup),
            0, NULL, scratch, 0);
    settle(p);
  }
  for (op = OP_PING; op < OP_COUNT; op++) {
    acc_t *a = &acc[op * P_THREADED];
    if (!ops_on[op]) continue;
    for (k = 0; k < g_rounds; k++) {
      for (j = 0; j < P_THREADED; j++) {
        /* ABBA: the paths in order in even rounds, reversed in odd ones. */
        uint64_t window;
        p = (int)(k % 2 == 0 ? j : P_THREADED - 1 - j);
        if (!enabled[p]) continue;
        window = bench_group_round(g_group, (int)op * P_THREADED + p,
                                   g_seconds / g_rounds);
        collect(ws, n, p, op, window, 1, &a[p], scratch, k);
        if (settle(p) != 0) failed = 1;
      }
    }
    for (p = 0; p < P_THREADED; p++) {
      if (!enabled[p]) continue;
      for (i = 0; i < n; i++) shares[i] = ws[i].total_ops[op][p];
      failed |= print_point(p, op, n, &a[p], shares, n);
    }
    {
      double at = n == 8 || n == 32 ? 1 : 0; /* where the goals apply */
      if (enabled[P_QORB_NORESET] && enabled[P_DIRECT])
        ratio("qorb-noreset/direct", op, n, &a[P_QORB_NORESET], &a[P_DIRECT],
              0.95 * at);
      if (enabled[P_QORB] && enabled[P_DIRECT])
        ratio("qorb/direct", op, n, &a[P_QORB], &a[P_DIRECT], 0);
      if (enabled[P_QORB] && enabled[P_QORB_NORESET])
        ratio("qorb/qorb-noreset", op, n, &a[P_QORB], &a[P_QORB_NORESET],
              0.6 * at);
      /* nutcracker answers PING itself: GET only. */
      if (op == OP_GET && enabled[P_TWEMPROXY]) {
        if (enabled[P_QORB_NORESET])
          ratio("qorb-noreset/twemproxy", op, n, &a[P_QORB_NORESET],
                &a[P_TWEMPROXY], n >= 8 ? 1.5 : 0);
        if (enabled[P_QORB])
          ratio("qorb/twemproxy", op, n, &a[P_QORB], &a[P_TWEMPROXY], 0);
      }
    }
    fflush(stdout);
  }
  rc = failed;

out:
  bench_group_stop(g_group);
  g_group = NULL;
  if (ws != NULL) {
    for (i = 0; i < n; i++) {
      for (p = 0; p < P_THREADED; p++)
        if (ws[i].c[p]) redisFree(ws[i].c[p]);
      free(ws[i].lat);
      free(ws[i].rel);
    }
  }
  if (acc != NULL)
    for (i = 0; i < OP_COUNT * P_THREADED; i++) free(acc[i].rel);
  free(ws);
  free(acc);
  free(scratch);
  return rc;
}

/* ------------------------------------------------------------------------
 * The async flavour: one loop, two pools, 32 claimants
 * ------------------------------------------------------------------------ */

typedef struct async_run {
  struct ev_loop *loop;
  qorb_pool_t *pool; /* this round's */
  enum op op;
  int stopping;
  int active;
  uint64_t ops, timeouts, errors, wait_max_ns;
  bench_hist_t *lat;
} async_run_t;

typedef struct claimant {
  async_run_t *run;
  qorb_claim_t *claim;
  uint64_t t0;
  uint64_t ops; /* this round's */
} claimant_t;

static void claimant_go(claimant_t *k);

static void claimant_reply(redisAsyncContext *ac, void *r, void *privdata) {
  claimant_t *k = privdata;
  async_run_t *run = k->run;
  (void)ac;

  if (!reply_ok(r, run->op)) run->errors++;
  if (r != NULL)
    qorb_release(k->claim);
  else
    qorb_release_broken(k->claim);
  k->claim = NULL;
  bench_hist_add(run->lat, bench_now_ns() - k->t0);
  run->ops++;
  k->ops++;
  claimant_go(k);
}

static void claimant_claimed(qorb_pool_t *pool, int status, qorb_claim_t *cl,
                             void *arg) {
  claimant_t *k = arg;
  async_run_t *run = k->run;
  uint64_t waited = bench_now_ns() - k->t0;
  (void)pool;

  if (status != 0) {
    if (status == QORB_EALLINUSE || status == QORB_ETIMEDOUT)
      run->timeouts++;
    else
      run->errors++;
    claimant_go(k);
    return;
  }
  if (waited > run->wait_max_ns) run->wait_max_ns = waited;
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
  if (qorb_pool_claim(run->pool, CLAIM_TIMEOUT_MS, claimant_claimed, k,
                      NULL) != 0) {
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
  (*(int *)arg)++;
}

/* One round on `pool`: 32 claimants for `seconds`; its length in ns. */
static uint64_t async_round(async_run_t *run, claimant_t *ks,
                            qorb_pool_t *pool, enum op op, double seconds) {
  ev_timer stop;
  uint64_t t0, end;
  unsigned i;

  run->pool = pool;
  run->op = op;
  run->stopping = 0;
  run->ops = 0;
  ev_timer_init(&stop, stop_cb, seconds, 0.);
  stop.data = run;
  ev_now_update(run->loop);
  ev_timer_start(run->loop, &stop);
  t0 = bench_now_ns();
  for (i = 0; i < ASYNC_CLAIMANTS; i++) {
    ks[i].run = run;
    ks[i].claim = NULL;
    run->active++;
    claimant_go(&ks[i]);
  }
  /* Every claimant ends its turn: bounded by the claim timeout. */
  end = t0 + (uint64_t)((seconds + 10) * 1e9);
  while (run->active > 0 && bench_now_ns() < end)
    ev_run(run->loop, EVRUN_ONCE);
  ev_timer_stop(run->loop, &stop);
  if (run->active > 0)
    fprintf(stderr, "redis_bench: async: %d claimants still busy\n",
            run->active);
  return bench_now_ns() - t0;
}

static int run_async(const int *enabled, const int *ops_on) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  claimant_t ks[ASYNC_CLAIMANTS];
  async_run_t run;
  acc_t acc[OP_COUNT][2];
  uint64_t shares[OP_COUNT][2][ASYNC_CLAIMANTS];
  qorb_pool_t *pools[2] = {NULL, NULL};
  int on[2], closed = 0, nclose = 0, failed = 0, q;
  unsigned i, k, j;
  enum op op;
  uint64_t end;

  on[0] = enabled[P_ASYNC];
  on[1] = enabled[P_ASYNC_NORESET];
  memset(&run, 0, sizeof(run));
  memset(ks, 0, sizeof(ks));
  memset(acc, 0, sizeof(acc));
  memset(shares, 0, sizeof(shares));
  run.loop = loop;
  run.lat = calloc(1, sizeof(bench_hist_t));
  if (loop == NULL || run.lat == NULL) goto out;
  for (q = 0; q < 2; q++) {
    if (!on[q]) continue;
    pools[q] = make_pool(q == 0 ? QORB_REDIS_RECYCLE_AUTO
                                : QORB_REDIS_RECYCLE_NONE,
                         QORB_REDIS_ASYNC, loop);
    if (pools[q] == NULL ||
        bench_wait_idle("redis_bench", pools[q], POOL_SIZE, 10000, loop) != 0) {
      failed = 1;
      goto out;
    }
  }
  for (q = 0; q < 2 && g_warmup > 0; q++) {
    if (!on[q]) continue;
    async_round(&run, ks, pools[q], ops_on[OP_PING] ? OP_PING : OP_GET,
                g_warmup);
    bench_wait_idle("redis_bench", pools[q], POOL_SIZE, 2000, loop);
  }
  for (op = OP_PING; op < OP_COUNT; op++) {
    if (!ops_on[op]) continue;
    for (k = 0; k < g_rounds; k++) {
      for (j = 0; j < 2; j++) {
        uint64_t window;
        q = (int)(k % 2 == 0 ? j : 1 - j);
        if (!on[q]) continue;
        memset(run.lat, 0, sizeof(*run.lat));
        for (i = 0; i < ASYNC_CLAIMANTS; i++) ks[i].ops = 0;
        window = async_round(&run, ks, pools[q], op, g_seconds / g_rounds);
        for (i = 0; i < ASYNC_CLAIMANTS; i++) shares[op][q][i] += ks[i].ops;
        acc[op][q].timeouts += run.timeouts;
        acc[op][q].errors += run.errors;
        if (run.wait_max_ns > acc[op][q].wait_max_ns)
          acc[op][q].wait_max_ns = run.wait_max_ns;
        run.timeouts = run.errors = run.wait_max_ns = 0;
        acc_round(&acc[op][q], P_ASYNC + q, op, ASYNC_CLAIMANTS, k, run.ops,
                  window, run.lat);
        if (bench_wait_idle("redis_bench", pools[q], POOL_SIZE, 2000, loop) !=
            0)
          failed = 1;
      }
    }
    for (q = 0; q < 2; q++)
      if (on[q])
        failed |= print_point(P_ASYNC + q, op, ASYNC_CLAIMANTS, &acc[op][q],
                              shares[op][q], ASYNC_CLAIMANTS);
    if (on[0] && on[1])
      ratio("qorb-async/qorb-async-noreset", op, ASYNC_CLAIMANTS, &acc[op][0],
            &acc[op][1], 0);
    fflush(stdout);
  }

out:
  for (q = 0; q < 2; q++) {
    if (pools[q] == NULL) continue;
    qorb_pool_close(pools[q], closed_cb, &closed);
    nclose++;
  }
  end = bench_now_ns() + 10000000000ull;
  while (closed < nclose && bench_now_ns() < end) ev_run(loop, EVRUN_ONCE);
  if (closed < nclose) {
    fprintf(stderr, "redis_bench: async pools did not close within 10 s\n");
    failed = 1;
  } else if (loop != NULL) {
    ev_loop_destroy(loop);
  }
  free(run.lat);
  return failed;
}

/* ------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------ */

/* "direct,qorb" and the like into enabled[]; 0, or -1 if malformed. */
static int parse_paths(const char *s, int *enabled) {
  char buf[256], *tok, *save = NULL;
  int p, any = 0;

  if (strlen(s) >= sizeof(buf)) return -1;
  memset(enabled, 0, sizeof(int) * P_COUNT);
  snprintf(buf, sizeof(buf), "%s", s);
  for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int hit = 0;
    for (p = 0; p < P_COUNT; p++) {
      if (strcmp(tok, path_names[p]) == 0 || strcmp(tok, "all") == 0 ||
          (strcmp(tok, "async") == 0 && p >= P_ASYNC)) {
        enabled[p] = 1;
        hit = 1;
      }
    }
    if (!hit) return -1;
    any = 1;
  }
  return any ? 0 : -1;
}

static int parse_ops(const char *s, int *ops_on) {
  char buf[64], *tok, *save = NULL;
  int any = 0;
  if (strlen(s) >= sizeof(buf)) return -1;
  ops_on[OP_PING] = ops_on[OP_GET] = 0;
  snprintf(buf, sizeof(buf), "%s", s);
  for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (strcmp(tok, "ping") == 0)
      ops_on[OP_PING] = 1;
    else if (strcmp(tok, "get") == 0)
      ops_on[OP_GET] = 1;
    else
      return -1;
    any = 1;
  }
  return any ? 0 : -1;
}

static void usage_to(FILE *out) {
  fprintf(out,
          "usage: redis_bench [--seconds S] [--rounds R] [--warmup S] "
          "[--clients 1,8,16,32]\n"
          "                   [--ops ping,get] [--paths LIST] "
          "[--no-twemproxy] [--verbose]\n"
          "  --seconds S   measured time per path and point, split into the "
          "rounds (default 3)\n"
          "  --rounds R    rounds per path, alternated ABBA; medians "
          "(default 8)\n"
          "  --warmup S    one unmeasured round of each path first (default "
          "0.25)\n"
          "  --paths LIST  any of direct,qorb,qorb-noreset,twemproxy,"
          "qorb-async,\n"
          "                qorb-async-noreset; async = both async; all (the "
          "default)\n"
          "  --verbose     print every round's figures as # lines\n");
}

static void usage(void) { usage_to(stderr); }

int main(int argc, char **argv) {
  unsigned clients[MAX_LIST] = {1, 8, 16, 32}, nclients = 4, ci;
  int enabled[P_COUNT] = {1, 1, 1, 1, 1, 1};
  int ops_on[OP_COUNT] = {1, 1};
  int with_proxy, any_threaded, rc, i, p, failed = 0;
  struct sigaction sa;
  double load[1];
  uint64_t t_start = bench_now_ns();

  for (i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argv[i], "--seconds") == 0 && v) {
      g_seconds = atof(argv[++i]);
      if (g_seconds < 0.05 || g_seconds > 60) return usage(), 2;
    } else if (strcmp(argv[i], "--warmup") == 0 && v) {
      g_warmup = atof(argv[++i]);
      if (g_warmup < 0 || g_warmup > 10) return usage(), 2;
    } else if (strcmp(argv[i], "--rounds") == 0 && v) {
      int r = atoi(argv[++i]);
      if (r < 1 || r > MAX_ROUNDS) return usage(), 2;
      g_rounds = (unsigned)r;
    } else if (strcmp(argv[i], "--clients") == 0 && v) {
      if (bench_parse_list(argv[++i], clients, MAX_LIST, MAX_CLIENTS,
                           &nclients) != 0) {
        fprintf(stderr, "redis_bench: bad --clients (1..%d, comma list)\n",
                MAX_CLIENTS);
        return 2;
      }
    } else if (strcmp(argv[i], "--paths") == 0 && v) {
      if (parse_paths(argv[++i], enabled) != 0) return usage(), 2;
    } else if (strcmp(argv[i], "--ops") == 0 && v) {
      if (parse_ops(argv[++i], ops_on) != 0) return usage(), 2;
    } else if (strcmp(argv[i], "--no-twemproxy") == 0) {
      enabled[P_TWEMPROXY] = 0;
    } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
      g_verbose = 1;
    } else if (strcmp(argv[i], "--help") == 0 ||
               strcmp(argv[i], "-h") == 0) {
      usage_to(stdout);
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  if (g_seconds / g_rounds < 0.02) {
    fprintf(stderr,
            "redis_bench: rounds shorter than 20 ms; use fewer --rounds\n");
    return 2;
  }

  signal(SIGPIPE, SIG_IGN);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  atexit(stop_servers);

  with_proxy = enabled[P_TWEMPROXY];
  rc = start_servers(with_proxy);
  if (rc < 0) return 1;
  if (rc > 0) enabled[P_TWEMPROXY] = with_proxy = 0;
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

  for (p = P_QORB; p <= P_QORB_NORESET; p++) {
    if (!enabled[p]) continue;
    g_pools[p] = make_pool(p == P_QORB ? QORB_REDIS_RECYCLE_AUTO
                                       : QORB_REDIS_RECYCLE_NONE,
                           QORB_REDIS_BLOCKING, NULL);
    if (g_pools[p] == NULL ||
        bench_wait_idle("redis_bench", g_pools[p], POOL_SIZE, 10000, NULL) != 0)
      return 1;
  }

  if (getloadavg(load, 1) != 1) load[0] = -1;
  printf("# bench=redis seconds=%.2f rounds=%u round_s=%.3f warmup=%.2f "
         "pool=%d claim_timeout_ms=%d loadavg=%.2f redis=%s:%d%s\n",
         g_seconds, g_rounds, g_seconds / g_rounds, g_warmup, POOL_SIZE,
         CLAIM_TIMEOUT_MS, load[0], HOST, REDIS_PORT,
         with_proxy ? " nutcracker=127.0.0.2:56380 (1 server connection)"
                    : " no-twemproxy");
  fflush(stdout);
  any_threaded = 0;
  for (p = 0; p < P_THREADED; p++) any_threaded |= enabled[p];
  for (ci = 0; ci < nclients && any_threaded; ci++) {
    rc = run_clients(clients[ci], enabled, ops_on);
    if (rc < 0)
      fprintf(stderr, "redis_bench: clients=%u did not run\n", clients[ci]);
    if (rc != 0) failed = 1;
  }
  for (p = P_QORB; p <= P_QORB_NORESET; p++)
    if (g_pools[p]) qorb_pool_close(g_pools[p], NULL, NULL);
  if (enabled[P_ASYNC] || enabled[P_ASYNC_NORESET])
    failed |= run_async(enabled, ops_on);

  printf("bench=redis summary goals_met=%u goals_missed=%u checks=%s "
         "noisy=%u elapsed_s=%.0f\n",
         goals_met, goals_missed, failed ? "FAILED" : "ok", g_noisy,
         (double)(bench_now_ns() - t_start) / 1e9);
  fflush(stdout);
  stop_servers();
  return failed ? 1 : 0;
}
