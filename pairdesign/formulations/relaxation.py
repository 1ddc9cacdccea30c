"""The convex relaxation (CR) as a cvxpy Problem: the readable reference.

    maximise    f(M(n)),   M(n) = M0 + sum_p n_p w_p z_p z_p^T
    subject to  A n <= b   (budget with costs, per-prompt and per-completion caps, groups)
                lower <= n <= upper   (fixed pairs, labels per pair)

with f = log_det (D), -tr_inv (A) or -matrix_frac(C, M) = -tr(C^T M^-1 C) = -tr(H M^-1) for
H = C C^T (L). M(n) is written as ``M0 + mat(V^T n)`` with one column ``w_p vec(z_p z_p^T)`` per
pair: a (pairs x d^2) matrix, fine for a reference on small instances and refused on large ones
(the native solver works through completions instead).
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from ..polytope import Polytope, linear_constraints
from ..information import Criterion, centered_features, prior_information
from ..instance import Instance

MAX_ENTRIES = 200_000_000  # pairs x d^2 floats (1.6 GB) beyond which the reference is refused


def relaxation_problem(instance: Instance, criterion: Criterion, budget: float | None = None,
                       polytope: Polytope | None = None):
    """The CR as ``(problem, n)``: a cvxpy Problem and its variable n (one entry per candidate)."""
    import cvxpy as cp

    cand = instance.candidates
    P, d = len(cand), instance.dim
    if P * d * d > MAX_ENTRIES:
        raise OptionError(f"the cvxpy relaxation needs a {P} x {d * d} matrix: too large; "
                          f"use the native solver (solver='native')")
    phi = centered_features(instance)
    Z = phi[cand.j] - phi[cand.k]
    V = (Z[:, :, None] * Z[:, None, :]).reshape(P, d * d) * cand.weight[:, None]
    lc = linear_constraints(instance, budget) if polytope is None else polytope
    n = cp.Variable(P, name="n")
    M = cp.reshape(V.T @ n, (d, d), order="F") + prior_information(instance)
    M = (M + M.T) / 2
    objective = criterion.cvxpy_objective(M)
    constraints = [n >= lc.lower, n <= lc.upper, *polytope_rows(lc, n)]
    return cp.Problem(cp.Maximize(objective), constraints), n


def polytope_rows(lc, n) -> list:
    """The polytope's rows as cvxpy constraints (each side where it is finite)."""
    up = np.flatnonzero(np.isfinite(lc.b))
    out = [lc.A[up] @ n <= lc.b[up]] if up.size else []
    low = lc.lower_sides()
    down = np.flatnonzero(np.isfinite(low))
    if down.size:
        out.append(lc.A[down] @ n >= low[down])
    return out
