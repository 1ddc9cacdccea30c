"""The candidate pool by blocks of whole prompts: the kernels, the reduces, and the in-memory pool.

Everything that touches all candidate pairs is a map over blocks with a small reduce:

- the **gain pass**: ``g_p = w_p |R^T z_p|^2`` for every pair of a block (``R R^T = df/dM``,
  through completions: ``psi = phi R``), reduced to the ``top`` pairs of largest gain (the
  working set grows from them) and to the pairs that the linear oracle's vertex can use;
- the **linear oracle's vertex** ``s = argmax {g^T s : s in the polytope}`` by a distributed
  selection, for the constraints where it is a sort: the budget (unit costs) and bounds
  (greedy by gain: the fractional knapsack), per-prompt caps (within each prompt by gain up to
  the cap, then across prompts by gain: greedy is exact on this laminar polymatroid) and a
  coverage minimum l for every prompt (each prompt's l best labels first, whatever their gain:
  a prompt's best value given t labels is concave in t). A block
  keeps only its pairs that could still receive budget (cumulative room below the budget left),
  so the reduce is exact and small;
- the **marginal pass** of greedy: ``f(M + w z z^T) - f(M)`` of every open pair, reduced to the
  ``top`` largest and the next value (the bound of lazy greedy);
- the **fill pass** of a ranking (a baseline's order, or greedy's for coverage minimums): the
  design :meth:`~pairdesign.polytope.DesignBuilder.fill` builds, block by block
  (:func:`fill_block`);
- **features on demand**: the centred feature rows of the pairs a pass returns travel with them.

Pairs are named by their global completion rows ``(j, k)``, ``j < k``, in the same prompt; the
candidates are every such pair, minus pairs fixed out and pairs already labeled (explicit pair
lists, per-completion caps, groups and minimums of each prompt's own are refused: the oracle
would be an LP over all pairs). :class:`MemoryPool` runs the kernels in this process on an in-memory
instance; :class:`pairdesign.dask_pool.DaskPool` runs the same kernels on Dask workers over a
store (:mod:`pairdesign.store`). The solvers above them (:mod:`pairdesign.outofcore`) see only
the pool. :func:`forms_block` serves the seam of :mod:`pairdesign.pool` (length-P vectors of
quadratic forms, gathered in the driver).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from .errors import InfeasibleError, OptionError
from .information import Criterion, pair_quadratic_forms, sigmoid
from .instance import Instance
from .store import Block, block_layout

__all__ = ["BlockPool", "BlockSource", "GainPass", "MarginalPass", "MemoryPool", "PoolSpec",
           "RowData", "TopPairs", "VertexEntries"]


# ------------------------------------------------------------------------------ what a task needs
@dataclass(frozen=True)
class PoolSpec:
    """The settings of the candidates that every block task needs (small, picklable).

    Keys of pairs are ``j * N + k`` (``j < k`` global rows, N completions)."""

    n_completions: int
    dim: int
    weights: str
    max_labels_per_pair: int
    max_pairs_per_prompt: float  # inf: none
    own_caps: bool  # prompts carry caps of their own (prompt_max_pairs)
    fixed_in: np.ndarray  # sorted keys
    dropped: np.ndarray  # sorted keys of pairs fixed out or already labeled
    min_pairs_per_prompt: float = 0.0  # l, the labels every prompt must get at least (0: none)

    def key(self, j: np.ndarray, k: np.ndarray) -> np.ndarray:
        lo, hi = np.minimum(j, k).astype(np.int64), np.maximum(j, k).astype(np.int64)
        return lo * np.int64(self.n_completions) + hi

    @property
    def has_caps(self) -> bool:
        return self.own_caps or np.isfinite(self.max_pairs_per_prompt)


def pool_spec(*, n_completions: int, dim: int, meta: dict[str, Any], own_caps: bool,
              pairs: np.ndarray | None, fixed_in: np.ndarray | None, fixed_out: np.ndarray | None,
              labeled: np.ndarray | None, groups: bool, own_minimums: bool = False,
              forms_only: bool = False) -> PoolSpec:
    """The spec of a pool, refusing what the pool cannot do (one clear line each, up front).
    ``forms_only``: the pool serves only quadratic forms (the seam's Dask pool, whose oracle is in
    memory): only explicit pair lists are refused."""
    if pairs is not None:
        raise OptionError("the candidate pool takes every pair within each prompt; this instance "
                          "lists explicit pairs (solve it in memory)")
    if forms_only:
        pass
    elif meta.get("max_pairs_per_completion") is not None:
        raise OptionError("the candidate pool does not support per-completion caps "
                          "(max_pairs_per_completion): its linear oracle is then an LP over all pairs "
                          "(solve the instance in memory)")
    elif groups:
        raise OptionError("the candidate pool does not support groups (group budgets and minimums "
                          "couple prompts of every block; solve the instance in memory)")
    elif own_minimums:
        raise OptionError("the candidate pool supports one coverage minimum for every prompt "
                          "(min_pairs_per_prompt), not minimums of each prompt's own "
                          "(prompts[].min_pairs; solve the instance in memory)")
    N = int(n_completions)

    def keys(table: np.ndarray | None) -> np.ndarray:
        if table is None or len(table) == 0:
            return np.zeros(0, dtype=np.int64)
        t = np.asarray(table, dtype=np.int64)
        return np.unique(np.minimum(t[:, 0], t[:, 1]) * N + np.maximum(t[:, 0], t[:, 1]))

    cap = meta.get("max_pairs_per_prompt")
    upper = meta.get("max_labels_per_pair", 1)
    return PoolSpec(n_completions=N, dim=int(dim), weights=str(meta.get("weights", "uniform")),
                    max_labels_per_pair=int(1 if upper is None else upper),
                    max_pairs_per_prompt=np.inf if cap is None else float(cap), own_caps=own_caps,
                    fixed_in=keys(fixed_in), dropped=np.union1d(keys(fixed_out), keys(labeled)),
                    min_pairs_per_prompt=float(meta.get("min_pairs_per_prompt") or 0))


class BlockSource(Protocol):
    """Blocks of whole prompts (an in-memory instance or a store)."""

    n_blocks: int

    def block(self, b: int) -> Block: ...


# ------------------------------------------------------------------------------ block kernels
@dataclass(frozen=True)
class BlockPairs:
    """The candidate pairs of one block: global rows, local rows, prompt, bounds, weights."""

    j: np.ndarray
    k: np.ndarray
    jl: np.ndarray
    kl: np.ndarray
    prompt: np.ndarray
    key: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    weight: np.ndarray


def centred(block: Block) -> np.ndarray:
    """phi minus its prompt's mean (as :func:`pairdesign.information.centered_features`)."""
    offsets = np.zeros(block.prompt_sizes.size + 1, dtype=np.int64)
    np.cumsum(block.prompt_sizes, out=offsets[1:])
    sums = np.add.reduceat(block.features, offsets[:-1], axis=0)
    means = sums / block.prompt_sizes[:, None]
    return block.features - np.repeat(means, block.prompt_sizes, axis=0)


