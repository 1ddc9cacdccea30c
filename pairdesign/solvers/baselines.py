"""The designs people use today, as methods, so that benchmarks can beat them honestly.

Each baseline ranks the candidate pairs and takes them in that order wherever they keep every
constraint (:meth:`~pairdesign.polytope.DesignBuilder.fill`), until the budget is spent:

- ``random``: a uniformly random order (seeded).
- ``first-k``: all pairs among the first k completions of each prompt, prompts in file order.
- ``best-vs-worst``: per prompt the pair of largest score gap (best vs worst, "max-min"), then the
  next largest, visiting prompts in file order, round by round.
- ``ultrafeedback``: per prompt the best completion by score against one other drawn at random
  (the UltraFeedback binarisation), round by round.
- ``max-margin``: largest |score_j - score_k| over all pairs.
- ``min-margin``: sigmoid(score_j - score_k) nearest 1/2, i.e. smallest |score gap| (uncertainty).
- ``max-distance``: largest feature distance |phi_j - phi_k|.

On a candidate pool too large for memory (:mod:`pairdesign.outofcore`) each baseline gives its
ranking block by block (:meth:`_Baseline.block_keys`: sort keys from the block's own prompts)
and the pool fills the budget in that order (:func:`pairdesign.blockpool.fill_block`): the same
design as in memory for the deterministic baselines; ``random`` and ``ultrafeedback`` draw their
random numbers block by block there (the same distribution, another draw than in memory).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from .base import Context, NoOptions, Outcome
from .result import TerminationCondition


def _round_robin(prompt: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Candidates ordered by (rank within prompt, prompt): round 1 over all prompts, then round 2."""
    return np.lexsort((prompt, rank))


def _rank_within_prompt(prompt: np.ndarray, key: np.ndarray) -> np.ndarray:
    """0 for the pair of smallest key in its prompt, 1 for the next, ..."""
    order = np.lexsort((key, prompt))
    rank = np.empty(prompt.shape[0], dtype=np.int64)
    sorted_prompt = prompt[order]
    starts = np.flatnonzero(np.r_[True, sorted_prompt[1:] != sorted_prompt[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, prompt.shape[0]]))
    rank[order] = np.arange(prompt.shape[0]) - first
    return rank


