"""The labeling pipeline: import, export tasks, labels back, next round; bad input; progress."""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pairdesign
from helpers import random_instance
from pairdesign.cli import main
from pairdesign.information import prior_information
from pairdesign.instance import instances_equal
from pairdesign.pipeline import import_generations, read_labels, reduce_embeddings
from pairdesign.pipeline.annotators import read_tasks, simulate_labels
from pairdesign.pipeline.basis import Basis
from pairdesign.pipeline.tasks import instance_fingerprint
from pairdesign.progress import Progress


# ----------------------------------------------------------------------------- a generated world
class World:
    """Generations from a synthetic instance: true features lifted to D dimensions by an
    orthonormal map, texts made up, scores from the generator; annotators label by the truth."""

    def __init__(self, folder: Path, n: int = 60, K: int = 4, d: int = 4, D: int = 24, seed: int = 0):
        syn = pairdesign.synthetic_instance(n, K, d, seed=seed)
        self.truth = syn.instance
        self.theta = syn.theta
        rng = np.random.default_rng(seed + 100)
        self.U = np.linalg.qr(rng.normal(size=(D, d)))[0]
        inst = self.truth
        reward = inst.features @ syn.theta
        self.reward = {(str(inst.prompt_ids[inst.prompt_of_row[r]]), str(inst.completion_ids[r])): float(reward[r])
                       for r in range(inst.n_completions)}
        self.path = folder / "generations.jsonl"
        with open(self.path, "w", encoding="utf-8") as f:
            for i in range(inst.n_prompts):
                rows = range(int(inst.prompt_offsets[i]), int(inst.prompt_offsets[i + 1]))
                f.write(json.dumps({
                    "prompt_id": str(inst.prompt_ids[i]), "prompt": f"Prompt {i}: tell me something ü.",
                    "completions": [{"id": str(inst.completion_ids[r]), "text": f"completion {r} of {i}\nline 2",
                                     "embedding": (self.U @ inst.features[r]).tolist(),
                                     "score": float(inst.scores[r])} for r in rows]}) + "\n")

    def annotate(self, tasks: Path, out: Path, **kwargs) -> int:
        return simulate_labels(tasks, out, lambda p, c: self.reward[(p, c)], **kwargs)


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def pair_set(rows):
    return sorted((p, *sorted((a, b))) for p, a, b in rows)


# ----------------------------------------------------------------------------- instance fields
def test_instance_with_texts_and_rounds_round_trips_and_is_validated(tmp_path):
    inst = pairdesign.Instance.from_arrays(
        np.arange(10.0).reshape(5, 2) ** 1.5, [0, 0, 0, 1, 1], budget=2,
        prompt_texts=("hé", ""), completion_texts=("a", "b\n", "c", "ü" * 3, ""),
        projection={"method": "pca", "input_dim": 8, "dim": 2, "explained_variance": 0.5},
        labeled=[[0, 1], [3, 4]], labeled_counts=[3, 1], labeled_wins=[1.5, np.nan],
        rounds=({"round": 1, "design": "abc", "labels": 4},))
    for suffix in (".json", ".npz"):
        save = tmp_path / f"x{suffix}"
        pairdesign.save_instance(inst, save)
        again = pairdesign.load_instance(save)
        assert instances_equal(inst, again)
        assert again.completion_texts[3] == "üüü" and again.rounds[0]["design"] == "abc"
        assert np.isnan(again.labeled_wins[1]) and again.labeled_wins[0] == 1.5
    assert not instances_equal(inst, replace(inst, completion_texts=("a", "b", "c", "üüü", "")))
    assert not instances_equal(inst, replace(inst, projection={"method": "random"}))
    assert not instances_equal(inst, replace(inst, rounds=()))
    assert not instances_equal(inst, replace(inst, labeled_wins=[1.0, np.nan]))
    with pytest.raises(pairdesign.InstanceError, match="completion_texts: must have one text per completion"):
        replace(inst, completion_texts=("a",))
    with pytest.raises(pairdesign.InstanceError, match=r"labeled\[0\]: the labels won"):
        replace(inst, labeled_wins=[3.5, 0.0])
    with pytest.raises(pairdesign.InstanceError, match="projection"):
        replace(inst, projection={"input_dim": 3})
    with pytest.raises(pairdesign.InstanceError, match=r"prompts\[1\]\.completions\[0\]\.text: must be a string"):
        replace(inst, completion_texts=("a", "b", "c", 4, ""))


def test_json_texts_are_all_or_nothing(tmp_path):
    doc = json.loads((Path(__file__).parent.parent / "instances" / "small.json").read_text())
    doc["prompts"][0]["completions"][0]["text"] = "only one"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(pairdesign.InstanceError, match=r"prompts\[0\]\.completions\[1\]\.text: missing"):
        pairdesign.load_instance(bad)


# ----------------------------------------------------------------------------- reduction, import
def test_pca_keeps_the_geometry_of_a_low_rank_embedding():
    rng = np.random.default_rng(1)
    phi = rng.normal(size=(300, 5)) * [3, 2, 1, 0.5, 0.2]
    U = np.linalg.qr(rng.normal(size=(40, 5)))[0]
    X = phi @ U.T + 7.0
    reduced, record = reduce_embeddings(X, 5, "pca")
    assert record["method"] == "pca" and record["input_dim"] == 40 and record["explained_variance"] > 1 - 1e-9
    # same pairwise differences up to a rotation: equal Gram matrices of the differences
    d_true, d_red = phi[1:] - phi[:-1], reduced[1:] - reduced[:-1]
    assert np.allclose(d_true @ d_true.T, d_red @ d_red.T, atol=1e-8)
    # variance ordered: first component carries the most
    assert np.all(np.diff(reduced.var(axis=0)) <= 1e-9)
    two, rec2 = reduce_embeddings(X, 2, "pca")
    assert 0.5 < rec2["explained_variance"] < 1
    with pytest.raises(pairdesign.OptionError, match="at most D"):
        reduce_embeddings(X, 41, "pca")


