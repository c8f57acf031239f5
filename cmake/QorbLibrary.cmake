# SPDX-License-Identifier: MIT
#
# QorbLibrary.cmake: how qorb builds and installs its libraries.
#
# For connector and resolver authors: build an optional qorb library with
#
#   qorb_add_component(NAME pg
#     SOURCES pg.c pg_conninfo.c        # relative to the calling directory
#     DEPS PkgConfig::PQ                # public: users of qorb::pg get these
#     [PRIVATE_DEPS ...]                # private to the shared library
#     [COMPONENT_DEPS dns]              # other qorb libraries it links
#     [HEADERS ${PROJECT_SOURCE_DIR}/include/qorb/pg.h]
#     PC_REQUIRES "qorb libpq"          # the Requires: line of qorb-pg.pc
#     [DESCRIPTION "qorb PostgreSQL connector (libpq)"])
#
# in connectors/pg/CMakeLists.txt (connectors/redis: NAME redis, DEPS
# PkgConfig::HIREDIS, PC_REQUIRES "qorb hiredis"; resolvers/dns: NAME dns,
# DEPS PkgConfig::CARES, PC_REQUIRES "qorb libcares"). It makes:
#
#   qorb-NAME_obj      the OBJECT library both are linked from: put extra
#                      compile definitions/options for the sources here
#   qorb-NAME          shared library libqorb-NAME.so.<VERSION>, soname
#                      libqorb-NAME.so.<SOVERSION>; alias qorb::NAME
#   qorb-NAME_static   static library libqorb-NAME.a; alias qorb::NAME_static
#                      (link this one from tests, bench and examples)
#   qorb-NAME.pc       installed to <libdir>/pkgconfig
#   install + export   headers (HEADERS, default include/qorb/NAME.h when it
#                      exists) to include/qorb, libraries, and
#                      lib/cmake/qorb/qorb-NAMETargets.cmake, which
#                      qorbConfig.cmake picks up, so an installed
#                      find_package(qorb COMPONENTS NAME) gives qorb::NAME.
#
# Both libraries link qorb (shared) / qorb_static respectively, so they get
# the public include dirs (include/ and the generated include/qorb/version.h)
# and libev. COMPONENT_DEPS names qorb libraries made by qorb_add_component()
# before this one (libqorb-pg and libqorb-redis link libqorb-dns to resolve
# host names): the shared library links the shared one privately, the static
# library the static one, the .pc file lists it in Requires (so that
# `pkg-config --libs` names it: a program's link must find every library
# the shared one needs), and the installed package leaves this component
# out when that one is missing.
# They do not see core/internal.h: connectors talk to the core
# through <qorb/connector.h> and <qorb/resolver.h> only. The calling
# directory is a private include dir. Warnings, -Werror and sanitizers come
# from the top level, as for every target.
#
# Imported targets in DEPS/PRIVATE_DEPS must be PkgConfig:: targets (such as
# PkgConfig::PQ): lib/cmake/qorb/qorb-NAMEDeps.cmake runs pkg-config for them
# again on the consumer's machine, so the installed package names no path of
# the build machine and can be moved (see qorb__write_deps_file()).
#
# Variables set by the top level that connector authors may use:
#   QORB_SOVERSION, PROJECT_VERSION, QORB_WITH_PROBES, and the imported
#   targets PkgConfig::PQ, PkgConfig::HIREDIS, PkgConfig::CARES,
#   PkgConfig::CMOCKA (each defined only when found), Libev::Libev,
#   Threads::Threads.

