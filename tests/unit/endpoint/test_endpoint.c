/* SPDX-License-Identifier: MIT */
/*
 * test_endpoint.c: the stats endpoint (libqorb-endpoint) over pools of the
 * fake connector, on 127.0.0.1 port 0 and on a Unix socket, in both loop
 * modes: its own thread (loop NULL), and the application's loop, which is
 * also the pool's and which a thread of the test runs ("served from the
 * pool loop").
 *
 * What it proves: GET /metrics and /stats.json answer 200 with every
 * pool's name, other paths 404, other methods 405; bad options and
 * addresses fail with a code and a message; and abusive clients (garbage,
 * a request line without a version, a 64 KiB header, a request trickled
 * byte by byte, 200 silent connections, a client that never reads its
 * replies) neither stall the loop nor lock the endpoint up: meanwhile a
 * thread claims and releases without a failure or a gap over a second,
 * with every release recycled on the pool loop, and a good request is
 * answered afterwards. Labels `unit` and `threads` (TSan runs it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "count_alloc.h"
#include "fixture.h"
#include "qorb/endpoint.h"

/* Every client wait is bounded by this. */
#define CLIENT_WAIT_MS 15000

/* ---- a small HTTP client ----------------------------------------------- */

typedef struct target {
  int port;          /* TCP on 127.0.0.1 */
  const char *path;  /* or a Unix socket */
} target_t;

typedef struct reply {
  int status;        /* 0: closed without a status line */
  char *data;        /* head and body, NUL-terminated */
  size_t len;
  const char *body;  /* inside data */
} reply_t;

static void reply_free(reply_t *r) {
  free(r->data);
  memset(r, 0, sizeof(*r));
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A connected socket, or -1. `rcvbuf` > 0 shrinks the receive buffer. */
static int client_connect(const target_t *t, int rcvbuf) {
  struct sockaddr_storage ss;
  socklen_t len;
  int fd;
  memset(&ss, 0, sizeof(ss));
  if (t->path != NULL) {
    struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
    sun->sun_family = AF_UNIX;
    snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", t->path);
    len = (socklen_t)sizeof(*sun);
  } else {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)t->port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = (socklen_t)sizeof(*sin);
  }
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Send what the server takes; errors (it closed on us) are not ours. */
static void send_some(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n <= 0) return;
    buf += n;
    len -= (size_t)n;
  }
}

/* The Content-Length of a complete head, or -1. */
static long content_length(const char *data) {
  const char *p = strcasestr(data, "\r\ncontent-length:");
  return p == NULL ? -1 : strtol(p + 17, NULL, 10);
}

/*
 * Read one reply: until the head and Content-Length bytes are in, or the
 * server closes, or `ms` pass (then status stays 0 and -1 is returned).
 */
static int read_reply(int fd, reply_t *r, unsigned ms) {
  double end = now_ms() + ms;
  size_t cap = 4096;
  memset(r, 0, sizeof(*r));
  r->data = malloc(cap);
  assert_non_null(r->data);
  r->data[0] = '\0';
  for (;;) {
    struct pollfd pfd = {fd, POLLIN, 0};
    const char *eoh = strstr(r->data, "\r\n\r\n");
    ssize_t n;
    double left = end - now_ms();
    if (eoh != NULL) {
      long cl = content_length(r->data);
      r->body = eoh + 4;
      if (cl >= 0 && (size_t)(r->data + r->len - r->body) >= (size_t)cl)
        break;
    }
    if (left <= 0) return -1;
    if (poll(&pfd, 1, (int)left + 1) <= 0) continue;
    if (r->len + 2048 > cap) {
      size_t off = r->body != NULL ? (size_t)(r->body - r->data) : 0;
      cap *= 2;
      r->data = realloc(r->data, cap);
      assert_non_null(r->data);
      if (r->body != NULL) r->body = r->data + off;
    }
    n = recv(fd, r->data + r->len, cap - r->len - 1, 0);
    if (n <= 0) break; /* closed (or reset) */
    r->len += (size_t)n;
    r->data[r->len] = '\0';
  }
  if (strncmp(r->data, "HTTP/1.", 7) == 0 && r->len >= 12)
    r->status = atoi(r->data + 9);
  if (r->body == NULL) r->body = r->data + r->len;
  return 0;
}

