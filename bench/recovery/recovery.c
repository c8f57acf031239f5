/* SPDX-License-Identifier: MIT */
/*
 * recovery.c: what a pool with its default policy does when its server
 * fails, and how long it takes to serve again. For PostgreSQL (qorb-pg,
 * `SELECT 1` with PQexec) and Redis (qorb-redis blocking flavour, `PING`
 * with redisCommand), a pool of 8 (max_slots = spares_wanted = 8, every
 * other knob at its default) serves 16 client threads, each looping over
 * qorb_pool_claim_wait (2000 ms) + the query + qorb_release, or
 * qorb_release_broken when the query failed. Each fault runs on a fresh
 * pool, 3 s (--seconds) into the steady phase:
 *
 *   idle_kill   clients held back until every connection is idle, every
 *               pooled session killed from the server side, 200 ms, clients
 *               resume
 *   load_kill   the same kill while the clients run
 *   restart     pg_ctl restart -m fast; redis SHUTDOWN NOSAVE + start
 *   stop_3s     stop the server, 3 s, start it
 *   sigstop_3s  SIGSTOP every server process, 3 s, SIGCONT
 *   stop_20s    stop for 20 s (with --long)
 *
 * The program starts its own PostgreSQL 15 and redis-server on 127.0.0.5
 * (recovery_servers.sh, in a folder under /tmp) and stops them at the end,
 * also after an error or Ctrl-C. One line per fault:
 *
 *   bench=recovery backend=pg fault=restart dead=N died_claimed=N claim_failed=N
 *       recovery_ms=N steady_per_s=N connect_attempts=N
 *
 * with `# ` lines of detail and a summary table. bench/recovery/README.md
 * says how each figure is taken.
 */
#define _GNU_SOURCE

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <qorb/pg.h>
#include <qorb/qorb.h>
#include <qorb/redis.h>

#include "bench_common.h"

#ifndef RECOVERY_SERVERS_SH
#define RECOVERY_SERVERS_SH "recovery_servers.sh"
#endif

#define HOST "127.0.0.5"
#define PG_PORT 55471
#define REDIS_PORT 56471
#define PG_APP "qorb_recovery"
#define POOL_SIZE 8
#define CLIENTS 16
#define CLAIM_TIMEOUT_MS 2000
#define WARMUP_MS 500     /* after every client runs, before the steady phase */
#define IDLE_KILL_GAP_MS 200
#define WINDOW_MS 500     /* throughput windows */
#define STEP_MS 50        /* between the starts of two windows */
#define RECOVERED_SHARE 0.8
#define SAMPLE_MS 50      /* pool stats snapshots */
#define MAX_SAMPLES 4096
#define SLACK_MS 60000    /* timeline room for stopping and starting servers */
#define MAX_PIDS 256
#define NCODES 100        /* qorb's codes: -4000 ... -4099 */
#define MAX_CYCLES 2000000000u

/* ------------------------------------------------------------------------
 * Options and process-wide state
 * ------------------------------------------------------------------------ */

typedef enum fault {
  F_IDLE_KILL,
  F_LOAD_KILL,
  F_RESTART,
  F_STOP_3S,
  F_SIGSTOP_3S,
  F_STOP_20S,
  F_COUNT
} fault_t;

static const char *const fault_name[F_COUNT] = {
    "idle_kill", "load_kill", "restart", "stop_3s", "sigstop_3s", "stop_20s"};
/* How long the server stays stopped or paused. */
static const unsigned fault_hold_ms[F_COUNT] = {0, 0, 0, 3000, 3000, 20000};

static volatile sig_atomic_t interrupted;
static char workdir[256];
static double g_seconds = 3.0;
static unsigned g_bound_ms = 10000;

/* Processes held with SIGSTOP, so that the cleanup can let them go. */
static pid_t stopped_pids[MAX_PIDS];
static volatile unsigned nstopped;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

/*
 * Run one recovery_servers.sh command. system() ignores SIGINT in this
 * process while the script runs, so a Ctrl-C shows as the script's death.
 */
