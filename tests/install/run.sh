#!/bin/sh
# SPDX-License-Identifier: MIT
#
# run.sh BUILD_DIR WORK_DIR CC WITH_PG "SANITIZE_FLAGS": the installed
# package, used as a user would (ctest test `install_consumer`, label
# install; see tests/install/CMakeLists.txt).
#
#   1. cmake --install BUILD_DIR into WORK_DIR/prefix (a fresh folder);
#   2. no file of the package names BUILD_DIR, the source tree or the
#      prefix it was installed to (the .pc files find their prefix from
#      their own folder, ${pcfiledir});
#   3. consumer.c built with pkg-config (PKG_CONFIG_PATH=prefix/lib/
#      pkgconfig, cc $(pkg-config --cflags --libs qorb [qorb-pg])) and run;
#   4. the prefix moved to WORK_DIR/moved, then consumer.c built by
#      consumer-cmake/ with find_package(qorb CONFIG) and
#      CMAKE_PREFIX_PATH=WORK_DIR/moved, and run, and built again with
#      pkg-config from the moved prefix, and run: the CMake package and
#      the .pc files are relocatable.
#
# Each program runs with LD_LIBRARY_PATH=<prefix>/lib and must print
# "qorb <version>". No network and no server; ctest bounds the time.
set -eu

build=$1
work=$2
cc=$3
with_pg=$4
san=${5:-}

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "$build" && pwd)

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
moved=$work/moved
unset DESTDIR || true

step() { echo "== install_consumer: $*"; }

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || {
  cat "$work/install.log" >&2; exit 1; }

libdir=
for d in lib lib64 lib/*-linux-gnu; do
  if [ -f "$prefix/$d/pkgconfig/qorb.pc" ]; then libdir=$prefix/$d; break; fi
done
[ -n "$libdir" ] || { echo "no qorb.pc under $prefix" >&2; exit 1; }
libsub=${libdir#"$prefix"/}

step "no build-machine paths in the installed text files"
bad=0
for f in $(find "$prefix" -type f \( -name '*.cmake' -o -name '*.h' \
                                      -o -name '*.pc' -o -path '*/man/*' \)); do
  if grep -n -e "$build" -e "$src" "$f"; then
    echo "  ^ in $f" >&2; bad=1
  fi
  if grep -n -e "$prefix" -e '/usr/lib' -e '/usr/include' "$f"; then
    echo "  ^ absolute path in $f" >&2; bad=1
  fi
done
[ "$bad" -eq 0 ] || exit 1

for f in "$libdir"/libqorb*.so.*; do
  if readelf -d "$f" 2>/dev/null | grep -E 'R(UN)?PATH'; then
    echo "  ^ $f keeps an RPATH" >&2; exit 1
  fi
done

step "man pages and qorbtop installed"
for f in share/man/man3/qorb_pool_new.3 share/man/man3/qorb_pool_claim_wait.3 \
         share/man/man3/qorb_pg_pool_new.3 share/man/man3/qorb_redis_pool_new.3 \
         share/man/man1/qorbtop.1 bin/qorbtop; do
  [ -f "$prefix/$f" ] || { echo "missing: $prefix/$f" >&2; exit 1; }
done
"$prefix/bin/qorbtop" --help >/dev/null

version=$(sed -n 's/^Version: *//p' "$libdir/pkgconfig/qorb.pc")
pcmods=qorb
defs=
if [ "$with_pg" = ON ] || [ "$with_pg" = 1 ] || [ "$with_pg" = TRUE ]; then
  pcmods="qorb qorb-pg"
  defs=-DQORB_CONSUMER_PG=1
  expect="qorb $version (pg)"
else
  expect="qorb $version"
fi

check_output() {
  out=$1
  if [ "$out" != "$expect" ]; then
    echo "consumer printed '$out', expected '$expect'" >&2
    exit 1
  fi
}

# pc_build LIBDIR OUT: consumer.c built with pkg-config from LIBDIR's .pc
# files, and run against LIBDIR's libraries.
pc_build() {
  flags=$(PKG_CONFIG_PATH=$1/pkgconfig pkg-config --cflags --libs $pcmods)
  case $flags in
    *"$1"/*|*"$(dirname "$1")"/*) ;;
    *) echo "pkg-config gave '$flags', not under $1" >&2; exit 1 ;;
  esac
  echo "   $cc $san $defs consumer.c $flags"
  # shellcheck disable=SC2086 # word splitting of the flags is wanted
  "$cc" -std=c11 -Wall -Wextra -Werror $san $defs -o "$2" \
    "$here/consumer.c" $flags
  out=$(LD_LIBRARY_PATH=$1 "$2")
  echo "   $out"
  check_output "$out"
}

step "pkg-config build ($pcmods)"
pc_build "$libdir" "$work/consumer-pc"

step "move $prefix to $moved"
mv "$prefix" "$moved"

step "find_package(qorb CONFIG) build from the moved prefix"
cmake_pg=OFF
[ -z "$defs" ] || cmake_pg=ON
if ! {
  cmake -S "$here/consumer-cmake" -B "$work/consumer-cmake" \
    -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$moved" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" \
    -DQORB_CONSUMER_PG=$cmake_pg &&
  cmake --build "$work/consumer-cmake"
} >"$work/consumer-cmake.log" 2>&1; then
  cat "$work/consumer-cmake.log" >&2
  exit 1
fi
grep 'consumer: qorb' "$work/consumer-cmake.log" | sed 's/^/   /'
if ! grep -q "consumer: qorb .* from $moved/" "$work/consumer-cmake.log"; then
  echo "find_package(qorb) did not use the moved prefix" >&2
  exit 1
fi
out=$(LD_LIBRARY_PATH=$moved/$libsub "$work/consumer-cmake/consumer")
echo "   $out"
check_output "$out"

# The executable must really use the moved libraries.
if LD_LIBRARY_PATH=$moved/$libsub ldd "$work/consumer-cmake/consumer" |
   grep 'libqorb' | grep -v "$moved/"; then
  echo "consumer links a libqorb outside $moved" >&2
  exit 1
fi

step "pkg-config build ($pcmods) from the moved prefix"
pc_build "$moved/$libsub" "$work/consumer-pc-moved"
if LD_LIBRARY_PATH=$moved/$libsub ldd "$work/consumer-pc-moved" |
   grep 'libqorb' | grep -v "$moved/"; then
  echo "consumer-pc-moved links a libqorb outside $moved" >&2
  exit 1
fi

rm -rf "$work"
step "ok"
