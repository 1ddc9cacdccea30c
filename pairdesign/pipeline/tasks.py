"""A design as annotation tasks: Label Studio, Argilla or plain JSONL, in a labeling order.

Order: the design's labels are sorted greedily, each next task being the one of largest marginal
gain ``f(M + w z z^T) - f(M)`` given M0 and the tasks before it (lazy evaluation, exact for D,
whose gains only fall), so that any prefix of the task list is itself a good design if labeling
stops early. A fractional design (one task per pair of positive weight) is ordered by weight
and its tasks carry ``weight`` instead of ``gain``. Each task carries the gain, its rank,
the prompt and completion ids, the instance's fingerprint and the design id (a fingerprint of
the instance and the design's pairs), so that labels can be matched back and checked.
Which completion is shown first is drawn at random (seeded) against position bias.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .._atomic import atomic_write
from ..design import Design
from ..errors import OptionError
from ..fingerprint import instance_fingerprint  # texts, features and ids; see its module
from ..information import Criterion, RankOneInverse, centered_features, prior_information
from ..instance import Instance
from ..progress import Progress
from .tool_setup import setup_path, setup_text


def design_id(instance: Instance, design: Design) -> str:
    """16 hex digits identifying a design on an instance (its listed pairs, in file order)."""
    cand = instance.candidates
    pairs = instance.pair_ids(cand.j[design.rows], cand.k[design.rows])
    h = hashlib.sha256(instance_fingerprint(instance).encode())
    h.update(json.dumps(pairs).encode())
    return h.hexdigest()[:16]


def order_tasks(instance: Instance, design: Design, criterion: str | Criterion | None = None,
                progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The labeling order of the design's listed pairs and the gain of each at its place.

    Returns ``(order, gain)``: ``order[t]`` indexes ``design.rows``; ``gain[t]`` is the marginal
    gain of task t given M0 and tasks 0..t-1 (integer designs), or the weight (fractional).
    """
    L = design.rows.shape[0]
    if design.fractional:
        weight = design.counts[design.rows]
        order = np.argsort(-weight, kind="stable")
        return order, weight[order]
    crit = Criterion.make(criterion or str(design.metadata.get("criterion", "D")), instance)
    cand = instance.candidates
    phi = centered_features(instance)
    Z = phi[cand.j[design.rows]] - phi[cand.k[design.rows]]
    w = cand.weight[design.rows]
    state = RankOneInverse(prior_information(instance), crit)
    heap = [(-state.marginal_gain(Z[t], float(w[t])), t, 0) for t in range(L)]
    heapq.heapify(heap)
    order = np.empty(L, dtype=np.int64)
    gain = np.empty(L)
    step = 0
    with Progress(L, "order tasks", enabled=progress) as bar:
        while heap:
            neg, t, stamp = heapq.heappop(heap)
            if stamp == step:
                order[step], gain[step] = t, -neg
                state.add(Z[t], float(w[t]))
                step += 1
                bar.advance()
            else:
                heapq.heappush(heap, (-state.marginal_gain(Z[t], float(w[t])), t, step))
    return order, gain


@dataclass(frozen=True)
class Task:
    """One comparison to label: ``a`` is shown first (answer1 / response1)."""

    task_id: str
    rank: int
    gain: float
    """The marginal gain at its place (integer designs) or the design weight (fractional)."""
    prompt_id: str
    completion_a: str
    completion_b: str
    prompt: str
    text_a: str
    text_b: str

    weighted: bool = False

    def ids(self, design: str, instance: str) -> dict[str, Any]:
        return {"task_id": self.task_id, "design": design, "instance": instance, "rank": self.rank,
                "weight" if self.weighted else "gain": self.gain, "prompt_id": self.prompt_id,
                "completion_a": self.completion_a, "completion_b": self.completion_b}


def _jsonl(tasks: Iterable[Task], design: str, instance: str) -> Iterable[str]:
    for t in tasks:
        yield json.dumps({**t.ids(design, instance), "prompt": t.prompt, "response_a": t.text_a,
                          "response_b": t.text_b}, ensure_ascii=False) + "\n"


