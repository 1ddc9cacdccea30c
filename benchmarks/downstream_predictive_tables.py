"""Tables of the predictive-weights study (issue 17) from its CSV.

    python benchmarks/downstream_predictive_tables.py CSV [SEEDS] [SETTING ...]

Only seeds 0..SEEDS-1 (default: every seed complete in every setting) and the named settings
(default: all) are used. Prints, per
setting and design, at 2d..32d:

1. savings against the best of the six heuristics (picked per budget after the fact), with the 95%
   bootstrap CI over seeds, as in ``pairdesign simulate``'s summary;
2. savings against greedy D with uniform weights and no pilot (the no-pilot default) taken as the
   only baseline: labels greedy D needs for the design's median gap / labels the design used,
   with the 95% CI; ``WORSE`` marks cells whose whole CI is below 1 (worse than uniform weights
   beyond the CI).
"""

from __future__ import annotations

import sys
from collections import defaultdict

from pairdesign.simulate.study import compute_savings, read_csv

HEURISTICS = ("random", "first-k", "ultrafeedback", "best-vs-worst", "min-margin", "max-distance")
UNIFORM = "greedy-D"
SHOWN = (2, 4, 8, 16, 32)


def main(path: str, n_seeds: int | None = None, settings: list[str] | None = None) -> None:
    rows = read_csv(path)
    if settings:
        rows = [r for r in rows if r["setting"] in settings]
    seeds = defaultdict(set)
    for r in rows:
        seeds[r["setting"]].add(r["seed"])
    if n_seeds is None:
        n_seeds = min(len(s) for s in seeds.values())
    rows = [r for r in rows if r["seed"] < n_seeds]
    print(f"{n_seeds} seeds (0..{n_seeds - 1})\n")
    dims = {}
    for r in rows:
        dims.setdefault(r["setting"], r["budget"])  # the smallest budget is 1d
    for title, baselines, keep in (
            ("savings against the best heuristic", HEURISTICS, None),
            ("savings against greedy D, uniform weights (WORSE: the whole CI below 1)", (UNIFORM,), UNIFORM)):
        sel = [r for r in rows if r["design"] not in HEURISTICS] if keep else rows
        sav = compute_savings(sel, baselines, n_boot=1000)
        print(f"### {title}\n")
        print("| world | design | " + " | ".join(f"{b}d" for b in SHOWN) + " |")
        print("|---|---|" + "---:|" * len(SHOWN))
        for s in sav:
            d = dims[s.setting]
            cells = []
            for b in SHOWN:
                i = list(s.budgets).index(b * d)
                mark = " WORSE" if keep and s.high[i] < 1 else ""
                hi = "inf" if s.high[i] == float("inf") else f"{s.high[i]:.2f}"
                cells.append(f"{'>' if s.censored[i] else ''}{s.savings[i]:.2f} [{s.low[i]:.2f}, {hi}]{mark}")
            print(f"| {s.setting} | {s.design} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None, sys.argv[3:])
