"""Exact designs by outer approximation (cutting planes) with a MILP master in HiGHS.

    master:  maximise eta  subject to  eta <= f(n_t) + g(n_t)^T (n - n_t)   for every point n_t,
             A n <= b,  lower <= n <= upper,  n integer.

f is concave, so every tangent cut is valid: the master's optimum (or HiGHS's dual bound on it)
bounds the integer optimum from above, and the best design evaluated bounds it from below. The
loop adds the cut at each master solution and stops when the bounds meet within the tolerance
(then the status is ``optimal``), or when time runs out (the incumbent, the bound and the gap are
returned, status ``feasible``). The master starts with cuts at the relaxation's optimum (whose
certified bound is also the first upper bound) and at the greedy design (the first incumbent, also
given to HiGHS as a MIP start). With ``solver="highs"`` the master lives in one ``highspy.Highs``
object and cuts are added as rows, at every integer solution HiGHS reports; with
``solver="pyomo:NAME"`` it is the explicit Pyomo model of :mod:`pairdesign.formulations.integer`,
solved by any MILP solver Pyomo knows.

Multi-tree only: HiGHS's callbacks (highspy 1.16: logging, simplex/IPM/MIP interrupt, MIP
solution, improving solution, MIP logging, cut pool, user solution) read the search and may
interrupt it or offer a primal solution, but none can add a row: ``kCallbackMipDefineLazyConstraints``
is declared and never called by the MIP solver, and ``HighsCallbackDataIn`` holds only
``user_interrupt`` and ``user_solution``. ``algorithm="bnb"`` selects the branch and bound with
relaxation bounds of :mod:`pairdesign.solvers.branch_and_bound` instead.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..constraints import linear_constraints
from ..errors import OptionError
from ..information import gains, information_matrix
from .base import Context, Outcome, check_stopping
from .frank_wolfe import allowed_gap, solve_relaxation
from .result import SolutionStatus, TerminationCondition
from .symmetry import detect_symmetry, leader_inequalities
from ._highs import new_highs


# HiGHS options of the master: no gap tolerance (the loop decides when the bounds meet), and
# feasibility tolerances well below the loop's target: HiGHS lets a row exceed its bound by
# primal_feasibility_tolerance (1e-6 by default), so with the defaults eta may sit 1e-6 above every
# cut, a gap the loop can never close when the target is smaller (criterion L, |f| < 1).
MASTER_OPTIONS = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0, "primal_feasibility_tolerance": 1e-9,
                  "mip_feasibility_tolerance": 1e-9}
_APPSI_HIGHS_OPTIONS = MASTER_OPTIONS


class OuterApproximation:
    name = "exact"
    needs_scores = False

    @dataclass(frozen=True)
    class Options:
        tol: float = 1e-6  # D: D-efficiency loss; A, L: relative gap
        max_iterations: int = 1000  # OA: master solves; B&B: nodes / 100
        solver: str = "highs"  # or "pyomo:NAME" for any MILP solver Pyomo knows (appsi_highs, ...)
        algorithm: str = "oa"  # "oa" (outer approximation) or "bnb" (branch and bound, relaxation bounds)
        symmetry: bool = True  # detect the instance's symmetries: orbital branching (bnb), leader inequalities (oa, highs)

        def check(self) -> None:
            if not (self.solver == "highs" or self.solver.startswith("pyomo")):
                raise OptionError(f"option 'solver' of method 'exact' must be 'highs' or "
                                  f"'pyomo:NAME', got {self.solver!r}")
            if self.algorithm not in ("oa", "bnb"):
                raise OptionError(f"option 'algorithm' of method 'exact' must be 'oa' or 'bnb', "
                                  f"got {self.algorithm!r} (HiGHS offers no lazy-constraint "
                                  f"callback, so there is no single-tree variant)")
            if self.algorithm == "bnb" and self.solver != "highs":
                raise OptionError("option 'solver' of method 'exact' is for algorithm 'oa' (the "
                                  "MILP master); branch and bound solves its own relaxations")
            check_stopping("exact", self.tol, self.max_iterations)

    def run(self, ctx: Context) -> Outcome:
        if ctx.options.algorithm == "bnb":
            from .branch_and_bound import branch_and_bound

            return branch_and_bound(ctx)
        inst, crit, opts = ctx.instance, ctx.criterion, ctx.options
        lc = linear_constraints(inst, ctx.budget)
        clock = Timings()

        # the relaxation: first upper bound and first cut
        with clock("relaxation"):
            relaxed = solve_relaxation(ctx, tol=min(opts.tol, 1e-6))
        upper = relaxed.bound
        # greedy: first incumbent and second cut
        with clock("greedy"):
            best = greedy_design(ctx)
        best_value = crit.value(information_matrix(inst, best))
        ctx.incumbent = _Fixed(best)

        master = (_HighsMaster(inst, crit, lc) if opts.solver == "highs"
                  else _PyomoMaster(inst, crit, ctx.budget, opts.solver.partition(":")[2] or "appsi_highs"))
        if opts.symmetry and opts.solver == "highs":
            with clock("symmetry"):
                leaders = leader_inequalities(detect_symmetry(inst, crit))
            if leaders:
                master.add_leaders(leaders)
                ctx.say(f"exact: {len(leaders)} symmetry-breaking inequalities n_p >= n_q in the master")
        with clock("cut_evaluation"):
            master.add_cut(relaxed.n)
            master.add_cut(best)
        cut_at = {best.tobytes()}
        cuts, termination = 2, TerminationCondition.iteration_limit
        for iteration in range(1, opts.max_iterations + 1):
            target = allowed_gap(crit, best_value, inst.dim, opts.tol)
            ctx.say(f"exact: iteration {iteration}, incumbent {best_value:.10g}, bound {upper:.10g}, "
                    f"gap {upper - best_value:.3g} (target {target:.3g}), {cuts} cuts, "
                    f"{master.nodes} nodes")
            if upper - best_value <= target:
                termination = TerminationCondition.converged
                break
            if ctx.out_of_time():
                termination = TerminationCondition.time_limit
                break
            time_left = None if ctx.time_limit is None else max(ctx.time_limit - ctx.elapsed(), 1e-3)
            with clock("master"):
                state, points, master_bound = master.solve(best, best_value, time_left)
            if master_bound is not None:
                upper = min(upper, master_bound)
            new = [n for n in points if n.tobytes() not in cut_at]
            for n in new:
                with clock("cut_evaluation"):
                    value = master.add_cut(n)
                cut_at.add(n.tobytes())
                cuts += 1
                if value > best_value:
                    best, best_value = n, value
                    ctx.incumbent = _Fixed(best)
            if state == "time_limit":
                termination = TerminationCondition.time_limit
                break
            if not new and upper - best_value > allowed_gap(crit, best_value, inst.dim, opts.tol):
                ctx.say("exact: the master returned only points already cut (its numerical "
                        "tolerances): stopping")
                break
        ctx.say(f"exact: {termination.value}: incumbent {best_value:.10g}, bound {upper:.10g}, {cuts} cuts")
        ctx.say(f"exact: stats: cuts={cuts} nodes={master.nodes} {clock.summary()}")
        proven = upper - best_value <= allowed_gap(crit, best_value, inst.dim, opts.tol)
        return Outcome(best.astype(np.int64), termination,
                       SolutionStatus.optimal if proven else SolutionStatus.feasible,
                       bound=upper, solver=master.solver)


class Timings:
    """Seconds spent per phase: ``with clock("master"): ...``; ``summary()`` for the log."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

    def summary(self) -> str:
        return " ".join(f"{k}={v:.3f}s" for k, v in self.seconds.items())


