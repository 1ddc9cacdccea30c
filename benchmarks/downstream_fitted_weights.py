"""Why rounds with fitted weights fail at small reward scales (issue 6): the refit's weights.

    OPENBLAS_NUM_THREADS=1 python benchmarks/downstream_fitted_weights.py [SEEDS]

For each setting of benchmarks/downstream_scale.toml and a first round of n labels designed by
greedy D (weights 1/4; n = 11, 21, 43, 85: the first of three rounds at 2d, 4d, 8d, 16d with
d = 16), the ridge fit theta_hat on those labels and the mean Bradley-Terry weight ``s(1 - s)``
it implies over every candidate pair of the pool, beside the true mean weight (theta*). Median
[min, max] over seeds (default 8). Then (issue 17) the predictive weights p(1 - p) under the fit's
Laplace posterior: their mean over the pool and their correlation across pairs with the true
weights (the fitted weights' correlation beside it), and the prior precision the Laplace evidence
picks (:func:`pairdesign.fit.fit_evidence`; the true one is ``1 / mean(theta*^2)``).
"""

from __future__ import annotations

import logging
import sys

import numpy as np
import scipy.special

from pairdesign.fit import fit_evidence
from pairdesign.predictive import pair_logit_moments, predictive_probability
from pairdesign.simulate import DesignSpec, Labeler, load_config, make_world, run_design
from pairdesign.simulate.world import fit_posterior


def mean_weight(world, theta: np.ndarray) -> float:
    j, k = world.train.all_pairs()
    s = scipy.special.expit((world.train.features[j] - world.train.features[k]) @ theta)
    return float(np.mean(s * (1.0 - s)))


def main(n_seeds: int = 8) -> None:
    logging.disable(logging.WARNING)
    config = load_config("benchmarks/downstream_scale.toml")
    greedy = DesignSpec(name="greedy-D", method="greedy")
    print("| setting | first-round labels | fitted mean weight | true mean weight | predictive mean weight "
          "| corr(predictive, true) | corr(fitted, true) | evidence precision | true precision |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in config.settings:
        for n in (11, 21, 43, 85):
            fitted, true, pred, c_pred, c_fit, ridge, true_ridge = [], [], [], [], [], [], []
            for seed in range(n_seeds):
                world = make_world(s, seed)
                lab = run_design(world, Labeler(world, seed), greedy, n, seed)
                fitted.append(mean_weight(world, lab.theta))
                true.append(mean_weight(world, world.theta))
                fit = fit_posterior(world, lab.j, lab.k, lab.labels)
                j, k = world.train.all_pairs()
                phi = world.train.features
                mu, s2 = pair_logit_moments(phi, j, k, fit.theta, fit.covariance)
                p = predictive_probability(mu, s2)
                w_true = scipy.special.expit((phi[j] - phi[k]) @ world.theta)
                w_true = w_true * (1 - w_true)
                w_fit = scipy.special.expit(mu)
                w_fit = w_fit * (1 - w_fit)
                pred.append(float(np.mean(p * (1 - p))))
                c_pred.append(float(np.corrcoef(p * (1 - p), w_true)[0, 1]))
                c_fit.append(float(np.corrcoef(w_fit, w_true)[0, 1]))
                ridge.append(fit_evidence(phi[lab.j] - phi[lab.k], lab.labels)[1])
                true_ridge.append(1.0 / float(np.mean(world.theta ** 2)))
            print(f"| {s.name} | {n} | {np.median(fitted):.3f} [{min(fitted):.3f}, {max(fitted):.3f}] | "
                  f"{np.median(true):.3f} | {np.median(pred):.3f} | {np.median(c_pred):.2f} | "
                  f"{np.median(c_fit):.2f} | {np.median(ridge):.3g} [{min(ridge):.3g}, {max(ridge):.3g}] | "
                  f"{np.median(true_ridge):.3g} |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