def test_random_projection_is_seeded_and_recorded():
    X = np.random.default_rng(2).normal(size=(50, 64))
    a, rec = reduce_embeddings(X, 8, "random", seed=3)
    b, _ = reduce_embeddings(X, 8, "random", seed=3)
    c, _ = reduce_embeddings(X, 8, "random", seed=4)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    basis = Basis.decode(rec.pop("basis"), "rec")
    assert rec == {"method": "random", "input_dim": 64, "dim": 8, "seed": 3, "distribution": "normal(0, 1/d)"}
    R = np.random.default_rng(3).standard_normal((64, 8)) / np.sqrt(8)
    assert np.allclose(a, X @ R) and np.array_equal(basis.matrix, R) and not basis.mean.any()


def test_import_keeps_ids_texts_scores_and_the_projection(world, tmp_path, capsys):
    out = tmp_path / "inst.npz"
    code, stdout, err = run(capsys, "import", world.path, "--out", out, "--dim", 4, "--budget", 12)
    assert code == 0 and "24 -> d = 4 by pca" in stdout
    assert "\r" not in err  # no bar when stderr is not a terminal
    inst = pairdesign.load_instance(out)
    truth = world.truth
    assert inst.prompt_ids.tolist() == truth.prompt_ids.tolist()
    assert inst.completion_ids.tolist() == truth.completion_ids.tolist()
    assert np.array_equal(inst.prompt_offsets, truth.prompt_offsets)
    assert np.allclose(inst.scores, truth.scores)
    assert inst.prompt_texts[2] == "Prompt 2: tell me something ü." and inst.completion_texts[5] == "completion 5 of 1\nline 2"
    assert inst.projection["method"] == "pca" and inst.projection["input_dim"] == 24
    assert inst.budget == 12 and inst.ridge == 1.0 and inst.dim == 4
    # the design does not depend on the basis: same log det as on the true features (embeddings
    # are held as float32 while reading, hence 1e-6)
    a = pairdesign.solve(replace(inst, ridge=1.0), method="greedy")
    b = pairdesign.solve(replace(truth, ridge=1.0, budget=12), method="greedy")
    assert a.objective == pytest.approx(b.objective, rel=1e-6)


def test_import_field_names_are_options(tmp_path, capsys):
    gen = tmp_path / "g.jsonl"
    gen.write_text(json.dumps({"qid": 7, "question": "Q", "outs": [
        {"name": "x", "body": "X", "vec": [1, 0, 0], "rm": 0.3},
        {"name": "y", "body": "Y", "vec": [0, 1, 0]}]}) + "\n\n")
    out = tmp_path / "i.json"
    code, _, err = run(capsys, "import", gen, "--out", out, "--dim", 3, "--prompt-id-field", "qid",
                       "--prompt-field", "question", "--completions-field", "outs", "--id-field", "name",
                       "--text-field", "body", "--embedding-field", "vec", "--score-field", "rm")
    assert code == 0, err
    inst = pairdesign.load_instance(out)
    assert inst.prompt_ids.tolist() == ["7"] and inst.completion_ids.tolist() == ["x", "y"]
    assert inst.completion_texts == ("X", "Y") and inst.projection["method"] == "none"
    assert inst.scores[0] == 0.3 and np.isnan(inst.scores[1])


GOOD = {"prompt_id": "q", "prompt": "P", "completions": [{"id": "a", "text": "A", "embedding": [1.0, 2.0]},
                                                         {"id": "b", "text": "B", "embedding": [0.0, 1.0]}]}


def _bad(mutate):
    row = json.loads(json.dumps(GOOD))
    mutate(row)
    return json.dumps(row)


BAD_GENERATIONS = {
    "malformed": ("{\"prompt_id\": \"q\", \"prompt\": ", "not valid JSON"),
    "not an object": ("[1, 2]", "must be a JSON object"),
    "missing prompt text": (_bad(lambda r: r.pop("prompt")), "prompt: missing (the prompt's text)"),
    "missing completion text": (_bad(lambda r: r["completions"][1].pop("text")),
                                r"completions[1].text: missing (the completion's text)"),
    "text not a string": (_bad(lambda r: r["completions"][0].update(text=3)), "completions[0].text: must be a string"),
    "missing embedding": (_bad(lambda r: r["completions"][1].pop("embedding")),
                          "completions[1].embedding: missing; every completion needs an embedding"),
    "ragged embedding": (_bad(lambda r: r["completions"][1].update(embedding=[1.0])),
                         "completions[1].embedding: has 1 values, expected 2"),
    "embedding of strings": (_bad(lambda r: r["completions"][0].update(embedding=["1", "2"])),
                             "completions[0].embedding: must be a non-empty list of numbers"),
    "empty embeddings": (_bad(lambda r: [c.update(embedding=[]) for c in r["completions"]]),
                         "completions[0].embedding: must be a non-empty list of numbers"),
    "other dimension": (_bad(lambda r: [c.update(embedding=[1.0, 2.0, 3.0]) for c in r["completions"]]),
                        "has 3 values, expected 2 (as line 1)"),
    "duplicate prompt": (_bad(lambda r: r.update(prompt_id="first")), "duplicate prompt id 'first' (also line 1)"),
    "duplicate completion": (_bad(lambda r: r["completions"][1].update(id="a")), "duplicate completion id 'a'"),
    "no completions": (_bad(lambda r: r.update(completions=[])), "completions: must be a non-empty list"),
    "NaN": (json.dumps(GOOD).replace("2.0", "NaN"), "NaN is not valid JSON"),
}


