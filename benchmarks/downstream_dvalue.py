"""Why round-D and greedy-D tie downstream: their D values on the study's instances (issue 6).

    OPENBLAS_NUM_THREADS=1 python benchmarks/downstream_dvalue.py [SEEDS]

For each setting of benchmarks/downstream.toml and budgets d, 4d, 16d, 50d, on the worlds of seeds
0..SEEDS-1 (default 10; the same instances as the study's round-D and greedy-D runs): the mean
gain of round's log det over greedy's, as a D-efficiency ratio ``exp(gain / d)``; the share of
seeds where round's value is higher; and round's certified bound over greedy's value, as the
largest D-efficiency greedy could be short of optimal (``exp((bound - greedy) / d)``).
"""

from __future__ import annotations

import logging
import sys

import numpy as np

from pairdesign.simulate.study import load_config
from pairdesign.simulate.world import make_world
from pairdesign.solve import solve


def main(n_seeds: int = 10) -> None:
    logging.disable(logging.WARNING)
    config = load_config("benchmarks/downstream.toml")
    print("| setting | budget | round / greedy D-eff. (mean) | seeds round > greedy | "
          "bound / greedy D-eff. (mean) | round optimal |")
    print("|---|---:|---:|---:|---:|---:|")
    for s in config.settings:
        for mult in (1, 4, 16, 50):
            B = mult * s.dim
            gain, slack, better, optimal = [], [], 0, 0
            for seed in range(n_seeds):
                inst = make_world(s, seed).instance(B)
                g = solve(inst, "greedy", "D", budget=B, seed=seed)
                r = solve(inst, "round", "D", budget=B, seed=seed)
                gain.append(r.objective - g.objective)
                slack.append(r.bound - g.objective)
                better += r.objective > g.objective + 1e-9
                optimal += r.status.name == "optimal"
            print(f"| {s.name} | {mult}d | {np.exp(np.mean(gain) / s.dim):.4f} | {better}/{n_seeds} | "
                  f"{np.exp(np.mean(slack) / s.dim):.4f} | {optimal}/{n_seeds} |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
