"""Symmetries of an instance, and the orbits that orbital branching needs.

A *symmetry* is a permutation pi of the completions with

- pi maps every prompt onto a prompt with the same size, cap, minimum and groups (each group
  onto itself);
- pi keeps the centred Gram matrix, ``<phi_pi(a), phi_pi(b)> = <phi_a, phi_b>`` for all completions
  a, b (centred within their prompts), so that some orthogonal Q has ``phi_pi(a) = Q phi_a``: the
  detection sees through any rotation of the features;
- the induced map sigma of pairs, ``{a, b} -> {pi(a), pi(b)}``, maps the candidate pairs onto
  candidate pairs with the same weight w_p, cost c_p and bounds, and the pairs already labeled onto
  pairs already labeled with the same labels x weight;
- for the L criterion, ``Q H Q^T = H``.

Then ``z_sigma(p) = +-Q z_p`` and ``M(sigma n) = Q M(n) Q^T``: sigma maps feasible designs onto
feasible designs of the same value (log det, tr M^-1 and tr(H M^-1) are invariant).

Detection is graph automorphism (nauty, through pynauty) on a vertex-coloured graph: one vertex per
completion (coloured by its prompt's size, cap and groups and by its squared norm), per prompt (if
several), per candidate pair and per labeled pair (coloured by weight, cost and bounds; adjacent to
their two completions) and per off-diagonal Gram entry outside the commonest value (coloured by the
value; adjacent to its two completions). Values are grouped within a relative tolerance of 1e-9,
and every generator is then checked on the numbers themselves (an orthogonal Procrustes fit of Q,
``Q M0 Q^T = M0`` and, for L, ``Q H Q^T = H``); a symmetry that fails the check is not used. Cheap
exits come first: distinct squared norms, or distinct multisets of the lengths of the candidate
pairs at each completion, or colour refinement on the Gram matrix, when they tell every completion
apart, prove the group trivial in O(N d), O(P d) or O(N^2) without nauty.

**Orbital branching** (Ostrowski, Linderoth, Rossi and Smriglio, Math. Program. 126, 2011). At a
node ``lo <= n <= hi``, let G_node be the symmetries that also keep the box (the automorphisms of
the graph with every candidate coloured by its (lo_p, hi_p) as well): they map the node's designs
onto the node's designs. For a pair p and its orbit O under G_node, the two children

    n_p >= c + 1        and        n_q <= c for every q in O

lose no design up to symmetry: a design of the node with some n_q >= c + 1, q in O, is mapped by a
g in G_node with g(q) = p onto a design of the node with n_p >= c + 1 and the same value. So the
largest bound over the leaves still bounds the optimum, and "optimal" stays a proof.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..information import Criterion, bradley_terry_weights, centered_features, prior_information
from ..instance import Instance

logger = logging.getLogger(__name__)

RELATIVE_TOL = 1e-9  # values within this (relative to the largest) are "equal"
MAX_GRAM_COMPLETIONS = 1500  # above this, only the O(N d + P d) checks run (N^2 Gram entries)
MAX_GRAPH_VERTICES = 100_000  # above this, no nauty call


def _classes(values: np.ndarray, tol: float) -> np.ndarray:
    """Integer labels 0, 1, ... grouping sorted values whose consecutive differences are <= tol
    (labels ordered by value)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(values, kind="stable")
    jumps = np.r_[0, np.diff(values[order]) > tol].astype(np.int64)
    labels = np.empty(values.size, dtype=np.int64)
    labels[order] = np.cumsum(jumps)
    return labels


def _joint(*columns: np.ndarray) -> np.ndarray:
    """One integer label per row for rows of integer labels (0, 1, ... in lexicographic order)."""
    if not columns or columns[0].size == 0:
        return np.zeros(0 if not columns else columns[0].size, dtype=np.int64)
    return np.unique(np.column_stack(columns), axis=0, return_inverse=True)[1].ravel().astype(np.int64)


