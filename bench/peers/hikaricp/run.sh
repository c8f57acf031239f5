#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run.sh: qorb against HikariCP 2.7.9 (Java 17, pgjdbc), in alternating
# rounds on the same machine, the same minute and the same PostgreSQL:
#
#   pg     per client count: bench/pg/pg_bench (qorb-pg, pool of 8, reset
#          none and the default DISCARD ALL) against HikariBench pg (HikariCP
#          pool of 8 over pgjdbc), SELECT 1 per cycle;
#   claim  bench/claim --modes threads (mock connections, pool of 8) against
#          HikariBench claim (HikariCP over java.lang.reflect.Proxy mocks).
#
# Rounds alternate A B B A A B ..., so drift on this shared machine hits both
# sides alike; each figure is the median over rounds and each ratio the
# median of the per-round ratios. Summary lines:
#
#   bench=pg-peer clients=N qorb_tps=.. hikaricp_tps=.. qorb_over_hikaricp=..
#       goal=1.2 met=yes|no [qorb_default_tps=.. qorb_default_over_hikaricp=..]
#   bench=claim-peer threads=N pool=8 qorb_ops=.. hikaricp_ops=.. ratio=..
#       goal=2 met=yes|no
#
# It installs nothing: it names the apt packages that are missing. It starts
# PostgreSQL and PgBouncer on 127.0.0.2 (bench/pg/bench_servers.sh) and stops
# them on exit, Ctrl-C included; run it under the servers' lock:
#   flock /tmp/qorb-servers.lock bench/peers/hikaricp/run.sh --build build/release
# See bench/peers/README.md.

set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
SERVERS_SH=$ROOT/bench/pg/bench_servers.sh
JARS=${QORB_JAVA_JARS:-/usr/share/java}  # where the Debian packages put the jars
HOST=127.0.0.2
PGPORT=55438
BOUNCERPORT=56432
POOL=8

BUILD=$ROOT/build/release
ROUNDS=4
SECONDS_PG=2
SECONDS_CLAIM=0.5
WARMUP=0.5
JIT_WARMUP=2
CLIENTS=1,8,16,32
THREADS=1,8,16,32
DO_PG=1
DO_CLAIM=1
CLAIM_CHECK=1

usage() {
  cat <<EOF
usage: run.sh [--build DIR] [--rounds R] [--seconds S] [--clients LIST]
              [--threads LIST] [--claim-seconds S] [--warmup S] [--jit-warmup S]
              [--no-check] [--pg-only | --claim-only]
  --build DIR        the qorb Release build (default build/release)
  --rounds R         rounds per side and point, alternated ABBA (default 4)
  --seconds S        measured seconds per pg round and side (default 2)
  --clients LIST     pg client counts (default 1,8,16,32)
  --threads LIST     claim thread counts, pool of 8 (default 1,8,16,32)
  --claim-seconds S  measured seconds per claim point and round (default 0.5)
  --warmup S         pg warm-up per round, both sides (default 0.5)
  --jit-warmup S     extra JIT warm-up in each JVM before timing (default 2)
  --no-check         bench/claim without its held-flag CAS (HikariBench has none)
Run it under flock /tmp/qorb-servers.lock: it starts PostgreSQL on
$HOST:$PGPORT and PgBouncer on $HOST:$BOUNCERPORT.
EOF
}

die() {
  echo "run.sh: $*" >&2
  exit 1
}

# A number in [lo, hi] (decimals allowed), for the options.
check_num() {
  awk -v v="$2" -v lo="$3" -v hi="$4" 'BEGIN {
    if (v !~ /^[0-9]+([.][0-9]+)?$/ || v + 0 < lo || v + 0 > hi) exit 1 }' ||
    die "$1 must be a number in [$3, $4], not '$2'"
}