/* One raw request on a fresh connection. */
static void raw(const target_t *t, const char *req, size_t len, reply_t *r) {
  int fd = client_connect(t, 0);
  assert_true(fd >= 0);
  send_some(fd, req, len);
  assert_int_equal(read_reply(fd, r, CLIENT_WAIT_MS), 0);
  close(fd);
}

static void request(const target_t *t, const char *method, const char *path,
                    reply_t *r) {
  char req[512];
  int n = snprintf(req, sizeof(req),
                   "%s %s HTTP/1.1\r\nHost: qorb\r\nConnection: close\r\n\r\n",
                   method, path);
  raw(t, req, (size_t)n, r);
}

/* A good request: 200 with `needle` in the body. */
static void expect_good(const target_t *t, const char *path,
                        const char *needle) {
  reply_t r;
  request(t, "GET", path, &r);
  if (r.status != 200 || strstr(r.body, needle) == NULL)
    fail_msg("GET %s: status %d, wanted 200 with \"%s\":\n%.600s", path,
             r.status, needle, r.data);
  reply_free(&r);
}

/* ---- a thread that claims and releases all along ------------------------ */

typedef struct claimer {
  qorb_pool_t *pool;
  pthread_t th;
  _Atomic int stop;
  long claims, failures;
  int first_error;
  double max_claim_ms, max_gap_ms;
} claimer_t;

static void *claimer_main(void *arg) {
  claimer_t *c = arg;
  double last = now_ms(), end = last + 300000;
  uintptr_t token = (uintptr_t)c;
  while (!atomic_load(&c->stop) && now_ms() < end) {
    qorb_claim_t *cl = NULL;
    fake_conn_t *conn;
    double t0 = now_ms(), t1;
    int rc = qorb_pool_claim_wait(c->pool, 2000, &cl);
    t1 = now_ms();
    if (t1 - t0 > c->max_claim_ms) c->max_claim_ms = t1 - t0;
    if (rc != 0) {
      if (c->failures++ == 0) c->first_error = rc;
      continue;
    }
    if (t1 - last > c->max_gap_ms) c->max_gap_ms = t1 - last;
    last = t1;
    c->claims++;
    conn = qorb_claim_conn(cl);
    if (fake_conn_acquire(conn, token) == 0) {
      /* Dirty: the release is recycled on the pool loop, so claims keep
         succeeding only while that loop keeps turning. */
      fake_conn_set_dirty(conn, 1);
      fake_conn_release(conn, token);
    }
    qorb_release(cl);
    sleep_ms(1);
  }
  return NULL;
}

static void claimer_start(claimer_t *c, qorb_pool_t *pool) {
  memset(c, 0, sizeof(*c));
  c->pool = pool;
  assert_int_equal(pthread_create(&c->th, NULL, claimer_main, c), 0);
}

static void claimer_stop_and_check(claimer_t *c) {
  atomic_store(&c->stop, 1);
  assert_int_equal(pthread_join(c->th, NULL), 0);
  print_message("claimer: %ld claims, longest claim %.1f ms, longest gap "
                "%.1f ms\n",
                c->claims, c->max_claim_ms, c->max_gap_ms);
  if (c->failures != 0)
    fail_msg("%ld claims failed, the first with %s", c->failures,
             qorb_err_name(c->first_error));
  assert_true(c->claims > 100);
  assert_true(c->max_claim_ms < 1000.0);
  assert_true(c->max_gap_ms < 1000.0);
}

/* ---- the bed: pool(s), endpoint, and the loop driver -------------------- */

typedef struct bed {
  fx_t fx;
  int app_loop;         /* endpoint and pool on fx.loop, run by `driver` */
  pthread_t driver;
  ev_async quit;
  qorb_endpoint_t *ep;
  target_t t;
} bed_t;

static void quit_cb(struct ev_loop *loop, ev_async *w, int revents) {
  (void)revents;
  ev_async_stop(loop, w);
  ev_break(loop, EVBREAK_ALL);
}

