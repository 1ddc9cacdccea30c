"""Exact designs by outer approximation (cutting planes) with a MILP master in HiGHS.

    master:  maximise eta  subject to  eta <= f(n_t) + g(n_t)^T (n - n_t)   for every point n_t,
             A n <= b,  lower <= n <= upper,  n integer.

f is concave, so every tangent cut is valid: the master's optimum (or HiGHS's dual bound on it)
bounds the integer optimum from above, and the best design evaluated bounds it from below. The
loop adds the cut at each master solution and stops when the bounds meet within the tolerance
(then the status is ``optimal``), or when time runs out (the incumbent, the bound and the gap are
returned, status ``feasible``). The master starts with cuts at the relaxation's optimum (whose
certified bound is also the first upper bound) and at the greedy design (the first incumbent, also
given to HiGHS as a MIP start). The model lives in one ``highspy.Highs`` object; cuts are added
as rows, so HiGHS keeps what it can between solves (a multi-tree method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..constraints import DesignBuilder, linear_constraints
from ..errors import OptionError
from ..information import gains, information_matrix
from .base import Context, Outcome
from .frank_wolfe import allowed_gap, solve_relaxation
from .result import SolutionStatus, TerminationCondition
from ._highs import new_highs


class OuterApproximation:
    name = "exact"
    needs_scores = False

    @dataclass(frozen=True)
    class Options:
        tol: float = 1e-6  # D: D-efficiency loss; A, L: relative gap
        max_iterations: int = 1000

        def check(self) -> None:
            if not 0 < self.tol < 1:
                raise OptionError(f"option 'tol' of method 'exact' must be in (0, 1), got {self.tol}")
            if self.max_iterations < 1:
                raise OptionError("option 'max_iterations' of method 'exact' must be >= 1")

    def run(self, ctx: Context) -> Outcome:
        import highspy

        inst, crit, opts = ctx.instance, ctx.criterion, ctx.options
        cand = inst.candidates
        P = len(cand)
        lc = linear_constraints(inst, ctx.budget)

        # the relaxation: first upper bound and first cut
        relaxed = solve_relaxation(ctx, tol=min(opts.tol, 1e-6))
        upper = relaxed.bound
        # greedy: first incumbent and second cut
        from .greedy import Greedy
        greedy_ctx = Context(instance=inst, criterion=crit, budget=ctx.budget, time_limit=None,
                             seed=ctx.seed, options=Greedy.Options(), logger=ctx.logger)
        Greedy().run(greedy_ctx)
        best = greedy_ctx.incumbent.counts.astype(np.float64)
        best_value = crit.value(information_matrix(inst, best))
        ctx.incumbent = _Fixed(best)

        h = new_highs()
        inf = highspy.kHighsInf
        # columns: n_0..n_{P-1}, eta; minimise -eta
        h.addVars(P + 1, np.r_[lc.lower, -inf], np.r_[lc.upper, inf])
        h.changeColsCost(P + 1, np.arange(P + 1, dtype=np.int32), np.r_[np.zeros(P), -1.0])
        h.changeColsIntegrality(P, np.arange(P, dtype=np.int32),
                                np.full(P, highspy.HighsVarType.kInteger))
        A = lc.A.tocsr()
        h.addRows(lc.n_rows, np.full(lc.n_rows, -inf), lc.b, A.nnz, A.indptr[:-1].astype(np.int32),
                  A.indices.astype(np.int32), A.data)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", 0.0)

        def add_cut(n: np.ndarray) -> float:
            """eta - g^T n <= f(n_t) - g^T n_t; returns f(n_t)."""
            M = information_matrix(inst, n)
            value = crit.value(M)
            g = gains(inst, M, crit)
            nz = np.flatnonzero(g)
            h.addRow(-inf, value - float(g @ n), nz.size + 1, np.r_[nz, P].astype(np.int32),
                     np.r_[-g[nz], 1.0])
            return value

        add_cut(relaxed.n)
        add_cut(best)
        cuts, termination = 2, TerminationCondition.iteration_limit
        for iteration in range(1, opts.max_iterations + 1):
            target = allowed_gap(crit, best_value, inst.dim, opts.tol)
            ctx.say(f"exact: iteration {iteration}, incumbent {best_value:.10g}, bound {upper:.10g}, "
                    f"gap {upper - best_value:.3g} (target {target:.3g}), {cuts} cuts")
            if upper - best_value <= target:
                termination = TerminationCondition.converged
                break
            if ctx.out_of_time():
                termination = TerminationCondition.time_limit
                break
            if ctx.time_limit is not None:
                h.setOptionValue("time_limit", max(ctx.time_limit - ctx.elapsed(), 1e-3))
            sol = highspy.HighsSolution()
            sol.col_value = list(np.r_[best, best_value])
            h.setSolution(sol)
            h.run()
            status = h.getModelStatus()
            info = h.getInfo()
            if status == highspy.HighsModelStatus.kInfeasible:
                raise RuntimeError("the master became infeasible: the cuts or constraints are wrong")
            if info.mip_dual_bound < inf:
                upper = min(upper, -info.mip_dual_bound)
            if status != highspy.HighsModelStatus.kOptimal:
                if status == highspy.HighsModelStatus.kTimeLimit:
                    termination = TerminationCondition.time_limit
                    break
                raise RuntimeError(f"HiGHS stopped on the master: {h.modelStatusToString(status)}")
            n = np.round(np.asarray(h.getSolution().col_value)[:P])
            value = add_cut(n)
            cuts += 1
            if value > best_value:
                best, best_value = n, value
                ctx.incumbent = _Fixed(best)
        ctx.say(f"exact: {termination.value}: incumbent {best_value:.10g}, bound {upper:.10g}, {cuts} cuts")
        proven = upper - best_value <= allowed_gap(crit, best_value, inst.dim, opts.tol)
        return Outcome(best.astype(np.int64), termination,
                       SolutionStatus.optimal if proven else SolutionStatus.feasible,
                       bound=upper, solver="highspy")


class _Fixed:
    """An incumbent for the front door's interrupt handling (it reads ``.counts``)."""

    def __init__(self, counts: np.ndarray):
        self.counts = counts.astype(np.int64)
