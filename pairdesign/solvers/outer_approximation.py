"""Exact designs by outer approximation (cutting planes) with a MILP master in HiGHS.

    master:  maximise eta  subject to  eta <= f(n_t) + g(n_t)^T (n - n_t)   for every point n_t,
             A n <= b,  lower <= n <= upper,  n integer.

f is concave, so every tangent cut is valid: the master's optimum (or HiGHS's dual bound on it)
bounds the integer optimum from above, and the best design evaluated bounds it from below. The
loop adds the cut at each master solution and stops when the bounds meet within the tolerance
(then the status is ``optimal``), or when time runs out (the incumbent, the bound and the gap are
returned, status ``feasible``). The master starts with cuts at the relaxation's optimum (whose
certified bound is also the first upper bound) and at the greedy design (the first incumbent, also
given to HiGHS as a MIP start). With ``solver="highs"`` the master lives in one ``highspy.Highs`` object and cuts are added as
rows (a multi-tree method); with ``solver="pyomo:NAME"`` it is the explicit Pyomo model of
:mod:`pairdesign.formulations.integer`, solved by any MILP solver Pyomo knows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..constraints import DesignBuilder, linear_constraints
from ..errors import OptionError
from ..information import gains, information_matrix
from .base import Context, Outcome, check_stopping
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
        solver: str = "highs"  # or "pyomo:NAME" for any MILP solver Pyomo knows (appsi_highs, ...)

        def check(self) -> None:
            if not (self.solver == "highs" or self.solver.startswith("pyomo")):
                raise OptionError(f"option 'solver' of method 'exact' must be 'highs' or "
                                  f"'pyomo:NAME', got {self.solver!r}")
            check_stopping("exact", self.tol, self.max_iterations)

    def run(self, ctx: Context) -> Outcome:
        inst, crit, opts = ctx.instance, ctx.criterion, ctx.options
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

        master = (_HighsMaster(inst, crit, lc) if opts.solver == "highs"
                  else _PyomoMaster(inst, crit, ctx.budget, opts.solver.partition(":")[2] or "appsi_highs"))
        master.add_cut(relaxed.n)
        master.add_cut(best)
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
            time_left = None if ctx.time_limit is None else max(ctx.time_limit - ctx.elapsed(), 1e-3)
            state, n, master_bound = master.solve(best, best_value, time_left)
            if master_bound is not None:
                upper = min(upper, master_bound)
            if state == "time_limit":
                termination = TerminationCondition.time_limit
                break
            value = master.add_cut(n)
            cuts += 1
            if value > best_value:
                best, best_value = n, value
                ctx.incumbent = _Fixed(best)
        ctx.say(f"exact: {termination.value}: incumbent {best_value:.10g}, bound {upper:.10g}, {cuts} cuts")
        proven = upper - best_value <= allowed_gap(crit, best_value, inst.dim, opts.tol)
        return Outcome(best.astype(np.int64), termination,
                       SolutionStatus.optimal if proven else SolutionStatus.feasible,
                       bound=upper, solver=master.solver)


class _Fixed:
    """An incumbent for the front door's interrupt handling (it reads ``.counts``)."""

    def __init__(self, counts: np.ndarray):
        self.counts = counts.astype(np.int64)


