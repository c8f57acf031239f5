/* SPDX-License-Identifier: MIT */
/*
 * echo_server.c: qorb-echo-server HOST PORT. A small standalone TCP echo
 * server for the echo connector's demo and tests: it sends back every byte
 * each client sends (so lines come back as lines), serves many clients
 * with one epoll loop, and exits cleanly on SIGTERM or SIGINT.
 *
 * Once it listens it prints "listening HOST:PORT" on stdout, so scripts
 * can wait for that line instead of sleeping. PORT 0 picks a free port,
 * and the line shows which.
 *
 * It does not link qorb: it stands in for any server a connector talks to.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENT_BUF 16384 /* bytes read but not yet echoed, per client */
#define MAX_EVENTS 64

typedef struct client {
  int fd;
  size_t off, len;      /* unsent bytes are buf[off .. len) */
  uint32_t armed;       /* the epoll events registered now */
  struct client *prev, *next; /* all clients, to close them at exit */
  char buf[CLIENT_BUF];
} client_t;

/* epoll data for the two non-client descriptors; clients use their
 * pointer. */
static char listen_tag, signal_tag;
static client_t *clients;

static void usage(void) {
  fprintf(stderr,
          "usage: qorb-echo-server HOST PORT\n"
          "  HOST  numeric IPv4 or IPv6 address to listen on\n"
          "  PORT  TCP port (0: any free port)\n");
}

static void client_free(int ep, client_t *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (c->prev != NULL) c->prev->next = c->next;
  else clients = c->next;
  if (c->next != NULL) c->next->prev = c->prev;
  free(c);
}

/* Watch for input while there is buffer room, for output while there is
 * something left to send (a client that does not read its echoes stops
 * being read, instead of growing our buffer). */
static int client_arm(int ep, client_t *c) {
  struct epoll_event ev;
  uint32_t want = (c->off < c->len ? (uint32_t)EPOLLOUT : 0u) |
                  (c->len < CLIENT_BUF ? (uint32_t)EPOLLIN : 0u);

  if (want == c->armed) return 0;
  memset(&ev, 0, sizeof(ev));
  ev.events = want;
  ev.data.ptr = c;
  c->armed = want;
  return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Send what is buffered. Returns -1 when the client is gone. */
static int client_flush(client_t *c) {
  while (c->off < c->len) {
    ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
    if (n > 0) {
      c->off += (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return 0;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return -1;
    }
  }
  c->off = c->len = 0;
  return 0;
}

/* Read what arrived and echo it. Returns -1 when the client is gone. */
static int client_read(client_t *c) {
  while (c->len < CLIENT_BUF) {
    ssize_t n = recv(c->fd, c->buf + c->len, CLIENT_BUF - c->len, 0);
    if (n > 0) {
      c->len += (size_t)n;
      if (client_flush(c) != 0) return -1;
      if (c->off < c->len) return 0; /* backed up: wait for EPOLLOUT */
    } else if (n == 0) {
      return -1;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return 0;
    } else if (errno != EINTR) {
      return -1;
    }
  }
  return 0;
}

static void accept_clients(int ep, int lfd) {
  for (;;) {
    struct epoll_event ev;
    client_t *c;
    int one = 1;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return; /* EAGAIN, or out of descriptors: try on the next event */
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->armed = EPOLLIN;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      free(c);
      continue;
    }
    c->next = clients;
    if (clients != NULL) clients->prev = c;
    clients = c;
  }
}

static int listen_on(const char *host, const char *port_text, char *shown,
                     size_t shownlen) {
  struct sockaddr_storage ss;
  socklen_t sslen;
  char *end;
  long port;
  int fd, one = 1;
  char hostbuf[INET6_ADDRSTRLEN];

  memset(&ss, 0, sizeof(ss));
  errno = 0;
  port = strtol(port_text, &end, 10);
  if (errno != 0 || *port_text == '\0' || *end != '\0' || port < 0 ||
      port > 65535) {
    fprintf(stderr, "qorb-echo-server: bad port \"%s\"\n", port_text);
    return -1;
  }
  if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    sslen = sizeof(*sin);
  } else if (inet_pton(AF_INET6, host,
                       &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    sslen = sizeof(*sin6);
  } else {
    fprintf(stderr, "qorb-echo-server: bad host \"%s\" (numeric only)\n",
            host);
    return -1;
  }

  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("qorb-echo-server: socket");
    return -1;
  }
  /* A restarted server must be able to bind while old connections sit in
   * TIME_WAIT: the demo restarts one on purpose. */
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 ||
      listen(fd, SOMAXCONN) != 0) {
    fprintf(stderr, "qorb-echo-server: listen on %s port %ld: %s\n", host,
            port, strerror(errno));
    close(fd);
    return -1;
  }

  /* Report the real port (PORT 0 lets the kernel choose). */
  sslen = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
    if (ss.ss_family == AF_INET6) {
      const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &sin6->sin6_addr, hostbuf, sizeof(hostbuf));
      snprintf(shown, shownlen, "[%s]:%u", hostbuf,
               (unsigned)ntohs(sin6->sin6_port));
    } else {
      const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &sin->sin_addr, hostbuf, sizeof(hostbuf));
      snprintf(shown, shownlen, "%s:%u", hostbuf,
               (unsigned)ntohs(sin->sin_port));
    }
  }
  return fd;
}

int main(int argc, char **argv) {
  struct epoll_event ev, events[MAX_EVENTS];
  char shown[80] = "?";
  sigset_t mask;
  int lfd, sfd, ep, running = 1;

  if (argc != 3) {
    usage();
    return 2;
  }

  /* Take SIGTERM/SIGINT through a signalfd: the loop sees them as just
   * another readable descriptor and exits through the normal path. */
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
    perror("qorb-echo-server: sigprocmask");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (sfd < 0 || ep < 0) {
    perror("qorb-echo-server: signalfd/epoll");
    return 1;
  }
  lfd = listen_on(argv[1], argv[2], shown, sizeof(shown));
  if (lfd < 0) return 1;

  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.ptr = &listen_tag;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) return 1;
  ev.data.ptr = &signal_tag;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) != 0) return 1;

  printf("listening %s\n", shown);
  fflush(stdout);

  while (running) {
    int i, n = epoll_wait(ep, events, MAX_EVENTS, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("qorb-echo-server: epoll_wait");
      break;
    }
    for (i = 0; i < n; i++) {
      void *tag = events[i].data.ptr;
      client_t *c;

      if (tag == &signal_tag) {
        running = 0;
        continue;
      }
      if (tag == &listen_tag) {
        accept_clients(ep, lfd);
        continue;
      }
      c = tag;
      if (events[i].events & (EPOLLERR | EPOLLHUP)) {
        /* Drain what is readable first: a client may send and close. */
        if (client_read(c) != 0 || (events[i].events & EPOLLERR)) {
          client_free(ep, c);
          continue;
        }
      }
      if ((events[i].events & EPOLLOUT) && client_flush(c) != 0) {
        client_free(ep, c);
        continue;
      }
      if ((events[i].events & EPOLLIN) && client_read(c) != 0) {
        client_free(ep, c);
        continue;
      }
      if (client_arm(ep, c) != 0) client_free(ep, c);
    }
  }

  while (clients != NULL) client_free(ep, clients);
  close(lfd);
  close(sfd);
  close(ep);
  printf("stopped %s\n", shown);
  return 0;
}
