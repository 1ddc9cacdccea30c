"""The default method ``auto``: prove optimality where the instance allows, else round.

1. ``round`` (relaxation, rounding, local search): a design with the relaxation's certified bound.
   If its gap is already within ``tol``, it is optimal and auto stops.
2. If the instance has at most ``exact_pairs`` candidate pairs, branch and bound (method
   ``exact``, ``algorithm="bnb"``, started from the rounded design) runs for at most
   ``exact_nodes`` nodes (a work limit, so that a seeded run without a time limit does not depend
   on the clock), within the time limit if one is given (and ``exact_time`` seconds if set);
   auto returns the better design of the two, the smaller bound, and ``optimal`` only when the
   bound is met within ``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from ..information import information_matrix
from .base import Context, Outcome, check_stopping
from .frank_wolfe import allowed_gap
from .result import SolutionStatus, TerminationCondition


class Auto:
    name = "auto"
    needs_scores = False

    @dataclass(frozen=True)
    class Options:
        tol: float = 1e-6
        exact_pairs: int = 5000  # try to prove optimality up to this many candidate pairs
        exact_nodes: int = 2000  # branch-and-bound nodes of the exact phase (a work limit)
        exact_time: float | None = None  # seconds for the exact phase (None: the time limit only)
        draws: int = 8

        def check(self) -> None:
            check_stopping("auto", self.tol, 1)
            if self.exact_pairs < 0 or self.draws < 0 or self.exact_nodes < 1:
                raise OptionError("options of method 'auto': exact_pairs and draws must be >= 0, "
                                  "exact_nodes >= 1")
            if self.exact_time is not None and not self.exact_time > 0:
                raise OptionError(f"option 'exact_time' of method 'auto' must be > 0, got {self.exact_time}")

    def run(self, ctx: Context) -> Outcome:
        from .round import Round

        opts = ctx.options
        inst, crit = ctx.instance, ctx.criterion
        P = ctx.pool.size
        round_ctx = ctx.phase(Round.Options(tol=opts.tol, draws=opts.draws))
        rounded = Round().run(round_ctx)
        if rounded.status is SolutionStatus.optimal:
            ctx.say("auto: the rounded design meets the relaxation's bound: optimal")
            return _solver(rounded, "round")
        if P > opts.exact_pairs:
            ctx.say(f"auto: {P} candidate pairs > exact_pairs = {opts.exact_pairs}: keeping the rounded design")
            return _solver(rounded, "round")
        if ctx.out_of_time():
            return _solver(rounded, "round")

        from .exact import Exact

        deadline = ctx.deadline.child(seconds=opts.exact_time)
        ctx.say(f"auto: {P} candidate pairs: trying to prove optimality (exact, branch and bound, "
                f"at most {opts.exact_nodes} nodes"
                + ("" if not deadline.limited else f", {deadline.remaining():.1f} s") + ")")
        # branch and bound: the faster exact algorithm on the benchmark (benchmarks/RESULTS.md),
        # started from the rounded design
        exact_ctx = ctx.phase(Exact.Options(tol=opts.tol, algorithm="bnb", max_nodes=opts.exact_nodes),
                              deadline)
        exact_ctx.start = np.asarray(rounded.counts, dtype=np.int64)
        exact = Exact().run(exact_ctx)

        values = [crit.value(information_matrix(inst, o.counts, ctx.pool)) for o in (rounded, exact)]
        best = exact if values[1] > values[0] else rounded
        value = max(values)
        bound = min(b for b in (rounded.bound, exact.bound) if b is not None)
        bound = max(bound, value)
        proven = bound - value <= allowed_gap(crit, value, inst.dim, opts.tol)
        termination = (TerminationCondition.converged if proven
                       else TerminationCondition.time_limit if ctx.out_of_time()
                       else TerminationCondition.completed)  # exact_nodes is auto's own choice
        ctx.say(f"auto: best design from {'exact' if best is exact else 'round'}, f = {value:.10g}, "
                f"bound {bound:.10g}" + (" (optimal)" if proven else ""))
        return Outcome(np.asarray(best.counts, dtype=np.int64), termination,
                       SolutionStatus.optimal if proven else SolutionStatus.feasible, bound=bound,
                       solver=f"round + exact ({exact.solver}); design from "
                              f"{'exact' if best is exact else 'round'}")


def _solver(outcome: Outcome, phase: str) -> Outcome:
    outcome.solver = f"{phase} ({outcome.solver})"
    return outcome
