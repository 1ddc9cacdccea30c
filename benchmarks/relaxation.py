"""The convex relaxation (issue 3): native solver against cvxpy + Clarabel and cvxpy + SCS.

    python benchmarks/relaxation.py [--pairs 1000 10000 100000] [--dims 8 32 64] [--timeout 600]

For each generated instance (K = 6 completions per prompt, so 15 candidate pairs per prompt;
budget min(4 d, P / 4); criterion D) every solver runs in a fresh process (peak memory is that
process's resident set). Reported per run: seconds, the certified D-efficiency loss
``1 - exp(-(bound - f)/d)`` (the bound is pairdesign's Frank-Wolfe certificate at the returned
point, for cvxpy's solvers too), the loss against the best objective any solver reached, peak
MiB, the process's CPU seconds in the solve (robust to the load of a shared machine, unlike
seconds) and "passes": those CPU seconds divided by the CPU seconds of one gain pass (``information.gains``, median of five, at the returned design) in the same process. Runs beyond the timeout or refused for memory are marked.
"""

from __future__ import annotations

import argparse
import json
import os
import math
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # inherited by the children: CPU seconds of one thread

CHILD = r"""
import json, resource, statistics, sys, time
import pairdesign
from pairdesign.information import Criterion, gains, information_matrix
inst = pairdesign.load_instance(sys.argv[1])
solver, tol = sys.argv[2], float(sys.argv[3])
inst.candidates
start = time.process_time()
r = pairdesign.solve(inst, "relax", "D", options={"solver": solver, "tol": tol})
cpu = time.process_time() - start
M, crit = information_matrix(inst, r.counts), Criterion.make("D", inst)
passes = []
for _ in range(5):
    t = time.process_time()
    gains(inst, M, crit)
    passes.append(time.process_time() - t)
print(json.dumps({"seconds": r.seconds, "objective": r.objective, "bound": r.bound,
                  "cpu": cpu, "passes": cpu / statistics.median(passes),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

RUNS = [("native 1e-4", "native", 1e-4), ("native 1e-6", "native", 1e-6),
        ("cvxpy CLARABEL", "cvxpy:CLARABEL", 1e-6), ("cvxpy SCS", "cvxpy:SCS", 1e-6)]


def run(path: Path, solver: str, tol: float, timeout: float) -> dict:
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), solver, str(tol)],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"> {timeout:.0f} s"}
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": last[-60:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="*", default=[1000, 10_000, 100_000])
    parser.add_argument("--dims", type=int, nargs="*", default=[8, 32, 64])
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--runs", nargs="*", default=[r[0] for r in RUNS])
    args = parser.parse_args()

    import pairdesign
    print(f"machine: {platform.machine()}, {platform.python_version()}; criterion D, K = 6")
    print(f"{'P':>7} {'d':>3} {'B':>5} {'solver':<15} {'seconds':>8} {'CPU s':>7} {'passes':>7} {'cert. loss':>10} "
          f"{'loss vs best':>12} {'peak MiB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for P in args.pairs:
            for d in args.dims:
                budget = min(4 * d, P // 4)
                inst = pairdesign.synthetic_instance(max(1, P // 15), 6, d, budget=budget, seed=0).instance
                path = Path(tmp) / f"p{P}-d{d}.npz"
                pairdesign.save_instance(inst, path)
                results = {}
                for label, solver, tol in RUNS:
                    if label in args.runs:
                        results[label] = run(path, solver, tol, args.timeout)
                best = max((r["objective"] for r in results.values() if "objective" in r), default=math.nan)
                for label, r in results.items():
                    if "error" in r:
                        print(f"{len(inst.candidates):>7} {d:>3} {budget:>5} {label:<15} {r['error']}")
                        continue
                    cert = -math.expm1(-(r["bound"] - r["objective"]) / d)
                    vs_best = -math.expm1(-(best - r["objective"]) / d)
                    print(f"{len(inst.candidates):>7} {d:>3} {budget:>5} {label:<15} {r['seconds']:>8.2f} "
                          f"{r['cpu']:>7.2f} {r['passes']:>7.1f} "
                          f"{cert:>10.1e} {vs_best:>12.1e} {r['peak_mib']:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
