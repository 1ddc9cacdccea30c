"""The Bradley-Terry / DPO fit: L2-regularised logistic regression on labeled differences.

For labeled comparisons with differences ``z_m = phi_a - phi_b`` and outcomes ``y_m`` in [0, 1]
(1: a won, 0: b won, 1/2: a tie counted as half a win each way), with counts ``c_m`` (how many
times that outcome was seen), the fit minimises

    L(theta) = sum_m c_m [ log(1 + exp(theta^T z_m)) - y_m theta^T z_m ] + (ridge / 2) ||theta||^2

which is exactly DPO with a log-linear policy (docs/design.md section 2). Its Hessian at theta,

    ridge * I + sum_m c_m s_m (1 - s_m) z_m z_m^T,    s_m = sigmoid(theta^T z_m),

is the information matrix M of the design with Bradley-Terry weights ``s(1-s)`` and
``M0 = ridge * I``; its inverse is the (Laplace) covariance of theta_hat. The loss is strictly
convex (ridge > 0), so scipy's trust-region Newton method with the analytic gradient and Hessian
converges to the unique minimiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.special

from .errors import OptionError


@dataclass(frozen=True)
class Fit:
    """The fitted reward parameters and their uncertainty."""

    theta: np.ndarray
    """theta_hat, shape (d,)."""
    hessian: np.ndarray
    """Hessian of the penalised loss at theta_hat (the information matrix), shape (d, d)."""
    loss: float
    """The penalised negative log-likelihood at theta_hat."""
    iterations: int
    converged: bool
    n_labels: float
    """Total count of labeled comparisons used."""

    @property
    def covariance(self) -> np.ndarray:
        """Laplace covariance of theta_hat: the inverse Hessian."""
        return np.linalg.inv(self.hessian)

    @property
    def standard_errors(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance))


def _loss_parts(theta, Z, y, c, ridge):
    t = Z @ theta
    # log(1 + e^t) - y t, stable for large |t|
    loss = float(c @ (np.logaddexp(0.0, t) - y * t) + 0.5 * ridge * theta @ theta)
    s = scipy.special.expit(t)
    grad = Z.T @ (c * (s - y)) + ridge * theta
    return loss, grad, s


def fit_bradley_terry(
    differences: np.ndarray,
    outcomes: np.ndarray,
    *,
    ridge: float = 1.0,
    counts: np.ndarray | None = None,
    start: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iterations: int = 200,
) -> Fit:
    """Fit theta by L2-regularised logistic regression on labeled differences.

    ``differences`` is (m, d): ``phi_a - phi_b`` for each labeled comparison; ``outcomes`` is (m,)
    in [0, 1] (1 when a won, 0 when b won, 0.5 for a tie); ``counts`` (default ones) weights each
    row. ``ridge`` must be positive (it is the design's ``M0``).
    """
    Z = np.asarray(differences, dtype=float)
    if Z.ndim != 2:
        raise OptionError(f"differences must be a 2-d array, got shape {Z.shape}")
    m, d = Z.shape
    y = np.asarray(outcomes, dtype=float).reshape(-1)
    if y.shape[0] != m:
        raise OptionError(f"outcomes has {y.shape[0]} rows, differences has {m}")
    if m and (np.any(~np.isfinite(y)) or y.min() < 0 or y.max() > 1):
        raise OptionError("outcomes must lie in [0, 1] (1: first won, 0: second won, 0.5: tie)")
    c = np.ones(m) if counts is None else np.asarray(counts, dtype=float).reshape(-1)
    if c.shape[0] != m or (m and (np.any(~np.isfinite(c)) or c.min() < 0)):
        raise OptionError("counts must be non-negative, one per row")
    if not np.all(np.isfinite(Z)):
        raise OptionError("differences contain NaN or infinity")
    if not (np.isfinite(ridge) and ridge > 0):
        raise OptionError(f"ridge must be positive, got {ridge}")

    def fun(theta):
        loss, grad, _ = _loss_parts(theta, Z, y, c, ridge)
        return loss, grad

    def hess(theta):
        s = scipy.special.expit(Z @ theta)
        return (Z.T * (c * s * (1 - s))) @ Z + ridge * np.eye(d)

    x0 = np.zeros(d) if start is None else np.asarray(start, dtype=float).copy()
    res = scipy.optimize.minimize(
        fun, x0, jac=True, hess=hess, method="trust-exact",
        options={"gtol": tol, "maxiter": max_iterations},
    )
    theta = np.asarray(res.x, dtype=float)
    loss, grad, _ = _loss_parts(theta, Z, y, c, ridge)
    H = hess(theta)
    step = np.linalg.solve(H, grad)
    # a Newton polish (trust-exact may stop one step short at machine precision), kept if it helps
    polished = theta - step
    polished_loss, polished_grad, _ = _loss_parts(polished, Z, y, c, ridge)
    if polished_loss <= loss:
        theta, loss, grad, H = polished, polished_loss, polished_grad, hess(polished)
        step = np.linalg.solve(H, grad)
    # converged when the Newton decrement g^T H^-1 g (twice the loss a Newton step could still
    # gain) is negligible: scale-free, unlike a test on the gradient's size
    decrement = float(grad @ step)
    converged = decrement <= max(tol, 1e-12) * max(1.0, abs(loss))
    return Fit(theta=theta, hessian=H, loss=loss, iterations=int(res.nit),
               converged=bool(converged), n_labels=float(c.sum()))


def log_evidence(fit: Fit, ridge: float) -> float:
    """The Laplace approximation of the log marginal likelihood of the labels under the prior
    theta ~ N(0, I / ridge) (the fit at that ridge; up to terms that do not depend on ridge):

        log p(y | ridge) ~ -L(theta_hat) + (d / 2) log ridge - (1 / 2) log det H,

    with L the penalised loss at theta_hat and H its Hessian."""
    d = fit.theta.shape[0]
    sign, logdet = np.linalg.slogdet(fit.hessian)
    return float(-fit.loss + 0.5 * d * np.log(ridge) - 0.5 * logdet)


def fit_evidence(
    differences: np.ndarray,
    outcomes: np.ndarray,
    *,
    counts: np.ndarray | None = None,
    ridges: np.ndarray | None = None,
) -> tuple[Fit, float]:
    """The fit at the prior precision (ridge) that maximises the Laplace evidence
    (:func:`log_evidence`) over a log-spaced grid (default 10^-2 .. 10^3, 16 points, a factor 10^(1/3) apart): an
    empirical-Bayes posterior whose prior scale is learned from the labels. Returns the fit and
    its ridge."""
    grid = np.logspace(-2, 3, 16) if ridges is None else np.asarray(ridges, dtype=float)
    best: tuple[float, Fit, float] | None = None
    start = None
    for ridge in grid[::-1]:  # from the most shrunk: each fit starts from the previous one
        fit = fit_bradley_terry(differences, outcomes, ridge=float(ridge), counts=counts, start=start)
        start = fit.theta
        value = log_evidence(fit, float(ridge))
        if best is None or value > best[0]:
            best = (value, fit, float(ridge))
    assert best is not None
    return best[1], best[2]
