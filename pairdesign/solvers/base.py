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
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol

import numpy as np

from ..polytope import DesignBuilder
from ..deadline import Deadline
from ..polytope import Polytope
from ..pool import CandidatePool
from ..problem import Problem
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
class Known:
    """What a run knows that an interrupt must not lose, shared by all phases of one run: the
    designs it holds (objects with ``.counts``, or callables returning integer counts) and the
    best upper bound on the optimum proven so far (over the whole problem, not a node)."""

    incumbents: list[Any] = field(default_factory=list)
    bound: float | None = None

    def offer_bound(self, bound: float | None) -> None:
        if bound is not None and math.isfinite(bound) and (self.bound is None or bound < self.bound):
            self.bound = float(bound)


@dataclass
class Context:
    """What a method sees: the problem, its options, the deadline, the seed, and the log."""

    problem: Problem
    options: Any = None
    deadline: Deadline = field(default_factory=Deadline.never)
    seed: int | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("pairdesign"))
    rng: np.random.Generator = field(init=False)
    started: float = field(init=False, default_factory=time.perf_counter)
    log: list[str] = field(default_factory=list)
    known: Known = field(default_factory=Known)
    start: np.ndarray | None = None  # a feasible integer design from an earlier phase (auto)
    _last_progress: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    @classmethod
    def make(cls, instance: Instance, criterion: "str | Criterion" = "D", budget: float | None = None,
             *, options: Any = None, deadline: Deadline | None = None, seed: int | None = None,
             logger: logging.Logger | None = None, pool: CandidatePool | None = None) -> "Context":
        """A context for calling an algorithm directly (tests, benchmarks, compare)."""
        problem = Problem.build(instance, criterion, budget, pool=pool)
        return cls(problem=problem, options=options, deadline=deadline or Deadline.never(),
                   seed=seed, logger=logger or logging.getLogger("pairdesign"))

    # the problem's parts, as the methods name them
    @property
    def instance(self) -> Instance:
        return self.problem.instance

    @property
    def criterion(self) -> Criterion:
        return self.problem.criterion

    @property
    def budget(self) -> float:
        return self.problem.budget

    @property
    def pool(self) -> CandidatePool:
        return self.problem.pool

    @property
    def polytope(self) -> Polytope:
        return self.problem.polytope

    @property
    def incumbent(self) -> Any:
        return self.known.incumbents[-1] if self.known.incumbents else None

    @incumbent.setter
    def incumbent(self, design: Any) -> None:
        """Register a design the run holds (kept for an interrupt; the best one is returned)."""
        if design is not None and not any(d is design for d in self.known.incumbents):
            self.known.incumbents.append(design)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def out_of_time(self) -> bool:
        return self.deadline.expired()

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

    def phase(self, options: Any = None, deadline: Deadline | None = None,
              problem: Problem | None = None, logger: logging.Logger | None = None) -> "Context":
        """A context for one phase of a method: the same clock, seed stream, log and record of
        what is known; its own options, deadline (a child of this one; this one's by default)
        and, for a branch-and-bound node, its own (restricted) problem."""
        sub = Context(problem=problem or self.problem, options=options,
                      deadline=self.deadline if deadline is None else deadline, seed=self.seed,
                      logger=logger or self.logger, log=self.log, known=self.known)
        sub.started = self.started
        sub.rng = self.rng
        return sub

    def share_of_time_left(self, share: float) -> Deadline:
        """The child deadline at ``share`` of the time left from now."""
        return self.deadline.child(share=share)

    def builder(self) -> DesignBuilder:
        """A fresh feasible design (the pairs fixed in), registered as the incumbent."""
        design = DesignBuilder(self.polytope)
        self.incumbent = design
        return design


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


def _kinds(annotation: Any) -> set[str]:
    """The declared type of an option as names: ``"float | None"`` -> {"float", "None"}."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return {part.strip() for part in text.split("|")}


def _coerce(method: str, key: str, value: Any, kinds: set[str]) -> Any:
    """An option value checked against its declared type; text (as the CLI passes it) is
    parsed by that type. Raises :class:`OptionError` with one line naming the option."""
    is_bool = isinstance(value, bool)
    if value is None and "None" in kinds:
        return None
    if "bool" in kinds and is_bool:
        return value
    if "int" in kinds and isinstance(value, (int, np.integer)) and not is_bool:
        return int(value)
    if "float" in kinds and isinstance(value, (int, float, np.integer, np.floating)) and not is_bool:
        return float(value)
    if "str" in kinds and isinstance(value, str):
        return value
    if isinstance(value, str):  # from the command line: parse by the declared type
        text = value.strip()
        if "None" in kinds and text.lower() in ("none", "null"):
            return None
        if "bool" in kinds and text.lower() in ("true", "false", "1", "0", "yes", "no"):
            return text.lower() in ("true", "1", "yes")
        for kind, parse in (("int", int), ("float", float)):
            if kind in kinds:
                try:
                    return parse(text)
                except ValueError:
                    pass
    wanted = " or ".join(sorted(k if k != "None" else "none" for k in kinds))
    raise OptionError(f"option {key!r} of method {method!r} must be {wanted}, got {value!r}")


def make_options(method: type, options: dict[str, Any] | None) -> Any:
    """The method's typed options from a dict; unknown names and wrong types are errors (text
    values, as the CLI passes them, are parsed by the option's declared type)."""
    options = dict(options or {})
    known = {f.name: f for f in dataclasses.fields(method.Options)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise OptionError(f"unknown option(s) {unknown} for method {method.name!r}; "
                          f"known: {sorted(known) or 'none'}")
    typed = {key: _coerce(method.name, key, value, _kinds(known[key].type))
             for key, value in options.items()}
    opts = method.Options(**typed)
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


def gap_closed(ctx: Context, value: float, bound: float, tol: float) -> bool:
    """Whether ``bound - value`` is within the criterion's allowed gap at ``tol``
    (:func:`~pairdesign.solvers.frank_wolfe.allowed_gap`): the one test of "proven optimal"."""
    from .frank_wolfe import allowed_gap

    return bound - value <= allowed_gap(ctx.criterion, value, ctx.instance.dim, tol)


def loop_stop(ctx: Context, value: float, bound: float, tol: float) -> TerminationCondition | None:
    """The stopping test of the exact algorithms' loops (outer approximation, branch and bound),
    in one place: ``converged`` when the gap is closed (:func:`gap_closed`), ``time_limit`` when
    the deadline has passed, None to go on."""
    if gap_closed(ctx, value, bound, tol):
        return TerminationCondition.converged
    if ctx.out_of_time():
        return TerminationCondition.time_limit
    return None


def finish_with_bound(ctx: Context, design: DesignBuilder, relaxed: Any, tol: float, stopped: bool,
            solver: str, method: str) -> Outcome:
    """The Outcome of a design with the relaxation's certified bound: ``optimal`` when the gap
    is within ``tol`` (:func:`gap_closed`)."""
    value = ctx.criterion.value(information_matrix(ctx.instance, design.counts, ctx.pool))
    bound = max(relaxed.bound, value)  # U >= f always; max guards the last digit
    proven = gap_closed(ctx, value, bound, tol)
    termination = (TerminationCondition.converged if proven
                   else TerminationCondition.time_limit if stopped else TerminationCondition.completed)
    ctx.say(f"{method}: f = {value:.10g}, "
            f"bound {bound:.10g}, gap {bound - value:.3g}")
    return Outcome(design.counts.copy(), termination,
                   SolutionStatus.optimal if proven else SolutionStatus.feasible,
                   bound=bound, solver=solver)
