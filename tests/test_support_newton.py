"""The working-set Newton phase of the relaxation (budget and bounds; with unit costs also prompt
caps): its pieces, its optimum against the cvxpy reference, and the certificate it leaves."""

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


# ---------------------------------------------------------------------------- prompt caps
def capped_problem(rng):
    """A random working set with unit costs, disjoint capped prompts and a feasible spend."""
    m, G = int(rng.integers(2, 30)), int(rng.integers(1, 5))
    group = rng.integers(-1, G, m)
    lower = np.where(rng.random(m) < 0.2, rng.uniform(0, 1, m), 0.0)
    upper = lower + rng.uniform(0.1, 3.0, m)
    room = np.array([lower[group == i].sum() + rng.uniform(0, 2) for i in range(G)])
    most, _ = support_newton.laminar_top(np.ones(m), lower, upper, 1e9, group, room)
    spend = float(lower.sum() + rng.uniform(0, 1) * (most - lower.sum()))
    return group, lower, upper, room, spend


@settings(max_examples=50, deadline=None)
@given(seeds)
def test_projection_onto_the_budget_the_prompt_caps_and_the_box(seed):
    """project_budget_caps is the Euclidean projection: it meets every row, and no feasible point
    (random convex combinations of the LP's vertices for random objectives) is closer to y."""
    from scipy.optimize import linprog

    rng = np.random.default_rng(seed)
    group, lower, upper, room, spend = capped_problem(rng)
    m, G = group.size, room.size
    y = rng.normal(scale=3.0, size=m)
    n = support_newton.project_budget_caps(y, lower, upper, spend, group, room)
    assert np.all(n >= lower - 1e-12) and np.all(n <= upper + 1e-12)
    assert n.sum() == pytest.approx(spend, rel=1e-9, abs=1e-9)
    for i in range(G):
        assert n[group == i].sum() <= room[i] + 1e-9
    A_ub = np.array([(group == i).astype(float) for i in range(G)])
    vertices = []
    for _ in range(6):
        res = linprog(rng.normal(size=m), A_ub=A_ub, b_ub=room, A_eq=np.ones((1, m)), b_eq=[spend],
                      bounds=np.c_[lower, upper], method="highs")
        vertices.append(res.x)
    for _ in range(30):
        weights = rng.dirichlet(np.ones(len(vertices)))
        other = weights @ np.array(vertices)
        assert np.sum((n - y) ** 2) <= np.sum((other - y) ** 2) + 1e-9


@settings(max_examples=50, deadline=None)
@given(seeds)
def test_laminar_top_is_the_lp_optimum(seed):
    from scipy.optimize import linprog

    rng = np.random.default_rng(seed)
    group, lower, upper, room, spend = capped_problem(rng)
    g = rng.uniform(-1, 2, group.size)
    top, _ = support_newton.laminar_top(g, lower, upper, spend, group, room)
    A_ub = np.array([np.ones(group.size)] + [(group == i).astype(float) for i in range(room.size)])
    res = linprog(-g, A_ub=A_ub, b_ub=np.r_[spend, room], bounds=np.c_[lower, upper], method="highs")
    assert top == pytest.approx(-res.fun, rel=1e-9, abs=1e-12)


def prompt_capped_instance(seed):
    """A random instance whose polytope is a budget row, prompt caps and bounds, unit costs."""
    rng = np.random.default_rng(seed)
    inst = random_instance(seed, constraints=False, max_d=5, max_prompts=6, max_k=6)
    labels, cap = int(rng.choice([1, 3])), int(rng.integers(1, 4))
    per_prompt = np.minimum(np.bincount(inst.candidates.prompt, minlength=inst.n_prompts) * labels, cap)
    budget = max(1, int(rng.uniform(0.3, 0.9) * per_prompt.sum()))  # the caps leave room to spend it
    return dataclasses.replace(inst, max_labels_per_pair=labels, max_pairs_per_prompt=cap,
                               budget=float(budget))


@settings(max_examples=30, deadline=None)
@given(seeds, st.sampled_from(["D", "A", "L"]))
def test_newton_phase_with_prompt_caps_meets_every_row_with_a_sound_bound(seed, criterion):
    """The phase on the laminar polytope: every design it returns meets every row (checked after
    each call, before the caller's clean-up), the solve reaches the cvxpy optimum, and its bound
    is a certificate (no feasible design beats it, the reference's included)."""
    import pairdesign.solvers.frank_wolfe as fw

    inst = prompt_capped_instance(seed)
    if inst.budget <= 0 or len(inst.candidates) == 0:
        return
    lc = linear_constraints(inst)
    if LinearOracle(inst, lc).kind != "laminar":
        return
    broken = []
    original = support_newton.improve_working_set

    def checked(pool, crit, poly, work, x, M, tol, **kw):
        out = original(pool, crit, poly, work, x, M, tol, **kw)
        n = out[0]
        worst = max(float(np.max(poly.A @ n - poly.b)), float(np.max(poly.lower - n)),
                    float(np.max(n - poly.upper)))
        if worst > 1e-9 * max(1.0, float(poly.b[0])):
            broken.append(worst)
        return out

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fw.support_newton, "improve_working_set", checked)
        native = solve(inst, "relax", criterion, options={"tol": 1e-8})
    reference = solve(inst, "relax", criterion, options={"solver": "cvxpy"})
    scale = max(1.0, abs(reference.objective))
    assert not broken
    assert not lc.violations(native.counts, integral=False)
    assert native.status is SolutionStatus.optimal
    assert native.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-6)
    assert native.bound >= reference.objective - 1e-9 * scale
    assert native.bound >= native.objective - 1e-12 * scale


def test_newton_phase_does_the_work_with_prompt_caps(monkeypatch):
    """On a prompt-capped instance the phase runs (it used to be budget and bounds only) and
    certifies 1e-8 after a handful of gain passes."""
    import pairdesign.solvers.frank_wolfe as fw

    steps = []
    original = support_newton.improve_working_set
    monkeypatch.setattr(fw.support_newton, "improve_working_set",
                        lambda *a, **k: (lambda out: (steps.append(out[1]), out)[1])(original(*a, **k)))
    inst = pairdesign.synthetic_instance(300, 6, 12, budget=120, seed=4).instance
    inst = dataclasses.replace(inst, max_pairs_per_prompt=1)
    assert LinearOracle(inst, linear_constraints(inst)).kind == "laminar"
    result = solve(inst, "relax", "D", options={"tol": 1e-8})
    assert result.status is SolutionStatus.optimal
    assert sum(steps) > 0
    assert len(steps) + 1 <= 8
