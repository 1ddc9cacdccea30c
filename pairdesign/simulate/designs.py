"""Design strategies of the downstream study: which pairs a team labels at a given budget.

A :class:`DesignSpec` names a method of :func:`pairdesign.solve` (any registered method, so new
methods need no change here) or a method of this module (:data:`LOCAL_METHODS`), a criterion, the
Bradley-Terry weights, and the pilot information the design may use:

- ``pilot = "none"``: no pilot; weights 1/4, and H (for L) the covariance of the reference policy;
- ``pilot = "pilot"``: a noisy pilot theta (scores ``theta_pilot^T phi``) for the weights
  (``weights = "scores"``) and H (the covariance of ``pi_{theta_pilot}``);
- ``pilot = "two-stage"``: a first stage of ``first_stage * B`` random labels, the DPO fit on them,
  then the rest of the budget designed with those labels in M0 and the fitted theta as pilot;
- ``pilot = "rounds"``: ``rounds`` equal rounds of design, label, refit: the first round designed
  without a pilot (criterion D, weights 1/4 when the spec's own criterion or weights need one),
  every later round with all labels so far in M0 and the latest fit as pilot.

Baselines that rank by score (best-vs-worst, ultrafeedback, margins) always see the pilot scores:
the reward-model scores a team would use today.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

import numpy as np

from ..errors import OptionError
from ..fit import fit_evidence
from ..predictive import expected_log_det
from ..instance import Instance
from ..solve import solve
from ..solvers.base import METHODS
from .world import Labeler, World, fit_policy, fit_posterior

log = logging.getLogger(__name__)

PILOTS = ("none", "pilot", "two-stage", "rounds")
POSTERIOR_WEIGHTS = ("predictive", "expected")
WEIGHTS = ("uniform", "scores") + POSTERIOR_WEIGHTS
POSTERIORS = ("fit", "evidence")


@dataclass(frozen=True)
class DesignSpec:
    """One design strategy of the study (a row of the config's ``designs`` or ``baselines``)."""

    name: str
    method: str
    criterion: str = "D"
    weights: str = "uniform"
    pilot: str = "none"
    sample: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    rounds: int = 3
    posterior: str = "fit"
    temper: float = 1.0
    """The posterior covariance behind the weights ``predictive`` / ``expected`` is multiplied by
    ``temper`` (>= 1: a tempered, wider posterior; weights nearer 1/4)."""
    select: bool = False
    """Rounds with posterior weights: each round designs with uniform weights as well and keeps
    the design of larger Bayesian D criterion ``E_theta log det M`` under the (untempered)
    posterior (:func:`pairdesign.predictive.expected_log_det`)."""
    baseline: bool = False

    def __post_init__(self) -> None:
        if self.pilot not in PILOTS:
            raise OptionError(f"design {self.name!r}: 'pilot' must be one of {list(PILOTS)}, got {self.pilot!r}")
        if self.weights not in WEIGHTS:
            raise OptionError(f"design {self.name!r}: 'weights' must be one of {list(WEIGHTS)}")
        if self.weights == "scores" and self.pilot == "none":
            raise OptionError(f"design {self.name!r}: weights 'scores' need a pilot ('pilot' or 'two-stage')")
        if self.posterior not in POSTERIORS:
            raise OptionError(f"design {self.name!r}: 'posterior' must be one of {list(POSTERIORS)}")
        if self.weights in POSTERIOR_WEIGHTS and self.pilot != "rounds":
            raise OptionError(f"design {self.name!r}: weights {self.weights!r} need the posterior of a "
                              "fit: pilot 'rounds'")
        if isinstance(self.temper, bool) or not isinstance(self.temper, (int, float)) \
                or not (1.0 <= float(self.temper) < float("inf")):
            raise OptionError(f"design {self.name!r}: 'temper' must be a number >= 1")
        if self.temper != 1.0 and self.weights not in POSTERIOR_WEIGHTS:
            raise OptionError(f"design {self.name!r}: 'temper' applies to weights {list(POSTERIOR_WEIGHTS)}")
        if self.select and self.weights not in POSTERIOR_WEIGHTS:
            raise OptionError(f"design {self.name!r}: 'select' applies to weights {list(POSTERIOR_WEIGHTS)}")
        if self.criterion.upper() not in ("D", "A", "L", "MSE"):
            raise OptionError(f"design {self.name!r}: unknown criterion {self.criterion!r}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 2:
            raise OptionError(f"design {self.name!r}: 'rounds' must be an integer >= 2")
        if self.sample and self.method != "relax":
            raise OptionError(f"design {self.name!r}: 'sample' applies to method 'relax' only")

    @classmethod
    def from_dict(cls, data: dict[str, Any], baseline: bool = False) -> "DesignSpec":
        known = {f.name for f in fields(cls)} - {"baseline"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OptionError(f"design {data.get('name', '?')!r}: unknown key(s) {unknown}; known: {sorted(known)}")
        if "name" not in data or "method" not in data:
            raise OptionError(f"every design needs a 'name' and a 'method'; got {data!r}")
        return cls(**data, baseline=baseline)

    @property
    def available(self) -> bool:
        """Whether the method exists (a method still being built is skipped with a note)."""
        return self.method in METHODS or self.method in LOCAL_METHODS


@dataclass(frozen=True, eq=False)
class Labeled:
    """The pairs a design bought (global rows of the training pool), their labels, the fit."""

    j: np.ndarray
    k: np.ndarray
    labels: np.ndarray
    theta: np.ndarray


def _chosen(instance: Instance, counts: np.ndarray, budget: int, spec: DesignSpec,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Global rows (j, k) of the labels of a design; a fractional design (relax) is rounded
    (the ``budget`` pairs of largest weight) or sampled (``budget`` distinct pairs drawn with
    probability proportional to the weights)."""
    cand = instance.candidates
    counts = np.asarray(counts, dtype=float)
    if spec.method == "relax":
        budget = min(budget, int(np.count_nonzero(counts > 0)))
        if spec.sample:
            p = np.clip(counts, 0.0, None)
            pick = rng.choice(len(cand), size=budget, replace=False, p=p / p.sum())
        else:
            pick = np.argsort(-counts, kind="stable")[:budget]
        return cand.j[pick], cand.k[pick]
    rows = np.repeat(np.arange(len(cand)), np.rint(counts).astype(np.int64))
    return cand.j[rows], cand.k[rows]


def _design(world: World, instance: Instance, spec: DesignSpec, budget: int, H: np.ndarray,
            pilot_theta: np.ndarray | None, seed: int,
            cache: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 0xDE5])
    if spec.method in LOCAL_METHODS:
        # local greedy methods are nested (the design at B is the first B picks): with a cache,
        # one run at the largest budget serves every budget of the same world and stage
        if cache is not None and instance.labeled.shape[0] == 0:
            full = cache.get(spec.name)
            if full is None or len(full[0]) < budget:
                full = LOCAL_METHODS[spec.method](world, instance, spec, max(budget, cache.get("_max", budget)),
                                                  H, pilot_theta, rng)
                cache[spec.name] = full
            return full[0][:budget], full[1][:budget]
        return LOCAL_METHODS[spec.method](world, instance, spec, budget, H, pilot_theta, rng)
    criterion = spec.criterion.upper()
    # designs that differ only in how they use the same solve (relax: rounded or sampled) share it
    key = ("solve", spec.method, criterion, spec.weights, spec.pilot, repr(sorted(spec.options.items())),
           budget)
    counts = None if cache is None or instance.labeled.shape[0] else cache.get(key)
    if counts is None:
        counts = solve(instance, spec.method, criterion, budget=budget, seed=seed,
                       options=dict(spec.options) or None, H=H).counts  # H: used by L only
        if cache is not None and not instance.labeled.shape[0]:
            cache[key] = counts
    return _chosen(instance, counts, budget, spec, rng)


def run_design(world: World, labeler: Labeler, spec: DesignSpec, budget: int, seed: int,
               cache: dict | None = None) -> Labeled:
    """Choose ``budget`` labels by ``spec``, draw their labels, fit theta_hat.

    ``cache`` (one dict per world; key ``"_max"`` the largest budget) lets nested local greedy
    designs be computed once per world."""
    s = world.setting
    if spec.baseline:
        instance = world.instance(budget, scores=world.scores(world.pilot))
        j, k = _design(world, instance, spec, budget, world.policy_covariance(None), None, seed)
    elif spec.pilot == "none":
        instance = world.instance(budget)
        j, k = _design(world, instance, spec, budget, world.policy_covariance(None), None, seed, cache)
    elif spec.pilot == "pilot":
        instance = world.instance(budget, scores=world.scores(world.pilot), weights=spec.weights)
        j, k = _design(world, instance, spec, budget, world.policy_covariance(world.pilot), world.pilot, seed, cache)
    elif spec.pilot == "rounds":
        j, k = _rounds(world, labeler, spec, budget, seed)
    else:  # two-stage
        first = max(1, int(np.floor(s.first_stage * budget)))
        pool = world.instance(first)
        start = solve(pool, "random", budget=first, seed=seed)
        j1, k1 = _chosen(pool, start.counts, first, replace(spec, method="random"), np.random.default_rng(seed))
        theta1 = fit_policy(world, j1, k1, labeler.label(j1, k1))
        rest = budget - first
        if rest > 0:
            instance = Instance.from_arrays(
                world.train.features, world.train.prompt_index, budget=rest,
                scores=world.scores(theta1), ridge=s.ridge, weights=spec.weights,
                labeled=np.stack([j1, k1], axis=1), name=f"world-{s.name}-stage2")
            j2, k2 = _design(world, instance, spec, rest, world.policy_covariance(theta1), theta1, seed)
            j, k = np.concatenate([j1, j2]), np.concatenate([k1, k2])
        else:
            j, k = j1, k1
    labels = labeler.label(j, k)
    return Labeled(j=j, k=k, labels=labels, theta=fit_policy(world, j, k, labels))


def _rounds(world: World, labeler: Labeler, spec: DesignSpec, budget: int, seed: int
            ) -> tuple[np.ndarray, np.ndarray]:
    s = world.setting
    sizes = np.diff(np.floor(np.linspace(0, budget, spec.rounds + 1)).astype(np.int64))
    j = np.zeros(0, dtype=np.int64)
    k = np.zeros(0, dtype=np.int64)
    theta = None
    for r, size in enumerate(sizes):
        if size == 0:
            continue
        if theta is None:
            first = spec
            if spec.criterion.upper() == "MSE" or spec.weights != "uniform" or spec.method in LOCAL_METHODS:
                first = replace(spec, method="greedy" if spec.method in LOCAL_METHODS else spec.method,
                                criterion="D", weights="uniform", temper=1.0, select=False)
            instance = world.instance(int(size))
            H = world.policy_covariance(None)
        else:
            first = spec
            instance = Instance.from_arrays(
                world.train.features, world.train.prompt_index, budget=int(size),
                scores=world.scores(theta), ridge=s.ridge, weights=spec.weights,
                labeled=np.stack([j, k], axis=1), name=f"world-{s.name}-round{r + 1}",
                posterior_mean=posterior.theta,
                posterior_covariance=float(spec.temper) * posterior.covariance)
            H = world.policy_covariance(theta)
        jr, kr = _design(world, instance, first, int(size), H, theta, seed + 7919 * r)
        if spec.select and r > 0:
            jr, kr = _select_by_posterior(world, instance, spec, int(size), H, theta, seed + 7919 * r,
                                          posterior, j, k, (jr, kr))
        j, k = np.concatenate([j, jr]), np.concatenate([k, kr])
        labels = labeler.label(j, k)
        fit = fit_posterior(world, j, k, labels)
        theta = fit.theta
        posterior = fit
        if spec.posterior == "evidence" and spec.weights in POSTERIOR_WEIGHTS:
            phi = world.train.features
            posterior, _ = fit_evidence(phi[j] - phi[k], labels)
    return j, k


def _select_by_posterior(world: World, instance: Instance, spec: DesignSpec, size: int, H: np.ndarray,
                         theta: np.ndarray, seed: int, posterior, j: np.ndarray, k: np.ndarray,
                         weighted: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The round's design with posterior weights or with uniform weights, whichever has the larger
    ``E_theta log det M`` (labels so far and the round's) under the posterior (same draws)."""
    uniform = _design(world, replace(instance, weights="uniform", posterior_mean=None,
                                     posterior_covariance=None),
                      replace(spec, weights="uniform", temper=1.0, select=False), size, H, theta, seed)
    phi = world.train.features
    values = []
    for jr, kr in (weighted, uniform):
        jj, kk = np.concatenate([j, jr]), np.concatenate([k, kr])
        values.append(expected_log_det(phi[jj] - phi[kk], world.setting.ridge, posterior.theta,
                                       posterior.covariance, rng=np.random.default_rng([seed, 0xB0D])))
    return weighted if values[0] >= values[1] else uniform


# ------------------------------------------------------------------------------ local methods
def greedy_mse(world: World, instance: Instance, spec: DesignSpec, budget: int, H: np.ndarray,
               pilot_theta: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Greedy on the ridge fit's expected policy gap, bias and variance (criterion ``MSE``).

    With ``M = ridge I + F`` (F the labels' information, weights w_p) the ridge estimate has
    bias ``-ridge M^-1 theta`` and covariance ``M^-1 F M^-1``, so the first-order gap is
    proportional to

        phi(M) = tr(H M^-1 (F + ridge^2 theta theta^T) M^-1)
               = tr(H M^-1) - ridge tr(H M^-2) + ridge^2 theta^T M^-1 H M^-1 theta,

    with theta the pilot (required: the bias term needs a direction). Each step adds the pair that
    lowers phi most: with ``A = M^-1``, ``u = A z`` and ``c = w / (1 + w z^T u)`` the update
    ``A' = A - c u u^T`` gives every pair's phi in closed form.
    """
    if pilot_theta is None:
        raise OptionError(f"design {spec.name!r}: criterion MSE needs a pilot ('pilot' or 'two-stage')")
    cand = instance.candidates
    phi = instance.features
    Z = phi[cand.j] - phi[cand.k]
    w = cand.weight.astype(float)
    from ..information import prior_information

    r = instance.ridge
    A = np.linalg.inv(prior_information(instance))
    theta = np.asarray(pilot_theta, dtype=float)
    taken = np.zeros(len(cand), dtype=bool)
    order = []
    for _ in range(min(budget, len(cand))):
        U = Z @ A                      # u_p = A z_p
        UH = U @ H
        q = np.einsum("pd,pd->p", U, Z)                 # z^T A z
        c = w / (1.0 + w * q)
        uHu = np.einsum("pd,pd->p", UH, U)
        uHAu = np.einsum("pd,pd->p", UH @ A, U)
        uu = np.einsum("pd,pd->p", U, U)
        a = A @ theta
        ut = U @ theta
        uHa = UH @ a
        # change of each term of phi after adding pair p
        d_tr = -c * uHu
        d_tr2 = -2.0 * c * uHAu + c * c * uu * uHu
        d_bias = -2.0 * c * ut * uHa + (c * ut) ** 2 * uHu
        delta = d_tr - r * d_tr2 + r * r * d_bias
        delta[taken] = np.inf
        p = int(np.argmin(delta))
        taken[p] = True
        order.append(p)
        u = A @ Z[p]
        A = A - (w[p] / (1.0 + w[p] * Z[p] @ u)) * np.outer(u, u)
        A = 0.5 * (A + A.T)
    order = np.asarray(order, dtype=np.int64)
    return cand.j[order], cand.k[order]


def greedy_d_normalised(world: World, instance: Instance, spec: DesignSpec, budget: int, H: np.ndarray,
                        pilot_theta: np.ndarray | None, rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy D after a per-prompt normalisation: each prompt's features, centred within the
    prompt, divided by the prompt's spread ``sqrt(mean_j |phi_ij - mean_i|^2)`` (times the mean
    spread, so the overall scale stays), so that prompts of large spread do not take every label."""
    phi = instance.features
    sizes = instance.prompt_sizes
    means = np.add.reduceat(phi, instance.prompt_offsets[:-1], axis=0) / sizes[:, None]
    centred = phi - np.repeat(means, sizes, axis=0)
    spread = np.sqrt(np.add.reduceat(np.sum(centred ** 2, axis=1), instance.prompt_offsets[:-1]) / sizes)
    spread = np.maximum(spread, 1e-12 * max(float(spread.max()), 1e-300))
    scaled = centred * np.repeat(float(np.mean(spread)) / spread, sizes)[:, None]
    normalised = replace(instance, features=scaled, weights="uniform", posterior_mean=None,
                         posterior_covariance=None)
    counts = solve(normalised, "greedy", "D", budget=budget, seed=int(rng.integers(1 << 31))).counts
    return _chosen(normalised, counts, budget, replace(spec, method="greedy"), rng)


LOCAL_METHODS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "greedy-mse": greedy_mse, "greedy-d-normalised": greedy_d_normalised}
