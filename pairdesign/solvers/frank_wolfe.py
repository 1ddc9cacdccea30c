"""The native first-order solver of the convex relaxation, with a certified bound.

    maximise f(M(n)) over the polytope  {A n <= b, lower <= n <= upper}.

Every outer iteration computes all first-order gains g_p = df/dn_p through completions and the
linear oracle's vertex ``s = argmax g^T s``; concavity gives the certificate

    f* <= f(n) + g^T (s - n)          (the Frank-Wolfe duality gap),

and the run stops when the best bound is within the tolerance. Between certificates the iterate
improves on a working set S (the support of n, the oracle's vertex and the pairs of largest gain)
by *pairwise exchanges* in the manner of SMO and the vertex-exchange methods of optimal design:
move labels from the pair of smallest gain per cost (with n_p above its lower bound) to the pair
of largest (below its upper bound), by the exact line search

    D:   t* = (beta - alpha) / (2 (beta alpha - gamma))   (Fedorov's exchange step),

or a bounded scalar search for A and L, within the largest step the constraints allow (a ratio
test on the rows of A). Gains on S are kept exact by rank-one updates (O(|S| d) per exchange).
When no exchange within S helps, a Frank-Wolfe step towards s (exact line search through the
generalised eigenvalues of the step) moves every coordinate at once.

When the polytope is a budget row and per-pair bounds (the knapsack oracle's case), or with unit
costs those and per-prompt caps (the laminar oracle's), and the budget is spent, a projected
Newton method on a larger working set (:mod:`.support_newton`) replaces the
exchanges: it solves the working set's problem to a tenth of the target, so that the next
certificate mostly only has to confirm it; the first design then spreads the budget over the 4 d
pairs of largest gain per cost (the oracle's own vertex may be a single pair).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from scipy.optimize import brentq

from ..polytope import DesignBuilder, Polytope, shrink_into
from ..information import Criterion, PairForms, RankOneInverse, gains, information_matrix
from ..pool import CandidatePool, top_indices
from .base import Context
from ..backends.highs import new_highs
from . import support_newton
from .result import TerminationCondition

_EPS = 1e-12


@dataclass
class Relaxed:
    """A fractional design with its certified bound."""

    n: np.ndarray
    value: float
    bound: float
    iterations: int
    termination: TerminationCondition


def allowed_gap(criterion: Criterion, value: float, dim: int, tol: float) -> float:
    """The absolute gap that meets ``tol``: for D a D-efficiency loss ``1 - exp(-gap/d) <= tol``;
    for A and L a relative gap ``gap <= tol |f|``."""
    return criterion.allowed_gap(value, dim, tol)


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values of a working set's vector, largest first."""
    return top_indices(values, k)


