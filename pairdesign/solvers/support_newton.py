"""Projected Newton on a working set of pairs, for a budget row and per-pair bounds, and with unit
costs also per-prompt caps (docs/design.md section 12.2).

The relaxation restricted to a working set S (every pair outside S keeps its value),

    maximise f(M0' + sum_{p in S} n_p w_p z_p z_p^T)   s.t.  c_S^T n_S = B_S,  l_S <= n_S <= u_S,

with B_S the budget the pairs of S spend now (the budget row is tight: f grows with every n_p),
is small: its optimum has at most about d(d+1)/2 pairs strictly between their bounds. It is solved
by a projected Newton method in the manner of Bertsekas (1982):

1. the gains g = df/dn_S and their ratios r = g / c; the multiplier estimate lambda, the mean
   ratio of the pairs strictly inside their bounds (weighted by c_p n_p);
2. the free set F = N + T: the block N holds the pairs strictly inside their bounds (at most
   ``max_free``, largest c_p n_p first; doubled up to ``max_block`` whenever a step cut the
   restricted gap by less than 4) and, growing by half its size per step, the pairs that
   violate most: at the lower bound with r_p > lambda (they want in) or at the upper bound with
   r_p < lambda (they want out), as many of each; the tail T holds the other violators and the
   pairs inside their bounds beyond the block's size; every other pair keeps its value;
3. the direction with the budget kept, B delta = g_F - nu c_F, c_F^T delta = 0, where
   B = blockdiag(H_NN + mu I, diag(H_TT) + mu I) and H = -Hess f,

       D:     H_pq = w_p w_q (z_p^T M^-1 z_q)^2
       A, L:  H_pq = 2 w_p w_q (z_p^T M^-1 z_q)(z_p^T M^-1 K M^-1 z_q)   (K = I or H)

   (Schur products of PSD matrices: PSD; mu a small ridge for |N| above the rank d(d+1)/2):
   Newton on the block, a diagonally scaled step for the many pairs of the tail (two-metric
   projection: the tail moves to its bounds in bulk at the cost of the block's factorisation);
   pairs next to a bound the step pushes them through, and that want to be there, are set to
   it (Bertsekas's epsilon-active set) and the direction is recomputed on the others;
4. an Armijo search along the projected arc n(t) = P(n_F + t delta), P the projection onto
   {c_F^T n = c_F^T n_F, l_F <= n <= u_F} (a clip with one multiplier, found by bisection).

**Prompt caps** (unit costs; sum_{p in i} n_p <= room_i for each capped prompt i, room_i what
the pairs of S may hold): a full prompt i gets its own price theta_i >= lambda (the mean ratio of
its pairs inside their bounds, or between its smallest holder's and largest waiting pair's) and
the pairs of F are weighed against theta; the direction keeps, besides the budget, the sum of
every full prompt whose price is above lambda (C delta = 0: :func:`newton_direction`), and P is
the projection onto {sum n = spend, sum_{p in i} n_p <= room_i, l <= n <= u}
(:func:`project_budget_caps`).

The stopping test is the exact gap of the restricted problem (its own linear oracle: the
fractional knapsack on S, or greedy over the laminar family with caps: :func:`laminar_top`). This gives no certificate for the whole problem: the caller's gain pass
over all pairs does, as before.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import scipy.linalg as sla

from ..information import Criterion

if TYPE_CHECKING:
    from ..polytope import Polytope
    from ..pool import CandidatePool

log = logging.getLogger(__name__)

_AT_BOUND = 1e-12  # relative: n_p within this of a bound counts as at the bound


@dataclass
class NewtonOutcome:
    """The result of :func:`newton_on_working_set`."""

    n: np.ndarray  # the new values on the working set
    M: np.ndarray  # the information matrix at them
    steps: int  # accepted Newton steps
    restricted_gap: float  # the last one measured: at ``n`` unless the step limit or the clock ended the run


def criterion_forms(crit: Criterion, Z: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows Y1, Y2 with Y1 Y1^T = Z M^-1 Z^T and Y2 Y2^T = Z (df/dM) Z^T, so that the gains are
    w |y2_p|^2 (Y2 is Y1 for D)."""
    chol = np.linalg.cholesky(M)
    Y1 = Z @ sla.solve_triangular(chol, np.eye(M.shape[0]), lower=True).T  # rows L^-1 z
    if crit.is_log_det:
        return Y1, Y1
    Minv = sla.cho_solve((chol, True), np.eye(M.shape[0]))
    return Y1, Z @ crit.gradient_factor(None, Minv)  # R2 R2^T = df/dM: M^-1 (A), M^-1 H^1/2 (L)