def block_pairs(block: Block, spec: PoolSpec) -> BlockPairs:
    """Every pair (j < k) within each prompt of the block, prompt-major, in local order (0,1),
    (0,2), ... (the order of the in-memory candidates), minus pairs fixed out or labeled."""
    sizes = block.prompt_sizes
    starts = np.zeros(sizes.size, dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    js, ks = [], []
    for size in np.unique(sizes):
        if size < 2:
            continue
        a, b = np.triu_indices(int(size), k=1)
        s = starts[sizes == size][:, None]
        js.append((s + a[None, :]).ravel())
        ks.append((s + b[None, :]).ravel())
    if js:
        jl, kl = np.concatenate(js).astype(np.int64), np.concatenate(ks).astype(np.int64)
        if len(js) > 1:  # prompts of several sizes: back to prompt-major order
            order = np.lexsort((kl, jl))
            jl, kl = jl[order], kl[order]
    else:
        jl = kl = np.zeros(0, dtype=np.int64)
    j, k = jl + block.row0, kl + block.row0
    key = spec.key(j, k)
    if spec.dropped.size:
        keep = ~np.isin(key, spec.dropped)
        j, k, jl, kl, key = j[keep], k[keep], jl[keep], kl[keep], key[keep]
    local_prompt = np.repeat(np.arange(sizes.size), sizes)
    prompt = local_prompt[jl] + block.prompt0
    lower = np.isin(key, spec.fixed_in).astype(np.float64) if spec.fixed_in.size else np.zeros(j.size)
    upper = np.full(j.size, float(spec.max_labels_per_pair))
    if spec.weights == "uniform":
        weight = np.full(j.size, 0.25)
    else:
        if block.scores is None or not np.all(np.isfinite(block.scores)):
            raise OptionError("weights 'scores' need a score for every completion")
        s = sigmoid(block.scores[jl] - block.scores[kl])
        weight = s * (1.0 - s)
    return BlockPairs(j, k, jl, kl, prompt, key, lower, upper, weight)


def prompt_caps(block: Block, spec: PoolSpec) -> np.ndarray:
    """m_i of the block's prompts (inf where uncapped), as ``Instance.prompt_caps``."""
    caps = np.full(block.prompt_sizes.size, spec.max_pairs_per_prompt)
    if block.prompt_caps is not None:
        own = np.isfinite(block.prompt_caps)
        caps[own] = block.prompt_caps[own]
    return caps


@dataclass
class RowData:
    """Centred features (and scores) of completion rows, as passes return them."""

    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    prompt: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    scores: np.ndarray | None = None

    @staticmethod
    def of(block: Block, phi_c: np.ndarray, local_rows: np.ndarray) -> "RowData":
        local_rows = np.unique(local_rows)
        local_prompt = np.repeat(np.arange(block.prompt_sizes.size), block.prompt_sizes)
        return RowData(local_rows + block.row0, local_prompt[local_rows] + block.prompt0,
                       phi_c[local_rows], None if block.scores is None else block.scores[local_rows])

    @staticmethod
    def merge(parts: Sequence["RowData"]) -> "RowData":
        parts = [p for p in parts if p.rows.size]
        if not parts:
            return RowData()
        rows = np.concatenate([p.rows for p in parts])
        rows, first = np.unique(rows, return_index=True)
        pick = lambda name: np.concatenate([getattr(p, name) for p in parts])[first]  # noqa: E731
        return RowData(rows, pick("prompt"), pick("features"),
                       None if parts[0].scores is None else pick("scores"))


@dataclass
class TopPairs:
    """Pairs with a value each (largest first), their prompts, and the rows' features."""

    j: np.ndarray
    k: np.ndarray
    prompt: np.ndarray
    value: np.ndarray
    amount: np.ndarray  # how much of the pair the vertex may take (vertex entries); else ones

    @staticmethod
    def empty() -> "TopPairs":
        z = np.zeros(0, dtype=np.int64)
        return TopPairs(z, z, z, np.zeros(0), np.zeros(0))

    def take(self, index: np.ndarray) -> "TopPairs":
        return TopPairs(self.j[index], self.k[index], self.prompt[index], self.value[index],
                        self.amount[index])

    @staticmethod
    def concat(parts: Sequence["TopPairs"]) -> "TopPairs":
        if not parts:
            return TopPairs.empty()
        return TopPairs(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("j", "k", "prompt", "value", "amount")))

    def ordered(self) -> np.ndarray:
        """Largest value first; ties by (j, k), so that every grouping of blocks agrees."""
        return np.lexsort((self.k, self.j, -self.value))