def greedy_design(ctx: Context) -> np.ndarray:
    """The first incumbent, as floats: the design an earlier phase handed over (``ctx.start``,
    e.g. auto's rounded design), else the greedy design (no time limit: greedy is fast)."""
    from .greedy import Greedy

    if ctx.start is not None:
        return np.asarray(ctx.start, dtype=np.float64).copy()

    greedy_ctx = Context(instance=ctx.instance, criterion=ctx.criterion, budget=ctx.budget,
                         time_limit=None, seed=ctx.seed, options=Greedy.Options(), logger=ctx.logger)
    Greedy().run(greedy_ctx)
    return greedy_ctx.incumbent.counts.astype(np.float64)


class _Fixed:
    """An incumbent for the front door's interrupt handling (it reads ``.counts``)."""

    def __init__(self, counts: np.ndarray):
        self.counts = counts.astype(np.int64)


class _HighsMaster:
    """The master in one ``highspy.Highs``: columns n_0..n_{P-1}, eta; cuts added as rows.

    HiGHS's callbacks can read integer solutions and interrupt, but cannot add rows (its
    ``kCallbackMipDefineLazyConstraints`` is declared and never called, and ``HighsCallbackDataIn``
    carries only an interrupt flag and a user solution), so the method is multi-tree. To keep it
    cheap, every integer solution HiGHS reports during a solve becomes a cut (several cuts per
    round). Interrupting a master at its first improving solution whose own cut would cut it off
    was tried and measured: the same cuts and nodes, or differences within noise (RESULTS.md)."""

    solver = "highspy"

    def __init__(self, inst, crit, lc):
        import highspy

        self.inst, self.crit, self.P = inst, crit, len(inst.candidates)
        P = self.P
        self.h = h = new_highs()
        self.inf = inf = highspy.kHighsInf
        self.nodes = 0
        h.addVars(P + 1, np.r_[lc.lower, -inf], np.r_[lc.upper, inf])
        h.changeColsCost(P + 1, np.arange(P + 1, dtype=np.int32), np.r_[np.zeros(P), -1.0])
        h.changeColsIntegrality(P, np.arange(P, dtype=np.int32),
                                np.full(P, highspy.HighsVarType.kInteger))
        A = lc.A.tocsr()
        h.addRows(lc.n_rows, np.full(lc.n_rows, -inf), lc.b, A.nnz, A.indptr[:-1].astype(np.int32),
                  A.indices.astype(np.int32), A.data)
        for key, value in MASTER_OPTIONS.items():
            h.setOptionValue(key, value)
        self._found: list[tuple[np.ndarray, float]] = []
        h.cbMipSolution.subscribe(self._on_solution)

    def _on_solution(self, event) -> None:
        sol = np.asarray(event.data_out.mip_solution)
        n, eta = np.round(sol[: self.P]), float(sol[self.P])
        self._found.append((n, eta))

    def add_leaders(self, inequalities: list[tuple[int, int]]) -> None:
        """Rows n_q - n_p <= 0 for every (p, q) (:func:`leader_inequalities`)."""
        for p, q in inequalities:
            self.h.addRow(-self.inf, 0.0, 2, np.array([q, p], dtype=np.int32), np.array([1.0, -1.0]))

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
        """Returns (state, points, upper bound or None): state "optimal" or "time_limit";
        points: the integer solutions found (the optimum first), to be cut."""
        import highspy

        h = self.h
        if time_left is not None:
            h.setOptionValue("time_limit", time_left)
        sol = highspy.HighsSolution()
        sol.col_value = list(np.r_[start, start_value])
        h.setSolution(sol)
        self._found = []
        h.run()
        status = h.getModelStatus()
        info = h.getInfo()
        self.nodes += int(info.mip_node_count)
        bound = -info.mip_dual_bound if abs(info.mip_dual_bound) < self.inf else None
        points = [n for n, _ in sorted(self._found, key=lambda item: -item[1])]
        if status == highspy.HighsModelStatus.kTimeLimit:
            return "time_limit", points, bound
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"HiGHS stopped on the master: {h.modelStatusToString(status)}")
        final = np.round(np.asarray(h.getSolution().col_value)[: self.P])
        return "optimal", [final] + points, bound


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
        self.nodes = 0  # branch-and-bound nodes, where the solver tells (appsi_highs)

    def add_cut(self, n: np.ndarray) -> float:
        from ..formulations.integer import add_cut

        return add_cut(self.model, self.inst, self.crit, n)

    def solve(self, start: np.ndarray, start_value: float, time_left: float | None):
        """As :meth:`_HighsMaster.solve`, with one point: the master's optimum."""
        import pyomo.environ as pyo
        from pyomo.opt import TerminationCondition as TC

        m = self.model
        for p, v in enumerate(start):
            m.n[p].value = float(v)
        m.eta.value = start_value
        if self.name.startswith("appsi_"):
            # the legacy interface rebuilds its config on every call: the time limit and the MIP
            # start must be passed here, not set on ``config`` (they would be dropped)
            options = dict(_APPSI_HIGHS_OPTIONS) if self.name == "appsi_highs" else {}
            results = self.opt.solve(m, timelimit=time_left, warmstart=True, load_solutions=False,
                                     options=options or None)
            highs = getattr(self.opt, "_solver_model", None)  # appsi_highs's highspy.Highs
            if highs is not None:
                self.nodes += int(highs.getInfo().mip_node_count)
        else:
            results = self.opt.solve(m, load_solutions=False)
        term = results.solver.termination_condition
        upper = results.problem.upper_bound
        bound = float(upper) if upper is not None and np.isfinite(float(upper)) else None
        if term == TC.maxTimeLimit:
            return "time_limit", [], bound
        if term != TC.optimal:
            raise RuntimeError(f"Pyomo solver {self.name} stopped on the master: {term}")
        m.solutions.load_from(results)
        n = np.round(np.array([pyo.value(m.n[p]) for p in range(len(start))]))
        return "optimal", [n], bound if bound is not None else float(pyo.value(m.eta))
