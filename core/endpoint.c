/* SPDX-License-Identifier: MIT */
/*
 * endpoint.c: the stats endpoint of <qorb/endpoint.h>, libqorb-endpoint.
 *
 * libmicrohttpd does the HTTP: parsing, per-connection memory bounds, the
 * connection cap and idle timeouts. It runs in "external epoll" mode: it
 * keeps its sockets in an epoll set of its own, and this file watches that
 * one descriptor with an ev_io and MHD's next deadline with an ev_timer,
 * and calls MHD_run() (which never blocks) when either fires. So the
 * endpoint costs the loop it lives on nothing while idle and a bounded
 * amount of work per event, whichever loop that is: the application's or
 * one on a thread of the endpoint's own, driven by the same code.
 *
 * The listening socket is made here, not by libmicrohttpd, so that a bad
 * address or a port in use comes back as a precise error code and message,
 * and so that Unix sockets work the same way as TCP.
 *
 * Only public qorb API is used (this is a component, like the connectors):
 * allocation through qorb_malloc(), snapshots through the formatters of
 * <qorb/stats.h>, which take qorb_pool_stats() of each pool.
 */
#define _GNU_SOURCE /* SOCK_CLOEXEC, SOCK_NONBLOCK */
#include "qorb/endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>
#include <microhttpd.h>

#include "qorb/stats.h"

#define UNIX_PREFIX "unix:"
/* The options as first released: every caller's struct is at least this;
   anything larger than the maximum is not from qorb_endpoint_options_init(). */
#define OPTIONS_V1_SIZE                               \
  (offsetof(qorb_endpoint_options_t, max_response_bytes) + \
   sizeof(((qorb_endpoint_options_t *)0)->max_response_bytes))
#define OPTIONS_MAX_SIZE 65536
#define MIN_TIMEOUT_MS 100u
#define MAX_TIMEOUT_MS 86400000u
#define MAX_CONNECTIONS 65536u
#define MIN_REQUEST_BYTES 4096u
#define MAX_REQUEST_BYTES 1048576u
#define MIN_RESPONSE_BYTES 4096u
#define MAX_RESPONSE_BYTES 1073741824u
/* First buffer for a formatted answer; it grows to what the last one
   needed. */
#define FIRST_ANSWER_BYTES 16384u
/* A formatter that still finds the buffer short after this many larger
   ones faces pools that keep growing: answer 500 rather than chase them. */
#define FORMAT_TRIES 4

struct qorb_endpoint {
  struct MHD_Daemon *mhd;
  struct ev_loop *loop;
  int own_loop;            /* the loop and its thread are ours */
  pthread_t thread;
  int thread_started;
  ev_io io;                /* MHD's epoll descriptor */
  ev_timer timer;          /* MHD's next deadline */
  ev_async stop;           /* own loop: ends the thread */
  int port;                /* TCP port, 0 for a Unix socket */
  char *unix_path;         /* the socket file to remove, or NULL */
  dev_t unix_dev;          /* ... when it is still the one we made */
  ino_t unix_ino;
  size_t max_response;
  /* What the last answer of each kind needed (loop thread only). */
  size_t hint_metrics, hint_json;
  /* The pools, under `lock`; held while a request formats them, so that
     qorb_endpoint_remove_pool() returning means the pool is not touched. */
  pthread_mutex_t lock;
  qorb_pool_t **pools;
  size_t npools, cap;
};

/* ---------------------------------------------------------------------- */
/* Options                                                                 */

static void options_defaults(qorb_endpoint_options_t *o) {
  memset(o, 0, sizeof(*o));
  o->size = sizeof(*o);
  o->listen = "127.0.0.1:0";
  o->max_connections = 64;
  o->timeout_ms = 5000;
  o->max_request_bytes = 16384;
  o->max_response_bytes = 16777216;
}

