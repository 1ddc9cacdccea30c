"""Exact search of small boxes and the top-gains (Hadamard) bound of branch and bound (issue 16),
against brute-force enumeration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pairdesign import Criterion, Instance, SolutionStatus, objective, solve
from pairdesign.information import centered_features, prior_information
from pairdesign.polytope import linear_constraints, violations
from pairdesign.solvers.node_bounds import PairSpaceRelaxation, SmallBoxSearch, top_gains_bound


def multisets(P: int, r: int, room: np.ndarray):
    """Every multiset of r pairs out of P, pair p at most room[p] times, as count vectors."""
    for chosen in itertools.combinations_with_replacement(range(P), r):
        counts = np.bincount(np.asarray(chosen, dtype=np.int64), minlength=P)
        if np.all(counts <= room):
            yield counts


@pytest.mark.parametrize("seed", range(8))
def test_top_gains_bound_holds_for_every_choice_of_labels_and_is_exact_for_one(seed):
    rng = np.random.default_rng(seed)
    d, P = int(rng.integers(2, 5)), int(rng.integers(3, 7))
    A = rng.normal(size=(d, d))
    M = A @ A.T + float(rng.choice([1e-6, 0.1, 1.0])) * np.eye(d)
    Z, w = rng.normal(size=(P, d)), rng.uniform(0.1, 0.3, P)
    room = rng.integers(0, 3, P)
    room[0] = max(room[0], 1)
    Minv = np.linalg.inv(M)
    g = w * np.einsum("ij,jk,ik->i", Z, Minv, Z)
    log_det = float(np.linalg.slogdet(M)[1])
    for r in range(1, min(4, int(room.sum())) + 1):
        bound = top_gains_bound(log_det, g, room, r)
        best = max(float(np.linalg.slogdet(M + (Z * (w * n)[:, None]).T @ Z)[1])
                   for n in multisets(P, r, room))
        assert best <= bound + 1e-9
        if r == 1:  # one label: the matrix determinant lemma, an equality
            assert best == pytest.approx(bound, abs=1e-9)
    assert top_gains_bound(log_det, g, room, 0) == log_det


def pair_forms(inst: Instance) -> np.ndarray:
    cand = inst.candidates
    phi = centered_features(inst)
    z = phi[cand.j] - phi[cand.k]
    return cand.weight[:, None, None] * np.einsum("pi,pj->pij", z, z)


def designs_in_box(lo: np.ndarray, hi: np.ndarray, budget: float):
    """Every integer n with lo <= n <= hi and sum n <= budget (unit costs)."""
    P = lo.size

    def extend(prefix: list[int], left: float):
        p = len(prefix)
        if p == P:
            yield np.asarray(prefix, dtype=float)
            return
        for v in range(int(lo[p]), int(hi[p]) + 1):
            if v - lo[p] > left:
                break
            yield from extend(prefix + [v], left - (v - lo[p]))

    yield from extend([], budget - float(lo.sum()))


def small_instance(seed: int) -> Instance:
    rng = np.random.default_rng(seed)
    if seed % 3 == 0:  # the item model (a symmetric instance)
        K = int(rng.integers(4, 6))
        features, d = np.eye(K), K
    else:
        K, d = int(rng.integers(4, 6)), int(rng.integers(2, 4))
        features = rng.normal(size=(K, d))
    return Instance.from_arrays(features, np.zeros(K, dtype=int), budget=float(rng.integers(2, 6)),
                                ridge=float(rng.choice([1e-6, 1e-2, 1.0])),
                                max_labels_per_pair=int(rng.integers(1, 3)))


@pytest.mark.parametrize("seed", range(9))
def test_small_box_search_finds_the_maximum_over_the_box(seed):
    rng = np.random.default_rng(100 + seed)
    inst = small_instance(seed)
    crit = Criterion("D")
    lc = linear_constraints(inst)
    search = SmallBoxSearch(PairSpaceRelaxation(inst, crit, lc))
    assert search.applies
    P = len(inst.candidates)
    lo, hi = lc.lower.copy(), lc.upper.copy()
    forced, banned = rng.choice(P, 2, replace=False)
    lo[forced], hi[banned] = 1.0, 0.0
    best, best_n = -math.inf, None
    for n in designs_in_box(lo, hi, inst.budget):
        if not violations(inst, n):
            value = objective(inst, n, crit)
            if value > best:
                best, best_n = value, n
    found = search.solve(lo, hi, -math.inf)
    assert found.design is not None
    assert np.all(found.design >= lo) and np.all(found.design <= hi)
    assert not violations(inst, found.design)
    assert objective(inst, found.design, crit) == pytest.approx(best, abs=1e-8)
    assert found.value == pytest.approx(best, abs=1e-8)
    assert best <= found.ceiling <= best + 1e-6
    # a floor above the maximum: no design reported, the ceiling still bounds the box
    above = search.solve(lo, hi, best + 0.5)
    assert above.design is None and above.ceiling >= best - 1e-12
    # the quick bound bounds the box too
    assert search.quick_bound(lo, hi) >= best - 1e-9
    assert best_n is not None


def test_small_box_search_needs_unit_costs_and_d():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4, 2))
    pairs = np.array([(a, b) for a in range(4) for b in range(a + 1, 4)])
    costs = Instance.from_arrays(features, np.zeros(4, dtype=int), budget=3.0, pairs=pairs,
                                 pair_costs=np.r_[2.0, np.ones(5)])
    assert not SmallBoxSearch(PairSpaceRelaxation(costs, Criterion("D"), linear_constraints(costs))).applies
    plain = Instance.from_arrays(features, np.zeros(4, dtype=int), budget=3.0)
    assert not SmallBoxSearch(PairSpaceRelaxation(plain, Criterion("A"), linear_constraints(plain))).applies


@pytest.mark.parametrize("t, budget", [(7, 7), (8, 8), (6, 9)])
def test_item_model_proven_with_small_boxes_at_the_optimum(t, budget):
    features = np.eye(t)
    inst = Instance.from_arrays(features, np.zeros(t, dtype=int), budget=budget, ridge=1e-6)
    new = solve(inst, "exact", "D", options={"algorithm": "bnb"})
    assert new.status is SolutionStatus.optimal
    stats = next(line for line in new.log if "stats:" in line)
    assert int(stats.split("small_boxes=")[1].split()[0]) > 0  # the small-box search did run
    if budget == t:  # a Hamiltonian cycle: t spanning trees, w = 1/4, the ridge on the ones
        cycle = (t - 1) * math.log(0.25) + math.log(t * t) + math.log(1e-6)
        assert new.objective == pytest.approx(cycle, abs=1e-4)
    else:  # against every design of 9 of the 15 pairs (5005; each pair at most once by default)
        P = len(inst.candidates)
        designs = np.zeros((math.comb(P, budget), P))
        for row, chosen in enumerate(itertools.combinations(range(P), budget)):
            designs[row, list(chosen)] = 1
        values = [objective(inst, n, "D") for n in designs[:3]]
        forms = pair_forms(inst)  # (P, d, d): w_p z_p z_p^T, so M(n) = M0 + sum_p n_p forms[p]
        logdets = np.linalg.slogdet(prior_information(inst) + np.einsum("np,pij->nij", designs, forms))[1]
        assert logdets[:3] == pytest.approx(values, abs=1e-9)  # the batch agrees with objective()
        assert new.objective == pytest.approx(float(logdets.max()), rel=1e-9, abs=1e-9)
