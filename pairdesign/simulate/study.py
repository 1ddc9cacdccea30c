"""The study: run every design at every budget on seeded worlds; the CSV, the label savings.

Label savings of design X over baseline Y at budget B (DESIGN.md section 7): with ``g_X(B)`` the
median gap of X over seeds, ``n_Y(g)`` the labels Y needs for a median gap g (log-log
interpolation of Y's median curve, made non-increasing), the saving is ``n_Y(g_X(B)) / B``.
Against the *best baseline* it is ``min_Y n_Y(g_X(B)) / B`` (the baseline picked per budget after
the fact). Confidence intervals: percentile bootstrap over seeds (the same resampled seeds for
every design, since designs share worlds and labels). Where Y never reaches ``g_X(B)`` within the
largest budget the saving is only known to exceed ``B_max / B`` and is reported as such.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .._atomic import atomic_write
from .._jsonio import loads
from ..errors import OptionError, PairdesignError
from .designs import DesignSpec, run_design
from .world import Labeler, Setting, make_world

log = logging.getLogger(__name__)

COLUMNS = ("setting", "design", "budget", "seed", "gap", "param_error", "accuracy", "seconds")


@dataclass(frozen=True)
class StudyConfig:
    """A study: settings x designs (and baselines) x budgets x seeds."""

    settings: tuple[Setting, ...]
    designs: tuple[DesignSpec, ...]
    baselines: tuple[DesignSpec, ...]
    seeds: tuple[int, ...]
    budgets: tuple[float, ...]
    budget_unit: str = "d"
    bootstrap: int = 1000
    name: str = "study"

    def budget_labels(self, setting: Setting) -> list[int]:
        """The budgets in labels for a setting (``budget_unit = "d"``: multiples of d)."""
        scale = setting.dim if self.budget_unit == "d" else 1
        return sorted({max(1, int(round(b * scale))) for b in self.budgets})


def load_config(path: str | Path, seeds: int | None = None) -> StudyConfig:
    """Read a study config (TOML or JSON): tables ``study``, ``settings``, ``designs``,
    ``baselines``. ``seeds`` overrides the number of seeds."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise PairdesignError(f"{path}: cannot read the config: {exc.strerror}") from None
    try:
        data = tomllib.loads(text.decode()) if path.suffix.lower() == ".toml" else loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # JSONError is a ValueError
        raise PairdesignError(f"{path}: not a valid {path.suffix.lstrip('.').upper() or 'config'} file: {exc}") from None
    try:
        return _parse(data, seeds)
    except OptionError as exc:
        raise OptionError(f"{path}: {exc}") from None


def _parse(data: dict[str, Any], seeds: int | None) -> StudyConfig:
    unknown = sorted(set(data) - {"study", "settings", "designs", "baselines"})
    if unknown:
        raise OptionError(f"unknown table(s) {unknown}; known: study, settings, designs, baselines")
    study = dict(data.get("study", {}))
    known = {"name", "seeds", "budgets", "budget_unit", "bootstrap"}
    if set(study) - known:
        raise OptionError(f"study: unknown key(s) {sorted(set(study) - known)}; known: {sorted(known)}")
    n_seeds = study.get("seeds", 10) if seeds is None else seeds
    seed_list = tuple(range(n_seeds)) if isinstance(n_seeds, int) else tuple(int(s) for s in n_seeds)
    if not seed_list:
        raise OptionError("study: 'seeds' must be a positive count or a list of seeds")
    budgets = tuple(float(b) for b in study.get("budgets", (1, 2, 4, 8, 16, 32, 50)))
    if not budgets or min(budgets) <= 0:
        raise OptionError("study: 'budgets' must be positive numbers")
    unit = study.get("budget_unit", "d")
    if unit not in ("d", "labels"):
        raise OptionError("study: 'budget_unit' must be 'd' or 'labels'")
    settings = tuple(Setting.from_dict(s) for s in data.get("settings", [{}]))
    designs = tuple(DesignSpec.from_dict(d) for d in data.get("designs", []))
    baselines = tuple(DesignSpec.from_dict(d, baseline=True) for d in data.get("baselines", []))
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise OptionError("settings need distinct names")
    dnames = [d.name for d in designs + baselines]
    if len(set(dnames)) != len(dnames):
        raise OptionError("designs and baselines need distinct names")
    if not designs or not baselines:
        raise OptionError("a study needs at least one design and one baseline")
    return StudyConfig(settings=settings, designs=designs, baselines=baselines, seeds=seed_list,
                       budgets=budgets, budget_unit=unit, bootstrap=int(study.get("bootstrap", 1000)),
                       name=str(study.get("name", "study")))


