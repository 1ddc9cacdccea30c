"""The working-set Newton phase of the relaxation (budget and bounds only): its pieces, its
optimum against the cvxpy reference, and the certificate it leaves."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pairdesign
from helpers import random_instance
from pairdesign import SolutionStatus, solve
from pairdesign.polytope import linear_constraints
from pairdesign.solvers import support_newton
from pairdesign.oracle import LinearOracle

seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=50, deadline=None)
@given(seeds)
def test_projection_onto_the_budget_and_the_box(seed):
    """project_budget_box is the Euclidean projection: feasible, and no feasible point of a
    random sample is closer to y (the projection onto a convex set is the closest point)."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 30))
    cost = rng.choice([0.5, 1.0, 2.0], size=m)
    lower = np.where(rng.random(m) < 0.2, rng.uniform(0, 1, m), 0.0)
    upper = lower + rng.uniform(0.1, 3.0, m)
    spend = float(cost @ (lower + rng.uniform(0, 1) * (upper - lower)))
    y = rng.normal(scale=3.0, size=m)
    n = support_newton.project_budget_box(y, cost, lower, upper, spend)
    assert np.all(n >= lower) and np.all(n <= upper)
    assert cost @ n == pytest.approx(spend, rel=1e-9, abs=1e-9)
    # KKT: n = clip(y - nu c) for one nu
    inside = (n > lower + 1e-9) & (n < upper - 1e-9)
    if inside.any():
        nu = (y[inside] - n[inside]) / cost[inside]
        assert np.allclose(nu, nu[0], atol=1e-7)
        assert np.all(n[n <= lower + 1e-9] >= np.minimum(y - nu[0] * cost, lower)[n <= lower + 1e-9] - 1e-7)


def test_knapsack_top_is_the_lp_optimum():
    rng = np.random.default_rng(1)
    g, cost = rng.uniform(-1, 2, 40), rng.choice([0.5, 1.0, 3.0], 40)
    lower, upper = np.zeros(40), rng.uniform(0.5, 2, 40)
    from scipy.optimize import linprog
    res = linprog(-g, A_ub=cost[None, :], b_ub=[7.0], bounds=np.c_[lower, upper], method="highs")
    top, price = support_newton.knapsack_top(g, cost, lower, upper, 7.0)
    assert top == pytest.approx(-res.fun, rel=1e-12)
    assert price > 0


def knapsack_instance(seed):
    """A random instance whose polytope is a budget row and bounds (the phase's domain)."""
    rng = np.random.default_rng(seed)
    inst = random_instance(seed, constraints=False, max_d=5, max_prompts=5, max_k=6)
    labels = int(rng.choice([1, 2, 50]))
    costs = rng.choice([0.5, 1.0, 2.0], size=len(inst.candidates)) if rng.random() < 0.5 else None
    return dataclasses.replace(inst, max_labels_per_pair=labels, pair_costs=None) if costs is None \
        else pairdesign.Instance.from_arrays(
            inst.features, np.repeat(np.arange(inst.n_prompts), inst.prompt_sizes),
            budget=inst.budget, scores=inst.scores, ridge=inst.ridge, weights=inst.weights,
            max_labels_per_pair=labels,
            pairs=np.c_[inst.candidates.j, inst.candidates.k], pair_costs=costs)


@settings(max_examples=40, deadline=None)
@given(seeds, st.sampled_from(["D", "A", "L"]))
def test_newton_phase_reaches_the_reference_optimum_with_a_sound_bound(seed, criterion):
    inst = knapsack_instance(seed)
    if inst.budget <= 0 or len(inst.candidates) == 0:
        return
    assert LinearOracle(inst, linear_constraints(inst)).kind == "knapsack"
    native = solve(inst, "relax", criterion, options={"tol": 1e-8})
    reference = solve(inst, "relax", criterion, options={"solver": "cvxpy"})
    scale = max(1.0, abs(reference.objective))
    assert native.status is SolutionStatus.optimal
    assert native.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-6)
    # the certificate is as strict as ever: no feasible design beats it, the reference's included
    assert native.bound >= reference.objective - 1e-9 * scale
    assert native.bound >= native.objective - 1e-12 * scale


@pytest.mark.parametrize("labels", [1, 60])
def test_few_certificates_on_budget_and_bounds(labels, monkeypatch):
    """The Newton phase does the work between certificates: a 1e-8 certificate after a handful of
    gain passes, with every step taken by Newton (no pairwise exchange)."""
    import pairdesign.solvers.frank_wolfe as fw

    steps = []
    original = support_newton.improve_working_set
    monkeypatch.setattr(fw.support_newton, "improve_working_set",
                        lambda *a, **k: (lambda out: (steps.append(out[1]), out)[1])(original(*a, **k)))
    inst = pairdesign.synthetic_instance(300, 6, 12, budget=60, seed=4).instance
    inst = dataclasses.replace(inst, max_labels_per_pair=labels)
    result = solve(inst, "relax", "D", options={"tol": 1e-8})
    assert result.status is SolutionStatus.optimal
    assert sum(steps) > 0
    assert len(steps) + 1 <= 8  # the certificates computed (gain passes, the start's aside)
