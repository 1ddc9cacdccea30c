"""The NPZ form of an instance: one row per completion, for large instances.

Arrays ``prompt_ids``, ``prompt_index`` (the prompt of every completion row), ``completion_ids``,
``features`` (rows x d, float64), optional ``score``, optional ``posterior_mean`` (d) and
``posterior_covariance`` (d x d), pair tables as (P, 2) global rows, groups as
flat arrays with offsets, texts as UTF-8 bytes with offsets (no pickles), and ``meta``: the scalar
settings as a JSON string. It carries exactly what the JSON form carries.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .._atomic import atomic_write
from ..errors import InstanceError
from ..instance import FORMAT, Group, Instance
from .instance_json import _expect, _reject_constant

_NPZ_ARRAYS = {"format", "meta", "prompt_ids", "prompt_index", "completion_ids", "features", "score",
               "prompt_max_pairs", "pairs", "pair_costs", "fixed_in", "fixed_out", "labeled",
               "labeled_counts", "group_names", "group_budgets", "group_prompts", "group_offsets",
               "labeled_wins", "prompt_text_bytes", "prompt_text_offsets", "completion_text_bytes",
               "completion_text_offsets", "posterior_mean", "posterior_covariance"}
_META_FIELDS = {"name", "budget", "ridge", "weights", "max_pairs_per_prompt",
                "max_pairs_per_completion", "max_labels_per_pair", "projection", "rounds"}


def _pack_texts(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Texts as one UTF-8 byte array and offsets (no pickles, no fixed-width UTF-32)."""
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _unpack_texts(data: np.ndarray, offsets: np.ndarray, name: str) -> tuple[str, ...]:
    raw = np.asarray(data, dtype=np.uint8).tobytes()
    offsets = np.asarray(offsets)
    _expect(offsets.ndim == 1 and offsets.size >= 1 and offsets[0] == 0 and offsets[-1] == len(raw)
            and bool(np.all(np.diff(offsets) >= 0)), "offsets do not match the bytes", f"{name}_text_offsets")
    try:
        return tuple(raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist()))
    except UnicodeDecodeError as exc:
        raise InstanceError(f"not valid UTF-8: {exc}", field=f"{name}_text_bytes") from None


def _instance_to_npz(inst: Instance) -> dict[str, np.ndarray]:
    meta = {key: getattr(inst, key) for key in sorted(_META_FIELDS)}
    meta["rounds"] = list(inst.rounds)
    arrays: dict[str, np.ndarray] = {
        "format": np.asarray(FORMAT),
        "meta": np.asarray(json.dumps(meta)),
        "prompt_ids": inst.prompt_ids,
        "prompt_index": inst.prompt_of_row,
        "completion_ids": inst.completion_ids,
        "features": inst.features,
    }
    if inst.scores is not None:
        arrays["score"] = inst.scores
    if inst.prompt_max_pairs is not None:
        arrays["prompt_max_pairs"] = inst.prompt_max_pairs
    if inst.pairs is not None:
        arrays["pairs"] = inst.pairs
        if inst.pair_costs is not None:
            arrays["pair_costs"] = inst.pair_costs
    for name in ("fixed_in", "fixed_out", "labeled"):
        if getattr(inst, name).shape[0]:
            arrays[name] = getattr(inst, name)
    if inst.labeled_counts is not None:
        arrays["labeled_counts"] = inst.labeled_counts
    if inst.labeled_wins is not None:
        arrays["labeled_wins"] = inst.labeled_wins
    if inst.posterior_mean is not None:
        arrays["posterior_mean"] = inst.posterior_mean
        arrays["posterior_covariance"] = inst.posterior_covariance
    for name in ("prompt", "completion"):
        texts = getattr(inst, f"{name}_texts")
        if texts is not None:
            arrays[f"{name}_text_bytes"], arrays[f"{name}_text_offsets"] = _pack_texts(texts)
    if inst.groups:
        arrays["group_names"] = np.asarray([g.name for g in inst.groups], dtype=str)
        arrays["group_budgets"] = np.asarray([g.budget for g in inst.groups])
        arrays["group_prompts"] = np.concatenate([g.prompts for g in inst.groups])
        arrays["group_offsets"] = np.cumsum([0] + [len(g.prompts) for g in inst.groups])
    return arrays


