"""cvxpy's mixed-integer conic solvers (SCIP by default; MOSEK, GUROBI where installed) for the
MISOCP of :mod:`pairdesign.formulations.misocp`.

The bound reported is the solver's *dual* bound (SCIP's ``getDualbound``, read from the model
cvxpy keeps), never its primal value; where a solver exposes none, the caller uses the
relaxation's certified bound. Time limits as in :mod:`.cvxpy_conic` (the MISOCP's build is
about ``BUILD_SECONDS_PER_ENTRY`` per entry of its P x d variables).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import SolverError
from . import ERROR, INFEASIBLE, OPTIMAL, TIME_LIMIT
from .cvxpy_conic import check_available, refuse_build, solve

BUILD_SECONDS_PER_ENTRY = 4e-5  # cvxpy's build of the MISOCP, per entry of its P x d variables
# cvxpy's SCIP interface adds each cone to the SCIP model in time linear in the model's size, so
# its build grows with the square of the P d entries: 0.5 s at 180, 24 s at 1,200, 97 s at 2,400
# (measured on 2 shared cores), before SCIP's own clock starts
SCIP_BUILD_SECONDS_PER_ENTRY_SQUARED = 1.7e-5
MIP_SOLVERS = ("SCIP", "MOSEK", "GUROBI")

__all__ = ["MisocpRun", "build_seconds", "check_available", "refuse", "solve_misocp"]


def build_seconds(name: str, pairs: int, dim: int) -> float:
    """The estimated seconds cvxpy takes to build the MISOCP for solver ``name``."""
    entries = pairs * dim
    if name.upper() == "SCIP":
        return SCIP_BUILD_SECONDS_PER_ENTRY_SQUARED * entries ** 2 + BUILD_SECONDS_PER_ENTRY * entries
    return BUILD_SECONDS_PER_ENTRY * entries


def refuse(name: str, pairs: int, dim: int, time_limit: float) -> str | None:
    """Why a time limit cannot be honoured (None: it can)."""
    return refuse_build(name, build_seconds(name, pairs, dim), time_limit,
                        kind="mixed-integer conic solver",
                        model=f"build of the MISOCP for {name.upper()} ({pairs:,} pairs x d = {dim}",
                        instead="'exact'")


@dataclass
class MisocpRun:
    counts: np.ndarray | None  # the design (None: none found)
    state: str  # our status name
    raw_status: str  # the solver's own
    dual_bound: float | None  # an upper bound on log det, from the solver's dual bound
    compile_seconds: float = 0.0
    solver_seconds: float = 0.0
    iterations: int | None = None


def solve_misocp(instance, budget: float, name: str, seconds: float | None, polytope=None) -> MisocpRun:
    """Solve the MISOCP (maximise (det M)^(1/d)); see the module docstring."""
    from ..formulations.misocp import misocp_problem

    name = check_available(name, "mixed-integer conic solver")
    problem, n = misocp_problem(instance, budget, polytope=polytope)
    if seconds is not None:  # the solver's clock starts after cvxpy's build
        seconds = max(seconds - build_seconds(name, len(instance.candidates), instance.dim), 1e-3)
    try:
        state = solve(problem, name, seconds, what="the MISOCP")
    except SolverError:
        # cvxpy calls a time limit without any solution a solver error
        if seconds is not None:
            return MisocpRun(None, TIME_LIMIT, "no solution within the time limit", None)
        raise
    raw = str(problem.status)
    extra = problem.solver_stats.extra_stats if problem.solver_stats is not None else None
    model = extra.get("model") if isinstance(extra, dict) else None
    if model is not None and hasattr(model, "getStatus"):
        scip_status = model.getStatus()
        if scip_status == "timelimit":
            state = TIME_LIMIT
        elif scip_status == "infeasible":
            state = INFEASIBLE
    dual = None
    if model is not None and hasattr(model, "getDualbound"):
        g = -float(model.getDualbound())  # cvxpy minimises -(det M)^(1/d)
        if math.isfinite(g):
            dual = instance.dim * math.log(g) if g > 0 else -math.inf
    counts = None if n.value is None else np.round(np.asarray(n.value))
    stats = problem.solver_stats
    return MisocpRun(counts, state if state != OPTIMAL or counts is not None else ERROR, raw, dual,
                     compile_seconds=float(problem.compilation_time or 0.0),
                     solver_seconds=float(getattr(stats, "solve_time", 0.0) or 0.0),
                     iterations=getattr(stats, "num_iters", None))
