"""Hostile and broken input files: one line ``pairdesign: error: FILE: WHERE: what``, exit 2, no
traceback, no warning, nothing written. Every reader (instance JSON and NPZ, design files,
generations, labels) and the CLI's shared checks (seeds, paths that are one file), plus the
fingerprint that keeps designs and labels with their instance, and temporary files of
interrupted writes."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from pairdesign.cli import build_parser, main
from pairdesign.fingerprint import instance_fingerprint
from pairdesign.instance import load_instance

DEEP = 100_000  # far beyond Python's recursion limit
NESTED_VOTES = 900  # below it: parses, but no reader should walk it


def generations(n: int = 3, K: int = 3, D: int = 4) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"prompt_id": f"q{i}", "prompt": f"prompt {i}",
             "completions": [{"id": f"c{j}", "text": f"answer {i}.{j}", "score": float(j),
                              "embedding": rng.standard_normal(D).round(4).tolist()}
                             for j in range(K)]}
            for i in range(n)]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A small labeling world: generations, the instance (JSON and NPZ), a design, tasks."""
    folder = tmp_path_factory.mktemp("world")
    gen = write_jsonl(folder / "gen.jsonl", generations())
    paths = {"gen": gen, "npz": folder / "inst.npz", "json": folder / "inst.json",
             "design": folder / "design.json", "tasks": folder / "tasks.jsonl"}
    for out in (paths["npz"], paths["json"]):
        assert main(["-q", "import", str(gen), "--out", str(out), "--dim", "2", "--budget", "4"]) == 0
    assert main(["-q", "solve", str(paths["json"]), "--out", str(paths["design"]), "--method", "greedy"]) == 0
    assert main(["-q", "export", str(paths["design"]), "--instance", str(paths["json"]), "--to", "jsonl",
                 "--out", str(paths["tasks"])]) == 0
    return paths


def refuses(capsys, folder: Path, argv: list, bad: Path | str, *expected: str) -> str:
    """Run the CLI; assert exit 2, one error line naming ``bad`` and holding ``expected``, no
    traceback, no warning, and no new file in ``folder``."""
    before = sorted(os.listdir(folder))
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"pairdesign: error: {bad}"), err
    for piece in expected:
        assert piece in lines[0], (piece, err)
    assert "np.str_" not in err
    assert not [w for w in caught if issubclass(w.category, (RuntimeWarning, UserWarning))], \
        [str(w.message) for w in caught]
    assert sorted(os.listdir(folder)) == before, "a file was written"
    return lines[0]


# ---------------------------------------------------------------------------------- instance JSON
def _instance_doc(world) -> dict:
    return json.loads(world["json"].read_text())


def _json_case(edit: Callable[[dict], object], raw: Callable[[str], str] | None = None):
    def make(world, folder):
        doc = _instance_doc(world)
        edit(doc)
        text = json.dumps(doc)
        return (raw(text) if raw else text).encode("utf-8", "surrogatepass")
    return make


def _set_completion(**changes):
    return lambda doc: doc["prompts"][1]["completions"][2].update(changes)


