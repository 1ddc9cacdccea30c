"""One absolute, monotonic deadline, threaded through every method and backend.

A :class:`Deadline` is a point on :func:`time.monotonic` (or none: no limit). It is made once, by
:func:`pairdesign.solve` from ``time_limit``; a phase of a method gets a *child* deadline (a share
of the time left, or a number of seconds, never later than its parent's), and a backend asks
:meth:`Deadline.solver_seconds` for the limit to hand to an external solver. The clock is read in
one place (:meth:`Deadline.remaining`), so "time left" is computed the same way everywhere.

An optional ``check`` callable runs at every :meth:`expired` call: the front door uses it for
nothing by default; tests use it to raise :class:`KeyboardInterrupt` at a chosen point of a run
(the same path as Ctrl-C), without real signals.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["Deadline", "MIN_SOLVER_SECONDS"]

MIN_SOLVER_SECONDS = 1e-3  # an external solver given less than this would treat it as "no limit"


@dataclass(frozen=True)
class Deadline:
    """``at``: the :func:`time.monotonic` time at which work must stop (None: no limit)."""

    at: float | None = None
    check: Callable[[], None] | None = None

    @classmethod
    def after(cls, seconds: float | None, check: Callable[[], None] | None = None) -> "Deadline":
        """The deadline ``seconds`` from now (None: no limit)."""
        return cls(None if seconds is None else time.monotonic() + float(seconds), check)

    @classmethod
    def never(cls) -> "Deadline":
        return cls(None)

    @property
    def limited(self) -> bool:
        return self.at is not None

    def remaining(self) -> float:
        """Seconds left (``inf`` without a limit, 0 once passed)."""
        if self.at is None:
            return math.inf
        return max(self.at - time.monotonic(), 0.0)

    def expired(self) -> bool:
        """Whether the deadline has passed (and runs the ``check`` hook, if any)."""
        if self.check is not None:
            self.check()
        return self.at is not None and time.monotonic() >= self.at

    def child(self, share: float | None = None, seconds: float | None = None) -> "Deadline":
        """A phase's deadline: ``share`` of the time left from now, or ``seconds`` from now (or
        the parent's own deadline with neither); never later than the parent's."""
        at = self.at
        now = time.monotonic()
        if share is not None and at is not None:
            at = now + share * max(at - now, 0.0)
        if seconds is not None:
            at = now + seconds if at is None else min(at, now + seconds)
        return Deadline(at, self.check)

    def solver_seconds(self) -> float | None:
        """The limit to hand an external solver (None without a limit; at least
        ``MIN_SOLVER_SECONDS``, so that a passed deadline is not read as "no limit")."""
        if self.at is None:
            return None
        return max(self.remaining(), MIN_SOLVER_SECONDS)
