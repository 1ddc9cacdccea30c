"""Design files, ``pairdesign.design/1``: written (:func:`save_design`, which :meth:`Result.save`
calls) and read back (:func:`load_design`) here, in one place.

A design lists its pairs as ``[prompt_id, completion_id, completion_id]`` (once per label; a
fractional design adds a 4th element, the weight). :func:`load_design` maps them onto the
candidate pairs of an instance, so that a design can seed a local search (``--start FILE``),
be exported for labeling, or be scored again with :func:`pairdesign.objective`.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._atomic import atomic_write
from ._jsonio import JSONError, loads
from .errors import DesignError, OptionError
from .fingerprint import instance_fingerprint
from .instance import Instance

if TYPE_CHECKING:
    from .solvers.result import Result

DESIGN_FORMAT = "pairdesign.design/1"


@dataclass(frozen=True)
class Design:
    """A design read from a file, on the candidates of one instance."""

    counts: np.ndarray
    """Labels per candidate pair (weights for a fractional design), shape (P,)."""
    rows: np.ndarray
    """For each listed pair, in file order, its candidate index (shape (lines,))."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """The file's other fields (method, criterion, objective, status, ...)."""

    @property
    def fractional(self) -> bool:
        return bool(self.metadata.get("fractional", False))


def design_document(result: "Result") -> dict[str, Any]:
    """The design file's content for a result: its metadata, then ``pairs``."""
    return {
        "format": DESIGN_FORMAT,
        "instance": result.instance_name,
        "instance_fingerprint": result.instance_fingerprint,
        "method": result.method,
        "solver": result.solver,
        "criterion": result.criterion,
        "budget": result.budget,
        "budget_used": result.budget_used,
        "labels": result.n_labels,
        "objective": result.objective,
        "bound": result.bound,
        "gap": result.gap,
        "status": result.status.value,
        "termination": result.termination.value,
        "seconds": round(result.seconds, 6),
        "seed": result.seed,
        "fractional": result.fractional,
        "pairs": ([list(p) for p in result.pairs] if result.weights is None
                  else [list(p) + [w] for p, w in zip(result.pairs, result.weights)]),
    }


def save_design(result: "Result", path: str | os.PathLike) -> None:
    """Write a design as ``.json`` or ``.csv`` (by the suffix), atomically.

    The JSON form has one line per pair; the CSV has a header ``prompt_id,completion_a,
    completion_b[,weight]`` preceded by ``# key: value`` lines with the metadata.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    doc = design_document(result)
    pairs = doc.pop("pairs")
    if suffix == ".json":
        with atomic_write(path, "w", encoding="utf-8") as handle:
            head = json.dumps(doc, indent=1, allow_nan=False)
            rows = ",\n  ".join(json.dumps(p) for p in pairs)
            handle.write(head[:-2] + ',\n "pairs": [' + (f"\n  {rows}\n ]" if pairs else "]") + "\n}\n")
    elif suffix == ".csv":
        with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
            for key, value in doc.items():
                handle.write(f"# {key}: {json.dumps(value)}\n")
            writer = csv.writer(handle)
            writer.writerow(["prompt_id", "completion_a", "completion_b"]
                            + (["weight"] if result.fractional else []))
            writer.writerows(pairs)
    else:
        raise OptionError(f"unknown design file type {suffix!r}: use .json or .csv ({path})")


def _text(path: Path) -> str:
    """The file as text: strict UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DesignError(f"not UTF-8 (byte {exc.start}: {exc.reason})", source=str(path)) from None


def _read_json(path: Path) -> tuple[dict[str, Any], list[Any]]:
    try:
        doc = loads(_text(path))  # refuses 1e400, NaN, deep nesting, lone surrogates
    except JSONError as exc:
        raise DesignError(exc.reason, source=str(path), field=exc.where) from None
    if not isinstance(doc, dict):
        raise DesignError("must be a JSON object", source=str(path))
    pairs = doc.pop("pairs", None)
    if not isinstance(pairs, list):
        raise DesignError("missing or not a list", source=str(path), field="pairs")
    return doc, pairs


def _read_csv(path: Path) -> tuple[dict[str, Any], list[Any]]:
    meta: dict[str, Any] = {}
    lines = _text(path).splitlines()
    body = []
    for number, line in enumerate(lines, start=1):
        if line.startswith("#") and not body:  # metadata comes before the header row only
            key, sep, value = line[1:].partition(":")
            if sep:
                try:
                    meta[key.strip()] = loads(value)
                except JSONError:
                    meta[key.strip()] = value.strip()
        elif line.strip():
            body.append(line)
    rows = list(csv.reader(body))
    if not rows or rows[0][:3] != ["prompt_id", "completion_a", "completion_b"]:
        raise DesignError("expected a header prompt_id,completion_a,completion_b", source=str(path))
    pairs: list[Any] = []
    for row in rows[1:]:
        if len(row) == 4:
            try:
                pairs.append(row[:3] + [float(row[3])])
            except ValueError:
                pairs.append(row)  # reported below with its row number
        else:
            pairs.append(row)
    return meta, pairs


