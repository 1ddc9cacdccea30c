"""The tables of benchmarks/RESULTS.md "Downstream study (issue 6)" from a study's CSV.

    python benchmarks/downstream_tables.py benchmarks/figures/downstream.csv benchmarks/downstream.toml \
        [DESIGNS [AGAINST]]

Prints, per setting, the savings (labels the baseline needs / labels the design used, at matched
median gap; 95% bootstrap CI over seeds) of chosen designs (DESIGNS, comma-separated) against
(a) the best of all baselines, picked per budget after the fact, (b) random pairs and (c) each
design of AGAINST (comma-separated, e.g. greedy-D: a design against another one, same seeds),
with the seeds where the design's gap is below / equal to / above that design's.
"""

from __future__ import annotations

import sys

import numpy as np

from pairdesign.simulate.study import compute_savings, load_config, read_csv, reference_gaps


def cell(v: float, lo: float, hi: float, censored: bool) -> str:
    hi_s = "inf" if not np.isfinite(hi) else f"{hi:.2f}"
    return f"{'>' if censored else ''}{v:.2f} [{lo:.2f}, {hi_s}]"


def main(csv_path: str, config_path: str, designs: list[str], against_designs: list[str] = ()) -> None:
    config = load_config(config_path)
    rows = read_csv(csv_path)
    baselines = [b.name for b in config.baselines]
    refs = reference_gaps(config)
    comparisons = [("best baseline (per budget)", baselines), ("random pairs", ["random"])]
    comparisons += [(f"the design {name}", [name]) for name in against_designs]
    for label, against in comparisons:
        keep = [r for r in rows if (r["design"] in designs and r["design"] not in against) or r["design"] in against]
        sav = compute_savings(keep, against, n_boot=config.bootstrap)
        print(f"\n#### Savings against {label}\n")
        budgets = sav[0].budgets
        print("| setting | design | " + " | ".join(f"{b / (budgets[0]):g}d" for b in budgets) + " |")
        print("|---|---|" + "---:|" * len(budgets))
        for s in sav:
            print(f"| {s.setting} | {s.design} | "
                  + " | ".join(cell(*x) for x in zip(s.savings, s.low, s.high, s.censored)) + " |")
        if against in ([name] for name in against_designs):
            print(f"\nSeeds where the design's gap is below / equal to (within 1e-9, e.g. the same pairs) / above "
                  f"{against[0]}'s (paired: same world and labels):\n")
            print("| setting | design | " + " | ".join(f"{b / (budgets[0]):g}d" for b in budgets) + " |")
            print("|---|---|" + "---:|" * len(budgets))
            gaps = {(r["setting"], r["design"], r["budget"], r["seed"]): r["gap"] for r in keep}
            for s in sav:
                seeds = sorted({k[3] for k in gaps if k[0] == s.setting and k[1] == s.design})
                cells = []
                for b in s.budgets:
                    x = np.array([gaps[(s.setting, s.design, b, sd)] for sd in seeds])
                    y = np.array([gaps[(s.setting, against[0], b, sd)] for sd in seeds])
                    equal = np.abs(x - y) <= 1e-9 * np.abs(y)
                    cells.append(f"{np.sum((x < y) & ~equal)}/{np.sum(equal)}/{np.sum((x > y) & ~equal)}")
                print(f"| {s.setting} | {s.design} | " + " | ".join(cells) + " |")
    print("\nReference-policy gap (no labels) per setting: "
          + ", ".join(f"{k}: {v:.3g}" for k, v in refs.items()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3].split(",") if len(sys.argv) > 3
         else ["greedy-D", "relax-D-rounded", "greedy-L-pilot", "greedy-MSE-pilot", "round-D"],
         sys.argv[4].split(",") if len(sys.argv) > 4 else [])
