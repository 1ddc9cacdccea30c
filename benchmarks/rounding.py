"""Rounding and local search (issue 5): quality against the exact optimum, and scale.

    python benchmarks/rounding.py small [--instances 24] [--time-limit 60]
    python benchmarks/rounding.py large [--prompts 10000] [--completions 15] [--dim 64] [--budget 10000]

``small``: generated instances that ``exact`` proves optimal (f*), and the D-efficiency
``exp((f - f*)/d)`` of round, local-search, greedy and the baselines on each; prints one row per
instance and the median and minimum per method. Instances exact cannot prove within the time
limit are listed and left out.

``large``: one generated instance (default 10,000 prompts x 15 completions = 1,050,000 candidate
pairs, d = 64, budget 10,000); each method in a fresh process (time, peak memory, objective), and
the certified efficiency of each design against the relaxation's bound from round's run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import pairdesign

SMALL_METHODS = ["round", "local-search", "greedy", "random", "first-k", "max-distance",
                 "best-vs-worst", "ultrafeedback", "min-margin", "max-margin"]
LARGE_METHODS = ["round", "local-search", "greedy", "random", "max-distance", "first-k",
                 "best-vs-worst", "ultrafeedback", "min-margin"]

CHILD = r"""
import json, resource, sys, time
import pairdesign
inst = pairdesign.load_instance(sys.argv[1])
inst.candidates
r = pairdesign.solve(inst, method=sys.argv[2], seed=0)
phases = [line for line in r.log if "relaxation:" in line or "best rounding" in line
          or "local search:" in line]
print(json.dumps({"seconds": r.seconds, "objective": r.objective, "bound": r.bound,
                  "labels": r.n_labels, "phases": phases,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}, "
            f"numpy {np.__version__}; load average {load:.1f} at start")


def small(args: argparse.Namespace) -> None:
    print(machine())
    rng = np.random.default_rng(0)
    effs: dict[str, list[float]] = {m: [] for m in SMALL_METHODS}
    secs: dict[str, list[float]] = {m: [] for m in SMALL_METHODS + ["exact"]}
    skipped = []
    print(f"{'#':>3} {'P':>4} {'d':>2} {'B':>3} {'exact s':>8} " + " ".join(f"{m[:12]:>12}" for m in SMALL_METHODS))
    for i in range(args.instances):
        n, K, d = int(rng.integers(6, 13)), int(rng.integers(4, 6)), int(rng.integers(3, 7))
        B = int(d * rng.choice([1, 2, 3]))
        inst = pairdesign.synthetic_instance(n, K, d, budget=B, seed=i, ridge=args.ridge).instance
        exact = pairdesign.solve(inst, "exact", time_limit=args.time_limit)
        if exact.status is not pairdesign.SolutionStatus.optimal:
            skipped.append((i, len(inst.candidates), d, B, exact.gap))
            continue
        secs["exact"].append(exact.seconds)
        row = []
        for m in SMALL_METHODS:
            r = pairdesign.solve(inst, m, seed=0)
            e = float(np.exp((r.objective - exact.objective) / d))
            if e > 1 + 1e-9:
                raise AssertionError(f"{m} beat the proven optimum on instance {i}")
            effs[m].append(min(e, 1.0))
            secs[m].append(r.seconds)
            row.append(e)
        print(f"{i:>3} {len(inst.candidates):>4} {d:>2} {B:>3} {exact.seconds:>8.2f} "
              + " ".join(f"{e:>12.4f}" for e in row), flush=True)
    print()
    print(f"{'method':<14} {'median eff':>10} {'min eff':>8} {'share = 1':>9} {'median s':>9}")
    for m in SMALL_METHODS:
        e = effs[m]
        print(f"{m:<14} {statistics.median(e):>10.4f} {min(e):>8.4f} "
              f"{sum(x > 1 - 1e-9 for x in e) / len(e):>9.2f} {statistics.median(secs[m]):>9.3f}")
    print(f"{'exact':<14} {'':>10} {'':>8} {'':>9} {statistics.median(secs['exact']):>9.3f}")
    print(f"{len(effs['round'])} instances proven optimal; skipped (not proven in "
          f"{args.time_limit:g} s): {skipped or 'none'}")


def large(args: argparse.Namespace) -> None:
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.npz"
        syn = pairdesign.synthetic_instance(args.prompts, args.completions, args.dim,
                                            budget=args.budget, seed=0)
        pairdesign.save_instance(syn.instance, path)
        pairs = len(syn.instance.candidates)
        del syn
        print(f"instance: {args.prompts} prompts x {args.completions} completions, d = {args.dim}, "
              f"{pairs} candidate pairs, budget {args.budget}")
        rows = []
        for m in args.methods:
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), m],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["wall"] = time.perf_counter() - t
            rows.append((m, r))
            print(f"  {m}: {r['seconds']:.1f} s", *r["phases"], sep="\n    ", flush=True)
    bound = min(r["bound"] for m, r in rows if r["bound"] is not None)
    print()
    print(f"relaxation bound U = {bound:.4f}")
    print(f"{'method':<14} {'seconds':>8} {'peak MiB':>9} {'log det M':>11} {'cert. eff':>10}")
    for m, r in rows:
        eff = float(np.exp((r["objective"] - bound) / args.dim))
        print(f"{m:<14} {r['seconds']:>8.2f} {r['peak_mib']:>9.0f} {r['objective']:>11.3f} {eff:>10.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("small")
    p.add_argument("--instances", type=int, default=24)
    p.add_argument("--time-limit", type=float, default=60.0)
    p.add_argument("--ridge", type=float, default=0.01)
    p.set_defaults(run=small)
    p = sub.add_parser("large")
    p.add_argument("--prompts", type=int, default=10_000)
    p.add_argument("--completions", type=int, default=15)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--budget", type=int, default=10_000)
    p.add_argument("--methods", nargs="*", default=LARGE_METHODS)
    p.set_defaults(run=large)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