static int servers(const char *cmd) {
  const char *sh = getenv("RECOVERY_SERVERS_SH");
  char line[768];
  int st;

  snprintf(line, sizeof(line), "sh '%s' '%s' %s", sh ? sh : RECOVERY_SERVERS_SH,
           workdir, cmd);
  st = system(line);
  if (st == -1) return -1;
  if ((WIFSIGNALED(st) &&
       (WTERMSIG(st) == SIGINT || WTERMSIG(st) == SIGTERM)) ||
      (WIFEXITED(st) && WEXITSTATUS(st) >= 128))
    interrupted = 1;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void cont_stopped(void) {
  unsigned i;
  for (i = nstopped; i > 0; i--) kill(stopped_pids[i - 1], SIGCONT);
  nstopped = 0;
}

static void cleanup(void) {
  if (workdir[0] == '\0') return;
  cont_stopped();
  if (servers("cleanup") != 0)
    fprintf(stderr, "recovery: cleanup of %s failed\n", workdir);
  workdir[0] = '\0';
}

/* Sleep until `deadline` (bench_now_ns), in short steps; 0, or -1 when
 * interrupted first. */
static int sleep_until(uint64_t deadline) {
  uint64_t now;
  while ((now = bench_now_ns()) < deadline) {
    if (interrupted) return -1;
    bench_sleep_ns(deadline - now < 20000000u ? deadline - now : 20000000u);
  }
  return interrupted ? -1 : 0;
}

/* A message made to fit on one `# ` line. */
static void one_line(char *dst, size_t len, const char *src) {
  size_t i, j = 0;
  for (i = 0; src && src[i] && j + 1 < len; i++) {
    if (src[i] == '\t') {
      if (j > 0 && dst[j - 1] != ' ') dst[j++] = ' ';
    } else if (src[i] == '\n') {
      if (src[i + 1] && j + 3 < len) {
        dst[j++] = ';';
        dst[j++] = ' ';
      }
    } else if (src[i] != '\r') {
      dst[j++] = src[i];
    }
  }
  dst[j] = '\0';
}

/* ------------------------------------------------------------------------
 * Server processes
 * ------------------------------------------------------------------------ */

static pid_t read_pid(const char *rel) {
  char path[400];
  FILE *f;
  long pid = 0;

  snprintf(path, sizeof(path), "%s/%s", workdir, rel);
  f = fopen(path, "r");
  if (f == NULL) return -1;
  if (fscanf(f, "%ld", &pid) != 1) pid = 0;
  fclose(f);
  return pid > 0 ? (pid_t)pid : -1;
}

/* The children of `parent`, from /proc; the count found (at most cap). */
static unsigned children_of(pid_t parent, pid_t *out, unsigned cap) {
  DIR *d = opendir("/proc");
  struct dirent *e;
  unsigned n = 0;

  if (d == NULL) return 0;
  while (n < cap && (e = readdir(d)) != NULL) {
    char path[300], buf[512], *p;
    FILE *f;
    long ppid;
    size_t got;
    if (!isdigit((unsigned char)e->d_name[0])) continue;
    snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
    if ((f = fopen(path, "r")) == NULL) continue;
    got = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[got] = '\0';
    /* pid (comm) state ppid ...: comm may hold spaces and parentheses. */
    if ((p = strrchr(buf, ')')) == NULL) continue;
    if (sscanf(p + 1, " %*c %ld", &ppid) == 1 && ppid == (long)parent)
      out[n++] = (pid_t)atol(e->d_name);
  }
  closedir(d);
  return n;
}

/* SIGSTOP `pid` (first, so that it forks no more) and, with `tree`, its
 * children. 0, or -1 when there is no such server. */
static int stop_processes(pid_t pid, int tree) {
  pid_t kids[MAX_PIDS - 1];
  unsigned i, n;

  if (pid <= 0 || kill(pid, SIGSTOP) != 0) return -1;
  stopped_pids[0] = pid;
  nstopped = 1;
  n = tree ? children_of(pid, kids, MAX_PIDS - 1) : 0;
  for (i = 0; i < n; i++)
    if (kill(kids[i], SIGSTOP) == 0) stopped_pids[nstopped++] = kids[i];
  return 0;
}

/* ------------------------------------------------------------------------
 * The two backends
 * ------------------------------------------------------------------------ */

/* How far before a fault a claim still in use may have been made. */
#define CLAIM_SPAN_MS 1000

/* What a query's outcome counts as. */
enum { K_OK, K_CLAIM_FAILED, K_DEAD, K_QUERY_ERR, K_COUNT };

typedef struct backend_ops {
  const char *name;
  int port;
  /* The connector for the pool, with the defaults but for a name. */
  int (*connector)(qorb_connector_t **out, char *err, size_t len);
  /* One query on a claimed connection: K_OK, K_DEAD (the connection is
     dead) or K_QUERY_ERR; `why` receives the error. */
  int (*query)(qorb_claim_t *cl, char *why, size_t len);
  /* Kill the pool's sessions from the server side; *n: how many. */
  int (*kill_sessions)(long *n);
  /* 0 when an admin connection's query works. */
  int (*alive)(void);
  const char *start, *stop, *restart; /* recovery_servers.sh commands */
  const char *pidfile;                /* the server's pid, under workdir */
  int stop_children;                  /* SIGSTOP the children too */
} backend_ops_t;

/* pg ------------------------------------------------------------------- */

static int pg_connector(qorb_connector_t **out, char *err, size_t len) {
  qorb_pg_options_t o;
  qorb_pg_options_init(&o);
  o.conninfo = "user=postgres dbname=postgres application_name=" PG_APP;
  return qorb_pg_connector_new(out, &o, err, len);
}

static int pg_query(qorb_claim_t *cl, char *why, size_t len) {
  PGconn *conn = qorb_pg_conn(cl);
  PGresult *res = PQexec(conn, "SELECT 1");
  int ok = res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK;
  PQclear(res);
  if (ok) return K_OK;
  one_line(why, len, PQerrorMessage(conn));
  return PQstatus(conn) == CONNECTION_BAD ? K_DEAD : K_QUERY_ERR;
}

/* One query on a fresh admin connection (application_name differs from
 * the pool's); the first row's first column into *value. */
static int pg_admin(const char *sql, long *value) {
  char info[200];
  PGconn *a;
  PGresult *res;
  int rc = -1;

  snprintf(info, sizeof(info),
           "hostaddr=%s port=%d user=postgres dbname=postgres "
           "application_name=" PG_APP "_admin connect_timeout=5",
           HOST, PG_PORT);
  a = PQconnectdb(info);
  if (PQstatus(a) == CONNECTION_OK) {
    res = PQexec(a, sql);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
      if (value) *value = atol(PQgetvalue(res, 0, 0));
      rc = 0;
    } else {
      fprintf(stderr, "recovery: pg admin: %s", PQerrorMessage(a));
    }
    PQclear(res);
  }
  PQfinish(a);
  return rc;
}

static int pg_kill_sessions(long *n) {
  /* The two-argument form waits (up to 2 s) until each session is gone. */
  /* The pool's sessions are picked first (MATERIALIZED), so that the
     planner cannot run pg_terminate_backend on any other row. It only
     signals them (the form with a timeout polls every 100 ms, one session
     after the other); they exit within milliseconds. */
  return pg_admin("WITH s AS MATERIALIZED (SELECT pid FROM pg_stat_activity "
                  "WHERE application_name = '" PG_APP "') "
                  "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                  "FROM s",
                  n);
}

static int pg_alive(void) { return pg_admin("SELECT 1", NULL); }

/* redis ---------------------------------------------------------------- */

