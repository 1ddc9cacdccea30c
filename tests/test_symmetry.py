"""Symmetry detection and orbital branching in branch and bound (issue 16)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import pairdesign
from helpers import check_feasible
from pairdesign import Criterion, Instance, SolutionStatus, objective, solve
from pairdesign.polytope import violations

pytest.importorskip("pynauty")
from pairdesign.solvers.symmetry import detect_symmetry  # noqa: E402


def item_model(t: int, budget: int, rotation_seed: int | None = None, ridge: float = 1e-6) -> Instance:
    """The Bradley-Terry item model: one prompt whose t completions are the items, features the
    unit vectors (or a random rotation of them)."""
    features = np.eye(t)
    if rotation_seed is not None:
        Q, _ = np.linalg.qr(np.random.default_rng(rotation_seed).normal(size=(t, t)))
        features = features @ Q.T
    return Instance.from_arrays(features, np.zeros(t, dtype=int), budget=budget, ridge=ridge)


def brute_force(inst: Instance, crit: Criterion) -> float:
    """The best value over every feasible design (binary or integer, small instances)."""
    cand = inst.candidates
    best = -math.inf
    for n in itertools.product(*[range(int(a), int(b) + 1) for a, b in zip(cand.lower, cand.upper)]):
        n = np.asarray(n)
        if not violations(inst, n):
            best = max(best, objective(inst, n, crit))
    return best


def best_subset(inst: Instance, size: int) -> float:
    """The best D value over designs of exactly ``size`` distinct pairs (binary, unit costs)."""
    cand = inst.candidates
    best = -math.inf
    for chosen in itertools.combinations(range(len(cand)), size):
        n = np.zeros(len(cand))
        n[list(chosen)] = 1
        best = max(best, objective(inst, n, "D"))
    return best


def is_hamiltonian_cycle(inst: Instance, counts: np.ndarray) -> bool:
    cand = inst.candidates
    chosen = np.flatnonzero(counts)
    t = inst.n_completions
    degree = np.bincount(np.r_[cand.j[chosen], cand.k[chosen]], minlength=t)
    if chosen.size != t or np.any(degree != 2) or np.any(counts[chosen] != 1):
        return False
    seen, stack = {0}, [0]  # connected: then a 2-regular graph on all items is one cycle
    while stack:
        a = stack.pop()
        for p in chosen:
            for u, v in ((cand.j[p], cand.k[p]), (cand.k[p], cand.j[p])):
                if u == a and v not in seen:
                    seen.add(int(v))
                    stack.append(int(v))
    return len(seen) == t


# --- detection ------------------------------------------------------------------------------------

@pytest.mark.parametrize("t", [4, 5, 6])
def test_item_model_has_the_symmetric_group_and_a_rotation_keeps_it(t):
    crit = Criterion("D")
    assert detect_symmetry(item_model(t, t), crit).order == math.factorial(t)
    assert detect_symmetry(item_model(t, t, rotation_seed=t), crit).order == math.factorial(t)


def test_detection_loses_the_symmetries_a_perturbation_breaks():
    features = np.eye(5)
    features[0, 0] = 1.5  # item 0 is set apart: S_4 on the others remains
    inst = Instance.from_arrays(features, np.zeros(5, dtype=int), budget=5, ridge=1e-6)
    assert detect_symmetry(inst, Criterion("D")).order == math.factorial(4)
    # a pair fixed in, or another cost, is part of the instance too
    fixed = Instance.from_arrays(np.eye(5), np.zeros(5, dtype=int), budget=5, ridge=1e-6,
                                 fixed_in=np.array([[0, 1]]))
    assert detect_symmetry(fixed, Criterion("D")).order == 2 * math.factorial(3)
    assert detect_symmetry(pairdesign.synthetic_instance(20, 5, 4, budget=8, seed=0).instance,
                           Criterion("D")).order == 1


def test_duplicated_prompts_are_swapped_and_the_l_criterion_needs_its_h_kept():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(3, 4))
    perm = np.array([2, 0, 1])
    features = np.vstack([base, base[perm] + 5.0])  # the second prompt: the first, shifted, permuted
    inst = Instance.from_arrays(features, np.repeat([0, 1], 3), budget=3, ridge=0.1)
    assert detect_symmetry(inst, Criterion("D")).order == 2
    assert detect_symmetry(inst, Criterion.make("L", inst)).order == 2  # H of the uniform policy
    H = np.diag([1.0, 2.0, 3.0, 4.0])  # kept by the swap (Q = I here), so still order 2
    assert detect_symmetry(inst, Criterion("L", H)).order == 2
    # with a rotation between the copies, an H the rotation does not keep breaks the symmetry
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    rotated = Instance.from_arrays(np.vstack([base, base[perm] @ Q.T]), np.repeat([0, 1], 3),
                                   budget=3, ridge=0.1)
    assert detect_symmetry(rotated, Criterion("D")).order == 1  # one prompt rotated alone: no
    both = Instance.from_arrays(np.vstack([base, base[perm]]) @ Q.T, np.repeat([0, 1], 3),
                                budget=3, ridge=0.1)
    assert detect_symmetry(both, Criterion("D")).order == 2
    assert detect_symmetry(both, Criterion("L", H)).order == 2  # Q is the identity on the swap
    # another cap on one prompt breaks the swap
    capped = Instance.from_arrays(features, np.repeat([0, 1], 3), budget=3, ridge=0.1,
                                  prompt_max_pairs=np.array([1.0, np.inf]))
    assert detect_symmetry(capped, Criterion("D")).order == 1


# --- branch and bound at the known optimum ----------------------------------------------------------

@pytest.mark.parametrize("t, rotation_seed", [(5, None), (6, None), (6, 1)])
def test_item_model_is_proven_at_a_hamiltonian_cycle(t, rotation_seed):
    inst = item_model(t, t, rotation_seed)
    result = solve(inst, "exact", "D", options={"algorithm": "bnb"})
    assert result.status is SolutionStatus.optimal
    assert any("orbital branching" in line for line in result.log)
    assert is_hamiltonian_cycle(inst, result.counts)
    best = best_subset(inst, t)  # C(15, 6) = 5005 designs at t = 6
    assert result.objective == pytest.approx(best, rel=1e-9, abs=1e-9)
    # the cycle's value from the spanning trees: det of the Laplacian's nonzero part = t * t
    # (t spanning trees), times w = 1/4 per eigenvalue, and the ridge on the all-ones direction
    cycle = (t - 1) * math.log(0.25) + math.log(t * t) + math.log(1e-6)
    assert result.objective == pytest.approx(cycle, abs=1e-4)


def test_leader_inequalities_follow_a_stabiliser_chain():
    from pairdesign.solvers.symmetry import leader_inequalities

    inst = item_model(5, 5)
    cand = inst.candidates
    inequalities = leader_inequalities(detect_symmetry(inst, Criterion("D")))
    # S_5 on the 10 pairs: one orbit of 10, then the stabiliser of a pair (S_2 x S_3) has an
    # orbit of the 6 pairs touching it, then S_2 on the last two items: 9 + 5 + 1
    assert len(inequalities) == 15
    leaders = list(dict.fromkeys(p for p, _ in inequalities))
    assert len(leaders) == 3
    first, second, third = ({int(cand.j[p]), int(cand.k[p])} for p in leaders)
    assert len(first & second) == 1 and len(third & (first | second)) == 1
    # every design has an image meeting them: the best design meeting them is the optimum
    result = solve(inst, "exact", "D", options={"algorithm": "oa"})
    assert result.status is SolutionStatus.optimal
    assert result.objective == pytest.approx(best_subset(inst, 5), rel=1e-9, abs=1e-9)


def test_item_model_with_a_larger_budget_matches_enumeration():
    inst = item_model(5, 10 - 3)  # 7 of the 10 pairs
    result = solve(inst, "exact", "D", options={"algorithm": "bnb"})
    assert result.status is SolutionStatus.optimal
    assert result.objective == pytest.approx(best_subset(inst, 7), rel=1e-9, abs=1e-9)


# --- never a false "optimal" on symmetric instances ------------------------------------------------

def symmetric_instance(seed: int) -> Instance:
    """A small random instance built with symmetry: copies of one prompt (each with its completions
    permuted and shifted), or a regular simplex of items, all rotated together; random budget,
    caps, repeats and score weights that follow the permutation."""
    rng = np.random.default_rng(seed)
    Q = None
    if rng.random() < 0.5:
        K = int(rng.integers(2, 5))
        copies = int(rng.integers(2, 4)) if K <= 3 else 2
        d = int(rng.integers(1, 4))
        base = rng.normal(size=(K, d))
        base_scores = rng.normal(size=K)
        perms = [np.arange(K)] + [rng.permutation(K) for _ in range(copies - 1)]
        features = np.vstack([base[p] + rng.normal(size=d) for p in perms])
        scores = np.concatenate([base_scores[p] for p in perms])
        prompt_index = np.repeat(np.arange(copies), K)
    else:
        K = int(rng.integers(3, 6))
        d = K
        features = np.eye(K) * rng.uniform(0.5, 2.0)
        scores = np.zeros(K)
        prompt_index = np.zeros(K, dtype=int)
    if rng.random() < 0.5:
        Q, _ = np.linalg.qr(rng.normal(size=(features.shape[1], features.shape[1])))
        features = features @ Q.T
    settings: dict = dict(ridge=float(rng.choice([1e-6, 1e-2, 1.0])),
                          weights=str(rng.choice(["uniform", "scores"])))
    if rng.random() < 0.3:
        settings["max_pairs_per_prompt"] = int(rng.integers(1, 4))
    if rng.random() < 0.3:
        settings["max_pairs_per_completion"] = int(rng.integers(1, 3))
    if rng.random() < 0.2:
        settings["max_labels_per_pair"] = 2
    n_pairs = sum(math.comb(int(s), 2) for s in np.bincount(prompt_index))
    budget = float(rng.integers(1, n_pairs + 1))
    return Instance.from_arrays(features, prompt_index, budget=budget, scores=scores, **settings)


@pytest.mark.parametrize("algorithm", ["bnb", "oa"])
def test_symmetry_reduction_never_claims_a_design_that_brute_force_beats(algorithm):
    # bnb: orbital branching; oa: leader inequalities in the master
    symmetric = 0
    for seed in range(30):
        inst = symmetric_instance(seed)
        if np.prod(inst.candidates.upper + 1.0) > 4096:
            continue
        crit_name = ["D", "A", "L"][seed % 3]
        crit = Criterion.make(crit_name, inst)
        symmetric += detect_symmetry(inst, crit).order > 1
        best = brute_force(inst, crit)
        result = solve(inst, "exact", crit_name, time_limit=60, options={"algorithm": algorithm})
        check_feasible(inst, result.counts, inst.budget)
        scale = max(1.0, abs(best))
        assert result.bound >= best - 1e-7 * scale, seed
        assert result.status is SolutionStatus.optimal, seed
        assert result.objective == pytest.approx(best, rel=1e-6, abs=1e-6), seed
    assert symmetric >= 15  # the loop does exercise the symmetry reduction


# --- node relaxations in pair space ----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_pair_space_node_relaxation_bounds_every_design_in_the_box_and_matches_the_general_solver(seed):
    import logging

    from pairdesign.polytope import linear_constraints
    from pairdesign.solvers.base import Context
    from pairdesign.solvers.frank_wolfe import solve_relaxation
    from pairdesign.solvers.node_bounds import PairSpaceRelaxation
    from pairdesign.solvers.result import TerminationCondition

    rng = np.random.default_rng(seed)
    K, d = int(rng.integers(4, 6)), int(rng.integers(2, 4))
    features = rng.normal(size=(K, d))
    pairs = np.array([(a, b) for a in range(K) for b in range(a + 1, K)])
    costs = rng.choice([1.0, 2.0], size=len(pairs)) if seed % 2 else None
    inst = Instance.from_arrays(features, np.zeros(K, dtype=int), budget=float(rng.integers(2, 6)),
                                ridge=float(rng.choice([1e-6, 0.1])), pairs=pairs, pair_costs=costs,
                                max_labels_per_pair=int(rng.integers(1, 3)))
    crit = Criterion("D")
    lc = linear_constraints(inst)
    solver = PairSpaceRelaxation(inst, crit, lc)
    assert solver.applies
    P = len(inst.candidates)
    lo, hi = lc.lower.copy(), lc.upper.copy()
    forced, banned = rng.choice(P, 2, replace=False)
    lo[forced], hi[banned] = 1.0, 0.0
    start = rng.uniform(0, 1, P)
    r = solver.solve(lo, hi, start, None, 1e-6)
    assert r.termination is TerminationCondition.converged
    assert np.all(r.n >= lo - 1e-12) and np.all(r.n <= hi + 1e-12)
    assert float(inst.candidates.cost @ r.n) <= inst.budget + 1e-9
    assert r.value == pytest.approx(objective(inst, r.n, crit), abs=1e-9)
    ctx = Context.make(inst, crit, seed=0, logger=logging.getLogger("test"))
    general = solve_relaxation(ctx, tol=1e-9, lower=lo, upper=hi)
    assert r.bound >= general.value - 1e-9 and general.bound >= r.value - 1e-9
    assert r.value == pytest.approx(general.value, abs=1e-4)
    # the bound holds for every integer design in the box
    for n in itertools.product(*[range(int(a), int(b) + 1) for a, b in zip(lo, hi)]):
        n = np.asarray(n, dtype=float)
        if not violations(inst, n):
            assert objective(inst, n, crit) <= r.bound + 1e-9
    # stop_below: stops as soon as the certificate is that low, with a valid bound
    stopped = solver.solve(lo, hi, start, general.value + 1.0, 1e-9)
    assert stopped.bound >= general.value - 1e-9
    assert not PairSpaceRelaxation(inst, Criterion("A"), lc).applies  # D only
