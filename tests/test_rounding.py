"""Rounding, local search, round / local-search / auto: feasible, bounded, near the optimum."""

import itertools
import logging

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pairdesign
from helpers import check_feasible, has_feasible_design, random_instance
from pairdesign import Criterion, DesignError, OptionError, SolutionStatus, objective, solve
from pairdesign.polytope import DesignBuilder, linear_constraints, violations
from pairdesign.solvers.base import Context
from pairdesign.solvers.frank_wolfe import solve_relaxation
from pairdesign.solvers.rounding import efficient_counts, pipage_counts
from test_exact import brute_force, enumerable


def _context(inst, criterion="D", seed=0, budget=None):
    return Context.make(inst, Criterion.make(criterion, inst), budget, seed=seed,
                        logger=logging.getLogger("test"))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_pipage_keeps_prompt_and_total_sums_and_expectations(seed):
    inst = random_instance(seed, max_prompts=5, max_k=5)
    if not has_feasible_design(inst) or len(inst.candidates) == 0:
        return
    x = solve_relaxation(_context(inst), tol=1e-4).n
    rng = np.random.default_rng(seed)
    cand = inst.candidates
    draws = np.array([pipage_counts(inst, x, rng) for _ in range(400)])
    assert np.all(draws == np.round(draws))
    for n in draws[:50]:
        for i in range(inst.n_prompts):
            s, t = n[cand.prompt == i].sum(), x[cand.prompt == i].sum()
            assert np.floor(t - 1e-9) <= s <= np.ceil(t + 1e-9)
        assert np.floor(x.sum() - 1e-9) <= n.sum() <= np.ceil(x.sum() + 1e-9)
        assert np.all(np.floor(x - 1e-9) <= n) and np.all(n <= np.ceil(x + 1e-9))
    # E[n] = x: the mean of 400 draws is within 5 standard errors of x (a Bernoulli sd <= 1/2)
    assert np.all(np.abs(draws.mean(axis=0) - x) <= 5 * 0.5 / np.sqrt(len(draws)) + 1e-9)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.01, 10), min_size=1, max_size=12), st.integers(0, 40))
def test_efficient_apportionment(weights, budget):
    x = np.asarray(weights)
    n = efficient_counts(x, budget)
    assert n.sum() == budget and np.all(n >= 0)
    w = x / x.sum()
    if budget:  # Pukelsheim-Rieder: min n_i / w_i >= max (n_j - 1) / w_j
        assert (n / w).min() >= ((n - 1) / w).max() - 1e-9


def _exhaustively_one_exchange_optimal(inst, counts, crit):
    cand = inst.candidates
    base = objective(inst, counts, crit)
    for p in np.flatnonzero(counts > cand.lower):
        for q in np.flatnonzero(counts < cand.upper):
            n = counts.copy()
            n[p] -= 1
            n[q] += 1
            if p != q and not violations(inst, n, inst.budget):
                assert objective(inst, n, crit) <= base + 1e-9 * max(1.0, abs(base)), (p, q)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["D", "A", "L"]), st.sampled_from(["round", "local-search"]))
def test_round_and_local_search_are_feasible_bounded_and_near_optimal(seed, criterion, method):
    inst = random_instance(seed, max_prompts=3, max_k=4, max_d=3)
    if not enumerable(inst):
        return
    crit = Criterion.make(criterion, inst)
    result = solve(inst, method, criterion, seed=seed)
    check_feasible(inst, result.counts, inst.budget)
    best = brute_force(inst, crit)
    assert result.objective <= best + 1e-9 * max(1.0, abs(best))
    assert result.bound >= best - 1e-7 * max(1.0, abs(best))  # the relaxation's bound is valid
    if result.status is SolutionStatus.optimal:
        assert result.objective >= best - 1e-5 * max(1.0, abs(best))
    # the exchanges end at a 1-exchange local optimum (tiny instances: exhaustive grid)
    _exhaustively_one_exchange_optimal(inst, result.counts, crit)
    # near the optimum: at least 0.98 D-efficiency (for A and L, 0.98 of the optimum's value)
    if criterion == "D":
        assert np.exp((result.objective - best) / inst.dim) >= 0.98
    else:
        assert best / result.objective >= 0.98


def test_round_near_exact_optimum_on_generated_instances():
    effs = []
    for seed in range(6):
        inst = pairdesign.synthetic_instance(8, 4, 4, budget=8, seed=seed, ridge=0.01).instance
        exact = solve(inst, "exact", time_limit=60)
        assert exact.status is SolutionStatus.optimal
        r = solve(inst, "round", seed=0)
        assert r.bound >= exact.objective - 1e-9
        effs.append(np.exp((r.objective - exact.objective) / inst.dim))
    assert min(effs) >= 0.98 and np.median(effs) >= 0.995


@pytest.mark.parametrize("method", ["round", "local-search"])
def test_seeds_reproduce_designs(method):
    inst = pairdesign.synthetic_instance(40, 5, 5, budget=15, seed=3).instance
    a = solve(inst, method, seed=7)
    b = solve(inst, method, seed=7)
    assert np.array_equal(a.counts, b.counts) and a.objective == b.objective