def criterion_hessian(crit: Criterion, w: np.ndarray, Y1: np.ndarray, Y2: np.ndarray) -> np.ndarray:
    """-Hess f over the given pairs (module docstring, step 3), from the weighted rows
    sqrt(w_p) y_p: (W1 W1^T)^2 (D), 2 (W1 W1^T) o (W2 W2^T) (A, L), elementwise, in place (no
    |N| x |N| temporaries beyond the products)."""
    root = np.sqrt(w)[:, None]
    W1 = root * Y1
    H = W1 @ W1.T
    if crit.is_log_det:
        H *= H
    else:
        W2 = root * Y2
        H *= W2 @ W2.T
        H *= 2.0
    return H


def criterion_hessian_diagonal(crit: Criterion, w: np.ndarray, Y1: np.ndarray,
                               Y2: np.ndarray) -> np.ndarray:
    """The diagonal of :func:`criterion_hessian`: w^2 q1^2 (D), 2 w^2 q1 q2 (A, L)."""
    q1 = np.einsum("ij,ij->i", Y1, Y1)
    if crit.is_log_det:
        return (w * q1) ** 2
    return 2.0 * w * w * q1 * np.einsum("ij,ij->i", Y2, Y2)


def knapsack_top(g: np.ndarray, cost: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                 budget: float) -> tuple[float, float]:
    """max g^T s over {c^T s <= budget, lower <= s <= upper} (the fractional knapsack), and the
    ratio g/c of the last pair it takes (the knapsack's price)."""
    s = lower.copy()
    left = budget - float(cost @ lower)
    useful = np.flatnonzero((g > 0) & (upper > lower))
    order = useful[np.argsort(-(g[useful] / cost[useful]), kind="stable")]
    spend = (upper[order] - lower[order]) * cost[order]
    before = np.cumsum(spend) - spend
    take = np.clip((left - before) / cost[order], 0.0, upper[order] - lower[order])
    s[order] += take
    taken = order[take > 0]
    price = float(g[taken[-1]] / cost[taken[-1]]) if taken.size else 0.0
    return float(g @ s), price


def bracket_price(spent: Callable[[float], float], spend: float) -> tuple[float, float]:
    """A bracket [lo, hi], as narrow as floats allow, of the price nu with spent(nu) = spend, for a
    non-increasing spent(nu): doubling out from [-1, 1], then bisection."""
    lo, hi = -1.0, 1.0
    while spent(lo) < spend and lo > -1e300:
        lo *= 2.0
    while spent(hi) > spend and hi < 1e300:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if spent(mid) > spend:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * max(1.0, abs(lo), abs(hi)):
            break
    return lo, hi


def project_budget_box(y: np.ndarray, cost: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                       spend: float) -> np.ndarray:
    """The Euclidean projection of y onto {c^T n = spend, lower <= n <= upper}:
    n = clip(y - nu c, lower, upper) with nu solving c^T n(nu) = spend (monotone in nu:
    bisection to a bracket, then the linear piece in it)."""
    def spent(nu: float) -> float:
        return float(cost @ np.clip(y - nu * cost, lower, upper))

    lo, hi = bracket_price(spent, spend)
    nu = 0.5 * (lo + hi)
    free = (y - nu * cost > lower) & (y - nu * cost < upper)
    if free.any():  # exact on the piece: sum_free c (y - nu c) + sum_fixed c n = spend
        fixed = np.clip(y - nu * cost, lower, upper)
        rest = float(cost[~free] @ fixed[~free])
        nu_exact = (float(cost[free] @ y[free]) + rest - spend) / float(cost[free] @ cost[free])
        if lo - 1e-12 * abs(lo) <= nu_exact <= hi + 1e-12 * abs(hi):
            nu = nu_exact
    return np.clip(y - nu * cost, lower, upper)


