#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check_format.sh FORMAT_DUMP DIR: the stats formatters' output read by
# real parsers. FORMAT_DUMP writes DIR/{scripted,live,empty}.{prom,json};
# then every .prom must pass `promtool check metrics` (exit 0 and not one
# line of output: its lint warnings count as failures) and a stricter
# reading here (one # HELP and # TYPE per family, before its series, which
# stay together; no series twice; histograms cumulative, ending in +Inf,
# with _count equal to the +Inf bucket), and every .json must load with
# Python's json from strict UTF-8 into {"pools": [...]}, each pool with
# a "backends" list. Exit 77 (ctest: skipped) without promtool (Debian
# package prometheus, tools/deps.sh).
set -u

dump=$1
dir=$2

if ! command -v promtool >/dev/null 2>&1; then
  echo "check_format: promtool not found (apt-get install prometheus); skipped"
  exit 77
fi

rm -rf "$dir" && mkdir -p "$dir" || exit 1
"$dump" "$dir" || { echo "check_format: $dump failed"; exit 1; }

failed=0
for f in "$dir"/scripted.prom "$dir"/live.prom "$dir"/empty.prom; do
  out=$(promtool check metrics <"$f" 2>&1)
  rc=$?
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    echo "check_format: promtool check metrics < $f: exit $rc"
    echo "$out"
    failed=1
  fi
done

python3 - "$dir" <<'PY' || failed=1
import json, math, re, sys

d = sys.argv[1]
bad = []

def reject(c):
    raise ValueError("not JSON: " + c)

for name in ("scripted", "live", "empty"):
    path = "%s/%s.json" % (d, name)
    try:
        with open(path, encoding="utf-8", errors="strict") as f:
            doc = json.load(f, parse_constant=reject)
        assert isinstance(doc, dict) and list(doc) == ["pools"], "not {pools}"
        assert isinstance(doc["pools"], list), "pools is not a list"
        for p in doc["pools"]:
            assert isinstance(p.get("backends"), list), "no backends list"
            assert isinstance(p.get("resolver"), dict), "no resolver object"
            assert len(p["wait_hist"]) == 20, "wait_hist"
        assert (name == "empty") == (doc["pools"] == []), "pool count"
    except Exception as e:
        bad.append("%s: %s" % (path, e))

LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)')
SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')

def labels_of(s):
    if s is None:
        return ()
    inner, out, pos = s[1:-1], [], 0
    while pos < len(inner):
        m = LABEL.match(inner, pos)
        if m is None:
            raise ValueError("bad labels %r" % s)
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    names = [k for k, _ in out]
    if len(set(names)) != len(names):
        raise ValueError("label twice in %r" % s)
    return tuple(out)

for name in ("scripted", "live", "empty"):
    path = "%s/%s.prom" % (d, name)
    with open(path, encoding="utf-8", errors="strict") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        bad.append(path + ": no final newline")
    seen, types, series, current = set(), {}, set(), None
    hists = {}
    for n, line in enumerate(text.splitlines(), 1):
        where = "%s:%d" % (path, n)
        try:
            if line.startswith("# HELP "):
                fam = line.split(" ")[2]
                if fam in seen:
                    raise ValueError("family %s again" % fam)
                seen.add(fam)
                current = fam
            elif line.startswith("# TYPE "):
                _, _, fam, typ = line.split(" ")
                if fam != current or fam in types:
                    raise ValueError("TYPE of %s not right after its HELP" % fam)
                types[fam] = typ
            else:
                m = SAMPLE.match(line)
                if m is None:
                    raise ValueError("not a sample: %r" % line)
                metric, lab, val = m.group(1), labels_of(m.group(2)), m.group(3)
                fam = metric
                if types.get(current) == "histogram":
                    for suf in ("_bucket", "_sum", "_count"):
                        if metric == current + suf:
                            fam = current
                if fam != current:
                    raise ValueError("%s outside its family (in %s)" % (metric, current))
                v = float(val)
                if math.isnan(v) or v < 0:
                    raise ValueError("value %s" % val)
                key = (metric, tuple(sorted(lab)))
                if key in series:
                    raise ValueError("series twice: %s%s" % key)
                series.add(key)
                if types[current] == "counter" and not metric.endswith("_total"):
                    raise ValueError("counter without _total")
                if fam != metric or types[current] == "histogram":
                    base = tuple(kv for kv in lab if kv[0] != "le")
                    h = hists.setdefault((current, base), {"b": []})
                    if metric.endswith("_bucket"):
                        le = dict(lab)["le"]
                        h["b"].append((float(le), v))
                    else:
                        h[metric[len(current):]] = v
        except ValueError as e:
            bad.append("%s: %s" % (where, e))
    for (fam, base), h in hists.items():
        b = h["b"]
        ok = b and b[-1][0] == math.inf and "_sum" in h and \
            h.get("_count") == b[-1][1] and \
            all(x[0] < y[0] and x[1] <= y[1] for x, y in zip(b, b[1:]))
        if not ok:
            bad.append("%s: histogram %s%s malformed" % (path, fam, base))

for b in bad:
    print("check_format: " + b)
sys.exit(1 if bad else 0)
PY

[ "$failed" -eq 0 ] && echo "check_format: promtool, the family checks and json all pass"
exit "$failed"