def test_pipage_draws_depend_on_the_seed():
    inst = pairdesign.synthetic_instance(40, 5, 5, budget=15, seed=3).instance
    x = solve_relaxation(_context(inst), tol=1e-6).n
    draws = {tuple(pipage_counts(inst, x, np.random.default_rng(s))) for s in range(10)}
    assert len(draws) > 1 or np.all(x == np.round(x))


def test_round_with_repeated_labels_uses_efficient_rounding():
    inst = pairdesign.synthetic_instance(5, 4, 3, budget=20, seed=0, ridge=0.01).instance
    import dataclasses
    inst = dataclasses.replace(inst, max_labels_per_pair=5)
    result = solve(inst, "round", seed=0)
    check_feasible(inst, result.counts, inst.budget)
    assert result.counts.max() > 1
    assert any("efficient" in line for line in result.log)
    assert result.bound >= result.objective


def test_local_search_from_a_design_file(tmp_path):
    inst = pairdesign.synthetic_instance(30, 5, 5, budget=12, seed=1).instance
    start = solve(inst, "random", seed=0)
    path = tmp_path / "start.csv"
    start.save(path)
    result = solve(inst, "local-search", options={"start": str(path)})
    assert result.objective > start.objective
    assert any("start" in line and f"{start.objective:.10g}" in line for line in result.log)
    # a design for a larger budget does not fit
    big = solve(inst, "greedy", budget=20)
    big.save(tmp_path / "big.json")
    with pytest.raises(DesignError, match="does not fit"):
        solve(inst, "local-search", options={"start": str(tmp_path / "big.json")})
    with pytest.raises(OptionError, match="start"):
        solve(inst, "local-search", options={"start": "annealing"})


def test_auto_proves_small_instances_and_rounds_large_ones():
    inst = pairdesign.synthetic_instance(4, 3, 3, budget=5, seed=2, ridge=0.01).instance  # 12 pairs
    small = solve(inst, time_limit=60, seed=1)
    assert small.method == "auto" and small.status is SolutionStatus.optimal
    assert small.objective == pytest.approx(brute_force(inst, Criterion.make("D", inst)), abs=1e-6)
    again = solve(inst, time_limit=60, seed=1)
    assert np.array_equal(again.counts, small.counts)
    big = solve(inst, "auto", options={"exact_pairs": 10}, time_limit=60)
    assert big.solver.startswith("round") and big.bound >= small.objective - 1e-9


def test_auto_with_a_short_time_limit_returns_a_design_and_a_bound():
    inst = pairdesign.synthetic_instance(60, 6, 8, budget=8, seed=0).instance  # hard: B = d, tiny ridge
    result = solve(inst, "auto", time_limit=2, seed=0)
    check_feasible(inst, result.counts, inst.budget)
    # the exact phase starts from the rounded design: auto is never worse than round
    # (no time limit on the round phase, so it repeats round's draws exactly)
    capped = solve(inst, "auto", seed=0, options={"exact_time": 1.0})
    assert capped.objective >= solve(inst, "round", seed=0).objective - 1e-9
    assert result.bound >= result.objective and result.seconds < 10
    if result.status is not SolutionStatus.optimal:
        assert result.gap > 0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["D", "A", "L"]))
def test_local_search_never_makes_a_design_worse(seed, criterion):
    # nearly singular M (ridge 1e-6, random partial starts): the closed forms lose digits there,
    # so every exchange is checked against f recomputed from scratch
    inst = random_instance(seed, max_prompts=6, max_k=6, max_d=6, ridge=1e-6)
    if not has_feasible_design(inst) or len(inst.candidates) == 0:
        return
    from pairdesign.solvers.local_search import improve

    crit = Criterion.make(criterion, inst)
    rng = np.random.default_rng(seed)
    design = DesignBuilder(linear_constraints(inst))
    for p in rng.permutation(len(inst.candidates)).tolist():
        if design.fits(p) and rng.random() < 0.6:
            design.add(p)
    ctx = _context(inst, criterion)
    before = objective(inst, design.counts, crit)
    stats = improve(ctx, design, exhaustive_limit=int(rng.choice([0, 10**6])), shortlist=4, removals=4)
    check_feasible(inst, design.counts, inst.budget)
    after = objective(inst, design.counts, crit)
    assert after >= before - 1e-9 * max(1.0, abs(before))
    if stats.local_optimum:
        _exhaustively_one_exchange_optimal(inst, design.counts, crit)


def test_local_search_with_a_time_limit_keeps_its_start_and_a_valid_bound():
    inst = pairdesign.synthetic_instance(200, 6, 8, budget=60, seed=0).instance
    greedy = solve(inst, "greedy")
    result = solve(inst, "local-search", time_limit=5)
    assert result.n_labels == 60 and result.objective >= greedy.objective - 1e-9
    relaxed = solve(inst, "relax")
    assert result.bound >= relaxed.objective - 1e-6  # a valid bound: above the relaxation's optimum
