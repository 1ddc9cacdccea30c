"""Solving on a candidate pool (:mod:`pairdesign.blockpool`): relax, round, greedy and the
baselines for pools that only a pool's passes touch whole (a store on Dask, or an in-memory
instance). The driver holds the working set's pairs and rows, never a vector over all pairs.

**relax** (column generation with a certificate). The working set S starts from the pairs fixed
in, the ``top`` pairs of largest gain at M0 and the linear oracle's vertex. Each round solves the
relaxation restricted to S with the native solver (a sub-instance of the pairs of S, their
prompts' caps and coverage minimums, the pairs fixed in and labeled: every design of it is a
design of the whole pool),
then one gain pass over the whole pool gives the certificate of the Frank-Wolfe duality gap

    f* <= f(n) + max_{s in polytope} g^T s - g^T n,      g_p = w_p z_p^T (df/dM) z_p,

with the maximum over *all* pairs (the vertex by a distributed selection). It stops when the
best bound is within ``tol`` (a D-efficiency loss ``1 - exp(-gap/d)``, or a relative gap for
A and L); otherwise the pass's top pairs and the vertex join S.

**round**: the rounding method of ``solve`` on the final working set, with the whole pool's
certified bound. **greedy**: lazy greedy over the pool (the marginal pass returns the ``top``
open pairs and the largest other gain; for D, log det's submodularity makes that a bound, so the
design is exactly plain greedy's); coverage minimums first, by a fill pass in order of marginal
gain at the start, as in memory. **Baselines** (:mod:`pairdesign.solvers.baselines`): one fill
pass of the baseline's ranking (:func:`pairdesign.blockpool.fill_block`), the design
``DesignBuilder.fill`` builds in memory.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.linalg as sla

from .blockpool import BlockPool, MarginalRanking, RowData, TopPairs, vertex_value
from .deadline import Deadline
from .errors import InfeasibleError, OptionError
from .information import Criterion, PairForms, RankOneInverse, gains, information_matrix, sigmoid
from .instance import Instance
from .solvers.base import Context, Outcome, make_options, method_class
from .solvers.frank_wolfe import allowed_gap, solve_relaxation
from .solvers.result import Result, SolutionStatus, TerminationCondition

if TYPE_CHECKING:
    from .store import InstanceStore

log = logging.getLogger(__name__)

POOL_METHODS = ("relax", "round", "greedy", "random", "first-k", "best-vs-worst", "ultrafeedback",
                "max-margin", "min-margin", "max-distance")

__all__ = ["POOL_METHODS", "WorkingSet", "solve_on_pool", "solve_store"]


@dataclass
class WorkingSet:
    """The pairs the driver holds (global rows j < k, prompt) and their rows' features."""

    j: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    k: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rows: RowData = field(default_factory=RowData)

    def add(self, pairs: TopPairs | tuple[np.ndarray, np.ndarray], rows: RowData | None = None) -> int:
        """Add pairs (new ones only); returns how many were new."""
        j, k = (pairs.j, pairs.k) if isinstance(pairs, TopPairs) else pairs
        if rows is not None:
            self.rows = RowData.merge([self.rows, rows])
        before = self.j.size
        both = np.unique(np.c_[np.r_[self.j, j], np.r_[self.k, k]].astype(np.int64), axis=0)
        self.j, self.k = both[:, 0].copy(), both[:, 1].copy()
        return self.j.size - before


def _factor(M: np.ndarray, crit: Criterion) -> tuple[np.ndarray, np.ndarray]:
    """(R1, R2) with ``z^T M^-1 z = |R1^T z|^2`` and ``z^T (df/dM) z = |R2^T z|^2``."""
    chol = np.linalg.cholesky(M)
    R1 = sla.solve_triangular(chol, np.eye(M.shape[0]), lower=True).T
    return R1, crit.gradient_factor(R1, None if crit.is_log_det else R1 @ R1.T)


