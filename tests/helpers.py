"""Random small instances and naive dense reference computations for the tests."""

from __future__ import annotations

import numpy as np

from pairdesign import Group, InfeasibleError, Instance


def random_instance(seed: int, *, max_prompts: int = 4, max_k: int = 5, max_d: int = 4,
                    constraints: bool = True, weights: str | None = None, **overrides) -> Instance:
    """A small random instance; with ``constraints`` it may carry every kind of constraint."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, max_prompts + 1))
    sizes = rng.integers(2, max_k + 1, size=n)
    N = int(sizes.sum())
    d = int(rng.integers(1, max_d + 1))
    offset = rng.normal(scale=rng.choice([0.0, 1.0, 100.0]), size=(n, d))
    features = np.repeat(offset, sizes, axis=0) + rng.normal(size=(N, d)) * rng.uniform(0.1, 3.0, size=d)
    scores = rng.normal(scale=2.0, size=N)
    prompt_index = np.repeat(np.arange(n), sizes)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    all_pairs = [(s + a, s + b) for s, K in zip(starts, sizes) for a in range(K) for b in range(a + 1, K)]
    settings: dict = dict(ridge=float(rng.choice([1e-2, 0.1, 1.0])),
                          weights=weights or str(rng.choice(["uniform", "scores"])))
    budget = float(rng.integers(0, len(all_pairs) + 2))
    if constraints:
        order = rng.permutation(len(all_pairs))
        if rng.random() < 0.5:  # an explicit candidate list, maybe with costs
            chosen = order[: max(1, int(rng.integers(len(all_pairs) // 2, len(all_pairs) + 1)))]
            pairs = np.asarray([all_pairs[i] for i in chosen])
            flip = rng.random(len(pairs)) < 0.5
            pairs[flip] = pairs[flip][:, ::-1]
            settings["pairs"] = pairs
            if rng.random() < 0.5:
                settings["pair_costs"] = rng.choice([0.5, 1.0, 2.0, 3.0], size=len(pairs))
            pool = [tuple(p) for p in pairs]
        else:
            pool = [all_pairs[i] for i in order]
        pool = [pool[i] for i in rng.permutation(len(pool))]
        if rng.random() < 0.3 and len(pool) > 2:
            settings["fixed_out"] = np.asarray([pool.pop()])
        if rng.random() < 0.3 and len(pool) > 2:
            settings["labeled"] = np.asarray([pool.pop()])
            settings["labeled_counts"] = [int(rng.integers(1, 3))]
        if rng.random() < 0.3:
            settings["max_pairs_per_prompt"] = int(rng.integers(0, 4))
        if rng.random() < 0.3:
            settings["max_pairs_per_completion"] = int(rng.integers(0, 3))
        if rng.random() < 0.3:
            settings["max_labels_per_pair"] = int(rng.integers(1, 4))
        if rng.random() < 0.3:
            settings["groups"] = (Group("g0", np.arange(0, n, 2), float(rng.integers(0, 4))),)
        if rng.random() < 0.3 and pool and not settings.get("max_pairs_per_prompt") == 0 \
                and not settings.get("max_pairs_per_completion") == 0 and "groups" not in settings:
            settings["fixed_in"] = np.asarray([pool.pop()])
            budget = max(budget, 3.0)
    settings.update(overrides)
    return Instance.from_arrays(features, prompt_index, budget=budget, scores=scores, **settings)


def naive_z(instance: Instance, j, k) -> np.ndarray:
    return instance.features[np.asarray(j)] - instance.features[np.asarray(k)]


def naive_weight(instance: Instance, j: int, k: int) -> float:
    if instance.weights == "uniform":
        return 0.25
    s = 1.0 / (1.0 + np.exp(-(instance.scores[j] - instance.scores[k])))
    return s * (1.0 - s)


def naive_information(instance: Instance, n: np.ndarray) -> np.ndarray:
    """M(n) summed pair by pair from the raw features (no completion tricks)."""
    d = instance.dim
    M = instance.ridge * np.eye(d)
    counts = instance.labeled_counts if instance.labeled_counts is not None else [1] * len(instance.labeled)
    for (j, k), c in zip(instance.labeled, counts):
        z = instance.features[j] - instance.features[k]
        M += c * naive_weight(instance, j, k) * np.outer(z, z)
    cand = instance.candidates
    for p in range(len(cand)):
        if n[p]:
            z = instance.features[cand.j[p]] - instance.features[cand.k[p]]
            M += n[p] * naive_weight(instance, cand.j[p], cand.k[p]) * np.outer(z, z)
    return M


def naive_value(M: np.ndarray, name: str, H: np.ndarray | None = None) -> float:
    if name == "D":
        sign, logdet = np.linalg.slogdet(M)
        assert sign > 0
        return float(logdet)
    Minv = np.linalg.inv(M)
    if name == "A":
        return float(-np.trace(Minv))
    return float(-np.trace(H @ Minv))


def naive_gain(M: np.ndarray, name: str, z: np.ndarray, w: float, H: np.ndarray | None = None) -> float:
    Minv = np.linalg.inv(M)
    if name == "D":
        return float(w * z @ Minv @ z)
    if name == "A":
        return float(w * z @ Minv @ Minv @ z)
    return float(w * z @ Minv @ H @ Minv @ z)


def check_feasible(instance: Instance, n: np.ndarray, budget: float) -> None:
    """Every constraint checked directly from the instance's fields (not through DesignBuilder)."""
    cand = instance.candidates
    n = np.asarray(n)
    assert np.all(n >= cand.lower) and np.all(n <= instance.max_labels_per_pair)
    assert float(cand.cost @ n) <= budget + 1e-9
    for i in range(instance.n_prompts):
        cap = instance.max_pairs_per_prompt
        if instance.prompt_max_pairs is not None and np.isfinite(instance.prompt_max_pairs[i]):
            cap = instance.prompt_max_pairs[i]
        if cap is not None:
            assert n[cand.prompt == i].sum() <= cap
    if instance.max_pairs_per_completion is not None:
        for r in range(instance.n_completions):
            assert n[(cand.j == r) | (cand.k == r)].sum() <= instance.max_pairs_per_completion
    for g in instance.groups:
        sel = np.isin(cand.prompt, g.prompts)
        assert float(cand.cost[sel] @ n[sel]) <= g.budget + 1e-9
        assert n[sel].sum() >= g.min_pairs - 1e-9  # coverage minimum of the group
    for i in range(instance.n_prompts):  # coverage: the prompt's own min_pairs, else the global one
        least = instance.min_pairs_per_prompt or 0
        if instance.prompt_min_pairs is not None and not np.isnan(instance.prompt_min_pairs[i]):
            least = instance.prompt_min_pairs[i]
        assert n[cand.prompt == i].sum() >= least - 1e-9
    # fixed-out and labeled pairs are never candidates
    keys = {tuple(sorted(p)) for p in zip(cand.j.tolist(), cand.k.tolist())}
    for table in (instance.fixed_out, instance.labeled):
        for j, k in table.tolist():
            assert tuple(sorted((j, k))) not in keys


def has_feasible_design(inst: Instance) -> bool:
    """Whether the instance's fixed pairs and bounds leave a feasible design (random instances
    sometimes do not; the property tests skip those)."""
    from pairdesign.polytope import linear_constraints

    try:
        linear_constraints(inst).check_feasible_start()
    except InfeasibleError:
        return False
    return True