static void *driver_main(void *arg) {
  bed_t *b = arg;
  ev_run(b->fx.loop, 0);
  return NULL;
}

#define BACKENDS16                                                         \
  "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4,127.0.0.1:5,"         \
  "127.0.0.1:6,127.0.0.1:7,127.0.0.1:8,127.0.0.1:9,127.0.0.1:10,"        \
  "127.0.0.1:11,127.0.0.1:12,127.0.0.1:13,127.0.0.1:14,127.0.0.1:15,"    \
  "127.0.0.1:16"

static void bed_opts(qorb_endpoint_options_t *o) {
  qorb_endpoint_options_init(o);
  o->listen = "127.0.0.1:0";
  o->timeout_ms = 1000; /* abusers are cut off quickly */
}

/* A pool over `backends` named "test", an endpoint serving it. */
static void bed_up(bed_t *b, int app_loop, const char *backends,
                   const qorb_endpoint_options_t *o) {
  char err[256];
  int rc;
  memset(b, 0, sizeof(*b));
  b->app_loop = app_loop;
  fx_init(&b->fx, 0, !app_loop);
  fake_resolver_set_initial(b->fx.fr, backends);
  fx_start(&b->fx);
  rc = qorb_endpoint_new(&b->ep, app_loop ? b->fx.loop : NULL, o, err,
                         sizeof(err));
  if (rc != 0) fail_msg("qorb_endpoint_new: %s: %s", qorb_err_name(rc), err);
  assert_int_equal(qorb_endpoint_add_pool(b->ep, b->fx.pool), 0);
  b->t.port = qorb_endpoint_port(b->ep);
  if (app_loop) {
    ev_async_init(&b->quit, quit_cb);
    ev_async_start(b->fx.loop, &b->quit);
    assert_int_equal(pthread_create(&b->driver, NULL, driver_main, b), 0);
  }
  WAIT_UNTIL(fx_idle(&b->fx) >= 1, 5000);
}

static void bed_down(bed_t *b) {
  if (b->app_loop) {
    ev_async_send(b->fx.loop, &b->quit);
    assert_int_equal(pthread_join(b->driver, NULL), 0);
  }
  assert_int_equal(qorb_endpoint_remove_pool(b->ep, b->fx.pool), 0);
  assert_int_equal(qorb_endpoint_free(b->ep), 0);
  b->ep = NULL;
  fx_finish(&b->fx); /* asserts the loop holds no watcher */
}

/* ---- serving ------------------------------------------------------------ */