static int redis_connector(qorb_connector_t **out, char *err, size_t len) {
  qorb_redis_options_t o;
  qorb_redis_options_init(&o);
  return qorb_redis_connector_new(out, &o, err, len);
}

static int redis_query(qorb_claim_t *cl, char *why, size_t len) {
  redisContext *ctx = qorb_redis_ctx(cl);
  redisReply *r = redisCommand(ctx, "PING");
  int kind = K_OK;

  if (r == NULL) {
    one_line(why, len, ctx->errstr);
    kind = K_DEAD;
  } else if (r->type != REDIS_REPLY_STATUS) {
    one_line(why, len, r->type == REDIS_REPLY_ERROR ? r->str : "not a status");
    kind = K_QUERY_ERR;
  }
  if (r) freeReplyObject(r);
  return kind;
}

/* One command on a fresh admin connection; an integer reply into *value. */
static int redis_admin(const char *cmd, long *value) {
  struct timeval tv = {5, 0};
  redisContext *c = redisConnectWithTimeout(HOST, REDIS_PORT, tv);
  redisReply *r = NULL;
  int rc = -1;

  if (c != NULL && !c->err) {
    redisSetTimeout(c, tv);
    r = redisCommand(c, cmd);
    if (r != NULL && r->type != REDIS_REPLY_ERROR) {
      if (value) *value = r->type == REDIS_REPLY_INTEGER ? (long)r->integer : 0;
      rc = 0;
    } else {
      fprintf(stderr, "recovery: redis admin %s: %s\n", cmd,
              r ? r->str : c->errstr);
    }
  }
  if (r) freeReplyObject(r);
  if (c) redisFree(c);
  return rc;
}

static int redis_kill_sessions(long *n) {
  /* Every normal client but this admin connection: the pool's. */
  return redis_admin("CLIENT KILL TYPE normal SKIPME yes", n);
}

static int redis_alive(void) { return redis_admin("PING", NULL); }

static const backend_ops_t backends[] = {
    {"pg", PG_PORT, pg_connector, pg_query, pg_kill_sessions, pg_alive,
     "pg-start", "pg-stop", "pg-restart", "pg/data/postmaster.pid", 1},
    {"redis", REDIS_PORT, redis_connector, redis_query, redis_kill_sessions,
     redis_alive, "redis-start", "redis-stop", NULL, "redis/redis.pid", 0},
};
#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

/* ------------------------------------------------------------------------
 * A run: one fresh pool, 16 clients, one fault
 * ------------------------------------------------------------------------ */

struct run;

/* One client thread's counts: events per millisecond of the run. */
typedef struct client {
  struct run *run;
  uint32_t *bins; /* [ms * K_COUNT + kind] */
  uint64_t dropped;                 /* events past the end of the bins */
  uint64_t claim_codes[NCODES + 1]; /* [-4000 - code], last: any other */
  uint64_t first_ns[K_COUNT];       /* first dead / query error */
  char first_text[K_COUNT][256];
} client_t;

/* One pool stats snapshot: the backend's, and the pool's queue. */
typedef struct sample {
  uint64_t t_ns;
  unsigned waiters;
  qorb_backend_stats_t b;
} sample_t;

typedef struct run {
  const backend_ops_t *ops;
  fault_t fault;
  qorb_pool_t *pool;
  bench_run_t ctl;
  atomic_int paused, parked, sampler_stop;
  uint64_t t0;
  unsigned nbins;
  client_t clients[CLIENTS];
  sample_t samples[MAX_SAMPLES];
  atomic_uint nsamples;
} run_t;

/* What a fault did, in bench_now_ns times. */
typedef struct fault_times {
  uint64_t steady, fault, up, end;
  /* the backend's stats at the fault, when up again, at the end */
  qorb_backend_stats_t before, after, last;
  long killed;
  int all_idle;        /* idle_kill: every slot was idle at the kill */
  uint64_t parked, kill; /* idle_kill: every client held back; the kill */
} fault_times_t;

typedef struct result {
  int ran;
  uint64_t dead, died_claimed, claim_failed;
  long recovery_ms;
  double steady_per_s;
  uint64_t connect_attempts;
} result_t;

/* Count one outcome in the bin of `t_ns` (bench_now_ns). */
static void record_at(client_t *c, int kind, uint64_t t_ns) {
  uint64_t ms = (t_ns - c->run->t0) / 1000000u;
  if (ms < c->run->nbins)
    c->bins[ms * K_COUNT + (unsigned)kind]++;
  else
    c->dropped++;
}

static void record(client_t *c, int kind) { record_at(c, kind, bench_now_ns()); }

static void note_first(client_t *c, int kind, const char *why) {
  if (c->first_ns[kind] == 0) {
    c->first_ns[kind] = bench_now_ns();
    snprintf(c->first_text[kind], sizeof(c->first_text[kind]), "%s", why);
  }
}

/* Held back while the run is paused (idle_kill), bounded at 60 s. */
static void park(run_t *r) {
  unsigned i;
  atomic_fetch_add(&r->parked, 1);
  for (i = 0; i < 60000 && atomic_load(&r->paused) && !bench_stopping(&r->ctl);
       i++)
    bench_nap_ms(1);
  atomic_fetch_sub(&r->parked, 1);
}