JSON_INSTANCES = {
    "deeply nested": (lambda w, f: ("[" * DEEP).encode(), ["nested deeper than"]),
    "nested 900 levels in a field": (_json_case(lambda d: d.update(projection=json.loads("[" * 900 + "]" * 900))),
                                     ["projection", "nested deeper than 64 levels"]),
    "NaN literal": (_json_case(lambda d: None, lambda t: t.replace('"budget": 4', '"budget": NaN', 1)),
                    ["line 1 column", "NaN is not valid JSON"]),
    "Infinity in features": (_json_case(_set_completion(features=[1.0, 7e7]), lambda t: t.replace("70000000.0", "-Infinity")),
                             ["line 1 column", "-Infinity is not valid JSON"]),
    "1e400 feature": (_json_case(_set_completion(features=[1.0, 7e7]), lambda t: t.replace("70000000.0", "1e400")),
                      ["line 1 column", "1e400 is beyond the float range"]),
    "lone surrogate in an id": (_json_case(_set_completion(id="a\ud800b")),
                                ["prompts[1].completions[2].id", "lone surrogate"]),
    "lone surrogate in a text": (_json_case(_set_completion(text="x\udc80")),
                                 ["prompts[1].completions[2].text", "lone surrogate"]),
    "NUL in an id": (_json_case(_set_completion(id="c2\u0000")),
                     ["prompts[1].completions[2].id: holds a NUL character at position 2 ('c2\\x00')"]),
    "NUL in a text": (_json_case(_set_completion(text="a\u0000b")),
                      ["prompts[1].completions[2].text: holds a NUL character"]),
    "not UTF-8": (lambda w, f: b'{"format": "pairdesign.instance/1", "name": "\xff"}', ["not UTF-8 (byte"]),
}


@pytest.mark.parametrize("case", sorted(JSON_INSTANCES))
def test_hostile_instance_json(world, tmp_path, capsys, case):
    make, expected = JSON_INSTANCES[case]
    bad = tmp_path / "bad.json"
    bad.write_bytes(make(world, tmp_path))
    refuses(capsys, tmp_path, ["solve", bad, "--out", tmp_path / "d.json"], bad, *expected)


# ---------------------------------------------------------------------------------- instance NPZ
def _arrays(world) -> dict[str, np.ndarray]:
    with np.load(world["npz"]) as npz:
        return {k: npz[k] for k in npz.files}


def _npz(edit: Callable[[dict], object]):
    def make(world, folder):
        data = _arrays(world)
        edit(data)
        buffer = io.BytesIO()
        np.savez(buffer, **data)
        return buffer.getvalue()
    return make


def _flip_byte_in_member(name: str):
    def make(world, folder):
        raw = bytearray(world["npz"].read_bytes())
        with zipfile.ZipFile(world["npz"]) as z:
            info = z.getinfo(name)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        raw[start + info.compress_size - 1] ^= 0xFF  # the last data byte: CRC no longer matches
        return bytes(raw)
    return make


