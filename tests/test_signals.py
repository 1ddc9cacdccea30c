"""Real Ctrl-C: the CLI started as a subprocess gets a real SIGINT once it reports progress (no
fixed sleeps: the signal follows a progress line on standard error), and must keep its work: exit
status 130, the design written atomically with ``termination: interrupted``, an objective
recomputable from instance + design, a bound that is a bound, no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import pairdesign
from pairdesign.design import load_design

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def exact_instance(path: Path) -> Path:
    """9,000 pairs, d = 12: greedy and the root relaxation take well under a second, branch and
    bound and outer approximation then run for tens of seconds."""
    inst = pairdesign.synthetic_instance(200, 10, 12, budget=40, seed=1).instance
    pairdesign.save_instance(inst, path)
    return path


def relaxation_instance(path: Path) -> Path:
    """13,500 pairs, d = 16, at most 2 labels per prompt, criterion A: the relaxation runs for
    many seconds (Frank-Wolfe with the per-prompt caps)."""
    inst = pairdesign.synthetic_instance(300, 10, 16, budget=64, seed=1).instance
    pairdesign.save_instance(replace(inst, max_pairs_per_prompt=2), path)
    return path


def default_sigint() -> None:
    """In the child before exec: SIGINT to its default disposition. A child inherits an ignored
    SIGINT across exec (a shell's ``cmd &``, or a parent that ignores it), and Python then installs
    no KeyboardInterrupt handler: the signal would do nothing, as it does for such a user."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(instance: Path, out: Path, marker: str, *args: str) -> tuple[int, str]:
    """Run ``pairdesign solve`` and send SIGINT once a stderr line contains ``marker``; returns
    the exit status and standard error."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "pairdesign", "solve", str(instance), "--out",
                             str(out), "--seed", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=default_sigint)
    seen, sent = [], False
    try:
        for line in proc.stderr:
            seen.append(line)
            if marker in line:
                proc.send_signal(signal.SIGINT)
                sent = True
                break
        stdout, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert sent, f"no progress line with {marker!r}: {''.join(seen)}"
    assert "Traceback" not in stdout, stdout
    return proc.returncode, "".join(seen) + rest


def check_interrupted(instance: Path, out: Path, code: int, stderr: str, criterion: str = "D") -> dict:
    assert "Traceback" not in stderr, stderr
    assert code == 130, stderr  # README: an interrupted solve writes its design and exits 130
    assert "pairdesign: interrupted" in stderr
    assert [p.name for p in out.parent.iterdir() if p.name.endswith(".tmp")] == []  # atomic write
    record = json.loads(out.read_text())
    assert record["termination"] == "interrupted"
    assert record["status"] == "feasible"  # an interrupted run proves nothing
    inst = pairdesign.load_instance(instance)
    design = load_design(out, inst)
    value = pairdesign.objective(inst, design.counts, criterion)
    assert record["objective"] == pytest.approx(value, rel=1e-9, abs=1e-9)
    assert not pairdesign.polytope.linear_constraints(inst).violations(design.counts)
    assert record["bound"] is not None  # every run below had proved a bound before the signal
    assert record["bound"] >= value - 1e-9 * max(1.0, abs(value))
    return {"inst": inst, "value": value, "bound": record["bound"]}


@pytest.mark.parametrize("algorithm, marker", [
    ("bnb", "exact (branch and bound): root bound"),  # the bound is known from here on
    ("oa", "exact: iteration 1,"),  # printed just before the first master: the signal hits HiGHS
])
def test_sigint_to_exact_keeps_the_incumbent_and_the_bound(tmp_path, algorithm, marker):
    instance = exact_instance(tmp_path / "i.npz")
    out = tmp_path / "design.json"
    code, stderr = interrupt(instance, out, marker, "--method", "exact", "--option", f"algorithm={algorithm}")
    got = check_interrupted(instance, out, code, stderr)
    greedy = pairdesign.solve(got["inst"], "greedy").objective
    assert got["value"] >= greedy - 1e-9  # the exact phase starts from greedy's design
    assert got["bound"] >= greedy


@pytest.mark.parametrize("method", ["round", "auto"])
def test_sigint_during_the_relaxation_keeps_a_rounded_design_and_its_certificate(tmp_path, method):
    instance = relaxation_instance(tmp_path / "i.npz")
    out = tmp_path / "design.json"
    code, stderr = interrupt(instance, out, "relax: iteration 1,", "--method", method, "--criterion", "A")
    got = check_interrupted(instance, out, code, stderr, criterion="A")
    assert "relax: converged" not in stderr and "relaxation: f =" not in stderr  # stopped inside it
    # the relaxation's certificate bounds every integer design, greedy's among them
    assert got["bound"] >= pairdesign.solve(got["inst"], "greedy", "A").objective


def test_highs_stops_cleanly_on_a_signal_inside_its_callbacks():
    """A SIGINT that arrives while HiGHS runs a MIP with Python callbacks: HiGHS stops with
    status interrupted and the KeyboardInterrupt comes after the run, not as a solve error."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    # The suite may run with SIGINT ignored (a background job of a shell without job control,
    # as `cmd &` in a script): take Python's own handler for this test, as an interactive run has.
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        highs_stops_on_a_signal()
    finally:
        signal.signal(signal.SIGINT, saved)


def highs_stops_on_a_signal() -> None:
    from pairdesign.backends import highs as highs_backend
    from pairdesign.backends import INTERRUPTED

    h = highs_backend.new_highs()
    rng = np.random.default_rng(0)
    n = 60  # a knapsack with many solutions: the first one found raises the signal
    weights = rng.integers(10, 100, size=n).astype(float)
    h.addVars(n, np.zeros(n), np.ones(n))
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.ones(n, dtype=np.uint8))
    h.changeColsCost(n, np.arange(n, dtype=np.int32), -(weights + rng.normal(size=n)))
    h.addRow(-np.inf, weights.sum() / 3, n, np.arange(n, dtype=np.int32), weights)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.cbMipSolution.subscribe(lambda event: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        highs_backend.run_interruptible(h)
    assert highs_backend.status(h) == INTERRUPTED
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