include_guard(GLOBAL)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(QORB_CMAKE_DIR "${CMAKE_CURRENT_LIST_DIR}")
set(QORB_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/qorb")

# qorb__install_pc(NAME <libname> DESCRIPTION <text> [REQUIRES <pc list>]
#                  [LIBS_PRIVATE <flags>])
# Install <libname>.pc. The file is written at install time, with the
# prefix of that installation (see QorbGeneratePc.cmake).
function(qorb__install_pc)
  cmake_parse_arguments(PARSE_ARGV 0 A "" "NAME;DESCRIPTION;REQUIRES;LIBS_PRIVATE" "")
  set(out "${PROJECT_BINARY_DIR}/pkgconfig/${A_NAME}.pc")
  install(CODE "
    set(QORB_PC_TEMPLATE [[${QORB_CMAKE_DIR}/qorb.pc.in]])
    set(QORB_PC_OUT [[${out}]])
    set(QORB_PC_NAME [[${A_NAME}]])
    set(QORB_PC_DESCRIPTION [[${A_DESCRIPTION}]])
    set(QORB_PC_VERSION [[${PROJECT_VERSION}]])
    set(QORB_PC_REQUIRES [[${A_REQUIRES}]])
    set(QORB_PC_LIBS_PRIVATE [[${A_LIBS_PRIVATE}]])
    set(QORB_PC_LIBDIR_REL [[${CMAKE_INSTALL_LIBDIR}]])
    set(QORB_PC_INCLUDEDIR_REL [[${CMAKE_INSTALL_INCLUDEDIR}]])
    include([[${QORB_CMAKE_DIR}/QorbGeneratePc.cmake]])
  ")
endfunction()

# qorb__library_properties(<target> <output name> <export name> [SHARED])
function(qorb__library_properties tgt outname exportname)
  set_target_properties(${tgt} PROPERTIES
    OUTPUT_NAME "${outname}"
    EXPORT_NAME "${exportname}")
  if(ARGN STREQUAL "SHARED")
    set_target_properties(${tgt} PROPERTIES
      VERSION "${PROJECT_VERSION}"
      SOVERSION "${QORB_SOVERSION}")
    # Catch a missing link dependency when the library is built, not when a
    # user links it. Sanitizer runtimes (clang) leave symbols undefined in
    # shared objects on purpose, so skip the check there.
    if(CMAKE_SYSTEM_NAME STREQUAL "Linux" AND NOT QORB_SANITIZE)
      target_link_options(${tgt} PRIVATE "LINKER:--no-undefined")
    endif()
  endif()
endfunction()

# The pkg-config module behind each PkgConfig::<PREFIX> target that a
# component may name in DEPS (the top level's pkg_check_modules() calls).
# A connector that adds another pkg-config dependency adds it here, or sets
# QORB_PKG_MODULE_<PREFIX> before calling qorb_add_component().
set(QORB_PKG_MODULE_PQ libpq)
set(QORB_PKG_MODULE_HIREDIS hiredis)
set(QORB_PKG_MODULE_HIREDIS_SSL hiredis_ssl)
set(QORB_PKG_MODULE_CARES libcares)
set(QORB_PKG_MODULE_MHD libmicrohttpd)

# qorb__write_deps_file(<file> <component> <qorb components> <targets...>)
# Write lib/cmake/qorb/qorb-<component>Deps.cmake, which the installed
# qorbConfig.cmake includes before qorb-<component>Targets.cmake. It makes
# the imported (non-qorb) targets among <targets> again on the consumer's
# machine, by running pkg-config there: nothing of the build machine (no
# absolute path) is written into the installed package. When a dependency
# cannot be found, the file sets qorb_<component>_FOUND to FALSE and a
# reason in _qorb_missing; the config file then leaves the component out
# (an error only if the consumer asked for it). <qorb components> (a list,
# may be empty) are qorb libraries it links: they must have been found
# (their targets files are read first, in name order: "dns" sorts before
# "pg" and "redis").
function(qorb__write_deps_file file component qorb_components)
  set(text "# Generated by qorb_add_component(): finds, on this machine, the\n")
  string(APPEND text "# libraries that the exported qorb::${component} targets link to.\n")
  foreach(c IN LISTS qorb_components)
    string(APPEND text "
if(qorb_${component}_FOUND AND NOT TARGET qorb::${c})
  set(qorb_${component}_FOUND FALSE)
  string(APPEND _qorb_missing \" qorb::${component} needs qorb::${c}.\")
endif()
")
  endforeach()
  foreach(dep IN LISTS ARGN)
    if(NOT TARGET "${dep}" OR dep MATCHES "^qorb" OR
       dep STREQUAL "Libev::Libev" OR dep STREQUAL "Threads::Threads")
      continue()
    endif()
    if(NOT dep MATCHES "^PkgConfig::(.+)$")
      message(FATAL_ERROR "qorb_add_component(${component}): dependency ${dep} "
        "is not a PkgConfig:: target; the installed package could not find it again")
    endif()
    set(prefix "${CMAKE_MATCH_1}")
    if(DEFINED ${prefix}_MODULE_NAME)
      set(module "${${prefix}_MODULE_NAME}")
    elseif(DEFINED QORB_PKG_MODULE_${prefix})
      set(module "${QORB_PKG_MODULE_${prefix}}")
    else()
      message(FATAL_ERROR "qorb_add_component(${component}): no pkg-config module "
        "known for ${dep}; set QORB_PKG_MODULE_${prefix} (cmake/QorbLibrary.cmake)")
    endif()
    # The consumer's own variables and targets are left alone: pkg-config's
    # results go under a _qorb_dep_ prefix, and PkgConfig::<PREFIX> (the name
    # the exported targets use) is made only when the consumer has none.
    string(APPEND text "
if(qorb_${component}_FOUND AND NOT TARGET ${dep})
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(_qorb_dep_${prefix} QUIET IMPORTED_TARGET ${module})
  endif()
  if(TARGET PkgConfig::_qorb_dep_${prefix})
    add_library(${dep} INTERFACE IMPORTED)
    set_target_properties(${dep} PROPERTIES
      INTERFACE_LINK_LIBRARIES PkgConfig::_qorb_dep_${prefix})
  else()
    set(qorb_${component}_FOUND FALSE)
    string(APPEND _qorb_missing \" qorb::${component} needs ${module} (pkg-config ${module}).\")
  endif()
endif()
")
  endforeach()
  file(WRITE "${file}" "${text}")
endfunction()

function(qorb_add_component)
  cmake_parse_arguments(PARSE_ARGV 0 A ""
    "NAME;PC_REQUIRES;DESCRIPTION"
    "SOURCES;DEPS;PRIVATE_DEPS;COMPONENT_DEPS;HEADERS")
  if(NOT A_NAME OR NOT A_SOURCES)
    message(FATAL_ERROR "qorb_add_component: NAME and SOURCES are required")
  endif()
  if(A_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "qorb_add_component: unknown arguments: ${A_UNPARSED_ARGUMENTS}")
  endif()
  set(n "${A_NAME}")
  set(lib "qorb-${n}")
  if(NOT DEFINED A_PC_REQUIRES)
    set(A_PC_REQUIRES "qorb")
  endif()
  if(NOT A_DESCRIPTION)
    set(A_DESCRIPTION "qorb connection pool: ${n}")
  endif()
  if(NOT DEFINED A_HEADERS AND EXISTS "${PROJECT_SOURCE_DIR}/include/qorb/${n}.h")
    set(A_HEADERS "${PROJECT_SOURCE_DIR}/include/qorb/${n}.h")
  endif()

  # Compile once (the whole project is position-independent), link twice.
  add_library(${lib}_obj OBJECT ${A_SOURCES})
  target_include_directories(${lib}_obj PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}")
  target_link_libraries(${lib}_obj PUBLIC qorb ${A_DEPS} PRIVATE ${A_PRIVATE_DEPS})

  add_library(${lib} SHARED $<TARGET_OBJECTS:${lib}_obj>)
  target_link_libraries(${lib} PUBLIC qorb ${A_DEPS} PRIVATE ${A_PRIVATE_DEPS})
  qorb__library_properties(${lib} "${lib}" "${n}" SHARED)

  add_library(${lib}_static STATIC $<TARGET_OBJECTS:${lib}_obj>)
  target_link_libraries(${lib}_static PUBLIC qorb_static ${A_DEPS})
  foreach(d IN LISTS A_PRIVATE_DEPS)
    target_link_libraries(${lib}_static PUBLIC "$<LINK_ONLY:${d}>")
  endforeach()
  qorb__library_properties(${lib}_static "${lib}" "${n}_static")

  set(pc_requires "${A_PC_REQUIRES}")
  foreach(c IN LISTS A_COMPONENT_DEPS)
    if(NOT TARGET qorb-${c} OR NOT TARGET qorb-${c}_static)
      message(FATAL_ERROR "qorb_add_component(${n}): COMPONENT_DEPS ${c}: "
        "qorb-${c} is not made yet (add its folder first)")
    endif()
    target_link_libraries(${lib}_obj PRIVATE qorb-${c})
    target_link_libraries(${lib} PRIVATE qorb-${c})
    target_link_libraries(${lib}_static PUBLIC qorb-${c}_static)
    string(APPEND pc_requires " qorb-${c}")
  endforeach()

  add_library(qorb::${n} ALIAS ${lib})
  add_library(qorb::${n}_static ALIAS ${lib}_static)

  install(TARGETS ${lib} ${lib}_static EXPORT ${lib}Targets
    LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
  install(EXPORT ${lib}Targets NAMESPACE qorb::
    FILE ${lib}Targets.cmake DESTINATION "${QORB_INSTALL_CMAKEDIR}")
  set(deps_file "${PROJECT_BINARY_DIR}/cmake/${lib}Deps.cmake")
  qorb__write_deps_file("${deps_file}" "${n}" "${A_COMPONENT_DEPS}"
    ${A_DEPS} ${A_PRIVATE_DEPS})
  install(FILES "${deps_file}" DESTINATION "${QORB_INSTALL_CMAKEDIR}")
  if(A_HEADERS)
    install(FILES ${A_HEADERS} DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/qorb")
  endif()
  qorb__install_pc(NAME "${lib}" DESCRIPTION "${A_DESCRIPTION}"
    REQUIRES "${pc_requires}")

  set_property(GLOBAL APPEND PROPERTY QORB_COMPONENTS "${n}")
endfunction()
