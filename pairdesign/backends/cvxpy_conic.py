"""cvxpy's conic solvers (CLARABEL by default; SCS, MOSEK, ... where installed) for the
relaxation's reference formulation (:mod:`pairdesign.formulations.relaxation`).

Time limits: each solver's own option (``TIME_LIMIT_OPTION``); cvxpy's model build cannot be
interrupted, so with a time limit a model whose build is estimated (``BUILD_SECONDS_PER_ENTRY``
times P d^2 entries, measured on 2 cores) to exceed the tolerance of a limit (10% + 1 s) is
refused up front, as is a solver without a time-limit option.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from ..errors import InfeasibleError, OptionError, SolverError
from . import ERROR, INACCURATE, INFEASIBLE, INTERRUPTED, ITERATION_LIMIT, OPTIMAL, TIME_LIMIT

BUILD_SECONDS_PER_ENTRY = 4e-6  # cvxpy's build of the relaxation, per entry of the P x d^2 matrix

# cvxpy status -> ours; "optimal_inaccurate" is kept apart from "optimal"
STATUS_MAP = {
    "optimal": OPTIMAL,
    "optimal_inaccurate": INACCURATE,
    "user_limit": TIME_LIMIT,
    "infeasible": INFEASIBLE,
    "infeasible_inaccurate": INFEASIBLE,
    "unbounded": ERROR,
    "unbounded_inaccurate": ERROR,
    "infeasible_or_unbounded": ERROR,
    "solver_error": ERROR,
    "interrupted": INTERRUPTED,
    "iteration_limit": ITERATION_LIMIT,
}

TIME_LIMIT_OPTION: dict[str, Callable[[float], dict[str, Any]]] = {
    "CLARABEL": lambda t: {"time_limit": t},
    "SCS": lambda t: {"time_limit_secs": t},
    "MOSEK": lambda t: {"mosek_params": {"MSK_DPAR_OPTIMIZER_MAX_TIME": t}},
    "SCIP": lambda t: {"scip_params": {"limits/time": t}},
    "GUROBI": lambda t: {"TimeLimit": t},
    "HIGHS": lambda t: {"time_limit": t},
}


def installed() -> list[str]:
    try:
        import cvxpy as cp
    except ImportError:
        return []
    return list(cp.installed_solvers())


def available(name: str) -> bool:
    return name.upper() in installed()


def check_available(name: str, what: str = "cvxpy solver") -> str:
    name = name.upper()
    if not available(name):
        raise OptionError(f"{what} {name!r} is not installed; installed: {installed()}")
    return name


def refuse_build(name: str, build: float, time_limit: float, *, kind: str, model: str,
                 instead: str) -> str | None:
    """Why a time limit cannot be honoured (None: it can), for cvxpy solver ``name`` (a ``kind``)
    and a ``model`` whose uninterruptible build takes about ``build`` seconds: the solver takes no
    limit through cvxpy, or the build alone would break the tolerance of a limit (10% + 1 s).
    Shared by the relaxation (here) and the MISOCP (:mod:`.cvxpy_mip`)."""
    name = name.upper()
    if name not in TIME_LIMIT_OPTION:
        return f"{kind} {name} takes no time limit through cvxpy"
    if build > 0.1 * time_limit + 1.0:
        return (f"cvxpy's {model}, about {build:,.0f} s here) cannot be interrupted; run without a "
                f"time limit, or use {instead}")
    return None


def refuse_time_limit(name: str, entries: int, rate: float, time_limit: float) -> str | None:
    """Why a time limit cannot be honoured for a model of ``entries`` (None: it can)."""
    return refuse_build(name, entries * rate, time_limit, kind="cvxpy solver",
                        model=f"model build ({entries:,} entries", instead="the native solver")


def solve(problem, name: str, seconds: float | None, what: str = "") -> str:
    """Solve a cvxpy problem with solver ``name`` within ``seconds`` (None: no limit); returns our
    status name through :data:`STATUS_MAP`. A broken solver raises SolverError (naming ``what``
    was being solved). The one place where pairdesign calls cvxpy's ``solve``."""
    import cvxpy as cp

    kwargs = {} if seconds is None else TIME_LIMIT_OPTION[name](float(seconds))
    try:
        with warnings.catch_warnings():  # cvxpy warns of inaccurate solutions: our status says it
            warnings.simplefilter("ignore")
            problem.solve(solver=name, **kwargs)
    except cp.error.SolverError as exc:
        raise SolverError(f"cvxpy solver {name} failed{' on ' + what if what else ''}: {exc}") from None
    return STATUS_MAP.get(str(problem.status), ERROR)


def solve_relaxation(instance, criterion, budget: float, name: str = "CLARABEL",
                     seconds: float | None = None, polytope=None) -> tuple[np.ndarray | None, str, str]:
    """The relaxation by a cvxpy conic solver: ``(n or None, our status, cvxpy's status)``."""
    from ..formulations.relaxation import relaxation_problem

    name = check_available(name)
    problem, n = relaxation_problem(instance, criterion, budget, polytope=polytope)
    state = solve(problem, name, seconds)
    if state == INFEASIBLE:
        raise InfeasibleError("the relaxation is infeasible: the constraints admit no design")
    value = None if n.value is None else np.asarray(n.value, dtype=np.float64)
    if value is None and state in (OPTIMAL, INACCURATE):
        raise SolverError(f"cvxpy solver {name} reported {problem.status} without a solution")
    return value, state, str(problem.status)