void qorb_endpoint_options_init_(qorb_endpoint_options_t *o, size_t size) {
  qorb_endpoint_options_t d;
  if (o == NULL || size < sizeof(o->size)) return;
  options_defaults(&d);
  d.size = size;
  /* The caller's struct is `size` bytes: ours may be longer or shorter. */
  if (size > sizeof(d)) memset((char *)o + sizeof(d), 0, size - sizeof(d));
  memcpy(o, &d, size < sizeof(d) ? size : sizeof(d));
}

static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Put a message in the caller's buffer and return `rc`. */
static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...) {
  va_list ap;
  if (err != NULL && errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/*
 * The caller's options over the defaults: fields beyond a short caller's
 * `size` keep their default, fields beyond ours are ignored.
 */
static int options_import(qorb_endpoint_options_t *o,
                          const qorb_endpoint_options_t *in, char *err,
                          size_t errlen) {
  options_defaults(o);
  if (in == NULL) return 0;
  if (in->size < OPTIONS_V1_SIZE || in->size > OPTIONS_MAX_SIZE)
    return set_err(err, errlen, QORB_EINVAL,
                   "options: size %zu not set by qorb_endpoint_options_init()",
                   in->size);
  memcpy(o, in, in->size < sizeof(*o) ? in->size : sizeof(*o));
  o->size = sizeof(*o);
  if (o->max_connections < 1 || o->max_connections > MAX_CONNECTIONS)
    return set_err(err, errlen, QORB_EINVAL,
                "max_connections %u: must be 1 to %u", o->max_connections,
                MAX_CONNECTIONS);
  if (o->timeout_ms < MIN_TIMEOUT_MS || o->timeout_ms > MAX_TIMEOUT_MS)
    return set_err(err, errlen, QORB_EINVAL, "timeout_ms %u: must be %u to %u",
                o->timeout_ms, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS);
  if (o->max_request_bytes < MIN_REQUEST_BYTES ||
      o->max_request_bytes > MAX_REQUEST_BYTES)
    return set_err(err, errlen, QORB_EINVAL,
                "max_request_bytes %zu: must be %u to %u",
                o->max_request_bytes, MIN_REQUEST_BYTES, MAX_REQUEST_BYTES);
  if (o->max_response_bytes < MIN_RESPONSE_BYTES ||
      o->max_response_bytes > MAX_RESPONSE_BYTES)
    return set_err(err, errlen, QORB_EINVAL,
                "max_response_bytes %zu: must be %u to %u",
                o->max_response_bytes, MIN_RESPONSE_BYTES, MAX_RESPONSE_BYTES);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* The listen address                                                      */

typedef struct listen_addr {
  struct sockaddr_storage ss;
  socklen_t len;
  const char *path;  /* Unix socket path inside the caller's text */
} listen_addr_t;

/* Decimal port 0 to 65535: digits only, at most 5 of them. */
static int parse_port(const char *s, uint16_t *port) {
  unsigned long v = 0;
  size_t i, n = strlen(s);
  if (n == 0 || n > 5) return -1;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (unsigned long)(s[i] - '0');
  }
  if (v > 65535) return -1;
  *port = (uint16_t)v;
  return 0;
}

/*
 * "a.b.c.d:PORT", "[v6]:PORT" or "unix:/path". Only numeric hosts: the
 * endpoint may be made on a loop thread, where a name lookup would block.
 */
static int parse_listen(const char *text, listen_addr_t *la, char *err,
                        size_t errlen) {
  char host[64];
  const char *colon, *hs, *he;
  uint16_t port;
  int bracketed;

  memset(la, 0, sizeof(*la));
  if (text == NULL || text[0] == '\0')
    return set_err(err, errlen, QORB_EBADADDR, "listen: empty address");
  if (strncmp(text, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0) {
    struct sockaddr_un *sun = (struct sockaddr_un *)&la->ss;
    const char *path = text + strlen(UNIX_PREFIX);
    if (path[0] == '\0')
      return set_err(err, errlen, QORB_EBADADDR,
                  "listen \"%s\": no path after \"unix:\"", text);
    if (strlen(path) >= sizeof(sun->sun_path))
      return set_err(err, errlen, QORB_EBADADDR,
                  "listen \"%.40s...\": Unix socket path longer than %zu "
                  "bytes",
                  text, sizeof(sun->sun_path) - 1);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, strlen(path) + 1);
    la->len = (socklen_t)sizeof(*sun);
    la->path = path;
    return 0;
  }

  bracketed = text[0] == '[';
  if (bracketed) {
    hs = text + 1;
    he = strchr(hs, ']');
    if (he == NULL || he[1] != ':')
      return set_err(err, errlen, QORB_EBADADDR,
                  "listen \"%s\": expected \"[v6-address]:port\"", text);
    colon = he + 1;
  } else {
    hs = text;
    colon = strrchr(text, ':');
    if (colon == NULL)
      return set_err(err, errlen, QORB_EBADADDR,
                  "listen \"%s\": no port (\"host:port\", port 0 for any)",
                  text);
    he = colon;
    if (memchr(hs, ':', (size_t)(he - hs)) != NULL)
      return set_err(err, errlen, QORB_EBADADDR,
                  "listen \"%s\": an IPv6 address needs brackets, as in "
                  "\"[::1]:9100\"",
                  text);
  }
  if (parse_port(colon + 1, &port) < 0)
    return set_err(err, errlen, QORB_EBADADDR,
                "listen \"%s\": port must be a number from 0 to 65535", text);
  if ((size_t)(he - hs) >= sizeof(host) || he == hs)
    return set_err(err, errlen, QORB_EBADADDR, "listen \"%s\": bad host", text);
  memcpy(host, hs, (size_t)(he - hs));
  host[he - hs] = '\0';

  if (!bracketed) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&la->ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
      return set_err(err, errlen, QORB_EBADADDR,
                  "listen \"%s\": \"%s\" is not a numeric IPv4 address "
                  "(names are not looked up)",
                  text, host);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    la->len = (socklen_t)sizeof(*sin);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&la->ss;
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
      return set_err(err, errlen, QORB_EBADADDR,
                  "listen \"%s\": \"%s\" is not a numeric IPv6 address",
                  text, host);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    la->len = (socklen_t)sizeof(*sin6);
  }
  return 0;
}

/*
 * A Unix socket file that nothing accepts on any more (its server died) is
 * replaced; one that is alive is not ours to take.
 */
static int unix_path_is_stale(const char *path) {
  struct sockaddr_un sun;
  struct stat st;
  int fd, rc, stale;
  if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path, strlen(path) + 1);
  rc = connect(fd, (struct sockaddr *)&sun, (socklen_t)sizeof(sun));
  stale = rc != 0 && errno == ECONNREFUSED;
  close(fd);
  return stale;
}

