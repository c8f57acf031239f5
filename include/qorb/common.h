/* SPDX-License-Identifier: MIT */
/**
 * @file
 * common.h: what every qorb header needs. The export macro, the error codes
 * (one X-macro list that makes the enum, qorb_strerror() and
 * qorb_err_name()), the allocator hook and the allocation functions on top
 * of it, the log callback type and the backend address that resolvers
 * produce and connectors consume.
 */
#ifndef QORB_COMMON_H
#define QORB_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @def QORB_EXTERN
 * Marks a function that the shared libraries export (default visibility
 * under GCC and Clang). Define QORB_STATIC to make it empty.
 */
#if defined(QORB_STATIC)
#define QORB_EXTERN
#elif defined(__GNUC__)
#define QORB_EXTERN __attribute__((visibility("default")))
#else
#define QORB_EXTERN
#endif

/**
 * Error codes. Every call that can fail returns 0 or one of these (always
 * negative). System errors pass through as -errno; qorb's own codes sit in
 * -4000 ... -4099 so they never collide with an errno.
 * The one list: `X(name, code, text)` for each code; it makes enum
 * qorb_errno, qorb_strerror() and qorb_err_name().
 */
#define QORB_ERRNO_MAP(X)                                                    \
  X(EINVAL, -4000, "invalid argument")                                       \
  X(ENOMEM, -4001, "out of memory")                                          \
  X(EAGAIN, -4002, "no idle connection right now")                           \
  X(ETIMEDOUT, -4003, "timed out")                                           \
  X(ENOBACKENDS, -4004, "no backends known")                                 \
  X(ENOTONLINE, -4005, "backends known, but none online")                    \
  X(EALLINUSE, -4006, "all connections in use")                              \
  X(EQUEUEFULL, -4007, "claim queue full")                                   \
  X(ESHUTDOWN, -4008, "pool terminated")                                     \
  X(ECANCELED, -4009, "canceled")                                            \
  X(EBADADDR, -4010, "malformed backend address")                            \
  X(EPOLICY, -4011, "invalid pool policy")                                   \
  X(ECONNECT, -4012, "connect failed")                                       \
  X(ECHECK, -4013, "health check failed")                                    \
  X(ERECYCLE, -4014, "recycle failed")                                       \
  X(EACQUIRE, -4015, "on_acquire failed")                                    \
  X(EPROTO, -4016, "unexpected reply from server")                           \
  X(EAUTH, -4017, "authentication failed")                                   \
  X(EROLE, -4018, "backend has the wrong role")                              \
  X(EBUSY, -4019, "not allowed in this state")                               \
  X(ECONFIG, -4020, "invalid connector configuration")                       \
  X(ENOTSUP, -4021, "not supported")                                         \
  X(EBROKEN, -4022, "connection released as broken")                         \
  X(ECLOSED, -4023, "connection closed by peer")                            \
  X(EGONE, -4024, "backend went away")                                     \
  X(EREJECTED, -4025, "rejected by a hook")

/** qorb's own error codes, QORB_EINVAL ... (see QORB_ERRNO_MAP). */
enum qorb_errno {
#define QORB__ERR_ENUM(name, code, text) QORB_##name = (code),
  QORB_ERRNO_MAP(QORB__ERR_ENUM)
#undef QORB__ERR_ENUM
};

/**
 * Text for an error code.
 * @param err  a qorb code or -errno.
 * @return a static string; never NULL ("unknown error" for codes we do not
 *         know).
 * Ownership: the string is static. Thread: any.
 */
QORB_EXTERN const char *qorb_strerror(int err);

/**
 * The symbolic name of an error code, such as "QORB_ENOTONLINE" or "ECONNREFUSED".
 * @return a static string; never NULL.
 * Ownership: static. Thread: any.
 */
QORB_EXTERN const char *qorb_err_name(int err);

/**
 * Replace the allocator for every later qorb allocation: the core's, the
 * static resolver's and the connectors' (libqorb-pg and libqorb-redis
 * allocate their own objects through qorb_malloc() and friends below).
 * Objects that libpq, hiredis or libev allocate themselves come from their
 * own allocators. Call it before any other qorb call, or not at all. A NULL
 * argument restores the libc default for that function.
 * @return 0.
 * Thread: before any other qorb call, from one thread.
 */
