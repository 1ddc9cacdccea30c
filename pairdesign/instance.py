"""The data model: an :class:`Instance` of the pair-design problem, its validation and file I/O.

An instance holds, for each prompt, its completions (ids, feature vectors ``phi[i,j]`` in R^d and
optional pilot scores), the candidate pairs (every pair within a prompt, or an explicit list with
optional costs), and the constraints of docs/design.md section 4: the budget, per-prompt and
per-completion caps, labels per pair, pairs fixed in or out, pairs already labeled (they enter M0
and are not candidates) and group budgets.

Completions are stored row-wise, grouped by prompt: the rows of prompt ``i`` are
``prompt_offsets[i]:prompt_offsets[i+1]``. Pairs are referenced by global completion rows.

Two file forms carry the same meaning: JSON (``pairdesign.instance/1``, docs/design.md section 9) for
small and hand-written instances, and NPZ (one row per completion, plus optional pair tables) for
large ones; both round-trip exactly. Their readers and writers live in
:mod:`pairdesign.formats.instance_json` and :mod:`pairdesign.formats.instance_npz`; this module
holds the data, its validation, and :func:`load_instance` / :func:`save_instance`.

Instances made by ``pairdesign import`` also carry the texts (``prompt_texts``,
``completion_texts``), the record of how the features were reduced (``projection``), the outcomes
of the pairs already labeled (``labeled_wins``) and one record per round of labels read in
(``rounds``), so that one file holds the whole state of a labeling loop.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import InstanceError

FORMAT = "pairdesign.instance/1"
WEIGHT_SETTINGS = ("uniform", "scores", "predictive", "expected")

__all__ = [
    "FORMAT",
    "Candidates",
    "Group",
    "Instance",
    "load_instance",
    "save_instance",
]


@dataclass(frozen=True)
class Group:
    """A named group of prompts sharing a budget: ``sum_{p in G} c_p n_p <= budget``, and
    getting at least ``min_pairs`` labels: ``sum_{p in G} n_p >= min_pairs`` (coverage)."""

    name: str
    prompts: np.ndarray  # prompt indices (int64)
    budget: float
    min_pairs: int = 0


@dataclass(frozen=True, eq=False)
class Candidates:
    """The candidate pairs of an instance, as flat arrays over pairs ``p = 0..P-1``.

    ``j[p], k[p]`` are global completion rows of the same prompt ``prompt[p]``; ``cost`` is c_p,
    ``lower``/``upper`` bound the number of labels n_p (``lower`` is 1 for pairs fixed in),
    ``weight`` is the Bradley-Terry weight w_p (docs/design.md section 2).
    """

    j: np.ndarray
    k: np.ndarray
    prompt: np.ndarray
    cost: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return int(self.j.shape[0])

    @property
    def unit_cost(self) -> bool:
        return bool(np.all(self.cost == 1.0))


def _pair_keys(a: np.ndarray, b: np.ndarray, n_rows: int) -> np.ndarray:
    """An integer key per unordered pair of rows."""
    lo = np.minimum(a, b).astype(np.int64)
    hi = np.maximum(a, b).astype(np.int64)
    return lo * np.int64(n_rows) + hi


def _as_pair_array(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value if value is not None else np.zeros((0, 2)), dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InstanceError(f"must have shape (pairs, 2), got {arr.shape}", field=name)
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        row = int(np.flatnonzero(~np.isfinite(arr).all(1) | (arr != np.round(arr)).any(1))[0])
        raise InstanceError("completion rows must be integers", field=f"{name}[{row}]")
    return arr.astype(np.int64)


@dataclass(frozen=True, eq=False)
class Instance:
    """One pair-design problem. Build it with :meth:`from_arrays` or :func:`load_instance`.

    The constructor validates everything and raises :class:`InstanceError` naming the field and
    row of the first problem it finds.
    """

    prompt_ids: np.ndarray
    prompt_offsets: np.ndarray
    completion_ids: np.ndarray
    features: np.ndarray
    budget: float
    scores: np.ndarray | None = None
    name: str = ""
    ridge: float = 1e-6
    weights: str = "uniform"
    max_pairs_per_prompt: int | None = None
    max_pairs_per_completion: int | None = None
    max_labels_per_pair: int = 1
    prompt_max_pairs: np.ndarray | None = None
    pairs: np.ndarray | None = None
    pair_costs: np.ndarray | None = None
    fixed_in: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    fixed_out: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    labeled: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    labeled_counts: np.ndarray | None = None
    groups: tuple[Group, ...] = ()
    labeled_wins: np.ndarray | None = None
    """Per labeled pair, the labels won by its first completion (a tie counts 1/2); NaN: unknown."""
    prompt_texts: tuple[str, ...] | None = None
    completion_texts: tuple[str, ...] | None = None
    projection: dict[str, Any] | None = None
    """How the features were made from the embeddings (method, input_dim, dim, seed, ...)."""
    rounds: tuple[dict[str, Any], ...] = ()
    """One record per set of labels read in: design id, labels, ties, source."""
    min_pairs_per_prompt: int | None = None
    """l: every prompt gets at least l labels (``sum_{p in prompt i} n_p >= l``; coverage)."""
    prompt_min_pairs: np.ndarray | None = None
    """l_i of a prompt overriding ``min_pairs_per_prompt`` for that prompt (``prompts[i].min_pairs``;
    NaN where the prompt has none of its own), shape (prompts,)."""
    posterior_mean: np.ndarray | None = None
    """theta_hat of the latest Bradley-Terry fit, shape (d,) (set by ``next-round``)."""
    posterior_covariance: np.ndarray | None = None
    """Its Laplace covariance Sigma (the inverse Hessian of the fit), shape (d, d), symmetric PSD;
    with ``posterior_mean`` it sets the weights ``"predictive"`` and ``"expected"``."""

    # ------------------------------------------------------------------ construction
    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_arrays(
        cls,
        features: np.ndarray,
        prompt_index: Sequence[int] | np.ndarray,
        *,
        budget: float,
        scores: np.ndarray | None = None,
        prompt_ids: Sequence[str] | None = None,
        completion_ids: Sequence[str] | None = None,
        **settings: Any,
    ) -> "Instance":
        """An instance from a feature matrix with one row per completion.

        ``prompt_index[r]`` is the prompt (0..n-1) of row ``r``; rows of one prompt must be
        contiguous and prompts in increasing order. Ids default to ``"p<i>"`` and ``"c<j>"``.
        ``settings`` are the other fields of :class:`Instance` (``ridge``, ``weights``,
        ``max_pairs_per_prompt``, ``pairs`` as (P, 2) global rows, ``fixed_in``, ...).
        """
        idx = np.asarray(prompt_index)
        if idx.ndim != 1:
            raise InstanceError("must be one-dimensional", field="prompt_index")
        if idx.size and (not np.issubdtype(idx.dtype, np.integer)):
            raise InstanceError("must hold integers", field="prompt_index")
        idx = idx.astype(np.int64)
        if idx.size:
            step = np.diff(idx)
            bad = np.flatnonzero((step != 0) & (step != 1))
            if idx[0] != 0 or bad.size:
                row = 0 if idx[0] != 0 else int(bad[0]) + 1
                raise InstanceError(
                    "rows must be grouped by prompt, prompts numbered 0, 1, 2, ... in order",
                    field=f"prompt_index[{row}]",
                )
        n = int(idx[-1]) + 1 if idx.size else 0
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(idx, minlength=n), out=offsets[1:])
        if prompt_ids is None:
            prompt_ids = [f"p{i}" for i in range(n)]
        if completion_ids is None:
            local = np.arange(idx.size) - offsets[idx]
            completion_ids = [f"c{j}" for j in local]
        return cls(
            prompt_ids=prompt_ids if isinstance(prompt_ids, np.ndarray) else list(prompt_ids),
            prompt_offsets=offsets,
            completion_ids=(completion_ids if isinstance(completion_ids, np.ndarray)
                            else list(completion_ids)),
            features=np.asarray(features, dtype=np.float64),
            scores=None if scores is None else np.asarray(scores, dtype=np.float64),
            budget=budget,
            **settings,
        )

    def with_budget(self, budget: float) -> "Instance":
        """A copy with another budget (validated again)."""
        return replace(self, budget=budget)

    # ------------------------------------------------------------------ sizes
    @property
    def n_prompts(self) -> int:
        return int(self.prompt_ids.shape[0])

    @property
    def n_completions(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def prompt_sizes(self) -> np.ndarray:
        return np.diff(self.prompt_offsets)

    @cached_property
    def prompt_of_row(self) -> np.ndarray:
        """The prompt index of every completion row."""
        return np.repeat(np.arange(self.n_prompts, dtype=np.int64), self.prompt_sizes)

    @property
    def has_all_scores(self) -> bool:
        return self.scores is not None and bool(np.all(np.isfinite(self.scores)))

    def row_name(self, row: int) -> str:
        """``prompts[i].completions[j]`` for a completion row: where to look in the JSON form."""
        i = int(self.prompt_of_row[row])
        return f"prompts[{i}].completions[{row - int(self.prompt_offsets[i])}]"

    def pair_ids(self, j: np.ndarray, k: np.ndarray) -> list[list[str]]:
        """``[prompt_id, completion_id, completion_id]`` for pairs of completion rows."""
        prompts = self.prompt_ids[self.prompt_of_row[j]]
        return [[str(p), str(a), str(b)] for p, a, b in
                zip(prompts, self.completion_ids[j], self.completion_ids[k])]

    # ------------------------------------------------------------------ candidates
    @cached_property
    def candidates(self) -> Candidates:
        """The candidate pairs (explicit or all pairs within each prompt), minus pairs fixed out
        and pairs already labeled, with their costs, bounds and Bradley-Terry weights."""
        from .model import bradley_terry_weights

        N = self.n_completions
        if self.pairs is None:
            j, k = _all_pairs(self.prompt_offsets)
            cost = np.ones(j.shape[0])
        else:
            j, k = self.pairs[:, 0].copy(), self.pairs[:, 1].copy()
            cost = (np.ones(j.shape[0]) if self.pair_costs is None
                    else np.asarray(self.pair_costs, dtype=np.float64).copy())
        keys = _pair_keys(j, k, N)
        drop = np.zeros(j.shape[0], dtype=bool)
        for table in (self.fixed_out, self.labeled):
            if table.shape[0]:
                drop |= np.isin(keys, _pair_keys(table[:, 0], table[:, 1], N))
        if drop.any():
            keep = ~drop
            j, k, cost, keys = j[keep], k[keep], cost[keep], keys[keep]
        upper = np.full(j.shape[0], self.max_labels_per_pair, dtype=np.int64)
        lower = np.zeros(j.shape[0], dtype=np.int64)
        if self.fixed_in.shape[0]:
            fixed_keys = _pair_keys(self.fixed_in[:, 0], self.fixed_in[:, 1], N)
            present = np.isin(fixed_keys, keys)
            if not present.all():
                row = int(np.flatnonzero(~present)[0])
                raise InstanceError(
                    "pair fixed in is not a candidate (not in 'pairs', or fixed out, or labeled)",
                    field=f"fixed_in[{row}]",
                )
            lower[np.isin(keys, fixed_keys)] = 1
        weight = bradley_terry_weights(self, j, k)
        return Candidates(
            j=j, k=k, prompt=self.prompt_of_row[j], cost=cost, lower=lower, upper=upper,
            weight=weight,
        )

    def prompt_caps(self) -> np.ndarray:
        """m_i for every prompt (``inf`` where uncapped)."""
        caps = np.full(self.n_prompts, np.inf)
        if self.max_pairs_per_prompt is not None:
            caps[:] = self.max_pairs_per_prompt
        if self.prompt_max_pairs is not None:
            own = np.isfinite(self.prompt_max_pairs)
            caps[own] = self.prompt_max_pairs[own]
        return caps

    def prompt_minimums(self) -> np.ndarray:
        """l_i for every prompt: the labels it must get at least (0 where none): the prompt's own
        ``min_pairs`` where it has one, else ``min_pairs_per_prompt``."""
        minimums = np.full(self.n_prompts, float(self.min_pairs_per_prompt or 0))
        if self.prompt_min_pairs is not None:
            own = ~np.isnan(self.prompt_min_pairs)
            minimums[own] = self.prompt_min_pairs[own]
        return minimums

    def completion_cap(self) -> float:
        """r, the cap on labels touching one completion (``inf`` where uncapped)."""
        return math.inf if self.max_pairs_per_completion is None else float(self.max_pairs_per_completion)


def _all_pairs(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (j < k) within each prompt, prompt-major, in local order (0,1), (0,2), ..."""
    sizes = np.diff(offsets)
    starts = offsets[:-1]
    js, ks = [], []
    for size in np.unique(sizes):
        if size < 2:
            continue
        a, b = np.triu_indices(int(size), k=1)
        s = starts[sizes == size][:, None]
        js.append((s + a[None, :]).ravel())
        ks.append((s + b[None, :]).ravel())
    if not js:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    j = np.concatenate(js).astype(np.int64)
    k = np.concatenate(ks).astype(np.int64)
    order = np.lexsort((k, j))
    return j[order], k[order]