@pytest.mark.parametrize("kind", sorted(BAD_GENERATIONS))
def test_bad_generations_name_the_line_and_leave_nothing(kind, tmp_path, capsys):
    line, message = BAD_GENERATIONS[kind]
    gen = tmp_path / "gen.jsonl"
    gen.write_text(json.dumps({**GOOD, "prompt_id": "first"}) + "\n\n" + line + "\n")
    out = tmp_path / "inst.npz"
    code, _, err = run(capsys, "import", gen, "--out", out, "--dim", 2)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"pairdesign: error: {gen}: line 3") and message in err, err
    assert sorted(os.listdir(tmp_path)) == ["gen.jsonl"]


def test_missing_embeddings_and_no_model_say_how_to_provide_one(tmp_path, capsys, monkeypatch):
    gen = tmp_path / "gen.jsonl"
    row = json.loads(json.dumps(GOOD))
    for c in row["completions"]:
        c.pop("embedding")
    gen.write_text(json.dumps(row) + "\n")
    code, _, err = run(capsys, "import", gen, "--out", tmp_path / "i.npz")
    assert code == 2 and "line 1: completions[0].embedding: missing" in err and "--embed-model" in err
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # not installed
    code, _, err = run(capsys, "import", gen, "--out", tmp_path / "i.npz", "--embed-model", tmp_path / "nomodel")
    assert code == 2 and "needs sentence-transformers, which is not installed" in err
    assert "pip install 'pairdesign[embed]'" in err and "--embed-model models/minilm" in err
    assert sorted(os.listdir(tmp_path)) == ["gen.jsonl"]


def test_a_local_model_is_loaded_without_download(tmp_path, monkeypatch):
    """With a (stand-in) sentence-transformers: local_files_only is passed, texts embedded."""
    calls = {}

    class FakeModel:
        def __init__(self, name, local_files_only=False):
            calls["args"] = (name, local_files_only)
            if not Path(name).is_dir():
                raise OSError("not found locally")

        def encode(self, texts, **kwargs):
            calls.setdefault("texts", []).extend(texts)
            return np.asarray([[len(t), t.count("a"), 1.0] for t in texts])

    module = type(sys)("sentence_transformers")
    module.SentenceTransformer = FakeModel
    monkeypatch.setitem(sys.modules, "sentence_transformers", module)
    gen = tmp_path / "gen.jsonl"
    gen.write_text(json.dumps({"prompt_id": "q", "prompt": "P", "completions": [
        {"id": "a", "text": "aa"}, {"id": "b", "text": "bbb"}]}) + "\n")
    with pytest.raises(pairdesign.OptionError, match="without downloading"):
        import_generations(gen, dim=3, embed_model=str(tmp_path / "absent"))
    (tmp_path / "model").mkdir()
    inst = import_generations(gen, dim=3, embed_model=str(tmp_path / "model"))
    assert calls["args"] == (str(tmp_path / "model"), True)
    assert calls["texts"] == ["P\n\naa", "P\n\nbbb"]
    assert inst.features.tolist() == [[5, 2, 1], [6, 0, 1]] and inst.projection["embedded_by"].endswith("model")


# ----------------------------------------------------------------------------- export
@pytest.fixture
def solved(world, tmp_path, capsys):
    inst, design = tmp_path / "inst.npz", tmp_path / "design.json"
    assert run(capsys, "import", world.path, "--out", inst, "--dim", 4, "--budget", 40)[0] == 0
    assert run(capsys, "solve", inst, "--method", "greedy", "--out", design)[0] == 0
    return inst, design


@pytest.mark.parametrize("fmt,suffix", [("jsonl", ".jsonl"), ("labelstudio", ".json"), ("argilla", ".jsonl")])
def test_export_tasks_keep_ids_texts_and_a_greedy_order(solved, tmp_path, capsys, fmt, suffix):
    inst_path, design_path = solved
    out = tmp_path / f"tasks{suffix}"
    code, stdout, _ = run(capsys, "export", design_path, "--instance", inst_path, "--to", fmt, "--out", out)
    assert code == 0 and "40 " + fmt + " tasks" in stdout
    inst = pairdesign.load_instance(inst_path)
    doc = json.loads(design_path.read_text())
    tasks = read_tasks(out)
    records = [t["data"] if fmt == "labelstudio" else t for t in tasks]
    assert len(records) == 40
    assert pair_set((r["prompt_id"], r["completion_a"], r["completion_b"]) for r in records) == pair_set(doc["pairs"])
    assert {r["instance"] for r in records} == {instance_fingerprint(inst)} and len({r["design"] for r in records}) == 1
    assert [r["rank"] for r in records] == list(range(1, 41))
    gains = [r["gain"] for r in records]
    assert all(g1 >= g2 - 1e-12 for g1, g2 in zip(gains, gains[1:]))  # D gains only fall
    assert len({r["task_id"] if fmt != "argilla" else r["id"] for r in records}) == 40
    first, second = {"jsonl": ("response_a", "response_b"), "labelstudio": ("answer1", "answer2"),
                     "argilla": ("response1", "response2")}[fmt]
    rows = {(str(inst.prompt_ids[inst.prompt_of_row[r]]), str(inst.completion_ids[r])): r
            for r in range(inst.n_completions)}
    for r in records:
        a, b = rows[(r["prompt_id"], r["completion_a"])], rows[(r["prompt_id"], r["completion_b"])]
        assert r[first] == inst.completion_texts[a] and r[second] == inst.completion_texts[b]
        assert r["prompt"] == inst.prompt_texts[int(inst.prompt_of_row[a])]
    # shown first at random (seeded), not always the first completion of the prompt
    assert 0 < sum(int(r["completion_a"][1:]) < int(r["completion_b"][1:]) for r in records) < 40


