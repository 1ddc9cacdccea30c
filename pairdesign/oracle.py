"""The linear maximisation oracle over the feasible set: ``s = argmax g^T s`` s.t. section 4.

Specialised, exact and fast for the usual constraints; an LP in HiGHS for the rest:

- budget (with costs) and bounds only: the fractional knapsack, by ratio g_p / c_p;
- unit costs, budget, bounds and per-prompt caps: greedy by gain (the feasible set is a polymatroid
  of a laminar family, where greedy is optimal for linear objectives);
- anything else (per-completion caps, groups, costs with prompt caps): ``scipy.optimize.linprog``
  with the HiGHS solver.

Only pairs with a positive g can help; the start is n = lower (pairs fixed in).
"""

from __future__ import annotations

import math

import numpy as np

from .polytope import Polytope
from .errors import InfeasibleError, SolverError
from .instance import Instance

_EPS = 1e-12


class LinearOracle:
    """``maximize(g)`` returns ``(s, top)``: a vertex s of the feasible polytope maximising
    ``g^T s``, and ``top >= max g^T s``, a proven upper bound on the maximum (``g^T s`` itself
    for the exact combinatorial oracles; by LP duality for HiGHS, whose vertex is accurate only
    to its tolerances: for any row prices y >= 0,

        max g^T s <= y^T b + sum_p max(r_p lower_p, r_p upper_p),   r = g - A^T y)."""

    def __init__(self, instance: Instance, constraints: Polytope):
        self.instance = instance
        self.lc = constraints
        cand = instance.candidates
        self.cost = cand.cost
        self.prompt = cand.prompt
        kinds = constraints.kinds()  # the row families present decide the oracle
        if kinds <= {"budget"}:
            self.kind = "knapsack"
        elif kinds <= {"budget", "prompt"} and not constraints.has_row_lower and cand.unit_cost:
            self.kind = "laminar"
        else:
            self.kind = "lp"  # anything else (coverage minimums among them): the LP
        self.lower, self.upper = constraints.lower, constraints.upper
        constraints.check_feasible_start()
        budget = float(constraints.b[0])
        self.budget_left = budget - float(self.cost @ self.lower)
        if self.kind == "laminar":
            caps = instance.prompt_caps()
            used = np.bincount(self.prompt, self.lower, minlength=instance.n_prompts)
            self.prompt_left = caps - used

    def maximize(self, g: np.ndarray) -> tuple[np.ndarray, float]:
        if self.kind == "knapsack":
            s = self._knapsack(g)
        elif self.kind == "laminar":
            s = self._laminar(g)
        else:
            return self._lp(g)
        return s, float(g @ s)

    def _knapsack(self, g: np.ndarray) -> np.ndarray:
        s = self.lower.copy()
        room = self.upper - self.lower
        useful = np.flatnonzero((g > 0) & (room > 0))
        ratio = g[useful] / self.cost[useful]
        spend = room[useful] * self.cost[useful]
        # only the k largest ratios can be taken, k = the pairs the budget fills at the least spend
        need = self.budget_left / max(float(spend.min(initial=math.inf)), 1e-300)
        k = math.ceil(need) + 1 if need < useful.size // 2 else useful.size
        if k < useful.size:
            useful = useful[np.argpartition(-ratio, k)[:k]]
            ratio = g[useful] / self.cost[useful]
        order = useful[np.argsort(-ratio, kind="stable")]
        spend = room[order] * self.cost[order]
        before = np.cumsum(spend) - spend
        take = np.clip((self.budget_left - before) / self.cost[order], 0.0, room[order])
        s[order] += take
        return s

    def _laminar(self, g: np.ndarray) -> np.ndarray:
        s = self.lower.copy()
        room = self.upper - self.lower
        useful = np.flatnonzero((g > 0) & (room > 0))
        # within each prompt, in order of gain: what its cap leaves for each pair
        by_prompt = useful[np.lexsort((-g[useful], self.prompt[useful]))]
        prompts = self.prompt[by_prompt]
        r = room[by_prompt]
        cum = np.cumsum(r)
        starts = np.flatnonzero(np.r_[True, prompts[1:] != prompts[:-1]])
        first = np.repeat(starts, np.diff(np.r_[starts, prompts.size]))
        before_in_prompt = cum - r - (cum[first] - r[first])
        allowed = np.clip(self.prompt_left[prompts] - before_in_prompt, 0.0, r)
        amount = np.zeros(g.shape[0])
        amount[by_prompt] = allowed
        # then the budget, in global order of gain
        order = useful[np.argsort(-g[useful], kind="stable")]
        spend = amount[order]
        before = np.cumsum(spend) - spend
        s[order] += np.clip(self.budget_left - before, 0.0, spend)
        return s

    def _lp(self, g: np.ndarray) -> tuple[np.ndarray, float]:
        from scipy.optimize import linprog

        scale = float(np.abs(g).max(initial=0.0)) or 1.0  # gains may reach 1e12: HiGHS likes O(1)
        lc = self.lc
        if lc.has_row_lower:  # both sides: rows l <= A s <= b as A s <= b and -A s <= -l
            return self._lp_two_sided(g, scale)
        res = linprog(-g / scale, A_ub=self.lc.A, b_ub=self.lc.b,
                      bounds=np.c_[self.lower, self.upper], method="highs")
        if res.status == 2:
            raise InfeasibleError("the constraints admit no design (the LP oracle found none)")
        if res.status != 0:
            raise SolverError(f"HiGHS failed on the linear oracle: {res.message}")
        y = scale * np.maximum(-np.asarray(res.ineqlin.marginals), 0.0)  # prices of rows A s <= b
        r = g - self.lc.A.T @ y
        top = float(y @ self.lc.b + np.sum(np.maximum(r * self.lower, r * self.upper)))
        return np.clip(res.x, self.lower, self.upper), top

    def _lp_two_sided(self, g: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
        """The LP with coverage minimums; the bound by LP duality with prices y >= 0 on the
        upper sides and z >= 0 on the lower sides: for r = g - A^T y + A^T z,
        ``max g^T s <= y^T b - z^T l + sum_p max(r_p lower_p, r_p upper_p)``."""
        import scipy.sparse as sp
        from scipy.optimize import linprog

        lc = self.lc
        up = np.flatnonzero(np.isfinite(lc.b))
        low_sides = lc.lower_sides()
        lo = np.flatnonzero(np.isfinite(low_sides))
        A_ub = sp.vstack([lc.A[up], -lc.A[lo]], format="csr")
        res = linprog(-g / scale, A_ub=A_ub, b_ub=np.r_[lc.b[up], -low_sides[lo]],
                      bounds=np.c_[self.lower, self.upper], method="highs")
        if res.status == 2:
            raise InfeasibleError("the constraints admit no design (the LP oracle found none)")
        if res.status != 0:
            raise SolverError(f"HiGHS failed on the linear oracle: {res.message}")
        prices = scale * np.maximum(-np.asarray(res.ineqlin.marginals), 0.0)
        y, z = prices[: up.size], prices[up.size:]
        r = g - lc.A[up].T @ y + lc.A[lo].T @ z
        top = float(y @ lc.b[up] - z @ low_sides[lo] + np.sum(np.maximum(r * self.lower, r * self.upper)))
        return np.clip(res.x, self.lower, self.upper), top
