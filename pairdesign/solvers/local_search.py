"""Local search by exchanges: take a label off a chosen pair p, put it on a pair q, while f improves.

The exchange changes M by a rank-two term, ``M' = M + U C U^T`` with ``U = [z_q, z_p]`` and
``C = diag(w_q, -w_p)``. With ``a_xy = z_x^T M^-1 z_y`` and ``b_xy = z_x^T M^-1 K M^-1 z_y``
(K = I for A, H for L) the change of the criterion is exact (matrix determinant lemma and
Woodbury):

    D:     log[(1 + w_q a_qq)(1 - w_p a_pp) + w_q w_p a_qp^2]
    A, L:  [w_q b_qq (w_p a_pp - 1) - 2 w_q w_p a_qp b_qp + w_p b_pp (1 + w_q a_qq)]
           / [(1 + w_q a_qq)(w_p a_pp - 1) - w_q w_p a_qp^2]

so a whole grid of exchanges (chosen p x candidate q) costs two small matrix products. When the
grid of every removable label against every candidate is small (``exhaustive_limit`` entries), the
search stops at a true 1-exchange local optimum. Otherwise candidates are screened: the ``removals``
chosen pairs whose labels cost least to remove (``w_p a_pp``-based losses) against the
``shortlist`` candidates of largest marginal gain, computed for all candidates through completions
(never a pairs x d matrix); after each exchange the short lists are updated and, when they hold no
improving exchange, rebuilt from scratch. Every exchange is checked against all constraints
(:class:`~pairdesign.polytope.DesignBuilder`), and freed budget (unequal costs) is refilled
greedily.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..polytope import DesignBuilder
from ..information import _inverse, information_matrix, marginal_gains
from ..errors import OptionError
from ..deadline import Deadline
from .base import Context, Outcome, check_stopping, finish_with_bound
from .frank_wolfe import Relaxed, relax_for_bound
from .rounding import design_value, rounded_designs


@dataclass
class SearchStats:
    exchanges: int = 0
    rescreens: int = 0
    local_optimum: bool = False  # proven 1-exchange local optimum (exhaustive grid)
    stopped_by_time: bool = False


def _can_add(design: DesignBuilder) -> bool:
    return not design.full() and bool(design.open_mask().any())


def exchange_values(Zp: np.ndarray, wp: np.ndarray, Zq: np.ndarray, wq: np.ndarray,
                    Minv: np.ndarray, K: np.ndarray | None) -> np.ndarray:
    """f(M - w_p z_p z_p^T + w_q z_q z_q^T) - f(M) for every (q, p): shape (len(Zq), len(Zp))."""
    Yp, Yq = Zp @ Minv, Zq @ Minv
    app = np.einsum("ij,ij->i", Yp, Zp)[None, :]
    aqq = np.einsum("ij,ij->i", Yq, Zq)[:, None]
    aqp = Yq @ Zp.T
    WP, WQ = wp[None, :], wq[:, None]
    if K is None:
        inner = (1 + WQ * aqq) * (1 - WP * app) + WQ * WP * aqp * aqp
        return np.log(np.maximum(inner, 1e-300))
    KYp = Yp @ K
    bpp = np.einsum("ij,ij->i", KYp, Yp)[None, :]
    bqq = np.einsum("ij,ij->i", Yq @ K, Yq)[:, None]
    bqp = Yq @ KYp.T
    num = WQ * bqq * (WP * app - 1) - 2 * WQ * WP * aqp * bqp + WP * bpp * (1 + WQ * aqq)
    den = (1 + WQ * aqq) * (WP * app - 1) - WQ * WP * aqp * aqp
    return num / den


def improve(ctx: Context, design: DesignBuilder, *, shortlist: int = 256, removals: int = 64,
            exhaustive_limit: int = 2_000_000, max_exchanges: int = 1_000_000,
            deadline: Deadline | None = None) -> SearchStats:
    """Improve ``design`` in place by exchanges until no screened exchange improves f (or time
    runs out: the context's deadline, or ``deadline``, a child of it). See the
    module docstring.

    The grid's closed forms rank the exchanges; each one taken is checked by recomputing f at
    the new M from its Cholesky factor (the closed forms lose digits when M is nearly singular
    along a chosen pair), and kept only if f really grows.
    """
    from .greedy import complete_greedily

    inst, crit = ctx.instance, ctx.criterion
    cand = ctx.pool.pairs
    K = crit.trace_weight(inst.dim)
    stats = SearchStats()

    def out_of_time() -> bool:
        return ctx.out_of_time() or (deadline is not None and deadline.expired())

    if _can_add(design) and not out_of_time():
        complete_greedily(ctx, design)

    def Z(rows: np.ndarray) -> np.ndarray:
        return ctx.pool.features(rows)

    M = information_matrix(inst, design.counts, ctx.pool)
    Minv = _inverse(M)
    value = crit.value(M)
    ctx.say(f"local search: start f = {value:.10g}, {int(design.counts.sum())} labels")
    max_checks = 64  # exchanges verified per grid before the grid counts as untrustworthy
    while stats.exchanges < max_exchanges:
        if out_of_time():
            stats.stopped_by_time = True
            break
        # screen: removable labels and open candidates
        chosen = np.flatnonzero(design.counts > cand.lower)
        open_q = np.flatnonzero(design.counts < cand.upper)
        if chosen.size == 0 or open_q.size == 0:
            stats.local_optimum = True
            break
        stats.rescreens += 1
        exhaustive = chosen.size * open_q.size <= exhaustive_limit
        if exhaustive:
            S, Q = chosen, open_q
        else:
            loss = -exchange_values(Z(chosen), cand.weight[chosen], np.zeros((1, inst.dim)),
                                    np.zeros(1), Minv, K)[0]
            S = chosen[np.argsort(loss, kind="stable")[:removals]]
            gain = marginal_gains(inst, M, crit, open_q, ctx.pool)
            top = min(shortlist, open_q.size)
            Q = ctx.pool.top(gain, top, among=open_q)
        improved_here = False
        trusted = True  # no improving-looking exchange was left unchecked or refuted
        while stats.exchanges < max_exchanges:
            if out_of_time():
                stats.stopped_by_time = True
                break
            eps = 1e-12 * max(1.0, abs(value))
            delta = exchange_values(Z(S), cand.weight[S], Z(Q), cand.weight[Q], Minv, K).ravel()
            flat = np.flatnonzero(delta > eps)
            if flat.size == 0:
                break
            flat = flat[np.argsort(-delta[flat], kind="stable")]
            if not exhaustive:
                flat = flat[:10_000]
            move = None
            checks = 0
            for f in flat.tolist():
                qi, pi = divmod(f, S.size)
                p, q = int(S[pi]), int(Q[qi])
                if p == q:
                    continue
                design.remove(p)
                if not design.fits(q):
                    design.add(p)
                    continue
                zp, zq = Z(np.array([p]))[0], Z(np.array([q]))[0]
                M_new = M + cand.weight[q] * np.outer(zq, zq) - cand.weight[p] * np.outer(zp, zp)
                try:
                    new_value = crit.value(M_new)
                except ValueError:  # not positive definite: the closed form was wrong
                    new_value = -np.inf
                if new_value > value + eps:
                    design.add(q)
                    if design.short():  # the exchange would break a coverage minimum
                        design.remove(q)
                        design.add(p)
                        continue
                    move = (M_new, new_value)
                    break
                design.add(p)
                trusted = False
                checks += 1
                if checks >= max_checks:
                    break
            if move is None:
                break
            M, value = move
            stats.exchanges += 1
            improved_here = True
            if stats.exchanges % 100 == 0:
                M = information_matrix(inst, design.counts, ctx.pool)
                value = crit.value(M)
            Minv = _inverse(M)
            ctx.progress(lambda: f"local search: {stats.exchanges} exchanges, f = {value:.10g}")
            # update the short lists: q may now be removed, p may take a label again
            if exhaustive:
                S = np.flatnonzero(design.counts > cand.lower)
                Q = np.flatnonzero(design.counts < cand.upper)
            else:
                S = np.unique(np.r_[S, q])
                Q = np.unique(np.r_[Q, p])
                S = S[design.counts[S] > cand.lower[S]]
                Q = Q[design.counts[Q] < cand.upper[Q]]
            if S.size == 0 or Q.size == 0:
                break
        if stats.stopped_by_time or stats.exchanges >= max_exchanges:
            break
        if _can_add(design):  # an exchange to a cheaper pair freed budget
            before = int(design.counts.sum())
            complete_greedily(ctx, design)
            if int(design.counts.sum()) > before:
                M = information_matrix(inst, design.counts, ctx.pool)
                Minv = _inverse(M)
                value = crit.value(M)
                continue
        if exhaustive:
            # the closed forms lose about cond(M)^2 * eps relative accuracy (A and L square M^-1):
            # below that, an improving exchange may look like none, so claim no local optimum
            stats.local_optimum = trusted and np.linalg.cond(M) ** 2 * 1e-15 <= 1e-6
            break
        if not improved_here:
            break
    value = crit.value(information_matrix(inst, design.counts, ctx.pool))
    ctx.say(f"local search: {stats.exchanges} exchanges, {stats.rescreens} screenings, f = {value:.10g}"
            + (" (1-exchange local optimum)" if stats.local_optimum else "")
            + (" (time limit)" if stats.stopped_by_time else ""))
    return stats


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
        ctx.say(f"local-search: start ({opts.start}) f = {design_value(ctx, design):.10g}")
        # with a time limit, keep a quarter of what is left for the relaxation's bound
        stats = improve(ctx, design, shortlist=opts.shortlist, removals=opts.removals,
                        deadline=ctx.share_of_time_left(0.75))
        if relaxed is None:  # the bound, warm-started at the design found
            relaxed = relax_for_bound(ctx, opts.relax_tol, start=design.counts.astype(np.float64))
        return finish_with_bound(ctx, design, relaxed, opts.tol, stats.stopped_by_time, "native", "local-search")

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
            return DesignBuilder.from_counts(ctx.polytope, loaded.counts)
        except ValueError as exc:
            raise DesignError(f"the design does not fit this instance and budget ({exc})",
                              source=opts.start) from None
