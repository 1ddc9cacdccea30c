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


# ------------------------------------------------------------------------------ criterion classes
def _random_spd(rng, d):
    A = rng.normal(size=(d, d))
    return A @ A.T + 0.5 * np.eye(d)


def _criterion_classes(rng, d):
    from pairdesign.information import AOptimal, DOptimal, LOptimal
    B = rng.normal(size=(d, d))
    return [DOptimal(), AOptimal(), LOptimal(H=B @ B.T)]


@settings(max_examples=60, deadline=None)
@given(seeds)
def test_criterion_classes_match_naive_dense_value_gains_and_updates(seed):
    """Every criterion class against the dense formulas: f(M), df/dM, the gain w z^T (df/dM) z,
    its factor R2 R2^T = df/dM, the rank-one change f(M + w z z^T) - f(M), the slope of the
    exact line search and the 2 x 2 exchange line search (against a grid)."""
    from pairdesign.information import Criterion, _inverse
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 6))
    M = _random_spd(rng, d)
    Minv = np.linalg.inv(M)
    z, zb, za = rng.normal(size=(3, d))
    w = float(rng.uniform(0.05, 0.25))
    for crit in _criterion_classes(rng, d):
        assert isinstance(crit, Criterion) and crit.name in ("D", "A", "L")
        assert type(Criterion(crit.name, crit.H)) is type(crit)
        H = crit.H
        f = naive_value(M, crit.name, H)
        assert abs(crit.value(M) - f) <= 1e-9 * max(1.0, abs(f))
        G = crit.gradient(M)
        g = naive_gain(M, crit.name, z, w, H)
        assert abs(w * z @ G @ z - g) <= 1e-9 * max(1.0, abs(g))
        R1 = np.linalg.cholesky(Minv)
        R2 = crit.gradient_factor(R1, _inverse(M))
        assert np.allclose(R2 @ R2.T, G, rtol=1e-8, atol=1e-10 * np.abs(G).max())
        K = crit.trace_weight(d)
        assert (K is None) == crit.is_log_det
        q1 = float(z @ Minv @ z)
        qK = None if K is None else float(z @ Minv @ K @ Minv @ z)
        assert abs(crit.gain(w, q1, qK) - g) <= 1e-9 * max(1.0, abs(g))
        change = naive_value(M + w * np.outer(z, z), crit.name, H) - f
        assert abs(crit.rank_one_gain(w, q1, qK) - change) <= 1e-8 * max(1.0, abs(f))
        # the slope of gamma -> f(M + gamma Delta) at gamma = 0.3, against a central difference
        Delta = np.outer(zb, zb) - 0.5 * np.outer(za, za)
        chol = np.linalg.cholesky(M)
        T = np.linalg.solve(chol, np.linalg.solve(chol, Delta).T)
        lam, V = np.linalg.eigh(0.5 * (T + T.T))
        h, gam = 1e-6, 0.3
        if np.linalg.eigvalsh(M + (gam + h) * Delta).min() > 1e-3 * np.linalg.eigvalsh(M).min():
            fd = (naive_value(M + (gam + h) * Delta, crit.name, H)
                  - naive_value(M + (gam - h) * Delta, crit.name, H)) / (2 * h)
            assert abs(crit.step_slope(lam, chol, V)(gam) - fd) <= 1e-4 * max(1.0, abs(fd))
        # the exchange line search: no grid point of [0, t_max] does better
        ub, ua = Minv @ zb, Minv @ za
        Q = np.array([[zb @ ub, zb @ ua], [za @ ub, za @ ua]])
        wb, wa, t_max = w, 0.5 * w, 1.0
        phi = lambda t: naive_value(M + t * (wb * np.outer(zb, zb) - wa * np.outer(za, za)),  # noqa: E731
                                    crit.name, H)
        if np.linalg.eigvalsh(M - t_max * wa * np.outer(za, za)).min() > 0:
            t = crit.exchange_line_search(Q, ub, ua, wb, wa, t_max)
            assert 0.0 <= t <= t_max
            best = max(phi(s) for s in np.linspace(0.0, t_max, 201))
            assert phi(t) >= best - 1e-7 * max(1.0, abs(best))


def test_criterion_gap_rule_and_efficiency():
    """D: a D-efficiency loss 1 - exp(-gap/d) <= tol; A and L: a relative gap tol |f|."""
    rng = np.random.default_rng(0)
    for crit in _criterion_classes(rng, 3):
        gap = crit.allowed_gap(-2.0, 3, 0.01)
        if crit.is_log_det:
            assert 1 - np.exp(-gap / 3) == pytest.approx(0.01, rel=1e-12)
            assert crit.certified_efficiency(-2.0, -2.0 + gap, 3) == pytest.approx(0.99, rel=1e-12)
        else:
            assert gap == pytest.approx(0.02, rel=1e-12)
            assert crit.certified_efficiency(-2.0, -1.5, 3) == pytest.approx(0.75, rel=1e-12)


def test_no_module_switches_on_criterion_names():
    """What differs between criteria lives in the criterion classes: no module compares a
    criterion's name with "D", "A" or "L" (display and files still use the name)."""
    import re
    from pathlib import Path
    import pairdesign
    compare = re.compile(r"""(==|!=)\s*["'][DAL]["']|["'][DAL]["']\s*(==|!=)|"""
                         r"""name\s+(not\s+)?in\s*\(\s*["'][DAL]["']""")
    hits = []
    for path in sorted(Path(pairdesign.__file__).parent.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if compare.search(line):
                hits.append(f"{path.name}:{number}: {line.strip()}")
    assert not hits, "switches on criterion names:\n" + "\n".join(hits)
