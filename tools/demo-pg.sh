# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# demo-pg.sh: the PostgreSQL section of the README demo. tools/demo.sh
# sources this file and runs `demo_pg` (section name "pg"); it relies on
# demo.sh's helpers: say, die, build_qorb, bin, demo_start_dns, demo_watch,
# demo_stopped/demo_started, demo_wait and demo_summary, the
# DNS server (dns_service, dns_join, DNS_SERVER), the scratch
# folder $work and the `pids` array that demo.sh's cleanup stops on exit
# (also on Ctrl-C).
#
# What it shows: three throwaway PostgreSQL servers, 127.0.0.2:55435,
# 127.0.0.3:55436 and 127.0.0.4:55437 (one initdb, copied), of which the
# SRV records _pg._tcp.demo.local. (in demo.sh's unbound, 2 s TTLs) list
# the first two (targets pg1 and pg2.demo.local); a qorb-pg pool driven by
# examples/pg/pg_demo.c finds them through DNS (worker threads running
# small transactions), shown by tools/qorbtop.
# At ~4 s the third server is added to the records (pg3.demo.local): the
# resolver reports three backends and the new one takes claims. At ~8 s
# the second server gets a fast restart: its sessions are killed, the pool
# notices, claims move to the others, libpq's words show in last_error,
# and the server comes back online by itself at ~11 s. The summary says
# how soon after its restart the pool used it again.
#
# PostgreSQL refuses to run as root: as root the servers run as the
# postgres user (runuser), from a folder inside $work that it can reach.

pg_demo_bindir() {
  local d
  if [[ -x /usr/lib/postgresql/15/bin/postgres ]]; then
    d=/usr/lib/postgresql/15/bin
  else
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n "$d" ]] || d=$(pg_config --bindir 2>/dev/null || true)
  fi
  printf '%s\n' "$d"
}

# need_pg: what the section needs that is missing (for ensure_deps).
need_pg() {
  local d
  d=$(pg_demo_bindir)
  [[ -n "$d" && -x "$d/postgres" ]] || printf ' postgresql'
  [[ -e /usr/include/postgresql/libpq-fe.h ]] || printf ' libpq-dev'
  need_dns
}

pg_demo_as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_demo_start NAME HOST PORT: start one server, register its postmaster
# (for demo.sh's cleanup) and leave its pid in pg_demo_pid.
pg_demo_pid=""
pg_demo_start() {
  local name=$1 host=$2 port=$3 d pid
  d="$work/pg/$name"
  pg_demo_as_pg "$(pg_demo_bindir)/pg_ctl" -D "$d" -l "$work/pg/$name.log" \
    -w -t 30 -s -o "-p $port -c listen_addresses=$host \
      -c unix_socket_directories= -c fsync=off -c synchronous_commit=off" \
    start || { tail -n 20 "$work/pg/$name.log" >&2; die "postgres $name did not start"; }
  pid=$(head -n 1 "$d/postmaster.pid")
  pids+=("$pid")
  pg_demo_pid=$pid
}

# pg_demo_stop NAME PID: fast shutdown (sessions are terminated), then
# forget its pid.
pg_demo_stop() {
  local name=$1 pid=$2 p keep=()
  pg_demo_as_pg "$(pg_demo_bindir)/pg_ctl" -D "$work/pg/$name" -m fast -w \
    -t 30 -s stop || kill -KILL "$pid" 2>/dev/null || true
  for p in "${pids[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
  pids=("${keep[@]+"${keep[@]}"}")
}

demo_pg() {
  local seconds=14 threads=4 bindir demo pid1 pid2 pid3
  local srv=_pg._tcp.demo.local.
  local b1=127.0.0.2:55435 b2=127.0.0.3:55436 b3=127.0.0.4:55437

  build_qorb qorb_pg_demo
  demo=$(bin qorb-pg-demo)
  bindir=$(pg_demo_bindir)

  say "pg: three throwaway PostgreSQL servers, $b1, $b2 and $b3"
  mkdir -p "$work/pg"
  if [[ $(id -u) -eq 0 ]]; then
    chmod 711 "$work"   # let postgres reach its folder, not read ours
    chown postgres "$work/pg"
  fi
  pg_demo_as_pg "$bindir/initdb" -D "$work/pg/one" -A trust -U postgres \
    --no-sync >"$work/pg/initdb.log" 2>&1 \
    || { cat "$work/pg/initdb.log" >&2; die "initdb failed"; }
  pg_demo_as_pg cp -a "$work/pg/one" "$work/pg/two"
  pg_demo_as_pg cp -a "$work/pg/one" "$work/pg/three"
  pg_demo_start one 127.0.0.2 55435
  pid1=$pg_demo_pid
  pg_demo_start two 127.0.0.3 55436
  pid2=$pg_demo_pid
  pg_demo_start three 127.0.0.4 55437
  pid3=$pg_demo_pid

  dns_service pg "$srv" pg 55435 55436 55437

  say "pg: a qorb-pg pool on $srv (DNS $DNS_SERVER) for ${seconds}s," \
      "$threads threads; pg3 ($b3) joins the records at ~4s, $b2 gets a" \
      "fast restart at ~8s and stays down ~3s"
  demo_start_dns pg "$demo" "$srv" "$seconds" "$threads"

  demo_watch 4
  dns_join "$srv" pg3 55437
  demo_watch 4
  demo_stopped "$b2" "pg_ctl stop -m fast on $b2 (its sessions are terminated)"
  pg_demo_stop two "$pid2"
  demo_watch 3
  demo_started "$b2" "starting $b2 again"
  pg_demo_start two 127.0.0.3 55436
  pid2=$pg_demo_pid

  demo_watch "$((seconds - 11))"
  demo_wait
  demo_summary
  pg_demo_stop three "$pid3"
  pg_demo_stop two "$pid2"
  pg_demo_stop one "$pid1"
  [[ $demo_rc -eq 0 ]] || die "pg demo failed (exit $demo_rc)"
}