def test_the_first_task_is_the_single_most_informative_label(solved, tmp_path, capsys):
    inst_path, design_path = solved
    out = tmp_path / "t.jsonl"
    run(capsys, "export", design_path, "--instance", inst_path, "--to", "jsonl", "--out", out)
    inst = pairdesign.load_instance(inst_path)
    design = pairdesign.load_design(design_path, inst)
    gains = pairdesign.information.marginal_gains(
        inst, prior_information(inst), pairdesign.Criterion.make("D", inst), design.rows)
    assert read_tasks(out)[0]["gain"] == pytest.approx(gains.max(), rel=1e-9)


def test_export_needs_one_of_to_and_format(solved, tmp_path, capsys):
    inst_path, design_path = solved
    code, _, err = run(capsys, "export", design_path, "--out", tmp_path / "x.jsonl")
    assert code == 2 and "exactly one of --to" in err
    code, _, err = run(capsys, "export", inst_path, "--to", "jsonl", "--format", "lp", "--out", tmp_path / "x.lp")
    assert code == 2 and "exactly one of --to" in err
    code, _, err = run(capsys, "export", design_path, "--to", "jsonl", "--out", tmp_path / "x.jsonl")
    assert code == 2 and "needs --instance" in err
    code, _, err = run(capsys, "export", design_path, "--instance", inst_path, "--to", "labelstudio",
                       "--out", tmp_path / "x.jsonl")
    assert code == 2 and "use .json" in err
    assert sorted(os.listdir(tmp_path)) == ["design.json", "generations.jsonl", "inst.npz"]


# ----------------------------------------------------------------------------- labels back
@pytest.mark.parametrize("fmt,tasks_name,labels_name", [
    ("jsonl", "tasks.jsonl", "labels.jsonl"), ("labelstudio", "tasks.json", "labels.json"),
    ("argilla", "tasks.jsonl", "labels.jsonl")])
def test_labels_round_trip(world, solved, tmp_path, capsys, fmt, tasks_name, labels_name):
    inst_path, design_path = solved
    before = pairdesign.load_instance(inst_path)
    tasks, labels, dataset = tmp_path / tasks_name, tmp_path / labels_name, tmp_path / "dpo.jsonl"
    run(capsys, "export", design_path, "--instance", inst_path, "--to", fmt, "--out", tasks)
    votes = world.annotate(tasks, labels, seed=5, ties=0.2, annotators=2)
    code, stdout, err = run(capsys, "labels", labels, "--instance", inst_path, "--out", dataset,
                            "--design", design_path, "--with-ids")
    assert code == 0, err
    labelset_ties = int(stdout.split("; ")[1].split(" ties")[0])
    assert votes == 80 and 0 < labelset_ties < 80 and "read 80 labels" in stdout and " from 40 tasks" in stdout
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    assert len(rows) == votes - labelset_ties
    # every DPO row is a label: chosen / rejected are texts of the winner / loser of its task
    inst = pairdesign.load_instance(inst_path)
    text = {(str(inst.prompt_ids[inst.prompt_of_row[r]]), str(inst.completion_ids[r])): inst.completion_texts[r]
            for r in range(inst.n_completions)}
    expected = []
    for rec in read_tasks(labels):
        ids = rec.get("data", rec)
        if fmt == "labelstudio":
            vote_list = [a["result"][0]["value"].get("selected", "tie") for a in rec["annotations"]]
        else:
            vote_list = rec.get("winner") or rec.get("preference.responses")
        for v in vote_list:
            if v in ("a", "left", "response1"):
                expected.append((ids["prompt_id"], ids["completion_a"], ids["completion_b"]))
            elif v in ("b", "right", "response2"):
                expected.append((ids["prompt_id"], ids["completion_b"], ids["completion_a"]))
    assert [(r["prompt_id"], r["chosen_id"], r["rejected_id"]) for r in rows] == expected
    for r in rows:
        assert set(r) == {"prompt", "chosen", "rejected", "prompt_id", "chosen_id", "rejected_id"}
        assert r["chosen"] == text[(r["prompt_id"], r["chosen_id"])]
        assert r["rejected"] == text[(r["prompt_id"], r["rejected_id"])]
    # the labeled pairs are stored: out of the candidates, into M0 (with their counts and outcomes)
    design_pairs = pair_set(json.loads(design_path.read_text())["pairs"])
    assert pair_set(inst.pair_ids(inst.labeled[:, 0], inst.labeled[:, 1])) == design_pairs
    assert inst.labeled_counts.tolist() == [2] * 40
    assert np.all((inst.labeled_wins >= 0) & (inst.labeled_wins <= 2))
    assert len(inst.candidates) == len(before.candidates) - 40
    assert inst.rounds[0]["labels"] == 80 and inst.rounds[0]["ties"] == labelset_ties
    grown = prior_information(inst) - prior_information(before)
    j, k = inst.labeled[:, 0], inst.labeled[:, 1]
    Z = inst.features[j] - inst.features[k]
    assert np.allclose(grown, 2 * 0.25 * Z.T @ Z)
    assert np.linalg.eigvalsh(grown).min() > 0
    # the next design never asks for them again
    again = pairdesign.solve(inst, method="greedy")
    assert not set(map(tuple, pair_set(again.pairs))) & set(map(tuple, design_pairs))


def test_conversational_form(world, solved, tmp_path, capsys):
    inst_path, design_path = solved
    tasks, labels, dataset = tmp_path / "t.jsonl", tmp_path / "l.jsonl", tmp_path / "dpo.jsonl"
    run(capsys, "export", design_path, "--instance", inst_path, "--to", "jsonl", "--out", tasks)
    world.annotate(tasks, labels)
    assert run(capsys, "labels", labels, "--instance", inst_path, "--out", dataset, "--conversational",
               "--instance-out", tmp_path / "after.npz")[0] == 0
    row = json.loads(dataset.read_text().splitlines()[0])
    assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    assert set(row) == {"prompt", "chosen", "rejected"} and isinstance(row["chosen"][0]["content"], str)
    assert pairdesign.load_instance(inst_path).labeled.shape[0] == 0  # untouched: written elsewhere


