"""Node relaxations of branch and bound for small D-optimal instances, in pair space.

At a node ``lo <= n <= hi`` of a budget-and-bounds polytope (``sum_p c_p n_p <= B``, the
knapsack polytope of :class:`LinearOracle`), the relaxation

    maximise log det M(x),   M(x) = M0 + sum_p x_p w_p z_p z_p^T,   over the box and the budget,

is solved by pairwise exchanges on the quadratic forms ``q_p = z_p^T M^-1 z_p`` (gains
``g_p = w_p q_p``): the pair b of largest gain per cost with room takes labels from the pair a of
smallest gain per cost above its bound, ``x_b += t``, ``x_a -= rho t`` (``rho = c_b / c_a``), by
Fedorov's exact step

    t* = (beta - alpha) / (2 (beta alpha - gamma)),   beta = w_b G_bb, alpha = rho w_a G_aa,
                                                      gamma = rho w_a w_b G_ab^2,

(``G_ab = z_a^T M^-1 z_b``); M^-1 and q follow by two rank-one (Sherman-Morrison) updates,
``q -= s (Z M^-1 z_p)^2 / (1 + s q_p)``: O(P d + d^2) and a few numpy calls per exchange, where
:func:`solve_relaxation` runs a general machinery built for millions of pairs.

The bound is never taken from the updated G: every certificate is recomputed from x,

    f* <= f(x) + max_s g(x)^T (s - x)      (concavity; valid for any x with M(x) > 0),

with M(x) rebuilt, factorised, and the maximum over the node's polytope from the linear oracle.
The run stops when the certificate is at most ``stop_below`` (the node is pruned) or within the
tolerance of f(x). Instances this does not fit (A or L, other constraints, many pairs) keep
:func:`solve_relaxation`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..polytope import LinearConstraints, shrink_into
from ..information import Criterion, centered_features, prior_information
from ..instance import Instance
from .frank_wolfe import Relaxed, allowed_gap
from ..oracle import LinearOracle
from .result import TerminationCondition

EXCHANGE_FACTOR = 1.0  # exchanges per certificate, per pair
MAX_PAIRS = 5000  # Z, the P x d pair differences, is materialised
_EPS = 1e-12


class PairSpaceRelaxation:
    """The node relaxations of one instance (see the module docstring); ``applies`` says whether
    the instance fits (criterion D, budget and bounds only, at most ``MAX_PAIRS`` pairs)."""

    def __init__(self, instance: Instance, criterion: Criterion, lc: LinearConstraints):
        cand = instance.candidates
        self.instance, self.criterion, self.lc = instance, criterion, lc
        self.applies = (criterion.name == "D" and len(cand) <= MAX_PAIRS and len(cand) >= 2
                        and LinearOracle(instance, lc).kind == "knapsack")
        if not self.applies:
            return
        phi = centered_features(instance)
        self.Z = phi[cand.j] - phi[cand.k]
        self.w = cand.weight.astype(np.float64)
        self.cost = cand.cost.astype(np.float64)
        self.M0 = prior_information(instance)

    def _state(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """f(x), the gains and M^-1, from x afresh."""
        M = self.M0 + (self.Z * (self.w * x)[:, None]).T @ self.Z
        chol = np.linalg.cholesky(M)
        Y = np.linalg.solve(chol, self.Z.T)  # L^-1 Z^T: q_p = z_p^T M^-1 z_p = |Y_:p|^2
        Linv = np.linalg.solve(chol, np.eye(M.shape[0]))
        value = float(2.0 * np.log(np.diag(chol)).sum())
        return value, np.einsum("ij,ij->j", Y, Y), Linv.T @ Linv

    def solve(self, lo: np.ndarray, hi: np.ndarray, start: np.ndarray, stop_below: float | None,
              tol: float, max_rounds: int = 60, deadline=None) -> Relaxed:
        inst, crit = self.instance, self.criterion
        lc = dataclasses.replace(self.lc, lower=lo, upper=hi)
        oracle = LinearOracle(inst, lc)
        x = shrink_into(lc, np.asarray(start, dtype=np.float64))
        w, cost = self.w, self.cost
        budget = float(lc.b[0])
        best_bound, value = math.inf, -math.inf
        termination = TerminationCondition.iteration_limit
        rounds = 0
        for rounds in range(1, max_rounds + 1):
            try:
                value, q, Minv = self._state(x)
            except np.linalg.LinAlgError:  # M(x) singular: leave it to the general solver
                raise FloatingPointError("singular information matrix") from None
            g = w * q
            s, top = oracle.maximize(g)
            best_bound = min(best_bound, value + top - float(g @ x))
            target = allowed_gap(crit, value, inst.dim, tol)
            if best_bound - value <= target:
                termination = TerminationCondition.converged
                break
            if stop_below is not None and best_bound <= stop_below:
                termination = TerminationCondition.completed
                break
            if deadline is not None and deadline():
                termination = TerminationCondition.time_limit
                break
            # exchanges until the largest violation of the KKT conditions is small
            slack = budget - float(cost @ x)
            step_tol = target / max(budget, 1.0)
            for _ in range(max(8, int(EXCHANGE_FACTOR * x.size))):
                ratio = w * q / cost
                up = np.where(x < hi - _EPS, ratio, -np.inf)
                b = int(np.argmax(up))
                if not np.isfinite(up[b]) or up[b] <= 0:
                    break
                if slack > _EPS * max(budget, 1.0):  # budget left: add to b (D only grows)
                    t = min(hi[b] - x[b], slack / cost[b])
                    Minv = self._add(Minv, q, x, b, t)
                    slack -= t * cost[b]
                    continue
                down = np.where(x > lo + _EPS, ratio, np.inf)
                down[b] = np.inf
                a = int(np.argmin(down))
                if not np.isfinite(down[a]) or up[b] - down[a] <= step_tol:
                    break
                rho = cost[b] / cost[a]
                t_max = min(hi[b] - x[b], (x[a] - lo[a]) / rho)
                G_ab = float(self.Z[a] @ (Minv @ self.Z[b]))
                beta, alpha = w[b] * q[b], rho * w[a] * q[a]
                gamma = rho * w[a] * w[b] * G_ab ** 2
                denom = 2.0 * (beta * alpha - gamma)
                t = t_max if denom <= 0 else min(t_max, (beta - alpha) / denom)
                if t <= 0:
                    break
                Minv = self._add(Minv, q, x, b, t)
                Minv = self._add(Minv, q, x, a, -rho * t)
                if x[a] < lo[a] + _EPS * max(1.0, hi[a]):
                    x[a] = lo[a]
            x = shrink_into(lc, x)
        if termination is TerminationCondition.iteration_limit:  # x moved after its certificate
            try:
                value = self._state(x)[0]
            except np.linalg.LinAlgError:
                value = -math.inf
        return Relaxed(n=x, value=value, bound=best_bound, iterations=rounds, termination=termination)

    def _add(self, Minv: np.ndarray, q: np.ndarray, x: np.ndarray, p: int, t: float) -> np.ndarray:
        """x_p += t; M^-1 and q_p = z_p^T M^-1 z_p after M += t w_p z_p z_p^T (Sherman-Morrison:
        O(P d + d^2))."""
        sw = t * self.w[p]
        u = Minv @ self.Z[p]
        col = self.Z @ u  # z_r^T M^-1 z_p for every r
        c = sw / (1.0 + sw * col[p])
        q -= c * col * col
        x[p] += t
        return Minv - c * np.outer(u, u)