static void check_serving(bed_t *b) {
  reply_t r;

  request(&b->t, "GET", "/metrics", &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strcasestr(r.data, "\r\nContent-Type: text/plain; "
                                     "version=0.0.4"));
  assert_non_null(strstr(r.body, "\"test\""));
  reply_free(&r);

  request(&b->t, "GET", "/stats.json", &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strcasestr(r.data, "\r\nContent-Type: application/json"));
  assert_non_null(strstr(r.body, "{\"pools\":["));
  assert_non_null(strstr(r.body, "\"test\""));
  assert_non_null(strstr(r.body, "127.0.0.1:1"));
  reply_free(&r);

  /* The query string is not part of the path. */
  expect_good(&b->t, "/metrics?name=x", "\"test\"");
  expect_good(&b->t, "/", "/stats.json");

  request(&b->t, "HEAD", "/metrics", &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(strlen(r.body), 0);
  reply_free(&r);

  request(&b->t, "GET", "/nothing", &r);
  assert_int_equal(r.status, 404);
  reply_free(&r);
  request(&b->t, "GET", "/metrics/", &r);
  assert_int_equal(r.status, 404);
  reply_free(&r);

  request(&b->t, "POST", "/metrics", &r);
  assert_int_equal(r.status, 405);
  assert_non_null(strcasestr(r.data, "\r\nAllow: GET, HEAD"));
  reply_free(&r);
  request(&b->t, "DELETE", "/stats.json", &r);
  assert_int_equal(r.status, 405);
  reply_free(&r);
}

static void serve(int app_loop) {
  qorb_endpoint_options_t o;
  bed_t b;
  fx_t other;
  reply_t r;

  bed_opts(&o);
  bed_up(&b, app_loop, "127.0.0.1:1,127.0.0.2:1", &o);
  assert_true(b.t.port > 0 && b.t.port <= 65535);
  check_serving(&b);

  /* A second pool, with a thread of its own, on the same endpoint. */
  fx_init(&other, 0, 1);
  other.policy.name = "second";
  fake_resolver_set_initial(other.fr, "127.0.0.3:7");
  fx_start(&other);
  assert_int_equal(qorb_endpoint_add_pool(b.ep, other.pool), 0);
  assert_int_equal(qorb_endpoint_add_pool(b.ep, other.pool), QORB_EBUSY);
  request(&b.t, "GET", "/stats.json", &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "\"test\""));
  assert_non_null(strstr(r.body, "\"second\""));
  /* In the order they were added. */
  assert_true(strstr(r.body, "\"test\"") < strstr(r.body, "\"second\""));
  reply_free(&r);
  expect_good(&b.t, "/metrics", "\"second\"");

  /* Removed: no longer listed, and the pool may close. */
  assert_int_equal(qorb_endpoint_remove_pool(b.ep, other.pool), 0);
  assert_int_equal(qorb_endpoint_remove_pool(b.ep, other.pool), QORB_EINVAL);
  request(&b.t, "GET", "/stats.json", &r);
  assert_int_equal(r.status, 200);
  assert_null(strstr(r.body, "\"second\""));
  reply_free(&r);
  fx_finish(&other);

  bed_down(&b);
}

/* The loop mode as the test's state: the endpoint's own thread (0) or the
   application's loop (1). */
static int on_own_thread = 0, on_app_loop = 1;
#define IN_MODE(fn, mode) \
  { #fn "_" #mode, fn, NULL, NULL, &(mode) }

static void test_serve(void **state) { serve(*(int *)*state); }

/* ---- abuse -------------------------------------------------------------- */

/* A reply that is an HTTP error, or a close without one; never a hang. */
static void expect_refused(const char *what, const reply_t *r) {
  if (r->status != 0 && r->status < 400)
    fail_msg("%s: status %d, wanted an error or a close:\n%.300s", what,
             r->status, r->data);
  print_message("%s: %s %d\n", what, r->status ? "status" : "closed",
                r->status);
}

static void abuse_garbage(bed_t *b) {
  char junk[4096];
  reply_t r;
  unsigned i, x = 12345;
  for (i = 0; i < sizeof(junk); i++) {
    x = x * 1103515245u + 12345u;
    junk[i] = (char)(x >> 16);
  }
  memcpy(junk + sizeof(junk) - 4, "\r\n\r\n", 4);
  raw(&b->t, junk, sizeof(junk), &r);
  expect_refused("garbage", &r);
  reply_free(&r);
  raw(&b->t, "\0\0\0\0\r\n\r\n", 8, &r);
  expect_refused("NUL bytes", &r);
  reply_free(&r);
}

static void abuse_no_version(bed_t *b) {
  static const char req[] = "GET /metrics\r\n\r\n";
  reply_t r;
  raw(&b->t, req, sizeof(req) - 1, &r);
  expect_refused("request line without a version", &r);
  reply_free(&r);
}

static void abuse_huge_header(bed_t *b) {
  static const char head[] = "GET /metrics HTTP/1.1\r\nHost: qorb\r\nX-Big: ";
  size_t big = 64 * 1024, n = sizeof(head) - 1;
  char *req = malloc(n + big + 4);
  reply_t r;
  assert_non_null(req);
  memcpy(req, head, n);
  memset(req + n, 'a', big);
  memcpy(req + n + big, "\r\n\r\n", 4);
  raw(&b->t, req, n + big + 4, &r);
  expect_refused("64 KiB header", &r);
  free(req);
  reply_free(&r);
}

/* A good request, one byte per write, with pauses. */
static void abuse_trickle(bed_t *b) {
  static const char req[] =
      "GET /stats.json HTTP/1.1\r\nHost: qorb\r\nConnection: close\r\n\r\n";
  size_t i;
  reply_t r;
  int fd = client_connect(&b->t, 0), one = 1;
  assert_true(fd >= 0);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  for (i = 0; i < sizeof(req) - 1; i++) {
    send_some(fd, req + i, 1);
    sleep_ms(5);
  }
  assert_int_equal(read_reply(fd, &r, CLIENT_WAIT_MS), 0);
  close(fd);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "\"test\""));
  reply_free(&r);
}

