"""Why rounds with fitted weights fail at small reward scales (issue 6): the refit's weights.

    OPENBLAS_NUM_THREADS=1 python benchmarks/downstream_fitted_weights.py [SEEDS]

For each setting of benchmarks/downstream_scale.toml and a first round of n labels designed by
greedy D (weights 1/4; n = 11, 21, 43, 85: the first of three rounds at 2d, 4d, 8d, 16d with
d = 16), the ridge fit theta_hat on those labels and the mean Bradley-Terry weight ``s(1 - s)``
it implies over every candidate pair of the pool, beside the true mean weight (theta*). Median
[min, max] over seeds (default 8).
"""

from __future__ import annotations

import logging
import sys

import numpy as np
import scipy.special

from pairdesign.simulate import DesignSpec, Labeler, load_config, make_world, run_design


def mean_weight(world, theta: np.ndarray) -> float:
    j, k = world.train.all_pairs()
    s = scipy.special.expit((world.train.features[j] - world.train.features[k]) @ theta)
    return float(np.mean(s * (1.0 - s)))


def main(n_seeds: int = 8) -> None:
    logging.disable(logging.WARNING)
    config = load_config("benchmarks/downstream_scale.toml")
    greedy = DesignSpec(name="greedy-D", method="greedy")
    print("| setting | first-round labels | fitted mean weight | true mean weight |\n|---|---:|---:|---:|")
    for s in config.settings:
        for n in (11, 21, 43, 85):
            fitted, true = [], []
            for seed in range(n_seeds):
                world = make_world(s, seed)
                lab = run_design(world, Labeler(world, seed), greedy, n, seed)
                fitted.append(mean_weight(world, lab.theta))
                true.append(mean_weight(world, world.theta))
            print(f"| {s.name} | {n} | {np.median(fitted):.3f} [{min(fitted):.3f}, {max(fitted):.3f}] | "
                  f"{np.median(true):.3f} |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
