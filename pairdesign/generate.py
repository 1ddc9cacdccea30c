"""Synthetic instances: anisotropic features and scores from a hidden true theta.

For prompt i and completion j,

    phi[i,j] = A (sqrt(s) a_i + sqrt(1 - s) e_ij),    a_i, e_ij ~ N(0, I_d),  A = Q diag(sqrt(lambda)),

with a random rotation Q and a decaying spectrum ``lambda_t ∝ t^-decay`` (mean 1): a shared
per-prompt component (fraction s of the variance) plus per-completion noise. The hidden reward is
``r* = theta*^T phi`` with theta* scaled so that the reward gap of two completions of one prompt
has standard deviation ``reward_scale``; scores are ``r* + N(0, score_noise^2)``.
"""

from __future__ import annotations

import os
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
    A, covariance, theta = _model(rng, dim, decay, shared, reward_scale)
    features, score = _draw_block(rng, A, theta, n_prompts, n_completions, shared, score_noise, scores)
    instance = Instance.from_arrays(
        features,
        np.repeat(np.arange(n_prompts), n_completions),
        budget=4 * dim if budget is None else budget,
        scores=score,
        prompt_ids=_prompt_ids(0, n_prompts, n_prompts),
        completion_ids=np.tile(_completion_ids(n_completions), n_prompts),
        ridge=ridge,
        weights=weights,
        name=name if name is not None else f"synthetic-n{n_prompts}-K{n_completions}-d{dim}-seed{seed}",
    )
    return Synthetic(instance, theta, covariance)


def _model(rng: np.random.Generator, dim: int, decay: float, shared: float,
           reward_scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The feature map A, the covariance A A^T and theta* (the first draws of the seed)."""
    spectrum = np.arange(1, dim + 1, dtype=np.float64) ** -float(decay)
    spectrum *= dim / spectrum.sum()
    Q, R = np.linalg.qr(rng.standard_normal((dim, dim)))
    Q *= np.sign(np.diag(R))
    A = Q * np.sqrt(spectrum)
    covariance = A @ A.T
    theta = rng.standard_normal(dim)
    gap_sd = np.sqrt(2.0 * (1.0 - shared) * theta @ covariance @ theta)
    theta *= reward_scale / gap_sd
    return A, covariance, theta


def _draw_block(rng: np.random.Generator, A: np.ndarray, theta: np.ndarray, n_prompts: int,
                n_completions: int, shared: float, score_noise: float,
                scores: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (and scores) of ``n_prompts`` prompts x ``n_completions`` completions."""
    dim = A.shape[0]
    N = n_prompts * n_completions
    latent = np.sqrt(1.0 - shared) * rng.standard_normal((N, dim))
    latent += np.repeat(np.sqrt(shared) * rng.standard_normal((n_prompts, dim)), n_completions, axis=0)
    features = latent @ A.T
    score = features @ theta + score_noise * rng.standard_normal(N) if scores else None
    return features, score


def _prompt_ids(start: int, stop: int, n_prompts: int) -> np.ndarray:
    width = len(str(n_prompts - 1))
    return np.char.add("p", np.char.zfill(np.arange(start, stop).astype(str), width))


def _completion_ids(n_completions: int) -> np.ndarray:
    return np.char.add("c", np.arange(n_completions).astype(str))


def write_synthetic_store(
    path: str | os.PathLike,
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
    dtype: str = "float32",
    block_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate straight into a store (:mod:`pairdesign.store`), one block of prompts at a time:
    memory stays at one block whatever the size. Returns ``(theta, covariance)``.

    The draws are those of :func:`synthetic_instance` taken block after block from the same
    seeded stream: a store of one block holds exactly the in-memory instance (in ``dtype``);
    with several blocks the store depends on the seed and on ``block_rows``.
    """
    from .store import DEFAULT_BLOCK_ROWS, StoreWriter, block_layout

    n_prompts = _positive_int(n_prompts, "n_prompts")
    n_completions = _positive_int(n_completions, "n_completions", 2)
    dim = _positive_int(dim, "dim")
    if not 0.0 <= shared < 1.0:
        raise OptionError(f"The 'shared' parameter must be in [0, 1). Got {shared!r} instead.")
    if decay < 0 or reward_scale < 0 or score_noise < 0:
        raise OptionError("'decay', 'reward_scale' and 'score_noise' must be non-negative")
    rng = np.random.default_rng(seed)
    A, covariance, theta = _model(rng, dim, decay, shared, reward_scale)
    sizes = np.full(n_prompts, n_completions, dtype=np.int64)
    blocks = block_layout(sizes, DEFAULT_BLOCK_ROWS if block_rows is None else block_rows)
    settings = dict(budget=4 * dim if budget is None else budget, ridge=ridge, weights=weights,
                    name=name if name is not None else f"synthetic-n{n_prompts}-K{n_completions}-d{dim}-seed{seed}")
    meta: dict[str, object] = {}
    with StoreWriter(path, meta=meta, prompt_sizes=sizes, dim=dim, block_prompts=blocks, dtype=dtype,
                     scores=scores) as writer:
        for b in range(writer.n_blocks):
            p0, p1 = int(blocks[b]), int(blocks[b + 1])
            features, score = _draw_block(rng, A, theta, p1 - p0, n_completions, shared, score_noise, scores)
            features = features.astype(dtype)
            if b == 0:  # the settings and the first block pass the Instance's validation
                first = Instance.from_arrays(features, np.repeat(np.arange(p1 - p0), n_completions),
                                             scores=score, **settings)
                meta.update({key: getattr(first, key) for key in (
                    "name", "budget", "ridge", "weights", "max_pairs_per_prompt",
                    "max_pairs_per_completion", "max_labels_per_pair", "projection")}, rounds=[])
                writer.group.attrs["meta"] = meta
            writer.write_block(b, features=features, prompt_ids=_prompt_ids(p0, p1, n_prompts),
                               completion_ids=np.tile(_completion_ids(n_completions), p1 - p0),
                               scores=score)
    return theta, covariance
