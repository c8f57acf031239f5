#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check_docs.sh [FILE...]: the docs work as written. ctest `docs_check`
# (label docs, tests/tools/CMakeLists.txt) runs it; so can anyone, from
# anywhere, as root or not. FILEs are Markdown files of this repository;
# the default is README.md, then examples/*/README.md.
#
# What it checks, one line per block (FILE:LINE ok|FAIL), exit 1 on any
# failure:
#
#   Runnable shell blocks. A ```sh (or ```bash) block is runnable when the
#   line just before its fence is exactly
#
#       <!-- runnable -->
#
#   (an HTML comment: GitHub and other renderers show nothing). Each runs
#   in a fresh `bash -euo pipefail`, from the top of a scratch copy of this
#   tree (the tracked and the untracked-but-not-ignored files; no build
#   folder), so `cmake -S . -B build` builds there and never touches the
#   real build/. The blocks run in order, FILEs in the order given, and
#   each sees what the blocks before it left (the README's install block
#   installs what the examples' blocks build against). A block is given
#   QORB_DOCS_TIMEOUT seconds (default 300). Mark only what finishes in
#   seconds or a fresh build: never tools/test.sh, .ci/run, tools/demo.sh
#   or the benchmarks (this check runs inside the test suite).
#
#   C fragments. Every ```c block is compiled against the package that the
#   runnable blocks installed, with `pkg-config --cflags` of each installed
#   qorb module, -std=c11 -Wall -Wextra -Werror (names left unused or
#   unset allowed: a fragment may leave out where a value comes from):
#     - a block with `int main(` is a whole program, compiled as written;
#     - any other block is a fragment: its #include lines go to the top,
#       after <stdio.h>, <stdlib.h>, <string.h>, <qorb/qorb.h> and every
#       installed qorb header; the names the docs use for the tour's objects
#       are declared at file scope (`pool`, `connector`, `claim`, `loop`,
#       `err`; a fragment's own declarations hide them); the rest is the
#       body of a function. A line that is only `...` stands for code left
#       out and is skipped. Errors point at the Markdown file's lines.
#
# The environment the runnable blocks see (the docs write each variable
# with a default, "${QORB_PG:-postgresql://...}", so that a reader can run
# them as written against their own servers):
#
#   QORB_PREFIX      the install prefix: a folder of this run (the README's
#                    default is /usr/local)
#   PKG_CONFIG_PATH  $QORB_PREFIX/lib/pkgconfig
#   LD_LIBRARY_PATH  $QORB_PREFIX/lib
#   QORB_PG          postgresql://postgres@127.0.0.1:PORT/postgres
#   QORB_PG_ADDR     127.0.0.1:PORT of that PostgreSQL
#   QORB_REDIS       redis://127.0.0.1:PORT/0
#   QORB_REDIS_ADDR  127.0.0.1:PORT of that redis-server
#   ldconfig         as root, the real one (it reads only the system's
#                    folders); otherwise it would fail for want of root and
#                    is skipped: LD_LIBRARY_PATH above finds the libraries
#
# The servers are throwaway: one PostgreSQL (started with the helpers of
# tests/integration/pg/pg_lib.sh, as the postgres user when root) and one
# redis-server, on 127.0.0.1, on the first free ports of 55960-55979 and
# 55980-55999, stopped on exit with everything else this run made.
#
# Other environment: CC (default cc); QORB_DOCS_KEEP=1 keeps the scratch
# folder and says where it is. Exit 77 (ctest: skipped) when PostgreSQL,
# redis-server, cmake, make, pkg-config or a C compiler is missing, except
# with CI=true, where that fails (tools/deps.sh installs them all).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prog=check_docs.sh
CC=${CC:-cc}
timeout_s=${QORB_DOCS_TIMEOUT:-300}

usage() {
  sed -n '4,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}
case ${1:-} in
  -h|--help) usage; exit 0 ;;
  -*) echo "$prog: unknown option '$1' (--help)" >&2; exit 2 ;;
esac

