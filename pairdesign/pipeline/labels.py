"""Labels back: read annotations of exported tasks, write a TRL preference dataset, store the
labeled pairs in the instance (they enter M0 and leave the candidates).

A labels file is JSONL (one labeled task per line) or a JSON list (Label Studio's export). Each
record keeps the ids the export wrote (``design``, ``instance``, ``prompt_id``, ``completion_a``,
``completion_b``; at the top level or under ``data``) and says who won, under ``winner`` (or
``preference``, ``label``, ``choice``, Argilla's ``preference.responses`` (flattened records) or
``responses.preference`` (nested records, ids under ``metadata``), or Label Studio's
``annotations``): ``a``/``b``/``tie``, ``answer1``/``answer2``, ``response1``/``response2``,
``left``/``right``, or a list of those (several annotators). A task without a vote is skipped and
counted. The outcome of a label is 1 when ``completion_a`` won, 0 when ``completion_b`` won and
1/2 for a tie (the Bradley-Terry fit's convention); ties are reported and left out of the DPO
dataset, which has no place for them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .._atomic import atomic_write
from .._jsonio import JSONError, loads, loads_line
from ..errors import InputError, OptionError
from ..instance import Instance, _pair_keys
from .tasks import instance_fingerprint

VOTES: dict[str, float] = {
    **dict.fromkeys(("a", "answer1", "response1", "response_a", "left", "first", "1"), 1.0),
    **dict.fromkeys(("b", "answer2", "response2", "response_b", "right", "second", "2"), 0.0),
    **dict.fromkeys(("tie", "draw", "equal", "same"), 0.5),
}
WINNER_FIELDS = ("winner", "preference", "label", "choice", "preference.responses", "annotations")
ID_FIELDS = ("design", "instance", "prompt_id", "completion_a", "completion_b")


@dataclass(frozen=True)
class Label:
    """One label: ``outcome`` 1 (a won), 0 (b won) or 0.5 (tie); rows are instance rows."""

    where: str
    row_a: int
    row_b: int
    outcome: float


@dataclass(frozen=True)
class LabelSet:
    """The labels of one file, checked against an instance."""

    source: str
    design: str
    labels: tuple[Label, ...]
    records: int
    unlabeled: int
    stored: bool = False
    """True when the instance already holds these labels (read in by an earlier step)."""
    ties: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ties", sum(1 for lab in self.labels if lab.outcome == 0.5))


def _votes(value: Any, where: str, fail) -> list[str]:
    """The votes in a winner value: a string, a list, or tool records (Label Studio, Argilla)."""
    if value is None:
        return []
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list):
        ranked = [item for item in value if isinstance(item, dict) and "rank" in item and "value" in item]
        if ranked and len(ranked) == len(value):  # a ranking answer (Argilla): one vote, rank 1 wins
            try:
                ranks = [float(item["rank"]) for item in ranked]
            except (TypeError, ValueError):
                fail(f"cannot read a ranking from {json.dumps(value)[:80]}", where)
                return []
            top = [str(item["value"]) for item, r in zip(ranked, ranks) if r == min(ranks)]
            return top if len(top) == 1 else ["tie"]
        # Label Studio results may hold other controls (a comment box, a rating): only the
        # pairwise / choices results are votes
        value = [item for item in value if not (isinstance(item, dict) and "type" in item
                                                and item["type"] not in ("pairwise", "choices"))]
        return [v for item in value for v in _votes(item, where, fail)]
    if isinstance(value, dict):
        if value.get("was_cancelled") or value.get("status") in ("discarded", "draft"):
            return []
        for key in ("result", "value", "selected", "choices"):
            if key in value:
                return _votes(value[key], where, fail)
    fail(f"cannot read a vote from {json.dumps(value)[:80]}", where)
    return []


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) for each record of a .jsonl or .json labels file."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            doc = loads(path.read_bytes())  # the safe parser: depth, NaN, surrogates
        except JSONError as exc:
            raise InputError(exc.reason, source=str(path), field=exc.where) from None
        if not isinstance(doc, list):
            raise InputError("must be a JSON list of labeled tasks (Label Studio's JSON export)",
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
    else:
        raise InputError(f"unknown labels file type {suffix!r}: use .jsonl or .json", source=str(path))


def read_labels(path: str | os.PathLike, instance: Instance, *, winner_field: str | None = None,
                expected_design: str | None = None, design_pairs: np.ndarray | None = None,
                allow_stored: bool = False) -> LabelSet:
    """Read a labels file and match every label to the instance by its exported ids.

    Raises :class:`InputError` naming the file and line for malformed records, unknown prompts or
    completions, labels of another instance or of several designs (or not of
    ``expected_design``), and pairs the instance already holds as labeled. With
    ``allow_stored``, the labels of a design the instance already records in ``rounds`` are
    checked and returned with ``stored=True`` (their count must match the record). With
    ``design_pairs`` ((P, 2) completion rows of the design), a label of any other pair is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", source=str(path))
    fingerprint = instance_fingerprint(instance)
    prompt_index = {str(p): i for i, p in enumerate(instance.prompt_ids.tolist())}
    offsets = instance.prompt_offsets
    local: dict[int, dict[str, int]] = {}
    labeled_keys = set(_pair_keys(instance.labeled[:, 0], instance.labeled[:, 1],
                                  instance.n_completions).tolist())
    allowed = None if design_pairs is None else set(
        _pair_keys(design_pairs[:, 0], design_pairs[:, 1], instance.n_completions).tolist())
    design: str | None = None
    design_where = ""
    labels: list[Label] = []
    records = unlabeled = 0
    stored: dict[str, Any] | None = None

    for where, rec in _records(path):
        def fail(message: str, at: str = "") -> None:
            raise InputError(message, source=str(path), field=where + (f": {at}" if at else ""))

        if not isinstance(rec, dict):
            fail("must be a JSON object (one labeled task)")
        records += 1
        ids = next((rec[k] for k in ("data", "metadata") if isinstance(rec.get(k), dict)
                    and "design" in rec[k]), rec)  # Label Studio: data; Argilla nested: metadata
        for key in ID_FIELDS:
            if not isinstance(ids.get(key), str):
                fail(f"missing '{key}' (keep the ids written by `pairdesign export`)" if key not in ids
                     else f"must be a string, got {ids[key]!r}", key)
        if ids["instance"] != fingerprint:
            fail(f"these labels are for another instance (fingerprint {ids['instance']}; "
                 f"this instance is {fingerprint})", "instance")
        if design is None:
            design, design_where = ids["design"], where
            if expected_design is not None and design != expected_design:
                fail(f"these labels are for design {design}, not the design given ({expected_design})",
                     "design")
            done = [r for r in instance.rounds if r.get("design") == design]
            if done and allow_stored:
                stored = done[0]
            elif done:
                fail(f"the labels of design {design} were already read into the instance "
                     f"(round {done[0].get('round', '?')}, from {done[0].get('source', '?')})", "design")
        elif ids["design"] != design:
            fail(f"label for design {ids['design']}, but {design_where} is for design {design}: "
                 "one labels file per design", "design")
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
        key = int(_pair_keys(np.array([rows[0]]), np.array([rows[1]]), instance.n_completions)[0])
        if allowed is not None and key not in allowed:
            fail(f"the pair ({ids['prompt_id']}, {ids['completion_a']}, {ids['completion_b']}) is not in "
                 "the design")
        if stored is None and key in labeled_keys:
            fail(f"the pair ({ids['prompt_id']}, {ids['completion_a']}, {ids['completion_b']}) is already "
                 "labeled in the instance: were these labels read in before?")
        # Argilla's nested records keep the votes under responses[question]
        where_votes = {**rec, **rec["responses"]} if isinstance(rec.get("responses"), dict) else rec
        if winner_field is not None:
            if winner_field not in where_votes and winner_field not in ids:
                fail(f"missing '{winner_field}'")
            value = where_votes.get(winner_field, ids.get(winner_field))
        else:
            value = next((where_votes[k] for k in WINNER_FIELDS if k in where_votes), None)
            if value is None and not any(k in where_votes for k in WINNER_FIELDS):
                fail(f"no vote: expected one of {list(WINNER_FIELDS)} (or name it with --winner-field)")
        votes = _votes(value, "winner", fail)
        if not votes:
            unlabeled += 1
        for vote in votes:
            outcome = VOTES.get(vote.strip().lower())
            if outcome is None:
                fail(f"unknown vote {vote!r}; use a / b / tie (or answer1 / answer2, response1 / "
                     "response2, left / right)", "winner")
            labels.append(Label(where, rows[0], rows[1], outcome))
    if design is None:
        raise InputError("no labeled tasks (the file has no records)", source=str(path))
    if stored is not None and stored.get("labels") != len(labels):
        raise InputError(f"holds {len(labels)} labels of design {design}, but the instance stored "
                         f"{stored.get('labels')} from {stored.get('source')}: not the same labels",
                         source=str(path))
    return LabelSet(source=str(path), design=design, labels=tuple(labels), records=records,
                    unlabeled=unlabeled, stored=stored is not None)


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
