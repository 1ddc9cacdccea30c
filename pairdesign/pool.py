"""The candidate pool: the one interface to everything that touches every candidate pair.

A method never loops over the P candidate pairs itself. It asks the pool for

- **quadratic forms** ``q_p = |R^T z_p|^2 = z_p^T R R^T z_p`` for one or more d x r factors R
  (the gain pass: ``g_p = w_p z_p^T K z_p`` with ``K = R R^T``), computed through completions as
  ``|psi_j - psi_k|^2`` with ``psi = phi R`` (one product over the N completions, then the pairs in
  chunks; never a P x d matrix);
- the **top-k reduce** over a vector of the candidates (the working sets of greedy, local search
  and the relaxation);
- **information** ``sum_p a_p w_p z_p z_p^T`` of a (sparse) design ``a`` (through the weighted
  Laplacian of the pair graph);
- the **features** ``z_p`` of a working set of pairs (a small |S| x d matrix, on demand);
- the **linear oracle** of a polytope: the vertex ``argmax g^T s`` over the feasible set;
- the **per-pair data** (:class:`~pairdesign.instance.Candidates`: prompt, completions, cost,
  bounds and Bradley-Terry weight of every pair).

Contract: vectors over the candidates (length P: gains, designs, costs) are numpy arrays in
memory; what a pool may keep out of memory, or spread over workers, is the O(P d) and O(N d)
work. :class:`InMemoryPool` is today's implementation (numpy, in process); another implementation
(for instance a Dask pool over a chunked store) plugs in through ``solve(..., pool=...)`` without
touching the methods. The math is in docs/design.md and :mod:`pairdesign.information`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import numpy as np

import scipy.sparse as sp

from .oracle import LinearOracle

if TYPE_CHECKING:
    from .instance import Candidates, Instance
    from .polytope import Polytope

__all__ = ["CandidatePool", "InMemoryPool", "Oracle", "centered_features", "pair_graph_form",
           "pair_quadratic_forms", "top_indices"]

_CHUNK = 1 << 15  # pairs per block in the quadratic-form kernel (chunk x d floats at a time)


@runtime_checkable
class Oracle(Protocol):
    """The linear maximisation oracle of one polytope."""

    def maximize(self, g: np.ndarray) -> tuple[np.ndarray, float]:
        """``(s, top)``: a vertex s maximising ``g^T s`` over the polytope, and ``top >= max
        g^T s``, a proven upper bound on the maximum (``g^T s`` when the oracle is exact)."""
        ...


@runtime_checkable
class CandidatePool(Protocol):
    """Everything that touches all candidate pairs (see the module docstring)."""

    @property
    def size(self) -> int:
        """P, the number of candidate pairs."""
        ...

    @property
    def dim(self) -> int:
        """d, the feature dimension."""
        ...

    @property
    def pairs(self) -> "Candidates":
        """Per-pair data as length-P arrays: ``j``, ``k`` (completion rows), ``prompt``,
        ``cost``, ``lower``, ``upper`` (bounds on n_p) and ``weight`` (w_p)."""
        ...

    def quadratic_forms(self, factors: Sequence[np.ndarray],
                        pairs: np.ndarray | None = None) -> list[np.ndarray]:
        """For each d x r factor R, ``|R^T z_p|^2`` for every candidate (or the indices
        ``pairs``), unweighted; one pass over the pairs for all factors."""
        ...

    def top(self, values: np.ndarray, k: int, among: np.ndarray | None = None) -> np.ndarray:
        """Indices of the k largest ``values`` (over all candidates, or over the indices
        ``among``; ``values`` is then aligned with ``among``), largest first."""
        ...

    def information(self, a: np.ndarray) -> np.ndarray:
        """``sum_p a_p w_p z_p z_p^T`` (d x d) for a vector ``a`` over the candidates."""
        ...

    def features(self, pairs: np.ndarray) -> np.ndarray:
        """The rows ``z_p = phi_j - phi_k`` of the given pairs (|pairs| x d, centred features)."""
        ...

    def oracle(self, polytope: "Polytope") -> Oracle:
        """The linear oracle over ``polytope`` (built once, called many times)."""
        ...


# ------------------------------------------------------------------------------ kernels
def centered_features(instance: "Instance") -> np.ndarray:
    """phi minus its prompt's mean: the same differences z_p, smaller rows."""
    cached = instance.__dict__.get("_centered_features")
    if cached is None:
        phi = instance.features
        sums = np.add.reduceat(phi, instance.prompt_offsets[:-1], axis=0)
        means = sums / instance.prompt_sizes[:, None]
        cached = phi - np.repeat(means, instance.prompt_sizes, axis=0)
        instance.__dict__["_centered_features"] = cached
    return cached


