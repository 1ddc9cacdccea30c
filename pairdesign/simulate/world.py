"""The synthetic DPO world of docs/design.md section 7: prompts, completions, a true reward, labels,
the DPO fit and the exact policy gap.

Features follow the generator's distributions (:mod:`pairdesign.generate`): for prompt i and
completion j, ``phi[i,j] = A (sqrt(s) a_i + sqrt(1 - s) g_i e_ij)`` with ``A = Q diag(sqrt(lambda))``,
a random rotation Q and a decaying spectrum ``lambda_t ∝ t^-decay`` (mean 1). Variants that stress
designs change the per-completion part ``e_ij``:

- ``gaussian``: ``e_ij ~ N(0, I)`` (the generator's own);
- ``clustered``: ``e_ij = (c_{m(ij)} + tau u_ij) / sqrt(1 + tau^2)``, a few shared cluster centres;
- ``hypercube``: ``e_ij`` a uniformly random vertex of ``{-1, 1}^d`` (a hypercube of actions);

and ``g_i = exp(spread * N(0, 1) - spread^2)`` gives prompts of very different spread. The true
reward is ``r* = theta*^T phi`` with theta* scaled so that the reward gap of two completions of one
training prompt has standard deviation ``reward_scale``.

Policies are log-linear over each prompt's K completions: ``pi_theta(y|x) ∝ pi_ref(y|x)
exp(theta^T phi(x, y) / beta)``; DPO on Bradley-Terry labels fits exactly the logistic regression
of the labels on ``z = phi_a - phi_b`` (:func:`pairdesign.fit.fit_bradley_terry`). The optimum of
``J(pi) = E_x[E_pi r*] - beta E_x KL(pi(.|x) || pi_ref(.|x))`` is ``pi* = pi_{theta*}`` and, exactly,

    J(pi*) - J(pi) = beta E_x KL(pi(.|x) || pi*(.|x)).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import scipy.special

from ..errors import OptionError
from ..fit import Fit, fit_bradley_terry
from ..instance import Instance

FEATURE_KINDS = ("gaussian", "clustered", "hypercube")
REFERENCES = ("uniform", "random")


@dataclass(frozen=True)
class Setting:
    """One synthetic world: sizes, feature distribution, reward scale and the fit's ridge."""

    name: str = "default"
    dim: int = 16
    completions: int = 8
    train_prompts: int = 600
    test_prompts: int = 300
    decay: float = 1.0
    shared: float = 0.5
    features: str = "gaussian"
    clusters: int = 8
    cluster_noise: float = 0.3
    spread: float = 0.0
    reward_scale: float = 1.0
    reference: str = "uniform"
    reference_scale: float = 1.0
    beta: float = 1.0
    ridge: float = 1.0
    pilot_noise: float = 0.5
    first_stage: float = 0.5

    def __post_init__(self) -> None:
        for name in ("dim", "train_prompts", "test_prompts", "clusters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"setting {self.name!r}: '{name}' must be an integer >= 1, got {value!r}")
        if isinstance(self.completions, bool) or not isinstance(self.completions, int) or self.completions < 2:
            raise OptionError(f"setting {self.name!r}: 'completions' must be an integer >= 2")
        if self.features not in FEATURE_KINDS:
            raise OptionError(f"setting {self.name!r}: 'features' must be one of {list(FEATURE_KINDS)}, "
                              f"got {self.features!r}")
        if self.reference not in REFERENCES:
            raise OptionError(f"setting {self.name!r}: 'reference' must be one of {list(REFERENCES)}")
        if not 0.0 <= self.shared < 1.0:
            raise OptionError(f"setting {self.name!r}: 'shared' must be in [0, 1)")
        if not 0.0 < self.first_stage < 1.0:
            raise OptionError(f"setting {self.name!r}: 'first_stage' must be in (0, 1)")
        for name in ("decay", "cluster_noise", "spread", "reward_scale", "reference_scale", "pilot_noise"):
            if not getattr(self, name) >= 0:
                raise OptionError(f"setting {self.name!r}: '{name}' must be non-negative")
        for name in ("beta", "ridge"):
            if not getattr(self, name) > 0:
                raise OptionError(f"setting {self.name!r}: '{name}' must be positive")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Setting":
        """A setting from a config table; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OptionError(f"setting {data.get('name', '?')!r}: unknown key(s) {unknown}; "
                              f"known: {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True, eq=False)
class Prompts:
    """Prompts with K completions each: features (n K, d) grouped by prompt, reference logits."""

    features: np.ndarray
    ref_logits: np.ndarray
    n_prompts: int
    n_completions: int

    @property
    def prompt_index(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_prompts), self.n_completions)

    def all_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every within-prompt pair (j < k) as global rows."""
        a, b = np.triu_indices(self.n_completions, 1)
        base = (np.arange(self.n_prompts) * self.n_completions)[:, None]
        return (base + a).ravel(), (base + b).ravel()


@dataclass(frozen=True, eq=False)
class World:
    """A drawn world: train pool, held-out prompts, theta*, and the pilot theta."""

    setting: Setting
    train: Prompts
    test: Prompts
    theta: np.ndarray
    pilot: np.ndarray
    test_pairs: tuple[np.ndarray, np.ndarray] = field(repr=False, default=None)  # type: ignore[assignment]

    def instance(self, budget: float, scores: np.ndarray | None = None, weights: str = "uniform") -> Instance:
        """The design problem on the training pool (every within-prompt pair a candidate),
        with ``M0 = ridge I`` (the fit's penalty) and pilot ``scores`` on the logit scale."""
        return Instance.from_arrays(self.train.features, self.train.prompt_index, budget=budget,
                                    scores=scores, ridge=self.setting.ridge, weights=weights,
                                    name=f"world-{self.setting.name}")

    def scores(self, theta: np.ndarray) -> np.ndarray:
        """Scores ``theta^T phi`` on the training pool (the Bradley-Terry logit scale)."""
        return self.train.features @ theta

    def policy_covariance(self, theta: np.ndarray | None) -> np.ndarray:
        """H = mean over training prompts of Cov_{pi_theta(.|x)}(phi), pi_theta as above
        (theta None: the reference policy)."""
        t = np.zeros(self.setting.dim) if theta is None else theta
        return policy_covariance(self.train, t, self.setting.beta)

    def evaluate(self, theta_hat: np.ndarray) -> dict[str, float]:
        """The exact gap, ‖theta_hat - theta*‖ and the held-out preference accuracy."""
        j, k = self.test_pairs
        z = self.test.features[j] - self.test.features[k]
        true, est = z @ self.theta, z @ theta_hat
        decided = true != 0
        return {
            "gap": policy_gap(self.test, theta_hat, self.theta, self.setting.beta),
            "param_error": float(np.linalg.norm(theta_hat - self.theta)),
            "accuracy": float(np.mean(np.sign(est[decided]) == np.sign(true[decided]))),
        }


def _log_policy(prompts: Prompts, theta: np.ndarray, beta: float) -> np.ndarray:
    """log pi_theta(y|x), shape (n, K): log softmax of ``ref_logits + theta^T phi / beta``."""
    logits = (prompts.ref_logits + prompts.features @ theta / beta).reshape(prompts.n_prompts, -1)
    return logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)


