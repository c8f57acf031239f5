# SPDX-License-Identifier: MIT
#
# probes_lib.sh: what the probe tests share (source it). The ELF notes and
# gdb spell a probe's dashes as "__" (claim-start is claim__start).
#
#   probes_present LIB PROBE...      fail unless LIB has a qorb:PROBE note
#   probes_run TARGET DONE SPEC...   run TARGET under gdb with a breakpoint
#                                    on each probe of SPEC, print its output,
#                                    fail unless it printed the line DONE
#   probes_fired OUT REGEX DESC      fail unless a line of OUT matches REGEX
#
# A SPEC is PROBE:TYPES, one letter per argument to print, from the first:
# s a string, u an unsigned int, d an int. Each hit prints one line,
# "HIT PROBE ARG...", the arguments separated by single spaces.

probes_present() {
  local lib=$1 p notes
  shift
  # "provider:name" for every stapsdt note.
  notes=$(readelf -n "$lib" | awk '/Provider:/ { p = $2 } /Name:/ { print p ":" $2 }')
  for p in "$@"; do
    if ! grep -qx "qorb:$p" <<<"$notes"; then
      echo "FAIL: probe $p missing from $lib" >&2
      return 1
    fi
  done
  echo "all $# probes present in $(basename "$lib")"
}

# The gdb commands of one SPEC.
probes__break() {
  local p=${1%%:*} types=${1#*:} fmt="" args="" i=0 t
  while [ -n "$types" ]; do
    t=${types:0:1}
    types=${types:1}
    case $t in
      s) fmt+=" %s" args+=", (char *)\$_probe_arg$i" ;;
      u) fmt+=" %u" args+=", (unsigned int)\$_probe_arg$i" ;;
      d) fmt+=" %d" args+=", (int)\$_probe_arg$i" ;;
      *) echo "probes_lib: bad type '$t' in $1" >&2; return 1 ;;
    esac
    i=$((i + 1))
  done
  printf '%s\n' "break -probe-stap qorb:$p" "commands" "silent" \
    "printf \"HIT $p$fmt\\n\"$args" "continue" "end"
}

probes_run() {
  local target=$1 done=$2 script out spec rc=0
  shift 2
  if ! command -v gdb >/dev/null; then
    echo "FAIL: gdb not installed: firing not checked" >&2
    return 1
  fi
  script=$(mktemp)
  {
    echo "set breakpoint pending on"
    echo "set pagination off"
    for spec in "$@"; do probes__break "$spec" || rc=1; done
    echo "run"
  } >"$script"
  if [ "$rc" -ne 0 ]; then
    rm -f "$script"
    return 1
  fi
  out=$(timeout 120 gdb -q -batch -x "$script" --args "$target" 2>&1) || rc=$?
  rm -f "$script"
  if ! grep -qx "$done" <<<"$out"; then
    echo "$out" | tail -40 >&2
    echo "FAIL: $(basename "$target") did not finish (gdb status $rc)" >&2
    return 1
  fi
  printf '%s\n' "$out"
}

probes_fired() {
  local out=$1 re=$2 desc=$3 n
  n=$(grep -cE "$re" <<<"$out" || true)
  if [ "$n" -lt 1 ]; then
    grep '^HIT ' <<<"$out" | sort | uniq -c | tail -30 >&2
    echo "FAIL: $desc: no hit matching /$re/" >&2
    return 1
  fi
  echo "$desc: $n hits"
}