VertexEntries = TopPairs


def _top(values: np.ndarray, count: int) -> np.ndarray:
    if values.size > count:
        return np.argpartition(-values, count)[:count]
    return np.arange(values.size)


@dataclass
class GainPass:
    """One gain pass: the ``top`` pairs of largest gain, the vertex's candidate entries (those
    competing for the budget, and the ``mandatory`` ones that every prompt's coverage minimum
    forces: its pairs of largest gain), the gains of the pairs fixed in (``fixed_gain = sum g_p
    lower_p``), and the feature rows of every pair returned."""

    top: TopPairs
    vertex: VertexEntries
    fixed_gain: float
    rows: RowData
    pairs: int
    mandatory: VertexEntries = field(default_factory=TopPairs.empty)


@dataclass
class MarginalPass:
    """One marginal pass: the ``top`` open pairs of largest marginal gain, the largest marginal
    gain of the others (``-inf`` if none), and the rows' features."""

    top: TopPairs
    bound: float
    rows: RowData
    pairs: int


def within_prompt_before(prompts: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """For entries sorted by prompt: the amount of the entries before each one in its prompt."""
    if prompts.size == 0:
        return np.zeros(0)
    cum = np.cumsum(amount)
    starts = np.flatnonzero(np.r_[True, prompts[1:] != prompts[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, prompts.size]))
    return cum - amount - (cum[first] - amount[first])


def prompt_needs(block: Block, spec: PoolSpec, lower: np.ndarray, local_prompt: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(left, need) of the block's prompts: the cap left after the pairs fixed in, and the labels
    the coverage minimum still asks for, ``max(l - fixed_i, 0)``."""
    fixed = np.bincount(local_prompt, lower, minlength=block.prompt_sizes.size)
    need = np.maximum(spec.min_pairs_per_prompt - fixed, 0.0)
    return prompt_caps(block, spec) - fixed, need


def check_coverable(block: Block, need: np.ndarray, room: np.ndarray) -> None:
    """Every prompt has room for the labels its coverage minimum asks for."""
    short = np.flatnonzero(room < need - 1e-9)
    if short.size:
        i = int(short[0])
        raise InfeasibleError(f"prompt {block.prompt0 + i} can take {room[i]:g} more labels, fewer than "
                              f"the {need[i]:g} its coverage minimum (min_pairs_per_prompt) asks for")


def gain_block(source: BlockSource, b: int, spec: PoolSpec, R: np.ndarray, top: int,
               budget_left: float) -> GainPass:
    """The gain pass on block ``b``: gains ``w |R^T z|^2``, the ``top`` largest, and the entries
    the vertex may use (see the module docstring): with per-prompt caps or coverage minimums,
    each prompt's pairs by gain, the first up to its minimum (mandatory), then up to its cap.
    ``budget_left`` is what the budget leaves after the pairs fixed in and every mandatory entry.

    The vertex is exact: with unit costs the best value of a prompt given t labels is the sum of
    its t largest gains, concave in t, so filling every minimum with the prompt's best pairs and
    then the budget by gain across prompts (within the caps) maximises ``g^T s``."""
    block = source.block(b)
    phi = centred(block)
    cand = block_pairs(block, spec)
    psi = phi @ R
    g = cand.weight * pair_quadratic_forms(psi, cand.jl, cand.kl)
    fixed_gain = float(g @ cand.lower)
    best = _top(g, top)
    best_pairs = TopPairs(cand.j[best], cand.k[best], cand.prompt[best], g[best], np.ones(best.size))
    # the vertex: what each useful pair may take, then the block's prefix that fits the budget
    room = cand.upper - cand.lower
    mandatory = TopPairs.empty()
    if spec.has_caps or spec.min_pairs_per_prompt > 0:
        local_prompt = cand.prompt - block.prompt0
        left, need = prompt_needs(block, spec, cand.lower, local_prompt)
        considered = np.flatnonzero((room > 0) & ((g > 0) | (need[local_prompt] > 0)))
        by_prompt = considered[np.lexsort((cand.k[considered], cand.j[considered], -g[considered],
                                           cand.prompt[considered]))]
        prompts = local_prompt[by_prompt]
        r = room[by_prompt]
        before = within_prompt_before(prompts, r)
        total = np.clip(left[prompts] - before, 0.0, r)
        must = np.clip(need[prompts] - before, 0.0, r)
        if need.any():
            check_coverable(block, need, np.bincount(prompts, r, minlength=need.size))
            pick = must > 0
            m = by_prompt[pick]
            mandatory = TopPairs(cand.j[m], cand.k[m], cand.prompt[m], g[m], must[pick])
        amount = np.where(g[by_prompt] > 0, total - must, 0.0)
        useful, amount = by_prompt[amount > 0], amount[amount > 0]
    else:
        useful = np.flatnonzero((g > 0) & (room > 0))
        amount = room[useful]
    entries = TopPairs(cand.j[useful], cand.k[useful], cand.prompt[useful], g[useful], amount)
    entries = budget_prefix(entries, budget_left)
    local = np.concatenate([cand.jl[best], cand.kl[best], entries.j - block.row0, entries.k - block.row0,
                            mandatory.j - block.row0, mandatory.k - block.row0])
    return GainPass(best_pairs, entries, fixed_gain, RowData.of(block, phi, local), int(g.size), mandatory)


def budget_prefix(entries: TopPairs, budget_left: float) -> TopPairs:
    """The entries, largest value first, that receive budget in the greedy vertex: those whose
    cumulative amount before them is below ``budget_left`` (unit costs)."""
    if budget_left <= 0:
        return entries.take(np.zeros(0, dtype=np.int64))
    if entries.amount.size:  # at most budget_left / (smallest amount) + 1 of them: select first
        m = int(math.ceil(budget_left / float(entries.amount.min()))) + 1
        if entries.amount.size > 2 * m:
            entries = entries.take(np.argpartition(-entries.value, m)[:m + 1])
    order = entries.ordered()
    before = np.cumsum(entries.amount[order]) - entries.amount[order]
    return entries.take(order[before < budget_left])


def reduce_gains(parts: Sequence[GainPass], top: int, budget_left: float) -> GainPass:
    """Merge gain passes (exact: the top and the vertex prefix of a union are in the union of
    the parts' tops and prefixes)."""
    allp = TopPairs.concat([p.top for p in parts])
    order = allp.ordered()[:top]
    vertex = budget_prefix(TopPairs.concat([p.vertex for p in parts]), budget_left)
    kept = allp.take(order)
    mandatory = TopPairs.concat([p.mandatory for p in parts])
    rows = RowData.merge([p.rows for p in parts])
    need = np.concatenate([kept.j, kept.k, vertex.j, vertex.k, mandatory.j, mandatory.k])
    mask = np.isin(rows.rows, need)
    rows = RowData(rows.rows[mask], rows.prompt[mask], rows.features[mask],
                   None if rows.scores is None else rows.scores[mask])
    return GainPass(kept, vertex, float(sum(p.fixed_gain for p in parts)), rows,
                    int(sum(p.pairs for p in parts)), mandatory)


def vertex_value(gp: GainPass, budget_left: float) -> tuple[TopPairs, float]:
    """The vertex's extra labels over the lower bounds (take > 0) and ``max g^T s``:
    the mandatory entries, then the budget left (after them) by gain."""
    v = gp.vertex
    order = v.ordered()
    v = v.take(order)
    before = np.cumsum(v.amount) - v.amount
    take = np.clip(budget_left - before, 0.0, v.amount)
    keep = take > 0
    chosen = TopPairs.concat([gp.mandatory, TopPairs(v.j[keep], v.k[keep], v.prompt[keep], v.value[keep], take[keep])])
    return chosen, gp.fixed_gain + float(gp.mandatory.value @ gp.mandatory.amount) + float(v.value[keep] @ take[keep])


def marginal_block(source: BlockSource, b: int, spec: PoolSpec, R1: np.ndarray, R2: np.ndarray | None,
                   criterion: str, top: int, closed_prompts: np.ndarray, full_pairs: np.ndarray) -> MarginalPass:
    """Marginal gains of the block's open pairs: D ``log(1 + w q1)``, A/L ``w q2 / (1 + w q1)``
    (q1 = |R1^T z|^2, q2 = |R2^T z|^2); the ``top + 1`` largest are kept. ``closed_prompts``:
    prompts at their cap; ``full_pairs``: keys of pairs at their label bound."""
    block = source.block(b)
    phi = centred(block)
    cand = block_pairs(block, spec)
    kind = Criterion.named(criterion)
    q1 = pair_quadratic_forms(phi @ R1, cand.jl, cand.kl)
    q2 = None if kind.is_log_det else pair_quadratic_forms(phi @ R2, cand.jl, cand.kl)
    mg = kind.rank_one_gain(cand.weight, q1, q2)
    open_ = np.ones(mg.size, dtype=bool)
    if closed_prompts.size:
        open_ &= ~np.isin(cand.prompt, closed_prompts)
    if full_pairs.size:
        open_ &= ~np.isin(cand.key, full_pairs)
    idx = np.flatnonzero(open_)
    best = idx[_top(mg[idx], top + 1)]
    pairs = TopPairs(cand.j[best], cand.k[best], cand.prompt[best], mg[best], np.ones(best.size))
    return MarginalPass(pairs, -np.inf, RowData.of(block, phi, np.concatenate([cand.jl[best], cand.kl[best]])),
                        int(idx.size))


def reduce_marginals(parts: Sequence[MarginalPass], top: int) -> MarginalPass:
    allp = TopPairs.concat([p.top for p in parts])
    order = allp.ordered()
    kept, rest = allp.take(order[:top]), allp.take(order[top:])
    bound = max([float(rest.value.max(initial=-np.inf))] + [p.bound for p in parts])
    rows = RowData.merge([p.rows for p in parts])
    mask = np.isin(rows.rows, np.concatenate([kept.j, kept.k]))
    rows = RowData(rows.rows[mask], rows.prompt[mask], rows.features[mask],
                   None if rows.scores is None else rows.scores[mask])
    return MarginalPass(kept, bound, rows, int(sum(p.pairs for p in parts)))


# ------------------------------------------------------------------------------ filling by a ranking
@dataclass(frozen=True)
class BlockView:
    """A block's candidates as a ranking sees them: global rows ``j``, ``k`` and ``prompt`` of
    every pair, block-local rows ``jl``, ``kl``, the local prompt of every row ``row_prompt``,
    local prompt offsets, the rows' scores and centred features."""

    j: np.ndarray
    k: np.ndarray
    prompt: np.ndarray
    jl: np.ndarray
    kl: np.ndarray
    row_prompt: np.ndarray
    offsets: np.ndarray
    scores: np.ndarray | None
    phi: np.ndarray
    weight: np.ndarray

    @property
    def local_prompt(self) -> np.ndarray:
        return self.row_prompt[self.jl]

    def score_gap(self) -> np.ndarray:
        if self.scores is None or not np.all(np.isfinite(self.scores)):
            raise OptionError("this ranking needs a score for every completion")
        return self.scores[self.jl] - self.scores[self.kl]


class Ranking(Protocol):
    """What a fill pass orders the candidates by (picklable: it travels to the workers)."""

    def block_keys(self, view: BlockView, block: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """(pairs, keys): the indices of the view's pairs the ranking takes, and sort keys for
        them, most significant first (the pool breaks ties by (j, k), the candidates' order)."""
        ...


@dataclass
class FillPass:
    """A fill pass: the labels that coverage minimums take (``cover``, all of them) and the
    labels competing for the budget (``units``: one per label, ``keys`` their global order,
    pass first), reduced to the first ``capacity`` of them; rows of every pair returned."""

    cover: TopPairs
    units: TopPairs
    keys: np.ndarray
    pairs: int

    def counts(self, capacity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The labels the fill adds over the lower bounds, as (j, k, labels) per pair: every cover
        label and the first ``capacity`` of the passes."""
        first = self.units.take(_first_units(self.keys, capacity))
        j = np.r_[self.cover.j, first.j]
        k = np.r_[self.cover.k, first.k]
        amount = np.r_[self.cover.amount, first.amount]
        both, inverse = np.unique(np.c_[j, k], axis=0, return_inverse=True)
        return both[:, 0], both[:, 1], np.bincount(inverse.ravel(), amount, minlength=both.shape[0])


def _first_units(keys: np.ndarray, capacity: int) -> np.ndarray:
    """Indices of the ``capacity`` units of smallest keys (rows compared lexicographically)."""
    if keys.shape[0] == 0 or capacity <= 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort(keys.T[::-1])
    return order[:capacity]


def fill_block(source: BlockSource, b: int, spec: PoolSpec, ranking: Ranking, capacity: int) -> FillPass:
    """The design that :meth:`~pairdesign.polytope.DesignBuilder.fill` builds from the ranking,
    on block ``b``: first every prompt's coverage minimum from its pairs in ranking order (a pair
    up to its bound), then passes over the pairs in ranking order, one label per pair and pass,
    within each prompt's cap. Prompts do not interact except through the budget, so the block
    keeps its labels of the passes and the reduce takes the first ``capacity`` of all blocks' in
    (pass, ranking) order: the global fill, exactly (unit costs; no per-completion caps)."""
    block = source.block(b)
    phi = centred(block)
    cand = block_pairs(block, spec)
    sizes = block.prompt_sizes
    offsets = np.zeros(sizes.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    row_prompt = np.repeat(np.arange(sizes.size), sizes)
    view = BlockView(cand.j, cand.k, cand.prompt, cand.jl, cand.kl, row_prompt, offsets, block.scores,
                     phi, cand.weight)
    idx, keys = ranking.block_keys(view, b)
    idx = np.asarray(idx, dtype=np.int64)
    columns = [np.asarray(key, dtype=np.float64) for key in keys] + [cand.j[idx].astype(np.float64),
                                                                       cand.k[idx].astype(np.float64)]
    local_prompt = cand.prompt - block.prompt0
    left, need = prompt_needs(block, spec, cand.lower, local_prompt)
    room = (cand.upper - cand.lower)[idx]
    if not need.any() and np.all(np.isinf(left)) and room.max(initial=0) <= 1:
        # nothing ties prompts or passes: the first ``capacity`` pairs with room, by the ranking
        # (selected on the first key, ties kept, before the sort)
        sel = np.flatnonzero(room > 0) if capacity > 0 else np.zeros(0, dtype=np.int64)
        if capacity < sel.size:
            first = columns[0][sel]
            sel = sel[first <= np.partition(first, capacity - 1)[capacity - 1]]
        keys_out = np.column_stack([np.ones(sel.size)] + [c[sel] for c in columns])
        chosen = _first_units(keys_out, capacity)
        pick = idx[sel[chosen]]
        units = TopPairs(cand.j[pick], cand.k[pick], cand.prompt[pick], np.zeros(pick.size), np.ones(pick.size))
        return FillPass(TopPairs.empty(), units, keys_out[chosen], int(idx.size))
    order = np.lexsort(columns[::-1])
    idx = idx[order]
    columns = [c[order] for c in columns]
    room = room[order]
    prompts = local_prompt[idx]
    by_prompt = np.argsort(prompts, kind="stable")  # ranking order within each prompt
    cover = np.zeros(idx.size)
    if need.any():
        check_coverable(block, need, np.bincount(prompts, room, minlength=need.size))
        before = within_prompt_before(prompts[by_prompt], room[by_prompt])
        cover[by_prompt] = np.clip(need[prompts[by_prompt]] - before, 0.0, room[by_prompt])
    covered = cover > 0
    cover_pairs = TopPairs(cand.j[idx[covered]], cand.k[idx[covered]], cand.prompt[idx[covered]],
                           np.zeros(int(covered.sum())), cover[covered])
    # the passes: label number t of pair p falls in pass t; each prompt keeps its first units
    rest = (room - cover).astype(np.int64)
    unit_of = np.repeat(np.arange(idx.size), rest)
    first = np.repeat(np.cumsum(rest) - rest, rest)
    passes = np.arange(unit_of.size) - first + 1
    prompt_room = left - np.bincount(prompts, cover, minlength=left.size)
    rank = np.lexsort((unit_of, passes, prompts[unit_of]))  # by prompt, then pass, then ranking
    sorted_prompts = prompts[unit_of[rank]]
    within = np.arange(rank.size) - np.searchsorted(sorted_prompts, sorted_prompts, side="left")
    keep = np.zeros(unit_of.size, dtype=bool)
    keep[rank] = within < prompt_room[sorted_prompts]
    unit_of, passes = unit_of[keep], passes[keep]
    keys_out = np.column_stack([passes.astype(np.float64)] + [c[unit_of] for c in columns]) \
        if unit_of.size else np.zeros((0, len(columns) + 1))
    chosen = _first_units(keys_out, capacity)
    sel = idx[unit_of[chosen]]
    units = TopPairs(cand.j[sel], cand.k[sel], cand.prompt[sel], np.zeros(sel.size), np.ones(sel.size))
    return FillPass(cover_pairs, units, keys_out[chosen], int(idx.size))


def reduce_fills(parts: Sequence[FillPass], capacity: int) -> FillPass:
    """Merge fill passes: every cover label, the first ``capacity`` units of all."""
    units = TopPairs.concat([p.units for p in parts])
    keys = np.concatenate([p.keys for p in parts]) if parts else np.zeros((0, 1))
    first = _first_units(keys, capacity)
    return FillPass(TopPairs.concat([p.cover for p in parts]), units.take(first), keys[first],
                    int(sum(p.pairs for p in parts)))


@dataclass(frozen=True)
class MarginalRanking:
    """Pairs by marginal gain at M, largest first (greedy's order for coverage minimums):
    ``R1``, ``R2`` as in :func:`marginal_block`."""

    R1: np.ndarray
    R2: np.ndarray | None
    criterion: str

    def block_keys(self, view: BlockView, block: int) -> tuple[np.ndarray, list[np.ndarray]]:
        kind = Criterion.named(self.criterion)
        q1 = pair_quadratic_forms(view.phi @ self.R1, view.jl, view.kl)
        q2 = None if kind.is_log_det else pair_quadratic_forms(view.phi @ self.R2, view.jl, view.kl)
        return np.arange(view.j.size), [-kind.rank_one_gain(view.weight, q1, q2)]


def rows_block(source: BlockSource, b: int, rows: np.ndarray) -> RowData:
    """Centred features of the given global rows of block ``b``."""
    block = source.block(b)
    return RowData.of(block, centred(block), np.asarray(rows, dtype=np.int64) - block.row0)


def forms_block(source: BlockSource, b: int, spec: PoolSpec, factors: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``|R^T z_p|^2`` of every candidate pair of block ``b`` for each factor R (unweighted), in
    the candidates' order (the seam's :meth:`~pairdesign.pool.CandidatePool.quadratic_forms`)."""
    block = source.block(b)
    phi = centred(block)
    cand = block_pairs(block, spec)
    return [pair_quadratic_forms(phi @ R, cand.jl, cand.kl) for R in factors]


def covariance_block(source: BlockSource, b: int) -> np.ndarray:
    """sum over the block's prompts of the uniform policy's covariance of phi (for the L criterion:
    H = that sum over all prompts / n)."""
    block = source.block(b)
    phi = centred(block)
    w = 1.0 / np.repeat(block.prompt_sizes, block.prompt_sizes).astype(np.float64)
    return (phi * w[:, None]).T @ phi


# ------------------------------------------------------------------------------ the pool seam
class BlockPool(Protocol):
    """The passes over all candidate pairs that reduce on the workers (what the out-of-core
    solvers of :mod:`pairdesign.outofcore` run on: nothing of length P reaches the driver)."""

    spec: PoolSpec
    meta: dict[str, Any]
    n_prompts: int
    n_blocks: int
    name: str

    def gain_pass(self, R: np.ndarray, top: int, budget_left: float) -> GainPass: ...

    def marginal_pass(self, R1: np.ndarray, R2: np.ndarray | None, criterion: str, top: int,
                      closed_prompts: np.ndarray, full_pairs: np.ndarray) -> MarginalPass: ...

    def row_features(self, rows: np.ndarray) -> RowData: ...

    def fill_pass(self, ranking: Ranking, capacity: int) -> FillPass: ...

    def policy_covariance(self) -> np.ndarray: ...

    def prompt_caps_of(self, prompts: np.ndarray) -> np.ndarray: ...

    def ids(self, prompts: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def fingerprint(self) -> str:
        """The instance's fingerprint (:mod:`pairdesign.fingerprint`), recorded in designs."""
        ...


class MemoryBlocks:
    """An in-memory instance seen as blocks of whole prompts."""

    def __init__(self, instance: Instance, block_rows: int):
        self.instance = instance
        self.block_prompts = block_layout(instance.prompt_sizes, block_rows)
        self.block_rows = instance.prompt_offsets[self.block_prompts]
        self.n_blocks = int(self.block_prompts.size - 1)

    def block(self, b: int) -> Block:
        inst = self.instance
        p0, p1 = int(self.block_prompts[b]), int(self.block_prompts[b + 1])
        r0, r1 = int(self.block_rows[b]), int(self.block_rows[b + 1])
        return Block(b, p0, r0, inst.prompt_sizes[p0:p1], inst.features[r0:r1],
                     None if inst.scores is None else inst.scores[r0:r1],
                     None if inst.prompt_max_pairs is None else inst.prompt_max_pairs[p0:p1])


def blocks_of_rows(block_rows: np.ndarray, rows: np.ndarray) -> dict[int, np.ndarray]:
    """The given rows grouped by the block that holds them."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    which = np.searchsorted(block_rows, rows, side="right") - 1
    return {int(b): rows[which == b] for b in np.unique(which)}


class MemoryPool:
    """The pool of an in-memory instance: the block kernels run here, one block after another."""

    def __init__(self, instance: Instance, block_rows: int = 1 << 16):
        self.instance = instance
        self.source = MemoryBlocks(instance, block_rows)
        self.meta = {key: getattr(instance, key, None) for key in (
            "name", "budget", "ridge", "weights", "max_pairs_per_prompt", "max_pairs_per_completion",
            "max_labels_per_pair", "min_pairs_per_prompt")}
        self.spec = pool_spec(n_completions=instance.n_completions, dim=instance.dim, meta=self.meta,
                              own_caps=instance.prompt_max_pairs is not None, pairs=instance.pairs,
                              fixed_in=instance.fixed_in, fixed_out=instance.fixed_out,
                              labeled=instance.labeled, groups=bool(instance.groups),
                              own_minimums=instance.prompt_min_pairs is not None)
        self.n_prompts = instance.n_prompts
        self.n_blocks = self.source.n_blocks
        self.name = instance.name
        self.labeled = instance.labeled
        self.labeled_counts = instance.labeled_counts
        self.fixed_in = instance.fixed_in
        self.has_scores = instance.has_all_scores

    def gain_pass(self, R, top, budget_left):
        parts = [gain_block(self.source, b, self.spec, R, top, budget_left)
                 for b in range(self.n_blocks)]
        return reduce_gains(parts, top, budget_left)

    def fill_pass(self, ranking, capacity):
        return reduce_fills([fill_block(self.source, b, self.spec, ranking, capacity)
                             for b in range(self.n_blocks)], capacity)

    def marginal_pass(self, R1, R2, criterion, top, closed_prompts, full_pairs):
        parts = [marginal_block(self.source, b, self.spec, R1, R2, criterion, top, closed_prompts, full_pairs)
                 for b in range(self.n_blocks)]
        return reduce_marginals(parts, top)

    def row_features(self, rows):
        groups = blocks_of_rows(self.source.block_rows, rows)
        return RowData.merge([rows_block(self.source, b, r) for b, r in groups.items()])

    def policy_covariance(self):
        return sum(covariance_block(self.source, b) for b in range(self.n_blocks)) / self.n_prompts

    def prompt_caps_of(self, prompts):
        caps = np.full(np.size(prompts), self.spec.max_pairs_per_prompt)
        if self.instance.prompt_max_pairs is not None:
            own = self.instance.prompt_max_pairs[prompts]
            caps[np.isfinite(own)] = own[np.isfinite(own)]
        return caps

    def ids(self, prompts, rows):
        return self.instance.prompt_ids[prompts], self.instance.completion_ids[rows]

    def fingerprint(self) -> str:
        from .fingerprint import instance_fingerprint
        return instance_fingerprint(self.instance)
