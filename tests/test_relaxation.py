"""The convex relaxation: native solver against the cvxpy reference, certificates, optimality."""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pairdesign
from helpers import has_feasible_design, random_instance
from pairdesign import InfeasibleError, SolutionStatus, TerminationCondition, solve
from pairdesign.polytope import linear_constraints, violations
from pairdesign.information import Criterion, gains, information_matrix
from pairdesign.oracle import LinearOracle

seeds = st.integers(0, 2**32 - 1)


def lp_optimum(inst, lc, g):
    from scipy.optimize import linprog
    res = linprog(-g, A_ub=lc.A, b_ub=lc.b, bounds=np.c_[lc.lower, lc.upper], method="highs")
    return -res.fun


@settings(max_examples=100, deadline=None)
@given(seeds)
def test_combinatorial_oracles_are_exact(seed):
    """The knapsack and laminar oracles reach the LP optimum, and their vertex is feasible."""
    inst = random_instance(seed)
    if not has_feasible_design(inst):
        return
    lc = linear_constraints(inst)
    oracle = LinearOracle(inst, lc)
    g = np.random.default_rng(seed).normal(size=len(inst.candidates))
    s, top = oracle.maximize(g)
    assert not violations(inst, s, integral=False)
    best = lp_optimum(inst, lc, g)
    assert top >= best - 1e-9 * max(1, abs(best))  # a valid upper bound
    assert g @ s == pytest.approx(best, rel=1e-9, abs=1e-9)  # and attained


def check_against_reference(seed, criterion):
    inst = random_instance(seed)
    if not has_feasible_design(inst):
        return
    native = solve(inst, "relax", criterion, options={"tol": 1e-7})
    reference = solve(inst, "relax", criterion, options={"solver": "cvxpy"})
    assert native.status is SolutionStatus.optimal
    assert not violations(inst, native.counts, integral=False)
    scale = max(1.0, abs(reference.objective))
    assert native.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-6)
    # the certificate holds: no feasible design, the reference's included, beats the bound
    assert native.bound >= reference.objective - 1e-9 * scale
    assert reference.bound >= native.objective - 1e-9 * scale


@settings(max_examples=30, deadline=None)
@given(seeds, st.sampled_from(["D", "A", "L"]))
def test_native_agrees_with_the_cvxpy_reference(seed, criterion):
    check_against_reference(seed, criterion)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(seeds, st.sampled_from(["D", "A", "L"]))
def test_native_agrees_with_the_cvxpy_reference_many(seed, criterion):
    check_against_reference(seed, criterion)


def test_qp_that_hangs_highs_respects_the_time_limit():
    """A QP on which HiGHS cycled (found in review): bounded, then a Frank-Wolfe fallback."""
    inst = random_instance(5, ridge=1e-6, max_d=6)
    result = solve(inst, "relax", "L", options={"tol": 1e-8}, time_limit=5)
    assert result.seconds < 15 and result.bound >= result.objective


def test_every_constraint_type_on_the_constrained_example():
    inst = pairdesign.load_instance("instances/constrained.json")
    for criterion in "DAL":
        native = solve(inst, "relax", criterion, options={"tol": 1e-9})
        reference = solve(inst, "relax", criterion, options={"solver": "cvxpy"})
        assert native.objective == pytest.approx(reference.objective, rel=1e-6)
        assert native.bound >= reference.objective - 1e-9


def test_kiefer_wolfowitz_equivalence_at_the_D_optimum():
    """Budget only, repeats allowed, negligible ridge: max_p w_p z_p^T M^-1 z_p = d / B."""
    syn = pairdesign.synthetic_instance(20, 5, 4, budget=30, seed=2, ridge=1e-9)
    inst = syn.instance
    from dataclasses import replace
    inst = replace(inst, max_labels_per_pair=30)
    result = solve(inst, "relax", "D", options={"tol": 1e-10})
    M = information_matrix(inst, result.counts) - 1e-9 * np.eye(inst.dim)
    crit = Criterion.make("D", inst)
    per_label = gains(inst, M, crit)
    assert per_label.max() == pytest.approx(inst.dim / 30, rel=1e-4)
    # and every pair in the support sits at the maximum
    support = result.counts > 1e-6
    assert np.allclose(per_label[support], inst.dim / 30, rtol=1e-3)