static void *client_main(void *arg) {
  client_t *c = arg;
  run_t *r = c->run;
  char why[256];
  uint32_t i;

  bench_ready(&r->ctl);
  for (i = 0; i < MAX_CYCLES && !bench_stopping(&r->ctl); i++) {
    qorb_claim_t *cl;
    uint64_t claimed_ns;
    int rc, kind;
    if (atomic_load_explicit(&r->paused, memory_order_relaxed)) {
      park(r);
      continue;
    }
    rc = qorb_pool_claim_wait(r->pool, CLAIM_TIMEOUT_MS, &cl);
    if (rc != 0) {
      record(c, K_CLAIM_FAILED);
      c->claim_codes[rc <= -4000 && rc > -4000 - NCODES ? (unsigned)(-4000 - rc)
                                                        : NCODES]++;
      /* A claim that fails at once (the backend is known down) would
         otherwise spin: a real client backs off a little too. */
      bench_nap_ms(1);
      continue;
    }
    claimed_ns = bench_now_ns();
    kind = r->ops->query(cl, why, sizeof(why));
    /*
     * A dead connection is binned at the time it was claimed, so that one
     * handed out dead (claimed after the fault) is told from one that died
     * under its claimant (claimed before: no pool can help that).
     */
    if (kind == K_DEAD)
      record_at(c, kind, claimed_ns);
    else
      record(c, kind);
    if (kind == K_OK) {
      qorb_release(cl);
    } else {
      note_first(c, kind, why);
      qorb_release_broken(cl);
    }
  }
  return NULL;
}

static void take_stats(run_t *r, qorb_pool_stats_t *st,
                       qorb_backend_stats_t *b) {
  size_t n = 0;
  qorb_pool_stats_init(st);
  memset(b, 0, sizeof(*b));
  qorb_pool_stats(r->pool, st, b, 1, &n);
}

/* Snapshots of the pool every SAMPLE_MS, for the timeline. */
static void *sampler_main(void *arg) {
  run_t *r = arg;
  unsigned i;
  for (i = 0; i < MAX_SAMPLES && !atomic_load(&r->sampler_stop); i++) {
    qorb_pool_stats_t st;
    sample_t *s = &r->samples[i];
    take_stats(r, &st, &s->b);
    s->t_ns = bench_now_ns();
    s->waiters = st.waiters;
    atomic_store(&r->nsamples, i + 1);
    bench_nap_ms(SAMPLE_MS);
  }
  return NULL;
}

static qorb_pool_t *make_pool(const backend_ops_t *ops) {
  qorb_policy_t pol;
  qorb_resolver_t *res = NULL;
  qorb_connector_t *conn = NULL;
  qorb_pool_t *pool = NULL;
  char err[256] = "", list[64];
  int rc;

  /* The defaults, but for the size: what is measured is qorb as shipped. */
  qorb_policy_init(&pol);
  pol.name = "recovery";
  pol.max_slots = POOL_SIZE;
  pol.spares_wanted = POOL_SIZE;
  snprintf(list, sizeof(list), "%s:%d", HOST, ops->port);
  if ((rc = ops->connector(&conn, err, sizeof(err))) != 0 ||
      (rc = qorb_static_resolver_new(&res, list, err, sizeof(err))) != 0 ||
      (rc = qorb_pool_new(&pool, NULL, &pol, res, conn, err, sizeof(err))) !=
          0) {
    fprintf(stderr, "recovery: %s pool: %s %s\n", ops->name,
            qorb_strerror(rc), err);
    qorb_connector_free(conn);
    qorb_resolver_free(res);
    return NULL;
  }
  if (bench_wait_idle("recovery", pool, POOL_SIZE, 10000, NULL) != 0) {
    qorb_pool_close(pool, NULL, NULL);
    return NULL;
  }
  return pool;
}

/* Wait (bounded) until no slot is claimed and `want_idle` are idle. */
static int wait_pool(run_t *r, unsigned want_idle, unsigned timeout_ms) {
  uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
  qorb_pool_stats_t st;
  qorb_backend_stats_t b;
  do {
    take_stats(r, &st, &b);
    if (st.claimed == 0 && st.idle >= want_idle) return 0;
    bench_nap_ms(1);
  } while (bench_now_ns() < end && !interrupted);
  return -1;
}

/* Stop the server, or fail. */
static int server_down(const backend_ops_t *ops) {
  if (servers(ops->stop) != 0) {
    fprintf(stderr, "recovery: could not stop %s\n", ops->name);
    return -1;
  }
  return 0;
}

static int server_up(const backend_ops_t *ops) {
  if (servers(ops->start) != 0) {
    fprintf(stderr, "recovery: could not start %s\n", ops->name);
    return -1;
  }
  return 0;
}

/*
 * Break the server as `f` says, and mend it. ft->fault is when the fault
 * began, ft->up when the server serves again (for the kills: when the kill
 * returned). Returns 0, or -1 when the server could not be brought back
 * (or the run was interrupted).
 */
static int inject(run_t *r, fault_t f, fault_times_t *ft) {
  const backend_ops_t *ops = r->ops;
  qorb_pool_stats_t st;
  uint64_t t;
  int rc = 0;

  switch (f) {
  case F_IDLE_KILL:
  case F_LOAD_KILL:
    ft->fault = bench_now_ns();
    if (f == F_IDLE_KILL) {
      unsigned i;
      atomic_store(&r->paused, 1);
      for (i = 0; i < 10000 && atomic_load(&r->parked) < CLIENTS; i++)
        bench_nap_ms(1);
      ft->parked = bench_now_ns();
      ft->all_idle = atomic_load(&r->parked) == CLIENTS &&
                     wait_pool(r, POOL_SIZE, 5000) == 0;
    }
    take_stats(r, &st, &ft->before);
    ft->kill = bench_now_ns();
    rc = ops->kill_sessions(&ft->killed);
    ft->up = bench_now_ns();
    take_stats(r, &st, &ft->after);
    if (f == F_IDLE_KILL) {
      sleep_until(ft->up + IDLE_KILL_GAP_MS * 1000000ull);
      atomic_store(&r->paused, 0);
    }
    return rc;
  case F_RESTART:
    ft->fault = bench_now_ns();
    take_stats(r, &st, &ft->before);
    if (ops->restart != NULL)
      rc = servers(ops->restart);
    else if ((rc = server_down(ops)) == 0)
      rc = server_up(ops);
    break;
  case F_STOP_3S:
  case F_STOP_20S:
    ft->fault = bench_now_ns();
    take_stats(r, &st, &ft->before);
    if ((rc = server_down(ops)) != 0) break;
    sleep_until(bench_now_ns() + fault_hold_ms[f] * 1000000ull);
    /* Bring it back even after a Ctrl-C: the cleanup expects it. */
    rc = server_up(ops);
    break;
  case F_SIGSTOP_3S:
    ft->fault = bench_now_ns();
    take_stats(r, &st, &ft->before);
    if (stop_processes(read_pid(ops->pidfile), ops->stop_children) != 0) {
      fprintf(stderr, "recovery: no %s server to stop\n", ops->name);
      rc = -1;
      break;
    }
    t = bench_now_ns();
    printf("# %s %s: %u processes stopped\n", ops->name, fault_name[f],
           nstopped);
    sleep_until(t + fault_hold_ms[f] * 1000000ull);
    cont_stopped();
    break;
  default:
    rc = -1;
  }
  ft->up = bench_now_ns();
  take_stats(r, &st, &ft->after);
  return rc;
}

