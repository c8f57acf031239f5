# SPDX-License-Identifier: MIT
#
# QorbProbes.cmake: USDT probes from core/probes.d through systemtap's
# `dtrace` wrapper (Debian: systemtap-sdt-dev).
#
#   dtrace -h  -> ${CMAKE_BINARY_DIR}/core/qorb_probes.h, the probe macros and
#                 QORB_*_ENABLED() semaphore tests (included by core/internal.h
#                 when QORB_HAVE_PROBES is defined).
#   dtrace -G  -> ${CMAKE_BINARY_DIR}/core/qorb_probes.o, the object that
#                 defines the semaphores; linked into libqorb.so and libqorb.a.
#
# `dtrace -G` compiles a small C file with $CC (default gcc) and $CFLAGS and
# always adds -fPIC itself, so one object serves both libraries. We pass our
# own compiler and an empty CFLAGS: the object holds only data, so it needs
# no sanitizer or warning flags.
#
# Sets QORB_WITH_PROBES to OFF (as a normal variable) when sys/sdt.h or
# dtrace is missing. When on, defines:
#   target qorb_probes           custom target; depend on it before compiling
#                                anything that includes qorb_probes.h
#   QORB_PROBES_HEADER           path of the generated header
#   QORB_PROBES_OBJECT           path of the generated semaphore object

include_guard(GLOBAL)

if(QORB_WITH_PROBES)
  include(CheckIncludeFile)
  check_include_file(sys/sdt.h QORB_HAVE_SYS_SDT_H)
  find_program(QORB_DTRACE dtrace)
  if(NOT QORB_HAVE_SYS_SDT_H OR NOT QORB_DTRACE)
    message(WARNING
      "qorb: sys/sdt.h or dtrace not found (Debian: systemtap-sdt-dev); "
      "building without USDT probes")
    set(QORB_WITH_PROBES OFF)
  endif()
endif()

if(QORB_WITH_PROBES)
  set(_qorb_probes_d "${PROJECT_SOURCE_DIR}/core/probes.d")
  set(_qorb_probes_dir "${PROJECT_BINARY_DIR}/core")
  set(QORB_PROBES_HEADER "${_qorb_probes_dir}/qorb_probes.h")
  set(QORB_PROBES_OBJECT "${_qorb_probes_dir}/qorb_probes.o")
  file(MAKE_DIRECTORY "${_qorb_probes_dir}")

  add_custom_command(
    OUTPUT "${QORB_PROBES_HEADER}"
    COMMAND "${QORB_DTRACE}" -h -s "${_qorb_probes_d}" -o "${QORB_PROBES_HEADER}"
    DEPENDS "${_qorb_probes_d}"
    WORKING_DIRECTORY "${_qorb_probes_dir}"
    COMMENT "Generating qorb_probes.h (dtrace -h)"
    VERBATIM)
  # dtrace writes its temporary files into the working directory.
  add_custom_command(
    OUTPUT "${QORB_PROBES_OBJECT}"
    COMMAND "${CMAKE_COMMAND}" -E env "CC=${CMAKE_C_COMPILER}" "CFLAGS="
            "${QORB_DTRACE}" -G -s "${_qorb_probes_d}" -o "${QORB_PROBES_OBJECT}"
    DEPENDS "${_qorb_probes_d}"
    WORKING_DIRECTORY "${_qorb_probes_dir}"
    COMMENT "Generating qorb_probes.o (dtrace -G)"
    VERBATIM)
  # One custom target drives both commands; the libraries depend on it, so
  # parallel builds never run dtrace twice for the same output.
  add_custom_target(qorb_probes DEPENDS "${QORB_PROBES_HEADER}" "${QORB_PROBES_OBJECT}")
  set_source_files_properties("${QORB_PROBES_OBJECT}" PROPERTIES
    EXTERNAL_OBJECT TRUE GENERATED TRUE)
  set_source_files_properties("${QORB_PROBES_HEADER}" PROPERTIES GENERATED TRUE)
  unset(_qorb_probes_d)
  unset(_qorb_probes_dir)
endif()
