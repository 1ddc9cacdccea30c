"""Bradley-Terry weights that know how uncertain the fit is (Laplace posterior of theta).

After a fit, theta ~ N(theta_hat, Sigma) approximately (Sigma the inverse Hessian of the
penalised loss, :attr:`pairdesign.fit.Fit.covariance`). For a pair p = (j, k) with difference
``z = phi_j - phi_k`` the logit ``t = z^T theta`` is then Gaussian with

    mu_p = (phi theta_hat)_j - (phi theta_hat)_k,      s_p^2 = z^T Sigma z = |L^T phi_j - L^T phi_k|^2

(``Sigma = L L^T``), both computed through completions (one N x d product, then chunked pair
differences), never through a pairs x d matrix. Two weightings:

- ``"predictive"``: ``w_p = p(1 - p)`` with p the posterior predictive probability that j wins,
  ``p = E[sigmoid(t)]``, by the probit approximation ``p = sigmoid(mu / sqrt(1 + pi s^2 / 8))``.
  With a vague posterior (s -> inf) or theta_hat -> 0, p -> 1/2 and ``w -> 1/4`` (uniform weights);
  with Sigma -> 0 it is the fitted weight ``s(1 - s)`` at theta_hat.
- ``"expected"``: the expected information ``w_p = E[sigmoid(t)(1 - sigmoid(t))]`` by
  Gauss-Hermite quadrature in t (1-D: t is Gaussian). Since
  ``p(1 - p) - E[s(1 - s)] = Var[sigmoid(t)] >= 0`` it is never above the predictive weight and
  falls to 0 (not 1/4) as the posterior widens.

A tempered posterior N(theta_hat, T Sigma), T >= 1 (``next-round --temper T`` stores ``T Sigma``),
moves every predictive weight toward 1/4. :func:`expected_log_det` is the Bayesian D criterion
``E_theta log det M(theta)`` of a given set of labels by posterior draws (docs/design.md section 2).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special
from numpy.polynomial.hermite_e import hermegauss

from .model import sigmoid
from .pool import centered_features, pair_quadratic_forms

__all__ = [
    "covariance_factor",
    "expected_information",
    "expected_log_det",
    "pair_logit_moments",
    "predictive_probability",
    "predictive_probability_quadrature",
    "predictive_weights",
]

QUADRATURE_NODES = 40
"""Gauss-Hermite nodes for the 1-D expectations over narrow posteriors (s <= 1/2)."""
_CHUNK = 1 << 14


def covariance_factor(covariance: np.ndarray) -> np.ndarray:
    """A factor L with ``L L^T = Sigma`` for a symmetric PSD Sigma (eigen-decomposition, so a
    singular Sigma is fine; tiny negative eigenvalues from rounding are set to 0)."""
    S = np.asarray(covariance, dtype=np.float64)
    vals, vecs = np.linalg.eigh(0.5 * (S + S.T))
    return vecs * np.sqrt(np.clip(vals, 0.0, None))


def pair_logit_moments(features: np.ndarray, j: np.ndarray, k: np.ndarray, theta: np.ndarray,
                       covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu_p, s_p^2) of the logit ``t_p = (phi_j - phi_k)^T theta`` under theta ~ N(theta, Sigma):
    ``mu = (phi theta)_j - (phi theta)_k``, ``s^2 = |psi_j - psi_k|^2`` with ``psi = phi L``."""
    phi = np.asarray(features, dtype=np.float64)
    score = phi @ np.asarray(theta, dtype=np.float64)
    mu = score[j] - score[k]
    psi = phi @ covariance_factor(covariance)
    return mu, pair_quadratic_forms(psi, np.asarray(j), np.asarray(k))


