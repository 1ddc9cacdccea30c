"""Design files read back onto an instance."""

import json

import numpy as np
import pytest

import pairdesign
from pairdesign.design import load_design
from pairdesign.errors import DesignError


@pytest.fixture(scope="module")
def instance():
    return pairdesign.load_instance("instances/small.json")


@pytest.mark.parametrize("suffix", [".json", ".csv"])
@pytest.mark.parametrize("method", ["greedy", "relax"])
def test_round_trip(tmp_path, instance, suffix, method):
    result = pairdesign.solve(instance, method=method, seed=0)
    path = tmp_path / f"design{suffix}"
    result.save(path)
    design = load_design(path, instance)
    assert np.allclose(design.counts, result.counts, atol=1e-12)
    assert design.fractional == result.fractional
    assert design.metadata["method"] == method
    # the objective is recomputable from the file alone
    assert np.isclose(pairdesign.objective(instance, design.counts, "D"), result.objective)


def _write(tmp_path, pairs, **extra):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"format": "pairdesign.design/1", **extra, "pairs": pairs}))
    return path


@pytest.mark.parametrize("pairs, message", [
    ([["nope", "c0", "c1"]], "pairs\\[0\\]: unknown prompt 'nope'"),
    ([["p0", "c0", "c1"], ["p0", "c0", "zz"]], "pairs\\[1\\]: prompt 'p0' has no completion 'zz'"),
    ([["p0", "c0", "c0"]], "pairs\\[0\\]: .* not a candidate"),
    ([["p0", "c0", "c1"], ["p0", "c1", "c0"]], "pairs\\[1\\]: .* listed 2 times"),
    ([["p0", "c0"]], "pairs\\[0\\]: expected"),
])
def test_bad_designs_name_the_row(tmp_path, instance, pairs, message):
    with pytest.raises(DesignError, match=message) as info:
        load_design(_write(tmp_path, pairs), instance)
    assert "d.json" in str(info.value)


def test_other_format_and_bad_weights(tmp_path, instance):
    with pytest.raises(DesignError, match="format"):
        load_design(_write(tmp_path, [], format="other/1"), instance)
    with pytest.raises(DesignError, match="weight"):
        load_design(_write(tmp_path, [["p0", "c0", "c1", -1]], fractional=True), instance)


def test_csv_prompt_ids_starting_with_a_hash(tmp_path):
    features = np.random.default_rng(0).normal(size=(6, 2))
    inst = pairdesign.Instance.from_arrays(features, [0, 0, 0, 1, 1, 1], budget=4,
                                           prompt_ids=["#a: x", "b"])
    result = pairdesign.solve(inst, "greedy")
    result.save(tmp_path / "d.csv")
    assert np.array_equal(load_design(tmp_path / "d.csv", inst).counts, result.counts)