class _Driver:
    def __init__(self, pool: BlockPool, criterion: str | Criterion, budget: float | None,
                 time_limit: float | None, seed: int | None, H: np.ndarray | None):
        self.pool = pool
        self.started = time.perf_counter()
        self.time_limit = time_limit
        self.seed = seed
        meta = pool.meta
        # unit costs: labels are whole, a fractional budget is floored (as solve's _spendable)
        self.budget = float(math.floor(float(meta["budget"] if budget is None else budget) + 1e-9))
        self.dim = pool.spec.dim
        self.ridge = float(meta.get("ridge", 1e-6))
        self.ws = WorkingSet()
        fixed = np.asarray(pool.fixed_in, dtype=np.int64).reshape(-1, 2)
        self.fixed = (np.minimum(fixed[:, 0], fixed[:, 1]), np.maximum(fixed[:, 0], fixed[:, 1]))
        labeled = np.asarray(pool.labeled, dtype=np.int64).reshape(-1, 2)
        self.labeled = labeled
        need = np.concatenate([self.fixed[0], self.fixed[1], labeled[:, 0], labeled[:, 1]])
        if need.size:
            self.ws.rows = pool.row_features(need)
        self.ws.add(self.fixed)
        self.budget_left = self.budget - float(self.fixed[0].size)
        if self.budget_left < -1e-9:
            raise InfeasibleError(f"the pairs fixed in cost {self.fixed[0].size}, more than the budget {self.budget:g}")
        # coverage minimums: the labels every prompt still needs after its pairs fixed in
        minimum = pool.spec.min_pairs_per_prompt
        self.min_pairs = int(minimum) if minimum > 0 else None
        self.mandatory = 0.0
        if minimum > 0:
            fixed_prompts = self.ws.rows.prompt[np.searchsorted(self.ws.rows.rows, self.fixed[0])] \
                if self.fixed[0].size else np.zeros(0, dtype=np.int64)
            _, per_prompt = np.unique(fixed_prompts, return_counts=True)
            self.mandatory = minimum * pool.n_prompts - float(np.minimum(per_prompt, minimum).sum())
        self.budget_free = self.budget_left - self.mandatory  # what the budget leaves to compete for
        if self.budget_free < -1e-9:
            raise InfeasibleError(f"the coverage minimums (min_pairs_per_prompt = {int(minimum)} for "
                                  f"{pool.n_prompts} prompts) need {self.mandatory + self.fixed[0].size:g} "
                                  f"labels, more than the budget {self.budget:g}")
        if isinstance(criterion, Criterion):
            self.crit = criterion
        else:
            kind = Criterion.named(str(criterion))
            self.crit = kind(H=pool.policy_covariance() if H is None else H) if kind.needs_H else kind()
        self.log: list[str] = []
        self.passes = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def out_of_time(self) -> bool:
        return self.time_limit is not None and self.elapsed() >= self.time_limit

    def say(self, message: str) -> None:
        line = f"[{self.elapsed():8.2f}s] {message}"
        self.log.append(line)
        log.info(line)

    # ------------------------------------------------------------------ the sub-instance of S
    def sub_instance(self, j: np.ndarray, k: np.ndarray) -> tuple[Instance, np.ndarray]:
        """The instance of the pairs (j, k) (plus those fixed in and labeled): their rows grouped
        by prompt, the prompts' caps, the pool's settings. Returns it and, for each of its
        candidates, its global (j, k) key order (``keys``)."""
        rows_data = self.ws.rows
        used = np.unique(np.concatenate([j, k, self.fixed[0], self.fixed[1],
                                         self.labeled[:, 0], self.labeled[:, 1]]).astype(np.int64))
        at = np.searchsorted(rows_data.rows, used)
        if used.size and (np.any(at >= rows_data.rows.size) or np.any(rows_data.rows[np.minimum(at, rows_data.rows.size - 1)] != used)):
            raise RuntimeError("a working-set row has no features (a pass did not return it)")
        prompt = rows_data.prompt[at]
        features = rows_data.features[at]
        prompts, index = np.unique(prompt, return_inverse=True)
        prompt_ids, completion_ids = self.pool.ids(prompts, used)
        caps = self.pool.prompt_caps_of(prompts)
        local = lambda a: np.searchsorted(used, np.asarray(a, dtype=np.int64))  # noqa: E731
        meta = self.pool.meta
        scores = None if rows_data.scores is None else rows_data.scores[at]
        inst = Instance.from_arrays(
            features, index, budget=self.budget, scores=scores, prompt_ids=prompt_ids,
            completion_ids=completion_ids, ridge=self.ridge, weights=meta.get("weights", "uniform"),
            max_labels_per_pair=meta.get("max_labels_per_pair", 1), prompt_max_pairs=caps,
            pairs=np.c_[local(j), local(k)] if j.size else np.zeros((0, 2), dtype=np.int64),
            fixed_in=np.c_[local(self.fixed[0]), local(self.fixed[1])] if self.fixed[0].size else np.zeros((0, 2), np.int64),
            labeled=np.c_[local(self.labeled[:, 0]), local(self.labeled[:, 1])] if self.labeled.size else np.zeros((0, 2), np.int64),
            labeled_counts=self.pool.labeled_counts, name=self.pool.name, min_pairs_per_prompt=self.min_pairs)
        return inst, used

    def context(self, inst: Instance, options=None) -> Context:
        remaining = None if self.time_limit is None else max(self.time_limit - self.elapsed(), 1e-3)
        ctx = Context.make(inst, self.crit, self.budget, options=options, seed=self.seed, logger=log,
                           deadline=Deadline.after(remaining))
        ctx.log = self.log
        return ctx

    def keys(self) -> np.ndarray:
        """Global keys of the working set's pairs: the sub-instance's candidates, in order."""
        return self.ws.j * np.int64(self.pool.spec.n_completions) + self.ws.k

    # ------------------------------------------------------------------ relax
    def relax(self, tol: float, top: int, max_rounds: int = 100
              ) -> tuple[Instance, np.ndarray, float, TerminationCondition]:
        """The relaxation over the whole pool (module docstring). Returns the final sub-instance,
        the design over its candidates, the best certified bound and the termination."""
        crit, pool = self.crit, self.pool
        inner = tol / 10.0
        sub, x = self.start()
        best = math.inf
        termination = TerminationCondition.iteration_limit
        for rnd in range(1, max_rounds + 1):
            M = self.ridge * np.eye(self.dim) if sub is None else information_matrix(sub, x)
            value = crit.value(M)
            _, R = _factor(M, crit)
            gp = pool.gain_pass(R, top, self.budget_free)
            self.passes += 1
            chosen, top_value = vertex_value(gp, self.budget_free)
            gx = 0.0 if sub is None else float(gains(sub, M, crit) @ x)
            best = min(best, value + top_value - gx)
            target = allowed_gap(crit, value, self.dim, tol)
            self.say(f"pool relax: round {rnd}, working set {self.ws.j.size} pairs, f = {value:.10g}, "
                     f"bound = {best:.10g}, gap = {best - value:.3g} (target {target:.3g}), "
                     f"{gp.pairs} pairs in the pass")
            if rnd > 1 and best - value <= target:
                termination = TerminationCondition.converged
                break
            if self.out_of_time():
                termination = TerminationCondition.time_limit
                break
            old_keys = self.keys()
            new = self.ws.add(gp.top, gp.rows) + self.ws.add(chosen)
            if new == 0 and rnd > 1:
                inner /= 10.0  # S holds every pair the pass points at: solve it tighter
                if inner < 1e-13:
                    break
            sub, _ = self.sub_instance(self.ws.j, self.ws.k)
            start = np.zeros(self.ws.j.size)
            start[np.searchsorted(self.keys(), old_keys)] = x  # S only grows
            relaxed = solve_relaxation(self.context(sub), tol=inner, start=start)
            x = relaxed.n
        return sub, x, best, termination

    def start(self) -> tuple[Instance | None, np.ndarray]:
        """The sub-instance of the pairs fixed in (None when there are none and nothing is
        labeled: M0 = ridge I) and the design n = lower."""
        if not self.ws.j.size and not self.labeled.size:
            return None, np.zeros(0)
        sub, _ = self.sub_instance(self.ws.j, self.ws.k)
        return sub, sub.candidates.lower.astype(np.float64)

    # ------------------------------------------------------------------ greedy
    def greedy(self, top: int | None = None) -> tuple[Instance, np.ndarray, TerminationCondition]:
        """Lazy greedy over the pool; returns the sub-instance of the chosen pairs and its counts."""
        crit, pool, spec = self.crit, self.pool, self.pool.spec
        N = np.int64(spec.n_completions)
        sub, x = self.start()
        tracker = RankOneInverse(self.ridge * np.eye(self.dim) if sub is None else information_matrix(sub, x), crit)
        counts: dict[int, int] = {int(key): 1 for key in (self.fixed[0] * N + self.fixed[1]).tolist()}
        prompt_of: dict[int, int] = {}
        used: dict[int, int] = {}
        caps: dict[int, float] = {}
        if counts:
            fixed_prompts = self.ws.rows.prompt[np.searchsorted(self.ws.rows.rows, self.fixed[0])]
            for key, p in zip(counts, fixed_prompts.tolist()):
                used[p] = used.get(p, 0) + 1
                prompt_of[key] = p
        if self.min_pairs:  # coverage minimums first, by marginal gain at the start (as in memory)
            R1, R2 = _factor(tracker.M, crit)
            cj, ck, amount = self.fill(MarginalRanking(R1, None if crit.is_log_det else R2, crit.name), 0)
            prompts = self.ws.rows.prompt[np.searchsorted(self.ws.rows.rows, cj)]
            for key, p, a in zip((cj * N + ck).tolist(), prompts.tolist(), amount.astype(np.int64).tolist()):
                counts[key] = counts.get(key, 0) + a
                used[p] = used.get(p, 0) + a
            self.ws.add((cj, ck))
            sub, _ = self.sub_instance(self.ws.j, self.ws.k)
            x = np.zeros(self.ws.j.size)
            keys = self.keys()
            x[np.searchsorted(keys, np.fromiter(counts, dtype=np.int64))] = list(counts.values())
            tracker = RankOneInverse(information_matrix(sub, x), crit)
            self.say(f"pool greedy: coverage minimums met with {int(x.sum())} labels")
        spent = float(sum(counts.values()))
        size = max(1024, 4 * self.dim) if top is None else top
        cap_size = max(size, (1 << 24) // max(1, self.dim))
        termination = TerminationCondition.completed
        while spent + 1.0 <= self.budget + 1e-9 * max(1.0, self.budget):
            if self.out_of_time():
                termination = TerminationCondition.time_limit
                break
            closed = np.asarray(sorted(p for p, n in used.items() if n >= caps.setdefault(
                p, float(pool.prompt_caps_of(np.array([p]))[0]))), dtype=np.int64)
            full = np.asarray(sorted(k for k, n in counts.items() if n >= spec.max_labels_per_pair), dtype=np.int64)
            R1, R2 = _factor(tracker.M, crit)
            mp = pool.marginal_pass(R1, None if crit.is_log_det else R2, crit.name, size, closed, full)
            self.passes += 1
            if mp.top.j.size == 0:
                break
            self.ws.rows = RowData.merge([self.ws.rows, mp.rows])
            work = mp.top.take(mp.top.ordered())
            at_j = np.searchsorted(self.ws.rows.rows, work.j)
            at_k = np.searchsorted(self.ws.rows.rows, work.k)
            Z = self.ws.rows.features[at_j] - self.ws.rows.features[at_k]
            if spec.weights == "uniform":
                w = np.full(work.j.size, 0.25)
            else:
                s = sigmoid(self.ws.rows.scores[at_j] - self.ws.rows.scores[at_k])
                w = s * (1.0 - s)
            forms = PairForms(Z, w, tracker.Minv, crit)
            alive = np.ones(work.j.size, dtype=bool)
            keys = (work.j * N + work.k).tolist()
            prompts = work.prompt.tolist()
            steps = 0
            while spent + 1.0 <= self.budget + 1e-9 * max(1.0, self.budget):
                gain = np.where(alive, forms.marginal_gains(), -np.inf)
                b = int(np.argmax(gain))
                if not alive[b] or gain[b] < mp.bound:
                    break  # the working set ran short: a new pass
                key, p = keys[b], prompts[b]
                cap = caps.setdefault(p, float(pool.prompt_caps_of(np.array([p]))[0]))
                if used.get(p, 0) >= cap or counts.get(key, 0) >= spec.max_labels_per_pair:
                    alive[b] = False
                    continue
                M_inv = tracker.Minv
                u, c = tracker.add(forms.Z[b], float(forms.weight[b]))
                forms.update(M_inv, u, c, tracker.Minv)
                counts[key] = counts.get(key, 0) + 1
                used[p] = used.get(p, 0) + 1
                spent += 1.0
                steps += 1
                if counts[key] >= spec.max_labels_per_pair:
                    alive[b] = False
                if steps % tracker.refresh == 0:
                    forms.recompute(tracker.Minv)
            self.say(f"pool greedy: {int(spent)} labels, {self.passes} passes, working set {work.j.size}, "
                     f"f = {tracker.value():.6g}")
            if steps < 8 and size < cap_size:
                size = min(cap_size, 4 * size)
        chosen = np.asarray(sorted(counts), dtype=np.int64)
        self.ws.add((chosen // N, chosen % N))
        sub, _ = self.sub_instance(self.ws.j, self.ws.k)
        keys = self.keys()
        n = np.zeros(keys.size, dtype=np.int64)
        n[np.searchsorted(keys, chosen)] = [counts[int(c)] for c in chosen]
        return sub, n, termination

    # ------------------------------------------------------------------ fills
    def fill(self, ranking: Any, capacity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A fill pass (:func:`pairdesign.blockpool.fill_block`): every prompt's coverage
        minimum, then ``capacity`` labels in the ranking's order; returns the labels added over
        the pairs fixed in as (j, k, labels), with the pairs' rows fetched into the working set."""
        fp = self.pool.fill_pass(ranking, capacity)
        self.passes += 1
        j, k, amount = fp.counts(capacity)
        if j.size:
            self.ws.rows = RowData.merge([self.ws.rows, self.pool.row_features(np.r_[j, k])])
        return j, k, amount

    def baseline(self, method: str, options: dict) -> tuple[Instance, np.ndarray]:
        """A baseline's design (:mod:`pairdesign.solvers.baselines`) filled over the pool."""
        from .solvers.baselines import BaselineRanking

        cls = method_class(method)
        if cls.needs_scores and not self.pool.has_scores:
            raise OptionError(f"method {method!r} ranks pairs by score: this pool has no scores")
        seed = int(np.random.default_rng(self.seed).integers(1 << 62))
        opts = make_options(cls, options)
        capacity = int(math.floor(self.budget_free + 1e-9 * max(1.0, self.budget)))
        j, k, amount = self.fill(BaselineRanking(method, opts, seed), capacity)
        self.ws.add((j, k))
        sub, _ = self.sub_instance(self.ws.j, self.ws.k)
        keys = self.keys()
        n = np.zeros(keys.size, dtype=np.int64)
        N = np.int64(self.pool.spec.n_completions)
        n[np.searchsorted(keys, self.fixed[0] * N + self.fixed[1])] = 1
        np.add.at(n, np.searchsorted(keys, j * N + k), amount.astype(np.int64))
        self.say(f"pool {method}: {int(n.sum())} labels in {self.passes} fill pass(es)")
        return sub, n

    # ------------------------------------------------------------------ results
    def result(self, sub: Instance, outcome: Outcome, method: str) -> Result:
        from .solve import _result

        ctx = self.context(sub)
        ctx.started = self.started
        res = _result(ctx.problem, method, self.seed, ctx, outcome)
        # the design names the whole pool's instance, not the working set's sub-instance
        return replace(res, instance_name=self.pool.name, log=tuple(self.log),
                       instance_fingerprint=self.pool.fingerprint())


def _status(crit: Criterion, objective: float, bound: float, dim: int, tol: float) -> SolutionStatus:
    """optimal only when the certified gap meets ``tol``."""
    if bound - objective <= allowed_gap(crit, objective, dim, tol):
        return SolutionStatus.optimal
    return SolutionStatus.feasible


def solve_on_pool(pool: BlockPool, method: str = "round", criterion: str | Criterion = "D", *,
                  budget: float | None = None, time_limit: float | None = None, seed: int | None = None,
                  options: dict | None = None, H: np.ndarray | None = None) -> Result:
    """``relax``, ``round`` or ``greedy`` on a candidate pool (module docstring).

    options: ``tol`` (relax/round: the certified tolerance, default 1e-4: a D-efficiency loss of
    at most 1e-4, as a relative gap for A and L), ``top`` (pairs a pass adds to the working set,
    default max(256, 2 B)), and for round the rounding method's own options (``draws``, ...).

    The Result's ``counts`` are over the candidates of the final working set (the pairs the
    solver held), its ``pairs`` name the chosen pairs by their ids; ``bound`` is certified over
    the whole pool.
    """
    if method not in POOL_METHODS:
        raise OptionError(f"method {method!r} does not run on a candidate pool; use one of {list(POOL_METHODS)}")
    options = dict(options or {})
    tol = float(options.pop("tol", 1e-4))
    if not 0 < tol < 1:
        raise OptionError(f"option 'tol' must be in (0, 1), got {tol}")
    drv = _Driver(pool, criterion, budget, time_limit, seed, H)
    top = int(options.pop("top", max(256, 2 * int(drv.budget))))
    if top < 1:
        raise OptionError(f"option 'top' must be >= 1, got {top}")
    if method not in ("relax", "round", "greedy"):  # a baseline
        sub, n = drv.baseline(method, options)
        return drv.result(sub, Outcome(n, TerminationCondition.completed), method)
    if method == "greedy":
        if options:
            raise OptionError(f"unknown option(s) {sorted(options)} for greedy on a pool")
        sub, n, termination = drv.greedy()
        return drv.result(sub, Outcome(n, termination), "greedy")
    sub, x, bound, termination = drv.relax(tol, top)
    drv.say(f"pool relax: {termination.value} after {drv.passes} passes, bound {bound:.10g}")
    if method == "relax":
        value = drv.crit.value(information_matrix(sub, x))
        return drv.result(sub, Outcome(x, termination, _status(drv.crit, value, bound, drv.dim, tol),
                                       bound=bound, solver="native", fractional=True), "relax")
    cls = method_class("round")
    opts = make_options(cls, {"tol": tol, "relax_tol": tol / 10.0, **options})
    outcome = cls().run(drv.context(sub, opts))
    value = drv.crit.value(information_matrix(sub, np.asarray(outcome.counts, dtype=np.float64)))
    outcome.bound = bound
    outcome.status = _status(drv.crit, value, bound, drv.dim, tol)
    return drv.result(sub, outcome, "round")


def solve_store(store: "str | os.PathLike | InstanceStore", method: str = "round",
                criterion: str | Criterion = "D", *, scheduler: "str | Any | None" = None,
                budget: float | None = None, time_limit: float | None = None, seed: int | None = None,
                options: dict | None = None, H: np.ndarray | None = None) -> Result:
    """Solve a store (:mod:`pairdesign.store`) on the Dask pool: ``scheduler`` is a scheduler
    address or a ``distributed.Client`` (default: ``DASK_SCHEDULER_ADDRESS`` if set, else Dask's
    local threaded scheduler). See :func:`solve_on_pool`."""
    from .dask_pool import DaskPool
    from .store import InstanceStore, open_store

    if not isinstance(store, InstanceStore):
        store = open_store(store)
    if method not in POOL_METHODS:  # before connecting to anything
        raise OptionError(f"method {method!r} does not run on the Dask pool; use one of {list(POOL_METHODS)}")
    with DaskPool(store, scheduler) as pool:
        return solve_on_pool(pool, method, criterion, budget=budget, time_limit=time_limit, seed=seed,
                             options=options, H=H)
