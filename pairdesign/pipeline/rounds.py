"""Rounds: refit the Bradley-Terry / DPO model on every label so far and design the next batch.

With every labeled pair m (difference ``z_m = phi_a - phi_b``, ``c_m`` labels of which ``y_m c_m``
were won by a), theta_hat minimises the L2-regularised logistic loss of
:func:`pairdesign.fit.fit_bradley_terry` (the downstream study's fit) with the instance's ridge.
The next instance has

- pilot scores ``score = phi theta_hat`` (the fitted reward, Bradley-Terry logit scale), which set
  the weights ``w_p = s(1 - s)`` when ``weights = "scores"``;
- the Laplace posterior of theta (``posterior_mean = theta_hat``, ``posterior_covariance`` = the
  inverse Hessian of the fit), which sets the weights ``w_p = p(1 - p)`` with p the posterior
  predictive probability when ``weights = "predictive"`` (:mod:`pairdesign.predictive`: uniform
  1/4 while the fit is vague, the fitted ``s(1 - s)`` once it is sharp); ``temper = T`` keeps
  ``T Sigma`` instead (a tempered posterior, T >= 1: the weights stay nearer 1/4 until the labels
  are T times as many);
- M0 = ridge I + sum_m c_m w_m z_m z_m^T over all labeled pairs (with scores weights this is the
  fit's Hessian, i.e. the inverse Laplace covariance of theta_hat);
- the labeled pairs out of the candidates.

The fitted theta_hat and its standard errors (square roots of the diagonal of the inverse
Hessian) are reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from ..errors import OptionError
from ..fit import Fit, fit_bradley_terry, fit_evidence
from ..instance import Instance
from ..solve import solve
from ..solvers.base import DEFAULT_METHOD
from ..solvers.result import Result
from .labels import LabelSet, apply_labels

log = logging.getLogger("pairdesign")

POSTERIORS = ("evidence", "fit")


@dataclass(frozen=True, eq=False)
class RoundResult:
    """The outcome of one round: the updated instance, the fit and the next design."""

    instance: Instance
    fit: Fit
    result: Result
    new_labels: int
    """Labels read in by this round (labels already stored in the instance not counted)."""
    unknown_outcomes: int
    """Labeled pairs without a recorded outcome (left out of the fit)."""
    posterior_ridge: float | None = None
    """The prior precision of the posterior kept in the instance (the fit's ridge for
    ``posterior = "fit"``, the evidence's choice for ``"evidence"``)."""
    posterior_temper: float = 1.0
    """The factor T of the kept posterior covariance ``T Sigma``."""

    def report(self) -> dict[str, Any]:
        """The fit and the design as JSON values."""
        fit = self.fit
        inst = self.instance
        known = np.isfinite(inst.labeled_wins) if inst.labeled_wins is not None else np.zeros(0, bool)
        ties = sum(int(r.get("ties", 0)) for r in inst.rounds)
        return {
            "round": len(inst.rounds),
            "labels": fit.n_labels,
            "new_labels": self.new_labels,
            "ties": ties,
            "labeled_pairs": int(known.sum()),
            "unknown_outcomes": self.unknown_outcomes,
            "ridge": inst.ridge,
            "loss": fit.loss,
            "converged": fit.converged,
            "iterations": fit.iterations,
            "theta": fit.theta.tolist(),
            "standard_errors": fit.standard_errors.tolist(),
            "theta_norm": float(np.linalg.norm(fit.theta)),
            "posterior_ridge": self.posterior_ridge,
            "posterior_temper": self.posterior_temper,
            "design": {"method": self.result.method, "criterion": self.result.criterion,
                       "labels": self.result.n_labels, "objective": self.result.objective,
                       "weights": inst.weights},
        }


def _known_labels(instance: Instance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Differences, win fractions and counts of the labeled pairs with a known outcome."""
    L = instance.labeled.shape[0]
    wins = np.full(L, np.nan) if instance.labeled_wins is None else instance.labeled_wins
    counts = np.ones(L) if instance.labeled_counts is None else instance.labeled_counts.astype(float)
    known = np.isfinite(wins)
    a, b = instance.labeled[known, 0], instance.labeled[known, 1]
    return instance.features[a] - instance.features[b], wins[known] / counts[known], counts[known]


def evidence_posterior(instance: Instance) -> tuple[Fit, float]:
    """The empirical-Bayes Laplace posterior of theta on the instance's labels: the fit at the
    prior precision that maximises the Laplace evidence, and that precision."""
    Z, y, c = _known_labels(instance)
    return fit_evidence(Z, y, counts=c)


def refit(instance: Instance, ridge: float | None = None) -> tuple[Fit, int]:
    """The Bradley-Terry / DPO fit on the instance's labeled pairs with known outcomes; returns
    the fit and the number of labeled pairs left out for want of an outcome."""
    L = instance.labeled.shape[0]
    wins = np.full(L, np.nan) if instance.labeled_wins is None else instance.labeled_wins
    counts = np.ones(L) if instance.labeled_counts is None else instance.labeled_counts.astype(float)
    known = np.isfinite(wins)
    if not known.any():
        raise OptionError("no labeled pair with a known outcome: read labels in first "
                          "(`pairdesign labels` or `next-round --labels`)")
    a, b = instance.labeled[known, 0], instance.labeled[known, 1]
    Z = instance.features[a] - instance.features[b]
    fit = fit_bradley_terry(Z, wins[known] / counts[known], counts=counts[known],
                            ridge=instance.ridge if ridge is None else ridge)
    return fit, int((~known).sum())


def next_round(
    instance: Instance,
    labelsets: Sequence[LabelSet],
    *,
    budget: float,
    method: str = DEFAULT_METHOD,
    criterion: str = "D",
    weights: str | None = None,
    ridge: float | None = None,
    seed: int | None = None,
    time_limit: float | None = None,
    posterior: str = "evidence",
    temper: float = 1.0,
) -> RoundResult:
    """Store new labels, refit theta on all labels, update scores / weights / M0, design the next
    batch of ``budget`` labels. Label sets marked ``stored`` are already in the instance.

    The instance keeps a posterior of theta for the weights ``"predictive"`` / ``"expected"``:
    ``posterior = "evidence"`` (default) the Laplace posterior at the prior precision that
    maximises the Laplace evidence of the labels (:func:`pairdesign.fit.fit_evidence`), ``"fit"``
    the Laplace posterior of the fit itself (the instance's ridge). ``temper = T`` (>= 1) keeps the
    posterior covariance times T (a tempered posterior: weights nearer 1/4 while the fit is unsure;
    docs/design.md section 7)."""
    if posterior not in POSTERIORS:
        raise OptionError(f"unknown posterior {posterior!r}; use one of {list(POSTERIORS)}")
    if isinstance(temper, bool) or not isinstance(temper, (int, float)) or not 1.0 <= temper < np.inf:
        raise OptionError(f"temper must be a number >= 1 (a tempered posterior), got {temper!r}")
    designs = [ls.design for ls in labelsets]
    if len(set(designs)) != len(designs):
        raise OptionError("the same design's labels were given twice")
    new = 0
    for labelset in labelsets:
        if not labelset.stored:
            instance = apply_labels(instance, labelset)
            new += len(labelset.labels)
    if ridge is not None:
        instance = replace(instance, ridge=ridge)
    fit, unknown = refit(instance)
    if not fit.converged:
        log.warning("next-round: the Bradley-Terry fit did not converge; consider a larger ridge")
    if posterior == "fit":
        post, post_ridge = fit, instance.ridge
    else:
        post, post_ridge = evidence_posterior(instance)
    instance = replace(instance, scores=instance.features @ fit.theta, budget=budget,
                       weights=instance.weights if weights is None else weights,
                       posterior_mean=post.theta, posterior_covariance=float(temper) * post.covariance)
    result = solve(instance, method=method, criterion=criterion, budget=budget, seed=seed,
                   time_limit=time_limit)
    return RoundResult(instance=instance, fit=fit, result=result, new_labels=new,
                       unknown_outcomes=unknown, posterior_ridge=post_ridge,
                       posterior_temper=float(temper))
