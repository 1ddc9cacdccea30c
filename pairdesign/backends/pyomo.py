"""Any MILP solver Pyomo knows (``appsi_highs``, ``gurobi``, ``cplex``, ``scip``, ``cbc``, ...).

:func:`solver` checks availability quietly (Pyomo logs a traceback when it cannot find an
executable; that is a bad request, reported in one line); ``STATUS_MAP`` maps Pyomo's
termination conditions.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import OptionError
from . import ERROR, INFEASIBLE, INTERRUPTED, ITERATION_LIMIT, OPTIMAL, TIME_LIMIT

TIME_LIMIT_NAMES = ("appsi_",)  # interfaces whose solve() takes a time limit


def available() -> bool:
    try:
        import pyomo.environ  # noqa: F401
    except ImportError:
        return False
    return True


def status_map() -> dict:
    from pyomo.opt import TerminationCondition as TC

    return {
        TC.optimal: OPTIMAL,
        TC.maxTimeLimit: TIME_LIMIT,
        TC.maxIterations: ITERATION_LIMIT,
        TC.maxEvaluations: ITERATION_LIMIT,
        TC.infeasible: INFEASIBLE,
        TC.userInterrupt: INTERRUPTED,
    }


def status(termination: Any) -> str:
    return status_map().get(termination, ERROR)


def honours_time_limit(name: str) -> bool:
    return name.startswith(TIME_LIMIT_NAMES)


def solver(name: str):
    """The Pyomo solver ``name``, or :class:`OptionError` (one line) if it is not available."""
    if not available():
        raise OptionError("Pyomo is not installed (pip install pyomo)")
    import pyomo.environ as pyo

    quiet = [logging.getLogger(n) for n in ("pyomo", "pyomo.opt", "pyomo.solvers")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL + 1)
    try:
        opt = pyo.SolverFactory(name)
        ok = opt is not None and opt.available(exception_flag=False)
    except Exception:  # Pyomo raises various errors for unknown names and missing executables
        ok = False
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    if not ok:
        raise OptionError(f"Pyomo solver {name!r} is not available here")
    return opt
