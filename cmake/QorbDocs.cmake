# SPDX-License-Identifier: MIT
#
# QorbDocs.cmake: the API reference (Doxygen) and the man pages.
#
#   target docs       (only when doxygen is found)
#                     cmake --build build --target docs -> build/docs/html
#   ctest doxygen     label docs: Doxygen over include/qorb with every
#                     warning an error (an undocumented public function,
#                     macro, type or field; a bad doc command). Skipped
#                     (return code 77) when doxygen is missing.
#   ctest man_pages   label docs: every page in docs/man through
#                     `groff -man -ww -z`, no warning allowed; skipped when
#                     groff is missing.
#   install           docs/man/*.[1-9] to share/man/man<section>.
#
include_guard(GLOBAL)

find_program(QORB_DOXYGEN doxygen)
find_program(QORB_GROFF groff)
mark_as_advanced(QORB_DOXYGEN QORB_GROFF)

set(_qorb_docs_dir "${PROJECT_BINARY_DIR}/docs")
# docs/Doxyfile names its paths from the top of the tree; Doxygen runs there
# with a file that includes it and only moves the output into the build.
file(WRITE "${_qorb_docs_dir}/Doxyfile.build"
  "@INCLUDE = ${PROJECT_SOURCE_DIR}/docs/Doxyfile\n"
  "OUTPUT_DIRECTORY = ${_qorb_docs_dir}\n"
  "PROJECT_NUMBER = ${PROJECT_VERSION}\n"
  "WARN_AS_ERROR = NO\n")
file(WRITE "${_qorb_docs_dir}/Doxyfile.test"
  "@INCLUDE = ${PROJECT_SOURCE_DIR}/docs/Doxyfile\n"
  "OUTPUT_DIRECTORY = ${_qorb_docs_dir}/test\n"
  "PROJECT_NUMBER = ${PROJECT_VERSION}\n"
  "WARN_AS_ERROR = NO\n"
  "WARN_LOGFILE = ${_qorb_docs_dir}/test/warnings.log\n")

if(QORB_DOXYGEN)
  add_custom_target(docs
    COMMAND "${QORB_DOXYGEN}" "${_qorb_docs_dir}/Doxyfile.build"
    WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
    COMMENT "Doxygen: API reference in ${_qorb_docs_dir}/html"
    VERBATIM)
endif()

# The tests live in the top directory's test list only when testing is on.
if(QORB_BUILD_TESTS)
  if(QORB_DOXYGEN)
    add_test(NAME doxygen
      COMMAND "${CMAKE_COMMAND}"
        "-DDOXYGEN=${QORB_DOXYGEN}"
        "-DDOXYFILE=${_qorb_docs_dir}/Doxyfile.test"
        "-DOUT=${_qorb_docs_dir}/test"
        "-DSOURCE_DIR=${PROJECT_SOURCE_DIR}"
        -P "${PROJECT_SOURCE_DIR}/cmake/QorbRunDoxygen.cmake")
  else()
    add_test(NAME doxygen COMMAND sh -c "echo 'doxygen not found: skipped'; exit 77")
  endif()
  set_tests_properties(doxygen PROPERTIES
    LABELS docs TIMEOUT 120 SKIP_RETURN_CODE 77)

  if(QORB_GROFF)
    add_test(NAME man_pages
      COMMAND sh "${PROJECT_SOURCE_DIR}/docs/man/check.sh" "${QORB_GROFF}"
      WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}/docs/man")
  else()
    add_test(NAME man_pages COMMAND sh -c "echo 'groff not found: skipped'; exit 77")
  endif()
  set_tests_properties(man_pages PROPERTIES
    LABELS docs TIMEOUT 60 SKIP_RETURN_CODE 77)
endif()

file(GLOB _qorb_man_pages CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/docs/man/*.[1-9]")
foreach(_p IN LISTS _qorb_man_pages)
  string(REGEX REPLACE "^.*\\.([1-9])$" "\\1" _s "${_p}")
  install(FILES "${_p}" DESTINATION "${CMAKE_INSTALL_MANDIR}/man${_s}")
endforeach()
unset(_p)
unset(_s)
unset(_qorb_man_pages)
unset(_qorb_docs_dir)
