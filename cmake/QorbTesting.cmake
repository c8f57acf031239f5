# SPDX-License-Identifier: MIT
#
# QorbTesting.cmake: one call per test program.
#
#   qorb_add_unit_test(NAME test_pool
#     SOURCES test_pool.c                 # relative to the calling directory
#     [LABELS unit oom]                   # default: unit
#     [DEPS qorb::pg_static PkgConfig::PQ] # extra libraries to link; if a
#                                       # Foo::Bar target is missing from this
#                                       # build, the test is left out
#     [INCLUDE_DIRS ...] [DEFINITIONS ...]
#     [ARGS ...]                          # command-line arguments for ctest
#     [ENVIRONMENT "NAME=value" ...]
#     [TIMEOUT 300]                       # seconds; default 300
#     [RESOURCE_LOCK name ...]            # tests sharing a server/port
#     [FIXTURES_REQUIRED name ...]        # ctest fixtures (server start/stop)
#     [RUN_SERIAL])                       # run with nothing else in parallel
#
# builds executable NAME linked with cmocka (PkgConfig::CMOCKA), qorb_static
# and, when tests/support has sources, the qorb_test_support library; with
# include dirs tests/support, core/ (core/internal.h) and the build's core/
# (qorb_probes.h), and QORB_HAVE_PROBES=1 when probes are on, exactly as the
# core sources see them. It registers the test with ctest under the same name,
# run from the test's build directory.
#
# Label convention (ctest -L):
#   unit         fast tests with the fake connector/resolver, no servers
#   oom          allocation-failure sweeps
#   threads      anything that starts threads; the TSan build runs `-L threads`
#   pg redis dns needs that server (started by the test itself)
#   integration  every test that needs a real server
# A test may carry several labels (e.g. "integration;pg;threads").

include_guard(GLOBAL)

function(qorb_add_unit_test)
  cmake_parse_arguments(PARSE_ARGV 0 A "RUN_SERIAL"
    "NAME;TIMEOUT"
    "SOURCES;LABELS;DEPS;INCLUDE_DIRS;DEFINITIONS;ARGS;ENVIRONMENT;RESOURCE_LOCK;FIXTURES_REQUIRED")
  if(NOT A_NAME OR NOT A_SOURCES)
    message(FATAL_ERROR "qorb_add_unit_test: NAME and SOURCES are required")
  endif()
  if(A_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "qorb_add_unit_test(${A_NAME}): unknown arguments: ${A_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()

  # A test that needs an optional library which this build does not have
  # (QORB_WITH_PG=OFF, no hiredis, ...) is left out, not an error.
  foreach(dep IN LISTS A_DEPS)
    if(dep MATCHES "::" AND NOT TARGET "${dep}")
      message(STATUS "qorb: leaving out test ${A_NAME} (no ${dep} in this build)")
      return()
    endif()
  endforeach()

  add_executable(${A_NAME} ${A_SOURCES})
  target_include_directories(${A_NAME} PRIVATE
    "${PROJECT_SOURCE_DIR}/tests/support" ${A_INCLUDE_DIRS})
  target_compile_definitions(${A_NAME} PRIVATE ${A_DEFINITIONS})
  if(TARGET qorb_test_support)
    target_link_libraries(${A_NAME} PRIVATE qorb_test_support)
  endif()
  target_link_libraries(${A_NAME} PRIVATE
    ${A_DEPS} qorb_internal qorb_static PkgConfig::CMOCKA)

  add_test(NAME ${A_NAME} COMMAND ${A_NAME} ${A_ARGS})
  set_tests_properties(${A_NAME} PROPERTIES
    LABELS "${A_LABELS}"
    TIMEOUT "${A_TIMEOUT}")
  if(A_ENVIRONMENT)
    set_tests_properties(${A_NAME} PROPERTIES ENVIRONMENT "${A_ENVIRONMENT}")
  endif()
  if(A_RESOURCE_LOCK)
    set_tests_properties(${A_NAME} PROPERTIES RESOURCE_LOCK "${A_RESOURCE_LOCK}")
  endif()
  if(A_FIXTURES_REQUIRED)
    set_tests_properties(${A_NAME} PROPERTIES FIXTURES_REQUIRED "${A_FIXTURES_REQUIRED}")
  endif()
  if(A_RUN_SERIAL)
    set_tests_properties(${A_NAME} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()
