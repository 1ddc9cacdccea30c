"""The relaxation's cost in gain passes (issue 18): solver seconds / seconds of one gain pass.

    python benchmarks/relaxation_passes.py [--prompts 10000] [--completions 15] [--dim 64]
        [--budget 10000] [--problems simplex capped] [--criteria D] [--tol 1e-6] [--repeat 3]
        [--prompt-cap 2]

Two problems on the generated instance (seed 0): ``capped`` (one label per pair, the default of
``generate``) and ``simplex`` (``max_labels_per_pair`` = budget: every pair may take many labels,
so the feasible set is the budget's simplex, the problem REX solves); ``prompt-capped`` adds
``max_pairs_per_prompt`` = ``--prompt-cap`` to the capped one (the laminar polytope: budget,
prompt caps, bounds). A gain pass is
``information.gains`` (all first-order gains through completions) at the solver's final design,
timed in the same process right after the solve (median of three); the instance's cached
candidate arrays and centred features are built before the first solve (they are the
instance's, not the solver's, and the pass timing uses them too). Pass-equivalents are given
for wall seconds and for CPU seconds of the process (``time.process_time``; BLAS on one thread):
the CPU ratio is the one robust to the load of a shared machine. Prints one line per run.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: CPU seconds = one thread's work

import numpy as np  # noqa: E402

import pairdesign  # noqa: E402
from pairdesign.information import (Criterion, centered_features, gains,  # noqa: E402
                                   information_matrix)


def pass_seconds(inst, n: np.ndarray, crit: Criterion) -> tuple[float, float]:
    """Wall and CPU seconds of one gain pass (medians of three)."""
    M = information_matrix(inst, n)
    wall, cpu = [], []
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        gains(inst, M, crit)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--completions", type=int, default=15)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--budget", type=float, default=10_000)
    parser.add_argument("--problems", nargs="*", default=["simplex", "capped"])
    parser.add_argument("--criteria", nargs="*", default=["D"])
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--prompt-cap", type=int, default=2)
    args = parser.parse_args()
    base = pairdesign.synthetic_instance(args.prompts, args.completions, args.dim,
                                         budget=args.budget, seed=0).instance
    for problem in args.problems:
        if problem == "capped":
            inst = base
        elif problem == "prompt-capped":
            inst = dataclasses.replace(base, max_pairs_per_prompt=args.prompt_cap)
        else:
            inst = dataclasses.replace(base, max_labels_per_pair=int(args.budget))
        inst.candidates, centered_features(inst)  # the instance's own caches: not solver work
        for name in args.criteria:
            crit = Criterion.make(name, inst)
            for rep in range(args.repeat):
                start_cpu = time.process_time()
                r = pairdesign.solve(inst, "relax", crit, time_limit=args.time_limit,
                                     options={"tol": args.tol})
                cpu = time.process_time() - start_cpu
                one, one_cpu = pass_seconds(inst, r.counts, crit)
                gap = r.bound - r.objective
                cert = -math.expm1(-gap / inst.dim) if name == "D" else gap / abs(r.objective)
                print(f"{problem:<13} {name} {len(inst.candidates)} pairs d={inst.dim} rep {rep}: "
                      f"{r.seconds:7.2f} s, pass {one:.3f} s, {r.seconds / one:6.1f} passes; CPU {cpu:7.2f} s, "
                      f"pass {one_cpu:.3f} s, {cpu / one_cpu:6.1f} passes; "
                      f"f = {r.objective:.9f}, bound = {r.bound:.9f}, certified "
                      f"{'loss' if name == 'D' else 'rel. gap'} {cert:.2e}, {r.status.value}",
                      flush=True)


if __name__ == "__main__":
    main()