def _compressed_and_corrupted(world, folder):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **_arrays(world))
    raw = bytearray(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as z:
        info = z.getinfo("features.npy")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for k in range(start + 2, start + min(info.compress_size, 40)):
        raw[k] = 0xAA
    return bytes(raw)


def _zip_of_members(world, replaced: dict[str, bytes]) -> bytes:
    """The archive of the good instance's arrays, one ``.npy`` member each, with the members
    named in ``replaced`` holding the given bytes instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for key, value in _arrays(world).items():
            if key in replaced:
                z.writestr(f"{key}.npy", replaced[key])
            else:
                member = io.BytesIO()
                np.save(member, value)
                z.writestr(f"{key}.npy", member.getvalue())
    return buffer.getvalue()


def _member_not_an_array(world, folder):
    return _zip_of_members(world, {"score": b"just some bytes, not an array"})


def _header_claims(shape: tuple[int, ...]):
    """features.npy whose header claims ``shape`` (8 TiB for 2^40 float64) over a few bytes."""
    def make(world, folder):
        member = io.BytesIO()
        np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": shape})
        member.write(b"\0" * 64)
        return _zip_of_members(world, {"features": member.getvalue()})
    return make


def _renamed_npy(world, folder):
    buffer = io.BytesIO()
    np.save(buffer, _arrays(world)["features"])
    return buffer.getvalue()


def _set(**changes):
    return lambda data: data.update(changes)


def _drop(*keys):
    return lambda data: [data.pop(k) for k in keys]


GROUPS = dict(group_names=np.array(["g"]), group_budgets=np.array([2.0]), group_prompts=np.array([0, 1]),
              group_offsets=np.array([0, 2]))

NPZ_INSTANCES = {
    "bad CRC": (_flip_byte_in_member("features.npy"), ["not a readable NPZ archive", "CRC"]),
    "truncated": (lambda w, f: w["npz"].read_bytes()[: w["npz"].stat().st_size // 2],
                  ["not a readable NPZ archive"]),
    "corrupt compressed member": (_compressed_and_corrupted, ["not a readable NPZ archive"]),
    "renamed .npy": (_renamed_npy, ["a single .npy array, not an NPZ archive"]),
    "string features": (_npz(lambda d: d.update(features=d["features"].astype(str))),
                        ["features: must be a (completions, d) matrix of real numbers, got dtype <U"]),
    "complex features": (_npz(lambda d: d.update(features=d["features"] + 1j)),
                         ["features: must be a (completions, d) matrix of real numbers, got complex"]),
    "missing group array": (_npz(lambda d: (d.update(GROUPS), d.pop("group_offsets"))),
                            ["group_offsets: missing: groups need all of"]),
    "short group budgets": (_npz(lambda d: d.update({**GROUPS, "group_budgets": np.array([], float)})),
                            ["group_budgets: must have one budget per group (1)"]),
    "group prompt out of range": (_npz(lambda d: d.update({**GROUPS, "group_prompts": np.array([0, 2**40])})),
                                  ["group_prompts: prompt indices must lie in 0..2"]),
    "0-d prompt ids": (_npz(_set(prompt_ids=np.array("q0"))), ["prompt_ids: must be a list of ids (1-d), got shape ()"]),
    "2-d completion ids": (_npz(lambda d: d.update(completion_ids=d["completion_ids"].reshape(3, 3))),
                           ["completion_ids: must be a list of ids (1-d), got shape (3, 3)"]),
    "float text offsets": (_npz(lambda d: d.update(completion_text_offsets=d["completion_text_offsets"].astype(float))),
                           ["completion_text_offsets: must be a list of offsets (integers), got dtype float64"]),
    "short text offsets": (_npz(lambda d: d.update(prompt_text_offsets=d["prompt_text_offsets"][:-1])),
                           ["prompt_text_offsets: must have one entry per prompt plus one (4)"]),
    "member not an array": (_member_not_an_array, ["score: is not a NumPy array (.npy) member"]),
    "prompt index 2^40": (_npz(lambda d: d["prompt_index"].__setitem__(-1, 2**40)),
                          ["prompt_index: prompt indices must lie in 0..2", "got 1099511627776"]),
    "header claims 8 TiB": (_header_claims((2**40,)), ["features: its header claims 8796093022208 bytes"]),
    "pickled object array": (_npz(_set(score=np.array([None] * 9, dtype=object))),
                             ["score: holds Python objects (pickles are never loaded)"]),
    "NUL inside an id": (_npz(lambda d: d.update(completion_ids=np.array(["c0", "c\x001"] + ["c2"] + [f"c{j}" for j in range(3)] * 2))),
                         ["prompts[0].completions[1].id: holds a NUL character at position 1 ('c\\x001')"]),
    "text bytes not UTF-8": (_npz(lambda d: d["completion_text_bytes"].__setitem__(0, 0xFF)),
                             ["completion_text_bytes: text 0 is not valid UTF-8 (byte 0)"]),
    "NaN in meta": (_npz(lambda d: d.update(meta=np.asarray(str(d["meta"]).replace('"budget": 4', '"budget": NaN')))),
                    ["meta: line 1 column", "NaN is not valid JSON"]),
    "infinite pair cost": (_npz(_set(pairs=np.array([[0, 1]]), pair_costs=np.array([np.inf]))),
                           ["pair_costs[0]: must be finite"]),
}


@pytest.mark.parametrize("case", sorted(NPZ_INSTANCES))
def test_hostile_instance_npz(world, tmp_path, capsys, case):
    make, expected = NPZ_INSTANCES[case]
    bad = tmp_path / "bad.npz"
    bad.write_bytes(make(world, tmp_path))
    refuses(capsys, tmp_path, ["solve", bad, "--out", tmp_path / "d.json"], bad, *expected)


# ---------------------------------------------------------------------------------- design files
def _design(world) -> dict:
    return json.loads(world["design"].read_text())


def _fractional(world, weight: str) -> bytes:
    doc = _design(world)
    doc["fractional"] = True
    doc["pairs"] = [p + [0.5] for p in doc["pairs"][:1]]
    return json.dumps(doc).replace("0.5]", weight + "]").encode()


DESIGNS = {
    "not UTF-8": ("json", lambda w: world_bytes(w).replace(b'"greedy"', b'"gr\xe9edy"'), ["not UTF-8 (byte"]),
    "weight 1e400": ("json", lambda w: _fractional(w, "1e400"), ["line 1 column", "1e400 is beyond the float range"]),
    "weight 10^400 as an integer": ("json", lambda w: _fractional(w, "1" + "0" * 400),
                                    ["is beyond the float range"]),
    "weight 1e400 in CSV": ("csv", lambda w: ("# format: \"pairdesign.design/1\"\n# fractional: true\n"
                                               "prompt_id,completion_a,completion_b,weight\n"
                                               + ",".join(_design(w)["pairs"][0]) + ",1e400\n").encode(),
                            ["pairs[0]: weight must be a non-negative number, got inf"]),
    "deeply nested": ("json", lambda w: ("{\"pairs\": " + "[" * DEEP).encode(), ["nested deeper than"]),
    "lone surrogate": ("json", lambda w: world_bytes(w).replace(b'"greedy"', b'"\\udc00"'),
                       ["method: holds a lone surrogate"]),
    "NUL in a pair's id": ("json", lambda w: json.dumps({**_design(w), "pairs": [["q0", "c0\u0000", "c1"]]}).encode(),
                           ["pairs[0]: prompt 'q0' has no completion 'c0\\x00'"]),
}


def world_bytes(world) -> bytes:
    return world["design"].read_bytes()


@pytest.mark.parametrize("case", sorted(DESIGNS))
def test_hostile_design_files(world, tmp_path, capsys, case):
    suffix, make, expected = DESIGNS[case]
    bad = tmp_path / f"bad.{suffix}"
    bad.write_bytes(make(world))
    refuses(capsys, tmp_path, ["export", bad, "--instance", world["json"], "--to", "jsonl",
                               "--out", tmp_path / "t.jsonl"], bad, *expected)


# ---------------------------------------------------------------------------------- generations
def _gen(edit: Callable[[dict], object], raw: Callable[[str], str] | None = None):
    def make():
        rows = generations()
        edit(rows[1])
        lines = [json.dumps(r) for r in rows]
        if raw:
            lines[1] = raw(lines[1])
        return "\n".join(lines).encode("utf-8", "surrogatepass") + b"\n"
    return make


def _comp(j: int, **changes):
    return lambda row: row["completions"][j].update(changes)


GENERATIONS = {
    "deeply nested": (lambda: json.dumps(generations()[0]).encode() + b"\n" + b"[" * DEEP + b"\n",
                      ["line 2", "nested deeper than"]),
    "lone surrogate in a text": (_gen(_comp(1, text="x\ud83d")), ["line 2: completions[1].text", "lone surrogate"]),
    "lone surrogate in an id": (_gen(_comp(0, id="\udfff")), ["line 2: completions[0].id", "lone surrogate"]),
    "lone surrogate in a prompt": (_gen(lambda r: r.update(prompt="p\udc00")), ["line 2: prompt", "lone surrogate"]),
    "NUL in an id": (_gen(_comp(2, id="c\u00002")), ["line 2: completions[2].id: holds a NUL character at position 1 ('c\\x002')"]),
    "NUL in a prompt id": (_gen(lambda r: r.update(prompt_id="q1\u0000")), ["line 2: prompt_id: holds a NUL character"]),
    "embedding beyond float32": (_gen(_comp(1, embedding=[1e39, 0.0, 0.0, 0.0])),
                                 ["line 2: completions[1].embedding: holds 1e+39, beyond the float32 range"]),
    "embedding of 1e300": (_gen(_comp(2, embedding=[0.0, -1e300, 0.0, 0.0])),
                           ["line 2: completions[2].embedding: holds 1e+300"]),
    "embedding 1e400": (_gen(_comp(0, embedding=[1.0, 2.0, 3.0, 4.0]), lambda t: t.replace("4.0", "1e400", 1)),
                        ["line 2: 1e400 is beyond the float range", "column"]),
    "infinite score": (_gen(_comp(1, score=7.25), lambda t: t.replace("7.25", "1e999")),
                       ["line 2: 1e999 is beyond the float range", "column"]),
    "Infinity score": (_gen(_comp(1, score=7.25), lambda t: t.replace("7.25", "Infinity")),
                       ["line 2: Infinity is not valid JSON", "column"]),
    "not UTF-8": (lambda: json.dumps(generations()[0]).encode() + b"\n\xc3\x28\n", ["line 2: not UTF-8"]),
}


@pytest.mark.parametrize("case", sorted(GENERATIONS))
def test_hostile_generations(tmp_path, capsys, case):
    make, expected = GENERATIONS[case]
    bad = tmp_path / "gen.jsonl"
    bad.write_bytes(make())
    refuses(capsys, tmp_path, ["import", bad, "--out", tmp_path / "i.npz", "--dim", "2"], bad, *expected)


def test_embeddings_that_overflow_when_reduced_name_the_line(tmp_path, capsys, monkeypatch):
    """Reduction overflowing (forced here: float32 embeddings cannot reach float64's limit in
    PCA) is refused with the line of the largest embedding, not a warning and a bad file."""
    import pairdesign.pipeline.importer as importer

    rows = generations()
    rows[2]["completions"][1]["embedding"] = [3e38, 0.0, 0.0, 0.0]
    bad = write_jsonl(tmp_path / "gen.jsonl", rows)
    real = importer.reduce_embeddings
    monkeypatch.setattr(importer, "reduce_embeddings",
                        lambda X, *a, **k: (np.asarray(X, np.float64) ** 9, real(X, *a, **k)[1]))
    refuses(capsys, tmp_path, ["import", bad, "--out", tmp_path / "i.npz", "--dim", "2"], bad,
            "line 3: embeddings: the embeddings overflow when reduced (values up to 3e+38)")


# ---------------------------------------------------------------------------------- labels files
LABELS = {
    "900 nested votes": ("jsonl", lambda rec: json.dumps({**rec, "winner": None}).replace(
        "null", "[" * NESTED_VOTES + '"a"' + "]" * NESTED_VOTES), ["line 1: winner", "nested deeper than 64"]),
    "deeply nested JSON export": ("json", lambda rec: "[" * DEEP, ["nested deeper than"]),
    "NaN": ("jsonl", lambda rec: json.dumps(rec).replace('"winner": "a"', '"winner": NaN'),
            ["line 1: NaN is not valid JSON (use finite numbers, column"]),
    "not UTF-8": ("jsonl", lambda rec: json.dumps(rec).replace('"a"', '"\udc80"'), ["line 1: not UTF-8 (byte"]),
    "lone surrogate": ("jsonl", lambda rec: json.dumps(rec).replace('"a"', '"\\udc80"'),
                       ["line 1: winner: holds a lone surrogate"]),
}


@pytest.mark.parametrize("case", sorted(LABELS))
def test_hostile_labels(world, tmp_path, capsys, case):
    suffix, make, expected = LABELS[case]
    record = json.loads(world["tasks"].read_text().splitlines()[0])
    record["winner"] = "a"
    bad = tmp_path / f"labels.{suffix}"
    bad.write_bytes(make(record).encode("utf-8", "surrogatepass") + b"\n")
    instance = tmp_path / "inst.json"
    instance.write_bytes(world["json"].read_bytes())
    before = instance.read_bytes()
    refuses(capsys, tmp_path, ["labels", bad, "--instance", instance, "--out", tmp_path / "dpo.jsonl"],
            bad, *expected)
    assert instance.read_bytes() == before


# ---------------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("command", ["import", "export", "generate"])
def test_negative_seed_is_refused_before_anything_runs(world, tmp_path, capsys, command):
    argv = {"import": ["import", world["gen"], "--out", tmp_path / "i.npz", "--reduce", "random", "--dim", "2"],
            "export": ["export", world["design"], "--instance", world["json"], "--to", "jsonl",
                       "--out", tmp_path / "t.jsonl"],
            "generate": ["generate", "--prompts", "2", "--completions", "2", "--dim", "2", "--out",
                         tmp_path / "g.json"]}[command]
    before = sorted(os.listdir(tmp_path))
    code = main([str(a) for a in argv] + ["--seed", "-1"])
    err = capsys.readouterr().err
    assert code == 2 and err == "pairdesign: error: --seed: must be a non-negative integer, got -1\n"
    assert sorted(os.listdir(tmp_path)) == before


# ---------------------------------------------------------------------------------- one file, two roles
def _copy(world, tmp_path, *keys) -> dict[str, Path]:
    out = {}
    for key in keys:
        out[key] = tmp_path / world[key].name
        out[key].write_bytes(world[key].read_bytes())
    return out


SAME_FILE = {
    "labels L --out L": lambda p, t: (["labels", p["tasks"], "--instance", p["json"], "--out", p["tasks"]],
                                      "--out is also the input LABELS"),
    "solve X --out X": lambda p, t: (["solve", p["json"], "--out", p["json"]], "--out is also the input INSTANCE"),
    "solve through a symlink": lambda p, t: (["solve", _link(t / "link.json", p["json"]), "--out", p["json"]],
                                             "--out is also the input INSTANCE"),
    "export D --out D": lambda p, t: (["export", p["design"], "--instance", p["json"], "--to", "jsonl",
                                       "--out", p["design"]], "--out is also the input DESIGN|INSTANCE"),
    "export --out INSTANCE": lambda p, t: (["export", p["design"], "--instance", p["tasks"], "--to", "jsonl",
                                            "--out", p["tasks"]], "--out is also the input --instance"),
    "next-round --out A --design-out A": lambda p, t: (["next-round", p["json"], "--out", t / "a.json",
                                                        "--design-out", t / "sub" / ".." / "a.json"],
                                                       "--design-out and --out are the same file"),
    "next-round --report R --design-out R": lambda p, t: (["next-round", p["json"], "--out", t / "n.json",
                                                           "--design-out", t / "r.json", "--report", t / "r.json"],
                                                          "--report and --design-out are the same file"),
    "next-round --labels L --report L": lambda p, t: (["next-round", p["json"], "--labels", p["tasks"], "--out",
                                                       t / "n.json", "--design-out", t / "d.json",
                                                       "--report", p["tasks"]], "--report is also the input --labels"),
    "labels --design D --instance-out D": lambda p, t: (["labels", p["tasks"], "--instance", p["json"], "--out",
                                                         t / "dpo.jsonl", "--design", p["design"],
                                                         "--instance-out", p["design"]],
                                                        "--instance-out is also the input --design"),
    "import G --out G": lambda p, t: (["import", _link(t / "g.json", p["gen"]), "--out", p["gen"]],
                                      "--out is also the input GENERATIONS"),
    "compare --out I": lambda p, t: (["compare", _link(t / "i.csv", p["json"]), "--out", p["json"]],
                                     "--out is also the input INSTANCE"),
}


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


@pytest.mark.parametrize("case", sorted(SAME_FILE))
def test_one_file_in_two_roles_is_refused(world, tmp_path, capsys, case):
    paths = _copy(world, tmp_path, "json", "design", "tasks", "gen")
    argv, message = SAME_FILE[case](paths, tmp_path)
    contents = {p: p.read_bytes() for p in paths.values()}
    before = sorted(os.listdir(tmp_path))
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert sorted(os.listdir(tmp_path)) == before
    assert all(p.read_bytes() == c for p, c in contents.items())


def test_labels_update_their_instance_in_place_still(world, tmp_path, capsys):
    """The one pairing that is allowed: an instance updated in place (labels' default)."""
    paths = _copy(world, tmp_path, "json", "tasks")
    rows = [dict(json.loads(line), winner="a") for line in paths["tasks"].read_text().splitlines()]
    labels = write_jsonl(tmp_path / "labels.jsonl", rows)
    assert main(["-q", "labels", str(labels), "--instance", str(paths["json"]),
                 "--out", str(tmp_path / "dpo.jsonl")]) == 0
    assert load_instance(paths["json"]).labeled.shape[0] == len(rows)


# ---------------------------------------------------------------------------------- fingerprint
def test_fingerprint_covers_texts_and_exact_features(world):
    base = load_instance(world["json"])
    fp = instance_fingerprint(base)
    import dataclasses

    texts = list(base.completion_texts)
    texts[4] = texts[4] + " "
    other_text = dataclasses.replace(base, completion_texts=tuple(texts))
    features = base.features.copy()
    features[4, 1] = np.nextafter(features[4, 1], np.inf)  # one ulp
    other_features = dataclasses.replace(base, features=features)
    no_texts = dataclasses.replace(base, completion_texts=None, prompt_texts=None)
    labeled = dataclasses.replace(base, labeled=np.array([[0, 1]]), labeled_counts=np.array([1]),
                                  labeled_wins=np.array([1.0]), rounds=({"design": "x"},))
    assert len({fp, instance_fingerprint(other_text), instance_fingerprint(other_features),
                instance_fingerprint(no_texts)}) == 4
    assert instance_fingerprint(labeled) == fp  # storing labels keeps it
    assert instance_fingerprint(load_instance(world["npz"])) == fp  # the same in both forms


def _same_ids_other_texts(world, folder: Path) -> Path:
    doc = json.loads(world["json"].read_text())
    doc["prompts"][0]["completions"][0]["text"] = "a text the annotators never saw"
    other = folder / "other.json"
    other.write_text(json.dumps(doc))
    return other


def test_a_design_of_another_instance_with_the_same_ids_is_refused(world, tmp_path, capsys):
    other = _same_ids_other_texts(world, tmp_path)
    design = json.loads(world["design"].read_text())
    assert design["instance_fingerprint"] == instance_fingerprint(load_instance(world["json"]))
    refuses(capsys, tmp_path, ["export", world["design"], "--instance", other, "--to", "jsonl",
                               "--out", tmp_path / "t.jsonl"], world["design"],
            "instance_fingerprint: this design is of another instance")


def test_labels_of_another_instance_with_the_same_ids_are_refused(world, tmp_path, capsys):
    other = _same_ids_other_texts(world, tmp_path)
    rows = [dict(json.loads(line), winner="a") for line in world["tasks"].read_text().splitlines()]
    labels = write_jsonl(tmp_path / "labels.jsonl", rows)
    refuses(capsys, tmp_path, ["labels", labels, "--instance", other, "--out", tmp_path / "dpo.jsonl"],
            labels, "line 1: instance: these labels are for another instance")


def test_designs_without_a_fingerprint_are_still_read(world, tmp_path, capsys):
    doc = json.loads(world["design"].read_text())
    doc.pop("instance_fingerprint")
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    assert main(["-q", "export", str(old), "--instance", str(world["json"]), "--to", "jsonl",
                 "--out", str(tmp_path / "t.jsonl")]) == 0


# ---------------------------------------------------------------------------------- -q, temporary files
QUIET = {
    "solve": ["solve", "i.json", "--out", "d.json"],
    "compare": ["compare", "i.json"],
    "info": ["info", "i.json"],
    "export": ["export", "d.json", "--instance", "i.json", "--to", "jsonl", "--out", "t.jsonl"],
    "import": ["import", "g.jsonl", "--out", "i.npz"],
    "labels": ["labels", "l.jsonl", "--instance", "i.json", "--out", "o.jsonl"],
    "next-round": ["next-round", "i.json", "--out", "n.json", "--design-out", "d.json"],
    "generate": ["generate", "--prompts", "2", "--completions", "2", "--dim", "2", "--out", "g.json"],
    "simulate": ["simulate", "c.toml"],
}


@pytest.mark.parametrize("command", sorted(QUIET))
def test_quiet_after_every_subcommand(command):
    parser = build_parser()
    assert set(QUIET) == set(parser._subparsers._group_actions[0].choices)  # every subcommand
    for flag in ("-q", "--quiet"):
        assert parser.parse_args(QUIET[command] + [flag]).quiet is True
        assert parser.parse_args([flag] + QUIET[command]).quiet is True
    assert parser.parse_args(QUIET[command]).quiet is False


def _temporaries(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


def test_an_interrupted_write_leaves_no_temporary_file(tmp_path):
    from pairdesign._atomic import atomic_write

    target = tmp_path / "out.json"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as handle:
            handle.write("half")
            assert len(_temporaries(tmp_path)) == 1
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path):
    script = ("import sys, time\n"
              "from pairdesign._atomic import atomic_write, terminate_as_exception\n"
              "with terminate_as_exception():\n"
              "    with atomic_write(sys.argv[1]) as handle:\n"
              "        handle.write('half'); handle.flush()\n"
              "        print('writing', flush=True)\n"
              "        time.sleep(600)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out.json")],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "writing"
    assert len(_temporaries(tmp_path)) == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 128 + signal.SIGTERM
    assert os.listdir(tmp_path) == []


def test_a_killed_writers_temporary_file_is_removed_at_the_next_write(world, tmp_path, capsys):
    """kill -9 runs no clean-up: the next write of the same target removes what the dead
    writer left (its process id is in the name); a live writer's file and other files stay."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "d.json"
    stale = tmp_path / f".d.json.{dead.pid}.abc123.tmp"
    live = tmp_path / f".d.json.{os.getppid()}.def456.tmp"
    unrelated = tmp_path / f".other.json.{dead.pid}.x.tmp"
    for path in (stale, live, unrelated):
        path.write_bytes(b"\0" * 1024)
    assert main(["-q", "solve", str(world["json"]), "--out", str(out)]) == 0
    assert out.exists() and not stale.exists() and live.exists() and unrelated.exists()


def test_killed_writer_end_to_end(tmp_path):
    """A writer killed with SIGKILL mid-write leaves its file; the next write removes it."""
    script = ("import sys, time\n"
              "from pairdesign._atomic import atomic_write\n"
              "with atomic_write(sys.argv[1]) as handle:\n"
              "    handle.write('half'); handle.flush()\n"
              "    print('writing', flush=True)\n"
              "    time.sleep(600)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    target = tmp_path / "out.txt"
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()
    assert len(_temporaries(tmp_path)) == 1  # nothing could run
    from pairdesign._atomic import atomic_write

    with atomic_write(target) as handle:
        handle.write("whole")
    assert os.listdir(tmp_path) == ["out.txt"] and target.read_text() == "whole"


def test_the_console_gets_one_line_for_a_hostile_file(tmp_path):
    """The real process: one line on stderr, exit 2, no traceback (nested JSON as the case)."""
    bad = tmp_path / "bad.json"
    bad.write_text("[" * DEEP)
    proc = subprocess.run([sys.executable, "-m", "pairdesign", "info", str(bad)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"pairdesign: error: {bad}: nested deeper than 64 levels")
