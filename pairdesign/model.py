"""The Bradley-Terry model's pair weights (the math is in docs/design.md).

A label on pair (j, k) says which completion people prefer; under Bradley-Terry,
``P(j beats k) = sigmoid(theta^T (phi_j - phi_k))``, and the label's Fisher information about
theta is ``w z z^T`` with ``z = phi_j - phi_k`` and ``w = s (1 - s)``, ``s`` that probability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .instance import Instance


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``, computed as ``(1 + tanh(x/2)) / 2`` (no overflow)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def bradley_terry_weights(instance: "Instance", j: np.ndarray, k: np.ndarray) -> np.ndarray:
    """w_p for pairs (j, k): 1/4 (``weights = "uniform"``), ``s(1 - s)`` with
    ``s = sigmoid(score_j - score_k)`` (``weights = "scores"``), or from the instance's posterior
    of theta (``"predictive"``, ``"expected"``: :mod:`pairdesign.predictive`)."""
    if instance.weights == "uniform":
        return np.full(np.shape(j), 0.25)
    if instance.weights in ("predictive", "expected"):
        from .predictive import instance_posterior_weights

        return instance_posterior_weights(instance, j, k)
    s = sigmoid(instance.scores[j] - instance.scores[k])
    return s * (1.0 - s)
