# SPDX-License-Identifier: MIT
#
# QorbCompilerFlags.cmake: warnings and sanitizers for everything qorb builds
# (libraries, connectors, tests, bench, examples, tools). Included once from
# the top-level CMakeLists.txt before any add_subdirectory(), so the flags are
# directory-wide and reach every target below. They are never exported to
# consumers of the installed package.
#
#   QORB_WERROR    ON adds -Werror (CI turns it on).
#   QORB_SANITIZE  "" (none), "address;undefined" or "thread" (a list; also
#                  accepts "address", "undefined" or "leak" alone).

include_guard(GLOBAL)

set(QORB_WARNING_FLAGS -Wall -Wextra -Wconversion -Wstrict-prototypes)
if(QORB_WERROR)
  list(APPEND QORB_WARNING_FLAGS -Werror)
endif()
# The generator expression keeps the C-only -Wstrict-prototypes away from any
# C++ a subproject might add later.
add_compile_options("$<$<COMPILE_LANGUAGE:C>:${QORB_WARNING_FLAGS}>")

set(QORB_SANITIZE_FLAGS "")
if(QORB_SANITIZE)
  set(_qorb_known address undefined thread leak)
  foreach(_s IN LISTS QORB_SANITIZE)
    if(NOT _s IN_LIST _qorb_known)
      message(FATAL_ERROR
        "QORB_SANITIZE: unknown sanitizer '${_s}' (use \"address;undefined\" or \"thread\")")
    endif()
  endforeach()
  if("thread" IN_LIST QORB_SANITIZE AND
     ("address" IN_LIST QORB_SANITIZE OR "leak" IN_LIST QORB_SANITIZE))
    message(FATAL_ERROR "QORB_SANITIZE: thread cannot be combined with address or leak")
  endif()
  list(JOIN QORB_SANITIZE "," _qorb_san)
  # -g and frame pointers give readable reports in every build type;
  # -fno-sanitize-recover=all makes a UBSan finding fail the test instead of
  # scrolling past.
  set(QORB_SANITIZE_FLAGS
    -fsanitize=${_qorb_san} -fno-omit-frame-pointer -g -fno-sanitize-recover=all)
  add_compile_options(${QORB_SANITIZE_FLAGS})
  add_link_options(${QORB_SANITIZE_FLAGS})
  message(STATUS "qorb: sanitizers: ${_qorb_san}")
  unset(_qorb_san)
  unset(_qorb_known)
endif()
