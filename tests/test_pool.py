"""The candidate pool is the seam every method reads the candidates through."""

import numpy as np
import pytest

import pairdesign
from pairdesign.information import gains, information_matrix, marginal_gains, Criterion
from pairdesign.pool import CandidatePool, InMemoryPool


class CountingPool:
    """A pool that delegates to the in-memory one and counts the calls: a stand-in for an
    out-of-core pool, to show that the methods reach the candidates only through the pool."""

    def __init__(self, instance):
        self.inner = InMemoryPool(instance)
        self.calls: dict[str, int] = {}

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    @property
    def size(self):
        return self.inner.size

    @property
    def dim(self):
        return self.inner.dim

    @property
    def pairs(self):
        return self.inner.pairs

    def quadratic_forms(self, factors, pairs=None):
        self._count("quadratic_forms")
        return self.inner.quadratic_forms(factors, pairs)

    def top(self, values, k, among=None):
        self._count("top")
        return self.inner.top(values, k, among)

    def information(self, a):
        self._count("information")
        return self.inner.information(a)

    def features(self, pairs):
        self._count("features")
        return self.inner.features(pairs)

    def oracle(self, polytope):
        self._count("oracle")
        return self.inner.oracle(polytope)


def test_counting_pool_satisfies_the_protocol():
    inst = pairdesign.synthetic_instance(6, 4, 3, budget=5, seed=0).instance
    assert isinstance(CountingPool(inst), CandidatePool)
    assert isinstance(InMemoryPool(inst), CandidatePool)


@pytest.mark.parametrize("criterion", ["D", "A", "L"])
def test_pool_kernels_match_explicit_pair_features(criterion):
    inst = pairdesign.synthetic_instance(7, 5, 4, budget=9, seed=3).instance
    pool = InMemoryPool(inst)
    cand = inst.candidates
    Z = inst.features[cand.j] - inst.features[cand.k]  # small instance: explicit z_p
    n = np.random.default_rng(0).random(len(cand))
    M = inst.ridge * np.eye(inst.dim) + (Z * (n * cand.weight)[:, None]).T @ Z
    assert np.allclose(information_matrix(inst, n, pool), M)
    crit = Criterion.make(criterion, inst)
    G = crit.gradient(M)
    assert np.allclose(gains(inst, M, crit, pool), cand.weight * np.einsum("ij,jk,ik->i", Z, G, Z))
    f0 = crit.value(M)
    brute = [crit.value(M + cand.weight[p] * np.outer(Z[p], Z[p])) - f0 for p in range(len(cand))]
    assert np.allclose(marginal_gains(inst, M, crit, pool=pool), brute, rtol=1e-8, atol=1e-12)
    assert np.allclose(pool.features(np.arange(3)), Z[:3])


@pytest.mark.parametrize("method", ["relax", "greedy", "round", "local-search", "max-distance"])
def test_methods_reach_the_candidates_through_the_given_pool(method):
    inst = pairdesign.synthetic_instance(12, 5, 4, budget=10, seed=1).instance
    pool = CountingPool(inst)
    through_pool = pairdesign.solve(inst, method, seed=0, pool=pool)
    default = pairdesign.solve(inst, method, seed=0)
    assert np.array_equal(through_pool.counts, default.counts)
    assert pool.calls, "the method never used the pool it was given"
    if method != "max-distance":
        assert pool.calls.get("quadratic_forms", 0) + pool.calls.get("information", 0) > 0