def policy_gap(prompts: Prompts, theta_hat: np.ndarray, theta_star: np.ndarray, beta: float) -> float:
    """``J(pi*) - J(pi_hat) = beta * mean_x KL(pi_hat(.|x) || pi*(.|x))`` (exact, >= 0)."""
    log_hat = _log_policy(prompts, theta_hat, beta)
    log_star = _log_policy(prompts, theta_star, beta)
    kl = np.sum(np.exp(log_hat) * (log_hat - log_star), axis=1)
    return float(beta * np.mean(np.maximum(kl, 0.0)))


def objective_J(prompts: Prompts, theta: np.ndarray, theta_star: np.ndarray, beta: float) -> float:
    """``J(pi_theta) = mean_x [ sum_y pi(y|x) r*(x,y) - beta KL(pi(.|x) || pi_ref(.|x)) ]``."""
    log_pi = _log_policy(prompts, theta, beta)
    ref = prompts.ref_logits.reshape(prompts.n_prompts, -1)
    log_ref = ref - scipy.special.logsumexp(ref, axis=1, keepdims=True)
    pi = np.exp(log_pi)
    reward = (prompts.features @ theta_star).reshape(prompts.n_prompts, -1)
    return float(np.mean(np.sum(pi * reward, axis=1) - beta * np.sum(pi * (log_pi - log_ref), axis=1)))


def policy_covariance(prompts: Prompts, theta: np.ndarray, beta: float) -> np.ndarray:
    """``mean_x Cov_{pi_theta(.|x)}(phi)``: the Hessian of the gap at theta* is H / beta."""
    prob = np.exp(_log_policy(prompts, theta, beta))  # (n, K)
    phi = prompts.features.reshape(prompts.n_prompts, prompts.n_completions, -1)
    mean = np.einsum("nk,nkd->nd", prob, phi)
    centred = phi - mean[:, None, :]
    H = np.einsum("nk,nkd,nke->de", prob, centred, centred) / prompts.n_prompts
    return 0.5 * (H + H.T)


