"""A few prompts of a store as an in-memory instance: what ``export`` reads of a store too large
for memory.

Exporting a design needs the texts, ids and features of the prompts its pairs come from, and
M0 (the pairs already labeled), not the whole pool. :func:`view_instance` builds the
:class:`~pairdesign.instance.Instance` of the given prompts (every completion of each, so that
centring and the candidates within each prompt are the whole instance's), reading only their
rows, ids and texts from the store; the pairs fixed in or out and labeled that fall within them
come along. Its fingerprint is the store's (computed by one streaming read,
:meth:`~pairdesign.store.InstanceStore.fingerprint`), so a design solved on the store loads onto
it and the task ids are the ones an in-memory export of the whole instance writes.
:func:`design_view` picks the prompts of a design file plus those of the labeled pairs.
Groups are left out (no export step reads them). See docs/design.md section 9.4.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import DesignError, InstanceError
from .fingerprint import _CACHE_KEY
from .instance import FORMAT, Instance
from .store import InstanceStore, _pack

__all__ = ["design_view", "view_instance"]

_PAIR_TABLES = ("fixed_in", "fixed_out", "labeled")


def _local_pairs(table: np.ndarray | None, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of ``table`` (global rows) with both rows in ``rows`` (sorted), renumbered to
    positions in ``rows``; and which entries of the table they are."""
    if table is None or len(table) == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    t = np.asarray(table, dtype=np.int64)
    at = np.searchsorted(rows, t)
    inside = np.all((at < rows.size) & (rows[np.minimum(at, rows.size - 1)] == t), axis=1)
    keep = np.flatnonzero(inside)
    return at[keep], keep


def view_instance(store: InstanceStore, prompts: np.ndarray) -> Instance:
    """The instance of the given prompts of ``store`` (see the module docstring)."""
    prompts = np.unique(np.asarray(prompts, dtype=np.int64))
    first, size = store.prompt_offsets_of(prompts)
    rows = np.concatenate([np.arange(f, f + s) for f, s in zip(first.tolist(), size.tolist())]) \
        if prompts.size else np.zeros(0, dtype=np.int64)
    data: dict[str, object] = {
        "format": np.asarray(FORMAT), "meta": np.asarray(json.dumps(store.meta)),
        "prompt_ids": store.ids("prompt_ids", prompts), "completion_ids": store.ids("completion_ids", rows),
        "prompt_index": np.repeat(np.arange(prompts.size, dtype=np.int64), size),
        "features": store.rows(rows),
    }
    names = store.array_names
    if store.has_scores:
        data["score"] = store.scores_of(rows)
    if "prompt_max_pairs" in names:
        data["prompt_max_pairs"] = np.asarray(store.group["prompt_max_pairs"].get_orthogonal_selection(prompts),
                                              dtype=np.float64)
    for name, index in (("prompt", prompts), ("completion", rows)):
        if f"{name}_text_offsets" in names:
            packed, offsets = _pack(np.asarray(store.ids(f"{name}_text", index), dtype=object))
            data[f"{name}_text_bytes"], data[f"{name}_text_offsets"] = packed.copy(), offsets
    pairs = store.small("pairs")
    if pairs is not None:
        local, keep = _local_pairs(pairs, rows)
        data["pairs"] = local
        costs = store.small("pair_costs")
        if costs is not None:
            data["pair_costs"] = costs[keep]
    for name in _PAIR_TABLES:
        local, keep = _local_pairs(store.small(name), rows)
        if local.size:
            data[name] = local
            if name == "labeled":
                for extra in ("labeled_counts", "labeled_wins"):
                    values = store.small(extra)
                    if values is not None:
                        data[extra] = values[keep]
    own_minimums = store.small("prompt_min_pairs")
    if own_minimums is not None:
        data["prompt_min_pairs"] = own_minimums[prompts]
    for name in ("posterior_mean", "posterior_covariance"):
        value = store.small(name)
        if value is not None:
            data[name] = value
    from .formats.instance_npz import _instance_from_npz

    try:
        view = _instance_from_npz(data)
    except InstanceError as exc:
        raise exc.with_source(str(store.path)) from None
    view.__dict__[_CACHE_KEY] = store.fingerprint()  # the whole store's: designs name it
    return view


def _prompts_by_id(store: InstanceStore, wanted: set[str]) -> np.ndarray:
    """Indices of the store's prompts whose id is in ``wanted`` (ids read block by block)."""
    found = []
    for b in range(store.n_blocks):
        p0, p1 = int(store.block_prompts[b]), int(store.block_prompts[b + 1])
        ids = store.ids("prompt_ids", np.arange(p0, p1))
        hits = np.flatnonzero(np.isin(ids, list(wanted)))
        found.append(hits + p0)
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def design_view(store: InstanceStore, design: str | os.PathLike) -> Instance:
    """:func:`view_instance` of the prompts of a design file's pairs and of the labeled pairs."""
    from .design import _read_csv, _read_json

    path = Path(design)
    if not path.exists():
        raise DesignError("no such file", source=str(path))
    reader = {".json": _read_json, ".csv": _read_csv}.get(path.suffix.lower())
    if reader is None:
        raise DesignError(f"unknown design file type {path.suffix.lower()!r}: use .json or .csv", source=str(path))
    _, pairs = reader(path)
    wanted = {str(entry[0]) for entry in pairs if isinstance(entry, list) and entry}
    prompts = _prompts_by_id(store, wanted)
    labeled = store.small("labeled")
    if labeled is not None and len(labeled):
        rows = np.unique(np.asarray(labeled, dtype=np.int64))
        prompts = np.union1d(prompts, np.asarray(store.group["prompt_index"].get_orthogonal_selection(rows)))
    return view_instance(store, prompts)