@dataclass
class Symmetry:
    """The symmetry group found for an instance, acting on completions and candidate pairs.

    ``order`` is the group's order (from nauty; a float, as it may be huge). ``pair_generators``
    are its generators as permutations of the candidate pairs (``sigma[p]`` is the image of p).
    :meth:`orbit` gives a pair's orbit under the subgroup that keeps a node's box."""

    order: float
    completion_generators: np.ndarray  # (k, N)
    pair_generators: np.ndarray  # (k, P)
    _n_vertices: int = 0
    _adjacency: dict = field(default_factory=dict, repr=False)
    _base_colour: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _pair_vertex0: int = 0
    calls: int = 0

    @property
    def trivial(self) -> bool:
        return self.order <= 1.0

    def _graph(self, pair_colour: np.ndarray):
        """The coloured graph with every candidate pair's colour refined by ``pair_colour``
        (integers; pairs of different values are never mapped onto each other)."""
        import pynauty

        P = pair_colour.shape[0]
        colour = self._base_colour.copy()
        base = self._base_colour[self._pair_vertex0:self._pair_vertex0 + P]
        colour[self._pair_vertex0:self._pair_vertex0 + P] = (
            self._base_colour.max() + 1 + _joint(base, np.asarray(pair_colour, dtype=np.int64)))
        return pynauty.Graph(self._n_vertices, directed=False, adjacency_dict=self._adjacency,
                             vertex_coloring=_partition(colour))

    def _orbits(self, pair_colour: np.ndarray) -> tuple[np.ndarray, float]:
        import pynauty

        self.calls += 1
        P = pair_colour.shape[0]
        _, size1, size2, orbits, _ = pynauty.autgrp(self._graph(pair_colour))
        orbits = np.asarray(orbits, dtype=np.int64)
        return orbits[self._pair_vertex0:self._pair_vertex0 + P], float(size1) * 10.0 ** size2

    def node_orbits(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, float]:
        """The orbit label of every candidate pair under the symmetries that keep the box
        ``lo <= n <= hi`` (pairs with equal labels are in one orbit), and that group's order."""
        return self._orbits(_joint(np.rint(lo).astype(np.int64), np.rint(hi).astype(np.int64)))

    def stabiliser_orbits(self, fixed: list[int]) -> tuple[np.ndarray, float]:
        """Orbit labels of the pairs under the symmetries that fix every pair in ``fixed``
        (pointwise), and that group's order."""
        individual = np.zeros(self.pair_generators.shape[1], dtype=np.int64)
        individual[np.asarray(fixed, dtype=np.int64)] = np.arange(1, len(fixed) + 1)
        return self._orbits(individual)


def _partition(colour: np.ndarray) -> list[set[int]]:
    """nauty's ordered partition from integer colours (cells in order of colour)."""
    cells: dict[int, set[int]] = {}
    for v, c in enumerate(colour.tolist()):
        cells.setdefault(c, set()).add(v)
    return [cells[c] for c in sorted(cells)]


def _trivial(instance: Instance) -> Symmetry:
    N, P = instance.n_completions, len(instance.candidates)
    return Symmetry(order=1.0, completion_generators=np.zeros((0, N), dtype=np.int64),
                    pair_generators=np.zeros((0, P), dtype=np.int64))


def _refine(colour: np.ndarray, gram_class: np.ndarray, rounds: int = 8) -> np.ndarray:
    """Colour refinement on the complete graph whose edge {a, b} has colour gram_class[a, b]:
    a completion's new colour is its old colour and the multiset of (edge colour, neighbour's
    colour). Automorphisms keep the refined colours."""
    N = colour.size
    for _ in range(rounds):
        keys = gram_class * (int(colour.max(initial=0)) + 1) + colour[None, :]
        keys[np.arange(N), np.arange(N)] = -1  # the diagonal is in the colour already
        keys.sort(axis=1)
        new = np.unique(np.column_stack([colour, keys]), axis=0, return_inverse=True)[1].ravel()
        if np.unique(new).size == np.unique(colour).size:
            return new
        colour = new
    return colour