def _draw_prompts(setting: Setting, n: int, A: np.ndarray, centres: np.ndarray,
                  rng: np.random.Generator) -> Prompts:
    d, K = setting.dim, setting.completions
    s = setting.shared
    if setting.features == "gaussian":
        e = rng.standard_normal((n * K, d))
    elif setting.features == "clustered":
        tau = setting.cluster_noise
        member = rng.integers(0, centres.shape[0], size=n * K)
        e = (centres[member] + tau * rng.standard_normal((n * K, d))) / np.sqrt(1.0 + tau * tau)
    else:  # hypercube
        e = rng.choice(np.array([-1.0, 1.0]), size=(n * K, d))
    g = np.exp(setting.spread * rng.standard_normal(n) - setting.spread ** 2)
    latent = np.sqrt(1.0 - s) * e * np.repeat(g, K)[:, None]
    latent += np.repeat(np.sqrt(s) * rng.standard_normal((n, d)), K, axis=0)
    ref = (setting.reference_scale * rng.standard_normal(n * K) if setting.reference == "random"
           else np.zeros(n * K))
    return Prompts(features=latent @ A.T, ref_logits=ref, n_prompts=n, n_completions=K)


def make_world(setting: Setting, seed: int) -> World:
    """Draw a world (features, theta*, pilot theta); the same seed gives the same world.

    The pilot is ``theta* + e`` with ``‖e‖ = pilot_noise ‖theta*‖`` in a random direction.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    d = setting.dim
    spectrum = np.arange(1, d + 1, dtype=np.float64) ** -float(setting.decay)
    spectrum *= d / spectrum.sum()
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    Q *= np.sign(np.diag(R))
    A = Q * np.sqrt(spectrum)
    centres = rng.standard_normal((setting.clusters, d))
    train = _draw_prompts(setting, setting.train_prompts, A, centres, rng)
    test = _draw_prompts(setting, setting.test_prompts, A, centres, rng)
    theta = rng.standard_normal(d)
    j, k = train.all_pairs()
    gaps = (train.features[j] - train.features[k]) @ theta
    theta *= setting.reward_scale / max(float(np.sqrt(np.mean(gaps ** 2))), 1e-300)
    noise = rng.standard_normal(d)
    pilot = theta + setting.pilot_noise * np.linalg.norm(theta) * noise / np.linalg.norm(noise)
    return World(setting=setting, train=train, test=test, theta=theta, pilot=pilot,
                 test_pairs=test.all_pairs())


class Labeler:
    """Seeded Bradley-Terry labels with common random numbers: pair p of the pool (global rows
    j < k) gets the label ``1{u_p < sigmoid(r*_j - r*_k)}`` with one uniform ``u_p`` per pair, so
    every design that buys p sees the same label."""

    def __init__(self, world: World, seed: int):
        rng = np.random.default_rng([seed, 0x1ABE1])
        N = world.train.features.shape[0]
        self._u = rng.random(N * (world.setting.completions))  # indexed by (min row, local max)
        self.world = world
        self._K = world.setting.completions

    def label(self, j: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Outcome 1 when j beats k, 0 otherwise."""
        j, k = np.asarray(j), np.asarray(k)
        lo, hi = np.minimum(j, k), np.maximum(j, k)
        u = self._u[lo * self._K + hi % self._K]
        reward = self.world.train.features @ self.world.theta
        p_lo = scipy.special.expit(reward[lo] - reward[hi])
        lo_wins = u < p_lo
        return np.where(j == lo, lo_wins, ~lo_wins).astype(np.float64)


def fit_posterior(world: World, j: np.ndarray, k: np.ndarray, labels: np.ndarray) -> Fit:
    """The DPO fit with its Laplace posterior (theta_hat, the inverse Hessian) on labeled pairs."""
    phi = world.train.features
    return fit_bradley_terry(phi[j] - phi[k], labels, ridge=world.setting.ridge)


def fit_policy(world: World, j: np.ndarray, k: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """theta_hat: the DPO fit (L2-regularised logistic regression, the world's ridge) on the
    labeled differences ``phi_j - phi_k``."""
    phi = world.train.features
    if len(j) == 0:
        return np.zeros(world.setting.dim)
    fit = fit_bradley_terry(phi[j] - phi[k], labels, ridge=world.setting.ridge)
    return fit.theta