class _Exchanges:
    """Pairwise exchanges on a working set S of candidates (see the module docstring)."""

    def __init__(self, pool: CandidatePool, crit: Criterion, lc: Polytope, A_csc,
                 work: np.ndarray, x: np.ndarray, slack: np.ndarray, tracker: RankOneInverse,
                 low_slack: np.ndarray | None = None):
        cand = pool.pairs
        self.crit, self.work, self.x, self.slack, self.tracker = crit, work, x, slack, tracker
        self.low_slack = low_slack  # A x - row_lower on rows with a coverage minimum (None: none)
        self.A = A_csc
        self.cost = cand.cost[work]
        self.lower, self.upper = lc.lower[work], lc.upper[work]
        self.budget_scale = max(1.0, float(lc.b[0]))
        self.forms = PairForms(pool.features(work), cand.weight[work],
                               tracker.Minv, crit)
        rows = lc.prompt_row[cand.prompt[work]]
        self.prompt_rows = rows if (rows >= 0).any() else None
        _, self.local_prompt = np.unique(cand.prompt[work], return_inverse=True)
        self.by_prompt = np.argsort(self.local_prompt, kind="stable")
        self.A_work_T = A_csc[:, work].T.tocsr() if low_slack is not None else None

    def column(self, local: int) -> tuple[np.ndarray, np.ndarray]:
        p = int(self.work[local])
        lo, hi = self.A.indptr[p], self.A.indptr[p + 1]
        return self.A.indices[lo:hi], self.A.data[lo:hi]

    def max_step(self, b: int, a: int | None, rho: float) -> tuple[float, np.ndarray, np.ndarray]:
        """Largest t keeping A n <= b and the bounds for n_b += t, n_a -= rho t."""
        rows_b, vals_b = self.column(b)
        t = self.upper[b] - self.x[self.work[b]]
        if a is None:
            rows, vals = rows_b, vals_b
        else:
            rows_a, vals_a = self.column(a)
            t = min(t, (self.x[self.work[a]] - self.lower[a]) / rho)
            rows = np.concatenate([rows_b, rows_a])
            vals = np.concatenate([vals_b, -rho * vals_a])
            rows, inverse = np.unique(rows, return_inverse=True)
            vals = np.bincount(inverse, vals)
        up = vals > _EPS
        if up.any():
            t = min(t, float(np.min(np.maximum(self.slack[rows[up]], 0.0) / vals[up])))
        if self.low_slack is not None:  # rows that fall must stay above their minimum
            down = vals < -_EPS
            if down.any():
                t = min(t, float(np.min(np.maximum(self.low_slack[rows[down]], 0.0) / -vals[down])))
        return max(t, 0.0), rows, vals

    def line_search(self, b: int, a: int | None, rho: float, t_max: float) -> float:
        """argmax over [0, t_max] of f(M + t w_b z_b z_b^T - rho t w_a z_a z_a^T)."""
        if a is None:
            return t_max  # the criteria are monotone: adding information never hurts
        f, Minv = self.forms, self.tracker.Minv
        zb, za = f.Z[b], f.Z[a]
        wb, wa = float(f.weight[b]), float(f.weight[a]) * rho
        ub, ua = Minv @ zb, Minv @ za
        Q = np.array([[zb @ ub, zb @ ua], [za @ ub, za @ ua]])
        return self.crit.exchange_line_search(Q, ub, ua, wb, wa, t_max)

    def _account(self, rows: np.ndarray, change: np.ndarray) -> None:
        """Row activities change by ``change`` on ``rows``: both slacks follow."""
        self.slack[rows] -= change
        if self.low_slack is not None:
            self.low_slack[rows] += change

    def move_pair(self, b: int, up: float, a: int, down: float) -> None:
        """n_b += up and n_a += down (down < 0) in one pass over the working set."""
        first = self.tracker.Minv
        u1, c1 = self.tracker.add(self.forms.Z[b], up * float(self.forms.weight[b]))
        second = self.tracker.Minv
        u2, c2 = self.tracker.add(self.forms.Z[a], down * float(self.forms.weight[a]))
        self.forms.update_many([(first, u1, c1), (second, u2, c2)], self.tracker.Minv)
        self.x[self.work[b]] += up
        self.x[self.work[a]] += down

    def move(self, local: int, amount: float) -> None:
        """n_p += amount for the working-set pair ``local`` (M, M^-1, forms, slack follow)."""
        before = self.tracker.Minv
        u, c = self.tracker.add(self.forms.Z[local], amount * float(self.forms.weight[local]))
        self.forms.update(before, u, c, self.tracker.Minv)
        self.x[self.work[local]] += amount

    def _min_blocked(self) -> np.ndarray | None:
        """Working-set pairs in a row held at its coverage minimum (they can give labels only to
        a pair of the same row), or None when no row has a minimum."""
        if self.low_slack is None:
            return None
        tight = (self.low_slack <= _EPS).astype(np.float64)
        if not tight.any():
            return None
        return self.A_work_T @ tight > 0

    def _partners(self, ratio: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, int | None]:
        """For every working-set pair b, the pair a to take labels from: the one of smallest
        ratio among those with labels to give, in b's own prompt when b's prompt cap is tight
        (labels can then only move within the prompt), anywhere otherwise; a pair in a row held
        at its coverage minimum gives labels only within its prompt (the prompt's and its
        groups' rows then keep their activity)."""
        blocked = self._min_blocked()
        down = np.where(dec, ratio, np.inf)
        free_down = down if blocked is None else np.where(blocked, np.inf, down)
        a_global = int(np.argmin(free_down)) if np.isfinite(free_down).any() else None
        partner = np.full(ratio.shape[0], -1 if a_global is None else a_global)
        tight = np.zeros(ratio.shape[0], dtype=bool)
        if self.prompt_rows is not None:
            tight = self.slack[np.maximum(self.prompt_rows, 0)] <= _EPS
            tight &= self.prompt_rows >= 0
        if tight.any() or blocked is not None:
            order = self.by_prompt
            keys = self.local_prompt[order]
            vals = down[order]
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            mins = np.minimum.reduceat(vals, starts)
            # the position (in S) of each prompt's smallest ratio
            seg = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, keys.size]))
            hits = np.flatnonzero(vals == mins[seg])
            segments, first = np.unique(seg[hits], return_index=True)
            first_min = np.full(starts.size, -1)
            first_min[segments] = order[hits[first]]
            local_min = first_min[seg]
            mine = np.empty_like(partner)
            mine[order] = np.where(np.isfinite(mins[seg]), local_min, -1)
            if blocked is not None:  # the cheaper of the prompt's own and the free global partner
                own_better = (mine >= 0) & ((partner < 0) | (ratio[np.maximum(mine, 0)]
                                                            < ratio[np.maximum(partner, 0)]))
                partner = np.where(own_better, mine, partner)
            partner = np.where(tight, mine, partner)
        return partner, a_global

    def run(self, ctx: Context, tol: float, max_steps: int) -> int:
        """Exchange until the largest violation (g_b/c_b - g_a/c_a) is at most ``tol``."""
        x, work = self.x, self.work
        steps = 0
        while steps < max_steps:
            if steps % 64 == 0 and ctx.out_of_time():
                break
            ratio = self.forms.gains() / self.cost
            xs = x[work]
            dec = xs > self.lower + _EPS
            inc = xs < self.upper - _EPS
            if not inc.any():
                break
            moved = False
            up = np.where(inc, ratio, -np.inf)
            if self.slack[0] > _EPS * self.budget_scale:  # budget left: pure additions
                for b in _top(up, 8):
                    if up[b] <= 0:
                        break
                    t, rows, vals = self.max_step(int(b), None, 1.0)
                    if t > _EPS:
                        self._account(rows, t * vals)
                        self.move(int(b), t)
                        moved = True
                        break
            if not moved:
                partner, _ = self._partners(ratio, dec)
                violation = np.where(inc & (partner >= 0), up - ratio[np.maximum(partner, 0)], -np.inf)
                for b in _top(violation, 8):
                    if violation[b] <= tol:
                        break
                    a = int(partner[b])
                    rho = self.cost[b] / self.cost[a]
                    t_max, rows, vals = self.max_step(int(b), a, rho)
                    drop = (x[work[a]] - self.lower[a]) / rho
                    if t_max <= _EPS:
                        if drop > _EPS:
                            continue  # blocked by a constraint or by b's bound: try the next b
                        t = drop  # a holds a crumb: empty it
                    else:
                        t = self.line_search(int(b), a, rho, t_max)
                        if t <= 0.0:
                            continue
                    self._account(rows, t * vals)
                    self.move_pair(int(b), t, a, -rho * t)
                    if t >= drop * (1 - 1e-12):
                        x[work[a]] = self.lower[a]  # exactly at the bound
                    moved = True
                    break
            if not moved:
                break
            steps += 1
        return steps