/* socket(), bind() and listen(); the port or socket file is recorded. */
static int open_listener(qorb_endpoint_t *e, const char *text,
                         const listen_addr_t *la, int *out, char *err,
                         size_t errlen) {
  int family = la->ss.ss_family, one = 1, fd, rc;
  struct sockaddr_storage got;
  socklen_t glen = (socklen_t)sizeof(got);

  fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return set_err(err, errlen, -errno, "listen \"%s\": socket: %s", text,
                strerror(errno));
  if (family != AF_UNIX &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
    goto sys_fail;
  /* "[::]:P" means IPv6 only; IPv4 has addresses of its own. */
  if (family == AF_INET6 &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
    goto sys_fail;
  rc = bind(fd, (const struct sockaddr *)&la->ss, la->len);
  if (rc != 0 && family == AF_UNIX && errno == EADDRINUSE &&
      unix_path_is_stale(la->path) && unlink(la->path) == 0)
    rc = bind(fd, (const struct sockaddr *)&la->ss, la->len);
  if (rc != 0) {
    rc = -errno;
    close(fd);
    return set_err(err, errlen, rc, "listen \"%s\": bind: %s", text,
                strerror(-rc));
  }
  if (family == AF_UNIX) {
    struct stat st;
    e->unix_path = qorb_strdup(la->path);
    if (e->unix_path == NULL || stat(la->path, &st) != 0) {
      rc = e->unix_path == NULL ? QORB_ENOMEM : -errno;
      unlink(la->path);
      qorb_free(e->unix_path);
      e->unix_path = NULL;
      close(fd);
      return set_err(err, errlen, rc, "listen \"%s\": %s", text,
                  qorb_strerror(rc));
    }
    e->unix_dev = st.st_dev;
    e->unix_ino = st.st_ino;
  }
  if (listen(fd, SOMAXCONN) != 0) goto sys_fail;
  if (family != AF_UNIX) {
    if (getsockname(fd, (struct sockaddr *)&got, &glen) != 0) goto sys_fail;
    e->port = family == AF_INET
                  ? ntohs(((struct sockaddr_in *)&got)->sin_port)
                  : ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
  }
  *out = fd;
  return 0;

sys_fail:
  rc = -errno;
  close(fd);
  return set_err(err, errlen, rc, "listen \"%s\": %s", text, strerror(-rc));
}

/* Remove the socket file, unless someone else's has replaced it. */
static void unix_path_remove(qorb_endpoint_t *e) {
  struct stat st;
  if (e->unix_path == NULL) return;
  if (lstat(e->unix_path, &st) == 0 && st.st_dev == e->unix_dev &&
      st.st_ino == e->unix_ino)
    unlink(e->unix_path);
  qorb_free(e->unix_path);
  e->unix_path = NULL;
}

/* ---------------------------------------------------------------------- */
/* Answers                                                                 */

typedef int (*format_fn)(qorb_pool_t *const *pools, size_t n, char *buf,
                         size_t len, size_t *needed);

static const char index_text[] =
    "qorb stats endpoint\n"
    "  /metrics     Prometheus text format\n"
    "  /stats.json  the same figures as JSON (tools/qorbtop reads it)\n";

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status,
                              struct MHD_Response *r, const char *type) {
  enum MHD_Result ret;
  if (r == NULL) return MHD_NO; /* out of memory: drop the connection */
  if (type != NULL)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result answer_text(struct MHD_Connection *c, unsigned status,
                                   const char *text) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(text), (void *)(uintptr_t)text, MHD_RESPMEM_MUST_COPY);
  return answer(c, status, r, "text/plain; charset=utf-8");
}

