"""The basis of an embedding reduction, kept in the instance so that a later round's completions
are projected into the same features.

A reduction is ``phi = (x - mean) B`` for an embedding x (length D): PCA has the data mean and the
top-d axes B = V_d; the random projection has mean 0 and B = R. The basis is stored in the
instance's ``projection`` record under ``basis`` as text: an NPY array (float64, no pickle) of
shape (D, d + 1), column 0 the mean and columns 1..d the matrix B, base64-encoded (the record
holds numbers and strings only).
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import OptionError


@dataclass(frozen=True)
class Basis:
    """``phi = (x - mean) @ matrix``; mean (D,), matrix (D, d); ``record`` is the projection record
    of the instance it was read from (empty for a new basis)."""

    mean: np.ndarray
    matrix: np.ndarray
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def project(self, X: np.ndarray, chunk: int = 1 << 14) -> np.ndarray:
        """The features (N x d, float64) of embeddings X (N x D), in chunks of rows."""
        phi = np.empty((X.shape[0], self.dim))
        for start in range(0, X.shape[0], chunk):
            phi[start:start + chunk] = (X[start:start + chunk].astype(np.float64) - self.mean) @ self.matrix
        return phi

    def encode(self) -> str:
        """The basis as base64 text of an NPY (D, d + 1) float64 array."""
        buffer = io.BytesIO()
        np.save(buffer, np.column_stack([self.mean, self.matrix]).astype("<f8"), allow_pickle=False)
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    @classmethod
    def decode(cls, text: object, source: str, record: dict[str, Any] | None = None) -> "Basis":
        """The basis stored by :meth:`encode` (``record``: the projection record it came with); an
        :class:`OptionError` naming ``source`` if unreadable."""
        where = f"{source}: projection.basis"
        if not isinstance(text, str):
            raise OptionError(f"{where}: missing (the instance keeps no basis: it was imported without "
                              "a reduction, or by an older version)")
        try:
            array = np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False)
        except (binascii.Error, ValueError, OSError, EOFError) as exc:
            raise OptionError(f"{where}: not a readable basis ({exc})") from None
        if array.dtype != np.float64 or array.ndim != 2 or array.shape[1] < 2 or not np.isfinite(array).all():
            raise OptionError(f"{where}: must be a finite float64 array of shape (D, d + 1), got "
                              f"{array.dtype} {array.shape}")
        return cls(mean=array[:, 0].copy(), matrix=array[:, 1:].copy(), record=dict(record or {}))