/* ------------------------------------------------------------------------
 * Analysis
 * ------------------------------------------------------------------------ */

/* Every client's bins added up, as prefix sums: sum[k][i] is the count of
 * kind k in the first i milliseconds. */
typedef struct totals {
  unsigned n;
  uint64_t *sum[K_COUNT];
  uint64_t codes[NCODES + 1];
  uint64_t dropped;
  uint64_t first_ns[K_COUNT];
  const char *first_text[K_COUNT];
} totals_t;

static int totals_make(run_t *r, totals_t *t) {
  unsigned k, i, c;
  memset(t, 0, sizeof(*t));
  t->n = r->nbins;
  for (k = 0; k < K_COUNT; k++)
    if ((t->sum[k] = calloc((size_t)t->n + 1, sizeof(uint64_t))) == NULL)
      return -1;
  for (i = 0; i < t->n; i++)
    for (k = 0; k < K_COUNT; k++) {
      uint64_t v = 0;
      for (c = 0; c < CLIENTS; c++) v += r->clients[c].bins[i * K_COUNT + k];
      t->sum[k][i + 1] = t->sum[k][i] + v;
    }
  for (c = 0; c < CLIENTS; c++) {
    client_t *cl = &r->clients[c];
    t->dropped += cl->dropped;
    for (i = 0; i <= NCODES; i++) t->codes[i] += cl->claim_codes[i];
    for (k = 0; k < K_COUNT; k++)
      if (cl->first_ns[k] &&
          (t->first_ns[k] == 0 || cl->first_ns[k] < t->first_ns[k])) {
        t->first_ns[k] = cl->first_ns[k];
        t->first_text[k] = cl->first_text[k];
      }
  }
  return 0;
}

static void totals_free(totals_t *t) {
  unsigned k;
  for (k = 0; k < K_COUNT; k++) free(t->sum[k]);
}

/* Count of kind k in milliseconds [a, b) of the run. */
static uint64_t count(const totals_t *t, unsigned k, uint64_t a, uint64_t b) {
  if (b > t->n) b = t->n;
  if (a >= b) return 0;
  return t->sum[k][b] - t->sum[k][a];
}

