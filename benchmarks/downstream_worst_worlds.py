"""The worlds the default design serves worst (issue 17, item 4): clustered features and prompts
of very different spread, where greedy D with weights 1/4 reaches 59-72% of the savings ceiling.

    OPENBLAS_NUM_THREADS=1 python benchmarks/downstream_worst_worlds.py [SEEDS]

For clustered-spread-d16-K8 (benchmarks/downstream.toml) and aniso-spread-d16-K8
(benchmarks/downstream_levers.toml) at 4d, 8d, 16d: the certified ceiling and, in the same model
(:func:`pairdesign.simulate.ceiling.savings_ceiling`: labels the best baseline needs to reach the
design's ``tr(H* F^-1)`` with the true weights, over the labels used), the savings of candidate
designs without a pilot and with rounds; the share of the ceiling is their ratio, median over
seeds (default 3).
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict

import numpy as np

from pairdesign.simulate import DesignSpec, Labeler, load_config, make_world
from pairdesign.simulate.ceiling import savings_ceiling

CANDIDATES = (
    DesignSpec(name="greedy-D", method="greedy"),
    DesignSpec(name="greedy-A", method="greedy", criterion="A"),
    DesignSpec(name="greedy-L (H of pi_ref)", method="greedy", criterion="L"),
    DesignSpec(name="greedy-D-normalised", method="greedy-d-normalised"),
    DesignSpec(name="greedy-L-rounds3", method="greedy", criterion="L", pilot="rounds"),
    DesignSpec(name="greedy-L-predictive-eb-rounds3", method="greedy", criterion="L", pilot="rounds",
               weights="predictive", posterior="evidence"),
    DesignSpec(name="greedy-D-predictive-eb-rounds3", method="greedy", pilot="rounds",
               weights="predictive", posterior="evidence"),
)


def main(n_seeds: int = 3) -> None:
    logging.disable(logging.WARNING)
    main_cfg = load_config("benchmarks/downstream.toml")
    levers = load_config("benchmarks/downstream_levers.toml")
    settings = [s for s in main_cfg.settings if s.name == "clustered-spread-d16-K8"]
    settings += [s for s in levers.settings if s.name == "aniso-spread-d16-K8"]
    specs = [c for c in CANDIDATES if c.available]
    for s in settings:
        budgets = [4 * s.dim, 8 * s.dim, 16 * s.dim]
        cells: dict = defaultdict(list)
        for seed in range(n_seeds):
            world = make_world(s, seed)
            c = savings_ceiling(world, Labeler(world, seed), budgets, main_cfg.baselines, specs, seed=seed)
            for i, B in enumerate(budgets):
                cells["ceiling", B].append(c.any_design[i])
                for spec in specs:
                    cells[spec.name, B].append(c.designs[spec.name][i])
            print(f"# {s.name}: seed {seed} done", flush=True)
        print(f"\n### {s.name} ({n_seeds} seeds): model savings, median over seeds (share of the ceiling)\n")
        print("| design | " + " | ".join(f"{B // s.dim}d" for B in budgets) + " |")
        print("|---|" + "---:|" * len(budgets))
        print("| ceiling | " + " | ".join(f"{np.median(cells['ceiling', B]):.2f}" for B in budgets) + " |")
        for spec in specs:
            row = []
            for B in budgets:
                v, cap = np.array(cells[spec.name, B]), np.array(cells["ceiling", B])
                row.append(f"{np.median(v):.2f} ({100 * np.median(v / cap):.0f}%)")
            print(f"| {spec.name} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