def _pair_refinement(colour: np.ndarray, phi: np.ndarray, cand) -> np.ndarray:
    """Each completion's colour refined by the multiset of (|z_p|^2, w_p, c_p) over the
    candidate pairs that touch it, in O(P d): symmetries keep it."""
    z = phi[cand.j] - phi[cand.k]
    length = np.einsum("ij,ij->i", z, z)
    pair_class = _joint(_classes(length, RELATIVE_TOL * max(float(length.max(initial=0.0)), 1e-300)),
                        _classes(cand.weight, 1e-12), _classes(cand.cost, 1e-12))
    ends = np.concatenate([cand.j, cand.k])
    classes = np.concatenate([pair_class, pair_class])
    order = np.lexsort((classes, ends))
    signature: list[list[int]] = [[] for _ in range(colour.size)]
    for r, c in zip(ends[order].tolist(), classes[order].tolist()):
        signature[r].append(c)
    keys = {}
    refined = np.empty(colour.size, dtype=np.int64)
    for r, sig in enumerate(signature):
        refined[r] = keys.setdefault((int(colour[r]), tuple(sig)), len(keys))
    return refined


def detect_symmetry(instance: Instance, criterion: Criterion) -> Symmetry:
    """The symmetry group of an instance (see the module docstring); trivial when there is none,
    when the instance is too large to look (a log line says so) or without pynauty."""
    cand = instance.candidates
    N, P = instance.n_completions, len(cand)
    if P < 2:
        return _trivial(instance)
    phi = centered_features(instance)
    norms = np.einsum("ij,ij->i", phi, phi)
    scale = max(float(norms.max(initial=0.0)), 1e-300)
    tol = RELATIVE_TOL * scale
    # prompts: size, cap, minimum and groups
    caps = instance.prompt_caps()
    prompt_columns = [instance.prompt_sizes.astype(np.float64), np.where(np.isfinite(caps), caps, -1.0)]
    prompt_columns.append(instance.prompt_minimums())  # coverage minimums
    for group in instance.groups:
        prompt_columns.append(np.isin(np.arange(instance.n_prompts), group.prompts).astype(np.float64))
    prompt_class = _joint(*[_classes(c, 0.5) for c in prompt_columns])
    colour = _joint(prompt_class[instance.prompt_of_row], _classes(norms, tol))
    if np.unique(colour).size == N:
        return _trivial(instance)  # distinct norms: every symmetry is the identity
    colour = _pair_refinement(colour, phi, cand)
    if np.unique(colour).size == N:
        return _trivial(instance)  # told apart by the lengths of their candidate pairs
    if N > MAX_GRAM_COMPLETIONS:
        logger.info("symmetry: %d completions, more than %d: not looked for", N, MAX_GRAM_COMPLETIONS)
        return _trivial(instance)
    gram = phi @ phi.T
    gram_class = _classes(gram, tol).reshape(N, N)
    refined = _refine(colour, gram_class)
    if np.unique(refined).size == N:
        return _trivial(instance)
    try:
        import pynauty
    except ImportError:
        logger.info("symmetry: pynauty is not installed (pip install 'pairdesign[symmetry]'): "
                    "no symmetry reduction")
        return _trivial(instance)

    # the coloured graph: completions, prompts, Gram entries outside the commonest value,
    # candidate pairs, labeled pairs
    adjacency: dict[int, list[int]] = {}

    def link(u: int, v: int) -> None:
        adjacency.setdefault(u, []).append(v)

    colours: list[np.ndarray] = [colour]  # each block's colours, made distinct across blocks below
    n_vertices = N
    if instance.n_prompts > 1:
        for r in range(N):
            link(r, N + int(instance.prompt_of_row[r]))
        colours.append(prompt_class.copy())
        n_vertices += instance.n_prompts
    upper_a, upper_b = np.triu_indices(N, k=1)
    off = gram_class[upper_a, upper_b]
    if off.size:
        common = int(np.bincount(off).argmax())
        keep = np.flatnonzero(off != common)
        if n_vertices + keep.size + P > MAX_GRAPH_VERTICES:
            logger.info("symmetry: the graph would have more than %d vertices: not looked for",
                        MAX_GRAPH_VERTICES)
            return _trivial(instance)
        for v, (a, b) in enumerate(zip(upper_a[keep].tolist(), upper_b[keep].tolist()), start=n_vertices):
            link(v, a)
            link(v, b)
        colours.append(_joint(off[keep]))
        n_vertices += keep.size
    pair_vertex0 = n_vertices
    w_class = _classes(cand.weight, RELATIVE_TOL * max(float(np.abs(cand.weight).max()), 1e-300))
    c_class = _classes(cand.cost, RELATIVE_TOL * max(float(np.abs(cand.cost).max()), 1e-300))
    pair_colour = _joint(w_class, c_class, _classes(cand.lower, 0.5), _classes(cand.upper, 0.5))
    for p, (a, b) in enumerate(zip(cand.j.tolist(), cand.k.tolist()), start=n_vertices):
        link(p, a)
        link(p, b)
    colours.append(pair_colour)
    n_vertices += P
    if instance.labeled.shape[0]:
        lj, lk = instance.labeled[:, 0], instance.labeled[:, 1]
        counts = (np.ones(lj.shape[0]) if instance.labeled_counts is None
                  else instance.labeled_counts.astype(np.float64))
        amount = counts * bradley_terry_weights(instance, lj, lk)
        for v, (a, b) in enumerate(zip(lj.tolist(), lk.tolist()), start=n_vertices):
            link(v, int(a))
            link(v, int(b))
        colours.append(_classes(amount, RELATIVE_TOL * max(float(np.abs(amount).max()), 1e-300)))
        n_vertices += lj.shape[0]
    shift, full = 0, []
    for block in colours:
        full.append(block + shift)
        shift += int(block.max(initial=-1)) + 1
    base_colour = np.concatenate(full).astype(np.int64)
    graph = pynauty.Graph(n_vertices, directed=False, adjacency_dict=adjacency,
                          vertex_coloring=_partition(base_colour))
    generators, size1, size2, _, _ = pynauty.autgrp(graph)
    order = float(size1) * 10.0 ** size2
    if not generators or order <= 1.0:
        return _trivial(instance)
    gens = np.asarray(generators, dtype=np.int64)
    completion_gens = gens[:, :N]
    pair_gens = gens[:, pair_vertex0:pair_vertex0 + P] - pair_vertex0
    for pi, sigma in zip(completion_gens, pair_gens):
        problem = _check_generator(instance, criterion, phi, pi, sigma)
        if problem:
            logger.warning("symmetry: a symmetry nauty found fails the numerical check (%s): "
                           "no symmetry reduction", problem)
            return _trivial(instance)
    logger.info("symmetry: group of order %.6g on %d completions and %d candidate pairs "
                "(%d generators)", order, N, P, len(gens))
    return Symmetry(order=order, completion_generators=completion_gens, pair_generators=pair_gens,
                    _n_vertices=n_vertices, _adjacency=adjacency, _base_colour=base_colour,
                    _pair_vertex0=pair_vertex0)