class _HighsMaster:
    """The master in one ``highspy.Highs``: columns n_0..n_{P-1}, eta; cuts added as rows."""

    solver = "highspy"

    def __init__(self, inst, crit, lc):
        import highspy

        self.inst, self.crit, self.P = inst, crit, len(inst.candidates)
        P = self.P
        self.h = h = new_highs()
        self.inf = inf = highspy.kHighsInf
        h.addVars(P + 1, np.r_[lc.lower, -inf], np.r_[lc.upper, inf])
        h.changeColsCost(P + 1, np.arange(P + 1, dtype=np.int32), np.r_[np.zeros(P), -1.0])
        h.changeColsIntegrality(P, np.arange(P, dtype=np.int32),
                                np.full(P, highspy.HighsVarType.kInteger))
        A = lc.A.tocsr()
        h.addRows(lc.n_rows, np.full(lc.n_rows, -inf), lc.b, A.nnz, A.indptr[:-1].astype(np.int32),
                  A.indices.astype(np.int32), A.data)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", 0.0)

    def add_cut(self, n: np.ndarray) -> float:
        """eta - g^T n <= f(n_t) - g^T n_t; returns f(n_t)."""
        M = information_matrix(self.inst, n)
        value = self.crit.value(M)
        g = gains(self.inst, M, self.crit)
        nz = np.flatnonzero(g)
        self.h.addRow(-self.inf, value - float(g @ n), nz.size + 1, np.r_[nz, self.P].astype(np.int32),
                      np.r_[-g[nz], 1.0])
        return value

    def solve(self, start: np.ndarray, start_value: float, time_left: float | None):
        """Returns (state, n, upper bound or None); state is "optimal" or "time_limit"."""
        import highspy

        h = self.h
        if time_left is not None:
            h.setOptionValue("time_limit", time_left)
        sol = highspy.HighsSolution()
        sol.col_value = list(np.r_[start, start_value])
        h.setSolution(sol)
        h.run()
        status = h.getModelStatus()
        info = h.getInfo()
        bound = -info.mip_dual_bound if info.mip_dual_bound < self.inf else None
        if status == highspy.HighsModelStatus.kTimeLimit:
            return "time_limit", None, bound
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"HiGHS stopped on the master: {h.modelStatusToString(status)}")
        return "optimal", np.round(np.asarray(h.getSolution().col_value)[: self.P]), bound


class _PyomoMaster:
    """The master as the explicit Pyomo model of :mod:`pairdesign.formulations.integer`, solved by
    any MILP solver Pyomo knows (``appsi_highs`` by default; gurobi, cplex, scip, cbc where
    installed). Its bound is the solver's reported upper bound, else the optimum when proven."""

    def __init__(self, inst, crit, budget, name: str):
        import pyomo.environ as pyo

        from ..formulations.integer import integer_model

        self.inst, self.crit, self.name = inst, crit, name
        self.solver = f"pyomo:{name}"
        self.opt = pyo.SolverFactory(name)
        if not self.opt.available(exception_flag=False):
            raise OptionError(f"Pyomo solver {name!r} is not available here")
        self.model = integer_model(inst, crit, budget)

    def add_cut(self, n: np.ndarray) -> float:
        from ..formulations.integer import add_cut

        return add_cut(self.model, self.inst, self.crit, n)

    def solve(self, start: np.ndarray, start_value: float, time_left: float | None):
        import pyomo.environ as pyo
        from pyomo.opt import TerminationCondition as TC

        m = self.model
        for p, v in enumerate(start):
            m.n[p].value = float(v)
        m.eta.value = start_value
        kwargs = {}
        if self.name.startswith("appsi_"):
            self.opt.config.mip_gap = 0.0
            if hasattr(self.opt, "highs_options"):  # HiGHS also stops at an absolute gap of 1e-6
                self.opt.highs_options["mip_abs_gap"] = 0.0
            self.opt.config.time_limit = time_left
            self.opt.config.load_solution = False
        results = self.opt.solve(m, **kwargs) if self.name.startswith("appsi_") else \
            self.opt.solve(m, load_solutions=False)
        term = results.solver.termination_condition
        upper = results.problem.upper_bound
        bound = float(upper) if upper is not None and np.isfinite(float(upper)) else None
        if term == TC.maxTimeLimit:
            return "time_limit", None, bound
        if term != TC.optimal:
            raise RuntimeError(f"Pyomo solver {self.name} stopped on the master: {term}")
        m.solutions.load_from(results)
        n = np.round(np.array([pyo.value(m.n[p]) for p in range(len(start))]))
        return "optimal", n, bound if bound is not None else float(pyo.value(m.eta))
