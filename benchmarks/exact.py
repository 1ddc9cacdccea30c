"""Exact designs (issue 4, first measurement): outer approximation against instance size.

    python benchmarks/exact.py [--time-limit 60]

Generated instances (K = 5, ridge 1e-6, seed 0, criterion D), one run each; prints the status,
seconds, the final gap in log det, and the number of cuts. The comparison with the Pyomo master
and the MISOCP (SCIP) side by side is still to be written.
"""

from __future__ import annotations

import argparse
import time

import pairdesign

SIZES = [(10, 4, 4), (20, 4, 8), (40, 4, 16), (40, 8, 8), (100, 8, 16), (200, 8, 32), (450, 8, 32),
         (200, 12, 24)]  # (prompts, d, budget); P = 10 pairs per prompt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    args = parser.parse_args()
    print(f"{'P':>5} {'d':>3} {'B':>3} {'status':<9} {'seconds':>8} {'gap':>8} {'cuts':>5}")
    for n, d, B in SIZES:
        inst = pairdesign.synthetic_instance(n, 5, d, budget=B, seed=0).instance
        start = time.perf_counter()
        r = pairdesign.solve(inst, "exact", time_limit=args.time_limit)
        cuts = r.log[-1].rsplit(",", 1)[-1].split()[0]
        print(f"{len(inst.candidates):>5} {d:>3} {B:>3} {r.status.value:<9} "
              f"{time.perf_counter() - start:>8.2f} {r.gap:>8.2g} {cuts:>5}", flush=True)


if __name__ == "__main__":
    main()