def _labels_file(world, solved, tmp_path, capsys):
    inst_path, design_path = solved
    tasks, labels = tmp_path / "t.jsonl", tmp_path / "l.jsonl"
    run(capsys, "export", design_path, "--instance", inst_path, "--to", "jsonl", "--out", tasks)
    world.annotate(tasks, labels)
    return [json.loads(line) for line in labels.read_text().splitlines()]


def _edit(records, line, **changes):
    records = [dict(r) for r in records]
    records[line - 1].update(changes)
    return records


BAD_LABELS = {
    "unknown completion": (lambda r: _edit(r, 4, completion_b="c99"), "line 4: completion_b: prompt"),
    "unknown prompt": (lambda r: _edit(r, 2, prompt_id="nope"), "line 2: prompt_id: unknown prompt 'nope'"),
    "another design": (lambda r: _edit(r, 3, design="0123456789abcdef"),
                       "line 1: records of 2 designs not read yet"),
    "another instance": (lambda r: _edit(r, 1, instance="ffffffffffffffff"),
                         "line 1: instance: these labels are for another instance"),
    "missing id": (lambda r: [{k: v for k, v in x.items() if k != "completion_a"} if i == 4 else x
                              for i, x in enumerate(r)], "line 5: completion_a: missing 'completion_a'"),
    "unknown vote": (lambda r: _edit(r, 6, winner="maybe"), "line 6: winner: unknown vote 'maybe'"),
    "no vote field": (lambda r: [{k: v for k, v in x.items() if k != "winner"} if i == 6 else x
                                 for i, x in enumerate(r)], "line 7: no vote"),
    "same completion": (lambda r: _edit(r, 2, completion_b=r[1]["completion_a"]), "line 2: completion_a and"),
}


@pytest.mark.parametrize("kind", sorted(BAD_LABELS) + ["malformed"])
def test_bad_labels_name_the_line_and_write_nothing(world, solved, tmp_path, capsys, kind):
    inst_path, _ = solved
    records = _labels_file(world, solved, tmp_path, capsys)
    lines = [json.dumps(r) for r in records]
    if kind == "malformed":
        lines[7] = lines[7][:-5]
        message = "line 8: not valid JSON"
    else:
        mutate, message = BAD_LABELS[kind]
        lines = [json.dumps(r) for r in mutate(records)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    before = inst_path.read_bytes()
    listing = sorted(os.listdir(tmp_path))
    code, _, err = run(capsys, "labels", bad, "--instance", inst_path, "--out", tmp_path / "dpo.jsonl")
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"pairdesign: error: {bad}: ") and message in err, err
    assert inst_path.read_bytes() == before and sorted(os.listdir(tmp_path)) == listing


def test_labels_of_another_design_file_and_labels_read_twice_are_refused(world, solved, tmp_path, capsys):
    inst_path, design_path = solved
    records = _labels_file(world, solved, tmp_path, capsys)
    labels = tmp_path / "l.jsonl"
    other = tmp_path / "other.json"
    run(capsys, "solve", inst_path, "--method", "random", "--seed", "1", "--out", other)
    code, _, err = run(capsys, "labels", labels, "--instance", inst_path, "--out", tmp_path / "d.jsonl",
                       "--design", other)
    assert code == 2 and f"{labels}: no record of design " in err and f"the file holds {records[0]['design']}" in err
    # a pair of the instance that the design did not ask for (ids and design id otherwise right)
    inst = pairdesign.load_instance(inst_path)
    chosen = {tuple(sorted(p[1:])) + (p[0],) for p in json.loads(design_path.read_text())["pairs"]}
    cand = inst.candidates
    spare = next(p for p in inst.pair_ids(cand.j, cand.k) if tuple(sorted(p[1:])) + (p[0],) not in chosen)
    forged = tmp_path / "forged.jsonl"
    rows = [dict(r) for r in records]
    rows[2].update(prompt_id=spare[0], completion_a=spare[1], completion_b=spare[2])
    forged.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run(capsys, "labels", forged, "--instance", inst_path, "--out", tmp_path / "d.jsonl",
                       "--design", design_path)
    assert code == 2 and f"{forged}: line 3: the pair ({spare[0]}, {spare[1]}, {spare[2]}) is not in the design" in err
    assert run(capsys, "labels", labels, "--instance", inst_path, "--out", tmp_path / "d.jsonl")[0] == 0
    first = (tmp_path / "d.jsonl").read_bytes()
    code, _, err = run(capsys, "labels", labels, "--instance", inst_path, "--out", tmp_path / "d.jsonl")
    assert code == 2 and "were already read into the instance (round 1, from l.jsonl)" in err
    assert (tmp_path / "d.jsonl").read_bytes() == first


