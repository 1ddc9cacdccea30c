"""The linear constraints of docs/design.md section 4, checked for a whole design or kept pair by pair.

    budget:          sum_p c_p n_p <= B
    per prompt:      l_i <= sum_{p in prompt i} n_p <= m_i
    per completion:  sum_{p touching (i,j)} n_p <= r
    groups:          sum_{p in G} c_p n_p <= B_G,   sum_{p in G} n_p >= m_G
    bounds:          lower_p <= n_p <= u_p, integer (lower_p = 1 for pairs fixed in)

:func:`linear_constraints` turns an instance's fields into these rows (the only place that
does); :class:`Polytope` holds them, checks feasibility under one tolerance policy and is read by
everything else, the incremental :class:`DesignBuilder` of greedy and rounding among them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property

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
    """An integer design built one label at a time, never leaving the polytope's upper sides.

    Generic over the :class:`Polytope`'s rows: a row r is a set of pairs with coefficients
    ``A[r, p] >= 0`` and sides ``row_lower[r] <= sum_p A[r, p] n_p <= b[r]``; the builder keeps
    the row activities ``A n`` and touches only the rows of the pair it changes (O(rows of p) per
    label). Starts at the box's lower bounds (the pairs fixed in). ``fits(p)`` says whether one
    more label on candidate p keeps every upper side (row and box); ``add(p)`` adds it. Every
    upper side is monotone (a pair that does not fit now never fits later), which lazy greedy
    relies on. The lower sides (coverage minimums) are met by :meth:`cover` (or
    :func:`integer_point`) and kept by :meth:`removable`. The tolerance is the polytope's one
    policy: a row may exceed its side by ``_TOL`` times max(1, |side|).
    """

    def __init__(self, polytope: "Polytope"):
        self.polytope = polytope
        lookup = polytope.pair_rows
        self._ptr, self._rows, self._coef = lookup.indptr, lookup.indices, lookup.data
        self._upper = polytope.upper
        self._limit = polytope.upper_limits.tolist()
        self._need = polytope.lower_limits.tolist()
        self._minimums = polytope.has_row_lower
        self._rank = polytope.minimum_ranks.tolist()
        self._set(np.round(polytope.lower).astype(np.int64))

    def _set(self, counts: np.ndarray) -> None:
        """Hold ``counts`` (row activities recomputed from scratch)."""
        self.counts = counts
        used = self.polytope.A @ counts.astype(np.float64)
        self._used = used.tolist()
        self._unmet = int(np.count_nonzero(used < self.polytope.lower_limits))

    @property
    def budget(self) -> float:
        return float(self.polytope.b[0])

    @property
    def spent(self) -> float:
        """The budget row's activity ``sum_p c_p n_p``."""
        return self._used[0]

    @property
    def remaining(self) -> float:
        return self.budget - self.spent

    def _of(self, p: int) -> tuple[list, list]:
        """The rows of pair p and its coefficients in them."""
        s, e = self._ptr[p], self._ptr[p + 1]
        return self._rows[s:e].tolist(), self._coef[s:e].tolist()

    def fits(self, p: int) -> bool:
        """Whether one more label on candidate p keeps every upper side."""
        if self.counts[p] >= self._upper[p]:
            return False
        used, limit = self._used, self._limit
        rows, coef = self._of(p)
        for r, a in zip(rows, coef):
            if used[r] + a > limit[r]:
                return False
        return True

    def add(self, p: int) -> None:
        """One more label on candidate p (the caller checked :meth:`fits`)."""
        self.counts[p] += 1
        used, need = self._used, self._need
        rows, coef = self._of(p)
        for r, a in zip(rows, coef):
            u = used[r]
            used[r] = u + a
            if u < need[r] <= u + a:
                self._unmet -= 1

    def remove(self, p: int) -> None:
        """One label less on candidate p (the caller checked :meth:`removable`, or puts a label
        back where a minimum needs it)."""
        self.counts[p] -= 1
        used, need = self._used, self._need
        rows, coef = self._of(p)
        for r, a in zip(rows, coef):
            u = used[r]
            used[r] = u - a
            if u - a < need[r] <= u:
                self._unmet += 1

    def removable(self, p: int) -> bool:
        """Whether one label of candidate p can be taken away (it has one above its lower bound,
        and every row of p keeps its lower side)."""
        if not self.counts[p] > self.polytope.lower[p]:
            return False
        if self._minimums:
            used, need = self._used, self._need
            rows, coef = self._of(p)
            return all(used[r] - a >= need[r] for r, a in zip(rows, coef))
        return True

    def short(self) -> bool:
        """Whether some lower side (coverage minimum) is not met yet."""
        return self._unmet > 0

    def covers(self, p: int, rank: float = math.inf) -> bool:
        """Whether a label on p counts towards a lower side not met yet (of the row families
        with a minimum up to ``rank``, in row order; every one by default)."""
        if not self._unmet:
            return False
        used, need, ranks = self._used, self._need, self._rank
        return any(used[r] < need[r] and ranks[r] <= rank for r in self._of(p)[0])

    def cover(self, order: np.ndarray) -> bool:
        """Meet the lower sides first: labels on the pairs of ``order`` (best first) that count
        towards a minimum not met yet, one pass per row family with minimums in row order
        (prompts' minimums before groups'). Returns whether every minimum is met (when not,
        :func:`integer_point` finds a design that meets them)."""
        if not self.short():
            return True
        order = np.asarray(order, dtype=np.int64).tolist()
        for rank in range(int(max((r for r in self._rank if r < math.inf), default=-1)) + 1):
            for p in order:
                while self.covers(p, rank) and self.fits(p):
                    self.add(p)
                if not self.short():
                    return True
        return not self.short()

    def reset_to(self, counts: np.ndarray) -> None:
        """Hold the integer design ``counts`` (feasible) instead."""
        self._set(np.asarray(counts, dtype=np.int64).copy())

    @classmethod
    def from_counts(cls, polytope: "Polytope", counts: np.ndarray,
                    check_minimums: bool = True) -> "DesignBuilder":
        """The builder holding the integer design ``counts``; raises ValueError naming the first
        row (or bound) it breaks."""
        counts = np.asarray(counts)
        if counts.shape != polytope.lower.shape or np.any(counts != np.round(counts)):
            raise ValueError("the design is not integral or has the wrong number of pairs")
        design = cls(polytope)
        n = np.round(counts).astype(np.int64)
        if np.any(n < design.counts):
            raise ValueError("the design leaves out a pair fixed in")
        over = np.flatnonzero(n > polytope.upper)
        if over.size:
            raise ValueError(f"the design has more labels than allowed on candidate pair {int(over[0])}")
        design._set(n)
        used = np.asarray(design._used)
        broken = np.flatnonzero(used > polytope.upper_limits)
        if broken.size:
            r = int(broken[0])
            raise ValueError(f"the design breaks {polytope.names[r]}: {used[r]:g} > {polytope.b[r]:g}")
        if check_minimums and design.short():
            r = int(np.flatnonzero(used < polytope.lower_limits)[0])
            raise ValueError(f"the design does not meet {polytope.names[r]}: "
                             f"{used[r]:g} < {polytope.lower_sides()[r]:g}")
        return design

    def open_mask(self) -> np.ndarray:
        """For every candidate, whether one more label fits now (vectorised :meth:`fits`, the
        same floating-point expressions, so that the two never disagree). Only the rows where
        the largest coefficient would not fit are scanned."""
        lc = self.polytope
        ok = self.counts < self._upper
        used = np.asarray(self._used)
        limit = lc.upper_limits
        blocking = np.flatnonzero(used + lc.row_max > limit)
        if blocking.size:
            sub = lc.A[blocking]
            rows = np.repeat(blocking, np.diff(sub.indptr))
            ok[sub.indices[used[rows] + sub.data > limit[rows]]] = False
        return ok

    def full(self) -> bool:
        """True when not even the cheapest label fits a row that every pair is in (the budget)."""
        used, limit = self._used, self._limit
        return any(used[r] + a > limit[r] for r, a in self.polytope.covering_rows)

    def fill(self, order: np.ndarray, deadline=None) -> bool:
        """Add the pairs of ``order`` in turn wherever they fit, in passes while labels are still
        added (a pair may take up to u_p labels). Returns False if ``deadline()`` stopped it."""
        if self.short() and not self.cover(order):
            self.reset_to(integer_point(self.polytope, order))
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


