"""The method ``exact``: a proven optimal design by one of two algorithms.

``algorithm="oa"``: outer approximation with a MILP master (:mod:`.outer_approximation`);
``algorithm="bnb"``: branch and bound with certified relaxation bounds (:mod:`.branch_and_bound`).
Both start from the relaxation and the greedy design; ``optimal`` only when the bounds meet within
``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OptionError
from .base import Context, Outcome, check_stopping
from .branch_and_bound import branch_and_bound
from .outer_approximation import outer_approximation


class Exact:
    name = "exact"
    needs_scores = False

    @dataclass(frozen=True)
    class Options:
        tol: float = 1e-6  # D: D-efficiency loss; A, L: relative gap
        max_iterations: int = 1000  # OA: master solves; B&B: nodes / 100
        solver: str = "highs"  # or "pyomo:NAME" for any MILP solver Pyomo knows (appsi_highs, ...)
        algorithm: str = "oa"  # "oa" (outer approximation) or "bnb" (branch and bound, relaxation bounds)

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
            return branch_and_bound(ctx)
        return outer_approximation(ctx)