# ----------------------------------------------------------------------------- rounds
def test_rounds_end_to_end_with_simulated_annotators(world, tmp_path, capsys):
    """import -> solve -> export -> label -> labels -> next-round, three rounds: the fit improves,
    labeled pairs leave the candidates and enter M0, nothing is counted twice."""
    inst, design = tmp_path / "r0.npz", tmp_path / "d1.json"
    assert run(capsys, "import", world.path, "--out", inst, "--dim", 4, "--budget", 60)[0] == 0
    assert run(capsys, "solve", inst, "--method", "greedy", "--out", design)[0] == 0
    truth = world.truth
    true_gap = []
    cosines = []
    seen: set = set()
    for r in (1, 2, 3):
        tasks, labels = tmp_path / f"t{r}.jsonl", tmp_path / f"l{r}.jsonl"
        assert run(capsys, "export", design, "--instance", inst, "--to", "jsonl", "--out", tasks)[0] == 0
        world.annotate(tasks, labels, seed=r, ties=0.05)
        pairs = {tuple(sorted((t["completion_a"], t["completion_b"]))) + (t["prompt_id"],) for t in read_tasks(tasks)}
        assert not pairs & seen  # never the same pair twice across rounds
        seen |= pairs
        logdet_before = np.linalg.slogdet(prior_information(pairdesign.load_instance(inst)))[1]
        if r == 2:  # labels read in first, then next-round with the same file: counted once
            assert run(capsys, "labels", labels, "--instance", inst, "--out", tmp_path / "dpo2.jsonl")[0] == 0
        new_inst, new_design, report = tmp_path / f"r{r}.npz", tmp_path / f"d{r + 1}.json", tmp_path / f"fit{r}.json"
        code, stdout, err = run(capsys, "next-round", inst, "--labels", labels, "--budget", 60, "--out", new_inst,
                                "--design-out", new_design, "--report", report, "--seed", 0, "--method", "greedy")
        assert code == 0, err
        assert "theta" in stdout and "standard errors" in stdout
        fit = json.loads(report.read_text())
        updated = pairdesign.load_instance(new_inst)
        assert fit["labels"] == 60 * r and updated.labeled_counts.sum() == 60 * r
        assert len(updated.rounds) == r and fit["converged"]
        assert len(fit["standard_errors"]) == 4 and all(s > 0 for s in fit["standard_errors"])
        # scores are the fitted reward phi theta_hat
        theta = np.asarray(fit["theta"])
        assert np.allclose(updated.scores, updated.features @ theta)
        # M0 holds every label so far; the next design excludes them
        d_next = pairdesign.load_design(new_design, updated)
        assert d_next.counts.sum() == 60
        assert np.linalg.slogdet(prior_information(updated))[1] > logdet_before + 0.1
        Z = updated.features[updated.labeled[:, 0]] - updated.features[updated.labeled[:, 1]]
        dense = updated.ridge * np.eye(4) + 0.25 * (Z.T * updated.labeled_counts) @ Z
        assert np.allclose(prior_information(updated), dense)
        # fitted reward vs true reward: within-prompt differences (basis-free)
        est = updated.features @ theta
        tru = truth.features @ world.theta
        j, k = truth.candidates.j, truth.candidates.k
        cosines.append(np.corrcoef(est[j] - est[k], tru[j] - tru[k])[0, 1])
        se = np.asarray(fit["standard_errors"])
        true_gap.append(float(np.median(se)))
        inst, design = new_inst, new_design
    assert cosines[-1] > 0.9 and cosines[-1] >= cosines[0] - 0.02, cosines
    assert true_gap[0] > true_gap[1] > true_gap[2]  # uncertainty shrinks with every round


def test_next_round_without_labels_is_an_error(solved, tmp_path, capsys):
    inst_path, _ = solved
    code, _, err = run(capsys, "next-round", inst_path, "--out", tmp_path / "n.npz", "--design-out", tmp_path / "n.json")
    assert code == 2 and "no labeled pair with a known outcome" in err
    assert not (tmp_path / "n.npz").exists() and not (tmp_path / "n.json").exists()


# ----------------------------------------------------------------------------- progress
class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal_and_not_when_quiet():
    pipe, tty, quiet = io.StringIO(), FakeTTY(), FakeTTY()
    for stream, enabled in ((pipe, True), (tty, True), (quiet, False)):
        with Progress(10, "work", enabled=enabled, stream=stream, interval=0) as bar:
            for _ in range(10):
                bar.advance()
    assert pipe.getvalue() == "" and quiet.getvalue() == ""
    assert "work [" in tty.getvalue() and "100%" in tty.getvalue() and tty.getvalue().endswith("\r\033[K")


def test_cli_draws_a_bar_on_a_terminal_unless_quiet(world, tmp_path, capsys, monkeypatch):
    fake = FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake)
    assert main(["import", str(world.path), "--out", str(tmp_path / "a.npz"), "--dim", "4"]) == 0
    assert "import [" in fake.getvalue()
    fake2 = FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake2)
    assert main(["import", str(world.path), "--out", str(tmp_path / "b.npz"), "--dim", "4", "--quiet"]) == 0
    assert "import [" not in fake2.getvalue()


def test_a_failed_second_output_removes_the_first(world, solved, tmp_path, capsys, monkeypatch):
    """labels writes the dataset, then the instance: if the second write fails, no dataset remains."""
    inst_path, design_path = solved
    tasks, labels = tmp_path / "t.jsonl", tmp_path / "l.jsonl"
    run(capsys, "export", design_path, "--instance", inst_path, "--to", "jsonl", "--out", tasks)
    world.annotate(tasks, labels)
    listing = sorted(os.listdir(tmp_path))
    import pairdesign.instance as instance_module

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(instance_module.np, "savez", full_disk)
    code, _, err = run(capsys, "labels", labels, "--instance", inst_path, "--out", tmp_path / "dpo.jsonl",
                       "--instance-out", tmp_path / "after.npz")
    assert code == 1 and "No space left" in err
    assert sorted(os.listdir(tmp_path)) == listing
    # outputs that existed before the command are restored, not left half-updated
    old_dataset, old_instance = tmp_path / "dpo.jsonl", tmp_path / "after.npz"
    old_dataset.write_text("OLD\n")
    old_instance.write_bytes(b"OLD")
    code, _, err = run(capsys, "labels", labels, "--instance", inst_path, "--out", old_dataset,
                       "--instance-out", old_instance)
    assert code == 1 and old_dataset.read_text() == "OLD\n" and old_instance.read_bytes() == b"OLD"
    assert sorted(os.listdir(tmp_path)) == sorted(listing + ["after.npz", "dpo.jsonl"])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), texts=st.lists(st.text(max_size=12), min_size=1, max_size=5))
