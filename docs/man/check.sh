#!/bin/sh
# SPDX-License-Identifier: MIT
# check.sh GROFF: every man page here through groff with all warnings on
# (-ww) and no output (-z); any warning fails (ctest man_pages, label docs).
set -eu
groff=${1:-groff}
status=0
n=0
for page in *.[1-9]; do
  [ -f "$page" ] || continue
  n=$((n + 1))
  warnings=$("$groff" -man -Tutf8 -ww -z "$page" 2>&1) || status=1
  if [ -n "$warnings" ]; then
    printf '%s:\n%s\n' "$page" "$warnings" >&2
    status=1
  fi
done
[ "$n" -gt 0 ] || { echo "no man pages" >&2; exit 1; }
echo "man pages: $n checked"
exit "$status"
