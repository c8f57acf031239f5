/* SPDX-License-Identifier: MIT */
/*
 * addr.c: backend addresses. Resolvers produce them and connectors consume
 * them, so the parser is strict: only numeric "a.b.c.d:port" and
 * "[v6]:port", nothing that would need a name lookup, no trailing bytes.
 * Every address that leaves this file is normalised (host through
 * inet_ntop, text rebuilt from host and port), so two spellings of one
 * backend ("[::0001]:5" and "[::1]:5") compare equal and print the same.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

/*
 * The longest valid input: "[" + 45 characters of IPv6 (an IPv4-mapped
 * address written out in full) + "]:" + 5 digits = 53. The text field
 * holds that with room to spare; anything longer is malformed.
 */
#define ADDR_MAX_INPUT (sizeof(((qorb_addr_t *)0)->text) - 1)

/* Build the normalised form of a host that inet_pton accepted. */
static int addr_fill(qorb_addr_t *out, int family, const void *bin,
                     uint16_t port) {
  qorb_addr_t a;
  int n;

  memset(&a, 0, sizeof(a));
  a.family = family;
  a.port = port;
  if (inet_ntop(family, bin, a.host, (socklen_t)sizeof(a.host)) == NULL)
    return QORB_EBADADDR;
  if (family == AF_INET6)
    n = snprintf(a.text, sizeof(a.text), "[%s]:%u", a.host, (unsigned)port);
  else
    n = snprintf(a.text, sizeof(a.text), "%s:%u", a.host, (unsigned)port);
  if (n < 0 || (size_t)n >= sizeof(a.text)) return QORB_EBADADDR;
  *out = a;
  return 0;
}

/* Parse a numeric host of either family into binary form. */
static int addr_pton(const char *host, int *family, void *bin) {
  if (inet_pton(AF_INET, host, bin) == 1) {
    *family = AF_INET;
    return 0;
  }
  if (inet_pton(AF_INET6, host, bin) == 1) {
    *family = AF_INET6;
    return 0;
  }
  return QORB_EBADADDR;
}

/* Decimal port, 1 to 65535, digits only: no sign, no space, no suffix. */
static int addr_port(const char *s, uint16_t *port) {
  unsigned long v = 0;
  size_t i;

  for (i = 0; s[i] != '\0'; i++) {
    if (s[i] < '0' || s[i] > '9' || i >= 5) return QORB_EBADADDR;
    v = v * 10 + (unsigned long)(s[i] - '0');
  }
  if (i == 0 || v == 0 || v > 65535) return QORB_EBADADDR;
  *port = (uint16_t)v;
  return 0;
}

int qorb_addr_parse(const char *text, qorb_addr_t *out) {
  char buf[ADDR_MAX_INPUT + 1];
  unsigned char bin[sizeof(struct in6_addr)];
  const char *host, *port_text;
  char *colon;
  uint16_t port;
  size_t len;

  if (text == NULL || out == NULL) return QORB_EINVAL;
  len = strnlen(text, sizeof(buf));
  if (len == 0 || len >= sizeof(buf)) return QORB_EBADADDR;
  memcpy(buf, text, len + 1);

  if (buf[0] == '[') {
    /* "[v6]:port": the brackets are what separate the port from the
     * address, so they are required for IPv6 and refused for IPv4. */
    char *close = strchr(buf, ']');
    if (close == NULL || close[1] != ':') return QORB_EBADADDR;
    *close = '\0';
    host = buf + 1;
    port_text = close + 2;
    if (inet_pton(AF_INET6, host, bin) != 1) return QORB_EBADADDR;
    if (addr_port(port_text, &port) != 0) return QORB_EBADADDR;
    return addr_fill(out, AF_INET6, bin, port);
  }

  /* "a.b.c.d:port": exactly one colon; a second one means an IPv6
   * address without brackets, which is ambiguous and refused. */
  colon = strchr(buf, ':');
  if (colon == NULL || strchr(colon + 1, ':') != NULL) return QORB_EBADADDR;
  *colon = '\0';
  host = buf;
  port_text = colon + 1;
  if (inet_pton(AF_INET, host, bin) != 1) return QORB_EBADADDR;
  if (addr_port(port_text, &port) != 0) return QORB_EBADADDR;
  return addr_fill(out, AF_INET, bin, port);
}

int qorb_addr_set(qorb_addr_t *out, const char *host, uint16_t port) {
  unsigned char bin[sizeof(struct in6_addr)];
  int family;

  if (out == NULL || host == NULL) return QORB_EINVAL;
  if (port == 0) return QORB_EBADADDR;
  if (addr_pton(host, &family, bin) != 0) return QORB_EBADADDR;
  return addr_fill(out, family, bin, port);
}

int qorb_addr_equal(const qorb_addr_t *a, const qorb_addr_t *b) {
  unsigned char ba[sizeof(struct in6_addr)], bb[sizeof(struct in6_addr)];
  int fa, fb;

  if (a == NULL || b == NULL) return 0;
  if (a->family != b->family || a->port != b->port) return 0;
  /* Compare the binary addresses, so that a hand-filled qorb_addr_t that
   * was never normalised still matches its parsed twin. The host fields
   * are bounded by their arrays, so strnlen guards against a missing
   * terminator before inet_pton reads them. */
  if (strnlen(a->host, sizeof(a->host)) < sizeof(a->host) &&
      strnlen(b->host, sizeof(b->host)) < sizeof(b->host) &&
      addr_pton(a->host, &fa, ba) == 0 && addr_pton(b->host, &fb, bb) == 0) {
    if (fa != fb) return 0;
    return memcmp(ba, bb,
                  fa == AF_INET ? sizeof(struct in_addr)
                                : sizeof(struct in6_addr)) == 0;
  }
  return strncmp(a->host, b->host, sizeof(a->host)) == 0;
}
