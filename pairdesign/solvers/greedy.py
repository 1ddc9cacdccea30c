"""Greedy designs: repeatedly add the label of largest marginal gain per unit cost.

Step t adds the feasible pair maximising ``(f(M + w_p z_p z_p^T) - f(M)) / c_p`` and updates
M^-1 by Sherman-Morrison (O(d^2), :class:`~pairdesign.information.RankOneInverse`).

Lazy evaluation (Minoux): the gains of a working set S of the most promising pairs are kept exact by
rank-one updates, and every other gain by its value at the last full evaluation, which for D is
an upper bound (log det is submodular in the labels): lazy greedy then picks exactly what plain
greedy picks. For A and L the gains may grow, so the lazy variant is a heuristic there
(``lazy=False`` recomputes every gain at every step through completions, O(N d^2 + P d) per label).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..information import (PairForms, RankOneInverse, information_matrix,
                           marginal_gains)
from ..polytope import DesignBuilder, integer_point
from .base import Context, Outcome
from .result import TerminationCondition


class Greedy:
    name = "greedy"
    needs_scores = False

    @dataclass(frozen=True)
    class Options:
        lazy: bool = True
        refresh: int = 200  # refactorise M^-1 after this many rank-one updates

        def check(self) -> None:
            from ..errors import OptionError
            if self.refresh < 1:
                raise OptionError(f"option 'refresh' of method 'greedy' must be >= 1, got {self.refresh}")

    def run(self, ctx: Context) -> Outcome:
        design = ctx.builder()
        finished = complete_greedily(ctx, design, lazy=ctx.options.lazy, refresh=ctx.options.refresh)
        return Outcome(design.counts, TerminationCondition.completed if finished
                       else TerminationCondition.time_limit)


def complete_greedily(ctx: Context, design: DesignBuilder, *, lazy: bool = True,
                      refresh: int = 200) -> bool:
    """Add labels to ``design`` greedily (largest marginal gain per unit cost) until nothing
    fits; ``design`` may already hold labels (rounding and local search complete their designs
    this way). Returns False if the time limit stopped it."""
    inst = ctx.instance
    if design.short():  # coverage minimums first, by marginal gain per cost at the start
        M = information_matrix(inst, design.counts, ctx.pool)
        ratio = marginal_gains(inst, M, ctx.criterion, pool=ctx.pool) / ctx.pool.pairs.cost
        order = np.argsort(-ratio, kind="stable")
        if not design.cover(order):
            design.reset_to(integer_point(ctx.polytope, order))
        ctx.say(f"greedy: coverage minimums met with {int(design.counts.sum())} labels")
    tracker = RankOneInverse(information_matrix(inst, design.counts, ctx.pool), ctx.criterion, refresh=refresh)
    ctx.say(f"greedy ({'lazy' if lazy else 'plain'}, criterion {ctx.criterion.name}): "
            f"{len(inst.candidates)} candidate pairs, budget {ctx.budget:g}, "
            f"{int(design.counts.sum())} labels to start from")
    finished = (_lazy if lazy else _plain)(ctx, design, tracker)
    ctx.say(f"greedy: {int(design.counts.sum())} labels, budget used {design.spent:g}, "
            f"f = {tracker.value():.6g}")
    return finished


def _lazy(ctx: Context, design: DesignBuilder, tracker: RankOneInverse) -> bool:
    """Lazy greedy over a working set S of the pairs with the largest gains.

    The gains of the pairs in S are kept exact by rank-one updates (O(|S| d) per label);
    ``bound`` is the largest gain outside S at the last refresh. For D, gains only fall, so
    while the best pair in S beats ``bound`` it is the greedy choice over all pairs; otherwise
    every gain is recomputed through completions and S rebuilt (doubling |S| if it ran short).
    """
    inst, crit = ctx.instance, ctx.criterion
    cand = ctx.pool.pairs
    pool = ctx.pool
    size = min(len(cand), max(1024, 4 * inst.dim))
    cap = max(size, (1 << 24) // max(1, inst.dim))  # |S| x d floats stay under 128 MiB
    added, refreshes = 0, 0
    while not design.full():
        if ctx.out_of_time():
            return False
        open_pairs = np.flatnonzero(design.open_mask())
        if open_pairs.size == 0:
            return True
        ratio = marginal_gains(inst, tracker.M, crit, open_pairs, pool) / cand.cost[open_pairs]
        refreshes += 1
        if open_pairs.size > size:
            part = np.argpartition(-ratio, size)
            work, bound = open_pairs[part[:size]], float(ratio[part[size:]].max())
        else:
            work, bound = open_pairs, -np.inf
        forms = PairForms(pool.features(work), cand.weight[work],
                          tracker.Minv, crit)
        cost = cand.cost[work]
        alive = np.ones(work.size, dtype=bool)
        steps = 0
        while not design.full():
            if ctx.out_of_time():
                return False
            gain = np.where(alive, forms.marginal_gains() / cost, -np.inf)
            b = int(np.argmax(gain))
            if not alive[b] or gain[b] < bound:
                break  # S ran short: refresh
            p = int(work[b])
            if not design.fits(p):
                alive[b] = False
                continue
            M_inv = tracker.Minv
            u, c = tracker.add(forms.Z[b], float(forms.weight[b]))
            forms.update(M_inv, u, c, tracker.Minv)
            design.add(p)
            added += 1
            steps += 1
            if design.counts[p] >= cand.upper[p]:
                alive[b] = False
            if steps % tracker.refresh == 0:
                forms.recompute(tracker.Minv)
            ctx.progress(lambda: f"greedy: {added} labels, {refreshes} refreshes of all gains, "
                         f"working set {work.size}, f = {tracker.value():.6g}",
                         fraction=lambda: design.spent / max(ctx.budget, 1e-12))
        if steps < 8 and size < cap:
            size = min(cap, 4 * size)
    return True

def _plain(ctx: Context, design: DesignBuilder, tracker: RankOneInverse) -> bool:
    inst = ctx.instance
    cand = ctx.pool.pairs
    added = 0
    while not design.full():
        if ctx.out_of_time():
            return False
        ratio = marginal_gains(inst, tracker.M, ctx.criterion, pool=ctx.pool) / cand.cost
        ratio[design.counts >= cand.upper] = -np.inf
        for p in np.argsort(-ratio, kind="stable").tolist():
            if ratio[p] == -np.inf:
                return True
            if design.fits(p):
                break
        else:
            return True
        z = ctx.pool.features(np.array([p]))[0]
        design.add(p)
        tracker.add(z, float(cand.weight[p]))
        added += 1
        ctx.progress(lambda: f"greedy: {added} labels, f = {tracker.value():.6g}",
                     fraction=lambda: design.spent / max(ctx.budget, 1e-12))
    return True


def greedy_design(ctx: Context) -> np.ndarray:
    """The first incumbent, as floats: the design an earlier phase handed over (``ctx.start``,
    e.g. auto's rounded design), else the greedy design (within the deadline)."""
    if ctx.start is not None:
        return np.asarray(ctx.start, dtype=np.float64).copy()

    design = ctx.builder()  # within the context's deadline: a greedy cut short is still feasible
    complete_greedily(ctx, design)
    return design.counts.astype(np.float64)
