"""The method ``relax``: the convex relaxation's fractional design and its certified bound.

``solver="native"`` (default) runs the first-order solver of :mod:`.frank_wolfe`;
``solver="cvxpy"`` or ``"cvxpy:NAME"`` (CLARABEL by default, SCS, MOSEK where installed) solves the
reference formulation of :mod:`pairdesign.formulations.relaxation`. Either way the bound is the
Frank-Wolfe certificate computed by pairdesign at the returned design, so it holds whatever the
solver's own accuracy; the status is ``optimal`` when the certified gap meets ``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..polytope import shrink_into
from ..errors import OptionError
from ..information import information_matrix
from .base import Context, Outcome, check_stopping
from .frank_wolfe import allowed_gap, relaxation_bound, solve_relaxation
from .result import SolutionStatus, TerminationCondition


class Relax:
    name = "relax"
    needs_scores = False

    @dataclass(frozen=True)
    class Options:
        solver: str = "native"
        tol: float = 1e-6  # D: certified D-efficiency loss; A, L: relative gap
        max_iterations: int = 10_000

        def check(self) -> None:
            if not (self.solver == "native" or self.solver == "cvxpy" or self.solver.startswith("cvxpy:")):
                raise OptionError(f"option 'solver' of method 'relax' must be 'native', 'cvxpy' or "
                                  f"'cvxpy:NAME', got {self.solver!r}")
            check_stopping("relax", self.tol, self.max_iterations)

    @staticmethod
    def refuse_time_limit(problem, options, time_limit: float) -> str | None:
        """Why a time limit cannot be honoured (None: it can): see :mod:`pairdesign.backends.cvxpy_conic`."""
        if options.solver == "native":
            return None
        from ..backends import cvxpy_conic

        name = options.solver.partition(":")[2] or "CLARABEL"
        return cvxpy_conic.refuse_time_limit(name, problem.size * problem.dim ** 2,
                                             cvxpy_conic.BUILD_SECONDS_PER_ENTRY, time_limit)

    def run(self, ctx: Context) -> Outcome:
        opts = ctx.options
        if opts.solver == "native":
            relaxed = solve_relaxation(ctx, tol=opts.tol, max_iterations=opts.max_iterations)
            n, bound, termination, solver = relaxed.n, relaxed.bound, relaxed.termination, "native"
        else:
            from ..backends import INACCURATE, OPTIMAL, TIME_LIMIT, cvxpy_conic

            name = (opts.solver.partition(":")[2] or "CLARABEL").upper()
            ctx.say(f"relax: cvxpy with {name}")
            raw, state, raw_status = cvxpy_conic.solve_relaxation(
                ctx.instance, ctx.criterion, ctx.budget, name, ctx.deadline.solver_seconds(),
                polytope=ctx.polytope)
            if raw is None:  # stopped before any point: the pairs fixed in, with the certificate
                raw = ctx.polytope.lower.copy()
            n = shrink_into(ctx.polytope, raw)
            bound = relaxation_bound(ctx, n)
            termination = {OPTIMAL: TerminationCondition.completed,
                           INACCURATE: TerminationCondition.inaccurate,
                           TIME_LIMIT: TerminationCondition.time_limit}.get(state, TerminationCondition.error)
            solver = f"cvxpy:{name} ({raw_status})"
        value = ctx.criterion.value(information_matrix(ctx.instance, n, ctx.pool))
        proven = bound - value <= allowed_gap(ctx.criterion, value, ctx.instance.dim, opts.tol)
        return Outcome(n, termination, SolutionStatus.optimal if proven else SolutionStatus.feasible,
                       bound=bound, solver=solver, fractional=True)