static uint64_t errors(const totals_t *t, uint64_t a, uint64_t b) {
  return count(t, K_CLAIM_FAILED, a, b) + count(t, K_DEAD, a, b) +
         count(t, K_QUERY_ERR, a, b);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median cycles/s over the windows that fit in [a, b) ms. */
static double steady_rate(const totals_t *t, uint64_t a, uint64_t b) {
  double rates[4096];
  unsigned n = 0;
  uint64_t s;
  for (s = a; s + WINDOW_MS <= b && n < 4096; s += STEP_MS)
    rates[n++] = (double)count(t, K_OK, s, s + WINDOW_MS) * 1000.0 / WINDOW_MS;
  if (n == 0) return 0;
  qsort(rates, n, sizeof(rates[0]), cmp_double);
  return n % 2 ? rates[n / 2] : (rates[n / 2 - 1] + rates[n / 2]) / 2;
}

static uint64_t ms_of(const run_t *r, uint64_t ns) {
  return ns > r->t0 ? (ns - r->t0) / 1000000u : 0;
}

/* ms of the run, rounded up */
static uint64_t ms_ceil(const run_t *r, uint64_t ns) {
  return ns > r->t0 ? (ns - r->t0 + 999999u) / 1000000u : 0;
}

static long rel_ms(uint64_t ns, uint64_t from) {
  return ns >= from ? (long)((ns - from) / 1000000u)
                    : -(long)((from - ns) / 1000000u);
}

/* The start of the first clean window at RECOVERED_SHARE of `steady`,
 * in ms after `up`, or -1. */
static long recovery(const run_t *r, const totals_t *t, const fault_times_t *ft,
                     double steady) {
  uint64_t up = ms_ceil(r, ft->up), end = ms_of(r, ft->end), s;
  double need = RECOVERED_SHARE * steady * WINDOW_MS / 1000.0;
  for (s = up; s + WINDOW_MS <= end && s - up <= g_bound_ms; s += STEP_MS)
    if (errors(t, s, s + WINDOW_MS) == 0 &&
        (double)count(t, K_OK, s, s + WINDOW_MS) >= need)
      return (long)((r->t0 + s * 1000000u - ft->up + 500000u) / 1000000u);
  return -1;
}

/* Where errors of kind k fell, from the fault on. */
static void print_span(const char *tag, const run_t *r, const totals_t *t,
                       const fault_times_t *ft, unsigned k, const char *what) {
  uint64_t a = ms_of(r, ft->fault), b = ms_of(r, ft->end), i, first = 0,
           last = 0, n = count(t, k, a, b);
  if (n == 0) return;
  for (i = a; i < b; i++)
    if (count(t, k, i, i + 1)) {
      if (!first) first = i + 1;
      last = i;
    }
  printf("# %s: %llu %s, from +%lld to +%lld ms after the fault", tag,
         (unsigned long long)n, what, (long long)(first - 1) - (long long)a,
         (long long)last - (long long)a);
  if (t->first_text[k]) printf(" (first: %s)", t->first_text[k]);
  printf("\n");
}

/* Throughput and errors in coarse bins from the fault on, to just past the
 * recovery (or to the end), on one line. */
static void print_timeline(const char *tag, const run_t *r, const totals_t *t,
                           const fault_times_t *ft, long rec_ms) {
  uint64_t a = ms_of(r, ft->fault), b = ms_of(r, ft->end), width, s;
  unsigned n = 0;
  if (rec_ms >= 0) {
    uint64_t until = ms_of(r, ft->up) + (uint64_t)rec_ms + 2 * WINDOW_MS;
    if (until < b) b = until;
  }
  width = (b - a) / 60 < 100 ? 100 : ((b - a) / 60 + 99) / 100 * 100;
  printf("# %s: ok/errors per %llu ms from the fault (up at +%ld ms):", tag,
         (unsigned long long)width, rel_ms(ft->up, ft->fault));
  for (s = a; s < b && n < 80; s += width, n++)
    printf(" %llu/%llu", (unsigned long long)count(t, K_OK, s, s + width),
           (unsigned long long)errors(t, s, s + width));
  printf("\n");
}

/* The pool's state around the fault: a line whenever it changed. */
static void print_pool(const char *tag, run_t *r, const fault_times_t *ft) {
  unsigned n = atomic_load(&r->nsamples), i, lines = 0, more = 0;
  const sample_t *prev = NULL;
  for (i = 0; i < n; i++) {
    const sample_t *s = &r->samples[i];
    if (s->t_ns + SAMPLE_MS * 1000000u < ft->fault) {
      prev = s;
      continue;
    }
    if (prev && prev->b.online == s->b.online &&
        prev->b.connects == s->b.connects && prev->b.failures == s->b.failures)
      continue;
    if (lines++ >= 24) {
      more++;
      prev = s;
      continue;
    }
    printf("# %s: pool at %+ld ms: online=%d connecting=%u idle=%u "
           "checking=%u claimed=%u waiters=%u connects=%llu failures=%llu",
           tag, rel_ms(s->t_ns, ft->fault), s->b.online, s->b.connecting,
           s->b.idle, s->b.checking, s->b.claimed, s->waiters,
           (unsigned long long)s->b.connects,
           (unsigned long long)s->b.failures);
    if (prev && s->b.failures != prev->b.failures && s->b.last_error[0]) {
      char text[sizeof(s->b.last_error)];
      one_line(text, sizeof(text), s->b.last_error);
      printf(" last_error=\"%s\"", text);
    }
    printf("\n");
    prev = s;
  }
  if (more) printf("# %s: (%u more pool changes)\n", tag, more);
}

static void analyse(run_t *r, const fault_times_t *ft, const totals_t *t,
                    result_t *res) {
  char tag[64];
  uint64_t fault_ms = ms_of(r, ft->fault), end_ms = ms_of(r, ft->end);
  char last_error[sizeof(ft->last.last_error)];
  unsigned i;

  snprintf(tag, sizeof(tag), "%s %s", r->ops->name, fault_name[r->fault]);
  res->ran = 1;
  res->steady_per_s = steady_rate(t, ms_of(r, ft->steady), fault_ms);
  res->recovery_ms = recovery(r, t, ft, res->steady_per_s);
  {
    /*
     * Dead connections are binned at their claim. Those claimed before the
     * first death was seen (by any client: its query failing) died under
     * their claimants, or were dying as they were claimed; those claimed
     * after it were handed out while the death could be known.
     */
    uint64_t seen_ns = 0, seen_ms;
    for (i = 0; i < CLIENTS; i++) {
      uint64_t f = r->clients[i].first_ns[K_DEAD];
      if (f != 0 && f >= ft->fault && (seen_ns == 0 || f < seen_ns))
        seen_ns = f;
    }
    seen_ms = seen_ns ? ms_of(r, seen_ns) : end_ms;
    if (seen_ms < fault_ms) seen_ms = fault_ms;
    res->died_claimed = count(
        t, K_DEAD, fault_ms > CLAIM_SPAN_MS ? fault_ms - CLAIM_SPAN_MS : 0,
        seen_ms + 1);
    res->dead = seen_ms + 1 < end_ms ? count(t, K_DEAD, seen_ms + 1, end_ms) : 0;
  }
  res->claim_failed = count(t, K_CLAIM_FAILED, fault_ms, end_ms);
  /* Attempts that ended (connected or failed) while the server was down:
     the deltas of the backend's connects and failures between the fault
     and the server being up again. failures also counts failed checks and
     recycles; attempts still in flight when it came back are not in it. */
  res->connect_attempts = ft->after.connects + ft->after.failures -
                          ft->before.connects - ft->before.failures;

  printf("# %s: steady from +%ld ms, fault at +%ld ms, %s at +%ld ms "
         "(%ld ms later), measured to +%ld ms after the start of the "
         "clients\n",
         tag, rel_ms(ft->steady, r->t0), rel_ms(ft->fault, r->t0),
         r->fault == F_IDLE_KILL || r->fault == F_LOAD_KILL ? "killed"
                                                            : "server up",
         rel_ms(ft->up, r->t0), rel_ms(ft->up, ft->fault),
         rel_ms(ft->end, r->t0));
  if (r->fault == F_IDLE_KILL || r->fault == F_LOAD_KILL)
    printf("# %s: %ld sessions killed in %ld ms\n", tag, ft->killed,
           rel_ms(ft->up, ft->kill));
  if (r->fault == F_IDLE_KILL)
    printf("# %s: clients held back at the fault, all waiting after %ld ms, "
           "%s after %ld ms; resumed %d ms after the kill\n",
           tag, rel_ms(ft->parked, ft->fault),
           ft->all_idle ? "every slot idle" : "NOT every slot idle",
           rel_ms(ft->kill, ft->fault), IDLE_KILL_GAP_MS);
  if (errors(t, 0, fault_ms))
    printf("# %s: %llu errors before the fault\n", tag,
           (unsigned long long)errors(t, 0, fault_ms));
  if (res->claim_failed) {
    printf("# %s: failed claims by code:", tag);
    for (i = 0; i < NCODES; i++)
      if (t->codes[i])
        printf(" %s=%llu", qorb_err_name(-4000 - (int)i),
               (unsigned long long)t->codes[i]);
    if (t->codes[NCODES])
      printf(" other=%llu", (unsigned long long)t->codes[NCODES]);
    printf("\n");
  }
  print_span(tag, r, t, ft, K_CLAIM_FAILED, "failed claims");
  one_line(last_error, sizeof(last_error), ft->last.last_error);
  print_span(tag, r, t, ft, K_DEAD, "dead connections handed out");
  print_span(tag, r, t, ft, K_QUERY_ERR, "queries failed on a live connection");
  if (t->dropped)
    printf("# %s: %llu events past the end of the timeline, not counted\n",
           tag, (unsigned long long)t->dropped);
  printf("# %s: backend connects+failures %llu+%llu at the fault, "
         "%llu+%llu when up, %llu+%llu at the end%s%s%s\n",
         tag, (unsigned long long)ft->before.connects,
         (unsigned long long)ft->before.failures,
         (unsigned long long)ft->after.connects,
         (unsigned long long)ft->after.failures,
         (unsigned long long)ft->last.connects,
         (unsigned long long)ft->last.failures,
         last_error[0] ? ", last error \"" : "", last_error,
         last_error[0] ? "\"" : "");
  print_timeline(tag, r, t, ft, res->recovery_ms);
  print_pool(tag, r, ft);
}

/* ------------------------------------------------------------------------
 * One fault, start to end
 * ------------------------------------------------------------------------ */

static int join_bounded(pthread_t tid, unsigned seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)seconds;
  return pthread_timedjoin_np(tid, NULL, &ts);
}