def laminar_top(g: np.ndarray, lower: np.ndarray, upper: np.ndarray, spend: float,
                group: np.ndarray, room: np.ndarray) -> tuple[float, float]:
    """max g^T s over {1^T s <= spend, sum_{p in i} s_p <= room_i (every capped prompt i),
    lower <= s <= upper} (unit costs: a polymatroid of a laminar family, where greedy by gain is
    optimal, as in the linear oracle), and the gain of the last pair the budget takes (its price).
    ``group`` is each pair's capped prompt (-1: none), ``room`` the cap of each."""
    s = lower.copy()
    avail = upper - lower
    capped = group >= 0
    used = np.bincount(group[capped], lower[capped], minlength=room.size)
    left = np.maximum(room - used, 0.0)
    useful = np.flatnonzero((g > 0) & (avail > 0))
    amount = avail.copy()
    cu = useful[capped[useful]]
    if cu.size:  # within each prompt, in order of gain: what its cap leaves for each pair
        by_group = cu[np.lexsort((-g[cu], group[cu]))]
        keys, r = group[by_group], avail[by_group]
        cum = np.cumsum(r)
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        first = np.repeat(starts, np.diff(np.r_[starts, keys.size]))
        before = cum - r - (cum[first] - r[first])
        amount[by_group] = np.clip(left[keys] - before, 0.0, r)
    order = useful[np.argsort(-g[useful], kind="stable")]
    take_max = amount[order]
    before = np.cumsum(take_max) - take_max
    take = np.clip(spend - float(lower.sum()) - before, 0.0, take_max)
    s[order] += take
    taken = order[take > 0]
    price = float(g[taken[-1]]) if taken.size else 0.0
    return float(g @ s), price