def load_design(path: str | os.PathLike, instance: Instance) -> Design:
    """Read a design file (.json or .csv) and map its pairs onto ``instance``'s candidates.

    A design records the fingerprint of the instance it was solved on (texts, features, ids;
    :mod:`pairdesign.fingerprint`); a design of another instance is refused. Designs written
    before the fingerprint was recorded are read as before.

    Raises :class:`~pairdesign.errors.DesignError` naming the file and the row for a pair whose
    prompt or completion is unknown, that is not a candidate (fixed out, already labeled, not in
    the instance's explicit pair list), or that is listed more often than ``max_labels_per_pair``.
    """
    path = Path(path)
    if not path.exists():
        raise DesignError("no such file", source=str(path))
    suffix = path.suffix.lower()
    if suffix == ".json":
        meta, pairs = _read_json(path)
    elif suffix == ".csv":
        meta, pairs = _read_csv(path)
    else:
        raise DesignError(f"unknown design file type {suffix!r}: use .json or .csv", source=str(path))
    fmt = meta.get("format", DESIGN_FORMAT)
    if fmt != DESIGN_FORMAT:
        raise DesignError(f"unsupported format {fmt!r} (expected {DESIGN_FORMAT!r})",
                          source=str(path), field="format")
    recorded = meta.get("instance_fingerprint")
    if recorded is not None:  # files of older versions have none: read as before
        actual = instance_fingerprint(instance)
        if recorded != actual:
            raise DesignError(f"this design is of another instance (fingerprint {recorded!r}; the "
                              f"instance given is {actual!r}: other texts, features or ids)",
                              source=str(path), field="instance_fingerprint")
    fractional = bool(meta.get("fractional", False))

    cand = instance.candidates
    P = cand.j.shape[0]
    # (prompt id, completion id, completion id) -> candidate index, in both orders
    index: dict[tuple[str, str, str], int] = {}
    for p, (prompt, a, b) in enumerate(instance.pair_ids(cand.j, cand.k)):
        index[(prompt, a, b)] = p
        index[(prompt, b, a)] = p
    prompts = set(str(x) for x in instance.prompt_ids)
    completions: dict[str, set[str]] = {}
    for i, pid in enumerate(instance.prompt_ids):
        lo, hi = int(instance.prompt_offsets[i]), int(instance.prompt_offsets[i + 1])
        completions[str(pid)] = set(str(c) for c in instance.completion_ids[lo:hi])

    counts = np.zeros(P)
    rows = np.empty(len(pairs), dtype=np.int64)
    for r, entry in enumerate(pairs):
        where = f"pairs[{r}]"
        width = 4 if fractional else 3
        if not (isinstance(entry, list) and len(entry) == width
                and all(isinstance(x, str) for x in entry[:3])):
            shape = "[prompt_id, completion_id, completion_id" + (", weight]" if fractional else "]")
            raise DesignError(f"expected {shape}, got {entry!r}", source=str(path), field=where)
        prompt, a, b = entry[:3]
        if prompt not in prompts:
            raise DesignError(f"unknown prompt {prompt!r}", source=str(path), field=where)
        for c in (a, b):
            if c not in completions[prompt]:
                raise DesignError(f"prompt {prompt!r} has no completion {c!r}",
                                  source=str(path), field=where)
        p = index.get((prompt, a, b))
        if p is None:
            raise DesignError(f"({prompt}, {a}, {b}) is not a candidate pair of the instance "
                              "(fixed out, already labeled, or not in its pair list)",
                              source=str(path), field=where)
        amount = 1.0
        if fractional:
            amount = entry[3]
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) \
                    or not math.isfinite(float(amount)) or amount < 0:
                raise DesignError(f"weight must be a non-negative number, got {amount!r}",
                                  source=str(path), field=where)
        counts[p] += float(amount)
        rows[r] = p
        if counts[p] > cand.upper[p] + 1e-9:
            raise DesignError(f"({prompt}, {a}, {b}) listed {counts[p]:g} times, more than the "
                              f"{cand.upper[p]:g} labels a pair may get", source=str(path), field=where)
    return Design(counts=counts, rows=rows, metadata=meta)
