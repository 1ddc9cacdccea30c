"""The fingerprint of an instance: 16 hex digits naming what annotators were shown and what the
design was computed on, so that labels and designs are never matched to another instance.

It is ``sha256`` over, in order and each length-prefixed (so no two different instances can
concatenate to the same bytes): the prompt ids, the prompt offsets (which completions belong to
which prompt), the completion ids, the prompt texts and completion texts (UTF-8; a marker when
the instance carries none) and the features as float64 bytes (exactly: a change in the last bit
of one feature changes the fingerprint). It leaves out what changes as labels come in (labeled
pairs, rounds, budget, caps, ridge, weights), so that it is the same before and after
``pairdesign labels`` stores a round.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:
    from .instance import Instance

__all__ = ["instance_fingerprint"]

_CACHE_KEY = "_fingerprint"


def _strings(h: "hashlib._Hash", values: Iterable[str] | None) -> None:
    if values is None:
        h.update(b"\x00none")
        return
    encoded = [str(v).encode("utf-8", "surrogatepass") for v in values]
    h.update(np.asarray([len(e) for e in encoded], dtype=np.int64).tobytes())
    h.update(np.int64(len(encoded)).tobytes())
    h.update(b"".join(encoded))


def instance_fingerprint(instance: "Instance") -> str:
    """16 hex digits: ids, grouping, texts and features (float64 bytes) of ``instance``."""
    cached = instance.__dict__.get(_CACHE_KEY)
    if cached is not None:
        return cached
    h = hashlib.sha256(b"pairdesign.fingerprint/2")
    _strings(h, instance.prompt_ids.tolist())
    h.update(np.ascontiguousarray(instance.prompt_offsets, dtype="<i8").tobytes())
    _strings(h, instance.completion_ids.tolist())
    _strings(h, instance.prompt_texts)
    _strings(h, instance.completion_texts)
    features = np.ascontiguousarray(instance.features, dtype="<f8")
    h.update(np.asarray(features.shape, dtype="<i8").tobytes())
    h.update(features.tobytes())
    digest = h.hexdigest()[:16]
    instance.__dict__[_CACHE_KEY] = digest  # frozen dataclass: cache beside the fields
    return digest