def test_random_instances_with_pipeline_fields_round_trip(tmp_path_factory, seed, texts):
    inst = random_instance(seed)
    rng = np.random.default_rng(seed)
    fields = dict(prompt_texts=tuple(texts[i % len(texts)] for i in range(inst.n_prompts)),
                  completion_texts=tuple(texts[int(i) % len(texts)] + str(i) for i in range(inst.n_completions)),
                  projection={"method": "random", "input_dim": 9, "dim": inst.dim, "seed": seed},
                  rounds=({"round": 1, "design": "d", "labels": 2, "source": texts[0]},))
    if inst.labeled.shape[0]:
        counts = inst.labeled_counts if inst.labeled_counts is not None else np.ones(inst.labeled.shape[0])
        fields["labeled_wins"] = np.floor(rng.uniform(0, 1, counts.shape) * (2 * counts + 1)) / 2
    inst = replace(inst, **fields)
    folder = tmp_path_factory.mktemp("rt")
    for suffix in (".json", ".npz"):
        pairdesign.save_instance(inst, folder / f"x{suffix}")
        assert instances_equal(inst, pairdesign.load_instance(folder / f"x{suffix}"))


def test_argilla_nested_records_and_discarded_responses(world, solved, tmp_path, capsys):
    """Argilla's nested export: ids under metadata, votes under responses.preference; a
    discarded response is no vote."""
    inst_path, design_path = solved
    tasks = tmp_path / "t.jsonl"
    run(capsys, "export", design_path, "--instance", inst_path, "--to", "argilla", "--out", tasks)
    records = []
    for n, task in enumerate(read_tasks(tasks)):
        meta = {k: task[k] for k in ("design", "instance", "prompt_id", "completion_a", "completion_b")}
        responses = [{"value": "response1", "user_id": "u1", "status": "submitted"},
                     {"value": "response2", "user_id": "u2", "status": "discarded" if n % 2 else "submitted"}]
        records.append({"id": task["id"], "fields": {"prompt": task["prompt"]}, "metadata": meta,
                        "responses": {"preference": responses}})
    labels = tmp_path / "nested.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in records))
    inst = pairdesign.load_instance(inst_path)
    labelset = read_labels(labels, inst)
    assert len(labelset.labels) == 40 + 20 and labelset.ties == 0
    assert sum(lab.outcome for lab in labelset.labels) == 40


def test_next_round_with_scores_weights_puts_the_fit_hessian_in_m0(world, solved, tmp_path, capsys):
    """With weights "scores" and the fit's ridge, M0 of the next instance is the fit's Hessian:
    the design continues from exactly the information the labels gave about theta_hat."""
    from pairdesign.pipeline import next_round

    inst_path, design_path = solved
    tasks, labels = tmp_path / "t.jsonl", tmp_path / "l.jsonl"
    run(capsys, "export", design_path, "--instance", inst_path, "--to", "jsonl", "--out", tasks)
    world.annotate(tasks, labels, seed=3, ties=0.1, annotators=3)
    inst = pairdesign.load_instance(inst_path)
    labelset = read_labels(labels, inst)
    round_ = next_round(inst, [labelset], budget=25, weights="scores", ridge=0.5, method="greedy")
    new = round_.instance
    assert new.weights == "scores" and new.ridge == 0.5 and round_.new_labels == 120
    assert np.allclose(prior_information(new), round_.fit.hessian, rtol=1e-10, atol=1e-10)
    assert round_.result.n_labels == 25
    chosen = set(map(tuple, pair_set(round_.result.pairs)))
    assert not chosen & set(map(tuple, pair_set(new.pair_ids(new.labeled[:, 0], new.labeled[:, 1]))))
    with pytest.raises(pairdesign.OptionError, match="given twice"):
        next_round(inst, [labelset, labelset], budget=5)


def test_fractional_designs_export_by_weight_and_texts_are_required(solved, tmp_path, capsys):
    inst_path, _ = solved
    relaxed, tasks = tmp_path / "relaxed.json", tmp_path / "t.jsonl"
    assert run(capsys, "solve", inst_path, "--method", "relax", "--out", relaxed)[0] == 0
    code, stdout, _ = run(capsys, "export", relaxed, "--instance", inst_path, "--to", "jsonl", "--out", tasks)
    assert code == 0 and "by weight (fractional design)" in stdout
    records = read_tasks(tasks)
    weights = [r["weight"] for r in records]
    assert "gain" not in records[0] and weights == sorted(weights, reverse=True)
    assert sum(weights) == pytest.approx(40, abs=1e-6)
    small = Path(__file__).parent.parent / "instances" / "small.json"
    design = tmp_path / "small_design.json"
    run(capsys, "solve", small, "--method", "greedy", "--out", design)
    code, _, err = run(capsys, "export", design, "--instance", small, "--to", "jsonl", "--out", tmp_path / "x.jsonl")
    assert code == 2 and f"{small}: the instance carries no texts" in err and not (tmp_path / "x.jsonl").exists()


@pytest.mark.slow
def test_the_benchmark_script_runs_on_a_small_world():
    import subprocess

    root = Path(__file__).parent.parent
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "pipeline.py"), "--prompts", "200",
                           "--completions", "5", "--embedding-dim", "96", "--dim", "16", "--budget", "100"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "| import (PCA 96 -> 16) |" in proc.stdout
    assert "| round trip (all steps) |" in proc.stdout and "fit on 100 labels" in proc.stdout


def test_labels_of_a_pair_labeled_before_add_to_its_row():
    from pairdesign.pipeline.labels import Label, LabelSet, apply_labels

    inst = pairdesign.synthetic_instance(3, 4, 3, budget=4, seed=0).instance
    first = LabelSet(source="l1.jsonl", design="d1", labels=(
        Label("l1:1", 0, 1, 1.0), Label("l1:2", 0, 1, 0.5), Label("l1:3", 4, 5, 0.0)), records=3, unlabeled=0)
    second = LabelSet(source="l2.jsonl", design="d2", labels=(
        Label("l2:1", 1, 0, 1.0), Label("l2:2", 2, 3, 1.0)), records=2, unlabeled=0)
    after = apply_labels(apply_labels(inst, first), second)
    rows = {tuple(r): (int(c), float(w)) for r, c, w in
            zip(after.labeled.tolist(), after.labeled_counts, after.labeled_wins)}
    # (0, 1): 3 labels; completion 0 won 1 + 0.5 (tie) + 0 (the second file's vote went to 1)
    assert rows == {(0, 1): (3, 1.5), (4, 5): (1, 0.0), (2, 3): (1, 1.0)}
    assert len(after.rounds) == 2 and len(after.candidates) == len(inst.candidates) - 3


