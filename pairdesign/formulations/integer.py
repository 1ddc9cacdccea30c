"""The integer program as an explicit Pyomo model: the outer-approximation master.

    maximise    eta
    subject to  eta <= f(n_t) + g(n_t)^T (n - n_t)      (one tangent cut per point n_t)
                A n <= b     (budget with costs, per-prompt and per-completion caps, groups)
                lower <= n <= upper,  n integer          (pairs fixed in: lower = 1)

f is the concave criterion (D, A or L) and g its gains, so every cut is valid. The model can be
written as LP or MPS (``pairdesign export``) for any MILP solver.
"""

from __future__ import annotations

import numpy as np

from ..polytope import linear_constraints
from ..information import Criterion, gains, information_matrix
from ..instance import Instance


def integer_model(instance: Instance, criterion: Criterion, budget: float | None = None):
    """The master as a Pyomo ``ConcreteModel`` with variables ``n[p]`` and ``eta``, the rows of
    section 4 as ``rows[r]`` and an empty ``cuts`` ConstraintList (see :func:`add_cut`)."""
    import pyomo.environ as pyo

    cand = instance.candidates
    lc = linear_constraints(instance, budget)
    model = pyo.ConcreteModel(name=instance.name or "pairdesign")
    model.pairs = pyo.RangeSet(0, len(cand) - 1)
    bounds = {p: (float(lc.lower[p]), float(lc.upper[p])) for p in range(len(cand))}
    model.n = pyo.Var(model.pairs, domain=pyo.Integers, bounds=lambda m, p: bounds[p])
    model.eta = pyo.Var(domain=pyo.Reals)
    A = lc.A.tocsr()
    low_sides = lc.lower_sides()  # coverage minimums (-inf where none)

    def row(m, r):
        lo, hi = A.indptr[r], A.indptr[r + 1]
        if lo == hi:  # a row without candidates (e.g. a capped prompt with no pairs)
            return pyo.Constraint.Skip
        body = sum(float(v) * m.n[int(p)] for p, v in zip(A.indices[lo:hi], A.data[lo:hi]))
        low, high = float(low_sides[r]), float(lc.b[r])
        return (None if not np.isfinite(low) else low, body, None if not np.isfinite(high) else high)

    model.rows = pyo.Constraint(pyo.RangeSet(0, lc.n_rows - 1), rule=row)
    model.cuts = pyo.ConstraintList()
    model.objective = pyo.Objective(expr=model.eta, sense=pyo.maximize)
    model.criterion_name = criterion.name
    return model


def add_cut(model, instance: Instance, criterion: Criterion, n: np.ndarray) -> float:
    """Add the tangent cut at design ``n`` (integer or relaxed); returns f(n)."""
    M = information_matrix(instance, n)
    value = criterion.value(M)
    g = gains(instance, M, criterion)
    nz = np.flatnonzero(g)
    model.cuts.add(model.eta <= value + sum(float(g[p]) * (model.n[int(p)] - float(n[p])) for p in nz))
    return value


def write_model(model, path, file_format: str) -> None:
    """Write the model as ``lp`` or ``mps`` (readable names: ``n(17)``, ``eta``), atomically."""
    import os
    import tempfile
    from pathlib import Path

    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".{file_format}",
                               dir=target.parent if str(target.parent) else ".")
    os.close(fd)
    try:
        model.write(tmp, io_options={"symbolic_solver_labels": True})  # the format from the suffix
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