def _check_generator(instance: Instance, criterion: Criterion, phi: np.ndarray, pi: np.ndarray,
                     sigma: np.ndarray) -> str:
    """Why the permutation (pi on completions, sigma on pairs) is not a symmetry, or ''."""
    cand = instance.candidates
    if np.any(np.sort(sigma) != np.arange(sigma.size)) or np.any(np.sort(pi) != np.arange(pi.size)):
        return "not a permutation"
    a, b = pi[cand.j], pi[cand.k]
    image = (np.minimum(a, b), np.maximum(a, b))
    target = (np.minimum(cand.j[sigma], cand.k[sigma]), np.maximum(cand.j[sigma], cand.k[sigma]))
    if np.any(image[0] != target[0]) or np.any(image[1] != target[1]):
        return "the map of pairs does not follow the map of completions"
    for name in ("weight", "cost", "lower", "upper"):
        values = getattr(cand, name)
        if not np.allclose(values[sigma], values, rtol=1e-9, atol=0.0):
            return f"pair {name}s differ"
    image_prompt = instance.prompt_of_row[pi]  # the prompt each completion goes to
    if np.any(image_prompt != image_prompt[instance.prompt_offsets[:-1]][instance.prompt_of_row]):
        return "a prompt is split"
    # Q: the linear map phi_a -> phi_pi(a) on the span of the features, the identity on the
    # orthogonal complement (then H, M0 outside the span are compared as they are)
    _, sv, Vt = np.linalg.svd(phi, full_matrices=False)
    scale = max(float(np.abs(phi).max(initial=0.0)), 1e-300)
    rank = int(np.sum(sv > 1e-10 * max(float(sv.max(initial=0.0)), 1e-300)))
    V = Vt[:rank].T
    QT = np.linalg.pinv(phi) @ phi[pi] + np.eye(phi.shape[1]) - V @ V.T  # rows: phi_a Q^T
    Q = QT.T
    if np.abs(phi @ QT - phi[pi]).max(initial=0.0) > 1e-7 * scale:
        return "the features are not a rotation of each other"
    if np.abs(Q @ Q.T - np.eye(Q.shape[0])).max() > 1e-7:
        return "the map of the features is not orthogonal"
    M0 = prior_information(instance)
    if np.abs(Q @ M0 @ Q.T - M0).max() > 1e-9 * max(float(np.abs(M0).max()), 1e-300):
        return "the prior information is not kept"
    if criterion.name == "L":
        H = criterion.H
        if np.abs(Q @ H @ Q.T - H).max() > 1e-9 * max(float(np.abs(H).max()), 1e-300):
            return "the L criterion's H is not kept"
    return ""