# ---------------------------------------------------------------------------------- validation
def _check_int_or_none(value: Any, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float)) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise InstanceError(f"must be an integer or null, got {value!r}", field=name)
    if value < minimum:
        raise InstanceError(f"must be at least {minimum}, got {value!r}", field=name)
    return int(value)


def _check_number(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InstanceError(f"must be a number, got {value!r}", field=name)
    value = float(value)
    if not math.isfinite(value):
        raise InstanceError(f"must be finite, got {value!r}", field=name)
    return value


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def text_problem(text: str) -> str | None:
    """What makes a string unfit for an id or a text, or None: a NUL character (NumPy string
    arrays drop trailing NULs, so ids would change silently) or a lone surrogate (not text:
    it cannot be written as UTF-8)."""
    nul = text.find("\x00")
    if nul >= 0:
        return f"holds a NUL character at position {nul} ({_shown(text)})"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"holds a lone surrogate {text[exc.start]!r} at position {exc.start} "
                f"({_shown(text)}; not text, cannot be written as UTF-8)")
    return None


def _shown(text: str) -> str:
    """A string as a readable Python literal, shortened to 60 characters."""
    text = str(text)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _check_strings(values: Sequence[Any], place: Any) -> None:
    """Refuse the first string holding a NUL or a lone surrogate; ``place(r)`` names row r."""
    strings = [v for v in values if isinstance(v, str)]
    joined = "".join(strings)
    if "\x00" not in joined and (joined.isascii() or text_problem(joined) is None):
        return
    for r, value in enumerate(values):
        problem = text_problem(value) if isinstance(value, str) else None
        if problem is not None:
            raise InstanceError(problem, field=place(r))


