"""From the relaxation's fractional design x to an integer design that keeps every constraint.

Every scheme proposes labels in an order of preference; the labels are added in that order where
they fit (:class:`~pairdesign.polytope.DesignBuilder` checks every constraint, so the result is
always feasible), and whatever budget is left is completed greedily by marginal gain.

- ``largest``: the integer parts ``floor(x_p)`` first, then one more label on the pairs with the
  largest fractional parts ``x_p - floor(x_p)``, largest first.
- ``pipage``: dependent (pipage) rounding, seeded. Fractional parts are paired and moved against
  each other, ``(f_a, f_b) -> (f_a + e, f_b - e)`` with probabilities that keep every expectation
  ``E[n_p] = x_p``, until at most one is fractional; first within each prompt, then across the
  prompts of each group, then across everything. The sum over each prompt, group and the whole
  design ends at the floor or ceiling of its fractional sum, so caps and an integral budget are
  kept (Gandhi, Khuller, Parthasarathy and Srinivasan, 2006). Per-completion caps and costs are
  not laminar: the order-of-preference pass repairs them.
- ``efficient``: where repeats are allowed (u_p > 1), the efficient apportionment of Pukelsheim
  and Rieder (1992) of the weights ``x_p / sum x`` to the integer budget: start from
  ``ceil((B - l/2) x_p / sum x)`` on the l support points, then add to the pair of smallest
  ``n_p / x_p`` or take from the pair of largest ``(n_p - 1) / x_p`` until the labels sum to B.
"""

from __future__ import annotations

import math

import numpy as np

from ..information import information_matrix
from ..polytope import DesignBuilder, integer_point
from .base import Context
from .greedy import complete_greedily

SCHEMES = ("largest", "pipage", "efficient")


def place(ctx: Context, order: np.ndarray, reps: np.ndarray, *, complete: bool = True) -> DesignBuilder:
    """Add ``reps[i]`` labels of candidate ``order[i]`` in turn wherever they fit, then complete
    the budget greedily. Returns the (feasible) design."""
    design = DesignBuilder(ctx.polytope)
    if design.short():  # coverage minimums first, in the order given, then the rest of it
        rest = np.setdiff1d(np.arange(ctx.pool.size), order)
        full_order = np.r_[np.asarray(order, dtype=np.int64), rest]
        if not design.cover(full_order):
            design.reset_to(integer_point(ctx.polytope, full_order))
    for p, r in zip(np.asarray(order).tolist(), np.asarray(reps).tolist()):
        while design.counts[p] < r and design.fits(p):
            design.add(p)
        if design.full():
            break
    if complete and not design.full():
        complete_greedily(ctx, design)
    return design


def round_largest(ctx: Context, x: np.ndarray) -> DesignBuilder:
    """Integer parts first, then the largest fractional parts, then greedy completion."""
    base = np.floor(x + 1e-9)
    frac = np.where(x - base > 1e-9, x - base, 0.0)
    whole = np.flatnonzero(base > 0)
    part = np.flatnonzero(frac > 0)
    part = part[np.argsort(-frac[part], kind="stable")]
    order = np.r_[whole[np.argsort(-x[whole], kind="stable")], part]
    reps = np.r_[base[whole[np.argsort(-x[whole], kind="stable")]], base[part] + 1]
    return place(ctx, order, reps)