@dataclass(frozen=True)
class RowFamily:
    """Rows ``start:stop`` of a :class:`Polytope`, all of one kind (``"budget"``, ``"prompt"``,
    ``"completion"``, ``"group budget"``, ``"group minimum"``)."""

    kind: str
    start: int
    stop: int


@dataclass(frozen=True, eq=False)
class Polytope:
    """The feasible set of designs, the one encoding of the constraints (docs/design.md section 4):

        row_lower <= A n <= b,   lower <= n <= upper,   n integer (or real, relaxed).

    Rows, in families (:class:`RowFamily`, built by :func:`linear_constraints`, the one place
    that knows the instance's fields): the budget (costs; always row 0), one row per prompt with
    a cap or a coverage minimum (``min_pairs_per_prompt``, overridden by ``prompts[].min_pairs``),
    every per-completion cap (if any), every group budget, and one row per group with a coverage
    minimum (``min_pairs``). ``A >= 0`` is sparse (CSR), ``b`` is ``inf`` and ``row_lower``
    ``-inf`` where a row has no such side, and ``names[r]`` says what row r is. Everything else
    reads the rows: feasibility (:meth:`violations`, :meth:`check_feasible`, one tolerance
    policy), the incremental builder (:class:`DesignBuilder`), the linear oracle, the programs.
    """

    A: sp.csr_matrix
    b: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    names: tuple[str, ...]
    prompt_row: np.ndarray  # the row of each prompt's cap, -1 where uncapped
    row_lower: np.ndarray | None = None  # -inf where a row has no lower side (None: no row has one)
    families: tuple[RowFamily, ...] = ()

    @property
    def has_row_lower(self) -> bool:
        return self.row_lower is not None and bool(np.isfinite(self.row_lower).any())

    def lower_sides(self) -> np.ndarray:
        """``row_lower`` with ``-inf`` everywhere when no row has one."""
        return np.full(self.n_rows, -np.inf) if self.row_lower is None else self.row_lower

    @property
    def n_rows(self) -> int:
        return int(self.b.shape[0])

    def kinds(self) -> set[str]:
        """The kinds of row family present (each with at least one row); a polytope built
        without families is all ``"rows"`` beyond its budget."""
        if not self.families:
            return {"budget"} if self.n_rows == 1 else {"budget", "rows"}
        return {f.kind for f in self.families if f.stop > f.start}

    # ---- the one tolerance policy: a side may be missed by _TOL times max(1, |side|)
    @cached_property
    def upper_limits(self) -> np.ndarray:
        """``b + _TOL max(1, |b|)``: a row is broken where ``A n`` exceeds this."""
        return self.b + _TOL * np.maximum(1.0, np.abs(self.b))

    @cached_property
    def lower_limits(self) -> np.ndarray:
        """``row_lower - _TOL max(1, |row_lower|)`` (``-inf`` where no lower side): a minimum is
        not met where ``A n`` is below this."""
        low = self.lower_sides()
        return low - _TOL * np.maximum(1.0, np.abs(np.nan_to_num(low)))

    # ---- what the incremental builder reads (computed once per polytope)
    @cached_property
    def pair_rows(self) -> sp.csr_matrix:
        """``A^T`` in CSR: the rows of each pair and its coefficients in them."""
        return sp.csr_matrix(self.A.T)

    @cached_property
    def row_max(self) -> np.ndarray:
        """The largest coefficient of each row (0 for an empty row)."""
        return np.asarray(self.A.max(axis=1).todense()).ravel() if self.A.shape[1] else np.zeros(self.n_rows)

    @cached_property
    def covering_rows(self) -> tuple[tuple[int, float], ...]:
        """``(r, min_p A[r, p])`` for every row that every pair is in (the budget): when not even
        the smallest coefficient fits such a row, no label fits."""
        P = self.A.shape[1]
        full = np.flatnonzero(np.diff(self.A.indptr) == P)
        return tuple((int(r), float(self.A.data[self.A.indptr[r]:self.A.indptr[r + 1]].min(initial=np.inf)))
                     for r in full)

    @cached_property
    def minimum_ranks(self) -> np.ndarray:
        """For each row, the rank (0, 1, ...) of its family among the families with a lower side,
        in row order (``inf`` for a family without): :meth:`DesignBuilder.cover` meets the
        minimums family by family (prompts' before groups')."""
        ranks = np.full(self.n_rows, np.inf)
        low = self.lower_sides()
        rank = 0
        for family in self.families:
            if np.isfinite(low[family.start:family.stop]).any():
                ranks[family.start:family.stop] = rank
                rank += 1
        return ranks

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
        over = np.flatnonzero(used > self.upper_limits)
        for r in over[:3].tolist():
            found.append(f"{self.names[r]}: {used[r]:g} > {self.b[r]:g}")
        if over.size > 3:
            found.append(f"... {over.size - 3} more rows broken")
        if self.has_row_lower:
            under = np.flatnonzero(used < self.lower_limits)
            for r in under[:3].tolist():
                found.append(f"{self.names[r]}: {used[r]:g} < {self.row_lower[r]:g}")
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
        pairs fixed in) break, under the one tolerance policy."""
        r = self.first_broken_row(self.lower)
        if r is not None:
            used = float((self.A[r] @ self.lower)[0])
            verb = "cost" if self.names[r].startswith("the budget") else "use"
            raise InfeasibleError(f"{self.names[r]} is {self.b[r]:g}; the pairs fixed in {verb} "
                                  f"{used:g}")

    def first_broken_row(self, n: np.ndarray) -> int | None:
        """The first row whose upper side ``n`` breaks (the one tolerance policy), or None."""
        over = np.flatnonzero(self.A @ n > self.upper_limits)
        return int(over[0]) if over.size else None


LinearConstraints = Polytope  # the former name


def linear_constraints(instance: Instance, budget: float | None = None) -> Polytope:
    """Build the :class:`Polytope` for an instance (and optionally another budget): the one place
    where the instance's constraint fields become rows (a new constraint family is a new block
    of rows here, with its name; everything else reads the rows)."""
    cand = instance.candidates
    budget = instance.budget if budget is None else float(budget)
    P = len(cand)
    blocks, rhs, names = [sp.csr_matrix(cand.cost.reshape(1, -1))], [np.array([budget])], ["the budget"]
    lows = [np.array([-np.inf])]
    families: list[RowFamily] = []

    def family(kind: str) -> None:
        start = families[-1].stop if families else 0
        families.append(RowFamily(kind, start, len(names)))

    family("budget")
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
    family("prompt")
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
    family("completion")
    for group in instance.groups:
        in_group = np.isin(cand.prompt, group.prompts)
        blocks.append(sp.csr_matrix((cand.cost * in_group).reshape(1, -1)))
        rhs.append(np.array([group.budget]))
        lows.append(np.array([-np.inf]))
        names.append(f"the budget of group '{group.name}'")
    family("group budget")
    for group in instance.groups:
        if group.min_pairs > 0:
            in_group = np.isin(cand.prompt, group.prompts)
            blocks.append(sp.csr_matrix(in_group.astype(np.float64).reshape(1, -1)))
            rhs.append(np.array([np.inf]))
            lows.append(np.array([float(group.min_pairs)]))
            names.append(f"the minimum of group '{group.name}'")
    family("group minimum")
    A = sp.vstack(blocks, format="csr")
    A.eliminate_zeros()
    row_lower = np.concatenate(lows)
    return Polytope(A=A, b=np.concatenate(rhs), lower=cand.lower.astype(np.float64),
                    upper=cand.upper.astype(np.float64), names=tuple(names),
                    prompt_row=prompt_row,
                    row_lower=row_lower if np.isfinite(row_lower).any() else None,
                    families=tuple(families))


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
