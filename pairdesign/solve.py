"""The front door: ``solve(instance, method, criterion, ...) -> Result``."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from .constraints import violations
from .errors import OptionError
from .fingerprint import instance_fingerprint
from .information import Criterion, objective
from .instance import Instance
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

    Returns a :class:`Result` whose objective is f(M(n)) recomputed from the instance.
    """
    budget = _check_request(instance, budget, time_limit, seed)
    cls = method_class(method)
    opts = make_options(cls, options)
    crit = Criterion.make(criterion, instance, H)
    if cls.needs_scores and not instance.has_all_scores:
        missing = np.flatnonzero(np.ones(instance.n_completions, bool) if instance.scores is None
                                 else np.isnan(instance.scores))
        raise OptionError(f"method {method!r} needs a score for every completion; "
                          f"{instance.row_name(int(missing[0]))} has none")
    instance.check_fixed_feasible(budget)

    ctx = Context(instance=instance, criterion=crit, budget=budget, time_limit=time_limit,
                  seed=seed, options=opts, logger=logging.getLogger(cls.__module__))
    try:
        outcome = cls().run(ctx)
    except KeyboardInterrupt:
        if ctx.incumbent is None:
            raise
        ctx.say("interrupted: returning the design built so far")
        outcome = Outcome(ctx.incumbent.counts.copy(), TerminationCondition.interrupted)
    if certify and outcome.bound is None:
        from .solvers.frank_wolfe import solve_relaxation

        ctx.say("certify: solving the relaxation for a bound")
        time_left = None if time_limit is None else max(time_limit - ctx.elapsed(), 1e-9)
        bound_ctx = Context(instance=instance, criterion=crit, budget=budget, time_limit=time_left,
                            seed=seed, options=None, logger=ctx.logger)
        outcome.bound = solve_relaxation(bound_ctx, tol=1e-6).bound
        ctx.log.extend(bound_ctx.log)
    return _result(instance, crit, method, budget, seed, ctx, outcome)


def _result(instance: Instance, crit: Criterion, method: str, budget: float, seed: int | None,
            ctx: Context, outcome: Outcome) -> Result:
    fractional = outcome.fractional
    counts = np.asarray(outcome.counts, dtype=np.float64 if fractional else np.int64)
    broken = violations(instance, counts, budget, integral=not fractional)
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
