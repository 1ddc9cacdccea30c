"""Instances: validation with precise messages, JSON and NPZ forms that round-trip exactly."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers import random_instance
from pairdesign import InfeasibleError, Instance, InstanceError, load_instance, save_instance
from pairdesign.instance import instances_equal
from pairdesign.polytope import linear_constraints

EXAMPLES = Path(__file__).parent.parent / "instances"


@pytest.fixture
def doc():
    return json.loads((EXAMPLES / "constrained.json").read_text())


@pytest.mark.parametrize("name", ["small.json", "constrained.json", "medium.npz"])
def test_examples_load_and_round_trip_in_both_forms(name, tmp_path):
    inst = load_instance(EXAMPLES / name)
    for suffix in (".json", ".npz"):
        save_instance(inst, tmp_path / f"copy{suffix}")
        again = load_instance(tmp_path / f"copy{suffix}")
        assert instances_equal(inst, again)
        assert np.array_equal(inst.candidates.j, again.candidates.j)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_random_instances_round_trip_exactly(tmp_path_factory, seed):
    inst = random_instance(seed)
    folder = tmp_path_factory.mktemp("rt")
    for suffix in (".json", ".npz"):
        save_instance(inst, folder / f"x{suffix}")
        assert instances_equal(inst, load_instance(folder / f"x{suffix}"))


def test_instances_equal_sees_a_difference():
    a = random_instance(5)
    from dataclasses import replace
    features = a.features.copy()
    features[0, 0] = np.nextafter(features[0, 0], np.inf)
    assert not instances_equal(a, replace(a, features=features))
    assert not instances_equal(a, replace(a, budget=a.budget + 1))


def test_constrained_example_candidates(doc):
    inst = load_instance(EXAMPLES / "constrained.json")
    cand = inst.candidates
    # 6 prompts x 5 listed pairs, minus one fixed out and one already labeled
    assert len(cand) == 6 * 5 - 2
    assert cand.lower.sum() == 1 and cand.upper.max() == 1
    assert set(np.unique(cand.cost)) == {1.0, 2.0}
    assert inst.labeled_counts.tolist() == [2]
    assert inst.prompt_caps().tolist() == [1, 3, 3, 3, 3, 3]


def test_explicit_pairs_keep_their_orientation():
    inst = Instance.from_arrays(np.arange(8.0).reshape(4, 2), [0, 0, 0, 0], budget=1,
                                pairs=[[2, 0], [1, 3]])
    assert inst.candidates.j.tolist() == [2, 1] and inst.candidates.k.tolist() == [0, 3]
    assert inst.pair_ids(inst.candidates.j, inst.candidates.k) == [["p0", "c2", "c0"], ["p0", "c1", "c3"]]


def test_all_pairs_are_every_pair_within_each_prompt():
    inst = Instance.from_arrays(np.zeros((7, 1)), [0, 0, 0, 1, 1, 2, 2], budget=1)
    pairs = list(zip(inst.candidates.j.tolist(), inst.candidates.k.tolist()))
    assert pairs == [(0, 1), (0, 2), (1, 2), (3, 4), (5, 6)]


def mutate(doc, path, value):
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


BAD = [
    # (path, value, fragments the message must contain)
    (("format",), "pairdesign.instance/9", ["format", "unsupported version"]),
    (("colour",), "blue", ["unknown field", "colour"]),
    (("budget",), -3, ["budget", "non-negative", "-3"]),
    (("budget",), KeyError, ["budget", "missing"]),
    (("ridge",), 0, ["ridge", "positive"]),
    (("weights",), "fisher", ["weights", "fisher"]),
    (("max_pairs_per_prompt",), -1, ["max_pairs_per_prompt", "at least 0"]),
    (("max_pairs_per_completion",), 1.5, ["max_pairs_per_completion", "integer"]),
    (("max_labels_per_pair",), 0, ["max_labels_per_pair", "at least 1"]),
    (("prompts", 2, "completions", 1, "features"), [1.0, 2.0], ["prompts[2].completions[1].features", "2 values, expected 3"]),
    (("prompts", 2, "completions", 1, "features"), [1.0, "x", 2.0], ["prompts[2].completions[1].features", "numbers"]),
    (("prompts", 4, "completions", 3, "id"), "c0", ["prompts[4].completions[3].id", "duplicate completion id"]),
    (("prompts", 5, "id"), "p0", ["prompts[5].id", "duplicate prompt id"]),
    (("prompts", 1, "completions", 0, "shade"), 1, ["prompts[1].completions[0]", "unknown field", "shade"]),
    (("prompts", 1, "completions", 0, "score"), "high", ["prompts[1].completions[0].score", "number"]),
    (("prompts", 0, "max_pairs"), -2, ["prompts[0].max_pairs", "integer >= 0"]),
    (("prompts", 3, "completions"), [], ["prompts[3].completions", "non-empty"]),
    (("pairs", 4), ["p1", "c0", "nope"], ["pairs[4]", "completion 'nope' is not in prompt 'p1'"]),
    (("pairs", 4), ["p1", "c0", "c0"], ["pairs[4]", "two different completions"]),
    (("pairs", 4), ["p9", "c0", "c1"], ["pairs[4]", "unknown prompt id 'p9'"]),
    (("pairs", 4), ["p0", "c1", "c3", -1], ["pairs[4]", "cost must be a positive"]),
    (("pairs", 4), ["p0", "c1", "c0"], ["pairs[4]", "duplicate pair", "pairs[0]"]),
    (("fixed_in", 0), ["p2", "c0", "c3"], ["fixed_in[0]", "also in 'fixed_out'"]),
    (("labeled", 0), ["p3", "c0", "c2", 0], ["labeled[0]", "integer >= 1"]),
    (("groups", 0, "budget"), -1, ["groups[0].budget", "non-negative"]),
    (("groups", 0, "prompts"), ["p0", "zz"], ["groups[0].prompts", "unknown prompt id 'zz'"]),
]


@pytest.mark.parametrize("path,value,fragments", BAD, ids=[".".join(map(str, b[0])) for b in BAD])
def test_bad_json_gets_one_clear_error(doc, tmp_path, path, value, fragments):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(mutate(copy.deepcopy(doc), path, value)))
    with pytest.raises(InstanceError) as info:
        load_instance(bad)
    message = str(info.value)
    assert message.startswith(str(bad) + ": ")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("text,fragment", [
    ('{"format": "pairdesign.instance/1", ', "not valid JSON"),
    ('{"format": "pairdesign.instance/1", "budget": NaN, "prompts": []}', "NaN is not valid JSON"),
    ('[1, 2]', "top level must be a JSON object"),
])
def test_broken_json(tmp_path, text, fragment):
    bad = tmp_path / "broken.json"
    bad.write_text(text)
    with pytest.raises(InstanceError, match=fragment):
        load_instance(bad)


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(InstanceError, match="no such file"):
        load_instance(tmp_path / "absent.json")
    (tmp_path / "x.yaml").write_text("a: 1")
    with pytest.raises(InstanceError, match="use .json or .npz"):
        load_instance(tmp_path / "x.yaml")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InstanceError, match="junk.npz: not a readable NPZ"):
        load_instance(tmp_path / "junk.npz")


def test_npz_with_unknown_array_or_bad_rows(tmp_path):
    inst = load_instance(EXAMPLES / "small.json")
    path = tmp_path / "x.npz"
    save_instance(inst, path)
    with np.load(path) as npz:
        data = dict(npz)
    np.savez(tmp_path / "extra.npz", **data, colour=np.zeros(3))
    with pytest.raises(InstanceError, match="extra.npz: .*unknown array"):
        load_instance(tmp_path / "extra.npz")
    features = data["features"].copy()
    features[7, 1] = np.inf
    np.savez(tmp_path / "inf.npz", **{**data, "features": features})
    with pytest.raises(InstanceError, match=r"inf.npz: prompts\[1\].completions\[2\].features: contains an infinite"):
        load_instance(tmp_path / "inf.npz")


def test_from_arrays_validation():
    with pytest.raises(InstanceError, match=r"prompts\[0\].completions\[1\].features: contains NaN"):
        Instance.from_arrays(np.array([[0.0], [np.nan]]), [0, 0], budget=1)
    with pytest.raises(InstanceError, match=r"prompt_index\[2\]: rows must be grouped"):
        Instance.from_arrays(np.zeros((3, 1)), [0, 1, 0], budget=1)
    with pytest.raises(InstanceError, match=r"pairs\[0\]: the two completions belong to different prompts"):
        Instance.from_arrays(np.zeros((4, 1)), [0, 0, 1, 1], budget=1, pairs=[[0, 2]])
    with pytest.raises(InstanceError, match=r"weights = 'scores' needs a score"):
        Instance.from_arrays(np.zeros((2, 1)), [0, 0], budget=1, weights="scores")
    with pytest.raises(InstanceError, match=r"fixed_in\[0\]: pair fixed in is not a candidate"):
        Instance.from_arrays(np.zeros((3, 1)), [0, 0, 0], budget=1, pairs=[[0, 1]], fixed_in=[[1, 2]]).candidates


def test_fixed_pairs_beyond_the_budget_are_infeasible():
    inst = Instance.from_arrays(np.eye(3), [0, 0, 0], budget=1, fixed_in=[[0, 1], [1, 2]])
    with pytest.raises(InfeasibleError, match="the budget is 1; the pairs fixed in cost 2"):
        linear_constraints(inst).check_feasible_start()
    capped = Instance.from_arrays(np.eye(3), [0, 0, 0], budget=5, fixed_in=[[0, 1], [1, 2]],
                                  max_pairs_per_completion=1)
    with pytest.raises(InfeasibleError, match=r"the cap of completion prompts\[0\].completions\[1\] is 1; "
                                              r"the pairs fixed in use 2"):
        linear_constraints(capped).check_feasible_start()
