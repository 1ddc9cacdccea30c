"""Simulated annotators, to dry-run a labeling loop before paying people.

Each task (a, b) is labeled by drawing from Bradley-Terry on a known reward r:
``P(a wins) = sigmoid(r_a - r_b)``; with probability ``ties`` the annotator answers "tie" instead.
The labels are written in the shape the annotation tool would export: plain JSONL (the task's
ids plus ``winner``), Label Studio's JSON export (``annotations[].result[].value.selected``
= ``left``/``right``) or Argilla's flattened records (``preference.responses`` and ``preference.responses.status``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._atomic import atomic_write
from ..errors import InputError

Reward = Callable[[str, str], float]
"""reward(prompt_id, completion_id) -> r on the Bradley-Terry logit scale."""


def read_tasks(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The task records of an exported task file (.jsonl, or Label Studio's .json list)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return list(json.loads(path.read_text(encoding="utf-8")))
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def simulate_labels(tasks_path: str | os.PathLike, out: str | os.PathLike, reward: Reward, *,
                    seed: int | None = 0, ties: float = 0.0, annotators: int = 1,
                    limit: int | None = None) -> int:
    """Label the first ``limit`` tasks (all by default) with ``annotators`` simulated votes each;
    write them in the tasks' own tool shape; return the number of votes."""
    rng = np.random.default_rng(seed)
    tasks = read_tasks(tasks_path)[:limit]
    out = Path(out)
    label_studio = out.suffix.lower() == ".json"
    records = []
    votes = 0
    for n, task in enumerate(tasks):
        ids = task.get("data", task)
        if not all(k in ids for k in ("prompt_id", "completion_a", "completion_b")):
            raise InputError("not an exported task (no prompt_id / completion ids)", source=str(tasks_path),
                             field=f"task {n + 1}")
        gap = reward(ids["prompt_id"], ids["completion_a"]) - reward(ids["prompt_id"], ids["completion_b"])
        p = 1.0 / (1.0 + np.exp(-gap))
        draws = ["tie" if rng.random() < ties else ("a" if rng.random() < p else "b")
                 for _ in range(annotators)]
        votes += len(draws)
        if label_studio:
            side = {"a": "left", "b": "right"}
            records.append({"id": n + 1, "data": task["data"], "annotations": [
                {"result": [{"type": "pairwise", "value": {"selected": side[v]}}
                            if v != "tie" else {"type": "choices", "value": {"choices": ["tie"]}}],
                 "was_cancelled": False} for v in draws]})
        elif "response1" in task:  # Argilla records
            names = {"a": "response1", "b": "response2", "tie": "tie"}
            records.append({**task, "preference.responses": [names[v] for v in draws],
                            "preference.responses.status": ["submitted"] * len(draws)})
        else:
            records.append({**{k: v for k, v in task.items() if k not in ("prompt", "response_a", "response_b")},
                            "winner": draws[0] if annotators == 1 else draws})
    with atomic_write(out, "w", encoding="utf-8") as handle:
        if label_studio:
            json.dump(records, handle, ensure_ascii=False, indent=0)
        else:
            for rec in records:
                handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return votes
