"""The NPZ form of an instance: one row per completion, for large instances.

Arrays ``prompt_ids``, ``prompt_index`` (the prompt of every completion row), ``completion_ids``,
``features`` (rows x d, float64), optional ``score``, optional ``posterior_mean`` (d) and
``posterior_covariance`` (d x d), pair tables as (P, 2) global rows, groups as
flat arrays with offsets, texts as UTF-8 bytes with offsets (no pickles), and ``meta``: the scalar
settings as a JSON string. It carries exactly what the JSON form carries.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from .._atomic import atomic_write
from .._jsonio import JSONError, loads
from ..errors import InstanceError
from ..instance import FORMAT, Group, Instance
from .instance_json import _expect

_NPZ_ARRAYS = {"format", "meta", "prompt_ids", "prompt_index", "completion_ids", "features", "score",
               "prompt_max_pairs", "prompt_min_pairs", "pairs", "pair_costs", "fixed_in", "fixed_out", "labeled",
               "labeled_counts", "group_names", "group_budgets", "group_prompts", "group_offsets", "group_min_pairs",
               "labeled_wins", "prompt_text_bytes", "prompt_text_offsets", "completion_text_bytes",
               "completion_text_offsets", "posterior_mean", "posterior_covariance"}
_META_FIELDS = {"name", "budget", "ridge", "weights", "max_pairs_per_prompt",
                "max_pairs_per_completion", "max_labels_per_pair", "projection", "rounds",
                "min_pairs_per_prompt"}


def _pack_texts(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Texts as one UTF-8 byte array and offsets (no pickles, no fixed-width UTF-32)."""
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _unpack_texts(data: np.ndarray, offsets: np.ndarray, name: str) -> tuple[str, ...]:
    """Texts from UTF-8 bytes and offsets (both checked by :func:`_check_arrays`)."""
    raw = data.tobytes()
    bounds = offsets.tolist()
    _expect(bounds[0] == 0 and bounds[-1] == len(raw) and all(x <= y for x, y in zip(bounds, bounds[1:])),
            f"must rise from 0 to the number of bytes ({len(raw)})", f"{name}_text_offsets")
    texts = []
    for r, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        try:
            texts.append(raw[lo:hi].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InstanceError(f"text {r} is not valid UTF-8 (byte {lo + exc.start})",
                                field=f"{name}_text_bytes") from None
    return tuple(texts)


def _instance_to_npz(inst: Instance) -> dict[str, np.ndarray]:
    meta = {key: getattr(inst, key) for key in sorted(_META_FIELDS)}
    meta["rounds"] = list(inst.rounds)
    if inst.min_pairs_per_prompt is None:
        del meta["min_pairs_per_prompt"]  # written only when set
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
    if inst.prompt_min_pairs is not None:
        arrays["prompt_min_pairs"] = inst.prompt_min_pairs
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
        if any(g.min_pairs for g in inst.groups):
            arrays["group_min_pairs"] = np.asarray([g.min_pairs for g in inst.groups], dtype=np.int64)
    return arrays


# One rule per array: the kinds of dtype it may have (NumPy kind letters) and its number of
# dimensions; shapes and ranges that depend on other arrays are checked in _check_arrays.
_STRINGS, _INTEGERS, _NUMBERS = "US", "iu", "iuf"
_RULES: dict[str, tuple[str, int, str]] = {
    # name: (kinds, ndim, what)
    "format": (_STRINGS, 0, "a string"),
    "meta": (_STRINGS, 0, "a JSON string"),
    "prompt_ids": (_STRINGS + _INTEGERS, 1, "a list of ids"),
    "completion_ids": (_STRINGS + _INTEGERS, 1, "a list of ids"),
    "prompt_index": (_INTEGERS, 1, "a list of prompt indices (integers)"),
    "features": (_NUMBERS, 2, "a (completions, d) matrix of real numbers"),
    "score": (_NUMBERS, 1, "a list of numbers"),
    "prompt_max_pairs": (_NUMBERS, 1, "a list of numbers"),
    "prompt_min_pairs": (_NUMBERS, 1, "a list of numbers (NaN: the global minimum)"),
    "pairs": (_NUMBERS, 2, "a (pairs, 2) table of completion rows"),
    "pair_costs": (_NUMBERS, 1, "a list of numbers"),
    "fixed_in": (_NUMBERS, 2, "a (pairs, 2) table of completion rows"),
    "fixed_out": (_NUMBERS, 2, "a (pairs, 2) table of completion rows"),
    "labeled": (_NUMBERS, 2, "a (pairs, 2) table of completion rows"),
    "labeled_counts": (_NUMBERS, 1, "a list of numbers"),
    "labeled_wins": (_NUMBERS, 1, "a list of numbers"),
    "group_names": (_STRINGS, 1, "a list of names"),
    "group_budgets": (_NUMBERS, 1, "a list of numbers"),
    "group_prompts": (_INTEGERS, 1, "a list of prompt indices (integers)"),
    "group_offsets": (_INTEGERS, 1, "a list of offsets (integers)"),
    "group_min_pairs": (_INTEGERS, 1, "a list of minimum labels per group (integers)"),
    "prompt_text_bytes": ("u", 1, "UTF-8 bytes (uint8)"),
    "prompt_text_offsets": (_INTEGERS, 1, "a list of offsets (integers)"),
    "completion_text_bytes": ("u", 1, "UTF-8 bytes (uint8)"),
    "completion_text_offsets": (_INTEGERS, 1, "a list of offsets (integers)"),
    "posterior_mean": (_NUMBERS, 1, "a list of d numbers"),
    "posterior_covariance": (_NUMBERS, 2, "a (d, d) matrix of real numbers"),
}
assert set(_RULES) == _NPZ_ARRAYS
_GROUP_ARRAYS = ("group_names", "group_budgets", "group_prompts", "group_offsets")


def _check_arrays(members: dict[str, object]) -> dict[str, np.ndarray]:
    """The NPZ form's one validation entry: names, dtypes, shapes and ranges of every array,
    before any is used (so that no bad value reaches an allocation or an index). Returns the
    arrays."""
    data = members
    unknown = sorted(set(data) - _NPZ_ARRAYS)
    _expect(not unknown, f"unknown array(s) {unknown}; known: {sorted(_NPZ_ARRAYS)}",
            unknown[0] if unknown else "")
    for key in ("format", "meta", "prompt_ids", "prompt_index", "completion_ids", "features"):
        _expect(key in data, "missing array", key)
    for key, value in data.items():
        kinds, ndim, what = _RULES[key]
        if not isinstance(value, np.ndarray):
            raise InstanceError("is not a NumPy array (.npy) member", field=key)
        if value.dtype.kind == "c":
            raise InstanceError(f"must be {what}, got complex numbers ({value.dtype}); "
                                "pass the real part explicitly if that is what you mean", field=key)
        _expect(value.dtype.kind in kinds and value.dtype.names is None,
                f"must be {what}, got dtype {value.dtype}", key)
        _expect(value.ndim == ndim, f"must be {what} ({ndim}-d), got shape {value.shape}", key)
        if value.dtype.kind == "f" and key in ("prompt_max_pairs", "prompt_min_pairs", "labeled_counts", "labeled_wins",
                                               "score"):
            continue  # NaN means "none" here; the instance checks the rest
        if value.dtype.kind == "f":
            bad = ~np.isfinite(value)
            if bad.any():
                place = np.unravel_index(int(np.flatnonzero(bad.ravel())[0]), value.shape)
                if key == "features":
                    continue  # reported by the instance with the completion's place
                raise InstanceError("must be finite", field=f"{key}[{', '.join(map(str, place))}]")
    arrays: dict[str, np.ndarray] = {k: v for k, v in data.items() if isinstance(v, np.ndarray)}
    n = arrays["prompt_ids"].shape[0]
    index = arrays["prompt_index"]
    N = index.shape[0]
    _expect(arrays["completion_ids"].shape == (N,),
            f"must have one id per completion row ({N}, the length of prompt_index), "
            f"got {arrays['completion_ids'].shape[0]}", "completion_ids")
    _expect(arrays["features"].shape[0] == N,
            f"must have one row per completion ({N}), got {arrays['features'].shape[0]}", "features")
    if N:
        lo, hi = int(index.min()), int(index.max())
        _expect(lo >= 0 and hi < n, f"prompt indices must lie in 0..{n - 1} (one per prompt id), "
                f"got {lo if lo < 0 else hi}", "prompt_index")
        down = np.flatnonzero(np.diff(index) < 0)
        if down.size:
            raise InstanceError("must list the completions grouped by prompt, prompts in "
                                "nondecreasing order", field=f"prompt_index[{int(down[0]) + 1}]")
        empty = np.flatnonzero(np.bincount(index, minlength=n) == 0)
        if empty.size:
            raise InstanceError("has no completion rows in prompt_index",
                                field=f"prompts[{int(empty[0])}]")
    for key, length in (("score", N), ("prompt_max_pairs", n), ("prompt_min_pairs", n)):
        if key in arrays:
            _expect(arrays[key].shape == (length,), f"must have {length} entries, got "
                    f"{arrays[key].shape[0]}", key)
    for key in ("pairs", "fixed_in", "fixed_out", "labeled"):
        if key in arrays:
            _expect(arrays[key].shape[1:] == (2,), f"must have shape (pairs, 2), got {arrays[key].shape}", key)
    present = [key in arrays for key in _GROUP_ARRAYS]
    if any(present):
        missing = [key for key in _GROUP_ARRAYS if key not in arrays]
        _expect(not missing, f"missing: groups need all of {list(_GROUP_ARRAYS)}",
                missing[0] if missing else "")
        G = arrays["group_names"].shape[0]
        _expect(arrays["group_budgets"].shape == (G,), f"must have one budget per group ({G})", "group_budgets")
        if "group_min_pairs" in arrays:
            _expect(arrays["group_min_pairs"].shape == (G,), f"must have one entry per group ({G})",
                    "group_min_pairs")
        offsets = arrays["group_offsets"]
        P = arrays["group_prompts"].shape[0]
        _expect(offsets.shape == (G + 1,), f"must have one entry per group plus one ({G + 1})", "group_offsets")
        _expect(int(offsets[0]) == 0 and int(offsets[-1]) == P and bool(np.all(np.diff(offsets) >= 0)),
                f"must rise from 0 to the length of group_prompts ({P})", "group_offsets")
        if P:
            gp = arrays["group_prompts"]
            _expect(int(gp.min()) >= 0 and int(gp.max()) < n, f"prompt indices must lie in 0..{n - 1}",
                    "group_prompts")
    for name in ("prompt", "completion"):
        has_bytes, has_offsets = f"{name}_text_bytes" in arrays, f"{name}_text_offsets" in arrays
        _expect(has_bytes == has_offsets, "needs both _text_bytes and _text_offsets",
                f"{name}_text_{'offsets' if has_bytes else 'bytes'}")
        if has_bytes:
            count = n if name == "prompt" else N
            _expect(arrays[f"{name}_text_offsets"].shape == (count + 1,),
                    f"must have one entry per {name} plus one ({count + 1})", f"{name}_text_offsets")
    return arrays


def _instance_from_npz(data: dict[str, object]) -> Instance:
    arrays = _check_arrays(data)
    version = str(arrays["format"])
    _expect(version == FORMAT, f"unsupported version {version!r}; expected {FORMAT!r}", "format")
    try:
        meta = loads(str(arrays["meta"]))
    except JSONError as exc:
        raise InstanceError(exc.reason, field="meta" + (f": {exc.where}" if exc.where else "")) from None
    _expect(isinstance(meta, dict), "must be a JSON object", "meta")
    unknown = sorted(set(meta) - _META_FIELDS)
    _expect(not unknown, f"unknown field(s) {unknown}", "meta")
    _expect("budget" in meta, "missing", "meta.budget")
    n = arrays["prompt_ids"].shape[0]
    sizes = np.bincount(arrays["prompt_index"], minlength=n) if arrays["prompt_index"].size else np.zeros(n, np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    groups = []
    if "group_names" in arrays:
        go = arrays["group_offsets"].tolist()
        for g, gname in enumerate(arrays["group_names"].tolist()):
            groups.append(Group(str(gname), arrays["group_prompts"][go[g]:go[g + 1]].astype(np.int64),
                                float(arrays["group_budgets"][g]),
                                int(arrays["group_min_pairs"][g]) if "group_min_pairs" in arrays else 0))
    texts = {}
    for name in ("prompt", "completion"):
        texts[name] = (_unpack_texts(arrays[f"{name}_text_bytes"], arrays[f"{name}_text_offsets"], name)
                       if f"{name}_text_bytes" in arrays else None)
    meta["rounds"] = tuple(meta.get("rounds") or ())
    empty = np.zeros((0, 2), dtype=np.int64)

    def ids(key: str) -> list[str]:
        return [str(x) for x in arrays[key].tolist()]  # plain strings: checked for NUL, surrogates

    return Instance(
        labeled_wins=arrays.get("labeled_wins"),
        prompt_texts=texts["prompt"],
        completion_texts=texts["completion"],
        prompt_ids=ids("prompt_ids"),
        prompt_offsets=offsets,
        completion_ids=ids("completion_ids"),
        features=arrays["features"],
        scores=arrays.get("score"),
        prompt_max_pairs=arrays.get("prompt_max_pairs"),
        prompt_min_pairs=arrays.get("prompt_min_pairs"),
        pairs=arrays.get("pairs"),
        pair_costs=arrays.get("pair_costs"),
        fixed_in=arrays.get("fixed_in", empty),
        fixed_out=arrays.get("fixed_out", empty),
        labeled=arrays.get("labeled", empty),
        labeled_counts=arrays.get("labeled_counts"),
        groups=tuple(groups),
        posterior_mean=data.get("posterior_mean"),
        posterior_covariance=data.get("posterior_covariance"),
        **{key: meta[key] for key in meta},
    )


_NPY_MAGIC = b"\x93NUMPY"


def _read_members(path: Path) -> dict[str, object]:
    """Every member of the archive: arrays (never unpickled), or raw bytes for a member that is
    not a ``.npy`` array. Each array's header is checked against the bytes the member holds
    before the array is read, so a header claiming 8 TiB is refused, not allocated."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    if head == _NPY_MAGIC:
        raise InstanceError("a single .npy array, not an NPZ archive of named arrays "
                            "(save with numpy.savez)")
    if not zipfile.is_zipfile(path):
        raise InstanceError("not a readable NPZ archive (not a zip file; truncated or not NPZ)")
    data: dict[str, object] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with archive.open(info) as member:
                if member.read(6) != _NPY_MAGIC:
                    data[name] = b"(not an array)"
                    continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                shape, _fortran, dtype = _read_header(member, version)
                if dtype.hasobject:
                    raise InstanceError("holds Python objects (pickles are never loaded)", field=name)
                claimed = math.prod(shape) * dtype.itemsize
                if claimed > info.file_size:
                    raise InstanceError(f"its header claims {claimed} bytes of data, the archive "
                                        f"holds {info.file_size}", field=name)
            with archive.open(info) as member:
                data[name] = np.lib.format.read_array(member, allow_pickle=False)
    return data


def _read_header(member, version):  # type: ignore[no-untyped-def]
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(member)
    return np.lib.format._read_array_header(member, version)  # 3.0: no public reader


def read_instance_npz(path: Path) -> Instance:
    """Read an instance from an NPZ file (never unpickling; errors attributed by the caller).

    Archive-level faults (not a zip, truncated, a bad CRC, a corrupt compressed member, an
    unreadable header) are refused as "not a readable NPZ archive"; then :func:`_check_arrays`
    checks every array before use.
    """
    try:
        data = _read_members(path)
    except InstanceError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
            RuntimeError, UnicodeError, OverflowError, SyntaxError) as exc:
        # SyntaxError: a .npy header that is not a Python literal; RuntimeError: an encrypted
        # member; NotImplementedError: an unsupported compression method
        raise InstanceError(f"not a readable NPZ archive ({type(exc).__name__}: {exc})") from None
    return _instance_from_npz(data)


def write_instance_npz(instance: Instance, path: str | os.PathLike) -> None:
    """Write an instance as NPZ, atomically."""
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **_instance_to_npz(instance))
