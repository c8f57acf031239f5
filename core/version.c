/* SPDX-License-Identifier: MIT */
/*
 * version.c: the library's version at run time. The numbers come from
 * project(VERSION) in CMakeLists.txt through the generated <qorb/version.h>,
 * so a program can compare the version it was compiled against
 * (QORB_VERSION_*) with the library it actually loaded.
 */
#include <qorb/version.h>

unsigned qorb_version(void) {
  return ((unsigned)QORB_VERSION_MAJOR << 16) |
         ((unsigned)QORB_VERSION_MINOR << 8) | (unsigned)QORB_VERSION_PATCH;
}

const char *qorb_version_string(void) { return QORB_VERSION_STRING; }
