"""The exact D-optimal design as a mixed-integer second-order cone program (Sagnol & Harman 2015).

With M(n) = sum_i n_i A_i A_i^T + L0 L0^T, A_i = sqrt(w_i) z_i (a d x 1 column) and M0 = L0 L0^T,

    det(M(n))^(1/d) = max (prod_j J_jj)^(1/d)
        s.t.  sum_i A_i Z_i + L0 Z_0 = J,  J lower triangular,
              Z_ij^2 <= T_ij n_i   (rotated second-order cones),  |Z_0 e_j|^2 <= t_j,
              sum_i T_ij + t_j <= J_jj,

so maximising the geometric mean of diag(J) over integer n in the polytope of section 4 gives the
exact D-optimal design, solvable by any mixed-integer conic solver cvxpy knows (SCIP via PySCIPOpt,
MOSEK, Gurobi). It is the independent cross-check of outer approximation.
"""

from __future__ import annotations

import numpy as np

from ..polytope import Polytope, linear_constraints
from ..information import centered_features, prior_information
from ..instance import Instance
from .relaxation import polytope_rows


def misocp_problem(instance: Instance, budget: float | None = None, polytope: Polytope | None = None):
    """The MISOCP as ``(problem, n)`` (cvxpy); maximises (det M)^(1/d)."""
    import cvxpy as cp

    cand = instance.candidates
    P, d = len(cand), instance.dim
    phi = centered_features(instance)
    A = (phi[cand.j] - phi[cand.k]) * np.sqrt(cand.weight)[:, None]  # row i: A_i^T
    L0 = np.linalg.cholesky(prior_information(instance))
    lc = linear_constraints(instance, budget) if polytope is None else polytope

    n = cp.Variable(P, integer=True, name="n")
    Z = cp.Variable((P, d), name="Z")
    T = cp.Variable((P, d), nonneg=True, name="T")
    Z0 = cp.Variable((d, d), name="Z0")
    t0 = cp.Variable(d, nonneg=True, name="t0")
    J = cp.Variable((d, d), name="J")
    N = cp.reshape(n, (P, 1), order="F") @ np.ones((1, d))
    constraints = [
        A.T @ Z + L0 @ Z0 == J,
        n >= lc.lower, n <= lc.upper, *polytope_rows(lc, n),
        # Z_ij^2 <= T_ij n_i  as  |(2 Z_ij, T_ij - n_i)| <= T_ij + n_i
        cp.SOC(cp.vec(T + N, order="F"),
               cp.vstack([cp.vec(2 * Z, order="F"), cp.vec(T - N, order="F")]), axis=0),
        # |Z0 e_j|^2 <= t0_j  as  |(2 Z0 e_j, t0_j - 1)| <= t0_j + 1
        cp.SOC(t0 + 1, cp.vstack([2 * Z0, cp.reshape(t0 - 1, (1, d), order="F")]), axis=0),
        cp.sum(T, axis=0) + t0 <= cp.diag(J),
    ]
    if d > 1:
        constraints.append(cp.upper_tri(J) == 0)
    return cp.Problem(cp.Maximize(cp.geo_mean(cp.diag(J))), constraints), n

