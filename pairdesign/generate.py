"""Synthetic instances: anisotropic features and scores from a hidden true theta.

For prompt i and completion j,

    phi[i,j] = A (sqrt(s) a_i + sqrt(1 - s) e_ij),    a_i, e_ij ~ N(0, I_d),  A = Q diag(sqrt(lambda)),

with a random rotation Q and a decaying spectrum ``lambda_t ∝ t^-decay`` (mean 1): a shared
per-prompt component (fraction s of the variance) plus per-completion noise. The hidden reward is
``r* = theta*^T phi`` with theta* scaled so that the reward gap of two completions of one prompt
has standard deviation ``reward_scale``; scores are ``r* + N(0, score_noise^2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import OptionError
from .instance import Instance


@dataclass(frozen=True, eq=False)
class Synthetic:
    """A generated instance and the true parameter behind its scores."""

    instance: Instance
    theta: np.ndarray
    covariance: np.ndarray


def _positive_int(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise OptionError(f"The '{name}' parameter must be an integer >= {minimum}. Got {value!r} instead.")
    return int(value)


def synthetic_instance(
    n_prompts: int,
    n_completions: int,
    dim: int,
    *,
    budget: float | None = None,
    decay: float = 1.0,
    shared: float = 0.5,
    reward_scale: float = 1.0,
    score_noise: float = 0.5,
    scores: bool = True,
    ridge: float = 1e-6,
    weights: str = "uniform",
    seed: int | None = None,
    name: str | None = None,
) -> Synthetic:
    """Generate an instance (all pairs within each prompt are candidates); seeded, reproducible.

    ``budget`` defaults to 4 d labels.
    """
    n_prompts = _positive_int(n_prompts, "n_prompts")
    n_completions = _positive_int(n_completions, "n_completions", 2)
    dim = _positive_int(dim, "dim")
    if not 0.0 <= shared < 1.0:
        raise OptionError(f"The 'shared' parameter must be in [0, 1). Got {shared!r} instead.")
    if decay < 0 or reward_scale < 0 or score_noise < 0:
        raise OptionError("'decay', 'reward_scale' and 'score_noise' must be non-negative")
    rng = np.random.default_rng(seed)
    spectrum = np.arange(1, dim + 1, dtype=np.float64) ** -float(decay)
    spectrum *= dim / spectrum.sum()
    Q, R = np.linalg.qr(rng.standard_normal((dim, dim)))
    Q *= np.sign(np.diag(R))
    A = Q * np.sqrt(spectrum)
    covariance = A @ A.T

    theta = rng.standard_normal(dim)
    gap_sd = np.sqrt(2.0 * (1.0 - shared) * theta @ covariance @ theta)
    theta *= reward_scale / gap_sd

    N = n_prompts * n_completions
    latent = np.sqrt(1.0 - shared) * rng.standard_normal((N, dim))
    latent += np.repeat(np.sqrt(shared) * rng.standard_normal((n_prompts, dim)), n_completions, axis=0)
    features = latent @ A.T
    score = features @ theta + score_noise * rng.standard_normal(N) if scores else None

    width = len(str(n_prompts - 1))
    prompt_ids = np.char.add("p", np.char.zfill(np.arange(n_prompts).astype(str), width))
    completion_ids = np.tile(np.char.add("c", np.arange(n_completions).astype(str)), n_prompts)
    instance = Instance.from_arrays(
        features,
        np.repeat(np.arange(n_prompts), n_completions),
        budget=4 * dim if budget is None else budget,
        scores=score,
        prompt_ids=prompt_ids,
        completion_ids=completion_ids,
        ridge=ridge,
        weights=weights,
        name=name if name is not None else f"synthetic-n{n_prompts}-K{n_completions}-d{dim}-seed{seed}",
    )
    return Synthetic(instance, theta, covariance)
