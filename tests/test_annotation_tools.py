"""The files Label Studio 1.23.2 and Argilla 2.8.0 really wrote (tests/fixtures/annotation-tools,
its README says what each holds) are read vote for vote as the truth files say."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import pairdesign
from pairdesign.cli import main
from pairdesign.design import load_design
from pairdesign.errors import InputError
from pairdesign.pipeline import read_labels
from pairdesign.pipeline.annotators import read_tasks, simulate_labels
from pairdesign.pipeline.tasks import design_id, instance_fingerprint

FIXTURES = Path(__file__).parent / "fixtures" / "annotation-tools"
# the ids the exported tasks carried when the tools were run; the fixture files are copied with
# them replaced by this version's fingerprints of round0.npz and design1.json (the hashes may
# change between versions; every vote stays the tools' own)
RECORDED_INSTANCE, RECORDED_DESIGN = "656f2e90ed288809", "fd21476596317ad4"
STUDIO_EXPORTS = ("labelstudio-export-json.json", "labelstudio-export-json-min.json", "labelstudio-export.csv")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def tools(tmp_path):
    """A folder with the fixture files, their recorded ids mapped to the current fingerprints."""
    inst = pairdesign.load_instance(FIXTURES / "round0.npz")
    fingerprint, design = instance_fingerprint(inst), design_id(inst, load_design(FIXTURES / "design1.json", inst))
    folder = tmp_path / "tools"
    folder.mkdir()
    for path in FIXTURES.iterdir():
        if path.suffix in (".json", ".jsonl", ".csv"):
            text = path.read_text(encoding="utf-8")
            text = text.replace(RECORDED_INSTANCE, fingerprint).replace(RECORDED_DESIGN, design)
            (folder / path.name).write_text(text, encoding="utf-8")
        else:
            shutil.copy(path, folder / path.name)
    return folder


def _rank(label) -> int:
    return int(label.task.rsplit("-", 1)[1])


def _truth_studio() -> tuple[dict[int, float], list[tuple[str, str]]]:
    """(outcome for completion_a by rank for the single-vote ranks, the (chosen, rejected) texts of
    every vote) from labelstudio-clicks-truth.json."""
    truth = json.loads((FIXTURES / "labelstudio-clicks-truth.json").read_text(encoding="utf-8"))
    single = {t["rank"]: 1.0 if t["side"] == "left" else 0.0 for t in truth if "side" in t}
    pairs = [(t["clicked_text"], t["other_text"]) for t in truth if "side" in t]
    for t in truth:
        if t.get("split"):
            pairs += [(t["a"], t["b"]), (t["b"], t["a"])]
    assert sorted(single) == list(range(1, 35))
    return single, pairs


@pytest.mark.parametrize("name", STUDIO_EXPORTS)
def test_label_studio_exports_give_every_clicked_vote(tools, name):
    inst = pairdesign.load_instance(tools / "round0.npz")
    labelset = read_labels(tools / name, inst)
    single, _ = _truth_studio()
    by_rank: dict[int, list[float]] = {}
    for lab in labelset.labels:
        by_rank.setdefault(_rank(lab), []).append(lab.outcome)
    # ranks 1-34 one vote each as clicked; 35 cancelled (no vote); 36 split; 37-40 never labeled
    assert {r: v for r, v in by_rank.items() if r != 36} == {r: [o] for r, o in single.items()}
    assert sorted(by_rank[36]) == [0.0, 1.0]
    assert len(labelset.labels) == 36 and labelset.split == 1 and labelset.ties == 0
    assert labelset.ignored == 0 and labelset.skipped == ()
    if name.endswith("json-min.json") or name.endswith(".csv"):  # one row per annotation
        assert (labelset.records, labelset.tasks, labelset.unlabeled, labelset.cancelled) == (36, 35, 0, 0)
    else:
        assert (labelset.records, labelset.tasks, labelset.unlabeled, labelset.cancelled) == (36, 36, 1, 1)


@pytest.mark.parametrize("name", STUDIO_EXPORTS)
def test_label_studio_exports_make_the_dataset_of_the_clicks(tools, name, tmp_path, capsys):
    """The CLI end to end: the DPO rows are the clicked texts, the summary line counts the split."""
    _, truth_pairs = _truth_studio()
    inst, dataset = tmp_path / "round0.npz", tmp_path / "dpo.jsonl"
    shutil.copy(tools / "round0.npz", inst)
    code, out, err = run(capsys, "labels", tools / name, "--instance", inst, "--out", dataset,
                         "--design", tools / "design1.json", "-q")
    assert code == 0, err
    assert "read 36 labels" in out and "1 split task (two opposite rows in the dataset)" in out
    rows = [json.loads(line) for line in dataset.read_text(encoding="utf-8").splitlines()]
    assert sorted((r["chosen"], r["rejected"]) for r in rows) == sorted(truth_pairs)
    stored = pairdesign.load_instance(inst)
    assert stored.labeled.shape[0] == 35 and sorted(stored.labeled_counts.tolist()) == [1] * 34 + [2]


def test_label_studio_extra_controls_are_not_votes_and_a_tie_word_is_a_tie(tools, capsys, tmp_path):
    inst = pairdesign.load_instance(tools / "round0.npz")
    labelset = read_labels(tools / "labelstudio-export-extra-choices.json", inst)
    got = {_rank(lab): lab.outcome for lab in labelset.labels}
    # odd ranks right, even ranks left; rank 4 answered only "Tie"; the comment (rank 2) and the
    # "Confident" answer (rank 3) are results of other controls
    assert got == {1: 0.0, 2: 1.0, 3: 0.0, 4: 0.5, 5: 0.0, 6: 1.0}
    assert len(labelset.labels) == 6 and labelset.ties == 1 and labelset.ignored == 2
    # the tie control named explicitly gives the same reading
    again = read_labels(tools / "labelstudio-export-extra-choices.json", inst, tie_control="tie")
    assert [lab.outcome for lab in again.labels] == [lab.outcome for lab in labelset.labels]
    shutil.copy(tools / "round0.npz", tmp_path / "r.npz")
    code, out, _ = run(capsys, "labels", tools / "labelstudio-export-extra-choices.json", "--instance",
                       tmp_path / "r.npz", "--out", tmp_path / "d.jsonl", "-q")
    assert code == 0 and "1 tie (left out of the dataset)" in out and "2 results of other controls ignored" in out
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 5


def test_argilla_label_question_only_submitted_responses_are_votes(tools):
    inst = pairdesign.load_instance(tools / "round0.npz")
    # the truth file, read from the copy whose recorded ids the fixture mapped to this version's
    truth = dict(json.loads((tools / "argilla-truth.json").read_text()))
    labelset = read_labels(tools / "argilla-label-question-flat.jsonl", inst)
    got = {lab.task: lab.outcome for lab in labelset.labels}
    assert got == {task: 1.0 if side == "response1" else 0.0 for task, side in truth.items()}
    assert len(labelset.labels) == 10 and labelset.not_submitted == 2  # a draft and a discarded response


def test_argilla_ranking_question_is_one_vote_per_record(tools):
    inst = pairdesign.load_instance(tools / "round0.npz")
    labelset = read_labels(tools / "argilla-ranking-question-flat.jsonl", inst)
    order = [r["id"] for r in read_tasks(tools / "argilla-ranking-question-flat.jsonl")]
    # records 1, 3, 5, ... (file order): response1 first; 2, 4, 6, ...: response2 first
    assert [lab.task for lab in labelset.labels] == order
    assert [lab.outcome for lab in labelset.labels] == [1.0 if n % 2 == 0 else 0.0 for n in range(10)]
    assert labelset.split == 0 and labelset.ties == 0


def test_argilla_records_without_a_status_are_refused_naming_the_flattened_export(tools, tmp_path):
    inst = pairdesign.load_instance(tools / "round0.npz")
    flat = read_tasks(tools / "argilla-label-question-flat.jsonl")
    no_status = tmp_path / "no-status.jsonl"
    no_status.write_text("".join(json.dumps({k: v for k, v in r.items() if not k.endswith(".status")}) + "\n"
                                 for r in flat))
    with pytest.raises(InputError, match=r"line 1: preference.responses: .*to_list\(flatten=True\)"):
        read_labels(no_status, inst)
    # the nested shape (to_list(flatten=False)) has no status either
    nested = tmp_path / "nested.jsonl"
    nested.write_text("".join(json.dumps({
        "id": r["id"], "fields": {"prompt": r["prompt"]},
        "metadata": {k: r[k] for k in ("design", "instance", "prompt_id", "completion_a", "completion_b")},
        "responses": {"preference": [{"value": v, "user_id": u} for v, u in
                                     zip(r["preference.responses"], r["preference.responses.users"])]}}) + "\n"
        for r in flat))
    with pytest.raises(InputError, match=r"nested.jsonl: line 1: responses.preference\[0\]: "
                                                    r"Argilla's nested records carry no response status"):
        read_labels(nested, inst)


# ----------------------------------------------------------------------------- issue 12: never twice, never empty
def _studio(tools) -> list[dict]:
    return json.loads((tools / "labelstudio-export-json.json").read_text(encoding="utf-8"))


def _labels_cli(capsys, tools, tmp_path, labels, *extra):
    inst = tmp_path / "r.npz"
    if not inst.exists():
        shutil.copy(tools / "round0.npz", inst)
    before = inst.read_bytes()
    code, out, err = run(capsys, "labels", labels, "--instance", inst, "--out", tmp_path / "dpo.jsonl", "-q", *extra)
    if code:
        assert inst.read_bytes() == before and not (tmp_path / "dpo.jsonl").exists() and "Traceback" not in err
    return code, out, err


def test_a_file_without_votes_is_refused_and_records_nothing(tools, tmp_path, capsys):
    records = _studio(tools)
    cancelled = [dict(r, annotations=[dict(a, was_cancelled=True, result=[]) for a in r["annotations"]])
                 for r in records]
    empty = tmp_path / "cancelled.json"
    empty.write_text(json.dumps(cancelled))
    code, _, err = _labels_cli(capsys, tools, tmp_path, empty)
    assert code == 2 and f"{empty}: no votes: 36 tasks of design" in err and "37 cancelled annotations" in err
    # the tasks file itself (no answers at all) is refused too
    code, _, err = _labels_cli(capsys, tools, tmp_path, tools / "tasks1-labelstudio.json")
    assert code == 2 and "item 1: no vote" in err
    # ... and the real labels are read afterwards, not refused as "already read"
    code, out, err = _labels_cli(capsys, tools, tmp_path, tools / "labelstudio-export-json.json")
    assert code == 0 and "read 36 labels" in out, err


@pytest.mark.parametrize("shape", ["studio json", "json-min", "plain jsonl"])
def test_a_task_given_twice_is_refused_even_with_design(tools, tmp_path, capsys, shape):
    if shape == "studio json":
        records = _studio(tools)
        bad, where = tmp_path / "twice.json", "item 37"
        bad.write_text(json.dumps(records + [records[4]]))
    elif shape == "json-min":  # the same annotation row twice (rows of distinct annotation_id are fine)
        records = json.loads((tools / "labelstudio-export-json-min.json").read_text(encoding="utf-8"))
        bad, where = tmp_path / "twice.json", "item 37"
        bad.write_text(json.dumps(records + [records[4]]))
    else:
        records = [{**{k: r["data"][k] for k in ("design", "instance", "prompt_id", "completion_a", "completion_b")},
                    "winner": "a"} for r in _studio(tools)[:12]]
        bad, where = tmp_path / "twice.jsonl", "line 13"
        bad.write_text("".join(json.dumps(r) + "\n" for r in records + [records[4]]))
    code, _, err = _labels_cli(capsys, tools, tmp_path, bad, "--design", tools / "design1.json")
    assert code == 2 and f"{bad}: {where}: the task " in err and "is given twice (also item 5" in err.replace(
        "line 5", "item 5"), err


def test_one_annotation_voting_both_ways_is_refused(tools, tmp_path, capsys):
    records = _studio(tools)
    records[2]["annotations"][0]["result"] = [{"from_name": "verdict", "to_name": "answer1", "type": "choices",
                                               "value": {"choices": ["left", "right"]}}]
    bad = tmp_path / "both.json"
    bad.write_text(json.dumps(records))
    code, _, err = _labels_cli(capsys, tools, tmp_path, bad)
    assert code == 2 and f"{bad}: item 3: annotations[0].result[0].value.choices: one annotation votes for " \
                         "'left' and 'right'" in err, err


# ----------------------------------------------------------------------------- one project across rounds
def test_one_annotation_project_across_rounds(tools, tmp_path, capsys):
    """Round 1's export plus round 2's tasks labeled in the same project: --design keeps one design,
    without it the designs read before are skipped; nothing is ever counted twice."""
    r0, r1 = tmp_path / "r0.npz", tmp_path / "r1.npz"
    shutil.copy(tools / "round0.npz", r0)
    assert run(capsys, "labels", tools / "labelstudio-export-json.json", "--instance", r0, "--instance-out", r1,
               "--out", tmp_path / "dpo1.jsonl", "-q")[0] == 0
    design2, tasks2, labels2 = tmp_path / "design2.json", tmp_path / "tasks2.json", tmp_path / "labels2.json"
    assert run(capsys, "solve", r1, "--method", "greedy", "--budget", 12, "--out", design2)[0] == 0
    assert run(capsys, "export", design2, "--instance", r1, "--to", "labelstudio", "--out", tasks2, "-q")[0] == 0
    simulate_labels(tasks2, labels2, lambda p, c: float(c[-1]), seed=1)
    project = tmp_path / "project.json"
    project.write_text(json.dumps(_studio(tools) + json.loads(labels2.read_text(encoding="utf-8"))))

    code, out, err = run(capsys, "labels", project, "--instance", r1, "--out", tmp_path / "dpo2.jsonl",
                         "--instance-out", tmp_path / "r2.npz", "-q")
    assert code == 0, err
    assert "read 12 labels" in out and "skipped 36 records of design" in out and "(already read into the instance)" in out
    r2 = pairdesign.load_instance(tmp_path / "r2.npz")
    assert sum(r2.labeled_counts) == 36 + 12 and [r["labels"] for r in r2.rounds] == [36, 12]

    code, out, err = run(capsys, "labels", project, "--instance", r0, "--out", tmp_path / "d.jsonl", "--design",
                         tools / "design1.json", "-q")
    assert code == 0 and "read 36 labels" in out and "skipped 12 records of design" in out and \
        "(not the design given)" in out, err
    code, _, err = _labels_cli(capsys, tools, tmp_path, project)  # round 0: two designs unread
    assert code == 2 and "records of 2 designs not read yet" in err and "--design" in err
    code, _, err = run(capsys, "labels", project, "--instance", tmp_path / "r2.npz", "--out", tmp_path / "x.jsonl")
    assert code == 2 and "were already read into the instance (round 2" in err
    # next-round with the whole project: round 2's labels read in (round 1's skipped), or, when the
    # instance holds both, recognised as stored; either way the fit sees 48 labels
    for instance, new in ((r1, 12), (tmp_path / "r2.npz", 0)):
        code, out, err = run(capsys, "next-round", instance, "--labels", project, "--budget", 5, "--method", "greedy",
                             "--out", tmp_path / "next.npz", "--design-out", tmp_path / "d3.json", "-q")
        assert code == 0, err
        assert ("already in the instance: " in out) == (new == 0) and "read 12 labels" in out
        assert "fit: 48 labels" in out
        assert [r["labels"] for r in pairdesign.load_instance(tmp_path / "next.npz").rounds] == [36, 12]


# ----------------------------------------------------------------------------- the project setup beside the tasks
def test_export_writes_the_project_setup_the_tasks_fit(tools, tmp_path, capsys):
    import xml.etree.ElementTree as ET

    for fmt, name in (("labelstudio", "tasks.json"), ("argilla", "tasks.jsonl")):
        code, out, err = run(capsys, "export", tools / "design1.json", "--instance", tools / "round0.npz", "--to", fmt,
                             "--out", tmp_path / name, "-q")
        assert code == 0, err
    # Label Studio: a Pairwise control over two Text objects; every $variable is a key of every task
    config = tmp_path / "tasks.labelstudio.xml"
    root = ET.parse(config).getroot()
    pairwise = [e for e in root.iter("Pairwise")]
    texts = {e.get("name"): e.get("value") for e in root.iter("Text")}
    assert [(p.get("name"), p.get("toName")) for p in pairwise] == [("comparison", "answer1,answer2")]
    assert texts == {"prompt": "$prompt", "answer1": "$answer1", "answer2": "$answer2"}
    for task in read_tasks(tmp_path / "tasks.json"):
        assert {v[1:] for v in texts.values()} <= set(task["data"])
    # the fixture's tasks (made for the shipped template the tools were run with) fit it too
    assert all({"prompt", "answer1", "answer2"} <= set(t["data"]) for t in read_tasks(tools / "tasks1-labelstudio.json"))
    # Argilla: the fields and the question; every record key declared (id is the record's id), so
    # Argilla keeps the ids that `labels` needs
    settings = json.loads((tmp_path / "tasks.argilla.json").read_text())
    fields = [f["name"] for f in settings["fields"]]
    metadata = {m["name"]: m["settings"]["type"] for m in settings["metadata"]}
    assert fields == ["prompt", "response1", "response2"]
    assert metadata == {"design": "terms", "instance": "terms", "prompt_id": "terms", "completion_a": "terms",
                        "completion_b": "terms", "rank": "integer", "gain": "float"}
    (question,) = settings["questions"]
    assert question["name"] == "preference" and question["settings"]["type"] == "label_selection"
    assert [o["value"] for o in question["settings"]["options"]] == ["response1", "response2", "tie"]
    for record in read_tasks(tmp_path / "tasks.jsonl"):
        assert set(record) == {"id"} | set(fields) | set(metadata)


@pytest.mark.parametrize("case", ["deep jsonl", "deep json", "odd nesting", "bad csv cell", "not utf-8"])
def test_hostile_labels_files_get_one_line(tools, tmp_path, capsys, case):
    ids = {k: _studio(tools)[0]["data"][k] for k in ("design", "instance", "prompt_id", "completion_a", "completion_b")}
    if case == "deep jsonl":
        bad = tmp_path / "deep.jsonl"
        bad.write_text(json.dumps({**ids, "winner": "a"}) + "\n" + json.dumps(ids)[:-1] + ', "winner": '
                       + "[" * 900 + '"a"' + "]" * 900 + "}\n")
        message, expected = "line 2: ", "nested deeper than"
    elif case == "deep json":
        bad = tmp_path / "deep.json"
        bad.write_text("[" * 5000 + "]" * 5000)
        message, expected = f"{bad}: ", "nested deeper than"
    elif case == "odd nesting":
        bad = tmp_path / "odd.jsonl"
        bad.write_text(json.dumps({**ids, "winner": [[["a"]]]}) + "\n")
        message, expected = "line 1: winner[0]: ", "cannot read a vote from"
    elif case == "bad csv cell":
        bad = tmp_path / "bad.csv"
        text = (tools / "labelstudio-export.csv").read_text(encoding="utf-8")
        bad.write_text(text.replace('"[{""selected"":""left""}]"', '"[{""selected"":""left""}"', 1), encoding="utf-8")
        message, expected = "line 2: comparison: ", "not readable JSON"
    else:
        bad = tmp_path / "latin1.csv"
        bad.write_bytes((tools / "labelstudio-export.csv").read_text(encoding="utf-8").encode("latin-1", "replace"))
        message, expected = f"{bad}: ", "not UTF-8"
    code, _, err = _labels_cli(capsys, tools, tmp_path, bad)
    assert code == 2 and err.count("\n") == 1 and message in err and expected in err, err