QORB_EXTERN int qorb_set_allocator(void *(*malloc_fn)(size_t),
                                   void *(*calloc_fn)(size_t, size_t),
                                   void *(*realloc_fn)(void *, size_t),
                                   void (*free_fn)(void *));

/**
 * Allocate through the allocator set by qorb_set_allocator(), as the core
 * does. Connectors and resolvers use these for every object of their own,
 * so that a program's allocator (and an out-of-memory test) sees them too.
 * A size of 0 allocates 1 byte, so a non-NULL result always means success.
 * @param size  bytes wanted.
 * @return the block, or NULL when out of memory.
 * Ownership: the caller's; free it with qorb_free(), never with free().
 * Thread: any (the allocator must be thread-safe).
 */
QORB_EXTERN void *qorb_malloc(size_t size);

/**
 * Allocate `n` zeroed elements of `size` bytes, as qorb_malloc().
 * @return the block, or NULL when out of memory.
 * Ownership: the caller's; free it with qorb_free(). Thread: any.
 */
QORB_EXTERN void *qorb_calloc(size_t n, size_t size);

/**
 * Resize a block from qorb_malloc(), qorb_calloc() or qorb_realloc(); a NULL
 * `p` allocates anew.
 * @return the block, which may have moved, or NULL when out of memory (then
 *         `p` is left as it was, still the caller's).
 * Ownership: the caller's; free it with qorb_free(). Thread: any.
 */
QORB_EXTERN void *qorb_realloc(void *p, size_t size);

/**
 * Free a block from qorb_malloc(), qorb_calloc(), qorb_realloc() or
 * qorb_strdup(). NULL is ignored.
 * Ownership: the block is gone. Thread: any.
 */
QORB_EXTERN void qorb_free(void *p);

/**
 * Copy a string with qorb_malloc().
 * @param s  the string; not NULL.
 * @return the copy, or NULL when out of memory.
 * Ownership: `s` is borrowed for the call; the copy is the caller's, to free
 * with qorb_free(). Thread: any.
 */
QORB_EXTERN char *qorb_strdup(const char *s);

/** Log levels passed to a qorb_log_cb. */
typedef enum qorb_log_level {
  QORB_LOG_DEBUG = 0,
  QORB_LOG_INFO = 1,
  QORB_LOG_WARN = 2,
  QORB_LOG_ERROR = 3
} qorb_log_level_t;

/**
 * Log callback. qorb never prints; a pool with a log callback in its policy
 * reports through it (leaked claims, backend failures, state changes).
 * Callback: on the pool loop thread, any number of times. `msg` is valid
 * only during the call.
 */
typedef void (*qorb_log_cb)(const char *pool_name, qorb_log_level_t level,
                            const char *msg, void *arg);

/**
 * One backend: a numeric address and a port. Resolvers produce these;
 * connectors receive them. Plain data.
 */
typedef struct qorb_addr {
  int family;     /**< AF_INET or AF_INET6 */
  uint16_t port;  /**< port, host byte order */
  char host[46];  /**< numeric address text, e.g. "127.0.0.2" or "::1" */
  char text[56];  /**< "host:port", IPv6 in brackets: "[::1]:5432" */
} qorb_addr_t;

/**
 * Parse "host:port" (IPv4 "1.2.3.4:5", IPv6 "[::1]:5") into `out`. Only
 * numeric addresses: resolving names is a resolver's work.
 * @return 0, QORB_EINVAL for NULL arguments, QORB_EBADADDR for malformed
 *         text (no port, port 0 or over 65535, an IPv6 address without
 *         brackets, trailing characters).
 * Ownership: nothing is kept. Thread: any.
 */
QORB_EXTERN int qorb_addr_parse(const char *text, qorb_addr_t *out);

/**
 * Fill `out` from a numeric host and a port.
 * @return 0, QORB_EINVAL for NULL, QORB_EBADADDR when host is not a numeric
 *         IPv4 or IPv6 address or port is 0.
 * Thread: any.
 */
QORB_EXTERN int qorb_addr_set(qorb_addr_t *out, const char *host,
                              uint16_t port);

/** 1 when two addresses name the same backend, 0 otherwise. Thread: any. */
QORB_EXTERN int qorb_addr_equal(const qorb_addr_t *a, const qorb_addr_t *b);

#ifdef __cplusplus
}
#endif
#endif /* QORB_COMMON_H */
