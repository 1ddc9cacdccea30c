"""The front door: ``solve(instance, method, criterion, ...) -> Result``."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from .errors import OptionError
from .deadline import Deadline
from .fingerprint import instance_fingerprint
from .information import Criterion, information_matrix, objective
from .problem import Problem
from .instance import Instance
from .pool import CandidatePool
from .solvers.base import DEFAULT_METHOD, Context, Outcome, make_options, method_class
from .solvers.result import Result, TerminationCondition

logger = logging.getLogger("pairdesign")


def _check_request(instance: Instance, budget: Any, time_limit: Any, seed: Any) -> float:
    if not isinstance(instance, Instance):
        raise OptionError(f"The 'instance' parameter of solve must be an Instance. Got {type(instance).__name__} instead.")
    if budget is None:
        budget = instance.budget
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)) \
            or not math.isfinite(budget) or budget < 0:
        raise OptionError(f"The 'budget' parameter of solve must be a non-negative number. Got {budget!r} instead.")
    if time_limit is not None and (
        isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not time_limit > 0
    ):
        raise OptionError(f"The 'time_limit' parameter of solve must be a positive number of seconds or None. "
                          f"Got {time_limit!r} instead.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise OptionError(f"The 'seed' parameter of solve must be a non-negative integer or None. Got {seed!r} instead.")
    return float(budget)


def solve(
    instance: Instance,
    method: str = DEFAULT_METHOD,
    criterion: str | Criterion = "D",
    *,
    budget: float | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    H: np.ndarray | None = None,
    certify: bool = False,
    pool: CandidatePool | None = None,
    deadline: Deadline | None = None,
) -> Result:
    """Choose the pairs to label.

    Parameters
    ----------
    instance : the problem (:func:`pairdesign.load_instance` or :meth:`Instance.from_arrays`).
    method : one of :data:`pairdesign.METHODS` (``"auto"`` by default: round, then a proof where
        the instance is small; ``"greedy"``, ``"exact"``, the baselines, ...).
    criterion : ``"D"`` (log det M, default), ``"A"`` (-tr M^-1), ``"L"`` (-tr H M^-1), or a
        :class:`Criterion`.
    budget : overrides the instance's budget B (``sum_p c_p n_p <= B``).
    time_limit : seconds; the method stops and returns its best design so far.
    seed : for methods that draw at random; the same seed gives the same design.
    options : the method's own options (e.g. ``{"k": 4}`` for ``first-k``).
    H : the L criterion's matrix (default: the covariance of the uniform policy).
    certify : also solve the convex relaxation (to a D-efficiency loss, or relative gap, of 1e-6)
        and report its certified optimum bound as the Result's ``bound`` and ``gap``, for methods
        that carry no bound of their own.
    pool : the candidate pool every method reads the candidates through (default: the instance's,
        in memory; see :mod:`pairdesign.pool`), or a block pool of :mod:`pairdesign.blockpool`
        (``MemoryPool``, ``pairdesign.dask_pool.DaskPool``): the methods that run out of core
        (:data:`pairdesign.outofcore.POOL_METHODS`), holding only a working set.
    deadline : an absolute :class:`~pairdesign.deadline.Deadline` (for instance shared by several
        calls); with ``time_limit`` too, the earlier of the two holds.

    Returns a :class:`Result` whose objective is f(M(n)) recomputed from the instance.

    A store too large for memory (``load_instance("X.zarr")`` returns an
    :class:`~pairdesign.store.InstanceStore`) is solved on the Dask pool
    (:func:`pairdesign.outofcore.solve_store`: relax, round, greedy and the baselines).
    """
    from .store import InstanceStore

    if isinstance(instance, InstanceStore):
        from .outofcore import solve_store
        return solve_store(instance, "round" if method == DEFAULT_METHOD else method, criterion,
                           budget=budget, time_limit=time_limit, seed=seed, options=options, H=H)
    if pool is not None and hasattr(pool, "gain_pass"):  # a block pool: out of core
        from .outofcore import solve_on_pool
        if certify or deadline is not None:
            raise OptionError("a block pool runs out of core: no 'certify' (relax and round carry a "
                              "certified bound) and no 'deadline' (use time_limit)")
        return solve_on_pool(pool, "round" if method == DEFAULT_METHOD else method, criterion,
                             budget=budget, time_limit=time_limit, seed=seed, options=options, H=H)
    budget = _check_request(instance, budget, time_limit, seed)
    cls = method_class(method)
    opts = make_options(cls, options)
    if cls.needs_scores and not instance.has_all_scores:
        missing = np.flatnonzero(np.ones(instance.n_completions, bool) if instance.scores is None
                                 else np.isnan(instance.scores))
        raise OptionError(f"method {method!r} needs a score for every completion; "
                          f"{instance.row_name(int(missing[0]))} has none")
    budget = _spendable(instance, budget)
    problem = Problem.build(instance, criterion, budget, H=H, pool=pool)
    refuse = getattr(cls, "refuse_time_limit", None)
    if time_limit is not None and refuse is not None:
        reason = refuse(problem, opts, float(time_limit))
        if reason:
            raise OptionError(f"method {method!r} cannot honour a time limit here: {reason}")
    deadline = (Deadline.after(time_limit) if deadline is None
                else deadline.child(seconds=time_limit))
    ctx = Context(problem=problem, options=opts, deadline=deadline, seed=seed,
                  logger=logging.getLogger(cls.__module__))
    try:
        outcome = cls().run(ctx)
    except KeyboardInterrupt:
        outcome = _interrupted(ctx)
        if outcome is None:
            raise
    if certify and outcome.bound is None:
        from .solvers.frank_wolfe import solve_relaxation

        ctx.say("certify: solving the relaxation for a bound")
        outcome.bound = solve_relaxation(ctx.phase(None), tol=1e-6).bound
    _check_accuracy(ctx, outcome, getattr(opts, "tol", 1e-6))
    return _result(problem, method, seed, ctx, outcome)


def _check_accuracy(ctx: Context, outcome: Outcome, tol: float) -> None:
    """Claim ``optimal`` only above float noise: the criterion's value at M carries a rounding
    error of about ``eps cond(M)`` (relative, A and L; times d, absolute, for D's log det). Where
    that noise exceeds the gap the proof relied on, the status becomes ``feasible`` and the log
    says why, with the condition number."""
    from .solvers.frank_wolfe import allowed_gap
    from .solvers.result import SolutionStatus

    if outcome.status is not SolutionStatus.optimal:
        return
    M = information_matrix(ctx.instance, np.asarray(outcome.counts, dtype=np.float64), ctx.pool)
    cond = float(np.linalg.cond(M))
    crit, d = ctx.criterion, ctx.instance.dim
    value = crit.value(M)
    eps = float(np.finfo(np.float64).eps)
    noise = eps * cond * crit.value_noise_scale(value, d)
    if not math.isfinite(cond) or noise > allowed_gap(crit, value, d, tol):
        outcome.status = SolutionStatus.feasible
        ctx.say(f"accuracy: the information matrix has condition number {cond:.3g}; the criterion's "
                f"value is accurate only to about {noise:.3g}, more than the gap tolerance: not "
                f"claiming 'optimal'")


def _spendable(instance: Instance, budget: float) -> float:
    """The budget that can be spent: with unit costs, labels are whole, so a fractional budget
    is floored (2.5 -> 2)."""
    cand = instance.candidates
    if len(cand) and cand.unit_cost and not float(budget).is_integer():
        return float(math.floor(budget))
    return float(budget)


def _interrupted(ctx: Context) -> Outcome | None:
    """After Ctrl-C: the best design the run holds, with the best bound it proved (None when it
    holds no design yet)."""
    crit, best, best_value = ctx.criterion, None, -math.inf
    for held in ctx.known.incumbents:
        try:
            counts = np.asarray(held() if callable(held) else held.counts, dtype=np.int64).copy()
        except Exception:  # a design still being built may be unusable; the others remain
            continue
        if ctx.polytope.violations(counts):
            continue
        value = crit.value(information_matrix(ctx.instance, counts, ctx.pool))
        if value > best_value:
            best, best_value = counts, value
    if best is None:
        return None
    bound = ctx.known.bound
    if bound is not None:
        bound = max(bound, best_value)
    ctx.say(f"interrupted: returning the best design held (f = {best_value:.10g})"
            + (f" with the bound proved so far ({bound:.10g})" if bound is not None else ""))
    return Outcome(best, TerminationCondition.interrupted, bound=bound, solver="interrupted")


def _result(problem: Problem, method: str, seed: int | None, ctx: Context, outcome: Outcome) -> Result:
    instance, crit, budget = problem.instance, problem.criterion, problem.budget
    fractional = outcome.fractional
    counts = np.asarray(outcome.counts, dtype=np.float64 if fractional else np.int64)
    broken = problem.polytope.violations(counts, integral=not fractional)
    if broken:  # a bug in the method, never the user's fault
        raise RuntimeError(f"method {method!r} returned an infeasible design: {'; '.join(broken)}")
    cand = instance.candidates
    if fractional:  # every pair of positive weight, once, with its weight
        chosen = np.flatnonzero(counts > 1e-12)
        weights: tuple[float, ...] | None = tuple(counts[chosen].tolist())
    else:  # every label
        chosen = np.repeat(np.arange(len(cand)), counts)
        weights = None
    pairs = tuple(tuple(p) for p in instance.pair_ids(cand.j[chosen], cand.k[chosen]))
    return Result(
        pairs=pairs,  # type: ignore[arg-type]
        counts=counts,
        objective=objective(instance, counts, crit),
        bound=outcome.bound,
        status=outcome.status,
        termination=outcome.termination,
        method=method,
        criterion=crit.name,
        solver=outcome.solver,
        budget=budget,
        budget_used=float(cand.cost @ counts),
        seconds=ctx.elapsed(),
        instance_name=instance.name,
        dim=instance.dim,
        seed=seed,
        log=tuple(ctx.log),
        weights=weights,
        instance_fingerprint=instance_fingerprint(instance),
    )