def _longest_step(lc: Polytope, x: np.ndarray, direction: np.ndarray) -> float:
    """The largest gamma in [0, 1] with x + gamma direction feasible (a ratio test: directions
    from HiGHS are feasible only to its tolerances)."""
    gamma = 1.0
    tiny = 1e-9  # moves this small are a solver's rounding: shrink_into absorbs them
    up, down = direction > tiny, direction < -tiny
    if up.any():
        gamma = min(gamma, float(np.min(np.maximum(lc.upper[up] - x[up], 0.0) / direction[up])))
    if down.any():
        gamma = min(gamma, float(np.min(np.minimum(lc.lower[down] - x[down], 0.0) / direction[down])))
    rate = lc.A @ direction
    rising = rate > tiny
    if rising.any():
        slack = np.maximum(lc.b - lc.A @ x, 0.0)
        gamma = min(gamma, float(np.min(slack[rising] / rate[rising])))
    falling = rate < -tiny
    if lc.has_row_lower and falling.any():  # coverage minimums
        room = np.maximum(lc.A @ x - lc.lower_sides(), 0.0)
        gamma = min(gamma, float(np.min(room[falling] / -rate[falling])))
    return max(gamma, 0.0)


def _best_step(pool: CandidatePool, crit: Criterion, direction: np.ndarray, M: np.ndarray,
               gamma_max: float = 1.0) -> float:
    """argmax over gamma in [0, gamma_max] of f(M + gamma Delta), Delta = sum_p direction_p w_p z_p z_p^T,
    through the generalised eigenvalues lambda of (Delta, M):
    log det(M + gamma Delta) = log det M + sum log(1 + gamma lambda), and for A, L
    tr(K (M + gamma Delta)^-1) = sum k_i / (1 + gamma lambda_i)."""
    Delta = pool.information(direction)
    chol = np.linalg.cholesky(M)
    T = sla.solve_triangular(chol, sla.solve_triangular(chol, Delta, lower=True).T, lower=True)
    lam, V = np.linalg.eigh(0.5 * (T + T.T))
    slope = crit.step_slope(lam, chol, V)
    if slope(0.0) <= 0 or gamma_max <= 0:
        return 0.0
    if slope(gamma_max) >= 0:
        return gamma_max
    return float(brentq(slope, 0.0, gamma_max, xtol=1e-15))


