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
from pathlib import Path

import numpy as np

from ..constraints import DesignBuilder
from ..errors import OptionError
from ..information import information_matrix
from .base import Context, Outcome, check_stopping
from .frank_wolfe import Relaxed, allowed_gap, solve_relaxation
from .local_search import improve
from .result import SolutionStatus, TerminationCondition
from . import rounding


def _value(ctx: Context, design: DesignBuilder) -> float:
    return ctx.criterion.value(information_matrix(ctx.instance, design.counts))


LARGE = 200_000  # candidate pairs from which the relaxation is solved to 1e-4 by default


def relax_for_bound(ctx: Context, tol: float | None, start: np.ndarray | None = None) -> Relaxed:
    """The relaxation, solved within the time limit (its bound is valid however far it got).

    ``tol`` is its certified tolerance; None means 1e-6, or 1e-4 from ``LARGE`` candidate pairs
    on (a D-efficiency loss of 1e-4 in the bound is far below what rounding loses there, and
    halves the time)."""
    if tol is None:
        tol = 1e-4 if len(ctx.instance.candidates) >= LARGE else 1e-6
    relaxed = solve_relaxation(ctx, tol=tol, start=start)
    ctx.say(f"relaxation: f = {relaxed.value:.10g}, certified bound {relaxed.bound:.10g} "
            f"({relaxed.termination.value})")
    return relaxed


def rounded_designs(ctx: Context, x: np.ndarray, draws: int) -> DesignBuilder:
    """Every rounding of x; returns the best (logged with each scheme's value)."""
    cand = ctx.instance.candidates
    best, best_value, best_name = None, -np.inf, ""
    schemes: list[tuple[str, object]] = [("largest", lambda: rounding.round_largest(ctx, x))]
    if int(cand.upper.max(initial=1)) > 1:
        schemes.append(("efficient", lambda: rounding.round_efficient(ctx, x)))
    for i in range(draws):
        schemes.append((f"pipage draw {i + 1}", lambda: rounding.round_pipage(ctx, x, ctx.rng)))
    for name, make in schemes:
        if best is not None and ctx.out_of_time():
            break
        design = make()  # type: ignore[operator]
        value = _value(ctx, design)
        ctx.say(f"round: {name}: f = {value:.10g}")
        if value > best_value + 1e-12 * max(1.0, abs(value)):
            best, best_value, best_name = design, value, name
    ctx.say(f"round: best rounding is {best_name} (f = {best_value:.10g})")
    assert best is not None
    return best


def _finish(ctx: Context, design: DesignBuilder, relaxed: Relaxed, tol: float, stopped: bool,
            solver: str, method: str) -> Outcome:
    value = _value(ctx, design)
    bound = max(relaxed.bound, value)  # U >= f always; max guards the last digit
    proven = bound - value <= allowed_gap(ctx.criterion, value, ctx.instance.dim, tol)
    termination = (TerminationCondition.converged if proven
                   else TerminationCondition.time_limit if stopped else TerminationCondition.completed)
    ctx.say(f"{method}: f = {value:.10g}, "
            f"bound {bound:.10g}, gap {bound - value:.3g}")
    return Outcome(design.counts.copy(), termination,
                   SolutionStatus.optimal if proven else SolutionStatus.feasible,
                   bound=bound, solver=solver)


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
        return _finish(ctx, design, relaxed, opts.tol, stopped or ctx.out_of_time(), "native", "round")


class LocalSearch:
    name = "local-search"
    needs_scores = False

    @dataclass(frozen=True)
    class Options:
        start: str = "greedy"  # greedy | round | a design file (.json or .csv)
        tol: float = 1e-6
        relax_tol: float | None = None
        draws: int = 8  # for start="round"
        shortlist: int = 256
        removals: int = 64

        def check(self) -> None:
            check_stopping("local-search", self.tol, 1)
            if self.relax_tol is not None and not 0 < self.relax_tol < 1:
                raise OptionError(f"option 'relax_tol' of method 'local-search' must be in (0, 1), got {self.relax_tol}")
            if self.start not in ("greedy", "round") and not Path(self.start).suffix.lower() in (".json", ".csv"):
                raise OptionError(f"option 'start' of method 'local-search' must be 'greedy', 'round' "
                                  f"or a design file (.json or .csv), got {self.start!r}")
            if self.shortlist < 1 or self.removals < 1:
                raise OptionError("options 'shortlist' and 'removals' of method 'local-search' must be >= 1")

    def run(self, ctx: Context) -> Outcome:
        opts = ctx.options
        relaxed = None
        if opts.start == "round":
            relaxed = relax_for_bound(ctx.phase(opts, ctx.share_of_time_left(0.5)), opts.relax_tol)
        design = self._start(ctx, relaxed)
        ctx.incumbent = design
        ctx.say(f"local-search: start ({opts.start}) f = {_value(ctx, design):.10g}")
        # with a time limit, keep a quarter of what is left for the relaxation's bound
        stats = improve(ctx, design, shortlist=opts.shortlist, removals=opts.removals,
                        deadline=ctx.share_of_time_left(0.75))
        if relaxed is None:  # the bound, warm-started at the design found
            relaxed = relax_for_bound(ctx, opts.relax_tol, start=design.counts.astype(np.float64))
        return _finish(ctx, design, relaxed, opts.tol, stats.stopped_by_time, "native", "local-search")

    @staticmethod
    def _start(ctx: Context, relaxed: Relaxed | None) -> DesignBuilder:
        opts = ctx.options
        if opts.start == "greedy":
            from .greedy import complete_greedily

            design = ctx.builder()
            complete_greedily(ctx, design)
            return design
        if opts.start == "round":
            assert relaxed is not None
            return rounded_designs(ctx, relaxed.n, opts.draws)
        from ..design import load_design
        from ..errors import DesignError

        loaded = load_design(opts.start, ctx.instance)
        if loaded.fractional:
            raise DesignError("a fractional design cannot start a local search; round it first "
                              "(method round)", source=opts.start)
        try:
            return DesignBuilder.from_counts(ctx.instance, ctx.budget, loaded.counts)
        except ValueError as exc:
            raise DesignError(f"the design does not fit this instance and budget ({exc})",
                              source=opts.start) from None
