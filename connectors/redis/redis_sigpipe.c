/* SPDX-License-Identifier: MIT */
/*
 * redis_sigpipe.c: qorb-redis's SIGPIPE guard, used by both drivers around
 * the writes that hiredis makes. hiredis writes with write(2), so a peer
 * that hung up raises SIGPIPE, whose default action ends the process. A
 * library must not change the process's signal disposition; instead, when
 * SIGPIPE is neither ignored nor blocked, our writes on the loop block it
 * for the thread, and consume a SIGPIPE that they raised themselves (the
 * libpq technique).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "redis_int.h"

int qorb__redis_sigpipe_needed(void) {
  struct sigaction sa;
  sigset_t cur;

  if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
      sa.sa_handler == SIG_IGN)
    return 0;
  if (pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0 &&
      sigismember(&cur, SIGPIPE) == 1)
    return 0;
  return 1;
}

void qorb__redis_sigpipe_block(qr_sigpipe_t *g) {
  sigset_t s, pend;

  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &s, &g->old);
  g->was_pending = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) == 1;
}

void qorb__redis_sigpipe_restore(qr_sigpipe_t *g) {
  sigset_t s, pend;
  int saved = errno;

  if (!g->was_pending && sigpending(&pend) == 0 &&
      sigismember(&pend, SIGPIPE) == 1) {
    struct timespec zero = {0, 0};
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    while (sigtimedwait(&s, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
  errno = saved;
}
