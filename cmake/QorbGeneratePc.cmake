# SPDX-License-Identifier: MIT
#
# QorbGeneratePc.cmake: runs at install time (from install(CODE), see
# qorb__install_pc() in QorbLibrary.cmake). It writes a .pc file from
# cmake/qorb.pc.in for *this* installation, so that `cmake --install build
# --prefix /somewhere` yields a .pc that finds /somewhere (relative to
# itself, below), then installs it into <libdir>/pkgconfig (file(INSTALL)
# honours DESTDIR and the install manifest).
#
# Inputs (set by the caller): QORB_PC_TEMPLATE, QORB_PC_OUT, QORB_PC_NAME,
# QORB_PC_DESCRIPTION, QORB_PC_VERSION, QORB_PC_REQUIRES,
# QORB_PC_LIBS_PRIVATE, QORB_PC_LIBDIR_REL, QORB_PC_INCLUDEDIR_REL.

# The prefix as a path relative to the .pc file's own folder
# (${pcfiledir}, which pkg-config and pkgconf both set), so that a prefix
# moved elsewhere (or unpacked from a tarball) still works; absolute
# libdir or includedir settings keep the absolute prefix.
set(QORB_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
if(NOT IS_ABSOLUTE "${QORB_PC_LIBDIR_REL}" AND
   NOT IS_ABSOLUTE "${QORB_PC_INCLUDEDIR_REL}")
  set(QORB_PC_PREFIX "\${pcfiledir}/..")
  string(REPLACE "/" ";" _qorb_pc_parts "${QORB_PC_LIBDIR_REL}")
  foreach(_part IN LISTS _qorb_pc_parts)
    if(NOT _part STREQUAL "" AND NOT _part STREQUAL ".")
      string(APPEND QORB_PC_PREFIX "/..")
    endif()
  endforeach()
endif()
foreach(_kind LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${QORB_PC_${_kind}_REL}")
    set(QORB_PC_${_kind} "${QORB_PC_${_kind}_REL}")
  else()
    set(QORB_PC_${_kind} "\${prefix}/${QORB_PC_${_kind}_REL}")
  endif()
endforeach()

configure_file("${QORB_PC_TEMPLATE}" "${QORB_PC_OUT}" @ONLY)

if(IS_ABSOLUTE "${QORB_PC_LIBDIR_REL}")
  set(_qorb_pc_dest "${QORB_PC_LIBDIR_REL}/pkgconfig")
else()
  set(_qorb_pc_dest "${CMAKE_INSTALL_PREFIX}/${QORB_PC_LIBDIR_REL}/pkgconfig")
endif()
file(INSTALL DESTINATION "${_qorb_pc_dest}" TYPE FILE FILES "${QORB_PC_OUT}")
