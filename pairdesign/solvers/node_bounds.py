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
        self.applies = (criterion.is_log_det and len(cand) <= MAX_PAIRS and len(cand) >= 2
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


def top_gains_bound(log_det: float, gains: np.ndarray, room: np.ndarray, r: int) -> float:
    """An upper bound on ``log det (M + sum_{i=1}^r w_i z_i z_i^T)`` over every choice of r
    labels, pair p at most ``room[p]`` times, given ``log_det = log det M`` and the gains
    ``gains[p] = w_p z_p^T M^-1 z_p``:

        log det M + (the sum of the r largest log(1 + g_p), pair p counted room_p times).

    Proof: with u_i = M^{-1/2} sqrt(w_i) z_i and U = [u_1 .. u_r], det(M + sum_i w_i z_i z_i^T)
    = det M det(I_d + U U^T) = det M det(I_r + U^T U) <= det M prod_i (1 + |u_i|^2) by Hadamard's
    inequality on the positive definite r x r matrix I_r + U^T U, and |u_i|^2 = g_{p_i}: the
    product is at most the product of the r largest factors (each pair with its multiplicity)."""
    if r <= 0:
        return log_det
    logs = np.log1p(np.maximum(gains, 0.0))
    keep = room >= 1
    logs, times = logs[keep], np.minimum(room[keep], r).astype(np.int64)
    if logs.size == 0:
        return log_det
    order = np.argsort(-logs, kind="stable")
    total, left = 0.0, r
    for i in order.tolist():
        take = min(left, int(times[i]))
        total += take * float(logs[i])
        left -= take
        if left == 0:
            break
    return log_det + total


@dataclasses.dataclass
class BoxMaximum:
    """The outcome of :meth:`SmallBoxSearch.solve`: ``ceiling`` bounds log det over every design
    of the box (the exact maximum up to rounding, plus a margin for it), ``design`` the best design
    found above the floor (None if none) and ``value`` its log det as computed in the search."""

    ceiling: float
    value: float
    design: np.ndarray | None
    states: int


class SmallBoxSearch:
    """The exact maximum of log det M(n) over a node's designs when few labels remain.

    For unit costs (``sum_p n_p <= B``) and a box ``lo <= n <= hi`` let r = min(B - sum lo,
    sum (hi - lo)). D grows with every label (w_p z_p z_p^T is positive semidefinite), so the best
    designs of the box are ``lo`` plus a multiset of exactly r pairs, pair p at most hi_p - lo_p
    times. These are enumerated depth first as multisets (pair indices in non-decreasing order),
    each state's M afresh from its Cholesky factor; a state is cut off when
    :func:`top_gains_bound` (Hadamard's inequality) shows that nothing below it beats the floor;
    the last two labels are taken in one vectorised step by the matrix determinant lemma,

        det(M + w_a z_a z_a^T + w_b z_b z_b^T) / det M = (1 + g_a)(1 + g_b) - w_a w_b G_ab^2
        (a != b),        1 + 2 g_a  (a = b),        G_ab = z_a^T M^-1 z_b, g_a = w_a G_aa.

    The result is a proof about the whole box: its ``ceiling`` is the largest of the leaf values
    and of the bounds of the states cut off, plus a rounding margin (100 eps cond(M) with the
    condition number bounded from M(lo)'s eigenvalues and the largest label), so a node closed by
    it needs no relaxation and no branching. docs/design.md section 12.7.
    """

    def __init__(self, relaxation: PairSpaceRelaxation):
        self.relaxation = relaxation
        r = relaxation
        self.applies = bool(r.applies and np.all(r.cost == 1.0) and float(r.lc.b[0]) < 1e15)
        if self.applies:
            self.budget = math.floor(float(r.lc.b[0]) + 1e-9)
            self.Zw = r.Z * r.w[:, None]
            self.largest = float(np.max(r.w * np.einsum("ij,ij->i", r.Z, r.Z)))

    def labels_left(self, lo: np.ndarray, hi: np.ndarray) -> tuple[int, np.ndarray]:
        """r (the labels every best design of the box adds to lo) and the room hi - lo, capped
        at r."""
        room = np.minimum(hi - lo, float(self.budget))
        room = np.floor(np.maximum(room, 0.0) + 1e-9)
        left = int(math.floor(self.budget - float(lo.sum()) + 1e-9))
        return max(0, min(left, int(room.sum()))), room

    def work(self, lo: np.ndarray, hi: np.ndarray) -> float:
        """The number of states of the search without cut-offs: multisets of r - 2 pairs among
        the free pairs (each state one F x F product)."""
        r, room = self.labels_left(lo, hi)
        free = int(np.count_nonzero(room >= 1))
        return float(math.comb(free + r - 3, r - 2)) if r > 2 else 1.0

    def solve(self, lo: np.ndarray, hi: np.ndarray, floor: float) -> BoxMaximum:
        """The box's maximum (see the class docstring); designs at or below ``floor`` are not
        reported, and states whose bound is at most ``floor`` are cut off."""
        rel = self.relaxation
        r, room = self.labels_left(lo, hi)
        free = np.flatnonzero(room >= 1)
        M = rel.M0 + (rel.Z * (rel.w * lo)[:, None]).T @ rel.Z
        eig = np.linalg.eigvalsh(M)
        if eig[0] <= 0:
            raise FloatingPointError("singular information matrix")
        margin = 1e-12 + 100 * np.finfo(float).eps * (eig[-1] + r * self.largest) / eig[0]
        Z, Zw, w = rel.Z[free], self.Zw[free], rel.w[free]
        room_f = room[free].astype(np.int64)
        state = {"floor": floor, "ceiling": -math.inf, "value": -math.inf, "best": None, "states": 0}
        added = np.zeros(free.size, dtype=np.int64)

        def leaf(value: float) -> None:
            state["ceiling"] = max(state["ceiling"], value)
            if value > state["floor"]:
                state["floor"] = state["value"] = value
                design = lo.copy()
                design[free] += added
                state["best"] = design

        def visit(M: np.ndarray, left: int, start: int) -> None:
            state["states"] += 1
            chol = np.linalg.cholesky(M)
            log_det = float(2.0 * np.log(np.diag(chol)).sum())
            if left == 0:
                leaf(log_det)
                return
            Y = np.linalg.solve(chol, Z[start:].T)  # L^-1 z_p
            g = w[start:] * np.einsum("ij,ij->j", Y, Y)
            cap = room_f[start:] - added[start:]
            bound = top_gains_bound(log_det, g, cap, left)
            if bound <= state["floor"]:
                state["ceiling"] = max(state["ceiling"], bound)
                return
            ok = cap >= 1
            if left == 1:
                a = int(np.argmax(np.where(ok, g, -np.inf)))
                added[start + a] += 1
                leaf(log_det + math.log1p(g[a]))
                added[start + a] -= 1
                return
            if left == 2:
                G = (Y.T @ Y) * np.sqrt(np.outer(w[start:], w[start:]))  # sqrt(w_a w_b) G_ab
                ratio = np.outer(1.0 + g, 1.0 + g) - G * G
                np.fill_diagonal(ratio, np.where(cap >= 2, 1.0 + 2.0 * g, -np.inf))
                ratio[~ok, :] = -np.inf
                ratio[:, ~ok] = -np.inf
                ratio[np.tril_indices(ratio.shape[0], -1)] = -np.inf
                flat = int(np.argmax(ratio))
                if not np.isfinite(ratio.flat[flat]) or ratio.flat[flat] <= 0:
                    return
                a, b = divmod(flat, ratio.shape[0])
                added[start + a] += 1
                added[start + b] += 1
                leaf(log_det + math.log(ratio.flat[flat]))
                added[start + a] -= 1
                added[start + b] -= 1
                return
            for a in (np.argsort(-g, kind="stable")).tolist():
                if not ok[a]:
                    continue
                p = start + a
                added[p] += 1
                visit(M + np.outer(Zw[p], Z[p]), left - 1, p)
                added[p] -= 1

        visit(M, r, 0)
        ceiling = state["ceiling"] + margin if np.isfinite(state["ceiling"]) else state["ceiling"]
        return BoxMaximum(ceiling=ceiling, value=state["value"], design=state["best"],
                          states=state["states"])

    def quick_bound(self, lo: np.ndarray, hi: np.ndarray) -> float:
        """:func:`top_gains_bound` at M(lo) with the box's r and room: an upper bound on log det
        over the box for one Cholesky factor and P quadratic forms (+inf if M(lo) is singular)."""
        rel = self.relaxation
        r, room = self.labels_left(lo, hi)
        M = rel.M0 + (rel.Z * (rel.w * lo)[:, None]).T @ rel.Z
        try:
            chol = np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            return math.inf
        Y = np.linalg.solve(chol, rel.Z.T)
        g = rel.w * np.einsum("ij,ij->j", Y, Y)
        return top_gains_bound(float(2.0 * np.log(np.diag(chol)).sum()), g, room, r)