/*
 * Format every pool into a buffer that grows when the formatter says it is
 * short (pools may gain backends between two tries), up to
 * max_response_bytes. When the text would be larger, QORB_ENOMEM with
 * *outlen set to the size it needs.
 */
static int render(qorb_endpoint_t *e, format_fn fn, size_t *hint,
                  char **out, size_t *outlen) {
  size_t cap = *hint, needed;
  char *buf = NULL, *nb;
  int rc = QORB_ENOMEM, tries;

  for (tries = 0; tries < FORMAT_TRIES; tries++) {
    nb = qorb_realloc(buf, cap);
    if (nb == NULL) {
      rc = QORB_ENOMEM;
      break;
    }
    buf = nb;
    needed = 0;
    pthread_mutex_lock(&e->lock);
    rc = fn(e->pools, e->npools, buf, cap, &needed);
    pthread_mutex_unlock(&e->lock);
    if (rc == 0) {
      *out = buf;
      *outlen = strnlen(buf, cap);
      *hint = cap;
      return 0;
    }
    if (needed <= cap) break; /* a failure of its own, not a short buffer */
    if (needed > e->max_response) {
      *outlen = needed;
      break;
    }
    /* Room for what arrives before the next try. */
    cap = needed + needed / 4;
    if (cap > e->max_response) cap = e->max_response;
  }
  qorb_free(buf);
  return rc;
}

