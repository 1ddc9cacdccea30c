"""What any design could save: the first-order policy gap and a certified ceiling on label savings.

Near theta* the exact gap is ``beta KL(pi_hat || pi*) ~ delta^T H* delta / (2 beta)`` with
``delta = theta_hat - theta*`` and ``H* = mean_x Cov_{pi*(.|x)}(phi)`` on the held-out prompts. The
ridge fit on a design with information ``F = sum_p w*_p z_p z_p^T`` (true Bradley-Terry weights
``w*_p = s(1 - s)``, ``s = sigmoid(r*_j - r*_k)``) has, to first order, covariance
``M^-1 F M^-1`` and bias ``-ridge M^-1 theta*`` with ``M = ridge I + F``, so

    E gap ~ [tr(H* M^-1 F M^-1) + ridge^2 theta*^T M^-1 H* M^-1 theta*] / (2 beta)   (first_order_gap)
          -> V(F) = tr(H* F^-1) / (2 beta)          once the variance dominates (variance_gap).

``V`` is the L criterion with ``H = H*`` and weights ``w*``, so the convex relaxation of
:func:`pairdesign.solve` certifies a lower bound ``U(B) <= V(F)`` for every design of B distinct
pairs (:func:`variance_bound`), even one chosen with theta* known. A baseline needing ``B'``
labels for ``V = U(B)`` bounds every design's savings against it at budget B by ``B' / B``
(:func:`savings_ceiling`), in the regime where V describes the measured gap.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.special

from ..instance import Instance
from ..solve import solve
from .designs import DesignSpec, run_design
from .study import StudyConfig, labels_to_reach
from .world import Labeler, World, make_world, policy_covariance

log = logging.getLogger(__name__)


def gap_hessian(world: World) -> np.ndarray:
    """``H* = mean_x Cov_{pi*(.|x)}(phi)`` on the held-out prompts (the gap's Hessian times beta)."""
    return policy_covariance(world.test, world.theta, world.setting.beta)


def true_information(world: World, j: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``F = sum_p w*_p z_p z_p^T`` of labels on training rows (j, k), true weights ``s(1 - s)``."""
    phi = world.train.features
    z = phi[np.asarray(j)] - phi[np.asarray(k)]
    s = scipy.special.expit(z @ world.theta)
    return (z * (s * (1.0 - s))[:, None]).T @ z


def first_order_gap(world: World, j: np.ndarray, k: np.ndarray, H: np.ndarray | None = None) -> float:
    """``[tr(H M^-1 F M^-1) + ridge^2 theta*^T M^-1 H M^-1 theta*] / (2 beta)``, ``M = ridge I + F``:
    the expected gap of the ridge fit on these labels, to first order (variance and bias)."""
    s = world.setting
    H = gap_hessian(world) if H is None else H
    F = true_information(world, j, k)
    Minv = np.linalg.inv(F + s.ridge * np.eye(s.dim))
    bias = s.ridge * Minv @ world.theta
    return float(np.sum(H * (Minv @ F @ Minv)) + bias @ H @ bias) / (2.0 * s.beta)


def variance_gap(world: World, j: np.ndarray, k: np.ndarray, H: np.ndarray | None = None) -> float:
    """``V = tr(H* F^-1) / (2 beta)``: the gap's variance term without ridge (inf if F is singular)."""
    H = gap_hessian(world) if H is None else H
    F = true_information(world, j, k)
    try:
        chol = np.linalg.cholesky(F)
    except np.linalg.LinAlgError:
        return float("inf")
    X = np.linalg.solve(chol, np.linalg.solve(chol, H).T)  # L^-1 (L^-1 H)^T; trace = tr(F^-1 H)
    return float(np.trace(X)) / (2.0 * world.setting.beta)


@dataclass(frozen=True)
class VarianceBound:
    """At one budget: the certified lower bound on V over all designs, and a design attaining
    ``achieved`` (method ``round`` on the L criterion with H* and the true weights)."""

    budget: int
    lower: float
    achieved: float
    j: np.ndarray
    k: np.ndarray


def variance_bound(world: World, budget: int, H: np.ndarray | None = None, tol: float = 1e-4,
                   seed: int = 0) -> VarianceBound:
    """``U(B) <= min over designs of B distinct pairs of V`` (certified by the relaxation, within
    ``tol``), with the integer design of ``round`` that knows theta* (an exact pilot)."""
    s = world.setting
    H = gap_hessian(world) if H is None else H
    phi = world.train.features
    oracle = Instance.from_arrays(phi, world.train.prompt_index, budget=budget, scores=phi @ world.theta,
                                  weights="scores", ridge=1e-9 * float(np.trace(H)) / s.dim,
                                  name=f"oracle-{s.name}")
    relaxed = solve(oracle, "relax", "L", H=H, options={"tol": tol})
    design = solve(oracle, "round", "L", H=H, seed=seed, options={"tol": tol})
    rows = np.repeat(np.arange(len(oracle.candidates)), np.rint(design.counts).astype(np.int64))
    j, k = oracle.candidates.j[rows], oracle.candidates.k[rows]
    return VarianceBound(budget=int(budget), lower=-float(relaxed.bound) / (2.0 * s.beta),
                         achieved=variance_gap(world, j, k, H), j=j, k=k)


@dataclass(frozen=True)
class Ceiling:
    """Per budget of one world: labels the best baseline needs to match a V value, over the budget.

    ``any_design`` uses the certified bound U(B) (no design can save more, in the V model);
    ``oracle`` the V of round's design with theta* known; ``designs`` the V of each given design.
    ``inf``: no baseline reaches that V within the largest baseline budget; ``nan``: the design's
    own F is singular (too few labels for V)."""

    budgets: np.ndarray
    any_design: np.ndarray
    oracle: np.ndarray
    designs: dict[str, np.ndarray]
    best_baseline: list[str]


def savings_ceiling(world: World, labeler: Labeler, budgets: Sequence[int], baselines: Sequence[DesignSpec],
                    designs: Sequence[DesignSpec] = (), baseline_budgets: Sequence[int] | None = None,
                    seed: int = 0, tol: float = 1e-4) -> Ceiling:
    """The savings ceiling of every design at each budget against the best of ``baselines`` (in
    the V model), and the V-model savings of the given ``designs`` for comparison. Baselines are
    evaluated on ``baseline_budgets`` (default: the budgets and 64d, 100d, 150d, 200d)."""
    d = world.setting.dim
    H = gap_hessian(world)
    budgets = np.asarray(sorted(int(b) for b in budgets))
    grid = np.asarray(sorted(set(budgets.tolist()) | {m * d for m in (64, 100, 150, 200)})
                      if baseline_budgets is None else sorted(int(b) for b in baseline_budgets))
    curves = {}
    for spec in baselines:
        curves[spec.name] = np.array([variance_gap(world, *_pairs(world, labeler, spec, int(B), seed), H)
                                      for B in grid])

    def needs(value: float) -> tuple[float, str]:
        if not np.isfinite(value):  # a singular design: V = inf, no saving to speak of
            return float("nan"), ""
        out = {}
        for name, v in curves.items():
            finite = np.isfinite(v)  # V is inf while a baseline's F is singular (too few labels)
            if not finite.any():
                out[name] = float("inf")
                continue
            first = int(np.argmax(finite))
            out[name] = labels_to_reach(grid[first:], v[first:], value)
        name = min(out, key=out.get)
        return out[name], name

    any_design, oracle, best = [], [], []
    mine: dict[str, list[float]] = {spec.name: [] for spec in designs}
    for B in budgets:
        bound = variance_bound(world, int(B), H, tol=tol, seed=seed)
        n, name = needs(bound.lower)
        any_design.append(n / B)
        best.append(name)
        oracle.append(needs(bound.achieved)[0] / B)
        for spec in designs:
            mine[spec.name].append(needs(variance_gap(world, *_pairs(world, labeler, spec, int(B), seed), H))[0] / B)
    return Ceiling(budgets=budgets, any_design=np.array(any_design), oracle=np.array(oracle),
                   designs={n: np.array(v) for n, v in mine.items()}, best_baseline=best)


def _pairs(world: World, labeler: Labeler, spec: DesignSpec, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    lab = run_design(world, labeler, spec, budget, seed)
    return lab.j, lab.k


CEILING_COLUMNS = ("setting", "budget", "seed", "ceiling", "oracle", "best_baseline")


def run_ceiling(config: StudyConfig, progress: bool = True) -> list[dict]:
    """The savings ceiling of a study config: per setting, seed and budget, ``ceiling`` (no
    design saves more against the best of the config's baselines, in the V model) and ``oracle``
    (round's design with theta* known)."""
    rows = []
    for setting in config.settings:
        budgets = config.budget_labels(setting)
        started = time.perf_counter()
        for seed in config.seeds:
            world = make_world(setting, seed)
            c = savings_ceiling(world, Labeler(world, seed), budgets, config.baselines, seed=seed)
            for i, B in enumerate(c.budgets):
                rows.append({"setting": setting.name, "budget": int(B), "seed": seed,
                             "ceiling": float(c.any_design[i]), "oracle": float(c.oracle[i]),
                             "best_baseline": c.best_baseline[i]})
            if progress:
                log.info("ceiling of %s: seed %d done (%.1f s)", setting.name, seed, time.perf_counter() - started)
    return rows


def ceiling_table(rows: list[dict], dims: dict[str, int] | None = None) -> str:
    """Markdown: per setting and budget, the median [min, max] over seeds of the ceiling and of the
    exact-pilot design's savings, and the baseline that is best most often."""
    out = ["Savings ceiling against the best baseline (labels it needs for the certified lower bound "
           "of tr(H* F^-1) / labels used; no design can save more once the fit's variance dominates), "
           "and the savings of round's L design that knows theta*; median [min, max] over seeds.\n"]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        sel = [r for r in rows if r["setting"] == setting]
        d = (dims or {}).get(setting)
        out.append(f"### {setting}\n\n| budget | ceiling | exact pilot | best baseline |\n|---:|---:|---:|---|")
        for B in sorted({r["budget"] for r in sel}):
            at = [r for r in sel if r["budget"] == B]
            cells = []
            for key in ("ceiling", "oracle"):
                v = np.array([r[key] for r in at])
                hi = "inf" if not np.isfinite(v.max()) else f"{v.max():.2f}"
                cells.append(f"{np.median(v):.2f} [{v.min():.2f}, {hi}]")
            names = [r["best_baseline"] for r in at]
            label = f"{B / d:g}d ({B})" if d else str(B)
            out.append(f"| {label} | {cells[0]} | {cells[1]} | {Counter(names).most_common(1)[0][0]} |")
        out.append("")
    return "\n".join(out) + "\n"