NEWTON_MAX_PAIRS = 1500  # a dense |S| x |S| Hessian for HiGHS's QP solver
CLARABEL_MAX_PAIRS = 300  # the interior-point fallback when HiGHS's QP solver cycles


def _newton_direction(pool: CandidatePool, crit: Criterion, lc: Polytope, work: np.ndarray,
                      x: np.ndarray, M: np.ndarray, time_left: float | None = None) -> np.ndarray | None:
    """The projected Newton direction on the working set S: the QP

        maximise g^T delta - 1/2 delta^T (-Hess f) delta
        s.t.     A (x + delta) <= b,  lower <= x + delta <= upper,  delta = 0 outside S,

    solved by HiGHS. -Hess f = (w w^T) o G1 o G1 for D and 2 (w w^T) o G1 o G2 for A, L,
    with G1 = Z M^-1 Z^T and G2 = Z M^-1 K M^-1 Z^T (Schur products of PSD matrices: PSD)."""
    import highspy
    import scipy.sparse as sp

    cand = pool.pairs
    # pairs at their lower bound in a full cap or group row (A >= 0) move only where another pair
    # of the row gives way: leave them out, or their (often huge) gains would set the QP's scale
    # and drown the gains of the pairs that can. The budget row (row 0) is full at every optimum
    # and every pair is in it: it leaves out only where no pair holds labels above its bound.
    slack = lc.b - lc.A @ x
    finite_b = lc.b[np.isfinite(lc.b)]
    tiny = 1e-12 * max(1.0, float(np.abs(finite_b).max(initial=1.0)))
    full_rows = np.flatnonzero(slack <= tiny)
    if full_rows.size and full_rows[0] == 0 and float((lc.A[0] @ np.maximum(x - lc.lower, 0.0))[0]) > tiny:
        full_rows = full_rows[1:]
    if full_rows.size:
        in_full = np.asarray(lc.A[full_rows][:, work].sum(axis=0)).ravel() > 0
        work = work[~(in_full & (x[work] <= lc.lower[work] + 1e-15))]
    if work.size == 0:
        return None
    Z = pool.features(work)
    w = cand.weight[work]
    Minv = np.linalg.inv(M)
    Y = Z @ Minv
    G1 = Y @ Z.T
    g, Hneg = crit.newton_terms(w, G1, Y)
    Hneg = 0.5 * (Hneg + Hneg.T) + 1e-12 * np.trace(Hneg) / work.size * np.eye(work.size)
    scale = float(np.abs(g).max(initial=0.0))
    if not scale > 0:
        return None
    g, Hneg = g / scale, Hneg / scale  # the same minimiser, numbers HiGHS handles well
    A_S = lc.A[:, work].tocsc()
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = work.size, lc.n_rows
    lp.col_cost_ = -g
    lp.col_lower_ = lc.lower[work] - x[work]
    lp.col_upper_ = lc.upper[work] - x[work]
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = A_S.indptr, A_S.indices, A_S.data
    lp.row_lower_ = np.minimum(lc.lower_sides() - lc.A @ x, 0.0)  # -inf where no minimum
    lp.row_upper_ = np.maximum(slack, 0.0)
    hess = highspy.HighsHessian()
    hess.dim_, hess.format_ = work.size, highspy.HessianFormat.kTriangular
    low = sp.csc_matrix(np.tril(Hneg))
    hess.start_, hess.index_, hess.value_ = low.indptr, low.indices, low.data
    model = highspy.HighsModel()
    model.lp_, model.hessian_ = lp, hess
    h = new_highs()
    # HiGHS's QP solver can cycle (ERGO-Code/HiGHS#1000): its work is bounded by an iteration
    # limit (not by the clock, so that runs reproduce); None falls back to Frank-Wolfe
    if time_left is not None:
        h.setOptionValue("time_limit", float(time_left))
    h.setOptionValue("qp_iteration_limit", 20 * work.size + 1000)
    h.setOptionValue("dual_feasibility_tolerance", 1e-10)  # the gains are scaled to max 1
    h.setOptionValue("primal_feasibility_tolerance", 1e-10)
    h.passModel(model)
    h.run()
    if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        step = np.asarray(h.getSolution().col_value)
    elif work.size <= CLARABEL_MAX_PAIRS:  # HiGHS cycled or stopped: the same QP by Clarabel
        finite = np.isfinite(slack)
        step = (_qp_by_clarabel(g, Hneg, A_S[finite], np.maximum(slack[finite], 0.0), lp.col_lower_,
                                lp.col_upper_) if not lc.has_row_lower else None)
        if step is None:
            return None
    else:
        return None
    direction = np.zeros(x.shape[0])
    direction[work] = np.clip(step, lp.col_lower_, lp.col_upper_)
    return direction