static enum MHD_Result answer_stats(qorb_endpoint_t *e,
                                    struct MHD_Connection *c, format_fn fn,
                                    size_t *hint, const char *type) {
  struct MHD_Response *r;
  char *buf = NULL, msg[128];
  size_t len = 0;
  int rc = render(e, fn, hint, &buf, &len);
  if (rc != 0 && len > 0)
    snprintf(msg, sizeof(msg),
             "qorb: the statistics need %zu bytes, over max_response_bytes "
             "(%zu)\n",
             len, e->max_response);
  else if (rc != 0)
    snprintf(msg, sizeof(msg), "qorb: cannot format the statistics: %s (%s)\n",
             qorb_err_name(rc), qorb_strerror(rc));
  if (rc != 0) return answer_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, msg);
  r = MHD_create_response_from_buffer_with_free_callback(len, buf, qorb_free);
  if (r == NULL) qorb_free(buf);
  return answer(c, MHD_HTTP_OK, r, type);
}

/*
 * Every request lands here once its headers are in. GET and HEAD carry no
 * body, so the answer is queued at once; for any other method the early
 * 405 makes libmicrohttpd discard the body and close the connection.
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
  qorb_endpoint_t *e = cls;
  (void)version;
  (void)upload_data;
  (void)upload_data_size;
  (void)req_cls;
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
      strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return answer_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                       "qorb: only GET and HEAD\n");
  if (strcmp(url, "/metrics") == 0)
    return answer_stats(e, c, qorb_stats_prometheus, &e->hint_metrics,
                        "text/plain; version=0.0.4; charset=utf-8");
  if (strcmp(url, "/stats.json") == 0)
    return answer_stats(e, c, qorb_stats_json, &e->hint_json,
                        "application/json");
  if (strcmp(url, "/") == 0)
    return answer_text(c, MHD_HTTP_OK, index_text);
  return answer_text(c, MHD_HTTP_NOT_FOUND,
                     "qorb: not found (try /metrics or /stats.json)\n");
}

/* ---------------------------------------------------------------------- */
/* The loop                                                                */

/*
 * On the application's loop the endpoint's watchers do not hold the loop
 * open (ev_unref after each start, ev_ref before each stop, and in the
 * callback of the one-shot timer, which libev stops by itself).
 */
static void watcher_started(qorb_endpoint_t *e) {
  if (!e->own_loop) ev_unref(e->loop);
}

static void watcher_stopping(qorb_endpoint_t *e) {
  if (!e->own_loop) ev_ref(e->loop);
}

/* Let MHD do what is ready, then sleep until its next deadline. */
static void drive(qorb_endpoint_t *e) {
  MHD_UNSIGNED_LONG_LONG ms = 0;
  MHD_run(e->mhd);
  if (ev_is_active(&e->timer)) {
    watcher_stopping(e);
    ev_timer_stop(e->loop, &e->timer);
  }
  if (MHD_get_timeout(e->mhd, &ms) == MHD_YES) {
    ev_timer_set(&e->timer, (double)ms / 1000.0, 0.);
    ev_timer_start(e->loop, &e->timer);
    watcher_started(e);
  }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents) {
  (void)loop;
  (void)revents;
  drive(w->data);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  qorb_endpoint_t *e = w->data;
  (void)loop;
  (void)revents;
  watcher_stopping(e); /* libev has stopped it */
  drive(e);
}

static void watchers_stop(qorb_endpoint_t *e) {
  if (ev_is_active(&e->io)) {
    watcher_stopping(e);
    ev_io_stop(e->loop, &e->io);
  }
  if (ev_is_active(&e->timer)) {
    watcher_stopping(e);
    ev_timer_stop(e->loop, &e->timer);
  }
}

static void stop_cb(struct ev_loop *loop, ev_async *w, int revents) {
  qorb_endpoint_t *e = w->data;
  (void)revents;
  watchers_stop(e);
  ev_async_stop(loop, &e->stop);
  ev_break(loop, EVBREAK_ALL);
}

