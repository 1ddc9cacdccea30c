"""Scale of the foundation (issue 2): generate, load, and design on ~1,000,000 candidate pairs.

    python benchmarks/foundation_scale.py [--prompts 10000] [--completions 15] [--dim 64] [--budget 10000]

Prints the generator's time, the load time of the binary (NPZ) form, and for each method its time,
peak memory (resident set of a fresh process that loads the instance and solves) and D-objective,
with the D-efficiency exp((f - f_greedy)/d) relative to greedy. Methods run one after another
in the same session, each in its own process.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
import pairdesign
t = time.perf_counter()
inst = pairdesign.load_instance(sys.argv[1])
inst.candidates
load = time.perf_counter() - t
r = pairdesign.solve(inst, method=sys.argv[2], seed=0)
print(json.dumps({"load": load, "seconds": r.seconds, "objective": r.objective, "labels": r.n_labels,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

METHODS = ["greedy", "random", "max-distance", "first-k", "best-vs-worst", "ultrafeedback",
           "max-margin", "min-margin"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--completions", type=int, default=15)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--methods", nargs="*", default=METHODS)
    args = parser.parse_args()

    import pairdesign
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scale.npz"
        t = time.perf_counter()
        syn = pairdesign.synthetic_instance(args.prompts, args.completions, args.dim,
                                            budget=args.budget, seed=0)
        gen_seconds = time.perf_counter() - t
        t = time.perf_counter()
        pairdesign.save_instance(syn.instance, path)
        write_seconds = time.perf_counter() - t
        pairs = len(syn.instance.candidates)
        t = time.perf_counter()
        pairdesign.load_instance(path)
        load_seconds = time.perf_counter() - t
        size_mib = path.stat().st_size / 2**20
        del syn

        print(f"machine: {platform.machine()}, {platform.processor() or '?'}; python {platform.python_version()}; "
              f"numpy {np.__version__}")
        print(f"instance: {args.prompts} prompts x {args.completions} completions, d = {args.dim}, "
              f"{pairs} candidate pairs, budget {args.budget}")
        print(f"generate {gen_seconds:.2f} s, write NPZ {write_seconds:.2f} s ({size_mib:.0f} MiB), "
              f"load NPZ {load_seconds:.2f} s")
        print()
        rows = []
        for method in args.methods:
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), method],
                                 capture_output=True, text=True, check=True)
            rows.append((method, json.loads(out.stdout.strip().splitlines()[-1])))
        ref = dict(rows).get("greedy", rows[0][1])["objective"]
        print(f"{'method':<15} {'labels':>7} {'seconds':>8} {'peak MiB':>9} {'log det M':>11} {'D-eff vs greedy':>16}")
        for method, r in rows:
            eff = np.exp((r["objective"] - ref) / args.dim)
            print(f"{method:<15} {r['labels']:>7} {r['seconds']:>8.2f} {r['peak_mib']:>9.0f} "
                  f"{r['objective']:>11.3f} {eff:>16.4f}")


if __name__ == "__main__":
    main()