def predictive_probability(mu: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """The probit approximation of ``E[sigmoid(t)]``, t ~ N(mu, s^2):
    ``sigmoid(mu / sqrt(1 + pi s^2 / 8))``."""
    return sigmoid(np.asarray(mu, dtype=np.float64) / np.sqrt(1.0 + (math.pi / 8.0) * np.asarray(s2)))


def _gauss_hermite(fn, mu: np.ndarray, s2: np.ndarray, nodes: int) -> np.ndarray:
    """``E[fn(t)]`` for t ~ N(mu, s^2), per pair, in chunks (probabilists' Hermite nodes).
    Accurate while s is small against the scale (1) on which fn varies."""
    x, w = hermegauss(nodes)
    w = w / math.sqrt(2.0 * math.pi)
    out = np.empty(mu.shape[0])
    s = np.sqrt(s2)
    for start in range(0, mu.shape[0], _CHUNK):
        stop = min(start + _CHUNK, mu.shape[0])
        t = mu[start:stop, None] + s[start:stop, None] * x[None, :]
        out[start:stop] = fn(t) @ w
    return out


# the logistic variable L (density sigmoid'(l)) on a fine grid: |l| > 40 has density < 5e-18
_L_GRID = np.linspace(-40.0, 40.0, 1601)
_L_WEIGHT = sigmoid(_L_GRID) * (1.0 - sigmoid(_L_GRID)) * (_L_GRID[1] - _L_GRID[0])


def _over_logistic(kind: str, mu: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """For wide posteriors (s > 1/2), the same expectations over the logistic variable L instead of
    t, where the integrand is smooth on the scale s: ``E[sigmoid(t)] = E_L[Phi((mu - L) / s)]`` and
    ``E[sigmoid'(t)] = E_L[N(L; mu, s^2)]`` (trapezoid rule on a grid of step 0.05)."""
    out = np.empty(mu.shape[0])
    s = np.sqrt(s2)
    for start in range(0, mu.shape[0], _CHUNK // 16):
        stop = min(start + _CHUNK // 16, mu.shape[0])
        u = (mu[start:stop, None] - _L_GRID[None, :]) / s[start:stop, None]
        if kind == "p":
            vals = scipy.special.ndtr(u)
        else:
            vals = np.exp(-0.5 * u * u) / (math.sqrt(2.0 * math.pi) * s[start:stop, None])
        out[start:stop] = vals @ _L_WEIGHT
    return out


def _expectation(kind: str, mu: np.ndarray, s2: np.ndarray, nodes: int) -> np.ndarray:
    mu = np.asarray(mu, dtype=np.float64).reshape(-1)
    s2 = np.clip(np.asarray(s2, dtype=np.float64).reshape(-1), 0.0, None)
    if kind == "p":
        fn = sigmoid
    else:
        def fn(t: np.ndarray) -> np.ndarray:
            q = sigmoid(t)
            return q * (1.0 - q)
    out = np.empty(mu.shape[0])
    narrow = s2 <= 0.25
    if narrow.any():
        out[narrow] = _gauss_hermite(fn, mu[narrow], s2[narrow], nodes)
    if (~narrow).any():
        out[~narrow] = _over_logistic(kind, mu[~narrow], s2[~narrow])
    return out


def predictive_probability_quadrature(mu: np.ndarray, s2: np.ndarray,
                                      nodes: int = QUADRATURE_NODES) -> np.ndarray:
    """``E[sigmoid(t)]``, t ~ N(mu, s^2), by quadrature (the reference for the probit
    approximation): Gauss-Hermite in t for s <= 1/2, the trapezoid rule over the logistic variable
    for wider posteriors (:func:`_over_logistic`)."""
    return _expectation("p", mu, s2, nodes)


def expected_information(mu: np.ndarray, s2: np.ndarray, nodes: int = QUADRATURE_NODES) -> np.ndarray:
    """``E[sigmoid(t)(1 - sigmoid(t))]``, t ~ N(mu, s^2), by quadrature (as
    :func:`predictive_probability_quadrature`)."""
    return _expectation("info", mu, s2, nodes)


def predictive_weights(features: np.ndarray, j: np.ndarray, k: np.ndarray, theta: np.ndarray,
                       covariance: np.ndarray, kind: str = "predictive") -> np.ndarray:
    """Bradley-Terry weights of pairs (j, k) under the Laplace posterior N(theta, Sigma):
    ``p(1 - p)`` with the probit predictive p (``kind = "predictive"``), or the expected
    information ``E[s(1 - s)]`` (``kind = "expected"``)."""
    mu, s2 = pair_logit_moments(features, j, k, theta, covariance)
    if kind == "predictive":
        p = predictive_probability(mu, s2)
        return p * (1.0 - p)
    if kind == "expected":
        return expected_information(mu, s2)
    raise ValueError(f"unknown posterior weighting {kind!r}; use 'predictive' or 'expected'")


def instance_posterior_weights(instance, j: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The instance's posterior weights (``weights = "predictive"`` or ``"expected"``) for pairs
    (j, k), on the within-prompt centred features (same differences, smaller rows)."""
    return predictive_weights(centered_features(instance), j, k, instance.posterior_mean,
                              instance.posterior_covariance, kind=instance.weights)


def expected_log_det(differences: np.ndarray, ridge: float, mean: np.ndarray, covariance: np.ndarray,
                     draws: int = 64, rng: np.random.Generator | None = None) -> float:
    """The Bayesian D criterion of a set of labels under the posterior N(mean, Sigma):

        E_theta log det(ridge I + sum_m s_m(theta) (1 - s_m(theta)) z_m z_m^T),  s_m = sigmoid(z_m^T theta),

    by a sample average over ``draws`` posterior draws (the same draws for every set compared
    when ``rng`` is seeded alike). ``differences`` holds the rows z_m of the labels in question
    (a design's pairs and the labels already held: design-sized, never the pool's pairs)."""
    Z = np.asarray(differences, dtype=np.float64)
    d = Z.shape[1]
    rng = np.random.default_rng(0) if rng is None else rng
    thetas = np.asarray(mean, dtype=np.float64) + rng.standard_normal((draws, d)) @ covariance_factor(covariance).T
    total = 0.0
    for theta in thetas:
        q = sigmoid(Z @ theta)
        M = ridge * np.eye(d) + (Z.T * (q * (1.0 - q))) @ Z
        total += np.linalg.slogdet(M)[1]
    return total / draws