def test_votes_from_a_ranking_and_from_results_with_other_controls():
    from pairdesign.pipeline.label_formats import record_votes

    def fail(message, where=""):
        raise AssertionError(message)

    def votes(rec, **kw):
        return record_votes(rec, fail, **kw).votes

    def flat(*answers):
        return {"preference.responses": list(answers), "preference.responses.status": ["submitted"] * len(answers)}

    # a ranking (rank dicts, or names best first as the 2.x SDK writes) is one vote
    assert votes(flat([{"value": "response2", "rank": 1}, {"value": "response1", "rank": 2}])) == [0.0]
    assert votes(flat([{"value": "response1", "rank": 1}, {"value": "response2", "rank": 1}])) == [0.5]
    assert votes(flat(["response2", "response1"], ["response1", "response2"])) == [0.0, 1.0]
    studio = {"annotations": [{"result": [{"type": "textarea", "from_name": "comment", "value": {"text": ["ok"]}},
                                          {"type": "pairwise", "from_name": "pw", "value": {"selected": "left"}}]}]}
    got = record_votes(studio, fail)
    assert got.votes == [1.0] and got.ignored == 1
    # a Choices answer: a tie word, or any answer of the control named as the tie control
    choice = {"annotations": [{"result": [{"type": "choices", "from_name": "verdict",
                                           "value": {"choices": ["No preference"]}}]}]}
    assert votes(choice) == [0.5]
    other = {"annotations": [{"result": [{"type": "choices", "from_name": "same_quality",
                                          "value": {"choices": ["Yes"]}}]}]}
    assert votes(other) == [] and votes(other, tie_control="same_quality") == [0.5]
    # records nobody answered, as argilla 2.8's to_list writes them (flattened, nested): no vote
    assert votes({"preference.responses.users": None, "preference.responses.status": None,
                  "preference.responses": None}) == []
    assert votes({"metadata": {}, "suggestions": {}, "responses": {}, "status": "pending"}) == []


# ----------------------------------------------------------------------------- basis across rounds
@pytest.mark.parametrize("reduce", ["pca", "random"])
def test_a_later_round_is_projected_on_the_stored_basis(world, tmp_path, capsys, reduce):
    """Round 2's generations (other prompts, some of round 1's completions again) imported with
    --basis ROUND1 get exactly the features round 1 gave the same embeddings."""
    first = tmp_path / "r1.npz"
    assert run(capsys, "import", world.path, "--out", first, "--dim", 3, "--reduce", reduce, "-q")[0] == 0
    r1 = pairdesign.load_instance(first)
    lines = world.path.read_text(encoding="utf-8").splitlines()
    later = tmp_path / "gen2.jsonl"
    later.write_text("\n".join(lines[40:] + lines[:5]) + "\n", encoding="utf-8")
    second = tmp_path / "r2.npz"
    code, out, err = run(capsys, "import", later, "--out", second, "--basis", first, "-q")
    assert code == 0 and f"on the basis of {first}" in out, err
    r2 = pairdesign.load_instance(second)
    row1 = {(str(r1.prompt_ids[r1.prompt_of_row[r]]), str(r1.completion_ids[r])): r for r in range(r1.n_completions)}
    rows = [row1[(str(r2.prompt_ids[r2.prompt_of_row[r]]), str(r2.completion_ids[r]))] for r in range(r2.n_completions)]
    assert np.allclose(r2.features, r1.features[rows], rtol=0, atol=1e-12)
    # a fresh PCA of round 2 alone would give other coordinates (its own mean and axes)
    fresh = import_generations(later, dim=3, reduce=reduce, seed=1)
    assert not np.allclose(fresh.features, r2.features, atol=1e-3)
    assert r2.projection["method"] == reduce and r2.projection["basis"] == r1.projection["basis"]
    # the basis decides d, the reduction and the seed: giving them is refused; so is a basis of
    # other embeddings, and an instance without a basis
    code, _, err = run(capsys, "import", later, "--out", tmp_path / "x.npz", "--basis", first, "--dim", 3)
    assert code == 2 and "--dim, --reduce and --seed are that basis's" in err
    wide = tmp_path / "wide.jsonl"
    wide.write_text(json.dumps({"prompt_id": "w", "prompt": "P", "completions": [
        {"id": "a", "text": "x", "embedding": [1.0] * 25}, {"id": "b", "text": "y", "embedding": [0.0] * 25}]}) + "\n")
    code, _, err = run(capsys, "import", wide, "--out", tmp_path / "x.npz", "--basis", first)
    assert code == 2 and f"{wide}: the embeddings have D = 25, the basis of {first} D = 24" in err
    small = Path(__file__).parent.parent / "instances" / "small.json"
    code, _, err = run(capsys, "import", later, "--out", tmp_path / "x.npz", "--basis", small)
    assert code == 2 and "no basis to project on" in err and not (tmp_path / "x.npz").exists()


def test_import_says_when_nothing_is_reduced(world, tmp_path, capsys):
    code, out, _ = run(capsys, "import", world.path, "--out", tmp_path / "i.npz", "--dim", 24, "-q")
    assert code == 0 and "embeddings D = 24 <= --dim 24: not reduced (the features are the embeddings)" in out
    code, out, _ = run(capsys, "import", world.path, "--out", tmp_path / "i.npz", "-q")
    assert code == 0 and "<= --dim 64: not reduced" in out
