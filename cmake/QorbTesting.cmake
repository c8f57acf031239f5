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
#   qorb_add_server_suite(NAME pg          # suite name: labels integration;pg,
#                                          # fixture/lock pg_servers
#     SCRIPT pg_servers.sh                 # server script (this directory)
#     TESTLIB qorb_pg_testlib              # the suite's helper library ...
#     SOURCES pg_testlib.c                 # ... built from these
#     DEFINE_PREFIX PGT                    # PGT_SERVERS_SH, PGT_TESTBED
#     LINK qorb-pg_static PkgConfig::CMOCKA # the helper library's libraries
#     TESTS test_pg_connect test_pg_threads:threads  # NAME[:label,...]
#     [TIMEOUT 180]                        # per test; default 300
#     [FIXTURE_TIMEOUT 180])               # server start/stop; default 120
#
# declares the integration tests of one connector against servers that
# SCRIPT starts in <build dir>/testbed: the ctest fixture NAME_servers
# (tests NAME_servers_start, `sh SCRIPT TESTBED setup`, before and
# NAME_servers_stop, `... cleanup`, after, whatever happened in between),
# the helper library (linked with qorb_test_support, so the suite can use
# tests/support/itest.h; the script and test bed paths come as the
# DEFINE_PREFIX_SERVERS_SH and DEFINE_PREFIX_TESTBED definitions) and one
# test per TESTS entry whose NAME.c exists, each holding the RESOURCE_LOCK
# NAME_servers (the tests share, stop and restart the servers, so they run
# one at a time).
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

function(qorb_add_server_suite)
  cmake_parse_arguments(PARSE_ARGV 0 A ""
    "NAME;SCRIPT;TESTLIB;DEFINE_PREFIX;TIMEOUT;FIXTURE_TIMEOUT"
    "SOURCES;LINK;TESTS")
  foreach(_req NAME SCRIPT TESTLIB SOURCES DEFINE_PREFIX)
    if(NOT A_${_req})
      message(FATAL_ERROR "qorb_add_server_suite: ${_req} is required")
    endif()
  endforeach()
  if(A_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "qorb_add_server_suite(${A_NAME}): unknown arguments: ${A_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  if(NOT A_FIXTURE_TIMEOUT)
    set(A_FIXTURE_TIMEOUT 120)
  endif()

  set(_script "${CMAKE_CURRENT_SOURCE_DIR}/${A_SCRIPT}")
  set(_testbed "${CMAKE_CURRENT_BINARY_DIR}/testbed")
  set(_fixture "${A_NAME}_servers")
  set(_labels integration ${A_NAME})

  add_library(${A_TESTLIB} STATIC ${A_SOURCES})
  target_compile_definitions(${A_TESTLIB} PUBLIC
    ${A_DEFINE_PREFIX}_SERVERS_SH="${_script}"
    ${A_DEFINE_PREFIX}_TESTBED="${_testbed}")
  target_include_directories(${A_TESTLIB} PUBLIC "${CMAKE_CURRENT_SOURCE_DIR}")
  target_link_libraries(${A_TESTLIB} PUBLIC ${A_LINK})
  if(TARGET qorb_test_support)
    target_link_libraries(${A_TESTLIB} PUBLIC qorb_test_support)
  endif()

  add_test(NAME ${_fixture}_start COMMAND sh "${_script}" "${_testbed}" setup)
  add_test(NAME ${_fixture}_stop COMMAND sh "${_script}" "${_testbed}" cleanup)
  set_tests_properties(${_fixture}_start PROPERTIES
    FIXTURES_SETUP ${_fixture} LABELS "${_labels}"
    RESOURCE_LOCK ${_fixture} TIMEOUT ${A_FIXTURE_TIMEOUT})
  set_tests_properties(${_fixture}_stop PROPERTIES
    FIXTURES_CLEANUP ${_fixture} LABELS "${_labels}"
    RESOURCE_LOCK ${_fixture} TIMEOUT ${A_FIXTURE_TIMEOUT})

  foreach(_t IN LISTS A_TESTS)
    string(REPLACE ":" ";" _t "${_t}")
    list(GET _t 0 _name)
    set(_extra "")
    list(LENGTH _t _n)
    if(_n GREATER 1)
      list(GET _t 1 _extra)
      string(REPLACE "," ";" _extra "${_extra}")
    endif()
    if(NOT EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/${_name}.c")
      continue()
    endif()
    qorb_add_unit_test(NAME ${_name}
      SOURCES ${_name}.c
      LABELS ${_labels} ${_extra}
      DEPS ${A_TESTLIB} ${A_LINK}
      RESOURCE_LOCK ${_fixture}
      FIXTURES_REQUIRED ${_fixture}
      TIMEOUT ${A_TIMEOUT})
  endforeach()
endfunction()
