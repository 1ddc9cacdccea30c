"""Labels back: read annotations of exported tasks, write a TRL preference dataset, store the
labeled pairs in the instance (they enter M0 and leave the candidates).

A labels file is JSONL (one labeled task per line), a JSON list (Label Studio's JSON or JSON-MIN
export) or CSV (Label Studio's CSV export). Each record keeps the ids the export wrote
(``design``, ``instance``, ``prompt_id``, ``completion_a``, ``completion_b``; at the top level,
under Label Studio's ``data`` or Argilla's ``metadata``); how each tool's records say who won is
in :mod:`pairdesign.pipeline.label_formats`. The outcome of a label is 1 when ``completion_a``
won, 0 when ``completion_b`` won and 1/2 for a tie (the Bradley-Terry fit's convention). A task
with several votes gives several labels; when they disagree (a split task) the DPO dataset gets
two opposite rows, as the fit gets both outcomes. Ties are reported and left out of the DPO
dataset, which has no place for them. A task given twice in a file is refused, never counted
twice; so is a file (or a design) without any vote.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, NoReturn

import numpy as np

from .._atomic import atomic_write
from .._jsonio import JSONError, loads, loads_line
from ..errors import InputError, OptionError
from ..instance import Instance, _pair_keys
from .label_formats import record_votes, short
from .tasks import instance_fingerprint

ID_FIELDS = ("design", "instance", "prompt_id", "completion_a", "completion_b")


@dataclass(frozen=True)
class Label:
    """One label: ``outcome`` 1 (a won), 0 (b won) or 0.5 (tie); rows are instance rows."""

    where: str
    row_a: int
    row_b: int
    outcome: float
    task: str = ""
    """The exported task's id (``task_id``, or Argilla's record ``id``), when the file keeps it."""


@dataclass(frozen=True)
class LabelSet:
    """The labels of one design read from a file, checked against an instance."""

    source: str
    design: str
    labels: tuple[Label, ...]
    records: int
    """Records in the file (rows for Label Studio's JSON-MIN and CSV: one per annotation)."""
    unlabeled: int
    """Tasks of the design without a vote (cancelled, drafts only, nothing answered)."""
    stored: bool = False
    """True when the instance already holds these labels (read in by an earlier step)."""
    tasks: int = 0
    """Distinct tasks of the design in the file."""
    split: int = 0
    """Tasks whose votes disagree (both completions won a vote): two opposite rows in the dataset."""
    ignored: int = 0
    """Results of other controls (Label Studio comments, a confidence question) not read as votes."""
    cancelled: int = 0
    """Label Studio annotations cancelled (skipped) by the annotator."""
    not_submitted: int = 0
    """Argilla responses left as draft or discarded (not votes)."""
    skipped: tuple[tuple[str, int, str], ...] = ()
    """(design, records, why) of the records of other designs left out."""
    ties: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ties", sum(1 for lab in self.labels if lab.outcome == 0.5))

    def summary(self) -> str:
        """One line: what was read and what was left out."""
        def n(count: int, what: str, plural: str | None = None) -> str:
            return f"{count} {what if count == 1 else (plural or what + 's')}"

        parts = [f"{n(self.split, 'split task')} (two opposite rows in the dataset)",
                 f"{n(self.ties, 'tie')} (left out of the dataset)",
                 f"{n(self.unlabeled, 'task')} without a vote"]
        if self.cancelled:
            parts.append(f"{n(self.cancelled, 'cancelled annotation')}")
        if self.not_submitted:
            parts.append(f"{n(self.not_submitted, 'draft or discarded response')} left out")
        if self.ignored:
            parts.append(f"{n(self.ignored, 'result')} of other controls ignored")
        for design, count, why in self.skipped:
            parts.append(f"skipped {n(count, 'record')} of design {design} ({why})")
        return (f"read {n(len(self.labels), 'label')} of design {self.design} from {n(self.tasks, 'task')} "
                f"({n(self.records, 'record')}): " + "; ".join(parts))


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) for each record of a .jsonl, .json or .csv labels file."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            doc = loads(path.read_bytes())  # the safe parser: depth, NaN, surrogates
        except JSONError as exc:
            raise InputError(exc.reason, source=str(path), field=exc.where) from None
        if not isinstance(doc, list):
            raise InputError("must be a JSON list of labeled tasks (Label Studio's JSON or JSON-MIN export)",
                             source=str(path))
        for i, rec in enumerate(doc):
            yield f"item {i + 1}", rec
    elif suffix == ".jsonl":
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    record = loads_line(raw, number)  # the safe parser: depth, NaN, surrogates
                except JSONError as exc:
                    raise InputError(exc.reason, source=str(path), field=exc.where) from None
                yield f"line {number}", record
    elif suffix == ".csv":
        try:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                reader = csv.DictReader(handle)
                start = 2
                for row in reader:
                    if None in row:
                        raise InputError(f"has more cells than the header ({len(reader.fieldnames or [])})",
                                         source=str(path), field=f"line {start}")
                    yield f"line {start}", row
                    start = reader.line_num + 1
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text ({exc})", source=str(path)) from None
        except csv.Error as exc:
            raise InputError(f"not valid CSV ({exc})", source=str(path)) from None
    else:
        raise InputError(f"unknown labels file type {suffix!r}: use .jsonl, .json or .csv (Label Studio's "
                         "CSV export)", source=str(path))


