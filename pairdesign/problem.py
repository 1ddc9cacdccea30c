"""The problem a method solves: instance + budget + criterion + polytope + candidate pool.

:func:`pairdesign.solve` builds it once, validated (:meth:`Problem.build`); methods and backends
see only it. The polytope is the one encoding of the constraints (:mod:`pairdesign.polytope`);
the pool is the one way to the candidates (:mod:`pairdesign.pool`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .information import Criterion
from .instance import Instance
from .polytope import Polytope, linear_constraints
from .pool import CandidatePool, InMemoryPool

__all__ = ["Problem"]


@dataclass(frozen=True, eq=False)
class Problem:
    """maximise ``criterion(M(n))`` over the integer points n of ``polytope``."""

    instance: Instance
    criterion: Criterion
    budget: float
    polytope: Polytope
    pool: CandidatePool
    root: bool = True  # False for a restriction (a branch-and-bound node)

    @classmethod
    def build(cls, instance: Instance, criterion: "str | Criterion" = "D", budget: float | None = None,
              H: np.ndarray | None = None, pool: CandidatePool | None = None) -> "Problem":
        """The problem of an instance at a budget (the instance's by default), with its polytope
        checked: raises :class:`~pairdesign.errors.InfeasibleError` when the pairs fixed in, or
        the coverage minimums, already break a constraint."""
        budget = float(instance.budget if budget is None else budget)
        crit = Criterion.make(criterion, instance, H)
        polytope = linear_constraints(instance, budget)
        polytope.check_feasible()
        return cls(instance=instance, criterion=crit, budget=budget, polytope=polytope,
                   pool=InMemoryPool.of(instance) if pool is None else pool)

    @property
    def dim(self) -> int:
        return self.instance.dim

    @property
    def size(self) -> int:
        """P, the number of candidate pairs."""
        return self.pool.size

    def restrict(self, lower: np.ndarray, upper: np.ndarray) -> "Problem":
        """The same problem over the box ``lower <= n <= upper`` (a branch-and-bound node)."""
        return replace(self, polytope=self.polytope.restrict(lower, upper), root=False)
