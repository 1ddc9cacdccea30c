"""The relaxation on about a million candidate pairs (issue 3's scale goal).

    python benchmarks/relaxation_scale.py [--prompts 10000] [--completions 15] [--dim 64]
                                          [--budget 10000] [--tol 1e-4] [--time-limit 300]

Generates the instance (seed 0), solves the relaxation natively with progress on stderr, and
prints the time, the certified gap and D-efficiency loss, and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import logging
import math
import resource

import pairdesign


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--completions", type=int, default=15)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--budget", type=float, default=10_000)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--time-limit", type=float, default=300.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    inst = pairdesign.synthetic_instance(args.prompts, args.completions, args.dim,
                                         budget=args.budget, seed=0).instance
    r = pairdesign.solve(inst, "relax", time_limit=args.time_limit, options={"tol": args.tol})
    loss = -math.expm1(-r.gap / inst.dim)
    print(f"{len(inst.candidates)} pairs, d = {inst.dim}, budget {args.budget:g}: {r.seconds:.1f} s, "
          f"f = {r.objective:.6f}, bound = {r.bound:.6f}, gap = {r.gap:.3g}, certified D-efficiency "
          f"loss {loss:.2g}, status {r.status.value}, peak "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