def _qp_by_clarabel(g: np.ndarray, Hneg: np.ndarray, A_S, room: np.ndarray, lo: np.ndarray,
                    hi: np.ndarray) -> np.ndarray | None:
    """minimise -g^T d + 1/2 d^T Hneg d  s.t.  A_S d <= room, lo <= d <= hi (Hneg PSD), or None."""
    import cvxpy as cp

    d = cp.Variable(g.size)
    problem = cp.Problem(cp.Minimize(-g @ d + 0.5 * cp.quad_form(d, cp.psd_wrap(Hneg))),
                         [A_S @ d <= room, d >= lo, d <= hi])
    try:
        problem.solve(solver="CLARABEL")
    except cp.error.SolverError:
        return None
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or d.value is None:
        return None
    return np.asarray(d.value, dtype=np.float64)


def solve_relaxation(ctx: Context, *, tol: float = 1e-6, max_iterations: int = 10_000,
                     start: np.ndarray | None = None, lower: np.ndarray | None = None,
                     upper: np.ndarray | None = None, stop_below: float | None = None) -> Relaxed:
    """Solve the CR to a certified tolerance (``allowed_gap``); see the module docstring.

    ``lower`` / ``upper`` replace the per-pair bounds (a node of branch and bound: every pair
    must keep ``A lower <= b``); ``stop_below`` stops the run as soon as the certified bound is
    at most that value (termination ``completed``: the node can be pruned)."""
    inst, crit = ctx.instance, ctx.criterion
    cand = ctx.pool.pairs
    lc = ctx.polytope
    if lower is not None or upper is not None:
        lc = lc.restrict(lc.lower if lower is None else lower, lc.upper if upper is None else upper)
    # the certificate bounds the whole problem's optimum only over the whole polytope
    offer = ctx.known.offer_bound if ctx.problem.root and lc is ctx.polytope else (lambda b: None)
    A_csc = lc.A.tocsc()
    pool = ctx.pool
    oracle = pool.oracle(lc)
    M0 = information_matrix(inst, lc.lower, pool)
    if start is None and support_newton.applies(getattr(oracle, "kind", None), lc, None):
        x = support_newton.spread_start(pool, lc, gains(inst, M0, crit, pool))
    elif start is None:
        x = shrink_into(lc, oracle.maximize(gains(inst, M0, crit, pool))[0])
    else:  # pulled into the polytope: a parent's design clipped to a child's box may break a row
        x = shrink_into(lc, np.asarray(start, dtype=np.float64))
        if lc.has_row_lower and lc.violations(x, integral=False):  # a minimum not met: the vertex
            x = shrink_into(lc, oracle.maximize(gains(inst, M0, crit, pool))[0])
    if ctx.problem.root and lc is ctx.polytope:
        def rounded_iterate() -> np.ndarray:
            """After an interrupt: the current iterate rounded (largest weights first)."""
            design = DesignBuilder(lc)
            design.fill(np.argsort(-x, kind="stable"))
            return design.counts

        ctx.incumbent = rounded_iterate
    best_bound = math.inf
    value = -math.inf
    exchanges_total, fw_steps, newton_steps = 0, 0, 0
    stalled = False
    termination = TerminationCondition.iteration_limit
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        M = information_matrix(inst, x, pool)
        value = crit.value(M)
        g = gains(inst, M, crit, pool)
        s, top = oracle.maximize(g)
        best_bound = min(best_bound, value + top - float(g @ x))
        offer(best_bound)
        gap = best_bound - value
        target = allowed_gap(crit, value, inst.dim, tol)
        ctx.progress(lambda: f"relax: iteration {iteration}, f = {value:.10g}, bound = {best_bound:.10g}, "
                     f"gap = {gap:.3g} (target {target:.3g}), {exchanges_total} exchanges, "
                     f"{newton_steps} Newton and {fw_steps} Frank-Wolfe steps", every=0.0 if iteration == 1 else 1.0)
        if gap <= target:
            termination = TerminationCondition.converged
            break
        if stop_below is not None and best_bound <= stop_below:
            termination = TerminationCondition.completed
            break
        if ctx.out_of_time():
            termination = TerminationCondition.time_limit
            break
        # the working set: the support, the vertex, and the pairs of largest gain per cost
        ratio = g / cand.cost
        support = np.flatnonzero((x > lc.lower + _EPS) | (s > lc.lower + _EPS))
        extra = max(256, support.size // 4)
        room = np.flatnonzero(x < lc.upper - _EPS)
        if room.size > extra:
            room = pool.top(ratio[room], extra, among=room)
        work = np.union1d(support, room)
        # ---- projected Newton on a working set (solvers/support_newton.py): budget, bounds, prompt caps
        if not stalled and support_newton.applies(getattr(oracle, "kind", None), lc, x):
            room = np.flatnonzero(x < lc.upper - _EPS)
            extra = max(4000, support.size)
            if room.size > extra:
                room = pool.top(ratio[room], extra, among=room)
            inner_tol = max(0.1 * target, 1e-6 * gap)
            x_new, steps, inner_gap = support_newton.improve_working_set(
                pool, crit, lc, np.union1d(support, room), x, M, tol=inner_tol,
                out_of_time=ctx.out_of_time)
            newton_steps += steps
            x_new = shrink_into(lc, x_new)
            # kept if it solved the working set's problem or gained at least 1e-3 of the gap;
            # otherwise the pairwise exchanges below take over for this iteration
            if steps and (inner_gap <= inner_tol
                          or crit.value(information_matrix(inst, x_new, pool)) - value > 1e-3 * gap):
                x = x_new
                continue
        # ---- end of the working-set Newton phase
        if stalled:  # exchanges found nothing last time: a Newton step on S, or a Frank-Wolfe step
            newton_x, newton_value = None, -math.inf
            if work.size <= NEWTON_MAX_PAIRS:
                direction = _newton_direction(pool, crit, lc, work, x, M, ctx.deadline.solver_seconds())
                if direction is not None:
                    gamma = _best_step(pool, crit, direction, M, _longest_step(lc, x, direction))
                    if gamma > 0:
                        newton_x = shrink_into(lc, x + gamma * direction)
                        newton_value = crit.value(information_matrix(inst, newton_x, pool))
            # a Newton step that gains next to nothing against the gap (its working set may hold
            # no better pair) competes with a Frank-Wolfe step towards the vertex: the better one
            if newton_x is not None and newton_value - value > 1e-3 * gap:
                x = newton_x
                newton_steps += 1
            else:
                direction = s - x
                gamma = _best_step(pool, crit, direction, M, _longest_step(lc, x, direction))
                fw_x = shrink_into(lc, x + gamma * direction)
                if newton_x is not None and newton_value >= crit.value(information_matrix(inst, fw_x, pool)):
                    x = newton_x
                    newton_steps += 1
                else:
                    x = fw_x
                    fw_steps += 1
            stalled = False
            continue
        activity = lc.A @ x
        slack = lc.b - activity
        tracker = RankOneInverse(M, crit, refresh=500)
        ex = _Exchanges(pool, crit, lc, A_csc, work, x, slack, tracker,
                        activity - lc.lower_sides() if lc.has_row_lower else None)
        budget_scale = max(float(lc.b[0]), 1.0)
        steps = ex.run(ctx, tol=target / budget_scale, max_steps=20 * work.size)
        exchanges_total += steps
        x = shrink_into(lc, x)  # feasible up to rounding: make it exact
        # no exchange, or exchanges that gained next to nothing against the gap: change tack
        stalled = steps == 0 or crit.value(information_matrix(inst, x, pool)) - value <= 1e-3 * gap
    value = crit.value(information_matrix(inst, x, pool))
    ctx.say(f"relax: {termination.value} after {iteration} iterations ({exchanges_total} exchanges, "
            f"{newton_steps} Newton and {fw_steps} Frank-Wolfe steps): f = {value:.10g}, "
            f"bound = {best_bound:.10g}")
    return Relaxed(n=x, value=value, bound=best_bound, iterations=iteration, termination=termination)


def relaxation_bound(ctx: Context, n: np.ndarray) -> float:
    """The certificate at a given (feasible) design: f(n) + max_s g(n)^T (s - n)."""
    inst, crit = ctx.instance, ctx.criterion
    lc = ctx.polytope
    M = information_matrix(inst, n, ctx.pool)
    g = gains(inst, M, crit, ctx.pool)
    _, top = ctx.pool.oracle(lc).maximize(g)
    return crit.value(M) + top - float(g @ n)


LARGE = 200_000  # candidate pairs from which the relaxation is solved to 1e-4 by default


def relax_for_bound(ctx: Context, tol: float | None, start: np.ndarray | None = None) -> Relaxed:
    """The relaxation, solved within the time limit (its bound is valid however far it got).

    ``tol`` is its certified tolerance; None means 1e-6, or 1e-4 from ``LARGE`` candidate pairs
    on (a D-efficiency loss of 1e-4 in the bound is far below what rounding loses there, and
    halves the time)."""
    if tol is None:
        tol = 1e-4 if ctx.pool.size >= LARGE else 1e-6
    relaxed = solve_relaxation(ctx, tol=tol, start=start)
    ctx.say(f"relaxation: f = {relaxed.value:.10g}, certified bound {relaxed.bound:.10g} "
            f"({relaxed.termination.value})")
    return relaxed