check_list() {
  echo "$2" | grep -Eq '^[0-9]+(,[0-9]+){0,7}$' || die "$1: a list like 1,8,32, not '$2'"
  for n in ${2//,/ }; do check_num "$1" "$n" 1 64; done
}

while [ $# -gt 0 ]; do
  case $1 in
    --build) BUILD=${2:?--build DIR}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --seconds) SECONDS_PG=${2:?}; shift 2 ;;
    --clients) CLIENTS=${2:?}; shift 2 ;;
    --threads) THREADS=${2:?}; shift 2 ;;
    --claim-seconds) SECONDS_CLAIM=${2:?}; shift 2 ;;
    --warmup) WARMUP=${2:?}; shift 2 ;;
    --jit-warmup) JIT_WARMUP=${2:?}; shift 2 ;;
    --no-check) CLAIM_CHECK=0; shift ;;
    --pg-only) DO_CLAIM=0; shift ;;
    --claim-only) DO_PG=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
check_num --rounds "$ROUNDS" 1 20
echo "$ROUNDS" | grep -Eq '^[0-9]+$' || die "--rounds must be a whole number"
check_num --seconds "$SECONDS_PG" 0.1 30
check_num --claim-seconds "$SECONDS_CLAIM" 0.05 10
check_num --warmup "$WARMUP" 0 10
check_num --jit-warmup "$JIT_WARMUP" 0 30
check_list --clients "$CLIENTS"
check_list --threads "$THREADS"
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac

# --- What must be installed: name the packages, install nothing ------------

missing=""
need_pkg() { case " $missing " in *" $1 "*) ;; *) missing="$missing $1" ;; esac; }
command -v java >/dev/null 2>&1 || need_pkg openjdk-17-jdk-headless
command -v javac >/dev/null 2>&1 || need_pkg openjdk-17-jdk-headless
[ -f "$JARS/HikariCP.jar" ] || need_pkg libhikaricp-java
[ -f "$JARS/slf4j-api.jar" ] || need_pkg libslf4j-java
if [ "$DO_PG" = 1 ]; then
  [ -f "$JARS/postgresql.jar" ] || need_pkg libpostgresql-jdbc-java
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkg postgresql
  { command -v pgbouncer || [ -x /usr/sbin/pgbouncer ]; } >/dev/null 2>&1 || need_pkg pgbouncer
fi
if [ -n "$missing" ]; then
  echo "run.sh: missing packages; install them with:" >&2
  echo "  apt-get install -y$missing" >&2
  exit 1
fi
if command -v java >/dev/null && ! java -version 2>&1 | grep -q 'version "17'; then
  echo "run.sh: note: $(java -version 2>&1 | head -n 1), not 17" >&2
fi

PG_BENCH=$BUILD/bench/pg/pg_bench
CLAIM=$BUILD/bench/claim
[ "$DO_PG" = 0 ] || [ -x "$PG_BENCH" ] ||
  die "no $PG_BENCH: cmake -S $ROOT -B $BUILD -DCMAKE_BUILD_TYPE=Release && cmake --build $BUILD -j2"
[ "$DO_CLAIM" = 0 ] || [ -x "$CLAIM" ] ||
  die "no $CLAIM: cmake -S $ROOT -B $BUILD -DCMAKE_BUILD_TYPE=Release && cmake --build $BUILD -j2"
if [ -f "$BUILD/CMakeCache.txt" ] &&
   ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release' "$BUILD/CMakeCache.txt"; then
  echo "run.sh: note: $BUILD is not a Release build" >&2
fi

# --- Work folder, servers and cleanup --------------------------------------

WORK=$(mktemp -d /tmp/qorb-hikari.XXXXXX)
SRV=""      # the servers' folder while they run
CHILD=""    # the benchmark process running now
# shellcheck disable=SC2317  # run by the traps
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$CHILD" ]; then kill "$CHILD" 2>/dev/null || true; wait "$CHILD" 2>/dev/null || true; fi
  servers_down
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