static void *endpoint_thread_main(void *arg) {
  qorb_endpoint_t *e = arg;
  ev_run(e->loop, 0);
  return NULL;
}

/* The thread takes no signals: they belong to the application's threads. */
static int start_thread(qorb_endpoint_t *e) {
  sigset_t all, old;
  int rc;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&e->thread, NULL, endpoint_thread_main, e);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) return -rc;
  e->thread_started = 1;
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Lifecycle                                                               */

/*
 * Whether MHD closes a listening socket it was given when it fails to
 * start has changed between releases. So it gets a duplicate, and after a
 * failure the duplicate is closed only if that descriptor still is our
 * socket (same inode as the original, which we still hold open).
 */
static void close_if_same_socket(int dupfd, int orig) {
  struct stat a, b;
  if (fstat(dupfd, &a) == 0 && fstat(orig, &b) == 0 && a.st_dev == b.st_dev &&
      a.st_ino == b.st_ino)
    close(dupfd);
}

static int start_mhd(qorb_endpoint_t *e, const qorb_endpoint_options_t *o,
                     int family, int fd, char *err, size_t errlen) {
  const union MHD_DaemonInfo *info;
  unsigned flags = MHD_USE_EPOLL;
  unsigned secs = (o->timeout_ms + 999u) / 1000u;
  int dupfd, rc;

  if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) != MHD_YES)
    return set_err(err, errlen, QORB_ENOTSUP,
                "libmicrohttpd %s was built without epoll",
                MHD_get_version());
  if (family == AF_INET6) flags |= MHD_USE_IPv6;
  dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0)
    return set_err(err, errlen, -errno, "dup: %s", strerror(errno));
  errno = 0;
  e->mhd = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, e, MHD_OPTION_LISTEN_SOCKET,
      (MHD_socket)dupfd, MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, secs,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->max_request_bytes,
      MHD_OPTION_END);
  if (e->mhd == NULL) {
    rc = errno != 0 ? -errno : QORB_ENOMEM;
    close_if_same_socket(dupfd, fd);
    return set_err(err, errlen, rc, "libmicrohttpd failed to start: %s",
                qorb_strerror(rc));
  }
  info = MHD_get_daemon_info(e->mhd, MHD_DAEMON_INFO_EPOLL_FD);
  if (info == NULL || info->epoll_fd < 0)
    return set_err(err, errlen, QORB_ENOTSUP,
                "libmicrohttpd gives no epoll descriptor");
  ev_io_init(&e->io, io_cb, info->epoll_fd, EV_READ);
  return 0;
}