def run_study(config: StudyConfig, progress: bool = True) -> list[dict[str, Any]]:
    """Every (setting, seed, design, budget): the design, its labels, the fit, the metrics.

    Designs whose method is not registered (e.g. a method still being built) are skipped with a
    logged note."""
    specs = []
    for spec in config.designs + config.baselines:
        if spec.available:
            specs.append(spec)
        else:
            log.warning("design %r skipped: method %r is not available in this pairdesign",
                        spec.name, spec.method)
    rows: list[dict[str, Any]] = []
    for setting in config.settings:
        budgets = config.budget_labels(setting)
        started = time.perf_counter()
        for seed in config.seeds:
            world = make_world(setting, seed)
            labeler = Labeler(world, seed)
            cache: dict[str, Any] = {"_max": max(budgets)}
            for spec in specs:
                for budget in budgets:
                    t0 = time.perf_counter()
                    outcome = run_design(world, labeler, spec, budget, seed, cache)
                    metrics = world.evaluate(outcome.theta)
                    rows.append({"setting": setting.name, "design": spec.name, "budget": budget,
                                 "seed": seed, **metrics, "seconds": time.perf_counter() - t0})
            if progress:
                log.info("setting %s: seed %d done (%.1f s)", setting.name, seed, time.perf_counter() - started)
    return rows


