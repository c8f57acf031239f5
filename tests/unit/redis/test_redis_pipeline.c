/* SPDX-License-Identifier: MIT */
/*
 * test_redis_pipeline.c: qorb-redis's pipeline (redis_pipeline.c, through
 * the private redis_int.h), no server needed. It proves which commands
 * each op sends, byte for byte as they go on the wire, and how the replies
 * are judged: a good sequence passes step by step, an error reply fails
 * with the code its step calls for, and a reply that is not ours (a stray
 * one a claimant left, a PING with another op's token) fails the op with
 * QORB_EPROTO so that the connection is closed. The replies are parsed
 * from protocol text by hiredis's own reader, as the drivers do. Also the
 * client flags that RESET leaves on (learnt at connect, cleared on
 * recycle), the replies and errors that mean the server went away
 * (QORB_EGONE), and the peek op on a socket pair.
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "redis_int.h"

/* A raw blocking connection that was never connected: the pipeline only
   checks that it has a context, and writes the commands into its own
   buffer. No op is in flight, so no error text is recorded. */
typedef struct fx {
  qr_cfg_t cfg;
  qr_conn_t k;
  redisContext c;
} fx_t;

static void fx_init(fx_t *f) {
  memset(f, 0, sizeof(*f));
  f->cfg.flavour = QORB_REDIS_BLOCKING;
  f->cfg.role = QORB_REDIS_ROLE_ANY;
  f->cfg.recycle = QORB_REDIS_RECYCLE_AUTO;
  f->cfg.keepalive = 1;
  snprintf(f->cfg.dbtext, sizeof(f->cfg.dbtext), "%d", f->cfg.database);
  f->k.cfg = &f->cfg;
  f->k.c = &f->c;
  f->k.raw = 1;
}

static void fx_free(fx_t *f) { qorb_free(f->k.wbuf); }

static void set_database(fx_t *f, int db) {
  f->cfg.database = db;
  snprintf(f->cfg.dbtext, sizeof(f->cfg.dbtext), "%d", db);
}

/* Start an op of this kind as the drivers do (they set the kind, the
   pipeline builds), and check its steps, given as a list ending in END. */
static void build(fx_t *f, enum qr_op kind, int first, ...) {
  va_list ap;
  unsigned i = 0;
  int step = first;

  f->k.opkind = kind;
  assert_int_equal(qorb__redis_build(&f->k, kind), 0);
  va_start(ap, first);
  while (step >= 0) {
    assert_true(i < f->k.nsteps);
    assert_int_equal(f->k.steps[i], step);
    i++;
    step = va_arg(ap, int);
  }
  va_end(ap);
  assert_int_equal(f->k.nsteps, i);
  assert_int_equal(f->k.next, 0);
}
#define END (-1)

static void assert_wire(const fx_t *f, const char *want) {
  assert_int_equal(f->k.wlen, strlen(want));
  assert_memory_equal(f->k.wbuf, want, f->k.wlen);
}

/* What feeding replies to the op's steps came to. */
#define DONE 0    /* the last step passed, with no reply left over */
#define WAITING 1 /* the replies ran out before the last step */
#define STRAY 2   /* a reply came after the last step */

/*
 * Parse `resp` with hiredis's reader and check each reply against the step
 * it answers, as the drivers do. Returns DONE, WAITING, STRAY or the
 * negative code of the first reply that fails its step.
 */
