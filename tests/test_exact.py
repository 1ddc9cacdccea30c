"""Exact designs by outer approximation: against brute-force enumeration, honest statuses."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pairdesign
from helpers import check_feasible, random_instance
from pairdesign import Criterion, InfeasibleError, SolutionStatus, TerminationCondition, objective, solve
from pairdesign.constraints import violations


def brute_force(inst, crit, budget=None):
    cand = inst.candidates
    best = -np.inf
    ranges = [range(int(lo), int(hi) + 1) for lo, hi in zip(cand.lower, cand.upper)]
    for n in itertools.product(*ranges):
        n = np.asarray(n)
        if not violations(inst, n, budget):
            best = max(best, objective(inst, n, crit))
    return best


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["D", "A", "L"]))
def test_exact_matches_brute_force(seed, criterion):
    inst = random_instance(seed, max_prompts=3, max_k=4, max_d=3)
    if np.prod(inst.candidates.upper + 1.0) > 4096:
        return  # too many designs to enumerate
    try:
        inst.check_fixed_feasible()
    except InfeasibleError:
        return
    crit = Criterion.make(criterion, inst)
    result = solve(inst, "exact", criterion, time_limit=60)
    best = brute_force(inst, crit)
    check_feasible(inst, result.counts, inst.budget)
    assert result.status is SolutionStatus.optimal
    scale = max(1.0, abs(best))
    assert result.objective == pytest.approx(best, rel=1e-6, abs=1e-6)
    assert result.bound >= best - 1e-7 * scale
    assert result.gap <= 1e-5 * scale


def test_exact_beats_or_equals_greedy_and_respects_the_relaxation():
    inst = pairdesign.synthetic_instance(8, 4, 3, budget=6, seed=2).instance
    exact = solve(inst, "exact")
    assert exact.status is SolutionStatus.optimal
    assert exact.objective >= solve(inst, "greedy").objective - 1e-12
    assert exact.objective <= solve(inst, "relax").bound + 1e-9


def test_time_limit_returns_incumbent_bound_and_gap():
    inst = pairdesign.synthetic_instance(60, 5, 6, budget=12, seed=0, ridge=1e-3).instance
    result = solve(inst, "exact", time_limit=0.5)
    check_feasible(inst, result.counts, inst.budget)
    assert result.termination is TerminationCondition.time_limit
    assert result.status is SolutionStatus.feasible
    relaxed = solve(inst, "relax", options={"tol": 1e-9})
    assert result.bound is not None and result.bound >= result.objective
    # never weaker than the relaxation it starts from (solved there to a loss of 1e-6)
    assert result.bound <= relaxed.objective - inst.dim * np.log1p(-1e-6) + 1e-9
    assert result.gap > 0
