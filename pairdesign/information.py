"""The information core: M(n), the criteria, their gains and rank-one updates.

The one home of the math of DESIGN.md sections 2, 3 and 6.

A design gives candidate pair p = (i, j, k) a number of labels n_p; with ``z_p = phi_j - phi_k``
and Bradley-Terry weight ``w_p``, its information matrix is

    M(n) = M0 + sum_p n_p w_p z_p z_p^T,      M0 = ridge I + (pairs already labeled).

Criteria (concave, maximised), their value f(M) and gain ``g_p = df/dn_p``:

    D:  f = log det M         g_p = w_p z_p^T M^-1 z_p
    A:  f = -tr M^-1          g_p = w_p |M^-1 z_p|^2
    L:  f = -tr(H M^-1)       g_p = w_p z_p^T M^-1 H M^-1 z_p

Everything is computed through completions, never through a (pairs x d) matrix: a quadratic form
``z_p^T R R^T z_p`` is ``|psi_j - psi_k|^2`` with ``psi = phi R`` (one product over the N
completions), evaluated in chunks of pairs; and ``sum_p a_p z_p z_p^T = Phi^T Lap(a) Phi`` with the
sparse weighted Laplacian of the pair graph. Features are centred within each prompt first: pair
differences do not change, and the Laplacian form loses no precision to large shared components.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.linalg as sla

from .errors import OptionError
from .model import bradley_terry_weights, sigmoid
from .pool import (CandidatePool, InMemoryPool, centered_features, pair_graph_form,
                   pair_quadratic_forms)

if TYPE_CHECKING:
    from .instance import Instance

CRITERIA = ("D", "A", "L")

__all__ = [
    "CRITERIA",
    "Criterion",
    "PairForms",
    "RankOneInverse",
    "bradley_terry_weights",
    "sigmoid",
    "centered_features",
    "gains",
    "information_matrix",
    "marginal_gains",
    "objective",
    "pair_graph_form",
    "pair_quadratic_forms",
    "policy_covariance",
    "prior_information",
]


# ------------------------------------------------------------------------------ the model
def prior_information(instance: "Instance") -> np.ndarray:
    """M0 = ridge I + sum over pairs already labeled of (labels) w_p z_p z_p^T."""
    cached = instance.__dict__.get("_prior_information")
    if cached is None:
        d = instance.dim
        cached = instance.ridge * np.eye(d)
        if instance.labeled.shape[0]:
            j, k = instance.labeled[:, 0], instance.labeled[:, 1]
            counts = (np.ones(j.shape[0]) if instance.labeled_counts is None
                      else instance.labeled_counts.astype(np.float64))
            w = bradley_terry_weights(instance, j, k)
            cached = cached + pair_graph_form(centered_features(instance), j, k, counts * w)
        instance.__dict__["_prior_information"] = cached
    return cached


def information_matrix(instance: "Instance", n: np.ndarray,
                       pool: CandidatePool | None = None) -> np.ndarray:
    """M(n) = M0 + sum_p n_p w_p z_p z_p^T for labels (or relaxed weights) n over the candidates
    (through the candidate ``pool``, by default the instance's in memory)."""
    pool = InMemoryPool.of(instance) if pool is None else pool
    n = np.asarray(n, dtype=np.float64)
    if n.shape != (pool.size,):
        raise ValueError(f"a design must give one value per candidate pair ({pool.size}), got {n.shape}")
    return prior_information(instance) + pool.information(n)


def policy_covariance(instance: "Instance", policy: Literal["uniform", "scores"] = "uniform",
                      temperature: float = 1.0) -> np.ndarray:
    """H = mean over prompts of Cov_{pi(.|x)}(phi), the matrix of the L criterion.

    ``pi`` is uniform over each prompt's completions, or the softmax of ``score / temperature``.
    """
    phi = instance.features
    sizes = instance.prompt_sizes
    if policy == "uniform":
        prob = 1.0 / np.repeat(sizes, sizes).astype(np.float64)
    elif policy == "scores":
        if not instance.has_all_scores:
            raise OptionError("the policy 'scores' needs a score for every completion")
        logits = instance.scores / temperature
        maxima = np.maximum.reduceat(logits, instance.prompt_offsets[:-1])
        e = np.exp(logits - np.repeat(maxima, sizes))
        prob = e / np.repeat(np.add.reduceat(e, instance.prompt_offsets[:-1]), sizes)
    else:
        raise OptionError(f"unknown policy {policy!r}; use 'uniform' or 'scores'")
    means = np.add.reduceat(phi * prob[:, None], instance.prompt_offsets[:-1], axis=0)
    centred = phi - np.repeat(means, sizes, axis=0)
    H = (centred * prob[:, None]).T @ centred / instance.n_prompts
    return 0.5 * (H + H.T)


# ------------------------------------------------------------------------------ criteria
@dataclass(frozen=True, eq=False)
class Criterion:
    """A design criterion: ``"D"`` (log det), ``"A"`` (-tr M^-1) or ``"L"`` (-tr(H M^-1))."""

    name: Literal["D", "A", "L"]
    H: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.name not in CRITERIA:
            raise OptionError(f"unknown criterion {self.name!r}; choose one of {list(CRITERIA)}")
        if self.name == "L":
            if self.H is None:
                raise OptionError("the L criterion needs the matrix H")
            H = np.asarray(self.H, dtype=np.float64)
            if H.ndim != 2 or H.shape[0] != H.shape[1] or not np.all(np.isfinite(H)):
                raise OptionError("H must be a finite square matrix")
            H = 0.5 * (H + H.T)
            evals, evecs = np.linalg.eigh(H)
            if evals.min(initial=0.0) < -1e-9 * max(1.0, evals.max(initial=0.0)):
                raise OptionError("H must be positive semidefinite")
            # H = C C^T, with eigenvalues below 0 (rounding) clipped, so that the value, the
            # gains and every update use one and the same PSD matrix
            factor = evecs * np.sqrt(np.clip(evals, 0.0, None))
            object.__setattr__(self, "H", factor @ factor.T)
            object.__setattr__(self, "_factor", factor)

    @classmethod
    def make(cls, criterion: "str | Criterion", instance: "Instance",
             H: np.ndarray | None = None) -> "Criterion":
        """A criterion from its name; the L criterion takes H, by default the covariance of
        the uniform policy (:func:`policy_covariance`)."""
        if isinstance(criterion, Criterion):
            return criterion
        if not isinstance(criterion, str) or criterion.upper() not in CRITERIA:
            raise OptionError(f"unknown criterion {criterion!r}; choose one of {list(CRITERIA)}")
        name = criterion.upper()
        if name == "L":
            H = policy_covariance(instance) if H is None else H
            if np.shape(H) != (instance.dim, instance.dim):
                raise OptionError(f"H must be {instance.dim} x {instance.dim}, got {np.shape(H)}")
            return cls("L", H)
        return cls(name)  # type: ignore[arg-type]

    @property
    def H_factor(self) -> np.ndarray:
        return self.__dict__["_factor"]

    def value(self, M: np.ndarray) -> float:
        """f(M), exactly as in DESIGN.md section 3 (natural log, unnormalised M)."""
        chol = _cholesky(M)
        if self.name == "D":
            return float(2.0 * np.log(np.diag(chol)).sum())
        Minv = sla.cho_solve((chol, True), np.eye(M.shape[0]))
        if self.name == "A":
            return float(-np.trace(Minv))
        return float(-np.sum(self.H * Minv))

    def gradient(self, M: np.ndarray) -> np.ndarray:
        """df/dM: M^-1 (D), M^-2 (A), M^-1 H M^-1 (L); g_p = w_p z_p^T (df/dM) z_p."""
        Minv = _inverse(M)
        if self.name == "D":
            return Minv
        if self.name == "A":
            return Minv @ Minv
        return Minv @ self.H @ Minv


def _cholesky(M: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        raise ValueError("the information matrix is not positive definite") from None


def _inverse(M: np.ndarray) -> np.ndarray:
    chol = _cholesky(M)
    Minv = sla.cho_solve((chol, True), np.eye(M.shape[0]))
    return 0.5 * (Minv + Minv.T)


def objective(instance: "Instance", n: np.ndarray, criterion: "str | Criterion" = "D",
              H: np.ndarray | None = None) -> float:
    """f(M(n)): the objective of a design (labels per candidate pair ``n``), recomputed from
    the instance. ``criterion`` is a name (``"D"``, ``"A"``, ``"L"`` with ``H``) or a
    :class:`Criterion`."""
    return Criterion.make(criterion, instance, H).value(information_matrix(instance, n))


def _factors(M: np.ndarray, criterion: Criterion) -> tuple[np.ndarray, np.ndarray]:
    """Factors (R1, R2) with ``R1 R1^T = M^-1`` and ``R2 R2^T = G = df/dM`` (R2 is R1 for D):
    ``|R^T z|^2`` is then ``z^T M^-1 z`` and ``z^T G z``."""
    chol = _cholesky(M)
    R1 = sla.solve_triangular(chol, np.eye(M.shape[0]), lower=True).T  # L^-T: R1 R1^T = M^-1
    if criterion.name == "D":
        return R1, R1
    Minv = _inverse(M)
    return R1, (Minv if criterion.name == "A" else Minv @ criterion.H_factor)


def gains(instance: "Instance", M: np.ndarray, criterion: Criterion,
          pool: CandidatePool | None = None) -> np.ndarray:
    """g_p = df/dn_p = w_p z_p^T (df/dM) z_p at M for every candidate pair (one pass of the
    candidate ``pool`` through completions)."""
    pool = InMemoryPool.of(instance) if pool is None else pool
    _, R2 = _factors(M, criterion)
    (q,) = pool.quadratic_forms([R2])
    return pool.pairs.weight * q


def marginal_gains(instance: "Instance", M: np.ndarray, criterion: Criterion,
                   pairs: np.ndarray | None = None, pool: CandidatePool | None = None) -> np.ndarray:
    """f(M + w_p z_p z_p^T) - f(M) for candidate pairs (all, or the indices ``pairs``).

    With q = z^T M^-1 z:  D: log(1 + w q);  A: w |M^-1 z|^2 / (1 + w q);
    L: w z^T M^-1 H M^-1 z / (1 + w q)  (Sherman-Morrison).
    """
    pool = InMemoryPool.of(instance) if pool is None else pool
    w = pool.pairs.weight if pairs is None else pool.pairs.weight[pairs]
    R1, R2 = _factors(M, criterion)
    if criterion.name == "D":
        (q1,) = pool.quadratic_forms([R1], pairs)
        return np.log1p(w * q1)
    q1, q2 = pool.quadratic_forms([R1, R2], pairs)
    return w * q2 / (1.0 + w * q1)


# ------------------------------------------------------------------------------ updates
class RankOneInverse:
    """M and M^-1 kept current under rank-one additions ``M += w z z^T`` (Sherman-Morrison):

        M^-1 <- M^-1 - w u u^T / (1 + w z^T u),   u = M^-1 z,

    O(d^2) per update; M^-1 is refactorised from M every ``refresh`` updates against drift.
    """

    def __init__(self, M: np.ndarray, criterion: Criterion, refresh: int = 200):
        self.M = np.array(M, dtype=np.float64)
        self.Minv = _inverse(self.M)
        self.criterion = criterion
        self.refresh = refresh
        self._since = 0

    def marginal_gain(self, z: np.ndarray, w: float) -> float:
        """f(M + w z z^T) - f(M) for one difference vector."""
        u = self.Minv @ z
        q = float(z @ u)
        if self.criterion.name == "D":
            return math.log1p(w * q)
        if self.criterion.name == "A":
            return w * float(u @ u) / (1.0 + w * q)
        return w * float(u @ self.criterion.H @ u) / (1.0 + w * q)

    def add(self, z: np.ndarray, w: float) -> tuple[np.ndarray, float]:
        """M += w z z^T. Returns ``(u, c)``, u = M^-1 z before the update and
        c = w / (1 + w z^T u), so that the new inverse is ``M^-1 - c u u^T``."""
        u = self.Minv @ z
        c = w / (1.0 + w * float(z @ u))
        self.Minv = self.Minv - c * np.outer(u, u)  # a new array: callers may hold the old one
        self.M += w * np.outer(z, z)
        self._since += 1
        if self._since >= self.refresh:
            self.Minv = _inverse(self.M)
            self._since = 0
        return u, c

    def value(self) -> float:
        return self.criterion.value(self.M)


class PairForms:
    """The quadratic forms of a working set of pairs (rows of ``Z``), kept exact as M changes.

    ``q1 = z^T M^-1 z`` and, for A and L, ``qG = z^T M^-1 K M^-1 z`` (K = I or H). After
    ``M += w x x^T`` with ``u = M^-1 x`` (before) and ``c = w / (1 + w x^T u)``:

        q1 -= c t^2,   qG -= 2 c t r - c^2 t^2 (u^T K u),   t = Z u,  r = Z M^-1 K u,

    O(|S| d) per update. Subtracting loses digits as forms shrink, so they are recomputed
    (O(|S| d^2)) once the largest fell below 1e-4 of its size at the last exact evaluation.
    """

    def __init__(self, Z: np.ndarray, weight: np.ndarray, M_inv: np.ndarray, criterion: Criterion):
        self.Z = Z
        self.weight = weight
        self.criterion = criterion
        d = Z.shape[1]
        self.K = None if criterion.name == "D" else (np.eye(d) if criterion.name == "A" else criterion.H)
        self.recompute(M_inv)

    def recompute(self, M_inv: np.ndarray) -> None:
        Y = self.Z @ M_inv
        self.q1 = np.einsum("ij,ij->i", Y, self.Z)
        self.qG = None if self.K is None else np.einsum("ij,ij->i", Y @ self.K, Y)
        self._scale = self._sizes()

    def _sizes(self) -> tuple[float, float]:
        return (self.q1.max(initial=0.0), 0.0 if self.qG is None else self.qG.max(initial=0.0))

    def update(self, M_inv_before: np.ndarray, u: np.ndarray, c: float, M_inv_after: np.ndarray) -> None:
        """Account for ``M += w x x^T`` given ``u = M^-1 x`` and ``c`` (from RankOneInverse.add)."""
        self.update_many([(M_inv_before, u, c)], M_inv_after)

    def update_many(self, steps: list[tuple[np.ndarray, np.ndarray, float]], M_inv_after: np.ndarray) -> None:
        """Several rank-one updates in turn, each ``(M^-1 before it, u, c)``, reading Z once."""
        cols = [u for _, u, _ in steps]
        if self.K is not None:
            cols += [M_inv @ (self.K @ u) for M_inv, u, _ in steps]
        T = self.Z @ np.column_stack(cols)
        q1 = self.q1
        for i, (_, u, c) in enumerate(steps):
            t = T[:, i]
            q1 = q1 - c * t * t
            if self.K is not None:
                r = T[:, len(steps) + i]
                uKu = float(u @ self.K @ u)
                self.qG = np.maximum(self.qG - 2.0 * c * t * r + (c * c * uKu) * t * t, 0.0)
        self.q1 = np.maximum(q1, 0.0)
        now = self._sizes()
        if now[0] < 1e-4 * self._scale[0] or (self.qG is not None and now[1] < 1e-4 * self._scale[1]):
            self.recompute(M_inv_after)

    def gains(self) -> np.ndarray:
        """First-order gains g = w z^T (df/dM) z."""
        return self.weight * (self.q1 if self.qG is None else self.qG)

    def marginal_gains(self) -> np.ndarray:
        """f(M + w z z^T) - f(M) (as :func:`marginal_gains`)."""
        if self.qG is None:
            return np.log1p(self.weight * self.q1)
        return self.weight * self.qG / (1.0 + self.weight * self.q1)
