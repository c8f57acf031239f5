#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check-compose.sh SRC: validate SRC/docker/docker-compose.yml offline, as
# the ctest docker_compose_config does (docker/CMakeLists.txt). No Docker
# engine is needed.
#
#   1. `docker-compose config -q` accepts the file (Debian's docker-compose,
#      1.29);
#   2. every published port is bound to 127.0.0.x;
#   3. no published port number appears in the scripts or sources under
#      SRC/tests, SRC/bench or SRC/tools, where the tests' own servers get
#      their ports: the two must never collide.
#
# Without docker-compose it skips (exit 77), unless CI=true: then it fails,
# because tools/deps.sh installs it and a silent pass would hide a broken
# file.
set -eu

src=${1:?usage: check-compose.sh SRC}
file="$src/docker/docker-compose.yml"

if ! command -v docker-compose >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then
    echo "check-compose.sh: docker-compose not found (CI=true; tools/deps.sh installs it)" >&2
    exit 1
  fi
  echo "check-compose.sh: docker-compose not found (Debian: apt-get install docker-compose); skipping" >&2
  exit 77
fi

docker-compose -f "$file" config -q

# The published ports, one "host_ip:port" a line ("(any)" for no host_ip),
# from the normalised file, whose items are short ("- 127.0.0.1:55601:5432/tcp")
# or long ("- published: 55601" with "host_ip: ..." below).
published=$(docker-compose -f "$file" config | awk '
  function flush() { if (item) print ip ":" pub; item = 0 }
  /^ *ports:$/ { flush(); match($0, /^ */); depth = RLENGTH; inports = 1; next }
  inports {
    match($0, /^ */)
    if (RLENGTH < depth || (RLENGTH == depth && $0 !~ /^ *- /)) {
      flush(); inports = 0; next
    }
    line = $0; gsub(/["\047]/, "", line)
    if (line ~ /^ *- /) {
      flush(); item = 1; ip = "(any)"; pub = "(none)"
      sub(/^ *- */, "", line)
      if (line !~ /^[a-z_]+:/) {
        sub(/\/(tcp|udp)$/, "", line)
        n = split(line, f, ":")
        if (n == 3) { ip = f[1]; pub = f[2] } else if (n == 2) pub = f[1]
        next
      }
    }
    sub(/^ */, "", line)
    if (sub(/^published: */, "", line)) pub = line
    else if (sub(/^host_ip: */, "", line)) ip = line
  }
  END { flush() }')

bad=0
for hp in $published; do
  ip=${hp%:*} port=${hp##*:}
  case $ip in
    127.0.0.*) ;;
    *) echo "check-compose.sh: port $port is published on $ip, not 127.0.0.x" >&2; bad=1 ;;
  esac
  case $port in
    *[!0-9]*|'')
      echo "check-compose.sh: published port '$port' is not one fixed port" >&2
      bad=1
      continue
      ;;
  esac
  hits=$(grep -rlw --include='*.sh' --include='*.c' --include='*.h' \
    --include='*.py' --include='*.conf' -e "$port" \
    "$src/tests" "$src/bench" "$src/tools" 2>/dev/null || true)
  if [ -n "$hits" ]; then
    echo "check-compose.sh: published port $port is also used by:" $hits >&2
    bad=1
  fi
done
[ -n "$published" ] || echo "check-compose.sh: no published ports" >&2
exit $bad
