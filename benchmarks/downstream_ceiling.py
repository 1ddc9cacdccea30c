"""How many labels *any* design could save in the study's worlds: a certified ceiling (issue 6).

    OPENBLAS_NUM_THREADS=1 python benchmarks/downstream_ceiling.py CONFIG [SEEDS] [--csv STUDY.csv]

The model and the bound are :mod:`pairdesign.simulate.ceiling`: once the ridge fit is
variance-dominated the gap is ``V = tr(H* F^-1) / (2 beta)`` (true H* and Bradley-Terry weights),
the relaxation certifies ``U(B) <= V`` for every design of B distinct pairs (even one that knows
theta*), and the labels ``B'`` the best baseline needs for ``V = U(B)`` bound every design's
savings by ``B' / B``. Per setting of CONFIG and budget B (medians over seeds, [min, max]):

- ``ceiling``: that bound (``>x``: no baseline reaches U(B) within 200d);
- ``round-L*``: the same ratio for round's design on criterion L with H* and the true weights
  (what an exact pilot allows);
- ``greedy-D``: for greedy D with weights 1/4 and no pilot (the package's default criterion);
- with ``--csv`` (the study's runs on the same worlds): the first-order model with the ridge's bias
  (:func:`~pairdesign.simulate.ceiling.first_order_gap`) over the measured gap, median over seeds
  of each, for random, max-distance and greedy-D: near 1, the model describes the study.
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections import Counter, defaultdict

import numpy as np

from pairdesign.simulate import DesignSpec, Labeler, load_config, make_world, run_design
from pairdesign.simulate.ceiling import first_order_gap, savings_ceiling

CHECKED = ("random", "max-distance", "greedy-D")


def _measured(path: str | None) -> dict:
    out: dict = defaultdict(dict)
    if path:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                out[row["setting"], row["design"], int(row["budget"])][int(row["seed"])] = float(row["gap"])
    return out


def _cell(values: list[float], cap: float) -> str:
    v = np.asarray(values)
    if np.isnan(v).any():
        return f"n/a ({int(np.isnan(v).sum())} singular)"
    med = float(np.median(v))
    if not np.isfinite(med):
        return f">{cap:.2f}"
    high = "inf" if not np.isfinite(v.max()) else f"{v.max():.2f}"
    return f"{med:.2f} [{v.min():.2f}, {high}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("seeds", nargs="?", type=int, default=10)
    parser.add_argument("--csv", help="the study's CSV: compare the first-order model with the measured gaps")
    parser.add_argument("--tol", type=float, default=1e-4, help="the relaxation's relative gap")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    config = load_config(args.config)
    measured = _measured(args.csv)
    greedy = DesignSpec(name="greedy-D", method="greedy")
    specs = {s.name: s for s in config.baselines} | {"greedy-D": greedy}
    for s in config.settings:
        budgets = config.budget_labels(s)
        table: dict = defaultdict(list)
        model: dict = defaultdict(list)
        for seed in range(args.seeds):
            world = make_world(s, seed)
            labeler = Labeler(world, seed)
            c = savings_ceiling(world, labeler, budgets, config.baselines, [greedy], seed=seed, tol=args.tol)
            for i, B in enumerate(budgets):
                table["ceiling", B].append(c.any_design[i])
                table["oracle", B].append(c.oracle[i])
                table["greedy", B].append(c.designs["greedy-D"][i])
                table["best", B].append(c.best_baseline[i])
                for name in CHECKED if args.csv else ():
                    got = measured.get((s.name, name, B), {})
                    if seed in got and name in specs:
                        lab = run_design(world, labeler, specs[name], B, seed)
                        model[name, B].append((first_order_gap(world, lab.j, lab.k), got[seed]))
            print(f"# {s.name}: seed {seed} done", flush=True)
        print(f"\n### {s.name} ({args.seeds} seeds)\n")
        head = "| budget | ceiling (any design) | round-L* (exact pilot) | greedy-D (no pilot) | best baseline for U |"
        rule = "|---|---:|---:|---:|---|"
        if args.csv:
            head += " model / measured: " + ", ".join(CHECKED) + " |"
            rule += "---:|"
        print(head + "\n" + rule)
        for B in budgets:
            cap = 200 * s.dim / B
            names = table["best", B]
            line = (f"| {B / s.dim:g}d | {_cell(table['ceiling', B], cap)} | {_cell(table['oracle', B], cap)} | "
                    f"{_cell(table['greedy', B], cap)} | {Counter(names).most_common(1)[0][0]} |")
            if args.csv:
                ratios = []
                for name in CHECKED:
                    pairs = np.array(model[name, B])
                    ratios.append("n/a" if not len(pairs) else
                                  f"{np.median(pairs[:, 0]) / np.median(pairs[:, 1]):.2f}")
                line += " " + " / ".join(ratios) + " |"
            print(line, flush=True)


if __name__ == "__main__":
    main()
