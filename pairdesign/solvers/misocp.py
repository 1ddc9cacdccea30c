"""The method ``misocp``: the exact D-optimal design by the MISOCP of Sagnol and Harman (2015),
solved through cvxpy by a mixed-integer conic solver (SCIP by default; MOSEK, Gurobi where
installed; :mod:`pairdesign.backends.cvxpy_mip`).

The bound is the solver's dual bound (never its primal value), and the relaxation's certified
bound where the solver gives none or where its dual bound falls below the design's own recomputed
value (its tolerances are absolute, and the MISOCP's objective ``(det M)^(1/d)`` can be tiny).
``optimal`` only when that bound meets the design's recomputed log det within a D-efficiency loss
of 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import INFEASIBLE, OPTIMAL, TIME_LIMIT
from ..errors import OptionError
from ..information import information_matrix
from .base import Context, Outcome
from .frank_wolfe import allowed_gap, solve_relaxation
from .result import SolutionStatus, TerminationCondition


class Misocp:
    name = "misocp"
    needs_scores = False

    @dataclass(frozen=True)
    class Options:
        solver: str = "SCIP"

    @staticmethod
    def refuse_time_limit(problem, options, time_limit: float) -> str | None:
        """Why a time limit cannot be honoured (None: it can): see :mod:`pairdesign.backends.cvxpy_mip`."""
        from ..backends import cvxpy_mip

        return cvxpy_mip.refuse(options.solver, problem.size, problem.dim, time_limit)

    def run(self, ctx: Context) -> Outcome:
        from ..backends.cvxpy_mip import solve_misocp

        if ctx.criterion.name != "D":
            raise OptionError("method 'misocp' is for the D criterion; use 'exact' for A and L")
        lower = ctx.polytope.lower.astype(np.int64)
        if ctx.pool.size == 0 or np.array_equal(ctx.polytope.lower, ctx.polytope.upper):
            ctx.say("misocp: no free candidate pair: the only design is the pairs fixed in")
            value = ctx.criterion.value(information_matrix(ctx.instance, lower, ctx.pool))
            return Outcome(lower, TerminationCondition.completed, SolutionStatus.optimal,
                           bound=value, solver="none (no free candidate pair)")
        ctx.say(f"misocp: cvxpy with {ctx.options.solver}")
        run = solve_misocp(ctx.instance, ctx.budget, ctx.options.solver, ctx.deadline.solver_seconds(),
                           polytope=ctx.polytope)
        ctx.say(f"misocp: stats: compile={run.compile_seconds:.3f}s solver={run.solver_seconds:.3f}s "
                f"lp_iterations={run.iterations} status={run.raw_status}")
        solver = f"cvxpy:{ctx.options.solver.upper()} ({run.raw_status})"
        if run.state == INFEASIBLE:
            return Outcome(lower, TerminationCondition.infeasible, SolutionStatus.infeasible,
                           solver=solver)
        termination = {OPTIMAL: TerminationCondition.converged,
                       TIME_LIMIT: TerminationCondition.time_limit}.get(run.state, TerminationCondition.error)
        if run.counts is None:  # no design found (a time limit): the pairs fixed in, and no claim
            bound = solve_relaxation(ctx.phase(None), tol=1e-6).bound
            return Outcome(lower, termination, SolutionStatus.no_solution, bound=bound, solver=solver)
        n = run.counts.astype(np.int64)
        broken = ctx.polytope.violations(n)
        if broken:
            from ..errors import SolverError

            raise SolverError(f"{ctx.options.solver} returned a design outside the constraints: "
                              f"{'; '.join(broken)}")
        value = ctx.criterion.value(information_matrix(ctx.instance, n, ctx.pool))
        target = allowed_gap(ctx.criterion, value, ctx.instance.dim, 1e-6)
        bound = run.dual_bound
        if bound is None or bound < value - target:  # none, or not a bound under our arithmetic
            if bound is not None:
                ctx.say(f"misocp: the solver's dual bound {bound:.10g} is below the design's own "
                        f"value {value:.10g} (its tolerances): using the relaxation's certified bound")
            bound = solve_relaxation(ctx.phase(None), tol=1e-6).bound
        bound = max(bound, value)
        proven = bound - value <= target
        return Outcome(n, termination, SolutionStatus.optimal if proven else SolutionStatus.feasible,
                       bound=bound, solver=solver)
