"""The linear constraints of DESIGN.md section 4, checked for a whole design or kept pair by pair.

    budget:          sum_p c_p n_p <= B
    per prompt:      sum_{p in prompt i} n_p <= m_i
    per completion:  sum_{p touching (i,j)} n_p <= r
    groups:          sum_{p in G} c_p n_p <= B_G
    bounds:          lower_p <= n_p <= u_p, integer (lower_p = 1 for pairs fixed in)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .errors import InfeasibleError
from .instance import Instance

_TOL = 1e-9


def violations(instance: Instance, n: np.ndarray, budget: float | None = None,
               integral: bool = True) -> list[str]:
    """Every constraint that the design ``n`` (labels per candidate pair) breaks, in words
    (:meth:`Polytope.violations` of the instance's polytope at ``budget``)."""
    return linear_constraints(instance, budget).violations(n, integral=integral)


class DesignBuilder:
    """An integer design built one label at a time, never leaving the feasible set.

    Starts with the pairs fixed in. ``fits(p)`` says whether one more label on candidate p keeps
    every constraint; ``add(p)`` adds it. Every constraint is monotone (a pair that does not fit
    now never fits later), which lazy greedy relies on.
    """

    def __init__(self, instance: Instance, budget: float):
        cand = instance.candidates
        self.instance = instance
        self.budget = float(budget)
        self.counts = np.zeros(len(cand), dtype=np.int64)
        self.spent = 0.0
        self._cost = cand.cost
        self._unit = cand.unit_cost
        self._j, self._k, self._prompt, self._upper = cand.j, cand.k, cand.prompt, cand.upper
        self._prompt_left = instance.prompt_caps().tolist()
        cap = instance.completion_cap()
        self._completion_left = None if math.isinf(cap) else [cap] * instance.n_completions
        self._group_left = [g.budget for g in instance.groups]
        self._prompt_groups: list[list[int]] | None = None
        if instance.groups:
            self._prompt_groups = [[] for _ in range(instance.n_prompts)]
            for gi, group in enumerate(instance.groups):
                for i in group.prompts.tolist():
                    self._prompt_groups[i].append(gi)
        # coverage minimums: labels still owed to each prompt and group
        self._prompt_need = instance.prompt_minimums().tolist()
        self._group_need = [float(g.min_pairs) for g in instance.groups]
        self._minimums = any(self._prompt_need) or any(self._group_need)
        for p in np.flatnonzero(cand.lower > 0).tolist():
            self.add(int(p))  # feasibility of the fixed pairs is checked by Instance.check_fixed_feasible

    @property
    def remaining(self) -> float:
        return self.budget - self.spent

    def fits(self, p: int) -> bool:
        """Whether one more label on candidate p keeps every constraint."""
        cost = 1.0 if self._unit else float(self._cost[p])
        if self.spent + cost > self.budget + _TOL * max(1.0, self.budget):
            return False
        if self.counts[p] >= self._upper[p]:
            return False
        i = int(self._prompt[p])
        if self._prompt_left[i] < 1:
            return False
        if self._completion_left is not None and (
            self._completion_left[int(self._j[p])] < 1 or self._completion_left[int(self._k[p])] < 1
        ):
            return False
        if self._prompt_groups is not None:
            for g in self._prompt_groups[i]:
                if self._group_left[g] < cost - _TOL:
                    return False
        return True

    def add(self, p: int) -> None:
        """One more label on candidate p (the caller checked :meth:`fits`)."""
        cost = 1.0 if self._unit else float(self._cost[p])
        self.counts[p] += 1
        self.spent += cost
        i = int(self._prompt[p])
        self._prompt_left[i] -= 1
        if self._minimums:
            self._prompt_need[i] -= 1
            if self._prompt_groups is not None:
                for g in self._prompt_groups[i]:
                    self._group_need[g] -= 1
        if self._completion_left is not None:
            self._completion_left[int(self._j[p])] -= 1
            self._completion_left[int(self._k[p])] -= 1
        if self._prompt_groups is not None:
            for g in self._prompt_groups[i]:
                self._group_left[g] -= cost

    def removable(self, p: int) -> bool:
        """Whether one label of candidate p can be taken away (it has one above its lower bound,
        and its prompt and groups keep their coverage minimums)."""
        if not self.counts[p] > self.instance.candidates.lower[p]:
            return False
        if self._minimums:
            i = int(self._prompt[p])
            if self._prompt_need[i] >= 0:
                return False
            if self._prompt_groups is not None and any(self._group_need[g] >= 0 for g in self._prompt_groups[i]):
                return False
        return True

    def short(self) -> bool:
        """Whether some coverage minimum is not met yet."""
        return self._minimums and (any(v > 0 for v in self._prompt_need)
                                   or any(v > 0 for v in self._group_need))

    def covers(self, p: int) -> bool:
        """Whether a label on p counts towards a minimum not met yet."""
        if not self._minimums:
            return False
        i = int(self._prompt[p])
        if self._prompt_need[i] > 0:
            return True
        return self._prompt_groups is not None and any(self._group_need[g] > 0 for g in self._prompt_groups[i])

    def cover(self, order: np.ndarray) -> bool:
        """Meet the coverage minimums first: labels on the pairs of ``order`` (best first) that
        count towards a minimum not met yet, prompts' minimums before groups'. Returns whether
        every minimum is met (when not, :func:`integer_point` finds a design that meets them)."""
        if not self.short():
            return True
        order = np.asarray(order, dtype=np.int64).tolist()
        for pass_groups in (False, True):
            for p in order:
                i = int(self._prompt[p])
                while (self._prompt_need[i] > 0 or (pass_groups and self.covers(p))) and self.fits(p):
                    self.add(p)
                if not self.short():
                    return True
        return not self.short()

    def remove(self, p: int) -> None:
        """One label less on candidate p (the caller checked :meth:`removable`, or puts a label
        back where a minimum needs it)."""
        cost = 1.0 if self._unit else float(self._cost[p])
        self.counts[p] -= 1
        self.spent -= cost
        i = int(self._prompt[p])
        self._prompt_left[i] += 1
        if self._minimums:
            self._prompt_need[i] += 1
            if self._prompt_groups is not None:
                for g in self._prompt_groups[i]:
                    self._group_need[g] += 1
        if self._completion_left is not None:
            self._completion_left[int(self._j[p])] += 1
            self._completion_left[int(self._k[p])] += 1
        if self._prompt_groups is not None:
            for g in self._prompt_groups[i]:
                self._group_left[g] += cost

    def reset_to(self, counts: np.ndarray) -> None:
        """Hold the integer design ``counts`` (feasible) instead."""
        other = DesignBuilder.from_counts(self.instance, self.budget, counts, check_minimums=False)
        self.__dict__.update(other.__dict__)

    @classmethod
    def from_counts(cls, instance: Instance, budget: float, counts: np.ndarray,
                    check_minimums: bool = True) -> "DesignBuilder":
        """The builder holding the integer design ``counts``; raises ValueError if it breaks a
        constraint (or leaves out a pair fixed in)."""
        design = cls(instance, budget)
        counts = np.asarray(counts)
        if np.any(counts < design.counts) or np.any(counts != np.round(counts)):
            raise ValueError("the design is not integral or leaves out a pair fixed in")
        for p in np.flatnonzero(counts > design.counts).tolist():
            for _ in range(int(counts[p] - design.counts[p])):
                if not design.fits(p):
                    raise ValueError(f"the design breaks a constraint at candidate pair {p}")
                design.add(p)
        if check_minimums and design.short():
            raise ValueError("the design does not meet the coverage minimums")
        return design

    def open_mask(self) -> np.ndarray:
        """For every candidate, whether one more label fits now (vectorised :meth:`fits`)."""
        cand = self.instance.candidates
        # the same floating-point expressions as fits(), so that the two never disagree
        ok = (self.counts < self._upper) & ~(self.spent + self._cost > self.budget + _TOL * max(1.0, self.budget))
        ok &= np.asarray(self._prompt_left)[self._prompt] >= 1
        if self._completion_left is not None:
            left = np.asarray(self._completion_left)
            ok &= (left[self._j] >= 1) & (left[self._k] >= 1)
        for gi, group in enumerate(self.instance.groups):
            in_group = np.isin(cand.prompt, group.prompts)
            ok &= ~in_group | ~(self._group_left[gi] < self._cost - _TOL)
        return ok

    def full(self) -> bool:
        """True when not even the cheapest label fits the remaining budget."""
        cheapest = 1.0 if self._unit else float(self._cost.min(initial=math.inf))
        return self.remaining < cheapest - _TOL * max(1.0, self.budget)

    def fill(self, order: np.ndarray, deadline=None) -> bool:
        """Add the pairs of ``order`` in turn wherever they fit, in passes while labels are still
        added (a pair may take up to u_p labels). Returns False if ``deadline()`` stopped it."""
        if self.short() and not self.cover(order):
            self.reset_to(integer_point(linear_constraints(self.instance, self.budget), order))
        order = np.asarray(order, dtype=np.int64).tolist()
        while True:
            added = False
            for step, p in enumerate(order):
                if step % 4096 == 0 and deadline is not None and deadline():
                    return False
                if self.fits(p):
                    self.add(p)
                    added = True
                    if self.full():
                        return True
            if not added or int(self._upper.max(initial=1)) <= 1:
                return True


@dataclass(frozen=True, eq=False)
class Polytope:
    """The feasible set of designs, the one encoding of the constraints (docs/design.md):

        row_lower <= A n <= b,   lower <= n <= upper,   n integer (or real, relaxed).

    Rows: the budget (costs), one row per prompt with a cap or a coverage minimum
    (``min_pairs_per_prompt``), every per-completion cap (if any), every group budget, and one
    row per group with a coverage minimum (``min_pairs``). ``A >= 0`` is sparse (CSR), ``b`` is
    ``inf`` and ``row_lower`` ``-inf`` where a row has no such side, and ``names[r]`` says what
    row r is. Feasibility is checked in one place (:meth:`violations`, one tolerance policy).
    """

    A: sp.csr_matrix
    b: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    names: tuple[str, ...]
    prompt_row: np.ndarray  # the row of each prompt's cap, -1 where uncapped
    row_lower: np.ndarray | None = None  # -inf where a row has no lower side (None: no row has one)

    @property
    def has_row_lower(self) -> bool:
        return self.row_lower is not None and bool(np.isfinite(self.row_lower).any())

    def lower_sides(self) -> np.ndarray:
        """``row_lower`` with ``-inf`` everywhere when no row has one."""
        return np.full(self.n_rows, -np.inf) if self.row_lower is None else self.row_lower

    @property
    def n_rows(self) -> int:
        return int(self.b.shape[0])

    def violations(self, n: np.ndarray, integral: bool = True) -> list[str]:
        """Every constraint the design ``n`` breaks, in words (empty: feasible). The one
        tolerance policy: a row or bound may be exceeded by ``_TOL`` times max(1, |its bound|)."""
        n = np.asarray(n, dtype=np.float64)
        P = self.lower.shape[0]
        if n.shape != (P,):
            return [f"the design has {n.shape} entries, expected one per candidate pair ({P})"]
        found: list[str] = []
        if integral and np.any(n != np.round(n)):
            found.append("some n_p are not integers")
        low = n < self.lower - _TOL
        if np.any(low):
            found.append(f"{int(low.sum())} pairs are below their lower bound (pairs fixed in missing)")
        if np.any(n > self.upper + _TOL * np.maximum(1.0, self.upper)) or np.any(n < -_TOL):
            found.append("some n_p are outside 0..max_labels_per_pair")
        used = self.A @ n
        over = np.flatnonzero(used > self.b + _TOL * np.maximum(1.0, np.abs(self.b)))
        for r in over[:3].tolist():
            found.append(f"{self.names[r]}: {used[r]:g} > {self.b[r]:g}")
        if over.size > 3:
            found.append(f"... {over.size - 3} more rows broken")
        if self.has_row_lower:
            low_rows = self.lower_sides()
            under = np.flatnonzero(used < low_rows - _TOL * np.maximum(1.0, np.abs(np.nan_to_num(low_rows))))
            for r in under[:3].tolist():
                found.append(f"{self.names[r]}: {used[r]:g} < {low_rows[r]:g}")
            if under.size > 3:
                found.append(f"... {under.size - 3} more minimums not met")
        return found

    def check_feasible(self) -> None:
        """Raise :class:`InfeasibleError` when no design (even fractional) meets every row: the
        pairs fixed in break an upper side, or the coverage minimums cannot be met (an LP)."""
        self.check_feasible_start()
        if not self.has_row_lower:
            return
        from scipy.optimize import linprog

        finite_up = np.isfinite(self.b)
        low = self.lower_sides()
        finite_low = np.isfinite(low)
        A_ub = sp.vstack([self.A[finite_up], -self.A[finite_low]], format="csr")
        b_ub = np.r_[self.b[finite_up], -low[finite_low]]
        res = linprog(np.zeros(self.lower.shape[0]), A_ub=A_ub, b_ub=b_ub,
                      bounds=np.c_[self.lower, self.upper], method="highs")
        if res.status == 2:
            short = [self.names[r] for r in np.flatnonzero(finite_low)]
            raise InfeasibleError("the coverage minimums cannot be met within the budget, caps and "
                                  f"candidate pairs ({', '.join(short[:3])}"
                                  + (", ..." if len(short) > 3 else "") + ")")

    def restrict(self, lower: np.ndarray, upper: np.ndarray) -> "Polytope":
        """The same rows over the box ``lower <= n <= upper`` (a branch-and-bound node)."""
        return dataclasses.replace(self, lower=np.asarray(lower, dtype=np.float64),
                                   upper=np.asarray(upper, dtype=np.float64))

    def check_feasible_start(self) -> None:
        """Raise :class:`InfeasibleError` naming the first row that the lower bounds alone (the
        pairs fixed in) break."""
        used = self.A @ self.lower
        over = np.flatnonzero(used > self.b + _TOL * np.maximum(1.0, np.abs(self.b)))
        if over.size:
            r = int(over[0])
            verb = "cost" if self.names[r].startswith(("the budget", "the budget of")) else "use"
            raise InfeasibleError(f"the pairs fixed in {verb} {used[r]:g}, more than {self.names[r]} "
                                  f"{self.b[r]:g}")


LinearConstraints = Polytope  # the former name


def linear_constraints(instance: Instance, budget: float | None = None) -> Polytope:
    """Build the :class:`Polytope` for an instance (and optionally another budget)."""
    cand = instance.candidates
    budget = instance.budget if budget is None else float(budget)
    P = len(cand)
    blocks, rhs, names = [sp.csr_matrix(cand.cost.reshape(1, -1))], [np.array([budget])], ["the budget"]
    lows = [np.array([-np.inf])]
    caps = instance.prompt_caps()
    minimums = instance.prompt_minimums()
    finite = np.flatnonzero(np.isfinite(caps) | (minimums > 0))
    prompt_row = np.full(instance.n_prompts, -1)
    prompt_row[finite] = 1 + np.arange(finite.size)
    if finite.size:
        row_of_prompt = np.full(instance.n_prompts, -1)
        row_of_prompt[finite] = np.arange(finite.size)
        keep = row_of_prompt[cand.prompt] >= 0
        cols = np.flatnonzero(keep)
        blocks.append(sp.csr_matrix((np.ones(cols.size), (row_of_prompt[cand.prompt[cols]], cols)),
                                    shape=(finite.size, P)))
        rhs.append(caps[finite])
        lows.append(np.where(minimums[finite] > 0, minimums[finite], -np.inf))
        names += [f"the {'cap' if np.isfinite(caps[i]) else 'minimum'} of prompt '{instance.prompt_ids[i]}'"
                  for i in finite]
    if math.isfinite(instance.completion_cap()):
        touched = np.unique(np.concatenate([cand.j, cand.k]))
        row = np.full(instance.n_completions, -1)
        row[touched] = np.arange(touched.size)
        cols = np.arange(P)
        blocks.append(sp.csr_matrix((np.ones(2 * P), (np.concatenate([row[cand.j], row[cand.k]]),
                                                      np.concatenate([cols, cols]))),
                                    shape=(touched.size, P)))
        rhs.append(np.full(touched.size, instance.completion_cap()))
        lows.append(np.full(touched.size, -np.inf))
        names += [f"the cap of completion {instance.row_name(int(r))}" for r in touched]
    for group in instance.groups:
        in_group = np.isin(cand.prompt, group.prompts)
        blocks.append(sp.csr_matrix((cand.cost * in_group).reshape(1, -1)))
        rhs.append(np.array([group.budget]))
        lows.append(np.array([-np.inf]))
        names.append(f"the budget of group '{group.name}'")
    for group in instance.groups:
        if group.min_pairs > 0:
            in_group = np.isin(cand.prompt, group.prompts)
            blocks.append(sp.csr_matrix(in_group.astype(np.float64).reshape(1, -1)))
            rhs.append(np.array([np.inf]))
            lows.append(np.array([float(group.min_pairs)]))
            names.append(f"the minimum of group '{group.name}'")
    A = sp.vstack(blocks, format="csr")
    A.eliminate_zeros()
    row_lower = np.concatenate(lows)
    return Polytope(A=A, b=np.concatenate(rhs), lower=cand.lower.astype(np.float64),
                    upper=cand.upper.astype(np.float64), names=tuple(names),
                    prompt_row=prompt_row,
                    row_lower=row_lower if np.isfinite(row_lower).any() else None)


def shrink_into(lc: Polytope, n: np.ndarray) -> np.ndarray:
    """A point pulled into the polytope: clipped to the bounds, then the part above the lower
    bounds shrunk until every row ``A n <= b`` holds (A >= 0, so the result is feasible).
    Meant for points that are feasible up to rounding or a solver's tolerances."""
    n = np.clip(n, lc.lower, lc.upper)
    extra = n - lc.lower
    extra[extra < 1e-9] = 0.0  # a solver's crumbs must not block a row that is full at its bounds
    use = lc.A @ extra
    room = lc.b - lc.A @ lc.lower
    over = np.flatnonzero(use > room)
    if over.size:  # scale down, row by row, only the pairs in the rows that overflow
        rows = lc.A[over].tocoo()
        factor = np.ones_like(extra)
        ratio = np.maximum(room[over], 0.0) / use[over] * (1 - 1e-12)
        np.minimum.at(factor, rows.col, ratio[rows.row])
        extra *= factor
    return lc.lower + extra


def integer_point(polytope: Polytope, order: np.ndarray) -> np.ndarray:
    """An integer design in the polytope (a MILP in HiGHS), preferring the pairs early in
    ``order``: where greedy covering cannot meet the coverage minimums (caps, costs or budget
    in the way). Raises :class:`InfeasibleError` when no integer design meets every row."""
    from scipy.optimize import LinearConstraint, milp

    P = polytope.lower.shape[0]
    order = np.asarray(order, dtype=np.int64)
    preference = np.zeros(P)
    preference[order] = np.linspace(1.0, 0.5, order.size) if order.size else 0.0
    res = milp(-preference, integrality=np.ones(P),
               bounds=(polytope.lower, polytope.upper),
               constraints=LinearConstraint(polytope.A, polytope.lower_sides(), polytope.b))
    if res.status == 2 or res.x is None:
        raise InfeasibleError("no integer design meets the coverage minimums within the budget "
                              "and caps")
    return np.round(res.x).astype(np.int64)
