"""The Bradley-Terry / DPO fit."""

import numpy as np
import pytest
import scipy.special

from pairdesign.errors import OptionError
from pairdesign.fit import fit_bradley_terry


def _draw(rng, m, d, theta):
    Z = rng.normal(size=(m, d))
    y = (rng.random(m) < scipy.special.expit(Z @ theta)).astype(float)
    return Z, y


def test_gradient_vanishes_and_matches_sklearn_style_objective():
    rng = np.random.default_rng(0)
    theta = rng.normal(size=4)
    Z, y = _draw(rng, 200, 4, theta)
    fit = fit_bradley_terry(Z, y, ridge=0.5)
    assert fit.converged
    # the stationarity condition of the penalised loss, written out independently
    s = 1 / (1 + np.exp(-Z @ fit.theta))
    assert np.allclose(Z.T @ (s - y) + 0.5 * fit.theta, 0, atol=1e-7)
    # any perturbation increases the loss
    for _ in range(5):
        other = fit.theta + 1e-3 * rng.normal(size=4)
        loss = np.sum(np.logaddexp(0, Z @ other) - y * (Z @ other)) + 0.25 * other @ other
        assert loss > fit.loss


def test_recovers_theta_as_labels_grow():
    rng = np.random.default_rng(1)
    theta = np.array([1.0, -2.0, 0.5])
    errors = []
    for m in (100, 1000, 20000):
        Z, y = _draw(rng, m, 3, theta)
        errors.append(np.linalg.norm(fit_bradley_terry(Z, y, ridge=1.0).theta - theta))
    assert errors[2] < errors[0]
    assert errors[2] < 0.1


def test_counts_and_ties_equal_repeated_rows():
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(5, 2))
    y = np.array([1, 0, 0.5, 1, 0])
    counts = np.array([3, 1, 2, 1, 4])
    a = fit_bradley_terry(Z, y, counts=counts, ridge=0.1)
    b = fit_bradley_terry(np.repeat(Z, counts, axis=0), np.repeat(y, counts), ridge=0.1)
    assert np.allclose(a.theta, b.theta, atol=1e-8)
    assert np.allclose(a.hessian, b.hessian)
    # a tie is half a win each way
    c = fit_bradley_terry(np.vstack([Z[2], Z[2]]), np.array([1.0, 0.0]), ridge=0.1)
    d = fit_bradley_terry(Z[2:3], np.array([0.5]), counts=np.array([2.0]), ridge=0.1)
    assert np.allclose(c.theta, d.theta, atol=1e-9)


def test_no_labels_gives_zero_and_ridge_information():
    fit = fit_bradley_terry(np.zeros((0, 3)), np.zeros(0), ridge=2.0)
    assert np.allclose(fit.theta, 0)
    assert np.allclose(fit.hessian, 2 * np.eye(3))
    assert np.allclose(fit.standard_errors, np.sqrt(0.5))


@pytest.mark.parametrize("kwargs, message", [
    (dict(ridge=0.0), "ridge"),
    (dict(outcomes=np.array([2.0, 0.0])), "outcomes"),
    (dict(counts=np.array([1.0, -1.0])), "counts"),
])
def test_bad_input(kwargs, message):
    args = dict(differences=np.ones((2, 2)), outcomes=np.array([1.0, 0.0]), ridge=1.0)
    args.update(kwargs)
    with pytest.raises(OptionError, match=message):
        fit_bradley_terry(**args)
