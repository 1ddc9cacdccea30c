"""CPU seconds of one solve, several versions of pairdesign side by side (alternating).

Wall seconds swing several-fold on a shared machine; the CPU seconds (user + system) of the
solving process swing far less. Each version is a source tree (for example ``git worktree add
/tmp/before 19ea412``); every solve runs in its own process with that tree on ``PYTHONPATH``,
on one instance saved once, timed with ``resource.getrusage`` around ``pairdesign.solve`` only
(loading excluded). Prints one line per solve and a table of medians.

    OPENBLAS_NUM_THREADS=1 python benchmarks/cpu_side_by_side.py --source /tmp/before \\
        --source . --methods greedy round --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
import pairdesign
inst = pairdesign.load_instance(sys.argv[1])
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
c0, w0 = cpu(), time.perf_counter()
r = pairdesign.solve(inst, method=sys.argv[2], budget=float(sys.argv[3]))
c1, w1 = cpu(), time.perf_counter()
print(json.dumps({"cpu": c1 - c0, "wall": w1 - w0, "objective": r.objective, "bound": r.bound,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", required=True, help="a pairdesign source tree")
    parser.add_argument("--methods", nargs="*", default=["greedy", "round"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--completions", type=int, default=15)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--budget", type=int, default=10_000)
    args = parser.parse_args()
    sources = [str(Path(s).resolve()) for s in args.source]
    rows: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "instance.npz"
        make = ("import sys, pairdesign; syn = pairdesign.synthetic_instance("
                f"{args.prompts}, {args.completions}, {args.dim}, budget={args.budget}, seed=0); "
                "pairdesign.save_instance(syn.instance, sys.argv[1])")
        subprocess.run([sys.executable, "-c", make, str(path)], check=True,
                       env=dict(os.environ, PYTHONPATH=sources[-1]))
        for rep in range(1, args.repeat + 1):
            for source in sources:
                for method in args.methods:
                    out = subprocess.run([sys.executable, "-c", CHILD, str(path), method, str(args.budget)],
                                         capture_output=True, text=True, check=True,
                                         env=dict(os.environ, PYTHONPATH=source))
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
                    print(f"{source} {method} rep {rep} load {load}: {json.dumps(r)}", flush=True)
                    rows.setdefault((source, method), []).append(r)
    print()
    print(f"{'method':<10} {'source':<40} {'CPU s (each)':<28} {'median':>8} {'objective':>12} {'bound':>12}")
    for method in args.methods:
        for source in sources:
            rs = rows[(source, method)]
            each = ", ".join(f"{r['cpu']:.1f}" for r in rs)
            bound = rs[0]["bound"]
            print(f"{method:<10} {source[-40:]:<40} {each:<28} {statistics.median(r['cpu'] for r in rs):>8.1f} "
                  f"{rs[0]['objective']:>12.4f} {'-' if bound is None else f'{bound:.4f}':>12}")


if __name__ == "__main__":
    main()
