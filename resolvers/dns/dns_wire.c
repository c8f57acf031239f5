/* SPDX-License-Identifier: MIT */
/*
 * dns_wire.c: text and wire formats. The checks of the names and server
 * lists users give, and the one thing c-ares 1.18 does not parse for us:
 * the TTL of SRV records, read here from the RR headers of the raw answer.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_int.h"

/*
 * 0 when `name` is a DNS name we will query: 1 to 253 characters (plus a
 * trailing dot when allowed), labels of 1 to 63 letters, digits, '-' or
 * '_'. Anything else is QORB_EBADADDR.
 */
int qorb__dns_check_name(const char *name, int allow_trailing_dot) {
  size_t len = strlen(name), label = 0, i;

  if (allow_trailing_dot && len > 1 && name[len - 1] == '.') len--;
  if (len == 0 || len > 253) return QORB_EBADADDR;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c == '.') {
      if (label == 0) return QORB_EBADADDR;
      label = 0;
      continue;
    }
    if (!isalnum(c) && c != '-' && c != '_') return QORB_EBADADDR;
    if (++label > 63) return QORB_EBADADDR;
  }
  return label == 0 ? QORB_EBADADDR : 0;
}

/* A port 1-65535 written in decimal, all of `s`. */
static int dns_parse_port(const char *s, uint16_t *port) {
  char *end;
  unsigned long v;

  if (*s < '0' || *s > '9') return QORB_EBADADDR;
  v = strtoul(s, &end, 10);
  if (*end != '\0' || v == 0 || v > 65535) return QORB_EBADADDR;
  *port = (uint16_t)v;
  return 0;
}

/*
 * The resolver's name: "host:port" and "[v6]:port" give host mode
 * (*srv = 0); a name without a port is an SRV name (*srv = 1), which must
 * look like one ("_service._proto.domain").
 */
int qorb__dns_parse_name(const char *text, char *host, size_t hostlen,
                         uint16_t *port, int *srv) {
  const char *colon;
  size_t hl;
  qorb_addr_t a;

  if (text[0] == '[') { /* numeric IPv6 */
    if (qorb_addr_parse(text, &a) != 0) return QORB_EBADADDR;
    if (strlen(a.host) >= hostlen) return QORB_EBADADDR;
    strcpy(host, a.host);
    *port = a.port;
    *srv = 0;
    return 0;
  }
  colon = strrchr(text, ':');
  if (colon == NULL) {
    if (text[0] != '_' || strchr(text, '.') == NULL) return QORB_EBADADDR;
    if (qorb__dns_check_name(text, 1) != 0) return QORB_EBADADDR;
    host[0] = '\0';
    *port = 0;
    *srv = 1;
    return 0;
  }
  if (strchr(text, ':') != colon) return QORB_EBADADDR; /* v6 needs [] */
  hl = (size_t)(colon - text);
  if (hl == 0 || hl >= hostlen) return QORB_EBADADDR;
  memcpy(host, text, hl);
  host[hl] = '\0';
  if (dns_parse_port(colon + 1, port) != 0) return QORB_EBADADDR;
  if (qorb__dns_check_name(host, 1) != 0) return QORB_EBADADDR;
  *srv = 0;
  return 0;
}

/* Numeric "host:port" entries separated by commas or white space. */
int qorb__dns_parse_servers(const char *list, qorb_addr_t *out,
                            unsigned cap, unsigned *n, char *err,
                            size_t errlen) {
  const char *p = list;
  unsigned count = 0;

  for (;;) {
    char entry[64];
    size_t len = 0;

    while (*p == ',' || isspace((unsigned char)*p)) p++;
    if (*p == '\0') break;
    while (p[len] != '\0' && p[len] != ',' && !isspace((unsigned char)p[len]))
      len++;
    if (len >= sizeof(entry) || count == cap) {
      snprintf(err, errlen, "servers: %s", len >= sizeof(entry)
               ? "an entry is too long" : "too many servers (at most 8)");
      return QORB_EBADADDR;
    }
    memcpy(entry, p, len);
    entry[len] = '\0';
    if (qorb_addr_parse(entry, &out[count]) != 0) {
      snprintf(err, errlen,
               "servers: bad entry \"%s\": want \"a.b.c.d:port\" or "
               "\"[ipv6]:port\"", entry);
      return QORB_EBADADDR;
    }
    count++;
    p += len;
  }
  if (count == 0) {
    snprintf(err, errlen, "servers: empty list (NULL means the system's)");
    return QORB_EBADADDR;
  }
  *n = count;
  return 0;
}

/* Skip a (possibly compressed) name at `pos`; -1 when malformed. */
static int dns_skip_name(const unsigned char *buf, int len, int pos) {
  int guard = 0;

  while (pos < len && guard++ < 128) {
    unsigned c = buf[pos];
    if (c == 0) return pos + 1;
    if ((c & 0xC0) == 0xC0) return pos + 2 <= len ? pos + 2 : -1;
    if ((c & 0xC0) != 0) return -1;
    pos += (int)c + 1;
  }
  return -1;
}

/*
 * The smallest TTL of the answer's RRs of `type` (seconds). Returns 0, or
 * QORB_EPROTO for a malformed or truncated message (then *ttl is kept).
 */
int qorb__dns_answer_ttl(const unsigned char *abuf, int alen, int type,
                         unsigned *ttl) {
  unsigned qd, an, i, best = UINT32_MAX, seen = 0;
  int pos = 12;

  if (abuf == NULL || alen < 12) return QORB_EPROTO;
  qd = (unsigned)abuf[4] << 8 | abuf[5];
  an = (unsigned)abuf[6] << 8 | abuf[7];
  if (an > DNS_MAX_RECORDS) an = DNS_MAX_RECORDS;
  for (i = 0; i < qd; i++) {
    pos = dns_skip_name(abuf, alen, pos);
    if (pos < 0 || pos + 4 > alen) return QORB_EPROTO;
    pos += 4;
  }
  for (i = 0; i < an; i++) {
    unsigned rtype, rdlen;
    uint32_t t;

    pos = dns_skip_name(abuf, alen, pos);
    if (pos < 0 || pos + 10 > alen) return QORB_EPROTO;
    rtype = (unsigned)abuf[pos] << 8 | abuf[pos + 1];
    t = (uint32_t)abuf[pos + 4] << 24 | (uint32_t)abuf[pos + 5] << 16 |
        (uint32_t)abuf[pos + 6] << 8 | abuf[pos + 7];
    rdlen = (unsigned)abuf[pos + 8] << 8 | abuf[pos + 9];
    pos += 10;
    if (pos + (int)rdlen > alen) return QORB_EPROTO;
    pos += (int)rdlen;
    if ((int)rtype != type) continue;
    if (t > INT32_MAX) t = 0; /* RFC 2181 8: treat as zero */
    if (t < best) best = t;
    seen++;
  }
  if (seen == 0) return QORB_EPROTO;
  *ttl = best;
  return 0;
}