def write_csv(rows: Iterable[dict[str, Any]], path: str | Path) -> None:
    with atomic_write(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{row[k]:.10g}" if isinstance(row[k], float) else row[k]) for k in COLUMNS})


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    with open(path, newline="") as handle:
        out = []
        for row in csv.DictReader(handle):
            out.append({"setting": row["setting"], "design": row["design"], "budget": int(row["budget"]),
                        "seed": int(row["seed"]), **{k: float(row[k]) for k in COLUMNS[4:]}})
        return out


# ------------------------------------------------------------------------------ savings
def labels_to_reach(budgets: np.ndarray, gaps: np.ndarray, target: float) -> float:
    """Labels needed for a gap of ``target`` on the curve (budgets, gaps).

    The curve is made non-increasing (running minimum: the best gap reached so far) and interpolated
    linearly in (log budget, log gap). Returns ``inf`` when the curve never reaches ``target``;
    above the first point's gap the first segment is extrapolated (at least 1/4 of the first
    budget is returned, so savings there are bounded).
    """
    b = np.asarray(budgets, dtype=float)
    g = np.minimum.accumulate(np.asarray(gaps, dtype=float))
    if not target > 0:
        return math.inf
    if target < g[-1]:
        return math.inf
    lb, lg, lt = np.log(b), np.log(np.maximum(g, 1e-300)), math.log(target)
    if target >= g[0]:
        if len(b) < 2 or lg[1] >= lg[0]:
            return float(b[0])
        slope = (lb[1] - lb[0]) / (lg[1] - lg[0])
        return float(max(math.exp(lb[0] + slope * (lt - lg[0])), b[0] / 4))
    i = int(np.flatnonzero(g <= target)[0])  # first budget reaching the target; i >= 1
    if lg[i] == lg[i - 1]:
        return float(b[i])
    t = (lt - lg[i - 1]) / (lg[i] - lg[i - 1])
    return float(math.exp(lb[i - 1] + t * (lb[i] - lb[i - 1])))


def savings_curve(budgets: np.ndarray, design_gaps: np.ndarray,
                  baseline_gaps: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Savings of a design against the best of the baselines at each budget (median curves given):
    ``min_Y n_Y(g_X(B)) / B``, and the name of that best baseline per budget."""
    out, best = np.empty(len(budgets)), []
    for i, (B, g) in enumerate(zip(budgets, design_gaps)):
        needs = {name: labels_to_reach(budgets, curve, float(g)) for name, curve in baseline_gaps.items()}
        name = min(needs, key=needs.get)
        out[i] = needs[name] / B
        best.append(name)
    return out, best


@dataclass(frozen=True)
class Savings:
    """Savings of one design against the best baseline, per budget, with a bootstrap CI."""

    setting: str
    design: str
    budgets: np.ndarray
    median_gap: np.ndarray
    savings: np.ndarray
    low: np.ndarray
    high: np.ndarray
    best_baseline: list[str]
    censored: np.ndarray  # True where the baseline never reached the gap (savings > value)


def _median_curves(rows: list[dict[str, Any]], setting: str, metric: str = "gap"
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """budgets, seeds, and per design a (seeds x budgets) array of the metric."""
    sel = [r for r in rows if r["setting"] == setting]
    budgets = np.array(sorted({r["budget"] for r in sel}))
    seeds = np.array(sorted({r["seed"] for r in sel}))
    bi = {b: i for i, b in enumerate(budgets)}
    si = {s: i for i, s in enumerate(seeds)}
    out: dict[str, np.ndarray] = {}
    for r in sel:
        arr = out.setdefault(r["design"], np.full((len(seeds), len(budgets)), np.nan))
        arr[si[r["seed"]], bi[r["budget"]]] = r[metric]
    return budgets, seeds, out


def compute_savings(rows: list[dict[str, Any]], baselines: Iterable[str], n_boot: int = 1000,
                    seed: int = 0) -> list[Savings]:
    """For every setting and every non-baseline design: savings against the best baseline."""
    baselines = set(baselines)
    rng = np.random.default_rng(seed)
    result = []
    for setting in sorted({r["setting"] for r in rows}, key=[r["setting"] for r in rows].index):
        budgets, seeds, curves = _median_curves(rows, setting)
        base = {n: c for n, c in curves.items() if n in baselines}
        designs = [n for n in curves if n not in baselines]
        boots = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
        for name in designs:
            med = np.nanmedian(curves[name], axis=0)
            sav, best = savings_curve(budgets, med, {n: np.nanmedian(c, axis=0) for n, c in base.items()})
            reps = np.empty((n_boot, len(budgets)))
            for b, idx in enumerate(boots):
                reps[b], _ = savings_curve(budgets, np.nanmedian(curves[name][idx], axis=0),
                                           {n: np.nanmedian(c[idx], axis=0) for n, c in base.items()})
            low = np.quantile(reps, 0.025, axis=0, method="inverted_cdf")
            high = np.quantile(reps, 0.975, axis=0, method="inverted_cdf")
            censored = ~np.isfinite(sav)
            sav = np.where(censored, budgets[-1] / budgets, sav)
            low = np.minimum(low, budgets[-1] / budgets)
            result.append(Savings(setting, name, budgets, med, sav, low, high, best, censored))
    return result


def _fmt(x: float) -> str:
    return "inf" if not np.isfinite(x) else f"{x:.2f}"


def summary_table(savings: list[Savings], rows: list[dict[str, Any]], baselines: Iterable[str],
                  reference_gaps: dict[str, float] | None = None) -> str:
    """A markdown summary: per setting, each design's savings against the best baseline per
    budget (with the 95% bootstrap CI), the geometric-mean saving over budgets, and the median
    gap of every design and baseline (and of the reference policy, ``reference_gaps``)."""
    out = io.StringIO()
    baselines = list(baselines)
    for setting in dict.fromkeys(s.setting for s in savings):
        sel = [s for s in savings if s.setting == setting]
        budgets = sel[0].budgets
        out.write(f"### {setting}\n\n")
        out.write("Savings against the best baseline at matched median gap "
                  "(labels the best baseline needs / labels the design used; 95% bootstrap CI over "
                  "seeds; `>x`: no baseline reached that gap within the largest budget):\n\n")
        out.write("| design | " + " | ".join(f"B={b}" for b in budgets) + " | geo. mean |\n")
        out.write("|---|" + "---:|" * (len(budgets) + 1) + "\n")
        for s in sorted(sel, key=lambda s: -_geo(s.savings)):
            cells = []
            for v, lo, hi, c in zip(s.savings, s.low, s.high, s.censored):
                cells.append((">" if c else "") + f"{v:.2f} [{_fmt(lo)}, {_fmt(hi)}]")
            out.write(f"| {s.design} | " + " | ".join(cells) + f" | {_geo(s.savings):.2f} |\n")
        best = max(sel, key=lambda s: _geo(s.savings))
        out.write("\nBest baseline per budget (for the best design, "
                  f"{best.design}): " + ", ".join(f"B={b}: {n}" for b, n in zip(budgets, best.best_baseline)) + "\n\n")
        b_, _, curves = _median_curves(rows, setting)
        out.write("Median gap over seeds")
        if reference_gaps and setting in reference_gaps:
            out.write(f" (no labels at all, theta_hat = 0, pi_hat = pi_ref: {reference_gaps[setting]:.3g})")
        out.write(":\n\n")
        out.write("| design | " + " | ".join(f"B={b}" for b in b_) + " |\n")
        out.write("|---|" + "---:|" * len(b_) + "\n")
        for name, arr in curves.items():
            tag = " (baseline)" if name in baselines else ""
            out.write(f"| {name}{tag} | " + " | ".join(f"{v:.3g}" for v in np.nanmedian(arr, axis=0)) + " |\n")
        out.write("\n")
    return out.getvalue()


def _geo(x: np.ndarray) -> float:
    return float(np.exp(np.mean(np.log(np.asarray(x, dtype=float)))))


def savings_json(savings: list[Savings]) -> list[dict[str, Any]]:
    return [{"setting": s.setting, "design": s.design, "budgets": s.budgets.tolist(),
             "median_gap": s.median_gap.tolist(), "savings": s.savings.tolist(), "low": s.low.tolist(),
             "high": [None if not np.isfinite(h) else h for h in s.high.tolist()],
             "censored": s.censored.tolist(), "best_baseline": s.best_baseline} for s in savings]


def reference_gaps(config: StudyConfig) -> dict[str, float]:
    """Per setting, the median over seeds of the gap of the reference policy (no labels):
    ``beta mean_x KL(pi_ref || pi*)``; a fit worse than this has hurt the policy."""
    return {s.name: float(np.median([make_world(s, seed).evaluate(np.zeros(s.dim))["gap"]
                                     for seed in config.seeds])) for s in config.settings}


def write_outputs(config: StudyConfig, rows: list[dict[str, Any]], out_dir: Path,
                  plot: bool = True) -> dict[str, Path]:
    """CSV (all runs), summary (markdown + JSON of the savings) and the PNG of the curves."""
    out_dir = Path(out_dir)
    paths = {"csv": out_dir / f"{config.name}.csv", "summary": out_dir / f"{config.name}-summary.md",
             "json": out_dir / f"{config.name}-savings.json"}
    baselines = [b.name for b in config.baselines]
    write_csv(rows, paths["csv"])
    savings = compute_savings(rows, baselines, n_boot=config.bootstrap)
    references = reference_gaps(config)
    with atomic_write(paths["summary"]) as handle:
        handle.write(f"# {config.name}: label savings\n\n")
        handle.write(summary_table(savings, rows, baselines, references))
    with atomic_write(paths["json"]) as handle:
        json.dump(savings_json(savings), handle, indent=1)
    if plot:
        from .plots import plot_curves

        paths["png"] = out_dir / f"{config.name}.png"
        plot_curves(rows, baselines, paths["png"], reference_gaps=references)
    return paths
