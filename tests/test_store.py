"""The chunked instance store (.zarr): round trips, block-by-block writing, lazy opening, errors."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")

import pairdesign  # noqa: E402
from pairdesign.cli import main  # noqa: E402
from pairdesign.errors import InstanceError  # noqa: E402
from pairdesign.fingerprint import instance_fingerprint  # noqa: E402
from pairdesign.generate import synthetic_instance, write_synthetic_store  # noqa: E402
from pairdesign.instance import instances_equal  # noqa: E402
from pairdesign.store import InstanceStore, StoreWriter, load_store, open_store, save_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _texts_instance() -> pairdesign.Instance:
    inst = synthetic_instance(7, 3, 2, seed=4).instance
    return replace(inst, prompt_texts=tuple(f"prompt é {i}" for i in range(7)),
                   completion_texts=tuple(f"answer {r} ✓" for r in range(21)),
                   labeled=np.array([[0, 1]]), labeled_counts=np.array([2]), labeled_wins=np.array([1.5]),
                   projection={"method": "pca", "dim": 2}, rounds=({"design": "x", "labels": 2},))


@pytest.mark.parametrize("make", [lambda: pairdesign.load_instance(ROOT / "instances/constrained.json"),
                                  lambda: pairdesign.load_instance(ROOT / "instances/medium.npz"),
                                  _texts_instance])
def test_a_store_round_trips_every_field_of_the_npz_form(make, tmp_path):
    inst = make()
    path = tmp_path / "x.zarr"
    save_store(inst, path, block_rows=max(7, inst.n_completions // 4))  # several blocks of whole prompts
    store = open_store(path)
    assert store.n_blocks > 1 and store.n_prompts == inst.n_prompts and store.dim == inst.dim
    assert np.array_equal(inst.prompt_offsets[store.block_prompts], store.block_rows)
    back = pairdesign.load_instance(path)
    assert isinstance(back, pairdesign.Instance) and instances_equal(inst, back)
    assert store.fingerprint() == instance_fingerprint(inst)  # read in order, never loaded


def test_blocks_ids_and_rows_read_lazily_match_the_instance(tmp_path):
    inst = pairdesign.load_instance(ROOT / "instances/medium.npz")
    save_store(inst, tmp_path / "m.zarr", block_rows=500)
    store = open_store(tmp_path / "m.zarr")
    b = store.block(2)
    r0, r1 = int(store.block_rows[2]), int(store.block_rows[3])
    assert np.array_equal(b.features, inst.features[r0:r1]) and b.row0 == r0
    assert np.array_equal(b.prompt_sizes, inst.prompt_sizes[store.block_prompts[2]:store.block_prompts[3]])
    rows = np.array([3199, 5, 700, 5])
    assert np.array_equal(store.rows(rows), inst.features[rows])
    assert store.ids("completion_ids", rows).tolist() == inst.completion_ids[rows].tolist()
    assert store.ids("prompt_ids", np.array([399, 0])).tolist() == inst.prompt_ids[[399, 0]].tolist()


def test_float32_features_load_as_float64_of_the_same_values(tmp_path):
    inst = synthetic_instance(20, 4, 3, seed=1).instance
    save_store(inst, tmp_path / "f.zarr", dtype="float32")
    assert open_store(tmp_path / "f.zarr").feature_dtype == "float32"
    back = pairdesign.load_instance(tmp_path / "f.zarr")
    assert back.features.dtype == np.float64
    assert np.array_equal(back.features, inst.features.astype(np.float32).astype(np.float64))


def test_generating_into_a_store_draws_what_the_in_memory_generator_draws(tmp_path):
    # one block: exactly the instance of synthetic_instance (same seed, same stream)
    write_synthetic_store(tmp_path / "one.zarr", 30, 5, 4, seed=7, dtype="float64", budget=9)
    assert instances_equal(synthetic_instance(30, 5, 4, seed=7, budget=9).instance,
                           pairdesign.load_instance(tmp_path / "one.zarr"))
    # several blocks: reproducible, all prompts whole, ids in order
    for name in ("a.zarr", "b.zarr"):
        write_synthetic_store(tmp_path / name, 30, 5, 4, seed=7, block_rows=20)
    a, b = (pairdesign.load_instance(tmp_path / n) for n in ("a.zarr", "b.zarr"))
    assert open_store(tmp_path / "a.zarr").n_blocks == 8 and instances_equal(a, b)
    assert a.prompt_ids[-1] == "p29" and a.completion_ids[:5].tolist() == ["c0", "c1", "c2", "c3", "c4"]


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    path = tmp_path / "x.zarr"
    with pytest.raises(RuntimeError):
        with StoreWriter(path, meta={"budget": 1}, prompt_sizes=np.array([2, 2]), dim=2) as writer:
            writer.write_block(0, features=np.zeros((4, 2)), prompt_ids=np.array(["a", "b"]),
                               completion_ids=np.array(["x", "y", "x", "y"]))
            raise RuntimeError("the disk is full")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="only 0 of 1 blocks"):  # an unfinished store never appears
        with StoreWriter(path, meta={"budget": 1}, prompt_sizes=np.array([2, 2]), dim=2):
            pass
    assert os.listdir(tmp_path) == []


def test_bad_stores_are_named_errors(tmp_path):
    with pytest.raises(InstanceError, match="no such store"):
        open_store(tmp_path / "none.zarr")
    inst = synthetic_instance(6, 3, 2, seed=0).instance
    save_store(inst, tmp_path / "x.zarr", block_rows=6)
    attrs = tmp_path / "x.zarr" / "zarr.json"
    doc = json.loads(attrs.read_text())
    doc["attributes"]["complete"] = False
    attrs.write_text(json.dumps(doc))
    with pytest.raises(InstanceError, match="x.zarr: the store was not completely written"):
        pairdesign.load_instance(tmp_path / "x.zarr")
    bad = replace(inst, features=inst.features.copy())
    save_store(bad, tmp_path / "nan.zarr", block_rows=6)
    import zarr
    zarr.open_group(tmp_path / "nan.zarr", mode="r+")["features"][10, 1] = np.nan
    with pytest.raises(InstanceError, match=r"nan.zarr: features\[10\]: contains NaN"):
        open_store(tmp_path / "nan.zarr").block(1)
    with pytest.raises(InstanceError, match=r"prompts\[3\].completions\[1\].features: contains NaN"):
        pairdesign.load_instance(tmp_path / "nan.zarr")


def test_a_store_too_large_for_memory_opens_lazily_and_solves_on_dask(tmp_path, monkeypatch):
    pytest.importorskip("dask")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)  # Dask's local scheduler
    inst = synthetic_instance(10, 4, 3, seed=0).instance
    save_store(inst, tmp_path / "x.zarr")
    assert isinstance(load_store(tmp_path / "x.zarr"), pairdesign.Instance)
    lazy = load_store(tmp_path / "x.zarr", memory_limit=0)
    assert isinstance(lazy, InstanceStore) and lazy.n_completions == 40 and lazy.meta["budget"] == 12
    ours, ref = pairdesign.solve(lazy, method="greedy"), pairdesign.solve(inst, method="greedy")
    assert sorted(ours.pairs) == sorted(ref.pairs) and ours.objective == pytest.approx(ref.objective, abs=1e-9)


def test_cli_generate_info_and_import_write_and_read_stores(tmp_path, capsys):
    out = tmp_path / "g.zarr"
    assert main(["generate", "--prompts", "50", "--completions", "4", "--dim", "3", "--block-rows", "40",
                 "--out", str(out)]) == 0
    assert "300 candidate pairs, d = 3, 5 blocks of float32" in capsys.readouterr().out
    assert main(["info", str(out), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["candidate_pairs"] == 300 and facts["store_blocks"] == 5 and facts["store_features"] == "float32"
    gen = tmp_path / "gen.jsonl"
    gen.write_text("".join(json.dumps({"prompt_id": f"q{i}", "prompt": "P", "completions": [
        {"id": c, "text": c.upper(), "embedding": [i, j, 1.0]} for j, c in enumerate("abc")]}) + "\n"
        for i in range(4)))
    assert main(["import", str(gen), "--out", str(tmp_path / "i.zarr"), "--dim", "3"]) == 0
    imported = pairdesign.load_instance(tmp_path / "i.zarr")
    assert imported.prompt_ids.tolist() == ["q0", "q1", "q2", "q3"] and imported.completion_texts[4] == "B"


@pytest.mark.parametrize("criterion", ["D", pytest.param("L", marks=pytest.mark.slow)])
def test_export_from_a_store_too_large_for_memory_reads_only_the_designs_prompts(criterion, tmp_path, monkeypatch):
    """The tasks exported from the store's view of the design's prompts are those of an in-memory
    export of the whole instance (ids, order by greedy gain given M0, texts; the gains to 1e-9:
    L's H is summed block by block)."""
    import pairdesign.store as store_module
    from pairdesign.cli import main
    from pairdesign.store_view import design_view

    inst = synthetic_instance(30, 4, 3, seed=5, budget=6).instance
    inst = replace(inst, prompt_texts=tuple(f"prompt {i}" for i in range(30)),
                   completion_texts=tuple(f"answer {r}" for r in range(120)),
                   labeled=np.array([[0, 1], [50, 51]]), labeled_counts=np.array([2, 1]))
    path, npz = tmp_path / "x.zarr", tmp_path / "x.npz"
    save_store(inst, path, block_rows=16)
    pairdesign.save_instance(inst, npz)
    design = tmp_path / "d.json"
    pairdesign.solve(inst, method="greedy", criterion=criterion).save(design)
    reference = tmp_path / "ref.jsonl"
    assert main(["export", str(design), "--instance", str(npz), "--to", "jsonl", "--out", str(reference)]) == 0
    monkeypatch.setattr(store_module.load_store, "__defaults__", (0,))  # every store is too large now
    view = design_view(open_store(path), design)
    assert view.n_prompts < inst.n_prompts  # only the design's and the labeled pairs' prompts
    ours = tmp_path / "ours.jsonl"
    assert main(["export", str(design), "--instance", str(path), "--to", "jsonl", "--out", str(ours)]) == 0
    mine, theirs = ([json.loads(line) for line in f.read_text().splitlines()] for f in (ours, reference))
    assert [dict(r, gain=None) for r in mine] == [dict(r, gain=None) for r in theirs]
    assert np.allclose([r["gain"] for r in mine], [r["gain"] for r in theirs], rtol=1e-9, atol=0)
    assert main(["labels", str(ours), "--instance", str(path), "--instance-out", str(tmp_path / "i.npz"),
                 "--out", str(tmp_path / "prefs.jsonl")]) == 2