def pair_graph_form(features: np.ndarray, j: np.ndarray, k: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``sum_p a_p (phi_j - phi_k)(phi_j - phi_k)^T`` as ``Phi_S^T Lap(a) Phi_S``.

    ``Lap(a) = sum_p a_p (e_j - e_k)(e_j - e_k)^T`` is the sparse weighted Laplacian of the pairs
    with ``a_p != 0``, restricted to the completions S that they touch: cost O(|S| d^2 + P d).
    """
    d = features.shape[1]
    a = np.asarray(a, dtype=np.float64)
    nz = np.flatnonzero(a)
    if nz.size == 0:
        return np.zeros((d, d))
    j, k, a = j[nz], k[nz], a[nz]
    rows, inverse = np.unique(np.concatenate([j, k]), return_inverse=True)
    jj, kk = inverse[: nz.size], inverse[nz.size:]
    m = rows.size
    degree = np.bincount(jj, a, minlength=m) + np.bincount(kk, a, minlength=m)
    lap = sp.coo_matrix(
        (np.concatenate([degree, -a, -a]),
         (np.concatenate([np.arange(m), jj, kk]), np.concatenate([np.arange(m), kk, jj]))),
        shape=(m, m),
    ).tocsr()
    phi = features[rows]
    out = phi.T @ (lap @ phi)
    return 0.5 * (out + out.T)


def pair_quadratic_forms(psi: np.ndarray, j: np.ndarray, k: np.ndarray,
                         chunk: int = _CHUNK) -> np.ndarray:
    """``|psi_j - psi_k|^2`` for every pair, computed in chunks (never a (pairs x d) matrix).

    With ``psi = phi R`` this is ``z_p^T R R^T z_p``.
    """
    out = np.empty(j.shape[0])
    for start in range(0, j.shape[0], chunk):
        stop = min(start + chunk, j.shape[0])
        diff = psi[j[start:stop]] - psi[k[start:stop]]
        np.einsum("ij,ij->i", diff, diff, out=out[start:stop])
    return out


def top_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first (O(n), not a full sort)."""
    values = np.asarray(values)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if values.size > k:
        part = np.argpartition(-values, k)[:k]
        return part[np.argsort(-values[part], kind="stable")]
    return np.argsort(-values, kind="stable")


class InMemoryPool:
    """The candidate pool of an :class:`~pairdesign.instance.Instance` held in memory (numpy)."""

    def __init__(self, instance: "Instance"):
        self.instance = instance
        self._pairs = instance.candidates
        self._phi = centered_features(instance)

    @classmethod
    def of(cls, instance: "Instance") -> "InMemoryPool":
        """The instance's in-memory pool (one per instance, kept with its cached arrays)."""
        pool = instance.__dict__.get("_in_memory_pool")
        if pool is None:
            pool = cls(instance)
            instance.__dict__["_in_memory_pool"] = pool
        return pool

    @property
    def size(self) -> int:
        return len(self._pairs)

    @property
    def dim(self) -> int:
        return int(self._phi.shape[1])

    @property
    def pairs(self) -> "Candidates":
        return self._pairs

    def quadratic_forms(self, factors: Sequence[np.ndarray],
                        pairs: np.ndarray | None = None) -> list[np.ndarray]:
        cand = self._pairs
        j, k = (cand.j, cand.k) if pairs is None else (cand.j[pairs], cand.k[pairs])
        return [pair_quadratic_forms(self._phi @ R, j, k) for R in factors]

    def top(self, values: np.ndarray, k: int, among: np.ndarray | None = None) -> np.ndarray:
        order = top_indices(values, k)
        return order if among is None else np.asarray(among)[order]

    def information(self, a: np.ndarray) -> np.ndarray:
        cand = self._pairs
        return pair_graph_form(self._phi, cand.j, cand.k, np.asarray(a, dtype=np.float64) * cand.weight)

    def features(self, pairs: np.ndarray) -> np.ndarray:
        cand = self._pairs
        return self._phi[cand.j[pairs]] - self._phi[cand.k[pairs]]

    def oracle(self, polytope: "Polytope") -> Oracle:
        return LinearOracle(self.instance, polytope)
