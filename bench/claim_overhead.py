#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""claim_overhead.py: what the snapshot's figures and the compiled-in (but
untraced) probes cost on the claim fast path.

Runs bench/claim (the core as shipped: figures on, probes compiled in, no
tracer attached) and bench/claim_bare (the same core built with
QORB_NO_FIGURES and without probes) in alternating rounds, A B B A ..., so
that drift on a noisy machine hits both alike, and prints per point the
median ops/s of each, the median of the per-round ratios, and their
spread. Usage:

  bench/claim_overhead.py [--build build/release] [--rounds 8]
                          [--threads 1,8] [--pools 8] [--seconds 0.3]
                          [--modes threads,async]

Output, one line per point:
  bench=claim_overhead mode=M threads=N pool=P full_ops_per_s=X
      bare_ops_per_s=Y full_over_bare=R min_ratio=A max_ratio=B rounds=K
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

LINE = re.compile(r"^bench=claim mode=(threads|async) threads=(\d+) pool=(\d+) "
                  r"ops_per_s=(\d+)")


def run(exe, a):
    cmd = [exe, "--modes", a.modes, "--threads", a.threads,
           "--pools", a.pools, "--seconds", str(a.seconds), "--rounds", "1"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         timeout=300).stdout
    got = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            got[(m.group(1), int(m.group(2)), int(m.group(3)))] = int(m.group(4))
    if not got:
        sys.exit("claim_overhead: no figures from " + exe)
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", default="1,8")
    ap.add_argument("--pools", default="8")
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--modes", default="threads,async")
    a = ap.parse_args()
    if not 1 <= a.rounds <= 100:
        sys.exit("claim_overhead: --rounds 1 to 100")
    full = os.path.join(a.build, "bench", "claim")
    bare = os.path.join(a.build, "bench", "claim_bare")
    for exe in (full, bare):
        if not os.access(exe, os.X_OK):
            sys.exit("claim_overhead: %s not built (cmake --build %s)"
                     % (exe, a.build))
    res = {"full": [], "bare": []}
    for r in range(a.rounds):
        order = ("full", "bare") if r % 2 == 0 else ("bare", "full")
        for name in order:
            res[name].append(run(full if name == "full" else bare, a))
    print("# bench=claim_overhead rounds=%d seconds=%.2f order=ABBA loadavg=%.2f"
          % (a.rounds, a.seconds, os.getloadavg()[0]))
    for key in sorted(res["full"][0]):
        f = [x[key] for x in res["full"]]
        b = [x[key] for x in res["bare"]]
        ratios = [x / y for x, y in zip(f, b) if y > 0]
        print("bench=claim_overhead mode=%s threads=%d pool=%d "
              "full_ops_per_s=%d bare_ops_per_s=%d full_over_bare=%.3f "
              "min_ratio=%.3f max_ratio=%.3f rounds=%d"
              % (key[0], key[1], key[2], statistics.median(f),
                 statistics.median(b), statistics.median(ratios),
                 min(ratios), max(ratios), len(ratios)))


if __name__ == "__main__":
    main()