def cap_thresholds(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, group: np.ndarray,
                   room: np.ndarray) -> np.ndarray:
    """For every capped prompt i, the t_i with sum_{p in i} clip(y_p - t_i, lower_p, upper_p) =
    room_i, or -inf where the cap cannot bind (sum of the upper bounds within it). The sum is
    piecewise linear and decreasing in t: a vectorised bisection, then the exact linear piece."""
    t = np.full(room.size, -np.inf)
    capped = np.flatnonzero(group >= 0)
    top = np.bincount(group[capped], upper[capped], minlength=room.size)
    binds = top > room + 1e-12 * np.maximum(1.0, np.abs(room))
    sel = capped[binds[group[capped]]]
    if sel.size == 0:
        return t
    gs, ys, ls, us = group[sel], y[sel], lower[sel], upper[sel]
    lo = np.full(room.size, np.inf)
    hi = np.full(room.size, -np.inf)
    np.minimum.at(lo, gs, ys - us)
    np.maximum.at(hi, gs, ys - ls)
    lo, hi = np.where(binds, lo, 0.0), np.where(binds, hi, 0.0)  # caps that cannot bind: unused
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        over = np.bincount(gs, np.clip(ys - mid[gs], ls, us), minlength=room.size) > room
        lo, hi = np.where(over & binds, mid, lo), np.where(over | ~binds, hi, mid)
        if np.all((hi - lo)[binds] <= 1e-15 * np.maximum(1.0, np.maximum(np.abs(lo), np.abs(hi))[binds])):
            break
    mid = 0.5 * (lo + hi)
    a = ys - mid[gs]
    free = (a > ls) & (a < us)
    fixed_sum = np.bincount(gs, np.where(free, 0.0, np.clip(a, ls, us)), minlength=room.size)
    count = np.bincount(gs, free.astype(np.float64), minlength=room.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = (np.bincount(gs, np.where(free, ys, 0.0), minlength=room.size) + fixed_sum - room) / count
    ok = binds & (count > 0) & (exact >= lo - 1e-12 * np.abs(lo)) & (exact <= hi + 1e-12 * np.abs(hi))
    return np.where(ok, exact, np.where(binds, hi, -np.inf))


def project_budget_caps(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, spend: float,
                        group: np.ndarray, room: np.ndarray) -> np.ndarray:
    """The Euclidean projection of y onto {1^T n = spend, sum_{p in i} n_p <= room_i,
    lower <= n <= upper} (unit costs, disjoint capped prompts i): by the KKT conditions
    n_p = clip(y_p - nu - mu_i, lower_p, upper_p) with mu_i >= 0 zero unless prompt i is full,
    i.e. n_p = clip(y_p - max(nu, t_i)) with t_i the prompt's own threshold (:func:`cap_thresholds`,
    independent of nu), and nu solving the budget (bisection, then the exact linear piece)."""
    t = cap_thresholds(y, lower, upper, group, room)
    tp = np.where(group >= 0, t[np.maximum(group, 0)], -np.inf)

    def point(nu: float) -> np.ndarray:
        return np.clip(y - np.maximum(nu, tp), lower, upper)

    def spent(nu: float) -> float:
        return float(point(nu).sum())

    lo, hi = bracket_price(spent, spend)
    nu = 0.5 * (lo + hi)
    a = y - nu
    free = (tp < nu) & (a > lower) & (a < upper)
    if free.any():  # exact on the piece: the budget-priced free pairs move with nu one for one
        rest = float(point(nu)[~free].sum())
        nu_exact = (float(y[free].sum()) + rest - spend) / float(free.sum())
        if lo - 1e-12 * abs(lo) <= nu_exact <= hi + 1e-12 * abs(hi):
            nu = nu_exact
    return point(nu)


def newton_direction(H: np.ndarray, tail: np.ndarray, g: np.ndarray, c: np.ndarray,
                     full: np.ndarray | None = None, pinned: np.ndarray | None = None,
                     factors: dict | None = None) -> np.ndarray | None:
    """delta = argmax g^T delta - 1/2 delta^T B delta  s.t.  C delta = 0, with the scaling
    B = blockdiag(H + mu I, diag(tail) + mu I): the dense Hessian on the first pairs, its diagonal
    on the others (a two-metric step: many pairs move at the cost of a small factorisation).
    C holds the budget row c, the indicator of every full capped prompt (``full``: each pair's,
    -1 none; prompt caps) and e_p for every ``pinned`` pair (delta_p = 0): by the KKT conditions

        delta = B^-1 (g - C^T l),   (C B^-1 C^T) l = C B^-1 g,

    where the block's part of B^-1 C^T is one factorisation solved for the columns that touch it
    and the tail's a scaling (a pinned tail pair just drops out). H is PSD but singular beyond
    d(d+1)/2 pairs: mu starts at 1e-10 of the mean diagonal and grows until the factorisation
    holds and delta is an ascent direction (g^T delta > 0). ``factors`` caches the block's
    factorisation per mu between calls on the same H (pinning pairs costs solves, not a
    refactorisation)."""
    k, m = H.shape[0], g.size
    factors = {} if factors is None else factors
    # the ridge's scale: the mean diagonal (kept with the cached factorisations: one metric)
    scale = factors.setdefault("scale", float(np.trace(H) + tail.sum()) / max(m, 1))
    if not scale > 0:
        return None
    pinned = np.zeros(m, dtype=bool) if pinned is None else pinned
    group = np.full(m, -1) if full is None else np.where(pinned, -1, full)
    present, eq = np.unique(group, return_inverse=True)
    eq = eq - (1 if present[0] < 0 else 0)  # -1 (no full prompt) first in np.unique's order
    eq[group < 0] = -1
    q = int(present.size - (1 if present[0] < 0 else 0))
    eqN, eqT = eq[:k], eq[k:]
    pinN = np.flatnonzero(pinned[:k])
    cN, cT, gN, gT = c[:k], c[k:], g[:k], g[k:]
    levels = [1e-10, 1e-8, 1e-6, 1e-4, 1e-2] if q == 0 else [1e-6, 1e-4, 1e-2]
    for level, mu in enumerate(scale * np.array(levels)):
        S = np.zeros((1 + q + pinN.size, 1 + q + pinN.size))
        rhs = np.zeros(S.shape[0])
        idx = np.zeros(0, dtype=np.int64)
        if k:
            if level not in factors:
                ridged = H.copy()
                ridged.flat[::k + 1] += mu  # H + mu I without a k x k identity
                try:
                    factors[level] = sla.cho_factor(ridged, lower=True, overwrite_a=True,
                                                    check_finite=False)
                except np.linalg.LinAlgError:
                    factors[level] = None
            chol = factors[level]
            if chol is None:
                continue
            cols = np.unique(eqN[eqN >= 0])
            inN = np.flatnonzero(eqN >= 0)
            CN = np.zeros((k, 1 + cols.size + pinN.size))
            CN[:, 0] = np.where(pinned[:k], 0.0, cN)
            CN[inN, 1 + np.searchsorted(cols, eqN[inN])] = 1.0
            CN[pinN, 1 + cols.size + np.arange(pinN.size)] = 1.0
            XN = sla.cho_solve(chol, CN, check_finite=False)
            aN = sla.cho_solve(chol, gN, check_finite=False)
            idx = np.r_[0, 1 + cols, 1 + q + np.arange(pinN.size)]
            S[np.ix_(idx, idx)] += CN.T @ XN
            rhs[idx] += CN.T @ aN
        dinv = np.where(pinned[k:], 0.0, 1.0 / (tail + mu))
        aT = gT * dinv
        inT = eqT >= 0
        S[0, 0] += float(cT * cT @ dinv)
        if q:
            cross = np.bincount(eqT[inT], (cT * dinv)[inT], minlength=q)
            S[0, 1:1 + q] += cross
            S[1:1 + q, 0] += cross
            S[np.arange(1, 1 + q), np.arange(1, 1 + q)] += np.bincount(eqT[inT], dinv[inT], minlength=q)
            rhs[1:1 + q] += np.bincount(eqT[inT], aT[inT], minlength=q)
        rhs[0] += float(cT @ aT)
        if S.shape[0] == 1:
            lam = rhs / S[0, 0] if S[0, 0] > 0 else np.zeros(1)
        else:  # c may lie in the indicators' span: a consistent singular system
            lam = np.linalg.lstsq(S, rhs, rcond=None)[0]
        delta = np.empty(m)
        if k:
            delta[:k] = aN - XN @ lam[idx]
        prompt_price = np.zeros(m - k)
        prompt_price[inT] = lam[1 + eqT[inT]]
        delta[k:] = aT - dinv * (cT * lam[0] + prompt_price)
        delta[pinned] = 0.0
        if np.all(np.isfinite(delta)) and float(g @ delta) > 0:
            return delta
    return None


def newton_on_working_set(crit: Criterion, Z: np.ndarray, w: np.ndarray, cost: np.ndarray,
                          lower: np.ndarray, upper: np.ndarray, n: np.ndarray, M: np.ndarray,
                          tol: float, *, max_steps: int = 100, max_free: int = 1000,
                          max_block: int = 3000, group: np.ndarray | None = None,
                          cap_room: np.ndarray | None = None,
                          out_of_time: Callable[[], bool] = lambda: False) -> NewtonOutcome:
    """Projected Newton steps on the working set (rows ``Z``, weights ``w``, costs, bounds, current
    values ``n``; ``M`` the information matrix of the whole current design) until the restricted
    gap is at most ``tol`` or no step improves f. Returns the new values and M.

    With prompt caps (unit costs): ``group`` gives each pair's capped prompt (-1: none) and
    ``cap_room[i]`` what the working set's pairs of prompt i may hold together; the restricted gap
    is then :func:`laminar_top`'s, the projection :func:`project_budget_caps`, and each full
    prompt i gets its own price theta_i >= lambda (module docstring, "prompt caps")."""
    if group is not None and not np.all(cost == 1.0):
        raise ValueError("the working-set Newton phase takes prompt caps with unit costs only")
    n = np.array(n, dtype=np.float64)
    M = np.array(M, dtype=np.float64)
    spend = float(cost @ n)
    width = np.maximum(upper - lower, 1.0)
    value = crit.value(M)
    steps = 0
    rgap = math.inf
    block_size = max_free
    for _ in range(max_steps):
        if out_of_time():
            break
        Y1, Y2 = criterion_forms(crit, Z, M)
        g = w * np.einsum("ij,ij->i", Y2, Y2)
        if group is None:
            top, price = knapsack_top(g, cost, lower, upper, spend)
        else:
            top, price = laminar_top(g, lower, upper, spend, group, cap_room)
        last_gap, rgap = rgap, top - float(g @ n)
        if rgap > 0.25 * last_gap and block_size < max_block:  # slow (the diagonal tail)
            block_size = min(2 * block_size, max_block)
        if rgap <= tol:
            break
        r = g / cost
        at_lower = n <= lower + _AT_BOUND * width
        at_upper = n >= upper - _AT_BOUND * width
        inside = ~(at_lower | at_upper)
        theta, lam, full_group = _prices(r, cost, n, lower, inside, price, group, cap_room)
        free = np.flatnonzero(inside)
        overflow = free[:0]
        if free.size > block_size:  # the pairs of largest n c in the block, the rest in the tail
            order = np.argpartition(-(n[free] - lower[free]) * cost[free], block_size)
            free, overflow = free[order[:block_size]], free[order[block_size:]]
        # the Newton block grows by at most half its size per step (|N|^3 stays small), with as
        # many pairs that want in as pairs that want out; the other pairs that want to move get
        # the Hessian's diagonal (module docstring, step 3)
        room = min(block_size - free.size, max(64, free.size // 2)) // 2
        block, tail = [free], [overflow]
        for want in (np.where(at_lower, r - theta, 0.0), np.where(at_upper, theta - r, 0.0)):
            movers = np.flatnonzero(want > 0)
            if movers.size > room:
                order = np.argpartition(-want[movers], room)
                block.append(movers[order[:room]])
                tail.append(movers[order[room:]])
            else:
                block.append(movers)
        N = np.unique(np.concatenate(block))
        D = np.setdiff1d(np.concatenate(tail), N) if tail else np.zeros(0, dtype=np.int64)
        F = np.concatenate([N, D])
        if F.size < 2:
            log.debug("working-set Newton: free set of %d pairs", F.size)
            break
        H = criterion_hessian(crit, w[N], Y1[N], Y2[N])
        hD = criterion_hessian_diagonal(crit, w[D], Y1[D], Y2[D])
        cF, gF, nF, lF, uF = cost[F], g[F], n[F], lower[F], upper[F]
        thF = theta[F]
        fullF = None if full_group is None else full_group[F]  # full prompts keep their sums
        at_lower_F, at_upper_F = at_lower[F], at_upper[F]

        block_factors: dict = {}  # the whole block's factorisation, per ridge level

        def direction(keep: np.ndarray) -> np.ndarray | None:
            # the pairs left out are removed (a smaller factorisation), not pinned by equalities:
            # with the block near singular (beyond d(d+1)/2 pairs) the equalities lose digits;
            # while only tail pairs are left out the block's factorisation serves again
            if keep[:N.size].all():
                tail_keep = keep[N.size:]
                step = newton_direction(H, hD[tail_keep], np.r_[gF[:N.size], gF[N.size:][tail_keep]],
                                        np.r_[cF[:N.size], cF[N.size:][tail_keep]],
                                        None if fullF is None else
                                        np.r_[fullF[:N.size], fullF[N.size:][tail_keep]],
                                        factors=block_factors)
            else:
                kN = keep[:N.size]
                step = newton_direction(H[np.ix_(kN, kN)], hD[keep[N.size:]], gF[keep], cF[keep],
                                        None if fullF is None else fullF[keep])
            if step is None:
                return None
            out = np.zeros(F.size)
            out[keep] = step
            return out

        # pairs at a bound that the direction pushes outwards stay there (the active set), and
        # the epsilon-active pairs (Bertsekas): those the step would push through a bound they
        # are next to and that want to be there go to it; the direction is recomputed on the rest
        inside_F = ~at_lower_F & ~at_upper_F
        # "next to a bound": within 1e-3 of the step and of the typical distance of a pair to its bound
        eps = 1e-3 * float(np.mean(np.minimum(nF - lF, uF - nF)[inside_F])) if inside_F.any() else 0.0
        keep = np.ones(F.size, dtype=bool)
        snap = np.zeros(F.size, dtype=bool)
        snap_lower = np.zeros(F.size, dtype=bool)
        delta = None
        for rounds in range(3):
            if keep.sum() < 2:
                delta = None
                break
            delta = direction(keep)
            if delta is None:
                break
            outward = keep & ((at_lower_F & (delta < 0)) | (at_upper_F & (delta > 0)))
            near = keep & ~at_lower_F & ~at_upper_F & (
                ((delta < 0) & (nF - lF < np.minimum(-1e-3 * delta, eps)) & (r[F] < thF))
                | ((delta > 0) & (uF - nF < np.minimum(1e-3 * delta, eps)) & (r[F] > thF)))
            if not (outward.any() or near.any()):
                break
            keep &= ~(outward | near)
            snap |= near
            snap_lower |= near & (delta < 0)
            if rounds == 2:  # no third factorisation: the last ones just stay (Armijo checks)
                delta[~keep] = 0.0
        if delta is None:
            log.debug("working-set Newton: no ascent direction on %d pairs", F.size)
            break
        # the pairs that stay go nowhere, the snapped ones to their bound; the projection keeps
        # the budget on the pairs that move
        fixed = np.where(snap, np.where(snap_lower, lF, uF), nF)
        spend_keep = float(cF @ nF) - float(cF[~keep] @ fixed[~keep])
        if group is not None:  # what the moving pairs of each capped prompt may hold together
            gF_ = group[F]
            others = np.ones(n.size, dtype=bool)
            others[F] = False
            others &= group >= 0
            held = np.bincount(group[others], n[others], minlength=cap_room.size).astype(np.float64)
            still = ~keep & (gF_ >= 0)
            held += np.bincount(gF_[still], fixed[still], minlength=cap_room.size)
            room_keep = np.maximum(cap_room - held, 0.0)
        t, accepted, rise = 1.0, False, 0.0
        for _ in range(40):
            trial = fixed.copy()
            if group is None:
                trial[keep] = project_budget_box(nF[keep] + t * delta[keep], cF[keep], lF[keep],
                                                 uF[keep], spend_keep)
            else:
                trial[keep] = project_budget_caps(nF[keep] + t * delta[keep], lF[keep], uF[keep],
                                                  spend_keep, gF_[keep], room_keep)
            move = trial - nF
            rise = float(g[F] @ move)
            if rise <= 0:
                t *= 0.5
                continue
            M_trial = M + Z[F].T @ ((w[F] * move)[:, None] * Z[F])
            M_trial = 0.5 * (M_trial + M_trial.T)
            try:
                trial_value = crit.value(M_trial)
            except ValueError:
                t *= 0.5
                continue
            if trial_value >= value + 1e-4 * rise:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            log.debug("working-set Newton: no step on %d free pairs (rgap %.3g, last rise %.3g)",
                      F.size, rgap, rise)
            break
        n[F] = trial
        M, value = M_trial, trial_value
        steps += 1
    return NewtonOutcome(n=n, M=M, steps=steps, restricted_gap=rgap)


def _prices(r: np.ndarray, cost: np.ndarray, n: np.ndarray, lower: np.ndarray,
            inside: np.ndarray, price: float, group: np.ndarray | None,
            room: np.ndarray | None) -> tuple[np.ndarray, float, np.ndarray | None]:
    """The multiplier estimates: lambda (the budget's), the mean ratio of the pairs strictly
    inside their bounds weighted by c_p n_p (the knapsack's price if none), and per pair the price
    it is weighed against, theta_p = lambda, or for a pair of a full capped prompt i
    theta_i = max(lambda, the same mean over the prompt's pairs inside their bounds, or if none is
    inside, the midpoint between the smallest ratio of its pairs holding labels and the largest of
    those at their lower bound when that one is larger, the smallest otherwise)."""
    def mean_ratio(mask: np.ndarray) -> float | None:
        weight = cost[mask] * n[mask]
        total = float(weight.sum())
        return float(r[mask] @ weight) / total if mask.any() and total > 0 else None

    if group is None:
        lam = mean_ratio(inside)
        lam = price if lam is None else lam
        return np.full(r.size, lam), lam, None
    capped = group >= 0
    sums = np.bincount(group[capped], n[capped], minlength=room.size)
    full = sums >= room - 1e-9 * np.maximum(1.0, np.abs(room))
    in_full = capped & full[np.maximum(group, 0)]
    lam = mean_ratio(inside & ~in_full)
    lam = price if lam is None else lam
    theta = np.full(r.size, lam)
    if in_full.any():
        G = room.size
        idx = np.flatnonzero(in_full)
        gi = group[idx]
        weight = np.where(inside[idx], cost[idx] * n[idx], 0.0)
        wsum = np.bincount(gi, weight, minlength=G)
        mean = np.bincount(gi, weight * r[idx], minlength=G) / np.where(wsum > 0, wsum, 1.0)
        holders = idx[n[idx] > lower[idx]]
        smallest = np.full(G, np.inf)
        np.minimum.at(smallest, group[holders], r[holders])
        waiting = idx[n[idx] <= lower[idx]]
        largest = np.full(G, -np.inf)
        np.maximum.at(largest, group[waiting], r[waiting])
        # no pair inside its bounds: between the holder of smallest ratio and the waiting pair of
        # largest, so that a swap within the prompt puts both in the free set
        with np.errstate(invalid="ignore"):  # inf - inf where a prompt has no pair of a kind
            between = np.where(largest > smallest, 0.5 * (largest + smallest), smallest)
        own = np.where(wsum > 0, mean, between)
        own = np.where(np.isfinite(own), own, lam)
        theta[idx] = np.maximum(lam, own[gi])
        # a full prompt whose own price is not above lambda does not hold its pairs back (its
        # multiplier is 0): its pairs may leave, so its sum is no equality of the direction
        in_full[idx] = own[gi] > lam
    return theta, lam, np.where(in_full, group, -1)


def applies(kind: str | None, lc: "Polytope", x: np.ndarray | None) -> bool:
    """The phase is for a budget row and bounds (the knapsack oracle's polytope), or those with
    unit costs and prompt caps (the laminar oracle's), with the budget spent at ``x`` (if given):
    f grows with every n_p, so the optimum spends it all."""
    if lc.has_row_lower:
        return False
    if kind == "knapsack":
        if lc.n_rows != 1:  # one row: the budget
            return False
    elif kind == "laminar":  # the budget and one row per capped prompt, nothing else
        if lc.n_rows != 1 + int(np.count_nonzero(lc.prompt_row >= 0)):
            return False
    else:
        return False
    budget = float(lc.b[0])
    return x is None or float((lc.A[0] @ x)[0]) >= budget - 1e-9 * max(1.0, abs(budget))


def spread_start(pool: "CandidatePool", lc: "Polytope", g: np.ndarray) -> np.ndarray:
    """A first design for the knapsack polytope: the linear oracle's vertex for the gains g with
    every upper bound lowered to B / (c_p k), k = 4 d, so that the budget is spread over at least
    k pairs of largest gain per cost (a full-rank M where the oracle's own vertex may put the whole
    budget on one pair)."""
    k = 4 * pool.dim
    cost = pool.pairs.cost
    budget = float(lc.b[0])
    room = lc.lower + np.maximum(budget - float(cost @ lc.lower), 0.0) / (k * cost)
    s, _ = pool.oracle(lc.restrict(lc.lower, np.minimum(lc.upper, np.maximum(room, lc.lower)))).maximize(g)
    if float(cost @ s) < budget - 1e-9 * max(1.0, budget):  # too few pairs: the oracle's vertex
        s, _ = pool.oracle(lc).maximize(g)
    return np.clip(s, lc.lower, lc.upper)


def improve_working_set(pool: "CandidatePool", crit: Criterion, lc: "Polytope", work: np.ndarray,
                        x: np.ndarray, M: np.ndarray, tol: float,
                        out_of_time: Callable[[], bool] = lambda: False) -> tuple[np.ndarray, int, float]:
    """:func:`newton_on_working_set` on the pairs ``work`` of the whole design ``x`` (every pair
    outside ``work`` keeps its value; with prompt caps, what those pairs hold in a prompt leaves
    the rest of its cap to the working set); returns the new design, the number of steps and the
    restricted gap last measured (:class:`NewtonOutcome`)."""
    cand = pool.pairs
    group = room = None
    if lc.n_rows > 1:  # prompt caps: each working-set pair's capped prompt, and what S may hold
        rows = lc.prompt_row[cand.prompt[work]]
        capped = rows >= 0
        if capped.any():
            present, local = np.unique(rows[capped], return_inverse=True)
            group = np.full(work.size, -1)
            group[capped] = local
            outside = lc.A @ x - lc.A[:, work] @ x[work]  # what pairs outside S hold in each row
            room = np.maximum(lc.b[present] - outside[present], 0.0)
    out = newton_on_working_set(crit, pool.features(work), cand.weight[work], cand.cost[work],
                                lc.lower[work], lc.upper[work], x[work], M, tol,
                                group=group, cap_room=room, out_of_time=out_of_time)
    x = x.copy()
    x[work] = out.n
    log.debug("working-set Newton: %d steps on %d pairs, restricted gap %.3g", out.steps, work.size,
              out.restricted_gap)
    return x, out.steps, out.restricted_gap
