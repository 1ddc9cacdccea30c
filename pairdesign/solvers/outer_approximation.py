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
``user_interrupt`` and ``user_solution``. The method ``exact`` (:mod:`pairdesign.solvers.exact`) runs
this algorithm with ``algorithm="oa"``.
"""

from __future__ import annotations

import numpy as np

from ..backends import INFEASIBLE, INTERRUPTED, OPTIMAL, TIME_LIMIT
from ..backends import highs as highs_backend
from ..backends import pyomo as pyomo_backend
from ..errors import InfeasibleError, SolverError
from .greedy import greedy_design
from ..information import gains, information_matrix
from .base import Context, FixedIncumbent, Outcome, Timings, gap_closed, loop_stop
from .frank_wolfe import allowed_gap, solve_relaxation
from .result import SolutionStatus, TerminationCondition
from .symmetry import detect_symmetry, leader_inequalities
from ..backends.highs import new_highs


# HiGHS options of the master: no gap tolerance (the loop decides when the bounds meet), and
# feasibility tolerances well below the loop's target: HiGHS lets a row exceed its bound by
# primal_feasibility_tolerance (1e-6 by default), so with the defaults eta may sit 1e-6 above every
# cut, a gap the loop can never close when the target is smaller (criterion L, |f| < 1).
MASTER_OPTIONS = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0, "primal_feasibility_tolerance": 1e-9,
                  "mip_feasibility_tolerance": 1e-9}
_APPSI_HIGHS_OPTIONS = MASTER_OPTIONS


def outer_approximation(ctx: Context) -> Outcome:
    """The outer-approximation loop of the module docstring; ``ctx.options`` are
    :class:`pairdesign.solvers.exact.Exact.Options`."""
    inst, crit, opts = ctx.instance, ctx.criterion, ctx.options
    lc = ctx.polytope
    clock = Timings()

    # the relaxation: first upper bound and first cut
    with clock("relaxation"):
        relaxed = solve_relaxation(ctx, tol=min(opts.tol, 1e-6))
    upper = relaxed.bound
    # greedy: first incumbent and second cut
    with clock("greedy"):
        best = greedy_design(ctx)
    best_value = crit.value(information_matrix(inst, best, ctx.pool))
    ctx.incumbent = FixedIncumbent(best)

    master = (_HighsMaster(inst, crit, lc, ctx.pool) if opts.solver == "highs"
              else _PyomoMaster(inst, crit, ctx.budget, opts.solver.partition(":")[2] or "appsi_highs"))
    # symmetry detection is an aid: skipped once the deadline has passed (it has no limit of its own)
    if getattr(opts, 'symmetry', True) and isinstance(master, _HighsMaster) and not ctx.out_of_time():
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
        stop = loop_stop(ctx, best_value, upper, opts.tol)
        if stop is not None:
            termination = stop
            break
        time_left = ctx.deadline.solver_seconds()
        with clock("master"):
            state, points, master_bound = master.solve(best, best_value, time_left)
        if master_bound is not None:
            upper = min(upper, master_bound)
            ctx.known.offer_bound(max(upper, best_value))
        new = [n for n in points if n.tobytes() not in cut_at]
        for n in new:
            with clock("cut_evaluation"):
                value = master.add_cut(n)
            cut_at.add(n.tobytes())
            cuts += 1
            if value > best_value:
                best, best_value = n, value
                ctx.incumbent = FixedIncumbent(best)
        if state == "time_limit":
            termination = TerminationCondition.time_limit
            break
        if not new and not gap_closed(ctx, best_value, upper, opts.tol):
            ctx.say("exact: the master returned only points already cut (its numerical "
                    "tolerances): stopping")
            break
    ctx.say(f"exact: {termination.value}: incumbent {best_value:.10g}, bound {upper:.10g}, {cuts} cuts")
    ctx.say(f"exact: stats: cuts={cuts} nodes={master.nodes} {clock.summary()}")
    proven = gap_closed(ctx, best_value, upper, opts.tol)
    return Outcome(best.astype(np.int64), termination,
                   SolutionStatus.optimal if proven else SolutionStatus.feasible,
                   bound=upper, solver=master.solver)


class _HighsMaster:
    """The master in one ``highspy.Highs``: columns n_0..n_{P-1}, eta; cuts added as rows.

    HiGHS's callbacks can read integer solutions and interrupt, but cannot add rows (its
    ``kCallbackMipDefineLazyConstraints`` is declared and never called, and ``HighsCallbackDataIn``
    carries only an interrupt flag and a user solution), so the method is multi-tree. To keep it
    cheap, every integer solution HiGHS reports during a solve becomes a cut (several cuts per
    round). Interrupting a master at its first improving solution whose own cut would cut it off
    was tried and measured: the same cuts and nodes, or differences within noise (RESULTS.md)."""

    solver = "highspy"

    def __init__(self, inst, crit, lc, pool):
        import highspy

        self.inst, self.crit, self.P, self.pool = inst, crit, len(inst.candidates), pool
        P = self.P
        self.h = h = new_highs()
        self.inf = inf = highspy.kHighsInf
        self.nodes = 0
        h.addVars(P + 1, np.r_[lc.lower, -inf], np.r_[lc.upper, inf])
        h.changeColsCost(P + 1, np.arange(P + 1, dtype=np.int32), np.r_[np.zeros(P), -1.0])
        h.changeColsIntegrality(P, np.arange(P, dtype=np.int32),
                                np.full(P, highspy.HighsVarType.kInteger))
        A = lc.A.tocsr()
        h.addRows(lc.n_rows, lc.lower_sides(), lc.b, A.nnz, A.indptr[:-1].astype(np.int32),
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
        M = information_matrix(self.inst, n, self.pool)
        value = self.crit.value(M)
        g = gains(self.inst, M, self.crit, self.pool)
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
        highs_backend.run_interruptible(h)  # Ctrl-C: HiGHS stops, then KeyboardInterrupt here
        info = h.getInfo()
        self.nodes += int(info.mip_node_count)
        bound = -info.mip_dual_bound if abs(info.mip_dual_bound) < self.inf else None
        points = [n for n, _ in sorted(self._found, key=lambda item: -item[1])]
        state = highs_backend.status(h)
        if state == TIME_LIMIT:
            return "time_limit", points, bound
        if state == INTERRUPTED:
            raise KeyboardInterrupt  # Ctrl-C inside HiGHS: the front door keeps the incumbent
        if state == INFEASIBLE:
            raise InfeasibleError("the constraints admit no integer design (HiGHS, on the master)")
        if state != OPTIMAL:
            raise SolverError(f"HiGHS stopped on the master: {highs_backend.describe(h)}")
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
        self.opt = pyomo_backend.solver(name)
        self.model = integer_model(inst, crit, budget)
        self.nodes = 0  # branch-and-bound nodes, where the solver tells (appsi_highs)

    def add_cut(self, n: np.ndarray) -> float:
        from ..formulations.integer import add_cut

        return add_cut(self.model, self.inst, self.crit, n)

    def solve(self, start: np.ndarray, start_value: float, time_left: float | None):
        """As :meth:`_HighsMaster.solve`, with one point: the master's optimum."""
        import pyomo.environ as pyo

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
        else:  # no time limit here: Exact refuses a time limit for these solvers up front
            results = self.opt.solve(m, load_solutions=False)
        term = results.solver.termination_condition
        upper = results.problem.upper_bound
        bound = float(upper) if upper is not None and np.isfinite(float(upper)) else None
        state = pyomo_backend.status(term)
        if state == TIME_LIMIT:
            return "time_limit", [], bound
        if state == INTERRUPTED:
            raise KeyboardInterrupt
        if state == INFEASIBLE:
            raise InfeasibleError(f"the constraints admit no integer design (Pyomo solver {self.name})")
        if state != OPTIMAL:
            raise SolverError(f"Pyomo solver {self.name} stopped on the master: {term}")
        m.solutions.load_from(results)
        n = np.round(np.array([pyo.value(m.n[p]) for p in range(len(start))]))
        return "optimal", [n], bound if bound is not None else float(pyo.value(m.eta))