/* Returns 0; -1 when it could not run; -2 when the server was left down. */
static int run_fault(const backend_ops_t *ops, fault_t f, result_t *res) {
  run_t *r = calloc(1, sizeof(*r));
  pthread_t tids[CLIENTS], sampler;
  unsigned i, started = 0, steady_ms = (unsigned)(g_seconds * 1000);
  int sampling = 0, rc = -1, broke;
  fault_times_t ft;
  totals_t t;

  memset(res, 0, sizeof(*res));
  memset(&ft, 0, sizeof(ft));
  memset(&t, 0, sizeof(t));
  if (r == NULL) return -1;
  r->ops = ops;
  r->fault = f;
  r->nbins = WARMUP_MS + steady_ms + fault_hold_ms[f] + SLACK_MS + g_bound_ms +
             WINDOW_MS;
  for (i = 0; i < CLIENTS; i++) {
    r->clients[i].run = r;
    r->clients[i].bins = calloc((size_t)r->nbins * K_COUNT, sizeof(uint32_t));
    if (r->clients[i].bins == NULL) goto out;
  }
  if (ops->alive() != 0) {
    fprintf(stderr, "recovery: %s is not serving\n", ops->name);
    rc = -2;
    goto out;
  }
  if ((r->pool = make_pool(ops)) == NULL) goto out;
  sampling = pthread_create(&sampler, NULL, sampler_main, r) == 0;

  r->t0 = bench_now_ns();
  for (i = 0; i < CLIENTS; i++) {
    if (pthread_create(&tids[i], NULL, client_main, &r->clients[i]) != 0)
      break;
    started++;
  }
  if (started < CLIENTS) {
    fprintf(stderr, "recovery: could not start %u clients\n", CLIENTS);
    goto stop;
  }
  for (i = 0; i < 10000 && atomic_load(&r->ctl.ready) < CLIENTS; i++)
    bench_nap_ms(1);
  if (sleep_until(bench_now_ns() + WARMUP_MS * 1000000ull) != 0) goto stop;
  ft.steady = bench_now_ns();
  if (sleep_until(ft.steady + (uint64_t)steady_ms * 1000000u) != 0) goto stop;

  broke = inject(r, f, &ft);
  if (broke != 0 && !interrupted) {
    fprintf(stderr, "recovery: %s %s: the fault did not complete\n",
            ops->name, fault_name[f]);
    rc = -2;
    goto stop;
  }
  ft.end = ft.up + ((uint64_t)g_bound_ms + WINDOW_MS) * 1000000u;
  if (ft.end > r->t0 + (uint64_t)r->nbins * 1000000u)
    ft.end = r->t0 + (uint64_t)r->nbins * 1000000u;
  if (sleep_until(ft.end) != 0) goto stop;
  {
    qorb_pool_stats_t st;
    take_stats(r, &st, &ft.last);
  }
  rc = 0;

stop:
  atomic_store(&r->ctl.stop, 1);
  atomic_store(&r->paused, 0);
  for (i = 0; i < started; i++)
    if (join_bounded(tids[i], 30) != 0) {
      /* A client stuck in a query on a server that never answers: leave
         (the cleanup stops the servers). */
      fprintf(stderr, "recovery: a %s client did not finish\n", ops->name);
      exit(1);
    }
  atomic_store(&r->sampler_stop, 1);
  if (sampling) pthread_join(sampler, NULL);
  if (rc == 0 && totals_make(r, &t) == 0)
    analyse(r, &ft, &t, res);
  totals_free(&t);
  qorb_pool_close(r->pool, NULL, NULL);
out:
  for (i = 0; i < CLIENTS; i++) free(r->clients[i].bins);
  free(r);
  return rc;
}

/* ------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------ */

