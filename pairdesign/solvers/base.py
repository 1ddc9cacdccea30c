"""What every method shares: typed options, the run context, and the registry of methods.

A method is a class with a ``name``, an ``Options`` dataclass (typed, with defaults), capability
flags (``needs_scores``), and one hook ``run(context) -> Outcome``. The front door
(:func:`pairdesign.solve`) validates the request, times the run, and builds the :class:`Result`
(objective recomputed from the instance) in a ``finally``-style path, as Pyomo's GDPopt does.
Methods are found through one registry of import paths, so heavy modules load only when needed.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol

import numpy as np

from ..polytope import DesignBuilder
from ..pool import CandidatePool, InMemoryPool
from ..errors import OptionError
from ..information import Criterion, information_matrix
from ..instance import Instance
from .result import SolutionStatus, TerminationCondition

# name -> "module:Class", in the order the CLI lists them
METHODS: dict[str, str] = {
    "greedy": "pairdesign.solvers.greedy:Greedy",
    "auto": "pairdesign.solvers.auto:Auto",
    "round": "pairdesign.solvers.round:Round",
    "local-search": "pairdesign.solvers.local_search:LocalSearch",
    "relax": "pairdesign.solvers.relax:Relax",
    "exact": "pairdesign.solvers.exact:Exact",
    "misocp": "pairdesign.solvers.misocp:Misocp",
    "random": "pairdesign.solvers.baselines:RandomPairs",
    "first-k": "pairdesign.solvers.baselines:FirstK",
    "best-vs-worst": "pairdesign.solvers.baselines:BestVsWorst",
    "ultrafeedback": "pairdesign.solvers.baselines:UltraFeedback",
    "max-margin": "pairdesign.solvers.baselines:MaxMargin",
    "min-margin": "pairdesign.solvers.baselines:MinMargin",
    "max-distance": "pairdesign.solvers.baselines:MaxDistance",
}
DEFAULT_METHOD = "auto"


@dataclass
class Context:
    """What a method sees: the instance, the request, the clock, the seed, and the log."""

    instance: Instance
    criterion: Criterion
    budget: float
    time_limit: float | None
    seed: int | None
    options: Any
    logger: logging.Logger
    rng: np.random.Generator = field(init=False)
    started: float = field(init=False, default_factory=time.perf_counter)
    log: list[str] = field(default_factory=list)
    incumbent: DesignBuilder | None = None
    start: np.ndarray | None = None  # a feasible integer design from an earlier phase (auto)
    pool: CandidatePool | None = None  # the candidate pool (default: the instance's, in memory)
    _last_progress: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        if self.pool is None:
            self.pool = InMemoryPool.of(self.instance)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def out_of_time(self) -> bool:
        return self.time_limit is not None and self.elapsed() >= self.time_limit

    def say(self, message: str, fraction: float | None = None) -> None:
        """A progress line: logged at INFO (with the share of work done, if known, as the
        record's ``fraction``) and kept in the Result's log."""
        line = f"[{self.elapsed():8.2f}s] {message}"
        self.log.append(line)
        self.logger.info(line, extra={"fraction": fraction})

    def progress(self, message: Callable[[], str], every: float = 1.0,
                 fraction: Callable[[], float] | None = None) -> None:
        """A progress line, at most one per ``every`` seconds (long runs show progress; short
        runs stay quiet). ``message`` is called only when the line is shown; ``fraction``, where
        a method knows it, is the share of the work done (a progress bar draws it)."""
        now = self.elapsed()
        if now - self._last_progress >= every:
            self._last_progress = now
            self.say(message(), fraction=None if fraction is None else fraction())

    def phase(self, options: Any = None, time_limit: float | None = None) -> "Context":
        """A context for one phase of a method: the same instance, clock, seed stream and log,
        its own options and deadline (``time_limit`` seconds after this context started)."""
        sub = Context(instance=self.instance, criterion=self.criterion, budget=self.budget,
                      time_limit=time_limit, seed=self.seed, options=options, logger=self.logger,
                      log=self.log, pool=self.pool)
        sub.started = self.started
        sub.rng = self.rng
        return sub

    def share_of_time_left(self, share: float) -> float | None:
        """The deadline ``share`` of the remaining time from now (None without a time limit)."""
        if self.time_limit is None:
            return None
        return self.elapsed() + share * max(self.time_limit - self.elapsed(), 0.0)

    def builder(self) -> DesignBuilder:
        """A fresh feasible design (the pairs fixed in), registered as the incumbent."""
        self.incumbent = DesignBuilder(self.instance, self.budget)
        return self.incumbent


@dataclass
class Outcome:
    """What a method returns to the front door: the design and how the run ended."""

    counts: np.ndarray
    termination: TerminationCondition
    status: SolutionStatus = SolutionStatus.feasible
    bound: float | None = None
    solver: str | None = None
    fractional: bool = False  # counts are the relaxation's real weights, not labels


class Method(Protocol):
    name: ClassVar[str]
    needs_scores: ClassVar[bool]
    Options: ClassVar[type]

    def run(self, context: Context) -> Outcome: ...


@dataclass(frozen=True)
class NoOptions:
    """A method without options."""


def check_stopping(method: str, tol: float, max_iterations: int) -> None:
    """The shared checks of an iterative method's ``tol`` and ``max_iterations`` options."""
    if not 0 < tol < 1:
        raise OptionError(f"option 'tol' of method {method!r} must be in (0, 1), got {tol}")
    if max_iterations < 1:
        raise OptionError(f"option 'max_iterations' of method {method!r} must be >= 1")


def method_class(name: str) -> type:
    """The class of a registered method (imported on first use)."""
    if name not in METHODS:
        raise OptionError(f"unknown method {name!r}; choose one of {list(METHODS)}")
    module, _, cls = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def make_options(method: type, options: dict[str, Any] | None) -> Any:
    """The method's typed options from a dict; unknown names and wrong types are errors."""
    options = dict(options or {})
    known = {f.name: f for f in dataclasses.fields(method.Options)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise OptionError(f"unknown option(s) {unknown} for method {method.name!r}; "
                          f"known: {sorted(known) or 'none'}")
    for key, value in options.items():
        kind = known[key].type
        kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
        ok = {
            "int": isinstance(value, (int, np.integer)) and not isinstance(value, bool),
            "float": isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
        }.get(kind, True)
        if not ok:
            raise OptionError(f"option {key!r} of method {method.name!r} must be {kind}, got {value!r}")
    opts = method.Options(**options)
    check = getattr(opts, "check", None)
    if check is not None:
        check()
    return opts


class Timings:
    """Seconds spent per phase: ``with clock("master"): ...``; ``summary()`` for the log."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

    def summary(self) -> str:
        return " ".join(f"{k}={v:.3f}s" for k, v in self.seconds.items())


class FixedIncumbent:
    """An incumbent for the front door's interrupt handling (it reads ``.counts``)."""

    def __init__(self, counts: np.ndarray):
        self.counts = counts.astype(np.int64)


def finish_with_bound(ctx: Context, design: DesignBuilder, relaxed: Any, tol: float, stopped: bool,
            solver: str, method: str) -> Outcome:
    """The Outcome of a design with the relaxation's certified bound: ``optimal`` when the gap
    is within ``tol`` (:func:`allowed_gap`)."""
    from .frank_wolfe import allowed_gap

    value = ctx.criterion.value(information_matrix(ctx.instance, design.counts, ctx.pool))
    bound = max(relaxed.bound, value)  # U >= f always; max guards the last digit
    proven = bound - value <= allowed_gap(ctx.criterion, value, ctx.instance.dim, tol)
    termination = (TerminationCondition.converged if proven
                   else TerminationCondition.time_limit if stopped else TerminationCondition.completed)
    ctx.say(f"{method}: f = {value:.10g}, "
            f"bound {bound:.10g}, gap {bound - value:.3g}")
    return Outcome(design.counts.copy(), termination,
                   SolutionStatus.optimal if proven else SolutionStatus.feasible,
                   bound=bound, solver=solver)
