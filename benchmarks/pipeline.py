"""The labeling pipeline at scale (issue 7): import and a full round trip.

    python benchmarks/pipeline.py [--prompts 10000] [--completions 10] [--embedding-dim 768]
                                  [--dim 64] [--budget 5000]

Writes generations (JSONL: prompt and completion texts, 768-dimensional embeddings, scores) to a
temporary folder (not timed), then times each step of the loop as the command a user runs, each
in its own process (wall seconds and peak resident memory of that process):

    import GEN --dim 64 -> solve (greedy, budget B) -> export --to jsonl -> simulated annotators
    (Bradley-Terry on the true reward; not pairdesign) -> labels -> next-round --budget B

The embeddings are a synthetic instance's features (d = 64, true theta) mapped into 768
dimensions by an orthonormal map, plus isotropic noise (sd 0.05), so PCA has work to do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def write_generations(path: Path, prompts: int, completions: int, big: int, dim: int, seed: int = 0):
    """Generations JSONL from a synthetic world; returns the reward table for the annotators."""
    sys.path.insert(0, str(ROOT))
    import pairdesign

    syn = pairdesign.synthetic_instance(prompts, completions, dim, seed=seed)
    inst = syn.instance
    rng = np.random.default_rng(seed + 1)
    U = np.linalg.qr(rng.standard_normal((big, dim)))[0]
    reward = inst.features @ syn.theta
    words = ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega", "theta"]
    table = {}
    with open(path, "w", encoding="utf-8") as f:
        for i in range(inst.n_prompts):
            lo, hi = int(inst.prompt_offsets[i]), int(inst.prompt_offsets[i + 1])
            emb = inst.features[lo:hi] @ U.T + 0.05 * rng.standard_normal((hi - lo, big))
            comps = []
            for r in range(lo, hi):
                cid = str(inst.completion_ids[r])
                text = " ".join(rng.choice(words, size=30).tolist())
                comps.append({"id": cid, "text": f"Answer {cid}: {text}.",
                              "embedding": np.round(emb[r - lo], 6).tolist(), "score": round(float(inst.scores[r]), 6)})
                table[(str(inst.prompt_ids[i]), cid)] = float(reward[r])
            f.write(json.dumps({"prompt_id": str(inst.prompt_ids[i]),
                                "prompt": f"Question {i}: explain {' '.join(rng.choice(words, size=8))}?",
                                "completions": comps}) + "\n")
    return table


def timed(argv: list[str]) -> tuple[float, float]:
    """Run ``python -m pairdesign ARGV`` in its own process: (wall seconds, peak RSS MiB)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pairdesign", "-q", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"pairdesign {' '.join(argv)} failed:\n{err}")
    print(out.strip(), file=sys.stderr)
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--completions", type=int, default=10)
    parser.add_argument("--embedding-dim", type=int, default=768)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--budget", type=int, default=5_000)
    parser.add_argument("--keep", help="folder to keep the files in (default: a temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        gen = folder / "generations.jsonl"
        t = time.perf_counter()
        table = write_generations(gen, args.prompts, args.completions, args.embedding_dim, args.dim)
        write_seconds = time.perf_counter() - t
        size = gen.stat().st_size / 2**20
        N = args.prompts * args.completions
        print(f"generations: {args.prompts} prompts x {args.completions} completions = {N} completions, "
              f"embeddings {args.embedding_dim}-d, {size:.0f} MiB of JSONL (written in {write_seconds:.1f} s, "
              "not timed)")

        rows = []
        f = lambda name: str(folder / name)  # noqa: E731
        rows.append((f"import (PCA {args.embedding_dim} -> {args.dim})", *timed(["import", str(gen), "--out", f("inst.npz"),
                                                       "--dim", str(args.dim)])))
        rows.append((f"solve (greedy, B = {args.budget})", *timed(["solve", f("inst.npz"), "--method", "greedy", "--budget",
                                                                  str(args.budget), "--out", f("d1.json")])))
        rows.append(("export --to jsonl", *timed(["export", f("d1.json"), "--instance", f("inst.npz"),
                                                  "--to", "jsonl", "--out", f("t1.jsonl")])))
        sys.path.insert(0, str(ROOT))
        from pairdesign.pipeline.annotators import simulate_labels

        t = time.perf_counter()
        simulate_labels(f("t1.jsonl"), f("l1.jsonl"), lambda p, c: table[(p, c)], seed=0, ties=0.05)
        annotate = time.perf_counter() - t
        rows.append(("labels (TRL dataset, store)", *timed(["labels", f("l1.jsonl"), "--instance", f("inst.npz"),
                                                           "--out", f("dpo1.jsonl"), "--instance-out",
                                                           f("inst_l.npz")])))
        rows.append((f"next-round (refit, B = {args.budget})",
                     *timed(["next-round", f("inst_l.npz"), "--labels", f("l1.jsonl"), "--method", "greedy",
                             "--budget", str(args.budget),
                             "--out", f("inst2.npz"), "--design-out", f("d2.json"), "--report", f("fit.json")])))
        fit = json.loads(Path(f("fit.json")).read_text())

    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"N = {N} completions, D = {args.embedding_dim} -> d = {args.dim}, budget {args.budget} per round; "
          f"simulated annotators took {annotate:.2f} s (not pairdesign); fit on {fit['labels']:g} labels "
          f"({fit['ties']} ties), converged {fit['converged']}, median standard error "
          f"{np.median(fit['standard_errors']):.3g}\n")
    print("| step | seconds | peak MiB |")
    print("| --- | ---: | ---: |")
    for name, seconds, peak in rows:
        print(f"| {name} | {seconds:.2f} | {peak:.0f} |")
    total = sum(r[1] for r in rows)
    print(f"| round trip (all steps) | {total:.2f} | {max(r[2] for r in rows):.0f} |")


if __name__ == "__main__":
    main()