def _argilla(tasks: Iterable[Task], design: str, instance: str) -> Iterable[str]:
    # the record's id is the task id (a task_id key would be an undeclared metadata property,
    # which Argilla drops with a warning)
    for t in tasks:
        ids = t.ids(design, instance)
        del ids["task_id"]
        yield json.dumps({"id": t.task_id, "prompt": t.prompt, "response1": t.text_a,
                          "response2": t.text_b, **ids}, ensure_ascii=False) + "\n"


def _labelstudio(tasks: Iterable[Task], design: str, instance: str) -> Iterable[str]:
    yield "["
    for n, t in enumerate(tasks):
        data = {"prompt": t.prompt, "answer1": t.text_a, "answer2": t.text_b, **t.ids(design, instance)}
        yield ("\n" if n == 0 else ",\n") + json.dumps({"data": data}, ensure_ascii=False)
    yield "\n]\n"


@dataclass(frozen=True)
class TaskFormat:
    """An annotation tool's import shape: the file suffix it reads and the writer."""

    suffix: str
    write: Callable[[Iterable[Task], str, str], Iterable[str]]
    description: str


TASK_FORMATS: dict[str, TaskFormat] = {
    "labelstudio": TaskFormat(".json", _labelstudio, "Label Studio pairwise import: a JSON list of "
                              "{\"data\": {\"prompt\", \"answer1\", \"answer2\", ids}}"),
    "argilla": TaskFormat(".jsonl", _argilla, "Argilla records: {\"id\" (the task id), \"prompt\", "
                          "\"response1\", \"response2\", ids} per line"),
    "jsonl": TaskFormat(".jsonl", _jsonl, "plain JSONL: {ids, \"prompt\", \"response_a\", \"response_b\"}"),
}


def write_tasks(
    instance: Instance, design: Design, fmt: str, path: str | os.PathLike, *,
    seed: int | None = 0, criterion: "str | Criterion | None" = None, progress: bool = False,
) -> dict[str, Any]:
    """Write the design's labels as annotation tasks (atomically), and for Label Studio and
    Argilla the project setup the tasks fit beside them (:mod:`pairdesign.pipeline.tool_setup`);
    returns a summary (``design`` id, ``instance`` fingerprint, ``tasks``, ``setup`` path)."""
    if fmt not in TASK_FORMATS:
        raise OptionError(f"unknown task format {fmt!r}; choose one of {sorted(TASK_FORMATS)}")
    if instance.completion_texts is None or instance.prompt_texts is None:
        raise OptionError("the instance carries no texts: build it with `pairdesign import` "
                          "(tasks need the prompt and completion texts)")
    form = TASK_FORMATS[fmt]
    path = Path(path)
    if path.suffix.lower() != form.suffix:
        raise OptionError(f"{path}: a {fmt} task file must end in {form.suffix}")
    order, gain = order_tasks(instance, design, criterion, progress=progress)
    did, ifp = design_id(instance, design), instance_fingerprint(instance)
    cand = instance.candidates
    rows = design.rows[order]
    j, k = cand.j[rows].copy(), cand.k[rows].copy()
    swap = np.random.default_rng(seed).random(rows.shape[0]) < 0.5
    j[swap], k[swap] = k[swap], j[swap]
    pids = instance.prompt_ids[instance.prompt_of_row[j]]
    width = max(len(str(rows.shape[0])), 4)

    def tasks() -> Iterable[Task]:
        for t in range(rows.shape[0]):
            a, b = int(j[t]), int(k[t])
            yield Task(f"{did}-{t + 1:0{width}d}", t + 1, float(gain[t]), str(pids[t]),
                       str(instance.completion_ids[a]), str(instance.completion_ids[b]),
                       instance.prompt_texts[int(instance.prompt_of_row[a])],
                       instance.completion_texts[a], instance.completion_texts[b], design.fractional)

    with atomic_write(path, "w", encoding="utf-8") as handle, \
            Progress(rows.shape[0], "export", enabled=progress) as bar:
        for chunk in form.write(tasks(), did, ifp):
            handle.write(chunk)
            bar.advance(chunk.count("\n") if fmt != "labelstudio" else 1)
    setup = setup_path(path, fmt)
    if setup is not None:
        with atomic_write(setup, "w", encoding="utf-8") as handle:
            handle.write(setup_text(fmt, fractional=design.fractional))
    return {"design": did, "instance": ifp, "tasks": int(rows.shape[0]), "format": fmt, "setup": setup,
            "order": "by weight (fractional design)" if design.fractional else "by greedy gain"}