def _instance_from_npz(data: dict[str, np.ndarray]) -> Instance:
    unknown = sorted(set(data) - _NPZ_ARRAYS)
    _expect(not unknown, f"unknown array(s) {unknown}; known: {sorted(_NPZ_ARRAYS)}", unknown[0] if unknown else "")
    for key in ("format", "meta", "prompt_ids", "prompt_index", "completion_ids", "features"):
        _expect(key in data, "missing array", key)
    version = str(data["format"])
    _expect(version == FORMAT, f"unsupported version {version!r}; expected {FORMAT!r}", "format")
    try:
        meta = json.loads(str(data["meta"]), parse_constant=_reject_constant)
    except ValueError as exc:
        raise InstanceError(f"not valid JSON: {exc}", field="meta") from None
    _expect(isinstance(meta, dict), "must be a JSON object", "meta")
    unknown = sorted(set(meta) - _META_FIELDS)
    _expect(not unknown, f"unknown field(s) {unknown}", "meta")
    _expect("budget" in meta, "missing", "meta.budget")
    prompt_index = data["prompt_index"]
    _expect(np.issubdtype(prompt_index.dtype, np.integer), "must hold integers", "prompt_index")
    n = data["prompt_ids"].shape[0]
    _expect(prompt_index.ndim == 1, "must be one-dimensional", "prompt_index")
    sizes = np.bincount(prompt_index, minlength=n) if prompt_index.size and prompt_index.min() >= 0 else None
    ok = sizes is not None and sizes.shape[0] == n and np.all(np.diff(prompt_index) >= 0)
    _expect(bool(ok), "must list, for each completion row, its prompt 0..n-1 in nondecreasing order",
            "prompt_index")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    groups = []
    if "group_names" in data:
        go = data["group_offsets"]
        for g, gname in enumerate(data["group_names"]):
            groups.append(Group(str(gname), data["group_prompts"][go[g]:go[g + 1]],
                                float(data["group_budgets"][g])))
    texts = {}
    for name in ("prompt", "completion"):
        present = [f"{name}_text_bytes" in data, f"{name}_text_offsets" in data]
        _expect(present[0] == present[1], "needs both _text_bytes and _text_offsets", f"{name}_text_bytes")
        texts[name] = (_unpack_texts(data[f"{name}_text_bytes"], data[f"{name}_text_offsets"], name)
                       if present[0] else None)
    meta["rounds"] = tuple(meta.get("rounds") or ())
    empty = np.zeros((0, 2), dtype=np.int64)
    return Instance(
        labeled_wins=data.get("labeled_wins"),
        prompt_texts=texts["prompt"],
        completion_texts=texts["completion"],
        prompt_ids=data["prompt_ids"],
        prompt_offsets=offsets,
        completion_ids=data["completion_ids"],
        features=data["features"],
        scores=data.get("score"),
        prompt_max_pairs=data.get("prompt_max_pairs"),
        pairs=data.get("pairs"),
        pair_costs=data.get("pair_costs"),
        fixed_in=data.get("fixed_in", empty),
        fixed_out=data.get("fixed_out", empty),
        labeled=data.get("labeled", empty),
        labeled_counts=data.get("labeled_counts"),
        groups=tuple(groups),
        posterior_mean=data.get("posterior_mean"),
        posterior_covariance=data.get("posterior_covariance"),
        **{key: meta[key] for key in meta},
    )



def read_instance_npz(path: Path) -> Instance:
    """Read an instance from an NPZ file (never unpickling; errors attributed by the caller)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InstanceError(f"not a readable NPZ archive: {exc}") from None
    return _instance_from_npz(data)


def write_instance_npz(instance: Instance, path: str | os.PathLike) -> None:
    """Write an instance as NPZ, atomically."""
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **_instance_to_npz(instance))
