# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# demo-redis.sh: the Redis section of the README's demo, sourced by
# tools/demo.sh (which provides say, die, start_bg, stop_pid,
# wait_for_line, build_qorb, bin, demo_start_dns, demo_watch,
# demo_event, demo_stopped/demo_started, demo_wait, demo_summary, the DNS server
# (dns_service, dns_join, dns_set, dns_srv, DNS_SERVER), the scratch folder
# $work, the list of started pids and the cleanup trap that stops every one
# of them).
#
#   demo_redis   three throwaway redis-servers (127.0.0.2:56395,
#                127.0.0.3:56396 and 127.0.0.4:56397, no persistence), of
#                which the SRV records _redis._tcp.demo.local. (in demo.sh's
#                unbound, 2 s TTLs) list the first two (targets redis1 and
#                redis2.demo.local), and a workload through a qorb-redis
#                pool that finds them through DNS
#                (examples/redis/redis_demo.c: worker threads doing INCR +
#                GET, shown by tools/qorbtop). At ~3 s redis3 is added to
#                the records: the pool grows to three backends and the new
#                one takes claims. At ~6 s redis2 is stopped and at ~9 s
#                started again: its connections break, claims move to the
#                others and come back. At ~11 s redis1 is removed from the
#                records: it stays until its TTL has run out, then leaves
#                the pool, its connections close and the claims move to
#                the other two.
#   need_redis   what is missing to run it (for tools/deps.sh)
#
# Run on its own: tools/demo.sh redis (this file is not meant to be run).

need_redis() {
  command -v redis-server >/dev/null 2>&1 || printf ' redis-server'
  [[ -e /usr/include/hiredis/hiredis.h ]] || printf ' libhiredis-dev'
  need_dns
}

# redis_demo_start NAME HOST PORT: start one redis-server in the
# foreground (so its pid is ours to stop) and wait until it is ready.
# Sets last_pid.
redis_demo_start() {
  local name=$1 host=$2 port=$3 dir
  dir="${work:?}/$name"
  mkdir -p "$dir"
  start_bg "$name" redis-server --bind "$host" --port "$port" \
    --save '' --appendonly no --daemonize no --dir "$dir"
  wait_for_line "$work/$name.log" "Ready to accept connections" "$last_pid" \
    || die "redis-server on $host:$port did not start (port in use?)"
}

demo_redis() {
  local seconds=15 threads=4 demo i
  local srv=_redis._tcp.demo.local.
  local -a srvpid=()

  build_qorb redis_demo
  demo="$build/examples/redis/qorb-redis-demo"
  [[ -x "$demo" ]] || demo=$(bin qorb-redis-demo)

  say "redis: three redis-servers on 127.0.0.2:56395, 127.0.0.3:56396" \
      "and 127.0.0.4:56397"
  for i in 1 2 3; do
    redis_demo_start "redis$i" "127.0.0.$((i + 1))" "$((56394 + i))"
    srvpid[i]=$last_pid
  done

  dns_service redis "$srv" redis 56395 56396 56397

  say "redis: pool on $srv (DNS $DNS_SERVER) for ${seconds}s, $threads" \
      "threads; redis3 joins the records at ~3s, redis2 is stopped at ~6s" \
      "and started again at ~9s, redis1 leaves the records at ~11s"
  demo_start_dns redis "$demo" "$srv" "$seconds" "$threads"

  demo_watch 3
  dns_join "$srv" redis3 56397
  demo_watch 3
  demo_stopped 127.0.0.3:56396 "stopping redis2 (127.0.0.3:56396)"
  stop_pid "${srvpid[2]}"
  demo_watch 3
  demo_started 127.0.0.3:56396 "starting redis2 (127.0.0.3:56396) again"
  redis_demo_start redis2b 127.0.0.3 56396
  srvpid[2]=$last_pid
  demo_watch 2
  demo_event "DNS: removing redis1.demo.local. from $srv (it stays until" \
    "its TTL runs out)"
  dns_set "$srv" "$(dns_srv "$srv" redis2 56396)" \
    "$(dns_srv "$srv" redis3 56397)"

  demo_watch "$((seconds - 11))"
  demo_wait
  demo_summary
  for i in 1 2 3; do stop_pid "${srvpid[i]}"; done
  [[ $demo_rc -eq 0 ]] || die "redis demo failed (exit $demo_rc)"
}