# Runs a benchmark in the background and waits for it, so that Ctrl-C or
# TERM reaches the trap at once (and the trap ends the child). Its output
# goes to the file $1.
run_child() {
  local out=$1
  shift
  "$@" >"$out" 2>"$out.err" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  if [ -s "$out.err" ]; then sed 's/^/# stderr: /' "$out.err"; fi
  return $rc
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

servers_up() {
  [ -z "$SRV" ] || return 0
  if port_busy $PGPORT || port_busy $BOUNCERPORT; then
    die "$HOST:$PGPORT or :$BOUNCERPORT is in use (another run? use flock /tmp/qorb-servers.lock)"
  fi
  # Its own folder under /tmp (not in $WORK, which the postgres user
  # cannot enter); bench_servers.sh chowns it and its stop removes it.
  SRV=$(mktemp -d /tmp/qorb-hikari-pg.XXXXXX)
  sh "$SERVERS_SH" "$SRV" start "$POOL" || { servers_down; die "could not start the servers"; }
}

servers_down() {
  [ -n "$SRV" ] || return 0
  sh "$SERVERS_SH" "$SRV" stop || true
  SRV=""
}

# --- Build the Java side into the work folder --------------------------------

SLF4J_BINDING=$JARS/slf4j-nop.jar
[ -f "$SLF4J_BINDING" ] || SLF4J_BINDING=$JARS/slf4j-simple.jar
[ -f "$SLF4J_BINDING" ] || SLF4J_BINDING=""
CP=$JARS/HikariCP.jar:$JARS/postgresql.jar:$JARS/slf4j-api.jar${SLF4J_BINDING:+:$SLF4J_BINDING}
mkdir -p "$WORK/classes"
javac -nowarn -d "$WORK/classes" -cp "$CP" "$HERE/HikariBench.java" ||
  die "javac failed"
# shellcheck disable=SC2206  # JAVA_OPTS is a list of JVM flags
JAVA=(java ${JAVA_OPTS:-} -cp "$WORK/classes:$CP"
      -Dorg.slf4j.simpleLogger.defaultLogLevel=warn HikariBench)

# --- Helpers over result files: "<kind> <point> <round> <value>" lines ------

RES=$WORK/results
: >"$RES"

# value of key $2 on a line $1 ("k=v k=v ...")
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

median() {
  sort -g | awk '{ a[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

values() { awk -v k="$1" -v p="$2" '$1 == k && $2 == p { print $4 }' "$RES"; }

# Per-round ratios of kind $1 over kind $2 at point $3, one a line.
ratios() {
  awk -v a="$1" -v b="$2" -v p="$3" '
    $2 == p && $1 == a { x[$3] = $4 }
    $2 == p && $1 == b { y[$3] = $4 }
    END { for (r in x) if ((r in y) && y[r] > 0) print x[r] / y[r] }' "$RES"
}

fmt0() { awk -v v="$1" 'BEGIN { if (v == "nan") print "nan"; else printf "%.0f", v }'; }
fmt2() { awk -v v="$1" 'BEGIN { if (v == "nan") print "nan"; else printf "%.2f", v }'; }
ge() { awk -v v="$1" -v g="$2" 'BEGIN { exit !(v != "nan" && v + 0 >= g + 0) }'; }

failed=0
loadavg=$(cut -d ' ' -f 1-3 /proc/loadavg)
echo "# bench=peers peer=hikaricp rounds=$ROUNDS order=ABBA build=$BUILD" \
     "loadavg=\"$loadavg\" cores=$(nproc) java=\"$(java -version 2>&1 | head -n 1 | tr -d '"')\""

# --- pg: qorb-pg (pg_bench) against HikariCP + pgjdbc -----------------------

pg_side_qorb() { # clients round
  local out=$WORK/pg_qorb.out rc=0 line
  local args=(--clients "$1" --seconds "$SECONDS_PG" --warmup "$WARMUP" --pool "$POOL")
  [ -z "$PG_PATHS" ] || args+=(--paths "$PG_PATHS")
  [ "$PG_ROUNDS_OPT" = 0 ] || args+=(--rounds 1)
  if [ "$PG_SHARED" = 1 ]; then
    run_child "$out" env PG_BENCH_SERVERS_SH="$WORK/servers_shim.sh" "$PG_BENCH" "${args[@]}" || rc=$?
  else
    # pg_bench starts and stops its own servers on the same ports.
    servers_down
    run_child "$out" "$PG_BENCH" "${args[@]}" || rc=$?
  fi
  if [ $rc = 2 ] && [ -n "$PG_PATHS" ]; then
    echo "# pg_bench refused --paths $PG_PATHS; running every path"
    PG_PATHS=""
    pg_side_qorb "$@"
    return
  fi
  [ $rc = 0 ] || { echo "# pg_bench clients=$1 exited $rc"; failed=1; }
  while IFS= read -r line; do
    case $line in
      "bench=pg path="*) ;;
      *) continue ;;
    esac
    echo "# round=$2 $line"
    [ "$(field "$line" clients)" = "$1" ] || continue
    local path reset tps
    path=$(field "$line" path)
    reset=$(field "$line" reset)
    tps=$(field "$line" tps)
    [ -n "$tps" ] || continue
    echo "pg_${path}_${reset} $1 $2 $tps" >>"$RES"
  done <"$out"
}