/* 1 when the server has closed `fd` (EOF or reset), without waiting. */
static int closed_by_server(int fd) {
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/*
 * 200 connections that send nothing, four times the connection cap: the
 * cap holds, the silent ones are timed out, and a good request that queued
 * behind all of them is still answered.
 */
static void abuse_idle_flood(bed_t *b) {
  enum { N = 200 };
  int fds[N], i, closed = 0;
  double t0;
  for (i = 0; i < N; i++) {
    fds[i] = client_connect(&b->t, 0);
    assert_true(fds[i] >= 0);
  }
  t0 = now_ms();
  expect_good(&b->t, "/stats.json", "\"test\"");
  for (i = 0; i < N; i++) closed += closed_by_server(fds[i]);
  print_message("idle flood: good request after %.0f ms; %d of %d silent "
                "connections closed by the server\n",
                now_ms() - t0, closed, N);
  /* Accepted in order, so all were seen before the good one; at most the
     connection cap of them can still be open. */
  assert_true(closed >= N - 64);
  for (i = 0; i < N; i++) close(fds[i]);
}

/*
 * A client that asks for many large replies at once and never reads: the
 * server's buffers fill, the connection stalls, and everything else goes
 * on (a good request is answered meanwhile) until the timeout drops it.
 */
static void abuse_never_reads(bed_t *b) {
  static const char one[] = "GET /stats.json HTTP/1.1\r\nHost: qorb\r\n\r\n";
  size_t n = 400, i, len = (sizeof(one) - 1) * n;
  char *req = malloc(len);
  int fd = client_connect(&b->t, 4096), fl;
  double t0;
  assert_non_null(req);
  assert_true(fd >= 0);
  for (i = 0; i < n; i++) memcpy(req + i * (sizeof(one) - 1), one, sizeof(one) - 1);
  fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK); /* as much as the server takes */
  send_some(fd, req, len);
  free(req);
  sleep_ms(200);
  t0 = now_ms();
  expect_good(&b->t, "/metrics", "\"test\"");
  assert_true(now_ms() - t0 < 3000.0);
  /* Past the timeout the stalled connection is dropped: draining it ends
     (it does not go on for ever with 400 replies). */
  sleep_ms(2500);
  {
    char buf[65536];
    double end = now_ms() + CLIENT_WAIT_MS;
    size_t got = 0;
    fcntl(fd, F_SETFL, fl);
    for (;;) {
      struct pollfd pfd = {fd, POLLIN, 0};
      ssize_t k;
      assert_true(now_ms() < end);
      if (poll(&pfd, 1, 100) <= 0) continue;
      k = recv(fd, buf, sizeof(buf), 0);
      if (k <= 0) break;
      got += (size_t)k;
    }
    print_message("never-reading client: %zu bytes were in flight when the "
                  "server dropped it\n",
                  got);
  }
  close(fd);
}

static void abuse(int app_loop) {
  qorb_endpoint_options_t o;
  claimer_t c;
  bed_t b;

  bed_opts(&o);
  bed_up(&b, app_loop, BACKENDS16, &o);
  claimer_start(&c, b.fx.pool);
  abuse_garbage(&b);
  abuse_no_version(&b);
  abuse_huge_header(&b);
  abuse_trickle(&b);
  abuse_idle_flood(&b);
  abuse_never_reads(&b);
  expect_good(&b.t, "/stats.json", "127.0.0.1:16");
  claimer_stop_and_check(&c);
  expect_good(&b.t, "/metrics", "\"test\"");
  bed_down(&b);
}

static void test_abuse(void **state) { abuse(*(int *)*state); }