def _id_place(inst: Instance, name: str, r: int) -> str:
    """Where id ``r`` of ``prompt_ids`` / ``completion_ids`` is in the JSON form, when the
    offsets allow saying so."""
    if name == "prompt_ids":
        return f"prompts[{r}].id"
    offsets = np.asarray(inst.prompt_offsets)
    if offsets.ndim == 1 and offsets.size >= 2 and 0 <= r < offsets[-1]:
        i = int(np.searchsorted(offsets, r, side="right")) - 1
        return f"prompts[{i}].completions[{r - int(offsets[i])}].id"
    return f"completion_ids[{r}]"


def _validate(inst: Instance) -> None:
    """The one validation function: shapes, types, domains and cross-references."""
    put = lambda name, value: object.__setattr__(inst, name, value)  # noqa: E731

    if not isinstance(inst.name, str):
        raise InstanceError(f"must be a string, got {inst.name!r}", field="name")
    for name in ("prompt_ids", "completion_ids"):
        raw = getattr(inst, name)
        ids = raw.tolist() if isinstance(raw, np.ndarray) else raw
        if isinstance(raw, np.ndarray) and raw.ndim != 1:
            raise InstanceError(f"must be one-dimensional, got shape {raw.shape}", field=name)
        _check_strings(ids, lambda r, name=name: _id_place(inst, name, r))
    prompt_ids = np.asarray(inst.prompt_ids, dtype=str)
    offsets = np.asarray(inst.prompt_offsets, dtype=np.int64)
    completion_ids = np.asarray(inst.completion_ids, dtype=str)
    put("prompt_ids", prompt_ids)
    put("prompt_offsets", offsets)
    put("completion_ids", completion_ids)
    n = prompt_ids.shape[0]
    if n == 0:
        raise InstanceError("must list at least one prompt", field="prompts")
    if offsets.shape != (n + 1,) or offsets[0] != 0:
        raise InstanceError("must have one entry per prompt plus one, starting at 0",
                            field="prompt_offsets")
    sizes = np.diff(offsets)
    if np.any(sizes < 1):
        i = _first_row(sizes < 1)
        raise InstanceError("has no completions", field=f"prompts[{i}].completions")
    N = int(offsets[-1])

    features = np.asarray(inst.features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] != N:
        raise InstanceError(f"must have shape (completions, d) = ({N}, d), got {features.shape}",
                            field="features")
    if features.shape[1] < 1:
        raise InstanceError("must have at least one dimension", field="features")
    put("features", features)
    prompt_of_row = np.repeat(np.arange(n), sizes)

    def row_name(r: int) -> str:
        i = int(prompt_of_row[r])
        return f"prompts[{i}].completions[{r - int(offsets[i])}]"

    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        r = _first_row(bad)
        kind = "NaN" if np.isnan(features[r]).any() else "an infinite value"
        raise InstanceError(f"contains {kind}", field=f"{row_name(r)}.features")

    # ids
    if completion_ids.shape != (N,):
        raise InstanceError(f"must have one id per completion ({N})", field="completion_ids")
    if len(set(prompt_ids.tolist())) != n:
        seen: dict[str, int] = {}
        for i, pid in enumerate(prompt_ids.tolist()):
            if pid in seen:
                raise InstanceError(f"duplicate prompt id {_shown(pid)} (also prompts[{seen[pid]}])",
                                    field=f"prompts[{i}].id")
            seen[pid] = i
    empty = np.char.str_len(completion_ids) == 0
    if empty.any():
        raise InstanceError("must be a non-empty string", field=f"{row_name(_first_row(empty))}.id")
    order = np.lexsort((completion_ids, prompt_of_row))
    same = (prompt_of_row[order][1:] == prompt_of_row[order][:-1]) & (
        completion_ids[order][1:] == completion_ids[order][:-1])
    if same.any():
        r = int(max(order[_first_row(same)], order[_first_row(same) + 1]))
        raise InstanceError(f"duplicate completion id {_shown(completion_ids[r])} within its prompt",
                            field=f"{row_name(r)}.id")

    # scores
    if inst.scores is not None:
        scores = np.asarray(inst.scores, dtype=np.float64)
        if scores.shape != (N,):
            raise InstanceError(f"must have one entry per completion ({N})", field="scores")
        inf = np.isinf(scores)
        if inf.any():
            raise InstanceError("must be finite", field=f"{row_name(_first_row(inf))}.score")
        put("scores", None if np.isnan(scores).all() else scores)

    # scalar settings
    put("budget", _check_number(inst.budget, "budget"))
    if inst.budget < 0:
        raise InstanceError(f"must be non-negative, got {inst.budget:g}", field="budget")
    put("ridge", _check_number(inst.ridge, "ridge"))
    if inst.ridge <= 0:
        raise InstanceError(f"must be positive (it keeps M positive definite), got {inst.ridge:g}",
                            field="ridge")
    if inst.weights not in WEIGHT_SETTINGS:
        raise InstanceError(f"must be one of {list(WEIGHT_SETTINGS)}, got {inst.weights!r}",
                            field="weights")
    if inst.weights == "scores" and not inst.has_all_scores:
        missing = np.ones(N, bool) if inst.scores is None else np.isnan(inst.scores)
        raise InstanceError("weights = 'scores' needs a score for every completion",
                            field=f"{row_name(_first_row(missing))}.score")
    put("max_pairs_per_prompt", _check_int_or_none(inst.max_pairs_per_prompt, "max_pairs_per_prompt", 0))
    put("max_pairs_per_completion",
        _check_int_or_none(inst.max_pairs_per_completion, "max_pairs_per_completion", 0))
    labels = _check_int_or_none(inst.max_labels_per_pair, "max_labels_per_pair", 1)
    if labels is None:
        raise InstanceError("must be an integer >= 1, got null", field="max_labels_per_pair")
    put("max_labels_per_pair", labels)
    if inst.prompt_max_pairs is not None:
        own = np.asarray(inst.prompt_max_pairs, dtype=np.float64)
        if own.shape != (n,):
            raise InstanceError(f"must have one entry per prompt ({n})", field="prompt_max_pairs")
        bad = np.isnan(own) | (own < 0) | (np.isfinite(own) & (own != np.round(own)))
        if bad.any():
            raise InstanceError("must be an integer >= 0 or null",
                                field=f"prompts[{_first_row(bad)}].max_pairs")
        put("prompt_max_pairs", None if np.isinf(own).all() else own)

    # pair tables
    def check_pairs(table: np.ndarray, name: str) -> None:
        if table.shape[0] == 0:
            return
        out = (table < 0) | (table >= N)
        if out.any():
            raise InstanceError(f"completion row out of range 0..{N - 1}",
                                field=f"{name}[{_first_row(out.any(1))}]")
        if np.any(table[:, 0] == table[:, 1]):
            raise InstanceError("a pair needs two different completions",
                                field=f"{name}[{_first_row(table[:, 0] == table[:, 1])}]")
        cross = prompt_of_row[table[:, 0]] != prompt_of_row[table[:, 1]]
        if cross.any():
            raise InstanceError("the two completions belong to different prompts",
                                field=f"{name}[{_first_row(cross)}]")
        keys = _pair_keys(table[:, 0], table[:, 1], N)
        uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
        if np.any(counts > 1):
            dup_key = uniq[counts > 1][0]
            rows = np.flatnonzero(keys == dup_key)
            raise InstanceError(f"duplicate pair (also {name}[{rows[0]}])", field=f"{name}[{rows[1]}]")

    for name in ("fixed_in", "fixed_out", "labeled"):
        table = _as_pair_array(getattr(inst, name), name)
        put(name, table)
        check_pairs(table, name)
    if inst.pairs is not None:
        table = _as_pair_array(inst.pairs, "pairs")
        put("pairs", table)
        check_pairs(table, "pairs")
        if inst.pair_costs is not None:
            costs = np.asarray(inst.pair_costs, dtype=np.float64)
            if costs.shape != (table.shape[0],):
                raise InstanceError(f"must have one cost per pair ({table.shape[0]})", field="pair_costs")
            bad = ~np.isfinite(costs) | (costs <= 0)
            if bad.any():
                raise InstanceError("a cost must be a positive finite number",
                                    field=f"pairs[{_first_row(bad)}]")
            put("pair_costs", None if np.all(costs == 1.0) else costs)
    elif inst.pair_costs is not None:
        raise InstanceError("costs need an explicit 'pairs' list", field="pair_costs")
    if inst.labeled_counts is not None:
        counts = np.asarray(inst.labeled_counts, dtype=np.float64)
        if counts.shape != (inst.labeled.shape[0],):
            raise InstanceError("must have one count per labeled pair", field="labeled_counts")
        bad = ~np.isfinite(counts) | (counts < 1) | (counts != np.round(counts))
        if bad.any():
            raise InstanceError("the number of labels must be an integer >= 1",
                                field=f"labeled[{_first_row(bad)}]")
        put("labeled_counts", counts.astype(np.int64))
    for a, b in (("fixed_in", "fixed_out"), ("fixed_in", "labeled")):
        ta, tb = getattr(inst, a), getattr(inst, b)
        if ta.shape[0] and tb.shape[0]:
            both = np.isin(_pair_keys(ta[:, 0], ta[:, 1], N), _pair_keys(tb[:, 0], tb[:, 1], N))
            if both.any():
                raise InstanceError(f"pair is also in '{b}'", field=f"{a}[{_first_row(both)}]")

    # groups
    groups = []
    for g_index, group in enumerate(inst.groups):
        if not isinstance(group, Group):
            raise InstanceError("must be a Group", field=f"groups[{g_index}]")
        prompts = np.asarray(group.prompts, dtype=np.int64)
        if prompts.ndim != 1 or np.any((prompts < 0) | (prompts >= n)):
            raise InstanceError("prompt index out of range", field=f"groups[{g_index}].prompts")
        budget = _check_number(group.budget, f"groups[{g_index}].budget")
        if budget < 0:
            raise InstanceError("must be non-negative", field=f"groups[{g_index}].budget")
        min_pairs = _check_int_or_none(group.min_pairs, f"groups[{g_index}].min_pairs", 0) or 0
        groups.append(Group(str(group.name), prompts, budget, min_pairs))
    put("min_pairs_per_prompt", _check_int_or_none(inst.min_pairs_per_prompt, "min_pairs_per_prompt", 0))
    own_min = None
    if inst.prompt_min_pairs is not None:
        own_min = np.asarray(inst.prompt_min_pairs, dtype=np.float64)
        if own_min.shape != (n,):
            raise InstanceError(f"must have one entry per prompt ({n})", field="prompt_min_pairs")
        bad = np.isinf(own_min) | (own_min < 0) | (np.isfinite(own_min) & (own_min != np.round(own_min)))
        if bad.any():
            raise InstanceError("must be an integer >= 0 or null", field=f"prompts[{_first_row(bad)}].min_pairs")
        own_min = None if np.isnan(own_min).all() else own_min
        put("prompt_min_pairs", own_min)
    if own_min is not None:  # a prompt's own minimum: at most its cap and what its pairs can take
        caps = inst.prompt_caps()
        if inst.pairs is None:
            pairs_of = sizes * (sizes - 1) // 2
        else:
            pairs_of = np.bincount(prompt_of_row[inst.pairs[:, 0]], minlength=n)
        most = np.minimum(caps, pairs_of * float(inst.max_labels_per_pair))
        over = np.flatnonzero(~np.isnan(own_min) & (own_min > most))
        if over.size:
            i = int(over[0])
            why = (f"the cap {caps[i]:g}" if caps[i] <= pairs_of[i] * inst.max_labels_per_pair
                   else f"{int(pairs_of[i])} candidate pairs x {inst.max_labels_per_pair} labels")
            raise InstanceError(f"is {int(own_min[i])}, more than prompt {_shown(str(prompt_ids[i]))} can get "
                                f"({why})", field=f"prompts[{i}].min_pairs")
    if inst.min_pairs_per_prompt:
        caps = inst.prompt_caps()
        uses_global = np.ones(n, dtype=bool) if own_min is None else np.isnan(own_min)
        short = np.flatnonzero((caps < inst.min_pairs_per_prompt) & uses_global)
        if short.size:
            i = int(short[0])
            raise InstanceError(f"is {inst.min_pairs_per_prompt}, more than the cap {caps[i]:g} of "
                                f"prompt {_shown(str(prompt_ids[i]))} (prompts[{i}])",
                                field="min_pairs_per_prompt")
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise InstanceError("duplicate group name", field="groups")
    put("groups", tuple(groups))

    # outcomes of the labeled pairs, texts, provenance
    if inst.labeled_wins is not None:
        wins = np.asarray(inst.labeled_wins, dtype=np.float64)
        if wins.shape != (inst.labeled.shape[0],):
            raise InstanceError("must have one entry per labeled pair", field="labeled_wins")
        counts = (np.ones(wins.shape[0]) if inst.labeled_counts is None
                  else inst.labeled_counts.astype(np.float64))
        known = np.where(np.isnan(wins), 0.0, wins)
        bad = np.isinf(wins) | (known < 0) | (known > counts) | (2 * known != np.round(2 * known))
        if bad.any():
            raise InstanceError("the labels won by the first completion must be a multiple of 1/2 "
                                "between 0 and the number of labels", field=f"labeled[{_first_row(bad)}]")
        put("labeled_wins", None if np.isnan(wins).all() else wins)
    for name, count, where in (("prompt_texts", n, "prompts[{}].text"),
                               ("completion_texts", N, None)):
        texts = getattr(inst, name)
        if texts is None:
            continue
        texts = tuple(texts.tolist() if isinstance(texts, np.ndarray) else texts)
        if len(texts) != count:
            raise InstanceError(f"must have one text per {'prompt' if where else 'completion'} ({count}), "
                                f"got {len(texts)}", field=name)
        for r, text in enumerate(texts):
            if not isinstance(text, str):
                place = where.format(r) if where else f"{row_name(r)}.text"
                raise InstanceError(f"must be a string, got {type(text).__name__}", field=place)
        _check_strings(texts, lambda r, where=where: where.format(r) if where else f"{row_name(r)}.text")
        put(name, texts)
    if inst.projection is not None:
        record = inst.projection
        if not isinstance(record, dict) or not isinstance(record.get("method"), str) or not all(
                isinstance(k, str) and (v is None or isinstance(v, (str, int, float, bool)))
                for k, v in record.items()):
            raise InstanceError("must be an object of numbers and strings with a string 'method'",
                                field="projection")
        put("projection", dict(record))
    rounds = tuple(inst.rounds)
    for r, record in enumerate(rounds):
        if not isinstance(record, dict) or not isinstance(record.get("design"), str):
            raise InstanceError("must be an object with a string 'design'", field=f"rounds[{r}]")
        try:
            json.dumps(record, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InstanceError(f"must hold JSON values only ({exc})", field=f"rounds[{r}]") from None
    put("rounds", tuple(dict(r) for r in rounds))
    _validate_posterior(inst, put)


def _validate_posterior(inst: Instance, put: Any) -> None:
    """posterior_mean (d,) finite and posterior_covariance (d, d) finite, symmetric, PSD; both or
    neither; the posterior weights need them."""
    d = inst.features.shape[1]
    mean, cov = inst.posterior_mean, inst.posterior_covariance
    if (mean is None) != (cov is None):
        raise InstanceError("the posterior needs both a mean and a covariance",
                            field="posterior.mean" if mean is None else "posterior.covariance")
    if mean is not None:
        try:
            mean = np.asarray(mean, dtype=np.float64)
            cov = np.asarray(cov, dtype=np.float64)
        except (TypeError, ValueError):
            raise InstanceError("must hold numbers", field="posterior") from None
        if mean.shape != (d,):
            raise InstanceError(f"must have shape ({d},) (the feature dimension), got {mean.shape}",
                                field="posterior.mean")
        if cov.shape != (d, d):
            raise InstanceError(f"must have shape ({d}, {d}), got {cov.shape}", field="posterior.covariance")
        for name, arr in (("posterior.mean", mean), ("posterior.covariance", cov)):
            bad = ~np.isfinite(arr)
            if bad.any():
                where = np.argwhere(bad)[0]
                raise InstanceError("must be finite", field=f"{name}[{']['.join(map(str, where))}]")
        scale = max(float(np.abs(cov).max()), 1e-300)
        asym = np.abs(cov - cov.T)
        if asym.max() > 1e-8 * scale:
            r, c = np.unravel_index(int(np.argmax(asym)), asym.shape)
            raise InstanceError(f"must be symmetric ([{r}][{c}] = {cov[r, c]:g}, [{c}][{r}] = {cov[c, r]:g})",
                                field="posterior.covariance")
        smallest = float(np.linalg.eigvalsh(0.5 * (cov + cov.T))[0])
        if smallest < -1e-8 * scale:
            raise InstanceError(f"must be positive semidefinite (smallest eigenvalue {smallest:g})",
                                field="posterior.covariance")
        put("posterior_mean", mean)
        put("posterior_covariance", 0.5 * (cov + cov.T))
    if inst.weights in ("predictive", "expected") and mean is None:
        raise InstanceError(f"weights = {inst.weights!r} needs the posterior of theta "
                            "(posterior.mean and posterior.covariance, which next-round stores)", field="weights")


# ---------------------------------------------------------------------------------- files
def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".npz"):
        raise InstanceError(f"unknown instance file type {suffix!r}: use .json or .npz",
                            source=str(path))
    return suffix


