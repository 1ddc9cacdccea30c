"""Methods side by side: objective, certified efficiency against the best bound, and time.

For each budget B the best bound U is the smallest upper bound the methods proved (auto, round,
local-search, exact, relax carry one; the relaxation's bound holds for every integer design), or,
when none did, the relaxation's certified bound (solved to 1e-6). A design's certified efficiency
against it is

    D:     exp((f - U) / d)        (the D-efficiency it is guaranteed to have)
    A, L:  U / f                   (both negative: the ratio of tr(K M*^-1) to tr(K M^-1))

so 1.0 means proven optimal and 0.99 means "within 1% of the optimum, whatever it is".
"""

from __future__ import annotations

import csv
import logging
import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Sequence

import numpy as np

from ._atomic import atomic_write
from .information import Criterion
from .instance import Instance
from .solve import solve
from .deadline import Deadline
from .solvers.base import Context, method_class
from .solvers.frank_wolfe import solve_relaxation

log = logging.getLogger("pairdesign")

DEFAULT_METHODS = ("auto", "round", "local-search", "greedy", "random", "first-k", "max-distance",
                   "best-vs-worst", "ultrafeedback", "min-margin")


@dataclass(frozen=True)
class Row:
    """One method at one budget."""

    method: str
    budget: float
    criterion: str
    objective: float
    bound: float | None  # the method's own proven bound
    best_bound: float  # min of the relaxation's and every method's bound at this budget
    efficiency: float  # certified efficiency against best_bound
    seconds: float
    status: str
    termination: str
    labels: float


def efficiency(criterion: str, value: float, bound: float, dim: int) -> float:
    """Certified efficiency of a design of value f against an upper bound U (module docstring)."""
    if criterion == "D":
        return float(math.exp(min(0.0, value - bound) / dim))
    return float(min(1.0, bound / value)) if value < 0 else 1.0


def default_methods(instance: Instance) -> list[str]:
    """The methods compared when none are named (score baselines only with scores)."""
    return [m for m in DEFAULT_METHODS if instance.has_all_scores or not method_class(m).needs_scores]


def compare(instance: Instance, methods: Sequence[str] | None = None,
            budgets: Sequence[float] | None = None, *, criterion: str = "D",
            time_limit: float | None = None, seed: int | None = 0,
            H: np.ndarray | None = None) -> list[Row]:
    """Run ``methods`` at each budget (default: the instance's) and score them side by side."""
    methods = list(methods) if methods else default_methods(instance)
    for m in methods:
        method_class(m)  # unknown names fail before anything runs
    budgets = [instance.budget] if not budgets else [float(b) for b in budgets]
    crit = Criterion.make(criterion, instance, H)
    rows: list[Row] = []
    for budget in budgets:
        results = []
        for m in methods:
            log.info(f"compare: budget {budget:g}, method {m}")
            results.append(solve(instance, m, crit, budget=budget, time_limit=time_limit, seed=seed))
        bounds = [r.bound for r in results if r.bound is not None]  # relax's bound holds too
        if not bounds:  # no method proved a bound: the relaxation's certificate
            ctx = Context.make(instance, crit, budget, deadline=Deadline.after(time_limit), seed=seed,
                               logger=log)
            bounds = [solve_relaxation(ctx, tol=1e-6).bound]
        best = min(bounds)
        best = max(best, max((r.objective for r in results if not r.fractional), default=-math.inf))
        for m, r in zip(methods, results):
            rows.append(Row(method=m, budget=budget, criterion=crit.name, objective=r.objective,
                            bound=r.bound, best_bound=best,
                            efficiency=efficiency(crit.name, r.objective, best, instance.dim),
                            seconds=r.seconds, status=r.status.value, termination=r.termination.value,
                            labels=r.n_labels))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table."""
    head = f"{'budget':>8} {'method':<14} {'objective':>14} {'efficiency':>10} {'seconds':>9}  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.budget:>8g} {r.method:<14} {r.objective:>14.8g} {r.efficiency:>10.5f} "
                     f"{r.seconds:>9.3f}  {r.status} ({r.termination})")
    return "\n".join(lines)


def write_csv(rows: Sequence[Row], path: str | os.PathLike) -> None:
    """The rows as CSV (one line per method and budget), written atomically."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(Row)])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})


def plot(rows: Sequence[Row], path: str | os.PathLike, *, title: str | None = None) -> None:
    """A PNG: objective and seconds against budget, one line per method (matplotlib, a
    dependency; imported here because it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r.method for r in rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for m in methods:
        mine = sorted((r for r in rows if r.method == m), key=lambda r: r.budget)
        b = [r.budget for r in mine]
        ax1.plot(b, [r.objective for r in mine], marker="o", label=m)
        ax2.plot(b, [max(r.seconds, 1e-4) for r in mine], marker="o", label=m)
    bounds = sorted({(r.budget, r.best_bound) for r in rows})
    ax1.plot([b for b, _ in bounds], [u for _, u in bounds], "k--", label="best bound")
    crit = rows[0].criterion if rows else "D"
    ax1.set_xlabel("budget (labels)")
    ax1.set_ylabel({"D": "log det M", "A": "-tr M^-1", "L": "-tr H M^-1"}.get(crit, "objective"))
    ax2.set_xlabel("budget (labels)")
    ax2.set_ylabel("seconds")
    ax2.set_yscale("log")
    ax1.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)

