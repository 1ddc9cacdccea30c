"""The command line: solve, info, generate; clear errors, no tracebacks, no partial files."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pairdesign
from pairdesign.cli import main
from pairdesign.instance import instances_equal

EXAMPLES = Path(__file__).parent.parent / "instances"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_solve_writes_a_design(capsys, tmp_path, suffix):
    out = tmp_path / f"design{suffix}"
    code, stdout, _ = run(capsys, "solve", EXAMPLES / "small.json", "--out", out)
    assert code == 0 and out.exists() and "objective" in stdout
    inst = pairdesign.load_instance(EXAMPLES / "small.json")
    expected = pairdesign.solve(inst)
    if suffix == ".json":
        doc = json.loads(out.read_text())
        for key in ("format", "instance", "method", "criterion", "budget", "budget_used", "objective",
                    "bound", "gap", "status", "seconds", "pairs"):
            assert key in doc
        # the default method (auto) proves this small instance optimal
        assert doc["objective"] == expected.objective and doc["bound"] == expected.bound
        assert doc["method"] == "auto" and doc["status"] == "optimal"
        assert [tuple(p) for p in doc["pairs"]] == list(expected.pairs)
    else:
        lines = out.read_text().splitlines()
        rows = [line for line in lines if not line.startswith("#")]
        assert rows[0] == "prompt_id,completion_a,completion_b"
        assert [tuple(r.split(",")) for r in rows[1:]] == list(expected.pairs)
        assert any(line.startswith("# objective: ") for line in lines)


def test_solve_options(capsys, tmp_path):
    out = tmp_path / "d.json"
    code, _, _ = run(capsys, "-q", "solve", EXAMPLES / "medium.npz", "--method", "first-k",
                     "--option", "k=3", "--budget", "9", "--criterion", "a", "--out", out)
    doc = json.loads(out.read_text())
    assert code == 0 and doc["method"] == "first-k" and doc["criterion"] == "A" and doc["labels"] == 9


def test_info(capsys):
    code, out, _ = run(capsys, "info", EXAMPLES / "constrained.json")
    assert code == 0
    assert "candidate pairs           28" in out and "information rank          3 of 3" in out
    code, out, _ = run(capsys, "info", "--json", EXAMPLES / "medium.npz")
    facts = json.loads(out)
    assert facts["candidate_pairs"] == 400 * 28 and facts["dimension"] == 16


def test_generate_is_seeded(capsys, tmp_path):
    args = ["generate", "--prompts", "30", "--completions", "4", "--dim", "5", "--seed", "3"]
    assert run(capsys, *args, "--out", tmp_path / "a.npz")[0] == 0
    assert run(capsys, *args, "--out", tmp_path / "b.json")[0] == 0
    assert run(capsys, *args[:-1], "4", "--out", tmp_path / "c.npz")[0] == 0
    a, b, c = (pairdesign.load_instance(tmp_path / f) for f in ("a.npz", "b.json", "c.npz"))
    assert instances_equal(a, b) and not instances_equal(a, c)
    assert a.n_prompts == 30 and a.dim == 5 and len(a.candidates) == 30 * 6


BAD_DOCS = {
    "broken.json": '{"format": "pairdesign.instance/1", "prompts": [',
    "version.json": '{"format": "pairdesign.instance/2", "prompts": [], "budget": 1}',
}


@pytest.mark.parametrize("name", sorted(BAD_DOCS))
def test_bad_instance_exits_nonzero_without_output(capsys, tmp_path, name):
    bad = tmp_path / name
    bad.write_text(BAD_DOCS[name])
    out = tmp_path / "design.json"
    code, _, err = run(capsys, "solve", bad, "--out", out)
    assert code == 2
    assert err.startswith(f"pairdesign: error: {bad}: ") and "Traceback" not in err
    assert not out.exists() and os.listdir(tmp_path) == [name]


def test_bad_row_is_named(capsys, tmp_path):
    doc = json.loads((EXAMPLES / "small.json").read_text())
    doc["prompts"][3]["completions"][2]["features"][1] = 1e400  # written as Infinity
    bad = tmp_path / "inf.json"
    bad.write_text(json.dumps(doc))
    code, _, err = run(capsys, "info", bad)
    assert code == 2 and "Infinity is not valid JSON" in err


def test_errors_from_the_request(capsys, tmp_path):
    inst = EXAMPLES / "small.json"
    code, _, err = run(capsys, "solve", inst, "--budget", "-3", "--out", tmp_path / "d.json")
    assert code == 2 and "'budget' parameter of solve must be a non-negative number" in err
    code, _, err = run(capsys, "solve", inst, "--out", tmp_path / "d.txt")
    assert code == 2 and "use .json or .csv" in err
    code, _, err = run(capsys, "solve", inst, "--out", tmp_path / "no" / "d.json")
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "solve", tmp_path / "absent.json", "--out", tmp_path / "d.json")
    assert code == 2 and "absent.json: no such file" in err
    assert os.listdir(tmp_path) == []


def test_argparse_errors_exit_nonzero(capsys):
    with pytest.raises(SystemExit) as info:
        main(["solve", str(EXAMPLES / "small.json"), "--method", "annealing", "--out", "x.json"])
    assert info.value.code == 2


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    inst = pairdesign.load_instance(EXAMPLES / "small.json")
    result = pairdesign.solve(inst)
    out = tmp_path / "design.json"
    out.write_text("previous design")
    import pairdesign.design as result_module  # the design file writer

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(result_module.json, "dumps", boom)
    with pytest.raises(OSError):
        result.save(out)
    assert out.read_text() == "previous design" and os.listdir(tmp_path) == ["design.json"]


def test_console_script_runs_without_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    proc = subprocess.run([sys.executable, "-m", "pairdesign", "info", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith(f"pairdesign: error: {bad}: line 1 column 2: not valid JSON")
    good = subprocess.run([sys.executable, "-m", "pairdesign", "solve", str(EXAMPLES / "small.json"),
                           "--out", str(tmp_path / "d.json")], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "greedy" in good.stderr  # progress goes to stderr


def test_compare_writes_table_csv_and_plot(capsys, tmp_path):
    import csv

    out, fig = tmp_path / "table.csv", tmp_path / "fig.png"
    code, stdout, _ = run(capsys, "-q", "compare", EXAMPLES / "small.json", "--methods",
                          "round,greedy,random", "--budgets", "4,8", "--out", out, "--plot", fig)
    assert code == 0 and "efficiency" in stdout
    rows = list(csv.DictReader(out.open()))
    assert [(r["method"], float(r["budget"])) for r in rows] == [
        ("round", 4), ("greedy", 4), ("random", 4), ("round", 8), ("greedy", 8), ("random", 8)]
    inst = pairdesign.load_instance(EXAMPLES / "small.json")
    for r in rows:  # objectives recomputable, efficiencies certified against the best bound
        design = pairdesign.solve(inst, r["method"], budget=float(r["budget"]), seed=0)
        assert float(r["objective"]) == pytest.approx(design.objective)
        assert float(r["best_bound"]) >= float(r["objective"]) - 1e-9
        assert float(r["efficiency"]) == pytest.approx(
            np.exp((float(r["objective"]) - float(r["best_bound"])) / inst.dim))
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_rejects_unknown_methods_and_bad_budgets(capsys, tmp_path):
    code, _, err = run(capsys, "compare", EXAMPLES / "small.json", "--methods", "greedy,annealing")
    assert code == 2 and "unknown method 'annealing'" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["compare", str(EXAMPLES / "small.json"), "--budgets", "4,x"])


def test_local_search_start_from_a_file(capsys, tmp_path):
    start, out = tmp_path / "start.json", tmp_path / "out.json"
    assert run(capsys, "-q", "solve", EXAMPLES / "small.json", "--method", "random", "--seed", "1",
               "--out", start)[0] == 0
    code, stdout, _ = run(capsys, "-q", "solve", EXAMPLES / "small.json", "--method", "local-search",
                          "--start", start, "--out", out)
    assert code == 0
    assert json.loads(out.read_text())["objective"] > json.loads(start.read_text())["objective"]
    code, _, err = run(capsys, "solve", EXAMPLES / "small.json", "--start", start, "--out", out)
    assert code == 2 and "--start belongs to --method local-search" in err
    start.write_text('{"format": "pairdesign.design/1", "pairs": [["p0", "c0", "nope"]]}')
    code, _, err = run(capsys, "solve", EXAMPLES / "small.json", "--method", "local-search",
                       "--start", start, "--out", out)
    assert code == 2 and "start.json: pairs[0]: prompt 'p0' has no completion 'nope'" in err


def test_compare_with_only_a_fractional_method():
    from pairdesign.compare import compare

    rows = compare(pairdesign.load_instance(EXAMPLES / "small.json"), ["relax"])
    assert rows[0].efficiency == pytest.approx(1.0, abs=1e-5)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_solve_progress_bar_on_a_terminal_only():
    import logging

    from pairdesign.progress import LogBar

    term = _Terminal()
    bar = LogBar("solving", time_limit=10.0, stream=term)
    logger = logging.getLogger("pairdesign.test_bar")
    logger.setLevel(logging.INFO)
    logger.addHandler(bar)
    try:
        logger.info("[   1.00s] greedy: 5 labels", extra={"fraction": 0.5})
        logger.warning("something to see")
    finally:
        logger.removeHandler(bar)
        bar.close()
    out = term.getvalue()
    assert "solving [############............]  50%" in out and "greedy: 5 labels" in out
    assert "something to see\n" in out and out.endswith("\r\033[K")
    # not a terminal: nothing drawn
    pipe = io.StringIO()
    quiet = LogBar("solving", stream=pipe)
    quiet.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None))
    assert pipe.getvalue() == ""


def test_progress_lines_carry_the_share_of_work_done(caplog):
    import logging

    from pairdesign.solvers.base import Context

    inst = pairdesign.load_instance(EXAMPLES / "small.json")
    ctx = Context.make(inst, "D", 4, seed=0, logger=logging.getLogger("pairdesign.t"))
    with caplog.at_level(logging.INFO, logger="pairdesign"):
        ctx.progress(lambda: "halfway", every=0.0, fraction=lambda: 0.5)
        ctx.say("no share known")
    assert [(r.getMessage().split("] ")[1], r.fraction) for r in caplog.records] == [
        ("halfway", 0.5), ("no share known", None)]
    assert ctx.log[0].endswith("halfway")