static void usage_to(FILE *out) {
  fprintf(out,
          "usage: recovery [--backend pg|redis|both] [--faults LIST] "
          "[--seconds S] [--bound S] [--long]\n"
          "  LIST: comma list of idle_kill,load_kill,restart,stop_3s,"
          "sigstop_3s,stop_20s\n"
          "  (default: all but stop_20s, which --long adds)\n"
          "Starts PostgreSQL (%s:%d) and redis-server (%s:%d) in a folder "
          "under /tmp and stops them.\n",
          HOST, PG_PORT, HOST, REDIS_PORT);
}

static void usage(void) { usage_to(stderr); }

/* Parse a comma list of fault names into want[]. 0, or -1. */
static int parse_faults(const char *s, int *want) {
  while (*s) {
    size_t len = strcspn(s, ",");
    int f, found = 0;
    for (f = 0; f < F_COUNT; f++)
      if (strlen(fault_name[f]) == len && strncmp(s, fault_name[f], len) == 0)
        want[f] = found = 1;
    if (!found) return -1;
    s += len;
    if (*s == ',') s++;
  }
  return 0;
}

int main(int argc, char **argv) {
  int want_backend[NBACKENDS] = {1, 1}, want_fault[F_COUNT] = {0}, listed = 0,
      long_run = 0, failed = 0, p, f;
  static result_t res[NBACKENDS][F_COUNT];
  unsigned b;
  struct sigaction sa;

  for (p = 1; p < argc; p++) {
    const char *v = p + 1 < argc ? argv[p + 1] : NULL;
    if (strcmp(argv[p], "--backend") == 0 && v) {
      p++;
      want_backend[0] = strcmp(v, "pg") == 0 || strcmp(v, "both") == 0;
      want_backend[1] = strcmp(v, "redis") == 0 || strcmp(v, "both") == 0;
      if (!want_backend[0] && !want_backend[1]) return usage(), 2;
    } else if (strcmp(argv[p], "--faults") == 0 && v) {
      p++;
      if (parse_faults(v, want_fault) != 0) return usage(), 2;
      listed = 1;
    } else if (strcmp(argv[p], "--seconds") == 0 && v) {
      g_seconds = atof(argv[++p]);
      if (g_seconds < 1 || g_seconds > 60) return usage(), 2;
    } else if (strcmp(argv[p], "--bound") == 0 && v) {
      double s = atof(argv[++p]);
      if (s < 1 || s > 60) return usage(), 2;
      g_bound_ms = (unsigned)(s * 1000);
    } else if (strcmp(argv[p], "--long") == 0) {
      long_run = 1;
    } else if (strcmp(argv[p], "--help") == 0 ||
               strcmp(argv[p], "-h") == 0) {
      usage_to(stdout);
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  if (!listed)
    for (f = 0; f < F_COUNT; f++) want_fault[f] = f != F_STOP_20S;
  if (long_run) want_fault[F_STOP_20S] = 1;

  signal(SIGPIPE, SIG_IGN);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);

  snprintf(workdir, sizeof(workdir), "%s/qorb-recovery.XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(workdir) == NULL) {
    perror("recovery: mkdtemp");
    return 1;
  }
  atexit(cleanup);
  if ((want_backend[0] && servers("pg-init") != 0) ||
      (want_backend[1] && servers("redis-start") != 0)) {
    fprintf(stderr, "recovery: could not start the servers\n");
    return interrupted ? 130 : 1;
  }

  printf("# bench=recovery pool=%d clients=%d claim_timeout_ms=%d "
         "steady_s=%.1f bound_ms=%u window_ms=%d step_ms=%d recovered_at=%.0f%% "
         "pg=%s:%d redis=%s:%d\n",
         POOL_SIZE, CLIENTS, CLAIM_TIMEOUT_MS, g_seconds, g_bound_ms, WINDOW_MS,
         STEP_MS, RECOVERED_SHARE * 100, HOST, PG_PORT, HOST, REDIS_PORT);
  fflush(stdout);
  for (b = 0; b < NBACKENDS && !interrupted; b++) {
    if (!want_backend[b]) continue;
    for (f = 0; f < F_COUNT && !interrupted; f++) {
      result_t *r = &res[b][f];
      int rc;
      if (!want_fault[f]) continue;
      rc = run_fault(&backends[b], (fault_t)f, r);
      if (rc == 0 && r->ran) {
        printf("bench=recovery backend=%s fault=%s dead=%llu died_claimed=%llu "
               "claim_failed=%llu "
               "recovery_ms=%ld steady_per_s=%.0f connect_attempts=%llu\n",
               backends[b].name, fault_name[f], (unsigned long long)r->dead,
               (unsigned long long)r->died_claimed,
               (unsigned long long)r->claim_failed, r->recovery_ms,
               r->steady_per_s, (unsigned long long)r->connect_attempts);
      } else if (!interrupted) {
        fprintf(stderr, "recovery: %s %s did not run\n", backends[b].name,
                fault_name[f]);
        failed = 1;
        if (rc == -2) break; /* the server is gone: skip the rest */
      }
      fflush(stdout);
    }
  }

  printf("# summary\n# %-7s %-11s %8s %12s %11s %12s %16s\n", "backend",
         "fault", "dead", "claim_failed", "recovery_ms", "steady_per_s",
         "connect_attempts");
  for (b = 0; b < NBACKENDS; b++)
    for (f = 0; f < F_COUNT; f++) {
      const result_t *r = &res[b][f];
      if (!r->ran) continue;
      printf("# %-7s %-11s %8llu %12llu %11ld %12.0f %16llu\n",
             backends[b].name, fault_name[f], (unsigned long long)r->dead,
             (unsigned long long)r->claim_failed, r->recovery_ms,
             r->steady_per_s, (unsigned long long)r->connect_attempts);
    }
  fflush(stdout);
  cleanup();
  if (interrupted) return 130;
  return failed ? 1 : 0;
}