def orbit_of(labels: np.ndarray, p: int) -> np.ndarray:
    """The pairs in the orbit of pair p, given orbit labels from :meth:`Symmetry.node_orbits`."""
    return np.flatnonzero(labels == labels[p])


class OrbitalBranching:
    """The orbits branch and bound branches on: a pair's orbit under the symmetries that keep a
    node's box (:meth:`orbit`), or the pair alone when the instance has no symmetry."""

    def __init__(self, symmetry: Symmetry | None):
        self.symmetry = symmetry
        self.active = symmetry is not None and not symmetry.trivial
        self.order = 1.0 if symmetry is None else symmetry.order

    @classmethod
    def for_instance(cls, instance: Instance, criterion: Criterion, enabled: bool = True
                     ) -> "OrbitalBranching":
        return cls(detect_symmetry(instance, criterion) if enabled else None)

    @property
    def calls(self) -> int:
        return 0 if self.symmetry is None else self.symmetry.calls

    def orbit(self, p: int, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, bool]:
        """The orbit of pair p under the subgroup keeping ``lo <= n <= hi`` (all its pairs have
        p's bounds), and whether that subgroup is nontrivial. Branch and bound does not ask
        again below a node whose subgroup is trivial: deeper boxes are finer, so their groups
        are mostly trivial too, and plain branching there forgoes symmetry, never a design."""
        if not self.active:
            return np.array([p]), False
        labels, order = self.symmetry.node_orbits(lo, hi)
        orbit = orbit_of(labels, p)
        if np.any(lo[orbit] != lo[p]) or np.any(hi[orbit] != hi[p]):
            raise AssertionError("an orbit of the box's group mixes pairs with different bounds")
        return orbit, order > 1.0


def leader_inequalities(symmetry: Symmetry, max_levels: int = 64) -> list[tuple[int, int]]:
    """Symmetry-breaking inequalities ``n_p >= n_q`` along a stabiliser chain: p_1 is a pair of
    the largest orbit O_1 of the group G, p_2 one of the largest orbit O_2 of the stabiliser
    G_1 of p_1, and so on (G_k fixes p_1..p_k pointwise), with ``n_{p_k} >= n_q`` for q in O_k.

    Every design has a symmetric image meeting them all: given an image meeting levels 1..k-1,
    an h in G_{k-1} moving a largest entry on O_k to p_k meets level k, and keeps levels
    1..k-1 (h fixes each p_j, j < k, and maps each O_j onto itself, being in G_{j-1}). So the
    optimum over the designs meeting them is the optimum. For a model without other symmetry
    handling (the outer approximation's master), not to be combined with orbital branching."""
    if symmetry.trivial:
        return []
    fixed: list[int] = []
    inequalities: list[tuple[int, int]] = []
    while len(fixed) < max_levels:
        labels, order = symmetry.stabiliser_orbits(fixed)
        if order <= 1.0:
            break
        size = np.bincount(labels)[labels]
        if fixed:
            size[np.asarray(fixed, dtype=np.int64)] = 0
        p = int(np.argmax(size))
        if size[p] <= 1:
            break
        inequalities += [(p, int(q)) for q in np.flatnonzero(labels == labels[p]) if q != p]
        fixed.append(p)
    return inequalities


__all__ = ["OrbitalBranching", "leader_inequalities", "Symmetry", "detect_symmetry", "orbit_of"]
