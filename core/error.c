/* SPDX-License-Identifier: MIT */
/*
 * error.c: text and names for error codes. qorb's own codes come from the
 * one X-macro list in common.h, so the enum, the text and the names cannot
 * drift apart. Codes that are -errno go to the C library; both functions
 * must be callable from any thread, so only functions that return static
 * strings are used (never strerror(), whose buffer may be shared).
 */
#define _GNU_SOURCE
#include <string.h>

#include "internal.h"

/* glibc 2.32 added thread-safe static descriptions and names for errno. */
#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
#define QORB_HAVE_STRERRORDESC_NP 1
#endif

#define ERROR_UNKNOWN_TEXT "unknown error"
#define ERROR_UNKNOWN_NAME "UNKNOWN"

const char *qorb_strerror(int err) {
  switch (err) {
    case 0:
      return "success";
#define QORB__ERR_TEXT(name, code, text) \
  case (code):                           \
    return (text);
      QORB_ERRNO_MAP(QORB__ERR_TEXT)
#undef QORB__ERR_TEXT
    default:
      break;
  }
#ifdef QORB_HAVE_STRERRORDESC_NP
  /* Negating INT_MIN would overflow; no errno is anywhere near it. */
  if (err < 0 && err > -100000) {
    const char *s = strerrordesc_np(-err);
    if (s != NULL) return s;
  }
#endif
  return ERROR_UNKNOWN_TEXT;
}

const char *qorb_err_name(int err) {
  switch (err) {
    case 0:
      return "OK";
#define QORB__ERR_NAME(name, code, text) \
  case (code):                           \
    return "QORB_" #name;
      QORB_ERRNO_MAP(QORB__ERR_NAME)
#undef QORB__ERR_NAME
    default:
      break;
  }
#ifdef QORB_HAVE_STRERRORDESC_NP
  if (err < 0 && err > -100000) {
    const char *s = strerrorname_np(-err);
    if (s != NULL) return s;
  }
#endif
  return ERROR_UNKNOWN_NAME;
}
