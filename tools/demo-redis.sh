# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# demo-redis.sh: the Redis section of the README's demo, sourced by
# tools/demo.sh (which provides say, die, start_bg, stop_pid,
# wait_for_line, build_qorb, bin, the scratch folder $work, the list of
# started pids and the cleanup trap that stops every one of them).
#
#   demo_redis   two throwaway redis-servers (127.0.0.2:56395 and
#                127.0.0.3:56396, no persistence), a workload through a
#                qorb-redis pool (examples/redis/redis_demo.c: worker
#                threads doing INCR + GET, the pool's stats printed each
#                second); the server on 127.0.0.3 is stopped at ~4 s and
#                started again at ~7 s, so the backend going offline, the
#                claims moving to the other one, and the recovery show.
#   need_redis   what is missing to run it (for tools/deps.sh)
#
# Run on its own: tools/demo.sh redis (this file is not meant to be run).

need_redis() {
  command -v redis-server >/dev/null 2>&1 || printf ' redis-server'
  [[ -e /usr/include/hiredis/hiredis.h ]] || printf ' libhiredis-dev'
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
  local seconds=12 threads=4 demo demo_pid rc=0 p keep=()
  local -a srv=()

  build_qorb redis_demo
  demo="$build/examples/redis/qorb-redis-demo"
  [[ -x "$demo" ]] || demo=$(bin qorb-redis-demo)

  say "redis: two redis-servers on 127.0.0.2:56395 and 127.0.0.3:56396"
  redis_demo_start redis1 127.0.0.2 56395
  srv[1]=$last_pid
  redis_demo_start redis2 127.0.0.3 56396
  srv[2]=$last_pid

  say "redis: pool over them for ${seconds}s, $threads threads;" \
      "127.0.0.3 is stopped at ~4s and started again at ~7s"
  "$demo" --backends "127.0.0.2:56395,127.0.0.3:56396" \
    --seconds "$seconds" --threads "$threads" &
  demo_pid=$!
  pids+=("$demo_pid")

  sleep 4
  printf '\n*** stopping the redis-server on 127.0.0.3:56396 ***\n\n'
  stop_pid "${srv[2]}"

  sleep 3
  printf '\n*** starting the redis-server on 127.0.0.3:56396 again ***\n\n'
  redis_demo_start redis2b 127.0.0.3 56396
  srv[2]=$last_pid

  wait "$demo_pid" || rc=$?
  for p in "${pids[@]}"; do [[ "$p" == "$demo_pid" ]] || keep+=("$p"); done
  pids=("${keep[@]+"${keep[@]}"}")
  stop_pid "${srv[1]}"
  stop_pid "${srv[2]}"
  [[ $rc -eq 0 ]] || die "redis demo failed (exit $rc)"
}
