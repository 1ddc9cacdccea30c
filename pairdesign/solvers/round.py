"""The methods ``round`` (relaxation, rounding, local search) and ``local-search``.

``round``: solve the convex relaxation to a certified tolerance (its bound U holds for every
integer design), round its fractional design x by every scheme of :mod:`.rounding` (``largest``;
``efficient`` where repeats are allowed; ``draws`` seeded pipage draws), keep the best, and improve
it by exchanges (:mod:`.local_search`) for the rest of the time limit. ``local-search``: the same
exchanges from a given start: ``greedy`` (default), ``round`` (the rounded design, without its own
local search), or a design file. Both report the relaxation's certified bound U and the gap
``U - f``; the status is ``optimal`` only when that gap is within ``tol`` (D: a D-efficiency loss
``1 - exp(-(U - f)/d)``; A, L: a relative gap).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OptionError
from .base import Context, Outcome, check_stopping, finish_with_bound
from .frank_wolfe import relax_for_bound
from .local_search import improve
from .rounding import rounded_designs


class Round:
    name = "round"
    needs_scores = False

    @dataclass(frozen=True)
    class Options:
        tol: float = 1e-6  # "optimal" when the gap to the relaxation's bound is within tol
        relax_tol: float | None = None  # the relaxation's tolerance (None: 1e-6, 1e-4 when large)
        draws: int = 8  # seeded pipage draws
        local_search: bool = True
        shortlist: int = 256  # candidates screened per exchange round (large instances)
        removals: int = 64  # chosen pairs screened per exchange round (large instances)

        def check(self) -> None:
            check_stopping("round", self.tol, 1)
            if self.relax_tol is not None and not 0 < self.relax_tol < 1:
                raise OptionError(f"option 'relax_tol' of method 'round' must be in (0, 1), got {self.relax_tol}")
            if self.draws < 0:
                raise OptionError(f"option 'draws' of method 'round' must be >= 0, got {self.draws}")
            if self.shortlist < 1 or self.removals < 1:
                raise OptionError("options 'shortlist' and 'removals' of method 'round' must be >= 1")

    def run(self, ctx: Context) -> Outcome:
        opts = ctx.options
        # with a time limit, the relaxation may take at most 60% of it: rounding needs the rest
        relaxed = relax_for_bound(ctx.phase(opts, ctx.share_of_time_left(0.6)), opts.relax_tol)
        design = rounded_designs(ctx, relaxed.n, opts.draws)
        ctx.incumbent = design
        stopped = False
        if opts.local_search:
            stats = improve(ctx, design, shortlist=opts.shortlist, removals=opts.removals)
            stopped = stats.stopped_by_time
        return finish_with_bound(ctx, design, relaxed, opts.tol, stopped or ctx.out_of_time(), "native", "round")
