"""Exact designs by branch and bound with certified relaxation bounds (``exact``, ``algorithm=bnb``).

A node is a box ``lo <= n <= hi`` inside the bounds of section 4. Its bound is the Frank-Wolfe
certificate of the convex relaxation restricted to the box (:func:`solve_relaxation` with
``lower``/``upper``), valid however loosely the relaxation was solved, and never above its
parent's. The relaxation of a node stops as soon as its certificate falls to the incumbent plus
the tolerance (the node is pruned), and is warm-started from the parent's relaxed design. Nodes
are explored best-bound first; a node branches on its most fractional pair (``n_p <= floor(x_p)``
and ``n_p >= floor(x_p) + 1``), and every node's relaxed design is rounded (largest weights first,
:meth:`DesignBuilder.fill`) for incumbents, starting from the greedy design.

With ``symmetry`` (the default) the symmetry group of the instance is detected first
(:mod:`pairdesign.solvers.symmetry`); while a node's box keeps a nontrivial subgroup, the node
branches on the orbit O of its branching pair p under that subgroup (orbital branching): the
children are ``n_p >= c + 1`` and ``n_q <= c`` for every q in O, which loses no design up to a
symmetry of the same value. Node relaxations of D on a budget-and-bounds polytope are solved in
pair space (:mod:`pairdesign.solvers.node_bounds`: the same certificates for a third of the time).

With ``small_boxes`` (the default; D, budget and bounds, unit costs) a child box with few labels
left is searched exactly instead (:class:`SmallBoxSearch`: at most ``SMALL_BOX_WORK`` states) and
closed, its maximum counted like a pruned node's bound; where at most d labels are left, Hadamard's
bound ``log det M(lo) + sum of the r largest log(1 + w_p z_p^T M(lo)^-1 z_p)`` is tried before the
relaxation (:func:`top_gains_bound`; docs/design.md section 12.7).

The global upper bound is the largest bound among the open nodes and the nodes pruned so far;
``optimal`` only when it is within the tolerance of the incumbent.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math

import numpy as np

from ..polytope import DesignBuilder
from ..errors import InfeasibleError
from ..information import information_matrix
from .base import Context, FixedIncumbent, Outcome, Timings, gap_closed, loop_stop
from .frank_wolfe import allowed_gap, solve_relaxation
from .greedy import greedy_design
from .node_bounds import PairSpaceRelaxation, SmallBoxSearch
from .result import SolutionStatus, TerminationCondition
from .symmetry import OrbitalBranching

_INTEGRAL = 1e-6  # |x_p - round(x_p)| below this counts as integral
NODE_TOL = 1e-4  # node relaxations: a looser bound only prunes later; it is valid all the same
SMALL_BOX_WORK = 400  # a box is searched exactly when its search has at most this many states
_SILENT = logging.getLogger("pairdesign.solvers.branch_and_bound.node")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False


def branch_and_bound(ctx: Context) -> Outcome:
    inst, crit, opts = ctx.instance, ctx.criterion, ctx.options
    lc = ctx.polytope
    clock = Timings()
    max_nodes = opts.max_nodes if opts.max_nodes is not None else 100 * opts.max_iterations

    with clock("symmetry"):
        orbital = OrbitalBranching.for_instance(inst, crit, getattr(opts, "symmetry", True))
    if orbital.active:
        ctx.say(f"exact (branch and bound): symmetry group of order {orbital.order:.6g}: "
                f"orbital branching")
    with clock("greedy"):
        best = greedy_design(ctx)
    best_value = crit.value(information_matrix(inst, best, ctx.pool))
    ctx.incumbent = FixedIncumbent(best)

    def round_design(x: np.ndarray) -> None:
        nonlocal best, best_value
        builder = DesignBuilder(ctx.polytope)
        builder.fill(np.argsort(-x, kind="stable"))
        n = builder.counts.astype(np.float64)
        value = crit.value(information_matrix(inst, n, ctx.pool))
        if value > best_value:
            best, best_value = n, value
            ctx.incumbent = FixedIncumbent(best)

    pair_space = PairSpaceRelaxation(inst, crit, lc)
    small = SmallBoxSearch(pair_space)
    use_small = small.applies and getattr(opts, "small_boxes", True)
    small_boxes = quick_prunes = 0

    def relax(lo: np.ndarray, hi: np.ndarray, start: np.ndarray | None, stop_below: float | None,
              tol: float = NODE_TOL):
        if pair_space.applies and start is not None:
            with clock("relaxation"):
                try:
                    return pair_space.solve(lo, hi, start, stop_below, tol, deadline=ctx.out_of_time)
                except FloatingPointError:
                    pass  # M(x) singular at the start: the general solver copes
        node_ctx = ctx.phase(None, problem=ctx.problem.restrict(lo, hi), logger=_SILENT)
        with clock("relaxation"):
            return solve_relaxation(node_ctx, tol=tol, start=start, stop_below=stop_below,
                                    max_iterations=500)

    # an open node: (-bound, tie-break, its bounds that differ from the root's {p: (lo, hi)}, its
    # relaxation, solved when the node was created)
    counter = itertools.count()
    root = relax(lc.lower, lc.upper, None, None, tol=min(opts.tol, 1e-6))  # as tight as OA's first bound
    root_bound = root.bound
    ctx.known.offer_bound(max(root_bound, best_value))  # the root's box is the whole polytope
    heap: list = [(-root_bound, next(counter), {}, root, orbital.active)]
    pruned_max = -math.inf  # the largest bound of a node closed without an integer proof
    nodes, termination = 0, TerminationCondition.iteration_limit
    ctx.say(f"exact (branch and bound): root bound {root_bound:.10g}, greedy {best_value:.10g}")
    while heap:
        target = allowed_gap(crit, best_value, inst.dim, opts.tol)
        bound = max(-heap[0][0], pruned_max)
        ctx.known.offer_bound(max(min(bound, root_bound), best_value))
        ctx.progress(lambda: f"exact (branch and bound): {nodes} nodes, {len(heap)} open, incumbent "
                     f"{best_value:.10g}, bound {bound:.10g}, gap {bound - best_value:.3g} "
                     f"(target {target:.3g})")
        stop = loop_stop(ctx, best_value, bound, opts.tol)
        if stop is not None:
            termination = stop
            break
        if nodes >= max_nodes:
            break
        neg_bound, _, changes, relaxed, symmetric = heapq.heappop(heap)
        node_bound = -neg_bound
        if node_bound <= best_value + target:  # the incumbent improved since it was queued
            pruned_max = max(pruned_max, node_bound)
            continue
        nodes += 1
        x = relaxed.n
        lo, hi = _box(lc, changes)
        round_design(x)
        frac = np.abs(x - np.round(x))
        free = np.flatnonzero(hi > lo)
        if free.size == 0 or frac.max(initial=0.0) <= _INTEGRAL:  # an integral relaxed design
            xi = np.round(x)
            value = crit.value(information_matrix(inst, xi, ctx.pool)) if not lc.violations(xi) else -math.inf
            if value > best_value:
                best, best_value = xi, value
                ctx.incumbent = FixedIncumbent(best)
        if free.size == 0:
            continue  # the box holds one design, evaluated just above
        p = int(free[np.argmax(frac[free])])
        if frac[p] <= _INTEGRAL:  # the relaxed design is integral: branch where it is largest
            if node_bound <= best_value + allowed_gap(crit, best_value, inst.dim, opts.tol):
                pruned_max = max(pruned_max, node_bound)
                continue
            p = int(free[np.argmax(x[free] - lo[free])])
            xp = float(np.round(x[p]))  # x[p] is integral up to _INTEGRAL: cut at an integer,
            cut = xp - 1.0 if xp >= hi[p] else xp  # or a child box would lose the designs at xp
        else:
            cut = math.floor(x[p])
        with clock("symmetry"):
            orbit, symmetric = orbital.orbit(p, lo, hi) if symmetric else (np.array([p]), False)
        for child_lo, child_hi in ((lo[p], cut), (cut + 1.0, hi[p])):
            if child_hi < child_lo:
                continue
            child = dict(changes)
            child[p] = (child_lo, child_hi)
            if child_lo == lo[p]:  # the down branch: n_q <= cut on p's whole orbit
                for q in orbit.tolist():
                    child[q] = (lo[q], cut)
            clo, chi = _box(lc, child)
            if lc.first_broken_row(clo) is not None:
                continue  # no design in this box
            target = allowed_gap(crit, best_value, inst.dim, opts.tol)
            if use_small and small.work(clo, chi) <= SMALL_BOX_WORK:
                with clock("small_box_search"):
                    try:
                        found = small.solve(clo, chi, best_value + target)
                    except FloatingPointError:  # M(lo) singular: the relaxation copes
                        found = None
                if found is not None:
                    small_boxes += 1
                    if found.design is not None:
                        value = crit.value(information_matrix(inst, found.design, ctx.pool))
                        if value > best_value and not lc.violations(found.design):
                            best, best_value = found.design, value
                            ctx.incumbent = FixedIncumbent(best)
                    pruned_max = max(pruned_max, min(node_bound, found.ceiling))
                    continue
            quick = math.inf
            if use_small and small.labels_left(clo, chi)[0] <= inst.dim:  # else too loose to prune
                with clock("quick_bounds"):
                    quick = small.quick_bound(clo, chi)
                if quick <= best_value + target:
                    quick_prunes += 1
                    pruned_max = max(pruned_max, min(node_bound, quick))
                    continue
            try:
                r = relax(clo, chi, np.clip(x, clo, chi), stop_below=best_value + target)
            except InfeasibleError:
                continue
            child_bound = min(node_bound, r.bound, quick)
            if child_bound <= best_value + target:
                pruned_max = max(pruned_max, child_bound)
                continue
            heapq.heappush(heap, (-child_bound, next(counter), child, r, symmetric))
    bound = max([-heap[0][0]] if heap else [], default=-math.inf)
    bound = max(bound, pruned_max, best_value)
    bound = min(bound, root_bound)
    if not heap and termination is TerminationCondition.iteration_limit:
        termination = TerminationCondition.converged
    proven = gap_closed(ctx, best_value, bound, opts.tol)
    ctx.say(f"exact (branch and bound): {termination.value}: incumbent {best_value:.10g}, "
            f"bound {bound:.10g}, {nodes} nodes, {len(heap)} open")
    ctx.say(f"exact: stats: cuts=0 nodes={nodes} nauty_calls={orbital.calls} "
            f"small_boxes={small_boxes} quick_prunes={quick_prunes} {clock.summary()}")
    return Outcome(best.astype(np.int64), termination,
                   SolutionStatus.optimal if proven else SolutionStatus.feasible,
                   bound=bound, solver="branch-and-bound")


def _box(lc, changes: dict) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = lc.lower.copy(), lc.upper.copy()
    for p, (a, b) in changes.items():
        lo[p], hi[p] = a, b
    return lo, hi