if [ $# -gt 0 ]; then
  files=("$@")
else
  files=(README.md)
  for f in "$root"/examples/*/README.md; do files+=("${f#"$root"/}"); done
fi
for f in "${files[@]}"; do
  [ -f "$root/$f" ] || { echo "$prog: no file $f in $root" >&2; exit 2; }
done

# PGBIN, as_pg, PGUSER_OS, pg_start, alive, wait_gone: the integration
# tests' PostgreSQL helpers.
# shellcheck source=tests/integration/pg/pg_lib.sh
. "$root/tests/integration/pg/pg_lib.sh"

missing=
for t in cmake make pkg-config "$CC" redis-server redis-cli; do
  command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
[ -x "$PGBIN/postgres" ] || missing="$missing postgres($PGBIN)"
if [ -n "$missing" ]; then
  if [ "${CI:-}" = true ]; then
    echo "$prog: missing:$missing (CI=true; tools/deps.sh installs them)" >&2
    exit 1
  fi
  echo "$prog: missing:$missing; skipping" >&2
  exit 77
fi

work=$(mktemp -d /tmp/qorb-docs.XXXXXX)
# The postgres user must reach its data folder inside.
chmod 711 "$work"
pg_data=
redis_pid=

cleanup() {
  local rc=$?
  if [ -n "$redis_pid" ] && alive "$redis_pid"; then
    kill "$redis_pid" 2>/dev/null || true
    wait_gone "$redis_pid"
  fi
  if [ -n "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$pg_data" -m fast -w -t 30 -s stop || true
  fi
  if [ "${QORB_DOCS_KEEP:-}" = 1 ]; then
    echo "$prog: kept $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port FIRST LAST: the first port of the range that no TCP socket of
# this machine has as its local port, in any state: the range lies within
# the kernel's ephemeral ports, so a client's socket (or one in TIME_WAIT)
# may hold one, and a server could not bind it.
free_port() {
  local p hex used=" "
  while read -r hex; do
    used+="$((16#$hex)) "
  done < <(awk 'FNR > 1 { split($2, a, ":"); print a[2] }' \
             /proc/net/tcp /proc/net/tcp6 2>/dev/null)
  for ((p = $1; p <= $2; p++)); do
    case $used in *" $p "*) continue ;; esac
    echo "$p"
    return 0
  done
  echo "$prog: no free port in $1-$2 on 127.0.0.1" >&2
  return 1
}

# The scratch tree: what git knows of (tracked, or untracked and not
# ignored), or without git everything but the build folders.
src=$work/src
mkdir -p "$src"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z -co --exclude-standard |
     while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
     xargs -0 cp --parents -t "$src")
else
  tar -C "$root" --exclude=./build --exclude=./Testing -cf - . | tar -C "$src" -xf -
fi

# The servers. A port found free may still be taken before the server
# binds it (another program's client socket): then the next one is tried.
mkdir -p "$work/pg" "$work/redis"
[ "$(id -u)" = 0 ] && chown "$PGUSER_OS" "$work/pg"
pg_data=$work/pg/data
as_pg "$PGBIN/initdb" -D "$pg_data" -A trust -U postgres --no-sync \
  >"$work/pg/initdb.log" 2>&1 ||
  { cat "$work/pg/initdb.log" >&2; exit 1; }
pg_port=55959
for attempt in 1 2 3; do
  pg_port=$(free_port $((pg_port + 1)) 55979)
  pg_start "$pg_data" "$work/pg/postgres.log" 127.0.0.1 "$pg_port" && break
  [ "$attempt" -lt 3 ] || { cat "$work/pg/postgres.log" >&2; exit 1; }
done

# redis_up PORT: start redis-server on 127.0.0.1:PORT (redis_pid) and wait,
# at most 10 s, until it answers.
redis_up() {
  local i
  redis-server --bind 127.0.0.1 --port "$1" --save '' --appendonly no \
    --dir "$work/redis" --logfile "$work/redis/redis.log" --daemonize no &
  redis_pid=$!
  for ((i = 0; i < 100; i++)); do
    [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ] && return 0
    alive "$redis_pid" || return 1
    sleep 0.1
  done
  kill "$redis_pid" 2>/dev/null || true
  return 1
}
redis_port=55979
for attempt in 1 2 3; do
  redis_port=$(free_port $((redis_port + 1)) 55999)
  redis_up "$redis_port" && break
  [ "$attempt" -lt 3 ] || { cat "$work/redis/redis.log" >&2; exit 1; }
done

export QORB_PREFIX=$work/prefix
export PKG_CONFIG_PATH=$QORB_PREFIX/lib/pkgconfig
export LD_LIBRARY_PATH=$QORB_PREFIX/lib
export QORB_PG_ADDR=127.0.0.1:$pg_port
export QORB_PG=postgresql://postgres@$QORB_PG_ADDR/postgres
export QORB_REDIS_ADDR=127.0.0.1:$redis_port
export QORB_REDIS=redis://$QORB_REDIS_ADDR/0
if [ "$(id -u)" != 0 ]; then
  mkdir -p "$work/bin"
  printf '#!/bin/sh\nexit 0\n' >"$work/bin/ldconfig"
  chmod +x "$work/bin/ldconfig"
  export PATH=$work/bin:$PATH
fi

# Every block of every file, as $work/blocks/N.sh or N.c, and a list:
# "N KIND FILE LINE". KIND is sh (runnable), c, or marker (a runnable
# marker with no shell fence after it: a mistake).
blocks=$work/blocks
mkdir -p "$blocks"
(cd "$root" && awk -v dir="$blocks" '
  function open_block(kind) {
    n++
    out = sprintf("%s/%03d.%s", dir, n, kind)
    printf "%03d %s %s %d\n", n, kind, FILENAME, FNR
    printf "" > out
  }
  FNR == 1 { infence = 0; marked = 0 }
  !infence && /^[ \t]*```/ {
    lang = $0
    sub(/^[ \t]*```[ \t]*/, "", lang)
    sub(/[ \t].*$/, "", lang)
    kind = ""
    if (lang == "c") kind = "c"
    else if (marked && (lang == "sh" || lang == "bash")) kind = "sh"
    else if (marked) { n++; printf "%03d marker %s %d\n", n, FILENAME, FNR - 1 }
    if (kind != "") open_block(kind)
    infence = 1; marked = 0
    next
  }
  infence && /^[ \t]*```[ \t]*$/ { if (kind != "") close(out); infence = 0; next }
  infence { if (kind != "") print > out; next }
  marked { n++; printf "%03d marker %s %d\n", n, FILENAME, FNR - 1 }
  { marked = ($0 ~ /^[ \t]*<!--[ \t]*runnable[ \t]*-->[ \t]*$/) }
' "${files[@]}") >"$work/blocks.list"

failures=0
report() { # WHERE STATUS [DETAIL]
  printf '%-36s %s%s\n' "$1" "$2" "${3:+ ($3)}"
}
show_log() { # LOG
  sed -n '1,200p' "$1" | tail -n 40 | sed 's/^/    | /'
}

# The runnable blocks, in order.
while read -r n kind file line; do
  case $kind in
    marker)
      report "$file:$line" FAIL "<!-- runnable --> not followed by a sh block"
      failures=$((failures + 1))
      ;;
    sh)
      log=$work/$n.log
      t0=$SECONDS
      if (cd "$src" && timeout -k 10 "$timeout_s" bash -euo pipefail "$blocks/$n.sh") \
           </dev/null >"$log" 2>&1; then
        report "$file:$line" ok "sh, $((SECONDS - t0)) s"
      else
        report "$file:$line" FAIL "sh, exit $?, $((SECONDS - t0)) s"
        show_log "$log"
        failures=$((failures + 1))
      fi
      ;;
  esac
done <"$work/blocks.list"

# The C fragments, against what was installed.
modules=
prelude=$work/prelude.h
{
  echo '#include <stdio.h>'
  echo '#include <stdlib.h>'
  echo '#include <string.h>'
  echo '#include <qorb/qorb.h>'
} >"$prelude"
for m in qorb qorb-pg qorb-redis qorb-dns qorb-endpoint; do
  [ -f "$PKG_CONFIG_PATH/$m.pc" ] && modules="$modules $m"
done
for h in pg redis dns endpoint stats static; do
  [ -f "$QORB_PREFIX/include/qorb/$h.h" ] && echo "#include <qorb/$h.h>" >>"$prelude"
done
cat >>"$prelude" <<'EOF'
/* The names the docs use for the tour's objects. */
static qorb_pool_t *pool;
static qorb_connector_t *connector;
static qorb_claim_t *claim;
static struct ev_loop *loop;
static char err[256];
EOF
cflags=
if [ -n "$modules" ]; then
  # shellcheck disable=SC2086 # one word per module
  cflags=$(pkg-config --cflags $modules)
fi

while read -r n kind file line; do
  [ "$kind" = c ] || continue
  frag=$blocks/$n.c
  unit=$work/$n.unit.c
  log=$work/$n.log
  if [ -z "$modules" ]; then
    report "$file:$line" FAIL "c: nothing installed in \$QORB_PREFIX to compile against"
    failures=$((failures + 1))
    continue
  fi
  first=$((line + 1))
  if grep -Eq '^[[:space:]]*int[[:space:]]+main[[:space:]]*\(' "$frag"; then
    what=program
    { printf '#line %d "%s"\n' "$first" "$file"; cat "$frag"; } >"$unit"
  else
    what=fragment
    {
      grep -E '^[[:space:]]*#[[:space:]]*include' "$frag" || true
      cat "$prelude"
      echo 'void docs_fragment(void);'
      echo 'void docs_fragment(void) {'
      printf '#line %d "%s"\n' "$first" "$file"
      # Blank lines keep the numbering for the #line above.
      sed -E -e 's/^[[:space:]]*#[[:space:]]*include.*$//' \
             -e 's/^[[:space:]]*\.\.\.[[:space:]]*$//' "$frag"
      echo '}'
    } >"$unit"
  fi
  # shellcheck disable=SC2086 # pkg-config's flags are words
  if "$CC" -std=c11 -Wall -Wextra -Werror -Wno-unused \
       -Wno-uninitialized -Wno-maybe-uninitialized $cflags \
       -c -o "$work/$n.o" "$unit" >"$log" 2>&1; then
    report "$file:$line" ok "c $what"
  else
    report "$file:$line" FAIL "c $what"
    show_log "$log"
    failures=$((failures + 1))
  fi
done <"$work/blocks.list"

total=$(wc -l <"$work/blocks.list")
if [ "$failures" -ne 0 ]; then
  echo "$prog: $failures of $total blocks FAILED"
  exit 1
fi
echo "$prog: $total blocks ok"