def pipage_counts(instance, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of dependent rounding: integer counts with ``E[n] = x`` whose sums over each
    prompt, each group (when groups are disjoint) and all pairs are floor or ceiling of x's."""
    cand = instance.candidates
    base = np.floor(x + 1e-12)
    frac = np.clip(x - base, 0.0, 1.0)
    frac[frac < 1e-12] = 0.0
    frac[frac > 1 - 1e-12] = 0.0
    base[(x - base) > 1 - 1e-12] += 1
    out = base.copy()

    def chain(indices: list[int]) -> int | None:
        """Pipage along ``indices``; returns the index left fractional (or None)."""
        carry: int | None = None
        for b in indices:
            if frac[b] == 0.0:
                continue
            if carry is None:
                carry = b
                continue
            a = carry
            up, down = min(1 - frac[a], frac[b]), min(frac[a], 1 - frac[b])  # a gains up / loses down
            if rng.random() < down / (up + down):
                frac[a] += up
                frac[b] -= up
            else:
                frac[a] -= down
                frac[b] += down
            for v in (a, b):
                if frac[v] < 1e-12:
                    frac[v] = 0.0
                elif frac[v] > 1 - 1e-12:
                    frac[v] = 0.0
                    out[v] += 1
            carry = a if frac[a] > 0 else (b if frac[b] > 0 else None)
        return carry

    support = np.flatnonzero(frac > 0)
    # within prompts (support is in candidate order, grouped by prompt only if candidates are;
    # sort by prompt to be safe, randomising the order inside each prompt)
    support = support[np.lexsort((rng.random(support.size), cand.prompt[support]))]
    prompts = cand.prompt[support]
    cuts = np.flatnonzero(np.diff(prompts)) + 1
    leftovers = [chain(block.tolist()) for block in np.split(support, cuts)] if support.size else []
    leftovers = [v for v in leftovers if v is not None]
    groups = instance.groups
    disjoint = sum(len(g.prompts) for g in groups) == len(set().union(*[set(g.prompts.tolist()) for g in groups])) \
        if groups else True
    if groups and disjoint:
        group_of = np.full(instance.n_prompts, -1)
        for gi, g in enumerate(groups):
            group_of[g.prompts] = gi
        by_group: dict[int, list[int]] = {}
        for v in leftovers:
            by_group.setdefault(int(group_of[cand.prompt[v]]), []).append(v)
        leftovers = [w for gi, members in by_group.items()
                     for w in ([chain(members)] if gi >= 0 else members) if w is not None]
    last = chain(leftovers)
    if last is not None:  # the whole sum was fractional: round the last one by its probability
        if rng.random() < frac[last]:
            out[last] += 1
        frac[last] = 0.0
    return out


def round_pipage(ctx: Context, x: np.ndarray, rng: np.random.Generator) -> DesignBuilder:
    """One pipage draw, placed in order of the relaxation's weights, then completed greedily."""
    counts = pipage_counts(ctx.instance, x, rng)
    chosen = np.flatnonzero(counts > 0)
    chosen = chosen[np.argsort(-x[chosen], kind="stable")]
    return place(ctx, chosen, counts[chosen])


def efficient_counts(x: np.ndarray, budget: int) -> np.ndarray:
    """Pukelsheim-Rieder efficient apportionment of the weights x (support l) to ``budget``."""
    n = np.zeros(x.shape[0])
    support = np.flatnonzero(x > 1e-9)
    if support.size == 0 or budget <= 0:
        return n
    w = x[support] / x[support].sum()
    counts = np.ceil((budget - support.size / 2) * w)
    counts = np.maximum(counts, 0)
    while counts.sum() < budget:
        i = int(np.argmin(counts / w))
        counts[i] += 1
    while counts.sum() > budget:
        i = int(np.argmax(np.where(counts > 0, (counts - 1) / w, -np.inf)))
        counts[i] -= 1
    n[support] = counts
    return n


def round_efficient(ctx: Context, x: np.ndarray) -> DesignBuilder:
    """Efficient rounding to the integer budget (capped by u_p), placed by weight, completed."""
    cand = ctx.pool.pairs
    labels = int(math.floor(ctx.budget + 1e-9)) if cand.unit_cost else int(math.floor(x.sum() + 1e-9))
    counts = np.minimum(efficient_counts(x, labels), cand.upper)
    chosen = np.flatnonzero(counts > 0)
    chosen = chosen[np.argsort(-x[chosen], kind="stable")]
    return place(ctx, chosen, counts[chosen])


def rounded_designs(ctx: Context, x: np.ndarray, draws: int) -> DesignBuilder:
    """Every rounding of x; returns the best (logged with each scheme's value)."""
    cand = ctx.pool.pairs
    best, best_value, best_name = None, -np.inf, ""
    schemes: list[tuple[str, object]] = [("largest", lambda: round_largest(ctx, x))]
    if int(cand.upper.max(initial=1)) > 1:
        schemes.append(("efficient", lambda: round_efficient(ctx, x)))
    for i in range(draws):
        schemes.append((f"pipage draw {i + 1}", lambda: round_pipage(ctx, x, ctx.rng)))
    for name, make in schemes:
        if best is not None and ctx.out_of_time():
            break
        design = make()  # type: ignore[operator]
        value = design_value(ctx, design)
        ctx.say(f"round: {name}: f = {value:.10g}")
        if value > best_value + 1e-12 * max(1.0, abs(value)):
            best, best_value, best_name = design, value, name
    ctx.say(f"round: best rounding is {best_name} (f = {best_value:.10g})")
    assert best is not None
    return best


def design_value(ctx: Context, design: DesignBuilder) -> float:
    return ctx.criterion.value(information_matrix(ctx.instance, design.counts, ctx.pool))
