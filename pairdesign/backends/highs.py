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


_STOP_SIGNALS = ("SIGINT", "SIGTERM")


def run_interruptible(h) -> None:
    """``h.run()`` where Ctrl-C (or SIGTERM) stops HiGHS cleanly and is then delivered to Python.

    A run with Python callbacks (the OA master's ``cbMipSolution``) would otherwise take the
    signal's ``KeyboardInterrupt`` inside a callback, which HiGHS reports as a solve error. Here,
    while HiGHS runs, a stop signal only sets a flag; HiGHS's interrupt callbacks see the flag and
    stop the solve (status ``interrupted``); once the run is over the handlers are restored and
    the signal is raised again, so the caller gets its ``KeyboardInterrupt`` (or ``Terminated``)
    outside HiGHS. Off the main thread (where Python takes no signals) it is plain ``h.run()``."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        h.run()
        return
    caught: list[int] = []

    def on_signal(signum, frame) -> None:
        caught.append(signum)

    def on_interrupt(event) -> None:
        if caught:
            event.interrupt()

    previous = {}
    for name in _STOP_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None and callable(signal.getsignal(number)):  # a Python handler: ours stands in
            previous[number] = signal.signal(number, on_signal)
    hooks = (h.cbMipInterrupt, h.cbSimplexInterrupt, h.cbIpmInterrupt)
    for hook in hooks:
        hook.subscribe(on_interrupt)
    try:
        h.run()
    finally:
        for hook in hooks:
            hook.unsubscribe(on_interrupt)
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(caught):
            signal.raise_signal(number)  # now the caller's handler runs, outside HiGHS