/* ---- large answers ------------------------------------------------------ */

/*
 * 250 backends make answers of about 64 KB: the default endpoint grows its
 * buffer from 16 KiB and answers 200; one limited to 16 KiB answers 500
 * saying why, and stays usable.
 */
static void test_large_answers(void **state) {
  enum { NB = 250 };
  qorb_endpoint_options_t o;
  qorb_endpoint_t *big = NULL, *small = NULL;
  char err[256], *list = malloc(NB * 16);
  size_t off = 0;
  target_t tb = {0, NULL}, ts = {0, NULL};
  reply_t r;
  fx_t fx;
  int i, rc;
  (void)state;

  assert_non_null(list);
  for (i = 1; i <= NB; i++)
    off += (size_t)snprintf(list + off, NB * 16 - off, "%s127.0.0.1:%d",
                            i > 1 ? "," : "", i);
  fx_init(&fx, 0, 1);
  rc = qorb_static_resolver_new(&fx.resolver, list, err, sizeof(err));
  free(list);
  if (rc != 0) fail_msg("static resolver: %s", err);
  fx_start(&fx);
  WAIT_UNTIL(fx_idle(&fx) >= 1, 5000);

  bed_opts(&o);
  rc = qorb_endpoint_new(&big, NULL, &o, err, sizeof(err));
  assert_int_equal(rc, 0);
  o.max_response_bytes = 16384;
  rc = qorb_endpoint_new(&small, NULL, &o, err, sizeof(err));
  assert_int_equal(rc, 0);
  assert_int_equal(qorb_endpoint_add_pool(big, fx.pool), 0);
  assert_int_equal(qorb_endpoint_add_pool(small, fx.pool), 0);
  tb.port = qorb_endpoint_port(big);
  ts.port = qorb_endpoint_port(small);

  request(&tb, "GET", "/stats.json", &r);
  assert_int_equal(r.status, 200);
  print_message("250 backends: %zu bytes of JSON\n", strlen(r.body));
  assert_true(strlen(r.body) > 32768);
  assert_non_null(strstr(r.body, "\"127.0.0.1:250\""));
  reply_free(&r);
  expect_good(&tb, "/metrics", "backend=\"127.0.0.1:250\"");

  request(&ts, "GET", "/stats.json", &r);
  assert_int_equal(r.status, 500);
  assert_non_null(strstr(r.body, "max_response_bytes"));
  reply_free(&r);
  expect_good(&ts, "/", "/metrics");

  assert_int_equal(qorb_endpoint_free(small), 0);
  assert_int_equal(qorb_endpoint_free(big), 0);
  fx_finish(&fx);
}

/* ---- a Unix socket ------------------------------------------------------ */

