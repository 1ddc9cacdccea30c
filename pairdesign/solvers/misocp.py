"""The method ``misocp``: the exact D-optimal design by the MISOCP of Sagnol and Harman (2015),
solved through cvxpy by a mixed-integer conic solver (SCIP by default; MOSEK, Gurobi where
installed). ``optimal`` when the solver proved it and its optimum matches the design's recomputed
log det within a D-efficiency loss of 1e-6; the bound is the solver's optimum, or (time limit) the
relaxation's certified bound."""

from __future__ import annotations

from dataclasses import dataclass

from ..polytope import violations
from ..errors import OptionError
from .base import Context, Outcome
from ..information import information_matrix
from .frank_wolfe import allowed_gap, solve_relaxation
from .result import SolutionStatus, TerminationCondition


class Misocp:
    name = "misocp"
    needs_scores = False

    @dataclass(frozen=True)
    class Options:
        solver: str = "SCIP"

    def run(self, ctx: Context) -> Outcome:
        from ..formulations.misocp import solve_misocp

        if ctx.criterion.name != "D":
            raise OptionError("method 'misocp' is for the D criterion; use 'exact' for A and L")
        ctx.say(f"misocp: cvxpy with {ctx.options.solver}")
        stats: dict = {}
        n, status, optimum = solve_misocp(ctx.instance, ctx.budget, ctx.options.solver, ctx.time_limit,
                                          stats)
        ctx.say(f"misocp: stats: compile={stats.get('compile', 0.0):.3f}s "
                f"solver={stats.get('solver', 0.0):.3f}s lp_iterations={stats.get('iterations')}")
        if violations(ctx.instance, n, ctx.budget):
            raise RuntimeError(f"{ctx.options.solver} returned a design outside the constraints")
        value = ctx.criterion.value(information_matrix(ctx.instance, n, ctx.pool))
        bound = optimum if optimum is not None else solve_relaxation(ctx, tol=1e-6).bound
        # the solver's "optimal" counts only if its optimum matches the design's recomputed log
        # det within the tolerance (its conic tolerances can leave them apart)
        proven = optimum is not None and optimum - value <= allowed_gap(ctx.criterion, value,
                                                                        ctx.instance.dim, 1e-6)
        termination = (TerminationCondition.converged if optimum is not None
                       else TerminationCondition.time_limit)
        ctx.say(f"misocp: {status}")
        return Outcome(n.astype("int64"), termination,
                       SolutionStatus.optimal if proven else SolutionStatus.feasible,
                       bound=bound, solver=f"cvxpy:{ctx.options.solver.upper()} ({status})")