int qorb_endpoint_new(qorb_endpoint_t **out, struct ev_loop *loop,
                      const qorb_endpoint_options_t *opts, char *err,
                      size_t errlen) {
  qorb_endpoint_options_t o;
  listen_addr_t la;
  qorb_endpoint_t *e;
  int fd = -1, rc;

  if (err != NULL && errlen > 0) err[0] = '\0';
  if (out == NULL) return set_err(err, errlen, QORB_EINVAL, "out is NULL");
  *out = NULL;
  if ((rc = options_import(&o, opts, err, errlen)) < 0) return rc;
  if ((rc = parse_listen(o.listen, &la, err, errlen)) < 0) return rc;

  e = qorb_calloc(1, sizeof(*e));
  if (e == NULL) return set_err(err, errlen, QORB_ENOMEM, "out of memory");
  e->cap = 4;
  e->pools = qorb_calloc(e->cap, sizeof(*e->pools));
  if (e->pools == NULL) {
    qorb_free(e);
    return set_err(err, errlen, QORB_ENOMEM, "out of memory");
  }
  pthread_mutex_init(&e->lock, NULL);
  e->max_response = o.max_response_bytes;
  e->hint_metrics = e->hint_json = FIRST_ANSWER_BYTES;
  ev_timer_init(&e->timer, timer_cb, 0., 0.);
  e->timer.data = e;
  ev_async_init(&e->stop, stop_cb);
  e->stop.data = e;

  if ((rc = open_listener(e, o.listen, &la, &fd, err, errlen)) < 0)
    goto fail;
  rc = start_mhd(e, &o, la.ss.ss_family, fd, err, errlen);
  close(fd); /* MHD holds its duplicate */
  fd = -1;
  if (rc < 0) goto fail;
  e->io.data = e;

  if (loop == NULL) {
    loop = ev_loop_new(EVFLAG_AUTO);
    if (loop == NULL) {
      rc = set_err(err, errlen, QORB_ENOMEM, "ev_loop_new failed");
      goto fail;
    }
    e->own_loop = 1;
  }
  e->loop = loop;
  ev_io_start(loop, &e->io);
  watcher_started(e);
  if (e->own_loop) {
    ev_async_start(loop, &e->stop);
    if ((rc = start_thread(e)) < 0) {
      set_err(err, errlen, rc, "pthread_create: %s", strerror(-rc));
      goto fail;
    }
  } else {
    drive(e); /* arms the timer if MHD already has a deadline */
  }
  *out = e;
  return 0;

fail:
  if (e->loop != NULL) {
    watchers_stop(e);
    if (e->own_loop) {
      ev_async_stop(e->loop, &e->stop);
      ev_loop_destroy(e->loop);
    }
  }
  if (e->mhd != NULL) MHD_stop_daemon(e->mhd);
  unix_path_remove(e);
  pthread_mutex_destroy(&e->lock);
  qorb_free(e->pools);
  qorb_free(e);
  return rc;
}

int qorb_endpoint_port(const qorb_endpoint_t *e) {
  if (e == NULL) return QORB_EINVAL;
  return e->port;
}

int qorb_endpoint_add_pool(qorb_endpoint_t *e, qorb_pool_t *pool) {
  size_t i;
  int rc = 0;
  if (e == NULL || pool == NULL) return QORB_EINVAL;
  pthread_mutex_lock(&e->lock);
  for (i = 0; i < e->npools; i++)
    if (e->pools[i] == pool) rc = QORB_EBUSY;
  if (rc == 0 && e->npools == e->cap) {
    qorb_pool_t **np = NULL;
    if (e->cap <= SIZE_MAX / 2 / sizeof(*np))
      np = qorb_realloc(e->pools, e->cap * 2 * sizeof(*np));
    if (np == NULL) {
      rc = QORB_ENOMEM;
    } else {
      e->pools = np;
      e->cap *= 2;
    }
  }
  if (rc == 0) e->pools[e->npools++] = pool;
  pthread_mutex_unlock(&e->lock);
  return rc;
}

int qorb_endpoint_remove_pool(qorb_endpoint_t *e, qorb_pool_t *pool) {
  size_t i;
  int rc = QORB_EINVAL;
  if (e == NULL || pool == NULL) return QORB_EINVAL;
  pthread_mutex_lock(&e->lock);
  for (i = 0; i < e->npools; i++) {
    if (e->pools[i] != pool) continue;
    /* Keep the order: pools are listed as they were added. */
    memmove(&e->pools[i], &e->pools[i + 1],
            (e->npools - i - 1) * sizeof(*e->pools));
    e->npools--;
    rc = 0;
    break;
  }
  pthread_mutex_unlock(&e->lock);
  return rc;
}

int qorb_endpoint_free(qorb_endpoint_t *e) {
  if (e == NULL) return QORB_EINVAL;
  if (e->own_loop) {
    ev_async_send(e->loop, &e->stop);
    pthread_join(e->thread, NULL);
    ev_loop_destroy(e->loop);
  } else {
    watchers_stop(e);
  }
  /* External mode: this closes every connection and the socket, and
     returns. */
  MHD_stop_daemon(e->mhd);
  unix_path_remove(e);
  pthread_mutex_destroy(&e->lock);
  qorb_free(e->pools);
  qorb_free(e);
  return 0;
}