def test_time_limit_returns_a_valid_bound():
    inst = pairdesign.synthetic_instance(200, 6, 8, budget=40, seed=1).instance
    stopped = solve(inst, "relax", time_limit=1e-9)
    full = solve(inst, "relax", options={"tol": 1e-9})
    assert stopped.termination is TerminationCondition.time_limit
    assert stopped.status is SolutionStatus.feasible
    assert stopped.bound >= full.objective - 1e-9
    assert full.status is SolutionStatus.optimal
    assert full.bound - full.objective <= -inst.dim * np.log1p(-1e-9)


def test_relaxation_bounds_the_integer_designs():
    inst = pairdesign.synthetic_instance(50, 5, 5, budget=20, seed=3).instance
    relaxed = solve(inst, "relax")
    for method in ("greedy", "random", "max-distance"):
        assert solve(inst, method, seed=0).objective <= relaxed.bound + 1e-9


def test_infeasible_constraints_get_a_clear_error():
    inst = pairdesign.Instance.from_arrays(np.eye(3), [0, 0, 0], budget=1, fixed_in=[[0, 1], [1, 2]])
    with pytest.raises(InfeasibleError, match="the budget is 1; the pairs fixed in cost 2"):
        solve(inst, "relax")


def test_cli_writes_the_fractional_design(capsys, tmp_path):
    from pairdesign.cli import main
    out = tmp_path / "relaxed.json"
    assert main(["-q", "solve", "instances/small.json", "--method", "relax", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["fractional"] is True and doc["status"] == "optimal"
    weights = [row[3] for row in doc["pairs"]]
    assert all(0 < w <= 1 for w in weights) and sum(weights) == pytest.approx(doc["budget"])
    assert doc["bound"] >= doc["objective"] and doc["gap"] <= 4 * 1e-6 * 1.01


def test_certify_gives_every_method_a_valid_bound():
    inst = pairdesign.synthetic_instance(40, 5, 4, budget=16, seed=5).instance
    relaxed = solve(inst, "relax", options={"tol": 1e-9})
    for method in ("greedy", "random"):
        plain = solve(inst, method, seed=0)
        certified = solve(inst, method, seed=0, certify=True)
        assert plain.bound is None and certified.pairs == plain.pairs
        assert certified.bound >= relaxed.objective - 1e-9
        assert certified.gap == pytest.approx(certified.bound - certified.objective)
        assert certified.status is SolutionStatus.feasible
    greedy = solve(inst, "greedy", certify=True)
    assert 0.9 < greedy.efficiency_bound <= 1.0


@pytest.mark.parametrize("scale", [1e-9, 1.0, 1e12])
def test_lp_oracle_survives_badly_scaled_gains(scale):
    """Gains of A at a tiny ridge reach 1e12 (found in review): the HiGHS oracle rescales."""
    inst = pairdesign.load_instance("instances/constrained.json")
    lc = linear_constraints(inst)
    oracle = LinearOracle(inst, lc)
    assert oracle.kind == "lp"
    g = np.random.default_rng(0).uniform(0.1, 1.0, len(inst.candidates)) * scale
    s, top = oracle.maximize(g)
    best = lp_optimum(inst, lc, g / scale) * scale
    assert top >= best * (1 - 1e-9) and g @ s == pytest.approx(best, rel=1e-7)
    assert not violations(inst, s, integral=False)


def test_newton_qp_ignores_pairs_that_cannot_move():
    """random_instance(346), criterion A: a group budget of 0 and full completion caps freeze most
    pairs, whose gains are 1e4 times those of the pairs that can move; they used to set the Newton
    QP's scale and drown the others (HiGHS cycled, then 10,000 iterations without a certificate)."""
    inst = random_instance(346)
    native = solve(inst, "relax", "A", options={"tol": 1e-7, "max_iterations": 300})
    reference = solve(inst, "relax", "A", options={"solver": "cvxpy"})
    assert native.status is SolutionStatus.optimal
    assert native.objective == pytest.approx(reference.objective, rel=1e-6)
    assert native.bound >= reference.objective - 1e-9 * abs(reference.objective)


def test_newton_qp_falls_back_to_clarabel_when_highs_fails(monkeypatch):
    """random_instance(41), criterion L: one Newton QP that HiGHS does not solve goes to Clarabel."""
    import pairdesign.solvers.frank_wolfe as fw

    calls = []
    original = fw._qp_by_clarabel
    monkeypatch.setattr(fw, "_qp_by_clarabel", lambda *a: (calls.append(1), original(*a))[1])
    inst = random_instance(41)
    native = solve(inst, "relax", "L", options={"tol": 1e-7})
    reference = solve(inst, "relax", "L", options={"solver": "cvxpy"})
    assert calls and native.status is SolutionStatus.optimal
    assert native.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-6)
