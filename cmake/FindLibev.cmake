# SPDX-License-Identifier: MIT
#
# FindLibev.cmake: find libev, which ships neither a pkg-config file nor a
# CMake package on Debian. Defines the imported target Libev::Libev and the
# variables Libev_FOUND, Libev_INCLUDE_DIR, Libev_LIBRARY.
#
# Installed next to qorbConfig.cmake so that a consumer's find_package(qorb)
# can recreate the same target that qorb's exported targets name.

find_path(Libev_INCLUDE_DIR NAMES ev.h PATH_SUFFIXES libev)
find_library(Libev_LIBRARY NAMES ev)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Libev
  REQUIRED_VARS Libev_LIBRARY Libev_INCLUDE_DIR)
mark_as_advanced(Libev_INCLUDE_DIR Libev_LIBRARY)

if(Libev_FOUND AND NOT TARGET Libev::Libev)
  add_library(Libev::Libev UNKNOWN IMPORTED)
  set_target_properties(Libev::Libev PROPERTIES
    IMPORTED_LOCATION "${Libev_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${Libev_INCLUDE_DIR}")
endif()
