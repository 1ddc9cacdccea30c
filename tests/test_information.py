"""The information core against naive dense computations (docs/design.md sections 2, 3, 6)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers import naive_gain, naive_information, naive_value, random_instance
from pairdesign import Criterion, information_matrix, objective, policy_covariance
from pairdesign.information import RankOneInverse, gains, marginal_gains, pair_quadratic_forms

REL = 1e-9
seeds = st.integers(0, 2**32 - 1)


def random_design(instance, rng):
    cand = instance.candidates
    return rng.integers(0, cand.upper + 1) * (rng.random(len(cand)) < 0.7)


def close(a, b, scale):
    return abs(a - b) <= REL * max(scale, 1e-300)


@settings(max_examples=150, deadline=None)
@given(seeds)
def test_information_matrix_matches_dense_sum(seed):
    inst = random_instance(seed)
    n = random_design(inst, np.random.default_rng(seed))
    M = information_matrix(inst, n)
    ref = naive_information(inst, n)
    assert np.abs(M - ref).max() <= REL * np.abs(ref).max()
    assert np.allclose(M, M.T, rtol=0, atol=0)


@settings(max_examples=150, deadline=None)
@given(seeds, st.sampled_from(["D", "A", "L"]))
def test_criterion_values_and_gains_match_dense(seed, name):
    inst = random_instance(seed)
    rng = np.random.default_rng(seed + 1)
    n = random_design(inst, rng)
    crit = Criterion.make(name, inst)
    M = naive_information(inst, n)
    value = objective(inst, n, crit)
    ref = naive_value(M, name, crit.H)
    assert close(value, ref, abs(ref) + 1.0)

    cand = inst.candidates
    g = gains(inst, information_matrix(inst, n), crit)
    ref_g = np.array([naive_gain(M, name, inst.features[j] - inst.features[k], w, crit.H)
                      for j, k, w in zip(cand.j, cand.k, cand.weight)])
    assert g.shape == (len(cand),)
    assert np.all(np.abs(g - ref_g) <= REL * np.maximum(np.abs(ref_g).max(initial=0), 1e-300))


@settings(max_examples=100, deadline=None)
@given(seeds, st.sampled_from(["D", "A", "L"]))
def test_marginal_gains_are_exact_differences(seed, name):
    inst = random_instance(seed)
    cand = inst.candidates
    if len(cand) == 0:
        return
    n = random_design(inst, np.random.default_rng(seed))
    crit = Criterion.make(name, inst)
    M = information_matrix(inst, n)
    base = naive_value(M, name, crit.H)
    got = marginal_gains(inst, M, crit)
    for p in range(len(cand)):
        z = inst.features[cand.j[p]] - inst.features[cand.k[p]]
        ref = naive_value(M + cand.weight[p] * np.outer(z, z), name, crit.H) - base
        assert abs(got[p] - ref) <= 1e-8 * max(1.0, abs(base))


def test_gain_is_the_derivative_of_the_criterion():
    """g_p = df/dn_p: a central finite difference in n_p agrees."""
    inst = random_instance(7, max_d=4, constraints=False, ridge=1.0)
    for name in ("D", "A", "L"):
        crit = Criterion.make(name, inst)
        n = np.ones(len(inst.candidates)) * 0.5
        g = gains(inst, information_matrix(inst, n), crit)
        h = 1e-5
        for p in range(len(n)):
            e = np.zeros_like(n)
            e[p] = h
            fd = (objective(inst, n + e, crit) - objective(inst, n - e, crit)) / (2 * h)
            assert fd == pytest.approx(g[p], rel=1e-5, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(seeds, st.sampled_from(["D", "A", "L"]))
def test_rank_one_inverse_tracks_the_inverse(seed, name):
    inst = random_instance(seed, constraints=False)
    rng = np.random.default_rng(seed)
    crit = Criterion.make(name, inst)
    M = information_matrix(inst, np.zeros(len(inst.candidates)))
    tracker = RankOneInverse(M, crit, refresh=1000)
    for _ in range(12):
        z, w = rng.normal(size=inst.dim), float(rng.uniform(0.05, 0.25))
        predicted = tracker.marginal_gain(z, w)
        before = tracker.value()
        tracker.add(z, w)
        M = M + w * np.outer(z, z)
        assert np.allclose(tracker.M, M, rtol=1e-12, atol=0)
        ref_inv = np.linalg.inv(M)
        assert np.abs(tracker.Minv - ref_inv).max() <= 1e-8 * np.abs(ref_inv).max()
        assert predicted == pytest.approx(tracker.value() - before, rel=1e-7, abs=1e-9)


def test_large_shared_offsets_lose_no_precision():
    """Features = huge per-prompt offset + small spread: the within-prompt centring keeps M exact."""
    rng = np.random.default_rng(3)
    from pairdesign import Instance
    small = rng.normal(size=(12, 3))
    big = np.repeat(rng.normal(scale=1e6, size=(3, 3)), 4, axis=0)
    inst = Instance.from_arrays(small + big, np.repeat(np.arange(3), 4), budget=3, ridge=1e-3)
    inst_small = Instance.from_arrays(small, np.repeat(np.arange(3), 4), budget=3, ridge=1e-3)
    n = np.ones(len(inst.candidates))
    M_big, M_small = information_matrix(inst, n), information_matrix(inst_small, n)
    # differences of huge numbers are exact only up to 1e6 * eps each
    assert np.abs(M_big - M_small).max() <= 1e-8 * np.abs(M_small).max()


def test_quadratic_forms_in_chunks_equal_one_shot():
    rng = np.random.default_rng(0)
    psi = rng.normal(size=(50, 6))
    j, k = rng.integers(0, 50, size=(2, 1000))
    direct = ((psi[j] - psi[k]) ** 2).sum(1)
    assert np.array_equal(pair_quadratic_forms(psi, j, k, chunk=7), pair_quadratic_forms(psi, j, k))
    assert np.allclose(pair_quadratic_forms(psi, j, k, chunk=7), direct, rtol=1e-14)


def test_policy_covariance_uniform_and_scores():
    inst = random_instance(11, constraints=False)
    H = policy_covariance(inst)
    ref = np.zeros((inst.dim, inst.dim))
    for i in range(inst.n_prompts):
        rows = inst.features[inst.prompt_offsets[i]:inst.prompt_offsets[i + 1]]
        ref += np.cov(rows.T, bias=True).reshape(inst.dim, inst.dim)
    assert np.allclose(H, ref / inst.n_prompts, rtol=1e-12, atol=1e-12)
    Hs = policy_covariance(inst, "scores")
    ref = np.zeros((inst.dim, inst.dim))
    for i in range(inst.n_prompts):
        sl = slice(inst.prompt_offsets[i], inst.prompt_offsets[i + 1])
        p = np.exp(inst.scores[sl] - inst.scores[sl].max())
        p /= p.sum()
        mu = p @ inst.features[sl]
        c = inst.features[sl] - mu
        ref += (c * p[:, None]).T @ c
    assert np.allclose(Hs, ref / inst.n_prompts, rtol=1e-12, atol=1e-12)


def test_criterion_rejects_bad_input():
    from pairdesign import OptionError
    inst = random_instance(1, constraints=False)
    with pytest.raises(OptionError, match="unknown criterion"):
        Criterion.make("E", inst)
    with pytest.raises(OptionError, match="positive semidefinite"):
        Criterion("L", -np.eye(inst.dim))
    with pytest.raises(OptionError, match="must be"):
        Criterion.make("L", inst, H=np.eye(inst.dim + 1))
