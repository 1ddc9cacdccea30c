"""The chunked instance store: an instance on disk as a Zarr group, in blocks of whole prompts.

For pools too large for one process (1e8 candidate pairs: completions alone of tens of GiB at
d = 64-256). The store holds exactly the arrays and the ``meta`` record of the NPZ form
(``pairdesign.instance/1``; see :mod:`pairdesign.instance`), so that a store that fits in memory
loads as an ordinary :class:`~pairdesign.instance.Instance` through the same validation. Two
differences: strings (ids, texts, group names) are UTF-8 bytes plus offsets (``NAME_bytes``,
``NAME_offsets``; Zarr 3 has no stable string type), and ``features`` may be float32 (loaded as
float64). Per-completion arrays are chunked by block, so a worker reads one block of whole
prompts at a time; two small tables say where blocks start:

    block_prompts[b] .. block_prompts[b+1]   the prompts of block b,
    block_rows[b] .. block_rows[b+1]         its completion rows.

A store is written into a temporary folder beside the target and renamed into place when
complete (:class:`StoreWriter`), so a failed write never leaves a partial store.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InstanceError
from .instance import FORMAT, Instance

try:  # the NPZ form's arrays: one writer and one validating reader for both forms
    from .formats.instance_npz import _instance_from_npz, _instance_to_npz
except ImportError:  # before the file formats moved to pairdesign.formats
    from .instance import _instance_from_npz, _instance_to_npz  # type: ignore[attr-defined,no-redef]

STORE_FORMAT = "pairdesign.store/1"
DEFAULT_BLOCK_ROWS = 1 << 18  # completions per block (whole prompts): 32 MiB of float32 at d = 32
MEMORY_LIMIT = 2 << 30  # bytes: a store whose in-memory instance needs less is loaded into memory
_STRINGS = ("prompt_ids", "completion_ids", "group_names")  # NPZ string arrays, here bytes + offsets
# (the texts are bytes + offsets in the NPZ form already: prompt_text_bytes, prompt_text_offsets)
_PER_ROW = ("prompt_index", "features", "score")  # chunked by block rows
_PER_PROMPT = ("prompt_max_pairs",)  # chunked by block prompts

__all__ = ["STORE_FORMAT", "InstanceStore", "StoreWriter", "is_store", "load_store", "open_store",
           "save_store"]


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a store (by its ``.zarr`` suffix)."""
    return Path(path).suffix.lower() == ".zarr"


def _zarr():
    try:
        import zarr
    except ImportError:
        raise InstanceError("reading or writing a .zarr store needs zarr: "
                            "pip install 'pairdesign[dask]'") from None
    return zarr


def block_layout(prompt_sizes: np.ndarray, block_rows: int = DEFAULT_BLOCK_ROWS) -> np.ndarray:
    """Prompt offsets of blocks of whole prompts with about ``block_rows`` completions each."""
    ends = np.cumsum(prompt_sizes)
    cuts = [0]
    while cuts[-1] < prompt_sizes.size:
        start_rows = ends[cuts[-1] - 1] if cuts[-1] else 0
        nxt = int(np.searchsorted(ends, start_rows + block_rows, side="right"))
        cuts.append(max(nxt, cuts[-1] + 1))
    return np.asarray(cuts, dtype=np.int64)


def _pack(strings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    encoded = [str(s).encode("utf-8") for s in strings.tolist()]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _unpack(data: np.ndarray, offsets: np.ndarray, name: str) -> np.ndarray:
    raw = np.asarray(data, dtype=np.uint8).tobytes()
    start = int(offsets[0]) if offsets.size else 0
    try:
        return np.asarray([raw[a - start:b - start].decode("utf-8")
                           for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())], dtype=str)
    except UnicodeDecodeError as exc:
        raise InstanceError(f"not valid UTF-8: {exc}", field=f"{name}_bytes") from None


