"""The one :class:`Result` every method returns, and its design file.

Termination (why a method stopped) is kept apart from the solution status (what is known of the
design), as in Pyomo's ``contrib.solver`` results: a greedy run that completed is ``feasible``,
not ``optimal``; only a method that proved the gap within tolerance says ``optimal``.
"""

from __future__ import annotations

import enum
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..design import DESIGN_FORMAT, design_document, save_design

__all__ = ["DESIGN_FORMAT", "Result", "SolutionStatus", "TerminationCondition"]


class SolutionStatus(str, enum.Enum):
    """What is known of the returned design."""

    optimal = "optimal"  # proven optimal within the gap tolerance
    feasible = "feasible"  # satisfies every constraint; optimality not proven
    infeasible = "infeasible"  # the constraints admit no design
    no_solution = "no_solution"  # stopped before the method found a design (the result holds only the pairs fixed in)


class TerminationCondition(str, enum.Enum):
    """Why the method stopped."""

    completed = "completed"  # the method ran to its end (e.g. greedy filled the budget)
    converged = "converged"  # an iterative method met its tolerance
    time_limit = "time_limit"
    iteration_limit = "iteration_limit"
    interrupted = "interrupted"
    inaccurate = "inaccurate"  # the solver stopped at a point it calls inaccurate (cvxpy's optimal_inaccurate)
    infeasible = "infeasible"
    error = "error"


@dataclass(frozen=True, eq=False)
class Result:
    """A design and what is known of it.

    ``pairs`` lists the selected pairs as ``(prompt_id, completion_id, completion_id)``, once per
    label; ``counts[p]`` is n_p for every candidate pair p of the instance. A fractional design
    (the relaxation) lists each pair of positive weight once, with ``weights`` beside ``pairs``. ``objective`` is
    f(M(n)) recomputed from the instance (DESIGN.md section 3); ``bound`` is a proven upper bound
    on the optimum (None where the method has none) and ``gap = bound - objective``.
    """

    pairs: tuple[tuple[str, str, str], ...]
    counts: np.ndarray
    objective: float
    bound: float | None
    status: SolutionStatus
    termination: TerminationCondition
    method: str
    criterion: str
    solver: str | None
    budget: float
    budget_used: float
    seconds: float
    instance_name: str = ""
    dim: int = 0
    seed: int | None = None
    log: tuple[str, ...] = field(default_factory=tuple)
    weights: tuple[float, ...] | None = None
    instance_fingerprint: str | None = None
    """The fingerprint of the instance solved (:func:`pairdesign.fingerprint.instance_fingerprint`),
    recorded in the design file so that the design is never read with another instance."""

    @property
    def gap(self) -> float | None:
        """bound - objective, in the units of the criterion (None without a bound)."""
        if self.bound is None:
            return None
        return max(0.0, self.bound - self.objective)

    @property
    def efficiency_bound(self) -> float | None:
        """For D: a certified lower bound on the D-efficiency, ``exp(-gap / d)``."""
        if self.gap is None or self.criterion != "D" or not self.dim:
            return None
        return math.exp(-self.gap / self.dim)

    @property
    def fractional(self) -> bool:
        return self.weights is not None

    @property
    def n_labels(self) -> float:
        """Labels in the design (their total weight for a fractional design)."""
        return float(sum(self.weights)) if self.weights is not None else len(self.pairs)

    def to_dict(self) -> dict[str, Any]:
        """The design file's content (``pairdesign.design/1``; see :mod:`pairdesign.design`)."""
        return design_document(self)

    def save(self, path: str | os.PathLike) -> None:
        """Write the design as ``.json`` or ``.csv`` (by the suffix), atomically, through
        :func:`pairdesign.design.save_design`.

        The CSV has a header ``prompt_id,completion_a,completion_b`` preceded by ``# key: value``
        lines with the metadata (read it with ``pandas.read_csv(path, comment="#")``).
        """
        save_design(self, path)

    def summary(self) -> str:
        """A few lines for people."""
        bound = "none" if self.bound is None else f"{self.bound:.6g}"
        gap = "" if self.gap is None else f"  gap {self.gap:.3g}"
        eff = self.efficiency_bound
        eff_text = "" if eff is None else f"  (D-efficiency >= {eff:.4f})"
        return (
            f"method {self.method} ({self.solver or 'native'}), criterion {self.criterion}: "
            f"{self.n_labels:g} {'labels (fractional)' if self.fractional else 'labels'}, budget used {self.budget_used:g} of {self.budget:g}\n"
            f"objective {self.objective:.6g}  bound {bound}{gap}{eff_text}\n"
            f"status {self.status.value} ({self.termination.value}) in {self.seconds:.3f} s"
        )
