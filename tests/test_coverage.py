"""Coverage lower bounds (every prompt gets at least l labels; a group gets at least m), added
through the Polytope alone: every method meets them, and exact matches brute force."""

import itertools
import json

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


def covered_instance(seed: int, own_minimums: float = 0.3):
    rng = np.random.default_rng(seed)
    base = random_instance(seed, max_prompts=3, max_k=4, max_d=3, constraints=False)
    overrides = {"min_pairs_per_prompt": int(rng.integers(1, 3))}
    if rng.random() < own_minimums:  # some prompts' own min_pairs (NaN: the global one)
        overrides["prompt_min_pairs"] = np.where(rng.random(base.n_prompts) < 0.6,
                                                 rng.integers(0, 4, size=base.n_prompts), np.nan)
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
    check_every_method(inst, criterion)


@pytest.mark.parametrize("seed", [0, 10, 17, 33])
def test_per_prompt_minimums_every_method_and_brute_force(seed):
    """prompts[].min_pairs overriding min_pairs_per_prompt: every method meets each prompt's own
    minimum, exact matches brute force (seeds chosen so that each instance has overrides, and
    among them both infeasible and feasible cases)."""
    inst = covered_instance(seed, own_minimums=1.0)
    assert inst is not None and inst.prompt_min_pairs is not None
    assert np.prod(inst.candidates.upper + 1.0) <= 4096
    check_every_method(inst, "D")


def check_every_method(inst, criterion):
    crit = pairdesign.Criterion.make(criterion, inst)
    best = brute_force(inst, crit)
    if best is None:  # no design meets every constraint: every method says so
        for method in METHODS:
            with pytest.raises(InfeasibleError):
                solve(inst, method, criterion, seed=0)
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


def own_minimums_instance(**settings):
    """4 prompts of 3 completions, prompt 0 far more informative; prompt 2 owes 2 labels of its own."""
    rng = np.random.default_rng(4)
    features = rng.normal(size=(12, 3))
    features[:3] *= 10.0
    return pairdesign.Instance.from_arrays(features, np.repeat(np.arange(4), 3), budget=5, **settings)


def test_a_prompts_own_minimum_overrides_the_global_one():
    inst = own_minimums_instance(min_pairs_per_prompt=1, prompt_min_pairs=[np.nan, 0, 2, np.nan])
    assert inst.prompt_minimums().tolist() == [1, 0, 2, 1]
    for method in ("exact", "greedy", "round"):
        counts = solve(inst, method, seed=0).counts
        per_prompt = np.bincount(inst.candidates.prompt, counts, minlength=4)
        assert per_prompt[0] >= 1 and per_prompt[2] >= 2 and per_prompt[3] >= 1, method
    plain = solve(own_minimums_instance(), "exact").counts  # no minimum: prompt 2 gets fewer
    assert np.bincount(inst.candidates.prompt, plain, minlength=4)[2] < 2
    # the rows are the polytope's: one per prompt with a minimum, named
    lc = pairdesign.polytope.linear_constraints(inst)
    assert "the minimum of prompt 'p2'" in lc.names and "the minimum of prompt 'p1'" not in lc.names


@pytest.mark.parametrize("own, cap, field, message", [
    ([np.nan, -1, np.nan, np.nan], None, r"prompts\[1\].min_pairs", "must be an integer >= 0 or null"),
    ([np.nan, 1.5, np.nan, np.nan], None, r"prompts\[1\].min_pairs", "must be an integer >= 0 or null"),
    ([np.nan, np.nan, 4, np.nan], None, r"prompts\[2\].min_pairs",
     r"is 4, more than prompt 'p2' can get \(3 candidate pairs x 1 labels\)"),
    ([np.nan, 3, np.nan, np.nan], 2, r"prompts\[1\].min_pairs", r"is 3, more than prompt 'p1' can get \(the cap 2\)"),
    ([0, 0], None, "prompt_min_pairs", r"must have one entry per prompt \(4\)"),
])
def test_bad_per_prompt_minimums_name_the_field(own, cap, field, message):
    with pytest.raises(InstanceError, match=f"{field}: {message}"):
        own_minimums_instance(max_pairs_per_prompt=cap, prompt_min_pairs=own)


def test_an_own_minimum_exempts_a_prompt_from_the_global_one_above_its_cap():
    inst = own_minimums_instance(min_pairs_per_prompt=2, prompt_max_pairs=[np.inf, 1, np.inf, np.inf],
                                 prompt_min_pairs=[np.nan, 1, np.nan, np.nan])
    assert inst.prompt_minimums().tolist() == [2, 1, 2, 2]
    with pytest.raises(InstanceError, match=r"min_pairs_per_prompt: is 2, more than the cap 1"):
        own_minimums_instance(min_pairs_per_prompt=2, prompt_max_pairs=[np.inf, 1, np.inf, np.inf])


@pytest.mark.parametrize("suffix", [".json", ".npz", ".zarr"])
def test_per_prompt_minimums_round_trip(tmp_path, suffix):
    if suffix == ".zarr":
        pytest.importorskip("zarr")
    inst = own_minimums_instance(min_pairs_per_prompt=1, prompt_min_pairs=[np.nan, 0, 2, np.nan])
    path = tmp_path / f"i{suffix}"
    pairdesign.save_instance(inst, path)
    back = pairdesign.load_instance(path)
    assert instances_equal(inst, back)
    assert back.prompt_minimums().tolist() == [1, 0, 2, 1]
    if suffix == ".json":
        doc = json.loads(path.read_text())
        assert [p.get("min_pairs") for p in doc["prompts"]] == [None, 0, 2, None]


def test_per_prompt_minimums_in_a_file_name_file_field_and_row(tmp_path):
    inst = own_minimums_instance()
    path = tmp_path / "i.json"
    pairdesign.save_instance(inst, path)
    doc = json.loads(path.read_text())
    doc["prompts"][3]["min_pairs"] = "two"
    path.write_text(json.dumps(doc))
    with pytest.raises(InstanceError, match=r"i.json.*prompts\[3\].min_pairs: must be an integer >= 0 or null"):
        pairdesign.load_instance(path)
    npz = tmp_path / "i.npz"
    arrays = dict(np.load(_saved_npz(inst, tmp_path)))
    arrays["prompt_min_pairs"] = np.array([np.nan, 9.0, np.nan, np.nan])
    np.savez(npz, **arrays)
    with pytest.raises(InstanceError, match=r"i.npz.*prompts\[1\].min_pairs: is 9, more than prompt 'p1' can get"):
        pairdesign.load_instance(npz)
    arrays["prompt_min_pairs"] = np.array([1.0, 2.0])
    np.savez(npz, **arrays)
    with pytest.raises(InstanceError, match=r"i.npz.*prompt_min_pairs: must have 4 entries, got 2"):
        pairdesign.load_instance(npz)


def _saved_npz(inst, tmp_path):
    path = tmp_path / "plain.npz"
    pairdesign.save_instance(inst, path)
    return path


def test_the_candidate_pool_refuses_per_prompt_minimums():
    from pairdesign.blockpool import MemoryPool
    from pairdesign.errors import OptionError

    with pytest.raises(OptionError, match=r"not minimums of each prompt's own \(prompts\[\]\.min_pairs"):
        MemoryPool(own_minimums_instance(prompt_min_pairs=[np.nan, 1, np.nan, np.nan]))