pg_side_hikari() { # clients round
  local out=$WORK/pg_hikari.out rc=0 line tps
  servers_up
  run_child "$out" "${JAVA[@]}" pg --clients "$1" --pool "$POOL" --seconds "$SECONDS_PG" \
    --warmup "$WARMUP" --jit-warmup "$JIT_WARMUP" \
    --url "jdbc:postgresql://$HOST:$PGPORT/postgres" --user postgres || rc=$?
  [ $rc = 0 ] || { echo "# HikariBench pg clients=$1 exited $rc"; failed=1; }
  while IFS= read -r line; do
    case $line in "bench=pg path="*) ;; *) continue ;; esac
    echo "# round=$2 $line"
    tps=$(field "$line" tps)
    if [ -n "$tps" ]; then echo "pg_hikaricp_none $1 $2 $tps" >>"$RES"; fi
  done <"$out"
}

if [ "$DO_PG" = 1 ]; then
  help=$("$PG_BENCH" --help 2>&1 || true)
  # The servers: pg_bench starts its own through the script named by
  # PG_BENCH_SERVERS_SH. Where it reads that variable, a stand-in that
  # starts nothing lets it use the servers started here; otherwise it
  # starts and stops its own, and the Java side uses the same ports only
  # between pg_bench calls.
  PG_SHARED=0
  if grep -aq PG_BENCH_SERVERS_SH "$PG_BENCH"; then
    PG_SHARED=1
    cat >"$WORK/servers_shim.sh" <<'EOF'
#!/bin/sh
# Stand-in for bench_servers.sh: run.sh already runs the servers.
# pg_bench's own (empty) folder is all there is to remove.
case $2 in
  start) exit 0 ;;
  stop) rmdir "$1" 2>/dev/null; exit 0 ;;
  *) exit 1 ;;
