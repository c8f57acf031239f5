#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test.sh: the one command that builds qorb and runs every test, as CI does
# (.ci/run executes exactly this). Three builds, each in its own folder:
#
#   build/asan     Debug, AddressSanitizer + UBSan, every test
#   build/tsan     ThreadSanitizer, the tests labelled `threads`
#   build/release  RelWithDebInfo, every test -- last, so the output ends
#                  with ctest's summary
#
# Configure and build output goes to build/logs/*.log and is shown (its
# tail) only when that step fails. The script stops at the first failing
# build or test run with a non-zero status. Tests start their own servers on
# loopback; with CI=true warnings are errors.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

tools/deps.sh

export ASAN_OPTIONS="detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"

werror=OFF
if [ "${CI:-}" = "true" ]; then
  werror=ON
fi

mkdir -p build/logs

# build NAME BUILD_TYPE SANITIZE: configure and build build/NAME quietly.
# Every optional part is asked for explicitly, so a stale cache from an
# earlier run cannot quietly leave a component (and its tests) out.
build() {
  local name=$1 type=$2 sanitize=$3
  local log="build/logs/$name.log"
  echo "== $name: configure and build ($type${sanitize:+, sanitize=$sanitize})"
  if ! {
    cmake -S . -B "build/$name" \
      -DCMAKE_BUILD_TYPE="$type" \
      -DQORB_SANITIZE="$sanitize" \
      -DQORB_WERROR="$werror" \
      -DQORB_WITH_PROBES=ON \
      -DQORB_WITH_PG=ON -DQORB_WITH_REDIS=ON -DQORB_WITH_DNS=ON -DQORB_WITH_ENDPOINT=ON \
      -DQORB_BUILD_TESTS=ON -DQORB_BUILD_INTEGRATION_TESTS=ON \
      -DQORB_BUILD_BENCH=ON -DQORB_BUILD_EXAMPLES=ON &&
      cmake --build "build/$name" -j2
  } >"$log" 2>&1; then
    tail -n 80 "$log" >&2
    echo "== $name: build FAILED (full log: $log)" >&2
    return 1
  fi
  # CMake's own warnings (a library not found, probes off) matter in CI.
  grep -A4 '^CMake Warning' "$log" >&2 || true
}

build asan Debug "address;undefined"
echo "== asan: ctest"
(cd build/asan && ctest --output-on-failure -j2 --no-tests=error)

build tsan RelWithDebInfo thread
echo "== tsan: ctest -L threads"
tsan_list=$(cd build/tsan && ctest -N -L threads)
if ! grep -q 'Test *#' <<<"$tsan_list"; then
  echo "== tsan: no tests labelled threads yet"
fi
(cd build/tsan && ctest --output-on-failure -j2 -L threads --no-tests=ignore)

build release RelWithDebInfo ""
echo "== release: ctest"
(cd build/release && ctest --output-on-failure -j2 --no-tests=error)
