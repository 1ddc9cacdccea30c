"""The method ``exact``: a proven optimal design by one of two algorithms.

``algorithm="bnb"`` (the default: the faster one on the benchmark, benchmarks/RESULTS.md): branch
and bound with certified relaxation bounds (:mod:`.branch_and_bound`); ``algorithm="oa"`` (the
default when a Pyomo solver is named): outer approximation with a MILP master
(:mod:`.outer_approximation`).
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
        # "bnb" (branch and bound with relaxation bounds) or "oa" (outer approximation); None:
        # "bnb", or "oa" when a Pyomo solver is named (only the OA master uses one)
        algorithm: str | None = None
        max_nodes: int | None = None  # branch and bound: a node limit (default 100 max_iterations)
        symmetry: bool = True  # detect the instance's symmetries: orbital branching (bnb), leader inequalities (oa, highs)
        small_boxes: bool = True  # bnb, D: boxes with few labels left searched exactly, Hadamard bounds

        @property
        def resolved_algorithm(self) -> str:
            if self.algorithm is not None:
                return self.algorithm
            return "bnb" if self.solver == "highs" else "oa"

        def check(self) -> None:
            if not (self.solver == "highs" or self.solver.startswith("pyomo")):
                raise OptionError(f"option 'solver' of method 'exact' must be 'highs' or "
                                  f"'pyomo:NAME', got {self.solver!r}")
            if self.algorithm not in (None, "oa", "bnb"):
                raise OptionError(f"option 'algorithm' of method 'exact' must be 'oa' or 'bnb', "
                                  f"got {self.algorithm!r} (HiGHS offers no lazy-constraint "
                                  f"callback, so there is no single-tree variant)")
            if self.resolved_algorithm == "bnb" and self.solver != "highs":  # the MILP master's solver
                raise OptionError("option 'solver' of method 'exact' is for algorithm 'oa' (the "
                                  "MILP master); branch and bound solves its own relaxations")
            check_stopping("exact", self.tol, self.max_iterations)
            if self.solver.startswith("pyomo"):  # a missing solver is a bad request: say so first
                from ..backends import pyomo as pyomo_backend

                pyomo_backend.solver(self.solver.partition(":")[2] or "appsi_highs")
            if self.max_nodes is not None and (self.max_nodes < 1 or self.resolved_algorithm != "bnb"):
                raise OptionError("option 'max_nodes' of method 'exact' is a node limit >= 1 of "
                                  "algorithm 'bnb'")

    @staticmethod
    def refuse_time_limit(problem, options, time_limit: float) -> str | None:
        """Why a time limit cannot be honoured (None: it can): a Pyomo master through a legacy
        interface takes no time limit."""
        from ..backends import pyomo as pyomo_backend

        if options.resolved_algorithm == "oa" and options.solver != "highs":
            name = options.solver.partition(":")[2] or "appsi_highs"
            if not pyomo_backend.honours_time_limit(name):
                return (f"Pyomo solver {name!r} takes no time limit through Pyomo's interface; "
                        f"use an appsi_ solver (appsi_highs, appsi_gurobi, ...) or no time limit")
        return None

    def run(self, ctx: Context) -> Outcome:
        if ctx.options.resolved_algorithm == "bnb":
            return branch_and_bound(ctx)
        return outer_approximation(ctx)