class _Baseline:
    """Rank the candidates (:meth:`order`), then fill the budget in that order."""

    name = ""
    needs_scores = False
    Options = NoOptions

    def order(self, ctx: Context) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define order()")

    def block_keys(self, view, options, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
        """The ranking on one block of whole prompts (:class:`~pairdesign.blockpool.BlockView`):
        the pairs taken and their sort keys, most significant first (ties: the candidates' order)."""
        raise NotImplementedError(f"{type(self).__name__} has no ranking by blocks")

    def run(self, ctx: Context) -> Outcome:
        design = ctx.builder()
        order = self.order(ctx)
        finished = design.fill(order, deadline=ctx.out_of_time)
        ctx.say(f"{self.name}: {int(design.counts.sum())} labels, budget used {design.spent:g}")
        return Outcome(design.counts, TerminationCondition.completed if finished
                       else TerminationCondition.time_limit)

    @staticmethod
    def score_gap(ctx: Context) -> np.ndarray:
        cand, scores = ctx.pool.pairs, ctx.instance.scores
        return scores[cand.j] - scores[cand.k]


class RandomPairs(_Baseline):
    name = "random"

    def order(self, ctx: Context) -> np.ndarray:
        return ctx.rng.permutation(len(ctx.pool.pairs))

    def block_keys(self, view, options, rng):
        return np.arange(view.j.size), [rng.random(view.j.size)]


class FirstK(_Baseline):
    name = "first-k"

    @dataclass(frozen=True)
    class Options:
        k: int = 4

        def check(self) -> None:
            if self.k < 2:
                raise OptionError(f"option 'k' of method 'first-k' must be >= 2, got {self.k}")

    def order(self, ctx: Context) -> np.ndarray:
        inst, cand = ctx.instance, ctx.pool.pairs
        start = inst.prompt_offsets[cand.prompt]
        local_j, local_k = cand.j - start, cand.k - start
        keep = np.flatnonzero((local_j < ctx.options.k) & (local_k < ctx.options.k))
        # prompts in order; within a prompt, pairs in local order (0,1), (0,2), ...
        lo, hi = np.minimum(local_j, local_k)[keep], np.maximum(local_j, local_k)[keep]
        return keep[np.lexsort((hi, lo, cand.prompt[keep]))]

    def block_keys(self, view, options, rng):
        start = view.offsets[view.local_prompt]
        local_j, local_k = view.jl - start, view.kl - start
        keep = np.flatnonzero((local_j < options.k) & (local_k < options.k))
        return keep, [view.prompt[keep]]


class BestVsWorst(_Baseline):
    name = "best-vs-worst"
    needs_scores = True

    def order(self, ctx: Context) -> np.ndarray:
        cand = ctx.pool.pairs
        rank = _rank_within_prompt(cand.prompt, -np.abs(self.score_gap(ctx)))
        return _round_robin(cand.prompt, rank)

    def block_keys(self, view, options, rng):
        rank = _rank_within_prompt(view.prompt, -np.abs(view.score_gap()))
        return np.arange(view.j.size), [rank, view.prompt]


class UltraFeedback(_Baseline):
    name = "ultrafeedback"
    needs_scores = True

    def order(self, ctx: Context) -> np.ndarray:
        inst, cand = ctx.instance, ctx.pool.pairs
        # the best completion of each prompt (the first on ties)
        by_score = np.lexsort((-inst.scores, inst.prompt_of_row))
        best = by_score[inst.prompt_offsets[:-1]]
        with_best = (cand.j == best[cand.prompt]) | (cand.k == best[cand.prompt])
        candidates = np.flatnonzero(with_best)
        # a random other completion each round: random ranks within the prompt
        rank = _rank_within_prompt(cand.prompt[candidates], ctx.rng.random(candidates.size))
        return candidates[_round_robin(cand.prompt[candidates], rank)]

    def block_keys(self, view, options, rng):
        by_score = np.lexsort((-view.scores, view.row_prompt))
        best = by_score[view.offsets[:-1]]
        local = view.local_prompt
        candidates = np.flatnonzero((view.jl == best[local]) | (view.kl == best[local]))
        rank = _rank_within_prompt(view.prompt[candidates], rng.random(candidates.size))
        return candidates, [rank, view.prompt[candidates]]


class MaxMargin(_Baseline):
    name = "max-margin"
    needs_scores = True

    def order(self, ctx: Context) -> np.ndarray:
        return np.argsort(-np.abs(self.score_gap(ctx)), kind="stable")

    def block_keys(self, view, options, rng):
        return np.arange(view.j.size), [-np.abs(view.score_gap())]


class MinMargin(_Baseline):
    name = "min-margin"
    needs_scores = True

    def order(self, ctx: Context) -> np.ndarray:
        # |sigmoid(gap) - 1/2| is increasing in |gap|
        return np.argsort(np.abs(self.score_gap(ctx)), kind="stable")

    def block_keys(self, view, options, rng):
        return np.arange(view.j.size), [np.abs(view.score_gap())]


class MaxDistance(_Baseline):
    name = "max-distance"

    def order(self, ctx: Context) -> np.ndarray:
        (distance,) = ctx.pool.quadratic_forms([np.eye(ctx.instance.dim)])
        return np.argsort(-distance, kind="stable")

    def block_keys(self, view, options, rng):
        from ..information import pair_quadratic_forms

        return np.arange(view.j.size), [-pair_quadratic_forms(view.phi, view.jl, view.kl)]


BASELINES = ("random", "first-k", "best-vs-worst", "ultrafeedback", "max-margin", "min-margin", "max-distance")


@dataclass(frozen=True)
class BaselineRanking:
    """A baseline's ranking as a fill pass runs it on the workers (picklable): the method, its
    options, and the seed of its random numbers (block b draws from ``default_rng([seed, b])``)."""

    method: str
    options: object
    seed: int

    def block_keys(self, view, block: int) -> tuple[np.ndarray, list[np.ndarray]]:
        from .base import method_class

        rng = np.random.default_rng([self.seed, block])
        return method_class(self.method)().block_keys(view, self.options, rng)
