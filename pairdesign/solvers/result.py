"""The one :class:`Result` every method returns, and its design file.

Termination (why a method stopped) is kept apart from the solution status (what is known of the
design), as in Pyomo's ``contrib.solver`` results: a greedy run that completed is ``feasible``,
not ``optimal``; only a method that proved the gap within tolerance says ``optimal``.
"""

from __future__ import annotations

import csv
import enum
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write
from ..errors import OptionError

DESIGN_FORMAT = "pairdesign.design/1"


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
        """The design file's content (``pairdesign.design/1``)."""
        return {
            "format": DESIGN_FORMAT,
            "instance": self.instance_name,
            "method": self.method,
            "solver": self.solver,
            "criterion": self.criterion,
            "budget": self.budget,
            "budget_used": self.budget_used,
            "labels": self.n_labels,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "status": self.status.value,
            "termination": self.termination.value,
            "seconds": round(self.seconds, 6),
            "seed": self.seed,
            "fractional": self.fractional,
            "pairs": ([list(p) for p in self.pairs] if self.weights is None
                      else [list(p) + [w] for p, w in zip(self.pairs, self.weights)]),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the design as ``.json`` or ``.csv`` (by the suffix), atomically.

        The CSV has a header ``prompt_id,completion_a,completion_b`` preceded by ``# key: value``
        lines with the metadata (read it with ``pandas.read_csv(path, comment="#")``).
        """
        path = Path(path)
        suffix = path.suffix.lower()
        doc = self.to_dict()
        if suffix == ".json":
            pairs = doc.pop("pairs")
            with atomic_write(path, "w", encoding="utf-8") as handle:
                head = json.dumps(doc, indent=1, allow_nan=False)
                rows = ",\n  ".join(json.dumps(p) for p in pairs)
                handle.write(head[:-2] + ',\n "pairs": [' + (f"\n  {rows}\n ]" if pairs else "]") + "\n}\n")
        elif suffix == ".csv":
            pairs = doc.pop("pairs")
            with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
                for key, value in doc.items():
                    handle.write(f"# {key}: {json.dumps(value)}\n")
                writer = csv.writer(handle)
                writer.writerow(["prompt_id", "completion_a", "completion_b"]
                                + (["weight"] if self.fractional else []))
                writer.writerows(pairs)
        else:
            raise OptionError(f"unknown design file type {suffix!r}: use .json or .csv ({path})")

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