static int feed(fx_t *f, const char *resp) {
  redisReader *rd = redisReaderCreate();
  int rc = WAITING;

  assert_non_null(rd);
  assert_int_equal(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
  for (;;) {
    void *reply = NULL;
    int r;
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    if (reply == NULL) break;
    if (f->k.next >= f->k.nsteps) {
      freeReplyObject(reply);
      rc = STRAY;
      break;
    }
    r = qorb__redis_reply(&f->k, (enum qr_step)f->k.steps[f->k.next], reply);
    freeReplyObject(reply);
    if (r < 0) {
      rc = r;
      break;
    }
    if (r == 0 && ++f->k.next == f->k.nsteps) rc = DONE;
  }
  redisReaderFree(rd);
  return rc;
}

/* The flag commands on the wire, and a 7.0 server's answer to NO-TOUCH. */
#define NOEVICT_OFF "*3\r\n$6\r\nCLIENT\r\n$8\r\nNO-EVICT\r\n$3\r\noff\r\n"
#define NOTOUCH_OFF "*3\r\n$6\r\nCLIENT\r\n$8\r\nNO-TOUCH\r\n$3\r\noff\r\n"
#define NOTOUCH_UNKNOWN "-ERR unknown subcommand 'NO-TOUCH'. Try CLIENT HELP.\r\n"
#define NOEVICT_UNKNOWN                                              \
  "-ERR Unknown subcommand or wrong number of arguments for "        \
  "'NO-EVICT'. Try CLIENT HELP.\r\n"

static void test_connect_default(void **state) {
  fx_t f;
  (void)state;
  fx_init(&f);
  build(&f, QR_OP_CONNECT, QR_PROBE_RESET, QR_PROBE_NOEVICT, QR_PROBE_NOTOUCH,
        QR_PING, END);
  assert_string_equal(f.k.token, "qorb-1");
  assert_wire(&f, "*1\r\n$5\r\nRESET\r\n" NOEVICT_OFF NOTOUCH_OFF
                  "*2\r\n$4\r\nPING\r\n$6\r\nqorb-1\r\n");
  /* Redis 7.0: NO-EVICT exists, NO-TOUCH does not. */
  assert_int_equal(feed(&f, "+RESET\r\n+OK\r\n" NOTOUCH_UNKNOWN
                            "$6\r\nqorb-1\r\n"),
                   DONE);
  assert_int_equal(f.k.has_reset, 1);
  assert_int_equal(f.k.has_noevict, 1);
  assert_int_equal(f.k.has_notouch, 0);
  fx_free(&f);
}

static void test_connect_everything(void **state) {
  fx_t f;
  char user[] = "app", password[] = "s3cret", name[] = "web";
  (void)state;
  fx_init(&f);
  f.cfg.user = user;
  f.cfg.password = password;
  f.cfg.client_name = name;
  f.cfg.role = QORB_REDIS_ROLE_MASTER;
  set_database(&f, 12);
  build(&f, QR_OP_CONNECT, QR_PROBE_RESET, QR_AUTH, QR_SELECT, QR_SETNAME,
        QR_PROBE_NOEVICT, QR_PROBE_NOTOUCH, QR_ROLE, QR_PING, END);
  assert_wire(&f, "*1\r\n$5\r\nRESET\r\n"
                  "*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$6\r\ns3cret\r\n"
                  "*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n"
                  "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$3\r\nweb\r\n"
                  NOEVICT_OFF NOTOUCH_OFF
                  "*1\r\n$4\r\nROLE\r\n"
                  "*2\r\n$4\r\nPING\r\n$6\r\nqorb-1\r\n");
  /* A 7.2 server: both flags exist. */
  assert_int_equal(feed(&f, "+RESET\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n"
                            "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"
                            "$6\r\nqorb-1\r\n"),
                   DONE);
  assert_int_equal(f.k.has_noevict, 1);
  assert_int_equal(f.k.has_notouch, 1);
  fx_free(&f);

  /* A password alone is AUTH's one-argument form; LEGACY and NONE never
     probe for RESET. */
  fx_init(&f);
  f.cfg.password = password;
  f.cfg.recycle = QORB_REDIS_RECYCLE_LEGACY;
  build(&f, QR_OP_CONNECT, QR_AUTH, QR_PROBE_NOEVICT, QR_PROBE_NOTOUCH,
        QR_PING, END);
  assert_wire(&f, "*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\n"
                  NOEVICT_OFF NOTOUCH_OFF
                  "*2\r\n$4\r\nPING\r\n$6\r\nqorb-1\r\n");
  /* A server older than 7.0 has neither. */
  assert_int_equal(feed(&f, "+OK\r\n" NOEVICT_UNKNOWN NOTOUCH_UNKNOWN
                            "$6\r\nqorb-1\r\n"),
                   DONE);
  assert_int_equal(f.k.has_noevict, 0);
  assert_int_equal(f.k.has_notouch, 0);
  /* NONE never recycles: no probes either. */
  f.cfg.recycle = QORB_REDIS_RECYCLE_NONE;
  build(&f, QR_OP_CONNECT, QR_AUTH, QR_PING, END);
  assert_string_equal(f.k.token, "qorb-2"); /* a new token per op */
  fx_free(&f);
}

static void test_check_and_recycle(void **state) {
  fx_t f;
  char name[] = "web";
  (void)state;
  fx_init(&f);
  build(&f, QR_OP_CHECK, QR_PING, END);
  assert_wire(&f, "*2\r\n$4\r\nPING\r\n$6\r\nqorb-1\r\n");
  assert_int_equal(feed(&f, "$6\r\nqorb-1\r\n"), DONE);
  f.cfg.role = QORB_REDIS_ROLE_REPLICA;
  build(&f, QR_OP_CHECK, QR_ROLE, QR_PING, END);
  assert_int_equal(feed(&f, "*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n"
                            ":6379\r\n$9\r\nconnected\r\n:1\r\n"
                            "$6\r\nqorb-2\r\n"),
                   DONE);

  /* With RESET: it undoes everything, then the settings are made again. */
  f.cfg.client_name = name;
  f.k.has_reset = 1;
  build(&f, QR_OP_RECYCLE, QR_RESET, QR_SETNAME, QR_PING, END);
  assert_int_equal(feed(&f, "+RESET\r\n+OK\r\n$6\r\nqorb-3\r\n"), DONE);

  /* Without: DISCARD, UNWATCH, and SELECT and the name always. */
  f.cfg.client_name = NULL;
  f.k.has_reset = 0;
  build(&f, QR_OP_RECYCLE, QR_DISCARD, QR_UNWATCH, QR_SELECT, QR_SETNAME,
        QR_PING, END);
  assert_wire(&f, "*1\r\n$7\r\nDISCARD\r\n"
                  "*1\r\n$7\r\nUNWATCH\r\n"
                  "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n"
                  "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$0\r\n\r\n"
                  "*2\r\n$4\r\nPING\r\n$6\r\nqorb-4\r\n");
  /* "DISCARD without MULTI" is the clean answer. */
  assert_int_equal(feed(&f, "-ERR DISCARD without MULTI\r\n+OK\r\n+OK\r\n"
                            "+OK\r\n$6\r\nqorb-4\r\n"),
                   DONE);
  fx_free(&f);
}

/* Replies arrive in pieces: the steps wait for the rest. */
static void test_partial(void **state) {
  fx_t f;
  (void)state;
  fx_init(&f);
  build(&f, QR_OP_CONNECT, QR_PROBE_RESET, QR_PROBE_NOEVICT, QR_PROBE_NOTOUCH,
        QR_PING, END);
  assert_int_equal(feed(&f, "+RESET\r\n"), WAITING);
  assert_int_equal(f.k.next, 1);
  assert_int_equal(feed(&f, "+OK\r\n+OK\r\n$6\r\nqorb-1\r\n"), DONE);
  fx_free(&f);
}

/* RESET refused: AUTO falls back to the older recycle, RESET insists. */
static void test_no_reset(void **state) {
  fx_t f;
  (void)state;
  fx_init(&f);
  build(&f, QR_OP_CONNECT, QR_PROBE_RESET, QR_PROBE_NOEVICT, QR_PROBE_NOTOUCH,
        QR_PING, END);
  assert_int_equal(feed(&f, "-ERR unknown command 'RESET'\r\n" NOEVICT_UNKNOWN
                            NOTOUCH_UNKNOWN "$6\r\nqorb-1\r\n"),
                   DONE);
  assert_int_equal(f.k.has_reset, 0);

  f.cfg.recycle = QORB_REDIS_RECYCLE_RESET;
  build(&f, QR_OP_CONNECT, QR_PROBE_RESET, QR_PROBE_NOEVICT, QR_PROBE_NOTOUCH,
        QR_PING, END);
  assert_int_equal(feed(&f, "-ERR unknown command 'RESET'\r\n"),
                   QORB_ENOTSUP);
  fx_free(&f);
}

static void test_error_replies(void **state) {
  fx_t f;
  char password[] = "wrong";
  (void)state;
  fx_init(&f);
  f.cfg.password = password;
  set_database(&f, 99);
  build(&f, QR_OP_CONNECT, QR_PROBE_RESET, QR_AUTH, QR_SELECT,
        QR_PROBE_NOEVICT, QR_PROBE_NOTOUCH, QR_PING, END);
  assert_int_equal(feed(&f, "+RESET\r\n-WRONGPASS invalid username-password "
                            "pair or user is disabled.\r\n"),
                   QORB_EAUTH);
  /* A server error fails the step with the op's own code. */
  build(&f, QR_OP_CONNECT, QR_PROBE_RESET, QR_AUTH, QR_SELECT,
        QR_PROBE_NOEVICT, QR_PROBE_NOTOUCH, QR_PING, END);
  assert_int_equal(feed(&f, "+RESET\r\n+OK\r\n"
                            "-ERR DB index is out of range\r\n"),
                   QORB_ECONNECT);
  f.k.has_reset = 1;
  build(&f, QR_OP_RECYCLE, QR_RESET, QR_AUTH, QR_SELECT, QR_PING, END);
  assert_int_equal(feed(&f, "+RESET\r\n+OK\r\n"
                            "-ERR DB index is out of range\r\n"),
                   QORB_ERECYCLE);
  /* PING refused (the server wants AUTH): the check fails. */
  f.cfg.password = NULL;
  set_database(&f, 0);
  build(&f, QR_OP_CHECK, QR_PING, END);
  assert_int_equal(feed(&f, "-NOAUTH Authentication required.\r\n"),
                   QORB_ECHECK);
  /* A subscribed connection fails DISCARD and is closed. */
  f.k.has_reset = 0;
  build(&f, QR_OP_RECYCLE, QR_DISCARD, QR_UNWATCH, QR_SELECT, QR_SETNAME,
        QR_PING, END);
  assert_int_equal(feed(&f, "-ERR Can't execute 'discard': only (P|S)SUBSCRIBE"
                            " / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
                            "allowed in this context\r\n"),
                   QORB_ERECYCLE);
  fx_free(&f);
}

static void test_wrong_role(void **state) {
  fx_t f;
  (void)state;
  fx_init(&f);
  f.cfg.role = QORB_REDIS_ROLE_MASTER;
  build(&f, QR_OP_CHECK, QR_ROLE, QR_PING, END);
  assert_int_equal(feed(&f, "*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n"
                            ":6379\r\n$9\r\nconnected\r\n:1\r\n"),
                   QORB_EROLE);
  f.cfg.role = QORB_REDIS_ROLE_REPLICA;
  build(&f, QR_OP_CHECK, QR_ROLE, QR_PING, END);
  assert_int_equal(feed(&f, "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"), QORB_EROLE);
  /* ROLE refused (renamed, or not allowed): the op's code; not an array:
     a protocol error. */
  build(&f, QR_OP_CHECK, QR_ROLE, QR_PING, END);
  assert_int_equal(feed(&f, "-ERR unknown command 'ROLE'\r\n"), QORB_ECHECK);
  build(&f, QR_OP_CHECK, QR_ROLE, QR_PING, END);
  assert_int_equal(feed(&f, ":1\r\n"), QORB_EPROTO);
  fx_free(&f);
}

/* Replies that are not ours: the stream is out of step, and only closing
   the connection makes it safe. */
static void test_out_of_step(void **state) {
  fx_t f;
  (void)state;
  fx_init(&f);
  /* A claimant's unread reply where ours should be. */
  build(&f, QR_OP_CHECK, QR_PING, END);
  assert_int_equal(feed(&f, "$5\r\nhello\r\n$6\r\nqorb-1\r\n"), QORB_EPROTO);
  build(&f, QR_OP_CHECK, QR_PING, END);
  assert_int_equal(feed(&f, "+OK\r\n"), QORB_EPROTO);
  build(&f, QR_OP_CHECK, QR_PING, END);
  assert_int_equal(feed(&f, ":42\r\n"), QORB_EPROTO);
  /* Another op's PING token. */
  build(&f, QR_OP_CHECK, QR_PING, END);
  assert_string_equal(f.k.token, "qorb-4");
  assert_int_equal(feed(&f, "$6\r\nqorb-3\r\n"), QORB_EPROTO);
  /* A status where a command wanted OK, and OK where RESET was due. */
  set_database(&f, 1);
  build(&f, QR_OP_CONNECT, QR_PROBE_RESET, QR_SELECT, QR_PROBE_NOEVICT,
        QR_PROBE_NOTOUCH, QR_PING, END);
  assert_int_equal(feed(&f, "+RESET\r\n+QUEUED\r\n"), QORB_EPROTO);
  f.k.has_reset = 1;
  build(&f, QR_OP_RECYCLE, QR_RESET, QR_SELECT, QR_PING, END);
  assert_int_equal(feed(&f, "+OK\r\n"), QORB_EPROTO);
  build(&f, QR_OP_CONNECT, QR_PROBE_RESET, QR_SELECT, QR_PROBE_NOEVICT,
        QR_PROBE_NOTOUCH, QR_PING, END);
  assert_int_equal(feed(&f, "+OK\r\n"), QORB_EPROTO);
  /* A reply after the last step (the drivers fail the op on it). */
  build(&f, QR_OP_CHECK, QR_PING, END);
  assert_int_equal(feed(&f, "$6\r\nqorb-8\r\n+OK\r\n"), STRAY);
  fx_free(&f);
}

/* A subscribed connection delivers messages ahead of RESET's reply: they
   are skipped, up to a bound. */
static void test_reset_skips_pubsub(void **state) {
  fx_t f;
  (void)state;
  fx_init(&f);
  f.k.has_reset = 1;
  build(&f, QR_OP_RECYCLE, QR_RESET, QR_PING, END);
  assert_int_equal(feed(&f, "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n"
                            "*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n"
                            "$1\r\ny\r\n"
                            "*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n"
                            "+RESET\r\n$6\r\nqorb-1\r\n"),
                   DONE);
  assert_int_equal(f.k.skipped, 3);
  /* Only at RESET: elsewhere a message is out of step. */
  build(&f, QR_OP_CHECK, QR_PING, END);
  assert_int_equal(f.k.skipped, 0);
  assert_int_equal(feed(&f, "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n"),
                   QORB_EPROTO);
  fx_free(&f);
}

/* A failure marks the connection broken and clears the op. */
static void test_fail(void **state) {
  fx_t f;
  (void)state;
  fx_init(&f);
  qorb__redis_fail(&f.k, QORB_EPROTO);
  assert_int_equal(f.k.broken, 1);
  assert_null(f.k.op);
  assert_int_equal(qorb__redis_opcode(QR_OP_CONNECT), QORB_ECONNECT);
  assert_int_equal(qorb__redis_opcode(QR_OP_CHECK), QORB_ECHECK);
  assert_int_equal(qorb__redis_opcode(QR_OP_RECYCLE), QORB_ERECYCLE);
  fx_free(&f);
}

/* Client flags that RESET leaves on: cleared on recycle where the server
   has the command, in both recycle styles, and only there. */
static void test_recycle_flags(void **state) {
  fx_t f;
  (void)state;
  fx_init(&f);
  f.k.has_reset = 1;
  f.k.has_noevict = 1; /* Redis 7.0 */
  build(&f, QR_OP_RECYCLE, QR_RESET, QR_NOEVICT, QR_PING, END);
  assert_wire(&f, "*1\r\n$5\r\nRESET\r\n" NOEVICT_OFF
                  "*2\r\n$4\r\nPING\r\n$6\r\nqorb-1\r\n");
  assert_int_equal(feed(&f, "+RESET\r\n+OK\r\n$6\r\nqorb-1\r\n"), DONE);
  f.k.has_notouch = 1; /* Redis 7.2 */
  build(&f, QR_OP_RECYCLE, QR_RESET, QR_NOEVICT, QR_NOTOUCH, QR_PING, END);
  assert_int_equal(feed(&f, "+RESET\r\n+OK\r\n-ERR no\r\n"), QORB_ERECYCLE);
  f.k.has_reset = 0;
  build(&f, QR_OP_RECYCLE, QR_DISCARD, QR_UNWATCH, QR_SELECT, QR_SETNAME,
        QR_NOEVICT, QR_NOTOUCH, QR_PING, END);
  /* Neither: nothing more is sent. */
  f.k.has_reset = 1;
  f.k.has_noevict = f.k.has_notouch = 0;
  build(&f, QR_OP_RECYCLE, QR_RESET, QR_PING, END);
  fx_free(&f);
}

/* Replies that say the server is going away or not serving yet fail any
   step with QORB_EGONE, even a step that takes errors calmly. */
static void test_gone_replies(void **state) {
  fx_t f;
  (void)state;
  fx_init(&f);
  build(&f, QR_OP_CHECK, QR_PING, END);
  assert_int_equal(
      feed(&f, "-LOADING Redis is loading the dataset in memory\r\n"),
      QORB_EGONE);
  build(&f, QR_OP_CONNECT, QR_PROBE_RESET, QR_PROBE_NOEVICT, QR_PROBE_NOTOUCH,
        QR_PING, END);
  assert_int_equal(feed(&f, "-LOADING Redis is loading\r\n"), QORB_EGONE);
  build(&f, QR_OP_CONNECT, QR_PROBE_RESET, QR_PROBE_NOEVICT, QR_PROBE_NOTOUCH,
        QR_PING, END);
  assert_int_equal(feed(&f, "+RESET\r\n-SHUTDOWN in progress\r\n"),
                   QORB_EGONE);
  /* The word alone, not a prefix of another. */
  build(&f, QR_OP_CHECK, QR_PING, END);
  assert_int_equal(feed(&f, "-LOADINGX odd\r\n"), QORB_ECHECK);
  build(&f, QR_OP_CHECK, QR_PING, END);
  assert_int_equal(feed(&f, "-ERR LOADING\r\n"), QORB_ECHECK);

  assert_true(qorb__redis_errno_gone(ECONNRESET));
  assert_true(qorb__redis_errno_gone(EPIPE));
  assert_true(qorb__redis_errno_gone(ETIMEDOUT));
  assert_false(qorb__redis_errno_gone(EAGAIN));
  assert_false(qorb__redis_errno_gone(ENOMEM));
  assert_true(qorb__redis_ctx_gone(REDIS_ERR_EOF, "Server closed the connection"));
  assert_true(qorb__redis_ctx_gone(REDIS_ERR_IO, strerror(ECONNRESET)));
  assert_false(qorb__redis_ctx_gone(REDIS_ERR_IO, strerror(EAGAIN)));
  assert_false(qorb__redis_ctx_gone(REDIS_ERR_PROTOCOL, "Protocol error"));
  assert_false(qorb__redis_ctx_gone(REDIS_ERR_IO, NULL));
  fx_free(&f);
}

/* The peek op on an idle blocking connection whose socket is one end of a
   socket pair: the test plays the server on the other end. */
static void test_peek(void **state) {
  fx_t f;
  int sv[2];
  char buf[8];
  (void)state;
  fx_init(&f);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  f.c.fd = sv[0];
  f.c.reader = redisReaderCreate();
  assert_non_null(f.c.reader);

  /* Nothing arrived: alive (and the socket is left blocking: no wait). */
  assert_int_equal(qorb__redis_peek(NULL, &f.k), 0);
  /* An op in flight owns the socket: not the peek's business. */
  f.k.op = (qorb_op_t *)(void *)&f;
  assert_int_equal(write(sv[1], "+OK\r\n", 5), 5);
  assert_int_equal(qorb__redis_peek(NULL, &f.k), 0);
  f.k.op = NULL;
  /* A reply nobody asked for: unusable; and it is still there to read
     (peek never consumes). */
  assert_int_equal(qorb__redis_peek(NULL, &f.k), QORB_EPROTO);
  assert_int_equal(qorb__redis_peek(NULL, &f.k), QORB_EPROTO);
  assert_int_equal(recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT), 5);
  assert_int_equal(qorb__redis_peek(NULL, &f.k), 0);
  /* Bytes already in hiredis's reader and not taken: the same. */
  assert_int_equal(redisReaderFeed(f.c.reader, "+OK\r\n", 5), REDIS_OK);
  assert_int_equal(qorb__redis_peek(NULL, &f.k), QORB_EPROTO);
  redisReaderFree(f.c.reader);
  f.c.reader = redisReaderCreate();
  /* An earlier failure condemned it. */
  f.k.broken = 1;
  assert_int_equal(qorb__redis_peek(NULL, &f.k), QORB_EBROKEN);
  f.k.gone = 1;
  assert_int_equal(qorb__redis_peek(NULL, &f.k), QORB_EGONE);
  f.k.broken = f.k.gone = 0;
  /* An error on the context: EOF is the server gone. */
  f.c.err = REDIS_ERR_EOF;
  assert_int_equal(qorb__redis_peek(NULL, &f.k), QORB_EGONE);
  f.c.err = 0;
  /* The server hung up. */
  close(sv[1]);
  assert_int_equal(qorb__redis_peek(NULL, &f.k), QORB_EGONE);
  close(sv[0]);
  redisReaderFree(f.c.reader);
  fx_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_connect_default),
      cmocka_unit_test(test_connect_everything),
      cmocka_unit_test(test_check_and_recycle),
      cmocka_unit_test(test_partial),
      cmocka_unit_test(test_no_reset),
      cmocka_unit_test(test_error_replies),
      cmocka_unit_test(test_wrong_role),
      cmocka_unit_test(test_out_of_step),
      cmocka_unit_test(test_reset_skips_pubsub),
      cmocka_unit_test(test_fail),
      cmocka_unit_test(test_recycle_flags),
      cmocka_unit_test(test_gone_replies),
      cmocka_unit_test(test_peek),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