class StoreWriter:
    """Writes a store block by block, never holding more than one block.

    ``meta`` is the NPZ form's ``meta`` record (name, budget, ridge, weights, caps, ...).
    Use as a context manager: the store appears at ``path`` only when the block ``with`` ends
    without an error (every block written); otherwise nothing is left behind.
    """

    def __init__(self, path: str | os.PathLike, *, meta: dict[str, Any], prompt_sizes: np.ndarray,
                 dim: int, block_prompts: np.ndarray | None = None, dtype: str = "float32",
                 scores: bool = False, prompt_caps: bool = False):
        zarr = _zarr()
        self.path = Path(path)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise InstanceError(f"features must be float32 or float64, got {dtype}", source=str(path))
        sizes = np.asarray(prompt_sizes, dtype=np.int64)
        self.prompt_offsets = np.zeros(sizes.size + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.prompt_offsets[1:])
        self.block_prompts = block_layout(sizes) if block_prompts is None else np.asarray(block_prompts, np.int64)
        self.block_rows = self.prompt_offsets[self.block_prompts]
        n, N = sizes.size, int(self.prompt_offsets[-1])
        parent = self.path.parent if str(self.path.parent) else Path(".")
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=parent))
        self.group = zarr.open_group(self._tmp, mode="w")
        self.group.attrs["format"] = STORE_FORMAT
        self.group.attrs["instance_format"] = FORMAT
        self.group.attrs["meta"] = json.loads(json.dumps(meta))
        self.group.create_array("block_prompts", data=self.block_prompts)
        self.group.create_array("block_rows", data=self.block_rows)
        row_chunk = max(1, int(np.diff(self.block_rows).max(initial=1)))
        prompt_chunk = max(1, int(np.diff(self.block_prompts).max(initial=1)))
        self.group.create_array("features", shape=(N, dim), chunks=(row_chunk, dim), dtype=dtype)
        self.group.create_array("prompt_index", shape=(N,), chunks=(row_chunk,), dtype="int64")
        if scores:
            self.group.create_array("score", shape=(N,), chunks=(row_chunk,), dtype="float64")
        if prompt_caps:
            self.group.create_array("prompt_max_pairs", shape=(n,), chunks=(prompt_chunk,), dtype="float64")
        for name in ("prompt_ids", "completion_ids"):  # appended block by block
            self.group.create_array(f"{name}_bytes", shape=(0,), chunks=(1 << 22,), dtype="uint8")
            self.group.create_array(f"{name}_offsets", shape=(n + 1 if name == "prompt_ids" else N + 1,),
                                    chunks=(prompt_chunk if name == "prompt_ids" else row_chunk,),
                                    dtype="int64")
        self._next = 0
        self._bytes = {"prompt_ids": 0, "completion_ids": 0}

    @property
    def n_blocks(self) -> int:
        return int(self.block_prompts.size - 1)

    def write_block(self, b: int, *, features: np.ndarray, prompt_ids: np.ndarray,
                    completion_ids: np.ndarray, scores: np.ndarray | None = None,
                    prompt_max_pairs: np.ndarray | None = None) -> None:
        """Write block ``b`` (blocks in order): its completions' features, ids and scores."""
        if b != self._next:
            raise ValueError(f"blocks must be written in order: expected {self._next}, got {b}")
        p0, p1 = int(self.block_prompts[b]), int(self.block_prompts[b + 1])
        r0, r1 = int(self.block_rows[b]), int(self.block_rows[b + 1])
        if features.shape[0] != r1 - r0:
            raise ValueError(f"block {b} has {r1 - r0} completions, got {features.shape[0]} rows")
        g = self.group
        g["features"][r0:r1] = features
        sizes = np.diff(self.prompt_offsets[p0:p1 + 1])
        g["prompt_index"][r0:r1] = np.repeat(np.arange(p0, p1, dtype=np.int64), sizes)
        if scores is not None:
            g["score"][r0:r1] = scores
        if prompt_max_pairs is not None:
            g["prompt_max_pairs"][p0:p1] = prompt_max_pairs
        for name, strings, (lo, hi) in (("prompt_ids", prompt_ids, (p0, p1)),
                                        ("completion_ids", completion_ids, (r0, r1))):
            data, offsets = _pack(np.asarray(strings))
            start = self._bytes[name]
            g[f"{name}_bytes"].append(data)
            # offsets[lo] .. offsets[hi]: the first was written with the previous block
            g[f"{name}_offsets"][lo:hi + 1] = offsets + start
            self._bytes[name] = start + int(data.size)
        self._next += 1

    def write_tables(self, arrays: dict[str, np.ndarray]) -> None:
        """The small arrays of the NPZ form (pairs, fixed_in, labeled, groups, texts, ...)."""
        for name, value in arrays.items():
            value = np.asarray(value)
            if name in _STRINGS:
                data, offsets = _pack(value)
                self.group.create_array(f"{name}_bytes", data=data if data.size else np.zeros(0, np.uint8))
                self.group.create_array(f"{name}_offsets", data=offsets)
            else:
                self.group.create_array(name, data=value)

    def commit(self) -> None:
        if self._next != self.n_blocks:
            raise ValueError(f"only {self._next} of {self.n_blocks} blocks were written")
        self.group.attrs["complete"] = True
        old = None
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
            os.replace(self.path, old)
        os.replace(self._tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            try:
                self.commit()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()


def save_store(instance: Instance, path: str | os.PathLike, *, dtype: str = "float64",
               block_rows: int = DEFAULT_BLOCK_ROWS) -> None:
    """Write an in-memory instance as a store (float64 by default: it round-trips exactly)."""
    arrays = _instance_to_npz(instance)
    meta = json.loads(str(arrays["meta"]))
    blocks = block_layout(instance.prompt_sizes, block_rows)
    small = {k: v for k, v in arrays.items()
             if k not in ("format", "meta", "prompt_ids", "completion_ids") + _PER_ROW + _PER_PROMPT}
    with StoreWriter(path, meta=meta, prompt_sizes=instance.prompt_sizes, dim=instance.dim,
                     block_prompts=blocks, dtype=dtype, scores=instance.scores is not None,
                     prompt_caps=instance.prompt_max_pairs is not None) as writer:
        offsets = instance.prompt_offsets
        for b in range(writer.n_blocks):
            p0, p1 = int(blocks[b]), int(blocks[b + 1])
            r0, r1 = int(offsets[p0]), int(offsets[p1])
            writer.write_block(
                b, features=instance.features[r0:r1], prompt_ids=instance.prompt_ids[p0:p1],
                completion_ids=instance.completion_ids[r0:r1],
                scores=None if instance.scores is None else instance.scores[r0:r1],
                prompt_max_pairs=None if instance.prompt_max_pairs is None else instance.prompt_max_pairs[p0:p1])
        writer.write_tables(small)


@dataclass(frozen=True)
class Block:
    """One block of whole prompts, read from a store (features as float64)."""

    index: int
    prompt0: int
    row0: int
    prompt_sizes: np.ndarray
    features: np.ndarray
    scores: np.ndarray | None
    prompt_caps: np.ndarray | None  # own caps of these prompts (NaN/inf where none), or None


class InstanceStore:
    """A store opened lazily: sizes and settings at once, blocks and rows when asked.

    Picklable (it holds the path only), so Dask workers open it themselves.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        zarr = _zarr()
        if not self.path.is_dir():
            raise InstanceError("no such store (a .zarr folder)", source=str(self.path))
        try:
            group = zarr.open_group(self.path, mode="r")
            attrs = dict(group.attrs)
        except Exception as exc:  # zarr raises several kinds for a folder that is not a group
            raise InstanceError(f"not a readable Zarr store: {exc}", source=str(self.path)) from None
        source = str(self.path)
        if attrs.get("format") != STORE_FORMAT:
            raise InstanceError(f"unsupported format {attrs.get('format')!r}; expected {STORE_FORMAT!r}",
                                source=source, field="format")
        if not attrs.get("complete"):
            raise InstanceError("the store was not completely written", source=source)
        meta = attrs.get("meta")
        if not isinstance(meta, dict) or "budget" not in meta:
            raise InstanceError("must be an object with at least 'budget'", source=source, field="meta")
        self.meta: dict[str, Any] = meta
        names = set(group.array_keys())
        for key in ("features", "prompt_index", "block_prompts", "block_rows", "prompt_ids_offsets",
                    "completion_ids_offsets"):
            if key not in names:
                raise InstanceError("missing array", source=source, field=key)
        self.array_names = names
        self.block_prompts = np.asarray(group["block_prompts"][:], dtype=np.int64)
        self.block_rows = np.asarray(group["block_rows"][:], dtype=np.int64)
        feats = group["features"]
        self.n_completions, self.dim = int(feats.shape[0]), int(feats.shape[1])
        self.feature_dtype = str(feats.dtype)
        self.n_prompts = int(group["prompt_ids_offsets"].shape[0]) - 1
        if (self.block_prompts.size < 2 or self.block_prompts[0] != 0
                or self.block_prompts[-1] != self.n_prompts or self.block_rows[-1] != self.n_completions
                or np.any(np.diff(self.block_prompts) < 1)):
            raise InstanceError("blocks do not cover the prompts and completions", source=source,
                                field="block_prompts")
        self.has_scores = "score" in names
        self._group = None

    # ---------------------------------------------------------------------- access
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_group"] = None
        return state

    @property
    def group(self):
        if self._group is None:
            self._group = _zarr().open_group(self.path, mode="r")
        return self._group

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or "")

    @property
    def n_blocks(self) -> int:
        return int(self.block_prompts.size - 1)

    def small(self, name: str) -> np.ndarray | None:
        """A small array of the NPZ form (fixed_in, labeled, pairs, ...), or None if absent."""
        if name in _STRINGS:
            if f"{name}_offsets" not in self.array_names:
                return None
            return _unpack(self.group[f"{name}_bytes"][:], self.group[f"{name}_offsets"][:], name)
        return np.asarray(self.group[name][:]) if name in self.array_names else None

    def block(self, b: int) -> Block:
        """Block ``b``: its prompts' sizes, features (float64) and scores; checks them finite."""
        p0, p1 = int(self.block_prompts[b]), int(self.block_prompts[b + 1])
        r0, r1 = int(self.block_rows[b]), int(self.block_rows[b + 1])
        g = self.group
        index = np.asarray(g["prompt_index"][r0:r1])
        sizes = np.bincount(index - p0, minlength=p1 - p0) if index.size else np.zeros(p1 - p0, np.int64)
        if index.size and (index.min() < p0 or index.max() >= p1 or np.any(np.diff(index) < 0)
                           or sizes.size != p1 - p0):
            raise InstanceError("rows are not grouped by prompt within their block",
                                source=str(self.path), field=f"prompt_index[{r0}:{r1}]")
        features = np.asarray(g["features"][r0:r1], dtype=np.float64)
        bad = ~np.isfinite(features).all(axis=1)
        if bad.any():
            r = int(np.flatnonzero(bad)[0]) + r0
            raise InstanceError("contains NaN or an infinite value", source=str(self.path),
                                field=f"features[{r}]")
        scores = np.asarray(g["score"][r0:r1], dtype=np.float64) if self.has_scores else None
        caps = (np.asarray(g["prompt_max_pairs"][p0:p1], dtype=np.float64)
                if "prompt_max_pairs" in self.array_names else None)
        return Block(b, p0, r0, sizes, features, scores, caps)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Features (float64) of completion rows (any order)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return np.zeros((0, self.dim))
        order, inverse = np.unique(rows, return_inverse=True)
        feats = self.group["features"].get_orthogonal_selection((order, slice(None)))
        return np.asarray(feats, dtype=np.float64)[inverse]

    def prompt_offsets_of(self, prompts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first row, size) of each prompt in ``prompts``."""
        prompts = np.asarray(prompts, dtype=np.int64)
        blocks = np.searchsorted(self.block_prompts, prompts, side="right") - 1
        first = np.empty(prompts.size, dtype=np.int64)
        size = np.empty(prompts.size, dtype=np.int64)
        for b in np.unique(blocks):
            mine = np.flatnonzero(blocks == b)
            r0, r1 = int(self.block_rows[b]), int(self.block_rows[b + 1])
            index = np.asarray(self.group["prompt_index"][r0:r1])
            starts = np.searchsorted(index, prompts[mine], side="left")
            ends = np.searchsorted(index, prompts[mine], side="right")
            first[mine], size[mine] = starts + r0, ends - starts
        return first, size

    def ids(self, name: str, index: np.ndarray) -> np.ndarray:
        """``prompt_ids`` or ``completion_ids`` at the given indices (reads only the chunks of
        bytes that hold them)."""
        index = np.asarray(index, dtype=np.int64)
        if index.size == 0:
            return np.zeros(0, dtype=str)
        offsets = self.group[f"{name}_offsets"]
        starts = np.asarray(offsets.get_orthogonal_selection(index), dtype=np.int64)
        ends = np.asarray(offsets.get_orthogonal_selection(index + 1), dtype=np.int64)
        data = self.group[f"{name}_bytes"]
        size = int(data.chunks[0])
        pieces: dict[int, bytes] = {}
        for c in np.unique(np.concatenate([starts // size, np.maximum(ends - 1, starts) // size])).tolist():
            pieces[c] = np.asarray(data[c * size:(c + 1) * size], dtype=np.uint8).tobytes()

        def text(a: int, b: int) -> str:
            raw = b"".join(pieces[c][max(a - c * size, 0):b - c * size] for c in range(a // size, (b - 1) // size + 1))
            return raw.decode("utf-8")

        return np.asarray([text(a, b) if b > a else "" for a, b in zip(starts.tolist(), ends.tolist())], dtype=str)

    def scores_of(self, rows: np.ndarray) -> np.ndarray | None:
        if not self.has_scores:
            return None
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return np.zeros(0)
        order, inverse = np.unique(rows, return_inverse=True)
        return np.asarray(self.group["score"].get_orthogonal_selection(order), dtype=np.float64)[inverse]

    def fingerprint(self) -> str:
        """:func:`pairdesign.fingerprint.instance_fingerprint` of the stored instance, computed
        by reading the store once in order (ids, grouping, texts, features as float64) without
        loading it."""
        h = hashlib.sha256(b"pairdesign.fingerprint/2")
        g = self.group
        step = 1 << 22

        def stream(name: str, dtype: str | None = None, transform=None) -> None:
            array = g[name]
            rows = max(1, step // int(np.prod(array.shape[1:], dtype=np.int64)))  # ~4M values at a time
            for start in range(0, int(array.shape[0]), rows):
                part = np.asarray(array[start:start + rows])
                if transform is not None:
                    part = transform(part)
                h.update(np.ascontiguousarray(part, dtype=dtype).tobytes())

        def strings(name: str) -> None:  # lengths, count, then the UTF-8 bytes
            if f"{name}_offsets" not in self.array_names:
                h.update(b"\x00none")
                return
            offsets = g[f"{name}_offsets"]
            count = int(offsets.shape[0]) - 1
            for start in range(0, count, step):
                part = np.asarray(offsets[start:min(start + step, count) + 1], dtype=np.int64)
                h.update(np.diff(part).astype("<i8").tobytes())
            h.update(np.int64(count).tobytes())
            stream(f"{name}_bytes", "u1")

        strings("prompt_ids")
        sizes = np.zeros(1, dtype="<i8")
        h.update(sizes.tobytes())  # prompt_offsets[0]
        total = 0
        for b in range(self.n_blocks):  # the rest of prompt_offsets, block by block
            r0, r1 = int(self.block_rows[b]), int(self.block_rows[b + 1])
            p0 = int(self.block_prompts[b])
            index = np.asarray(g["prompt_index"][r0:r1])
            counts = np.bincount(index - p0, minlength=int(self.block_prompts[b + 1]) - p0)
            h.update((total + np.cumsum(counts)).astype("<i8").tobytes())
            total += int(counts.sum())
        strings("completion_ids")
        for name in ("prompt_text", "completion_text"):
            strings(name)
        h.update(np.asarray((self.n_completions, self.dim), dtype="<i8").tobytes())
        stream("features", "<f8")
        return h.hexdigest()[:16]

    def memory_bytes(self) -> int:
        """About what the store needs as an in-memory Instance: float64 features, the ids, and
        seven numbers per candidate pair (all pairs within each prompt when no pair list)."""
        if "pairs" in self.array_names:
            pairs = int(self.group["pairs"].shape[0])
        else:
            K = self.n_completions / max(self.n_prompts, 1)
            pairs = int(self.n_prompts * K * (K - 1) / 2)  # exact when every prompt has K
        return 8 * self.n_completions * (self.dim + 4) + 56 * pairs

    def to_instance(self) -> Instance:
        """The whole store as an in-memory Instance (the NPZ form's validation)."""
        g = self.group
        data: dict[str, np.ndarray] = {"format": np.asarray(FORMAT),
                                       "meta": np.asarray(json.dumps(self.meta))}
        for name in self.array_names:
            if name in ("block_prompts", "block_rows") or (
                    name.endswith(("_bytes", "_offsets")) and name.rsplit("_", 1)[0] in _STRINGS):
                continue
            data[name] = np.asarray(g[name][:])
        for name in _STRINGS:
            value = self.small(name)
            if value is not None:
                data[name] = value
        try:
            return _instance_from_npz(data)
        except InstanceError as exc:
            raise exc.with_source(str(self.path)) from None


def describe_store(store: InstanceStore) -> dict[str, Any]:
    """What ``pairdesign info`` prints of a store, read without loading it."""
    meta = store.meta
    K = store.n_completions / max(store.n_prompts, 1)
    facts: dict[str, Any] = {
        "name": store.name, "prompts": store.n_prompts, "completions": store.n_completions,
        "dimension": store.dim, "budget": meta.get("budget"), "ridge": meta.get("ridge"),
        "weights": meta.get("weights"), "scores": "yes" if store.has_scores else "none",
        "max_pairs_per_prompt": meta.get("max_pairs_per_prompt"),
        "max_pairs_per_completion": meta.get("max_pairs_per_completion"),
        "max_labels_per_pair": meta.get("max_labels_per_pair"),
    }
    if "pairs" not in store.array_names and float(K).is_integer():
        facts["candidate_pairs"] = int(store.n_prompts * K * (K - 1) // 2)
    facts.update({"store_blocks": store.n_blocks, "store_features": store.feature_dtype,
                  "in_memory_estimate_gib": round(store.memory_bytes() / 2**30, 3)})
    return facts


def open_store(path: str | os.PathLike) -> InstanceStore:
    """Open a store lazily (nothing but its sizes and settings is read)."""
    return InstanceStore(path)


def load_store(path: str | os.PathLike, memory_limit: int = MEMORY_LIMIT) -> "Instance | InstanceStore":
    """An in-memory :class:`Instance` when the store fits in ``memory_limit`` bytes, otherwise
    the lazily opened :class:`InstanceStore` (solved through the Dask pool)."""
    store = open_store(path)
    if store.memory_bytes() <= memory_limit:
        return store.to_instance()
    return store