def load_instance(path: str | os.PathLike) -> Instance:
    """Read an instance from a ``.json`` or ``.npz`` file (formats in :mod:`pairdesign.formats`),
    or a ``.zarr`` store (:func:`pairdesign.store.load_store`: in memory when it fits, else a
    lazily opened :class:`~pairdesign.store.InstanceStore` that ``solve`` runs on the Dask pool).

    Raises :class:`InstanceError` whose message names the file, the field and the row.
    """
    from .formats.instance_json import read_instance_json
    from .formats.instance_npz import read_instance_npz

    path = Path(path)
    if path.suffix.lower() == ".zarr":  # the chunked store: in memory when it fits
        from .store import load_store
        return load_store(path)  # type: ignore[return-value]
    suffix = _suffix(path)
    if not path.is_file():
        raise InstanceError("no such file", source=str(path))
    try:
        return read_instance_json(path) if suffix == ".json" else read_instance_npz(path)
    except InstanceError as exc:
        raise exc.with_source(str(path)) from None


def save_instance(instance: Instance, path: str | os.PathLike) -> None:
    """Write an instance as ``.json`` or ``.npz`` (chosen by the suffix), atomically."""
    from .formats.instance_json import write_instance_json
    from .formats.instance_npz import write_instance_npz

    path = Path(path)
    if path.suffix.lower() == ".zarr":
        from .store import save_store
        save_store(instance, path)
        return
    if _suffix(path) == ".json":
        write_instance_json(instance, path)
    else:
        write_instance_npz(instance, path)


def instances_equal(a: Instance, b: Instance) -> bool:
    """Whether two instances hold exactly the same data (NaN equal to NaN)."""
    for f in fields(Instance):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "groups":
            if len(x) != len(y) or any(
                g.name != h.name or g.budget != h.budget or g.min_pairs != h.min_pairs or not np.array_equal(g.prompts, h.prompts)
                for g, h in zip(x, y)
            ):
                return False
        elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if x is None or y is None or x.shape != y.shape:
                return False
            if x.dtype.kind == "f" or y.dtype.kind == "f":
                if not np.array_equal(x, y, equal_nan=True):
                    return False
            elif not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True