static void test_unix_socket(void **state) {
  qorb_endpoint_options_t o;
  qorb_endpoint_t *second = NULL, *third = NULL;
  char err[256], listen[160], dir[] = "/tmp/qorb-ep-XXXXXX", path[64];
  struct sockaddr_un sun;
  struct stat st;
  bed_t b;
  int fd, rc;
  (void)state;

  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/stats.sock", dir);
  snprintf(listen, sizeof(listen), "unix:%s", path);
  bed_opts(&o);
  o.listen = listen;
  bed_up(&b, 0, "127.0.0.1:1", &o);
  b.t.path = path;
  assert_int_equal(qorb_endpoint_port(b.ep), 0);
  assert_int_equal(stat(path, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  check_serving(&b);

  /* A live socket is not taken over. */
  rc = qorb_endpoint_new(&second, NULL, &o, err, sizeof(err));
  assert_int_equal(rc, -EADDRINUSE);
  assert_null(second);
  assert_non_null(strstr(err, "bind"));

  bed_down(&b);
  assert_int_equal(stat(path, &st), -1); /* removed */

  /* A stale one (its server gone) is replaced. */
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
  assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
  close(fd);
  assert_int_equal(stat(path, &st), 0);
  rc = qorb_endpoint_new(&third, NULL, &o, err, sizeof(err));
  if (rc != 0) fail_msg("stale socket: %s: %s", qorb_err_name(rc), err);
  {
    target_t t = {0, path};
    expect_good(&t, "/", "/metrics");
  }
  assert_int_equal(qorb_endpoint_free(third), 0);
  assert_int_equal(stat(path, &st), -1);
  assert_int_equal(rmdir(dir), 0);
}

/* ---- bad input ---------------------------------------------------------- */

static void expect_new_fails(const qorb_endpoint_options_t *o, int want,
                             const char *needle) {
  qorb_endpoint_t *e = (qorb_endpoint_t *)&e; /* not NULL: must be reset */
  char err[256];
  int rc = qorb_endpoint_new(&e, NULL, o, err, sizeof(err));
  if (rc != want)
    fail_msg("listen \"%s\": %s (%s), wanted %s", o->listen ? o->listen : "",
             qorb_err_name(rc), err, qorb_err_name(want));
  assert_null(e);
  assert_true(err[0] != '\0');
  if (needle != NULL && strstr(err, needle) == NULL)
    fail_msg("message \"%s\" lacks \"%s\"", err, needle);
}

static void test_bad_input(void **state) {
  static const char *const bad[] = {
      "",              "127.0.0.1",       "127.0.0.1:",
      ":80",           "127.0.0.1:65536", "127.0.0.1:-1",
      "127.0.0.1:8a",  "127.0.0.1:80 ",   " 127.0.0.1:80",
      "::1:80",        "[::1",            "[::1]",
      "[::1]80",       "[127.0.0.1]:80",  "localhost:80",
      "256.1.1.1:80",  "unix:",           "127.0.0.1:000001",
  };
  char longpath[200];
  qorb_endpoint_options_t o, running;
  qorb_endpoint_t *e = NULL;
  char err[256];
  size_t i;
  int rc, port;
  (void)state;

  assert_int_equal(qorb_endpoint_new(NULL, NULL, NULL, err, sizeof(err)),
                   QORB_EINVAL);
  assert_true(err[0] != '\0');
  assert_int_equal(qorb_endpoint_port(NULL), QORB_EINVAL);
  assert_int_equal(qorb_endpoint_add_pool(NULL, NULL), QORB_EINVAL);
  assert_int_equal(qorb_endpoint_remove_pool(NULL, NULL), QORB_EINVAL);
  assert_int_equal(qorb_endpoint_free(NULL), QORB_EINVAL);

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    bed_opts(&o);
    o.listen = bad[i];
    expect_new_fails(&o, QORB_EBADADDR, "listen");
  }
  bed_opts(&o);
  o.listen = NULL;
  expect_new_fails(&o, QORB_EBADADDR, "empty");
  memset(longpath, 'x', sizeof(longpath) - 1);
  memcpy(longpath, "unix:/", 6);
  longpath[sizeof(longpath) - 1] = '\0';
  o.listen = longpath;
  expect_new_fails(&o, QORB_EBADADDR, "longer");

  /* Each knob below and above its range, named in the message. */
#define BAD_FIELD(field, value)                                            \
  do {                                                                     \
    bed_opts(&o);                                                          \
    o.field = (value);                                                     \
    expect_new_fails(&o, QORB_EINVAL, #field);                             \
  } while (0)
  BAD_FIELD(size, 0);
  BAD_FIELD(max_connections, 0);
  BAD_FIELD(max_connections, 65537);
  BAD_FIELD(timeout_ms, 0);
  BAD_FIELD(timeout_ms, 99);
  BAD_FIELD(max_request_bytes, 100);
  BAD_FIELD(max_request_bytes, 2u << 20);
  BAD_FIELD(max_response_bytes, 4095);
  BAD_FIELD(max_response_bytes, (size_t)2 << 30);
#undef BAD_FIELD

  /* A port in use: the system's error, and a message saying where. */
  bed_opts(&running);
  rc = qorb_endpoint_new(&e, NULL, &running, err, sizeof(err));
  assert_int_equal(rc, 0);
  port = qorb_endpoint_port(e);
  assert_true(port > 0);
  {
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    bed_opts(&o);
    o.listen = addr;
    expect_new_fails(&o, -EADDRINUSE, "bind");
  }
  /* No pool: an empty list, still 200. */
  {
    target_t t = {port, NULL};
    expect_good(&t, "/stats.json", "\"pools\"");
  }
  assert_int_equal(qorb_endpoint_remove_pool(e, (qorb_pool_t *)&o),
                   QORB_EINVAL);
  assert_int_equal(qorb_endpoint_free(e), 0);

  /* Defaults: NULL options listen on loopback, some free port. */
  rc = qorb_endpoint_new(&e, NULL, NULL, err, sizeof(err));
  assert_int_equal(rc, 0);
  assert_true(qorb_endpoint_port(e) > 0);
  assert_int_equal(qorb_endpoint_free(e), 0);
}

/*
 * A caller built against a newer, longer struct is accepted (what lies
 * beyond ours is ignored); a size shorter than the first release is not an
 * initialised struct.
 */
static void test_options_size(void **state) {
  struct {
    qorb_endpoint_options_t o;
    unsigned char newer[32];
  } w;
  qorb_endpoint_t *e = NULL;
  char err[256];
  size_t i;
  int rc;
  (void)state;
  memset(&w, 0xa5, sizeof(w));
  qorb_endpoint_options_init_(&w.o, sizeof(w));
  assert_int_equal(w.o.size, sizeof(w));
  for (i = 0; i < sizeof(w.newer); i++) assert_int_equal(w.newer[i], 0);
  assert_int_equal(w.o.max_connections, 64);
  assert_string_equal(w.o.listen, "127.0.0.1:0");
  memset(w.newer, 0x5a, sizeof(w.newer));
  rc = qorb_endpoint_new(&e, NULL, &w.o, err, sizeof(err));
  if (rc != 0) fail_msg("longer options: %s: %s", qorb_err_name(rc), err);
  assert_int_equal(qorb_endpoint_free(e), 0);

  w.o.size = offsetof(qorb_endpoint_options_t, max_response_bytes);
  expect_new_fails(&w.o, QORB_EINVAL, "size");
  w.o.size = 1u << 20;
  expect_new_fails(&w.o, QORB_EINVAL, "size");
}

/* ---- out of memory ------------------------------------------------------ */

/*
 * Fail each allocation of qorb_endpoint_new() + add_pool() in turn (libev
 * and libmicrohttpd allocate with their own allocators; qorb's are the
 * ones swept). Each fails with QORB_ENOMEM and leaves nothing behind.
 */
static void test_oom_sweep(void **state) {
  qorb_endpoint_options_t o;
  unsigned long n;
  qorb_pool_t *fake[5];
  long live0 = count_alloc_live();
  (void)state;
  bed_opts(&o);
  for (n = 1; n < 100; n++) {
    qorb_endpoint_t *e = NULL;
    char err[256];
    int rc, i;
    count_alloc_reset();
    count_alloc_fail_at(n, 0);
    rc = qorb_endpoint_new(&e, NULL, &o, err, sizeof(err));
    for (i = 0; rc == 0 && i < 5; i++) {
      /* Pool pointers are only stored, never touched without a request. */
      fake[i] = (qorb_pool_t *)&fake[i];
      rc = qorb_endpoint_add_pool(e, fake[i]);
    }
    if (e != NULL) assert_int_equal(qorb_endpoint_free(e), 0);
    assert_int_equal(count_alloc_live(), live0);
    if (!count_alloc_failed()) {
      assert_int_equal(rc, 0);
      print_message("oom sweep: done after %lu allocations\n", n - 1);
      break;
    }
    assert_int_equal(rc, QORB_ENOMEM);
  }
  assert_true(n > 1);
  assert_int_equal(count_alloc_bad_frees(), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_options_size),
      IN_MODE(test_serve, on_own_thread),
      IN_MODE(test_serve, on_app_loop),
      cmocka_unit_test(test_large_answers),
      cmocka_unit_test(test_unix_socket),
      IN_MODE(test_abuse, on_own_thread),
      IN_MODE(test_abuse, on_app_loop),
      cmocka_unit_test_setup_teardown(test_oom_sweep, count_alloc_setup,
                                      count_alloc_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
