"""How accurate is the probit approximation of the posterior predictive (issue 17)?

    python benchmarks/predictive_accuracy.py

For t ~ N(mu, s^2), p = E[sigmoid(t)]: the probit approximation sigmoid(mu / sqrt(1 + pi s^2 / 8))
against the package's quadrature (Gauss-Hermite in t for s <= 1/2, the trapezoid rule over the
logistic variable beyond; itself checked against scipy.integrate.quad). Prints the largest absolute error in p and in the weight p(1 - p), and the largest
relative error of the weight, over a grid of mu in [-12, 12] and s in [0, 12] (and over the
region |mu| <= 6, s <= 4 where the study's pairs lie), and the expected information E[s(1 - s)]
against p(1 - p).
"""

from __future__ import annotations

import numpy as np
import scipy.integrate
import scipy.special

from pairdesign.predictive import (expected_information, predictive_probability,
                                   predictive_probability_quadrature)


def quad_reference(mu: float, s: float) -> float:
    if s == 0:
        return float(scipy.special.expit(mu))
    f = lambda t: scipy.special.expit(t) * np.exp(-0.5 * ((t - mu) / s) ** 2) / (s * np.sqrt(2 * np.pi))  # noqa: E731
    return scipy.integrate.quad(f, mu - 12 * s, mu + 12 * s, limit=200)[0]


def _gauss_hermite_only(mu: np.ndarray, s2: np.ndarray) -> np.ndarray:
    from pairdesign.predictive import _gauss_hermite, sigmoid
    return _gauss_hermite(sigmoid, mu, s2, 40)


def main() -> None:
    mu, s = np.meshgrid(np.linspace(-12, 12, 241), np.linspace(0, 12, 121))
    mu, s = mu.ravel(), s.ravel()
    gh = predictive_probability_quadrature(mu, s ** 2)
    rng = np.random.default_rng(0)
    pick = rng.choice(mu.size, 200, replace=False)
    quad = np.array([quad_reference(mu[i], s[i]) for i in pick])
    print(f"quadrature vs scipy quad (200 grid points): max |dp| = {np.abs(gh[pick] - quad).max():.1e}")
    dense = np.abs(mu) <= 3
    print("Gauss-Hermite alone (40 nodes) vs the quadrature, |mu| <= 3: max |dp| = "
          f"{np.abs(_gauss_hermite_only(mu[dense], s[dense] ** 2) - gh[dense]).max():.1e}")
    probit = predictive_probability(mu, s ** 2)
    w_gh, w_pr = gh * (1 - gh), probit * (1 - probit)
    for label, sel in (("mu in [-12, 12], s in [0, 12]", np.ones(mu.size, bool)),
                       ("|mu| <= 6, s <= 4", (np.abs(mu) <= 6) & (s <= 4))):
        dp = np.abs(probit - gh)[sel]
        dw = np.abs(w_pr - w_gh)[sel]
        rw = (np.abs(w_pr - w_gh) / w_gh)[sel]
        i = int(np.argmax(dp))
        print(f"probit vs quadrature, {label}: max |dp| = {dp.max():.4f} (at mu = {mu[sel][i]:.1f}, "
              f"s = {s[sel][i]:.1f}), max |dw| = {dw.max():.4f}, max relative error of w = {rw.max():.3f}, "
              f"median = {np.median(rw):.4f}")
    info = expected_information(mu, s ** 2)
    sel = (np.abs(mu) <= 6) & (s <= 4)
    ratio = (info / w_gh)[sel]
    print(f"expected information E[s(1-s)] / p(1-p), |mu| <= 6, s <= 4: min {ratio.min():.3f}, "
          f"median {np.median(ratio):.3f} (1 at s = 0; -> 0 as s grows)")


if __name__ == "__main__":
    main()
