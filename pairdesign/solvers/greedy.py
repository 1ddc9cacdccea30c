"""Greedy designs: repeatedly add the label of largest marginal gain per unit cost.

Step t adds the feasible pair maximising ``(f(M + w_p z_p z_p^T) - f(M)) / c_p`` and updates
M^-1 by Sherman-Morrison (O(d^2), :class:`~pairdesign.information.RankOneInverse`).

Lazy evaluation (Minoux): stale gains are kept in a max-heap; the top pair is re-evaluated and
taken if its fresh gain still beats the next stale one. For D, log det is submodular in the
labels, so stale gains are upper bounds and lazy greedy picks exactly what plain greedy picks.
For A and L the gains may grow, so the lazy variant is a heuristic (``lazy=False`` recomputes every
gain at every step through completions, O(N d^2 + P d) per label).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from ..information import RankOneInverse, centered_features, information_matrix, marginal_gains
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
        inst = ctx.instance
        cand = inst.candidates
        design = ctx.builder()
        tracker = RankOneInverse(information_matrix(inst, design.counts), ctx.criterion,
                                 refresh=ctx.options.refresh)
        ctx.say(f"greedy ({'lazy' if ctx.options.lazy else 'plain'}, criterion {ctx.criterion.name}): "
                f"{len(cand)} candidate pairs, budget {ctx.budget:g}, "
                f"{int(design.counts.sum())} labels fixed in")
        step = self._lazy if ctx.options.lazy else self._plain
        finished = step(ctx, design, tracker)
        ctx.say(f"greedy: {int(design.counts.sum())} labels, budget used {design.spent:g}, "
                f"f = {tracker.value():.6g}")
        return Outcome(design.counts, TerminationCondition.completed if finished
                       else TerminationCondition.time_limit)

    @staticmethod
    def _report_every(ctx: Context) -> int:
        return max(1, int(ctx.budget // 10))

    def _lazy(self, ctx: Context, design, tracker: RankOneInverse) -> bool:
        inst = ctx.instance
        cand = inst.candidates
        phi = centered_features(inst)
        cost = cand.cost
        open_pairs = np.flatnonzero(design.counts < cand.upper)
        bounds = marginal_gains(inst, tracker.M, ctx.criterion, open_pairs) / cost[open_pairs]
        heap = list(zip((-bounds).tolist(), open_pairs.tolist()))
        heapq.heapify(heap)
        report, added, evaluations = self._report_every(ctx), 0, 0
        while heap and not design.full():
            if evaluations % 64 == 0 and ctx.out_of_time():
                return False
            _, p = heapq.heappop(heap)
            if not design.fits(p):
                continue  # constraints are monotone: it will never fit again
            z = phi[cand.j[p]] - phi[cand.k[p]]
            w = float(cand.weight[p])
            fresh = tracker.marginal_gain(z, w) / float(cost[p])
            evaluations += 1
            if heap and fresh < -heap[0][0]:
                heapq.heappush(heap, (-fresh, p))
                continue
            design.add(p)
            tracker.add(z, w)
            added += 1
            if design.counts[p] < cand.upper[p]:
                heapq.heappush(heap, (-fresh, p))  # an upper bound on its next gain (D)
            if added % report == 0:
                ctx.say(f"greedy: {added} labels, {evaluations} gain evaluations, f = {tracker.value():.6g}")
        return True

    def _plain(self, ctx: Context, design, tracker: RankOneInverse) -> bool:
        inst = ctx.instance
        cand = inst.candidates
        phi = centered_features(inst)
        report, added = self._report_every(ctx), 0
        while not design.full():
            if ctx.out_of_time():
                return False
            ratio = marginal_gains(inst, tracker.M, ctx.criterion) / cand.cost
            ratio[design.counts >= cand.upper] = -np.inf
            for p in np.argsort(-ratio, kind="stable").tolist():
                if ratio[p] == -np.inf:
                    return True
                if design.fits(p):
                    break
            else:
                return True
            z = phi[cand.j[p]] - phi[cand.k[p]]
            design.add(p)
            tracker.add(z, float(cand.weight[p]))
            added += 1
            if added % report == 0:
                ctx.say(f"greedy: {added} labels, f = {tracker.value():.6g}")
        return True
