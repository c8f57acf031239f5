# SPDX-License-Identifier: MIT
#
# QorbRunDoxygen.cmake: the ctest `doxygen` (see QorbDocs.cmake).
#   cmake -DDOXYGEN=... -DDOXYFILE=... -DOUT=... -DSOURCE_DIR=...
#         -P QorbRunDoxygen.cmake
# Runs Doxygen from SOURCE_DIR and fails on any warning, each printed.

file(REMOVE_RECURSE "${OUT}")
file(MAKE_DIRECTORY "${OUT}")
execute_process(COMMAND "${DOXYGEN}" "${DOXYFILE}"
  WORKING_DIRECTORY "${SOURCE_DIR}"
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "doxygen failed (${rc}):\n${out}${err}")
endif()

set(log "")
if(EXISTS "${OUT}/warnings.log")
  file(STRINGS "${OUT}/warnings.log" log)
endif()
set(failing 0)
foreach(line IN LISTS log)
  if(line STREQUAL "")
    continue()
  endif()
  string(REPLACE "${SOURCE_DIR}/" "" line "${line}")
  math(EXPR failing "${failing} + 1")
  message(STATUS "ERROR: ${line}")
endforeach()
message(STATUS "doxygen: ${failing} warnings")
if(failing GREATER 0)
  message(FATAL_ERROR "doxygen: ${failing} warnings in the public headers")
endif()