esac
EOF
  fi
  # Options that newer pg_bench versions have: a path selector (only qorb
  # is needed here) and rounds of its own (one per call: run.sh alternates).
  PG_PATHS=""
  if echo "$help" | grep -q -- '--paths'; then
    if echo "$help" | grep -q -- qorb-none && echo "$help" | grep -q -- qorb-discard; then
      PG_PATHS=qorb-none,qorb-discard
    else
      PG_PATHS=qorb
    fi
    PG_PATHS=${QORB_PG_PATHS:-$PG_PATHS}
  fi
  PG_ROUNDS_OPT=0
  if echo "$help" | grep -q -- '--rounds'; then PG_ROUNDS_OPT=1; fi
  echo "# pg: servers=$([ $PG_SHARED = 1 ] && echo shared || echo per-call)" \
       "paths=${PG_PATHS:-all} seconds=$SECONDS_PG warmup=$WARMUP jit_warmup=$JIT_WARMUP" \
       "pool=$POOL clients=$CLIENTS"
  [ "$PG_SHARED" = 0 ] || servers_up

  for n in ${CLIENTS//,/ }; do
    r=0
    while [ $r -lt "$ROUNDS" ]; do
      if [ $((r % 2)) = 0 ]; then
        pg_side_qorb "$n" $r
        pg_side_hikari "$n" $r
      else
        pg_side_hikari "$n" $r
        pg_side_qorb "$n" $r
      fi
      r=$((r + 1))
    done
  done
  servers_down
fi

# --- claim: bench/claim threads mode against HikariCP over mocks ------------

if [ "$DO_CLAIM" = 1 ]; then
  check_opt=""
  [ "$CLAIM_CHECK" = 1 ] || check_opt=--no-check
  echo "# claim: pool=$POOL threads=$THREADS seconds=$SECONDS_CLAIM" \
       "qorb_check=$([ $CLAIM_CHECK = 1 ] && echo on || echo off) hikaricp_check=off" \
       "jit_warmup=$JIT_WARMUP"
  # claim_side ROUND KEY PREFIX LABEL CMD...: one round of one side; its
  # lines that start with PREFIX give ops/s and starved into $RES as KEY.
  claim_side() {
    local round=$1 key=$2 prefix=$3 label=$4 out=$WORK/claim_$2.out rc=0 line
    shift 4
    run_child "$out" "$@" || rc=$?
    [ $rc = 0 ] || { echo "# $label exited $rc"; failed=1; }
    while IFS= read -r line; do
      case $line in "$prefix"*) ;; *) continue ;; esac
      echo "# round=$round $line"
      echo "claim_$key $(field "$line" threads) $round $(field "$line" ops_per_s)" >>"$RES"
      echo "starved_$key $(field "$line" threads) $round $(field "$line" starved)" >>"$RES"
    done <"$out"
  }
  claim_qorb() { # round
    # shellcheck disable=SC2086 # check_opt is empty or one option
    claim_side "$1" qorb "bench=claim mode=threads " bench/claim \
      "$CLAIM" --modes threads --pools "$POOL" --threads "$THREADS" \
      --seconds "$SECONDS_CLAIM" --rounds 1 $check_opt
  }
  claim_hikari() { # round
    claim_side "$1" hikaricp "bench=claim path=hikaricp " "HikariBench claim" \
      "${JAVA[@]}" claim --threads "$THREADS" --pool "$POOL" \
      --seconds "$SECONDS_CLAIM" --warmup 0.1 --jit-warmup "$JIT_WARMUP"
  }
  r=0
  while [ $r -lt "$ROUNDS" ]; do
    if [ $((r % 2)) = 0 ]; then claim_qorb $r; claim_hikari $r
    else claim_hikari $r; claim_qorb $r; fi
    r=$((r + 1))
  done
fi

# --- Summary -----------------------------------------------------------------

echo "# summary: medians over $ROUNDS rounds per side; a ratio is the median of per-round ratios"
if [ "$DO_PG" = 1 ]; then
  for n in ${CLIENTS//,/ }; do
    q=$(values pg_qorb_none "$n" | median)
    h=$(values pg_hikaricp_none "$n" | median)
    ratio=$(ratios pg_qorb_none pg_hikaricp_none "$n" | median)
    met=no
    ge "$ratio" 1.2 && met=yes
    line="bench=pg-peer clients=$n qorb_tps=$(fmt0 "$q") hikaricp_tps=$(fmt0 "$h")"
    line="$line qorb_over_hikaricp=$(fmt2 "$ratio") goal=1.2 met=$met"
    if [ -n "$(values pg_qorb_discard "$n")" ]; then
      d=$(values pg_qorb_discard "$n" | median)
      dr=$(ratios pg_qorb_discard pg_hikaricp_none "$n" | median)
      line="$line qorb_default_tps=$(fmt0 "$d") qorb_default_over_hikaricp=$(fmt2 "$dr")"
    fi
    echo "$line"
  done
fi
if [ "$DO_CLAIM" = 1 ]; then
  for n in ${THREADS//,/ }; do
    q=$(values claim_qorb "$n" | median)
    h=$(values claim_hikaricp "$n" | median)
    ratio=$(ratios claim_qorb claim_hikaricp "$n" | median)
    sq=$(values starved_qorb "$n" | sort -g | tail -n 1)
    sh_=$(values starved_hikaricp "$n" | sort -g | tail -n 1)
    met=no
    ge "$ratio" 2 && met=yes
    echo "bench=claim-peer threads=$n pool=$POOL qorb_ops=$(fmt0 "$q") hikaricp_ops=$(fmt0 "$h")" \
         "ratio=$(fmt2 "$ratio") goal=2 met=$met qorb_starved=${sq:-nan} hikaricp_starved=${sh_:-nan}"
  done
fi
exit $failed
