"""What ``pairdesign info`` prints: sizes, settings and the rank of the candidates' information."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .information import centered_features, pair_graph_form
from .instance import Instance


def candidate_information_rank(instance: Instance) -> int:
    """rank of ``sum_p w_p z_p z_p^T`` over all candidate pairs (without the ridge or M0).

    Below d, no design can identify every direction: the ridge alone holds M positive definite.
    """
    cand = instance.candidates
    M = pair_graph_form(centered_features(instance), cand.j, cand.k, cand.weight)
    evals = np.linalg.eigvalsh(M)
    top = float(evals.max(initial=0.0))
    if top <= 0:
        return 0
    return int(np.sum(evals > top * instance.dim * np.finfo(float).eps * 10))


def describe(instance: Instance) -> dict[str, Any]:
    """A summary of an instance, as an ordered dict of plain values."""
    cand = instance.candidates
    caps = instance.prompt_caps()
    return {
        "name": instance.name,
        "prompts": instance.n_prompts,
        "completions": instance.n_completions,
        "completions_per_prompt": f"{int(instance.prompt_sizes.min())}..{int(instance.prompt_sizes.max())}",
        "candidate_pairs": len(cand),
        "dimension": instance.dim,
        "budget": instance.budget,
        "ridge": instance.ridge,
        "weights": instance.weights,
        "scores": "all" if instance.has_all_scores else "some" if instance.scores is not None else "none",
        "pair_costs": "unit" if cand.unit_cost else f"{cand.cost.min():g}..{cand.cost.max():g}",
        "max_pairs_per_prompt": None if np.isinf(caps).all() else f"{caps.min():g}..{caps.max():g}",
        "max_pairs_per_completion": instance.max_pairs_per_completion,
        "max_labels_per_pair": instance.max_labels_per_pair,
        "fixed_in": int(instance.fixed_in.shape[0]),
        "fixed_out": int(instance.fixed_out.shape[0]),
        "already_labeled": int(instance.labeled.shape[0] if instance.labeled_counts is None
                               else instance.labeled_counts.sum()),
        "groups": len(instance.groups),
        "information_rank": f"{candidate_information_rank(instance)} of {instance.dim}",
        "texts": "yes" if instance.completion_texts is not None else "no",
        "projection": None if instance.projection is None else ", ".join(
            f"{k} {v}" for k, v in instance.projection.items()),
        "label_rounds": len(instance.rounds),
    }