def _ids(rec: dict) -> dict[str, Any]:
    """Where a record keeps the exported ids: Label Studio's ``data``, Argilla's nested
    ``metadata``, or the record itself."""
    return next((rec[k] for k in ("data", "metadata") if isinstance(rec.get(k), dict)
                 and "design" in rec[k]), rec)


def read_labels(path: str | os.PathLike, instance: Instance, *, winner_field: str | None = None,
                expected_design: str | None = None, design_pairs: np.ndarray | None = None,
                allow_stored: bool = False, tie_control: str | None = None) -> LabelSet:
    """Read the votes of one design from a labels file and match each to the instance by its
    exported ids.

    A file may hold several designs (one annotation project across rounds): with
    ``expected_design`` only that design's records are read; without it, the records of designs
    already read into the instance are skipped, and one other design must remain. Skipped records
    are reported in :attr:`LabelSet.skipped`. Raises :class:`InputError` naming the file and the
    record for malformed records, unknown prompts or completions, labels of another instance, a
    task given twice (several annotators' votes go in one record, or in Label Studio's JSON-MIN /
    CSV rows of distinct ``annotation_id``), one annotation voting two ways, pairs the instance
    already holds as labeled, and a design without any vote. With ``allow_stored``, labels of a
    design the instance already records in ``rounds`` are checked and returned with ``stored=True``
    (their count must match the record). With ``design_pairs`` ((P, 2) completion rows of the
    design), a label of any other pair is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", source=str(path))

    def failer(where: str):
        def fail(message: str, at: str = "") -> NoReturn:
            raise InputError(message, source=str(path), field=where + (f": {at}" if at else ""))
        return fail

    # pass 1: the ids of every record, grouped by design (records of other designs are skipped
    # unread: they may come from earlier rounds of the same annotation project)
    by_design: dict[str, list[tuple[str, dict, dict]]] = {}
    records = 0
    for where, rec in _records(path):
        fail = failer(where)
        if not isinstance(rec, dict):
            fail("must be a JSON object (one labeled task)")
        records += 1
        ids = _ids(rec)
        for key in ID_FIELDS:
            if not isinstance(ids.get(key), str):
                fail(f"missing '{key}' (keep the ids written by `pairdesign export`)" if key not in ids
                     else f"must be a string, got {short(ids[key])}", key)
        by_design.setdefault(ids["design"], []).append((where, rec, ids))
    if not by_design:
        raise InputError("no labeled tasks (the file has no records)", source=str(path))

    read_in = {r.get("design"): r for r in instance.rounds}
    listing = ", ".join(f"{d} ({len(v)} records from {v[0][0]})" for d, v in by_design.items())
    stored: dict[str, Any] | None = None
    if expected_design is not None:
        design = expected_design
        if design not in by_design:
            raise InputError(f"no record of design {design} (the design given); the file holds {listing}",
                             source=str(path))
        skip_why = "not the design given"
    else:
        unread = [d for d in by_design if d not in read_in]
        if len(unread) > 1:
            first = by_design[unread[0]][0][0]
            raise InputError(f"records of {len(unread)} designs not read yet: {listing}; name the design "
                             "to read with --design (the others are skipped)", source=str(path),
                             field=first)
        if unread:
            design = unread[0]
        else:  # every design was read in before: the latest one
            design = max(by_design, key=lambda d: read_in[d].get("round", 0))
        skip_why = "already read into the instance"
    if design in read_in:
        done = read_in[design]
        if not allow_stored:
            where = by_design[design][0][0]
            raise InputError(f"the labels of design {design} were already read into the instance "
                             f"(round {done.get('round', '?')}, from {done.get('source', '?')})",
                             source=str(path), field=f"{where}: design")
        stored = done
    skipped = tuple((d, len(v), skip_why) for d, v in by_design.items() if d != design)

    # pass 2: the chosen design's records against the instance
    fingerprint = instance_fingerprint(instance)
    prompt_index = {str(p): i for i, p in enumerate(instance.prompt_ids.tolist())}
    offsets = instance.prompt_offsets
    local: dict[int, dict[str, int]] = {}
    labeled_keys = set(_pair_keys(instance.labeled[:, 0], instance.labeled[:, 1],
                                  instance.n_completions).tolist())
    allowed = None if design_pairs is None else set(
        _pair_keys(design_pairs[:, 0], design_pairs[:, 1], instance.n_completions).tolist())
    labels: list[Label] = []
    seen: dict[int, tuple[str, set[str | None]]] = {}
    outcomes: dict[int, set[float]] = {}
    ignored = cancelled = not_submitted = 0
    for where, rec, ids in by_design[design]:
        fail = failer(where)
        if ids["instance"] != fingerprint:
            fail(f"these labels are for another instance (fingerprint {ids['instance']}; this instance is "
                 f"{fingerprint})", "instance")
        i = prompt_index.get(ids["prompt_id"])
        if i is None:
            fail(f"unknown prompt {ids['prompt_id']!r}", "prompt_id")
        if i not in local:
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            local[i] = {str(c): lo + r for r, c in enumerate(instance.completion_ids[lo:hi].tolist())}
        rows = []
        for key in ("completion_a", "completion_b"):
            r = local[i].get(ids[key])
            if r is None:
                fail(f"prompt {ids['prompt_id']!r} has no completion {ids[key]!r}", key)
            rows.append(r)
        if rows[0] == rows[1]:
            fail("completion_a and completion_b are the same completion")
        pair = f"({ids['prompt_id']}, {ids['completion_a']}, {ids['completion_b']})"
        key = int(_pair_keys(np.array([rows[0]]), np.array([rows[1]]), instance.n_completions)[0])
        if allowed is not None and key not in allowed:
            fail(f"the pair {pair} is not in the design")
        if stored is None and key in labeled_keys:
            fail(f"the pair {pair} is already labeled in the instance: were these labels read in before?")
        got = record_votes(rec, fail, winner_field=winner_field, tie_control=tie_control)
        first, annotations = seen.setdefault(key, (where, set()))
        if annotations and (got.annotation is None or got.annotation in annotations or None in annotations):
            fail(f"the task {pair} is given twice (also {first}): each task once per file; the votes of "
                 "several annotators go in one record (Label Studio's JSON-MIN and CSV: rows of "
                 "distinct annotation_id)")
        annotations.add(got.annotation)
        ignored, cancelled = ignored + got.ignored, cancelled + got.cancelled
        not_submitted += got.not_submitted
        task = ids.get("task_id", rec.get("id") if isinstance(rec.get("id"), str) else "")
        for outcome in got.votes:
            labels.append(Label(where, rows[0], rows[1], outcome, str(task)))
            # the outcome for the pair's lower row, so that the rows of one pair compare
            outcomes.setdefault(key, set()).add(outcome if rows[0] < rows[1] else 1.0 - outcome)
    if not labels:
        raise InputError(f"no votes: {len(seen)} tasks of design {design}, none with a vote "
                         f"({cancelled} cancelled annotations, {not_submitted} draft or discarded responses, "
                         f"{ignored} results of other controls); nothing was read", source=str(path))
    if stored is not None and stored.get("labels") != len(labels):
        raise InputError(f"holds {len(labels)} labels of design {design}, but the instance stored "
                         f"{stored.get('labels')} from {stored.get('source')}: not the same labels",
                         source=str(path))
    return LabelSet(source=str(path), design=design, labels=tuple(labels), records=records,
                    unlabeled=len(seen) - len(outcomes), stored=stored is not None, tasks=len(seen),
                    split=sum(1 for o in outcomes.values() if {0.0, 1.0} <= o), ignored=ignored,
                    cancelled=cancelled, not_submitted=not_submitted, skipped=skipped)


def apply_labels(instance: Instance, labelset: LabelSet) -> Instance:
    """The instance with the labels stored: each labeled pair joins ``labeled`` (with its count
    and the labels won by its first completion), leaves the candidates and ``fixed_in``, and
    adds ``count * w_p z_p z_p^T`` to M0; a record joins ``rounds``."""
    N = instance.n_completions
    pairs: dict[int, list[float]] = {}
    for lab in labelset.labels:
        key = int(_pair_keys(np.array([lab.row_a]), np.array([lab.row_b]), N)[0])
        entry = pairs.setdefault(key, [lab.row_a, lab.row_b, 0.0, 0.0])
        entry[2] += 1
        entry[3] += lab.outcome if entry[0] == lab.row_a else 1.0 - lab.outcome
    old = instance.labeled.shape[0]
    counts_old = (np.ones(old, dtype=np.int64) if instance.labeled_counts is None
                  else instance.labeled_counts.copy())
    wins_old = (np.full(old, math.nan) if instance.labeled_wins is None
                else instance.labeled_wins.astype(np.float64).copy())
    # a pair labeled before (e.g. by another design of the same round) adds to its row
    if old:
        existing = {int(key): r for r, key in enumerate(
            _pair_keys(instance.labeled[:, 0], instance.labeled[:, 1], N))}
        for key in [k for k in pairs if k in existing]:
            a, _, count, wins = pairs.pop(key)
            r = existing[key]
            counts_old[r] += int(count)
            same = int(instance.labeled[r, 0]) == a
            wins_old[r] += wins if same else count - wins  # NaN (unknown) stays NaN
    new = np.asarray([[e[0], e[1]] for e in pairs.values()], dtype=np.int64).reshape(-1, 2)
    fixed_in = instance.fixed_in
    if fixed_in.shape[0] and new.shape[0]:
        keep = ~np.isin(_pair_keys(fixed_in[:, 0], fixed_in[:, 1], N), _pair_keys(new[:, 0], new[:, 1], N))
        fixed_in = fixed_in[keep]
    record = {"round": len(instance.rounds) + 1, "design": labelset.design, "labels": len(labelset.labels),
              "ties": labelset.ties, "pairs": int(new.shape[0]), "source": Path(labelset.source).name}
    return replace(
        instance,
        labeled=np.concatenate([instance.labeled, new]),
        labeled_counts=np.concatenate([counts_old, [int(e[2]) for e in pairs.values()]]).astype(np.int64),
        labeled_wins=np.concatenate([wins_old, [e[3] for e in pairs.values()]]),
        fixed_in=fixed_in,
        rounds=instance.rounds + (record,),
    )


def write_preference_dataset(instance: Instance, labelset: LabelSet, path: str | os.PathLike, *,
                             conversational: bool = False, with_ids: bool = False) -> int:
    """Write TRL's preference form, one line per decided label: ``{"prompt", "chosen",
    "rejected"}`` (strings), or conversational (``prompt`` a user message list, ``chosen`` and
    ``rejected`` assistant message lists). Ties are left out. Returns the number of rows."""
    if instance.completion_texts is None or instance.prompt_texts is None:
        raise OptionError("the instance carries no texts: build it with `pairdesign import`")
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        raise OptionError(f"{path}: the dataset is JSONL: use a .jsonl file name")
    rows = 0
    with atomic_write(path, "w", encoding="utf-8") as handle:
        for lab in labelset.labels:
            if lab.outcome == 0.5:
                continue
            win, lose = (lab.row_a, lab.row_b) if lab.outcome == 1.0 else (lab.row_b, lab.row_a)
            prompt = instance.prompt_texts[int(instance.prompt_of_row[win])]
            chosen, rejected = instance.completion_texts[win], instance.completion_texts[lose]
            if conversational:
                row: dict[str, Any] = {"prompt": [{"role": "user", "content": prompt}],
                                       "chosen": [{"role": "assistant", "content": chosen}],
                                       "rejected": [{"role": "assistant", "content": rejected}]}
            else:
                row = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
            if with_ids:
                row.update(prompt_id=str(instance.prompt_ids[instance.prompt_of_row[win]]),
                           chosen_id=str(instance.completion_ids[win]),
                           rejected_id=str(instance.completion_ids[lose]))
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            rows += 1
    return rows
