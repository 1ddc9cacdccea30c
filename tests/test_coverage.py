"""Coverage lower bounds (every prompt gets at least l labels; a group gets at least m), added
through the Polytope alone: every method meets them, and exact matches brute force."""

import itertools

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import pairdesign
from pairdesign import Group, InfeasibleError, InstanceError, objective, solve
from pairdesign.instance import instances_equal

from helpers import check_feasible, random_instance

METHODS = ["greedy", "round", "local-search", "relax", "exact", "auto", "random", "first-k",
           "max-distance"]


def meets_everything(inst, n) -> bool:
    try:
        check_feasible(inst, n, inst.budget)
    except AssertionError:
        return False
    return True


def brute_force(inst, crit):
    """The best design over every integer design meeting every constraint (checked from the
    instance's fields, not through the Polytope), or None when none does."""
    cand = inst.candidates
    best = None
    for n in itertools.product(*[range(int(lo), int(hi) + 1) for lo, hi in zip(cand.lower, cand.upper)]):
        n = np.asarray(n)
        if meets_everything(inst, n):
            value = objective(inst, n, crit)
            best = value if best is None else max(best, value)
    return best


def covered_instance(seed: int):
    rng = np.random.default_rng(seed)
    base = random_instance(seed, max_prompts=3, max_k=4, max_d=3, constraints=False)
    overrides = {"min_pairs_per_prompt": int(rng.integers(1, 3))}
    if rng.random() < 0.5:
        overrides["groups"] = (Group("g0", np.array([0]), float(rng.integers(1, 6)),
                                     int(rng.integers(1, 4))),)
    if rng.random() < 0.3:
        overrides["max_pairs_per_completion"] = int(rng.integers(1, 3))
    try:
        return random_instance(seed, max_prompts=3, max_k=4, max_d=3, constraints=False, **overrides)
    except InstanceError:
        return None


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["D", "A", "L"]))
@example(1808857088, "L")  # the exchanges once found no partner outside a prompt at its minimum
def test_every_method_meets_the_minimums_and_exact_matches_brute_force(seed, criterion):
    inst = covered_instance(seed)
    if inst is None or np.prod(inst.candidates.upper + 1.0) > 4096:
        return
    crit = pairdesign.Criterion.make(criterion, inst)
    best = brute_force(inst, crit)
    if best is None:  # no design meets every constraint: every method says so
        with pytest.raises(InfeasibleError):
            solve(inst, "greedy", criterion)
        return
    scale = max(1.0, abs(best))
    for algorithm in ("bnb", "oa"):
        result = solve(inst, "exact", criterion, options={"algorithm": algorithm})
        check_feasible(inst, result.counts, inst.budget)
        assert result.objective == pytest.approx(best, rel=1e-6, abs=1e-6)
        assert result.bound >= best - 1e-7 * scale
    for method in METHODS:
        result = solve(inst, method, criterion, seed=0)
        counts = result.counts if not result.fractional else result.counts
        if result.fractional:  # the relaxation: rows hold for the real weights
            assert not pairdesign.polytope.linear_constraints(inst).violations(counts, integral=False)
            assert result.bound >= best - 1e-7 * scale
        else:
            check_feasible(inst, counts, inst.budget)
            assert result.objective <= best + 1e-7 * scale
            if result.bound is not None:
                assert result.bound >= best - 1e-7 * scale


def test_minimums_change_the_design():
    rng = np.random.default_rng(4)
    features = rng.normal(size=(20, 3))
    features[:5] *= 10.0  # prompt 0 is far more informative: without a minimum it takes everything
    plain = pairdesign.Instance.from_arrays(features, np.repeat(np.arange(4), 5), budget=8)
    covered = pairdesign.Instance.from_arrays(features, np.repeat(np.arange(4), 5), budget=8,
                                              min_pairs_per_prompt=2)
    free = solve(plain, "exact")
    forced = solve(covered, "exact")
    per_prompt = np.bincount(covered.candidates.prompt, forced.counts, minlength=4)
    assert per_prompt.min() >= 2
    assert np.bincount(plain.candidates.prompt, free.counts, minlength=4).min() < 2
    assert forced.objective <= free.objective


def test_impossible_minimums_are_infeasible_in_one_line():
    inst = pairdesign.Instance.from_arrays(np.eye(6), np.repeat(np.arange(3), 2), budget=2,
                                           min_pairs_per_prompt=1)  # 3 prompts, 2 labels
    with pytest.raises(InfeasibleError, match="coverage minimums"):
        solve(inst, "greedy")


def test_a_minimum_above_a_prompt_cap_is_an_instance_error():
    with pytest.raises(InstanceError, match=r"min_pairs_per_prompt: is 3, more than the cap 2"):
        pairdesign.Instance.from_arrays(np.eye(6), np.repeat(np.arange(2), 3), budget=6,
                                        max_pairs_per_prompt=2, min_pairs_per_prompt=3)


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_minimums_round_trip_through_both_file_formats(tmp_path, suffix):
    inst = pairdesign.Instance.from_arrays(np.random.default_rng(0).normal(size=(12, 3)),
                                           np.repeat(np.arange(4), 3), budget=6, min_pairs_per_prompt=1,
                                           groups=(Group("a", np.array([0, 1]), 5.0, 3),))
    path = tmp_path / f"i{suffix}"
    pairdesign.save_instance(inst, path)
    back = pairdesign.load_instance(path)
    assert instances_equal(inst, back)
    assert back.min_pairs_per_prompt == 1 and back.groups[0].min_pairs == 3
