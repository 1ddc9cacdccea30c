"""Every method: feasible designs, honest objectives, the semantics each name promises."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pairdesign
from helpers import check_feasible, naive_information, naive_value, random_instance
from pairdesign import METHODS, OptionError, SolutionStatus, TerminationCondition, solve

SCORE_METHODS = {"best-vs-worst", "ultrafeedback", "max-margin", "min-margin"}
INTEGER_METHODS = sorted(set(METHODS) - {"relax"})
BOUNDED = {"exact", "misocp", "auto", "round", "local-search"}  # carry a bound of their own
HEURISTICS = sorted(set(INTEGER_METHODS) - {"exact", "misocp", "auto"})  # see tests/test_exact.py
BASELINES = sorted(set(HEURISTICS) - {"greedy", "round", "local-search"})


def check_result(inst, result, budget=None):
    budget = inst.budget if budget is None else budget
    check_feasible(inst, result.counts, budget)
    cand = inst.candidates
    M = naive_information(inst, result.counts)
    H = pairdesign.Criterion.make(result.criterion, inst).H
    ref = naive_value(M, result.criterion, H)
    assert result.objective == pytest.approx(ref, rel=1e-9, abs=1e-9)
    assert result.budget_used == pytest.approx(float(cand.cost @ result.counts))
    assert len(result.pairs) == int(result.counts.sum())
    expected = inst.pair_ids(np.repeat(cand.j, result.counts), np.repeat(cand.k, result.counts))
    assert sorted(map(list, result.pairs)) == sorted(expected)
    if result.method in BOUNDED:  # bounds are checked against brute force in test_exact/test_rounding
        assert result.bound >= result.objective - 1e-9 * max(1.0, abs(result.objective))
        assert result.gap == pytest.approx(result.bound - result.objective)
    else:  # heuristics prove nothing and carry no bound unless asked (certify=True)
        assert result.status is SolutionStatus.feasible
        assert result.bound is None and result.gap is None


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(HEURISTICS), st.sampled_from(["D", "A", "L"]))
def test_every_method_respects_every_constraint(seed, method, criterion):
    inst = random_instance(seed)
    result = solve(inst, method=method, criterion=criterion, seed=seed)
    check_result(inst, result)
    assert result.termination in (TerminationCondition.completed, TerminationCondition.converged)


@pytest.mark.parametrize("method", INTEGER_METHODS)
def test_methods_on_the_constrained_example(method):
    inst = pairdesign.load_instance("instances/constrained.json")
    result = solve(inst, method=method, seed=0)
    check_result(inst, result)
    assert result.budget_used >= inst.budget - 2  # the cheapest remaining pair costs at most 2
    assert ["p1", "c0", "c1"] in [list(p) for p in result.pairs]  # fixed in


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_lazy_greedy_is_plain_greedy_for_D(seed):
    inst = random_instance(seed)
    lazy = solve(inst, "greedy", "D")
    plain = solve(inst, "greedy", "D", options={"lazy": False})
    assert lazy.objective == pytest.approx(plain.objective, rel=1e-10, abs=1e-10)


def test_greedy_step_takes_the_largest_marginal_gain():
    inst = random_instance(3, constraints=False, max_prompts=3, max_k=4, max_d=3, ridge=0.1)
    inst = inst.with_budget(5)
    result = solve(inst, "greedy", "D")
    cand = inst.candidates
    chosen = np.zeros(len(cand))
    # replay: every label of the greedy design must be a best one given the earlier labels
    order = [int(p) for p in np.flatnonzero(result.counts)]
    M = naive_information(inst, chosen)
    f = naive_value(M, "D")
    taken = set()
    for _ in order:
        best, best_gain = None, -np.inf
        for p in range(len(cand)):
            if p in taken:
                continue
            z = inst.features[cand.j[p]] - inst.features[cand.k[p]]
            gain = naive_value(M + cand.weight[p] * np.outer(z, z), "D") - f
            if gain > best_gain:
                best, best_gain = p, gain
        assert result.counts[best] == 1
        taken.add(best)
        z = inst.features[cand.j[best]] - inst.features[cand.k[best]]
        M = M + cand.weight[best] * np.outer(z, z)
        f = naive_value(M, "D")


def test_greedy_beats_the_baselines_on_a_generated_instance():
    inst = pairdesign.synthetic_instance(60, 6, 6, budget=24, seed=4, decay=1.5).instance
    greedy = solve(inst, "greedy").objective
    for method in BASELINES:
        assert greedy > solve(inst, method, seed=0).objective


def test_greedy_with_repeated_labels_and_costs():
    inst = random_instance(9, constraints=False, max_labels_per_pair=3)
    inst = inst.with_budget(3 * len(inst.candidates))
    result = solve(inst, "greedy")
    check_result(inst, result)
    assert result.counts.max() == 3  # the budget admits every label of every pair


@pytest.mark.parametrize("criterion", ["A", "L"])
def test_lazy_and_plain_greedy_agree_closely_for_A_and_L(criterion):
    inst = pairdesign.synthetic_instance(30, 5, 4, budget=15, seed=1).instance
    lazy = solve(inst, "greedy", criterion)
    plain = solve(inst, "greedy", criterion, options={"lazy": False})
    assert lazy.objective >= plain.objective - 1e-6 * abs(plain.objective)


# ---------------------------------------------------------------------- baseline semantics
@pytest.fixture(scope="module")
def gen():
    return pairdesign.synthetic_instance(12, 6, 3, budget=12, seed=8).instance


def local(inst, row):
    return int(row - inst.prompt_offsets[inst.prompt_of_row[row]])


def test_first_k_takes_all_pairs_of_the_first_k_completions_prompt_by_prompt(gen):
    result = solve(gen, "first-k", options={"k": 3})
    cand = gen.candidates
    chosen = np.flatnonzero(result.counts)
    assert all(local(gen, cand.j[p]) < 3 and local(gen, cand.k[p]) < 3 for p in chosen)
    assert sorted(set(cand.prompt[chosen].tolist())) == [0, 1, 2, 3]  # 3 pairs each, in order


def test_best_vs_worst_takes_the_extreme_pair_of_each_prompt(gen):
    result = solve(gen, "best-vs-worst")
    cand = gen.candidates
    for p in np.flatnonzero(result.counts):
        rows = np.arange(gen.prompt_offsets[cand.prompt[p]], gen.prompt_offsets[cand.prompt[p] + 1])
        pair = {int(cand.j[p]), int(cand.k[p])}
        assert pair == {int(rows[np.argmax(gen.scores[rows])]), int(rows[np.argmin(gen.scores[rows])])}
    assert result.counts.sum() == 12  # one per prompt


def test_ultrafeedback_pairs_the_best_with_a_random_other(gen):
    a = solve(gen, "ultrafeedback", seed=1)
    b = solve(gen, "ultrafeedback", seed=1)
    c = solve(gen, "ultrafeedback", seed=2)
    assert a.pairs == b.pairs and a.pairs != c.pairs
    cand = gen.candidates
    for p in np.flatnonzero(a.counts):
        rows = np.arange(gen.prompt_offsets[cand.prompt[p]], gen.prompt_offsets[cand.prompt[p] + 1])
        assert int(rows[np.argmax(gen.scores[rows])]) in (cand.j[p], cand.k[p])


def test_margin_and_distance_orders(gen):
    cand = gen.candidates
    gap = np.abs(gen.scores[cand.j] - gen.scores[cand.k])
    dist = np.linalg.norm(gen.features[cand.j] - gen.features[cand.k], axis=1)
    for method, key in (("max-margin", -gap), ("min-margin", gap), ("max-distance", -dist)):
        chosen = np.flatnonzero(solve(gen, method).counts)
        assert set(chosen.tolist()) == set(np.argsort(key, kind="stable")[:12].tolist())


def test_random_is_reproducible_and_seed_dependent(gen):
    assert solve(gen, "random", seed=5).pairs == solve(gen, "random", seed=5).pairs
    assert solve(gen, "random", seed=5).pairs != solve(gen, "random", seed=6).pairs


# ---------------------------------------------------------------------- requests
def test_time_limit_returns_a_feasible_design():
    inst = pairdesign.synthetic_instance(300, 8, 8, budget=200, seed=0).instance
    result = solve(inst, "greedy", time_limit=1e-9)
    assert result.termination is TerminationCondition.time_limit
    assert result.status is SolutionStatus.feasible
    check_feasible(inst, result.counts, inst.budget)


def test_budget_override():
    inst = pairdesign.load_instance("instances/small.json")
    assert solve(inst, "greedy", budget=3).n_labels == 3
    assert solve(inst, "greedy", budget=0).n_labels == 0


@pytest.mark.parametrize("kwargs,fragment", [
    ({"method": "simulated-annealing"}, "unknown method"),
    ({"criterion": "Z"}, "unknown criterion"),
    ({"budget": -3}, "The 'budget' parameter of solve must be a non-negative number. Got -3 instead."),
    ({"time_limit": 0}, "time_limit"),
    ({"seed": -1}, "seed"),
    ({"method": "greedy", "options": {"kk": 3}}, "unknown option(s) ['kk'] for method 'greedy'"),
    ({"method": "first-k", "options": {"k": 1}}, "must be >= 2"),
    ({"method": "first-k", "options": {"k": "four"}}, "must be int"),
])
def test_bad_requests(kwargs, fragment):
    inst = pairdesign.load_instance("instances/small.json")
    with pytest.raises(OptionError) as info:
        solve(inst, **kwargs)
    assert fragment in str(info.value)


def test_score_methods_need_scores():
    inst = random_instance(2, constraints=False)
    from dataclasses import replace
    bare = replace(inst, scores=None, weights="uniform")
    for method in sorted(SCORE_METHODS):
        with pytest.raises(OptionError, match=r"needs a score for every completion; prompts\[0\].completions\[0\]"):
            solve(bare, method)
