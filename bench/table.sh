#!/bin/bash
# SPDX-License-Identifier: MIT
#
# table.sh: the README's benchmark tables, from one run on this machine:
#
#   bench/pg/pg_bench        SELECT 1 per claim, pool of 8: qorb-pg with its
#                            default reset (DISCARD ALL) and with the reset
#                            off, dedicated connections, PgBouncer
#                            (transaction mode), at 1, 8, 16 and 32 clients
#   bench/peers/hikaricp     HikariCP 2.7.9 over pgjdbc, the same workload,
#                            alternated with qorb-pg (only when Java 17 and
#                            the Debian jars are installed; see
#                            bench/peers/README.md)
#   bench/redis/redis_bench  GET per claim, pool of 8: qorb-redis with its
#                            default reset (RESET pipeline) and with it off,
#                            dedicated connections, twemproxy
#
# Every figure is a median over alternated rounds and every ratio the median
# of per-round ratios (see each benchmark's README). Prints two Markdown
# tables, and the benchmarks' own lines to bench-table.log in the current
# folder. It starts and stops its own servers on 127.0.0.2: run it under
# the servers' lock, from a Release build:
#
#   cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release
#   cmake --build build/release -j2
#   flock /tmp/qorb-servers.lock bench/table.sh --build build/release
#   (--log FILE: where the lines go; --from FILE: tables from such a log)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build/release
LOG=$PWD/bench-table.log
FROM=""   # --from LOG: only make the tables from an earlier run's log
while [ $# -gt 0 ]; do
  case $1 in
    --build) BUILD=$(cd "${2:?--build DIR}" && pwd); shift 2 ;;
    --log) LOG=${2:?--log FILE}; shift 2 ;;
    --from) FROM=${2:?--from LOG}; shift 2 ;;
    -h|--help) sed -n '3,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "table.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$FROM" ]; then
  LOG=$FROM
else
  PG=$BUILD/bench/pg/pg_bench
  REDIS=$BUILD/bench/redis/redis_bench
  for b in "$PG" "$REDIS"; do
    [ -x "$b" ] || { echo "table.sh: $b is not built" >&2; exit 2; }
  done
  : >"$LOG"
  echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$LOG"
  "$PG" --clients 1,8,16,32 >>"$LOG"
  if command -v java >/dev/null 2>&1 && [ -e /usr/share/java/HikariCP.jar ]; then
    "$ROOT/bench/peers/hikaricp/run.sh" --build "$BUILD" --pg-only >>"$LOG" || true
  else
    echo "# HikariCP not installed: its column is empty" >>"$LOG"
  fi
  "$REDIS" --ops get --clients 1,8,16,32 >>"$LOG"
fi

# key=value lookup on one line: field LINE KEY
awk '
function f(line, key,   n, i, a, kv) {
  n = split(line, a, " ")
  for (i = 1; i <= n; i++) { split(a[i], kv, "="); if (kv[1] == key) return substr(a[i], length(key) + 2) }
  return ""
}
/^bench=pg path=/ {
  c = f($0, "clients"); pth = f($0, "path") "-" f($0, "reset"); pg[c, pth] = f($0, "tps"); pcs[c] = 1
}
/^bench=pg-ratio / {
  c = f($0, "clients"); rd[c] = f($0, "qorb_over_direct"); rb[c] = f($0, "qorb_over_pgbouncer"); rr[c] = f($0, "discard_over_none")
}
/^bench=pg-peer / { c = f($0, "clients"); hk[c] = f($0, "hikaricp_tps"); rh[c] = f($0, "qorb_over_hikaricp") }
/^bench=redis path=/ && / op=get / {
  c = f($0, "clients"); rs[c, f($0, "path")] = f($0, "ops_per_s"); rcs[c] = 1
}
/^bench=redis ratio=/ && / op=get / { c = f($0, "clients"); rratio[c, f($0, "ratio")] = f($0, "value") }
function kilo(x) { return x == "" ? "-" : sprintf("%.1fk", x / 1000) }
function v(x) { return x == "" ? "-" : x }
END {
  print "PostgreSQL, SELECT 1 per claim, pool of 8 (claims or queries per second):"
  print ""
  print "| clients | qorb default | qorb reset off | dedicated | PgBouncer | HikariCP | off / dedicated | off / PgBouncer | off / HikariCP | default / off |"
  print "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  split("1 8 16 32", cl, " ")
  for (i = 1; i <= 4; i++) {
    c = cl[i]; if (!(c in pcs)) continue
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c, kilo(pg[c, "qorb-discard"]), kilo(pg[c, "qorb-none"]), kilo(pg[c, "direct-none"]), kilo(pg[c, "pgbouncer-none"]), kilo(hk[c]), v(rd[c]), v(rb[c]), v(rh[c]), v(rr[c])
  }
  print ""
  print "Redis, GET per claim, pool of 8 (operations per second):"
  print ""
  print "| clients | qorb default | qorb reset off | dedicated | twemproxy | off / dedicated | off / twemproxy | default / off |"
  print "|---:|---:|---:|---:|---:|---:|---:|---:|"
  for (i = 1; i <= 4; i++) {
    c = cl[i]; if (!(c in rcs)) continue
    printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", c, kilo(rs[c, "qorb"]), kilo(rs[c, "qorb-noreset"]), kilo(rs[c, "direct"]), kilo(rs[c, "twemproxy"]), v(rratio[c, "qorb-noreset/direct"]), v(rratio[c, "qorb-noreset/twemproxy"]), v(rratio[c, "qorb/qorb-noreset"])
  }
}' "$LOG"
