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
