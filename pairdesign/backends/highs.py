"""A silent ``highspy.Highs``.

HiGHS prints its banner when the first ``Highs`` object of a process is built, before any option
can be set (ERGO-Code/HiGHS#1702, #2749), so construction runs with the process's standard output
pointed at /dev/null; the instance is then set silent.
"""

from __future__ import annotations

import os
import sys


def new_highs():
    """A ``highspy.Highs`` that logs nothing."""
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    h.silent()
    return h


def available() -> bool:
    try:
        import highspy  # noqa: F401
    except ImportError:
        return False
    return True


def _status_map() -> dict:
    import highspy

    from . import (ERROR, INFEASIBLE, INTERRUPTED, ITERATION_LIMIT, OPTIMAL, TIME_LIMIT)

    S = highspy.HighsModelStatus
    return {
        S.kOptimal: OPTIMAL,
        S.kTimeLimit: TIME_LIMIT,
        S.kIterationLimit: ITERATION_LIMIT,
        S.kSolutionLimit: ITERATION_LIMIT,
        S.kInfeasible: INFEASIBLE,
        S.kInterrupt: INTERRUPTED,
        S.kHighsInterrupt: INTERRUPTED,
        S.kUnboundedOrInfeasible: ERROR,  # our programs are bounded: this is a numerical failure
        S.kUnbounded: ERROR,
    }


def status(h) -> str:
    """The run's status through the one table (unknown statuses are errors)."""
    from . import ERROR

    return _status_map().get(h.getModelStatus(), ERROR)


def describe(h) -> str:
    return h.modelStatusToString(h.getModelStatus())
